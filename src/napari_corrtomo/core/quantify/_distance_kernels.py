"""Compiled (numba) kernels of the sub-voxel signed distance: the nearest edge voxel of
every voxel (an exact Euclidean feature transform, separable, Felzenszwalb & Huttenlocher
lower envelopes carrying the feature along each line) and the tangent-plane distances."""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True, nogil=True)
def _lower_envelope(f, j, w, v, zb, fo, jo) -> None:
    """One line: ``fo[p] = min_q (w (p - q))^2 + f[q]`` and ``jo[p]`` the ``j`` of that q
    (``inf`` and -1 where the line holds no feature)."""
    n = f.shape[0]
    k = -1
    s = 0.0
    for q in range(n):
        fq = f[q]
        if fq == np.inf:
            continue
        while k >= 0:
            r = v[k]
            s = ((fq + (w * q) ** 2) - (f[r] + (w * r) ** 2)) / (2.0 * w * w * (q - r))
            if s <= zb[k]:
                k -= 1
            else:
                break
        k += 1
        v[k] = q
        zb[k] = -np.inf if k == 0 else s
        zb[k + 1] = np.inf
    if k < 0:
        for p in range(n):
            fo[p] = np.inf
            jo[p] = -1
        return
    m = 0
    for p in range(n):
        while zb[m + 1] < p:
            m += 1
        r = v[m]
        fo[p] = (w * (p - r)) ** 2 + f[r]
        jo[p] = j[r]


@nb.njit(parallel=True, cache=True, nogil=True)
def nearest_along_last(f, j, w) -> None:
    """Carry the nearest feature along the last axis of 3D ``f`` (squared distances so far,
    float32) and ``j`` (its index, int32), in place; ``w`` is that axis's voxel size."""
    a, b, n = f.shape
    for t in nb.prange(a * b):
        i0 = t // b
        i1 = t - i0 * b
        fl = np.empty(n)
        jl = np.empty(n, np.int32)
        fo = np.empty(n)
        jo = np.empty(n, np.int32)
        v = np.empty(n, np.int64)
        zb = np.empty(n + 1)
        for p in range(n):
            fl[p] = f[i0, i1, p]
            jl[p] = j[i0, i1, p]
        _lower_envelope(fl, jl, w, v, zb, fo, jo)
        for p in range(n):
            f[i0, i1, p] = fo[p]
            j[i0, i1, p] = jo[p]


@nb.njit(parallel=True, cache=True, nogil=True)
def tangent_distance(m, j, ez, ey, ex, offset, nz, ny, nx, sp, out) -> None:
    """``out`` = the signed distance of every voxel of 3D ``m`` to the tangent plane of its
    nearest edge voxel ``j`` (edge voxel k at ``(ez, ey, ex)[k]``, its own distance
    ``offset[k]`` and unit normal ``(nz, ny, nx)[k]``), kept on the voxel's side: >= 0 in
    ``m``, <= 0 outside."""
    a, b, c = m.shape
    for z in nb.prange(a):
        for y in range(b):
            for x in range(c):
                k = j[z, y, x]
                d = (offset[k] + (z - ez[k]) * sp[0] * nz[k] + (y - ey[k]) * sp[1] * ny[k]
                     + (x - ex[k]) * sp[2] * nx[k])
                if m[z, y, x]:
                    out[z, y, x] = max(d, 0.0)
                else:
                    out[z, y, x] = min(d, 0.0)
