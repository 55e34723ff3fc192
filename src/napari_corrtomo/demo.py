"""The headless end-to-end demo behind ``corrtomo demo``.

It runs every pipeline step that exists on the sample data and writes, into the
output directory, one CSV per step, ``summary.csv`` (each measured quantity next
to its ground truth, with error and unit) and ``report.png``.

A step is a function ``step(ctx: DemoContext) -> None`` in :data:`STEPS`; it reads
what earlier steps left in ``ctx.data``, records quantities with
``ctx.quantity(...)``, tables with ``ctx.table(...)`` and report panels with
``ctx.panel(...)``. A failing step stops the demo with its name in the message.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .core import synthetic
from .core.io import write_ome_zarr, write_table, write_tiff
from .core.outputs import file_stem
from .core.progress import ProgressCallback, report
from .core.quantify import QuantifyResult, QuantifySettings, quantify
from .core.register import apply_to_points


@dataclass
class Quantity:
    step: str
    name: str
    measured: float
    truth: float | None
    unit: str

    @property
    def error(self) -> float | None:
        return None if self.truth is None else self.measured - self.truth

    @property
    def relative_error(self) -> float | None:
        if self.truth is None or self.truth == 0:
            return None
        return (self.measured - self.truth) / abs(self.truth)


@dataclass
class DemoContext:
    out: Path
    seed: int
    data: dict[str, Any] = field(default_factory=dict)
    quantities: list[Quantity] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    panels: list[tuple[str, Callable[[Any], None]]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    step: str = ""

    def quantity(self, name: str, measured: float, truth: float | None, unit: str) -> None:
        self.quantities.append(Quantity(self.step, name, float(measured),
                                        None if truth is None else float(truth), unit))

    def table(self, name: str, frame: pd.DataFrame | dict) -> Path:
        path = write_table(self.out / f"{name}.csv", frame)
        self.files.append(path)
        return path

    def panel(self, title: str, draw: Callable[[Any], None]) -> None:
        """Add a report panel; ``draw(ax)`` plots into one matplotlib Axes."""
        self.panels.append((title, draw))

    def add_file(self, path: Path) -> Path:
        self.files.append(Path(path))
        return Path(path)


@dataclass
class DemoReport:
    quantities: list[Quantity]
    files: list[Path]
    timings: dict[str, float]

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame({
            "step": [q.step for q in self.quantities],
            "quantity": [q.name for q in self.quantities],
            "value": [q.measured for q in self.quantities],
            "truth": [q.truth for q in self.quantities],
            "error": [q.error for q in self.quantities],
            "relative_error": [q.relative_error for q in self.quantities],
            "unit": [q.unit for q in self.quantities],
        })

    def summary_text(self) -> str:
        lines = [f"{'step':<12} {'quantity':<36} {'value':>11} {'truth':>11} {'error':>10}  unit"]
        for q in self.quantities:
            truth = "" if q.truth is None else f"{q.truth:11.4g}"
            err = "" if q.error is None else f"{q.error:10.3g}"
            lines.append(f"{q.step:<12} {q.name:<36} {q.measured:11.4g} {truth:>11} {err:>10}  {q.unit}")
        return "\n".join(lines)


# ============================================================================ steps


def step_samples(ctx: DemoContext) -> None:
    """Generate the sample data, save it (OME-Zarr / TIFF) and record its ground truth."""
    sample = synthetic.correlative_particles(seed=ctx.seed)
    fib = synthetic.fib_sem_stack(seed=ctx.seed)
    ctx.data["correlative"] = sample
    ctx.data["fib"] = fib
    data_dir = ctx.out / "data"
    for vol in sample.volumes():
        ctx.add_file(write_ome_zarr(data_dir / f"{vol.name}.ome.zarr", vol.data, vol.scale,
                                    vol.units, name=vol.name))
    for vol in fib.channels:
        ctx.add_file(write_tiff(data_dir / f"{file_stem(vol.name)}.tif", vol.data,
                                vol.scale, vol.units))
    t = sample.truth
    ctx.table("truth_particles", t.particles)
    ctx.table("truth_fib_thickness", {"slice": np.arange(len(fib.thickness_nm)),
                                      "z_nm": fib.slice_z_nm, "thickness_nm": fib.thickness_nm})
    for name, value, unit in (
        ("particles in overview", len(t.particles), "count"),
        ("nanoCT particle macroporosity", t.nanoct_macroporosity, "fraction"),
        ("closed-pore fraction of pore volume", t.closed_pore_fraction, "fraction"),
        ("ET mesoporosity", t.et_mesoporosity, "fraction"),
        ("combined porosity", t.combined_porosity, "fraction"),
        ("FIB mean slice thickness", float(np.mean(fib.thickness_nm)), "nm"),
    ):
        ctx.quantity(f"truth: {name}", value, value, unit)

    def draw(ax):
        ax.hist(t.particles["esd_um"], bins=30, color="0.5")
        ax.set_xlabel("particle ESD (um)")
        ax.set_ylabel("count")

    ctx.panel("Sample: true particle size distribution", draw)


#: The demo's registration settings (the Register widget's defaults plus refinement and a
#: resampling onto the microCT grid), as a user would run ``corrtomo register``.
REGISTER_SETTINGS = dict(model="similarity", refine=True, resample=True, grid="fixed")


def step_register(ctx: DemoContext) -> None:
    """Register the nanoCT onto the microCT (their reconstructions) from 6 noisy landmarks
    through the registration pipeline (core.register.run_register, as the widget and the
    CLI): fit, intensity refinement, residual table, the nanoCT resampled onto the microCT
    grid and its field of view located; rotation, scale, translation and TRE against the
    known transform."""
    from .core import register as reg

    sample = ctx.data.get("correlative") or synthetic.correlative_particles(seed=ctx.seed)
    t = sample.truth
    truth = t.nanoct_to_microct
    rng = np.random.default_rng(ctx.seed + 5)
    pick = np.sort(rng.choice(len(t.landmarks_microct), 6, replace=False))
    fixed_pts = t.landmarks_microct[pick] + rng.normal(0, sample.microct.scale[0], (6, 3))
    moving_pts = t.landmarks_nanoct[pick] + rng.normal(0, sample.nanoct.scale[0], (6, 3))
    landmarks = reg.Landmarks(fixed_pts, moving_pts, "um", [f"Pt-{i}" for i in pick])
    # the reconstructions of the reconstruct step (the sample's volumes without it)
    rec = ctx.data.get("reconstructed", {})
    micro, nano = rec.get("microCT", sample.microct), rec.get("nanoCT", sample.nanoct)
    out = reg.run_register(landmarks, reg.RegisterSettings(**REGISTER_SETTINGS),
                           fixed_image=micro.data, fixed_frame=micro.frame(3),
                           moving_image=nano.data, moving_frame=nano.frame(3))
    fit, refined = out.fit, out.transform
    fov = reg.fov_box(sample.nanoct.data.shape, sample.nanoct.scale)
    grid = np.stack(np.meshgrid(*[np.linspace(a, b, 5) for a, b in zip(*fov, strict=True)],
                                indexing="ij"), -1).reshape(-1, 3)
    s_true = float(np.cbrt(np.linalg.det(truth[:3, :3])))
    rows = []
    for label, tr in (("landmarks", fit), ("refined", refined)):
        err = reg.compare(tr, truth, grid)
        rows.append({"stage": label, **err, "scale": tr.scale})
        ctx.quantity(f"{label}: rotation error", err["rotation_deg"], 0.0, "deg")
        ctx.quantity(f"{label}: scale", tr.scale, s_true, "1")
        ctx.quantity(f"{label}: translation error (FOV centre)", err["translation"], 0.0, "um")
        ctx.quantity(f"{label}: TRE (RMS over nanoCT FOV)", err["tre_rms"], 0.0, "um")
    ctx.quantity("landmarks: RMS FRE", fit.rms_fre, None, "um")
    ctx.quantity("landmarks: LOO TRE estimate", fit.rms_loo_tre, None, "um")
    ctx.quantity("nanoCT FOV located in microCT (max corner error)",
                 float(np.linalg.norm(out.fov.corners - t.nanoct_fov_microct, axis=1).max()),
                 0.0, "um")
    ctx.table("register_errors", pd.DataFrame(rows))
    ctx.table("register_landmarks", out.table)
    folder = ctx.out / "register"
    ctx.add_file(reg.save_transform(folder / "nanoct_to_microct.json", refined))
    ctx.add_file(reg.save_transform(folder / "nanoct_to_microct.tfm", refined))
    ctx.add_file(reg.save_landmarks_csv(folder / "landmarks.csv", landmarks))
    ctx.add_file(write_ome_zarr(ctx.out / "data" / "nanoCT_on_microCT.ome.zarr", out.resampled,
                                out.grid.spacing, out.grid.unit, name="nanoCT registered"))
    ctx.data["register"] = refined
    ctx.data["register_result"] = out

    def draw(ax):
        tre = [r["tre_rms"] for r in rows]
        ax.bar(["6 noisy landmarks", "+ intensity refinement"], tre, color=["0.6", "tab:blue"])
        ax.axhline(0.5, color="tab:red", ls="--", label="0.5 coarse voxel")
        ax.set_ylabel("TRE over nanoCT field of view (um)")
        ax.legend(fontsize=8)

    ctx.panel("Register: nanoCT -> microCT error", draw)


def step_classify(ctx: DemoContext) -> None:
    """Random-forest segmentation from simulated sparse scribbles: the FIB-SEM electrode
    (three phases, two detectors + difference + tailored z features, trained live with
    correction rounds) and the three reconstructions of the correlative sample; awe, IoU
    and phase fractions against the truth."""
    classify_fib(ctx)
    _classify_correlative(ctx)


#: The demo's FIB-SEM crop for classification: slices and the first sample row (below the
#: ruler band) of ``synthetic.fib_sem_stack``
FIB_CLASSIFY_SLICES = slice(12, 52)
#: Slices of the crop the simulated user paints on (the others are held out for scoring)
FIB_TRAINING_SLICES = (4, 20, 36)


def classify_fib(ctx: DemoContext) -> None:
    """The FIB-SEM electrode segmented by a forest trained live, as a user does it: strokes
    inside each phase on three slices, then rounds of strokes over the mistakes the live
    prediction of each slice shows. The classifier and the segmentation are written to the
    output folder (and the segmentation kept in ``ctx.data["fib_segmentation"]``)."""
    from .core.classify import LiveTrainer, iou_per_class, segment, weighted_error
    from .core.classify.features import FeatureSpec, FilterItem, TailoredFeatures

    fib = ctx.data.get("fib") or synthetic.fib_sem_stack(seed=ctx.seed)
    # a 40-slice crop of the sample rows keeps the step fast; scales up to 3.5 only
    img = fib.image[:, FIB_CLASSIFY_SLICES, fib.ruler.band_rows:]
    truth = fib.labels.data[FIB_CLASSIFY_SLICES, fib.ruler.band_rows:]
    filters = tuple(FilterItem(n, s) for n in ("gaussian", "log", "ggm", "dog", "ste", "hessian")
                    for s in (0.7, 1.6, 3.5))
    spec = FeatureSpec(filters, channel_differences=True, tailored=TailoredFeatures())
    trainer = LiveTrainer(img, spec, fib.labels.scale, "nm",
                          [v.metadata.get("detector", v.name) for v in fib.channels],
                          n_trees=60, seed=ctx.seed)
    scr = synthetic.scribbles_from_truth(truth, slices=FIB_TRAINING_SLICES, seed=ctx.seed)
    # interior strokes never show the forest a phase's edge: it gave 40 % of the pore rim
    # to the carbon-binder (pore fraction -9 to -14 %); corrections where it errs do
    scr = synthetic.correction_rounds(trainer, truth, scr, FIB_TRAINING_SLICES, seed=ctx.seed)
    clf = trainer.classifier
    seg = segment(clf, list(img)).labels
    ctx.data["fib_segmentation"] = seg
    held_out = np.ones(len(truth), bool)
    held_out[list(FIB_TRAINING_SLICES)] = False
    mask = (truth > 0) & held_out[:, None, None]
    ctx.quantity("FIB labelled pixels (strokes and corrections)", int(np.count_nonzero(scr)),
                 None, "pixels")
    ctx.quantity("FIB awe (held-out slices)", weighted_error(truth, seg, mask), 0.0, "%")
    for c, iou in iou_per_class(truth, seg, mask=mask).items():
        ctx.quantity(f"FIB IoU {synthetic.FIB_PHASES[c]}", iou, 1.0, "fraction")
    for c, name in synthetic.FIB_PHASES.items():
        ctx.quantity(f"FIB {name} fraction", float(np.mean(seg[mask] == c)),
                     float(np.mean(truth[mask] == c)), "fraction")
    ctx.add_file(clf.save(ctx.out / "classifier_fib.corrclf.npz"))
    ctx.add_file(write_tiff(ctx.out / "fib_segmentation.tif", seg, fib.labels.scale, "nm",
                            layer_type="labels"))
    ctx.table("classify_importance_fib", clf.feature_importances.head(20))
    z = 28

    def draw(ax):
        both = np.concatenate([truth[z], seg[z]], axis=1)
        ax.imshow(both, cmap="viridis", interpolation="nearest")
        ax.set_axis_off()

    ctx.panel("Classify: FIB truth | RF segmentation (held-out slice)", draw)
#: Classes painted on each correlative reconstruction (phases of ``CORRELATIVE_PHASES``).
#: In the microCT the resin-filled macropores are a few voxels wide and are painted as a
#: class of their own (the random forest tells them from the resin by their context); in
#: the nanoCT they are resolved and look like the resin around the particle, so they are
#: painted as resin and found as the void the particle encloses (quantify step).
CORRELATIVE_CLASSES = {
    "microCT": {synthetic.AIR: synthetic.AIR, synthetic.RESIN: synthetic.RESIN,
                synthetic.SOLID: synthetic.SOLID, synthetic.PORE: synthetic.RESIN},
    "nanoCT": {synthetic.AIR: synthetic.AIR, synthetic.RESIN: synthetic.RESIN,
               synthetic.SOLID: synthetic.SOLID, synthetic.PORE: synthetic.RESIN},
    "ET": {synthetic.SOLID: synthetic.SOLID, synthetic.PORE: synthetic.PORE},
}


#: The reconstructions whose forest is corrected live (as :func:`classify_fib`): their
#: phase fractions become right (ET pore fraction -3.0 to +6.2 % -> within 0.3 %, seeds
#: 0-9). The microCT's is trained on its interior strokes alone: corrected, its solid is
#: right too (+10.6 % -> within 1.6 %), but on seed 2 the 10 um target's label then holds
#: seven fiducial beads around it, whose vertices (37 of its 49) hide its sphere from
#: :func:`~napari_corrtomo.core.quantify.spherical_envelopes` (picked ESD +70 %); the
#: quantify step's mid-level boundary makes the microCT rows independent of the forest's
#: boundary otherwise (docs/benchmarks/demo_seeds.md)
CORRECTED_FORESTS = ("nanoCT", "ET")


def _classify_correlative(ctx: DemoContext) -> None:
    """Segment the microCT, nanoCT and ET reconstructions by random forests trained on
    simulated scribbles (4 strokes per class on 4 slices) and, for
    :data:`CORRECTED_FORESTS`, rounds of strokes over the live prediction's mistakes as
    a user paints them (:func:`classify_fib`)."""
    from .core.classify import LiveTrainer, PixelClassifier, iou_per_class, segment, weighted_error
    from .core.classify.features import FeatureSpec, FilterItem

    sample = ctx.data.get("correlative") or synthetic.correlative_particles(seed=ctx.seed)
    rec = ctx.data.get("reconstructed") or {
        "microCT": sample.microct, "nanoCT": sample.nanoct, "ET": sample.et}
    truths = {"microCT": sample.truth.microct_labels, "nanoCT": sample.truth.nanoct_labels,
              "ET": sample.truth.et_labels}
    spec = FeatureSpec(tuple(FilterItem(n, s) for n in ("gaussian", "ggm", "hessian")
                             for s in (0.7, 1.6, 3.5, 5.0)))
    segs = {}
    for name, vol in rec.items():
        mapping = CORRELATIVE_CLASSES[name]
        lut = np.zeros(max(synthetic.CORRELATIVE_PHASES) + 1, np.uint8)
        for phase, cls in mapping.items():
            lut[phase] = cls + 1  # scribble value = phase + 1 (0 is "unlabelled")
        truth = lut[np.asarray(truths[name].data)]
        scr = synthetic.scribbles_from_truth(truth, seed=ctx.seed, margin_px=1)
        unit = vol.units[0]
        if name in CORRECTED_FORESTS:  # corrections where the live prediction errs
            trainer = LiveTrainer(vol.data, spec, vol.scale, unit, n_trees=40, seed=ctx.seed)
            slices = tuple(int(z) for z in np.unique(np.nonzero(scr)[0]))
            scr = synthetic.correction_rounds(trainer, truth, scr, slices, seed=ctx.seed)
            clf = trainer.classifier
        else:
            clf = PixelClassifier(spec, n_trees=40, seed=ctx.seed).fit(vol.data, scr,
                                                                     vol.scale, unit)
        pred = segment(clf, [vol.data]).labels
        ctx.quantity(f"{name} awe", weighted_error(truth, pred), 0.0, "%")
        for c, iou in iou_per_class(truth, pred).items():
            phase = synthetic.CORRELATIVE_PHASES[int(c) - 1]
            ctx.quantity(f"{name} IoU {phase}", iou, 1.0, "fraction")
            ctx.quantity(f"{name} {phase} fraction", float(np.mean(pred == c)),
                         float(np.mean(truth == c)), "fraction")
        seg = (pred - 1).astype(np.uint8)
        segs[name] = seg
        ctx.add_file(write_tiff(ctx.out / f"{name}_segmentation.tif", seg, vol.scale, unit,
                                layer_type="labels"))
    ctx.data["segmentation"] = segs


#: How the demo prepares its raw microCT scan (as a user would tick it in the widget)
MICROCT_RAW_SCAN = dict(outlier_threshold=5.0, center="auto")


def raw_microct_scan(seed: int):
    """The demo's raw microCT scan: counts with flats/darks, zingers, an off-centre axis."""
    return synthetic.projections("parallel", seed=seed, volume_shape=(24, 64, 64),
                                 det_shape=(24, 64), raw=True, zingers=5e-4, center_offset=2.5,
                                 blur_px=1.0)


