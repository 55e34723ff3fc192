"""Fourier shell (ring) correlation and the van Heel & Schatz (2005) resolution criteria.

``FSC(k) = Re sum F1 F2* / sqrt(sum |F1|^2 sum |F2|^2)`` over the Fourier voxels
in a shell of spatial frequency ``k`` (cycles per unit length). The resolution is
``1 / k`` at the first crossing of the FSC below a threshold curve that depends on
the number of voxels ``n`` in the shell (van Heel & Schatz, J. Struct. Biol. 151,
250-262, 2005):

- 1/2-bit: ``(0.2071 + 1.9102 / sqrt(n)) / (1.2071 + 0.9102 / sqrt(n))``
- 1-bit:   ``(0.5 + 2.4142 / sqrt(n)) / (1.5 + 1.4142 / sqrt(n))``

The seed workflow correlates reconstructions of the even- and odd-numbered
projections (:func:`.reconstruct_halves`) and reports the 1/2-bit value; the 1-bit
value is the more conservative one. Works for 2D images (FRC) and 3D volumes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .._checks import check_spacing


def half_bit_threshold(n: Any) -> np.ndarray:
    """The 1/2-bit information threshold for shells of ``n`` Fourier voxels."""
    s = np.sqrt(np.asarray(n, float))
    return (0.2071 + 1.9102 / s) / (1.2071 + 0.9102 / s)


def one_bit_threshold(n: Any) -> np.ndarray:
    """The 1-bit information threshold for shells of ``n`` Fourier voxels."""
    s = np.sqrt(np.asarray(n, float))
    return (0.5 + 2.4142 / s) / (1.5 + 1.4142 / s)


@dataclass
class FSCResult:
    """An FSC curve with both thresholds and the resolutions they give.

    Lengths are in the unit of ``voxel_size``; frequencies in cycles per that unit.
    A resolution equals the Nyquist limit (two voxels) when the curve never
    crosses the threshold (``crossed_*`` is then False).
    """

    frequency: np.ndarray
    fsc: np.ndarray
    n_voxels: np.ndarray
    threshold_half_bit: np.ndarray
    threshold_one_bit: np.ndarray
    resolution_half_bit: float
    resolution_one_bit: float
    crossed_half_bit: bool
    crossed_one_bit: bool
    nyquist: float

    def summary(self, unit: str = "pixel") -> str:
        """One line: both resolutions in ``unit``; one the curve never reached is the
        voxel size's limit (Nyquist, two voxels), an upper bound, and says so."""

        def resolution(value: float, crossed: bool, name: str) -> str:
            if crossed:
                return f"{value:.4g} {unit} ({name})"
            return f"better than {value:.4g} {unit} ({name}: no crossing up to Nyquist)"

        return ("FSC resolution: "
                + resolution(self.resolution_half_bit, self.crossed_half_bit, "1/2-bit") + ", "
                + resolution(self.resolution_one_bit, self.crossed_one_bit, "1-bit"))

    def table(self, unit: str = "pixel") -> pd.DataFrame:
        """The curve as a table; column names carry the unit."""
        return pd.DataFrame({
            f"frequency_per_{unit}": self.frequency,
            f"resolution_{unit}": np.where(self.frequency > 0,
                                           1.0 / np.maximum(self.frequency, 1e-300), np.inf),
            "fsc": self.fsc,
            "n_voxels": self.n_voxels,
            "threshold_half_bit": self.threshold_half_bit,
            "threshold_one_bit": self.threshold_one_bit,
        })


def first_crossing(freq: np.ndarray, curve: np.ndarray,
                   threshold: np.ndarray | float) -> tuple[float, bool]:
    """First frequency (after the zero shell) where ``curve`` falls below ``threshold``,
    linearly interpolated between shells, and whether it falls below at all (else the
    last frequency). ``threshold`` is a curve over the same shells or one number."""
    diff = np.asarray(curve) - threshold
    for k in range(1, len(freq)):
        if diff[k] < 0:
            if diff[k - 1] <= 0 or k == 1:
                return float(freq[k]), True
            t = diff[k - 1] / (diff[k - 1] - diff[k])
            return float(freq[k - 1] + t * (freq[k] - freq[k - 1])), True
    return float(freq[-1]), False


