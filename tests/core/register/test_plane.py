"""Plane sampling against a full-volume resample and an analytic linear ramp."""

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

from napari_corrtomo.core.register.plane import (
    plane_index_matrix,
    plane_voxels,
    sample_plane,
    view_grid,
)


def _rotated(deg):
    m = np.eye(4)
    m[:3, :3] = Rotation.from_euler("zyx", deg, degrees=True).as_matrix()
    m[:3, 3] = [3.0, -2.0, 5.0]
    return m


def test_plane_equals_the_same_plane_of_a_full_resample():
    rng = np.random.default_rng(0)
    moving = ndimage.gaussian_filter(rng.random((30, 34, 28)), 2).astype(np.float32)
    ref = np.diag([2.0, 2.0, 2.0, 1.0])          # reference voxel 2 units
    mov = _rotated([25, -10, 40]) @ np.diag([1.5, 1.5, 1.5, 1.0])
    m = plane_index_matrix(ref, mov)
    shape = (20, 22, 21)
    full = ndimage.affine_transform(moving, m, output_shape=shape, order=1, cval=-1.0)
    for z in (3, 10, 17):
        plane = sample_plane(moving, m, shape[1:], z, order=1, cval=-1.0)
        np.testing.assert_allclose(plane, full[z], atol=1e-5)


def test_linear_ramp_is_reproduced_exactly_inside():
    z, y, x = np.mgrid[:20, :20, :20].astype(np.float32)
    moving = 2 * z + 3 * y - x
    mov = _rotated([30, 0, 0])
    m = plane_index_matrix(np.eye(4), mov)
    plane = sample_plane(moving, m, (20, 20), 8.0, order=1, cval=np.nan)
    yy, xx = np.mgrid[:20, :20]
    idx = m[:3, :3] @ np.stack([np.full(yy.size, 8.0), yy.ravel(), xx.ravel()]) + m[:3, 3:4]
    inside = np.all((idx >= 0) & (idx <= 19), axis=0).reshape(20, 20)
    expected = (2 * idx[0] + 3 * idx[1] - idx[2]).reshape(20, 20)
    assert inside.sum() > 100
    np.testing.assert_allclose(plane[inside], expected[inside], atol=1e-3)
    far = np.any((idx < -1) | (idx > 20), axis=0).reshape(20, 20)
    assert far.sum() > 10 and np.all(np.isnan(plane[far]))


def test_view_grid_holds_every_voxel_at_the_moving_resolution():
    mov = _rotated([25, -10, 40]) @ np.diag([0.5, 0.7, 0.6, 1.0])
    shape = (12, 15, 9)
    grid, gshape = view_grid(mov, shape)
    np.testing.assert_allclose(np.diag(grid)[:3], 0.5)  # the shortest voxel edge
    assert np.allclose(grid[:3, :3], np.diag(np.diag(grid)[:3]))  # world-axis aligned
    # every moving voxel corner lies inside the grid's voxels (index -0.5 .. n - 0.5)
    corners = np.stack(np.meshgrid(*[np.array([-0.5, n - 0.5]) for n in shape],
                                   indexing="ij"), -1).reshape(-1, 3)
    world = corners @ mov[:3, :3].T + mov[:3, 3]
    g = (world - grid[:3, 3]) / 0.5
    assert np.all(g >= -0.5 - 1e-9) and np.all(g <= np.array(gshape) - 0.5 + 1e-9)
    # and the grid is no larger than that box plus one voxel per axis
    assert np.all(np.array(gshape) <= np.ptp(g, axis=0) + 1)


def test_plane_voxels_are_the_voxels_order_0_sampling_shows():
    rng = np.random.default_rng(1)
    labels = rng.permutation(20 * 22 * 18).reshape(20, 22, 18).astype(np.int32) + 1
    mov = _rotated([35, 20, -15])
    grid, gshape = view_grid(mov, labels.shape)
    m = plane_index_matrix(grid, mov)
    for z in (5, gshape[0] // 2):
        plane = sample_plane(labels, m, gshape[1:], z, order=0, cval=0)
        assert plane.dtype == labels.dtype
        rows, cols = np.nonzero(np.ones(gshape[1:], bool))
        inside, voxels = plane_voxels(m, z, (rows, cols), labels.shape)
        np.testing.assert_array_equal(labels[voxels], plane[rows[inside], cols[inside]])
        assert np.all(plane[rows[~inside], cols[~inside]] == 0) and inside.sum() > 50