def _relative_error(vol: np.ndarray, phantom: np.ndarray) -> float:
    return float(np.linalg.norm(vol - phantom) / np.linalg.norm(phantom))


def reconstruct_raw_microct(ctx: DemoContext):
    """The raw microCT scan (:func:`raw_microct_scan`) reconstructed by FBP (with the FSC of
    its halves) and SIRT through the user-facing pipeline; returns the error rows, the FSC
    and a (phantom, SIRT) slice pair. The results are kept in
    ``ctx.data["microct_raw_reconstructions"]``."""
    from scipy import ndimage as ndi

    from .core import recon

    rows = []
    s = raw_microct_scan(ctx.seed)
    # the scan as a detector writes it, for ``corrtomo reconstruct`` (docs/reconstruction.md)
    ps = s.geometry.pixel_size
    for name, stack in (("raw_projections", s.raw), ("flats", s.flats), ("darks", s.darks)):
        ctx.add_file(write_tiff(ctx.out / "data" / f"microCT_{name}.tif", stack, (ps,) * 3,
                                s.unit))
    ctx.add_file(s.geometry.save(ctx.out / "data" / "microCT_geometry.json"))
    seen = ndi.gaussian_filter(s.phantom, 1.0)
    scan = recon.ScanSettings(**MICROCT_RAW_SCAN)
    results = {}
    for method, iters in (("fbp", 1), ("sirt", 100)):
        r = recon.run_reconstruction(
            s.raw, s.geometry, scan,
            recon.ReconSettings(method, iters, 0.0 if method == "sirt" else None,
                                s.volume_shape, s.voxel_size),
            flats=s.flats, darks=s.darks, halves=method == "fbp")
        results[method] = r
        rows.append(("parallel", method, _relative_error(r.volume, seen)))
        ctx.quantity(f"microCT {method.upper()} relative error vs phantom",
                     rows[-1][2], 0.0, "fraction")
    ctx.data["microct_raw_reconstructions"] = results
    ctx.quantity("microCT rotation-axis offset",
                 float(np.mean(results["fbp"].geometry.shifts[:, 1])), 2.5, "pixel")
    vol = results["sirt"].volume
    ctx.quantity("microCT mean attenuation", float(vol.mean()), float(s.phantom.mean()), "1/um")
    ctx.add_file(write_ome_zarr(ctx.out / "data" / "microCT_sirt.ome.zarr", vol,
                                (s.voxel_size,) * 3, s.unit, name="microCT SIRT"))
    res = results["fbp"].fsc
    ctx.quantity("microCT FSC resolution (1/2-bit)", res.resolution_half_bit, None, "um")
    ctx.quantity("microCT FSC resolution (1-bit)", res.resolution_one_bit, None, "um")
    return rows, res, (seen[12], vol[12])


