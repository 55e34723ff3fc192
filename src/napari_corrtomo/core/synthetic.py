"""Phantoms and the sample datasets, deterministic from a ``seed``, with ground truth.

All samples are rendered from analytic scenes (spheres, leveled waves), so the
truth does not depend on the code under test:

- :func:`correlative_particles` -- a microCT-like overview of a resin column with
  a few hundred porous silica-like particles (voxel 1 um), a nanoCT-like volume of
  one particle (voxel 65 nm) related to it by a known similarity transform, and an
  ET-like volume of the mesoporous wall (voxel 0.5 nm).
- :func:`fib_sem_stack` -- a three-phase porous electrode imaged by FIB-SEM with two
  detectors, shine-through, curtaining, gamma-distributed slice thicknesses and
  ruler marks.
- :func:`leveled_wave` -- the leveled-wave (Gaussian random field) structures used
  for nanoporous materials.

Conventions: arrays are (z, y, x); points are (z, y, x) in physical units; a
world coordinate is ``index * spacing`` (napari's ``scale``, no offset).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from .io import Volume

# Phases of the correlative sample (truth labels).
AIR, RESIN, SOLID, PORE = 0, 1, 2, 3
CORRELATIVE_PHASES = {AIR: "air", RESIN: "resin", SOLID: "solid", PORE: "macropore"}
# Phases of the FIB-SEM electrode (truth labels; 0 marks the ruler band, not sample).
FIB_PORE, FIB_CBD, FIB_AM = 1, 2, 3
FIB_PHASES = {FIB_PORE: "pore", FIB_CBD: "carbon-binder", FIB_AM: "active material"}


# =========================================================================== helpers


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


def apply_matrix(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4x4 homogeneous matrix to (N, 3) points."""
    pts = np.atleast_2d(np.asarray(points, dtype=float))
    return pts @ matrix[:3, :3].T + matrix[:3, 3]


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
    from scipy.spatial.distance import cdist

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
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

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
    from scipy.spatial.distance import cdist

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


# =========================================================================== correlative


@dataclass
class CorrelativeTruth:
    """Ground truth of :func:`correlative_particles` (lengths in um unless named nm)."""

    microct_labels: Volume
    microct_particles: Volume
    nanoct_labels: Volume
    et_labels: Volume
    nanoct_to_microct: np.ndarray
    landmarks_microct: np.ndarray
    landmarks_nanoct: np.ndarray
    particles: pd.DataFrame
    target_particle: int
    nanoct_fov_microct: np.ndarray
    nanoct_macroporosity: float
    closed_pore_fraction: float
    et_mesoporosity: float
    et_pore_diameters_nm: np.ndarray
    combined_porosity: float
    blur_sigma: dict[str, float]
    phases: dict[int, str] = field(default_factory=lambda: dict(CORRELATIVE_PHASES))
    #: sharp contrast maps before the PSF and the noise ("microct", "nanoct", "et"): what a
    #: scanner sees (see :func:`scan`)
    attenuation: dict[str, Volume] = field(default_factory=dict)


@dataclass
class CorrelativeSample:
    """microCT overview, nanoCT of one particle, ET of its wall, and their truth."""

    microct: Volume
    nanoct: Volume
    et: Volume
    truth: CorrelativeTruth

    def volumes(self) -> list[Volume]:
        return [self.microct, self.nanoct, self.et]


