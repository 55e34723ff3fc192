"""Write a lazy result into OME-Zarr chunk by chunk, so big runs never gather and can resume.

:func:`store_resumable` computes each chunk of a dask array (on the local scheduler
or a ``dask.distributed`` cluster), writes it straight into the output zarr, and
drops a marker file per finished chunk. Run it again after an interruption and it
only computes the chunks without a marker. When level 0 is complete it adds a 2x
multiscale pyramid (so napari opens the result lazily at any size) and flags the
store complete. A store from a different run (another ``signature``, shape, dtype
or chunking) is never mixed with: the call refuses, or replaces it when asked.

Unlike small exports (temporary file + rename), a resumable store is written in
place: its ``complete`` flag, not its existence, says that it is finished. While
it is written it is locked (a second writer gets a clear error, never a mixed
result), and a directory that is not a store of this program is never replaced.
What identifies a run's inputs is their content (:func:`content_digest`), not
their modification times, so an input edited in place (a painted label chunk) is
noticed.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import shutil
import socket
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .backend import as_dask, compute_all
from .io import RUN_RECORD, _axes_frame, multiscales, pyramid, run_record
from .progress import ProgressCallback, report

_DONE = ".corrtomo-done"
_LOCK_SUFFIX = ".corrtomo-lock"


def content_digest(path: str | Path) -> str:
    """BLAKE2 digest of a file's bytes, or of every file below a directory (zarr).

    A directory's digest covers each file's path relative to it and its bytes, so
    an edited, added or removed chunk changes it. ``file.h5:/dataset`` hashes the
    file. Files of this program's own bookkeeping (chunk markers, locks) are left out.
    """
    p = Path(str(path).split(":/")[0])
    if not p.exists():
        raise ValueError(f"{p}: no such file or directory")
    h = hashlib.blake2b(digest_size=20)
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file()
                                          and _DONE not in f.parts)
    for f in files:
        if p.is_dir():
            h.update(str(f.relative_to(p)).encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def blocks_done(path: str | Path, matches: Callable[[dict], bool]) -> tuple[int, int] | None:
    """(chunks written, chunks in all) of level 0 of the resumable store at ``path`` when it
    holds a run whose signature ``matches`` (one this run would pick up), else None."""
    record = run_record(path)
    if record is None or "chunks" not in record or not matches(
            json.loads(json.dumps(record.get("signature")))):
        return None
    total = int(np.prod([-(-n // c) for n, c in zip(record["shape"], record["chunks"])]))
    if record.get("complete"):
        return total, total
    markers = Path(path) / _DONE
    return (sum(1 for _ in markers.iterdir()) if markers.is_dir() else 0), total


def input_signature(paths: Sequence[str | Path]) -> list[dict]:
    """What identifies a run's input files: resolved path and content digest."""
    return [{"path": str(Path(str(p).split(":/")[0]).resolve()), "digest": content_digest(p)}
            for p in paths]


@contextlib.contextmanager
def writing(path: str | Path) -> Iterator[Path]:
    """Hold the write lock of the store at ``path`` (a sibling ``<name>.corrtomo-lock`` file).

    A second writer gets a ``ValueError`` naming the process that holds the lock; a
    lock left by a process that no longer runs (killed) is taken over. The process
    holding the lock may take it again (a command locks its outputs for the whole run,
    the store writer locks each store it writes).
    """
    path = Path(path)
    lock = path.with_name(path.name + _LOCK_SUFFIX)
    lock.parent.mkdir(parents=True, exist_ok=True)
    me = f"{socket.gethostname()} {os.getpid()}"
    if lock.exists() and lock.read_text().strip() == me:
        yield path
        return
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            holder = lock.read_text().strip() if lock.exists() else ""
            if _alive(holder):
                raise ValueError(f"{path} is being written by another run ({holder}); wait "
                                 "for it to finish or choose another output") from None
            lock.unlink(missing_ok=True)  # stale: its writer was killed
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(me)
        break
    else:  # pragma: no cover - another writer took the stale lock between our two tries
        raise ValueError(f"{path} is being written by another run; choose another output")
    try:
        yield path
    finally:
        lock.unlink(missing_ok=True)


