"""GPU projectors (numba CUDA): the kernels of :mod:`._kernels` without ASTRA's CUDA libraries.

Every kernel runs one thread per output element and compiles the same per-ray and
per-sample steps as the CPU kernels (:func:`._kernels.device_helpers`, here as CUDA
device functions), so both engines run the same arithmetic:

- ``slice_fp``, ``slice_bp_adjoint``, ``slice_bp_interp``: one thread per output value
  of a slice batch (the slice index fastest, so neighbouring threads read neighbouring
  memory); the CPU's per-slice vectors become views of length one;
- ``vol_fp``: one thread per detector pixel; ``vol_bp_interp``: one thread per voxel
  (the GPU counterpart of both ``vol_bp_interp`` and ``vol_bp_interp_axial``, whose
  per-column reuse only pays on a CPU);
- ``vol_bp_adjoint``: one thread per ray, scattering with ``cuda.atomic.add`` (float
  atomics make the sum order, and so the last bits, vary from run to run).

Arrays may be NumPy arrays, numba device arrays or CuPy arrays (passed through
``__cuda_array_interface__``). Under numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``,
set before numba.cuda is first imported) the same kernels run on the CPU, one Python
thread per GPU thread: that is how CI checks them without a GPU.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numba import cuda

from ..backend import cupy_available, is_cupy_array
from . import _kernels

#: Threads per block of every launch (a multiple of the warp size).
THREADS = 128


@cuda.jit(device=True)
def _atomic_add(flat, k, v):  # pragma: no cover - compiled
    cuda.atomic.add(flat, k, v)


_GPU = _kernels.device_helpers(cuda.jit(device=True), _atomic_add)
_slice_frame = _GPU.slice_frame
_slice_ray = _GPU.slice_ray
_adjoint_pixel = _GPU.adjoint_pixel
_pixel_bins = _GPU.pixel_bins
_interp_bins = _GPU.interp_bins
_ray_sum = _GPU.ray_sum
_ray_spread = _GPU.ray_spread
_detector_value = _GPU.detector_value


@functools.cache
def available() -> bool:
    """True when numba sees a usable CUDA device (or its simulator is on)."""
    try:
        return bool(cuda.is_available())
    except Exception:  # driver libraries present but broken ...
        return False


def launch(kernel: Callable, n_threads: int, *args: Any) -> None:
    """Run ``kernel[blocks, THREADS](*args)`` with at least ``n_threads`` threads."""
    if n_threads > 0:
        kernel[math.ceil(n_threads / THREADS), THREADS](*args)


# =========================================================================== slices


@cuda.jit(device=True)
def _unravel(k, n1, n2):  # pragma: no cover - compiled
    """(i0, i1, i2) of flat thread index k = (i0 * n1 + i1) * n2 + i2 (i2 fastest)."""
    return k // (n1 * n2), (k // n2) % n1, k % n2


@cuda.jit
def slice_fp(vol, rays, centres, us, step, out):  # pragma: no cover - compiled
    """:func:`._kernels.slice_fp`; one thread per (angle, bin, slice) of ``out``."""
    ny, nx, ns, na, nd, cy, cx, cd = _slice_frame(vol, out)
    k = cuda.grid(1)
    if k >= na * nd * ns:
        return
    a, c, s = _unravel(k, nd, ns)
    acc = cuda.local.array(1, np.float32)
    acc[0] = 0.0
    _slice_ray(vol[:, :, s:s + 1], rays, centres, us, step, a, c, cy, cx, cd, acc)
    out[a, c, s] = acc[0]


@cuda.jit(device=True)
def _slice_bp(sino, rays, centres, us, step, vol, adjoint):  # pragma: no cover - compiled
    """One thread's pixel (row, col, slice) of the slice-engine backprojections: the
    transpose of :func:`slice_fp` (``adjoint``) or the interpolating one."""
    ny, nx, ns, na, nd, cy, cx, cd = _slice_frame(vol, sino)
    k = cuda.grid(1)
    if k >= ny * nx * ns:
        return
    i, j, s = _unravel(k, nx, ns)
    acc = cuda.local.array(1, np.float32)
    acc[0] = 0.0
    col = sino[:, :, s:s + 1]
    for a in range(na):
        if adjoint:
            _adjoint_pixel(col, rays, centres, us, step, a, i, j, cy, cx, cd, acc)
        else:
            base, dc = _pixel_bins(centres, us, a, i, cy, cd)
            _interp_bins(acc, col[a], base + (j - cx) * dc)
    vol[i, j, s] = acc[0]


@cuda.jit
def slice_bp_adjoint(sino, rays, centres, us, step, vol):  # pragma: no cover - compiled
    """:func:`._kernels.slice_bp_adjoint` (a gather); one thread per (row, col, slice)."""
    _slice_bp(sino, rays, centres, us, step, vol, True)


@cuda.jit
def slice_bp_interp(sino, centres, us, vol):  # pragma: no cover - compiled
    """:func:`._kernels.slice_bp_interp`; one thread per (row, col, slice)."""
    _slice_bp(sino, centres, centres, us, 1.0, vol, False)  # no rays: centres stand in


# =========================================================================== volumes


@cuda.jit
def vol_fp(flat, nz, ny, nx, vecs, cone, step, out):  # pragma: no cover - compiled
    """:func:`._kernels.vol_fp` on the flat (nz*ny*nx,) volume; one thread per detector
    pixel of ``out`` (na, nr, nc)."""
    na, nr, nc = out.shape
    k = cuda.grid(1)
    if k >= na * nr * nc:
        return
    a, r, c = _unravel(k, nr, nc)
    out[a, r, c] = _ray_sum(flat, vecs[a], cone, r, c, 0.5 * (nr - 1), 0.5 * (nc - 1),
                            (nx, ny, nz), (1, nx, nx * ny), step)


@cuda.jit
def vol_bp_adjoint(proj, vecs, cone, step, nz, ny, nx, flat):  # pragma: no cover - compiled
    """:func:`._kernels.vol_bp_adjoint`: one thread per ray scatters into the flat
    (nz*ny*nx,) float32 volume with atomic adds (``flat`` is added to, not cleared)."""
    na, nr, nc = proj.shape
    k = cuda.grid(1)
    if k >= na * nr * nc:
        return
    a, r, c = _unravel(k, nr, nc)
    value = proj[a, r, c]
    if value != 0.0:
        _ray_spread(flat, value, vecs[a], cone, r, c, 0.5 * (nr - 1), 0.5 * (nc - 1),
                    (nx, ny, nz), (1, nx, nx * ny), step)


@cuda.jit
def vol_bp_interp(proj, mats, cone, h0_ref, vol):  # pragma: no cover - compiled
    """:func:`._kernels.vol_bp_interp` (and its axial variant); one thread per voxel, vol
    (nz, ny, nx) is added to."""
    nz, ny, nx = vol.shape
    k = cuda.grid(1)
    if k >= nz * ny * nx:
        return
    kz, jy, ix = _unravel(k, ny, nx)
    x = ix - 0.5 * (nx - 1)
    y = jy - 0.5 * (ny - 1)
    z = kz - 0.5 * (nz - 1)
    acc = 0.0
    for a in range(proj.shape[0]):
        m = mats[a]
        acc += _detector_value(proj, a, m[0, 0] * x + m[0, 1] * y + m[0, 2] * z + m[0, 3],
                               m[1, 0] * x + m[1, 1] * y + m[1, 2] * z + m[1, 3],
                               m[2, 0] * x + m[2, 1] * y + m[2, 2] * z + m[2, 3], cone,
                               h0_ref[a])
    vol[kz, jy, ix] += acc


# =========================================================================== host <-> device


def to_device(arr: np.ndarray) -> Any:
    """A device copy of ``arr``: a CuPy array when CuPy sees a GPU, else a numba device
    array (also under the simulator)."""
    if cupy_available():
        import cupy

        return cupy.asarray(arr)
    return cuda.to_device(np.ascontiguousarray(arr))


def to_host(arr: Any) -> np.ndarray:
    """A NumPy copy of a device array from :func:`to_device`."""
    return arr.get() if is_cupy_array(arr) else arr.copy_to_host()


def run(kernel: Callable, n_threads: int, *args: Any) -> np.ndarray:
    """Launch ``kernel`` on ``n_threads`` threads with its NumPy arguments copied to the
    device; returns the last argument (the output) copied back to the host."""
    dev = [to_device(a) if isinstance(a, np.ndarray) else a for a in args]
    launch(kernel, n_threads, *dev)
    return to_host(dev[-1])
