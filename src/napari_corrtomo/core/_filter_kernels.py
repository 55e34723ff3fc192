"""The numba kernels of :mod:`._kernels`.

They live at module level so that numba's on-disk cache finds them again in the next
process: kernels defined inside a function (closures over each other) miss the cache and
recompile for 10-40 s in every new process, uncancellable.
"""

import os

import numba
import numpy as np
from numba import prange

#: numba ``parallel=True`` (prange over threads). Off by default: on a shared, busy
#: machine the threads' synchronisation costs far more than it gains (measured 3-10x
#: slower per pass on the 2-core benchmark VM), while the serial kernels already run
#: 5-30x faster than ``scipy.ndimage``. ``CORRTOMO_NUMBA_PARALLEL=1`` turns it on.
PARALLEL = os.environ.get("CORRTOMO_NUMBA_PARALLEL", "0").strip() not in ("", "0", "false")


@numba.njit(cache=True, inline="always")
def reflect(i, n):  # scipy.ndimage mode "reflect" (half-sample symmetric)
    period = 2 * n
    m = i % period
    if m < 0:
        m += period
    if m >= n:
        m = period - 1 - m
    return m


@numba.njit(cache=True, inline="always")
def taps(o, src, offs, w, sym):  # pragma: no cover - compiled
    """o[x] = sum_t w[t] src[offs[t] + x] for the 2r + 1 taps t of ``w``, x < len(o): the
    one tap loop of every correlation kernel (``offs``: where each tap's run of ``src``
    starts; rows of a contiguous array, or shifts in a mirrored row buffer).

    ``sym`` = +1 / -1 for a symmetric / antisymmetric kernel (Gaussian derivatives of
    even / odd order): mirrored taps are paired, halving the multiplications. The terms
    are added in a fixed order (centre, then the pairs from the outside in), so a voxel's
    value does not depend on how a pass is cut into work items. (Sweeping ``o`` once per
    four pairs gave the same numbers but ran slower on 3D passes: measured, not kept.)
    """
    m = o.shape[0]
    r = w.shape[0] // 2
    c = src[offs[r]:offs[r] + m]
    wc = w[r]
    for x in range(m):
        o[x] = wc * c[x]
    for j in range(r):
        lo = src[offs[j]:offs[j] + m]
        hi = src[offs[2 * r - j]:offs[2 * r - j] + m]
        wj = w[j]
        if sym > 0:
            for x in range(m):
                o[x] += wj * (lo[x] + hi[x])
        else:
            for x in range(m):
                o[x] += wj * (lo[x] - hi[x])


@numba.njit(parallel=PARALLEL, cache=True, nogil=True)
def corr_mid(inp, w, sym, out, lo_item, hi_item):  # pragma: no cover - compiled
    """out[i, k, :] = sum_j w[j] inp[i, reflect(k + j - r), :] for (a, n, b) arrays (see
    :func:`taps`). Work items are (i, tile of b): a tile's column of n values stays in cache
    for all k."""
    a, n, b = inp.shape
    taps_n = w.shape[0]
    r = taps_n // 2
    tile = 512
    n_tiles = (b + tile - 1) // tile
    for item in prange(lo_item, min(hi_item, a * n_tiles)):
        i = item // n_tiles
        x0 = (item % n_tiles) * tile
        x1 = min(x0 + tile, b)
        src = inp[i].reshape(n * b)
        offs = np.empty(taps_n, np.int64)
        for k in range(n):
            for t in range(taps_n):
                offs[t] = reflect(k + t - r, n) * b + x0
            taps(out[i, k, x0:x1], src, offs, w, sym)


