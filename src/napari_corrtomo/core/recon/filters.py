"""Ramp filters and the per-projection weights of filtered backprojection.

Geometry-only pieces shared by the CPU engines (:mod:`.analytic`) and ASTRA
(:mod:`._astra`): the band-limited ramp filter from its exact spatial samples
(Kak and Slaney, 1988), optional windows, and the angular weights that make FBP/FDK
exact for irregular angle sets, missing wedges and 360-degree scans.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from ..progress import ProgressCallback, report
from .geometry import Geometry

FILTERS = ("ram-lak", "shepp-logan", "cosine", "hamming", "hann")


def ramp_filter(n: int, spacing: float = 1.0, window: str = "ram-lak") -> np.ndarray:
    """Frequency response of the discrete ramp filter for rows of ``n`` samples.

    Returns the ``rfft`` response of length ``m // 2 + 1`` for the padded length
    ``m = 2 ** ceil(log2(2 n))``, scaled by ``1 / spacing`` (``spacing`` the sample
    distance in physical units), so that filtered projections of line integrals are
    in 1/length.
    """
    window = str(window).lower()
    if window not in FILTERS:
        raise ValueError(f"unknown filter {window!r}; choose one of {', '.join(FILTERS)}")
    m = max(64, 2 ** int(math.ceil(math.log2(2 * n))))
    k = np.concatenate([np.arange(0, m // 2 + 1), np.arange(-(m // 2) + 1, 0)])
    h = np.zeros(m)
    h[0] = 0.25
    odd = k % 2 == 1
    h[odd] = -1.0 / (np.pi * k[odd]) ** 2
    resp = np.real(np.fft.rfft(h))  # the ramp |f| (cycles per sample), exact at f = 0
    freq = np.fft.rfftfreq(m)  # cycles per sample, 0..0.5
    omega = 2 * np.pi * freq
    if window == "shepp-logan":
        resp[1:] *= np.sin(omega[1:] / 2) / (omega[1:] / 2)
    elif window == "cosine":
        resp *= np.cos(omega / 2)
    elif window == "hamming":
        resp *= 0.54 + 0.46 * np.cos(omega)
    elif window == "hann":
        resp *= 0.5 * (1 + np.cos(omega))
    return resp / spacing


def filter_rows(projections: np.ndarray, spacing: float, window: str = "ram-lak",
                progress: ProgressCallback | None = None) -> np.ndarray:
    """Convolve every detector row (last axis) with the ramp filter; float32 result."""
    import scipy.fft as sfft

    proj = np.asarray(projections, np.float32)
    na, nr, nc = proj.shape
    resp = ramp_filter(nc, spacing, window).astype(np.float32)
    m = 2 * (resp.size - 1)
    out = np.empty_like(proj)
    step = max(1, int(2**22 // max(nr * m, 1)))  # bound the complex work array (~32 MB)
    for a0 in range(0, na, step):
        a1 = min(na, a0 + step)
        spec = sfft.rfft(proj[a0:a1], n=m, axis=-1, workers=-1)
        spec *= resp
        out[a0:a1] = sfft.irfft(spec, n=m, axis=-1, workers=-1)[..., :nc]
        report(progress, a1, na)
    return out


def angle_weights(angles_deg: np.ndarray, period: float) -> np.ndarray:
    """Angular interval (radians) each projection represents, from the gaps to its neighbours
    on a circle of ``period`` degrees. Gaps wider than twice the median (a missing wedge or a
    short scan) count as one median gap."""
    a = np.mod(np.asarray(angles_deg, float), period)
    n = a.size
    if n == 1:
        return np.array([np.deg2rad(period)])
    order = np.argsort(a, kind="stable")
    s = a[order]
    gaps = np.diff(np.concatenate([s, [s[0] + period]]))  # gap after each sorted angle
    positive = gaps[gaps > 1e-9]
    med = float(np.median(positive)) if positive.size else period / n
    gaps = np.where(gaps > 2.0 * med, med, gaps)
    before = np.roll(gaps, 1)
    w_sorted = 0.5 * (gaps + before)
    w = np.empty(n)
    w[order] = w_sorted
    return np.deg2rad(w)


def coverage_deg(angles_deg: np.ndarray, period: float) -> float:
    """Angular range covered on a circle of ``period`` degrees (period minus the largest gap)."""
    a = np.sort(np.mod(np.asarray(angles_deg, float), period))
    if a.size < 2:
        return 0.0
    gaps = np.diff(np.concatenate([a, [a[0] + period]]))
    return float(period - gaps.max() + np.median(gaps))


def fdk_preweight(geometry: Geometry) -> np.ndarray:
    """(rows, cols) cosine weights ``SDD / |ray|`` per projection for FDK, (n, rows, cols)."""
    rows, cols = geometry.det_shape
    sdd = geometry.source_origin + geometry.origin_detector  # type: ignore[operator]
    ps = geometry.pixel_size
    r = (np.arange(rows) - 0.5 * (rows - 1))[None, :, None] - geometry.shifts[:, 0, None, None]
    c = (np.arange(cols) - 0.5 * (cols - 1))[None, None, :] - geometry.shifts[:, 1, None, None]
    return (sdd / np.sqrt(sdd**2 + (r * ps) ** 2 + (c * ps) ** 2)).astype(np.float32)


def analytic_weights(geometry: Geometry) -> np.ndarray:
    """Per-projection factor (radians) applied before backprojection."""
    if geometry.kind in ("parallel", "tilt_series"):
        return angle_weights(geometry.angles_deg, 180.0)
    w = 0.5 * angle_weights(geometry.angles_deg, 360.0)
    if geometry.kind == "laminography":
        w *= math.cos(math.radians(geometry.tilt_deg))  # type: ignore[arg-type]
    return w


def short_scan_message(geometry: Geometry) -> str | None:
    """What is wrong with an FBP/FDK reconstruction of a cone-beam or laminography scan
    that covers less than a full rotation (no short-scan weights), or ``None``: a front end
    shows it before starting, :func:`warn_short_scan` warns with it."""
    if geometry.kind not in ("cone", "laminography"):
        return None
    cov = coverage_deg(geometry.angles_deg, 360.0)
    if cov >= 359.0:
        return None
    return (f"{geometry.kind} FBP/FDK assumes a full 360-degree rotation but the angles cover "
            f"{cov:.0f} degrees; expect artefacts (use SIRT or CGLS for short scans)")


def warn_short_scan(geometry: Geometry) -> None:
    message = short_scan_message(geometry)
    if message is not None:
        warnings.warn(message, stacklevel=3)
