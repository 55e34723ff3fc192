"""Resampling into any grid, and boxes (regions of interest, fields of view) between frames.

A grid is ``shape`` voxels of size ``spacing`` whose voxel ``i`` has its centre at
world ``origin + i * spacing`` (napari's ``translate`` + ``scale``). Boxes are
``(2, 3)`` arrays ``[[z0, y0, x0], [z1, y1, x1]]`` of world coordinates (low and
high corner); a mapped box is a parallelepiped, returned with its 8 corners and
its axis-aligned bounds.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .._checks import check_spacing
from ..backend import (
    asarray,
    block_shape_for,
    is_lazy,
    iter_blocks,
    memory_budget,
    ndimage_for,
    resolve_backend,
    to_host,
)
from ..progress import ProgressCallback, report
from .transform import Transform, apply_to_points, as_transform, check_matrix


class MappedBox(NamedTuple):
    """A box carried into another frame: its 8 ``corners`` and axis-aligned ``bounds`` (2, 3)."""

    corners: np.ndarray
    bounds: np.ndarray


def _origin(origin: Any) -> np.ndarray:
    o = np.zeros(3) if origin is None else np.asarray(origin, dtype=float).reshape(-1)
    if o.shape != (3,) or not np.all(np.isfinite(o)):
        raise ValueError(f"origin must be 3 finite numbers (z, y, x), got {origin!r}")
    return o


def grid_matrix(spacing: Any, origin: Any = None) -> np.ndarray:
    """4x4 index -> world matrix of a grid (``world = origin + index * spacing``)."""
    m = np.diag([*check_spacing(spacing, 3), 1.0])
    m[:3, 3] = _origin(origin)
    return m


def box_corners(box: Any) -> np.ndarray:
    """The 8 corners (8, 3) of an axis-aligned box ``[[z0, y0, x0], [z1, y1, x1]]``.

    Corner ``4*a + 2*b + c`` takes the low (0) or high (1) value on z, y, x
    according to the bits ``a, b, c``.
    """
    b = np.asarray(box, dtype=float)
    if b.shape != (2, 3) or not np.all(np.isfinite(b)):
        raise ValueError(f"a box is [[z0, y0, x0], [z1, y1, x1]] (2 x 3 finite numbers), got {b!r}")
    lo, hi = np.minimum(b[0], b[1]), np.maximum(b[0], b[1])
    bits = np.array([[(i >> 2) & 1, (i >> 1) & 1, i & 1] for i in range(8)], bool)
    return np.where(bits, hi, lo)


#: The 12 edges of a box as pairs of corner numbers (see :func:`box_corners`).
BOX_EDGES = tuple((i, i | bit) for i in range(8) for bit in (1, 2, 4) if not i & bit)


def fov_box(shape: Any, spacing: Any, origin: Any = None, edges: bool = False) -> np.ndarray:
    """The world box spanned by a grid: voxel centres, or voxel faces when ``edges``."""
    shape = np.asarray(shape, dtype=float)[-3:]
    sp = np.asarray(check_spacing(spacing, 3))
    o = _origin(origin)
    pad = 0.5 if edges else 0.0
    return np.array([o - pad * sp, o + (shape - 1 + pad) * sp])


def map_box(box: Any, transform: Transform | np.ndarray, inverse: bool = False) -> MappedBox:
    """Carry a world box from one frame to the other.

    Parameters
    ----------
    box : (2, 3) array_like
        ``[[z0, y0, x0], [z1, y1, x1]]`` in the moving world (or the fixed world
        with ``inverse=True``), in the transform's unit.
    transform : Transform or (4, 4) array
        Moving -> fixed.
    inverse : bool
        Map fixed -> moving instead.

    Returns
    -------
    MappedBox
        ``corners`` (8, 3) in the other frame (same order as :func:`box_corners`)
        and ``bounds`` (2, 3), their axis-aligned bounding box.
    """
    m = check_matrix(getattr(transform, "matrix", transform), "transform")
    if inverse:
        m = np.linalg.inv(m)
    corners = apply_to_points(m, box_corners(box))
    return MappedBox(corners, np.array([corners.min(axis=0), corners.max(axis=0)]))


def crop_slices(bounds: Any, shape: Any, spacing: Any, origin: Any = None
                ) -> tuple[tuple[slice, slice, slice], bool]:
    """Index slices of a grid covering a world box, and whether the box had to be cut.

    Every voxel whose centre lies in the box is included. Raises ``ValueError``
    when the box misses the grid entirely (nothing to crop).
    """
    b = np.asarray(bounds, dtype=float)
    if b.shape != (2, 3) or not np.all(np.isfinite(b)):
        raise ValueError(f"bounds must be [[z0, y0, x0], [z1, y1, x1]], got {bounds!r}")
    shape = np.asarray(shape, dtype=int)[-3:]
    sp = np.asarray(check_spacing(spacing, 3))
    o = _origin(origin)
    lo = np.ceil((np.minimum(b[0], b[1]) - o) / sp - 1e-9).astype(int)
    hi = np.floor((np.maximum(b[0], b[1]) - o) / sp + 1e-9).astype(int) + 1
    start, stop = np.maximum(lo, 0), np.minimum(hi, shape)
    if np.any(stop <= start):
        raise ValueError(
            "the box does not overlap the volume: check that the region was drawn over the "
            "registered part and that the volumes are registered"
        )
    clipped = bool(np.any(lo < 0) or np.any(hi > shape))
    return tuple(slice(int(a), int(z)) for a, z in zip(start, stop, strict=True)), clipped


def box_sections(corners: Any, levels: Any, axis: int = 0) -> list[np.ndarray]:
    """Cross-sections of a mapped box (8 corners, :func:`box_corners` order) with planes.

    Returns one polygon (K, 3) per plane ``point[axis] == level`` that cuts the
    box (K >= 3 vertices in order around the section), and an empty list entry
    skipped otherwise: the list holds only the planes that cut. Used to draw a
    field of view as outlines in the slices of another volume.
    """
    c = np.asarray(corners, dtype=float)
    if c.shape != (8, 3):
        raise ValueError(f"corners must be (8, 3), got {c.shape}")
    other = [a for a in range(3) if a != axis]
    polys = []
    for level in np.atleast_1d(np.asarray(levels, dtype=float)):
        pts = []
        for i, j in BOX_EDGES:
            a, b = c[i, axis] - level, c[j, axis] - level
            if a == 0 and b == 0:
                pts.extend([c[i], c[j]])
            elif a == 0:
                pts.append(c[i])
            elif b == 0:
                pts.append(c[j])
            elif a * b < 0:
                w = a / (a - b)
                pts.append(c[i] + w * (c[j] - c[i]))
        if len(pts) < 3:
            continue
        p = np.unique(np.round(np.array(pts), 12), axis=0)
        if len(p) < 3:
            continue
        centre = p.mean(axis=0)
        ang = np.arctan2(p[:, other[0]] - centre[other[0]], p[:, other[1]] - centre[other[1]])
        p = p[np.argsort(ang)]
        p[:, axis] = level
        polys.append(p)
    return polys


def resample(
    moving: Any,
    transform: Transform | np.ndarray,
    reference_shape: Any,
    reference_spacing: Any,
    *,
    moving_spacing: Any,
    reference_origin: Any = None,
    moving_origin: Any = None,
    order: int = 1,
    cval: float = 0.0,
    antialias: bool = True,
    backend: str = "auto",
    budget: int | str | None = None,
    progress: ProgressCallback | None = None,
) -> np.ndarray:
    """Resample a moving volume into a grid of the fixed frame.

    Parameters
    ----------
    moving : (Z, Y, X) array
        NumPy, CuPy, dask or zarr; lazy inputs are read one block's footprint at
        a time.
    transform : Transform or (4, 4) array
        Moving world -> fixed world, in the unit of the spacings.
    reference_shape : 3 ints
        Output grid shape (z, y, x).
    reference_spacing, reference_origin : 3 floats
        Output voxel size and the world position of voxel (0, 0, 0) in the
        fixed frame (default origin 0).
    moving_spacing, moving_origin : 3 floats
        Voxel size and origin of ``moving`` in its own world.
    order : int
        Spline order (0 nearest -- use it for labels, 1 linear, 3 cubic).
    cval : float
        Value outside the moving volume.
    antialias : bool
        When the output grid is coarser than the moving voxels along an axis
        (factor f > 1), smooth the moving volume first with a Gaussian of
        sigma ``(f - 1) / 2`` input voxels (as ``skimage.transform.resize``).
        Ignored for ``order=0``.
    backend, budget, progress
        Array backend, memory budget of the blocks, ``progress(done, total)``
        after each output block.

    Returns
    -------
    ndarray
        ``reference_shape``; the input dtype for ``order=0``, else float32 (float64
        for float64 input).
    """
    m = check_matrix(getattr(transform, "matrix", transform), "transform")
    if getattr(moving, "ndim", None) != 3:
        raise ValueError(
            f"moving must be a 3D (z, y, x) volume, got {getattr(moving, 'ndim', '?')}D")
    if order not in (0, 1, 2, 3, 4, 5):
        raise ValueError(f"order must be a spline order 0..5, got {order}")
    out_shape = tuple(int(s) for s in np.asarray(reference_shape).reshape(-1))
    if len(out_shape) != 3 or min(out_shape) < 1:
        raise ValueError(f"reference_shape must be 3 positive sizes, got {reference_shape!r}")
    # output index -> moving index
    idx = np.linalg.inv(grid_matrix(moving_spacing, moving_origin)) @ np.linalg.inv(m) \
        @ grid_matrix(reference_spacing, reference_origin)
    lin, off = idx[:3, :3], idx[:3, 3]
    dtype = np.dtype(moving.dtype)
    out_dtype = dtype if order == 0 else (np.float64 if dtype == np.float64 else np.float32)
    backend = resolve_backend(backend)
    ndi = ndimage_for(backend)
    nbytes = memory_budget(backend, budget)
    # per output voxel: the output, plus the input footprint (at most ~ the same size
    # times the volume ratio, bounded below) and spline coefficients
    block = block_shape_for(out_shape, (0, 0, 0), 8.0 * max(1.0, abs(np.linalg.det(lin))) + 16.0,
                            nbytes)
    blocks = iter_blocks(out_shape, block, (0, 0, 0))
    result = np.full(out_shape, cval, dtype=out_dtype)
    in_shape = np.array(moving.shape)
    # input voxels per output step along each input axis -> anti-aliasing sigma
    factor = np.abs(lin).max(axis=1)
    sigma = np.maximum(0.0, (factor - 1.0) / 2.0) if antialias and order > 0 else np.zeros(3)
    margin = (1 if order <= 1 else order + 6) + np.ceil(4 * sigma).astype(int)
    for n, blk in enumerate(blocks):
        start = np.array([s.start for s in blk.inner], float)
        stop = np.array([s.stop for s in blk.inner], float) - 1
        corners = apply_to_points(idx, box_corners(np.array([start, stop])))
        lo = np.floor(corners.min(axis=0)).astype(int) - margin
        hi = np.ceil(corners.max(axis=0)).astype(int) + margin + 1
        lo_c, hi_c = np.maximum(lo, 0), np.minimum(hi, in_shape)
        if np.all(hi_c > lo_c):
            src = moving[tuple(slice(a, b) for a, b in zip(lo_c, hi_c, strict=True))]
            src = np.asarray(src) if is_lazy(src) else src
            dev = asarray(src, backend, dtype=None if order == 0 else out_dtype)
            if np.any(sigma > 0):
                dev = ndi.gaussian_filter(dev, tuple(sigma), mode="nearest")
            out = ndi.affine_transform(
                dev, lin, offset=lin @ start + off - lo_c,
                output_shape=tuple(s.stop - s.start for s in blk.inner),
                order=order, mode="constant", cval=cval, prefilter=order > 1, output=out_dtype)
            # voxels mapped outside the whole moving volume (not just outside this crop)
            # are cval; inside the crop margins they were interpolated correctly
            result[blk.inner] = to_host(out)
        report(progress, n + 1, len(blocks))
    return result


def crop_box(image: Any, box: Any, index_to_world: Any) -> tuple[Any, tuple[slice, ...], bool]:
    """The part of a volume that covers a world box (a region of interest across scales).

    Parameters
    ----------
    image : (Z, Y, X) array
        Any array that slices (NumPy, dask, zarr); only the crop is read.
    box : (2, 3) array_like
        ``[[z0, y0, x0], [z1, y1, x1]]`` in world coordinates.
    index_to_world : (4, 4) array
        Where the image's voxel indices sit in that world (e.g. napari's
        ``affine @ scale/translate``, or :func:`grid_matrix` composed with a
        registration transform).

    Returns
    -------
    crop, slices, clipped
        The voxels whose centres fall in the box's bounding box in index space
        (the box mapped into the image may be oblique), the index slices, and
        whether the box reached outside the volume.
    """
    if getattr(image, "ndim", None) != 3:
        raise ValueError(
            f"the volume to crop must be 3D (z, y, x), got {getattr(image, 'ndim', '?')}D")
    bounds = map_box(box, index_to_world, inverse=True).bounds
    slices, clipped = crop_slices(bounds, image.shape, (1.0, 1.0, 1.0))
    return image[slices], slices, clipped


def fov_outlines(shape: Any, index_to_world: Any, reference_shape: Any,
                 reference_index_to_world: Any) -> list[np.ndarray]:
    """Outlines of a volume's field of view in every slice of a reference volume.

    Returns polygons (K, 3) in the reference's *index* coordinates, one per
    reference slice (axis 0) that the field of view (voxel faces) crosses, each
    lying exactly on its slice ``z = k``.
    """
    box = fov_box(shape, (1.0, 1.0, 1.0), edges=True)
    to_ref = np.linalg.inv(check_matrix(reference_index_to_world, "reference index_to_world")) \
        @ check_matrix(index_to_world, "index_to_world")
    corners = apply_to_points(to_ref, box_corners(box))
    n = int(np.asarray(reference_shape)[-3])
    lo = max(int(np.ceil(corners[:, 0].min())), 0)
    hi = min(int(np.floor(corners[:, 0].max())), n - 1)
    return box_sections(corners, np.arange(lo, hi + 1), axis=0) if hi >= lo else []


def fov_in_fixed(shape: Any, spacing: Any, transform: Transform | np.ndarray,
                 origin: Any = None) -> MappedBox:
    """Field of view of a moving grid (voxel centres) in the fixed frame."""
    return map_box(fov_box(shape, spacing, origin), as_transform(transform))
