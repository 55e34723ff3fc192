"""Compiled (numba) kernels of the exact local thickness: the look-up table of the
ridge test, the ridge test itself, and the painters of maximal balls slice by slice."""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from ._unionfind import find_root


@nb.njit(cache=True, nogil=True)
def lut(values, w, classes):
    """Remy-Thiel look-up table for the weighted integer lattice.

    ``table[k, d]`` = the smallest squared radius R such that the lattice ball
    ``{x : sum w x^2 < R}`` centred at offset ``classes[k]`` contains the lattice ball
    ``{x : sum w x^2 < d}`` centred at the origin. Only ``d`` in ``values`` are filled.
    """
    dmax = values.max() if values.size else 0
    table = np.zeros((classes.shape[0], dmax + 1), np.int64)
    for k in range(classes.shape[0]):
        v0, v1, v2 = classes[k, 0], classes[k, 1], classes[k, 2]
        for d in values:
            m = d - 1
            best = 0
            a = 0
            while w[0] * a * a <= m:
                r0 = m - w[0] * a * a
                b = 0
                while w[1] * b * b <= r0:
                    r1 = r0 - w[1] * b * b
                    c = int(math.sqrt(r1 / w[2]))
                    while w[2] * c * c > r1:
                        c -= 1
                    while w[2] * (c + 1) * (c + 1) <= r1:
                        c += 1
                    val = (w[0] * (a + v0) ** 2 + w[1] * (b + v1) ** 2 + w[2] * (c + v2) ** 2)
                    if val > best:
                        best = val
                    b += 1
                a += 1
            table[k, d] = best + 1
    return table


@nb.njit(parallel=True, cache=True, nogil=True)
def ridge_kernel(d2, offsets, cls, odist, table, integer, z0, z1, keep):
    """Ridge test of the slices ``z0 <= z < z1`` into ``keep`` (called slab by slab, so a
    caller can report progress and stop between slabs)."""
    nz, ny, nx = d2.shape
    dlut = table.shape[1] - 1
    flat = d2.ravel()
    step = (offsets[:, 0] * ny + offsets[:, 1]) * nx + offsets[:, 2]  # flat neighbour offsets
    for z in nb.prange(z0, z1):
        zin = 0 < z < nz - 1
        for y in range(ny):
            yin = zin and 0 < y < ny - 1
            base = (z * ny + y) * nx
            for x in range(nx):
                q = flat[base + x]
                if q <= 0:
                    continue
                d = int(q + 0.5) if integer else 0
                ok = True
                if integer and d <= dlut and yin and 0 < x < nx - 1:
                    # the common case, kept branch-light: interior voxel, table test
                    for j in range(step.shape[0]):
                        q2 = flat[base + x + step[j]]
                        if q2 > q and int(q2 + 0.5) >= table[cls[j], d]:
                            ok = False
                            break
                    keep[z, y, x] = ok
                    continue
                r = math.sqrt(q)
                for j in range(offsets.shape[0]):
                    zz = z + offsets[j, 0]
                    yy = y + offsets[j, 1]
                    xx = x + offsets[j, 2]
                    if zz < 0 or zz >= nz or yy < 0 or yy >= ny or xx < 0 or xx >= nx:
                        continue
                    q2 = d2[zz, yy, xx]
                    if q2 <= q:
                        continue
                    if integer and d <= dlut:
                        if int(q2 + 0.5) >= table[cls[j], d]:
                            ok = False
                            break
                    else:
                        r2 = math.sqrt(q2)
                        if r2 >= r + odist[j] + 1e-6 * r2:
                            ok = False
                            break
                keep[z, y, x] = ok


@nb.njit(cache=True, inline="always", nogil=True)
def _fill_run(out_row, nxt_row, xa, xb, v):  # pragma: no cover - compiled
    """Write ``v`` into the unpainted voxels xa..xb of one row; ``nxt_row[x]`` leads to
    the next unpainted voxel at or after x, so painted runs are skipped in O(1)."""
    x = find_root(nxt_row, xa)
    while x <= xb:
        out_row[x] = v
        nxt_row[x] = x + 1
        x = find_root(nxt_row, x + 1)


def isqrt_table(qmax: int, w: int) -> np.ndarray:
    """``table[m]`` = the largest integer ``k >= 0`` with ``w * k^2 <= m``, m = 0..qmax."""
    m = np.arange(qmax + 1, dtype=np.int64)
    k = np.floor(np.sqrt(m / w)).astype(np.int64)
    k[w * k * k > m] -= 1
    k[w * (k + 1) * (k + 1) <= m] += 1
    return k.astype(np.int32)


