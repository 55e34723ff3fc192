"""Rotation-centre search and tilt-series alignment against known offsets and jitter."""

import numpy as np
import pytest

from napari_corrtomo.core.recon import (
    align_tilt_series,
    alignment_residual,
    find_center,
    measure_alignment,
    reconstruct,
    shift_projections,
)
from napari_corrtomo.core.synthetic import projections


@pytest.mark.parametrize("kind, offset, kwargs", [
    ("parallel", 2.3, dict(volume_shape=(8, 48, 48), det_shape=(8, 48), n_angles=90)),
    ("tilt_series", -1.7, dict(volume_shape=(48, 8, 48), det_shape=(8, 48), n_angles=90)),
    ("cone", 1.4, dict(volume_shape=(24, 40, 40), det_shape=(32, 52), n_angles=90)),
    ("laminography", -0.8, dict(volume_shape=(12, 40, 40), det_shape=(28, 40), n_angles=90)),
])
def test_find_center_recovers_the_axis_offset(kind, offset, kwargs):
    s = projections(kind, seed=4, center_offset=offset, photons=2e4, **kwargs)
    found = find_center(s.projections, s.geometry, search=4.0)
    assert abs(found - offset) < 0.2
    # applied to the geometry it removes most of the reconstruction error
    method = "fdk" if s.geometry.is_cone else "fbp"
    bad = reconstruct(s.projections, s.geometry, s.volume_shape, s.voxel_size, method,
                      backend="numpy")
    good = reconstruct(s.projections, s.geometry.shifted(col=found), s.volume_shape,
                       s.voxel_size, method, backend="numpy")
    assert np.linalg.norm(good - s.phantom) < 0.8 * np.linalg.norm(bad - s.phantom)


def test_find_center_is_relative_to_the_current_geometry():
    s = projections("parallel", seed=4, volume_shape=(8, 48, 48), det_shape=(8, 48),
                    n_angles=90, center_offset=2.0, photons=None)
    assert abs(find_center(s.projections, s.geometry.shifted(col=1.5)) - 0.5) < 0.15
    with pytest.raises(ValueError, match="correlation"):
        cone = projections("cone", volume_shape=(16, 24, 24), det_shape=(20, 32), n_angles=30)
        find_center(cone.projections, cone.geometry, method="correlation")
    with pytest.raises(ValueError, match="unknown method"):
        find_center(s.projections, s.geometry, method="magic")


def _object_motion_removed(err, theta):
    """Alignment is defined up to a move of the object: a sinusoid in the column shifts and
    a constant in the row shifts."""
    basis = np.stack([np.cos(theta), np.sin(theta)], 1)
    col = err[:, 1] - basis @ np.linalg.lstsq(basis, err[:, 1], rcond=None)[0]
    row = err[:, 0] - err[:, 0].mean()
    return np.sqrt(np.mean(col**2)), np.sqrt(np.mean(row**2))


@pytest.fixture(scope="module")
def jittered():
    return projections("tilt_series", seed=5, volume_shape=(48, 24, 48), det_shape=(24, 48),
                       n_angles=120, jitter_px=1.5, center_offset=1.0)


@pytest.mark.parametrize("method, limit", [("auto", 0.3), ("both", 0.3), ("com", 0.3)])
def test_align_tilt_series_recovers_jitter(jittered, method, limit):
    s = jittered
    aligned, shifts = align_tilt_series(s.projections, s.geometry.angles_deg, method=method)
    theta = np.deg2rad(s.geometry.angles_deg)
    col, row = _object_motion_removed(shifts - s.true_shifts, theta)
    assert col < limit and row < limit
    # the axis offset (a constant) is part of what the fit removes
    assert abs(np.mean(shifts[:, 1] - s.true_shifts[:, 1])) < 0.3
    # reconstructions: far better than unaligned, and as good as with the true shifts once
    # those are given the same (harmless) object motion
    g = s.geometry
    basis = np.stack([np.cos(theta), np.sin(theta)], 1)
    motion = basis @ np.linalg.lstsq(basis, (shifts - s.true_shifts)[:, 1], rcond=None)[0]
    equivalent = s.true_shifts + np.stack([np.full_like(theta, np.mean(
        shifts[:, 0] - s.true_shifts[:, 0])), motion], 1)

    def recon(geometry):
        return reconstruct(s.projections, geometry, s.volume_shape, s.voxel_size, backend="numpy")

    fixed = recon(g.with_shifts(shifts))
    raw_err = np.linalg.norm(recon(g) - s.phantom) / np.linalg.norm(s.phantom)
    assert np.linalg.norm(fixed - s.phantom) / np.linalg.norm(s.phantom) < 0.6 * raw_err
    ref = recon(g.with_shifts(equivalent))
    assert np.linalg.norm(fixed - ref) / np.linalg.norm(ref) < 0.1
    assert aligned.shape == s.projections.shape


