"""Plane sampling against a full-volume resample and an analytic linear ramp."""

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

from napari_corrtomo.core.register.plane import plane_index_matrix, sample_plane


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