def _alive(holder: str) -> bool:
    """Whether the lock holder ``"host pid"`` still runs (a lock from another host counts)."""
    host, _, pid = holder.rpartition(" ")
    if not pid.isdigit():
        return False
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Output:
    """One result of :func:`store_resumable_many`: a lazy array and where it goes."""

    lazy: Any
    path: str | Path
    scale: tuple[float, ...]
    units: tuple[str, ...] | str
    layer_type: str = "image"
    name: str | None = None


def completed(path: str | Path, signature: dict | None = None) -> bool:
    """True when ``path`` holds a finished store (of this ``signature``, if given)."""
    state = run_record(path)
    if state is None or not state.get("complete"):
        return False
    return signature is None or state.get("signature") == json.loads(json.dumps(signature))


def store_resumable(
    lazy: Any,
    path: str | Path,
    scale: tuple[float, ...],
    units: tuple[str, ...] | str,
    *,
    layer_type: str = "image",
    name: str | None = None,
    signature: dict | None = None,
    overwrite: bool = False,
    pyramid_min_size: int = 64,
    progress: ProgressCallback | None = None,
    scheduler: Any = None,
) -> Path:
    """Compute ``lazy`` (a dask array) into an OME-Zarr at ``path``, resumably.

    Parameters
    ----------
    lazy
        The result to compute, chunked the way it should be written.
    scale, units
        Voxel size and units of the result.
    signature
        JSON-able description of the run (inputs and parameters). A store with
        another signature is refused (or replaced with ``overwrite=True``), so a
        resumed run never mixes chunks of two different computations.
    progress
        ``progress(done, total)`` over the chunks still to compute.
    scheduler
        ``dask.distributed.Client`` (or scheduler name); default: dask's current
        scheduler (the cluster inside :func:`~napari_corrtomo.core.cluster.dask_client`).

    Returns
    -------
    The path of the completed store.
    """
    return store_resumable_many([Output(lazy, path, scale, units, layer_type, name)],
                                signature=signature, overwrite=overwrite,
                                pyramid_min_size=pyramid_min_size, progress=progress,
                                scheduler=scheduler)[0]


def store_resumable_many(
    outputs: Sequence[Output],
    *,
    signature: dict | None = None,
    overwrite: bool = False,
    pyramid_min_size: int = 64,
    progress: ProgressCallback | None = None,
    scheduler: Any = None,
) -> list[Path]:
    """:func:`store_resumable` for several results computed together, chunk by chunk.

    The outputs share one chunk grid (their trailing spatial axes): each chunk
    computes all of them in one task, so work they share (the class
    probabilities behind a segmentation and its uncertainty) is done once. A chunk
    counts as finished when it is written to every store.
    """
    if not outputs:
        raise ValueError("nothing to store")
    with contextlib.ExitStack() as locks:
        for out in outputs:
            locks.enter_context(writing(out.path))
        return _store_many(outputs, signature, overwrite, pyramid_min_size, progress, scheduler)


