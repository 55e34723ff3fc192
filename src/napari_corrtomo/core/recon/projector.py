"""Forward projection and backprojection on the CPU and GPU engines, and the engine choice.

Two engines share the geometry vectors of :class:`~.geometry.Geometry`:

- the **slice engine** for parallel beams whose rays stay in volume slices
  (``parallel`` CT: z-slices; ``tilt_series``: y-slices) and whose slices line up
  with detector rows. Slices are processed in batches that share one in-slice
  system matrix (applied matrix-free, weights computed once per batch);
- the **volume engine** for everything else (cone beam, laminography, parallel
  beams on grids that do not line up with the detector rows).

Both use the Joseph projector (line integrals in physical units) and its exact
transpose, so ``<A x, y> == <x, A^T y>`` up to rounding (needed by CGLS). Each runs
on the CPU (``engine="cpu"``, :mod:`._kernels`) or on an NVIDIA GPU through numba CUDA
(``engine="cuda"``, :mod:`._cuda_kernels`, the same arithmetic, no ASTRA needed).
ASTRA's own CUDA algorithms (``"astra"``, :mod:`._astra`) are used instead when ASTRA
sees a GPU.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._checks import SettingError
from ..backend import gpu_verified, memory_budget, requested_backend
from ..progress import ProgressCallback, report
from . import _astra, _cuda_kernels, _kernels
from .geometry import Geometry

#: Most slices processed together by the slice engine.
MAX_BATCH = 64

#: numba's parallel kernels must not be launched from two threads at once when its
#: "workqueue" threading layer is in use (no OpenMP/TBB); widgets run them in worker
#: threads, so every launch goes through this lock.
KERNEL_LOCK = threading.RLock()


# =========================================================================== engine choice


def select_engine(backend: str = "auto") -> str:
    """The engine for a requested backend: ``"cpu"``, ``"astra"`` (ASTRA's CUDA
    algorithms) or ``"cuda"`` (the numba CUDA kernels).

    The GPU engine is ASTRA when ASTRA sees a GPU, else the numba CUDA kernels when
    numba sees one. ``"auto"`` honours ``CORRTOMO_BACKEND`` and picks the GPU engine
    only when its path (``"recon.astra"`` / ``"recon.cuda"``) is in
    :data:`~..backend.VERIFIED_GPU_PATHS`, the CPU engines otherwise (never a crash).
    An explicit ``"cupy"`` without a usable GPU raises ``ValueError``.
    """
    name = requested_backend(backend)
    if name == "numpy":
        return "cpu"
    if _astra.cuda_available():
        engine = "astra"
    elif _cuda_kernels.available():
        engine = "cuda"
    elif name == "auto":
        return "cpu"
    else:
        raise SettingError(
            "$backend 'cupy' needs an NVIDIA GPU usable by numba (or ASTRA) and none is "
            "usable here; choose 'auto' or 'numpy' for the CPU engines", backend="backend")
    if name == "auto" and not gpu_verified(f"recon.{engine}"):
        return "cpu"
    return engine


# =========================================================================== grids


def check_volume(volume_shape: Any, voxel_size: Any, offset: Any = (0.0, 0.0, 0.0)):
    """Validate the reconstruction grid; returns (shape, voxel_size, offset)."""
    try:
        shape = tuple(int(s) for s in volume_shape)
    except (TypeError, ValueError):
        raise ValueError(f"volume_shape must be (z, y, x), got {volume_shape!r}") from None
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(
            f"volume_shape must be three positive sizes (z, y, x), got {volume_shape!r}")
    try:
        vs = float(voxel_size)
    except (TypeError, ValueError):
        raise ValueError(
            f"voxel_size must be one positive number (isotropic voxels), got {voxel_size!r}"
        ) from None
    if not math.isfinite(vs) or vs <= 0:
        raise ValueError(f"voxel_size must be positive and finite, got {voxel_size!r}")
    off = np.asarray(offset, dtype=float)
    if off.shape != (3,) or not np.all(np.isfinite(off)):
        raise ValueError(
            f"offset must be the (z, y, x) position of the volume centre, got {offset!r}")
    return shape, vs, off


# =========================================================================== plans


@dataclass
class SlicePlan:
    """In-slice geometry shared by all slices of a parallel-beam scan."""

    axis: int  # volume axis the slices are cut along (0: z, 1: y)
    rays: np.ndarray  # (na, 2) unit (col, row) ray directions
    centres: np.ndarray  # (na, 2) detector centres, voxel units, relative to the slice centre
    us: np.ndarray  # (na, 2) column step in voxel units
    rows: np.ndarray  # (n_slices,) detector row of each slice, -1 when off the detector
    step: float
    slice_shape: tuple[int, int]
    n_det: int


@dataclass
class VolumePlan:
    """3D vectors for the volume engine (voxel units, relative to the volume centre)."""

    vecs: np.ndarray
    cone: bool
    step: float
    shape: tuple[int, int, int]


def slice_plan(geometry: Geometry, volume_shape: Sequence[int], voxel_size: float,
               offset: Sequence[float] = (0.0, 0.0, 0.0)) -> SlicePlan | None:
    """The slice-engine plan, or ``None`` when the geometry/grid needs the volume engine."""
    if geometry.kind not in ("parallel", "tilt_series"):
        return None
    if not math.isclose(voxel_size, geometry.pixel_size, rel_tol=1e-9):
        return None
    if np.ptp(geometry.shifts[:, 0]) > 1e-9:
        return None
    axis = 0 if geometry.kind == "parallel" else 1
    comp_axis = 2 if axis == 0 else 1  # vector component along the slice axis
    comp_row = 1 if axis == 0 else 2  # in-slice row component
    vec = geometry.vectors()
    offset = np.asarray(offset, float)
    off_xyz = offset[::-1]
    rows, _cols = geometry.det_shape
    n_slices = int(volume_shape[axis])
    # slice k sits at (k - (n-1)/2) * vs + offset along the axis; detector row r at
    # (r - (rows-1)/2 - shift_row) * ps
    pos = (np.arange(n_slices) - 0.5 * (n_slices - 1)) + offset[axis] / voxel_size
    row_f = pos + 0.5 * (rows - 1) + geometry.shifts[0, 0]
    if not np.allclose(row_f, np.round(row_f), atol=1e-6):
        return None
    row_i = np.round(row_f).astype(int)
    row_i[(row_i < 0) | (row_i >= rows)] = -1
    centre = (vec[:, 3:6] - off_xyz) / voxel_size
    u = vec[:, 6:9] / voxel_size
    ray = vec[:, 0:3]
    if np.abs(ray[:, comp_axis]).max() > 1e-12 or np.abs(u[:, comp_axis]).max() > 1e-12:
        return None
    slice_shape = tuple(int(volume_shape[i]) for i in range(3) if i != axis)
    return SlicePlan(
        axis=axis,
        rays=np.ascontiguousarray(np.stack([ray[:, 0], ray[:, comp_row]], 1)),
        centres=np.ascontiguousarray(np.stack([centre[:, 0], centre[:, comp_row]], 1)),
        us=np.ascontiguousarray(np.stack([u[:, 0], u[:, comp_row]], 1)),
        rows=row_i,
        step=float(voxel_size),
        slice_shape=slice_shape,  # type: ignore[arg-type]
        n_det=geometry.det_shape[1],
    )


def volume_plan(geometry: Geometry, volume_shape: Sequence[int], voxel_size: float,
                offset: Sequence[float] = (0.0, 0.0, 0.0)) -> VolumePlan:
    vec = geometry.vectors().copy()
    off_xyz = np.asarray(offset, float)[::-1]
    if geometry.is_cone:
        vec[:, 0:3] -= off_xyz
    vec[:, 3:6] -= off_xyz
    if geometry.is_cone:
        vec[:, 0:3] /= voxel_size
    vec[:, 3:12] /= voxel_size
    return VolumePlan(np.ascontiguousarray(vec), geometry.is_cone, float(voxel_size),
                      tuple(int(s) for s in volume_shape))  # type: ignore[arg-type]


def batch_size(plan: SlicePlan, n_angles: int, copies: int = 6,
               budget: int | str | None = None) -> int:
    """Slices per batch so that ``copies`` working arrays fit the memory budget."""
    per_slice = (plan.slice_shape[0] * plan.slice_shape[1] + n_angles * plan.n_det) * 4 * copies
    fit = max(1, int(memory_budget("numpy", budget) // max(per_slice, 1)))
    return int(min(MAX_BATCH, fit))


def batches(n: int, size: int) -> list[tuple[int, int]]:
    return [(s, min(n, s + size)) for s in range(0, n, size)]


# --------------------------------------------------------------------------- slice batches


def to_slice_batch(volume: np.ndarray, axis: int, k0: int, k1: int) -> np.ndarray:
    """Volume slices [k0, k1) along ``axis`` as a (rows, cols, n) float32 batch."""
    sub = volume[k0:k1] if axis == 0 else volume[:, k0:k1]
    order = (1, 2, 0) if axis == 0 else (0, 2, 1)
    return np.ascontiguousarray(np.transpose(sub, order), dtype=np.float32)


def from_slice_batch(batch: np.ndarray, out: np.ndarray, axis: int, k0: int, k1: int) -> None:
    """Write a (rows, cols, n) batch back into ``out`` slices [k0, k1) along ``axis``."""
    if axis == 0:
        out[k0:k1] = np.transpose(batch, (2, 0, 1))
    else:
        out[:, k0:k1] = np.transpose(batch, (0, 2, 1))


def sino_batch(projections: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Sinograms of detector ``rows`` as (angles, cols, n) float32 (zeros for row -1)."""
    na, _, nc = projections.shape
    out = np.zeros((na, nc, len(rows)), np.float32)
    valid = np.nonzero(rows >= 0)[0]
    if valid.size:
        out[:, :, valid] = np.transpose(projections[:, rows[valid], :], (0, 2, 1))
    return out