@nb.njit(parallel=True, cache=True, nogil=True)
def _slice_discs(z0, z1, cand, cent, wz, nchunk):
    """The discs of the candidate balls in slices z0..z1-1, slice by slice (CSR).

    Row ``j`` of ``discs`` is ``(y, x, r2, q)`` of one ball's disc: its centre, squared
    radius in that slice (``q - wz dz^2``, > 0 as ``cent[:, 4]`` is the ball's reach in
    z) and the ball's squared radius. Within a slice the discs keep the order of
    ``cand`` (decreasing radius). Built in parallel over chunks of ``cand``: each chunk
    counts, then fills its own stretch of every slice's list. One packed row per disc
    keeps the painter's reads sequential.
    """
    n = z1 - z0
    nchunk = max(1, min(nchunk, cand.shape[0] // 4096 + 1))
    size = (cand.shape[0] + nchunk - 1) // nchunk
    counts = np.zeros((nchunk, n), np.int64)
    for t in nb.prange(nchunk):
        for j in range(t * size, min((t + 1) * size, cand.shape[0])):
            c = cent[cand[j]]
            for z in range(max(c[0] - c[4], z0), min(c[0] + c[4], z1 - 1) + 1):
                counts[t, z - z0] += 1
    offsets = np.zeros(n + 1, np.int64)
    start = np.empty((nchunk, n), np.int64)
    pos = 0
    for z in range(n):
        offsets[z] = pos
        for t in range(nchunk):
            start[t, z] = pos
            pos += counts[t, z]
    offsets[n] = pos
    discs = np.empty((pos, 4), np.int32)
    for t in nb.prange(nchunk):
        fill = start[t].copy()
        for j in range(t * size, min((t + 1) * size, cand.shape[0])):
            c = cent[cand[j]]
            for z in range(max(c[0] - c[4], z0), min(c[0] + c[4], z1 - 1) + 1):
                f = fill[z - z0]
                dz = z - c[0]
                discs[f, 0] = c[1]
                discs[f, 1] = c[2]
                discs[f, 2] = c[3] - wz * dz * dz
                discs[f, 3] = c[3]
                fill[z - z0] = f + 1
    return offsets, discs


@nb.njit(parallel=True, cache=True, nogil=True)
def paint_int(z0, z1, cand, cent, unit, w3, ytab, xtab, disc_lut, nthreads, out):
    """Integer version of :func:`paint` (squared voxel sizes are integer multiples).

    In each slice a ball is a disc. Discs are visited by decreasing value, and a disc
    is skipped when one already painted in the same or a neighbouring (y, x) column
    contains it on the lattice (``r2 <= best`` for the same column; the 2D Remy-Thiel
    table ``disc_lut`` for the 8 neighbours): every voxel it covers is painted already,
    with a value at least as large. This removes most of the row work.
    """
    _, ny, nx = out.shape
    wy = w3[1]
    cap = disc_lut.shape[1] - 1
    offsets, discs = _slice_discs(z0, z1, cand, cent, w3[0], 4 * nthreads)
    for z in nb.prange(z0, z1):
        nxt = np.empty((ny, nx + 1), np.int32)
        best = np.zeros((ny, nx), np.int32)  # largest painted disc r2 per column
        for y in range(ny):
            for x in range(nx + 1):
                nxt[y, x] = x
        for j in range(offsets[z - z0], offsets[z - z0 + 1]):
            y0 = discs[j, 0]
            x0 = discs[j, 1]
            r2 = discs[j, 2]  # inside <=> r2 - wy dy^2 - wx dx^2 >= 1
            if r2 <= best[y0, x0]:
                continue
            covered = False
            if r2 <= cap:
                for ddy in range(-1, 2):
                    yy = y0 + ddy
                    if yy < 0 or yy >= ny:
                        continue
                    for ddx in range(-1, 2):
                        xx = x0 + ddx
                        if xx < 0 or xx >= nx or (ddy == 0 and ddx == 0):
                            continue
                        b = best[yy, xx]
                        k = 0 if ddy == 0 else (1 if ddx == 0 else 2)
                        if b > 0 and b >= disc_lut[k, r2]:
                            covered = True
                            break
                    if covered:
                        break
            if covered:
                continue
            best[y0, x0] = r2
            v = np.float32(2.0 * math.sqrt(discs[j, 3]) * unit)
            hy = ytab[r2 - 1]
            ya = max(y0 - hy, 0)
            yb = min(y0 + hy, ny - 1)
            for y in range(ya, yb + 1):
                dy = y - y0
                w = xtab[r2 - 1 - wy * dy * dy]
                xa = max(x0 - w, 0)
                xb = min(x0 + w, nx - 1)
                if xa > xb:
                    continue
                _fill_run(out[z, y], nxt[y], xa, xb, v)


@nb.njit(parallel=True, cache=True, nogil=True)
def paint(z0, z1, cand, cz, cy, cx, q, values, u, tol_abs, tol_rel, out):
    """Paint the balls ``cand`` (decreasing radius) into slices ``z0:z1`` of ``out``."""
    _, ny, nx = out.shape
    uz, uy, ux = u[0], u[1], u[2]
    for z in nb.prange(z0, z1):
        nxt = np.empty((ny, nx + 1), np.int32)
        for y in range(ny):
            for x in range(nx + 1):
                nxt[y, x] = x
        for j in range(cand.shape[0]):
            i = cand[j]
            tol = tol_abs + tol_rel * q[i]
            dz = (z - cz[i]) * uz
            r2 = q[i] - dz * dz
            if r2 <= tol:
                continue
            v = values[i]
            hy = int(math.sqrt(r2) / uy) + 1
            ya = max(cy[i] - hy, 0)
            yb = min(cy[i] + hy, ny - 1)
            for y in range(ya, yb + 1):
                dy = (y - cy[i]) * uy
                rr = r2 - dy * dy
                if rr <= tol:
                    continue
                w = int(math.sqrt(rr) / ux)
                while w > 0 and rr - (w * ux) * (w * ux) <= tol:
                    w -= 1
                while rr - ((w + 1) * ux) * ((w + 1) * ux) > tol:
                    w += 1
                xa = max(cx[i] - w, 0)
                xb = min(cx[i] + w, nx - 1)
                if xa > xb:
                    continue
                _fill_run(out[z, y], nxt[y], xa, xb, v)
