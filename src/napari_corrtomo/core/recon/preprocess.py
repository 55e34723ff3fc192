"""Projection preprocessing: flat/dark normalisation, -log, outliers, rings.

The order used by :func:`prepare` (and by the widget and ``corrtomo reconstruct``)
follows the seed workflow: reference (flat/dark) correction with averaged
references, ``-log``, cosmic-ray/zinger removal, optional ring suppression.
Nothing is clipped silently: a zero or negative flat field or transmission
raises ``ValueError`` unless the caller asks for an explicit ``floor``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage as ndi

from .._errors import SettingError
from ..progress import ProgressCallback, report

#: Largest value line integrals ``-log(T)`` plausibly reach: a transmission of e**-50 is far
#: below any detector's dynamic range, so larger values are counts not yet normalised.
RAW_COUNTS_ABOVE = 50.0


def _stack(name: str, refs: Any, det_shape: tuple[int, ...]) -> np.ndarray:
    """Average reference frames (n, rows, cols) or take one (rows, cols) frame."""
    arr = np.asarray(refs, dtype=np.float64)
    if arr.ndim == 3:
        arr = arr.mean(axis=0)
    if arr.ndim != 2 or arr.shape != tuple(det_shape):
        raise ValueError(
            f"{name} must be one frame (rows, cols) or a stack (n, rows, cols) matching the "
            f"detector {tuple(det_shape)}, got shape {np.shape(refs)}"
        )
    check_finite(name, arr)
    return arr


def check_finite(name: str, arr: np.ndarray) -> None:
    """Refuse NaN/inf (they spread through every filter), saying where and what to do."""
    bad = ~np.isfinite(arr)
    if bad.any():
        axes = ("angle", "row", "col")[-arr.ndim:] if arr.ndim <= 3 else ()
        first = ", ".join(f"{a} {int(i)}" for a, i in zip(axes, np.argwhere(bad)[0]))
        raise ValueError(
            f"{name} contain {int(bad.sum())} NaN or inf values (first at {first}); replace "
            "them (e.g. by their neighbours' values) or leave out the frames that hold them "
            "(projections: with their angles), or read the files again if a reader wrote them")


def normalize(projections: Any, flats: Any, darks: Any | None = None) -> np.ndarray:
    """Flat/dark (reference) correction: ``(P - mean(darks)) / (mean(flats) - mean(darks))``.

    Parameters
    ----------
    projections
        (n, rows, cols) detector counts.
    flats, darks
        Reference frames without the sample (flats) and without beam (darks):
        one frame or a stack that is averaged. ``darks=None`` means zero dark current.

    Returns
    -------
    (n, rows, cols) float32 transmission (1 = no attenuation).
    """
    proj = np.asarray(projections)
    if proj.ndim != 3:
        raise ValueError(f"projections must be 3D (angle, row, col), got {proj.ndim} dimensions")
    check_finite("projections", proj)
    det = proj.shape[1:]
    flat = _stack("flats", flats, det)
    dark = np.zeros(det) if darks is None else _stack("darks", darks, det)
    gain = flat - dark
    bad = gain <= 0
    if bad.mean() > 0.5:  # darker than the darks nearly everywhere: the files changed places
        raise SettingError(
            f"the flat fields are darker than the dark fields at {int(bad.sum())} of "
            f"{bad.size} detector pixels: they look swapped; give the open-beam frames as "
            "$flats and the frames without beam as $darks", flats="flats", darks="darks")
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ValueError(
            f"the flat field is zero or below the dark current at {int(bad.sum())} detector "
            f"pixels (first at row {r}, col {c}); check the flat/dark frames (dead pixels, "
            "wrong files) before normalising"
        )
    return ((proj - dark) / gain).astype(np.float32)


def minus_log(transmission: Any, floor: float | None = None) -> np.ndarray:
    """Line integrals ``-log(T)`` from transmissions ``T``.

    Transmissions ``<= 0`` have no logarithm: they raise ``ValueError`` unless
    ``floor`` is given, in which case values below ``floor`` are set to ``floor``
    first (an explicit, visible choice).
    """
    t = np.asarray(transmission, dtype=np.float32)
    if not np.all(np.isfinite(t)):
        raise ValueError("transmission contains NaN or inf values")
    if floor is not None:
        if not floor > 0:
            raise ValueError(f"floor must be a positive transmission, got {floor!r}")
        t = np.maximum(t, np.float32(floor))
    elif (t <= 0).any():
        n = int((t <= 0).sum())
        raise SettingError(
            f"{n} pixels have transmission <= 0 (dark current above the signal, or a wrong "
            "flat field); fix the references or $floor", floor="pass floor=... to clamp them "
            "explicitly")
    return (-np.log(t)).astype(np.float32)


def remove_outliers(
    projections: Any,
    threshold: float = 5.0,
    size: int = 3,
    return_mask: bool = False,
    progress: ProgressCallback | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Replace zingers / cosmic-ray hits by the local median.

    A zinger hits one pixel of one frame. A pixel is replaced when it is a spike
    both in space and in angle: it differs from the ``size x size`` median of its
    projection by more than ``threshold`` robust standard deviations, and it lies
    beyond *both* its neighbours in the previous and next projection (acquisition
    order) by more than ``threshold`` standard deviations of the angular second
    difference. Object edges move smoothly from frame to frame and are not
    spikes in angle, so they are left alone. Standard deviations are robust
    (1.4826 x median absolute deviation), floored at 0.1 % of the value range so
    noise-free data are untouched. Works on counts or line integrals alike.

    Returns the cleaned projections (float32) and, with ``return_mask``, the boolean
    mask of replaced pixels.
    """
    proj = np.asarray(projections, dtype=np.float32)
    if proj.ndim != 3:
        raise ValueError(f"projections must be 3D (angle, row, col), got {proj.ndim} dimensions")
    if not threshold > 0:
        raise ValueError(
            f"threshold must be positive (in robust standard deviations), got {threshold}")
    if int(size) < 3 or int(size) % 2 == 0:
        raise ValueError(f"size must be an odd number >= 3, got {size}")
    n = proj.shape[0]
    lo, hi = np.percentile(proj, (1, 99))
    floor = max(1e-3 * float(hi - lo), 1e-12)
    if n >= 3:
        prev = np.concatenate([proj[1:2], proj[:-1]])
        nxt = np.concatenate([proj[1:], proj[-2:-1]])
        second = proj - 0.5 * (prev + nxt)
        sigma_a = max(1.4826 * float(np.median(np.abs(second))) / np.sqrt(1.5), floor)
    out = proj.copy()
    mask = np.zeros(proj.shape, bool)
    for i in range(n):
        med = ndi.median_filter(proj[i], size=int(size), mode="nearest")
        dev = proj[i] - med
        sigma = max(1.4826 * float(np.median(np.abs(dev))), floor)
        hit = np.abs(dev) > threshold * sigma
        if n >= 3:
            a, b = prev[i], nxt[i]
            up = proj[i] - np.maximum(a, b) > threshold * sigma_a
            down = np.minimum(a, b) - proj[i] > threshold * sigma_a
            hit &= up | down
        out[i][hit] = med[hit]
        mask[i] = hit
        report(progress, i + 1, n)
    return (out, mask) if return_mask else out


