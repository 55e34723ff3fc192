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
  (Osenberg et al., seed 004, Fig. 7a).
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

import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from scipy import sparse
from scipy.sparse import csgraph
from scipy.sparse import linalg as sparse_linalg

from .._checks import as_mask, check_spacing
from ..backend import resolve_backend, to_host, xp_for
from ..progress import ProgressCallback, report, scaled
from ..units import normalize_unit

__all__ = [
    "ConstrictivityResult",
    "GeodesicTortuosity",
    "TortuosityResult",
    "constrictivity",
    "geodesic_tortuosity",
    "intrusion_curve",
    "tortuosity_factor",
    "tortuosity_table",
]

INLETS = ("low", "high")
REFERENCES = ("inlet", "depth")


# =========================================================================== input checks


def _axis(axis: Any, ndim: int) -> int:
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        raise ValueError(f"axis must be an integer in [0, {ndim - 1}], got {axis!r}")
    if not -ndim <= int(axis) < ndim:
        raise ValueError(
            f"axis {axis} is out of range for a {ndim}D volume; use 0..{ndim - 1} "
            f"({'z, y, x' if ndim == 3 else 'y, x'})"
        )
    return int(axis) % ndim


def _inlet(inlet: str) -> str:
    if inlet not in INLETS:
        raise ValueError(f"inlet must be one of {INLETS}, got {inlet!r}")
    return inlet


def _unit_suffix(unit: str) -> str:
    u = normalize_unit(unit)
    return "px" if u == "pixel" else u


def _face(ndim: int, axis: int, index: int) -> tuple:
    sl: list[Any] = [slice(None)] * ndim
    sl[axis] = index
    return tuple(sl)


def _oriented(phase: np.ndarray, axis: int, inlet: str) -> np.ndarray:
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
        as in TauFactor).
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
        u = _unit_suffix(unit)
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
    phase = as_mask(mask, ndim=(2, 3)).copy()
    ndim = phase.ndim
    spacing_t = check_spacing(spacing, ndim)
    ax = _axis(axis, ndim)
    if not (tol > 0 and math.isfinite(tol)):
        raise ValueError(f"tol must be a positive number, got {tol!r}")
    if int(max_iter) < 1:
        raise ValueError(f"max_iter must be at least 1, got {max_iter!r}")
    xp_name = resolve_backend(backend)

    eps = float(phase.mean())
    conducting = _percolating(phase, ax)
    n_cond = int(np.count_nonzero(conducting))
    report(progress, 1, 100)
    if n_cond == 0:
        field_out = np.full(phase.shape, np.nan, np.float32) if return_field else None
        report(progress, 100, 100)
        return TortuosityResult(ax, math.inf, eps, 0.0, 0.0, 0.0, 0.0, 0.0, 0, True, field_out)

    grid = _grid_system(conducting, spacing_t, ax)
    hierarchy = _Hierarchy(grid, xp_name)
    report(progress, 10, 100)
    x0 = 1.0 - (grid.coords[:, ax] + 0.5) / phase.shape[ax]  # linear profile as first guess
    solve_progress = scaled(progress, 10, 100, 100)
    x, iterations, converged = _pcg_energy(hierarchy, grid, x0, tol, int(max_iter),
                                           solve_progress)
    del hierarchy
    flux, flux_in, flux_out = grid.flows(x)
    length = phase.shape[ax] * spacing_t[ax]
    extent = [n * s for n, s in zip(phase.shape, spacing_t, strict=True)]
    area = math.prod(e for i, e in enumerate(extent) if i != ax)
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
    first = np.unique(labels[_face(phase.ndim, axis, 0)])
    last = np.unique(labels[_face(phase.ndim, axis, -1)])
    keep = np.intersect1d(first, last)
    keep = keep[keep > 0]
    if keep.size == 0:
        return np.zeros(phase.shape, bool)
    lut = np.zeros(n + 1, bool)
    lut[keep] = True
    return lut[labels]


