"""Parallel-beam FBP in slabs of slices: one task per slab, for clusters and large volumes.

In a parallel-beam scan rotating about the volume's z axis every slice is reconstructed
from its own detector rows, so the volume splits into independent slabs. Each slab is one
task that reads only the detector rows its slices project onto (plus two rows of margin
for the interpolation), reconstructs them with :func:`.reconstruct` (FBP, with the slab's
``offset``), and returns ``(n, y, x)``. The result is a lazy dask array chunked by slab;
store it with :func:`napari_corrtomo.core.resumable.store_resumable` to write it slab by
slab (resumable) on whichever scheduler is active (a ``dask.distributed`` cluster inside
:func:`napari_corrtomo.core.cluster.dask_client`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..backend import as_dask, is_lazy
from .geometry import Geometry
from .reconstruct import reconstruct

__all__ = ["reconstruct_slabs"]


def reconstruct_slabs(
    projections: Any,
    geometry: Geometry,
    volume_shape: Sequence[int] | None = None,
    voxel_size: float | None = None,
    slab: int = 16,
    *,
    offset: Sequence[float] = (0.0, 0.0, 0.0),
    filter: str = "ram-lak",
    backend: str = "auto",
) -> Any:
    """FBP of a parallel-beam scan as a lazy dask array, one task per slab of ``slab`` slices.

    Parameters
    ----------
    projections
        (n_angles, rows, cols) line integrals: NumPy, dask or zarr (each task reads only
        its rows).
    geometry
        A ``"parallel"`` :class:`.Geometry` (rotation about volume z, rows along z).
    volume_shape, voxel_size, offset, filter, backend
        As :func:`.reconstruct` (defaults: the detector's field of view at the pixel size).
    slab
        Slices per task (the output's z chunk).

    Returns
    -------
    Lazy float32 dask array ``(z, y, x)`` chunked ``(slab, y, x)``; its slices equal
    ``reconstruct(projections, geometry, ..., method="fbp")``.
    """
    import dask
    import dask.array as da

    if geometry.kind != "parallel":
        raise ValueError(f"slab-wise reconstruction needs a parallel-beam scan (kind 'parallel'), "
                         f"not {geometry.kind!r}: its slices do not come from separate detector "
                         "rows; reconstruct it whole (without --workers/--scheduler)")
    if int(slab) < 1:
        raise ValueError(f"slab must be at least 1 slice, got {slab}")
    rows, cols = geometry.det_shape
    shape_in = tuple(int(n) for n in projections.shape)
    if shape_in != (geometry.n_angles, rows, cols):
        raise ValueError(f"projections {shape_in} do not match the geometry: expected "
                         f"(angles, rows, cols) = {(geometry.n_angles, rows, cols)}; check the "
                         "geometry file")
    shape = tuple(int(n) for n in (volume_shape or geometry.default_volume_shape()))
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"volume_shape must be 3 positive sizes (z, y, x), got {volume_shape}")
    vs = float(voxel_size or geometry.default_voxel_size)
    off = np.asarray(offset, float)
    px = float(geometry.pixel_size)
    s_lo, s_hi = float(geometry.shifts[:, 0].min()), float(geometry.shifts[:, 0].max())
    proj = projections
    if is_lazy(proj):
        proj = as_dask(proj)

    def rows_for(k0: int, k1: int) -> tuple[int, int]:
        """Detector rows that slices [k0, k1) project onto (any shift), with margin."""
        z_lo = (k0 - 0.5 * (shape[0] - 1) - 0.5) * vs + off[0]
        z_hi = (k1 - 1 - 0.5 * (shape[0] - 1) + 0.5) * vs + off[0]
        centre = 0.5 * (rows - 1)
        a = min(centre + z_lo / px + s_lo, centre - z_hi / px + s_lo)
        b = max(centre + z_hi / px + s_hi, centre - z_lo / px + s_hi)
        return max(int(math.floor(a)) - 2, 0), min(int(math.ceil(b)) + 3, rows)

    pieces = []
    for k0 in range(0, shape[0], int(slab)):
        k1 = min(k0 + int(slab), shape[0])
        r0, r1 = rows_for(k0, k1)
        n = k1 - k0
        centre_z = (0.5 * (k0 + k1 - 1) - 0.5 * (shape[0] - 1)) * vs + off[0]
        if r1 <= r0:  # the slab lies beyond the detector: no ray reaches it
            pieces.append(da.zeros((n, shape[1], shape[2]), np.float32))
            continue
        part = proj[:, r0:r1]
        task = dask.delayed(_slab)(part, geometry.to_dict(full=True), r0, r1,
                                   (n, shape[1], shape[2]), vs,
                                   (centre_z, float(off[1]), float(off[2])), filter, backend)
        pieces.append(da.from_delayed(task, (n, shape[1], shape[2]), np.float32))
    return da.concatenate(pieces, axis=0)


def _slab(part: Any, geometry: dict, r0: int, r1: int, shape: tuple[int, int, int], vs: float,
          offset: tuple[float, float, float], filter: str, backend: str) -> np.ndarray:
    """Rows [r0, r1) of the detector as their own scan; FBP of one slab."""
    fields = dict(geometry)
    for key in ("format", "version"):
        fields.pop(key, None)
    full = Geometry(**fields)
    n = r1 - r0
    shifts = full.shifts.copy()
    # the rotation centre stays where it was on the detector: row (R-1)/2 + s of the full
    # detector is row (R-1)/2 + s - r0 of the sub-detector, whose centre is (n-1)/2
    shifts[:, 0] = 0.5 * (full.det_shape[0] - 1) + shifts[:, 0] - r0 - 0.5 * (n - 1)
    fields.update(det_shape=(n, full.det_shape[1]), shifts=shifts)
    sub = Geometry(**fields)
    return reconstruct(np.ascontiguousarray(np.asarray(part), np.float32), sub, shape, vs, "fbp",
                       backend=backend, offset=offset, filter=filter).astype(np.float32,
                                                                            copy=False)