def step_reconstruct(ctx: DemoContext) -> None:
    """Reconstruct the sample projections of every geometry; errors against the phantoms,
    the rotation-axis and tilt-series alignment found against the truth, FSC resolutions."""
    from scipy import ndimage as ndi

    from .core import recon

    # microCT and ET are imaged through a 1-pixel Gaussian blur (source spot / detector PSF)
    # so that the FSC has something to find; their reconstructions are compared with the
    # phantom seen through the same blur.
    fsc_curves = {}

    # microCT-like parallel beam from raw counts: flat/dark, -log, zingers, centre search
    rows, res, parallel_slice = reconstruct_raw_microct(ctx)
    fsc_curves["microCT (um)"] = res

    # cone beam (FDK) and laminography (FBP vs SIRT: the missing double cone)
    s = synthetic.projections("cone", seed=ctx.seed + 1)
    vol = recon.run_reconstruction(s.projections, s.geometry, settings=recon.ReconSettings(
        "fdk", shape=s.volume_shape, voxel_size=s.voxel_size)).volume
    rows.append(("cone", "fdk", _relative_error(vol, s.phantom)))
    ctx.quantity("cone-beam FDK relative error vs phantom", rows[-1][2], 0.0, "fraction")
    ctx.quantity("cone-beam mean attenuation", float(vol.mean()), float(s.phantom.mean()), "1/um")
    s = synthetic.projections("laminography", seed=ctx.seed + 2, volume_shape=(16, 48, 48),
                              det_shape=(40, 48), n_angles=120)
    for method, iters in (("fbp", 1), ("sirt", 30)):
        vol = recon.run_reconstruction(s.projections, s.geometry, settings=recon.ReconSettings(
            method, iters, shape=s.volume_shape, voxel_size=s.voxel_size)).volume
        rows.append(("laminography", method, _relative_error(vol, s.phantom)))
        ctx.quantity(f"laminography {method.upper()} relative error vs phantom", rows[-1][2],
                     0.0, "fraction")

    # 360-degree ET tilt series with jitter: alignment, SIRT (50 iterations as in the seed), FSC
    s = synthetic.projections("tilt_series", seed=ctx.seed + 3, jitter_px=1.5, blur_px=1.0)
    r = recon.run_reconstruction(s.projections, s.geometry,
                                 # the pillar stays in the field of view: centre of
                                 # mass holds, and removes the cross-correlation drift
                                 recon.ScanSettings(align=True, align_method="both"),
                                 recon.ReconSettings("sirt", 50, 0.0, s.volume_shape,
                                                     s.voxel_size), halves=True)
    shifts = r.geometry.shifts
    theta = np.deg2rad(s.geometry.angles_deg)
    basis = np.stack([np.cos(theta), np.sin(theta)], 1)
    err = shifts - s.true_shifts
    col = err[:, 1] - basis @ np.linalg.lstsq(basis, err[:, 1], rcond=None)[0]
    ctx.quantity("ET alignment residual (rms, col)", float(np.sqrt(np.mean(col**2))), 0.0,
                 "pixel")
    ctx.quantity("ET alignment residual (rms, row)",
                 float(np.std(err[:, 0])), 0.0, "pixel")
    rows.append(("tilt_series", "sirt",
                 _relative_error(r.volume, ndi.gaussian_filter(s.phantom, 1.0))))
    ctx.quantity("ET SIRT relative error vs phantom", rows[-1][2], 0.0, "fraction")
    res = r.fsc
    fsc_curves["ET (nm)"] = res
    ctx.quantity("ET FSC resolution (1/2-bit)", res.resolution_half_bit, None, "nm")
    ctx.quantity("ET FSC resolution (1-bit)", res.resolution_one_bit, None, "nm")
    ctx.table("reconstruction_errors", pd.DataFrame(rows, columns=["geometry", "method",
                                                                   "relative_error"]))
    ctx.table("reconstruction_fsc_et", res.table("nm"))

    def draw_fsc(ax):
        for label, r in fsc_curves.items():
            k = r.frequency / r.frequency[-1]
            ax.plot(k, r.fsc, label=f"{label}: {r.resolution_half_bit:.3g}")
        r = fsc_curves["ET (nm)"]
        k = r.frequency / r.frequency[-1]
        ax.plot(k, r.threshold_half_bit, "k--", lw=0.8, label="1/2-bit")
        ax.plot(k, r.threshold_one_bit, "k:", lw=0.8, label="1-bit")
        ax.set_xlabel("spatial frequency / Nyquist")
        ax.set_ylabel("FSC (even/odd halves)")
        ax.set_ylim(-0.2, 1.05)
        ax.legend(fontsize=7)

    def draw_slice(ax):
        truth, rec = parallel_slice
        ax.imshow(np.concatenate([truth, rec], axis=1), cmap="gray")
        ax.set_axis_off()

    ctx.panel("Reconstruction: FSC of even/odd halves", draw_fsc)
    ctx.panel("microCT slice: phantom (through the PSF) | SIRT from raw counts", draw_slice)
    reconstruct_correlative(ctx)


