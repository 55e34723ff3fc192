"""Compiled CPU kernels (numba) behind the feature bank and the forest.

Each kernel has an array-module twin in :mod:`.features` / :mod:`.classify` (used on
CuPy and when numba is missing); tests check that both give the same numbers. The
kernels never reassociate sums (no fastmath): every output voxel adds its terms in a
fixed order, so results do not depend on how a volume is cut into blocks.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np


@functools.cache
def available() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:  # pragma: no cover - numba is a dependency
        return False
    return True


@functools.cache
def _compiled() -> dict[str, Any]:
    import numba
    from numba import prange

    @numba.njit(cache=True, inline="always")
    def reflect(i, n):  # scipy.ndimage mode "reflect" (half-sample symmetric)
        period = 2 * n
        m = i % period
        if m < 0:
            m += period
        if m >= n:
            m = period - 1 - m
        return m

    @numba.njit(parallel=True, cache=True, nogil=True)
    def corr_mid(inp, w, out):  # pragma: no cover - compiled
        """out[i, k, :] = sum_j w[j] inp[i, reflect(k + j - r), :] for (a, n, b) arrays.

        Work items are (i, tile of b): a tile's column of n values stays in cache while
        all taps of all k use it.
        """
        a, n, b = inp.shape
        taps = w.shape[0]
        r = taps // 2
        tile = 512
        n_tiles = (b + tile - 1) // tile
        for item in prange(a * n_tiles):
            i = item // n_tiles
            x0 = (item % n_tiles) * tile
            x1 = min(x0 + tile, b)
            m = x1 - x0
            for k in range(n):
                o = out[i, k, x0:x1]
                o[:] = 0
                for j in range(taps):
                    src = reflect(k + j - r, n)
                    wj = w[j]
                    s = inp[i, src, x0:x1]
                    for x in range(m):
                        o[x] += wj * s[x]

    @numba.njit(parallel=True, cache=True, nogil=True)
    def corr_last(inp, w, out):  # pragma: no cover - compiled
        """out[i, k] = sum_j w[j] inp[i, reflect(k + j - r)] for (a, n) arrays."""
        a, n = inp.shape
        taps = w.shape[0]
        r = taps // 2
        for i in prange(a):
            pad = np.empty(n + 2 * r, np.float32)
            for k in range(r):
                pad[k] = inp[i, reflect(k - r, n)]
                pad[n + r + k] = inp[i, reflect(n + k, n)]
            for k in range(n):
                pad[r + k] = inp[i, k]
            acc = np.zeros(n, np.float32)
            for j in range(taps):
                wj = w[j]
                for k in range(n):
                    acc[k] += wj * pad[k + j]
            for k in range(n):
                out[i, k] = acc[k]

    @numba.njit(parallel=True, cache=True, nogil=True)
    def eig3(a11, a12, a13, a22, a23, a33, e1, e2, e3):  # pragma: no cover - compiled
        """Descending eigenvalues of symmetric 3x3 matrices (Smith 1961), flat arrays."""
        n = a11.shape[0]
        for i in prange(n):  # float64 inside: Weyl-bounded error from float32 inputs only
            x11 = np.float64(a11[i])
            x22 = np.float64(a22[i])
            x33 = np.float64(a33[i])
            x12 = np.float64(a12[i])
            x13 = np.float64(a13[i])
            x23 = np.float64(a23[i])
            q = (x11 + x22 + x33) / 3.0
            b11 = x11 - q
            b22 = x22 - q
            b33 = x33 - q
            p1 = x12 * x12 + x13 * x13 + x23 * x23
            p2 = b11 * b11 + b22 * b22 + b33 * b33 + 2.0 * p1
            p = np.sqrt(p2 / 6.0)
            if p > 0:
                det = (b11 * (b22 * b33 - x23 * x23) - x12 * (x12 * b33 - x23 * x13)
                       + x13 * (x12 * x23 - b22 * x13))
                r = det / (2.0 * p * p * p)
                r = min(max(r, -1.0), 1.0)
                phi = np.arccos(r) / 3.0
                v1 = q + 2.0 * p * np.cos(phi)
                v3 = q + 2.0 * p * np.cos(phi + 2.0 * np.pi / 3.0)
            else:
                v1 = q
                v3 = q
            e1[i] = v1
            e2[i] = 3.0 * q - v1 - v3
            e3[i] = v3

    return {"corr_mid": corr_mid, "corr_last": corr_last, "eig3": eig3}


def correlate1d(arr: np.ndarray, weights: np.ndarray, axis: int) -> np.ndarray:
    """float32 1D correlation along ``axis`` with mirrored borders (``scipy`` "reflect")."""
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    w = np.ascontiguousarray(weights, dtype=np.float32)
    shape = arr.shape
    axis = axis % arr.ndim
    a = int(np.prod(shape[:axis], dtype=np.int64))
    n = shape[axis]
    b = int(np.prod(shape[axis + 1:], dtype=np.int64))
    out = np.empty(shape, np.float32)
    k = _compiled()
    if b == 1:
        k["corr_last"](arr.reshape(a, n), w, out.reshape(a, n))
    else:
        k["corr_mid"](arr.reshape(a, n, b), w, out.reshape(a, n, b))
    return out


def eigvalsh3(m: list[list[np.ndarray]]) -> list[np.ndarray]:
    """Descending eigenvalues of symmetric 3x3 fields given per element (float32)."""
    shape = m[0][0].shape
    flat = [np.ascontiguousarray(m[i][j], dtype=np.float32).reshape(-1)
            for i, j in ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))]
    out = [np.empty(flat[0].shape, np.float32) for _ in range(3)]
    _compiled()["eig3"](*flat, *out)
    return [o.reshape(shape) for o in out]
