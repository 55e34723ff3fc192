"""Every ASTRA call of the reconstruction package (the GPU engine).

ASTRA's 3D algorithms abort the Python interpreter when CUDA is missing, so every
function here checks :func:`cuda_available` first and raises ``ValueError``
otherwise; :func:`.project.select_engine` only routes work here when it is True.

Geometries are passed as vector geometries in voxel units
(:meth:`Geometry.astra_geometry`), so ASTRA's line integrals are in voxels: data
are divided by the voxel size on the way in and forward projections multiplied
by it on the way out.

GPU: not verified in the session that wrote this module (no GPU was lent); the
``gpu``-marked tests compare every path here with the CPU engines.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from ..progress import ProgressCallback, report
from .filters import analytic_weights, filter_rows
from .geometry import Geometry


@functools.cache
def cuda_available() -> bool:
    """True when ASTRA is importable and reports a usable CUDA device."""
    try:
        import astra

        return bool(astra.use_cuda())
    except Exception:  # ImportError, missing driver libraries ...
        return False


def _require_cuda() -> None:
    if not cuda_available():
        raise ValueError(
            "ASTRA's CUDA algorithms need an NVIDIA GPU and none is usable here; "
            "use backend='numpy' (the CPU engines)"
        )


def _to_astra(projections: np.ndarray, voxel_size: float) -> np.ndarray:
    """(angle, row, col) physical line integrals -> ASTRA's (row, angle, col) in voxels."""
    data = np.ascontiguousarray(np.transpose(projections, (1, 0, 2)), dtype=np.float32)
    return data / np.float32(voxel_size)


def forward_project(volume: np.ndarray, geometry: Geometry, voxel_size: float,
                    offset: Sequence[float]) -> np.ndarray:
    """FP3D_CUDA; returns (angle, row, col) physical line integrals."""
    _require_cuda()
    import astra

    vol_geom, proj_geom = geometry.astra_geometry(volume.shape, voxel_size, offset)
    pid, data = astra.create_sino3d_gpu(np.ascontiguousarray(volume, np.float32), proj_geom,
                                        vol_geom)
    astra.data3d.delete(pid)
    return np.ascontiguousarray(np.transpose(data, (1, 0, 2))) * np.float32(voxel_size)


def _backproject(data: np.ndarray, geometry: Geometry, shape: Sequence[int], voxel_size: float,
                 offset: Sequence[float]) -> np.ndarray:
    """BP3D_CUDA of ASTRA-ordered data into a new volume."""
    import astra

    vol_geom, proj_geom = geometry.astra_geometry(shape, voxel_size, offset)
    pid = astra.data3d.create("-proj3d", proj_geom, data)
    vid = astra.data3d.create("-vol", vol_geom, 0)
    cfg = astra.astra_dict("BP3D_CUDA")
    cfg["ProjectionDataId"] = pid
    cfg["ReconstructionDataId"] = vid
    alg = astra.algorithm.create(cfg)
    try:
        astra.algorithm.run(alg)
        return astra.data3d.get(vid)
    finally:
        astra.algorithm.delete(alg)
        astra.data3d.delete([pid, vid])


def reconstruct(proj: np.ndarray, geometry: Geometry, shape: tuple[int, int, int],
                voxel_size: float, offset: Sequence[float], method: str, iterations: int,
                min_value: float | None, filter: str,
                progress: ProgressCallback | None) -> np.ndarray:
    """FBP (host filtering + BP3D_CUDA), FDK_CUDA, SIRT3D_CUDA or CGLS3D_CUDA."""
    _require_cuda()
    import astra

    report(progress, 0, 1)
    if method == "fbp":
        filt = filter_rows(proj, geometry.pixel_size, filter)
        filt *= analytic_weights(geometry).astype(np.float32)[:, None, None]
        vol = _backproject(_to_astra(filt, 1.0), geometry, shape, voxel_size, offset)
        # ASTRA's parallel backprojection sums interpolated values up to one constant factor:
        # calibrate it with unit projections on a one-voxel volume at the rotation centre.
        rows, cols = geometry.det_shape
        ones = np.ones((rows, geometry.n_angles, cols), np.float32)
        unit = _backproject(ones, geometry, (1, 1, 1), voxel_size, (0.0, 0.0, 0.0))
        scale = geometry.n_angles / float(unit.ravel()[0])
        report(progress, 1, 1)
        return (vol * np.float32(scale)).astype(np.float32)
    vol_geom, proj_geom = geometry.astra_geometry(shape, voxel_size, offset)
    pid = astra.data3d.create("-proj3d", proj_geom, _to_astra(proj, voxel_size))
    vid = astra.data3d.create("-vol", vol_geom, 0)
    name = {"fdk": "FDK_CUDA", "sirt": "SIRT3D_CUDA", "cgls": "CGLS3D_CUDA"}[method]
    cfg = astra.astra_dict(name)
    cfg["ProjectionDataId"] = pid
    cfg["ReconstructionDataId"] = vid
    if method == "sirt" and min_value is not None:
        cfg["option"] = {"MinConstraint": float(min_value)}
    alg = astra.algorithm.create(cfg)
    try:
        astra.algorithm.run(alg, iterations if method != "fdk" else 1)
        vol = astra.data3d.get(vid)
    finally:
        astra.algorithm.delete(alg)
        astra.data3d.delete([pid, vid])
    if method == "fdk" and geometry.kind == "laminography":
        vol *= np.float32(np.cos(np.deg2rad(geometry.tilt_deg)))
    report(progress, 1, 1)
    return np.asarray(vol, np.float32)
