"""CuPy code paths give the CPU path's numbers: on a CUDA device where there is one
(``make gpu-check``), else against the strict CuPy stand-in (tests/strict_cupy.py), so
none of them is skipped for lack of a GPU."""

import numpy as np
import pytest
from scipy import ndimage as ndi
from sklearn.ensemble import RandomForestClassifier

from napari_corrtomo.core import backend
from napari_corrtomo.core.classify.features import FeatureSpec, compute_features
from napari_corrtomo.core.classify.forest import FlatForest
from napari_corrtomo.core.quantify.thickness import local_thickness
from napari_corrtomo.core.quantify.transport import tortuosity_factor


def test_stand_in_refuses_implicit_host_conversion(strict_cupy):
    _module, cupy = strict_cupy
    assert backend.cupy_available() and backend.resolve_backend("cupy") == "cupy"
    x = cupy.asarray(np.arange(6.0))
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(x)
    with pytest.raises(TypeError, match="host array"):
        x + np.ones(6)  # CuPy refuses mixing host and device arrays
    np.testing.assert_array_equal(cupy.asnumpy(x * 2), np.arange(6.0) * 2)
    np.testing.assert_array_equal(backend.to_host(backend.asarray(x, "cupy")), np.arange(6.0))


def test_stand_in_without_a_device_means_the_cpu_path(strict_cupy, monkeypatch):
    module, _cupy = strict_cupy
    module.install(monkeypatch, devices=0)
    assert not backend.cupy_available()
    assert backend.resolve_backend("auto", "forest.predict") == "numpy"


def test_forest_gpu_prediction_matches_the_cpu(cupy_device):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 5)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] ** 2 > 0.5).astype(int) + (X[:, 2] > 1)
    forest = FlatForest.from_sklearn(RandomForestClassifier(12, max_depth=8, random_state=0).fit(X, y))
    cpu = forest.predict_proba(X.T.copy(), backend="numpy")
    gpu = forest.predict_proba(X.T.copy(), backend="cupy")
    assert backend.is_cupy_array(gpu)  # stays on the device
    np.testing.assert_allclose(backend.to_host(gpu), cpu, atol=1e-6)


def test_local_thickness_gpu_distance_transform_matches_the_cpu(cupy_device):
    mask = np.zeros((24, 24, 24), bool)
    mask[4:20, 6:14, 5:19] = True
    mask[12, 14, 12] = True
    mask = ndi.binary_dilation(mask, iterations=2)
    for spacing in ((1.0, 1.0, 1.0), (1.5, 1.0, 1.0)):
        cpu = local_thickness(mask, spacing, backend="numpy")
        gpu = local_thickness(mask, spacing, backend="cupy")
        np.testing.assert_allclose(gpu, cpu, rtol=1e-5, atol=1e-5)


def test_filter_bank_gpu_path_matches_the_cpu(cupy_device):
    rng = np.random.default_rng(1)
    vol = ndi.gaussian_filter(rng.normal(size=(20, 22, 24)), 1.5).astype(np.float32)
    spec = FeatureSpec.ilastik_default(tailored=True, channel_differences=True)
    two = np.stack([vol, vol[::-1].copy()])
    cpu = compute_features(two, spec, (2.0, 1.0, 1.0), spatial_ndim=3, backend="numpy")
    gpu = backend.to_host(compute_features(two, spec, (2.0, 1.0, 1.0), spatial_ndim=3,
                                           backend="cupy"))
    for k in range(len(cpu)):
        scale = float(np.abs(cpu[k]).max()) or 1.0
        np.testing.assert_allclose(gpu[k], cpu[k], atol=1e-4 * scale, err_msg=str(k))


def test_tortuosity_gpu_solve_matches_the_cpu(cupy_device):
    """The multigrid-preconditioned CG on the device (cupyx.scipy.sparse products)."""
    rng = np.random.default_rng(5)
    mask = ndi.gaussian_filter(rng.normal(size=(24, 24, 24)), 2.0) > -0.2
    for axis in (0, 2):
        cpu = tortuosity_factor(mask, (1.0, 1.0, 2.0), axis, backend="numpy", tol=1e-8)
        gpu = tortuosity_factor(mask, (1.0, 1.0, 2.0), axis, backend="cupy", tol=1e-8)
        assert np.isfinite(cpu.tau) and cpu.tau > 1.0
        assert gpu.tau == pytest.approx(cpu.tau, rel=1e-5)
