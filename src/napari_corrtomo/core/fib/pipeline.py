"""The whole FIB correction in one call (used by the widget and ``corrtomo fib``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from ..progress import ProgressCallback, scaled
from .interpolate import interpolate, resolve_kind
from .reposition import check_thicknesses, reposition


@dataclass
class FibVolume:
    """An interpolated FIB volume: ``volume`` (z, y, x) with voxel ``spacing_nm``
    (z = the grid spacing), ``known`` planes, and the settings that made it."""

    volume: np.ndarray
    known: np.ndarray
    spacing_nm: tuple[float, float, float]
    method: str
    kind: str


def correct_drift(stack: np.ndarray, drift_x_px, labels: bool = False) -> np.ndarray:
    """Undo an in-plane x drift: slice ``k`` is shifted by ``-drift_x_px[k]`` pixels.

    Linear interpolation for images, nearest for labels/binary (``labels=True``);
    pixels shifted in from outside repeat the edge. (n, y, x) -> same shape/dtype.
    """
    stack = np.asarray(stack)
    drift = np.asarray(drift_x_px, dtype=float)
    if stack.ndim != 3 or drift.shape != (stack.shape[0],):
        raise ValueError(f"need a (slices, y, x) stack and one drift per slice; got "
                         f"{stack.shape} and {drift.shape}")
    if not np.all(np.isfinite(drift)):
        raise ValueError("drift has NaN entries (marks missing); measure with a fallback first")
    out = np.empty_like(stack)
    order = 0 if labels or stack.dtype == bool else 1
    for k, d in enumerate(drift):
        if d == 0:
            out[k] = stack[k]
        else:
            out[k] = ndi.shift(stack[k], (0.0, -d), order=order, mode="nearest")
    return out


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
        (n_slices, y, x) images or segmentation, slice 0 first.
    thickness_nm
        (n_slices,) slice thicknesses in nm (the last may be NaN).
    pixel_size_nm
        In-plane pixel size (nm).
    grid_nm
        z grid spacing (nm); default ``pixel_size_nm`` (isotropic voxels).
    method, kind
        See :func:`~napari_corrtomo.core.fib.interpolate.interpolate`.
    """
    stack = np.asarray(stack)
    if stack.ndim != 3:
        raise ValueError(f"stack must be (slices, y, x), got shape {stack.shape}")
    check_thicknesses(thickness_nm, stack.shape[0])
    px = float(pixel_size_nm)
    if not np.isfinite(px) or px <= 0:
        raise ValueError(f"pixel size must be positive, got {pixel_size_nm}")
    grid = px if grid_nm is None else float(grid_nm)
    kind = resolve_kind(stack, kind)
    vol, known = reposition(stack, thickness_nm, grid)
    out = interpolate(vol, known, method, kind=kind, spacing=(grid, px, px),
                      progress=scaled(progress, 0, 100, 100))
    return FibVolume(out, known, (grid, px, px), method, kind)
