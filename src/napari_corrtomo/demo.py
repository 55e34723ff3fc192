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


def step_fib(ctx: DemoContext) -> None:
    """FIB slices: ruler-mark thicknesses vs truth; repositioned + interpolated volumes vs truth."""
    from .core import fib as F

    sample = ctx.data.get("fib") or synthetic.fib_sem_stack(seed=ctx.seed)
    ruler = sample.ruler
    # only what a user knows about the ruler: angle, pixel size, band rows
    markers = F.RulerMarkers(angle_deg=ruler.angle_deg, pixel_size=ruler.pixel_size_nm,
                             rows=(0, ruler.band_rows))
    result = F.measure_thickness(sample.image, markers)
    true_t = sample.thickness_nm
    err = result.thickness_nm[:-1] - true_t[:-1]
    ctx.quantity("ruler thickness RMS error", float(np.sqrt(np.mean(err**2))), 0.0, "nm")
    ctx.quantity("ruler mean thickness", float(np.mean(result.thickness_nm[:-1])),
                 float(np.mean(true_t[:-1])), "nm")
    ctx.quantity("ruler flagged slices", len(result.flagged), 0, "count")
    table = result.table.assign(true_thickness_nm=true_t)
    ctx.table("fib_thickness", table)

    # the electrode's active material, repositioned on the 2.5 nm grid of the truth
    grid = sample.fine_labels.scale[0]
    band = ruler.band_rows
    am = sample.labels.data[:, band:, :64] == synthetic.FIB_AM
    fine = sample.fine_labels.data[:, :, :64] == synthetic.FIB_AM
    for label, t in (("measured", result.thickness_nm),
                     ("constant (target)", np.full(len(true_t), sample.channels[0].scale[0]))):
        vol, known = F.reposition(am, t, grid)
        out = F.interpolate(vol, known, "shape")
        n = min(len(out), int(np.round(sample.slice_z_nm[-1] / grid)) + 1)
        m = F.metrics(out[:n], fine[:n])
        ctx.quantity(f"electrode AM, thickness {label}: MP", m["mp_percent"], 0.0, "%")

    # HNPG-like structure (2.5 nm voxels, 10 nm slices): ML inpainting vs nearest/cubic
    truth_vol = synthetic.hierarchical_leveled_wave((112, 64, 64), 2.5, seed=ctx.seed + 500)
    mimic = synthetic.fib_mimic(truth_vol, 2.5, 10.0, 4.0, seed=ctx.seed + 500)
    vol, known = F.reposition(mimic.stack, mimic.thickness_nm, 2.5)
    rows = []
    for method in ("nearest", "cubic", "ml"):
        m = F.metrics(F.interpolate(vol, known, method), mimic.truth)
        rows.append({"method": method, **m})
        ctx.quantity(f"HNPG {method}: MP", m["mp_percent"], 0.0, "%")
        ctx.quantity(f"HNPG {method}: MGP", m["mgp_percent"], 0.0, "%")
        ctx.quantity(f"HNPG {method}: MDS", m["mds"], 1.0, "")
    ctx.table("fib_interpolation", pd.DataFrame(rows))

    def draw(ax):
        ax.plot(true_t[:-1], result.thickness_nm[:-1], "o", ms=3, color="0.3")
        lim = (0, float(np.max(true_t)) * 1.1)
        ax.plot(lim, lim, "-", color="tab:red", lw=0.8)
        ax.set_xlabel("true slice thickness (nm)")
        ax.set_ylabel("from ruler marks (nm)")

    ctx.panel("FIB: slice thickness from the ruler", draw)


#: The demo's steps, in order. Capability issues append theirs.
STEPS: list[tuple[str, Callable[[DemoContext], None]]] = [
    ("samples", step_samples),
    ("fib", step_fib),
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
