"""Global thresholds (Otsu, multi-Otsu) on arrays of any size.

A global threshold needs the histogram of the whole volume. For dask/zarr input it
is made in two blockwise passes (the value range, then the histogram with the
global bins; only small partial results travel), and the thresholds are applied
block by block, so a volume larger than memory is never loaded. The histogram is
scikit-image's (:func:`skimage.exposure.histogram`: 256 equal bins over the value
range for floats, one bin per integer value for integers), so the thresholds
equal :func:`skimage.filters.threshold_otsu` / ``threshold_multiotsu`` on the
whole array exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .backend import as_dask, is_lazy, reduce_blocks
from .progress import ProgressCallback, scaled

__all__ = ["apply_thresholds", "histogram", "otsu_segment", "threshold_multiotsu", "threshold_otsu"]


def _values(block: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    return block.ravel() if mask is None else block[np.asarray(mask, bool)]


def histogram(image: Any, nbins: int = 256, mask: Any = None,
              progress: ProgressCallback | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Counts and bin centres of the values of ``image`` (within ``mask``).

    Parameters
    ----------
    image
        Array of any shape: NumPy, dask or zarr (blockwise, never loaded whole).
    nbins
        Number of equal bins between the smallest and the largest value (floats);
        integer images get one bin per integer value instead (as scikit-image).
    mask
        Optional boolean array of the same shape: only its voxels count.
    progress
        ``progress(done, total)`` over the blocks of both passes.

    Returns
    -------
    counts, centres
        int64 counts and the bin centres, identical to
        ``skimage.exposure.histogram(image[mask], nbins)``.
    """
    if mask is not None and tuple(np.shape(mask)) != tuple(np.shape(image)):
        raise ValueError(f"mask {tuple(np.shape(mask))} and image {tuple(np.shape(image))} "
                         "have different shapes; they must cover the same voxels")
    if int(nbins) < 2:
        raise ValueError(f"nbins must be at least 2, got {nbins}")
    arrays = (image,) if mask is None else (image, mask)
    dtype = np.dtype(image.dtype)
    if dtype.kind not in "iufb":
        raise ValueError(f"cannot threshold an image of dtype {dtype}; give numbers")

    def block_range(*args):
        v = _values(args[0], args[1] if len(args) == 3 else None)
        if v.size == 0:
            return None
        if dtype.kind == "f" and not np.all(np.isfinite(v)):
            raise ValueError("the image contains NaN/inf values; replace them before "
                             "thresholding")
        return v.min(), v.max()

    def merge_range(parts):
        parts = [p for p in parts if p is not None]
        if not parts:
            raise ValueError("no voxel to threshold (the mask is empty)")
        return min(p[0] for p in parts), max(p[1] for p in parts)

    lo, hi = reduce_blocks(block_range, *arrays, combine=merge_range,
                           progress=scaled(progress, 0, 1, 2))
    if dtype.kind in "iub":
        lo_i, hi_i = int(lo), int(hi)

        def block_hist(*args):
            v = _values(args[0], args[1] if len(args) == 3 else None)
            return np.bincount((v.astype(np.int64) - lo_i).ravel(),
                               minlength=hi_i - lo_i + 1)

        counts = reduce_blocks(block_hist, *arrays, combine=lambda ps: np.sum(ps, axis=0),
                               progress=scaled(progress, 1, 2, 2))
        return counts.astype(np.int64), np.arange(lo_i, hi_i + 1)
    rng = (lo, hi)

    def block_hist_f(*args):
        v = _values(args[0], args[1] if len(args) == 3 else None)
        return np.histogram(v, bins=int(nbins), range=rng)[0]

    counts = reduce_blocks(block_hist_f, *arrays, combine=lambda ps: np.sum(ps, axis=0),
                           progress=scaled(progress, 1, 2, 2))
    # the same edges np.histogram used in every block (and on the whole array)
    edges = np.histogram(np.array([lo, hi], dtype=dtype), bins=int(nbins), range=rng)[1]
    return counts.astype(np.int64), (edges[:-1] + edges[1:]) / 2.0


def threshold_otsu(image: Any, nbins: int = 256, mask: Any = None,
                   progress: ProgressCallback | None = None) -> float:
    """Otsu's threshold of the whole image (blockwise histogram for dask/zarr input).

    Voxels ``> threshold`` are the bright class (scikit-image's convention).
    """
    from skimage.filters import threshold_otsu as sk_otsu

    return float(sk_otsu(hist=histogram(image, nbins, mask, progress)))


def threshold_multiotsu(image: Any, classes: int = 3, nbins: int = 256, mask: Any = None,
                        progress: ProgressCallback | None = None) -> np.ndarray:
    """``classes - 1`` multi-Otsu thresholds of the whole image (blockwise for dask/zarr)."""
    from skimage.filters import threshold_multiotsu as sk_multi

    if int(classes) < 2:
        raise ValueError(f"classes must be at least 2, got {classes}")
    counts, centres = histogram(image, nbins, mask, progress)
    if np.count_nonzero(counts) < int(classes):
        raise ValueError(f"the image has fewer distinct values ({np.count_nonzero(counts)}) than "
                         f"the {classes} classes asked for; choose fewer classes")
    return np.asarray(sk_multi(hist=(counts, centres), classes=int(classes)), dtype=float)


def apply_thresholds(image: Any, thresholds: Sequence[float] | float,
                     values: Sequence[int] | None = None) -> Any:
    """Class of every voxel: ``values[k]`` for ``t[k-1] <= voxel < t[k]`` (``np.digitize``
    with the thresholds ascending, as scikit-image's multi-Otsu examples), default
    ``0 .. len(thresholds)``. Lazy (block by block) for dask/zarr input.
    """
    thr = np.sort(np.atleast_1d(np.asarray(thresholds, dtype=float)))
    vals = (np.arange(len(thr) + 1, dtype=np.min_scalar_type(len(thr))) if values is None
            else np.asarray(values))
    if vals.ndim != 1 or len(vals) != len(thr) + 1:
        raise ValueError(f"{len(thr)} thresholds make {len(thr) + 1} classes but "
                         f"{vals.size} class values were given")
    dtype = vals.dtype

    def block(b):
        return vals[np.digitize(b, thr)]

    if is_lazy(image):

        arr = as_dask(image)
        return arr.map_blocks(block, dtype=dtype)
    return block(np.asarray(image))


def otsu_segment(image: Any, classes: Sequence[int] = (1, 2, 3), mask: Any = None) -> np.ndarray:
    """Multi-Otsu thresholds on one channel: ``len(classes) - 1`` thresholds; voxels are
    given ``classes`` from dark to bright (the "double threshold" of Osenberg et al., 2023).
    Thresholds are computed from the voxels in ``mask`` (default all). dask/zarr input:
    blockwise histogram, lazy result."""
    img = image if is_lazy(image) else np.asarray(image)
    if img.dtype != np.float32:
        img = img.astype(np.float32)
    thr = threshold_multiotsu(img, classes=len(classes), mask=mask)
    return apply_thresholds(img, thr, np.asarray(classes))
