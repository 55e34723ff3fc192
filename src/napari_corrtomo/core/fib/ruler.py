"""Ruler marks in FIB-SEM slice images: what the user knows about them, and their detection.

The ruler (Sardhara et al., 2024, Fig. 2; Shkurmanov et al.): two trenches milled
parallel to the milling direction and two inclined at a known angle, filled with a
deposit and cut by every section, show as four marks in a band of rows of each
slice image. :func:`detect_ruler_marks` finds each mark's ``x`` with sub-pixel
precision (least-squares Gaussian fit to the band's row-weighted profile, tracked
from the previous slice) from what the user knows (:class:`RulerMarkers`: angle,
pixel size, band rows and, optionally, the left-to-right order of the marks and
their approximate positions); :mod:`.thickness` turns the positions into depths.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from .._checks import SettingError
from ..progress import ProgressCallback, report
from ..units import normalize_unit

#: Column names of the per-slice thickness table.
THICKNESS_COLUMNS = ("slice", "depth_nm", "thickness_nm", "uncertainty_nm", "confidence",
                     "drift_x_px", "flags")


#: the marks' contrast against the surface (:attr:`RulerMarkers.polarity`)
POLARITIES = ("dark", "bright")


@dataclass
class RulerMarkers:
    """What the user knows about the ruler marks in the slice images.

    Parameters
    ----------
    angle_deg
        Angle between the inclined and the parallel trenches (degrees, 0 < angle < 90).
    pixel_size
        In-plane pixel size along x, in ``unit``.
    rows
        ``(first, stop)`` image rows of the band that holds the marks (approximate;
        rows without marks are down-weighted automatically).
    layout
        Left-to-right types of the four marks in the first slice, ``P`` parallel,
        ``I`` inclined (e.g. ``"IPPI"``). ``None``: inferred from how the marks move
        (the two whose distance stays constant are the parallel ones).
    x_first
        Approximate x (pixels) of the four marks in the first slice, left to right.
        ``None``: the four strongest marks of the first slice.
    polarity
        ``"dark"`` (marks darker than the band, e.g. notches) or ``"bright"``.
    width_px
        Approximate mark width (Gaussian sigma, pixels); ``None``: measured.
    max_step_px
        Largest expected motion of a mark between consecutive slices (pixels);
        ``None``: 3 x the median motion, at least 2 px.
    unit
        Unit of ``pixel_size`` (thicknesses are reported in nm).
    """

    angle_deg: float
    pixel_size: float
    rows: tuple[int, int]
    layout: str | None = None
    x_first: tuple[float, float, float, float] | None = None
    polarity: str = "dark"
    width_px: float | None = None
    max_step_px: float | None = None
    unit: str = "nm"

    def validate(self, image_shape: tuple[int, int]) -> None:
        if not 0.0 < float(self.angle_deg) < 90.0:
            raise SettingError(f"$angle_deg must be between 0 and 90 degrees (both excluded), "
                               f"got {self.angle_deg:g}", angle_deg="the ruler angle (angle_deg)")
        if not np.isfinite(self.pixel_size) or self.pixel_size <= 0:
            raise ValueError(f"pixel_size must be positive, got {self.pixel_size}")
        normalize_unit(self.unit)
        check_band_rows(self.rows, image_shape[0], band_rows="rows")
        if self.layout is not None:
            lay = self.layout.upper()
            if len(lay) != 4 or sorted(lay) != ["I", "I", "P", "P"]:
                raise SettingError(f"$layout {self.layout!r} must name two P and two I marks, "
                                   "left to right, e.g. 'IPPI'", layout="layout")
        if self.x_first is not None and len(self.x_first) != 4:
            raise SettingError("$x_first must give the approximate x of the four marks",
                               x_first="x_first")
        if self.max_step_px is not None and not (np.isfinite(self.max_step_px)
                                                 and self.max_step_px > 0):
            raise SettingError(f"$max_step_px must be a positive number of pixels, got "
                               f"{self.max_step_px:g}", max_step_px="max_step_px")
        if self.polarity not in POLARITIES:
            raise SettingError(f"$polarity must be 'dark' or 'bright', got {self.polarity!r}",
                               polarity="polarity")


def check_band_rows(rows: Any, height: int, **api_words: str) -> tuple[int, int]:
    """The ruler band's ``(first, stop)`` rows, checked against images ``height`` rows
    high (``api_words``: the name of the setting in the caller's API)."""
    words = api_words or {"band_rows": "band_rows"}
    r0, r1 = (int(v) for v in rows)
    if r0 >= r1:
        raise SettingError(f"$band_rows ({r0}, {r1}) must be (first, stop) with first < stop, "
                           "e.g. (0, 40) for the top 40 rows", **words)
    if r0 < 0 or r1 > height:
        raise SettingError(f"$band_rows ({r0}, {r1}) do not fit images of {height} rows "
                           f"(rows 0 to {height}): give the rows of the band that shows the "
                           "marks", **words)
    return r0, r1


def band_profiles(band: np.ndarray, polarity: str = "dark") -> tuple[np.ndarray, np.ndarray]:
    """Row-weighted mark profile per slice: (n, x) with marks as positive peaks.

    ``band`` is the ruler band, (n, rows, x) or (channels, n, rows, x). Rows are
    weighted by how strongly they show marks (the mean over slices of each row's
    high-pass signal), so rows where the marks have not opened yet count little;
    channels are normalised by their noise and averaged. Returns the profiles and
    the row weights.
    """
    band = np.asarray(band, dtype=np.float64)
    if polarity == "dark":
        band = -band
    # remove each row's background (median along x)
    band = band - np.median(band, axis=-1, keepdims=True)
    if band.ndim == 4:
        scale = np.array([_noise(c.reshape(-1)) for c in band])
        band = np.mean(band / scale[:, None, None, None], axis=0)
    strength = np.percentile(ndi.gaussian_filter1d(band, 1.0, axis=2), 99.5, axis=2).mean(0)
    w = np.clip(strength, 0, None)
    if w.max() <= 0:
        raise SettingError("no marks found in the ruler band: check $band_rows and "
                           f"$polarity ({polarity!r})", band_rows="the band rows",
                           polarity="the polarity")
    w = np.where(w >= 0.25 * w.max(), w, 0.0)
    w /= w.sum()
    return np.tensordot(band, w, axes=([1], [0])), w


def _noise(profile: np.ndarray) -> float:
    d = np.diff(profile)
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2) + 1e-12)


