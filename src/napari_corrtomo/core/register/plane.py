"""One plane of a moving volume sampled in the reference frame (for 2D display).

napari does not draw a layer whose affine is not axis-aligned in 2D; sampling only
the plane on screen keeps a registered volume visible at any rotation without
resampling the whole volume (Issue 16).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .transform import check_matrix


def plane_index_matrix(reference_to_world: np.ndarray, moving_to_world: np.ndarray) -> np.ndarray:
    """The 4x4 matrix from reference voxel index to moving voxel index.

    Parameters
    ----------
    reference_to_world, moving_to_world : (4, 4) ndarray
        Each layer's voxel index (z, y, x, 1) -> world matrix (its affine composed with
        its scale and translate; world length unit shared by both).
    """
    ref = check_matrix(reference_to_world, "reference_to_world")
    mov = check_matrix(moving_to_world, "moving_to_world")
    return np.linalg.solve(mov, ref)


def sample_plane(volume: np.ndarray, index_matrix: np.ndarray, plane_shape: tuple[int, int],
                 z: float, order: int = 1, cval: float = 0.0) -> np.ndarray:
    """Sample ``volume`` on the reference plane ``z`` (reference voxel indices).

    Parameters
    ----------
    volume : (nz, ny, nx) array
        The moving volume (any array ``np.asarray`` reads).
    index_matrix : (4, 4) ndarray
        Reference index -> moving index (:func:`plane_index_matrix`).
    plane_shape : (ny, nx)
        The reference plane's shape in voxels.
    z : float
        The plane's reference index along axis 0.
    order : int
        Spline order (0 nearest, 1 linear).
    cval : float
        Value outside the moving volume.

    Returns
    -------
    (ny, nx) float32 ndarray
        The moving data at each reference voxel of the plane.
    """
    m = check_matrix(index_matrix, "index_matrix")
    ny, nx = (int(n) for n in plane_shape)
    # Moving index of reference (z, y, x) is m[:3, :3] @ (z, y, x) + m[:3, 3]: separable
    # in y and x, so the coordinates are two outer products plus a constant.
    base = m[:3, 0] * float(z) + m[:3, 3]
    coords = (base[:, None, None] + m[:3, 1, None, None] * np.arange(ny)[None, :, None]
              + m[:3, 2, None, None] * np.arange(nx)[None, None, :])
    # Read only the moving block the plane passes through (lazy arrays stay lazy).
    shape = np.asarray(volume.shape[:3])
    lo = np.clip(np.floor(coords.reshape(3, -1).min(axis=1)).astype(int) - 1, 0, shape)
    hi = np.clip(np.ceil(coords.reshape(3, -1).max(axis=1)).astype(int) + 2, 0, shape)
    if np.any(hi <= lo):
        return np.full((ny, nx), cval, np.float32)
    block = np.asarray(volume[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]])
    coords -= lo[:, None, None]
    # The block keeps every in-volume sample's neighbours, so its edges are the volume's
    # wherever a sample needs them and 'constant' fills only what lies outside the volume.
    return ndimage.map_coordinates(block, coords, order=order, mode="constant", cval=cval,
                                   output=np.float32)
