"""Size distributions with log-normal fits (pore sizes, particle sizes).

The seed's recipe (Götz et al., 2.7.3): the relative number of voxels (pore size
distribution from a local-thickness map) or of particles (equivalent spherical
diameters) is histogrammed over size; the mean and standard deviation are taken
from the distribution; the mode comes from a non-linear least-squares log-normal
fit to the histogram.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from .._checks import check_bins
from ..backend import reduce_blocks
from ..units import normalize_unit

__all__ = ["SizeDistribution", "LogNormalFit", "size_distribution", "lognormal_pdf",
           "value_counts"]


def lognormal_pdf(x: Any, mu: float, sigma: float) -> np.ndarray:
    """Log-normal probability density in ``x`` (``mu``, ``sigma`` of ``ln x``)."""
    x = np.asarray(x, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        norm = x * sigma * math.sqrt(2 * math.pi)
        out = np.exp(-((np.log(x) - mu) ** 2) / (2 * sigma**2)) / norm
    return np.where(x > 0, out, 0.0)


@dataclass
class LogNormalFit:
    """Least-squares log-normal fit to a histogram (density = ``scale * lognormal_pdf``)."""

    mu: float
    sigma: float
    scale: float
    r_squared: float
    #: Kolmogorov-Smirnov distance between the histogram's cumulative fractions and the
    #: fit's (conditioned on the histogram's range), at the bin edges: 0 = identical
    ks_distance: float = float("nan")
    #: why the fit is no result (poor or degenerate, :func:`size_distribution` judges);
    #: "" for a fit whose mode and mean may be read
    rejected: str = ""

    @property
    def mode(self) -> float:
        """Peak of the fitted density: ``exp(mu - sigma^2)``."""
        return math.exp(self.mu - self.sigma**2)

    @property
    def mean(self) -> float:
        return math.exp(self.mu + self.sigma**2 / 2)

    @property
    def median(self) -> float:
        return math.exp(self.mu)

    @property
    def std(self) -> float:
        return math.sqrt((math.exp(self.sigma**2) - 1) * math.exp(2 * self.mu + self.sigma**2))

    def density(self, x: Any) -> np.ndarray:
        return self.scale * lognormal_pdf(x, self.mu, self.sigma)


@dataclass
class SizeDistribution:
    """A histogram of sizes (fractions sum to 1), its moments and log-normal fit."""

    edges: np.ndarray
    fraction: np.ndarray
    mean: float
    std: float
    median: float
    count: float
    unit: str
    fit: LogNormalFit | None
    weighting: str = "number"
    notes: list[str] = field(default_factory=list)

    @property
    def centers(self) -> np.ndarray:
        return 0.5 * (self.edges[:-1] + self.edges[1:])

    @property
    def accepted_fit(self) -> LogNormalFit | None:
        """The fit when it is a result (converged and not rejected), else None."""
        return self.fit if self.fit is not None and not self.fit.rejected else None

    def table(self) -> pd.DataFrame:
        """One row per bin: ``size_lo_<unit>``, ``size_hi_<unit>``, ``fraction`` and the
        fitted fraction ``fit_fraction`` (density integrated over the bin) of an accepted
        fit."""
        u = self.unit
        frame = pd.DataFrame({f"size_lo_{u}": self.edges[:-1], f"size_hi_{u}": self.edges[1:],
                              "fraction": self.fraction})
        if self.accepted_fit is not None:
            frame["fit_fraction"] = self.fit.density(self.centers) * np.diff(self.edges)
        return frame

    def fit_fraction(self, x: Any) -> np.ndarray:
        """The fitted density at sizes ``x`` as a fraction per (mean-width) bin: the
        histogram's y axis, for a curve drawn over its bars."""
        return self.fit.density(x) * float(np.diff(self.edges).mean())

    def summary(self) -> dict[str, float]:
        """Mean, std, median (of the data) and the fit's parameters; its mode/mean/median
        (in ``unit``) only when the fit is accepted."""
        u = self.unit
        out = {f"mean_{u}": self.mean, f"std_{u}": self.std, f"median_{u}": self.median,
               "count": self.count}
        if self.accepted_fit is not None:
            out.update({f"fit_mode_{u}": self.fit.mode, f"fit_mean_{u}": self.fit.mean,
                        f"fit_median_{u}": self.fit.median})
        if self.fit is not None:
            out.update({"fit_mu": self.fit.mu, "fit_sigma": self.fit.sigma,
                        "fit_r_squared": self.fit.r_squared,
                        "fit_ks_distance": self.fit.ks_distance})
        return out