def _run(engine: str, name: str, n_threads: int, *args: Any) -> np.ndarray:
    """Kernel ``name`` of ``engine`` (``"cpu"`` or ``"cuda"``: one GPU thread per element of
    ``n_threads``) on ``args``; returns the last argument, the output."""
    if engine == "cuda":
        return _cuda_kernels.run(getattr(_cuda_kernels, name), n_threads, *args)
    with KERNEL_LOCK:
        getattr(_kernels, name)(*args)
    return args[-1]


def slice_forward(plan: SlicePlan, batch: np.ndarray, engine: str = "cpu") -> np.ndarray:
    na = plan.rays.shape[0]
    out = np.zeros((na, plan.n_det, batch.shape[2]), np.float32)
    return _run(engine, "slice_fp", out.size, batch, plan.rays, plan.centres, plan.us,
                plan.step, out)


def slice_adjoint(plan: SlicePlan, sino: np.ndarray, engine: str = "cpu") -> np.ndarray:
    out = np.zeros(plan.slice_shape + (sino.shape[2],), np.float32)
    return _run(engine, "slice_bp_adjoint", out.size, np.ascontiguousarray(sino, np.float32),
                plan.rays, plan.centres, plan.us, plan.step, out)


def slice_interp(plan: SlicePlan, sino: np.ndarray, engine: str = "cpu") -> np.ndarray:
    out = np.zeros(plan.slice_shape + (sino.shape[2],), np.float32)
    return _run(engine, "slice_bp_interp", out.size, np.ascontiguousarray(sino, np.float32),
                plan.centres, plan.us, out)