@dataclass
class _Grid:
    """The finite-volume system ``A x = b`` on the conducting voxels.

    Unknowns are ordered red (even coordinate sum) then black: face neighbours
    always differ in colour, so ``A = [[D_R, -C], [-C^T, D_B]]`` with ``C`` the
    red-black conductances (``area / length`` per face). ``diag`` includes the
    Dirichlet conductances ``g_face`` of the inlet and outlet voxels, ``b`` the
    inlet ones times c = 1. The dissipated energy of a field ``x`` is
    ``x^T A x - 2 b^T x + const``; at the solution it equals the total flow.
    """

    shape: tuple[int, ...]
    n_red: int
    lin: np.ndarray  # flat voxel index of each unknown
    coords: np.ndarray  # (n, ndim) voxel coordinates of each unknown
    C: sparse.csr_matrix  # (n_red, n_black) conductances
    ei: np.ndarray  # edges: red unknown ...
    ej: np.ndarray  # ... black unknown (global numbering) ...
    w: np.ndarray  # ... conductance
    diag: np.ndarray
    b: np.ndarray
    inlet: np.ndarray
    outlet: np.ndarray
    g_face: float
    const: float

    def flows(self, x: np.ndarray) -> tuple[float, float, float]:
        """(energy = flow estimate, flow through the inlet face, through the outlet face)."""
        x = np.asarray(x, np.float64)
        nr = self.n_red
        ax_ = self.diag * x
        ax_[:nr] -= self.C @ x[nr:]
        ax_[nr:] -= self.C.T @ x[:nr]
        energy = _dot(np, x, ax_) - 2.0 * _dot(np, self.b, x) + self.const
        flux_in = self.g_face * float(np.sum(1.0 - x[self.inlet]))
        flux_out = self.g_face * float(np.sum(x[self.outlet]))
        return energy, flux_in, flux_out


def _grid_system(conducting: np.ndarray, spacing: tuple[float, ...], axis: int) -> _Grid:
    shape = conducting.shape
    ndim = conducting.ndim
    # a one-voxel frame of "no unknown" lets every neighbour lookup skip bounds checks
    padded_shape = tuple(n + 2 for n in shape)
    inner = (slice(1, -1),) * ndim
    parity = functools.reduce(
        np.add, np.ix_(*[(np.arange(n) & 1).astype(np.uint8) for n in shape])) & 1
    colour = np.full(padded_shape, 2, np.uint8)  # 0 red, 1 black, 2 nothing
    colour[inner] = np.where(conducting, parity, 2)
    del parity
    lin_red_p = np.flatnonzero(colour == 0)
    lin_black_p = np.flatnonzero(colour == 1)
    del colour
    n_red, n = lin_red_p.size, lin_red_p.size + lin_black_p.size
    # 32-bit indices while voxel numbers and the edge count (< 3 per voxel) fit
    itype = np.int32 if 3 * math.prod(padded_shape) < 2**31 - 1 else np.int64
    index = np.full(math.prod(padded_shape), -1, itype)
    index[lin_black_p] = np.arange(n_red, n, dtype=itype)
    strides = [math.prod(padded_shape[a + 1:]) for a in range(ndim)]
    cell = math.prod(spacing)
    # neighbour table of the red voxels: one column per direction (-z, +z, -y, +y, ...)
    table = np.empty((2 * ndim, n_red), itype)
    gvec = np.empty(2 * ndim)
    for a in range(ndim):
        for k, sign in enumerate((-1, 1)):
            np.take(index, lin_red_p + sign * strides[a], out=table[2 * a + k])
            gvec[2 * a + k] = cell / spacing[a] ** 2  # face area / centre distance
    del index
    table = table.T  # rows = red unknowns, so that masking keeps each row's entries together
    valid = table >= 0
    counts = valid.sum(axis=1)
    indptr = np.zeros(n_red + 1, itype)
    np.cumsum(counts, out=indptr[1:])
    ej = table[valid]
    w = np.broadcast_to(gvec, table.shape)[valid]
    diag_red = np.where(valid, gvec, 0.0).sum(axis=1)
    del table
    c_mat = sparse.csr_matrix((w, ej - itype(n_red), indptr), shape=(n_red, n - n_red))
    diag = np.concatenate([diag_red, np.bincount(ej - n_red, w, n - n_red)])
    ei = np.repeat(np.arange(n_red, dtype=itype), counts)
    coords = np.concatenate([np.stack(np.unravel_index(lin_red_p, padded_shape), axis=1),
                             np.stack(np.unravel_index(lin_black_p, padded_shape), axis=1)]) - 1
    del valid
    lin = np.ravel_multi_index(tuple(coords.T), shape)
    g_face = 2.0 * cell / spacing[axis] ** 2  # half a voxel to the Dirichlet face
    inlet = np.flatnonzero(coords[:, axis] == 0)
    outlet = np.flatnonzero(coords[:, axis] == shape[axis] - 1)
    diag[inlet] += g_face
    diag[outlet] += g_face
    b = np.zeros(n)
    b[inlet] = g_face
    return _Grid(shape, n_red, lin, coords, c_mat, ei, ej, w, diag, b, inlet, outlet, g_face,
                 g_face * inlet.size)