def size_distribution(
    values: Any,
    weights: Any | None = None,
    bin_width: float | None = None,
    bins: int | np.ndarray | None = None,
    fit: bool = True,
    unit: str = "um",
) -> SizeDistribution:
    """Histogram of sizes with mean +- std and a log-normal fit.

    Parameters
    ----------
    values
        Sizes in ``unit``: e.g. ``local_thickness(...)[mask]`` (every voxel counts:
        the voxel-weighted pore size distribution of the seed) or particle ESDs.
    weights
        Optional weight per value (e.g. particle volumes for a volume-weighted
        distribution).
    bin_width
        Histogram bin width in ``unit``; bins start at 0. For local-thickness maps use
        the voxel size (the values are quantised by the voxel grid).
    bins
        Alternatively the number of bins or the bin edges (default: NumPy's 'auto').
    fit
        Fit a log-normal density to the histogram (non-linear least squares, started
        from the moments of ``log(values)``).
    unit
        Unit of the sizes, used in column names.

    Returns
    -------
    SizeDistribution
    """
    from scipy.optimize import curve_fit

    v = np.asarray(values, dtype=float).ravel()
    if v.size == 0:
        raise ValueError("no sizes to make a distribution of (empty phase or no particles)")
    if not np.all(np.isfinite(v)) or np.any(v < 0):
        raise ValueError("sizes must be finite and non-negative")
    w = np.ones_like(v) if weights is None else np.asarray(weights, dtype=float).ravel()
    if w.shape != v.shape or np.any(w < 0) or not np.all(np.isfinite(w)) or w.sum() <= 0:
        raise ValueError("weights must be finite, non-negative, one per size, not all zero")
    if bin_width is not None and bins is not None:
        raise ValueError("give either bin_width or bins, not both")
    if bin_width is not None:
        bw, _ = check_bins(float(v.max()), bin_width)
        edges = np.arange(0.0, v.max() + bw * 1.0001, bw)
        if len(edges) < 2:
            edges = np.array([0.0, bw])
    else:
        edges = np.histogram_bin_edges(v, bins="auto" if bins is None else bins, weights=None)
    hist, edges = np.histogram(v, bins=edges, weights=w)
    total = w.sum()
    fraction = hist / total
    mean = float(np.sum(w * v) / total)
    std = float(np.sqrt(np.sum(w * (v - mean) ** 2) / total))
    order = np.argsort(v)
    cw = np.cumsum(w[order])
    median = float(v[order][np.searchsorted(cw, 0.5 * total)])
    notes: list[str] = []
    result_fit = None
    if fit:
        density = fraction / np.diff(edges)
        centers = 0.5 * (edges[:-1] + edges[1:])
        pos = v > 0
        if np.count_nonzero(hist > 0) < 3 or not pos.any():
            notes.append("log-normal fit skipped: fewer than 3 non-empty bins")
        else:
            lv = np.log(v[pos])
            wp = w[pos]
            mu0 = float(np.sum(wp * lv) / wp.sum())
            s0 = float(np.sqrt(np.sum(wp * (lv - mu0) ** 2) / wp.sum())) or 0.1
            use = centers > 0

            def model(x, mu, sigma, scale):
                return scale * lognormal_pdf(x, mu, abs(sigma))

            # the fit also sees empty bins up to twice the largest size: a density that
            # keeps rising beyond the data must pay for it
            step = float(np.diff(edges).mean())
            extra = np.arange(edges[-1] + step / 2, 2 * edges[-1] + step, step)
            x_fit = np.concatenate([centers[use], extra])
            y_fit = np.concatenate([density[use], np.zeros(len(extra))])
            lo_mu, hi_mu = math.log(x_fit.min()) - 1.0, math.log(x_fit.max()) + 1.0
            p0 = (min(max(mu0, lo_mu), hi_mu), min(max(s0, 0.02), 3.0), 1.0)
            try:
                p, _ = curve_fit(model, x_fit, y_fit, p0=p0, maxfev=20000,
                                 bounds=([lo_mu, 0.01, 1e-6], [hi_mu, 5.0, 100.0]))
                mu, sigma, scale = float(p[0]), abs(float(p[1])), float(p[2])
                resid = y_fit - model(x_fit, mu, sigma, scale)
                ss = np.sum((y_fit - y_fit.mean()) ** 2)
                r2 = float(1 - np.sum(resid**2) / ss) if ss > 0 else float("nan")
                ks = _ks_distance(edges, fraction, mu, sigma)
                result_fit = LogNormalFit(mu, sigma, scale, r2, ks)
                result_fit.rejected = _rejection(result_fit, float(v[pos].min()), _unit(unit))
                if result_fit.rejected:
                    notes.append(f"log-normal fit rejected: {result_fit.rejected}; read the "
                                 "histogram and its moments (no fitted mode)")
            except (RuntimeError, ValueError) as exc:
                notes.append(f"log-normal fit did not converge: {exc}")
    return SizeDistribution(edges=edges, fraction=fraction, mean=mean, std=std, median=median,
                            count=float(total), unit=_unit(unit), fit=result_fit,
                            weighting="number" if weights is None else "weighted", notes=notes)


