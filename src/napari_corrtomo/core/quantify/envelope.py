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
from ._common import padded_box
from .porosity import inner_pores

__all__ = ["labels_at", "particle_envelopes", "spherical_envelopes"]


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
            src, dst = padded_box(box, pad, env.shape, lab.shape)
            target = out[dst]
            target[env[src] & (target == 0)] = label
        report(progress, k + 1, len(todo))
    return out


def spherical_envelopes(solid: Any, particles: Any, spacing: float | tuple[float, ...],
                        progress: ProgressCallback | None = None) -> np.ndarray:
    """Each particle's envelope as a sphere: the sphere through the vertices of its solid's
    convex hull (the seed's spherical mask, Götz et al. 2025).

    The hull's vertices are the particle's outermost solid voxels: pores that open to
    the surface, however wide their mouths, are concave and never hold one, so the
    sphere fitted to them (least squares, geometric) does not depend on the porosity.
    The hull's *volume* does: its flat facets span the pore mouths (a 30 % porous
    sphere's hull-volume radius is 0.3-0.5 voxel short at radius 15-80 voxels, up to
    4 voxels when a pore is large). Voxel centres lie inside the digitised surface by
    ``0.289 r**-0.513`` voxels (r in voxels; calibrated on digitised spheres of radius 4-80
    voxels at random sub-voxel centres: residual 0.002 voxel, scatter 0.02 voxel at
    radius 5, the same on 30 % porous spheres;
    tests/core/quantify/test_envelope.py), which is added back. Vertices on the array's
    border faces are left out of the fit (a particle cut by the border is fitted on its
    remaining surface).

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
            vertices = pts[ConvexHull(pts).vertices]
        except (QhullError, ValueError):  # flat or tiny: no volume to fit
            spheres.append((0.0, label, None, box))
            continue
        inner = np.all((vertices > 0) & (vertices < (np.array(lab.shape) - 1) * sp), axis=1)
        centre, r = _fit_sphere(vertices[inner] if inner.sum() >= 10 else vertices, pts, step)
        r += 0.289 * (r / step) ** -0.513 * step
        spheres.append((r, label, centre, box))
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


def labels_at(labels: np.ndarray, points: np.ndarray,
              spacing: float | tuple[float, ...] = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The label at each point, or the label nearest it where the point is unlabelled
    (a click beside a particle, a centre found by registration), and how far it missed.

    Parameters
    ----------
    labels
        Integer labels ``(z, y, x)`` with at least one non-zero voxel.
    points
        ``(n, 3)`` voxel coordinates (may be fractional; must lie within the array).
    spacing
        Voxel size per axis: distances are physical.

    Returns
    -------
    labels, distances : numpy.ndarray
        ``(n,)`` labels, and the distance (unit of ``spacing``) by which each point missed
        them: 0 where the point's own voxel (the one whose centre is nearest) is
        labelled, else the distance to the centre of the nearest labelled voxel; ties in
        distance go to the first voxel in C order.
    """
    lab = check_labels(labels, "labels")
    sp = np.asarray(check_spacing(spacing, lab.ndim), float)
    pts = np.asarray(points, float).reshape(-1, lab.ndim)
    out = np.zeros(len(pts), np.int64)
    dist = np.zeros(len(pts))
    for i, p in enumerate(pts):
        own = tuple(np.rint(p).astype(int))
        if all(0 <= v < n for v, n in zip(own, lab.shape, strict=True)) and lab[own]:
            out[i] = lab[own]
            continue
        # a box around the point twice as large until it holds a voxel no farther than
        # its half-width: that voxel is then the nearest in the whole array
        half = 1
        while True:
            lo = np.maximum(np.floor(p).astype(int) - half, 0)
            hi = np.minimum(np.ceil(p).astype(int) + half + 1, lab.shape)
            where = np.argwhere(lab[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))])
            covers = bool(np.all(lo == 0) and np.all(hi == lab.shape))
            if where.size:
                d2 = np.sum(((where + lo - p) * sp) ** 2, axis=1)
                k = int(np.argmin(d2))
                if d2[k] <= (half * sp.min()) ** 2 or covers:
                    out[i] = lab[tuple(where[k] + lo)]
                    dist[i] = float(np.sqrt(d2[k]))
                    break
            elif covers:
                raise ValueError("no labelled voxel to pick")
            half *= 2
    return out, dist


