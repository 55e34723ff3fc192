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

from .._checks import SettingError
from ..backend import as_dask, is_lazy, map_blocks
from ..progress import ProgressCallback
from ._inpaint import ml_block, plane_sdf
from ._planes import nearest_known, per_label

METHODS = ("nearest", "cubic", "shape", "ml")
#: SDF clip (pixels) of shape-based interpolation; the blockwise halo covers it
SHAPE_CLIP = 32
KINDS = ("auto", "grey", "binary", "labels")


def _check_known(volume, known) -> np.ndarray:
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


def resolve_kind(volume, kind: str = "auto") -> str:
    """``"binary"`` for bool (or 0/1 integer) data, ``"grey"`` otherwise, unless given.

    A given ``"binary"`` is checked (on the slices ``"auto"`` looks at): made of an
    intensity image it would be all ones after ``astype(bool)``, without a word. A given
    ``"labels"`` is checked the same way: a floating-point stack must hold whole numbers
    (a grey image read as labels would be interpolated label by label, one per grey
    value).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
    if kind == "labels" and not (volume.dtype == bool
                                 or np.issubdtype(volume.dtype, np.integer)):
        values = np.unique(np.asarray(volume[:: max(1, volume.shape[0] // 8)]))
        fractional = values[np.isfinite(values) & (values != np.round(values))]
        if fractional.size or not np.all(np.isfinite(values)):
            shown = ", ".join(f"{v:g}" for v in (fractional[:4] if fractional.size
                                                 else values[~np.isfinite(values)][:1]))
            raise SettingError(f"$labels_kind needs a stack of whole-number labels, but this "
                               f"{volume.dtype} stack holds other values ({shown} ...): it "
                               "looks like a grey image; segment it first, or choose "
                               "$grey_kind", labels_kind="kind='labels'",
                               grey_kind="kind='grey'")
    if kind in ("grey", "labels"):
        return kind
    if volume.dtype == bool:
        return "binary"
    if kind == "auto" and not np.issubdtype(volume.dtype, np.integer):
        return "grey"
    values = np.unique(np.asarray(volume[:: max(1, volume.shape[0] // 8)]))
    zero_one = set(values.tolist()) <= {0, 1}
    if kind == "auto":
        return "binary" if zero_one else "grey"
    if not zero_one:
        shown = ", ".join(f"{v:g}" for v in values[:4]) + (" ..." if values.size > 4 else "")
        raise SettingError(f"$kind needs a bool or 0/1 stack, but this {volume.dtype} stack "
                           f"holds other values ({shown}); segment it first, or choose "
                           "$grey_kind", kind="kind='binary'", grey_kind="kind='grey'")
    return "binary"


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
    if getattr(volume, "ndim", None) != 3:
        raise ValueError(f"volume must be (z, y, x), got shape {np.shape(volume)}")
    known = _check_known(volume, known)
    planes = np.flatnonzero(known)
    return fill_planes(volume[planes], planes, volume.shape[0], method, kind=kind,
                       spacing=spacing, progress=progress, backend=backend)


def fill_planes(
    stack,
    planes,
    n_planes: int,
    method: str = "cubic",
    *,
    kind: str = "auto",
    spacing: Sequence[float] | None = None,
    progress: ProgressCallback | None = None,
    backend: str = "numpy",
):
    """Interpolate measured planes onto every plane of a fine z grid.

    The same as :func:`interpolate` without building the gap-filled input first:
    ``stack`` (n_measured, y, x) holds the measured planes, ``planes`` their
    strictly increasing plane indices (e.g. from
    :func:`~.reposition.slice_positions`), ``n_planes`` the output depth. ``stack``
    may be a dask or zarr array: the result is then a lazy dask array, computed
    block by block in (y, x) (volumes larger than memory).
    """
    if backend not in ("numpy", "auto"):
        raise ValueError("FIB interpolation runs on the CPU; use backend='numpy' or 'auto'")
    if method not in METHODS:
        raise ValueError(f"unknown interpolation method {method!r}; choose one of "
                         f"{', '.join(METHODS)}")
    lazy = is_lazy(stack)
    if not lazy:
        stack = np.asarray(stack)
    else:
        stack = as_dask(stack)
    planes = np.asarray(planes, dtype=np.int64)
    if stack.ndim != 3 or planes.shape != (stack.shape[0],):
        raise ValueError(f"need a (planes, y, x) stack and one plane index per slice; got "
                         f"{tuple(stack.shape)} and {planes.shape}")
    if planes.size < 2:
        raise ValueError("at least two measured planes are needed to interpolate between them")
    if np.any(np.diff(planes) <= 0) or planes[0] < 0 or planes[-1] >= n_planes:
        raise ValueError(f"plane indices must increase strictly within 0 .. {n_planes - 1}")
    kind = resolve_kind(stack, kind)
    if kind == "grey" and method in ("shape", "ml"):
        raise SettingError(
            f"$method{method!r} fills segmented (binary or label) stacks; segment the stack "
            "first, or use $cubic_method for greyscale images",
            method="method=", cubic_method="method='cubic'")
    if method == "ml" and spacing is not None:
        sp = np.asarray(spacing, dtype=float)
        ratio = sp[1:] / sp[0]
        if np.any(ratio < 0.6) or np.any(ratio > 1.6):
            raise SettingError(
                f"$method'ml' needs about isotropic voxels (z grid ~ pixel size); got spacing "
                f"(z, y, x) ({', '.join(f'{v:g}' for v in sp)}). Set $grid_nm close to the "
                "pixel size, or use $cubic_method",
                method="method=", grid_nm="the repositioning grid",
                cubic_method="method='cubic'")
    known = np.zeros(n_planes, bool)
    known[planes] = True
    near = np.searchsorted(planes, nearest_known(known))  # index into the stack
    if method == "nearest":
        out = stack[near]
        return out.astype(bool) if kind == "binary" else out
    labels = None
    if kind == "labels":
        if lazy:
            import dask.array as da

            labels = np.asarray(da.unique(stack.ravel()).compute())
        else:
            labels = np.unique(stack)
    if method == "cubic":
        func, halo, per_voxel = _cubic_block(planes, n_planes, near, kind, labels)
    elif method == "shape":
        func, halo, per_voxel = _shape_block(planes, n_planes, near, kind, labels)
    else:
        func, halo, per_voxel = ml_block(planes, n_planes, near, kind, labels)
    return map_blocks(func, stack, halo, spatial_ndim=2,
                      bytes_per_voxel=per_voxel * n_planes / planes.size, progress=progress,
                      inner_progress=method == "ml")


def _check_finite(block: np.ndarray) -> None:
    if np.issubdtype(block.dtype, np.floating) and not np.all(np.isfinite(block)):
        raise ValueError("the measured planes contain NaN or inf; clean the stack first")


def _spline_planes(values: np.ndarray, planes: np.ndarray, n_planes: int,
                   near: np.ndarray) -> np.ndarray:
    """Not-a-knot cubic spline along axis 0 evaluated on every plane (nearest outside)."""
    from scipy.interpolate import CubicSpline

    z = np.arange(n_planes, dtype=float)
    inside = (z >= planes[0]) & (z <= planes[-1])
    cs = CubicSpline(planes.astype(float), values.astype(np.float64), axis=0,
                     bc_type="not-a-knot")
    out = np.empty((n_planes,) + values.shape[1:], np.float32)
    out[inside] = cs(z[inside])
    out[~inside] = values[near[~inside]]
    return out


def _cubic_block(planes, n_planes, near, kind, labels):
    def func(block: np.ndarray) -> np.ndarray:
        _check_finite(block)
        if kind == "binary":
            return _spline_planes(block.astype(np.float32), planes, n_planes, near) > 0.5
        if kind == "labels":
            return per_label(lambda m: _spline_planes(m.astype(np.float32), planes, n_planes,
                                                       near), block, labels)
        out = _spline_planes(block, planes, n_planes, near)
        out[planes] = block
        return out

    # per (measured plane x pixel): the data, spline coefficients, the output planes
    return func, 0, 48.0 + (8.0 if kind == "labels" else 0.0)


def _shape_block(planes, n_planes, near, kind, labels):
    def sdf_spline(mask: np.ndarray) -> np.ndarray:
        return _spline_planes(plane_sdf(mask, clip=SHAPE_CLIP), planes, n_planes, near)

    def func(block: np.ndarray) -> np.ndarray:
        if kind == "binary":
            return sdf_spline(block.astype(bool)) > 0
        return per_label(sdf_spline, block, labels)

    return func, SHAPE_CLIP + 1, 56.0
