"""Pathways through one phase: geodesic tortuosity, intrusion and constrictivity.

- :func:`geodesic_tortuosity` -- the distribution of shortest-path length through
  the phase from the inlet face to a depth ``d``, divided by ``d`` (Osenberg et al.,
  2023, Fig. 7a).
- :func:`intrusion_curve` -- the fraction of the phase that spheres of radius ``r``
  reach from the inlet (simulated mercury intrusion, MIP-PSD) next to the fraction
  they cover anywhere (continuous pore size distribution, c-PSD).
- :func:`constrictivity` -- ``beta = (r_min / r_max)**2`` with ``r_min`` the median
  radius of the MIP-PSD and ``r_max`` that of the c-PSD (Münch & Holzer 2008;
  Holzer et al. 2013).

Inputs and conventions as in :mod:`.transport`; see ``docs/transport.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from .._checks import SettingError, as_mask, check_spacing
from ..progress import ProgressCallback, report
from ..units import normalize_unit
from .transport import check_axis, check_inlet, orient

__all__ = ["ConstrictivityResult", "GeodesicTortuosity", "constrictivity", "geodesic_tortuosity",
           "intrusion_curve"]

#: where geodesic path lengths are measured from
REFERENCES = ("inlet", "depth")

# =========================================================================== geodesic tortuosity


@dataclass(frozen=True)
class GeodesicTortuosity:
    """Geodesic tortuosity distributions, one per depth.

    Attributes
    ----------
    axis, inlet
        Transport axis and the face paths start from (``"low"`` = index 0).
    reference
        ``"inlet"``: one value per phase voxel of the inlet face (shortest path
        from it to any phase voxel at depth d; Osenberg et al. 2023). ``"depth"``: one value
        per phase voxel at depth d (shortest path to it from the inlet face).
    depths
        Depths actually used (voxel-centre distances from the inlet slice, in
        the unit of ``spacing``): the requested ones rounded to whole slices.
    values
        Per depth, the geodesic tortuosity (path length / depth) of every
        voxel that has a path; unreachable voxels are left out.
    n_voxels
        Per depth, the number of phase voxels on the reference face/slice.
    """

    axis: int
    inlet: str
    reference: str
    depths: np.ndarray
    values: list[np.ndarray]
    n_voxels: np.ndarray

    @property
    def reached_fraction(self) -> np.ndarray:
        """Per depth, the fraction of reference voxels with a path."""
        counts = np.array([v.size for v in self.values], float)
        return np.divide(counts, self.n_voxels, out=np.zeros_like(counts),
                         where=self.n_voxels > 0)

    def table(self, unit: str = "pixel") -> pd.DataFrame:
        """Summary per depth: ``depth_<unit>, n_paths, reached_fraction, mean, std,
        median, p05, p95, min, max`` of the geodesic tortuosity."""
        u = normalize_unit(unit)
        rows = []
        for depth, vals, frac in zip(self.depths, self.values, self.reached_fraction, strict=True):
            stats = dict(mean=np.nan, std=np.nan, median=np.nan, p05=np.nan, p95=np.nan,
                         min=np.nan, max=np.nan)
            if vals.size:
                stats = dict(mean=vals.mean(), std=vals.std(), median=np.median(vals),
                             p05=np.percentile(vals, 5), p95=np.percentile(vals, 95),
                             min=vals.min(), max=vals.max())
            rows.append({f"depth_{u}": float(depth), "axis": self.axis, "reference": self.reference,
                         "n_paths": int(vals.size), "reached_fraction": float(frac),
                         **{k: float(v) for k, v in stats.items()}})
        return pd.DataFrame(rows)


def geodesic_tortuosity(
    mask: Any,
    spacing: float | Sequence[float] = 1.0,
    depths: float | Sequence[float] = (),
    axis: int = 0,
    *,
    inlet: str = "low",
    reference: str = "inlet",
    progress: ProgressCallback | None = None,
    unit: str | None = None,
) -> GeodesicTortuosity:
    """Distribution of shortest-path length through the phase to a depth, over the depth.

    For every depth ``d`` the target set is the phase in the slice whose centre
    lies ``d`` from the centre of the inlet slice (``d`` rounded to whole
    slices). With ``reference="inlet"`` (Osenberg et al. 2023) each phase
    voxel of the inlet slice gets ``L / d`` with ``L`` the length of its shortest
    path through the phase to any voxel of the target set; with
    ``reference="depth"`` each target voxel gets the length of its shortest
    path from the inlet slice, over ``d``. Straight channels give 1.

    Paths are minimum-length chains of voxel-centre steps to any of the 26
    neighbours inside the phase, each step weighed by its Euclidean length with
    the anisotropic ``spacing`` (Dijkstra; ``skimage.graph.MCP_Geometric``).
    Such chains are exact along the axes and the face and space diagonals; in
    open space at other angles they are up to 8.2 % (in a plane) and 12.8 % (in
    3D) longer than the straight line (see docs/transport.md).

    Parameters
    ----------
    mask
        Binary array (z, y, x) or (y, x): True/1 = the phase the paths run in.
    spacing
        Voxel size per axis, any length unit.
    depths
        One or more depths, in the unit of ``spacing``; each must be at least
        one voxel and at most the sample length minus one voxel along ``axis``.
    axis
        Transport direction (0 = z).
    inlet
        ``"low"`` (paths start at index 0 of ``axis``) or ``"high"``.
    reference
        ``"inlet"`` (one value per inlet voxel) or ``"depth"`` (one value per
        voxel at depth d).
    progress
        ``progress(done, total)`` after each depth; raise ``Cancelled`` to stop.
    unit
        Optional unit of ``spacing`` and ``depths``, for the messages only.

    Returns
    -------
    GeodesicTortuosity
        ``values[i]``: array of path length / depth for depth ``depths[i]``;
        ``table(unit)`` summarises them.
    """
    from skimage.graph import MCP_Geometric

    phase = as_mask(mask, ndim=(2, 3)).copy()
    ndim = phase.ndim
    spacing_t = check_spacing(spacing, ndim)
    ax = check_axis(axis, ndim)
    check_inlet(inlet)
    if reference not in REFERENCES:
        raise ValueError(f"reference must be one of {REFERENCES}, got {reference!r}")
    depth_arr = np.atleast_1d(np.asarray(depths, dtype=float))
    if depth_arr.ndim != 1 or depth_arr.size == 0:
        raise ValueError("depths is empty; give one or more depths in the unit of spacing")
    if not np.all(np.isfinite(depth_arr)) or np.any(depth_arr <= 0):
        raise ValueError(f"depths must be positive and finite, got {depth_arr.tolist()}")
    step = spacing_t[ax]
    n_axis = phase.shape[ax]
    slices = np.rint(depth_arr / step).astype(int)
    bad = (slices < 1) | (slices > n_axis - 1)
    if np.any(bad):
        u = f" {normalize_unit(unit)}" if unit else " (the unit of spacing)"
        shown = ", ".join(f"{v:g}" for v in depth_arr[bad])
        raise SettingError(
            f"$depths {shown}{u} do not fit along axis {ax}: with a voxel of "
            f"{step:g}{u} and {n_axis} slices, depths must lie between {step:g} and "
            f"{(n_axis - 1) * step:g}{u} (voxel-centre distance from the inlet slice)",
            depths="depths")

    oriented = orient(phase, ax, inlet)  # axis first, inlet at 0
    samp = (step,) + tuple(s for i, s in enumerate(spacing_t) if i != ax)
    total = len(slices) + (1 if reference == "depth" else 0)
    values: list[np.ndarray] = []
    n_voxels = []
    if reference == "depth":
        costs = np.where(oriented[: slices.max() + 1], 1.0, np.inf)
        starts = [(0,) + tuple(p) for p in np.argwhere(oriented[0])]
        dist = _geodesic_from(MCP_Geometric, costs, starts, samp)
        report(progress, 1, total)
        for i, k in enumerate(slices):
            target = oriented[k]
            d = dist[k][target]
            values.append(d[np.isfinite(d)] / (k * step))
            n_voxels.append(int(target.sum()))
            report(progress, i + 2, total)
    else:
        starts_mask = oriented[0]
        for i, k in enumerate(slices):
            costs = np.where(oriented[: k + 1], 1.0, np.inf)
            ends = [(k,) + tuple(p) for p in np.argwhere(oriented[k])]
            dist = _geodesic_from(MCP_Geometric, costs, ends, samp)
            d = dist[0][starts_mask]
            values.append(d[np.isfinite(d)] / (k * step))
            n_voxels.append(int(starts_mask.sum()))
            report(progress, i + 1, total)
    return GeodesicTortuosity(ax, inlet, reference, slices * step, values, np.asarray(n_voxels))


def _geodesic_from(mcp_cls, costs: np.ndarray, starts: list, sampling: tuple) -> np.ndarray:
    """Geodesic (26-neighbour, Euclidean-step) distance from ``starts`` through finite costs."""
    if not starts:
        return np.full(costs.shape, np.inf)
    mcp = mcp_cls(costs, fully_connected=True, sampling=sampling)
    dist, _ = mcp.find_costs(starts)
    dist = np.asarray(dist, float)
    dist[~np.isfinite(costs)] = np.inf
    return dist


# =========================================================================== intrusion


class _Intrusion:
    """Sphere intrusion into the phase from the inlet face (shared by the curve and beta).

    A closed ball of radius r fits at a voxel centre when no non-phase voxel
    centre lies within r of it (``dt > r``, ``dt`` the Euclidean distance to the
    nearest non-phase voxel with ``spacing``; outside the volume counts as
    phase, so the inlet face opens onto a reservoir). ``covered(r)`` is the union
    of all fitting balls (the morphological opening: c-PSD); ``intruded(r)``
    keeps the balls whose centres are face-connected to the inlet slice through
    other fitting centres (MIP-PSD).
    """

    def __init__(self, phase: np.ndarray, spacing: tuple[float, ...]):
        self.phase = phase
        self.spacing = spacing
        self.volume = int(phase.sum())
        if phase.all():
            self.dt = np.full(phase.shape, np.inf)
        else:
            self.dt = ndi.distance_transform_edt(phase, sampling=spacing)
        finite = np.isfinite(self.dt)
        extent = max(s * n for s, n in zip(spacing, phase.shape, strict=True))
        self.max_radius = float(self.dt[finite].max()) if finite.any() else float(extent)

    def _fraction(self, centres: np.ndarray, radius: float) -> float:
        if not centres.any():
            return 0.0
        if radius <= 0:
            covered = centres
        else:
            covered = ndi.distance_transform_edt(~centres, sampling=self.spacing) <= radius
        return float(np.count_nonzero(covered & self.phase)) / self.volume

    def covered(self, radius: float) -> float:
        return self._fraction(self.dt > radius, radius)

    def intruded(self, radius: float) -> float:
        centres = self.dt > radius
        labels, n = ndi.label(centres)
        if n == 0:
            return 0.0
        entry = np.unique(labels[0])
        entry = entry[entry > 0]
        lut = np.zeros(n + 1, bool)
        lut[entry] = True
        return self._fraction(lut[labels], radius)

    def median_radius(self, curve: str, rtol: float) -> float:
        """Largest r with ``curve(r) >= 0.5`` by bisection (0 when even r = 0 gives less)."""
        f = self.covered if curve == "covered" else self.intruded
        if f(0.0) < 0.5:
            return 0.0
        lo, hi = 0.0, self.max_radius
        if f(hi) >= 0.5:
            return hi
        while hi - lo > rtol:
            mid = 0.5 * (lo + hi)
            if f(mid) >= 0.5:
                lo = mid
            else:
                hi = mid
        return 0.5 * (lo + hi)


def _intrusion_setup(mask, spacing, axis, inlet):
    phase = as_mask(mask, ndim=(2, 3)).copy()
    spacing_t = check_spacing(spacing, phase.ndim)
    ax = check_axis(axis, phase.ndim)
    check_inlet(inlet)
    oriented = np.ascontiguousarray(orient(phase, ax, inlet))
    samp = (spacing_t[ax],) + tuple(s for i, s in enumerate(spacing_t) if i != ax)
    return phase, spacing_t, ax, _Intrusion(oriented, samp)


def _radii(radii, intrusion: _Intrusion) -> np.ndarray:
    if radii is None:
        return np.linspace(0.0, intrusion.max_radius, 17)
    arr = np.atleast_1d(np.asarray(radii, dtype=float))
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError("radii is empty; give one or more sphere radii in the unit of spacing")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"radii must be finite and >= 0, got {arr.tolist()}")
    return arr


def intrusion_curve(
    mask: Any,
    spacing: float | Sequence[float] = 1.0,
    radii: float | Sequence[float] | None = None,
    axis: int = 0,
    *,
    inlet: str = "low",
    unit: str = "pixel",
    progress: ProgressCallback | None = None,
) -> pd.DataFrame:
    """Fraction of the phase reached by spheres of radius r intruding from the inlet face.

    Parameters
    ----------
    mask
        Binary array (z, y, x) or (y, x): True/1 = the phase (pores).
    spacing
        Voxel size per axis, any length unit.
    radii
        Sphere radii in the unit of ``spacing`` (default: 17 radii from 0 to the
        largest inscribed radius).
    axis, inlet
        Intrusion enters through the ``inlet`` face (``"low"`` = index 0) of ``axis``.
    unit
        Unit name for the radius column.
    progress
        ``progress(done, total)`` after each radius; raise ``Cancelled`` to stop.

    Returns
    -------
    pandas.DataFrame
        ``radius_<unit>``; ``intruded_fraction`` (MIP-PSD: fraction of the phase
        volume filled by spheres of radius r that enter through the inlet face
        and move through the phase, Osenberg et al. 2023, Fig. 7b); ``covered_fraction``
        (c-PSD: fraction covered by spheres of radius r that fit anywhere).
        ``radius = 0`` gives the fraction connected to the inlet and 1.
    """
    _phase_arr, _sp, _ax, intrusion = _intrusion_setup(mask, spacing, axis, inlet)
    r = _radii(radii, intrusion)
    u = normalize_unit(unit)
    intruded, covered = [], []
    for i, radius in enumerate(r):
        intruded.append(intrusion.intruded(float(radius)))
        covered.append(intrusion.covered(float(radius)))
        report(progress, i + 1, r.size)
    return pd.DataFrame({f"radius_{u}": r, "intruded_fraction": intruded,
                         "covered_fraction": covered})


@dataclass(frozen=True)
class ConstrictivityResult:
    """Constrictivity ``beta = (r_min / r_max)**2`` (Münch & Holzer 2008).

    ``r_max``: median radius of the c-PSD (radius at which spheres that fit
    anywhere cover half the phase volume); ``r_min``: median radius of the
    MIP-PSD (radius at which spheres intruding from the inlet fill half the
    phase volume; 0 when less than half is reachable at all, so beta = 0).
    Radii in the unit of ``spacing``.
    """

    beta: float
    r_min: float
    r_max: float
    axis: int
    inlet: str

    def as_row(self, unit: str = "pixel") -> dict[str, Any]:
        u = normalize_unit(unit)
        return {"axis": self.axis, "inlet": self.inlet, "constrictivity": self.beta,
                f"r_min_{u}": self.r_min, f"r_max_{u}": self.r_max}


def constrictivity(
    mask: Any,
    spacing: float | Sequence[float] = 1.0,
    axis: int = 0,
    *,
    inlet: str = "low",
    resolution: float | None = None,
    progress: ProgressCallback | None = None,
) -> ConstrictivityResult:
    """Constrictivity of the phase along ``axis`` from two sphere-size distributions.

    ``r_max`` is found by bisection as the largest radius whose fitting spheres
    cover at least half of the phase volume (c-PSD median), ``r_min`` as the
    largest radius whose spheres intruding through the ``inlet`` face fill at
    least half of it (MIP-PSD median); ``beta = (r_min / r_max)**2`` in [0, 1].
    A straight cylinder gives 1, bottlenecks lower it.

    Parameters
    ----------
    mask
        Binary array (z, y, x) or (y, x): True/1 = the phase (pores).
    spacing
        Voxel size per axis, any length unit.
    axis, inlet
        Intrusion direction and the face it enters through.
    resolution
        Bisection tolerance on the radii (default: 1/50 of the smallest voxel edge).
    progress
        ``progress(done, total)`` after each of the two radii; raise ``Cancelled`` to stop.
    """
    _phase_arr, spacing_t, ax, intrusion = _intrusion_setup(mask, spacing, axis, inlet)
    rtol = min(spacing_t) / 50.0 if resolution is None else float(resolution)
    if not (rtol > 0 and math.isfinite(rtol)):
        raise ValueError(f"resolution must be a positive length, got {resolution!r}")
    r_max = intrusion.median_radius("covered", rtol)
    report(progress, 1, 2)
    r_min = intrusion.median_radius("intruded", rtol)
    report(progress, 2, 2)
    beta = min((r_min / r_max) ** 2, 1.0) if r_max > 0 else 0.0
    return ConstrictivityResult(float(beta), float(r_min), float(r_max), ax, inlet)
