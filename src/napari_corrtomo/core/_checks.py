"""The one set of input checks every core module uses.

Each check returns the validated value or raises a ``ValueError`` that says what
is wrong and what to do, so the same mistake gets the same message everywhere.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._errors import SettingError
from ._errors import in_words as in_words  # re-exported: front ends import both from here
from .backend import is_lazy, to_host


def check_spacing(spacing: Any, ndim: int) -> tuple[float, ...]:
    """A voxel size: ``ndim`` positive finite lengths in (z, y, x) order (a scalar means
    isotropic). Refused as a :class:`SettingError` naming ``$spacing`` (the command line's
    ``--spacing``)."""
    try:
        arr = np.atleast_1d(np.asarray(spacing, dtype=float))
    except (TypeError, ValueError):
        raise SettingError(f"$spacing must be numbers, got {spacing!r}",
                           spacing="spacing") from None
    if arr.size == 1:
        arr = np.repeat(arr, ndim)
    if arr.shape != (ndim,):
        raise SettingError(f"$spacing has {arr.size} values but the array has {ndim} spatial "
                           "axes; give one voxel size per axis in (z, y, x) order",
                           spacing="spacing")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise SettingError(f"$spacing must be positive and finite, got {tuple(arr.tolist())}",
                           spacing="spacing")
    return tuple(float(v) for v in arr)


def check_length(value: Any, name: str, allow_zero: bool = False) -> float:
    """One finite length, positive (or zero with ``allow_zero``): a grid spacing, a pixel
    size, a distance. ``name`` is the setting's API word, a :class:`SettingError`
    placeholder a front end words its own way."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise SettingError(f"${name} must be a number, got {value!r}", **{name: name}) from None
    if not np.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        bound = "zero or positive" if allow_zero else "positive"
        raise SettingError(f"${name} must be {bound} and finite, got {value!r}",
                           **{name: name})
    return v


#: most histogram/profile bins one call may make (a typo'd bin width must not ask for TiB)
MAX_BINS = 100_000


def check_bins(extent: float, bin_width: Any, name: str = "bin_width") -> tuple[float, int]:
    """A positive bin width and the number of bins it gives over ``[0, extent]``.

    Refuses widths that would make more than :data:`MAX_BINS` bins, before anything
    is allocated, naming the smallest width that works.
    """
    bw = check_length(bin_width, name)
    n = math.ceil(max(float(extent), 0.0) / bw) if np.isfinite(extent) else math.inf
    if n > MAX_BINS:
        raise ValueError(f"{name} {bw:g} would make {n:.3g} bins over {extent:g}; choose "
                         f"{name} of at least {extent / MAX_BINS:.3g} (same unit)")
    return bw, max(int(n), 1)


def as_mask(mask: Any, name: str = "mask", *, ndim: int | tuple[int, ...] | None = None,
            allow_lazy: bool = False, require_phase: bool = True) -> Any:
    """A boolean view of a binary array, or a clear ``ValueError``.

    Accepts ``bool`` arrays and numeric arrays whose only values are 0 and 1.
    Anything else (a label volume with several phases, an intensity image) is
    rejected: pick the phase first, e.g. ``labels == 3``. ``ndim`` may list the
    allowed dimensionalities.
    """
    dims = (ndim,) if isinstance(ndim, int) else ndim
    if allow_lazy and is_lazy(mask):
        _check_ndim(mask, name, dims)
        if mask.dtype != bool:
            raise ValueError(
                f"{name} is a lazy {mask.dtype} array; pass a boolean array (e.g. labels == phase)"
            )
        return mask
    arr = np.asarray(to_host(mask))
    _check_ndim(arr, name, dims)
    if arr.ndim == 0 or arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); pass a volume with voxels")
    if arr.dtype != bool:
        if not np.issubdtype(arr.dtype, np.number):
            raise ValueError(f"{name} must be a binary array, got dtype {arr.dtype}")
        if arr.dtype.kind in "fc" and not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} contains NaN or infinite values; it must be binary (0/1)")
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


def _check_ndim(arr: Any, name: str, dims: tuple[int, ...] | None) -> None:
    if dims is not None and arr.ndim not in dims:
        wanted = " or ".join(f"{d}D" for d in dims)
        raise ValueError(f"{name} must be {wanted}, got shape {tuple(arr.shape)}; pass one "
                         "volume in (z, y, x) order (squeeze channel/time axes first)")


def check_labels(labels: Any, name: str = "labels") -> np.ndarray:
    """An integer label array (non-negative); whole-number floats are accepted."""
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


def check_sample(sample: Any, phase: np.ndarray) -> np.ndarray:
    """The boolean ``sample`` mask, the shape of ``phase`` and holding all of it (the
    region a measure runs in, the outside medium left out)."""
    region = as_mask(sample, "sample", ndim=phase.ndim)
    check_same_shape(region, phase, "sample", "mask")
    if np.any(phase & ~region):
        raise ValueError("the phase has voxels off the sample; the sample must hold the "
                         "phase (e.g. sample = labels != outside)")
    return region


def check_same_shape(a: Any, b: Any, name_a: str, name_b: str) -> None:
    """Two arrays that must cover the same voxels."""
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(f"{name_a} {tuple(a.shape)} and {name_b} {tuple(b.shape)} have different "
                         "shapes; they must cover the same voxels")


def check_finite(arr: Any, name: str = "the image", xp: Any = np) -> None:
    """No NaN/inf voxels (they would poison filters and sums)."""
    finite = xp.isfinite(arr)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise ValueError(f"{name} contains {bad} NaN/inf voxel(s); replace them (e.g. with the "
                         "background value) first")
