"""The numba CUDA engine against the CPU engine, on a GPU or on numba's CUDA simulator.

The simulator must be switched on before numba.cuda is first imported, so the
comparisons run in one subprocess (this file run as a script, with
``NUMBA_ENABLE_CUDASIM=1`` when no GPU is usable) that prints every result as JSON; the
tests read it. Inputs are tiny (the simulator runs each GPU thread in Python). On a
machine with a GPU (``make gpu-check``) the same kernels run on the device.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from numba import cuda
from numba import types as nt

from napari_corrtomo.core.recon import _astra, _cuda_kernels, backproject, forward_project, reconstruct
from napari_corrtomo.core.recon import projector as P
from napari_corrtomo.core.synthetic import projections

#: (kind, volume_shape, det_shape, n_angles): tiny parallel, cone, laminography and
#: tilt-series scans.
SCANS = {
    "parallel": ((6, 12, 12), (6, 12), 8),
    "cone": ((10, 10, 10), (12, 12), 8),
    "laminography": ((6, 10, 10), (10, 12), 8),
    "tilt_series": ((10, 6, 10), (6, 10), 8),
}
#: The kernels each scan goes through (slice engine for parallel and tilt series, the
#: volume engine for all of them).
SLICE = ("slice_forward", "slice_adjoint", "slice_interp")
VOLUME = ("volume_forward", "volume_adjoint", "volume_interp")
KERNELS = [(kind, k) for kind in SCANS
           for k in (SLICE if kind in ("parallel", "tilt_series") else ()) + VOLUME]
RECONS = [("parallel", "fbp"), ("cone", "fdk"), ("laminography", "sirt"), ("tilt_series", "sirt")]


def _sample(kind):
    shape, det, n = SCANS[kind]
    return projections(kind, seed=1, volume_shape=shape, det_shape=det, n_angles=n, photons=None)


def _kernel(kind: str, name: str, engine: str) -> np.ndarray:
    """One projector kernel of ``engine`` on the tiny ``kind`` scan."""
    s = _sample(kind)
    g = s.geometry
    if name in SLICE:
        plan = P.slice_plan(g, s.volume_shape, s.voxel_size)
        if name == "slice_forward":
            return getattr(P, name)(plan, P.to_slice_batch(s.phantom, plan.axis, 0,
                                                           s.volume_shape[plan.axis]), engine)
        return getattr(P, name)(plan, P.sino_batch(s.projections, plan.rows), engine)
    if name == "volume_interp":
        return P.volume_interp(g, s.projections, s.volume_shape, s.voxel_size, chunk=5,
                               engine=engine)
    plan = P.volume_plan(g, s.volume_shape, s.voxel_size)
    if name == "volume_forward":
        return P.volume_forward(plan, s.phantom, g.det_shape, engine)
    return P.volume_adjoint(plan, s.projections, engine)


def _recon(kind: str, method: str, backend: str) -> np.ndarray:
    s = _sample(kind)
    return reconstruct(s.projections, s.geometry, s.volume_shape, s.voxel_size, method,
                       iterations=3, min_value=0.0 if method == "sirt" else None,
                       backend=backend)


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def compare() -> dict:
    """Every CUDA-engine result against the CPU engine: max |difference| / max |CPU|."""
    out = {"engine_cupy": P.select_engine("cupy"), "engine_auto": P.select_engine("auto")}
    for kind, name in KERNELS:
        cuda = _kernel(kind, name, "cuda")
        cpu = _kernel(kind, name, "cpu")
        out[f"{kind}/{name}"] = [_rel(cuda, cpu), float(np.abs(cpu).max())]
    for kind, method in RECONS:
        cuda = _recon(kind, method, "cupy")
        cpu = _recon(kind, method, "numpy")
        out[f"{kind}/{method}"] = [_rel(cuda, cpu), float(np.abs(cpu).max())]
    s = _sample("cone")
    y = forward_project(s.phantom, s.geometry, s.voxel_size, backend="cupy")
    x = backproject(s.projections, s.geometry, s.volume_shape, s.voxel_size, backend="cupy")
    # adjointness through the public GPU path: <A x, y> == <x, A^T y>
    ay_y = float(np.vdot(y.astype(np.float64), s.projections.astype(np.float64)))
    x_aty = float(np.vdot(s.phantom.astype(np.float64), x.astype(np.float64)))
    out["cone/adjoint"] = [abs(ay_y - x_aty) / abs(ay_y), 1.0]
    return out


@pytest.fixture(scope="module")
def simulated():
    env = dict(os.environ, CORRTOMO_BACKEND="auto")
    if not _cuda_kernels.available():  # no GPU here: the simulator runs the CUDA kernels
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    run = subprocess.run([sys.executable, __file__], env=env, capture_output=True, text=True,
                         timeout=600, cwd=Path(__file__).parent)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_the_simulator_is_the_gpu_engine_and_auto_stays_on_the_cpu(simulated):
    # no device run has verified "recon.cuda" (VERIFIED_GPU_PATHS), so auto keeps the CPU
    assert simulated["engine_cupy"] == "cuda"
    assert simulated["engine_auto"] == "cpu"


@pytest.mark.parametrize("kind, name", KERNELS)
def test_cuda_kernel_equals_the_cpu_kernel(simulated, kind, name):
    rel, scale = simulated[f"{kind}/{name}"]
    assert scale > 0  # the tiny scan is not empty
    assert rel < 2e-6


@pytest.mark.parametrize("kind, method", RECONS)
def test_reconstruction_through_the_cuda_engine_equals_the_cpu(simulated, kind, method):
    rel, scale = simulated[f"{kind}/{method}"]
    assert scale > 0
    assert rel < 1e-5


def test_public_forward_and_backprojection_on_the_gpu_are_transposes(simulated):
    assert simulated["cone/adjoint"][0] < 1e-5


def _nvvm_available() -> bool:
    try:
        from numba.cuda.cudadrv import nvvm

        return bool(nvvm.is_available())
    except Exception:  # no CUDA toolkit (NVVM) on this machine
        return False


_F32 = nt.float32[:, :, ::1]
_F64 = nt.float64[:, ::1]
#: Each kernel's argument types as the projector passes them.
SIGNATURES = {
    "slice_fp": (_F32, _F64, _F64, _F64, nt.float64, _F32),
    "slice_bp_adjoint": (_F32, _F64, _F64, _F64, nt.float64, _F32),
    "slice_bp_interp": (_F32, _F64, _F64, _F32),
    "vol_fp": (nt.float32[::1], nt.int64, nt.int64, nt.int64, _F64, nt.boolean, nt.float64,
               _F32),
    "vol_bp_adjoint": (_F32, _F64, nt.boolean, nt.float64, nt.int64, nt.int64, nt.int64,
                       nt.float32[::1]),
    "vol_bp_interp": (_F32, nt.float64[:, :, ::1], nt.boolean, nt.float64[::1], _F32),
}


@pytest.mark.skipif(not _nvvm_available(), reason="needs the CUDA toolkit's NVVM (no GPU)")
@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_cuda_kernel_compiles_for_a_real_gpu(name, monkeypatch):
    """The simulator runs kernels as Python and so accepts code numba's CUDA compiler
    rejects (``max`` of two scalars, for one); compile each kernel to PTX for sm_90
    (H100/H200) with NVVM, which needs no device."""
    if not _cuda_kernels.available():  # device functions ask the device for its arch
        monkeypatch.setattr(cuda.dispatcher, "get_current_device",
                            lambda: SimpleNamespace(compute_capability=(9, 0)))
    kernel = getattr(_cuda_kernels, name)
    ptx, _ = cuda.compile_ptx(kernel.py_func, SIGNATURES[name], cc=(9, 0), fastmath=True)
    assert ".target sm_90" in ptx and ".entry" in ptx


if __name__ == "__main__":
    # this file checks the numba CUDA engine; ASTRA's (preferred when ASTRA sees a GPU) is
    # checked by test_gpu.py
    _astra.cuda_available = lambda: False
    print(json.dumps(compare()))
