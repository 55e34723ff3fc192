"""Local thickness by exact maximum-sphere inscription (MSI).

Definition (Hildebrand & Rüegsegger 1997, the one ImageJ/BoneJ "Local
Thickness" and PoreSpy implement): the local thickness at a voxel ``p`` of a
phase ``X`` is the diameter of the largest ball that lies inside ``X`` and
contains ``p``,

    tau(p) = 2 * max{ D(c) : c in X, |p - c| < D(c) },

where ``D(c)`` is the Euclidean distance (in physical units, anisotropic
voxels honoured) from the voxel centre ``c`` to the nearest voxel centre *not*
in ``X``. The ball ``B(c, D(c))`` therefore contains only phase voxels. Voxels
outside the array are not treated as background (the structure is unknown
there), exactly like PoreSpy and ``scipy.ndimage.distance_transform_edt``.

Algorithm (exact, no radius binning):

1. squared EDT: exact integer arithmetic (Felzenszwalb envelopes, numba) when the
   squared voxel sizes are integer multiples of the smallest one, else the ``edt``
   package (anisotropic, multi-threaded);
2. keep only centres whose lattice ball is not contained in the lattice ball of
   a 26-neighbour (a reduced "distance ridge"; Remy & Thiel's look-up-table
   test in the integer case, the continuous triangle-inequality test otherwise)
   -- removing a ball that is contained in another one never changes the result;
3. paint the remaining balls largest first, slice by slice (a ball is a disc in
   each slice); every row keeps a union-find "next unpainted voxel" pointer, so
   every voxel is written once and painted runs are skipped in O(1), and a disc
   lattice-contained in an already painted disc of the same or a neighbouring
   (y, x) column (2D look-up table) is skipped whole.

Digitisation: a ball is measured to the nearest *voxel centre* outside the
phase, so a slab ``t`` voxels thick gets ``t`` (``t`` even) or ``t + 1`` (``t``
odd) voxels, and a digitised sphere of diameter ``d`` gets between ``d`` and
``d + 2`` voxels at its centre -- the same convention as ImageJ/BoneJ.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from .._checks import as_mask, check_spacing
from ..backend import compute, is_lazy, map_blocks, resolve_backend
from ..memory import check_memory
from ..progress import ProgressCallback, report, scaled
from ._distance_kernels import BIG, lower_envelope
from ._thickness_kernels import isqrt_table, lut, paint, paint_int, ridge_kernel

try:  # numba is a runtime dependency; the import guard only gives a clearer error
    import numba as nb
except ImportError as exc:  # pragma: no cover - exercised only on broken installs
    raise ImportError("napari-corrtomo's quantification needs numba (pip install numba)") from exc

__all__ = ["local_thickness", "distance_ridge"]

#: Largest squared radius (in units of the smallest voxel size squared) for which the
#: exact look-up-table ridge test is used; larger balls use the continuous test.
_LUT_MAX = 1 << 14
#: Same for the per-slice disc test while painting (2D table, cheaper to build).
_DISC_LUT_MAX = 1 << 16


# =========================================================================== public API


def local_thickness(
    mask: Any,
    spacing: float | tuple[float, ...],
    backend: str = "auto",
    progress: ProgressCallback | None = None,
) -> np.ndarray:
    """Local thickness (maximum inscribed sphere diameter) of a phase.

    Parameters
    ----------
    mask
        Boolean (or 0/1) array, 2D ``(y, x)`` or 3D ``(z, y, x)``: True marks the
        phase to measure (pores, solid ...).
    spacing
        Voxel size per axis in physical units (a scalar means isotropic).
        Anisotropic voxels are measured correctly.
    backend
        ``"auto"``, ``"numpy"`` or ``"cupy"``. The ball painting runs in compiled
        CPU code for every backend; with ``"cupy"`` the distance transform runs on
        the GPU. Results are NumPy either way.
    progress
        ``progress(done, total)`` between slabs of slices; raise
        :class:`~napari_corrtomo.core.progress.Cancelled` from it to stop.

    Returns
    -------
    numpy.ndarray or dask.array.Array
        float32 array of ``mask``'s shape: the local diameter at every phase voxel
        in the units of ``spacing``; 0 outside the phase. For a dask or zarr
        ``mask`` (3D, boolean) a lazy dask array computed block by block with a halo
        of twice the largest inscribed radius, which makes every block exact; the
        largest radius is found first by a blockwise distance transform whose halo
        doubles until it is provably large enough.

    Raises
    ------
    ValueError
        Non-binary mask, no phase voxel, a phase that fills the whole array (its
        thickness is unbounded), or a spacing of the wrong length.
    ~napari_corrtomo.core.memory.TooLarge
        An in-memory mask whose estimated peak memory exceeds the budget (before any
        work; a dask/zarr mask runs block by block instead).

    Notes
    -----
    In 2D the balls are discs (the thickness within the plane).
    """
    if is_lazy(mask):
        return _local_thickness_lazy(mask, spacing, progress)
    check_memory("local thickness", np.shape(mask))
    arr = as_mask(mask, "mask")
    if arr.ndim not in (2, 3):
        raise ValueError(f"mask must be 2D or 3D, got {arr.ndim}D (shape {arr.shape})")
    sp = check_spacing(spacing, arr.ndim)
    if arr.ndim == 2:
        arr3 = arr[None]
        sp3 = (max(sp), *sp)
    else:
        arr3, sp3 = arr, sp
    out = _local_thickness_3d(np.ascontiguousarray(arr3), sp3,
                              resolve_backend(backend, "thickness.edt"), progress)
    return out[0] if arr.ndim == 2 else out


def distance_ridge(mask: Any, spacing: float | tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Centres and radii of the balls local thickness paints (the reduced distance ridge).

    Returns ``(centres, radii)``: ``centres`` (N, ndim) voxel indices and ``radii`` (N,)
    in units of ``spacing``, sorted by decreasing radius. Every maximal inscribed ball
    of the phase is among them.
    """
    arr = as_mask(mask, "mask")
    sp = check_spacing(spacing, arr.ndim)
    arr3 = arr[None] if arr.ndim == 2 else arr
    sp3 = (max(sp), *sp) if arr.ndim == 2 else sp
    unit, u, integer = _units(sp3)
    d2 = _edt_sq(np.ascontiguousarray(arr3), u, "numpy")
    q, cz, cy, cx = _ridge(d2, u, integer)
    centres = np.column_stack([cz, cy, cx]) if arr.ndim == 3 else np.column_stack([cy, cx])
    return centres, np.sqrt(q.astype(np.float64)) * unit


