"""Recycled float32 work arrays of the compiled filter passes (see :class:`_WorkPool`)."""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from collections.abc import Iterator

import numpy as np


class _WorkPool:
    """Recycled float32 work arrays of the compiled passes.

    A fresh large array costs a page fault per page on its first write, and on a busy
    VM those faults took more CPU time than the passes themselves (3D 128^3: 3.5 s of
    system time against 2.0 s of user time per feature stack). The passes of one scale
    take their intermediate arrays here and give them back when the scale is done, so
    the next scale (and the next call) writes into memory already mapped. Between calls
    at most :data:`KEEP_BYTES` stay (least recently returned dropped first).
    """

    def __init__(self) -> None:
        self._free: OrderedDict[int, tuple[tuple[int, ...], np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()
        self._keep = 0

    def take(self, shape: tuple[int, ...]) -> np.ndarray:
        shape = tuple(int(n) for n in shape)
        with self._lock:
            for key, (sh, arr) in reversed(self._free.items()):
                if sh == shape:
                    del self._free[key]
                    return arr
        return np.empty(shape, np.float32)

    def give(self, arrays: list[np.ndarray]) -> None:
        with self._lock:
            for arr in arrays:
                self._free[id(arr)] = (arr.shape, arr)

    def trim(self, keep: int | None = None) -> None:
        """Drop free arrays (oldest first) until at most ``keep`` bytes remain (default:
        :data:`KEEP_BYTES`, or more within :func:`keeping`)."""
        with self._lock:
            self._trim(self.keep if keep is None else keep)

    @property
    def keep(self) -> int:
        return max(KEEP_BYTES, self._keep)

    def _trim(self, keep: int) -> None:
        total = sum(a.nbytes for _, a in self._free.values())
        while self._free and total > keep:
            _, (_, arr) = self._free.popitem(last=False)
            total -= arr.nbytes

    def returned(self, arr: np.ndarray) -> None:
        """An output array nobody holds any more (see :class:`_Lease`): kept within
        :data:`KEEP_BYTES`. Never waits: when the pool is busy (or this thread is inside
        it, a garbage collection run from within) the array is simply freed."""
        if self._lock.acquire(blocking=False):
            try:
                self._free[id(arr)] = (arr.shape, arr)
                self._trim(self.keep)
            finally:
                self._lock.release()


class _Lease:
    """The owner of a feature stack taken from the pool: NumPy keeps it as the stack's
    ``base``, and when the last view of the stack is gone the memory goes back to the
    pool instead of to the system (the next stack of the same shape then writes into
    mapped pages: a 2D 512^2 stack of 49 features is 49 MB of page faults otherwise)."""

    __slots__ = ("_arr", "__array_interface__")

    def __init__(self, arr: np.ndarray):
        self._arr = arr
        self.__array_interface__ = arr.__array_interface__

    def __del__(self) -> None:
        try:
            _WORK.returned(self._arr)
        except Exception:  # pragma: no cover - interpreter shutdown
            pass


#: Free work arrays kept between feature computations (bytes; see :class:`_WorkPool`).
KEEP_BYTES = 128 << 20
_WORK = _WorkPool()


@contextlib.contextmanager
def keeping(nbytes: int) -> Iterator[None]:
    """Within the block the pool keeps up to ``nbytes`` of free work arrays between
    feature computations (a caller computing slab after slab of one volume writes into
    the same pages throughout); on leaving, back to :data:`KEEP_BYTES`. Not nestable."""
    _WORK._keep = int(nbytes)
    try:
        yield
    finally:
        _WORK._keep = 0
        _WORK.trim()