def fsc_reference_resolution(volume: np.ndarray, truth: np.ndarray, voxel_size: float,
                             halves) -> float:
    """The resolution an even/odd FSC (1/2-bit) should find, from the ground truth.

    The FSC of the full reconstruction against the noise-free object relates to the
    FSC of two half reconstructions by ``C_ref = sqrt(2 C / (1 + C))`` (Rosenthal and
    Henderson, J. Mol. Biol. 333, 721, 2003); so the half-map curve crosses the 1/2-bit
    threshold ``T`` where the reference curve crosses ``sqrt(2 T / (1 + T))``.
    ``halves`` is the :class:`~napari_corrtomo.core.recon.FSCResult` of the halves.
    """
    from .core import recon

    ref = recon.fsc(volume, truth, voxel_size)
    t = halves.threshold_half_bit
    k, _ = recon.first_crossing(ref.frequency, ref.fsc, np.sqrt(2 * t / (1 + t)))
    return 1.0 / k


def reconstruct_correlative(ctx: DemoContext) -> None:
    """Scan the correlative sample's three objects (microCT overview, nanoCT particle, ET
    of its wall), reconstruct them (FBP), and qualify each by the FSC of even/odd halves;
    the reconstructions are what the next steps register, segment and measure."""
    from .core import recon
    from .core.io import Volume

    sample = ctx.data.get("correlative") or synthetic.correlative_particles(seed=ctx.seed)
    ctx.data["correlative"] = sample
    out: dict[str, Volume] = {}
    rows = []
    for name, s in synthetic.correlative_scans(sample, ctx.seed).items():
        r = recon.run_reconstruction(s.projections, s.geometry, settings=recon.ReconSettings(
            "fbp", shape=s.phantom.shape, voxel_size=s.voxel_size), halves=True)
        vol, res = r.volume, r.fsc
        ref = fsc_reference_resolution(vol, s.phantom, s.voxel_size, res)
        ctx.quantity(f"{name} FSC resolution (1/2-bit, truth: FSC vs object)",
                     res.resolution_half_bit, ref, s.unit)
        err = float(np.linalg.norm(vol - s.phantom) / np.linalg.norm(s.phantom))
        ctx.quantity(f"{name} FBP relative error vs object", err, 0.0, "fraction")
        rows.append({"modality": name, "voxel": s.voxel_size, "unit": s.unit,
                     "fsc_half_bit": res.resolution_half_bit, "fsc_reference": ref,
                     "relative_error": err})
        src = sample.microct if name == "microCT" else sample.nanoct if name == "nanoCT" \
            else sample.et
        out[name] = Volume(vol, src.scale, src.units, f"{name} reconstruction", "image",
                           {**src.metadata, "geometry": s.geometry.to_dict()})
        # what the next steps segment and measure, so a user can rerun them on it
        ctx.add_file(write_ome_zarr(ctx.out / "data" / f"{name}_reconstruction.ome.zarr", vol,
                                    src.scale, src.units, name=f"{name} reconstruction"))
    ctx.table("reconstruction_correlative", pd.DataFrame(rows))
    ctx.data["reconstructed"] = out