# =========================================================================== blockwise


def _local_thickness_lazy(mask: Any, spacing: Any, progress: ProgressCallback | None):
    """Exact local thickness of a dask/zarr mask, block by block."""
    arr = as_mask(mask, "mask", allow_lazy=True)
    if arr.ndim != 3:
        raise ValueError(f"a lazy mask must be 3D (z, y, x), got {arr.ndim}D")
    sp = check_spacing(spacing, arr.ndim)
    unit, u, integer = _units(sp)
    # 1) the largest inscribed radius: block EDTs with a halo h are exact where they are
    #    <= h (the nearest non-phase voxel lies inside the padded block), so grow h
    #    until the largest value found is below it
    halo = 8
    while True:
        hv = tuple(int(math.ceil(halo / v)) for v in u)

        def block_dmax(block, hv=hv):
            b = np.asarray(block, dtype=bool)
            if not b.any():
                return np.zeros(b.shape, np.float32)
            if b.all():
                return np.full(b.shape, np.inf, np.float32)
            return np.sqrt(_edt_sq(np.ascontiguousarray(b), u, "numpy")).astype(np.float32)

        d = map_blocks(block_dmax, arr, hv, bytes_per_voxel=16)
        dmax = float(compute(d.max()))
        if not np.isfinite(dmax) and all(n <= 2 * h for n, h in zip(arr.shape, hv, strict=True)):
            raise ValueError(
                "the phase fills the whole array, so its local thickness is unbounded; "
                "crop to a region that contains the phase boundary or choose another phase")
        if dmax < halo:
            break
        halo *= 2
    if dmax == 0:
        raise ValueError("mask contains no voxel of the phase (all False); "
                         "check the phase/label value you chose")
    # 2) tau(p) depends on balls centred within dmax of p, whose radii depend on the mask
    #    within dmax of their centres: a halo of 2 dmax (+1 for the ridge test) is exact
    reach = tuple(int(math.ceil(2 * dmax / v)) + 2 for v in u)

    def block_lt(block):
        b = np.ascontiguousarray(np.asarray(block, dtype=bool))
        if not b.any():
            return np.zeros(b.shape, np.float32)
        return _local_thickness_3d(b, sp, "numpy", None)

    lazy = map_blocks(block_lt, arr, reach, bytes_per_voxel=48)
    if progress is not None:
        report(progress, 0, 1)
    return lazy


# =========================================================================== driver


