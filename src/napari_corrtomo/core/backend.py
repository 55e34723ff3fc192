"""Array backend: NumPy or CuPy, memory budget, and the one blockwise map-with-halo helper.

Every core function that can use a GPU takes ``backend="auto"|"numpy"|"cupy"``
and resolves it with :func:`resolve_backend`. ``"auto"`` (the default) reads the
``CORRTOMO_BACKEND`` environment variable and otherwise picks CuPy only for the
GPU paths listed in :data:`VERIFIED_GPU_PATHS` (verified on a real device) when
a CUDA device is usable, and NumPy otherwise, with a one-time note. Nothing here imports CuPy at module import
time, so importing the package on a machine without a GPU never fails.

Per-voxel work goes through :func:`map_blocks`: it tiles the trailing spatial
axes into blocks that fit the memory budget, gives each block ``halo`` voxels of
context, and crops the result, so that a function whose output at a voxel only
depends on inputs within ``halo`` voxels gives exactly the whole-array answer.
NumPy/CuPy inputs are processed eagerly; dask and zarr inputs lazily, block by
block, so volumes larger than memory (and ``dask.distributed`` clusters) work.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from ._errors import SettingError
from .progress import ProgressCallback, report, scaled

BACKENDS = ("auto", "numpy", "cupy")
ENV_BACKEND = "CORRTOMO_BACKEND"
ENV_MEMORY = "CORRTOMO_MEMORY_BUDGET"

#: Fraction of currently available memory a single call may plan to use.
DEFAULT_MEMORY_FRACTION = 0.5

#: GPU paths a run on a real device has checked against the CPU path:
#: path name -> device it was verified on. ``backend="auto"`` picks CuPy only for
#: these; an explicit ``backend="cupy"`` runs any GPU path. None verified yet.
VERIFIED_GPU_PATHS: dict[str, str] = {}

_log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- devices


@functools.cache
def cupy_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # ImportError, CUDARuntimeError, missing driver libraries ...
        return False


def requested_backend(backend: str = "auto") -> str:
    """The backend asked for: ``"auto"``, ``"numpy"`` or ``"cupy"``; ``"auto"`` honours
    ``CORRTOMO_BACKEND``. Unknown names raise ``ValueError``."""
    requested = str(backend).lower()
    if requested == "auto":
        requested = os.environ.get(ENV_BACKEND, "auto").strip().lower() or "auto"
    if requested not in BACKENDS:
        raise ValueError(
            f"unknown backend {backend!r} (or {ENV_BACKEND}={requested!r}); "
            f"choose one of {', '.join(BACKENDS)}"
        )
    return requested


def resolve_backend(backend: str = "auto", path: str | None = None) -> str:
    """Return ``"numpy"`` or ``"cupy"`` for a requested backend.

    ``"auto"`` honours ``CORRTOMO_BACKEND``; it picks CuPy only when a GPU is
    usable and ``path`` (the GPU code path's name, e.g. ``"forest.predict"``) is in
    :data:`VERIFIED_GPU_PATHS`, and otherwise the CPU (noting once per path why,
    when a GPU was there). An explicit ``"cupy"`` without a GPU is an error, never
    a silent downgrade.
    """
    requested = requested_backend(backend)
    if requested == "auto":
        return "cupy" if cupy_available() and gpu_verified(path) else "numpy"
    if requested == "cupy" and not cupy_available():
        raise SettingError(
            "$backend 'cupy' needs CuPy and a CUDA GPU, and none is usable here; install "
            "the 'gpu' extra on a GPU machine or choose 'auto' or 'numpy'", backend="backend")
    return requested


def gpu_verified(path: str | None) -> bool:
    """True when the GPU code path ``path`` is in :data:`VERIFIED_GPU_PATHS`; otherwise
    notes once why ``backend="auto"`` uses the CPU for it (call only when a GPU is there)."""
    if path in VERIFIED_GPU_PATHS:
        return True
    _note_unverified(path)
    return False


@functools.cache
def _note_unverified(path: str | None) -> None:
    _log.warning("GPU path %s is not verified on a device yet (VERIFIED_GPU_PATHS); "
                 "backend='auto' uses the CPU, backend='cupy' forces the GPU",
                 repr(path) if path else "of this step")


def xp_for(backend: str) -> ModuleType:
    """The array module (``numpy`` or ``cupy``) of a resolved backend."""
    if resolve_backend(backend) == "cupy":
        import cupy

        return cupy
    return np


def ndimage_for(backend: str) -> ModuleType:
    """``scipy.ndimage`` or ``cupyx.scipy.ndimage`` for a resolved backend."""
    if resolve_backend(backend) == "cupy":
        import cupyx.scipy.ndimage as ndi

        return ndi
    import scipy.ndimage as ndi

    return ndi


def is_cupy_array(arr: Any) -> bool:
    return type(arr).__module__.startswith("cupy")


def is_lazy(arr: Any) -> bool:
    """True for dask and zarr arrays (processed blockwise without loading)."""
    mod = type(arr).__module__
    return mod.startswith("dask") or mod.startswith("zarr")


def asarray(arr: Any, backend: str = "numpy", dtype: Any = None) -> Any:
    """Place ``arr`` on the device of ``backend`` (a host copy for NumPy)."""
    if resolve_backend(backend) == "cupy":
        import cupy

        return cupy.asarray(arr, dtype=dtype)
    return np.asarray(to_host(arr), dtype=dtype)


def to_host(arr: Any) -> Any:
    """Return a NumPy array for CuPy input; anything else is returned unchanged."""
    if is_cupy_array(arr):
        return arr.get()
    return arr


# --------------------------------------------------------------------------- memory

_SIZE_RE = re.compile(r"^\s*([0-9.]+)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}


def format_bytes(nbytes: float) -> str:
    """A memory size as people read it: 1.5 GB, 50 MB, 24 kB (decimal units, as
    :func:`parse_bytes` reads "GB")."""
    if nbytes >= 1e8:
        return f"{nbytes / 1e9:.1f} GB"
    if nbytes >= 1e6:  # (below it "0 MB" for 476 kB)
        return f"{nbytes / 1e6:.0f} MB"
    return f"{nbytes / 1e3:.3g} kB"


def parse_bytes(text: str | int | float) -> int:
    """Parse ``"8GB"``, ``"512 MiB"`` or a plain number of bytes."""
    if isinstance(text, (int, float)):
        return int(text)
    match = _SIZE_RE.match(str(text))
    if not match:
        raise ValueError(f"cannot read a memory size from {text!r}; use e.g. '8GB' or '512MiB'")
    value, unit = match.groups()
    unit = (unit or "").lower()
    binary = "i" in unit
    prefix = unit[:1] if unit[:1] in "kmgt" else ""
    factor = 1024 ** "kmgt".index(prefix) * 1024 if binary and prefix else _UNITS[prefix]
    return int(float(value) * factor)


def available_memory(backend: str = "numpy") -> int:
    """Free memory in bytes on the device of ``backend`` (host RAM for NumPy)."""
    if resolve_backend(backend) == "cupy":
        import cupy

        free, _total = cupy.cuda.runtime.memGetInfo()
        return int(free)
    import psutil

    return int(psutil.virtual_memory().available)


def memory_budget(backend: str = "numpy", budget: int | str | None = None) -> int:
    """Bytes one call may plan to use: explicit ``budget``, else ``CORRTOMO_MEMORY_BUDGET``,
    else half of what is free now on the backend's device."""
    if budget is None:
        budget = os.environ.get(ENV_MEMORY)
    if budget is not None:
        nbytes = parse_bytes(budget)
        if nbytes <= 0:
            raise ValueError(f"memory budget must be positive, got {budget!r}")
        return nbytes
    return int(available_memory(backend) * DEFAULT_MEMORY_FRACTION)


def block_shape_for(
    shape: Sequence[int],
    halo: Sequence[int],
    bytes_per_voxel: float,
    budget: int,
) -> tuple[int, ...]:
    """Largest near-cubic block whose padded size times ``bytes_per_voxel`` fits ``budget``.

    Axes shorter than the chosen edge stay whole. Raises ``ValueError`` when even a
    block of one voxel plus its halo does not fit.
    """
    shape = tuple(int(s) for s in shape)
    halo = tuple(int(h) for h in halo)

    def cost(block: Sequence[int]) -> float:
        return math.prod(min(b + 2 * h, s) for b, h, s in zip(block, halo, shape)) * bytes_per_voxel

    if cost(shape) <= budget:
        return shape
    if cost((1,) * len(shape)) > budget:
        raise SettingError(
            f"a single block with halo {halo} needs {format_bytes(cost((1,) * len(shape)))}, "
            f"more than the memory budget of {format_bytes(budget)}; raise $budget "
            "or reduce the filter size", budget=ENV_MEMORY)
    lo, hi = 1, max(shape)
    while lo < hi:  # binary search on the common edge length
        mid = (lo + hi + 1) // 2
        if cost(tuple(min(mid, s) for s in shape)) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return tuple(min(lo, s) for s in shape)


# --------------------------------------------------------------------------- blockwise


@dataclass(frozen=True)
class Block:
    """One tile of the spatial grid: where it writes (``inner``) and what it reads (``outer``)."""

    inner: tuple[slice, ...]
    outer: tuple[slice, ...]

    @property
    def crop(self) -> tuple[slice, ...]:
        """Slices that cut ``inner`` out of an array shaped like ``outer``."""
        return tuple(
            slice(i.start - o.start, i.stop - o.start) for i, o in zip(self.inner, self.outer)
        )


def iter_blocks(
    shape: Sequence[int], block_shape: Sequence[int], halo: Sequence[int]
) -> list[Block]:
    """The blocks covering ``shape``; halos are clipped at the array edge (never padded)."""
    ranges = [
        [(start, min(start + b, s)) for start in range(0, s, b)]
        for s, b in zip(shape, block_shape)
    ]
    blocks = []
    for corner in itertools.product(*ranges):
        inner = tuple(slice(a, b) for a, b in corner)
        outer = tuple(
            slice(max(a - h, 0), min(b + h, s)) for (a, b), h, s in zip(corner, halo, shape)
        )
        blocks.append(Block(inner, outer))
    return blocks


def _overlap_depth(halo: Sequence[int], shape: Sequence[int]) -> tuple[int, ...]:
    """The halo dask's overlap takes per axis: at most the axis (a longer one reaches past
    both edges anyway); :func:`rechunk_for_halo` makes every chunk at least this deep."""
    return tuple(min(int(h), int(n)) for h, n in zip(halo, shape))


def _halo_tuple(halo: int | Sequence[int], ndim: int) -> tuple[int, ...]:
    if np.isscalar(halo):
        return (int(halo),) * ndim
    halo = tuple(int(h) for h in halo)  # type: ignore[union-attr]
    if len(halo) != ndim:
        raise ValueError(f"halo has {len(halo)} entries but there are {ndim} spatial axes")
    return halo


def map_blocks(
    func: Callable[[Any], Any],
    image: Any,
    halo: int | Sequence[int],
    *,
    spatial_ndim: int | None = None,
    backend: str = "numpy",
    bytes_per_voxel: float = 64.0,
    block_shape: Sequence[int] | None = None,
    budget: int | str | None = None,
    progress: ProgressCallback | None = None,
    out_leading: Sequence[int] | None = None,
    out_dtype: Any = None,
    inner_progress: bool = False,
) -> Any:
    """Apply ``func`` blockwise with ``halo`` voxels of context, as if on the whole array.

    Parameters
    ----------
    func
        ``func(block) -> array``. ``block`` is ``image[..., outer]``: leading
        (non-spatial) axes whole, the last ``spatial_ndim`` axes cut to the block
        plus its halo (clipped at the array edge). The output's trailing axes must
        have the block's padded spatial shape; its leading axes may differ from the
        input's (e.g. ``(C, z, y, x) -> (K, z, y, x)``) but must be the same for
        every block.
    image
        NumPy, CuPy, dask or zarr array ``(..., *spatial)``.
    halo
        Context in voxels per spatial axis (int for all). Results are exact when
        ``func``'s output at a voxel depends only on inputs within ``halo``.
    spatial_ndim
        Number of trailing axes to tile; default all axes.
    backend
        ``"numpy"`` or ``"cupy"``: blocks are moved to that device before ``func``
        and results come back to the host (NumPy).
    bytes_per_voxel
        Working memory ``func`` needs per padded voxel; with ``budget`` it sets the
        block size for in-memory inputs.
    block_shape
        Force a spatial block shape instead of the budget's (for dask input: the
        largest chunk; smaller input chunks are kept).
    budget
        Memory budget in bytes or as text (``"4GB"``); see :func:`memory_budget`.
    progress
        ``progress(done, total)`` after each block (in-memory inputs).
    out_leading, out_dtype
        The output's leading (non-spatial) shape, e.g. ``(K,)`` or ``()``, and dtype.
        For dask input, giving both builds the graph without computing anything;
        otherwise one block is computed eagerly (in this process, and again in the
        graph) to learn them.
    inner_progress
        ``func`` takes a ``progress`` keyword and reports ``(done, total)`` within its
        block (e.g. per plane): the overall bar moves inside blocks and a caller can
        cancel mid-block. Lazy inputs pass ``progress=None`` (their chunks report).

    Returns
    -------
    NumPy array for NumPy/CuPy input; a lazy dask array for dask/zarr input, whose
    chunks are the input's spatial chunks, merged up to twice the halo and split
    down to what the memory budget allows. Chunks smaller than twice the halo never
    give wrong answers (every block reads its halo from the whole array); they are
    merged only because they would waste work.
    """
    ndim = image.ndim if spatial_ndim is None else int(spatial_ndim)
    if not 1 <= ndim <= image.ndim:
        raise ValueError(f"spatial_ndim={spatial_ndim} does not fit an array of {image.ndim} dims")
    spatial_shape = tuple(image.shape[-ndim:])
    halo_t = _halo_tuple(halo, ndim)
    backend = resolve_backend(backend)

    def run(block: Any, sub: ProgressCallback | None = None) -> np.ndarray:
        kwargs = {"progress": sub} if inner_progress else {}
        out = to_host(func(asarray(block, backend), **kwargs))
        if tuple(out.shape[-ndim:]) != tuple(block.shape[-ndim:]):
            raise ValueError(
                f"block function returned spatial shape {out.shape[-ndim:]} for a block of "
                f"{block.shape[-ndim:]}; it must preserve the spatial shape"
            )
        return out

    if block_shape is None:
        lead = math.prod(image.shape[:-ndim]) if image.ndim > ndim else 1
        nbytes = memory_budget(backend, budget)
        block_shape = block_shape_for(spatial_shape, halo_t, bytes_per_voxel * lead, nbytes)
    if is_lazy(image):
        meta = None
        if out_leading is not None and out_dtype is not None:
            meta = (tuple(int(n) for n in out_leading), np.dtype(out_dtype))
        return _map_blocks_dask(run, image, halo_t, ndim, tuple(block_shape), meta)

    blocks = iter_blocks(spatial_shape, tuple(block_shape), halo_t)
    lead_index = (slice(None),) * (image.ndim - ndim)
    result = None
    unit = 1000 if inner_progress else 1  # progress steps per block
    total = unit * len(blocks)
    for i, blk in enumerate(blocks):
        out = run(image[lead_index + blk.outer], scaled(progress, i * unit, (i + 1) * unit, total))
        if result is None:
            result = np.empty(out.shape[:-ndim] + spatial_shape, dtype=out.dtype)
        result[(slice(None),) * (out.ndim - ndim) + blk.inner] = out[
            (slice(None),) * (out.ndim - ndim) + blk.crop
        ]
        report(progress, (i + 1) * unit, total)
    return result


def as_dask(arr: Any) -> Any:
    """A dask array for a dask, zarr or in-memory array.

    zarr arrays are inlined into each chunk's task (``inline_array=True``): a shared
    "original-" key is culled from some of the per-chunk graphs that go to a
    ``dask.distributed`` client together, which fails intermittently with a KeyError.
    """
    import dask.array as da

    if isinstance(arr, da.Array):
        return arr
    if type(arr).__module__.startswith("zarr"):
        return da.from_zarr(arr, inline_array=True)
    return da.asarray(arr)


def rechunk_for_halo(arr: Any, halo: Sequence[int], spatial_ndim: int,
                     max_block: Sequence[int] | None = None) -> Any:
    """Dask array with leading axes in one chunk and spatial chunks that suit the halo.

    Spatial chunks smaller than ``2 * halo`` are merged (small chunks with a large
    halo waste work; answers never change), and chunks larger than ``max_block``
    (from the memory budget) are split so that one padded block fits in memory. Every
    chunk holds at least ``halo`` voxels (or the whole axis): dask's overlap takes a
    block's halo from its neighbouring chunk alone.
    """
    from dask.array.overlap import ensure_minimum_chunksize

    arr = as_dask(arr)
    lead = arr.ndim - spatial_ndim
    target: dict[int, Any] = {i: -1 for i in range(lead)}
    for k, (ax, h) in enumerate(zip(range(lead, arr.ndim), halo)):
        size, biggest = arr.shape[ax], max(arr.chunks[ax])
        limit = size if max_block is None else max(int(max_block[k]), 1)
        if biggest > limit:
            target[ax] = limit
        elif min(arr.chunks[ax]) < 2 * h:
            target[ax] = min(max(2 * h, biggest), size, max(limit, 2 * h))
        else:
            target[ax] = arr.chunks[ax]
    arr = arr.rechunk(target)
    return arr.rechunk(arr.chunks[:lead] + tuple(
        ensure_minimum_chunksize(d, c) if d else c
        for d, c in zip(_overlap_depth(halo, arr.shape[lead:]), arr.chunks[lead:])))


def _map_blocks_dask(run: Callable[[Any], np.ndarray], image: Any, halo: tuple[int, ...], ndim: int,
                     max_block: tuple[int, ...], meta: tuple[tuple[int, ...], Any] | None = None):
    """One blockwise graph: dask's overlap (no padding at the array edges, so each padded
    block is ``image[..., outer]``), ``run`` on each, the halo cropped away."""
    import dask.array as da

    arr = rechunk_for_halo(image, halo, ndim, max_block)
    lead = arr.ndim - ndim
    depth = _overlap_depth(halo, arr.shape[lead:])
    padded = da.overlap.overlap(arr, depth=(0,) * lead + depth, boundary="none")
    if meta is None:  # one block, computed here, tells the output's leading shape and dtype
        first = run(np.asarray(padded.blocks[(0,) * arr.ndim].compute(scheduler="sync")))
        meta = (tuple(first.shape[:-ndim]), first.dtype)
    out_lead, dtype = meta
    return da.map_blocks(
        _run_and_crop, padded, run=run, depth=depth,
        chunks=tuple((n,) for n in out_lead) + arr.chunks[lead:], dtype=dtype,
        drop_axis=list(range(lead)) or None, new_axis=list(range(len(out_lead))) or None,
        meta=np.empty((0,) * (len(out_lead) + ndim), dtype=dtype))


def _run_and_crop(block: Any, run: Callable[[Any], np.ndarray], depth: tuple[int, ...],
                  block_info: dict | None = None) -> np.ndarray:
    """``run(block)`` without the halo: ``depth`` voxels on each side that has a neighbour."""
    where = block_info[0]["chunk-location"][-len(depth):]
    shape = block_info[None]["chunk-shape"][-len(depth):]
    crop = tuple(slice(d if i else 0, (d if i else 0) + n) for d, i, n in zip(depth, where, shape))
    return run(np.asarray(block))[(Ellipsis,) + crop]


def current_client() -> Any:
    """The ``dask.distributed.Client`` set as dask's scheduler
    (``dask.config.set(scheduler=client)``), or None."""
    import dask

    sched = dask.config.get("scheduler", None)
    return sched if hasattr(sched, "compute") and hasattr(sched, "submit") else None


def reduce_blocks(func: Callable[..., Any], *arrays: Any, combine: Callable[[list], Any],
                  halo: int | Sequence[int] = 0, progress: ProgressCallback | None = None,
                  scheduler: Any = None) -> Any:
    """Per-block partial results, merged: ``combine([func(*blocks, block) ...])``.

    ``arrays`` are NumPy (one block) or dask/zarr arrays of one shape (blocks follow
    the first lazy array's chunks). ``func(*blocks, block)`` gets NumPy blocks of
    ``block.outer`` (the chunk ``block.inner`` plus ``halo`` voxels, clipped at the
    array edge; see :class:`Block`) and returns something small (counts, sums, a
    histogram, per-label statistics); ``combine`` merges the list, in block order.
    Only the partial results travel back, so the arrays are never gathered.
    """
    import dask

    shape = tuple(np.shape(arrays[0]))
    for a in arrays[1:]:
        if tuple(np.shape(a)) != shape:
            raise ValueError(f"arrays of shapes {shape} and {tuple(np.shape(a))} cannot be "
                             "reduced together; they must cover the same voxels")
    halo_t = _halo_tuple(halo, len(shape))
    lazy = [a for a in arrays if is_lazy(a)]
    if not lazy:
        whole = tuple(slice(0, n) for n in shape)
        report(progress, 1, 1)
        return combine([func(*[np.asarray(a) for a in arrays], Block(whole, whole))])
    import dask.array as da

    ref = next(a for a in arrays if is_lazy(a))
    ref = as_dask(ref)
    if any(halo_t):  # chunks much smaller than the halo would re-read it many times
        ref = rechunk_for_halo(ref, halo_t, len(shape))
    arrs = [as_dask(a) if is_lazy(a) else da.from_array(np.asarray(a), chunks=ref.chunks)
            for a in arrays]
    arrs = [a if a.chunks == ref.chunks else a.rechunk(ref.chunks) for a in arrs]
    if any(halo_t):  # every block with its halo, in one graph layer per array
        depth = dict(enumerate(_overlap_depth(halo_t, shape)))
        arrs = [da.overlap.overlap(a, depth=depth, boundary="none") for a in arrs]
    pieces = [a.to_delayed() for a in arrs]
    starts = [np.cumsum((0,) + c) for c in ref.chunks]
    tasks = []
    for idx in itertools.product(*(range(n) for n in ref.numblocks)):
        inner = tuple(slice(int(s[i]), int(s[i + 1])) for s, i in zip(starts, idx))
        outer = tuple(slice(max(sl.start - h, 0), min(sl.stop + h, n))
                      for sl, h, n in zip(inner, halo_t, shape))
        tasks.append(dask.delayed(func)(*[p[idx] for p in pieces], Block(inner, outer)))
    return combine(compute_all(tasks, progress, scheduler))


def compute(lazy: Any, progress: ProgressCallback | None = None, scheduler: Any = None) -> Any:
    """Compute one dask collection, reporting finished tasks to ``progress``.

    ``scheduler`` may be a ``dask.distributed.Client`` (its cluster does the work)
    or a dask scheduler name; default: dask's current scheduler.
    """
    return compute_all([lazy], progress, scheduler)[0]


def compute_all(items: Sequence[Any], progress: ProgressCallback | None = None,
                scheduler: Any = None) -> list:
    """Compute several dask collections/delayed objects together; results in order.

    Progress counts finished tasks (local schedulers) or finished items (a
    ``dask.distributed.Client``, whose futures are gathered as they complete).
    Without ``scheduler``, a client set with ``dask.config.set(scheduler=client)``
    (what ``corrtomo --scheduler/--workers`` does) is used.
    """
    import dask

    items = list(items)
    if scheduler is None:
        scheduler = current_client()
    if scheduler is not None and hasattr(scheduler, "compute"):
        from distributed import as_completed

        futures = scheduler.compute(items)
        position = {f.key: i for i, f in enumerate(futures)}
        results: list = [None] * len(items)
        for done, fut in enumerate(as_completed(futures, loop=scheduler.loop), start=1):
            results[position[fut.key]] = fut.result()
            report(progress, done, len(items))
        return results

    from dask.callbacks import Callback

    class _Report(Callback):
        def _start_state(self, dsk, state):
            self._total = sum(len(state[k]) for k in ("ready", "waiting", "running", "finished"))
            self._done = 0

        def _posttask(self, key, result, dsk, state, worker_id):
            self._done += 1
            report(progress, self._done, self._total)

    with _Report():
        return list(dask.compute(*items, scheduler=scheduler))