#: a log-normal fit whose cumulative fractions differ from the histogram's by more than
#: this (Kolmogorov-Smirnov distance) is rejected as poor
POOR_FIT_KS = 0.1
#: a fit whose mode lies below this fraction of the smallest size measured, or whose
#: sigma (of ln size) exceeds MAX_SIGMA, is degenerate (a spike at zero, not a peak)
MIN_MODE_FRACTION = 0.5
MAX_SIGMA = 3.0


def _rejection(fit: LogNormalFit, smallest: float, unit: str) -> str:
    """Why ``fit`` is no result (poor or degenerate), or "" when it is one."""
    reasons = []
    if fit.ks_distance > POOR_FIT_KS:
        reasons.append(f"Kolmogorov-Smirnov distance {_above(fit.ks_distance, POOR_FIT_KS)} > "
                       f"{POOR_FIT_KS}, it follows the histogram poorly")
    if fit.mode < MIN_MODE_FRACTION * smallest:
        reasons.append(f"degenerate, its mode {fit.mode:.3g} {unit} lies far below the "
                       f"smallest size measured ({smallest:.3g} {unit})")
    elif fit.sigma > MAX_SIGMA:
        reasons.append(f"degenerate, sigma {fit.sigma:.3g} (of ln size) > {MAX_SIGMA}")
    return "; ".join(reasons)


def _above(value: float, limit: float) -> str:
    """``value`` (> ``limit``) with the fewest decimals (at least 2) that show it above
    ``limit``: 0.104 > 0.1, not 0.10 > 0.1."""
    for digits in range(2, 8):
        text = f"{value:.{digits}f}"
        if float(text) > limit:
            return text
    return f"{value:.8g}"


def _ks_distance(edges: np.ndarray, fraction: np.ndarray, mu: float, sigma: float) -> float:
    """Largest difference of the cumulative fractions of the histogram and of the fitted
    log-normal over the histogram's range, at the bin edges."""
    with np.errstate(divide="ignore"):
        z = (np.log(np.maximum(edges, 0.0)) - mu) / (sigma * math.sqrt(2.0))
    cdf = 0.5 * (1.0 + special.erf(z))
    span = cdf[-1] - cdf[0]
    if span <= 0:
        return 1.0
    fitted = (cdf - cdf[0]) / span
    observed = np.concatenate([[0.0], np.cumsum(fraction)])
    return float(np.max(np.abs(fitted - observed)))


def _unit(unit: str) -> str:
    """Length units get their canonical spelling; anything else ("fraction") is kept."""
    try:
        return normalize_unit(unit)
    except ValueError:
        return str(unit)


def value_counts(values: Any, mask: Any | None = None,
                 progress: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values of ``values[mask]`` and how often each occurs, block by block for
    dask/zarr input. ``size_distribution(v, weights=n)`` of the result equals
    ``size_distribution(values[mask])`` (e.g. of a local-thickness map, whose values are
    few: diameters of lattice balls) without ever holding the voxels in memory."""
    def block(*args):
        v = np.asarray(args[0])
        if len(args) == 3:
            v = v[np.asarray(args[1], bool)]
        return np.unique(v.ravel(), return_counts=True)

    def merge(parts):
        vals = np.concatenate([p[0] for p in parts])
        counts = np.concatenate([p[1] for p in parts])
        uniq, inv = np.unique(vals, return_inverse=True)
        return uniq, np.bincount(inv, weights=counts, minlength=len(uniq)).astype(np.int64)

    arrays = (values,) if mask is None else (values, mask)
    return reduce_blocks(block, *arrays, combine=merge, progress=progress)