def correlative_particles(
    seed: int = 0,
    microct_shape: tuple[int, int, int] = (160, 224, 224),
    microct_voxel_um: float = 1.0,
    n_particles: int = 260,
    particle_diameter_um: tuple[float, float] = (10.0, 50.0),
    macroporosity: float = 0.30,
    macropore_diameter_um: float = 4.5,
    closed_pore_radius_um: float = 0.6,
    nanoct_shape: tuple[int, int, int] = (224, 224, 224),
    nanoct_voxel_um: float = 0.065,
    nanoct_scale_error: float = 1.015,
    et_shape: tuple[int, int, int] = (160, 160, 160),
    et_voxel_nm: float = 0.5,
    mesoporosity: float = 0.316,
    mesopore_diameter_nm: float = 17.0,
) -> CorrelativeSample:
    """The correlative sample: one analytic scene rendered at three scales.

    Scene (microCT world, um): a resin column (cylinder along z) holding porous
    silica-like spheres (diameters log-normal within ``particle_diameter_um``),
    each with resin-filled macropores (overlapping spheres, ~``macroporosity`` of
    the particle, diameters ~``macropore_diameter_um``), carbon-black speckle and
    air bubbles in the resin, and a few dense fiducial beads beside the nanoCT
    particle (landmarks visible at both scales).

    The nanoCT grid is placed by a similarity transform ``nanoct_to_microct``
    (rotation, translation, and a ``nanoct_scale_error`` mimicking a nominal
    nanoCT pixel size that is off): ``x_microct = s R x_nanoct + t`` with world
    coordinates ``index * voxel`` in um. The ET volume is a separate piece of the
    mesoporous wall (overlapping spherical mesopores, ~``mesoporosity``).
    """
    from scipy.spatial.distance import cdist

    rng = np.random.default_rng(seed)
    shape = np.array(microct_shape)
    extent = shape * microct_voxel_um
    col_center = extent[1:] / 2
    col_radius = 0.47 * min(extent[1:])

    def in_column(c, r, margin=0.0):
        """Which (n, 3) centres keep a sphere of radius r inside the column section."""
        c = np.atleast_2d(c)
        radial = np.hypot(c[:, 1] - col_center[0], c[:, 2] - col_center[1])
        return (radial + r + margin <= col_radius) & (c[:, 0] >= r) & (c[:, 0] <= extent[0] - r)

    # ---- the nanoCT particle goes first, near the column centre
    fov_um = np.array(nanoct_shape) * nanoct_voxel_um
    target_r = max(0.34 * fov_um.min(), particle_diameter_um[0] / 2)
    target_c = np.array([extent[0] / 2, col_center[0], col_center[1]]) + rng.uniform(-8, 8, 3)

    # ---- particles
    dmin, dmax = particle_diameter_um
    d = np.exp(rng.normal(np.log(0.32 * (dmin + dmax)), 0.35, n_particles))
    d = np.clip(d, dmin, dmax)

    def sample_col(n):
        ang = rng.uniform(0, 2 * np.pi, n)
        rad = col_radius * np.sqrt(rng.uniform(0, 1, n))
        return np.column_stack([rng.uniform(0, extent[0], n), col_center[0] + rad * np.sin(ang),
                                col_center[1] + rad * np.cos(ang)])

    p_centers, p_radii = _place_spheres(
        rng, d[1:] / 2, lambda c, r: in_column(c, r, 0.5), sample_col, gap=0.8,
        fixed=(target_c[None], np.array([target_r])),
    )

    # ---- macropores: a Boolean model of spheres per particle (some cut the surface -> open)
    pore_c, pore_r, pore_p = [], [], []
    for i, (c, r) in enumerate(zip(p_centers, p_radii)):
        budget = -np.log(1 - macroporosity) * (4 / 3) * np.pi * r**3
        vol = 0.0
        while vol < budget:
            pr = float(np.clip(np.exp(rng.normal(np.log(macropore_diameter_um / 2), 0.25)),
                               0.25 * macropore_diameter_um, 0.9 * macropore_diameter_um))
            u = rng.normal(size=3)
            u /= np.linalg.norm(u)
            pc = c + u * r * rng.uniform() ** (1 / 3)
            pore_c.append(pc)
            pore_r.append(pr)
            pore_p.append(i)
            vol += (4 / 3) * np.pi * pr**3
    pore_c, pore_r, pore_p = np.array(pore_c), np.array(pore_r), np.array(pore_p)
    # Two small closed pores in the nanoCT particle, clear of the others and of its surface
    # (the seed finds closed pores are ~1.4 % of the pore volume).
    sel0 = pore_p == 0
    closed_c, closed_r = _place_spheres(
        rng, np.full(2, closed_pore_radius_um),
        lambda c, r: (np.linalg.norm(c - target_c, axis=1) + r + 0.4 <= target_r)
        & (cdist(c, pore_c[sel0]) >= pore_r[sel0][None, :] + r + 0.4).all(axis=1),
        lambda n: target_c + rng.uniform(-target_r, target_r, (n, 3)), gap=0.4, attempts=20000)
    pore_c = np.vstack([pore_c, closed_c])
    pore_r = np.append(pore_r, closed_r)
    pore_p = np.append(pore_p, np.zeros(len(closed_r), int))

    # ---- per-particle truth: porosity (Monte Carlo on the analytic scene), open/closed
    clusters = _overlap_clusters(pore_c, pore_r)
    dist_out = np.linalg.norm(pore_c - p_centers[pore_p], axis=1) + pore_r - p_radii[pore_p]
    open_cluster = np.zeros(clusters.max() + 1 if len(clusters) else 0, bool)
    open_cluster[clusters[dist_out > 0]] = True
    porosity = np.zeros(len(p_radii))
    closed_frac_target = 0.0
    for i, (c, r) in enumerate(zip(p_centers, p_radii)):
        sel = pore_p == i
        porosity[i] = _union_fraction(rng, c, r, pore_c[sel], pore_r[sel],
                                      n_points=200000 if i == 0 else 20000)
        if i == 0:
            closed = sel & ~open_cluster[clusters]
            f_closed = _union_fraction(rng, c, r, pore_c[closed], pore_r[closed], 200000)
            closed_frac_target = f_closed / porosity[0] if porosity[0] else 0.0
    particles = pd.DataFrame({
        "particle": np.arange(1, len(p_radii) + 1),
        "z_um": p_centers[:, 0], "y_um": p_centers[:, 1], "x_um": p_centers[:, 2],
        "esd_um": 2 * p_radii,
        "volume_um3": (4 / 3) * np.pi * p_radii**3,
        "macroporosity": porosity,
        "n_pores": np.bincount(pore_p, minlength=len(p_radii)),
    })

    # ---- bubbles, carbon black, fiducials
    def free(c, r):
        """Centres whose sphere lies in resin, at least 1 um from every particle."""
        return in_column(c, r) & (cdist(c, p_centers) >= p_radii[None, :] + r + 1.0).all(axis=1)
    b_c, b_r = _place_spheres(rng, rng.uniform(4, 15, 10), free, sample_col, gap=1.0)
    n_cb = int(4e-4 * np.prod(extent))
    cb_c, cb_r = sample_col(n_cb), rng.uniform(0.5, 1.3, n_cb)

    # ---- nanoCT grid: similarity transform centred on the particle
    rot = random_rotation(rng, 35.0)
    s = float(nanoct_scale_error)
    fov_center_m = (np.array(nanoct_shape) - 1) * nanoct_voxel_um / 2
    offset = rng.uniform(-0.6, 0.6, 3)
    t = target_c + offset - s * rot @ fov_center_m
    m2f = similarity_matrix(s, rot, t)
    f2m = np.linalg.inv(m2f)

    # fiducial beads in the corners of the nanoCT field of view, outside all particles
    fid_r_um = 1.2
    margin = fid_r_um + 0.4

    def in_fov(n):
        return apply_matrix(m2f, rng.uniform(margin, fov_um - margin, (n, 3)))

    fid_c, fid_r = _place_spheres(rng, np.full(7, fid_r_um), free, in_fov, gap=2.0,
                                  attempts=3000)
    if len(fid_r) < 6:
        raise ValueError("could not place 6 fiducial beads in the nanoCT field of view; "
                         "try another seed or a larger nanoct_shape")

    # ---- microCT rendering
    vox = (microct_voxel_um,) * 3
    labels = np.zeros(microct_shape, np.uint8)
    zz, yy, xx = (np.arange(n) * microct_voxel_um for n in microct_shape)
    in_col = np.hypot(yy[:, None] - col_center[0], xx[None, :] - col_center[1]) <= col_radius
    labels[:, in_col] = RESIN
    paint_spheres(labels, b_c, b_r, AIR, vox, only=RESIN)
    inst = np.zeros(microct_shape, np.uint16)
    for i, (c, r) in enumerate(zip(p_centers, p_radii)):
        paint_spheres(inst, c[None], np.array([r]), i + 1, vox)
    labels[inst > 0] = SOLID
    paint_spheres(labels, pore_c, pore_r, PORE, vox, only=SOLID)
    contrast = {AIR: 0.0, RESIN: 0.35, SOLID: 1.0, PORE: 0.35}
    special = np.zeros(microct_shape, np.uint8)
    paint_spheres(special, cb_c, cb_r, 1, vox, where=labels == RESIN)
    paint_spheres(special, fid_c, fid_r, 2, vox)
    blur_micro = 0.9
    micro_img = _render(labels, special, contrast, blur_micro, 0.06, rng)
    micro_sharp = _sharp(labels, special, contrast)

    def to_nano(c, r):
        return apply_matrix(f2m, c), np.asarray(r) / s

    nvox = (nanoct_voxel_um,) * 3
    corners_m = np.array(np.meshgrid(*[[0, (n - 1) * nanoct_voxel_um] for n in nanoct_shape],
                                     indexing="ij")).reshape(3, -1).T
    fov_f = apply_matrix(m2f, corners_m)
    lo, hi = fov_f.min(0) - 60, fov_f.max(0) + 60
    n_labels = np.zeros(nanoct_shape, np.uint8)
    n_special = np.zeros(nanoct_shape, np.uint8)
    # resin column boundary is far from the nanoCT field of view: all resin
    n_labels[:] = RESIN
    near = lambda cc, rr: np.all((cc + rr[:, None] > lo) & (cc - rr[:, None] < hi), axis=1)  # noqa: E731
    sel = near(b_c, b_r)
    paint_spheres(n_labels, *to_nano(b_c[sel], b_r[sel]), AIR, nvox)
    sel = near(p_centers, p_radii)
    paint_spheres(n_labels, *to_nano(p_centers[sel], p_radii[sel]), SOLID, nvox)
    sel = near(pore_c, pore_r)
    paint_spheres(n_labels, *to_nano(pore_c[sel], pore_r[sel]), PORE, nvox, only=SOLID)
    sel = near(cb_c, cb_r)
    paint_spheres(n_special, *to_nano(cb_c[sel], cb_r[sel]), 1, nvox, where=n_labels == RESIN)
    paint_spheres(n_special, *to_nano(fid_c, fid_r), 2, nvox)
    blur_nano = 1.5
    nano_img = _render(n_labels, n_special, contrast, blur_nano, 0.05, rng)
    nano_sharp = _sharp(n_labels, n_special, contrast)

    # ---- ET of the mesoporous wall: overlapping spherical mesopores
    et_extent = np.array(et_shape) * et_voxel_nm
    budget = -np.log(1 - mesoporosity) * np.prod(et_extent + mesopore_diameter_nm)
    mc, mr, vol = [], [], 0.0
    while vol < budget:
        r = float(np.clip(np.exp(rng.normal(np.log(mesopore_diameter_nm / 2), 0.2)), 4.0, 20.0))
        mc.append(rng.uniform(-mesopore_diameter_nm / 2, et_extent + mesopore_diameter_nm / 2))
        mr.append(r)
        vol += (4 / 3) * np.pi * r**3
    mc, mr = np.array(mc), np.array(mr)
    et_labels = np.full(et_shape, SOLID, np.uint8)
    paint_spheres(et_labels, mc, mr, PORE, (et_voxel_nm,) * 3)
    blur_et = 2.0
    et_img = _image(et_labels, {SOLID: 1.0, PORE: 0.15}, blur_et, 0.08, rng)
    et_sharp = np.where(et_labels == PORE, np.float32(0.15), np.float32(1.0))
    meso = float(np.mean(et_labels == PORE))
    macro = float(porosity[0])

    # ---- landmarks: fiducial bead centres (both frames) and the particle centre
    lm_f = np.vstack([fid_c, target_c[None]])
    lm_m = apply_matrix(f2m, lm_f)

    um = ("um",) * 3
    truth = CorrelativeTruth(
        microct_labels=Volume(labels, vox, um, "microCT truth", "labels"),
        microct_particles=Volume(inst, vox, um, "microCT particles truth", "labels"),
        nanoct_labels=Volume(n_labels, nvox, um, "nanoCT truth", "labels"),
        et_labels=Volume(et_labels, (et_voxel_nm,) * 3, ("nm",) * 3, "ET truth", "labels"),
        nanoct_to_microct=m2f,
        landmarks_microct=lm_f,
        landmarks_nanoct=lm_m,
        particles=particles,
        target_particle=1,
        nanoct_fov_microct=fov_f,
        nanoct_macroporosity=macro,
        closed_pore_fraction=float(closed_frac_target),
        et_mesoporosity=meso,
        et_pore_diameters_nm=2 * mr,
        combined_porosity=macro + (1 - macro) * meso,
        blur_sigma={"microct_um": blur_micro * microct_voxel_um,
                    "nanoct_um": blur_nano * nanoct_voxel_um,
                    "et_nm": blur_et * et_voxel_nm},
        attenuation={
            "microct": Volume(micro_sharp, vox, um, "microCT object", "image"),
            "nanoct": Volume(nano_sharp, nvox, um, "nanoCT object", "image"),
            "et": Volume(et_sharp, (et_voxel_nm,) * 3, ("nm",) * 3, "ET object", "image"),
        },
    )
    meta = {"sample": "correlative_particles", "seed": seed}
    return CorrelativeSample(
        microct=Volume(micro_img, vox, um, "microCT", "image", {**meta, "modality": "microCT"}),
        nanoct=Volume(nano_img, nvox, um, "nanoCT", "image", {**meta, "modality": "nanoCT"}),
        et=Volume(et_img, (et_voxel_nm,) * 3, ("nm",) * 3, "ET", "image", {**meta, "modality": "ET"}),
        truth=truth,
    )