def test_xcorr_alone_keeps_drift_and_offset(jittered):
    s = jittered
    _, shifts = align_tilt_series(s.projections, s.geometry.angles_deg, method="xcorr")
    ref = int(np.argmin(np.abs(s.geometry.angles_deg)))
    assert np.all(shifts[ref] == 0)  # referenced to the projection nearest 0 degrees
    step = np.diff(shifts - s.true_shifts, axis=0)
    assert np.sqrt(np.mean(step**2)) < 0.35  # neighbour differences are right


def test_auto_keeps_the_most_consistent_alignment(jittered):
    """On a pillar that stays in the field of view the centre of mass is right and the
    neighbour steps of cross-correlation add up (120 tilts): "auto" scores all three and
    keeps the lowest residual, the shifts of that method."""
    s = jittered
    theta = np.deg2rad(s.geometry.angles_deg)
    found = measure_alignment(s.projections, s.geometry.angles_deg)
    assert set(found.residuals) == {"xcorr", "com", "both"}
    assert found.method == min(found.residuals, key=found.residuals.get)
    np.testing.assert_array_equal(
        found.shifts, measure_alignment(s.projections, s.geometry.angles_deg, found.method).shifts)
    assert max(_object_motion_removed(found.shifts - s.true_shifts, theta)) < 0.3
    xcorr = measure_alignment(s.projections, s.geometry.angles_deg, "xcorr").shifts
    assert _object_motion_removed(xcorr - s.true_shifts, theta)[0] > 0.6
    assert found.method in found.summary() and "xcorr" in found.summary()


def test_auto_takes_cross_correlation_where_the_centre_of_mass_is_misled(jittered):
    """A neighbour's edge comes into the field from one side above 45 degrees of tilt (a
    band 0-13 px wide): the centre of mass follows it (error 5 px), the
    cross-correlation does not (1.1 px), and "auto" keeps cross-correlation."""
    s = jittered
    angles = s.geometry.angles_deg
    data = s.projections.copy()
    width = (np.abs((angles + 180.0) % 360.0 - 180.0) - 45.0) / 10.0
    data += data.max() * 0.5 * (np.arange(data.shape[2]) < width[:, None])[:, None, :]
    theta = np.deg2rad(angles)
    found = measure_alignment(data, angles)
    assert found.method == "xcorr"
    com = measure_alignment(data, angles, "com").shifts
    col = _object_motion_removed(found.shifts - s.true_shifts, theta)[0]
    assert col < 0.5 * _object_motion_removed(com - s.true_shifts, theta)[0]


@pytest.mark.parametrize("cols, pixels", [(48, 128), (47, 16)])
def test_alignment_residual_is_lowest_at_the_true_shifts(cols, pixels):
    """The score ranks shifts by how well the series fits a volume; binned (47 columns in
    bins of 3, the detector centre moved half a pixel by the crop) it still does."""
    s = projections("tilt_series", seed=6, volume_shape=(40, 16, 40), det_shape=(16, cols),
                    n_angles=60, jitter_px=1.5, photons=None)
    angles, true = s.geometry.angles_deg, s.true_shifts
    best = alignment_residual(s.projections, angles, true, pixels=pixels)
    # a constant row shift moves the object along the tilt axis (as consistent as the
    # truth); a row error that alternates from tilt to tilt is not
    alternating = np.stack([(-1.0) ** np.arange(len(angles)), np.zeros(len(angles))], 1)
    for wrong in (np.zeros_like(true), true + [0.0, 1.0], true - [0.0, 1.0],
                  true + alternating):
        assert alignment_residual(s.projections, angles, wrong, pixels=pixels) > best + 0.01


def test_align_bad_input(jittered):
    s = jittered
    with pytest.raises(ValueError, match="one angle"):
        align_tilt_series(s.projections, s.geometry.angles_deg[:-1])
    with pytest.raises(ValueError, match="unknown method"):
        align_tilt_series(s.projections, s.geometry.angles_deg, method="fiducials")
    with pytest.raises(ValueError, match="positive total signal"):
        align_tilt_series(-np.abs(s.projections), s.geometry.angles_deg, method="com")
    # "auto" leaves out the methods that do not apply
    found = measure_alignment(-np.abs(s.projections), s.geometry.angles_deg)
    assert found.method == "xcorr" and list(found.residuals) == ["xcorr"]


def test_shift_projections_is_exact_for_whole_pixels():
    rng = np.random.default_rng(0)
    p = rng.random((3, 10, 12)).astype(np.float32)
    shifts = np.array([[0, 0], [2, -3], [-1, 1]], float)
    out = shift_projections(p, shifts)
    np.testing.assert_array_equal(out[0], p[0])
    np.testing.assert_allclose(out[1, 0:8, 3:12], p[1, 2:10, 0:9])  # content moved back
    with pytest.raises(ValueError, match="shifts"):
        shift_projections(p, np.zeros((2, 2)))