def _units(sp: tuple[float, ...]) -> tuple[float, np.ndarray, bool]:
    """Smallest voxel size, spacing in units of it, and whether squared units are integers."""
    unit = float(min(sp))
    u = np.asarray(sp, dtype=np.float64) / unit
    w = u * u
    integer = bool(np.all(np.abs(w - np.rint(w)) < 1e-9) and np.rint(w).max() <= 1024)
    if integer:
        u = np.sqrt(np.rint(w))
    return unit, u, integer


def _threads() -> int:
    return max(1, min(nb.config.NUMBA_NUM_THREADS, os.cpu_count() or 1))


def _edt_sq(arr: np.ndarray, u: np.ndarray, backend: str,
            progress: ProgressCallback | None = None) -> np.ndarray:
    """Squared distance to the nearest non-phase voxel centre (units of the smallest voxel).

    ``progress`` is called between slabs of the exact integer transform (the others run in
    one call)."""
    if arr.all():
        raise ValueError(
            "the phase fills the whole array, so its local thickness is unbounded; "
            "crop to a region that contains the phase boundary or choose another phase"
        )
    if backend == "cupy":
        import cupy
        from cupyx.scipy import ndimage as cndi

        d = cndi.distance_transform_edt(cupy.asarray(arr), sampling=tuple(u))
        return cupy.asnumpy((d * d).astype(cupy.float32))
    w = u * u
    if np.all(np.abs(w - np.rint(w)) < 1e-9) and arr.ndim == 3:
        # exact integer squared EDT
        return _edt_sq_int(arr, np.rint(w).astype(np.int64), progress)
    import edt

    return edt.edtsq(arr, anisotropy=tuple(float(v) for v in u), black_border=False,
                     parallel=_threads())


#: slices per call of the compiled passes: a cancel is seen between two calls, and each
#: call is short (~0.1 s for 16 slices of 224^2 on 2 cores)
_SLAB = 16