def _sharp(labels: np.ndarray, special: np.ndarray, contrast: dict[int, float]) -> np.ndarray:
    """Phase contrast plus carbon black (special==1) and dense beads (==2), before the PSF."""
    lut = np.zeros(4, np.float32)
    for phase, value in contrast.items():
        lut[phase] = value
    img = lut[labels]
    img[special == 1] = 0.55
    img[special == 2] = 4.0  # dense (e.g. gold) beads
    return img


def _render(labels: np.ndarray, special: np.ndarray, contrast: dict[int, float], blur: float,
            noise: float, rng: np.random.Generator) -> np.ndarray:
    """X-ray-like image: :func:`_sharp` through a Gaussian PSF, plus Gaussian noise."""
    img = ndi.gaussian_filter(_sharp(labels, special, contrast), blur, output=np.float32)
    img += rng.normal(0.0, noise, size=img.shape).astype(np.float32)
    return img


# =========================================================================== FIB-SEM


@dataclass
class RulerSpec:
    """Where the ruler marks are in every slice of :func:`fib_sem_stack`.

    The marks sit in the top ``band_rows`` rows. The two parallel trenches run
    along the milling direction, so their marks stay at ``parallel_x`` (pixels);
    the two inclined trenches make ``angle_deg`` with them, so their marks move by
    ``tan(angle) * depth / pixel_size`` pixels: the first towards -x, the second
    towards +x, starting at ``inclined_x0`` in the first slice.
    """

    band_rows: int
    parallel_x: tuple[float, float]
    inclined_x0: tuple[float, float]
    angle_deg: float
    pixel_size_nm: float
    width_px: float = 1.5

    def positions(self, depth_nm: np.ndarray) -> np.ndarray:
        """(n, 4) mark x positions [parallel0, parallel1, inclined0, inclined1] for depths."""
        shift = np.tan(np.deg2rad(self.angle_deg)) * np.asarray(depth_nm) / self.pixel_size_nm
        return np.column_stack([
            np.full_like(shift, self.parallel_x[0]), np.full_like(shift, self.parallel_x[1]),
            self.inclined_x0[0] - shift, self.inclined_x0[1] + shift,
        ])


@dataclass
class FibSemSample:
    """Two-detector FIB-SEM stack (C, z, y, x) with its truth."""

    channels: list[Volume]
    labels: Volume
    thickness_nm: np.ndarray
    slice_z_nm: np.ndarray
    ruler: RulerSpec
    fine_labels: Volume
    phases: dict[int, str] = field(default_factory=lambda: dict(FIB_PHASES))

    @property
    def image(self) -> np.ndarray:
        """(C, z, y, x) stack of the detector channels."""
        return np.stack([c.data for c in self.channels])


