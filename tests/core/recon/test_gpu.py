"""ASTRA CUDA engine against the CPU engines (runs only where ASTRA sees a GPU).

GPU: not measured in the session that wrote these tests (no GPU lent); they are the
check to run on a GPU machine: ``pytest -m gpu tests/core/recon``.
"""

import numpy as np
import pytest

from napari_corrtomo.core.recon import forward_project, reconstruct
from napari_corrtomo.core.recon._astra import cuda_available

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU usable by ASTRA")]

SAMPLES = ["parallel_sample", "cone_sample", "lamino_sample", "tilt_sample"]


def _rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.parametrize("name", SAMPLES)
def test_gpu_forward_projection_matches_cpu(request, name):
    s = request.getfixturevalue(name)
    cpu = forward_project(s.phantom, s.geometry, s.voxel_size, backend="numpy")
    gpu = forward_project(s.phantom, s.geometry, s.voxel_size, backend="cupy")
    assert gpu.shape == cpu.shape and _rel(gpu, cpu) < 0.03


@pytest.mark.parametrize("name", SAMPLES)
@pytest.mark.parametrize("method", ["analytic", "sirt"])
def test_gpu_reconstruction_matches_cpu(request, name, method):
    s = request.getfixturevalue(name)
    m = ("fdk" if s.geometry.is_cone else "fbp") if method == "analytic" else "sirt"
    kw = dict(iterations=20) if m == "sirt" else {}
    cpu = reconstruct(s.projections, s.geometry, s.volume_shape, s.voxel_size, m,
                      backend="numpy", **kw)
    gpu = reconstruct(s.projections, s.geometry, s.volume_shape, s.voxel_size, m,
                      backend="cupy", **kw)
    assert _rel(gpu, cpu) < 0.1
    assert _rel(gpu, s.phantom) < _rel(cpu, s.phantom) + 0.05