def suppress_rings(projections: Any, size: int = 5) -> np.ndarray:
    """Remove column-wise offsets (stripes in sinograms, rings in reconstructions).

    For each detector row the sinogram is sorted along the angles, so that every
    column becomes a monotonic profile in which the object no longer shows as sharp
    structure while a detector-column offset stays a constant (the sorting idea of
    Vo, Atwood and Drakopoulou, Opt. Express 26, 28396, 2018). The offset of each
    column is the median over ranks of its difference to the ``size``-column running
    median of the sorted sinogram; it is subtracted from every angle.
    """
    proj = np.asarray(projections, dtype=np.float32)
    if proj.ndim != 3:
        raise ValueError(f"projections must be 3D (angle, row, col), got {proj.ndim} dimensions")
    if int(size) < 3:
        raise ValueError(f"size must be >= 3 columns, got {size}")
    ordered = np.sort(proj, axis=0)
    smooth = ndi.median_filter(ordered, size=(1, 1, int(size)), mode="nearest")
    offset = np.median(ordered - smooth, axis=0)  # (rows, cols)
    return (proj - offset[None]).astype(np.float32)


def raw_counts_peak(projections: Any, flats: Any = None, log: bool | None = None,
                    kind: str | None = None) -> float | None:
    """The largest value of ``projections`` when they look like raw detector counts that
    :func:`prepare` would pass on as line integrals (no flat field, no ``-log``, values
    above :data:`RAW_COUNTS_ABOVE`), else None. Tilt series (``kind="tilt_series"``) are
    never flagged: electron-microscope images (HAADF) are used as they are."""
    if flats is not None or log or kind == "tilt_series":
        return None
    proj = np.asarray(projections)
    if not proj.size:
        return None
    peak = float(np.max(proj))
    return peak if np.isfinite(peak) and peak > RAW_COUNTS_ABOVE else None


def prepare(
    projections: Any,
    *,
    flats: Any | None = None,
    darks: Any | None = None,
    log: bool | None = None,
    floor: float | None = None,
    outlier_threshold: float | None = None,
    ring_size: int | None = None,
    progress: ProgressCallback | None = None,
) -> np.ndarray:
    """The preprocessing chain used by the widget and the CLI.

    With ``flats`` the projections are normalised (:func:`normalize`); ``log``
    (default: on when flats are given) takes :func:`minus_log`; then outliers
    (:func:`remove_outliers` with ``outlier_threshold``) and rings
    (:func:`suppress_rings` with ``ring_size``) are removed when asked for.
    Returns float32 line integrals.
    """
    proj = np.asarray(projections)
    if proj.ndim != 3:
        raise ValueError(f"projections must be 3D (angle, row, col), got {proj.ndim} dimensions")
    if flats is not None:
        proj = normalize(proj, flats, darks)
    elif darks is not None:
        raise ValueError("dark frames need flat frames too (normalisation is (P - D) / (F - D))")
    if log is None:
        log = flats is not None
    if log and flats is None and floor is None and proj.size and float(np.min(proj)) <= 0:
        n = int((proj <= 0).sum())
        raise SettingError(
            f"-log of projections with {n} values <= 0 (lowest {float(np.min(proj)):.4g}) and "
            f"no flat field: they are probably line integrals already (-log taken); leave out "
            f"$log (or give the flat field, $flats)", log="log=True", flats="flats")
    if log:
        proj = minus_log(proj, floor)
    proj = np.asarray(proj, np.float32)
    check_finite("projections", proj)
    if outlier_threshold is not None:
        proj = remove_outliers(proj, outlier_threshold, progress=progress)
    if ring_size is not None:
        proj = suppress_rings(proj, ring_size)
    report(progress, 1, 1)
    return proj
