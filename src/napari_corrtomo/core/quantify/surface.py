"""Interface area by marching cubes, and specific surface.

Marching cubes on a binary mask puts the surface half way between voxel centres;
its area overestimates smooth surfaces by ~8 % (staircase facets). Smoothing the
mask with a Gaussian (``smooth``, sigma in units of the smallest voxel, default
1.0) removes the staircase, but moves the 0.5 level set of a curved boundary
inwards by ``sigma^2 (k1 + k2) / 2`` (``k1 + k2``: the sum of the principal
curvatures; for a ball of radius ``r`` the level set sits at ``r - sigma^2 / r``).
Each mesh vertex is therefore moved back outwards along the level set's normal by
that amount, with the curvature measured on the smoothed field
(``div(-grad f / |grad f|)``). With the default this gives digitised spheres of
radius 4-30 voxels within 1.1 % of ``4 pi r^2`` (6-30 voxels: within 0.7 %;
docs/benchmarks/quantify.md). Sharp edges are rounded off: a cube loses about
0.5 sigma of area per unit edge length (side 32 voxels: -3 %). ``smooth=0`` is
plain binary marching cubes (no correction). The array border is not a surface:
the mask is extended beyond it by edge replication.

Volumes of any size are meshed slab by slab (slabs overlap by one voxel, so
every marching-cubes cell is counted once) and only the area is kept.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage as ndi

from .._checks import as_mask, check_same_shape, check_spacing
from ..backend import memory_budget
from ..progress import ProgressCallback, report

__all__ = ["surface_area", "specific_surface", "mesh_area", "DEFAULT_SMOOTH"]

#: default Gaussian sigma (units of the smallest voxel) before meshing
DEFAULT_SMOOTH = 1.0
#: voxels beyond a meshed region whose field the curvature (second derivatives) reads
CURVATURE_MARGIN = 2


def surface_area(mask: Any, spacing: float | tuple[float, ...], smooth: float = DEFAULT_SMOOTH,
                 progress: ProgressCallback | None = None) -> float:
    """Area of the boundary of ``mask`` (3D), in units of ``spacing`` squared.

    Parameters
    ----------
    mask
        Boolean (or 0/1) 3D array ``(z, y, x)``.
    spacing
        Voxel size per axis.
    smooth
        Gaussian sigma, in units of the smallest voxel size, applied before meshing,
        with the curvature correction of the module notes (0 = binary marching cubes).
    progress
        ``progress(done, total)`` per slab.
    """
    m = as_mask(mask, "mask")
    if m.ndim != 3:
        raise ValueError(f"surface_area needs a 3D mask, got {m.ndim}D")
    sp = check_spacing(spacing, m.ndim)
    sigma = _sigma(smooth, sp)
    halo = _kernel_radius(sigma) + CURVATURE_MARGIN + 1 if max(sigma) > 0 else 0
    nz = m.shape[0]
    plane = m.shape[1] * m.shape[2]
    # at most 4 M voxels a slab: a cancel check every ~0.5 s (2-core VM)
    slab = int(max(8, min(nz, memory_budget("numpy") // (64 * max(plane, 1)) - 2 * halo,
                          (1 << 22) // max(plane, 1))))
    area = 0.0
    starts = list(range(0, max(nz - 1, 1), slab))
    for i, z0 in enumerate(starts):
        z1 = min(z0 + slab, nz - 1)  # cells z0..z1-1 need voxel planes z0..z1
        lo, hi = max(0, z0 - halo), min(nz, z1 + 1 + halo)
        field = _field(m[lo:hi], sigma)
        disp = _displacement(field, sigma, sp)
        cut = slice(z0 - lo, z1 + 1 - lo)
        # extend by one replicated plane at the global ends, and in y/x everywhere
        pads = ((1 if z0 == 0 else 0, 1 if z1 == nz - 1 else 0), (1, 1), (1, 1))
        part = np.pad(field[cut], pads, mode="edge")
        if disp is not None:
            disp = np.pad(disp[:, cut], ((0, 0),) + pads, mode="edge")
        area += mesh_area(part, sp, pads=pads, displacement=disp)
        report(progress, i + 1, len(starts))
    return area


def specific_surface(mask: Any, spacing: float | tuple[float, ...], region: Any | None = None,
                     smooth: float = DEFAULT_SMOOTH) -> float:
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
              pads: tuple[tuple[int, int], ...] | None = None,
              displacement: np.ndarray | None = None) -> float:
    """Area of the ``level`` isosurface of a 3D field (0 when there is none).

    ``pads`` ((lo, hi) per axis, 0 or 1) says which outer planes are edge-replicated
    padding: the surface running through such a plane ends half a voxel beyond the
    last real voxel centre, like the phase itself, so its extension there is halved.
    ``displacement`` ``(3, *field.shape)``, in voxels: moves each vertex by the
    linearly interpolated vector (the curvature correction, :func:`_displacement`).
    """
    from skimage.measure import marching_cubes, mesh_surface_area

    if field.min() >= level or field.max() <= level:
        return 0.0
    verts, faces, _, _ = marching_cubes(field, level, allow_degenerate=False)
    if displacement is not None:
        verts = verts + np.stack([ndi.map_coordinates(d, verts.T, order=1, mode="nearest")
                                  for d in displacement], axis=1)
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


def _displacement(field: np.ndarray, sigma: tuple[float, ...],
                  sp: tuple[float, ...]) -> np.ndarray | None:
    """Vertex shift ``(3, *field.shape)`` in voxels undoing the smoothing's curvature shift.

    The 0.5 level set of a Gaussian-smoothed indicator (physical sigma ``s``) lies
    ``s^2 (k1 + k2) / 2`` inside the boundary; the shift is that distance along the
    outward normal ``-grad f / |grad f|``, capped at ``s`` (thin features, where the
    expansion no longer holds). ``None`` when there is no smoothing. The outer
    :data:`CURVATURE_MARGIN` voxels only feed the derivatives.
    """
    if max(sigma) <= 0:
        return None
    s = sigma[0] * sp[0]  # isotropic in physical units (see _sigma)
    grad = np.gradient(field.astype(np.float32, copy=False), *sp)
    mag = np.sqrt(sum(g * g for g in grad))
    ok = mag * s > 1e-4  # flat field: no normal, no shift
    inv = np.where(ok, 1.0 / np.where(ok, mag, 1.0), 0.0).astype(np.float32)
    normal = [-g * inv for g in grad]
    curvature = sum(np.gradient(n, h, axis=ax) for ax, (n, h) in enumerate(zip(normal, sp)))
    shift = np.clip(0.5 * s * s * curvature, -s, s)
    return np.stack([shift * n / h for n, h in zip(normal, sp)]).astype(np.float32)


def _sigma(smooth: float, sp: tuple[float, ...]) -> tuple[float, ...]:
    smooth = float(smooth)
    if not np.isfinite(smooth) or smooth < 0:
        raise ValueError(f"smooth must be >= 0 (voxels), got {smooth}")
    return tuple(smooth * min(sp) / s for s in sp)


def _kernel_radius(sigma: tuple[float, ...]) -> int:
    """Largest radius (voxels) of SciPy's Gaussian kernel (truncate=4)."""
    return max(int(4.0 * s + 0.5) for s in sigma)


def _field(mask: np.ndarray, sigma: tuple[float, ...]) -> np.ndarray:
    f = mask.astype(np.float32)
    if max(sigma) > 0:
        f = ndi.gaussian_filter(f, sigma, mode="nearest", truncate=4.0)
    return f
