"""Forward projection against independent projectors: scikit-image ``radon`` per slice,
ASTRA's 2D CPU projector, and closed-form line integrals of sphere phantoms (cone beam,
laminography); plus the exact-transpose property of the backprojectors."""

import numpy as np
import pytest
from skimage.transform import radon

from napari_corrtomo.core.recon import Geometry, backproject, forward_project
from napari_corrtomo.core.recon import projector as P


def _asym_volume(nz, n):
    vol = np.zeros((nz, n, n), np.float32)
    yy, xx = np.mgrid[:n, :n]
    c = (n - 1) / 2
    for k in range(nz):
        vol[k][(yy - 0.3 * n) ** 2 + (xx - 0.62 * n) ** 2 < (0.12 * n) ** 2] = 1.0 + 0.1 * k
        vol[k, int(0.45 * n):int(0.7 * n), int(0.25 * n):int(0.38 * n)] = 0.5
        vol[k][(yy - c) ** 2 + (xx - c) ** 2 > (0.45 * n) ** 2] = 0.0
    return vol


def _rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def test_parallel_matches_skimage_radon_per_slice():
    n = 63  # odd: scikit-image's centre n // 2 equals ours (n - 1) / 2
    vol = _asym_volume(3, n)
    angles = np.linspace(0, 180, 60, endpoint=False)
    proj = forward_project(vol, Geometry.parallel(angles, (3, n), 2.0), voxel_size=2.0,
                           backend="numpy")
    for k in range(3):
        ref = radon(vol[k], angles, circle=True).T * 2.0  # radon sums pixels: x voxel size
        assert _rel(proj[:, k], ref) < 0.02
    # the handedness is not a coin flip: reversed angles or mirrored detectors disagree
    assert _rel(proj[:, 1], radon(vol[1], -angles, circle=True).T * 2.0) > 0.5
    assert _rel(proj[:, 1, ::-1], radon(vol[1], angles, circle=True).T * 2.0) > 0.5


def test_parallel_matches_astra_2d_linear_projector():
    import astra

    n = 40
    vol = _asym_volume(2, n)
    angles = np.linspace(0, 180, 45, endpoint=False)
    proj = forward_project(vol, Geometry.parallel(angles, (2, n)), backend="numpy")
    vg = astra.create_vol_geom(n, n)
    pg = astra.create_proj_geom("parallel", 1.0, n, np.deg2rad(angles))
    pid = astra.create_projector("linear", pg, vg)
    try:
        sid, sino = astra.create_sino(vol[0], pid)
        astra.data2d.delete(sid)
    finally:
        astra.projector.delete(pid)
    np.testing.assert_allclose(proj[:, 0], sino, atol=1e-4 * sino.max())


def test_zero_degree_projections_are_plain_sums():
    vol = np.random.default_rng(0).random((6, 8, 10)).astype(np.float32)
    p = forward_project(vol, Geometry.parallel([0.0], (6, 10), 0.5), 0.5, backend="numpy")
    np.testing.assert_allclose(p[0], 0.5 * vol.sum(axis=1), rtol=1e-5)  # rows z, cols x
    t = forward_project(vol, Geometry.tilt_series([0.0], (8, 10), 0.5), 0.5, backend="numpy")
    np.testing.assert_allclose(t[0], 0.5 * vol.sum(axis=0), rtol=1e-5)  # rows y, cols x


def test_slice_engine_equals_volume_engine():
    vol = _asym_volume(4, 32)
    g = Geometry.parallel(np.linspace(0, 180, 30, endpoint=False), (4, 32), shifts=(0, 0.7))
    plan = P.slice_plan(g, vol.shape, 1.0)
    assert plan is not None
    fast = forward_project(vol, g, backend="numpy")
    general = P.volume_forward(P.volume_plan(g, vol.shape, 1.0), vol, g.det_shape)
    np.testing.assert_allclose(fast, general, atol=1e-5 * fast.max())
    # a grid that does not line up with the detector rows uses the volume engine
    assert P.slice_plan(g, vol.shape, 1.0, offset=(0.5, 0, 0)) is None


@pytest.mark.parametrize("name", ["cone_sample", "lamino_sample", "tilt_sample"])
def test_matches_closed_form_sphere_line_integrals(name, request):
    """Brute-force ray sums of the analytic phantom (independent of our projectors) agree
    with the projection of the voxelised phantom to a few percent once the voxel
    discretisation of the sphere edges is smoothed out (1-pixel Gaussian on both); half a
    pixel of detector offset or a mirrored phantom is several times worse."""
    from scipy import ndimage as ndi

    s = request.getfixturevalue(name)

    def err(geometry, phantom):
        proj = forward_project(phantom, geometry, s.voxel_size, backend="numpy")
        return _rel(ndi.gaussian_filter(proj, (0, 1, 1)),
                    ndi.gaussian_filter(s.projections, (0, 1, 1)))

    good = err(s.geometry, s.phantom)
    assert good < 0.045
    assert err(s.geometry.shifted(col=0.5), s.phantom) > 2 * good
    assert err(s.geometry.shifted(row=0.5), s.phantom) > 2 * good
    assert err(s.geometry, s.phantom[:, :, ::-1]) > 0.3
    assert err(s.geometry, s.phantom[:, ::-1, :]) > 0.3


