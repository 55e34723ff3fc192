"""Analytic building blocks of the phantoms: rotations, similarity matrices, spheres
painted at sub-voxel accuracy, non-overlapping sphere packings, rendered images and
leveled-wave (Gaussian random field) structures."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage as ndi
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
from scipy.spatial.distance import cdist


def random_rotation(rng: np.random.Generator, max_angle_deg: float = 180.0) -> np.ndarray:
    """A proper rotation (det +1) about a random axis by up to ``max_angle_deg``."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = np.deg2rad(rng.uniform(0.5, 1.0) * max_angle_deg)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def similarity_matrix(scale: float, rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """4x4 homogeneous matrix ``x -> scale * R @ x + t`` (points as (z, y, x) columns)."""
    m = np.eye(4)
    m[:3, :3] = scale * np.asarray(rotation)
    m[:3, 3] = translation
    return m


def paint_spheres(
    target: np.ndarray,
    centers: np.ndarray,
    radii: np.ndarray,
    value: int | float,
    spacing: tuple[float, float, float],
    where: np.ndarray | None = None,
    only: int | None = None,
) -> None:
    """Set voxels whose centre lies inside any sphere to ``value`` (in place).

    ``centers`` (N, 3) and ``radii`` (N,) are in the physical units of ``spacing``.
    ``only`` restricts painting to voxels currently equal to it.
    """
    sp = np.asarray(spacing, dtype=float)
    shape = np.array(target.shape)
    for c, r in zip(np.atleast_2d(centers), np.atleast_1d(radii)):
        lo = np.maximum(np.floor((c - r) / sp).astype(int), 0)
        hi = np.minimum(np.ceil((c + r) / sp).astype(int) + 1, shape)
        if np.any(hi <= lo):
            continue
        z, y, x = (np.arange(a, b) * s - cc for a, b, s, cc in zip(lo, hi, sp, c))
        inside = (z[:, None, None] ** 2 + y[None, :, None] ** 2 + x[None, None, :] ** 2) <= r * r
        view = target[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        if only is not None:
            inside &= view == only
        if where is not None:
            inside &= where[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        view[inside] = value


def _place_spheres(
    rng: np.random.Generator,
    radii: np.ndarray,
    inside: Any,
    sample: Any,
    gap: float,
    fixed: tuple[np.ndarray, np.ndarray] | None = None,
    attempts: int = 400,
) -> tuple[np.ndarray, np.ndarray]:
    """Random sequential addition of non-overlapping spheres (largest first).

    ``sample(n)`` draws (n, 3) candidate centres; ``inside(centres, r)`` says which
    candidates are admissible (bool array). Spheres that find no place are dropped.
    """

    centers = np.zeros((0, 3)) if fixed is None else np.asarray(fixed[0], float).reshape(-1, 3)
    placed = np.zeros(0) if fixed is None else np.asarray(fixed[1], float)
    for r in np.sort(np.asarray(radii, float))[::-1]:
        cand = sample(attempts)
        cand = cand[inside(cand, r)]
        if len(centers) and len(cand):
            clear = cdist(cand, centers) >= placed[None, :] + r + gap
            cand = cand[clear.all(axis=1)]
        if len(cand):
            centers = np.vstack([centers, cand[:1]])
            placed = np.append(placed, r)
    return centers, placed


def _overlap_clusters(centers: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Cluster index per sphere; overlapping spheres share a cluster."""

    n = len(radii)
    if n == 0:
        return np.zeros(0, int)
    tree = cKDTree(centers)
    pairs = tree.query_pairs(2 * float(radii.max()), output_type="ndarray")
    if len(pairs):
        d = np.linalg.norm(centers[pairs[:, 0]] - centers[pairs[:, 1]], axis=1)
        pairs = pairs[d < radii[pairs[:, 0]] + radii[pairs[:, 1]]]
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def _union_fraction(
    rng: np.random.Generator, center: np.ndarray, radius: float, centers: np.ndarray,
    radii: np.ndarray, n_points: int = 40000,
) -> float:
    """Monte-Carlo volume fraction of a ball covered by a union of spheres."""
    if len(radii) == 0:
        return 0.0
    u = rng.normal(size=(n_points, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    pts = center + u * radius * rng.uniform(size=(n_points, 1)) ** (1 / 3)

    covered = (cdist(pts, centers, "sqeuclidean") <= np.asarray(radii)[None, :] ** 2).any(axis=1)
    return float(covered.mean())


def _image(labels: np.ndarray, contrast: dict[int, float], blur: float, noise: float,
           rng: np.random.Generator) -> np.ndarray:
    """Phase contrast -> Gaussian PSF -> additive Gaussian noise, as float32."""
    lut = np.zeros(int(labels.max()) + 1, np.float32)
    for phase, value in contrast.items():
        if phase < len(lut):
            lut[phase] = value
    img = lut[labels]
    if blur > 0:
        img = ndi.gaussian_filter(img, blur, output=np.float32)
    img += rng.normal(0.0, noise, size=img.shape).astype(np.float32)
    return img


def interface_distance(kind: str, shape: tuple[int, int, int],
                       spacing: tuple[float, float, float], radius: float = 10.0) -> np.ndarray:
    """Exact signed distance to an interface centred in the grid, at the voxel centres.

    Parameters
    ----------
    kind
        ``"oblique plane"`` (normal oblique to every axis, 0.123 off the centre),
        ``"ball"`` or ``"pore"`` (a sphere of ``radius``, inside or outside it).
    shape, spacing
        Voxels per axis and voxel size per axis ``(z, y, x)``.
    radius
        The sphere's radius, in the units of ``spacing``.

    Returns
    -------
    numpy.ndarray
        float64, ``shape``: distance in the units of ``spacing``, positive inside (the
        phase is ``distance > 0``).
    """
    axes = [(np.arange(n) + 0.5) * s - n * s / 2 for n, s in zip(shape, spacing, strict=True)]
    z, y, x = np.meshgrid(*axes, indexing="ij", sparse=True)
    if kind == "oblique plane":
        n = np.array([0.3, 0.5, 0.81]) / np.linalg.norm([0.3, 0.5, 0.81])
        f = n[0] * z + n[1] * y + n[2] * x + 0.123
    elif kind in ("ball", "pore"):
        f = radius - np.sqrt(z * z + y * y + x * x)
        f = f if kind == "ball" else -f
    else:
        raise ValueError(f"kind must be 'oblique plane', 'ball' or 'pore', got {kind!r}")
    return np.broadcast_to(f, shape).astype(np.float64)


def leveled_wave(
    shape: tuple[int, ...],
    spacing: float | tuple[float, ...] = 1.0,
    wavelength: float = 40.0,
    solid_fraction: float = 0.3,
    n_waves: int = 64,
    seed: int = 0,
    return_field: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Leveled-wave (Cahn) structure: a sum of ``n_waves`` cosines with wave vectors of
    length 2*pi/``wavelength`` in random directions and random phases, thresholded so
    that ``solid_fraction`` of the voxels are solid (True).

    ``wavelength`` is in the physical units of ``spacing``; the ligament/pore size is
    about a third of it. Works in 2D and 3D. Returns the boolean structure (and the
    field when ``return_field``).
    """
    if not 0.0 < solid_fraction < 1.0:
        raise ValueError(f"solid_fraction must be in (0, 1), got {solid_fraction}")
    rng = np.random.default_rng(seed)
    ndim = len(shape)
    sp = np.broadcast_to(np.asarray(spacing, dtype=float), (ndim,))
    k = rng.normal(size=(n_waves, ndim))
    k *= (2 * np.pi / wavelength) / np.linalg.norm(k, axis=1, keepdims=True)
    phase = rng.uniform(0, 2 * np.pi, n_waves)
    coords = [np.arange(n) * s for n, s in zip(shape, sp)]
    field_ = np.zeros(shape, np.float32)
    for kv, ph in zip(k, phase):
        # exp(i k.x) factorises over axes: an outer product instead of a full meshgrid.
        term = np.exp(1j * ph) * np.ones((), np.complex64)
        for ax, (kk, cc) in enumerate(zip(kv, coords)):
            shp = [1] * ndim
            shp[ax] = -1
            term = term * np.exp(1j * kk * cc).astype(np.complex64).reshape(shp)
        field_ += term.real
    level = np.quantile(field_, 1.0 - solid_fraction)
    solid = field_ > level
    return (solid, field_) if return_field else solid


def porous_sphere(seed: int = 0, size: int = 64, radius: float = 26.0,
                  pore_radii: tuple[float, float] = (3.0, 7.0), pores: int = 200,
                  gap: float = 2.0, psf: float = 1.0, noise: float = 0.05,
                  supersample: int = 3) -> tuple[np.ndarray, np.ndarray, float]:
    """A solid sphere with spherical pores, imaged with partial volume, blur and noise.

    Up to ``pores`` non-overlapping pores (radii uniform in ``pore_radii``, at least
    ``gap`` voxels apart and from the surface) lie wholly inside a sphere of
    ``radius`` voxels near the centre of a ``size``^3 array, so the porosity is
    analytic: ``sum r_i^3 / radius^3``. Image: each voxel's solid fraction (by
    ``supersample``^3 sub-voxel samples; solid 1, pore and surrounding 0), Gaussian
    PSF of ``psf`` voxels, additive Gaussian noise of std ``noise``.

    Returns
    -------
    image : float32 ``(size, size, size)``
    labels : uint8, 1 where the voxel centre is in the solid, else 0
    porosity : float, the analytic pore volume over the sphere's volume
    """
    rng = np.random.default_rng(seed)
    centre = np.full(3, size / 2.0) + rng.uniform(-1.0, 1.0, 3)
    cs, rs = np.zeros((pores, 3)), np.zeros(pores)
    n = 0
    for _ in range(200 * pores):
        if n >= pores:
            break
        r = rng.uniform(*pore_radii)
        p = centre + rng.uniform(-radius, radius, 3)
        if np.linalg.norm(p - centre) + r > radius - gap:
            continue
        if n and np.any(np.linalg.norm(cs[:n] - p, axis=1) < rs[:n] + r + gap):
            continue
        cs[n], rs[n] = p, r
        n += 1
    placed = list(zip(cs[:n], rs[:n], strict=True))
    porosity = float(sum(r**3 for _, r in placed) / radius**3)
    ss = int(supersample)
    g = (np.arange(size * ss) + 0.5) / ss - 0.5  # sub-voxel sample coordinates
    z, y, x = g[:, None, None], g[None, :, None], g[None, None, :]
    fine = (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= radius**2
    for p, r in placed:  # each pore in its box of sub-voxel samples
        lo = np.maximum(np.floor((p - r + 0.5) * ss).astype(int), 0)
        hi = np.minimum(np.ceil((p + r + 0.5) * ss).astype(int) + 1, size * ss)
        zb, yb, xb = (g[a:b] - c for a, b, c in zip(lo, hi, p, strict=True))
        box = fine[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        box &= zb[:, None, None] ** 2 + yb[None, :, None] ** 2 + xb[None, None, :] ** 2 > r * r
    frac = fine.reshape(size, ss, size, ss, size, ss).mean(axis=(1, 3, 5), dtype=np.float32)
    labels = np.zeros(frac.shape, np.uint8)
    labels[fine[ss // 2::ss, ss // 2::ss, ss // 2::ss]] = 1
    image = ndi.gaussian_filter(frac, psf).astype(np.float32)
    image += rng.normal(0.0, noise, image.shape).astype(np.float32)
    return image, labels, porosity
