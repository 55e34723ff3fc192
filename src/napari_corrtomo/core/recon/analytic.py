"""Filtered backprojection: FBP (parallel beam) and FDK (cone beam), incl. laminography.

Each projection row is convolved with the band-limited ramp filter (built from its
exact spatial-domain samples, so the zero frequency is right, then optionally
windowed), weighted by the angular interval it represents, and backprojected:

- parallel beam: ``f(x) = sum_i dtheta_i q_i(u(x))`` with angle gaps taken modulo
  180 degrees (a 360-degree scan counts every ray twice, each with half weight);
- cone beam (FDK): projections are first multiplied by the cosine of the ray's
  angle to the central ray, filtered at the pixel size at the rotation centre,
  and backprojected with the distance weight ``(SO / (SO + x.d))**2`` and half the
  full-circle angle gaps;
- laminography: as above with a full 360-degree rotation and an extra factor
  ``cos(tilt)`` (the Jacobian between the tilted-axis projections and Fourier
  space); the frequencies inside the missing double cone stay empty, which is why
  iterative methods are recommended for laminography.

Limited-angle scans (ET) are weighted by their own angle gaps; gaps larger than
twice the median gap (the missing wedge) count as one median gap.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..progress import ProgressCallback, report, scaled
from . import projector as P
from .filters import analytic_weights, fdk_preweight, filter_rows, warn_short_scan
from .geometry import Geometry


def filtered_backprojection(projections: np.ndarray, geometry: Geometry,
                            volume_shape: Sequence[int], voxel_size: float,
                            offset: Sequence[float] = (0.0, 0.0, 0.0), filter: str = "ram-lak",
                            progress: ProgressCallback | None = None,
                            engine: str = "cpu") -> np.ndarray:
    """FBP (parallel beam) or FDK (cone beam); (z, y, x) float32 in 1 / ``geometry.unit``.
    Filtering runs on the CPU, the backprojection on ``engine`` (``"cpu"`` or ``"cuda"``).
    Inputs are assumed validated (see :func:`.reconstruct`)."""
    warn_short_scan(geometry)
    proj = np.asarray(projections, np.float32)
    if geometry.is_cone:
        proj = proj * fdk_preweight(geometry)
    spacing = geometry.pixel_size / geometry.magnification
    filt = filter_rows(proj, spacing, filter, scaled(progress, 0, 20, 100))
    filt *= analytic_weights(geometry).astype(np.float32)[:, None, None]
    plan = P.slice_plan(geometry, volume_shape, voxel_size, offset)
    rest = scaled(progress, 20, 100, 100)
    if plan is None:
        return P.volume_interp(geometry, filt, volume_shape, voxel_size, offset, progress=rest,
                               engine=engine)
    out = np.zeros(tuple(volume_shape), np.float32)
    n = volume_shape[plan.axis]
    parts = P.batches(n, P.batch_size(plan, geometry.n_angles))
    for i, (k0, k1) in enumerate(parts):
        vol = P.slice_interp(plan, P.sino_batch(filt, plan.rows[k0:k1]), engine)
        P.from_slice_batch(vol, out, plan.axis, k0, k1)
        report(rest, i + 1, len(parts))
    return out