# --------------------------------------------------------------------------- volume engine


def volume_forward(plan: VolumePlan, volume: np.ndarray, det_shape: tuple[int, int],
                   engine: str = "cpu") -> np.ndarray:
    out = np.zeros((plan.vecs.shape[0],) + tuple(det_shape), np.float32)
    vol = np.ascontiguousarray(volume, np.float32)
    if engine == "cuda":
        return _run(engine, "vol_fp", out.size, vol.ravel(), *plan.shape, plan.vecs, plan.cone,
                    plan.step, out)
    return _run(engine, "vol_fp", out.size, vol, plan.vecs, plan.cone, plan.step, out)


def adjoint_chunks(shape: Sequence[int], n_angles: int, budget: int | str | None = None) -> int:
    """How many per-thread accumulation buffers the scatter transpose may use."""
    import numba

    vol_bytes = 4 * math.prod(shape)
    fit = int(memory_budget("numpy", budget) // max(vol_bytes, 1)) - 1
    return max(1, min(numba.get_num_threads(), n_angles, fit))


def volume_adjoint(plan: VolumePlan, projections: np.ndarray, engine: str = "cpu") -> np.ndarray:
    nz, ny, nx = plan.shape
    proj = np.ascontiguousarray(projections, np.float32)
    if engine == "cuda":  # one thread per ray, atomic adds
        flat = np.zeros(nz * ny * nx, np.float32)
        return _run(engine, "vol_bp_adjoint", proj.size, proj, plan.vecs, plan.cone, plan.step,
                    nz, ny, nx, flat).reshape(plan.shape)
    n_chunks = adjoint_chunks(plan.shape, plan.vecs.shape[0])
    buffers = np.empty((n_chunks, nz * ny * nx), np.float32)
    with KERNEL_LOCK:
        _kernels.vol_bp_adjoint(proj, plan.vecs, plan.cone, plan.step, buffers, nz, ny, nx)
    out = buffers[0]
    for k in range(1, n_chunks):
        out += buffers[k]
    return out.reshape(plan.shape)


def interp_matrices(geometry: Geometry, voxel_size: float,
                    offset: Sequence[float] = (0.0, 0.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
    """Per-angle 3x4 matrices mapping voxel coordinates to detector pixel indices for
    :func:`._kernels.vol_bp_interp`, and the FDK reference ``h0`` of the rotation centre."""
    vec = geometry.vectors()
    off_xyz = np.asarray(offset, float)[::-1]
    rows, cols = geometry.det_shape
    rc, cc = 0.5 * (rows - 1), 0.5 * (cols - 1)
    na = vec.shape[0]
    mats = np.zeros((na, 3, 4))
    href = np.ones(na)
    for a in range(na):
        first, centre, u, v = vec[a, 0:3], vec[a, 3:6], vec[a, 6:9], vec[a, 9:12]
        if geometry.is_cone:
            inv = np.linalg.inv(np.column_stack([centre - first, u, v]))
            origin = first
        else:
            inv = np.linalg.inv(np.column_stack([first, u, v]))
            origin = centre
        m = np.zeros((3, 4))
        m[:, :3] = inv * voxel_size
        m[:, 3] = inv @ (off_xyz - origin)
        if not geometry.is_cone:
            m[0] = (0.0, 0.0, 0.0, 1.0)
        else:
            href[a] = (inv @ (-origin))[0]
        m[1] += cc * m[0]
        m[2] += rc * m[0]
        mats[a] = m
    return mats, href


def volume_interp(geometry: Geometry, projections: np.ndarray, volume_shape: Sequence[int],
                  voxel_size: float, offset: Sequence[float] = (0.0, 0.0, 0.0),
                  progress: ProgressCallback | None = None, chunk: int = 16,
                  engine: str = "cpu") -> np.ndarray:
    """Voxel-driven (interpolating) backprojection; FDK distance weights for cone beams."""
    mats, href = interp_matrices(geometry, voxel_size, offset)
    out = np.zeros(tuple(int(s) for s in volume_shape), np.float32)
    proj = np.ascontiguousarray(projections, np.float32)
    na = proj.shape[0]
    axial = bool(np.all(np.abs(mats[:, 0:2, 2]) < 1e-12 * np.abs(mats).max()))
    if engine == "cuda":  # everything stays on the device between the angle chunks
        proj, mats, href, out = (_cuda_kernels.to_device(a) for a in (proj, mats, href, out))
    for a0, a1 in batches(na, chunk):
        if engine == "cuda":
            _cuda_kernels.launch(_cuda_kernels.vol_bp_interp, out.size, proj[a0:a1], mats[a0:a1],
                                 geometry.is_cone, href[a0:a1], out)
        elif axial:  # circular CT about z: columns and weights fixed along z
            with KERNEL_LOCK:
                _kernels.vol_bp_interp_axial(proj[a0:a1], mats[a0:a1], href[a0:a1], out)
        else:
            with KERNEL_LOCK:
                _kernels.vol_bp_interp(proj[a0:a1], mats[a0:a1], geometry.is_cone, href[a0:a1],
                                       out)
        report(progress, a1, na)
    return _cuda_kernels.to_host(out) if engine == "cuda" else out


# =========================================================================== public API


def _check_input_volume(volume: Any) -> np.ndarray:
    arr = np.asarray(volume)
    if arr.ndim != 3:
        raise ValueError(f"volume must be a 3D array (z, y, x), got {arr.ndim} dimensions")
    if not np.all(np.isfinite(arr)):
        raise ValueError("volume contains NaN or inf values; replace them before projecting")
    return arr.astype(np.float32, copy=False)


def forward_project(volume: Any, geometry: Geometry, voxel_size: float = 1.0,
                    backend: str = "auto", *, offset: Sequence[float] = (0.0, 0.0, 0.0),
                    progress: ProgressCallback | None = None) -> np.ndarray:
    """Line integrals of ``volume`` for every detector pixel of ``geometry``.

    Parameters
    ----------
    volume
        (z, y, x) attenuation per unit length (1 / ``geometry.unit``).
    geometry
        The acquisition geometry (:class:`Geometry`).
    voxel_size
        Isotropic voxel size in ``geometry.unit``.
    backend
        ``"auto"``, ``"numpy"`` or ``"cupy"`` (the GPU engine; see :func:`select_engine`).
    offset
        (z, y, x) position of the volume centre relative to the rotation centre, in
        ``geometry.unit``.
    progress
        ``progress(done, total)`` callback; raise :class:`~..progress.Cancelled` to stop.

    Returns
    -------
    (n_angles, rows, cols) float32 line integrals (dimensionless).
    """
    if not isinstance(geometry, Geometry):
        raise ValueError("geometry must be a napari_corrtomo.core.recon.Geometry")
    vol = _check_input_volume(volume)
    shape, vs, off = check_volume(vol.shape, voxel_size, offset)
    engine = select_engine(backend)
    if engine == "astra":
        return _astra.forward_project(vol, geometry, vs, off)
    plan = slice_plan(geometry, shape, vs, off)
    if plan is None:
        vplan = volume_plan(geometry, shape, vs, off)
        out = volume_forward(vplan, vol, geometry.det_shape, engine)
        report(progress, 1, 1)
        return out
    out = np.zeros((geometry.n_angles,) + geometry.det_shape, np.float32)
    n = shape[plan.axis]
    parts = batches(n, batch_size(plan, geometry.n_angles))
    for i, (k0, k1) in enumerate(parts):
        rows = plan.rows[k0:k1]
        sino = slice_forward(plan, to_slice_batch(vol, plan.axis, k0, k1), engine)
        valid = np.nonzero(rows >= 0)[0]
        out[:, rows[valid], :] = np.transpose(sino[:, :, valid], (0, 2, 1))
        report(progress, i + 1, len(parts))
    return out


def backproject(projections: Any, geometry: Geometry, volume_shape: Sequence[int],
                voxel_size: float = 1.0, backend: str = "auto", *,
                offset: Sequence[float] = (0.0, 0.0, 0.0),
                progress: ProgressCallback | None = None) -> np.ndarray:
    """The exact transpose of :func:`forward_project` (unfiltered), on the CPU or the numba
    CUDA engine (``backend`` as there; ASTRA's backprojector is not this transpose, so the
    ``"astra"`` engine runs this on the CPU).

    Returns a (z, y, x) float32 volume; ``<forward_project(x), y> == <x, backproject(y)>``.
    """
    geometry.check_projections(projections)
    proj = np.asarray(projections, np.float32)
    shape, vs, off = check_volume(volume_shape, voxel_size, offset)
    engine = "cuda" if select_engine(backend) == "cuda" else "cpu"
    plan = slice_plan(geometry, shape, vs, off)
    if plan is None:
        out = volume_adjoint(volume_plan(geometry, shape, vs, off), proj, engine)
        report(progress, 1, 1)
        return out
    out = np.zeros(shape, np.float32)
    n = shape[plan.axis]
    parts = batches(n, batch_size(plan, geometry.n_angles))
    for i, (k0, k1) in enumerate(parts):
        vol = slice_adjoint(plan, sino_batch(proj, plan.rows[k0:k1]), engine)
        from_slice_batch(vol, out, plan.axis, k0, k1)
        report(progress, i + 1, len(parts))
    return out