@pytest.mark.parametrize("geom, shape", [
    (Geometry.parallel(np.linspace(0, 180, 17, endpoint=False), (3, 12), shifts=(0, 0.3)),
     (3, 12, 12)),
    (Geometry.tilt_series(np.linspace(-60, 60, 13), (5, 12)), (9, 5, 12)),
    (Geometry.cone(np.linspace(0, 360, 13, endpoint=False), (10, 14), 40.0, 20.0, 1.5),
     (8, 11, 12)),
    (Geometry.laminography(np.linspace(0, 360, 11, endpoint=False), (10, 14), 35.0),
     (5, 12, 12)),
    (Geometry.laminography(np.linspace(0, 360, 11, endpoint=False), (10, 14), 20.0, 1.0,
                           30.0, 10.0), (5, 12, 12)),
])
def test_backprojection_is_the_exact_transpose(geom, shape):
    rng = np.random.default_rng(1)
    x = rng.random(shape).astype(np.float32)
    y = rng.random((geom.n_angles,) + geom.det_shape).astype(np.float32)
    ax = forward_project(x, geom, 0.8, backend="numpy").astype(np.float64)
    aty = backproject(y, geom, shape, 0.8).astype(np.float64)
    lhs, rhs = float(np.vdot(ax, y)), float(np.vdot(x, aty))
    assert abs(lhs - rhs) <= 1e-5 * abs(lhs)


@pytest.mark.parametrize("g", [
    Geometry.cone(np.linspace(0, 360, 8, endpoint=False), (16, 40), 100.0, 100.0, 2.0),
    Geometry.parallel(np.linspace(0, 180, 8, endpoint=False), (1, 60)),
], ids=["cone", "parallel"])
def test_offset_moves_the_volume(g):
    vol = _asym_volume(1, 24)
    big = np.zeros((1, 24, 48), np.float32)
    big[:, :, 24:] = vol
    a = forward_project(big, g, backend="numpy")
    b = forward_project(vol, g, backend="numpy", offset=(0.0, 0.0, 12.0))
    np.testing.assert_allclose(a, b, atol=1e-4 * a.max())


def test_bad_volumes():
    g = Geometry.parallel([0, 90], (2, 4))
    with pytest.raises(ValueError, match="3D"):
        forward_project(np.zeros((4, 4)), g, backend="numpy")
    bad = np.zeros((2, 4, 4))
    bad[0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or inf"):
        forward_project(bad, g, backend="numpy")
    with pytest.raises(ValueError, match="voxel_size"):
        forward_project(np.zeros((2, 4, 4)), g, voxel_size=-1, backend="numpy")
    with pytest.raises(ValueError, match="backend"):
        forward_project(np.zeros((2, 4, 4)), g, backend="opencl")


def test_cupy_backend_without_gpu_is_a_clear_error(monkeypatch):
    from napari_corrtomo.core.recon import _astra

    monkeypatch.setattr(_astra, "cuda_available", lambda: False)
    with pytest.raises(ValueError, match="GPU"):
        P.select_engine("cupy")
    assert P.select_engine("auto") in ("cpu",)  # tests force numpy via CORRTOMO_BACKEND
    monkeypatch.setenv("CORRTOMO_BACKEND", "auto")
    assert P.select_engine("auto") == "cpu"  # no GPU -> CPU path, never a crash


def test_cupy_without_a_gpu_for_numba_never_crashes(strict_cupy, monkeypatch, parallel_sample):
    """CuPy installed (the stand-in says it sees a device) but neither numba nor ASTRA can
    use a GPU: reconstruction's GPU engine is unavailable, 'cupy' is a clear error and
    'auto' runs the CPU engines."""
    from napari_corrtomo.core.recon import _astra, _cuda_kernels

    monkeypatch.setattr(_astra, "cuda_available", lambda: False)
    monkeypatch.setattr(_cuda_kernels, "available", lambda: False)
    monkeypatch.setenv("CORRTOMO_BACKEND", "auto")
    with pytest.raises(ValueError, match="GPU"):
        P.select_engine("cupy")
    assert P.select_engine("auto") == "cpu"
    s = parallel_sample
    auto = forward_project(s.phantom, s.geometry, s.voxel_size)
    cpu = forward_project(s.phantom, s.geometry, s.voxel_size, backend="numpy")
    np.testing.assert_array_equal(auto, cpu)