class _Level:
    """One grid of the multigrid hierarchy, unknowns red then black (see :class:`_Grid`).

    The voxels form a bipartite graph and so do the aggregates of every coarser
    level (they only couple face-adjacent blocks), so a red-black Gauss-Seidel
    sweep costs one product with ``C`` and one with ``C^T``.
    """

    def __init__(self, n_red: int, c_mat, diag: np.ndarray, xp, sp_mod, dtype):
        self.n = diag.size
        self.n_red = n_red
        c = c_mat.astype(dtype)
        self.C = c if xp is np else sp_mod.csr_matrix(c)
        self.Ct = self.C.T  # CSC view: no copy
        self.d = xp.asarray(diag.astype(dtype))
        self.d_red = self.d[:n_red]
        self.dinv_red = xp.asarray((1.0 / diag[:n_red]).astype(dtype))
        self.dinv_black = xp.asarray((1.0 / diag[n_red:]).astype(dtype))
        self.P_red = None  # red rows of the prolongation to the next level
        self.R_red = None  # their transpose (restricts a residual that is zero on black)
        self.solve = None  # exact solve on the coarsest level

    def matvec(self, x):
        nr = self.n_red
        y = self.d * x
        y[:nr] -= self.C @ x[nr:]
        y[nr:] -= self.Ct @ x[:nr]
        return y