def gamma_thicknesses(n: int, target: float, shape: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` slice thicknesses from a gamma distribution with mean ``target``."""
    return rng.gamma(shape, target / shape, n)


def fib_sem_stack(
    seed: int = 0,
    n_slices: int = 64,
    image_shape: tuple[int, int] = (176, 192),
    pixel_nm: float = 10.0,
    target_thickness_nm: float = 20.0,
    gamma_shape: float = 6.0,
    fine_nm: float = 2.5,
    band_rows: int = 16,
    ruler_angle_deg: float = 25.0,
    drift_px: float = 0.0,
) -> FibSemSample:
    """Three-phase porous electrode (active material, carbon-binder, pores) as FIB-SEM.

    The structure is built on a fine grid (``fine_nm`` along z, ``pixel_nm`` in
    plane); slice k images the plane at the cumulative depth of gamma-distributed
    thicknesses (mean ``target_thickness_nm``). Two detectors: an SE2-like channel
    (strong shine-through of material behind pores, edge brightening) and an
    InLens-like channel (material contrast, weak shine-through). Both show
    curtaining stripes and noise. The top ``band_rows`` rows hold the ruler marks
    (:class:`RulerSpec`); truth labels are 0 there. ``drift_px`` adds a random walk
    of in-plane x drift (image, marks and labels move together).
    """
    rng = np.random.default_rng(seed)
    ny, nx = image_shape
    ny_s = ny - band_rows
    thickness = gamma_thicknesses(n_slices, target_thickness_nm, gamma_shape, rng)
    z_nm = np.concatenate([[0.0], np.cumsum(thickness[:-1])])
    shine_depth = 200.0
    nz_fine = int(np.ceil((z_nm[-1] + shine_depth) / fine_nm)) + 1
    fshape = (nz_fine, ny_s, nx)
    fsp = (fine_nm, pixel_nm, pixel_nm)
    ext = np.array(fshape) * np.array(fsp)

    # active material: sintered spheres (slight overlap allowed), about half the volume
    am = np.zeros(fshape, bool)
    vol, budget = 0.0, -np.log(1 - 0.6) * np.prod(ext)
    centers, radii = [], []
    while vol < budget:
        r = rng.uniform(140.0, 380.0)
        c = rng.uniform(-r / 2, ext + r / 2)
        if centers:
            dd = np.linalg.norm(np.array(centers) - c, axis=1)
            if np.any(dd < 0.8 * (np.array(radii) + r)):
                continue
        centers.append(c)
        radii.append(r)
        vol += (4 / 3) * np.pi * r**3
    paint_spheres(am, np.array(centers), np.array(radii), True, fsp)
    # carbon-binder: a leveled wave kept within ~90 nm of the active material
    coarse = (int(np.ceil(nz_fine * fine_nm / pixel_nm)), ny_s, nx)
    wave = leveled_wave(coarse, pixel_nm, wavelength=220.0, solid_fraction=0.45,
                        n_waves=48, seed=int(rng.integers(2**31)))
    cbd = np.repeat(wave, int(round(pixel_nm / fine_nm)), axis=0)[:nz_fine]
    dist = ndi.distance_transform_edt(~am, sampling=fsp)
    labels_f = np.full(fshape, FIB_PORE, np.uint8)
    labels_f[cbd & (dist < 90.0)] = FIB_CBD
    labels_f[am] = FIB_AM

    # imaging: each slice shows the plane at its depth; pores shine through
    planes = np.round(z_nm / fine_nm).astype(int)
    n_look = int(shine_depth / fine_nm)
    se2_c = np.array([0.0, 0.08, 0.50, 0.78], np.float32)
    inl_c = np.array([0.0, 0.05, 0.22, 0.85], np.float32)
    se2 = np.empty((n_slices, ny_s, nx), np.float32)
    inl = np.empty_like(se2)
    for k, p in enumerate(planes):
        face = labels_f[p]
        ahead = labels_f[p + 1:p + 1 + n_look] != FIB_PORE
        hit = ahead.any(0)
        first = np.argmax(ahead, axis=0)
        depth = (first + 1) * fine_nm
        behind = np.take_along_axis(labels_f[p + 1:p + 1 + n_look], first[None], 0)[0]
        pore = (face == FIB_PORE) & hit
        se2[k] = se2_c[face]
        inl[k] = inl_c[face]
        se2[k][pore] += 0.9 * se2_c[behind[pore]] * np.exp(-depth[pore] / 60.0)
        inl[k][pore] += 0.55 * inl_c[behind[pore]] * np.exp(-depth[pore] / 22.0)
        edges = ndi.gaussian_gradient_magnitude((face != FIB_PORE).astype(np.float32), 1.0)
        se2[k] += 0.35 * edges
    labels = labels_f[planes]

    # curtaining: vertical stripes growing away from the top surface, drifting slowly
    stripes = ndi.gaussian_filter1d(rng.standard_t(3, size=(n_slices, nx)), 1.2, axis=1)
    stripes = ndi.gaussian_filter1d(stripes, 4.0, axis=0)
    stripes *= 0.07 / (stripes.std() + 1e-9)
    ramp = np.linspace(0.3, 1.0, ny_s, dtype=np.float32)
    curtain = (stripes[:, None, :] * ramp[None, :, None]).astype(np.float32)

    def finish(img: np.ndarray, noise: float) -> np.ndarray:
        img = ndi.gaussian_filter(img, (0, 0.6, 0.6)) + curtain
        return img + rng.normal(0, noise, img.shape).astype(np.float32)

    se2, inl = finish(se2, 0.05), finish(inl, 0.05)

    # ruler band
    room = nx / 2 - 24
    ruler = RulerSpec(band_rows, (nx / 2 - 7.0, nx / 2 + 7.0), (nx / 2 - 16.0, nx / 2 + 16.0),
                      ruler_angle_deg, pixel_nm)
    marks = ruler.positions(z_nm)
    if np.abs(marks[:, 2:] - nx / 2).max() > nx / 2 - 4:
        raise ValueError(
            f"the inclined ruler marks leave the image after {room:.0f} px; use fewer slices, "
            f"a smaller ruler_angle_deg or a wider image"
        )
    drift = np.cumsum(rng.normal(0, drift_px, n_slices)) if drift_px > 0 else np.zeros(n_slices)
    xs = np.arange(nx, dtype=np.float32)
    rows = np.arange(band_rows, dtype=np.float32)
    depth_profile = np.clip((rows - 2) / 4, 0, 1)[:, None]  # notches open at the top surface
    channels = []
    for img, (top, notch) in ((se2, (0.9, 0.65)), (inl, (0.75, 0.6))):
        stack = np.empty((n_slices, ny, nx), np.float32)
        for k in range(n_slices):
            prof = np.zeros(nx, np.float32)
            for xm in marks[k] + drift[k]:
                prof += np.exp(-((xs - xm) ** 2) / (2 * ruler.width_px**2))
            band = top - notch * depth_profile * prof[None, :]
            stack[k, :band_rows] = band + rng.normal(0, 0.03, band.shape)
            stack[k, band_rows:] = img[k]
        channels.append(stack)
    full_labels = np.zeros((n_slices, ny, nx), np.uint8)
    full_labels[:, band_rows:] = labels
    if drift_px > 0:
        for k in range(n_slices):
            for stack in channels:
                stack[k, band_rows:] = ndi.shift(stack[k, band_rows:], (0, drift[k]), order=1,
                                                 mode="nearest")
            full_labels[k, band_rows:] = ndi.shift(full_labels[k, band_rows:], (0, drift[k]),
                                                   order=0, mode="nearest")
    spacing = (target_thickness_nm, pixel_nm, pixel_nm)
    nm = ("nm",) * 3
    meta = {"sample": "fib_sem_stack", "seed": seed}
    return FibSemSample(
        channels=[Volume(channels[0], spacing, nm, "FIB-SEM SE2", "image", {**meta, "detector": "SE2"}),
                  Volume(channels[1], spacing, nm, "FIB-SEM InLens", "image",
                         {**meta, "detector": "InLens"})],
        labels=Volume(full_labels, spacing, nm, "FIB-SEM truth", "labels", meta),
        thickness_nm=thickness,
        slice_z_nm=z_nm,
        ruler=ruler,
        fine_labels=Volume(labels_f, fsp, nm, "FIB-SEM fine truth", "labels", meta),
    )


# =========================================================================== scribbles


def scribbles_from_truth(
    truth: np.ndarray,
    slices: tuple[int, ...] | None = None,
    strokes_per_class: int = 4,
    stroke_length_px: int = 40,
    width_px: int = 1,
    margin_px: int = 2,
    classes: tuple[int, ...] | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Sparse training strokes like a user paints them, simulated from a truth volume.

    On each of ``slices`` (z indices of a (z, y, x) truth; default four evenly spaced
    slices), ``strokes_per_class`` smooth random walks of up to ``stroke_length_px``
    steps are drawn inside each class, kept ``margin_px`` pixels away from its boundary
    (users paint inside a phase, not on its edge), ``2 * width_px - 1`` pixels wide.
    Returns labels of the truth's dtype: 0 = unlabelled, else the class.
    """
    truth = np.asarray(truth)
    if truth.ndim != 3:
        raise ValueError(f"scribbles need a (z, y, x) truth volume, got {truth.ndim}D")
    rng = np.random.default_rng(seed)
    nz = truth.shape[0]
    if slices is None:
        slices = tuple(int(round(z)) for z in np.linspace(0, nz - 1, 6)[1:-1])
    classes = tuple(int(c) for c in np.unique(truth) if c != 0) if classes is None else classes
    out = np.zeros_like(truth)
    disk = ndi.generate_binary_structure(2, 1)
    for z in slices:
        if not 0 <= z < nz:
            raise ValueError(f"slice {z} is outside the {nz} slices")
        for c in classes:
            inside = ndi.binary_erosion(truth[z] == c, disk, iterations=margin_px) if margin_px \
                else truth[z] == c
            cand = np.argwhere(inside)
            if len(cand) == 0:
                continue
            for _ in range(strokes_per_class):
                pos = cand[rng.integers(len(cand))].astype(float)
                angle = rng.uniform(0, 2 * np.pi)
                path = []
                for _ in range(stroke_length_px):
                    iy, ix = int(round(pos[0])), int(round(pos[1]))
                    if not (0 <= iy < inside.shape[0] and 0 <= ix < inside.shape[1]) \
                            or not inside[iy, ix]:
                        break
                    path.append((iy, ix))
                    angle += rng.normal(0, 0.35)
                    pos += (np.sin(angle), np.cos(angle))
                stroke = np.zeros(inside.shape, bool)
                for iy, ix in path:
                    stroke[iy, ix] = True
                if width_px > 1:
                    stroke = ndi.binary_dilation(stroke, disk, iterations=width_px - 1) & inside
                out[z][stroke] = c
    return out


# =========================================================================== projections
# (reconstruction samples: analytic sphere phantoms whose line integrals are closed-form,
#  so projections do not depend on the projector under test)


@dataclass
class ProjectionSample:
    """Projections of an analytic phantom with everything needed to check a reconstruction.

    ``projections`` are line integrals (after flat/dark normalisation and ``-log``);
    with ``raw=True`` the detector counts, flats and darks are given as well.
    ``phantom`` is the phantom on the reconstruction grid (voxel-averaged, 1/unit),
    ``spheres`` the analytic description (centres x, y, z and radius in ``unit``,
    attenuation in 1/``unit``; overlapping spheres add up). ``true_shifts`` are the
    detector shifts (row, col) in pixels baked into the projections (rotation-axis
    offset and tilt-series jitter), which ``geometry`` does not know about.
    """

    kind: str
    projections: np.ndarray
    geometry: Any
    phantom: np.ndarray
    voxel_size: float
    unit: str
    spheres: pd.DataFrame
    true_shifts: np.ndarray
    raw: np.ndarray | None = None
    flats: np.ndarray | None = None
    darks: np.ndarray | None = None
    zingers: np.ndarray | None = None

    @property
    def volume_shape(self) -> tuple[int, int, int]:
        return tuple(self.phantom.shape)  # type: ignore[return-value]


_PROJECTION_DEFAULTS = {
    # volume (z, y, x), detector (rows, cols), angles (start, stop, count), voxel, unit
    "parallel": ((48, 64, 64), (48, 64), (0.0, 180.0, 180), 0.5, "um"),
    "cone": ((64, 64, 64), (84, 84), (0.0, 360.0, 180), 1.0, "um"),
    "laminography": ((24, 64, 64), (56, 64), (0.0, 360.0, 180), 2.0, "um"),
    "tilt_series": ((64, 48, 64), (48, 64), (-180.0, 180.0, 180), 0.5, "nm"),
}


def sphere_line_integrals(origins: np.ndarray, directions: np.ndarray, centres: np.ndarray,
                          radii: np.ndarray, mu: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """Exact line integrals of a sum of uniform spheres along rays.

    ``origins``/``directions`` (n, 3) (directions need not be unit length),
    ``centres`` (m, 3), ``radii`` and ``mu`` (m,). A ray at distance ``d`` from a
    centre crosses that sphere over ``2 sqrt(r^2 - d^2)``.
    """
    d = directions / np.linalg.norm(directions, axis=1, keepdims=True)
    out = np.empty(len(origins))
    for s in range(0, len(origins), chunk):
        o, dd = origins[s:s + chunk], d[s:s + chunk]
        w = centres[None, :, :] - o[:, None, :]
        t = np.einsum("nmk,nk->nm", w, dd)
        dist2 = np.einsum("nmk,nmk->nm", w, w) - t * t
        chord = 2.0 * np.sqrt(np.clip(radii[None, :] ** 2 - dist2, 0.0, None))
        out[s:s + chunk] = chord @ mu
    return out


def _phantom_spheres(kind: str, shape: tuple[int, int, int], vox: float,
                     rng: np.random.Generator) -> pd.DataFrame:
    """An asymmetric arrangement of spheres inside the field of view, as a table."""
    nz, ny, nx = shape
    half = np.array([nx, ny, nz], float) * vox / 2  # (x, y, z) half extents
    rows: list[tuple[float, float, float, float, float]] = []
    if kind == "laminography":
        # a flat plate (thin in z): particles with pores, a dense bead, a marker
        R = 0.85 * min(half[0], half[1])
        h = 0.6 * half[2]
        rows += [(-0.35 * R, -0.20 * R, 0.0, 0.30 * R, 1.0),
                 (0.40 * R, 0.30 * R, 0.15 * h, 0.22 * R, 0.8),
                 (0.10 * R, -0.62 * R, -0.3 * h, 0.12 * R, 1.4),
                 (0.55 * R, -0.35 * R, 0.5 * h, 0.07 * R, 3.0),
                 (-0.55 * R, 0.50 * R, -0.4 * h, 0.09 * R, 2.0)]
        zcap = lambda r: h - r  # noqa: E731
    else:
        # a particle with pores, a smaller particle, a dense bead and a marker, all inside
        # the cylinder swept by the rotation (axis z for CT, y for tilt series)
        if kind == "tilt_series":
            R = 0.85 * min(half[0], half[2])
            h = 0.8 * half[1]
            to_xyz = lambda a, b, c: (a, c, b)  # noqa: E731  (radial a, radial b, axial c)
        else:
            R = 0.85 * min(half[0], half[1])
            h = 0.8 * half[2]
            to_xyz = lambda a, b, c: (a, b, c)  # noqa: E731
        axial = half[1] if kind == "tilt_series" else half[2]
        for a, b, c, r, m in ((0.08 * R, -0.12 * R, 0.1 * h, 0.55 * R, 1.0),
                              (-0.55 * R, 0.42 * R, 0.45 * h, 0.22 * R, 0.6),
                              (0.62 * R, 0.40 * R, -0.55 * h, 0.10 * R, 3.0),
                              (-0.35 * R, -0.62 * R, -0.6 * h, 0.08 * R, 2.0)):
            r = min(r, 0.95 * axial - abs(c))  # thin volumes: keep every sphere inside
            if r > vox:
                rows.append((*to_xyz(a, b, c), r, m))
        zcap = None
    spheres = pd.DataFrame(rows, columns=["x", "y", "z", "radius", "mu"])
    # pores (mu cancels the host's) inside the first particle, not overlapping each other
    host = spheres.iloc[0]
    hc = host[["x", "y", "z"]].to_numpy(float)
    pores: list[tuple[float, ...]] = []
    for _ in range(400):
        if len(pores) >= 6:
            break
        r = float(rng.uniform(0.12, 0.22)) * host.radius
        c = hc + rng.uniform(-1, 1, 3) * host.radius
        if np.linalg.norm(c - hc) + r > 0.85 * host.radius:
            continue
        if zcap is not None and abs(c[2]) + r > zcap(0.0):
            continue
        if any(np.linalg.norm(c - np.array(p[:3])) < r + p[3] + 0.5 * vox for p in pores):
            continue
        pores.append((*c, r, -host.mu))
    spheres = pd.concat([spheres, pd.DataFrame(pores, columns=spheres.columns)], ignore_index=True)
    spheres["mu"] = spheres["mu"] / (vox * max(shape))  # line integrals up to ~0.6
    return spheres


def _voxelize(spheres: pd.DataFrame, shape: tuple[int, int, int], vox: float,
              supersample: int = 3) -> np.ndarray:
    """Voxel averages of the sphere phantom (``supersample``^3 points per voxel)."""
    nz, ny, nx = shape
    out = np.zeros(shape, np.float32)
    sub = (np.arange(supersample) + 0.5) / supersample - 0.5
    axes = [(np.arange(n) - (n - 1) / 2) * vox for n in (nx, ny, nz)]
    for _, s in spheres.iterrows():
        c = np.array([s.x, s.y, s.z])
        lo = [max(int(np.floor((c[k] - s.radius) / vox + (n - 1) / 2)) - 1, 0)
              for k, n in enumerate((nx, ny, nz))]
        hi = [min(int(np.ceil((c[k] + s.radius) / vox + (n - 1) / 2)) + 2, n)
              for k, n in enumerate((nx, ny, nz))]
        if any(h <= lo_ for lo_, h in zip(lo, hi, strict=True)):
            continue
        xs, ys, zs = (axes[k][lo[k]:hi[k]] for k in range(3))
        acc = np.zeros((len(zs), len(ys), len(xs)), np.float32)
        for dz in sub:
            for dy in sub:
                for dx in sub:
                    r2 = ((zs[:, None, None] + dz * vox - c[2]) ** 2
                          + (ys[None, :, None] + dy * vox - c[1]) ** 2
                          + (xs[None, None, :] + dx * vox - c[0]) ** 2)
                    acc += r2 <= s.radius**2
        out[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]] += acc * (s.mu / supersample**3)
    return out


def projections(
    kind: str,
    seed: int = 0,
    *,
    volume_shape: tuple[int, int, int] | None = None,
    det_shape: tuple[int, int] | None = None,
    n_angles: int | None = None,
    angle_range: tuple[float, float] | None = None,
    voxel_size: float | None = None,
    tilt_deg: float = 30.0,
    source_origin: float | None = None,
    origin_detector: float | None = None,
    photons: float | None = 2e4,
    blur_px: float = 0.0,
    center_offset: float = 0.0,
    jitter_px: float = 0.0,
    raw: bool = False,
    n_flats: int = 8,
    zingers: float = 0.0,
    rings: float = 0.0,
) -> ProjectionSample:
    """Projections of an asymmetric sphere phantom for ``kind`` in ``parallel``, ``cone``,
    ``laminography``, ``tilt_series``.

    The line integrals are computed in closed form along every ray of the geometry
    (one ray through each pixel centre), independently of the projectors under
    test; an asymmetric phantom makes mirrored or reversed reconstructions obvious.

    Parameters
    ----------
    kind
        Geometry kind; defaults per kind give a scan that reconstructs in seconds
        (parallel microCT 48x64x64 at 0.5 um; cone 64^3 at 1 um, magnification 2;
        parallel laminography of a 24x64x64 plate at 2 um, tilt 30 deg; a 360-degree ET
        tilt series of a pillar, 64x48x64 at 0.5 nm).
    photons
        Incident photons per pixel for Poisson noise (``None``: noise-free).
    blur_px
        Standard deviation in pixels of a Gaussian detector/source blur applied to the
        line integrals before the noise (the phantom stays sharp).
    center_offset
        Rotation-axis offset in detector columns baked into the data.
    jitter_px
        Standard deviation of random per-projection shifts (row and col, pixels),
        as in an unaligned ET tilt series.
    raw, n_flats, zingers, rings
        ``raw=True`` also returns detector counts with a smooth gain, ``n_flats``
        flat and dark frames, a fraction ``zingers`` of cosmic-ray pixels and a
        relative per-column gain error ``rings`` that the flats do not capture
        (ring artefacts).
    """
    from .recon.geometry import Geometry

    if kind not in _PROJECTION_DEFAULTS:
        raise ValueError(f"unknown projection kind {kind!r}; choose one of "
                         f"{', '.join(_PROJECTION_DEFAULTS)}")
    rng = np.random.default_rng(seed)
    d_vol, d_det, d_ang, d_vox, unit = _PROJECTION_DEFAULTS[kind]
    shape = tuple(volume_shape or d_vol)
    det = tuple(det_shape or d_det)
    vox = float(voxel_size or d_vox)
    start, stop = angle_range or d_ang[:2]
    count = int(n_angles or d_ang[2])
    full = abs((stop - start) % 360.0) < 1e-9
    angles = np.linspace(start, stop, count, endpoint=not full and kind == "tilt_series")
    shifts = np.zeros((count, 2))
    shifts[:, 1] += center_offset
    if jitter_px > 0:
        shifts += rng.normal(0.0, jitter_px, (count, 2))
    if kind == "parallel":
        geom = Geometry.parallel(angles, det, vox, unit=unit)
    elif kind == "tilt_series":
        geom = Geometry.tilt_series(angles, det, vox, unit=unit)
    elif kind == "cone":
        so = source_origin if source_origin is not None else 4.0 * max(shape) * vox
        od = origin_detector if origin_detector is not None else so
        geom = Geometry.cone(angles, det, so, od, vox * (so + od) / so, unit=unit)
    else:
        if (source_origin is None) != (origin_detector is None):
            raise ValueError("give both source_origin and origin_detector, or neither")
        ps = vox
        if source_origin is not None:
            ps = vox * (source_origin + origin_detector) / source_origin
        geom = Geometry.laminography(angles, det, tilt_deg, ps, source_origin, origin_detector,
                                     unit=unit)
    spheres = _phantom_spheres(kind, shape, vox, rng)
    # exact line integrals along the rays of the (shifted) true geometry
    vec = geom.with_shifts(shifts).vectors()
    rows, cols = det
    rr, cc = np.meshgrid(np.arange(rows) - (rows - 1) / 2, np.arange(cols) - (cols - 1) / 2,
                         indexing="ij")
    pix = (vec[:, None, 3:6] + cc.reshape(1, -1, 1) * vec[:, None, 6:9]
           + rr.reshape(1, -1, 1) * vec[:, None, 9:12])
    if geom.is_cone:
        origins = np.broadcast_to(vec[:, None, 0:3], pix.shape)
        dirs = pix - origins
    else:
        origins = pix
        dirs = np.broadcast_to(vec[:, None, 0:3], pix.shape)
    centres = spheres[["x", "y", "z"]].to_numpy(float)
    p = sphere_line_integrals(origins.reshape(-1, 3), dirs.reshape(-1, 3), centres,
                              spheres["radius"].to_numpy(float), spheres["mu"].to_numpy(float))
    clean = p.reshape(count, rows, cols)
    if blur_px > 0:
        clean = ndi.gaussian_filter(clean, (0.0, float(blur_px), float(blur_px)))
    sample = ProjectionSample(kind=kind, projections=clean.astype(np.float32), geometry=geom,
                              phantom=_voxelize(spheres, shape, vox), voxel_size=vox, unit=unit,
                              spheres=spheres, true_shifts=shifts)
    _detect(sample, clean, rng, photons, raw, n_flats, zingers, rings)
    return sample


def _detect(sample: ProjectionSample, clean: np.ndarray, rng: np.random.Generator,
            photons: float | None, raw: bool, n_flats: int, zingers: float,
            rings: float) -> None:
    """The detector: Poisson counts of ``clean`` line integrals (angle, row, col) into
    ``sample.projections`` (-log); with ``raw`` also counts with a smooth gain, flats,
    darks, zingers and ring gains (``sample.raw``, ``.flats``, ``.darks``, ``.zingers``)."""
    rows, cols = clean.shape[1:]
    if raw:
        i0 = 1e4 if photons is None else float(photons)
        yy, xx = np.mgrid[0:rows, 0:cols] / max(rows, cols)
        gain = 1.0 + 0.15 * np.sin(2.5 * xx + 1.0) * np.cos(1.7 * yy) - 0.1 * (yy - 0.5) ** 2
        gain = gain * (1.0 + rings * rng.normal(0, 1, cols))[None, :] if rings else gain
        dark_level = 0.01 * i0
        flat_gain = 1.0 + 0.15 * np.sin(2.5 * xx + 1.0) * np.cos(1.7 * yy) - 0.1 * (yy - 0.5) ** 2
        flats = rng.poisson(i0 * flat_gain, (n_flats, rows, cols)) + rng.poisson(
            dark_level, (n_flats, rows, cols))
        darks = rng.poisson(dark_level, (n_flats, rows, cols))
        counts = rng.poisson(i0 * gain * np.exp(-clean)) + rng.poisson(dark_level, clean.shape)
        hits = rng.random(clean.shape) < zingers
        counts = np.where(hits, counts + rng.uniform(2.0, 6.0, clean.shape) * i0, counts)
        sample.raw = counts.astype(np.float32)
        sample.flats = flats.astype(np.float32)
        sample.darks = darks.astype(np.float32)
        sample.zingers = hits
        flat_mean = sample.flats.mean(0) - sample.darks.mean(0)
        trans = np.clip((sample.raw - sample.darks.mean(0)) / flat_mean, 1e-6, None)
        sample.projections = (-np.log(trans)).astype(np.float32)
    elif photons is not None:
        counts = rng.poisson(float(photons) * np.exp(-clean))
        sample.projections = (-np.log(np.maximum(counts, 1) / float(photons))).astype(np.float32)


# =========================================================================== scans
# (projections of a sample's object, e.g. ``correlative_particles().truth.attenuation``, so
#  that the demo, the tutorial and the workflow test reconstruct the very volumes they go on
#  to register, segment and measure)


def scan(
    obj: Volume,
    kind: str = "parallel",
    seed: int = 0,
    *,
    n_angles: int = 300,
    angle_range: tuple[float, float] | None = None,
    det_cols: int | None = None,
    bin_factor: int = 1,
    max_line_integral: float = 1.5,
    photons: float | None = 2e4,
    blur_px: float = 0.0,
    center_offset: float = 0.0,
    jitter_px: float = 0.0,
    raw: bool = False,
    n_flats: int = 8,
    zingers: float = 0.0,
    rings: float = 0.0,
    backend: str = "auto",
) -> ProjectionSample:
    """Parallel-beam projections of a voxel object: a CT scan or a 360-degree ET tilt series.

    The object (isotropic voxels, any contrast) is scaled to attenuation so that its
    longest line integral is ``max_line_integral`` and projected on its own grid by
    :func:`~napari_corrtomo.core.recon.forward_project` (checked against closed-form
    line integrals in the reconstruction tests), with one detector pixel per voxel.
    Detector pixels are then binned ``bin_factor`` x ``bin_factor`` (the pixel integrates
    over finer rays, so a reconstruction on the binned grid is not the same discrete
    model that made the data), blurred by ``blur_px`` (binned pixels), and counted with
    Poisson noise (``photons`` per pixel) exactly as :func:`projections` does, including
    ``raw`` counts with flats, darks, zingers and rings.

    Parameters
    ----------
    obj
        The object, ``(z, y, x)`` with isotropic ``scale``.
    kind
        ``"parallel"``: rotation about z, detector rows along z (microCT, nanoCT);
        ``"tilt_series"``: tilt axis along y, detector rows along y (ET of a pillar).
    n_angles, angle_range
        Projection angles (degrees; default 0-180 for ``parallel``, a full -180..180
        series for ``tilt_series``; the stop angle is not included).
    det_cols
        Detector columns after binning; default: enough to cover the object's diagonal
        in the plane of rotation (no truncation).
    center_offset, jitter_px
        Rotation-axis offset (columns) and random per-projection shifts (row and col),
        in binned pixels, baked into the data; ``true_shifts`` returns them.

    Returns
    -------
    ProjectionSample
        ``geometry`` is the nominal geometry (no shifts, binned pixel size =
        ``bin_factor`` voxels), ``phantom`` the scaled object block-averaged onto the
        reconstruction grid ``obj.shape // bin_factor``, ``spheres`` is empty.
    """
    from .recon.geometry import Geometry
    from .recon.project import forward_project

    if kind not in ("parallel", "tilt_series"):
        raise ValueError(f"scan kind must be 'parallel' or 'tilt_series', got {kind!r}")
    data = np.asarray(obj.data, dtype=np.float32)
    if data.ndim != 3:
        raise ValueError(f"the object must be a 3D volume (z, y, x), got {data.ndim}D")
    sp = np.asarray(obj.scale, float)
    if not np.allclose(sp, sp[0], rtol=1e-6):
        raise ValueError(f"scan needs isotropic voxels, got {tuple(sp)}; resample first")
    units = set(obj.units)
    if len(units) != 1:
        raise ValueError(f"the object's axes have different units {sorted(units)}")
    unit = units.pop()
    b = int(bin_factor)
    if b < 1 or any(n % b for n in data.shape):
        raise ValueError(f"bin_factor must be a positive divisor of the object shape {data.shape}, "
                         f"got {bin_factor}")
    if not max_line_integral > 0:
        raise ValueError(f"max_line_integral must be positive, got {max_line_integral}")
    rng = np.random.default_rng(seed)
    nz, ny, nx = data.shape
    axial, plane = (nz, (ny, nx)) if kind == "parallel" else (ny, (nz, nx))
    if det_cols is None:
        det_cols = int(np.ceil(np.hypot(*plane) / b)) + 1
    start, stop = angle_range or ((0.0, 180.0) if kind == "parallel" else (-180.0, 180.0))
    angles = np.linspace(start, stop, int(n_angles), endpoint=False)
    shifts = np.zeros((len(angles), 2))
    shifts[:, 1] += center_offset
    if jitter_px > 0:
        shifts += rng.normal(0.0, jitter_px, shifts.shape)
    make = Geometry.parallel if kind == "parallel" else Geometry.tilt_series
    native = make(angles, (axial, det_cols * b), float(sp[0]), unit=unit, shifts=shifts * b)
    clean = forward_project(data, native, float(sp[0]), backend=backend)
    n = len(angles)
    clean = clean.reshape(n, axial // b, b, det_cols, b).mean(axis=(2, 4), dtype=np.float64)
    top = float(clean.max())
    if top <= 0:
        raise ValueError("the object has no positive contrast to scan")
    k = max_line_integral / top
    clean *= k
    if blur_px > 0:
        clean = ndi.gaussian_filter(clean, (0.0, float(blur_px), float(blur_px)))
    phantom = data.reshape(nz // b, b, ny // b, b, nx // b, b).mean(axis=(1, 3, 5)) * k
    geometry = make(angles, (axial // b, det_cols), float(sp[0]) * b, unit=unit)
    sample = ProjectionSample(kind=kind, projections=clean.astype(np.float32), geometry=geometry,
                              phantom=phantom.astype(np.float32), voxel_size=float(sp[0]) * b,
                              unit=unit, spheres=pd.DataFrame(columns=["x", "y", "z", "radius", "mu"]),
                              true_shifts=shifts)
    _detect(sample, clean, rng, photons, raw, n_flats, zingers, rings)
    return sample


# =========================================================================== FIB slice thickness
# (issue 6) Hierarchical leveled waves and the "mimicking" FIB stacks of Sardhara et al.:
# an isotropic ground truth on a fine grid, imaged at gamma-distributed slice depths.


def hierarchical_leveled_wave(
    shape: tuple[int, ...],
    spacing: float | tuple[float, ...] = 2.5,
    upper_wavelength: float = 190.0,
    upper_solid_fraction: float = 0.35,
    lower_wavelength: float = 26.0,
    lower_solid_fraction: float = 0.35,
    n_waves: int = 64,
    seed: int = 0,
) -> np.ndarray:
    """Hierarchical nanoporous structure: a fine leveled-wave network inside the
    ligaments of a coarse one (solid = upper AND lower), as used to model
    hierarchical nanoporous gold (HNPG).

    With the defaults (lengths in nm, 2.5 nm voxels) the lower-level ligaments are
    about 15 nm and the upper-level ones about 110 nm across (the HNPG of Sardhara
    et al.), and the solid fraction is about ``upper * lower`` = 0.12. Returns a
    boolean array of ``shape`` (True = solid).
    """
    rng = np.random.default_rng(seed)
    s_up, s_low = (int(v) for v in rng.integers(0, 2**31, 2))
    upper = leveled_wave(shape, spacing, upper_wavelength, upper_solid_fraction, n_waves, s_up)
    lower = leveled_wave(shape, spacing, lower_wavelength, lower_solid_fraction, n_waves, s_low)
    return upper & lower


def discrete_gamma_thicknesses(
    n: int,
    target: float = 10.0,
    shape: float = 4.0,
    bin_width: float = 2.5,
    rng: np.random.Generator | int | None = 0,
) -> np.ndarray:
    """``n`` slice thicknesses ``N * bin_width`` with ``N >= 1`` an integer: a gamma
    variate of mean ``target`` and shape ``shape`` rounded to the nearest bin (the
    lowest bin, below 1.5 bins, is 1 bin: a milled slice is never empty)."""
    if n < 1 or target <= 0 or shape <= 0 or bin_width <= 0:
        raise ValueError("n, target, shape and bin_width must all be positive")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    raw = rng.gamma(shape, target / shape, n)
    return np.maximum(np.round(raw / bin_width), 1.0) * bin_width


@dataclass
class FibMimic:
    """A FIB stack cut from an isotropic ground truth (see :func:`fib_mimic`)."""

    stack: np.ndarray          # (n_slices, y, x): the imaged planes
    thickness_nm: np.ndarray   # (n_slices,): distance from face k to face k+1
    planes: np.ndarray         # (n_slices,): index of each face in ``truth``
    truth: np.ndarray          # (planes[-1] + 1, y, x): ground truth up to the last face
    spacing_nm: float          # truth voxel size (isotropic)


def fib_mimic(
    volume: np.ndarray,
    spacing_nm: float = 2.5,
    target_thickness_nm: float = 10.0,
    gamma_shape: float = 4.0,
    seed: int = 0,
) -> FibMimic:
    """The "mimicking" dataset of Sardhara et al. (2.1.2): slice thicknesses are drawn
    from a gamma distribution discretised in bins of the voxel size, and slice k
    images the plane of ``volume`` at the cumulative depth of the slices before it.

    ``volume`` (z, y, x) is isotropic with voxel ``spacing_nm``. As many slices are
    cut as fit along z. ``truth`` is ``volume`` cropped to the last imaged face.
    """
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise ValueError(f"volume must be 3D (z, y, x), got shape {volume.shape}")
    rng = np.random.default_rng(seed)
    # enough draws to cross the volume; cut where the next face would leave it
    n_max = int(np.ceil(volume.shape[0] * spacing_nm / (0.25 * target_thickness_nm))) + 2
    t = discrete_gamma_thicknesses(n_max, target_thickness_nm, gamma_shape, spacing_nm, rng)
    steps = np.round(t / spacing_nm).astype(int)
    planes = np.concatenate([[0], np.cumsum(steps)])
    n = int(np.searchsorted(planes, volume.shape[0] - 1, side="right"))
    if n < 2:
        raise ValueError("the volume is too thin for two slices; give more planes along z")
    planes = planes[:n]
    return FibMimic(
        stack=volume[planes].copy(),
        thickness_nm=t[:n].copy(),
        planes=planes,
        truth=volume[: planes[-1] + 1].copy(),
        spacing_nm=float(spacing_nm),
    )
