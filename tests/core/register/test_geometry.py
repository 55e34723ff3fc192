"""Resampling (blockwise, lazy, against scipy) and boxes between frames (ROI, fields of view)."""

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_corrtomo.core import register as reg
from napari_corrtomo.core.progress import Cancelled
from napari_corrtomo.core.synthetic import CORRELATIVE_PHASES, random_rotation, similarity_matrix


def _case(seed=0):
    rng = np.random.default_rng(seed)
    vol = ndi.gaussian_filter(rng.normal(size=(30, 34, 38)), 2).astype(np.float32)
    m = similarity_matrix(1.1, random_rotation(rng, 40), [2.0, -3.0, 4.0])
    return vol, reg.Transform(m, "similarity", "um")


def test_resample_blockwise_equals_one_scipy_call():
    vol, t = _case()
    sp_m, sp_r, origin = (0.5, 0.6, 0.7), (0.8, 0.8, 0.8), (1.0, -2.0, 0.5)
    out = reg.resample(vol, t, (25, 27, 29), sp_r, moving_spacing=sp_m, reference_origin=origin,
                       budget=40_000, antialias=False)
    idx = np.linalg.inv(reg.grid_matrix(sp_m)) @ np.linalg.inv(t.matrix) \
        @ reg.grid_matrix(sp_r, origin)
    want = ndi.affine_transform(vol, idx[:3, :3], idx[:3, 3], output_shape=(25, 27, 29), order=1,
                                mode="constant", cval=0.0)
    assert out.dtype == np.float32 and out.shape == (25, 27, 29)
    np.testing.assert_allclose(out, want, atol=1e-5)
    assert np.count_nonzero(out) > 0.2 * out.size
    # lazy input gives the same
    lazy = reg.resample(da.from_array(vol, chunks=10), t, (25, 27, 29), sp_r, moving_spacing=sp_m,
                        reference_origin=origin, budget=40_000, antialias=False)
    np.testing.assert_array_equal(lazy, out)
    # cubic splines stay close to the whole-array answer despite the blocks
    cubic = reg.resample(vol, t, (25, 27, 29), sp_r, moving_spacing=sp_m, reference_origin=origin,
                         order=3, budget=40_000, antialias=False)
    want3 = ndi.affine_transform(vol, idx[:3, :3], idx[:3, 3], output_shape=(25, 27, 29),
                                 order=3, mode="constant", cval=0.0)
    np.testing.assert_allclose(cubic, want3, atol=1e-4)


def test_resample_labels_nearest_keeps_dtype_and_matches_truth(correlative_sample):
    """nanoCT truth labels carried onto the microCT grid agree with the microCT truth labels."""
    s, t = correlative_sample, correlative_sample.truth
    tr = reg.Transform(t.nanoct_to_microct, "similarity", "um")
    box = reg.map_box(reg.fov_box(s.nanoct.data.shape, s.nanoct.scale), tr).bounds
    sl, _ = reg.crop_slices(box, s.microct.data.shape, s.microct.scale)
    origin = np.array([x.start for x in sl], float)
    shape = tuple(x.stop - x.start for x in sl)
    lab = reg.resample(t.nanoct_labels.data, tr, shape, s.microct.scale,
                       moving_spacing=s.nanoct.scale, reference_origin=origin, order=0, cval=255)
    assert lab.dtype == np.uint8
    inside = lab != 255
    assert inside.mean() > 0.25
    micro = t.microct_labels.data[sl]
    agree = np.mean(lab[inside] == micro[inside])
    assert agree > 0.85, agree
    assert set(np.unique(lab[inside])) <= set(CORRELATIVE_PHASES)


def test_resample_antialiases_when_the_output_is_coarser():
    rng = np.random.default_rng(1)
    vol = rng.normal(size=(40, 40, 40)).astype(np.float32)  # white noise
    t = reg.Transform(np.eye(4), "rigid", "um")
    alias = reg.resample(vol, t, (10, 10, 10), (4, 4, 4), moving_spacing=(1, 1, 1), antialias=False)
    smooth = reg.resample(vol, t, (10, 10, 10), (4, 4, 4), moving_spacing=(1, 1, 1))
    assert smooth.std() < 0.5 * alias.std()
    np.testing.assert_allclose(smooth, ndi.gaussian_filter(vol, 1.5, mode="nearest")[::4, ::4, ::4],
                               atol=1e-5)


def test_resample_progress_cancel_and_bad_input():
    vol, t = _case()
    calls = []
    reg.resample(vol, t, (20, 20, 20), (1, 1, 1), moving_spacing=(1, 1, 1), budget=20_000,
                 progress=lambda d, n: calls.append((d, n)))
    assert len(calls) > 1 and calls[-1][0] == calls[-1][1]

    def cancel(done, total):
        raise Cancelled()

    with pytest.raises(Cancelled):
        reg.resample(vol, t, (20, 20, 20), (1, 1, 1), moving_spacing=(1, 1, 1), progress=cancel)
    with pytest.raises(ValueError, match="3D"):
        reg.resample(vol[0], t, (5, 5, 5), (1, 1, 1), moving_spacing=(1, 1))
    with pytest.raises(ValueError, match="mirror"):
        reg.resample(vol, np.diag([1.0, 1, -1, 1]), (5, 5, 5), (1, 1, 1), moving_spacing=(1, 1, 1))
    with pytest.raises(ValueError, match="NaN"):
        reg.resample(vol, np.full((4, 4), np.nan), (5, 5, 5), (1, 1, 1), moving_spacing=(1, 1, 1))
    with pytest.raises(ValueError, match="spacing"):
        reg.resample(vol, t, (5, 5, 5), (1, 0, 1), moving_spacing=(1, 1, 1))
    with pytest.raises(ValueError, match="order"):
        reg.resample(vol, t, (5, 5, 5), (1, 1, 1), moving_spacing=(1, 1, 1), order=7)


