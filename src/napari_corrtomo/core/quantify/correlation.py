"""Two-point correlation and lineal-path functions of a phase.

Both are estimated on a finite, non-periodic volume with the *minus-sampling*
(border-corrected) estimator: a segment counts only when both its ends lie in
the array, and the count is divided by the number of such segments. Nothing is
wrapped around, so no artificial periodicity enters.

- Two-point correlation ``S2(r)``: probability that both ends of a segment of
  length ``r`` lie in the phase. ``S2(0)`` is the volume fraction ``phi`` and
  ``S2(r) -> phi**2`` for a structure without long-range order.
- Lineal path ``L(r)``: probability that a whole segment of length ``r`` lies in
  the phase (all voxel centres it passes). ``L(0) = phi``; ``L`` decreases
  monotonically.

With a ``sample`` mask the sample is the window instead of the array: ``S2`` counts
the segments with both ends in the sample and ``L`` those wholly in it, so the
outside medium around a sample (or a band without data) is neither phase nor
matrix, and ``S2(0) = L(0)`` is the phase's volume fraction of the sample.

``axis=int`` measures along one array axis (lengths are multiples of that
axis' voxel size). ``axis=None`` is the orientation average:

- for ``S2`` every lattice displacement vector up to ``max_distance`` is used
  (an FFT autocorrelation, computed in slabs so large volumes fit in memory);
  vectors are binned by length (bins one smallest voxel wide), each bin's mean
  ``S2`` is placed at the bin's mean length, and the curve is interpolated onto
  the regular output grid (linearly extrapolated below the first non-zero bin;
  ``S2(0)`` is the volume fraction exactly). Below the largest voxel size, strongly anisotropic
  voxels leave some directions without lattice vectors; the average is over the
  directions that exist.
- for ``L`` the 13 lattice directions of the 3x3x3 neighbourhood (4 in 2D) are
  measured separately, interpolated linearly onto the output grid and averaged
  with solid-angle weights (the fraction of all directions closest to each).
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from .._checks import as_mask, check_sample, check_spacing
from ..backend import memory_budget

try:
    import numba as nb
except ImportError as exc:  # pragma: no cover
    raise ImportError("napari-corrtomo's quantification needs numba (pip install numba)") from exc

__all__ = ["two_point_correlation", "lineal_path", "lattice_directions"]


# =========================================================================== public API


def two_point_correlation(
    mask: Any,
    spacing: float | tuple[float, ...],
    max_distance: float,
    axis: int | None = None,
    sample: Any | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Two-point correlation function ``S2(r)`` of a phase.

    Parameters
    ----------
    mask
        Boolean (or 0/1) array, 2D or 3D ``(z, y, x)``; True marks the phase.
    spacing
        Voxel size per axis (scalar = isotropic), physical units.
    max_distance
        Largest distance to evaluate, in the units of ``spacing``. It must not exceed
        the array's extent, ``(n - 1) * spacing`` along ``axis`` (along every axis for
        ``axis=None``).
    axis
        Array axis to measure along, or ``None`` for the orientation average.
    sample
        Binary array of the sample, holding the phase (default: the whole array): only
        segments with both ends in it count.

    Returns
    -------
    distances, s2
        float64 arrays. ``axis=int``: ``distances = k * spacing[axis]``,
        ``k = 0 .. floor(max_distance / spacing[axis])``. ``axis=None``:
        ``distances = j * min(spacing)``, ``j = 0 .. floor(max_distance / min(spacing))``.
        ``s2[0]`` is the volume fraction (of the sample).
    """
    arr, sp, ax, win = _prepare(mask, spacing, axis, sample)
    dmax = _check_length(max_distance, arr.shape, sp, ax, "max_distance")
    if ax is not None:
        k_max = int(math.floor(dmax / sp[ax] + 1e-9))
        counts = _axis_autocorrelation(arr, ax, k_max)
        if win is None:
            pairs = (arr.shape[ax] - np.arange(k_max + 1)) * (arr.size // arr.shape[ax])
        else:
            pairs = _axis_autocorrelation(win, ax, k_max)
            if not pairs.all():
                raise ValueError(f"no two voxels of the sample lie {np.argmin(pairs)} steps "
                                 f"apart along axis {ax}; lower max_distance")
        return np.arange(k_max + 1) * sp[ax], counts / pairs
    return _orientation_averaged_s2(arr, sp, dmax, win)


def lineal_path(
    mask: Any,
    spacing: float | tuple[float, ...],
    max_length: float,
    axis: int | None = None,
    sample: Any | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Lineal-path function ``L(r)`` of a phase.

    Parameters
    ----------
    mask
        Boolean (or 0/1) array, 2D or 3D ``(z, y, x)``; True marks the phase.
    spacing
        Voxel size per axis (scalar = isotropic), physical units.
    max_length
        Longest segment to evaluate, in the units of ``spacing`` (at most the array's
        extent, as for :func:`two_point_correlation`).
    axis
        Array axis to measure along, or ``None`` for the orientation average.
    sample
        Binary array of the sample, holding the phase (default: the whole array): only
        segments wholly in it count.

    Returns
    -------
    lengths, lp
        float64 arrays on the same grids as :func:`two_point_correlation`. A segment
        of length ``k * spacing[axis]`` covers ``k + 1`` voxel centres; ``lp[0]`` is
        the volume fraction (of the sample).
    """
    arr, sp, ax, win = _prepare(mask, spacing, axis, sample)
    lmax = _check_length(max_length, arr.shape, sp, ax, "max_length")
    arr3 = arr if arr.ndim == 3 else arr[None]
    win3 = win if win is None or win.ndim == 3 else win[None]
    if ax is not None:
        v = np.zeros(3, np.int64)
        v[ax + (3 - arr.ndim)] = 1
        k_max = int(math.floor(lmax / sp[ax] + 1e-9))
        return np.arange(k_max + 1) * sp[ax], _directional_lineal_path(arr3, v, k_max, win3)
    step = min(sp)
    grid = np.arange(int(math.floor(lmax / step + 1e-9)) + 1) * step
    sp3 = np.array((1.0,) * (3 - arr.ndim) + tuple(sp))
    dirs, weights = lattice_directions(sp, arr.ndim)
    total = np.zeros_like(grid)
    for v, w in zip(dirs, weights, strict=True):
        v3 = np.concatenate([np.zeros(3 - arr.ndim, np.int64), v])
        ell = float(np.linalg.norm(v3 * sp3))
        k_max = int(math.ceil(lmax / ell - 1e-9))
        lp = _directional_lineal_path(arr3, v3, k_max, win3)
        total += w * np.interp(grid, np.arange(k_max + 1) * ell, lp)
    return grid, total


def lattice_directions(spacing: tuple[float, ...], ndim: int) -> tuple[np.ndarray, np.ndarray]:
    """The lattice directions (one per +-pair) of the 3^ndim neighbourhood and their
    solid-angle weights for voxels of size ``spacing`` (weights sum to 1).

    A direction's weight is the fraction of uniformly distributed unit vectors that are
    closer (in angle) to it than to any other; computed on a deterministic Fibonacci
    sphere (circle in 2D) of 200,000 points.
    """
    sp = np.asarray(spacing, float)[-ndim:]
    cand = np.array(np.meshgrid(*[[-1, 0, 1]] * ndim, indexing="ij")).reshape(ndim, -1).T
    dirs = []
    for v in cand:
        nz = np.flatnonzero(v)
        if len(nz) and v[nz[0]] > 0:
            dirs.append(v)
    dirs = np.array(dirs, dtype=np.int64)
    phys = dirs * sp
    phys = phys / np.linalg.norm(phys, axis=1, keepdims=True)
    n = 200_000
    if ndim == 3:
        i = np.arange(n) + 0.5
        z = 1 - 2 * i / n
        t = np.pi * (1 + 5**0.5) * i
        r = np.sqrt(1 - z * z)
        pts = np.column_stack([z, r * np.sin(t), r * np.cos(t)])
    else:
        a = np.pi * (np.arange(n) + 0.5) / n
        pts = np.column_stack([np.sin(a), np.cos(a)])
    nearest = np.argmax(np.abs(pts @ phys.T), axis=1)
    weights = np.bincount(nearest, minlength=len(dirs)) / n
    return dirs, weights


# =========================================================================== checks


def _prepare(mask: Any, spacing: Any, axis: int | None, sample: Any | None = None):
    arr = as_mask(mask, "mask")
    if arr.ndim not in (2, 3):
        raise ValueError(f"mask must be 2D or 3D, got {arr.ndim}D (shape {arr.shape})")
    sp = check_spacing(spacing, arr.ndim)
    if axis is not None:
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise ValueError(f"axis must be an integer array axis or None, got {axis!r}")
        if not -arr.ndim <= axis < arr.ndim:
            raise ValueError(f"axis {axis} does not exist in a {arr.ndim}D array")
        axis = int(axis) % arr.ndim
    win = None if sample is None else check_sample(sample, arr)
    return arr, sp, axis, win


def _check_length(value: float, shape, sp, axis, name: str) -> float:
    value = float(value)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive length in the units of spacing, got {value}")
    axes = [axis] if axis is not None else range(len(shape))
    extent = min((shape[a] - 1) * sp[a] for a in axes)
    if extent <= 0:
        raise ValueError("the array has a single voxel along the measured axis; nothing to measure")
    if value > extent * (1 + 1e-9):
        where = f"along axis {axis}" if axis is not None else "along the shortest axis"
        raise ValueError(
            f"{name}={value:g} exceeds the array's extent {where} ({extent:g}); "
            f"use at most {extent:g} (better: a few times smaller, for statistics)"
        )
    return min(value, extent)


# =========================================================================== two-point correlation


def _workers() -> int:
    return os.cpu_count() or 1


def _axis_autocorrelation(arr: np.ndarray, axis: int, k_max: int) -> np.ndarray:
    """Sum over all lines along ``axis`` of sum_i a[i] a[i+k], k = 0..k_max (exact integers)."""
    from scipy import fft

    a = np.moveaxis(arr, axis, -1)
    n = a.shape[-1]
    length = fft.next_fast_len(n + k_max, real=True)
    lines = a.reshape(-1, n)
    per_line = 16 * (length // 2 + 1) + 8 * length
    chunk = max(1, int(min(memory_budget("numpy"), 1 << 30) // per_line))
    total = np.zeros(k_max + 1)
    for s in range(0, lines.shape[0], chunk):
        block = lines[s:s + chunk].astype(np.float64)
        spec = fft.rfft(block, n=length, axis=-1, workers=_workers())
        corr = fft.irfft(spec.real**2 + spec.imag**2, n=length, axis=-1, workers=_workers())
        total += corr[:, : k_max + 1].sum(axis=0)
    return np.rint(total)


def _orientation_averaged_s2(arr: np.ndarray, sp, dmax: float, win: np.ndarray | None):
    """S2 averaged over all lattice displacement vectors, binned by length; the pairs
    of each vector are those in the array, or with ``win`` those in the window."""
    shape = arr.shape
    # one lag beyond max_distance per axis, so the outermost length bin is complete
    ks = [min(int(math.floor(dmax / s + 1e-9)) + 1, n - 1) for s, n in zip(sp, shape, strict=True)]
    corr = _lag_correlation(arr, ks)
    lags = np.meshgrid(*[np.arange(-k, k + 1) for k in ks], indexing="ij")
    dist2 = sum((lag * s) ** 2 for lag, s in zip(lags, sp, strict=True))
    if win is None:  # every pair of the array: the overlap of the array and its shift
        pairs = math.prod(n - np.abs(lag) for lag, n in zip(lags, shape, strict=True))
    else:
        pairs = _lag_correlation(win, ks)
    s2 = corr / np.maximum(pairs, 1)
    dist = np.sqrt(dist2)
    step = min(sp)
    grid = np.arange(int(math.floor(dmax / step + 1e-9)) + 1) * step
    # one bin beyond, so the last grid point interpolates; vectors without a pair left out
    inside = (dist <= grid[-1] + step) & (pairs > 0)
    bins = np.rint(dist[inside] / step).astype(np.int64)
    count = np.bincount(bins)
    ok = count > 0
    if np.count_nonzero(ok) < 2:
        raise ValueError("no two voxels of the sample lie within max_distance of each other; "
                         "give a larger sample")
    mean_d = np.bincount(bins, dist[inside])[ok] / count[ok]
    mean_s2 = np.bincount(bins, s2[inside])[ok] / count[ok]
    # S2(0) is the volume fraction exactly; r > 0 uses the bins of non-zero vectors only
    # (S2 may jump at 0+ for voxel noise), extrapolating linearly below the first bin mean.
    out = np.empty_like(grid)
    out[0] = mean_s2[0]
    d1, v1 = mean_d[1:], mean_s2[1:]
    out[1:] = np.interp(grid[1:], d1, v1)
    low = grid[1:] < d1[0]
    if low.any() and len(d1) > 1:
        slope = (v1[1] - v1[0]) / (d1[1] - d1[0])
        out[1:][low] = v1[0] + slope * (grid[1:][low] - d1[0])
    return grid, out


def _lag_correlation(arr: np.ndarray, ks: list[int]) -> np.ndarray:
    """sum_x a[x] a[x + lag] for every lag vector with ``|lag[i]| <= ks[i]`` (exact
    integers), by FFT in slabs along axis 0 so large volumes fit in memory."""
    from scipy import fft

    shape = arr.shape
    # other axes: whole extent, zero-padded so circular lags never wrap onto data
    lens = [fft.next_fast_len(n + k, real=True) for n, k in zip(shape[1:], ks[1:], strict=True)]
    plane = math.prod(lens)
    budget = min(memory_budget("numpy"), 1 << 31)
    # slab thickness b along axis 0: arrays of (b + 3 k0) planes, ~5 float64-sized buffers
    b = max(1, int(budget // (40 * plane)) - 3 * ks[0])
    b = min(b, shape[0])
    corr = np.zeros([2 * k + 1 for k in ks])
    for z0 in range(0, shape[0], b):
        z1 = min(z0 + b, shape[0])
        o0, o1 = max(0, z0 - ks[0]), min(shape[0], z1 + ks[0])
        outer = arr[o0:o1].astype(np.float64)
        inner = np.zeros_like(outer)
        inner[z0 - o0:z1 - o0] = outer[z0 - o0:z1 - o0]
        full = [fft.next_fast_len(o1 - o0 + ks[0], real=True), *lens]
        fo = fft.rfftn(outer, s=full, workers=_workers())
        fi = fft.rfftn(inner, s=full, workers=_workers())
        c = fft.irfftn(np.conj(fi) * fo, s=full, workers=_workers())
        del fo, fi
        idx = [np.arange(-k, k + 1) % m for k, m in zip(ks, full, strict=True)]
        corr += c[np.ix_(*idx)]
    return np.rint(corr)


# =========================================================================== lineal path


def _directional_lineal_path(arr3: np.ndarray, v: np.ndarray, k_max: int,
                             win3: np.ndarray | None = None) -> np.ndarray:
    """L(k), k = 0..k_max, along the lattice direction ``v`` (3 ints in -1..1); with
    ``win3`` over the segments wholly in that window (its runs) instead of the array's."""
    runs, lines = _run_histograms(arr3, v.astype(np.int64))
    if win3 is not None:
        lines = _run_histograms(win3, v.astype(np.int64))[0]
    ks = np.arange(k_max + 1)
    num = _tail_segments(runs, ks)
    den = _tail_segments(lines, ks)
    with np.errstate(invalid="ignore", divide="ignore"):
        lp = np.where(den > 0, num / np.maximum(den, 1), np.nan)
    if np.isnan(lp).any():
        raise ValueError(
            f"the {'array' if win3 is None else 'sample'} is too short along direction "
            f"{tuple(int(x) for x in v)} for segments of {k_max} steps; reduce max_length"
        )
    return lp


def _tail_segments(hist: np.ndarray, ks: np.ndarray) -> np.ndarray:
    """sum_n hist[n] * max(n - k, 0) for each k: the number of (k+1)-point segments."""
    n = np.arange(len(hist), dtype=np.float64)
    c0 = np.cumsum(hist[::-1])[::-1]          # sum_{m >= n} hist[m]
    c1 = np.cumsum((hist * n)[::-1])[::-1]    # sum_{m >= n} m hist[m]
    out = np.zeros(len(ks))
    valid = ks + 1 < len(hist)
    kk = ks[valid]
    out[valid] = c1[kk + 1] - kk * c0[kk + 1]
    return out


@nb.njit(cache=True)
def _run_histograms(a, v):
    """Histograms of phase run lengths and of line lengths along direction ``v``.

    A line starts at every voxel whose predecessor ``p - v`` is outside the array.
    """
    nz, ny, nx = a.shape
    longest = max(nz, ny, nx) + 1
    runs = np.zeros(longest, np.int64)
    lines = np.zeros(longest, np.int64)
    vz, vy, vx = v[0], v[1], v[2]
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                pz, py, px = z - vz, y - vy, x - vx
                if 0 <= pz < nz and 0 <= py < ny and 0 <= px < nx:
                    continue  # not the start of a line
                length = 0
                run = 0
                cz, cy, cx = z, y, x
                while 0 <= cz < nz and 0 <= cy < ny and 0 <= cx < nx:
                    length += 1
                    if a[cz, cy, cx]:
                        run += 1
                    elif run:
                        runs[run] += 1
                        run = 0
                    cz += vz
                    cy += vy
                    cx += vx
                if run:
                    runs[run] += 1
                lines[length] += 1
    return runs, lines
