"""The correlative sample: a microCT overview of porous particles in resin, a nanoCT of one
particle and an ET volume of its mesoporous wall, related by known transforms
(after Götz et al.)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from scipy.spatial.distance import cdist

from ..io import Volume
from ..register.transform import apply_to_points
from .shapes import (
    _image,
    _overlap_clusters,
    _place_spheres,
    _union_fraction,
    paint_spheres,
    random_rotation,
    similarity_matrix,
)

# Phases of the correlative sample (truth labels).
AIR, RESIN, SOLID, PORE = 0, 1, 2, 3
CORRELATIVE_PHASES = {AIR: "air", RESIN: "resin", SOLID: "solid", PORE: "macropore"}


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
        return apply_to_points(m2f, rng.uniform(margin, fov_um - margin, (n, 3)))

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
        return apply_to_points(f2m, c), np.asarray(r) / s

    nvox = (nanoct_voxel_um,) * 3
    corners_m = np.array(np.meshgrid(*[[0, (n - 1) * nanoct_voxel_um] for n in nanoct_shape],
                                     indexing="ij")).reshape(3, -1).T
    fov_f = apply_to_points(m2f, corners_m)
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
    lm_m = apply_to_points(f2m, lm_f)

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
