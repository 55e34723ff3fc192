"""Input checks shared by the quantification functions.

Every public function in :mod:`napari_corrtomo.core.quantify` validates its
inputs here, so the error messages are the same everywhere: what is wrong and
what to do about it.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..backend import is_lazy, to_host
from ..units import check_spacing


def as_mask(mask: Any, name: str = "mask", *, ndim: int | None = None,
            allow_lazy: bool = False, require_phase: bool = True) -> Any:
    """A boolean view of a binary array, or a clear ``ValueError``.

    Accepts ``bool`` arrays and numeric arrays whose only values are 0 and 1.
    Anything else (a label volume with several phases, an intensity image) is
    rejected: pick the phase first, e.g. ``labels == 3``.
    """
    if allow_lazy and is_lazy(mask):
        if ndim is not None and mask.ndim != ndim:
            raise ValueError(f"{name} must be {ndim}D, got shape {tuple(mask.shape)}")
        if mask.dtype != bool:
            raise ValueError(
                f"{name} is a lazy {mask.dtype} array; pass a boolean array (e.g. labels == phase)"
            )
        return mask
    arr = np.asarray(to_host(mask))
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}D, got shape {arr.shape}")
    if arr.ndim == 0 or arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    if arr.dtype != bool:
        if not (np.issubdtype(arr.dtype, np.number)):
            raise ValueError(f"{name} must be a binary array, got dtype {arr.dtype}")
        if not np.all((arr == 0) | (arr == 1)):
            values = np.unique(arr.ravel()[:: max(arr.size // (1 << 20), 1)])
            shown = ", ".join(f"{v:g}" for v in values[:6]) + (" ..." if len(values) > 6 else "")
            raise ValueError(
                f"{name} must be binary (0/1 or bool) but holds other values ({shown}); "
                "choose the phase to measure, e.g. labels == 3"
            )
        arr = arr.astype(bool)
    if require_phase and not arr.any():
        raise ValueError(f"{name} contains no voxel of the phase (all False); "
                         "check the phase/label value you chose")
    return arr


def spacing_for(arr: Any, spacing: Any) -> tuple[float, ...]:
    """Voxel size per axis (a scalar means isotropic); wrong length -> ValueError."""
    try:
        return check_spacing(spacing, arr.ndim)
    except ValueError as exc:
        raise ValueError(f"{exc}; give one voxel size per axis in (z, y, x) order") from None


def check_labels(labels: Any, name: str = "labels") -> np.ndarray:
    """An integer label array (non-negative)."""
    arr = np.asarray(to_host(labels))
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if arr.dtype == bool:
        return arr.astype(np.uint8)
    if not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(
                arr == np.round(arr)):
            return arr.astype(np.int64)
        raise ValueError(f"{name} must hold integer labels, got dtype {arr.dtype}")
    if arr.min() < 0:
        raise ValueError(f"{name} holds negative values; labels must be >= 0")
    return arr


def check_same_shape(a: Any, b: Any, name_a: str, name_b: str) -> None:
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(f"{name_a} {tuple(a.shape)} and {name_b} {tuple(b.shape)} have different "
                         "shapes; they must cover the same voxels")


def edt_distance(mask: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    """float32 distance from every True voxel to the nearest False voxel centre (0 on False).

    Physical units of ``spacing``; the array border is not treated as False (``inf`` if
    there is no False voxel at all).
    """
    import edt

    arr = np.ascontiguousarray(mask, dtype=bool)
    return edt.edt(arr, anisotropy=tuple(float(s) for s in spacing), black_border=False,
                   parallel=max(1, os.cpu_count() or 1))


def signed_distance(mask: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    """Signed distance to the phase boundary: positive inside ``mask``, negative outside.

    The boundary lies half way between a voxel centre of the phase and one outside it,
    so ``d = EDT - s/2`` with ``s`` the smallest voxel size (exact for boundaries
    normal to an axis of that voxel size; within half a voxel otherwise).
    """
    half = 0.5 * min(spacing)
    inside = edt_distance(mask, spacing)
    outside = edt_distance(~mask, spacing)
    out = np.where(mask, inside - half, half - outside).astype(np.float32)
    return out


def unit_name(unit: str | None) -> str:
    """Canonical unit spelling for column names (``um``, ``nm``, ``pixel``)."""
    from ..units import normalize_unit

    return normalize_unit(unit)
