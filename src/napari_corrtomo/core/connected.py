"""Connected-component labelling that scales: whole arrays in memory, dask arrays block by block.

For dask input every chunk is labelled on its own, labels are made unique with
per-chunk offsets, and components that touch across chunk borders are merged by a
union-find over the voxel pairs that face each other across every chunk boundary
(with the diagonal neighbours that the connectivity allows). Only the chunk counts
and the boundary planes are ever held in memory; the result is a lazy dask array
that labels each chunk once more and maps it to the final, consecutive labels.
The labels equal ``scipy.ndimage.label``'s up to a permutation of the numbers
(components are numbered in chunk order, deterministically).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from .backend import as_dask, compute_all, is_lazy
from .progress import ProgressCallback


def structure(ndim: int, connectivity: int) -> np.ndarray:
    """Neighbourhood: 1 = faces (6 in 3D), ndim = faces, edges and corners (26 in 3D)."""
    if not 1 <= connectivity <= ndim:
        raise ValueError(f"connectivity must be between 1 and {ndim}, got {connectivity}")
    return ndi.generate_binary_structure(ndim, connectivity)


def label(
    mask: Any,
    connectivity: int = 1,
    progress: ProgressCallback | None = None,
    scheduler: Any = None,
) -> tuple[Any, int]:
    """Label the connected components of a boolean array.

    Parameters
    ----------
    mask
        Boolean (or 0/1) array, NumPy or dask/zarr (any number of dimensions).
    connectivity
        1 for face neighbours, up to ``mask.ndim`` for full (26 in 3D).
    progress
        ``progress(done, total)`` over the chunks (dask input).
    scheduler
        ``dask.distributed.Client`` or scheduler name for the dask passes.

    Returns
    -------
    labels, n
        int32 labels (int64 beyond 2**31 - 1 components), 0 for background; a lazy
        dask array for dask input. ``n`` is the number of components.
    """
    st = structure(mask.ndim, connectivity)
    if not is_lazy(mask):
        arr = np.asarray(mask)
        _check_binary(arr)
        labels, n = ndi.label(arr.astype(bool), structure=st)
        return labels.astype(np.int32 if n < 2**31 else np.int64, copy=False), int(n)
    return _label_dask(mask, st, progress, scheduler)


def _check_binary(arr: np.ndarray) -> None:
    if arr.dtype != bool and arr.size and not np.isin(np.unique(arr), (0, 1)).all():
        raise ValueError("label() needs a binary mask (bool or 0/1); threshold or select a phase "
                         "first, e.g. labels == phase")


def _block_summary(block: np.ndarray, st: np.ndarray) -> tuple[int, list[np.ndarray]]:
    """Component count of one chunk and its local labels on all 2*ndim boundary planes."""
    _check_binary(block)
    local, n = ndi.label(block.astype(bool), structure=st)
    planes = []
    for ax in range(block.ndim):
        planes.append(np.take(local, 0, axis=ax).astype(np.int64))
        planes.append(np.take(local, -1, axis=ax).astype(np.int64))
    return int(n), planes


def _label_dask(mask: Any, st: np.ndarray, progress, scheduler) -> tuple[Any, int]:
    import dask
    import dask.array as da

    arr = as_dask(mask)
    ndim = arr.ndim
    grid = arr.numblocks
    indices = list(itertools.product(*(range(n) for n in grid)))

    # Pass 1: counts and boundary planes of every chunk (small results only), from one
    # graph (a slice of ``arr`` per call would carry its own copy of ``arr``'s graph)
    blocks = arr.to_delayed()
    tasks = [dask.delayed(_block_summary)(blocks[idx], st) for idx in indices]
    summaries = compute_all(tasks, progress, scheduler)
    counts = np.array([s[0] for s in summaries], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    offset_of = {idx: int(o) for idx, o in zip(indices, offsets)}
    total = int(counts.sum())
    planes = {idx: s[1] for idx, s in zip(indices, summaries)}

    # Pass 2: union-find over the voxel pairs facing each other across chunk boundaries.
    pairs = []
    starts = [np.cumsum((0,) + c) for c in arr.chunks]
    for ax in range(ndim):
        for b in range(1, grid[ax]):
            lo = _global_plane(planes, offset_of, indices, grid, arr.chunks, starts, ax, b - 1, 1)
            hi = _global_plane(planes, offset_of, indices, grid, arr.chunks, starts, ax, b, 0)
            pairs.append(_facing_pairs(lo, hi, np.take(st, 2, axis=ax)))
    mapping = _merge(total, np.concatenate(pairs) if pairs else np.zeros((0, 2), np.int64))
    n_final = int(mapping.max()) if mapping.size else 0
    dtype = np.int32 if n_final < 2**31 else np.int64
    mapping = mapping.astype(dtype)

    offs = np.zeros(grid, dtype=np.int64)
    for idx, o in offset_of.items():
        offs[idx] = o
    mapping_d = dask.delayed(mapping, pure=True)
    out = da.map_blocks(_relabel_block, arr, mapping_d, offs, st, dtype=dtype,
                        meta=np.empty((0,) * ndim, dtype))
    return out, n_final


def _relabel_block(block: np.ndarray, mapping: np.ndarray, offsets: np.ndarray, st: np.ndarray,
                   block_info: dict | None = None) -> np.ndarray:
    local, _ = ndi.label(np.asarray(block).astype(bool), structure=st)
    loc = block_info[0]["chunk-location"] if block_info else (0,) * block.ndim
    glob = local.astype(np.int64)
    fg = local > 0
    glob[fg] += offsets[tuple(loc)]
    return mapping[glob]


def _global_plane(planes, offset_of, indices, grid, chunks, starts, ax, bi, side) -> np.ndarray:
    """The full plane of global labels on one side (0 first, 1 last) of chunk row ``bi``."""
    other = [a for a in range(len(grid)) if a != ax]
    shape = [sum(chunks[a]) for a in other]
    plane = np.zeros(shape, np.int64)
    for idx in indices:
        if idx[ax] != bi:
            continue
        local = planes[idx][2 * ax + side]
        glob = np.where(local > 0, local + offset_of[idx], 0)
        sl = tuple(slice(starts[a][idx[a]], starts[a][idx[a] + 1]) for a in other)
        plane[sl] = glob
    return plane


def _facing_pairs(lo: np.ndarray, hi: np.ndarray, neighbourhood: np.ndarray) -> np.ndarray:
    """(k, 2) label pairs of foreground voxels adjacent across the plane (in-plane shifts
    allowed by the neighbourhood slice on the far side)."""
    out = []
    centre = np.array(neighbourhood.shape) // 2
    for shift in zip(*np.nonzero(neighbourhood)):
        d = np.array(shift) - centre
        src = tuple(slice(max(-k, 0), n - max(k, 0)) for k, n in zip(d, lo.shape))
        dst = tuple(slice(max(k, 0), n - max(-k, 0)) for k, n in zip(d, hi.shape))
        a, b = lo[src].ravel(), hi[dst].ravel()
        both = (a > 0) & (b > 0)
        out.append(np.column_stack([a[both], b[both]]))
    pairs = np.concatenate(out) if out else np.zeros((0, 2), np.int64)
    return np.unique(pairs, axis=0) if len(pairs) else pairs


def _merge(total: int, pairs: np.ndarray) -> np.ndarray:
    """Mapping from chunk-global labels (0..total) to consecutive merged labels.

    Merged components take the number of their smallest chunk-global label's rank,
    which follows the chunk order (a permutation of scipy's C-order numbering).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if total == 0:
        return np.zeros(1, np.int64)
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0] - 1, pairs[:, 1] - 1)),
                       shape=(total, total))
    _, comp = connected_components(graph, directed=False)
    # Renumber components by their first (smallest) member so numbering is deterministic.
    first = np.full(comp.max() + 1, total, np.int64)
    np.minimum.at(first, comp, np.arange(total))
    rank = np.empty_like(first)
    rank[np.argsort(first)] = np.arange(1, len(first) + 1)
    return np.concatenate([[0], rank[comp]])
