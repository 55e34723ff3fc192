"""Phantom recovery for every geometry and method, agreement with scikit-image and ASTRA,
iterative convergence, previews, progress/cancel and the bad-input errors of the issue."""

import re

import numpy as np
import pytest

from napari_corrtomo.core._checks import SettingError
from napari_corrtomo.core.progress import Cancelled
from napari_corrtomo.core.recon import (
    Geometry,
    check_grid,
    forward_project,
    method_for,
    reconstruct,
    reconstruct_halves,
    reconstruct_slice,
    short_scan_message,
)


def _rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _recon(s, method, **kw):
    return reconstruct(s.projections, s.geometry, s.volume_shape, s.voxel_size, method,
                       backend="numpy", **kw)


@pytest.mark.parametrize("name, method, iterations, limit", [
    ("parallel_sample", "fbp", 0, 0.15),
    ("parallel_sample", "sirt", 60, 0.16),
    ("tilt_sample", "fbp", 0, 0.15),
    ("tilt_sample", "sirt", 60, 0.15),
    ("cone_sample", "fdk", 0, 0.15),
    ("cone_sample", "sirt", 25, 0.20),
    ("lamino_sample", "fbp", 0, 0.60),
    ("lamino_sample", "sirt", 25, 0.45),
])
def test_phantom_recovery(request, name, method, iterations, limit):
    s = request.getfixturevalue(name)
    vol = _recon(s, method, iterations=max(iterations, 1))
    assert vol.shape == s.volume_shape and vol.dtype == np.float32
    err = _rel(vol, s.phantom)
    assert err < limit
    # the reconstruction is in physical units (1/unit): its mean matches the phantom's
    if s.kind != "laminography":
        assert abs(vol.mean() / s.phantom.mean() - 1) < 0.08
    # handedness: the mirrored phantom fits much worse
    assert _rel(vol, s.phantom[:, :, ::-1]) > err + 0.3


def test_laminography_iterative_fills_the_missing_cone_better(lamino_sample):
    s = lamino_sample
    fbp = _rel(_recon(s, "fbp"), s.phantom)
    sirt = _rel(_recon(s, "sirt", iterations=25), s.phantom)
    assert sirt < fbp


def test_fbp_matches_skimage_iradon():
    from skimage.transform import iradon, radon

    n = 63
    yy, xx = np.mgrid[:n, :n]
    img = ((yy - 20) ** 2 + (xx - 38) ** 2 < 120).astype(np.float32)
    img[30:45, 15:25] = 0.5
    angles = np.linspace(0, 180, 90, endpoint=False)
    sino = radon(img, angles, circle=True)
    ref = iradon(sino, angles, circle=True, filter_name="ramp")
    ours = reconstruct(sino.T[:, None, :].astype(np.float32), Geometry.parallel(angles, (1, n)),
                       (1, n, n), 1.0, "fbp", backend="numpy")[0]
    inside = (yy - 31) ** 2 + (xx - 31) ** 2 < 29**2
    assert _rel(ours[inside], ref[inside]) < 0.05


def test_sirt_matches_astra_cpu_sirt():
    """Same Joseph system matrix, same update: the CPU engine reproduces ASTRA's 2D SIRT."""
    import astra

    n = 40
    yy, xx = np.mgrid[:n, :n]
    img = ((yy - 14) ** 2 + (xx - 25) ** 2 < 50).astype(np.float32)
    img[22:32, 8:16] = 0.6
    angles = np.linspace(0, 180, 36, endpoint=False)
    g = Geometry.parallel(angles, (1, n))
    proj = forward_project(img[None], g, backend="numpy")
    vg = astra.create_vol_geom(n, n)
    pg = astra.create_proj_geom("parallel", 1.0, n, np.deg2rad(angles))
    pid = astra.create_projector("linear", pg, vg)
    sid = astra.data2d.create("-sino", pg, proj[:, 0])
    rid = astra.data2d.create("-vol", vg, 0)
    cfg = astra.astra_dict("SIRT")
    cfg.update(ProjectorId=pid, ProjectionDataId=sid, ReconstructionDataId=rid)
    alg = astra.algorithm.create(cfg)
    try:
        astra.algorithm.run(alg, 30)
        ref = astra.data2d.get(rid)
    finally:
        astra.algorithm.delete(alg)
        astra.data2d.delete([sid, rid])
        astra.projector.delete(pid)
    ours = reconstruct(proj, g, (1, n, n), 1.0, "sirt", 30, backend="numpy")[0]
    np.testing.assert_allclose(ours, ref, atol=2e-3 * ref.max())