def test_map_box_both_directions(correlative_sample):
    s, t = correlative_sample, correlative_sample.truth
    tr = reg.Transform(t.nanoct_to_microct, "similarity", "um")
    fov = reg.fov_box(s.nanoct.data.shape, s.nanoct.scale)
    fwd = reg.map_box(fov, tr)
    np.testing.assert_allclose(fwd.corners, t.nanoct_fov_microct, atol=1e-9)
    np.testing.assert_allclose(fwd.bounds, [t.nanoct_fov_microct.min(0),
                                            t.nanoct_fov_microct.max(0)], atol=1e-9)
    # a microCT box around a landmark carried into the nanoCT contains that landmark
    p = t.landmarks_microct[0]
    back = reg.map_box(np.array([p - 1.0, p + 1.0]), tr, inverse=True)
    q = t.landmarks_nanoct[0]
    assert np.all(back.bounds[0] <= q) and np.all(q <= back.bounds[1])
    np.testing.assert_allclose(back.corners.mean(0), q, atol=1e-9)
    edge = np.linalg.norm(back.corners[1] - back.corners[0])
    assert edge == pytest.approx(2.0 / 1.015)


def test_crop_slices_and_crop_box():
    sl, clipped = reg.crop_slices([[1.0, 2.0, 3.0], [4.0, 6.0, 7.9]], (10, 10, 10), (1, 2, 1))
    assert sl == (slice(1, 5), slice(1, 4), slice(3, 8)) and not clipped
    sl, clipped = reg.crop_slices([[-5, 0, 0], [3, 3, 3]], (10, 10, 10), (1, 1, 1))
    assert sl[0] == slice(0, 4) and clipped
    with pytest.raises(ValueError, match="does not overlap"):
        reg.crop_slices([[20, 20, 20], [30, 30, 30]], (10, 10, 10), (1, 1, 1))
    vol = np.arange(1000).reshape(10, 10, 10)
    i2w = reg.grid_matrix((2.0, 2.0, 2.0), (10.0, 0.0, 0.0))
    crop, sl, clipped = reg.crop_box(vol, [[12.0, 4.0, 4.0], [16.0, 8.0, 8.0]], i2w)
    assert sl == (slice(1, 4), slice(2, 5), slice(2, 5)) and not clipped
    np.testing.assert_array_equal(crop, vol[1:4, 2:5, 2:5])


def test_box_sections_of_a_rotated_cube():
    corners = reg.box_corners([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])
    rot = similarity_matrix(1.0, np.array([[1, 0, 0], [0, np.cos(0.7), -np.sin(0.7)],
                                           [0, np.sin(0.7), np.cos(0.7)]]), [5.0, 0.0, 0.0])
    c = reg.apply_to_points(rot, corners)  # rotated about z: z-sections stay 2 x 2 squares
    polys = reg.box_sections(c, [4.0, 4.5, 5.0, 5.9, 6.5])
    assert len(polys) == 4  # z = 6.5 misses the cube
    for p in polys:
        assert len(p) == 4
        y, x = p[:, 1], p[:, 2]
        area = 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))
        assert area == pytest.approx(4.0)
    # tilted: the mid section of a cube about a body diagonal is a hexagon
    rng = np.random.default_rng(0)
    r = random_rotation(rng, 90)
    tilted = reg.apply_to_points(similarity_matrix(1.0, r, [0, 0, 0]), corners)
    mid = reg.box_sections(tilted, [0.0])[0]
    assert 4 <= len(mid) <= 6 and np.allclose(mid[:, 0], 0.0)


def test_fov_outlines_lie_on_reference_slices(correlative_sample):
    s, t = correlative_sample, correlative_sample.truth
    nano = reg.grid_matrix(s.nanoct.scale) @ np.eye(4)
    nano = t.nanoct_to_microct @ nano
    micro = reg.grid_matrix(s.microct.scale)
    polys = reg.fov_outlines(s.nanoct.data.shape, nano, s.microct.data.shape, micro)
    zs = sorted({float(p[0, 0]) for p in polys})
    fov_z = t.nanoct_fov_microct[:, 0]
    assert zs == list(np.arange(np.ceil(fov_z.min()), np.floor(fov_z.max()) + 1))
    for p in polys:
        assert np.all(p[:, 0] == p[0, 0]) and len(p) >= 3
        # every vertex lies on the field of view's surface: inside the box in nanoCT index space
        back = reg.apply_to_points(np.linalg.inv(nano) @ micro, p)
        assert np.all(back >= -0.5 - 1e-6) and np.all(back <= np.array(s.nanoct.data.shape) - 0.5
                                                      + 1e-6)
