"""Write a lazy result into OME-Zarr chunk by chunk, so big runs never gather and can resume.

:func:`store_resumable` computes each chunk of a dask array (on the local scheduler
or a ``dask.distributed`` cluster), writes it straight into the output zarr, and
drops a marker file per finished chunk. Run it again after an interruption and it
only computes the chunks without a marker. When level 0 is complete it adds a 2x
multiscale pyramid (so napari opens the result lazily at any size) and flags the
store complete. A store from a different run (another ``signature``, shape, dtype
or chunking) is never mixed with: the call refuses, or replaces it when asked.

Unlike small exports (temporary file + rename), a resumable store is written in
place: its ``complete`` flag, not its existence, says that it is finished.
"""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from .backend import compute_all
from .io import _axes_frame, multiscales, pyramid
from .progress import ProgressCallback, report

_DONE = ".corrtomo-done"
_RUN = "corrtomo_run"


def run_state(path: str | Path) -> dict | None:
    """The run record of an existing store (signature, complete flag), or None."""
    path = Path(path)
    attrs = path / ".zattrs"
    if not attrs.exists():
        return None
    return json.loads(attrs.read_text()).get(_RUN)


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
        ``dask.distributed.Client`` (or scheduler name); default: local threads.

    Returns
    -------
    The path of the completed store.
    """
    import dask
    import dask.array as da
    import zarr

    arr = lazy if isinstance(lazy, da.Array) else da.asarray(lazy)
    chunks = tuple(max(c) for c in arr.chunks)
    arr = arr.rechunk(chunks)  # zarr needs regular chunks; a no-op when they already are
    scale_t, units_t = _axes_frame(arr.ndim, scale, units)
    path = Path(path)
    record = {
        "signature": signature or {},
        "shape": list(arr.shape),
        "dtype": str(arr.dtype),
        "chunks": list(chunks),
        "complete": False,
    }
    state = run_state(path)
    if path.exists() and (state is None or {k: state.get(k) for k in record if k != "complete"}
                          != {k: v for k, v in record.items() if k != "complete"}):
        if not overwrite:
            raise ValueError(
                f"{path} already exists and holds a different result; choose another output "
                "or pass overwrite (CLI: --overwrite) to replace it"
            )
        shutil.rmtree(path)
        state = None
    if state is not None and state.get("complete"):
        report(progress, 1, 1)
        return path

    group = zarr.open_group(str(path), mode="a", zarr_format=2)
    if "0" not in group:
        group.create_array("0", shape=arr.shape, dtype=arr.dtype, chunks=chunks,
                           chunk_key_encoding={"name": "v2", "separator": "/"},
                           fill_value=0)
        group.attrs.update({_RUN: record, "multiscales": [multiscales(
            name or path.name.split(".")[0], scale_t, units_t, 1)]})
        if layer_type == "labels":
            group.attrs["image-label"] = {"version": "0.4"}
    done_dir = path / _DONE
    done_dir.mkdir(exist_ok=True)
    todo = []
    for idx in itertools.product(*(range(n) for n in arr.numblocks)):
        key = ".".join(map(str, idx))
        if not (done_dir / key).exists():
            region = tuple(slice(i * c, min((i + 1) * c, s)) for i, c, s in zip(idx, chunks, arr.shape))
            todo.append(dask.delayed(_write_chunk)(arr.blocks[idx], str(path / "0"), region,
                                                   str(done_dir / key)))
    if todo:
        compute_all(todo, progress, scheduler)
    else:
        report(progress, 1, 1)

    n_levels = _write_pyramid(group, layer_type, pyramid_min_size)
    record["complete"] = True
    group.attrs.update({_RUN: record, "multiscales": [multiscales(
        name or path.name.split(".")[0], scale_t, units_t, n_levels)]})
    shutil.rmtree(done_dir)
    return path


def _write_chunk(block: np.ndarray, array_path: str, region: tuple[slice, ...], marker: str) -> int:
    import zarr

    target = zarr.open_array(array_path, mode="r+")
    target[region] = np.asarray(block)
    Path(marker).touch()  # only after the data is written
    return 1


def _write_pyramid(group: Any, layer_type: str, min_size: int) -> int:
    """Write the 2x levels below level 0; returns the number of levels."""
    import dask.array as da

    levels = pyramid(da.from_zarr(group["0"]), layer_type, min_size)
    for i, lvl in enumerate(levels, start=1):
        chunks = tuple(min(c, s) for c, s in zip(group["0"].chunks, lvl.shape))
        target = group.create_array(str(i), shape=lvl.shape, dtype=lvl.dtype, chunks=chunks,
                                    chunk_key_encoding={"name": "v2", "separator": "/"},
                                    overwrite=True)
        da.store(lvl.rechunk(chunks), target, lock=False)
    return len(levels) + 1