def test_cgls_converges_on_consistent_data(parallel_sample):
    """Data from our own projector (no model error): CGLS drives the residual down and
    reaches the phantom; SIRT with min_value=0 stays non-negative."""
    s = parallel_sample
    data = forward_project(s.phantom, s.geometry, s.voxel_size, backend="numpy")
    few = reconstruct(data, s.geometry, s.volume_shape, s.voxel_size, "cgls", 5, backend="numpy")
    many = reconstruct(data, s.geometry, s.volume_shape, s.voxel_size, "cgls", 60,
                       backend="numpy")

    def resid(v):
        return _rel(forward_project(v, s.geometry, s.voxel_size, backend="numpy"), data)

    assert resid(many) < resid(few) < 1.0
    assert _rel(many, s.phantom) < 0.1
    sirt = reconstruct(data, s.geometry, s.volume_shape, s.voxel_size, "sirt", 10, 0.0,
                       backend="numpy")
    assert sirt.min() >= 0.0


def test_slice_preview_equals_the_full_volume_slice(parallel_sample, tilt_sample, cone_sample):
    for s, method in ((parallel_sample, "sirt"), (tilt_sample, "fbp"), (cone_sample, "fdk")):
        full = _recon(s, method, iterations=5)
        axis = 1 if s.kind == "tilt_series" else 0
        k = s.volume_shape[axis] // 2 + 1
        prev = reconstruct_slice(s.projections, s.geometry, k, s.volume_shape, s.voxel_size,
                                 method, 5, backend="numpy")
        ref = full[k] if axis == 0 else full[:, k]
        np.testing.assert_allclose(prev, ref, atol=1e-4 * np.abs(ref).max())


def test_physical_units_scale_the_attenuation(parallel_sample):
    """The same projections measured with twice the pixel size mean half the attenuation."""
    s = parallel_sample
    g2 = Geometry.parallel(s.geometry.angles_deg, s.geometry.det_shape, 2 * s.voxel_size)
    a = _recon(s, "fbp")
    b = reconstruct(s.projections, g2, s.volume_shape, 2 * s.voxel_size, "fbp", backend="numpy")
    np.testing.assert_allclose(b, a / 2, atol=1e-5 * np.abs(a).max())


def test_defaults_and_halves(cone_sample):
    s = cone_sample
    vol = reconstruct(s.projections, s.geometry, method="fdk", backend="numpy")
    assert vol.shape == s.geometry.default_volume_shape()
    even, odd = reconstruct_halves(s.projections, s.geometry, s.volume_shape, s.voxel_size,
                                   "fdk", backend="numpy")
    assert 0.05 < _rel(even, odd) < 0.6  # independent halves of the same object
    assert _rel(0.5 * (even + odd), s.phantom) < 0.2


def test_progress_and_cancel(parallel_sample):
    s = parallel_sample
    seen = []
    _recon(s, "sirt", iterations=4, progress=lambda d, t: seen.append((d, t)))
    assert seen and seen[-1][0] == seen[-1][1]
    assert all(b[0] >= a[0] for a, b in zip(seen, seen[1:], strict=False))

    def stop(done, total):
        if done >= 2:
            raise Cancelled()

    with pytest.raises(Cancelled):
        _recon(s, "sirt", iterations=50, progress=stop)


@pytest.mark.parametrize("mutate, match", [
    (lambda p, g: (p[0], g), "3D"),
    (lambda p, g: (p[:-3], g), "angles"),
    (lambda p, g: (p[:, :, :-1], g), "detector"),
    (lambda p, g: (np.where(np.arange(p.size).reshape(p.shape) == 5, np.nan, p), g), "NaN"),
    (lambda p, g: (np.where(np.arange(p.size).reshape(p.shape) == 7, np.inf, p), g), "inf"),
    (lambda p, g: (p, "not a geometry"), "Geometry"),
])
def test_bad_projections(parallel_sample, mutate, match):
    p, g = mutate(parallel_sample.projections, parallel_sample.geometry)
    with pytest.raises(ValueError, match=match):
        reconstruct(p, g, method="fbp", backend="numpy")


@pytest.mark.parametrize("kwargs, match", [
    (dict(method="fdk"), "does not fit"),
    (dict(method="art"), "unknown method"),
    (dict(method="sirt", iterations=0), "iterations"),
    (dict(method="cgls", min_value=0.0), "SIRT"),
    (dict(method="fbp", volume_shape=(4, 4)), "volume_shape"),
    (dict(method="fbp", filter="gauss"), "filter"),
    (dict(method="fbp", backend="cuda"), "backend"),
])
def test_bad_options(parallel_sample, kwargs, match):
    s = parallel_sample
    with pytest.raises(ValueError, match=match):
        reconstruct(s.projections, s.geometry, **{"backend": "numpy", **kwargs})


def test_no_gpu_means_cpu_never_a_crash(parallel_sample, monkeypatch):
    from napari_corrtomo.core.recon import _astra

    monkeypatch.setenv("CORRTOMO_BACKEND", "auto")
    monkeypatch.setattr(_astra, "cuda_available", lambda: False)
    s = parallel_sample
    vol = reconstruct(s.projections, s.geometry, s.volume_shape, s.voxel_size, "fbp",
                      backend="auto")
    assert np.isfinite(vol).all()
    with pytest.raises(ValueError, match="GPU"):
        reconstruct(s.projections, s.geometry, method="fbp", backend="cupy")


