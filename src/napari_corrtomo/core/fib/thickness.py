"""Slice thickness from ruler marks (or from an instrument log).

The ruler (Sardhara et al., Fig. 2; Shkurmanov et al.): two trenches milled
parallel to the milling direction and two inclined at a known angle, filled with a
deposit, cut by every section. In each slice image they show as four marks in a
band of rows. The parallel marks stay put (they move only with in-plane drift);
each inclined mark moves by ``tan(angle) * depth / pixel_size`` pixels per unit of
milled depth. So, per slice ``k``:

- ``x`` of each mark is found with sub-pixel precision (least-squares Gaussian fit
  to the band's row-weighted profile, tracked from the previous slice);
- the parallel marks' midpoint is the reference (their common motion is the x
  drift, reported as ``drift_x_px``);
- each inclined mark's offset from the reference gives the depth of the face,
  ``depth_k = sign * (offset_k - offset_0) * pixel_size / tan(angle)``; with two
  inclined marks the two estimates are averaged and their disagreement is part of
  the uncertainty;
- ``thickness[k] = depth[k + 1] - depth[k]``: the distance from face ``k`` to face
  ``k + 1``. The last slice's thickness cannot be measured (nothing is imaged after
  it): it is NaN, flagged ``last``. Repositioning does not need it.

Nothing about the true mark positions is used: only what a user knows about the
ruler (:class:`RulerMarkers`: angle, pixel size, band rows and, optionally, the
left-to-right order of parallel/inclined marks and their approximate positions).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from ..progress import ProgressCallback, report
from ..units import convert, normalize_unit
from .reposition import check_thicknesses

#: Column names of the per-slice thickness table.
THICKNESS_COLUMNS = ("slice", "depth_nm", "thickness_nm", "uncertainty_nm", "confidence",
                     "drift_x_px", "flags")


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
            raise ValueError(f"ruler angle must be between 0 and 90 degrees, got {self.angle_deg}")
        if not np.isfinite(self.pixel_size) or self.pixel_size <= 0:
            raise ValueError(f"pixel_size must be positive, got {self.pixel_size}")
        normalize_unit(self.unit)
        r0, r1 = (int(v) for v in self.rows)
        if not 0 <= r0 < r1 <= image_shape[0]:
            raise ValueError(
                f"ruler rows {self.rows} do not fit images of {image_shape[0]} rows; give "
                "(first, stop) rows of the band that shows the marks"
            )
        if self.layout is not None:
            lay = self.layout.upper()
            if len(lay) != 4 or sorted(lay) != ["I", "I", "P", "P"]:
                raise ValueError(f"layout {self.layout!r} must name two P and two I marks, "
                                 "left to right, e.g. 'IPPI'")
        if self.x_first is not None and len(self.x_first) != 4:
            raise ValueError("x_first must give the approximate x of the four marks")
        if self.polarity not in ("dark", "bright"):
            raise ValueError(f"polarity must be 'dark' or 'bright', got {self.polarity!r}")


@dataclass
class ThicknessResult:
    """Slice thicknesses measured from ruler marks.

    ``table`` has one row per slice with :data:`THICKNESS_COLUMNS`: ``depth_nm`` of
    the imaged face below slice 0, ``thickness_nm`` (face k -> k+1; NaN for the last
    slice and where marks are missing), its 1-sigma ``uncertainty_nm``, a
    ``confidence`` in [0, 1] (1 / (1 + (uncertainty / (0.1 * median thickness))^2)),
    the in-plane ``drift_x_px`` of the parallel marks relative to slice 0 and
    ``flags`` (``;``-separated: ``last``, ``missing``, ``fallback``,
    ``one-inclined``, ``inconsistent``, ``non-positive``, ``too-thin``,
    ``too-thick``; empty when fine). ``marks`` has the fitted mark positions
    (pixels, NaN where not found) per slice. ``missing`` lists slices whose marks
    were not found.
    """

    table: pd.DataFrame
    marks: pd.DataFrame
    missing: list[int] = field(default_factory=list)
    layout: str = ""

    @property
    def thickness_nm(self) -> np.ndarray:
        return self.table["thickness_nm"].to_numpy(dtype=float)

    @property
    def flagged(self) -> pd.DataFrame:
        """Rows with any flag other than ``last``."""
        f = self.table["flags"].str.replace("last", "", regex=False).str.strip(";")
        return self.table[f != ""]

    def mark_points(self) -> np.ndarray:
        """(n, 3) detected mark positions as (slice, row, x) pixel coordinates (for a
        napari Points layer: multiply by the stack's scale)."""
        rows = float(self.marks.attrs.get("band_center_row", 0.0))
        pts = []
        for k, row in enumerate(self.marks[["x0", "x1", "x2", "x3"]].to_numpy()):
            for x in row:
                if np.isfinite(x):
                    pts.append((k, rows, x))
        return np.asarray(pts, float).reshape(-1, 3)


# =========================================================================== detection


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
        raise ValueError("no marks found in the ruler band: check the band rows and the "
                         f"polarity ({polarity!r})")
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
    from scipy.optimize import curve_fit

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
    except ValueError as exc:
        raise ValueError(f"{exc} (rows {tuple(markers.rows)})") from None
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
            raise ValueError(
                f"found {len(chosen)} ruler marks in the first slice, need 4: check the band "
                f"rows {markers.rows} and the polarity, or give x_first"
            )
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


def _infer_layout(xs: np.ndarray) -> str:
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


# =========================================================================== thickness


def measure_thickness(
    stack: np.ndarray,
    markers: RulerMarkers,
    fallback_thickness: float | None = None,
    min_fraction: float = 0.2,
    max_factor: float = 3.0,
    min_snr: float = 6.0,
    progress: ProgressCallback | None = None,
) -> ThicknessResult:
    """Slice thickness of every slice from the ruler marks.

    Parameters
    ----------
    stack
        (n_slices, y, x) slice images in milling order, or (channels, n_slices, y, x)
        to use the marks in all channels together.
    markers
        Ruler geometry (:class:`RulerMarkers`).
    fallback_thickness
        Thickness (nm) to use for slices whose marks are not found. ``None``
        (default): such slices raise a ``ValueError`` that lists them.
    min_fraction, max_factor
        Thicknesses below ``min_fraction`` or above ``max_factor`` times the median
        are flagged ``too-thin`` / ``too-thick`` (kept, not changed).
    min_snr
        Detection threshold (see :func:`detect_ruler_marks`).
    progress
        ``progress(done, total)`` per slice.

    Returns
    -------
    :class:`ThicknessResult`; ``result.thickness_nm`` feeds
    :func:`~napari_corrtomo.core.fib.reposition.reposition` (grid in nm).
    """
    marks = detect_ruler_marks(stack, markers, min_snr=min_snr, progress=progress)
    xs = marks[[f"x{m}" for m in range(4)]].to_numpy()
    err = marks[[f"x{m}_std" for m in range(4)]].to_numpy()
    n = xs.shape[0]
    layout = (markers.layout or _infer_layout(xs)).upper()
    par = [m for m in range(4) if layout[m] == "P"]
    inc = [m for m in range(4) if layout[m] == "I"]

    # reference: the parallel marks' midpoint (one of them, offset-corrected, if the
    # other is missing)
    p_a, p_b = xs[:, par[0]], xs[:, par[1]]
    sep = np.nanmedian(p_b - p_a)
    ref = np.where(np.isfinite(p_a) & np.isfinite(p_b), 0.5 * (p_a + p_b),
                   np.where(np.isfinite(p_a), p_a + 0.5 * sep, p_b - 0.5 * sep))
    ea, eb = err[:, par[0]], err[:, par[1]]
    ref_err = np.where(np.isfinite(p_a) & np.isfinite(p_b), 0.5 * np.hypot(ea, eb),
                       np.where(np.isfinite(p_a), ea, eb))
    scale_nm = convert(markers.pixel_size, markers.unit, "nm") / np.tan(
        np.deg2rad(markers.angle_deg))

    # thickness from each inclined mark: the change of its offset from the reference
    # between consecutive slices, signed by its overall trend
    t_m = np.full((2, n), np.nan)
    s_m = np.full((2, n), np.nan)
    for i, m in enumerate(inc):
        off = xs[:, m] - ref
        off_err = np.hypot(err[:, m], ref_err)
        step = np.diff(off)
        good = np.isfinite(step)
        if not good.any():
            continue
        sign = 1.0 if np.median(step[good]) >= 0 else -1.0
        t_m[i, :-1] = sign * step * scale_nm
        s_m[i, :-1] = np.hypot(off_err[1:], off_err[:-1]) * scale_nm
    has = np.isfinite(t_m)
    both = has.all(0)
    one = has.any(0) & ~both
    thickness = np.full(n, np.nan)
    unc = np.full(n, np.nan)
    thickness[both] = t_m[:, both].mean(0)
    # 1-sigma of the mean of two: pooled from the fits' errors and the two marks'
    # disagreement (each an estimate of the same error)
    spread = np.where(both, 0.5 * np.abs(t_m[0] - t_m[1]), 0.0)
    fit_sigma = 0.5 * np.hypot(s_m[0, both], s_m[1, both])
    unc[both] = np.sqrt(0.5 * (fit_sigma**2 + spread[both] ** 2))
    pick = np.where(has[0], 0, 1)
    thickness[one] = t_m[pick[one], np.flatnonzero(one)]
    unc[one] = s_m[pick[one], np.flatnonzero(one)]

    found = np.isfinite(ref) & (np.isfinite(xs[:, inc[0]]) | np.isfinite(xs[:, inc[1]]))
    missing = [int(k) for k in np.flatnonzero(~found)]
    flags: list[list[str]] = [[] for _ in range(n)]
    flags[-1].append("last")
    for k in missing:
        flags[k].append("missing")
    for k in np.flatnonzero(one[:-1]):
        flags[k].append("one-inclined")
    undefined = [k for k in range(n - 1) if not np.isfinite(thickness[k])]
    if undefined:
        if fallback_thickness is None:
            listed = missing or undefined
            shown = ", ".join(str(k) for k in listed[:20])
            more = f" and {len(listed) - 20} more" if len(listed) > 20 else ""
            raise ValueError(
                f"ruler marks not found in slices {shown}{more}, so {len(undefined)} slice "
                "thicknesses are unknown. Check the band rows, polarity and max_step_px, or "
                "pass fallback_thickness=<target thickness in nm> to use a constant there"
            )
        fb = float(fallback_thickness)
        if not np.isfinite(fb) or fb <= 0:
            raise ValueError(f"fallback_thickness must be positive, got {fallback_thickness}")
        for k in undefined:
            thickness[k] = fb
            unc[k] = np.nan
            flags[k].append("fallback")
    measured = thickness[:-1][[("fallback" not in f) for f in flags[:-1]]]
    med = float(np.median(measured)) if measured.size else float("nan")
    for k in range(n - 1):
        t = thickness[k]
        if "fallback" in flags[k]:
            continue
        if t <= 0:
            flags[k].append("non-positive")
        elif t < min_fraction * med:
            flags[k].append("too-thin")
        elif t > max_factor * med:
            flags[k].append("too-thick")
        if both[k] and abs(t_m[0, k] - t_m[1, k]) > 3 * np.hypot(s_m[0, k], s_m[1, k]) + 0.1 * med:
            flags[k].append("inconsistent")
    depth = np.concatenate([[0.0], np.cumsum(thickness[:-1])])
    tol = 0.1 * med if np.isfinite(med) and med > 0 else 1.0
    confidence = np.where(np.isfinite(unc), 1.0 / (1.0 + (unc / tol) ** 2), 0.0)
    drift = ref - ref[0] if np.isfinite(ref[0]) else ref - np.nanmedian(ref)
    table = pd.DataFrame({
        "slice": np.arange(n),
        "depth_nm": depth,
        "thickness_nm": thickness,
        "uncertainty_nm": unc,
        "confidence": confidence,
        "drift_x_px": drift,
        "flags": [";".join(f) for f in flags],
    })
    return ThicknessResult(table=table, marks=marks, missing=missing, layout=layout)


# =========================================================================== CSV


def load_thickness(path: str | os.PathLike, n_slices: int | None = None,
                   unit: str | None = None) -> np.ndarray:
    """Slice thicknesses (nm) from a CSV file (instrument log or a saved table).

    The column is found by name: ``thickness_<unit>`` (e.g. ``thickness_nm``,
    ``thickness_um``) or ``thickness`` with ``unit`` given. A file with a single
    unnamed numeric column needs ``unit``. Rows are slices in milling order; the
    last value may be empty/NaN (see :mod:`.reposition`). With ``n_slices`` the
    count is checked.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ValueError(f"{path}: no such thickness file")
    try:
        frame = pd.read_csv(path, comment="#")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"{os.path.basename(path)}: not a readable CSV file ({exc})") from exc
    col, col_unit = None, None
    for c in frame.columns:
        name = str(c).strip().lower()
        if name.startswith("thickness_"):
            try:
                col_unit = normalize_unit(name[len("thickness_"):])
            except ValueError:
                continue
            col = c
            break
        if name == "thickness":
            col, col_unit = c, unit
            break
    if col is None:
        numeric = [c for c in frame.columns if _is_number(str(c))]
        if frame.shape[1] == 1 and numeric:
            frame = pd.read_csv(path, header=None, comment="#")
            col, col_unit = frame.columns[0], unit
        else:
            raise ValueError(
                f"{os.path.basename(path)}: no thickness column; name it 'thickness_nm' "
                f"(or 'thickness_um', ...) — found columns {list(frame.columns)}"
            )
    if col_unit is None:
        raise ValueError(
            f"{os.path.basename(path)}: the thickness unit is unknown; name the column "
            "'thickness_nm' (or pass unit='nm')"
        )
    values = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float)
    text_bad = frame[col].notna().to_numpy() & ~np.isfinite(values)
    if text_bad.any():
        rows = np.flatnonzero(text_bad)[:10].tolist()
        raise ValueError(f"{os.path.basename(path)}: non-numeric thickness in rows {rows}")
    values = np.asarray(convert(values, col_unit, "nm"), dtype=float)
    if n_slices is not None:
        check_thicknesses(values, n_slices)
    return values


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def thickness_table(thickness_nm) -> pd.DataFrame:
    """A thickness table (``slice``, ``thickness_nm``) for :func:`load_thickness`."""
    t = np.asarray(thickness_nm, dtype=float)
    return pd.DataFrame({"slice": np.arange(t.size), "thickness_nm": t})


def fit_gamma(thickness_nm) -> tuple[float, float]:
    """Maximum-likelihood gamma fit (location 0) of slice thicknesses: (shape, scale_nm).

    NaN and non-positive values are ignored; needs at least 3 values.
    """
    from scipy import stats

    t = np.asarray(thickness_nm, dtype=float)
    t = t[np.isfinite(t) & (t > 0)]
    if t.size < 3:
        raise ValueError("need at least 3 positive thicknesses to fit a gamma distribution")
    if np.ptp(t) == 0:
        raise ValueError("all thicknesses are equal; a gamma distribution cannot be fitted")
    shape, _loc, scale = stats.gamma.fit(t, floc=0.0)
    return float(shape), float(scale)
