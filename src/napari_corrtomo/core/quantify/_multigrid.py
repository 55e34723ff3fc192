"""The linear solver behind :func:`~.transport.tortuosity_factor`.

The finite-volume Laplacian of the conducting voxels is solved by conjugate
gradients on its red-black Schur complement, preconditioned with an aggregation
multigrid (pairwise aggregates of 2^d blocks, one smoothed V-cycle per iteration),
on NumPy or CuPy.
"""

from __future__ import annotations

import functools
import importlib
import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph
from scipy.sparse import linalg as sparse_linalg

from ..backend import to_host, xp_for
from ..progress import ProgressCallback, report


@dataclass
class Grid:
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


def grid_system(conducting: np.ndarray, spacing: tuple[float, ...], axis: int) -> Grid:
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
    return Grid(shape, n_red, lin, coords, c_mat, ei, ej, w, diag, b, inlet, outlet, g_face,
                 g_face * inlet.size)


class Level:
    """One grid of the multigrid hierarchy, unknowns red then black (see :class:`Grid`).

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


class Hierarchy:
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

    def __init__(self, grid: Grid, backend: str, dtype=np.float32):
        self.xp = xp = xp_for(backend)
        if xp is np:
            sp_mod = sparse
        else:  # pragma: no cover - needs a GPU
            sp_mod = importlib.import_module("cupyx.scipy.sparse")
        self.dtype = dtype
        self.levels: list[Level] = []
        n_red, c_mat, diag = grid.n_red, grid.C, grid.diag
        ei, ej, w, coords = grid.ei, grid.ej, grid.w, grid.coords.astype(np.int64)
        pieces = _voxel_pieces(coords, grid.shape)
        aggs = []
        while True:
            self.levels.append(Level(n_red, c_mat, diag, xp, sp_mod, dtype))
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
    def fine(self) -> Level:
        return self.levels[0]

    def matvec(self, x):
        return self.fine.matvec(x)

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


def pcg_energy(hierarchy: Hierarchy, grid: Grid, x0: np.ndarray, tol: float, max_iter: int,
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