def fsc(vol_a: Any, vol_b: Any, voxel_size: Any = 1.0, shell_width: float = 1.0) -> FSCResult:
    """Fourier shell correlation of two volumes (or ring correlation of two images).

    Parameters
    ----------
    vol_a, vol_b
        Arrays of the same 2D or 3D shape, e.g. even/odd half reconstructions.
    voxel_size
        Voxel size per axis (a scalar for isotropic voxels), in physical units.
    shell_width
        Shell thickness in units of the coarsest frequency step ``1 / max(n_i d_i)``.

    Returns
    -------
    :class:`FSCResult` with the curve up to the Nyquist frequency of the coarsest
    axis and the 1/2-bit and 1-bit resolutions in the unit of ``voxel_size``.
    """
    a = np.asarray(vol_a, dtype=np.float64)
    b = np.asarray(vol_b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"the two volumes differ in shape: {a.shape} vs {b.shape}")
    if a.ndim not in (2, 3):
        raise ValueError(f"FSC needs 2D images or 3D volumes, got {a.ndim} dimensions")
    if min(a.shape) < 8:
        raise ValueError(f"volumes of shape {a.shape} are too small for an FSC (>= 8 per axis)")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("the volumes contain NaN or inf values")
    if not shell_width > 0:
        raise ValueError(f"shell_width must be positive, got {shell_width}")
    spacing = np.array(check_spacing(voxel_size, a.ndim))
    fa = np.fft.rfftn(a - a.mean())
    fb = np.fft.rfftn(b - b.mean())
    freqs = [np.fft.fftfreq(n, d) for n, d in zip(a.shape[:-1], spacing[:-1], strict=True)]
    freqs.append(np.fft.rfftfreq(a.shape[-1], spacing[-1]))
    grids = np.meshgrid(*freqs, indexing="ij", sparse=True)
    kmag = np.sqrt(sum(g**2 for g in grids))
    step = shell_width / float(np.max(np.array(a.shape) * spacing))
    nyquist = float(np.min(0.5 / spacing))
    n_shells = int(np.floor(nyquist / step)) + 1
    shell = np.rint(kmag / step).astype(np.int64)
    # rfft stores half the spectrum: interior columns stand for two voxels (k and -k)
    weight = np.full(a.shape[-1] // 2 + 1, 2.0)
    weight[0] = 1.0
    if a.shape[-1] % 2 == 0:
        weight[-1] = 1.0
    weight = np.broadcast_to(weight, fa.shape)
    keep = shell < n_shells
    idx = shell[keep]
    w = weight[keep]
    cross = np.bincount(idx, w * (fa * np.conj(fb)).real[keep], n_shells)
    pa = np.bincount(idx, w * (np.abs(fa) ** 2)[keep], n_shells)
    pb = np.bincount(idx, w * (np.abs(fb) ** 2)[keep], n_shells)
    count = np.bincount(idx, w, n_shells)
    with np.errstate(invalid="ignore", divide="ignore"):
        curve = np.where((pa > 0) & (pb > 0), cross / np.sqrt(pa * pb), 0.0)
    curve[0] = 1.0  # the mean was removed; the zero shell carries no information
    freq = np.arange(n_shells) * step
    nz = np.maximum(count, 1.0)
    t_half = half_bit_threshold(nz)
    t_one = one_bit_threshold(nz)
    k_half, c_half = first_crossing(freq, curve, t_half)
    k_one, c_one = first_crossing(freq, curve, t_one)
    k_half = k_half if c_half else nyquist
    k_one = k_one if c_one else nyquist
    return FSCResult(
        frequency=freq, fsc=curve, n_voxels=count, threshold_half_bit=t_half,
        threshold_one_bit=t_one, resolution_half_bit=1.0 / k_half, resolution_one_bit=1.0 / k_one,
        crossed_half_bit=c_half, crossed_one_bit=c_one, nyquist=nyquist,
    )