class _Hierarchy:
    """Aggregation multigrid for the conductance Laplacian (used as a CG preconditioner).

    Aggregates are the face-connected pieces of the conducting voxels inside
    2 x 2 x 2 blocks; the coarse operator is the Galerkin product ``P^T A P`` with
    piecewise-constant ``P`` -- again a conductance network on a grid, coarsened
    the same way until at most ``coarse_size`` unknowns remain, which are solved
    exactly. Smoothing is one symmetric red-black Gauss-Seidel sweep; the
    coarse correction is scaled by ``alpha`` (piecewise-constant Galerkin
    operators are about twice too stiff) and, below the finest level, the coarse
    problem is visited ``gamma`` times (W-cycle: plain aggregation needs it to keep
    the iteration count flat; it costs about a third of a fine-level sweep).
    """

    alpha = 1.8
    gamma = 2
    coarse_size = 1500
    max_levels = 40

    def __init__(self, grid: _Grid, backend: str, dtype=np.float32):
        self.xp = xp = xp_for(backend)
        if xp is np:
            sp_mod = sparse
        else:  # pragma: no cover - needs a GPU
            import cupyx.scipy.sparse as sp_mod
        self.dtype = dtype
        self.levels: list[_Level] = []
        n_red, c_mat, diag = grid.n_red, grid.C, grid.diag
        ei, ej, w, coords = grid.ei, grid.ej, grid.w, grid.coords.astype(np.int64)
        pieces = _voxel_pieces(coords, grid.shape)
        aggs = []
        while True:
            self.levels.append(_Level(n_red, c_mat, diag, xp, sp_mod, dtype))
            if diag.size <= self.coarse_size or len(self.levels) == self.max_levels:
                break
            coarse = _coarsen(n_red, diag, ei, ej, w, coords, pieces)
            pieces = None
            if coarse is None:  # nothing left to merge (separate clusters)
                break
            agg, n_red, c_mat, diag, ei, ej, w, coords = coarse
            aggs.append(agg)
        last = self.levels[-1]
        nr = last.n_red
        full = sparse.bmat([[sparse.diags(diag[:nr]), -c_mat],
                            [-c_mat.T, sparse.diags(diag[nr:])]], format="csc")
        last.solve = sparse_linalg.factorized(full)
        for fine, coarse_level, agg in zip(self.levels[:-1], self.levels[1:], aggs, strict=True):
            p = sparse.csr_matrix((np.ones(fine.n_red, dtype), agg[: fine.n_red],
                                   np.arange(fine.n_red + 1)), shape=(fine.n_red, coarse_level.n))
            fine.P_red = p if xp is np else sp_mod.csr_matrix(p)
            rt = p.T.tocsr()
            fine.R_red = rt if xp is np else sp_mod.csr_matrix(rt)

    @property
    def fine(self) -> _Level:
        return self.levels[0]

    def matvec(self, x):
        return self.fine.matvec(x)

    def precondition(self, r):
        return self._vcycle(0, r)

    def schur(self, v):
        """Product with the red Schur complement ``S = D_R - C D_B^-1 C^T`` of the fine level."""
        fine = self.fine
        return fine.d_red * v - fine.C @ (fine.dinv_black * (fine.Ct @ v))

    def precondition_red(self, r_red):
        """Red part of one V-cycle for ``(r_red, 0)``: the red-red block of the V-cycle
        operator, an SPD approximation of ``S^-1`` (the red-red block of ``A^-1``)."""
        xp = self.xp
        fine = self.fine
        if fine.solve is not None:
            zeros = xp.zeros(fine.n - fine.n_red, dtype=self.dtype)
            return self._vcycle(0, xp.concatenate([r_red, zeros]))[: fine.n_red]
        x_red = fine.dinv_red * r_red
        x_black = fine.dinv_black * (fine.Ct @ x_red)
        res_red = r_red - fine.d_red * x_red + fine.C @ x_black
        x_red += self.alpha * (fine.P_red @ self._vcycle(1, fine.R_red @ res_red))
        x_black = fine.dinv_black * (fine.Ct @ x_red)
        return fine.dinv_red * (r_red + fine.C @ x_black)

    def _vcycle(self, k: int, r):
        xp = self.xp
        level = self.levels[k]
        if level.solve is not None:
            host = np.asarray(to_host(r), np.float64)
            return xp.asarray(level.solve(host).astype(self.dtype))
        nr = level.n_red
        r_red, r_black = r[:nr], r[nr:]
        # pre-smoothing: red then black (from x = 0); the black equations then hold exactly
        x_red = level.dinv_red * r_red
        x_black = level.dinv_black * (r_black + level.Ct @ x_red)
        res_red = r_red - level.d_red * x_red + level.C @ x_black
        r_coarse = level.R_red @ res_red
        e = self._vcycle(k + 1, r_coarse)
        coarse = self.levels[k + 1]
        if k >= 1 and coarse.solve is None:  # W-cycle below the finest level
            for _ in range(self.gamma - 1):
                e += self._vcycle(k + 1, r_coarse - coarse.matvec(e))
        x_red += self.alpha * (level.P_red @ e)
        # post-smoothing: black then red (the adjoint order keeps the preconditioner symmetric)
        x_black = level.dinv_black * (r_black + level.Ct @ x_red)
        x_red = level.dinv_red * (r_red + level.C @ x_black)
        return xp.concatenate([x_red, x_black])


@functools.cache
def _block_pieces(ndim: int) -> np.ndarray:
    """Face-connected pieces of every occupancy pattern of a 2 x ... x 2 block.

    ``lut[pattern, k]`` is the piece (0, 1, ...) of corner ``k`` (C order) in a block
    whose occupied corners are the set bits of ``pattern``; -1 where unoccupied.
    """
    corners = list(itertools.product((0, 1), repeat=ndim))
    m = len(corners)
    lut = np.full((2**m, m), -1, np.int8)
    for pattern in range(2**m):
        piece = 0
        for start in range(m):
            if not (pattern >> start) & 1 or lut[pattern, start] >= 0:
                continue
            lut[pattern, start] = piece
            stack = [start]
            while stack:
                k = stack.pop()
                for j in range(m):
                    face = sum(a != b for a, b in zip(corners[k], corners[j], strict=True)) == 1
                    if face and (pattern >> j) & 1 and lut[pattern, j] < 0:
                        lut[pattern, j] = piece
                        stack.append(j)
            piece += 1
    return lut