def _common_shift(before: np.ndarray, after: np.ndarray) -> float:
    """Sub-pixel x shift of ``after`` relative to ``before`` (peak of their
    cross-correlation): the drift common to all marks."""
    a = before - before.mean()
    b = after - after.mean()
    n = a.size
    corr = np.fft.irfft(np.fft.rfft(b, 2 * n) * np.conj(np.fft.rfft(a, 2 * n)), 2 * n)
    lags = np.concatenate([np.arange(0, n), np.arange(-n, 0)])
    keep = np.abs(lags) < n // 4
    corr, lags = corr[keep], lags[keep]
    i = int(np.argmax(corr))
    if 0 < i < corr.size - 1 and lags[i - 1] == lags[i] - 1 and lags[i + 1] == lags[i] + 1:
        y0, y1, y2 = corr[i - 1], corr[i], corr[i + 1]
        den = y0 - 2 * y1 + y2
        return float(lags[i] + (0.5 * (y0 - y2) / den if den != 0 else 0.0))
    return float(lags[i])


def _fit_peak(profile: np.ndarray, x0: float, half: int, sigma0: float):
    """Least-squares Gaussian + constant around ``x0``: (x, sigma, amplitude, x_std)."""
    from scipy.optimize import OptimizeWarning, curve_fit

    n = profile.size
    lo, hi = max(int(round(x0)) - half, 0), min(int(round(x0)) + half + 1, n)
    if hi - lo < 5:
        return None
    xs = np.arange(lo, hi, dtype=float)
    ys = profile[lo:hi]

    def model(x, a, c, s, b):
        return a * np.exp(-0.5 * ((x - c) / s) ** 2) + b

    b0 = float(np.min(ys))
    p0 = (float(ys.max() - b0), float(xs[np.argmax(ys)]), sigma0, b0)
    try:
        with warnings.catch_warnings():  # an undetermined covariance is x_std = inf below
            warnings.simplefilter("ignore", OptimizeWarning)
            p, cov = curve_fit(model, xs, ys, p0=p0, maxfev=2000)
    except (RuntimeError, ValueError):
        return None
    a, c, s, _b = p
    err = float(np.sqrt(cov[1, 1])) if np.all(np.isfinite(cov)) else np.inf
    return float(c), abs(float(s)), float(a), err


