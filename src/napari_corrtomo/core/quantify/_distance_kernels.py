"""Compiled (numba) distance kernels: the lower envelope of parabolas along a line
(Felzenszwalb & Huttenlocher; the exact EDT of the local thickness is built on it), the
nearest edge voxel of every voxel (an exact Euclidean feature transform carrying the
feature along each line) and the tangent-plane distances of the sub-voxel signed
distance."""

from __future__ import annotations

import numba as nb
import numpy as np

#: squared distances at or above this are "no feature on this line"
BIG = 1e30


@nb.njit(cache=True, inline="always", nogil=True)
def lower_envelope(f, n, w, out, arg, v, zb):
    """Lower envelope of the parabolas ``w (x - i)^2 + f[i]`` sampled at x = 0..n-1, and
    ``arg[x]`` the ``i`` of the lowest (-1 where there is none).

    Felzenszwalb & Huttenlocher; entries ``>= BIG`` (no feature on that line) are
    skipped. With integer ``f`` and ``w`` the result is exact (float64 arithmetic).
    """
    k = -1
    for q in range(n):
        fq = f[q]
        if fq >= BIG:
            continue
        s = -np.inf
        while k >= 0:
            p = v[k]
            s = ((fq + w * q * q) - (f[p] + w * p * p)) / (2.0 * w * (q - p))
            if s <= zb[k]:
                k -= 1
            else:
                break
        k += 1
        v[k] = q
        zb[k] = s if k > 0 else -np.inf
        zb[k + 1] = np.inf
    if k < 0:
        for q in range(n):
            out[q] = BIG
            arg[q] = -1
        return
    k = 0
    for q in range(n):
        while zb[k + 1] < q:
            k += 1
        p = v[k]
        out[q] = w * (q - p) * (q - p) + f[p]
        arg[q] = p


@nb.njit(parallel=True, cache=True, nogil=True)
def nearest_along_last(f, j, w) -> None:
    """Carry the nearest feature along the last axis of 3D ``f`` (squared distances so far,
    float32, :data:`BIG` or more where none) and ``j`` (its index, int32), in place; ``w``
    is that axis's voxel size."""
    a, b, n = f.shape
    ww = w * w
    for t in nb.prange(a * b):
        i0 = t // b
        i1 = t - i0 * b
        fl = np.empty(n)
        fo = np.empty(n)
        arg = np.empty(n, np.int64)
        v = np.empty(n, np.int64)
        zb = np.empty(n + 1)
        jl = j[i0, i1].copy()
        for p in range(n):
            fl[p] = f[i0, i1, p]
        lower_envelope(fl, n, ww, fo, arg, v, zb)
        for p in range(n):
            f[i0, i1, p] = fo[p]
            j[i0, i1, p] = jl[arg[p]] if arg[p] >= 0 else -1


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
