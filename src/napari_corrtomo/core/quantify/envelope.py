"""Particle envelopes: each particle's solid plus the macropores it encloses.

The correlative workflow (Götz et al., 2025) segments the solid of porous particles
whose macropores are filled with the same resin that surrounds them, so resolved pores
are not a class the classifier can see: they are the void *inside the particle
envelope*. :func:`particle_envelopes` finds each particle's envelope with the
rolling-ball criterion of :func:`~napari_corrtomo.core.quantify.inner_pores`, applied to
one particle at a time, so that the quantification (per-particle porosity, pore size
distribution, closed pores) can measure the pores. For (near-)spherical particles,
:func:`spherical_envelopes` applies what the seed does, a spherical mask per particle:
a ball rolling in from outside dips into the mouths of surface pores wider than
itself and cuts them off, a sphere does not.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import ConvexHull, QhullError

from .._checks import as_mask, check_labels, check_same_shape, check_spacing
from ..progress import ProgressCallback, report
from .porosity import inner_pores

__all__ = ["particle_envelopes", "spherical_envelopes"]


def particle_envelopes(solid: Any, particles: Any, spacing: float | tuple[float, ...],
                       radius_fraction: float = 1.0, min_radius: float | None = None,
                       progress: ProgressCallback | None = None) -> np.ndarray:
    """Each particle's envelope (solid plus the pores it encloses) by a rolling ball.

    The macropores of porous particles open to the surface and are filled with the
    resin around them, so a segmentation holds solid and resin only; the particle is
    the solid plus the void a ball rolling in from outside cannot reach. Rolling one
    ball around *all* particles bridges the gaps between neighbours; here the ball
    rolls around each particle alone (its solid inside its region of ``particles``,
    the others removed), with a radius proportional to the particle's size:
    ``radius_fraction`` times the equivalent-sphere radius of its region (at least
    ``min_radius``). A radius of the particle's own size encloses pores whose mouths
    are nearly as wide as the particle (for a sphere, large radii tend to its convex
    hull) while the concave dents of a non-convex particle wider than the ball stay
    outside.

    Parameters
    ----------
    solid
        Boolean mask of the solid phase ``(z, y, x)`` (or 2D).
    particles
        Integer labels of the particles (e.g. :func:`~.quantify.separate_particles` of
        the solid with its small pores filled); each particle's solid is
        ``solid & (particles == label)``.
    spacing
        Voxel size per axis.
    radius_fraction
        Ball radius over the particle's equivalent-sphere radius (> 0).
    min_radius
        Smallest ball radius in the units of ``spacing``; default two voxels.
    progress
        ``progress(done, total)`` over the particles; raise ``Cancelled`` to stop.

    Returns
    -------
    numpy.ndarray
        ``uint32`` labels of the envelopes (the particle's label on its solid and on
        the pores it encloses; 0 elsewhere). Where two envelopes overlap, the voxel
        keeps the smaller label. The enclosed pores of particle ``i`` are
        ``(result == i) & ~solid``.
    """
    s = as_mask(solid, "solid")
    lab = check_labels(particles, "particles")
    check_same_shape(s, lab, "solid", "particles")
    sp = np.asarray(check_spacing(spacing, s.ndim), float)
    radius_fraction = float(radius_fraction)
    if not np.isfinite(radius_fraction) or radius_fraction <= 0:
        raise ValueError(f"radius_fraction must be positive, got {radius_fraction}")
    floor = 2.0 * float(sp.max()) if min_radius is None else float(min_radius)
    if not np.isfinite(floor) or floor <= 0:
        raise ValueError(f"min_radius must be a positive length, got {min_radius}")
    out = np.zeros(lab.shape, np.uint32)
    boxes = ndi.find_objects(lab)
    todo = [(i + 1, box) for i, box in enumerate(boxes) if box is not None]
    voxel = float(np.prod(sp))
    for k, (label, box) in enumerate(todo):
        region = lab[box] == label
        own = s[box] & region
        if own.any():
            size = np.count_nonzero(region) * voxel  # volume (3D) or area (2D)
            r_eq = np.cbrt(0.75 * size / np.pi) if s.ndim == 3 else np.sqrt(size / np.pi)
            radius = max(radius_fraction * r_eq, floor)
            pad = [int(np.ceil(radius / d)) + 1 for d in sp]
            padded = np.pad(own, [(p, p) for p in pad])
            inner = inner_pores(padded, radius, tuple(sp))
            env = padded | inner
            # back onto the full grid: the envelope may reach beyond the region's box
            lo = [b.start - p for b, p in zip(box, pad, strict=True)]
            src, dst = [], []
            for ax, n in enumerate(lab.shape):
                a, b = lo[ax], lo[ax] + env.shape[ax]
                src.append(slice(max(0, -a), env.shape[ax] - max(0, b - n)))
                dst.append(slice(max(a, 0), min(b, n)))
            target = out[tuple(dst)]
            target[env[tuple(src)] & (target == 0)] = label
        report(progress, k + 1, len(todo))
    return out


def spherical_envelopes(solid: Any, particles: Any, spacing: float | tuple[float, ...],
                        progress: ProgressCallback | None = None) -> np.ndarray:
    """Each particle's envelope as a sphere: the ball of the volume of its solid's convex
    hull, centred on the hull (the seed's spherical mask, Götz et al. 2025).

    The convex hull ignores the pores that open to the surface, however wide their
    mouths; the hull of voxel centres lies inside the digitised surface by a fraction of
    a voxel that shrinks with the radius, ``0.65 r**-0.43`` voxels (r in voxels,
    calibrated on digitised spheres of radius 5-80 voxels, residual ~0.03 voxel;
    tests/core/quantify/test_envelope.py), which is added back.

    Parameters
    ----------
    solid
        Boolean mask of the solid phase ``(z, y, x)``.
    particles
        Integer labels of the particles; particle ``i`` is ``solid & (particles == i)``.
    spacing
        Voxel size per axis.
    progress
        ``progress(done, total)`` per particle.

    Returns
    -------
    numpy.ndarray
        ``uint32`` labels of the envelope spheres (cut at the array border); where two
        overlap, the voxel keeps the larger particle's label. A particle too flat or too
        small for a hull (fewer than 4 voxels off a plane) keeps its solid as envelope.
    """
    s = as_mask(solid, "solid")
    lab = check_labels(particles, "particles")
    check_same_shape(s, lab, "solid", "particles")
    if s.ndim != 3:
        raise ValueError(f"spherical envelopes need a 3D volume, got {s.ndim}D")
    sp = np.asarray(check_spacing(spacing, 3), float)
    step = float(np.cbrt(np.prod(sp)))
    boxes = ndi.find_objects(lab)
    spheres = []
    for label, box in enumerate(boxes, start=1):
        if box is None:
            continue
        own = s[box] & (lab[box] == label)
        surface = own & ~ndi.binary_erosion(own)
        pts = (np.argwhere(surface) + [b.start for b in box]) * sp
        try:
            hull = ConvexHull(pts)
        except (QhullError, ValueError):  # flat or tiny: no volume to fit
            spheres.append((0.0, label, None, box))
            continue
        r = float(np.cbrt(0.75 * hull.volume / np.pi))
        r += 0.65 * (r / step) ** -0.43 * step
        spheres.append((r, label, _hull_centroid(hull), box))
    out = np.zeros(lab.shape, np.uint32)
    grid = [np.arange(n) * d for n, d in zip(lab.shape, sp, strict=True)]
    for k, (r, label, centre, box) in enumerate(sorted(spheres, key=lambda t: -t[0])):
        if centre is None:
            region = out[box]
            region[(s[box] & (lab[box] == label)) & (region == 0)] = label
        else:
            lo = [max(0, int(np.floor((c - r) / d))) for c, d in zip(centre, sp, strict=True)]
            hi = [min(n, int(np.ceil((c + r) / d)) + 1)
                  for c, d, n in zip(centre, sp, lab.shape, strict=True)]
            win = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
            z, y, x = (g[w] - c for g, w, c in zip(grid, win, centre, strict=True))
            ball = (z[:, None, None] ** 2 + y[None, :, None] ** 2 + x[None, None, :] ** 2
                    <= r * r)
            region = out[win]
            region[ball & (region == 0)] = label
        report(progress, k + 1, len(spheres))
    return out


def _hull_centroid(hull: ConvexHull) -> np.ndarray:
    """Volume centroid of a 3D convex hull (tetrahedra from an interior point)."""
    pts = hull.points
    ref = pts[hull.vertices].mean(axis=0)
    tet = pts[hull.simplices] - ref  # (n, 3, 3)
    vol = np.abs(np.linalg.det(tet)) / 6.0
    cents = ref + (tet.sum(axis=1)) / 4.0
    return (cents * vol[:, None]).sum(axis=0) / vol.sum()
