"""Projections with known answers: analytic sphere phantoms in every geometry (raw counts,
flats/darks, zingers, rings, centre offsets, tilt jitter) and scans of any sample volume."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from ..io import Volume
from ..recon.geometry import Geometry
from ..recon.projector import forward_project

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
        extra = rng.uniform(2.0, 6.0, clean.shape)  # drawn whole: the stream stays as it was
        raw_counts = counts.astype(np.float32)
        raw_counts[hits] = (counts[hits] + extra[hits] * i0).astype(np.float32)
        sample.raw = raw_counts
        sample.flats = flats.astype(np.float32)
        sample.darks = darks.astype(np.float32)
        sample.zingers = hits
        flat_mean = sample.flats.mean(0) - sample.darks.mean(0)
        trans = np.clip((sample.raw - sample.darks.mean(0)) / flat_mean, 1e-6, None)
        sample.projections = (-np.log(trans)).astype(np.float32)
    elif photons is not None:
        counts = rng.poisson(float(photons) * np.exp(-clean))
        sample.projections = (-np.log(np.maximum(counts, 1) / float(photons))).astype(np.float32)


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


#: How :func:`correlative_scans` scans the correlative sample's objects
#: (``CorrelativeTruth.attenuation[key]``): tomogram kind, projections, photons per pixel,
#: detector blur (pixels) and the longest line integral.
CORRELATIVE_SCANS = {
    "microCT": dict(key="microct", kind="parallel", n_angles=360, photons=1e5, blur_px=0.7,
                    max_line_integral=3.0),
    "nanoCT": dict(key="nanoct", kind="parallel", n_angles=240, photons=1e5, blur_px=0.7,
                   max_line_integral=3.0),
    "ET": dict(key="et", kind="tilt_series", n_angles=240, photons=2e4, blur_px=0.7,
               max_line_integral=1.5),
}


def correlative_scans(sample: Any, seed: int = 0, raw: bool = False,
                      modalities: tuple[str, ...] = tuple(CORRELATIVE_SCANS)
                      ) -> dict[str, ProjectionSample]:
    """The projections of a :func:`.correlative_particles` sample's objects, one scan per
    modality of :data:`CORRELATIVE_SCANS` (modality ``i`` with seed ``seed + 10 + i``);
    ``raw`` gives detector counts with flats and darks instead of line integrals."""
    unknown = set(modalities) - set(CORRELATIVE_SCANS)
    if unknown:
        raise ValueError(f"unknown modalities {sorted(unknown)}; choose from "
                         f"{list(CORRELATIVE_SCANS)}")
    out = {}
    for i, (name, cfg) in enumerate(CORRELATIVE_SCANS.items()):
        if name in modalities:
            cfg = dict(cfg)
            obj = sample.truth.attenuation[cfg.pop("key")]
            out[name] = scan(obj, cfg.pop("kind"), seed=seed + 10 + i, raw=raw, **cfg)
    return out
