"""Transport descriptors of one phase of a segmented volume.

Four measures of how well a phase (usually the pores) conducts, all on a binary
``mask`` (True/1 = the phase) with the voxel size ``spacing`` (anisotropic
allowed) and one transport ``axis``:

- :func:`tortuosity_factor` -- steady-state diffusion with TauFactor's
  definition ``tau = eps * D_bulk / D_eff`` (Scharf et al. eq. 1; Cooper et
  al. 2016), solved by conjugate gradients preconditioned with an aggregation
  multigrid on the finite-volume Laplacian of the conducting voxels only.
- :func:`geodesic_tortuosity` -- the distribution of shortest-path length
  through the phase from the inlet face to a depth ``d``, divided by ``d``
  (Osenberg et al., 2023, Fig. 7a).
- :func:`intrusion_curve` -- the fraction of the phase that spheres of radius
  ``r`` reach from the inlet (simulated mercury intrusion, MIP-PSD) next to the
  fraction they cover anywhere (continuous pore size distribution, c-PSD).
- :func:`constrictivity` -- ``beta = (r_min / r_max)**2`` with ``r_min`` the
  median radius of the MIP-PSD and ``r_max`` that of the c-PSD (Münch & Holzer
  2008; Holzer et al. 2013).

Lengths are in the unit of ``spacing``; table columns carry the unit given by
``unit`` in their names. Arrays are (z, y, x) (2D (y, x) works too) and
``axis`` counts in that order. The equations, boundary conditions and
conventions are in ``docs/transport.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from .._checks import as_mask, check_sample, check_spacing
from ..backend import resolve_backend
from ..memory import check_memory
from ..progress import ProgressCallback, report, scaled
from ..units import normalize_unit
from ._multigrid import Hierarchy, grid_system, pcg_energy

__all__ = ["TortuosityResult", "tortuosity_factor", "tortuosity_table"]

INLETS = ("low", "high")


# =========================================================================== input checks


def check_axis(axis: Any, ndim: int) -> int:
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        raise ValueError(f"axis must be an integer in [0, {ndim - 1}], got {axis!r}")
    if not -ndim <= int(axis) < ndim:
        raise ValueError(
            f"axis {axis} is out of range for a {ndim}D volume; use 0..{ndim - 1} "
            f"({'z, y, x' if ndim == 3 else 'y, x'})"
        )
    return int(axis) % ndim


def check_inlet(inlet: str) -> str:
    if inlet not in INLETS:
        raise ValueError(f"inlet must be one of {INLETS}, got {inlet!r}")
    return inlet


def face(ndim: int, axis: int, index: int) -> tuple:
    sl: list[Any] = [slice(None)] * ndim
    sl[axis] = index
    return tuple(sl)


def orient(phase: np.ndarray, axis: int, inlet: str) -> np.ndarray:
    """View of ``phase`` with the transport axis first and the inlet at index 0."""
    moved = np.moveaxis(phase, axis, 0)
    return moved[::-1] if inlet == "high" else moved


# =========================================================================== tortuosity factor


@dataclass(frozen=True)
class TortuosityResult:
    """Steady-state diffusion through one phase along one axis.

    Attributes
    ----------
    axis
        Transport axis (0 = z for (z, y, x) volumes).
    tau
        Tortuosity factor ``eps * D_bulk / D_eff`` (dimensionless, >= ... ~1);
        ``inf`` when no cluster of the phase connects the two faces.
    porosity
        ``eps``: volume fraction of the whole phase (isolated pores included,
        as in TauFactor) in the array, or in the ``sample`` given.
    percolating_fraction
        Fraction of the phase volume in face-connected clusters touching both
        faces (the voxels that conduct).
    d_eff_ratio
        ``D_eff / D_bulk`` (dimensionless).
    flux
        Total steady-state flow through the sample for ``D_bulk = 1`` and a
        concentration difference of 1, in the unit of ``spacing`` (3D; area /
        length). Multiply by ``D_bulk * delta_c`` for a physical flow.
    flux_in, flux_out
        The same flow summed over the inlet and outlet faces: a convergence
        check. They are first order in the field's error (the field is solved
        in single precision) and agree to about 1e-4; ``flux`` (the dissipated
        energy) is second order and accurate to about ``tol``.
    iterations
        Conjugate-gradient iterations.
    converged
        Whether the relative energy change fell below ``tol``.
    field
        Concentration (c = 1 at the inlet face, 0 at the outlet face) on the
        conducting voxels, ``NaN`` elsewhere; only with ``return_field=True``.
    """

    axis: int
    tau: float
    porosity: float
    percolating_fraction: float
    d_eff_ratio: float
    flux: float
    flux_in: float
    flux_out: float
    iterations: int
    converged: bool
    field: np.ndarray | None = field(default=None, repr=False, compare=False)

    def as_row(self, unit: str = "pixel") -> dict[str, Any]:
        """One table row; the flux column carries ``unit``."""
        u = normalize_unit(unit)
        return {
            "axis": self.axis,
            "tortuosity_factor": self.tau,
            "porosity": self.porosity,
            "percolating_fraction": self.percolating_fraction,
            "d_eff_ratio": self.d_eff_ratio,
            f"flux_{u}": self.flux,
            "flux_imbalance": (abs(self.flux_in - self.flux_out) / self.flux
                               if self.flux > 0 else 0.0),
            "iterations": self.iterations,
            "converged": self.converged,
        }


def tortuosity_factor(
    mask: Any,
    spacing: float | Sequence[float] = 1.0,
    axis: int = 0,
    *,
    tol: float = 1e-5,
    max_iter: int = 1000,
    return_field: bool = False,
    sample: Any | None = None,
    backend: str = "auto",
    progress: ProgressCallback | None = None,
) -> TortuosityResult:
    """Tortuosity factor of a phase from steady-state diffusion (TauFactor's definition).

    Solves Laplace's equation for the concentration ``c`` on the phase with
    ``c = 1`` on the face ``index 0`` of ``axis``, ``c = 0`` on the opposite face
    and no flux through the other faces and through the phase boundary, by a
    cell-centred finite-volume scheme (face conductance ``area / length`` between
    face-adjacent voxels; Dirichlet faces half a voxel from the first/last voxel
    centres). Then ``D_eff / D_bulk = Q * L / (A * 1)`` with ``Q`` the total flow,
    ``L`` the sample length along ``axis`` and ``A`` its cross-section, and
    ``tau = eps * D_bulk / D_eff`` with ``eps`` the volume fraction of the whole
    phase. Only clusters touching both faces conduct (6-connectivity); with none,
    ``tau = inf`` is reported.

    With ``sample``, the voxels off it (air around a particle, a band without data) are
    not part of the sample: they carry no flux, and ``eps`` and ``D_eff`` are the
    sample's (``eps`` over the sample's volume, ``A`` its mean cross-section, volume / L),
    so they match a porosity measured over the sample; ``tau`` does not change.

    Parameters
    ----------
    mask
        Binary array (z, y, x) or (y, x): True/1 = the conducting phase.
    spacing
        Voxel size per axis (a scalar means isotropic), any length unit.
    axis
        Transport direction (0 = z).
    tol
        Stop when one conjugate-gradient step lowers the dissipated energy (the
        flow estimate) by less than ``tol`` relative; the flow's error is then
        below about ``tol``.
    max_iter
        Iteration cap; ``converged`` is False when it is reached.
    return_field
        Also return the concentration field (float32, NaN off the conducting phase).
    sample
        Binary array of the sample (same shape, holding the phase); default: the whole
        array.
    backend
        ``"auto"``, ``"numpy"`` or ``"cupy"`` for the iterative solve (the
        multigrid set-up runs on the CPU).
    progress
        ``progress(done, total)`` between iterations; raise
        :class:`~napari_corrtomo.core.progress.Cancelled` from it to stop.

    Returns
    -------
    TortuosityResult
        ``tau``, ``porosity`` (eps), ``d_eff_ratio`` (D_eff / D_bulk), ``flux`` ...

    Raises
    ------
    ValueError
        Non-binary or empty mask, bad ``spacing`` or ``axis``.
    """
    xp_name = resolve_backend(backend, "transport.tortuosity")
    if xp_name == "numpy":  # the CuPy solve holds its arrays on the GPU
        check_memory("tortuosity factor", np.shape(mask))
    phase = as_mask(mask, ndim=(2, 3)).copy()
    ndim = phase.ndim
    spacing_t = check_spacing(spacing, ndim)
    ax = check_axis(axis, ndim)
    if not (tol > 0 and math.isfinite(tol)):
        raise ValueError(f"tol must be a positive number, got {tol!r}")
    if int(max_iter) < 1:
        raise ValueError(f"max_iter must be at least 1, got {max_iter!r}")

    n_sample = phase.size if sample is None else int(np.count_nonzero(
        check_sample(sample, phase)))
    eps = int(np.count_nonzero(phase)) / n_sample
    conducting = _percolating(phase, ax)
    n_cond = int(np.count_nonzero(conducting))
    report(progress, 1, 100)
    if n_cond == 0:
        field_out = np.full(phase.shape, np.nan, np.float32) if return_field else None
        report(progress, 100, 100)
        return TortuosityResult(ax, math.inf, eps, 0.0, 0.0, 0.0, 0.0, 0.0, 0, True, field_out)

    grid = grid_system(conducting, spacing_t, ax)
    hierarchy = Hierarchy(grid, xp_name)
    report(progress, 10, 100)
    x0 = 1.0 - (grid.coords[:, ax] + 0.5) / phase.shape[ax]  # linear profile as first guess
    solve_progress = scaled(progress, 10, 100, 100)
    x, iterations, converged = pcg_energy(hierarchy, grid, x0, tol, int(max_iter),
                                           solve_progress)
    del hierarchy
    flux, flux_in, flux_out = grid.flows(x)
    length = phase.shape[ax] * spacing_t[ax]
    area = n_sample * math.prod(spacing_t) / length  # the sample's mean cross-section
    d_eff = flux * length / area
    tau = eps / d_eff if d_eff > 0 else math.inf
    field_out = None
    if return_field:
        field_out = np.full(phase.shape, np.nan, np.float32)
        field_out.reshape(-1)[grid.lin] = x
    report(progress, 100, 100)
    return TortuosityResult(ax, float(tau), eps, n_cond / int(phase.sum()), float(d_eff),
                            float(flux), float(flux_in), float(flux_out), iterations, converged,
                            field_out)


def tortuosity_table(
    mask: Any,
    spacing: float | Sequence[float] = 1.0,
    axes: Sequence[int] | None = None,
    *,
    unit: str = "pixel",
    tol: float = 1e-5,
    max_iter: int = 1000,
    backend: str = "auto",
    progress: ProgressCallback | None = None,
) -> pd.DataFrame:
    """:func:`tortuosity_factor` along several axes (default all), one row per axis.

    Columns: ``axis, tortuosity_factor, porosity, percolating_fraction,
    d_eff_ratio, flux_<unit>, flux_imbalance, iterations, converged``.
    """
    phase = as_mask(mask, ndim=(2, 3)).copy()
    axes = tuple(range(phase.ndim)) if axes is None else tuple(axes)
    if not axes:
        raise ValueError("axes is empty; give at least one axis, e.g. axes=(0,)")
    rows = []
    for i, ax in enumerate(axes):
        sub = scaled(progress, i * 100, (i + 1) * 100, 100 * len(axes))
        res = tortuosity_factor(phase, spacing, ax, tol=tol, max_iter=max_iter,
                                backend=backend, progress=sub)
        rows.append(res.as_row(unit))
    return pd.DataFrame(rows)


def _percolating(phase: np.ndarray, axis: int) -> np.ndarray:
    """Voxels of face-connected clusters that touch both faces normal to ``axis``."""
    labels, n = ndi.label(phase)  # face connectivity: the finite-volume stencil's
    if n == 0:
        return np.zeros(phase.shape, bool)
    first = np.unique(labels[face(phase.ndim, axis, 0)])
    last = np.unique(labels[face(phase.ndim, axis, -1)])
    keep = np.intersect1d(first, last)
    keep = keep[keep > 0]
    if keep.size == 0:
        return np.zeros(phase.shape, bool)
    lut = np.zeros(n + 1, bool)
    lut[keep] = True
    return lut[labels]
