"""FIB-SEM samples: a three-phase electrode imaged with two detectors and ruler marks
(after Osenberg et al.), and the hierarchical nanoporous structures imaged at
gamma-distributed slice depths (after Sardhara et al.)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from ..io import Volume
from ..quantify._common import edt_distance
from .shapes import (
    leveled_wave,
    paint_spheres,
)

# Phases of the FIB-SEM electrode (truth labels; 0 marks the ruler band, not sample).
FIB_PORE, FIB_CBD, FIB_AM = 1, 2, 3
FIB_PHASES = {FIB_PORE: "pore", FIB_CBD: "carbon-binder", FIB_AM: "active material"}


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
    dist = edt_distance(~am, fsp)  # exact, as scipy's, and 7x faster on 2 cores
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