#: The demo's microCT overview settings (the Quantify widget's / ``corrtomo quantify``'s):
#: the macropores are filled with resin and segmented as resin (as in the nanoCT and the
#: seed), so a particle is its solid plus the void inside its envelope. The solid
#: boundary at the mid grey level (the forest leaves it anywhere in the blurred band);
#: each solid particle closed alone with a 3 um ball (its 4.5 um surface pores filled, no
#: bridge to a neighbour), touching particles split where their distance maxima stand
#: 1 um (a voxel) above the neck, specks below 130 um^3 (a quarter of the smallest
#: particle, 10 um in diameter) dropped; then a sphere envelope per particle (its ESD,
#: and its porosity: what is not solid inside it).
MICROCT_QUANTIFY = QuantifySettings(phase=synthetic.RESIN, matrix=synthetic.SOLID, split_h=1.0,
                                    min_volume=130.0, close_radius=3.0, mid_level=True)


def quantify_microct(ctx: DemoContext) -> QuantifyResult:
    """Particles of the microCT segmentation (``ctx.data["segmentation"]["microCT"]``) and
    the image it segments: the "particles" and "envelopes" measures with
    :data:`MICROCT_QUANTIFY`; the result is kept in ``ctx.data["quantify_microct"]`` and
    its particle and envelope tables written."""
    sample = ctx.data.get("correlative") or synthetic.correlative_particles(seed=ctx.seed)
    lab = ctx.data["segmentation"]["microCT"]
    image = (ctx.data.get("reconstructed") or {}).get("microCT", sample.microct)
    result = quantify(lab, sample.truth.microct_labels.scale, "um",
                      measures=["particles", "envelopes"], settings=MICROCT_QUANTIFY,
                      intensity=np.asarray(image.data))
    ctx.data["quantify_microct"] = result
    ctx.table("quantify_microct_particles", result.tables["particles"])
    ctx.table("quantify_microct_envelopes", result.tables["particle_envelopes"])
    return result


def _particle_pores(seg: np.ndarray, spacing: tuple[float, ...], centre: np.ndarray,
                    image: np.ndarray | None = None) -> QuantifyResult:
    """The particle of a nanoCT segmentation at ``centre`` (voxels) measured alone: its
    envelope and its porosity, closed pores and pore sizes (``particles_at`` with
    ``within_envelopes``: the neighbours in the field of view are left out; each of them
    whole would move the PoSD by up to -16 %, benchmarks/demo_seeds.py); with ``image``
    the solid boundary lies at the mid grey level."""
    settings = QuantifySettings(phase=synthetic.RESIN, matrix=synthetic.SOLID,
                                envelope="sphere", mid_level=image is not None,
                                within_envelopes=True,
                                particles_at=(tuple(centre * np.asarray(spacing)),))
    return quantify(seg, spacing, "um", measures=["envelopes", "closed_pores", "thickness"],
                    settings=settings, intensity=image)


def _partial_volume_macroporosity(seg: np.ndarray, image: np.ndarray,
                                  spacing: tuple[float, ...], centre: np.ndarray) -> pd.Series:
    """The "pv_porosity" measure's row (porosity from the grey values, with its 95 %
    interval) of the nanoCT particle at ``centre`` (voxels)."""
    result = quantify(seg, spacing, "um", measures=["pv_porosity"],
                      settings=QuantifySettings(phase=synthetic.RESIN, matrix=synthetic.SOLID,
                                                envelope="sphere", particles_at=(
                                                    tuple(centre * np.asarray(spacing)),)),
                      intensity=image)
    return result.tables["pv_porosity"].iloc[0]


