"""Rotation-centre search, tilt-series alignment and detector shift correction.

- :func:`find_center` finds the rotation-axis offset (detector columns): for
  parallel beams the projection at ``theta + 180`` is the mirror image of the one
  at ``theta`` about the axis, so phase correlation of the pair gives twice the
  offset; otherwise (cone beams, laminography, no opposite pair) a search over
  single-slice reconstructions picks the sharpest.
- :func:`align_tilt_series` aligns an ET tilt series: neighbour cross-correlation
  removes jitter; a centre-of-mass fit (Sanders et al., 2015: the centre of mass of
  a projection is the projection of the object's centre of mass, a sinusoid in the
  tilt angle) removes drift and the tilt-axis offset where the whole object stays in
  the field of view; by default each is tried and the most consistent kept (the
  residual of a short reconstruction, :func:`alignment_residual`).
- :func:`shift_projections` applies detector shifts by interpolation; giving the
  shifts to the geometry instead (:meth:`Geometry.with_shifts`) avoids it.

Shifts are (row, col) in pixels with the sign of :attr:`Geometry.shifts`: the
content of projection ``i`` is displaced by ``shifts[i]`` from where a perfectly
aligned scan would show it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from ..progress import ProgressCallback, report, scaled
from .filters import coverage_deg
from .geometry import Geometry
from .projector import forward_project
from .reconstruct import check_projections, method_for, reconstruct

# =========================================================================== shifts


def shift_projections(projections: Any, shifts: Any, order: int = 1) -> np.ndarray:
    """Undo detector shifts: ``out[i](r, c) = in[i](r + shifts[i, 0], c + shifts[i, 1])``.

    ``shifts`` is one (row, col) pair for all projections or one per projection,
    in pixels (sub-pixel values are interpolated with spline ``order``; edges
    repeat the border pixels).
    """
    proj = np.asarray(projections, np.float32)
    if proj.ndim != 3:
        raise ValueError(f"projections must be 3D (angle, row, col), got {proj.ndim} dimensions")
    s = np.asarray(shifts, float)
    if s.shape == (2,):
        s = np.tile(s, (proj.shape[0], 1))
    if s.shape != (proj.shape[0], 2) or not np.all(np.isfinite(s)):
        raise ValueError(f"shifts must be finite (row, col) pairs, one per projection "
                         f"({proj.shape[0]}, 2); got shape {s.shape}")
    out = np.empty_like(proj)
    for i in range(proj.shape[0]):
        if np.any(s[i] != 0):
            out[i] = ndi.shift(proj[i], -s[i], order=order, mode="nearest")
        else:
            out[i] = proj[i]
    return out


# =========================================================================== centre


def _subset_rows(proj: np.ndarray, geometry: Geometry, r0: int,
                 r1: int) -> tuple[np.ndarray, Geometry]:
    """Rows [r0, r1) of the detector as their own scan (same physical rays)."""
    n = r1 - r0
    shifts = geometry.shifts.copy()
    if geometry.kind in ("parallel", "tilt_series"):
        shifts[:, 0] = 0.0  # in-slice reconstruction does not depend on the slice position
    else:
        rc = 0.5 * (geometry.det_shape[0] - 1)
        shifts[:, 0] = rc + shifts[:, 0] - r0 - 0.5 * (n - 1)
    fields = geometry.to_dict(full=True)
    for key in ("format", "version"):
        fields.pop(key)
    fields.update(det_shape=(n, geometry.det_shape[1]), shifts=shifts)
    return np.ascontiguousarray(proj[:, r0:r1]), Geometry(**fields)


def _slice_problem(proj: np.ndarray, geometry: Geometry, row: int | None):
    """A small problem whose single-slice reconstruction judges the rotation centre."""
    rows, cols = geometry.det_shape
    if geometry.kind in ("parallel", "tilt_series"):
        if row is None:
            row = int(np.argmax((proj.astype(np.float64) ** 2).sum(axis=(0, 2))))
        sub, g = _subset_rows(proj, geometry, row, row + 1)
        shape = (1, cols, cols) if geometry.kind == "parallel" else (cols, 1, cols)
        return sub, g, shape, 0
    if geometry.kind == "cone":
        centre = 0.5 * (rows - 1) + float(np.mean(geometry.shifts[:, 0]))
        r0 = int(np.clip(np.floor(centre) - 1, 0, max(rows - 3, 0)))
        sub, g = _subset_rows(proj, geometry, r0, min(r0 + 3, rows))
        return sub, g, (1, cols, cols), 0
    return proj, geometry, (1, cols, cols), 0  # laminography: the mid-plane of the sample


def _entropy(img: np.ndarray, lo: float, hi: float) -> float:
    """Histogram entropy inside the inscribed circle (lower is sharper)."""
    ny, nx = img.shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    r = 0.5 * min(ny, nx) - 1
    inside = (yy - (ny - 1) / 2) ** 2 + (xx - (nx - 1) / 2) ** 2 <= r * r
    hist, _ = np.histogram(img[inside], bins=64, range=(lo, hi))
    p = hist[hist > 0] / hist.sum()
    return float(-(p * np.log(p)).sum())


def _opposite_pair(angles: np.ndarray) -> tuple[int, int, float] | None:
    a = np.asarray(angles, float)
    diff = np.abs(np.mod(a[None, :] - a[:, None], 360.0) - 180.0)
    i, j = np.unravel_index(np.argmin(diff), diff.shape)
    steps = np.diff(np.sort(np.mod(a, 360.0)))
    step = float(np.median(steps[steps > 1e-9])) if np.any(steps > 1e-9) else 1.0
    if diff[i, j] > 1.01 * step:
        return None
    return int(i), int(j), float(diff[i, j])


def _correlation_center(proj: np.ndarray, i: int, j: int) -> float:
    """Offset of the rotation centre from the detector centre from an opposite pair."""
    from skimage.registration import phase_cross_correlation

    a = proj[i].astype(np.float64)
    b = proj[j][:, ::-1].astype(np.float64)
    shift, _, _ = phase_cross_correlation(a - a.mean(), b - b.mean(), upsample_factor=100,
                                          normalization=None)
    return float(shift[-1]) / 2.0


def find_center(
    projections: Any,
    geometry: Geometry,
    method: str = "auto",
    search: float | None = None,
    row: int | None = None,
    progress: ProgressCallback | None = None,
) -> float:
    """Rotation-axis offset in detector columns, to apply with ``geometry.shifted(col=...)``.

    Parameters
    ----------
    projections
        (n_angles, rows, cols) line integrals.
    geometry
        The geometry as known so far (its current shifts are taken into account:
        the result is the *additional* column shift).
    method
        ``"correlation"`` (parallel beams with a projection pair 180 degrees apart),
        ``"sharpness"`` (search over single-slice reconstructions; any geometry) or
        ``"auto"``: correlation when possible, sharpness otherwise. The sharpness
        score is the slice energy for full rotations (a wrong centre blurs the two
        half rotations against each other) and the histogram entropy otherwise.
    search
        Half-width of the sharpness search in pixels (default ``cols / 8``).
    row
        Detector row used for the parallel-beam sharpness search (default: the row
        with the most signal).

    Returns
    -------
    The column offset in pixels (positive: the axis appears right of the detector centre).
    """
    proj = check_projections(projections, geometry)
    method = str(method).lower()
    if method not in ("auto", "correlation", "sharpness"):
        raise ValueError(f"unknown method {method!r}; choose 'auto', 'correlation' or 'sharpness'")
    cols = geometry.det_shape[1]
    current = float(np.mean(geometry.shifts[:, 1]))
    if method in ("auto", "correlation"):
        pair = _opposite_pair(geometry.angles_deg) if not geometry.is_cone else None
        if geometry.kind == "laminography":
            pair = None
        if pair is None:
            if method == "correlation":
                raise ValueError(
                    "the correlation method needs a parallel-beam CT/ET scan with two "
                    "projections 180 degrees apart; use method='sharpness'"
                )
        else:
            report(progress, 1, 1)
            return _correlation_center(proj, pair[0], pair[1]) - current
    sub, g, shape, index = _slice_problem(proj, geometry, row)
    vs = g.default_voxel_size
    method_name = method_for(g)
    # A full rotation measures every ray twice: a wrong centre blurs the two halves
    # against each other and the slice loses energy. Half rotations only distort,
    # which the histogram entropy detects.
    full = coverage_deg(g.angles_deg, 360.0) >= 359.0
    cache: dict[float, float] = {}
    bins: list[float] = []

    def score(offset: float) -> float:
        key = round(float(offset), 6)
        if key not in cache:
            vol = reconstruct(sub, g.shifted(col=offset), shape, vs, method_name, backend="numpy")
            img = vol[index] if g.kind != "tilt_series" else vol[:, 0]
            if full:
                cache[key] = -float(np.square(img, dtype=np.float64).sum())
            else:
                if not bins:
                    spread = float(np.ptp(img)) or 1.0
                    bins.extend([float(img.min()) - 0.5 * spread, float(img.max()) + 0.5 * spread])
                cache[key] = _entropy(img, bins[0], bins[1])
        return cache[key]

    half = float(search) if search is not None else max(2.0, cols / 8)
    coarse = np.arange(-half, half + 1e-9, 0.5)
    fine_steps = np.arange(-0.5, 0.5 + 1e-9, 0.1)
    total = len(coarse) + len(fine_steps)
    for k, off in enumerate(coarse):
        score(off)
        report(progress, k + 1, total)
    best = float(coarse[int(np.argmin([score(o) for o in coarse]))])
    fine = best + fine_steps
    for k, off in enumerate(fine):
        score(off)
        report(progress, len(coarse) + k + 1, total)
    values = np.array([score(o) for o in fine])
    k = int(np.argmin(values))
    result = float(fine[k])
    if 0 < k < len(fine) - 1:  # parabola through the best point and its neighbours
        y0, y1, y2 = values[k - 1], values[k], values[k + 1]
        denom = y0 - 2 * y1 + y2
        if denom > 0:
            result += 0.1 * 0.5 * (y0 - y2) / denom
    return result


# =========================================================================== tilt series


def _bandpass(img: np.ndarray) -> np.ndarray:
    small = ndi.gaussian_filter(img, 1.0)
    large = ndi.gaussian_filter(img, max(img.shape) / 16.0)
    return small - large


def _window(shape: tuple[int, ...]) -> np.ndarray:
    return np.outer(np.hanning(shape[0]), np.hanning(shape[1]))


def _peak_shift(ref: np.ndarray, moving: np.ndarray) -> np.ndarray:
    """Displacement (row, col) of ``moving`` relative to ``ref``: the cross-correlation
    peak, refined to sub-pixel by a parabola through its neighbours on each axis."""
    spec = np.fft.rfft2(ref) * np.conj(np.fft.rfft2(moving))
    cc = np.fft.irfft2(spec, s=ref.shape)
    peak = np.array(np.unravel_index(int(np.argmax(cc)), cc.shape))
    out = np.zeros(2)
    for ax in range(2):
        n = cc.shape[ax]
        idx = [int(peak[0]), int(peak[1])]
        vals = []
        for d in (-1, 0, 1):
            idx[ax] = (int(peak[ax]) + d) % n
            vals.append(cc[idx[0], idx[1]])
        denom = vals[0] - 2 * vals[1] + vals[2]
        frac = 0.5 * (vals[0] - vals[2]) / denom if denom < 0 else 0.0
        pos = peak[ax] + frac
        out[ax] = pos - n if pos > n / 2 else pos
    return -out


def _register(ref: np.ndarray, moving: np.ndarray, rounds: int = 4) -> np.ndarray:
    """Displacement (row, col) of ``moving`` relative to ``ref`` by windowed cross-correlation.
    A fixed window pulls the estimate towards zero, so the moving image is shifted back by the
    current estimate and the remainder measured again."""
    win = _window(ref.shape)
    total = np.zeros(2)
    for _ in range(rounds):
        moved = ndi.shift(moving, -total, order=1, mode="nearest") if total.any() else moving
        step = _peak_shift(ref * win, moved * win)
        total += step
        if np.abs(step).max() < 0.01:
            break
    return total


def _xcorr_shifts(proj: np.ndarray, order: np.ndarray,
                  progress: ProgressCallback | None) -> np.ndarray:
    """Cumulative neighbour displacements along the sorted tilt angles (row, col)."""
    n = len(order)
    disp = np.zeros((n, 2))
    prev = _bandpass(proj[order[0]].astype(np.float64))
    for k in range(1, n):
        cur = _bandpass(proj[order[k]].astype(np.float64))
        disp[k] = disp[k - 1] + _register(prev, cur)
        prev = cur
        report(progress, k, n - 1)
    return disp


def _centre_of_mass(proj: np.ndarray) -> np.ndarray:
    """(n, 2) centre of mass (row, col) of every projection, relative to the detector centre."""
    n, rows, cols = proj.shape
    mass = proj.sum(axis=(1, 2), dtype=np.float64)
    if np.any(mass <= 0):
        raise ValueError(
            "the centre-of-mass fit needs projections with positive total signal (line "
            "integrals or HAADF intensities on a zero background); subtract the background first"
        )
    r = (proj.sum(axis=2, dtype=np.float64) @ np.arange(rows)) / mass - 0.5 * (rows - 1)
    c = (proj.sum(axis=1, dtype=np.float64) @ np.arange(cols)) / mass - 0.5 * (cols - 1)
    return np.stack([r, c], axis=1)


def _com_residuals(com: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Residuals of the centre of mass from the physical model: columns follow
    ``X cos(theta) + Z sin(theta)`` (object centre of mass (X, Z) about the tilt axis,
    which projects onto the detector centre) and rows stay constant."""
    basis = np.stack([np.cos(theta), np.sin(theta)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, com[:, 1], rcond=None)
    res = np.empty_like(com)
    res[:, 1] = com[:, 1] - basis @ coef
    res[:, 0] = com[:, 0] - com[:, 0].mean()
    return res


def _smooth(values: np.ndarray, width: int, circular: bool) -> np.ndarray:
    if width <= 1:
        return values
    mode = "wrap" if circular else "nearest"
    return ndi.uniform_filter1d(values, size=int(width), axis=0, mode=mode)


#: tilt-series alignment methods of :func:`align_tilt_series`, the default first
ALIGN_METHODS = ("auto", "xcorr", "com", "both")
#: the quick reconstruction that scores an alignment (:func:`alignment_residual`): the
#: detector binned to at most this many pixels a side, this many SIRT iterations (on a
#: real HAADF series and on the synthetic ones it ranks the methods as 50 iterations at
#: full size do; 1.4 s a method for 77 tilts of 256^2 on 2 cores, docs/benchmarks/align.md)
SCORE_PIXELS = 128
SCORE_ITERATIONS = 20


@dataclass(frozen=True)
class Alignment:
    """The alignment of a tilt series (:func:`measure_alignment`).

    Attributes
    ----------
    method
        The method whose shifts these are (``"auto"`` resolved to the one it chose).
    shifts
        (n, 2) detector shifts (row, col) in pixels, for ``geometry.with_shifts``.
    residuals
        Method -> relative reprojection residual of its alignment
        (:func:`alignment_residual`, lower is more consistent); ``"auto"`` scores every
        method it could run, a given method is not scored (empty).
    """

    method: str
    shifts: np.ndarray
    residuals: dict[str, float] = field(default_factory=dict)

    def summary(self, names: Mapping[str, str] | None = None) -> str:
        """One line: the method, and with ``"auto"`` every method's residual; ``names``:
        a front end's word for each method (default: the method's own)."""
        names = names or {}
        if not self.residuals:
            return names.get(self.method, self.method)
        scores = ", ".join(f"{names.get(name, name)} {value:.3g}"
                           for name, value in self.residuals.items())
        return (f"{names.get(self.method, self.method)} (the most consistent; reprojection "
                f"residual {scores})")


def align_tilt_series(
    projections: Any,
    angles_deg: Any,
    method: str = "auto",
    smooth: int = 9,
    progress: ProgressCallback | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Align a tilt series; returns ``(aligned_projections, shifts)``.

    Parameters are those of :func:`measure_alignment`.

    Returns
    -------
    aligned
        Projections with the shifts undone (:func:`shift_projections`).
    shifts
        (n, 2) detector shifts (row, col) in pixels; alternatively reconstruct the
        raw projections with ``geometry.with_shifts(shifts)`` (no interpolation).
    """
    found = measure_alignment(projections, angles_deg, method, smooth, progress)
    return shift_projections(projections, found.shifts), found.shifts


def measure_alignment(
    projections: Any,
    angles_deg: Any,
    method: str = "auto",
    smooth: int = 9,
    progress: ProgressCallback | None = None,
) -> Alignment:
    """The detector shifts that align a tilt series, without resampling it.

    Parameters
    ----------
    projections
        (n, rows, cols) projections with the tilt axis along the rows (columns
        perpendicular to it) and a zero background (line integrals, HAADF).
    angles_deg
        (n,) tilt angles in degrees (any order).
    method
        ``"auto"`` (default): each of the others, and the one whose aligned series is
        the most consistent (:func:`alignment_residual`): no method is the best on every
        sample (real HAADF needle, docs/benchmarks/align.md: cross-correlation; a pillar
        that stays in the field of view: centre of mass). ``"xcorr"``: neighbour
        cross-correlation (removes jitter; it keeps drift and the axis offset, the
        errors of its neighbour steps add up along the series: search the offset with
        :func:`find_center`); ``"com"``: centre-of-mass fit only (absolute, but it
        assumes the whole object stays in the field of view at every tilt); ``"both"``:
        cross-correlation, then the low-frequency part (running mean over ``smooth``
        neighbours) of the centre-of-mass residual.
    smooth
        Width of the running mean for ``"both"`` (1: take the residual as is).
    progress
        ``progress(done, total)``; raise ``Cancelled`` from it to stop.
    """
    proj = np.asarray(projections, np.float32)
    if proj.ndim != 3:
        raise ValueError(f"projections must be 3D (angle, row, col), got {proj.ndim} dimensions")
    angles = np.asarray(angles_deg, float)
    if angles.shape != (proj.shape[0],):
        raise ValueError(f"{proj.shape[0]} projections but {angles.size} angles; give one angle "
                         "per projection")
    if not np.all(np.isfinite(proj)) or not np.all(np.isfinite(angles)):
        raise ValueError("projections or angles contain NaN or inf")
    if proj.shape[0] < 3:
        raise ValueError("aligning a tilt series needs at least 3 projections")
    method = str(method).lower()
    if method not in ALIGN_METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(ALIGN_METHODS)}")
    if method != "auto":
        shifts = _candidates(proj, angles, (method,), smooth, progress)[method]
        report(progress, 1, 1)
        return Alignment(method, shifts)
    shifts = _candidates(proj, angles, ALIGN_METHODS[1:], smooth, scaled(progress, 0, 1, 4))
    residuals = {}
    for k, (name, candidate) in enumerate(shifts.items()):
        residuals[name] = alignment_residual(proj, angles, candidate,
                                             progress=scaled(progress, 1 + k, 2 + k, 4))
    best = min(residuals, key=residuals.get)
    report(progress, 1, 1)
    return Alignment(best, shifts[best], residuals)


def alignment_residual(projections: Any, angles_deg: Any, shifts: Any,
                       pixels: int = SCORE_PIXELS, iterations: int = SCORE_ITERATIONS,
                       progress: ProgressCallback | None = None) -> float:
    """How consistent a tilt series is with the shifts: ``|A x - b| / |b|`` of a short
    non-negative SIRT ``x`` of the projections ``b`` binned to at most ``pixels`` a side
    (``A``: its projector with the shifts). A misaligned series fits no volume, so its
    residual stays high; lower is better.

    Parameters
    ----------
    projections
        (n, rows, cols) with the tilt axis along the rows, zero background.
    angles_deg
        (n,) tilt angles in degrees.
    shifts
        (n, 2) detector shifts (row, col) in pixels, as :meth:`Geometry.with_shifts`.
    pixels, iterations
        Size of the binned detector's longer side; SIRT iterations.
    """
    proj = np.asarray(projections, np.float32)
    n, rows, cols = proj.shape
    f = max(1, -(-max(rows, cols) // int(pixels)))
    binned_shape = (rows // f, cols // f)
    # a centred crop to whole bins; an odd remainder moves the detector centre by half a
    # pixel, which the shifts take (the content sits that much off the new centre)
    lo = [(size % f) // 2 for size in (rows, cols)]
    crop = proj[:, lo[0]:lo[0] + binned_shape[0] * f, lo[1]:lo[1] + binned_shape[1] * f]
    b = crop.reshape(n, binned_shape[0], f, binned_shape[1], f).mean(axis=(2, 4))
    moved = np.array([0.5 * ((size % f) % 2) for size in (rows, cols)])
    geometry = Geometry.tilt_series(np.asarray(angles_deg, float), binned_shape, 1.0,
                                    unit="pixel").with_shifts((np.asarray(shifts) + moved) / f)
    volume = reconstruct(b, geometry, method="sirt", iterations=iterations, min_value=0.0,
                         progress=progress)
    fitted = forward_project(volume, geometry, geometry.default_voxel_size)
    return float(np.linalg.norm(fitted - b) / np.linalg.norm(b))


def _candidates(proj: np.ndarray, angles: np.ndarray, methods: tuple[str, ...], smooth: int,
                progress: ProgressCallback | None) -> dict[str, np.ndarray]:
    """Method -> (n, 2) shifts, for those of ``methods`` that apply (under ``"auto"`` the
    centre-of-mass methods need a positive total signal in every projection)."""
    order = np.argsort(angles, kind="stable")
    theta = np.deg2rad(angles[order])
    circular = float(np.ptp(np.mod(angles, 360.0))) > 300.0
    res = disp = None
    if {"com", "both"} & set(methods):
        try:
            res = _com_residuals(_centre_of_mass(proj[order]), theta)
        except ValueError:
            if len(methods) == 1:
                raise
    if {"xcorr", "both"} & set(methods):
        disp = _xcorr_shifts(proj, order, progress)
        ref = int(np.argmin(np.abs(np.mod(angles[order] + 180.0, 360.0) - 180.0)))
        disp = disp - disp[ref]
    found = {}
    if "xcorr" in methods:
        found["xcorr"] = disp
    if res is not None and "com" in methods:
        found["com"] = res
    if res is not None and "both" in methods:
        # low frequencies (drift, axis offset) from the centre of mass, high frequencies
        # (jitter) from the cross-correlation
        found["both"] = _smooth(res, smooth, circular) + disp - _smooth(disp, smooth, False)
    unsorted = {}
    for name, sorted_shifts in found.items():
        unsorted[name] = np.empty_like(sorted_shifts)
        unsorted[name][order] = sorted_shifts
    return unsorted
