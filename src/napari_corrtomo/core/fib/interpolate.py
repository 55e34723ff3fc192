"""Filling the gap planes of a repositioned FIB volume (interpolation as inpainting).

Gaps lie along z only: every plane of ``volume`` is either measured (``known``)
or empty. Three methods, as in Sardhara et al. (2.2.3):

- ``"nearest"``: each gap plane copies the nearest measured plane (ties: the one
  above, i.e. the earlier slice).
- ``"cubic"``: a cubic spline through the measured planes along z, per (y, x)
  column (the seed fits splines in zx-planes; that is the same thing). Binary input
  is splined as 0/1 and thresholded at 0.5; label images are splined per label
  (one-hot) and the largest wins.
- ``"shape"``: shape-based interpolation (Raya & Udupa 1990): the in-plane signed
  distance maps of the measured planes are splined (cubic) along z and the result
  is thresholded at 0; for segmented stacks only. A strong classical baseline.
- ``"ml"``: the shipped inpainting network (:mod:`._inpaint`), trained on
  project-generated leveled-wave structures, for binary (segmented) stacks.

Planes before the first and after the last measured plane (none after
:func:`~.reposition.reposition`) take the nearest measured plane for every method.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..backend import map_blocks
from ..progress import ProgressCallback

METHODS = ("nearest", "cubic", "shape", "ml")
#: SDF clip (pixels) of shape-based interpolation; the blockwise halo covers it
SHAPE_CLIP = 32
KINDS = ("auto", "grey", "binary", "labels")


def _check_known(volume: np.ndarray, known) -> np.ndarray:
    known = np.asarray(known)
    if known.dtype != bool:
        raise ValueError(f"known must be a boolean mask of planes, got dtype {known.dtype}")
    if known.shape != (volume.shape[0],):
        raise ValueError(
            f"known has shape {known.shape} but the volume has {volume.shape[0]} planes; "
            "pass the mask returned by reposition()"
        )
    if known.sum() < 2:
        raise ValueError("at least two measured planes are needed to interpolate between them")
    return known


def resolve_kind(volume: np.ndarray, kind: str = "auto") -> str:
    """``"binary"`` for bool (or 0/1 integer) data, ``"grey"`` otherwise, unless given."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
    if kind != "auto":
        return kind
    if volume.dtype == bool:
        return "binary"
    if np.issubdtype(volume.dtype, np.integer):
        values = np.unique(volume[:: max(1, volume.shape[0] // 8)])
        if values.size <= 2 and set(values.tolist()) <= {0, 1}:
            return "binary"
    return "grey"


def nearest_known(known: np.ndarray) -> np.ndarray:
    """Index of the nearest known plane for every plane (ties: the lower index)."""
    idx = np.flatnonzero(known)
    z = np.arange(known.size)
    pos = np.clip(np.searchsorted(idx, z), 1, idx.size - 1)
    below, above = idx[pos - 1], idx[pos]
    return np.where(np.abs(z - below) <= np.abs(above - z), below, above)


def interpolate(
    volume: np.ndarray,
    known,
    method: str = "cubic",
    *,
    kind: str = "auto",
    spacing: Sequence[float] | None = None,
    progress: ProgressCallback | None = None,
    backend: str = "numpy",
) -> np.ndarray:
    """Fill the gap planes of a repositioned volume.

    Parameters
    ----------
    volume
        (z, y, x) as returned by :func:`~.reposition.reposition`; values on gap
        planes are ignored.
    known
        (z,) bool, True on measured planes (at least two).
    method
        ``"nearest"``, ``"cubic"``, ``"shape"`` or ``"ml"``.
    kind
        ``"binary"`` (result bool), ``"labels"`` (integer labels, result same dtype),
        ``"grey"`` (result float32 for cubic, input dtype for nearest) or ``"auto"``
        (bool or 0/1 integers -> binary, else grey).
    spacing
        Optional (z, y, x) voxel size. ``"ml"`` checks that the voxels are about
        isotropic (the network was trained on isotropic data).
    progress
        ``progress(done, total)`` between blocks.
    backend
        Only ``"numpy"`` (the spline and network run on the CPU).

    Returns
    -------
    (z, y, x) array with every plane filled; measured planes are unchanged.
    """
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise ValueError(f"volume must be (z, y, x), got shape {volume.shape}")
    if method not in METHODS:
        raise ValueError(f"unknown interpolation method {method!r}; choose one of "
                         f"{', '.join(METHODS)}")
    known = _check_known(volume, known)
    kind = resolve_kind(volume, kind)
    if method != "nearest" and np.issubdtype(volume.dtype, np.floating):
        if not np.all(np.isfinite(volume[known])):
            raise ValueError("the measured planes contain NaN or inf; clean the stack first")
    if method == "nearest":
        out = volume[nearest_known(known)]
        return out.astype(bool) if kind == "binary" else out
    if method == "cubic":
        return _cubic(volume, known, kind, progress)
    if kind == "grey":
        raise ValueError(
            f"method={method!r} fills segmented (binary or label) stacks; segment the stack first, "
            "or use method='cubic' for greyscale images"
        )
    if method == "shape":
        return _shape(volume, known, kind, progress)
    from ._inpaint import inpaint

    if spacing is not None:
        sp = np.asarray(spacing, dtype=float)
        ratio = sp[1:] / sp[0]
        if np.any(ratio < 0.6) or np.any(ratio > 1.6):
            raise ValueError(
                f"method='ml' needs about isotropic voxels (z grid ~ pixel size); got spacing "
                f"{tuple(sp)}. Reposition on a grid close to the pixel size, or use 'cubic'"
            )
    if kind == "binary":
        prob = inpaint(volume.astype(bool), known, progress=progress)
        return prob > 0.5
    labels = np.unique(volume[known])
    best = None
    score = None
    for i, lab in enumerate(labels):
        prob = inpaint(volume == lab, known)
        if best is None:
            best = np.full(volume.shape, lab, volume.dtype)
            score = prob
        else:
            better = prob > score
            best[better] = lab
            score = np.maximum(score, prob)
        if progress is not None:
            progress(i + 1, labels.size)
    return best


def _cubic(volume: np.ndarray, known: np.ndarray, kind: str,
           progress: ProgressCallback | None) -> np.ndarray:
    from scipy.interpolate import CubicSpline

    zk = np.flatnonzero(known).astype(float)
    z = np.arange(volume.shape[0], dtype=float)
    inside = (z >= zk[0]) & (z <= zk[-1])
    near = nearest_known(known)

    def spline(block: np.ndarray) -> np.ndarray:
        # block: (n_known, y, x) -> (z, y, x) float32
        cs = CubicSpline(zk, block.astype(np.float64), axis=0, bc_type="not-a-knot")
        out = np.empty((z.size,) + block.shape[1:], np.float32)
        out[inside] = cs(z[inside])
        out[~inside] = block[np.searchsorted(zk, near[~inside])]
        return out

    def run(data: np.ndarray) -> np.ndarray:
        # per column: the data, 4 spline coefficients (float64) and the output planes
        per_voxel = 48.0 + 8.0 * volume.shape[0] / data.shape[0]
        return map_blocks(spline, data, 0, spatial_ndim=2, bytes_per_voxel=per_voxel,
                          progress=progress)

    stack = volume[known]
    if kind == "binary":
        return run(stack.astype(np.float32)) > 0.5
    if kind == "labels":
        labels = np.unique(stack)
        best = np.full(volume.shape, labels[0], volume.dtype)
        score = np.full(volume.shape, -np.inf, np.float32)
        for lab in labels:
            s = run((stack == lab).astype(np.float32))
            better = s > score
            best[better] = lab
            score = np.maximum(score, s)
        return best
    out = run(stack)
    out[known] = volume[known]
    return out


def _shape(volume: np.ndarray, known: np.ndarray, kind: str,
           progress: ProgressCallback | None) -> np.ndarray:
    from scipy.interpolate import CubicSpline

    from ._inpaint import plane_sdf

    zk = np.flatnonzero(known).astype(float)
    z = np.arange(volume.shape[0], dtype=float)
    inside = (z >= zk[0]) & (z <= zk[-1])
    near = nearest_known(known)

    def spline(block: np.ndarray) -> np.ndarray:
        sdf = plane_sdf(block, clip=SHAPE_CLIP).astype(np.float64)
        cs = CubicSpline(zk, sdf, axis=0, bc_type="not-a-knot")
        out = np.empty((z.size,) + block.shape[1:], np.float32)
        out[inside] = cs(z[inside])
        out[~inside] = sdf[np.searchsorted(zk, near[~inside])]
        return out

    def run(mask: np.ndarray) -> np.ndarray:
        per_voxel = 56.0 + 8.0 * volume.shape[0] / mask.shape[0]
        return map_blocks(spline, mask, SHAPE_CLIP + 1, spatial_ndim=2,
                          bytes_per_voxel=per_voxel, progress=progress)

    stack = volume[known]
    if kind == "binary":
        return run(stack.astype(bool)) > 0
    labels = np.unique(stack)
    best = np.full(volume.shape, labels[0], volume.dtype)
    score = np.full(volume.shape, -np.inf, np.float32)
    for lab in labels:
        s = run(stack == lab)
        better = s > score
        best[better] = lab
        score = np.maximum(score, s)
    return best
