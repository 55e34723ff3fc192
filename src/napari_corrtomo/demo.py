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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .core import synthetic
from .core.io import write_ome_zarr, write_table, write_tiff
from .core.progress import ProgressCallback, report


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
            "measured": [q.measured for q in self.quantities],
            "truth": [q.truth for q in self.quantities],
            "error": [q.error for q in self.quantities],
            "relative_error": [q.relative_error for q in self.quantities],
            "unit": [q.unit for q in self.quantities],
        })

    def summary_text(self) -> str:
        lines = [f"{'step':<12} {'quantity':<36} {'measured':>11} {'truth':>11} {'error':>10}  unit"]
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
        ctx.add_file(write_tiff(data_dir / f"{vol.name.replace(' ', '_')}.tif", vol.data,
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


def step_register(ctx: DemoContext) -> None:
    """Register the nanoCT onto the microCT from 6 noisy landmarks, refine by intensity,
    and compare rotation, scale, translation and TRE with the known transform."""
    from .core import register as reg

    sample = ctx.data.get("correlative") or synthetic.correlative_particles(seed=ctx.seed)
    t = sample.truth
    truth = t.nanoct_to_microct
    rng = np.random.default_rng(ctx.seed + 5)
    pick = np.sort(rng.choice(len(t.landmarks_microct), 6, replace=False))
    fixed_pts = t.landmarks_microct[pick] + rng.normal(0, sample.microct.scale[0], (6, 3))
    moving_pts = t.landmarks_nanoct[pick] + rng.normal(0, sample.nanoct.scale[0], (6, 3))
    fit = reg.fit_landmarks(fixed_pts, moving_pts, "similarity", unit="um")
    refined = reg.refine(sample.microct.data, sample.nanoct.data, fit,
                         fixed_spacing=sample.microct.scale, moving_spacing=sample.nanoct.scale)
    fov = reg.fov_box(sample.nanoct.data.shape, sample.nanoct.scale)
    grid = np.stack(np.meshgrid(*[np.linspace(a, b, 5) for a, b in zip(*fov, strict=True)],
                                indexing="ij"), -1).reshape(-1, 3)
    s_true = float(np.cbrt(np.linalg.det(truth[:3, :3])))
    rows = []
    for label, tr in (("landmarks", fit), ("refined", refined)):
        err = reg.compare(tr, truth, grid)
        rows.append({"stage": label, **err, "scale": tr.scale})
        ctx.quantity(f"{label}: rotation error", err["rotation_deg"], 0.0, "deg")
        ctx.quantity(f"{label}: scale", tr.scale, s_true, "factor")
        ctx.quantity(f"{label}: translation error (FOV centre)", err["translation"], 0.0, "um")
        ctx.quantity(f"{label}: TRE (RMS over nanoCT FOV)", err["tre_rms"], 0.0, "um")
    ctx.quantity("landmarks: RMS FRE", fit.rms_fre, None, "um")
    ctx.quantity("landmarks: LOO TRE estimate", fit.rms_loo_tre, None, "um")
    roi = reg.map_box(fov, refined).corners
    ctx.quantity("nanoCT FOV located in microCT (max corner error)",
                 float(np.linalg.norm(roi - t.nanoct_fov_microct, axis=1).max()), 0.0, "um")
    ctx.table("register_errors", pd.DataFrame(rows))
    ctx.table("register_landmarks", {
        "landmark": pick, "residual_um": fit.residuals, "loo_tre_um": fit.loo_tre})
    out = ctx.out / "register"
    ctx.add_file(reg.save_transform(out / "nanoct_to_microct.json", refined))
    ctx.add_file(reg.save_transform(out / "nanoct_to_microct.tfm", refined))
    ctx.add_file(reg.save_landmarks_csv(out / "landmarks.csv", reg.Landmarks(
        fixed_pts, moving_pts, "um", [f"Pt-{i}" for i in pick])))
    ctx.data["register"] = refined

    def draw(ax):
        tre = [r["tre_rms"] for r in rows]
        ax.bar(["6 noisy landmarks", "+ intensity refinement"], tre, color=["0.6", "tab:blue"])
        ax.axhline(0.5, color="tab:red", ls="--", label="0.5 coarse voxel")
        ax.set_ylabel("TRE over nanoCT field of view (um)")
        ax.legend(fontsize=8)

    ctx.panel("Register: nanoCT -> microCT error", draw)
def step_classify(ctx: DemoContext) -> None:
    """Random-forest segmentation from simulated sparse scribbles: the FIB-SEM electrode
    (three phases, two detectors + difference + tailored z features) and the nanoCT
    particle (solid vs resin/pores); awe, IoU and phase fractions against the truth."""
    from .core.classify import PixelClassifier, iou_per_class, weighted_error
    from .core.features import FeatureSpec, FilterItem, TailoredFeatures

    fib = ctx.data.get("fib") or synthetic.fib_sem_stack(seed=ctx.seed)
    # a 40-slice crop of the sample rows keeps the step fast; scales up to 3.5 only
    img = fib.image[:, 12:52, fib.ruler.band_rows:]
    truth = fib.labels.data[12:52, fib.ruler.band_rows:]
    scr = synthetic.scribbles_from_truth(truth, slices=(4, 20, 36), seed=ctx.seed)
    filters = tuple(FilterItem(n, s) for n in ("gaussian", "log", "ggm", "dog", "ste", "hessian")
                    for s in (0.7, 1.6, 3.5))
    spec = FeatureSpec(filters, channel_differences=True, tailored=TailoredFeatures())
    clf = PixelClassifier(spec, n_trees=60, seed=ctx.seed).fit(
        img, scr, fib.labels.scale, "nm",
        [v.metadata.get("detector", v.name) for v in fib.channels])
    seg = clf.predict(img)
    held_out = np.ones(len(truth), bool)
    held_out[[4, 20, 36]] = False
    mask = (truth > 0) & held_out[:, None, None]
    ctx.quantity("FIB awe (held-out slices)", weighted_error(truth, seg, mask), 0.0, "%")
    for c, iou in iou_per_class(truth, seg, mask=mask).items():
        ctx.quantity(f"FIB IoU {synthetic.FIB_PHASES[c]}", iou, 1.0, "fraction")
    for c, name in synthetic.FIB_PHASES.items():
        ctx.quantity(f"FIB {name} fraction", float(np.mean(seg[mask] == c)),
                     float(np.mean(truth[mask] == c)), "fraction")
    ctx.add_file(clf.save(ctx.out / "classifier_fib.corrclf.npz"))
    ctx.add_file(write_tiff(ctx.out / "fib_segmentation.tif", seg, fib.labels.scale, "nm",
                            layer_type="labels"))

    # nanoCT: solid vs resin/pores on a central crop
    sample = ctx.data.get("correlative") or synthetic.correlative_particles(seed=ctx.seed)
    nano, ntruth = sample.nanoct, sample.truth.nanoct_labels.data
    c = np.array(ntruth.shape) // 2
    crop = tuple(slice(int(m) - 48, int(m) + 48) for m in c)
    nimg = np.asarray(nano.data)[crop]
    solid = np.where(ntruth[crop] == synthetic.SOLID, 2, 1).astype(np.uint8)
    nscr = synthetic.scribbles_from_truth(solid, slices=(20, 48, 76), seed=ctx.seed)
    nspec = FeatureSpec(tuple(FilterItem(n, s) for n in ("gaussian", "ggm", "hessian")
                              for s in (0.7, 1.6, 3.5)))
    nclf = PixelClassifier(nspec, n_trees=60, seed=ctx.seed).fit(nimg, nscr, nano.scale, "um")
    nseg = nclf.predict(nimg)
    ctx.quantity("nanoCT awe (solid vs resin/pores)", weighted_error(solid, nseg), 0.0, "%")
    ctx.quantity("nanoCT IoU solid", iou_per_class(solid, nseg)[2], 1.0, "fraction")
    ctx.quantity("nanoCT solid fraction (crop)", float(np.mean(nseg == 2)),
                 float(np.mean(solid == 2)), "fraction")
    ctx.add_file(write_tiff(ctx.out / "nanoct_segmentation.tif", nseg, nano.scale, "um",
                            layer_type="labels"))
    ctx.table("classify_importance_fib", clf.feature_importances.head(20))
    z = 28

    def draw(ax):
        both = np.concatenate([truth[z], seg[z]], axis=1)
        ax.imshow(both, cmap="viridis", interpolation="nearest")
        ax.set_axis_off()

    ctx.panel("Classify: FIB truth | RF segmentation (held-out slice)", draw)
def step_reconstruct(ctx: DemoContext) -> None:
    """Reconstruct the sample projections of every geometry; errors against the phantoms,
    the rotation-axis and tilt-series alignment found against the truth, FSC resolutions."""
    from scipy import ndimage as ndi

    from .core import recon

    def rel_err(vol, phantom):
        return float(np.linalg.norm(vol - phantom) / np.linalg.norm(phantom))

    # microCT and ET are imaged through a 1-pixel Gaussian blur (source spot / detector PSF)
    # so that the FSC has something to find; their reconstructions are compared with the
    # phantom seen through the same blur.

    rows = []
    fsc_curves = {}

    # microCT-like parallel beam from raw counts: flat/dark, -log, zingers, centre search
    s = synthetic.projections("parallel", seed=ctx.seed, volume_shape=(24, 64, 64),
                              det_shape=(24, 64), raw=True, zingers=5e-4, center_offset=2.5,
                              blur_px=1.0)
    seen = ndi.gaussian_filter(s.phantom, 1.0)
    lines = recon.prepare(s.raw, flats=s.flats, darks=s.darks, outlier_threshold=5.0)
    offset = recon.find_center(lines, s.geometry)
    ctx.quantity("microCT rotation-axis offset", offset, 2.5, "pixel")
    geom = s.geometry.shifted(col=offset)
    for method, iters in (("fbp", 1), ("sirt", 100)):
        vol = recon.reconstruct(lines, geom, s.volume_shape, s.voxel_size, method, iters,
                                0.0 if method == "sirt" else None)
        rows.append(("parallel", method, rel_err(vol, seen)))
        ctx.quantity(f"microCT {method.upper()} relative error vs phantom",
                     rows[-1][2], 0.0, "fraction")
    ctx.quantity("microCT mean attenuation", float(vol.mean()), float(s.phantom.mean()), "1/um")
    ctx.add_file(write_ome_zarr(ctx.out / "data" / "microCT_sirt.ome.zarr", vol,
                                (s.voxel_size,) * 3, s.unit, name="microCT SIRT"))
    even, odd = recon.reconstruct_halves(lines, geom, s.volume_shape, s.voxel_size, "fbp")
    res = recon.fsc(even, odd, s.voxel_size)
    fsc_curves["microCT (um)"] = res
    ctx.quantity("microCT FSC resolution (1/2-bit)", res.resolution_half_bit, None, "um")
    ctx.quantity("microCT FSC resolution (1-bit)", res.resolution_one_bit, None, "um")
    parallel_slice = (seen[12], vol[12])

    # cone beam (FDK) and laminography (FBP vs SIRT: the missing double cone)
    s = synthetic.projections("cone", seed=ctx.seed + 1)
    vol = recon.reconstruct(s.projections, s.geometry, s.volume_shape, s.voxel_size, "fdk")
    rows.append(("cone", "fdk", rel_err(vol, s.phantom)))
    ctx.quantity("cone-beam FDK relative error vs phantom", rows[-1][2], 0.0, "fraction")
    ctx.quantity("cone-beam mean attenuation", float(vol.mean()), float(s.phantom.mean()), "1/um")
    s = synthetic.projections("laminography", seed=ctx.seed + 2, volume_shape=(16, 48, 48),
                              det_shape=(40, 48), n_angles=120)
    for method, iters in (("fbp", 1), ("sirt", 30)):
        vol = recon.reconstruct(s.projections, s.geometry, s.volume_shape, s.voxel_size, method,
                                iters)
        rows.append(("laminography", method, rel_err(vol, s.phantom)))
        ctx.quantity(f"laminography {method.upper()} relative error vs phantom", rows[-1][2],
                     0.0, "fraction")

    # 360-degree ET tilt series with jitter: alignment, SIRT (50 iterations as in the seed), FSC
    s = synthetic.projections("tilt_series", seed=ctx.seed + 3, jitter_px=1.5, blur_px=1.0)
    _, shifts = recon.align_tilt_series(s.projections, s.geometry.angles_deg)
    theta = np.deg2rad(s.geometry.angles_deg)
    basis = np.stack([np.cos(theta), np.sin(theta)], 1)
    err = shifts - s.true_shifts
    col = err[:, 1] - basis @ np.linalg.lstsq(basis, err[:, 1], rcond=None)[0]
    ctx.quantity("ET alignment residual (rms, col)", float(np.sqrt(np.mean(col**2))), 0.0,
                 "pixel")
    ctx.quantity("ET alignment residual (rms, row)",
                 float(np.std(err[:, 0])), 0.0, "pixel")
    geom = s.geometry.with_shifts(shifts)
    vol = recon.reconstruct(s.projections, geom, s.volume_shape, s.voxel_size, "sirt", 50, 0.0)
    rows.append(("tilt_series", "sirt", rel_err(vol, ndi.gaussian_filter(s.phantom, 1.0))))
    ctx.quantity("ET SIRT relative error vs phantom", rows[-1][2], 0.0, "fraction")
    even, odd = recon.reconstruct_halves(s.projections, geom, s.volume_shape, s.voxel_size,
                                         "sirt", 50, 0.0)
    res = recon.fsc(even, odd, s.voxel_size)
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
def step_quantify(ctx: DemoContext) -> None:
    """Quantification on the truth label volumes: particle sizes and porosities (microCT),
    macroporosity, closed pores and pore sizes (nanoCT particle), mesopores (ET), the
    cross-scale porosity and interface sharpness, each next to its ground truth."""
    import cc3d
    from scipy.spatial import cKDTree

    from .core import quantify as q
    from .core.synthetic import AIR, PORE, RESIN, SOLID

    sample = ctx.data.get("correlative") or synthetic.correlative_particles(seed=ctx.seed)
    t = sample.truth

    # ---- microCT overview: particles by distance-transform watershed, ESD and porosity
    lab = np.asarray(t.microct_labels.data)
    sp = t.microct_labels.scale
    pore = lab == PORE
    particles = q.separate_particles(q.fill_holes((lab == SOLID) | pore), sp)
    table = q.particle_table(particles, sp, pore=pore, unit="um")
    ctx.table("quantify_microct_particles", table)
    truth_p = t.particles
    dist, idx = cKDTree(truth_p[["z_um", "y_um", "x_um"]].to_numpy()).query(
        table[["z_um", "y_um", "x_um"]].to_numpy())
    matched = dist < 2.0
    esd_err = table["esd_um"].to_numpy()[matched] - truth_p["esd_um"].to_numpy()[idx[matched]]
    por_err = (table["porosity"].to_numpy()[matched]
               - truth_p["macroporosity"].to_numpy()[idx[matched]])
    esd = q.size_distribution(table["esd_um"], bin_width=2.0, unit="um")
    esd_truth = q.size_distribution(truth_p["esd_um"], bin_width=2.0, unit="um")
    ctx.table("quantify_microct_esd_distribution", esd.table())
    ctx.quantity("microCT particles separated", len(table), len(truth_p), "count")
    ctx.quantity("microCT particles matched to truth", int(matched.sum()), len(truth_p), "count")
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

    # ---- nanoCT particle: macroporosity, closed pores, pore size distribution (MSI)
    nlab = np.asarray(t.nanoct_labels.data)
    nsp = t.nanoct_labels.scale
    centre_micro = truth_p.loc[truth_p["particle"] == t.target_particle,
                               ["z_um", "y_um", "x_um"]].to_numpy()[0]
    centre_nano = q_apply_inverse(t.nanoct_to_microct, centre_micro) / np.asarray(nsp)
    comp = cc3d.connected_components((nlab == SOLID) | (nlab == PORE), connectivity=6)
    target = comp == comp[tuple(np.clip(np.rint(centre_nano).astype(int), 0,
                                        np.array(nlab.shape) - 1))]
    npore = (nlab == PORE) & target
    macro = q.porosity(npore, target)
    closed = q.closed_pores(nlab == PORE, outside=(nlab == RESIN) | (nlab == AIR))
    closed_frac = np.count_nonzero((closed > 0) & target) / np.count_nonzero(npore)
    lt = q.local_thickness(npore, nsp)
    posd = q.size_distribution(lt[npore], bin_width=nsp[0], unit="um")
    ctx.table("quantify_nanoct_pore_size_distribution", posd.table())
    ctx.quantity("nanoCT particle macroporosity", macro, t.nanoct_macroporosity, "fraction")
    ctx.quantity("closed-pore fraction of pore volume", closed_frac, t.closed_pore_fraction,
                 "fraction")
    ctx.quantity("nanoCT PoSD mean (MSI, voxel-weighted)", posd.mean, None, "um")
    ctx.quantity("nanoCT PoSD std", posd.std, None, "um")
    if posd.fit is not None:
        ctx.quantity("nanoCT PoSD log-normal mode", posd.fit.mode, None, "um")

    # ---- ET: mesoporosity and mesopore sizes (MSI)
    elab = np.asarray(t.et_labels.data)
    esp = t.et_labels.scale
    meso_mask = elab == PORE
    meso = q.porosity(meso_mask)
    elt = q.local_thickness(meso_mask, esp)
    mesd = q.size_distribution(elt[meso_mask], bin_width=esp[0], unit="nm")
    ctx.table("quantify_et_pore_size_distribution", mesd.table())
    d_true = np.asarray(t.et_pore_diameters_nm)
    ctx.quantity("ET mesoporosity", meso, t.et_mesoporosity, "fraction")
    ctx.quantity("ET PoSD mean (truth: volume-weighted sphere diameter)", mesd.mean,
                 float(np.sum(d_true**4) / np.sum(d_true**3)), "nm")
    ctx.quantity("ET PoSD std", mesd.std, None, "nm")
    if mesd.fit is not None:
        ctx.quantity("ET PoSD log-normal mode", mesd.fit.mode, None, "nm")
    ctx.quantity("combined porosity (nanoCT macro + ET meso)", q.combine_porosity(macro, meso),
                 t.combined_porosity, "fraction")

    # ---- transport: diffusion through the ET matrix around the mesopores (insulating spheres);
    # reference: Maxwell / Hashin-Shtrikman, tau >= 1 + phi/2 (a lower bound, exact when dilute)
    tau = q.tortuosity_factor(elab == SOLID, esp, axis=0)
    ctx.quantity("ET matrix tortuosity factor (z; reference: lower bound 1 + phi/2)", tau.tau,
                 1.0 + meso / 2.0, "")
    ctx.quantity("ET matrix D_eff / D_bulk (z; reference: upper bound 2(1-phi)/(2+phi))",
                 tau.d_eff_ratio, 2.0 * (1.0 - meso) / (2.0 + meso), "")

    # ---- interface sharpness: proxigram width of a Gaussian edge is 1.349 sigma
    for name, vol, lab_v, key, dmax in (("microCT", sample.microct, lab, "microct_um", 5.0),
                                        ("nanoCT", sample.nanoct, nlab, "nanoct_um", 0.5)):
        p = q.proxigram(np.asarray(vol.data), lab_v == SOLID, vol.scale, dmax, unit="um")
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
        ax.bar(c, posd.fraction, width=np.diff(posd.edges), color="0.6")
        if posd.fit is not None:
            ax.plot(c, posd.fit.density(c) * np.diff(posd.edges), "r-",
                    label=f"log-normal, mode {posd.fit.mode:.2f} um")
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


def q_apply_inverse(matrix: np.ndarray, point: np.ndarray) -> np.ndarray:
    """Map a point through the inverse of a 4x4 homogeneous matrix."""
    return synthetic.apply_matrix(np.linalg.inv(matrix), point)[0]


#: The demo's steps, in order. Capability issues append theirs.
STEPS: list[tuple[str, Callable[[DemoContext], None]]] = [
    ("samples", step_samples),
    ("reconstruct", step_reconstruct),
    ("register", step_register),
    ("classify", step_classify),
    ("quantify", step_quantify),
]


# ============================================================================ runner


def run_demo(out: str | Path, seed: int = 0, progress: ProgressCallback | None = None) -> DemoReport:
    """Run every step of :data:`STEPS`, writing tables, ``summary.csv`` and ``report.png``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ctx = DemoContext(out=out, seed=seed)
    for i, (name, step) in enumerate(STEPS):
        ctx.step = name
        start = time.perf_counter()
        try:
            step(ctx)
        except Exception as exc:
            raise ValueError(f"demo step '{name}' failed: {exc}") from exc
        ctx.timings[name] = time.perf_counter() - start
        report(progress, i + 1, len(STEPS))
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