def _voxel_pieces(coords: np.ndarray, shape: tuple[int, ...]) -> tuple[int, np.ndarray]:
    """Face-connected pieces of the voxels inside each 2 x 2 x 2 block, by table look-up
    (the finest level's aggregates without a graph search)."""
    ndim = coords.shape[1]
    bshape = tuple((n + 1) // 2 for n in shape)
    block = np.ravel_multi_index(tuple((coords >> 1).T), bshape)
    corner = functools.reduce(np.bitwise_or,
                              [(coords[:, a] & 1) << (ndim - 1 - a) for a in range(ndim)])
    pattern = np.bincount(block, weights=np.left_shift(1, corner), minlength=math.prod(bshape))
    piece = _block_pieces(ndim)[pattern.astype(np.int64)[block], corner]
    key = block * 2 ** (ndim - 1) + piece  # at most 2^(ndim-1) pieces in a block
    used = np.zeros(math.prod(bshape) * 2 ** (ndim - 1), bool)
    used[key] = True
    ids = np.cumsum(used) - 1
    return int(ids[-1] + 1), ids[key]


def _coarsen(n_red, diag, ei, ej, w, coords, pieces=None):
    """Coarsen a red-black conductance network by face-connected pieces of 2 x 2 x 2 blocks.

    ``ei`` (red ends) must be sorted; ``pieces`` (``(count, piece of each node)``) may
    be given when known. Returns the aggregate of every node (in the coarse red-black
    numbering) and the coarse ``n_red, C, diag, ei, ej, w, coords``; None when nothing
    merges any more.
    """
    n = diag.size
    blocks = coords >> 1
    if pieces is None:
        key = np.ravel_multi_index(tuple(blocks.T), tuple(blocks.max(axis=0) + 1))
        intra = key[ei] == key[ej]
        # graph of the intra-block edges, straight in CSR (rows = red ends, already sorted)
        indptr = np.zeros(n + 1, np.int64)
        np.cumsum(np.bincount(ei[intra], minlength=n), out=indptr[1:])
        cols = ej[intra]
        graph = sparse.csr_matrix((np.ones(cols.size, np.int8), cols, indptr), shape=(n, n))
        pieces = csgraph.connected_components(graph, directed=False)
    n_coarse, agg = pieces
    if n_coarse == n and np.array_equal(blocks, coords):
        return None
    coarse_coords = np.empty((n_coarse, coords.shape[1]), coords.dtype)
    coarse_coords[agg] = blocks
    red = (coarse_coords.sum(axis=1) & 1) == 0
    perm = np.concatenate([np.flatnonzero(red), np.flatnonzero(~red)])
    inv = np.empty(n_coarse, np.int64)
    inv[perm] = np.arange(n_coarse)
    agg = inv[agg]
    n_red_c = int(red.sum())
    a, b = agg[ei], agg[ej]
    inner = a == b  # an edge inside one aggregate (pieces are connected, so: inside a block)
    # Galerkin diagonal: the nodes' diagonals minus twice the conductances that became internal
    coarse_diag = (np.bincount(agg, diag, n_coarse)
                   - 2.0 * np.bincount(a, np.where(inner, w, 0.0), n_coarse))
    outer = ~inner
    a, b, wo = a[outer], b[outer], w[outer]
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    if lo.size and (lo.max() >= n_red_c or hi.min() < n_red_c):
        raise RuntimeError("internal error: coarse grid is not bipartite")
    c_mat = sparse.coo_matrix((wo, (lo, hi - n_red_c)),
                              shape=(n_red_c, n_coarse - n_red_c)).tocsr()  # sums duplicates
    c_mat.sum_duplicates()
    ei_c = np.repeat(np.arange(n_red_c), np.diff(c_mat.indptr))
    ej_c = c_mat.indices.astype(np.int64) + n_red_c
    return (agg, n_red_c, c_mat, coarse_diag, ei_c, ej_c, c_mat.data.copy(),
            coarse_coords[perm])


def _dot(xp, a, b) -> float:
    """Inner product without BLAS: single-threaded (a threaded BLAS dot stalls when the
    cores are shared) and accurate (pairwise-style accumulation in ``einsum``)."""
    return float(xp.einsum("i,i->", a, b))


def _pcg_energy(hierarchy: _Hierarchy, grid: _Grid, x0: np.ndarray, tol: float, max_iter: int,
                progress: ProgressCallback | None):
    """Preconditioned CG on the red unknowns; stops on the energy (= flow) decrement.

    The black unknowns are eliminated exactly (``x_B = D_B^-1 (b_B + C^T x_R)``: ``D_B``
    is diagonal), leaving the Schur complement ``S x_R = b_R + C D_B^-1 b_B`` of half
    the size. CG minimises the dissipated energy ``E = x^T A x - 2 b^T x + const``
    over the red values (black ones optimal), lowering it by exactly
    ``alpha_k r_k^T z_k`` per step. At the solution ``E`` is the total flow; its
    error is quadratic in the field's error.
    """
    xp = hierarchy.xp
    dtype = hierarchy.dtype
    fine = hierarchy.fine
    nr = fine.n_red
    b = xp.asarray(grid.b.astype(dtype))
    b_red, b_black = b[:nr], b[nr:]
    scaled_b_black = fine.dinv_black * b_black
    rhs = b_red + fine.C @ scaled_b_black
    x = xp.asarray(x0[:nr].astype(dtype))
    sx = hierarchy.schur(x)
    r = rhs - sx
    energy = (_dot(xp, x.astype(xp.float64), (sx - 2 * rhs).astype(xp.float64))
              - _dot(xp, b_black.astype(xp.float64), scaled_b_black.astype(xp.float64))
              + grid.const)
    z = hierarchy.precondition_red(r)
    p = z.copy()
    rz = _dot(xp, r, z)
    converged = False
    first_drop = None
    it = 0
    while it < max_iter:
        it += 1
        sp = hierarchy.schur(p)
        psp = _dot(xp, p, sp)
        if not psp > 0:  # exact solution reached (r = 0) or breakdown
            converged = rz == 0 or psp == 0
            break
        step = rz / psp
        x += step * p
        r -= step * sp
        drop = step * rz
        energy -= drop
        if drop <= tol * abs(energy):
            converged = True
            break
        if progress is not None:  # fraction of the way (in log energy drop) to the tolerance
            first_drop = first_drop or drop
            goal = math.log(tol * abs(energy) / first_drop)
            ratio = math.log(drop / first_drop) / goal if goal < 0 else 0.0
            report(progress, int(100 * min(max(ratio, 0.0), 0.99)), 100)
        z = hierarchy.precondition_red(r)
        rz_new = _dot(xp, r, z)
        p *= rz_new / rz
        p += z
        rz = rz_new
    x_black = fine.dinv_black * (b_black + fine.Ct @ x)
    return np.asarray(to_host(xp.concatenate([x, x_black])), np.float64), it, converged


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
        from it to any phase voxel at depth d; seed 004). ``"depth"``: one value
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
        u = _unit_suffix(unit)
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
) -> GeodesicTortuosity:
    """Distribution of shortest-path length through the phase to a depth, over the depth.

    For every depth ``d`` the target set is the phase in the slice whose centre
    lies ``d`` from the centre of the inlet slice (``d`` rounded to whole
    slices). With ``reference="inlet"`` (seed 004's definition) each phase
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
    ax = _axis(axis, ndim)
    _inlet(inlet)
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
        raise ValueError(
            f"depths {depth_arr[bad].tolist()} do not fit along axis {ax}: with a voxel of "
            f"{step:g} and {n_axis} slices, depths must lie between {step:g} and "
            f"{(n_axis - 1) * step:g} (voxel-centre distance from the inlet slice)"
        )

    oriented = _oriented(phase, ax, inlet)  # axis first, inlet at 0
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
    ax = _axis(axis, phase.ndim)
    _inlet(inlet)
    oriented = np.ascontiguousarray(_oriented(phase, ax, inlet))
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
        and move through the phase, seed 004 Fig. 7b); ``covered_fraction``
        (c-PSD: fraction covered by spheres of radius r that fit anywhere).
        ``radius = 0`` gives the fraction connected to the inlet and 1.
    """
    _phase_arr, _sp, _ax, intrusion = _intrusion_setup(mask, spacing, axis, inlet)
    r = _radii(radii, intrusion)
    u = _unit_suffix(unit)
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
        u = _unit_suffix(unit)
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

