"""Compiled CPU kernels (numba) behind the feature bank and the forest.

Each kernel has an array-module twin in :mod:`.features` / :mod:`.classify` (used on
CuPy and when numba is missing); tests check that both give the same numbers. The
kernels never reassociate sums (no fastmath): every output voxel adds its terms in a
fixed order, so results do not depend on how a volume is cut into blocks.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

#: numba ``parallel=True`` (prange over threads). Off by default: on a shared, busy
#: machine the threads' synchronisation costs far more than it gains (measured 3-10x
#: slower per pass on the 2-core benchmark VM), while the serial kernels already run
#: 5-30x faster than ``scipy.ndimage``. ``CORRTOMO_NUMBA_PARALLEL=1`` turns it on.
PARALLEL = os.environ.get("CORRTOMO_NUMBA_PARALLEL", "0").strip() not in ("", "0", "false")


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

    return {"corr_mid": corr_mid, "corr_last": corr_last, "eig2": eig2, "eig3": eig3,
            "magnitude": magnitude,
            "corr_first_range": corr_first_range}


def _symmetry(w: np.ndarray) -> int:
    # (plain comparisons: np.array_equal's overhead is a tenth of a small 2D pass)
    if (w == w[::-1]).all():
        return 1
    if (w == -w[::-1]).all():
        return -1
    raise ValueError("the compiled correlation takes symmetric or antisymmetric kernels")


def correlate_first_range(arr: np.ndarray, weights: np.ndarray, g0: int, g1: int, base: int,
                          n_true: int) -> np.ndarray:
    """Correlation along axis 0 giving only global rows ``g0 .. g1-1`` of a stack of
    ``n_true`` rows, of which ``arr`` holds rows ``base ..`` (mirrored at the true ends)."""
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    w = np.ascontiguousarray(weights, dtype=np.float32)
    out = np.empty((g1 - g0,) + arr.shape[1:], np.float32)
    b = math.prod(arr.shape[1:])
    inp, flat, sym = arr.reshape(arr.shape[0], b), out.reshape(g1 - g0, b), _symmetry(w)
    step = max(1, CHUNK_VOXELS // max(b, 1))  # rows per chunk (see ticking)
    for k0 in range(0, g1 - g0, step):
        if k0:
            _tick()
        _compiled()["corr_first_range"](inp, w, sym, flat[k0:k0 + step], int(g0 + k0),
                                        int(base), int(n_true))
    return out


def correlate1d(arr: np.ndarray, weights: np.ndarray, axis: int, out: np.ndarray | None = None,
                times: np.ndarray | None = None, threads: int = 1) -> np.ndarray:
    """float32 1D correlation along ``axis`` with mirrored borders (``scipy`` "reflect").

    ``out``: a C-contiguous float32 array to write into. ``times``: correlate the float32
    product ``arr * times`` instead (formed on the fly along the last axis, saving the
    product array). ``threads``: split large passes over this many threads (see :func:`_run`).
    """
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    w = np.ascontiguousarray(weights, dtype=np.float32)
    shape = arr.shape
    axis = axis % arr.ndim
    if times is not None and axis != arr.ndim - 1:
        arr, times = arr * times, None
    a = math.prod(shape[:axis])
    n = shape[axis]
    b = math.prod(shape[axis + 1:])
    if out is None:
        out = np.empty(shape, np.float32)
    flat = _flat(out)
    sym = _symmetry(w)
    k = _compiled()
    if b == 1:
        other = arr if times is None else np.ascontiguousarray(times, dtype=np.float32)
        _run(k["corr_last"], (arr.reshape(a, n), other.reshape(a, n), times is not None, w, sym,
                              flat.reshape(a, n)), (a + 15) // 16, arr.size, threads)
    else:
        _run(k["corr_mid"], (arr.reshape(a, n, b), w, sym, flat.reshape(a, n, b)),
             a * ((b + 511) // 512), arr.size, threads)
    return out


#: Passes over at least this many voxels are split into one contiguous range of work
#: items per thread (numba ``nogil`` kernels). Coarse ranges in
#: Python threads, unlike ``parallel=True`` (see :data:`PARALLEL`), cost one wait per pass
#: and no spinning, so a busy machine loses nothing; 2D images of 512^2 stay on one thread.
SPLIT_VOXELS = 1 << 20


@functools.cache
def _executor(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="corrtomo-kernel")


#: Within :func:`ticking`, a pass runs in chunks of about this many voxels (~10-50 ms of
#: work) with the tick called between them.
CHUNK_VOXELS = 1 << 21
_TICK = threading.local()


@contextlib.contextmanager
def ticking(tick: Callable[[], None] | None) -> Iterator[None]:
    """Within the block, every compiled pass of this thread calls ``tick()`` between chunks
    of about :data:`CHUNK_VOXELS` voxels: a cancel check (a callback that raises stops the
    pass there, within tens of milliseconds, not after a whole feature of a large block).
    Chunks never change a result (each output voxel is computed once, in a fixed order)."""
    previous = getattr(_TICK, "tick", None)
    _TICK.tick = tick
    try:
        yield
    finally:
        _TICK.tick = previous


def _tick() -> None:
    tick = getattr(_TICK, "tick", None)
    if tick is not None:
        tick()


def _run(kernel: Any, args: tuple, n_items: int, voxels: int, threads: int) -> None:
    """``kernel(*args, lo, hi)`` over work items ``0 .. n_items``: in chunks with a tick
    between them (see :func:`ticking`), each split into one range per thread for large
    passes. Every output voxel is computed by one item, in a fixed order, so neither
    chunks nor the split change a result."""
    ticks = getattr(_TICK, "tick", None) is not None
    step = max(1, n_items * CHUNK_VOXELS // max(voxels, 1)) if ticks else n_items
    for lo in range(0, n_items, max(step, 1)):
        if lo:
            _tick()
        hi = min(lo + step, n_items)
        _run_range(kernel, args, lo, hi, voxels * (hi - lo) // max(n_items, 1), threads)


def _run_range(kernel: Any, args: tuple, lo: int, hi: int, voxels: int, threads: int) -> None:
    """``kernel(*args, lo, hi)``, split into one range per thread for large passes."""
    if threads < 2 or voxels < SPLIT_VOXELS or hi - lo < 2:
        kernel(*args, lo, hi)
        return
    bounds = np.linspace(lo, hi, min(threads, hi - lo) + 1).astype(np.int64)
    futures = [_executor(threads).submit(kernel, *args, int(lo), int(hi))
               for lo, hi in zip(bounds[:-1], bounds[1:]) if hi > lo]
    for f in futures:
        f.result()


def _flat(out: np.ndarray) -> np.ndarray:
    """A flat view of an output array (a reshape that copied would lose the results)."""
    if out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError("compiled kernels write into C-contiguous float32 arrays only")
    return out.reshape(-1)


def magnitude(parts: list[np.ndarray], out: np.ndarray,
              threads: int = 1) -> np.ndarray:
    """``out = sqrt(sum(p * p for p in parts))`` in float32, into ``out``."""
    flat = tuple(np.ascontiguousarray(p, dtype=np.float32).reshape(-1) for p in parts)
    _run(_compiled()["magnitude"], (flat, _flat(out)), out.size, out.size, threads)
    return out


def eigvalsh(m: list[list[np.ndarray]], out: list[np.ndarray] | None = None,
             threads: int = 1) -> list[np.ndarray]:
    """Descending eigenvalues of symmetric 2x2 or 3x3 fields given per element (float32),
    into ``out`` (C-contiguous float32 arrays) when given."""
    shape = m[0][0].shape
    n = len(m)
    pairs = [(i, j) for i in range(n) for j in range(i, n)]
    flat = [np.ascontiguousarray(m[i][j], dtype=np.float32).reshape(-1) for i, j in pairs]
    if out is None:
        out = [np.empty(shape, np.float32) for _ in range(n)]
    _run(_compiled()["eig3" if n == 3 else "eig2"], (*flat, *(_flat(o) for o in out)),
         flat[0].size, flat[0].size, threads)
    return out
