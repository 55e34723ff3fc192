"""The whole FIB correction in one call (used by the widget and ``corrtomo fib``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from ..backend import as_dask, is_lazy
from ..progress import ProgressCallback
from .interpolate import fill_planes, resolve_kind
from .reposition import check_stack, slice_positions


@dataclass
class FibVolume:
    """An interpolated FIB volume: ``volume`` (z, y, x) with voxel ``spacing_nm``
    (z = the grid spacing), ``known`` planes, and the settings that made it.
    ``volume`` is a lazy dask array when the stack was one."""

    volume: Any
    known: np.ndarray
    spacing_nm: tuple[float, float, float]
    method: str
    kind: str


def correct_drift(stack: np.ndarray, drift_x_px, labels: bool = False) -> np.ndarray:
    """Undo an in-plane x drift: slice ``k`` is shifted by ``-drift_x_px[k]`` pixels.

    Linear interpolation for images, nearest for labels/binary (``labels=True``);
    pixels shifted in from outside repeat the edge. (n, y, x) -> same shape/dtype.
    """
    lazy = is_lazy(stack)
    if not lazy:
        stack = np.asarray(stack)
    drift = np.asarray(drift_x_px, dtype=float)
    if stack.ndim != 3 or drift.shape != (stack.shape[0],):
        raise ValueError(f"need a (slices, y, x) stack and one drift per slice; got "
                         f"{tuple(stack.shape)} and {drift.shape}")
    if not np.all(np.isfinite(drift)):
        raise ValueError("drift has NaN entries (marks missing); measure with a fallback first")
    order = 0 if labels or stack.dtype == bool else 1

    def shift(planes: np.ndarray, first: int) -> np.ndarray:
        out = np.empty_like(planes)
        for i, p in enumerate(planes):
            d = drift[first + i]
            out[i] = p if d == 0 else ndi.shift(p, (0.0, -d), order=order, mode="nearest")
        return out

    if not lazy:
        return shift(stack, 0)

    arr = as_dask(stack).rechunk({1: -1, 2: -1})

    def shift_chunk(b: np.ndarray, block_info=None) -> np.ndarray:
        return shift(b, block_info[0]["array-location"][0][0])

    return arr.map_blocks(shift_chunk, dtype=arr.dtype)


def isotropic_volume(
    stack: np.ndarray,
    thickness_nm,
    pixel_size_nm: float,
    grid_nm: float | None = None,
    method: str = "cubic",
    kind: str = "auto",
    progress: ProgressCallback | None = None,
) -> FibVolume:
    """Reposition a FIB stack on a fine z grid and fill the gaps.

    Parameters
    ----------
    stack
        (n_slices, y, x) images or segmentation, slice 0 first; NumPy, or dask/zarr
        for stacks larger than memory (the result is then lazy).
    thickness_nm
        (n_slices,) slice thicknesses in nm (the last may be NaN).
    pixel_size_nm
        In-plane pixel size (nm).
    grid_nm
        z grid spacing (nm); default ``pixel_size_nm`` (isotropic voxels).
    method, kind
        See :func:`~napari_corrtomo.core.fib.interpolate.interpolate`.
    """
    if not is_lazy(stack):
        stack = np.asarray(stack)
    check_stack(stack, thickness_nm)
    px = float(pixel_size_nm)
    if not np.isfinite(px) or px <= 0:
        raise ValueError(f"pixel size must be positive, got {pixel_size_nm}")
    grid = px if grid_nm is None else float(grid_nm)
    kind = resolve_kind(stack, kind)
    planes = slice_positions(thickness_nm, grid)
    n_planes = int(planes[-1]) + 1
    out = fill_planes(stack, planes, n_planes, method, kind=kind, spacing=(grid, px, px),
                      progress=progress)
    known = np.zeros(n_planes, bool)
    known[planes] = True
    return FibVolume(out, known, (grid, px, px), method, kind)