def test_coarser_grid_uses_the_volume_engine_consistently(parallel_sample):
    """A grid whose voxels are twice the pixel (volume engine, voxel-driven FBP) agrees with
    the slice engine's result averaged over 2x2x2 blocks."""
    from napari_corrtomo.core.recon import projector as P

    s = parallel_sample
    nz, ny, nx = s.volume_shape
    coarse_shape = (nz // 2, ny // 2, nx // 2)
    assert P.slice_plan(s.geometry, coarse_shape, 2 * s.voxel_size) is None
    coarse = reconstruct(s.projections, s.geometry, coarse_shape, 2 * s.voxel_size, "fbp",
                         backend="numpy")
    fine = _recon(s, "fbp").reshape(nz // 2, 2, ny // 2, 2, nx // 2, 2).mean(axis=(1, 3, 5))
    assert _rel(coarse, fine) < 0.12


def test_row_shifts_are_resampled_onto_the_slice_grid(tilt_sample):
    """Per-projection row shifts (an aligned tilt series) keep the fast slice engine: the rows
    are resampled onto the slice grid, and the result is as good as for unshifted data."""
    from napari_corrtomo.core.recon import shift_projections

    s = tilt_sample
    rows = np.random.default_rng(3).normal(0, 0.7, s.geometry.n_angles)
    shifts = np.column_stack([rows, np.zeros_like(rows)])
    moved = shift_projections(s.projections, -shifts)  # content displaced by +shifts
    a = reconstruct(moved, s.geometry.with_shifts(shifts), s.volume_shape, s.voxel_size, "fbp",
                    backend="numpy")
    b = _recon(s, "fbp")
    unaligned = reconstruct(moved, s.geometry, s.volume_shape, s.voxel_size, "fbp",
                            backend="numpy")
    assert _rel(a, s.phantom) < _rel(b, s.phantom) + 0.03 < _rel(unaligned, s.phantom)


def test_concurrent_calls_from_threads(parallel_sample, cone_sample):
    """Widgets run reconstructions in worker threads; two at once give the serial results."""
    from concurrent.futures import ThreadPoolExecutor

    jobs = [(parallel_sample, "sirt"), (cone_sample, "fdk"), (parallel_sample, "fbp")]
    serial = [_recon(s, m, iterations=3) for s, m in jobs]
    with ThreadPoolExecutor(3) as pool:
        parallel = list(pool.map(lambda job: _recon(job[0], job[1], iterations=3), jobs))
    for a, b in zip(serial, parallel, strict=True):
        np.testing.assert_array_equal(a, b)


def test_short_scan_message_is_the_warning():
    """A front end shows the message before starting; FDK warns with the same words."""
    half = Geometry.cone(np.linspace(0, 180, 12, endpoint=False), (6, 10), 80.0, 40.0, 1.0)
    full = Geometry.cone(np.linspace(0, 360, 12, endpoint=False), (6, 10), 80.0, 40.0, 1.0)
    message = short_scan_message(half)
    assert message == ("cone FBP/FDK assumes a full 360-degree rotation but the angles cover "
                       "180 degrees; expect artefacts (use SIRT or CGLS for short scans)")
    assert short_scan_message(full) is None
    assert short_scan_message(Geometry.parallel(half.angles_deg, (6, 10), 1.0)) is None
    proj = np.random.default_rng(0).random((12, 6, 10)).astype(np.float32)
    with pytest.warns(UserWarning) as record:
        reconstruct(proj, half, (4, 8, 8), method="fdk")
    assert [str(w.message) for w in record] == [message]


@pytest.mark.parametrize("name", ["parallel_sample", "cone_sample", "lamino_sample",
                                  "tilt_sample"])
def test_grids_the_detector_sees_pass_and_others_are_refused(request, name):
    """Sub- and super-sampling, binning and cone magnification pass the field-of-view check;
    a voxel size 1000x off, or a volume 1000x the field of view, is refused by the core."""
    s = request.getfixturevalue(name)
    g, vs = s.geometry, s.geometry.default_voxel_size
    shape = g.default_volume_shape()
    for factor, grid in ((0.5, shape), (2.0, shape), (4.0, shape),
                         (4.0, tuple(max(1, n // 4) for n in shape)), (1.0, (1, 1, 1))):
        assert check_grid(g, grid, factor * vs)[0] == grid
    for factor in (1000.0, 0.001):
        with pytest.raises(SettingError, match=re.escape(f"the voxel size is {factor:.3g} times")):
            reconstruct(s.projections, g, shape, factor * vs, method_for(g), backend="numpy")
    with pytest.raises(SettingError, match="falls on the detector: .*; choose a smaller shape$"):
        check_grid(g, tuple(1000 * n for n in shape), vs)
