"""Compiled CPU passes (numba kernels of :mod:`._filter_kernels`) behind the feature bank.

Each kernel has an array-module twin in :mod:`.features` / :mod:`.classify` (used on
CuPy, or with ``_filterbank.USE_COMPILED`` off); tests check that both give the same
numbers. The kernels never reassociate sums (no fastmath): every output voxel adds its
terms in a fixed order, so results do not depend on how a volume is cut into blocks.
"""

from __future__ import annotations

import contextlib
import functools
import math
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from . import _filter_kernels as _nb


def _symmetry(w: np.ndarray) -> int:
    # (plain comparisons: np.array_equal's overhead is a tenth of a small 2D pass)
    if (w == w[::-1]).all():
        return 1
    if (w == -w[::-1]).all():
        return -1
    raise ValueError("the compiled correlation takes symmetric or antisymmetric kernels")


def correlate_first_range(arr: np.ndarray, weights: np.ndarray, g0: int, g1: int, base: int,
                          n_true: int, out: np.ndarray | None = None) -> np.ndarray:
    """Correlation along axis 0 giving only global rows ``g0 .. g1-1`` of a stack of
    ``n_true`` rows, of which ``arr`` holds rows ``base ..`` (mirrored at the true ends);
    into ``out`` (C-contiguous float32) when given."""
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    w = np.ascontiguousarray(weights, dtype=np.float32)
    if out is None:
        out = np.empty((g1 - g0,) + arr.shape[1:], np.float32)
    b = math.prod(arr.shape[1:])
    inp, flat, sym = arr.reshape(arr.shape[0], b), _flat(out).reshape(g1 - g0, b), _symmetry(w)
    step = max(1, CHUNK_VOXELS // max(b, 1))  # rows per chunk (see ticking)
    for k0 in range(0, g1 - g0, step):
        if k0:
            _tick()
        _nb.corr_first_range(inp, w, sym, flat[k0:k0 + step], int(g0 + k0), int(base),
                             int(n_true))
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
    if b == 1:
        other = arr if times is None else np.ascontiguousarray(times, dtype=np.float32)
        _run(_nb.corr_last, (arr.reshape(a, n), other.reshape(a, n), times is not None, w, sym,
                              flat.reshape(a, n)), (a + 15) // 16, arr.size, threads)
    else:
        _run(_nb.corr_mid, (arr.reshape(a, n, b), w, sym, flat.reshape(a, n, b)),
             a * ((b + 511) // 512), arr.size, threads)
    return out


#: Passes over at least this many voxels are split into one contiguous range of work
#: items per thread (numba ``nogil`` kernels). Coarse ranges in Python threads, unlike
#: ``parallel=True`` (see :data:`._filter_kernels.PARALLEL`), cost one wait per pass
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


def current_tick() -> Callable[[], None] | None:
    """This thread's tick (see :func:`ticking`), to hand on to worker threads."""
    return getattr(_TICK, "tick", None)


def _tick() -> None:
    tick = current_tick()
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
    _run(_nb.magnitude, (flat, _flat(out)), out.size, out.size, threads)
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
    _run(getattr(_nb, "eig3" if n == 3 else "eig2"), (*flat, *(_flat(o) for o in out)),
         flat[0].size, flat[0].size, threads)
    return out