def step_quantify(ctx: DemoContext) -> None:
    """Quantification of the classified reconstructions (the classify step's segmentations)
    through the quantify pipeline the widget and ``corrtomo quantify`` run: particle sizes
    and porosities (microCT), the picked particle's macroporosity, closed pores and pore
    sizes (nanoCT, located through the registration), mesopores and matrix tortuosity
    (ET) and the cross-scale porosity, each next to its ground truth; interface sharpness
    on the sample images."""
    from scipy.spatial import cKDTree

    from .core.connected import label
    from .core.quantify import combine_porosity, labels_at, size_distribution
    from .core.synthetic import PORE, RESIN, SOLID

    sample = ctx.data.get("correlative") or synthetic.correlative_particles(seed=ctx.seed)
    t = sample.truth
    segs = ctx.data.get("segmentation")
    if segs is None:
        raise ValueError("no segmentations: run the classify step first")

    # ---- microCT overview: particles by distance-transform watershed, their sphere
    # envelopes: ESD and porosity
    micro = quantify_microct(ctx)
    table = micro.tables["particle_envelopes"]
    particles = np.asarray(micro.arrays["particle envelopes"].data)
    measured = np.asarray(micro.arrays["labels (mid-level boundary)"].data)
    tml = np.asarray(t.microct_labels.data)
    ctx.quantity("microCT macropore fraction (in the particle envelopes)",
                 np.count_nonzero((particles > 0) & (measured != SOLID)) / particles.size,
                 float(np.mean(tml == PORE)), "fraction")
    sp = t.microct_labels.scale
    truth_p = t.particles
    dist, idx = cKDTree(truth_p[["z_um", "y_um", "x_um"]].to_numpy()).query(
        table[["z_um", "y_um", "x_um"]].to_numpy())
    matched = dist < 2.0
    esd_err = table["esd_um"].to_numpy()[matched] - truth_p["esd_um"].to_numpy()[idx[matched]]
    por_err = (table["porosity"].to_numpy()[matched]
               - truth_p["macroporosity"].to_numpy()[idx[matched]])
    esd = size_distribution(table["esd_um"], bin_width=2.0, unit="um")
    esd_truth = size_distribution(truth_p["esd_um"], bin_width=2.0, unit="um")
    ctx.table("quantify_microct_esd_distribution", esd.table())
    ctx.quantity("microCT particles separated", len(table), len(truth_p), "count")
    ctx.quantity("microCT particles matched to truth (centre < 2 um)",
                 int(len(np.unique(idx[matched]))), len(truth_p), "count")
    ctx.quantity("ESD mean", esd.mean, esd_truth.mean, "um")
    ctx.quantity("ESD std", esd.std, esd_truth.std, "um")
    if esd.fit is not None and esd_truth.fit is not None:
        ctx.quantity("ESD log-normal mode", esd.fit.mode, esd_truth.fit.mode, "um")
    ctx.quantity("ESD error per particle (median abs)", float(np.median(np.abs(esd_err))), 0.0,
                 "um")
    ctx.quantity("per-particle porosity mean", float(table["porosity"].mean()),
                 float(truth_p["macroporosity"].mean()), "fraction")
    ctx.quantity("per-particle porosity std", float(table["porosity"].std(ddof=0)),
                 float(truth_p["macroporosity"].std(ddof=0)), "fraction")
    ctx.quantity("per-particle porosity error (RMS)", float(np.sqrt(np.mean(por_err**2))), 0.0,
                 "fraction")

    # ---- nanoCT: the picked particle, found through the registration
    nlab = segs["nanoCT"]
    nsp = t.nanoct_labels.scale
    transform = ctx.data.get("register")
    m2f = transform.matrix if transform is not None else t.nanoct_to_microct
    fov_centre = apply_to_points(m2f, (np.array(nlab.shape) - 1) * np.asarray(nsp) / 2)[0]
    # the measured microCT particle under the nanoCT field of view, or the nearest (the
    # quantify pipeline's rule for a point outside every envelope): its distance says
    # whether the overview resolved the particle (seed 7: its 10 um particle is merged
    # with a neighbour 1.4 um away, whose sphere the envelope follows)
    (pick,), (gap,) = labels_at(particles, fov_centre / sp, sp)
    ctx.quantity("picked particle: nanoCT field-of-view centre to its microCT envelope",
                 gap, 0.0, "um")
    row = table.loc[table["label"] == pick].iloc[0]
    # the nanoCT was scanned on that particle: its particle is the one at the centre of the
    # field of view (the microCT particle's centroid is off when the overview merged it
    # with a neighbour: seeds 2 and 3 then measured a fragment of another particle)
    centre = (np.array(nlab.shape) - 1) / 2
    true_row = truth_p.loc[truth_p["particle"] == t.target_particle]
    ctx.quantity("picked particle ESD (microCT)", row["esd_um"],
                 float(true_row["esd_um"].iloc[0]), "um")
    rec = ctx.data.get("reconstructed") or {}
    nimg = rec["nanoCT"] if "nanoCT" in rec else sample.nanoct  # what was classified
    nano = _particle_pores(nlab, nsp, centre, np.asarray(nimg.data))
    macro = float(nano.tables["particle_envelopes"]["porosity"].item())
    posd = nano.distributions["phase size distribution"]
    tl = np.asarray(t.nanoct_labels.data)
    # reference: the same envelope on the true solid; truth pore sizes: the same MSI on the
    # true pores of the particle
    true_centre = _apply_inverse(t.nanoct_to_microct,
                                 true_row[["z_um", "y_um", "x_um"]].to_numpy()[0]) / np.asarray(nsp)
    ref_macro = float(_particle_pores(np.where(tl == PORE, RESIN, tl), nsp, true_centre)
                      .tables["particle_envelopes"]["porosity"].item())
    tcomp, _ = label((tl == SOLID) | (tl == PORE), connectivity=1)
    tparticle = tcomp == tcomp[tuple(np.clip(np.rint(true_centre).astype(int), 0,
                                             np.array(tl.shape) - 1))]
    tpore = np.where(tparticle, tl, RESIN)
    tposd = quantify(tpore.astype(np.uint8), nsp, "um", measures=["thickness"],
                     settings=QuantifySettings(phase=PORE, matrix=SOLID, outside=(RESIN,))
                     ).distributions["phase size distribution"]
    closed_frac = float(nano.summary().set_index("quantity").loc[
        "closed fraction of phase volume", "value"])
    ctx.table("quantify_nanoct_pore_size_distribution", posd.table())
    ctx.quantity("nanoCT particle macroporosity", macro, t.nanoct_macroporosity, "fraction")
    ctx.quantity("nanoCT macroporosity, same envelope on the true solid", ref_macro,
                 t.nanoct_macroporosity, "fraction")
    pv = _partial_volume_macroporosity(nlab, np.asarray(nimg.data), nsp, centre)
    ctx.quantity("nanoCT particle macroporosity (partial volume, from grey values)",
                 pv["porosity_pv"], t.nanoct_macroporosity, "fraction")
    ctx.quantity("nanoCT partial-volume macroporosity, 95 % interval low",
                 pv["porosity_pv_low"], None, "fraction")
    ctx.quantity("nanoCT partial-volume macroporosity, 95 % interval high",
                 pv["porosity_pv_high"], None, "fraction")
    ctx.quantity("closed-pore fraction of pore volume", closed_frac, t.closed_pore_fraction,
                 "fraction")
    ctx.quantity("nanoCT PoSD mean (MSI, voxel-weighted; truth: MSI of true pores)", posd.mean,
                 tposd.mean, "um")
    ctx.quantity("nanoCT PoSD std", posd.std, tposd.std, "um")
    if posd.fit is not None and tposd.fit is not None:
        ctx.quantity("nanoCT PoSD log-normal mode", posd.fit.mode, tposd.fit.mode, "um")

    # ---- ET: mesoporosity and mesopore sizes (MSI); diffusion through the matrix around
    # the mesopores (insulating spheres); reference: Maxwell / Hashin-Shtrikman,
    # tau >= 1 + phi/2 (a lower bound, exact when dilute)
    elab = segs["ET"]
    esp = t.et_labels.scale
    et = quantify(elab, esp, "nm", measures=["porosity", "thickness"],
                  settings=QuantifySettings(phase=PORE))
    meso = float(et.summary().set_index("quantity").loc["porosity (phase / sample)", "value"])
    mesd = et.distributions["phase size distribution"]
    tmesd = quantify(np.asarray(t.et_labels.data), esp, "nm", measures=["thickness"],
                     settings=QuantifySettings(phase=PORE)
                     ).distributions["phase size distribution"]
    ctx.table("quantify_et_pore_size_distribution", mesd.table())
    d_true = np.asarray(t.et_pore_diameters_nm)
    ctx.quantity("ET mesoporosity", meso, t.et_mesoporosity, "fraction")
    ctx.quantity("ET PoSD mean (MSI, voxel-weighted; truth: MSI of true pores)", mesd.mean,
                 tmesd.mean, "nm")
    # the spheres' analytic volume-weighted diameter is what the MSI of uncut, apart
    # spheres gives; the mesopores overlap and the volume's faces cut them (the truth's
    # MSI is -10.5 to +2.9 % off it over seeds 0-9)
    ctx.quantity("ET mesopore spheres' volume-weighted diameter (analytic)",
                 float(np.sum(d_true**4) / np.sum(d_true**3)), None, "nm")
    ctx.quantity("ET PoSD std (truth: MSI of true pores)", mesd.std, tmesd.std, "nm")
    if mesd.fit is not None and tmesd.fit is not None:
        ctx.quantity("ET PoSD log-normal mode (truth: MSI of true pores)", mesd.fit.mode,
                     tmesd.fit.mode, "nm")
    ctx.quantity("combined porosity (nanoCT macro + ET meso)", combine_porosity(macro, meso),
                 t.combined_porosity, "fraction")
    tau = quantify(elab, esp, "nm", measures=["tortuosity"],
                   settings=QuantifySettings(phase=SOLID, transport_axes=(0,))
                   ).tables["tortuosity"].iloc[0]
    ctx.quantity("ET matrix tortuosity factor (z; reference: lower bound 1 + phi/2)",
                 tau["tortuosity_factor"], 1.0 + meso / 2.0, "1")
    ctx.quantity("ET matrix D_eff / D_bulk (z; reference: upper bound 2(1-phi)/(2+phi))",
                 tau["d_eff_ratio"], 2.0 * (1.0 - meso) / (2.0 + meso), "fraction")

    # ---- interface sharpness of the sample images (known PSF) across the true interface;
    # proxigram width of a Gaussian edge is 1.349 sigma
    for name, vol, lab_v, key, dmax in (
            ("microCT", sample.microct, t.microct_labels.data, "microct_um", 5.0),
            ("nanoCT", sample.nanoct, tl, "nanoct_um", 0.5)):
        p = quantify(np.asarray(lab_v), vol.scale, "um", measures=["proxigram"],
                     settings=QuantifySettings(phase=SOLID, proxigram_distance=dmax),
                     intensity=np.asarray(vol.data)).proxigram
        ctx.table(f"quantify_{name.lower()}_proxigram", p.table())
        ctx.quantity(f"{name} proxigram dx (x75 - x25)", p.dx, 1.349 * t.blur_sigma[key], "um")
        ctx.quantity(f"{name} proxigram slope 0.5/dx", p.slope,
                     0.5 / (1.349 * t.blur_sigma[key]), "1/um")
        ctx.data[f"proxigram_{name}"] = p

    def draw_esd(ax):
        c = esd.centers
        ax.bar(c, esd.fraction, width=np.diff(esd.edges), color="0.6", label="measured")
        ax.step(esd_truth.centers, esd_truth.fraction, where="mid", color="k", label="truth")
        if esd.fit is not None:
            ax.plot(c, esd.fit.density(c) * np.diff(esd.edges), "r-",
                    label=f"log-normal, mode {esd.fit.mode:.1f} um")
        ax.set_xlabel("ESD (um)")
        ax.set_ylabel("fraction of particles")
        ax.legend(fontsize=7)

    def draw_posd(ax):
        c = posd.centers
        ax.bar(c, posd.fraction, width=np.diff(posd.edges), color="0.6", label="measured")
        ax.step(tposd.centers, tposd.fraction, where="mid", color="k",
                label="truth (MSI of the true pores)")
        if posd.fit is not None:
            ax.plot(c, posd.fit.density(c) * np.diff(posd.edges), "r-",
                    label=f"log-normal, mode {posd.fit.mode:.2f} um "
                          f"(KS {posd.fit.ks_distance:.2f})")
        ax.legend(fontsize=7)
        ax.set_xlabel("local pore diameter (um)")
        ax.set_ylabel("fraction of pore voxels")

    def draw_prox(ax):
        for name in ("microCT", "nanoCT"):
            p = ctx.data[f"proxigram_{name}"]
            ax.plot(p.distance, p.normalized, label=f"{name}: slope {p.slope:.2f} 1/um")
        ax.axhline(0.25, ls=":", c="orange")
        ax.axhline(0.75, ls=":", c="orange")
        ax.set_xlabel("distance to interface (um)")
        ax.set_ylabel("normalized intensity")
        ax.legend(fontsize=7)

    ctx.panel("Quantify: particle ESD (microCT)", draw_esd)
    ctx.panel("Quantify: nanoCT pore sizes (MSI)", draw_posd)
    ctx.panel("Quantify: proxigrams", draw_prox)