@numba.njit(parallel=PARALLEL, cache=True, nogil=True)
def corr_first_range(inp, w, sym, out, g0, base, n_true):  # pragma: no cover - compiled
    """Like corr_mid along axis 0 of (n_in, b) for output rows g0 .. g0 + n_out - 1 of a
    stack of n_true rows, of which ``inp`` holds rows base .. base + n_in - 1."""
    n_out, b = out.shape
    n_in = inp.shape[0]
    taps_n = w.shape[0]
    r = taps_n // 2
    tile = 2048
    n_tiles = (b + tile - 1) // tile
    src = inp.reshape(n_in * b)
    for item in prange(n_out * n_tiles):
        k = item // n_tiles
        x0 = (item % n_tiles) * tile
        x1 = min(x0 + tile, b)
        g = g0 + k
        offs = np.empty(taps_n, np.int64)
        for t in range(taps_n):
            offs[t] = (reflect(g + t - r, n_true) - base) * b + x0
        taps(out[k, x0:x1], src, offs, w, sym)


@numba.njit(parallel=PARALLEL, cache=True, nogil=True)
def corr_last(inp, inp2, product, w, sym, out, lo_item, hi_item):  # pragma: no cover
    """out[i, k] = sum_j w[j] v[i, reflect(k + j - r)] for (a, n) arrays (see :func:`taps`),
    v = inp, or inp * inp2 (float32 products) when ``product``.

    Each row is copied once into a mirrored buffer; the taps then run over
    unit-stride slices of it, a loop LLVM turns into SIMD (an index such as
    ``k + 2r - j`` would need a wrap-around check per element and stay scalar).
    """
    a, n = inp.shape
    taps_n = w.shape[0]
    r = taps_n // 2
    rows = 16
    for chunk in prange(lo_item, min(hi_item, (a + rows - 1) // rows)):
        pad = np.empty(n + 2 * r, np.float32)
        offs = np.arange(taps_n)  # tap t reads pad[t:t + n]
        for i in range(chunk * rows, min(chunk * rows + rows, a)):
            src = inp[i]
            if product:
                src2 = inp2[i]
                body = pad[r:r + n]
                for k in range(n):
                    body[k] = src[k] * src2[k]
                for k in range(r):
                    pad[k] = pad[r + reflect(k - r, n)]
                    pad[n + r + k] = pad[r + reflect(n + k, n)]
            else:
                for k in range(r):
                    pad[k] = src[reflect(k - r, n)]
                    pad[n + r + k] = src[reflect(n + k, n)]
                pad[r:r + n] = src
            taps(out[i], pad, offs, w, sym)


@numba.njit(parallel=PARALLEL, cache=True, nogil=True, error_model="numpy")
def magnitude(parts, out, lo_item, hi_item):  # pragma: no cover - compiled
    """out = sqrt(sum of squares of the arrays in ``parts``), flat float32 arrays."""
    for i in prange(lo_item, min(hi_item, out.shape[0])):
        acc = np.float32(0.0)
        for part in parts:
            acc += part[i] * part[i]
        out[i] = np.sqrt(acc)


@numba.njit(parallel=PARALLEL, cache=True, nogil=True, error_model="numpy")
def eig2(a11, a12, a22, e1, e2, lo_item, hi_item):  # pragma: no cover - compiled
    """Descending eigenvalues of symmetric 2x2 matrices, flat arrays (float64 inside)."""
    for i in prange(lo_item, min(hi_item, a11.shape[0])):
        x11 = np.float64(a11[i])
        x22 = np.float64(a22[i])
        x12 = np.float64(a12[i])
        mean = 0.5 * (x11 + x22)
        h = 0.5 * (x11 - x22)
        rad = np.sqrt(h * h + x12 * x12)
        e1[i] = mean + rad
        e2[i] = mean - rad


#: voxels per block of :func:`eig3` (its float64 buffers, 9 x 256 x 8 bytes, stay in L1)
EIG_BLOCK = 256


@numba.njit(parallel=PARALLEL, cache=True, nogil=True, error_model="numpy")
def eig3(a11, a12, a13, a22, a23, a33, e1, e2, e3, lo_item, hi_item):  # pragma: no cover
    """Descending eigenvalues of symmetric 3x3 matrices (Smith 1961), flat arrays.

    Block by block through small float64 buffers: over nine separate arrays LLVM cannot
    rule out overlaps within its limit of run-time checks and ran the loop scalar; over
    two buffers it runs SIMD (2.2x faster measured, the same numbers bit for bit).
    """
    hi = min(hi_item, a11.shape[0])
    n_blocks = (hi - lo_item + EIG_BLOCK - 1) // EIG_BLOCK if hi > lo_item else 0
    for blk in prange(n_blocks):
        buf = np.empty((6, EIG_BLOCK))
        res = np.empty((3, EIG_BLOCK))
        s0 = lo_item + blk * EIG_BLOCK
        m = min(EIG_BLOCK, hi - s0)
        for k, src in enumerate((a11, a12, a13, a22, a23, a33)):
            for i in range(m):
                buf[k, i] = src[s0 + i]
        _eig3_block(buf, res, m)
        for k, dst in enumerate((e1, e2, e3)):
            for i in range(m):
                dst[s0 + i] = res[k, i]


@numba.njit(cache=True, inline="always", error_model="numpy")
def _eig3_block(buf, res, m):  # pragma: no cover - compiled
    """res[:, i] = descending eigenvalues of the matrices buf[:, i] (a11 a12 a13 a22 a23
    a33), i < m."""
    # float64 inside: Weyl-bounded error from float32 inputs only
    for i in range(m):
        x11 = buf[0, i]
        x12 = buf[1, i]
        x13 = buf[2, i]
        x22 = buf[3, i]
        x23 = buf[4, i]
        x33 = buf[5, i]
        q = (x11 + x22 + x33) * (1.0 / 3.0)  # (divisions are the slow part here)
        b11 = x11 - q
        b22 = x22 - q
        b33 = x33 - q
        p1 = x12 * x12 + x13 * x13 + x23 * x23
        p2 = b11 * b11 + b22 * b22 + b33 * b33 + 2.0 * p1
        p = np.sqrt(p2 * (1.0 / 6.0))
        # p == 0 (a multiple of the identity): r = 0 keeps the arithmetic finite
        safe = p if p > 0 else 1.0
        det = (b11 * (b22 * b33 - x23 * x23) - x12 * (x12 * b33 - x23 * x13)
               + x13 * (x12 * x23 - b22 * x13))
        r = det / (2.0 * safe * safe * safe)
        r = min(max(r, -1.0), 1.0)
        # c = cos(acos(r) / 3) without trigonometric calls (which keep the loop scalar):
        # c is the root in [1/2, 1] of 4c^3 - 3c = r. With t = sqrt(1 + r) and
        # c = 1/2 + t u this is 4t u^3 + 6u^2 = 1, whose root u in [0.3535, 0.4083]
        # is simple for every t in [0, sqrt 2]: from a degree-5 least-squares fit at
        # Chebyshev nodes (error < 7e-7) one Newton step leaves < 2e-9 (measured against
        # float64 acos / cos), far below the float32 rounding of the output.
        t = np.sqrt(1.0 + r)
        u = ((((-0.0003581632944914546 * t + 0.002243600085977323) * t
               - 0.007183056398540072) * t + 0.018596618856630626) * t
             - 0.05552170373447767) * t + 0.40824765778393796
        u2 = u * u
        u -= (4.0 * t * u2 * u + 6.0 * u2 - 1.0) / (12.0 * t * u2 + 12.0 * u)
        c = 0.5 + t * u
        # cos(phi + 2 pi / 3) = -cos(phi) / 2 - sin(phi) sqrt(3) / 2, phi in [0, pi/3]
        sn = np.sqrt(max((1.0 - c) * (1.0 + c), 0.0))
        v1 = q + 2.0 * p * c
        v3 = q - p * (c + 1.7320508075688772 * sn)
        res[0, i] = v1
        res[1, i] = 3.0 * q - v1 - v3
        res[2, i] = v3
