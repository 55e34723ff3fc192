"""Slice thickness from ruler marks (or from an instrument log).

The ruler (Sardhara et al., 2024, Fig. 2; Shkurmanov et al.): two trenches milled
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
ruler (:class:`~.ruler.RulerMarkers`: angle, pixel size, band rows and, optionally, the
left-to-right order of parallel/inclined marks and their approximate positions).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .._checks import SettingError
from ..progress import ProgressCallback
from ..units import convert, normalize_unit
from .reposition import check_thicknesses
from .ruler import RulerMarkers, detect_ruler_marks, infer_layout

#: Column names of the per-slice thickness table.
THICKNESS_COLUMNS = ("slice", "depth_nm", "thickness_nm", "uncertainty_nm", "confidence",
                     "drift_x_px", "flags")


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
    layout = (markers.layout or infer_layout(xs)).upper()
    par = [m for m in range(4) if layout[m] == "P"]
    inc = [m for m in range(4) if layout[m] == "I"]

    # reference: the parallel marks' midpoint (one of them, offset-corrected, if the
    # other is missing)
    p_a, p_b = xs[:, par[0]], xs[:, par[1]]
    sep = _median_finite(p_b - p_a)
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
            raise SettingError(
                f"ruler marks not found in slices {shown}{more}, so {len(undefined)} slice "
                "thicknesses are unknown. Check $band_rows, $polarity and $max_step_px, or "
                "set $fallback_thickness to use a constant there",
                band_rows="the band rows", polarity="polarity", max_step_px="max_step_px",
                fallback_thickness="fallback_thickness=<target thickness in nm>")
        fb = float(fallback_thickness)
        if not np.isfinite(fb) or fb <= 0:
            raise SettingError(f"$fallback_thickness must be positive, got {fallback_thickness}",
                               fallback_thickness="fallback_thickness")
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
    drift = ref - ref[0] if np.isfinite(ref[0]) else ref - _median_finite(ref)
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


def _median_finite(values: np.ndarray) -> float:
    """The median of the finite values; NaN, without NumPy's all-NaN warning, when the
    marks were found in no slice (the caller's error then says which)."""
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if finite.size else float("nan")


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
    except UnicodeDecodeError:
        raise ValueError(f"{os.path.basename(path)} is not a CSV file (not text); give the "
                         "table of slice thicknesses (a thickness_nm column)") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
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
        raise SettingError(
            f"{os.path.basename(path)}: the thickness unit is unknown; name the column "
            "'thickness_nm'$unit_hint", unit_hint=" (or pass unit='nm')")
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
