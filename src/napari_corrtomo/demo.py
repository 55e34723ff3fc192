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
