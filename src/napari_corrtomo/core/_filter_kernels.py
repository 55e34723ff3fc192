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


@numba.njit(parallel=PARALLEL, cache=True, nogil=True)
def corr_mid(inp, w, sym, out, lo_item, hi_item):  # pragma: no cover - compiled
    """out[i, k, :] = sum_j w[j] inp[i, reflect(k + j - r), :] for (a, n, b) arrays.

    ``sym`` = +1 / -1 for a symmetric / antisymmetric kernel (Gaussian derivatives of
    even / odd order): mirrored taps are paired, halving the multiplications. Work
    items are (i, tile of b): a tile's column of n values stays in cache for all k.
    """
    a, n, b = inp.shape
    taps = w.shape[0]
    r = taps // 2
    tile = 512
    n_tiles = (b + tile - 1) // tile
    for item in prange(lo_item, min(hi_item, a * n_tiles)):
        i = item // n_tiles
        x0 = (item % n_tiles) * tile
        x1 = min(x0 + tile, b)
        m = x1 - x0
        for k in range(n):
            o = out[i, k, x0:x1]
            c = inp[i, k, x0:x1]
            wc = w[r]
            for x in range(m):
                o[x] = wc * c[x]
            for j in range(r):
                lo = inp[i, reflect(k + j - r, n), x0:x1]
                hi = inp[i, reflect(k + r - j, n), x0:x1]
                wj = w[j]
                if sym > 0:
                    for x in range(m):
                        o[x] += wj * (lo[x] + hi[x])
                else:
                    for x in range(m):
                        o[x] += wj * (lo[x] - hi[x])


@numba.njit(parallel=PARALLEL, cache=True, nogil=True)
def corr_first_range(inp, w, sym, out, g0, base, n_true):  # pragma: no cover - compiled
    """Like corr_mid along axis 0 of (n_in, b) for output rows g0 .. g0 + n_out - 1 of a
    stack of n_true rows, of which ``inp`` holds rows base .. base + n_in - 1."""
    n_out, b = out.shape
    taps = w.shape[0]
    r = taps // 2
    tile = 2048
    n_tiles = (b + tile - 1) // tile
    for item in prange(n_out * n_tiles):
        k = item // n_tiles
        x0 = (item % n_tiles) * tile
        x1 = min(x0 + tile, b)
        m = x1 - x0
        g = g0 + k
        o = out[k, x0:x1]
        c = inp[g - base, x0:x1]
        wc = w[r]
        for x in range(m):
            o[x] = wc * c[x]
        for j in range(r):
            lo = inp[reflect(g + j - r, n_true) - base, x0:x1]
            hi = inp[reflect(g + r - j, n_true) - base, x0:x1]
            wj = w[j]
            if sym > 0:
                for x in range(m):
                    o[x] += wj * (lo[x] + hi[x])
            else:
                for x in range(m):
                    o[x] += wj * (lo[x] - hi[x])


@numba.njit(parallel=PARALLEL, cache=True, nogil=True)
def corr_last(inp, inp2, product, w, sym, out, lo_item, hi_item):  # pragma: no cover
    """out[i, k] = sum_j w[j] v[i, reflect(k + j - r)] for (a, n) arrays (see corr_mid),
    v = inp, or inp * inp2 (float32 products) when ``product``.

    Each row is copied once into a mirrored buffer; the taps then run over
    unit-stride slices of it, a loop LLVM turns into SIMD (an index such as
    ``k + 2r - j`` would need a wrap-around check per element and stay scalar).
    """
    a, n = inp.shape
    taps = w.shape[0]
    r = taps // 2
    rows = 16
    for chunk in prange(lo_item, min(hi_item, (a + rows - 1) // rows)):
        pad = np.empty(n + 2 * r, np.float32)
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
            o = out[i]
            c = pad[r:r + n]
            wc = w[r]
            for k in range(n):
                o[k] = wc * c[k]
            for j in range(r):
                lo = pad[j:j + n]
                hi = pad[2 * r - j:2 * r - j + n]
                wj = w[j]
                if sym > 0:
                    for k in range(n):
                        o[k] += wj * (lo[k] + hi[k])
                else:
                    for k in range(n):
                        o[k] += wj * (lo[k] - hi[k])


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


@numba.njit(parallel=PARALLEL, cache=True, nogil=True, error_model="numpy")
def eig3(a11, a12, a13, a22, a23, a33, e1, e2, e3, lo_item, hi_item):  # pragma: no cover
    """Descending eigenvalues of symmetric 3x3 matrices (Smith 1961), flat arrays."""
    # float64 inside: Weyl-bounded error from float32 inputs only
    for i in prange(lo_item, min(hi_item, a11.shape[0])):
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
        # p == 0 (a multiple of the identity): r = 0 keeps the arithmetic finite
        safe = p if p > 0 else 1.0
        det = (b11 * (b22 * b33 - x23 * x23) - x12 * (x12 * b33 - x23 * x13)
               + x13 * (x12 * x23 - b22 * x13))
        r = det / (2.0 * safe * safe * safe)
        r = min(max(r, -1.0), 1.0)
        # c = cos(acos(r) / 3) without trigonometric calls (which keep the loop scalar):
        # c is the root in [1/2, 1] of 4c^3 - 3c = r. With t = sqrt(1 + r) and
        # c = 1/2 + t u this is 4t u^3 + 6u^2 = 1, whose root u in [0.3535, 0.4083]
        # is simple for every t in [0, sqrt 2]: from the chord (error < 0.005) two
        # Newton steps leave < 1e-9, far below the float32 rounding of the output.
        t = np.sqrt(1.0 + r)
        u = 0.408248290463863 - 0.0386751345948129 * t
        u2 = u * u
        u -= (4.0 * t * u2 * u + 6.0 * u2 - 1.0) / (12.0 * t * u2 + 12.0 * u)
        u2 = u * u
        u -= (4.0 * t * u2 * u + 6.0 * u2 - 1.0) / (12.0 * t * u2 + 12.0 * u)
        c = 0.5 + t * u
        # cos(phi + 2 pi / 3) = -cos(phi) / 2 - sin(phi) sqrt(3) / 2, phi in [0, pi/3]
        sn = np.sqrt(max((1.0 - c) * (1.0 + c), 0.0))
        v1 = q + 2.0 * p * c
        v3 = q - p * (c + 1.7320508075688772 * sn)
        e1[i] = v1
        e2[i] = 3.0 * q - v1 - v3
        e3[i] = v3
