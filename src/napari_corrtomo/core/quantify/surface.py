"""Interface area by marching cubes, and specific surface.

Marching cubes on a binary mask puts the surface half way between voxel centres;
its area overestimates smooth surfaces by ~8 % (staircase facets). A light
Gaussian smoothing of the mask before meshing (``smooth``, in units of the
smallest voxel, default 0.5) brings a digitised sphere of radius 5-20 voxels
within +2-4 % of ``4 pi r^2`` (``smooth=0.7``: within 1 % for radii >= 10 voxels
but -4 % at 5 voxels; ``smooth=0``: plain binary marching cubes). The array border
is not a surface: the mask is extended beyond it by edge replication.

Volumes of any size are meshed slab by slab (slabs overlap by one voxel, so
every marching-cubes cell is counted once) and only the area is kept.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._checks import as_mask, check_same_shape, check_spacing
from ..backend import memory_budget
from ..progress import ProgressCallback, report

__all__ = ["surface_area", "specific_surface", "mesh_area"]


def surface_area(mask: Any, spacing: float | tuple[float, ...], smooth: float = 0.5,
                 progress: ProgressCallback | None = None) -> float:
    """Area of the boundary of ``mask`` (3D), in units of ``spacing`` squared.

    Parameters
    ----------
    mask
        Boolean (or 0/1) 3D array ``(z, y, x)``.
    spacing
        Voxel size per axis.
    smooth
        Gaussian sigma, in units of the smallest voxel size, applied before meshing
        (0 = binary marching cubes). See the module notes for its accuracy.
    progress
        ``progress(done, total)`` per slab.
    """
    m = as_mask(mask, "mask")
    if m.ndim != 3:
        raise ValueError(f"surface_area needs a 3D mask, got {m.ndim}D")
    sp = check_spacing(spacing, m.ndim)
    sigma = _sigma(smooth, sp)
    halo = int(math.ceil(4 * max(sigma))) + 1 if max(sigma) > 0 else 0
    nz = m.shape[0]
    plane = m.shape[1] * m.shape[2]
    slab = int(max(8, min(nz, memory_budget("numpy") // (64 * max(plane, 1)) - 2 * halo)))
    area = 0.0
    starts = list(range(0, max(nz - 1, 1), slab))
    for i, z0 in enumerate(starts):
        z1 = min(z0 + slab, nz - 1)  # cells z0..z1-1 need voxel planes z0..z1
        lo, hi = max(0, z0 - halo), min(nz, z1 + 1 + halo)
        field = _field(m[lo:hi], sigma)
        part = field[z0 - lo:z1 + 1 - lo]
        # extend by one replicated plane at the global ends, and in y/x everywhere
        pad_z = (1 if z0 == 0 else 0, 1 if z1 == nz - 1 else 0)
        part = np.pad(part, (pad_z, (1, 1), (1, 1)), mode="edge")
        area += mesh_area(part, sp, pads=(pad_z, (1, 1), (1, 1)))
        report(progress, i + 1, len(starts))
    return area


def specific_surface(mask: Any, spacing: float | tuple[float, ...], region: Any | None = None,
                     smooth: float = 0.5) -> float:
    """Interface area per volume of ``region`` (default: the whole array), in 1/unit.

    ``region`` is e.g. the particle (``solid | pore``) to express the pore surface per
    particle volume.
    """
    m = as_mask(mask, "mask")
    sp = check_spacing(spacing, m.ndim)
    if region is None:
        vol = m.size * float(np.prod(sp))
    else:
        r = as_mask(region, "region")
        check_same_shape(m, r, "mask", "region")
        vol = np.count_nonzero(r) * float(np.prod(sp))
    return surface_area(m, sp, smooth) / vol


def mesh_area(field: np.ndarray, spacing: tuple[float, ...], level: float = 0.5,
              pads: tuple[tuple[int, int], ...] | None = None) -> float:
    """Area of the ``level`` isosurface of a 3D field (0 when there is none).

    ``pads`` ((lo, hi) per axis, 0 or 1) says which outer planes are edge-replicated
    padding: the surface running through such a plane ends half a voxel beyond the
    last real voxel centre, like the phase itself, so its extension there is halved.
    """
    from skimage.measure import marching_cubes, mesh_surface_area

    if field.min() >= level or field.max() <= level:
        return 0.0
    verts, faces, _, _ = marching_cubes(field, level, allow_degenerate=False)
    if pads is not None:
        for ax, (lo, hi) in enumerate(pads):
            x = verts[:, ax]
            if lo:
                x[:] = np.where(x < 1, 1 - 0.5 * (1 - x), x)
            if hi:
                top = field.shape[ax] - 2
                x[:] = np.where(x > top, top + 0.5 * (x - top), x)
    verts = verts * np.asarray(spacing, dtype=float)
    return float(mesh_surface_area(verts, faces))


def _sigma(smooth: float, sp: tuple[float, ...]) -> tuple[float, ...]:
    smooth = float(smooth)
    if not np.isfinite(smooth) or smooth < 0:
        raise ValueError(f"smooth must be >= 0 (voxels), got {smooth}")
    return tuple(smooth * min(sp) / s for s in sp)


def _field(mask: np.ndarray, sigma: tuple[float, ...]) -> np.ndarray:
    from scipy import ndimage as ndi

    f = mask.astype(np.float32)
    if max(sigma) > 0:
        f = ndi.gaussian_filter(f, sigma, mode="nearest", truncate=4.0)
    return f