def _store_many(outputs: Sequence[Output], signature: dict | None, overwrite: bool,
                pyramid_min_size: int, progress: ProgressCallback | None,
                scheduler: Any) -> list[Path]:
    import dask
    import dask.array as da
    import zarr

    plans = []
    for out in outputs:
        arr = out.lazy if isinstance(out.lazy, da.Array) else da.asarray(out.lazy)
        chunks = tuple(max(c) for c in arr.chunks)
        arr = arr.rechunk(chunks)  # zarr needs regular chunks; a no-op when they already are
        scale_t, units_t = _axes_frame(arr.ndim, out.scale, out.units)
        plans.append((out, arr, chunks, scale_t, units_t, Path(out.path)))
    grid = plans[0][1].numblocks
    for _, arr, *_ in plans[1:]:
        if arr.numblocks != grid:
            raise ValueError("outputs stored together must share one chunk grid "
                             f"({grid} vs {arr.numblocks} chunks)")
    groups, done_dirs, pending = [], [], []
    for out, arr, chunks, scale_t, units_t, path in plans:
        record = {
            "signature": json.loads(json.dumps(signature or {})),
            "shape": list(arr.shape),
            "dtype": str(arr.dtype),
            "chunks": list(chunks),
            "complete": False,
        }
        state = run_record(path)
        if path.exists() and state is None and (path.is_file() or any(path.iterdir())):
            raise ValueError(
                f"{path} exists and is not a napari-corrtomo result store; it is never "
                "replaced: choose another output"
            )
        if state is not None and ({k: state.get(k) for k in record if k != "complete"}
                                  != {k: v for k, v in record.items() if k != "complete"}):
            if not overwrite:
                raise ValueError(
                    f"{path} already exists and holds a different result; choose another "
                    "output or pass overwrite (CLI: --overwrite) to replace it"
                )
            shutil.rmtree(path)
            state = None
        group = zarr.open_group(str(path), mode="a", zarr_format=2)
        name = out.name or path.name.split(".")[0]
        if state is None or "0" not in group:
            group.create_array("0", shape=arr.shape, dtype=arr.dtype, chunks=chunks,
                               chunk_key_encoding={"name": "v2", "separator": "/"},
                               fill_value=0, overwrite=True)
            group.attrs.update({RUN_RECORD: record, "multiscales": [multiscales(
                name, scale_t, units_t, 1)]})
            if out.layer_type == "labels":
                group.attrs["image-label"] = {"version": "0.4"}
        complete = bool(state and state.get("complete"))
        done_dir = path / _DONE
        if not complete:
            done_dir.mkdir(exist_ok=True)
        groups.append((group, record, name, scale_t, units_t, out.layer_type, complete))
        done_dirs.append(None if complete else done_dir)
        pending.append(not complete)

    todo = []
    for idx in itertools.product(*(range(n) for n in grid)):
        key = ".".join(map(str, idx))
        writes = []
        for (_out, arr, chunks, _, _, path), done_dir in zip(plans, done_dirs):
            if done_dir is None or (done_dir / key).exists():
                continue
            region = tuple(slice(i * c, min((i + 1) * c, s))
                           for i, c, s in zip(idx, chunks, arr.shape))
            writes.append((arr.blocks[idx], str(path / "0"), region, str(done_dir / key)))
        if writes:
            todo.append(dask.delayed(_write_chunks)(writes))
    if todo:
        compute_all(todo, progress, scheduler)
    else:
        report(progress, 1, 1)

    paths = []
    for (group, record, name, scale_t, units_t, layer_type, complete), (*_, path), done_dir in zip(
            groups, plans, done_dirs):
        if not complete:
            n_levels = _write_pyramid(group, layer_type, pyramid_min_size)
            record["complete"] = True
            group.attrs.update({RUN_RECORD: record, "multiscales": [multiscales(
                name, scale_t, units_t, n_levels)]})
            shutil.rmtree(done_dir)
        paths.append(path)
    return paths


def _write_chunks(writes: list) -> int:
    for block, array_path, region, marker in writes:
        _write_chunk(block, array_path, region, marker)
    return len(writes)


def _write_chunk(block: np.ndarray, array_path: str, region: tuple[slice, ...], marker: str) -> int:
    import zarr

    target = zarr.open_array(array_path, mode="r+")
    target[region] = np.asarray(block)
    Path(marker).touch()  # only after the data is written
    return 1


def _write_pyramid(group: Any, layer_type: str, min_size: int) -> int:
    """Write the 2x levels below level 0; returns the number of levels."""
    import dask.array as da

    levels = pyramid(as_dask(group["0"]), layer_type, min_size)
    for i, lvl in enumerate(levels, start=1):
        chunks = tuple(min(c, s) for c, s in zip(group["0"].chunks, lvl.shape))
        target = group.create_array(str(i), shape=lvl.shape, dtype=lvl.dtype, chunks=chunks,
                                    chunk_key_encoding={"name": "v2", "separator": "/"},
                                    overwrite=True)
        da.store(lvl.rechunk(chunks), target, lock=False)
    return len(levels) + 1