def _edt_sq_int(mask: np.ndarray, w: np.ndarray,
                progress: ProgressCallback | None = None) -> np.ndarray:
    """Exact squared EDT of ``mask`` (distance to the nearest False voxel centre) for
    integer squared voxel sizes ``w`` (z, y, x), as float32 (inf where no False voxel).

    Two passes (in-plane per slice, then along z per row of slices), each slab by slab
    with ``progress`` between slabs."""
    nz, ny, _ = mask.shape
    out = np.empty(mask.shape, np.float32)
    total = -(-nz // _SLAB) + -(-ny // _SLAB)
    done = 0
    for z0 in range(0, nz, _SLAB):
        _edt_plane(mask, w, out, z0, min(z0 + _SLAB, nz))
        done += 1
        report(progress, done, total)
    for y0 in range(0, ny, _SLAB):
        _edt_depth(out, w, y0, min(y0 + _SLAB, ny))
        done += 1
        report(progress, done, total)
    return out


@nb.njit(parallel=True, cache=True, nogil=True)
def _edt_plane(mask, w, out, z0, z1):
    """In-plane pass of :func:`_edt_sq_int` for slices ``z0 <= z < z1``."""
    _, ny, nx = mask.shape
    wy, wx = float(w[1]), float(w[2])
    big = nx + ny + mask.shape[0] + 1
    for z in nb.prange(z0, z1):  # x: 1D distances by two sweeps; y: envelope, slice in cache
        n = max(ny, nx)
        f = np.empty(n, np.float64)
        g = np.empty(n, np.float64)
        v = np.empty(n, np.int64)
        arg = np.empty(n, np.int64)
        zb = np.empty(n + 1, np.float64)
        plane = np.empty((ny, nx), np.float64)
        for y in range(ny):
            d = big
            for x in range(nx):
                d = 0 if not mask[z, y, x] else d + 1
                plane[y, x] = d
            d = big
            for x in range(nx - 1, -1, -1):
                d = 0 if not mask[z, y, x] else d + 1
                if d < plane[y, x]:
                    plane[y, x] = d
            for x in range(nx):
                plane[y, x] = BIG if plane[y, x] >= nx else wx * plane[y, x] ** 2
        for x in range(nx):
            for y in range(ny):
                f[y] = plane[y, x]
            lower_envelope(f, ny, wy, g, arg, v, zb)
            for y in range(ny):
                out[z, y, x] = g[y] if g[y] < BIG else np.inf


@nb.njit(parallel=True, cache=True, nogil=True)
def _edt_depth(out, w, y0, y1):
    """Pass along z of :func:`_edt_sq_int` for rows ``y0 <= y < y1`` of every slice."""
    nz, _, nx = out.shape
    wz = float(w[0])
    for y in nb.prange(y0, y1):  # z: envelope per (y, x), an (nz, nx) slab at a time
        f = np.empty(nz, np.float64)
        g = np.empty(nz, np.float64)
        v = np.empty(nz, np.int64)
        arg = np.empty(nz, np.int64)
        zb = np.empty(nz + 1, np.float64)
        slab = np.empty((nz, nx), np.float64)
        for z in range(nz):
            for x in range(nx):
                val = out[z, y, x]
                slab[z, x] = BIG if val == np.inf else val
        for x in range(nx):
            for z in range(nz):
                f[z] = slab[z, x]
            lower_envelope(f, nz, wz, g, arg, v, zb)
            for z in range(nz):
                out[z, y, x] = g[z] if g[z] < BIG else np.inf


def _lut(values: np.ndarray, w: np.ndarray, classes: np.ndarray,
         progress: ProgressCallback | None = None) -> np.ndarray:
    """:func:`lut` in pieces of about equal work (a value ``d`` costs ~``d``), with
    ``progress`` between them: large radii make one call take seconds."""
    table = np.zeros((classes.shape[0], int(values.max(initial=0)) + 1), np.int64)
    cost = np.cumsum(values.astype(np.float64))
    pieces = max(1, int(cost[-1] // 2e6)) if len(values) else 1  # ~0.05 s per piece
    cut = np.searchsorted(cost, np.linspace(0, cost[-1] if len(values) else 0, pieces + 1)[1:-1])
    for i, part in enumerate(np.split(values, cut)):
        if len(part):
            table[:, part] = lut(part, w, classes)[:, part]
        report(progress, i + 1, pieces)
    return table


def _ridge(d2: np.ndarray, u: np.ndarray, integer: bool,
           progress: ProgressCallback | None = None):
    """Reduced distance ridge, sorted by decreasing squared radius (``progress`` between
    slabs of the ridge test)."""
    offsets = np.array([(a, b, c) for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1)
                        if (a, b, c) != (0, 0, 0)], dtype=np.int64)
    offsets = offsets[np.argsort((offsets**2 * (u**2)).sum(1), kind="stable")]
    keys = sorted({tuple(np.abs(o)) for o in offsets})
    cls = np.array([keys.index(tuple(np.abs(o))) for o in offsets], dtype=np.int64)
    odist = np.sqrt((offsets**2 * (u**2)).sum(1))
    if integer:
        w = np.rint(u * u).astype(np.int64)
        flags = np.zeros(_LUT_MAX + 2, np.bool_)
        for z0 in range(0, d2.shape[0], _SLAB):
            flags |= _present_values(d2[z0:z0 + _SLAB], _LUT_MAX)
            report(progress, 0, 1)  # a chance to cancel
        flags[0] = flags[_LUT_MAX + 1] = False
        present = np.flatnonzero(flags).astype(np.int64)
        table = _lut(present, w, np.array(keys, dtype=np.int64), scaled(progress, 0, 1, 2))
    else:
        table = np.zeros((len(keys), 1), dtype=np.int64)
    keep = np.zeros(d2.shape, np.bool_)
    nz = d2.shape[0]
    for z0 in range(0, nz, _SLAB):
        ridge_kernel(d2, offsets, cls, odist, table, integer, z0, min(z0 + _SLAB, nz), keep)
        report(progress, nz + min(z0 + _SLAB, nz), 2 * nz)
    idx = np.flatnonzero(keep)
    del keep
    if d2.size < 2**31:  # memory: 4-byte indices where they suffice
        idx = idx.astype(np.int32)
    q = d2.ravel()[idx]  # float32; exact integers in integer mode
    # decreasing radius; equal radii in raster order (memory locality while painting)
    order = np.lexsort((idx, -q))
    idx = idx[order]
    q = q[order]
    del order
    cz, cy, cx = _unravel32(idx, np.array(d2.shape, dtype=np.int64))
    return q, cz, cy, cx


@nb.njit(cache=True, nogil=True)
def _unravel32(idx, shape):
    n = idx.shape[0]
    cz = np.empty(n, np.int32)
    cy = np.empty(n, np.int32)
    cx = np.empty(n, np.int32)
    plane = shape[1] * shape[2]
    for i in range(n):
        f = np.int64(idx[i])
        cz[i] = f // plane
        cy[i] = (f // shape[2]) % shape[1]
        cx[i] = f % shape[2]
    return cz, cy, cx


@nb.njit(parallel=True, cache=True, nogil=True)
def _present_values(d2, limit):
    """Flags of the integer squared radii 0..limit+1 that occur in ``d2`` (one flag row per
    slice; values beyond ``limit`` flag ``limit + 1``)."""
    nz, ny, nx = d2.shape
    flags = np.zeros((nz, limit + 2), np.bool_)
    for z in nb.prange(nz):
        for y in range(ny):
            for x in range(nx):
                v = d2[z, y, x]
                if v > 0:
                    flags[z, min(int(v + 0.5), limit + 1)] = True
    present = np.zeros(limit + 2, np.bool_)
    for z in range(nz):
        present |= flags[z]
    return present


def _local_thickness_3d(arr: np.ndarray, sp: tuple[float, ...], backend: str,
                        progress: ProgressCallback | None) -> np.ndarray:
    unit, u, integer = _units(sp)
    # progress: distances 0-20 %, ridge 20-35 %, painting the balls 35-100 %
    d2 = _edt_sq(arr, u, backend, scaled(progress, 0, 200, 1000))
    q, cz, cy, cx = _ridge(d2, u, integer, scaled(progress, 200, 350, 1000))
    del d2
    # inside <=> q - |p - c|^2 > tol: exact for integer squared units; otherwise near-ties
    # (within float32 rounding of the EDT) count as outside, so no background voxel is hit.
    tol_abs, tol_rel = (0.5, 0.0) if integer else (0.0, 1e-6)
    nz = arr.shape[0]
    out = np.zeros(arr.shape, dtype=np.float32)
    if len(q) == 0:
        return out
    # Slabs of slices: centres are bucketed by slab so that a slab only scans the balls
    # that can reach it; each slab is painted in parallel over its slices.
    hz = int(math.floor(math.sqrt(q[0]) / u[0])) + 1  # largest reach along z (voxels)
    slab = int(min(nz, max(4, hz, math.ceil(nz / 64))))
    nslab = math.ceil(nz / slab)
    sid = cz // slab
    by_slab = np.argsort(sid, kind="stable")  # keeps decreasing radius inside each slab
    bounds = np.searchsorted(sid[by_slab], np.arange(nslab + 1))
    reach = math.ceil(hz / slab)
    if integer:  # exact integer arithmetic: squared radii and half-widths from tables
        qi = np.rint(q).astype(np.int32)
        del q
        w3 = np.rint(u * u).astype(np.int64)
        ytab = isqrt_table(int(qi[0]), int(w3[1]))
        xtab = isqrt_table(int(qi[0]), int(w3[2]))
        hz_i = isqrt_table(int(qi[0]), int(w3[0]))[np.maximum(qi - 1, 0)]
        cap = min(int(qi[0]), _DISC_LUT_MAX)
        cent = np.empty((len(qi), 5), np.int32)  # one row per centre: memory locality
        cent[:, 0], cent[:, 1], cent[:, 2], cent[:, 3], cent[:, 4] = cz, cy, cx, qi, hz_i
        del cz, cy, cx, qi, hz_i
        disc_lut = _lut(np.arange(1, cap + 1, dtype=np.int64),
                        np.array([cap + 1, w3[1], w3[2]], dtype=np.int64),  # 2D: a = 0 only
                        np.array([[0, 0, 1], [0, 1, 0], [0, 1, 1]], dtype=np.int64),
                        scaled(progress, 350, 350, 1000))  # only a chance to cancel
    else:
        q = q.astype(np.float64)
        values = (2.0 * np.sqrt(q) * unit).astype(np.float32)
    paint_progress = scaled(progress, 350, 1000, 1000)
    report(paint_progress, 0, nslab)
    for k in range(nslab):
        lo_s, hi_s = max(0, k - reach), min(nslab, k + reach + 1)
        cand = by_slab[bounds[lo_s]:bounds[hi_s]]
        cand = cand[np.argsort(cand, kind="stable")]  # global order = decreasing radius
        if integer:
            paint_int(k * slab, min(nz, (k + 1) * slab), cand, cent, unit, w3, ytab, xtab,
                       disc_lut, _threads(), out)
        else:
            paint(k * slab, min(nz, (k + 1) * slab), cand, cz, cy, cx, q, values, u, tol_abs,
                   tol_rel, out)
        report(paint_progress, k + 1, nslab)
    np.multiply(out, arr, out=out)  # defensive (balls only contain phase voxels); no temporary
    return out