def detect_ruler_marks(
    stack: np.ndarray,
    markers: RulerMarkers,
    min_snr: float = 6.0,
    progress: ProgressCallback | None = None,
) -> pd.DataFrame:
    """Find the four ruler marks in every slice, with sub-pixel x.

    Parameters
    ----------
    stack
        (n_slices, y, x) slice images, or (channels, n_slices, y, x): the marks'
        profiles of all channels (e.g. two detectors) are averaged.
    markers
        The ruler geometry the user knows (:class:`RulerMarkers`).
    min_snr
        A mark counts as found when its fitted amplitude is at least ``min_snr``
        times the profile's noise and its width is plausible.
    progress
        ``progress(done, total)`` per slice.

    Returns
    -------
    DataFrame, one row per slice: ``x0..x3`` (pixels, left to right as in the first
    slice; NaN where not found), ``x0_std..x3_std`` (1-sigma fit errors),
    ``amp0..amp3`` (amplitude / noise).
    """
    ndim = getattr(stack, "ndim", np.ndim(stack))
    if ndim not in (3, 4):
        raise ValueError(f"stack must be (slices, y, x) or (channels, slices, y, x), got "
                         f"shape {np.shape(stack)}")
    if stack.shape[-3] < 2:
        raise ValueError("need at least two slices to measure a thickness")
    markers.validate(tuple(stack.shape[-2:]))
    # only the band is read (lazy stacks stay on disk)
    band = np.asarray(stack[..., int(markers.rows[0]):int(markers.rows[1]), :], dtype=np.float64)
    if not np.all(np.isfinite(band)):
        raise ValueError("the ruler band contains NaN or inf values")
    try:
        prof, weights = band_profiles(band, markers.polarity)
    except SettingError as exc:
        raise SettingError(f"{exc.template.template} (rows {tuple(markers.rows)})",
                           **exc.api_words) from None
    n, nx = prof.shape
    noise = np.array([_noise(p) for p in prof])

    # first slice: the four strongest marks (or the user's guesses)
    p0 = prof[0]
    if markers.x_first is not None:
        guess = np.sort(np.asarray(markers.x_first, float))
    else:
        smooth = ndi.gaussian_filter1d(p0, 1.0)
        peaks = np.flatnonzero((smooth > np.roll(smooth, 1)) & (smooth >= np.roll(smooth, -1))
                               & (smooth > min_snr * noise[0] / 2))
        peaks = peaks[(peaks > 1) & (peaks < nx - 2)]
        chosen: list[int] = []
        for pk in peaks[np.argsort(smooth[peaks])[::-1]]:
            if all(abs(pk - c) > 3 for c in chosen):
                chosen.append(int(pk))
            if len(chosen) == 4:
                break
        if len(chosen) < 4:
            raise SettingError(
                f"found {len(chosen)} ruler marks in the first slice, need 4: check $band_rows "
                f"{markers.rows} and $polarity, or give $x_first",
                band_rows="the band rows", polarity="the polarity", x_first="x_first")
        guess = np.sort(np.asarray(chosen, float))
    sigma = markers.width_px
    if sigma is None:
        fits = [_fit_peak(p0, g, 6, 1.5) for g in guess]
        widths = [f[1] for f in fits if f is not None and 0.3 < f[1] < 10]
        sigma = float(np.median(widths)) if widths else 1.5
    half = int(np.ceil(max(3.0 * sigma, 3.0)))
    max_step = markers.max_step_px

    xs = np.full((n, 4), np.nan)
    xerr = np.full((n, 4), np.nan)
    amp = np.full((n, 4), np.nan)
    prev = guess.copy()
    rel_velocity = np.zeros(4)  # motion per slice beyond the common shift
    misses = np.zeros(4, int)   # consecutive slices a mark was not found
    for k in range(n):
        shift = _common_shift(prof[k - 1], prof[k]) if k > 0 else 0.0
        pred = prev + shift + rel_velocity
        limit = max_step if max_step is not None else max(2.0, 3.0 * np.abs(rel_velocity).max())
        smooth = ndi.gaussian_filter1d(prof[k], max(0.5, 0.5 * sigma))
        for m in range(4):
            # search around the prediction (wider after misses), never past the
            # midpoint to a neighbouring mark; then fit around the strongest pixel
            reach = limit + 1.0 + 2.0 * limit * misses[m]
            lo = pred[m] - reach
            hi = pred[m] + reach
            if m > 0:
                lo = max(lo, 0.5 * (pred[m - 1] + pred[m]))
            if m < 3:
                hi = min(hi, 0.5 * (pred[m] + pred[m + 1]))
            i0, i1 = max(int(np.ceil(lo)), 0), min(int(np.floor(hi)) + 1, nx)
            if i1 - i0 < 1:
                misses[m] += 1
                continue
            peak = i0 + int(np.argmax(smooth[i0:i1]))
            room = min(peak - (0.5 * (pred[m - 1] + peak) if m > 0 else -np.inf),
                       (0.5 * (peak + pred[m + 1]) if m < 3 else np.inf) - peak)
            h = half if not np.isfinite(room) else int(min(half, max(3, np.floor(room))))
            fit = _fit_peak(prof[k], float(peak), h, sigma)
            ok = False
            if fit is not None:
                c, s_, a, e = fit
                # a mark cut by the image edge cannot be located: treat it as missing
                inside = 2.5 * sigma <= c <= nx - 1 - 2.5 * sigma
                ok = (inside and a >= min_snr * noise[k] and 0.3 * sigma <= s_ <= 3.0 * sigma
                      and lo - 1.0 <= c <= hi + 1.0 and np.isfinite(e) and e < sigma)
            if ok:
                xs[k, m], xerr[k, m], amp[k, m] = c, e, a / noise[k]
                misses[m] = 0
            else:
                misses[m] += 1
        found = np.isfinite(xs[k])
        if k > 0 and found.all() and np.isfinite(xs[k - 1]).all():
            rel = xs[k] - xs[k - 1] - shift
            # a jump (e.g. a thick slice) must not inflate the expected motion
            rel = np.clip(rel, -limit, limit) if k > 1 else rel
            rel_velocity = rel if k == 1 else 0.5 * rel_velocity + 0.5 * rel
        prev = np.where(found, xs[k], pred)
        report(progress, k + 1, n)
    cols = {f"x{m}": xs[:, m] for m in range(4)}
    cols.update({f"x{m}_std": xerr[:, m] for m in range(4)})
    cols.update({f"amp{m}": amp[:, m] for m in range(4)})
    frame = pd.DataFrame({"slice": np.arange(n), **cols})
    frame.attrs["band_center_row"] = float(
        markers.rows[0] + np.sum(weights * np.arange(weights.size)))
    frame.attrs["width_px"] = float(sigma)
    return frame


def infer_layout(xs: np.ndarray) -> str:
    """'P'/'I' per mark: the pair whose distance varies least is parallel."""
    best, pair = np.inf, (0, 1)
    for i in range(4):
        for j in range(i + 1, 4):
            d = xs[:, j] - xs[:, i]
            d = d[np.isfinite(d)]
            if d.size < 2:
                continue
            spread = np.ptp(d)
            if spread < best:
                best, pair = spread, (i, j)
    return "".join("P" if m in pair else "I" for m in range(4))