def _apply_inverse(matrix: np.ndarray, point: np.ndarray) -> np.ndarray:
    """Map a point through the inverse of a 4x4 homogeneous matrix."""
    return apply_to_points(np.linalg.inv(matrix), point)[0]


def fib_se2_settings(sample) -> Any:
    """The FIB settings a user gives for the sample's SE2 stack: only what they know about
    the ruler (angle, band rows), the band cut from the result, cubic interpolation."""
    from .core import fib as F

    return F.FibSettings(source="ruler", angle_deg=sample.ruler.angle_deg,
                         band_rows=(0, sample.ruler.band_rows), cut_band=True, method="cubic")


def step_fib(ctx: DemoContext) -> None:
    """FIB slices through the FIB pipeline (core.fib.run_fib, as the widget and the CLI):
    ruler-mark thicknesses vs truth; repositioned + interpolated volumes vs truth."""
    from .core import fib as F

    sample = ctx.data.get("fib") or synthetic.fib_sem_stack(seed=ctx.seed)
    se2 = sample.channels[0]
    px = float(se2.scale[-1])
    # the SE2 stack, thicknesses from its ruler marks, band cut: an isotropic SE2 volume
    iso = F.run_fib(se2.data, px, fib_se2_settings(sample))
    ctx.data["fib_se2_isotropic"] = iso
    measured = iso.thickness.thickness_nm
    true_t = sample.thickness_nm
    err = measured[:-1] - true_t[:-1]
    ctx.quantity("ruler thickness RMS error", float(np.sqrt(np.mean(err**2))), 0.0, "nm")
    ctx.quantity("ruler mean thickness", float(np.mean(measured[:-1])),
                 float(np.mean(true_t[:-1])), "nm")
    ctx.quantity("ruler flagged slices", len(iso.thickness.ruler.flagged), 0, "count")
    thickness_csv = ctx.table("fib_thickness", iso.thickness.table.assign(true_thickness_nm=true_t))

    # the electrode's active material, repositioned on the 2.5 nm grid of the truth, with
    # the thickness table the ruler gave (as a user would reuse it) or the target constant
    grid = sample.fine_labels.scale[0]
    band = (0, sample.ruler.band_rows)
    am = sample.labels.data[:, :, :64] == synthetic.FIB_AM
    fine = sample.fine_labels.data[:, :, :64] == synthetic.FIB_AM
    n_truth = int(np.round(sample.slice_z_nm[-1] / grid)) + 1
    for label, source in (("measured", dict(source="csv", csv_path=str(thickness_csv))),
                          ("constant (target)", dict(source="constant",
                                                     constant_nm=float(se2.scale[0])))):
        out = F.run_fib(am, px, F.FibSettings(**source, band_rows=band, grid_nm=grid,
                                                 method="shape"))
        n = min(len(out.volume), n_truth)
        m = F.fib_quality(out.volume[:n], out.spacing_nm, fine[:n])
        ctx.quantity(f"electrode AM, thickness {label}: MP", m["mp_percent"], 0.0, "%")

    # HNPG-like structure (2.5 nm voxels, 10 nm slices): ML inpainting vs nearest/cubic
    truth_vol = synthetic.hierarchical_leveled_wave((112, 64, 64), 2.5, seed=ctx.seed + 500)
    mimic = synthetic.fib_mimic(truth_vol, 2.5, 10.0, 4.0, seed=ctx.seed + 500)
    mimic_csv = ctx.table("fib_mimic_thickness", F.thickness_table(mimic.thickness_nm))
    rows = []
    for method in ("nearest", "cubic", "ml"):
        out = F.run_fib(mimic.stack, 2.5, F.FibSettings(source="csv", csv_path=str(mimic_csv),
                                                        method=method))
        m = F.fib_quality(out.volume, out.spacing_nm, mimic.truth)
        rows.append({"method": method, **m})
        ctx.quantity(f"HNPG {method}: MP", m["mp_percent"], 0.0, "%")
        ctx.quantity(f"HNPG {method}: MGP", m["mgp_percent"], 0.0, "%")
        ctx.quantity(f"HNPG {method}: MDS", m["mds"], 1.0, "fraction")
    ctx.table("fib_interpolation", pd.DataFrame(rows))

    def draw(ax):
        ax.plot(true_t[:-1], measured[:-1], "o", ms=3, color="0.3")
        lim = (0, float(np.max(true_t)) * 1.1)
        ax.plot(lim, lim, "-", color="tab:red", lw=0.8)
        ax.set_xlabel("true slice thickness (nm)")
        ax.set_ylabel("from ruler marks (nm)")

    ctx.panel("FIB: slice thickness from the ruler", draw)