def _fit_sphere(points: np.ndarray, surface: np.ndarray, voxel: float,
                max_trials: int = 2048, max_surface: int = 256) -> tuple[np.ndarray, float]:
    """Centre and radius of the sphere through the hull vertices ``points`` ``(n, 3)`` of
    a particle whose surface voxels are ``surface`` ``(m, 3)``.

    RANSAC: spheres through random quadruples of vertices (seeded: the same points give
    the same sphere); the one that passes within half a ``voxel`` of most *surface*
    voxels (up to ``max_surface`` of them, an even sample) wins. A bead or a neighbour's
    fragment stuck to a particle adds hull vertices of its own, and its hull hides the
    particle's surface between them: on the demo's microCT (1 um voxels, seeds 5, 6, 8)
    half the vertices of the 10 um particle lay on gold beads 1-2 um off its surface,
    and the sphere through most *vertices* was one through the beads (14-18 um); the
    particle's own surface holds the most surface voxels. Quadruples are drawn in batches
    of 128 until one of them is all inliers of the winner with 99.9 % probability
    (``max_trials`` at most; one batch for a clean sphere). Then the algebraic least
    squares fit of the vertices within half a voxel of the winner (all of them when fewer
    than 10) and Gauss-Newton on their geometric distances, refitted once on the vertices
    within one voxel of that sphere: the winner is one of many near-equal spheres, and
    its half-voxel inliers alone moved the demo's 10 um particle by 0.1 voxel with the
    draw; beads lie further out. A digitised sphere's vertices scatter by ~0.3 voxel:
    all are inliers.
    """
    n = len(points)
    keep = np.ones(n, bool)
    if n > 4:
        rng = np.random.default_rng(0)
        sample = surface[:: -(-len(surface) // max_surface)]
        best_score, keep_best, done = 0, None, 0
        while done < max_trials:
            quads = points[np.argsort(rng.random((128, n)), axis=1)[:, :4]]  # (128, 4, 3)
            done += 128
            a = np.concatenate([2.0 * quads, np.ones((128, 4, 1))], axis=2)
            ok = np.abs(np.linalg.det(a)) > 1e-9 * voxel**3
            if ok.any():
                sol = np.linalg.solve(a[ok], np.sum(quads[ok] ** 2, axis=2)[..., None])[..., 0]
                centres = sol[:, :3]
                radii = np.sqrt(np.maximum(sol[:, 3] + np.sum(centres**2, axis=1), 0.0))
                score = (np.abs(np.linalg.norm(sample[None] - centres[:, None], axis=2)
                                - radii[:, None]) <= 0.5 * voxel).sum(axis=1)
                k = int(np.argmax(score))
                if score[k] > best_score:
                    best_score = score[k]
                    keep_best = np.abs(np.linalg.norm(points - centres[k], axis=1)
                                       - radii[k]) <= 0.5 * voxel
            if keep_best is not None:
                w = keep_best.mean()
                if w >= 1.0 or done >= np.log(1e-3) / np.log1p(-(w**4)):
                    break
        if keep_best is not None and keep_best.sum() >= 10:
            keep = keep_best
    centre, r = _sphere_lsq(points[keep])
    if not keep.all():  # the winner was one of many near-equal spheres: refit on its own
        refit = np.abs(np.linalg.norm(points - centre, axis=1) - r) <= voxel
        if refit.sum() >= 10:
            centre, r = _sphere_lsq(points[refit])
    return centre, r


def _sphere_lsq(pts: np.ndarray) -> tuple[np.ndarray, float]:
    """Sphere through ``pts`` ``(n, 3)``: algebraic least squares, then Gauss-Newton on the
    geometric distances."""
    a = np.column_stack([2.0 * pts, np.ones(len(pts))])
    centre = np.linalg.lstsq(a, np.sum(pts**2, axis=1), rcond=None)[0][:3]
    for _ in range(5):
        d = pts - centre
        dist = np.maximum(np.linalg.norm(d, axis=1), 1e-12)
        jac = np.column_stack([-d / dist[:, None], -np.ones(len(pts))])
        centre = centre + np.linalg.lstsq(jac, dist.mean() - dist, rcond=None)[0][:3]
    return centre, float(np.linalg.norm(pts - centre, axis=1).mean())