#: The demo's steps, in order. Capability issues append theirs.
STEPS: list[tuple[str, Callable[[DemoContext], None]]] = [
    ("samples", step_samples),
    ("reconstruct", step_reconstruct),
    ("register", step_register),
    ("classify", step_classify),
    ("fib", step_fib),
    ("quantify", step_quantify),
]


# ============================================================================ runner


def run_demo(out: str | Path, seed: int = 0, progress: ProgressCallback | None = None,
             steps: Sequence[str] | None = None) -> DemoReport:
    """Run every step of :data:`STEPS` (or only those named in ``steps``, in their
    order: a step uses what earlier ones made, else makes it), writing tables,
    ``summary.csv`` and ``report.png``."""
    names = [name for name, _ in STEPS]
    if steps is not None and set(steps) - set(names):
        raise ValueError(f"unknown demo steps {sorted(set(steps) - set(names))}; the steps "
                         f"are {names}")
    chosen = [(n, f) for n, f in STEPS if steps is None or n in steps]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ctx = DemoContext(out=out, seed=seed)
    for i, (name, step) in enumerate(chosen):
        ctx.step = name
        start = time.perf_counter()
        try:
            step(ctx)
        except Exception as exc:
            raise ValueError(f"demo step '{name}' failed: {exc}") from exc
        ctx.timings[name] = time.perf_counter() - start
        report(progress, i + 1, len(chosen))
    result = DemoReport(ctx.quantities, ctx.files, ctx.timings)
    ctx.files.append(write_table(out / "summary.csv", result.frame()))
    ctx.files.append(_write_report(out / "report.png", ctx))
    return result


def _write_report(path: Path, ctx: DemoContext) -> Path:
    from matplotlib.figure import Figure

    from .core.io import atomic_path

    n = max(len(ctx.panels), 1)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(5 * cols, 4 * rows), layout="constrained")
    for i, (title, draw) in enumerate(ctx.panels):
        ax = fig.add_subplot(rows, cols, i + 1)
        draw(ax)
        ax.set_title(title, fontsize=10)
    fig.suptitle(f"napari-corrtomo demo (seed {ctx.seed})")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    return path
