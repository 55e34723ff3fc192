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


def view_grid(moving_to_world: np.ndarray, moving_shape: tuple[int, int, int]
              ) -> tuple[np.ndarray, tuple[int, int, int]]:
    """A world-axis-aligned grid at the moving volume's own resolution around its field.

    napari slices 2D views along world axes; this grid has planes along world axis 0,
    an isotropic voxel as long as the moving volume's shortest voxel edge (so nothing
    is lost on screen or when painting) and covers the moving volume's bounding box.

    Parameters
    ----------
    moving_to_world : (4, 4) ndarray
        The moving layer's voxel index (z, y, x, 1) -> world matrix.
    moving_shape : (nz, ny, nx)
        The moving volume's shape in voxels.

    Returns
    -------
    grid_to_world : (4, 4) ndarray
        The grid's voxel index -> world matrix (a scale and a shift).
    shape : (nz, ny, nx)
        The grid's shape in voxels.
    """
    m = check_matrix(moving_to_world, "moving_to_world")
    edge = float(np.linalg.norm(m[:3, :3], axis=0).min())
    if not edge > 0:
        raise ValueError("the moving layer's transform is singular (a zero voxel edge)")
    # voxel corners, not centres: the grid holds every voxel whole
    n = np.asarray(moving_shape, float)
    corners = np.array([[a, b, c] for a in (-0.5, n[0] - 0.5) for b in (-0.5, n[1] - 0.5)
                        for c in (-0.5, n[2] - 0.5)])
    world = corners @ m[:3, :3].T + m[:3, 3]
    lo, hi = world.min(axis=0), world.max(axis=0)
    shape = tuple(int(k) for k in np.maximum(np.ceil((hi - lo) / edge - 1e-9), 1))
    grid = np.diag([edge, edge, edge, 1.0])
    grid[:3, 3] = lo + edge / 2  # first voxel centre
    return grid, shape


def plane_voxels(index_matrix: np.ndarray, z: float, pixels: tuple[np.ndarray, np.ndarray],
                 moving_shape: tuple[int, int, int]
                 ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The moving voxel nearest to each plane pixel (what order-0 sampling shows there).

    Painting a plane drawn with ``sample_plane(..., order=0)`` writes each painted pixel
    into this voxel, so what is painted is what the plane shows after resampling.

    Parameters
    ----------
    index_matrix : (4, 4) ndarray
        Reference (plane grid) index -> moving index (:func:`plane_index_matrix`).
    z : float
        The plane's index along the grid's axis 0.
    pixels : (rows, cols)
        Integer arrays of the plane pixels (y, x).
    moving_shape : (nz, ny, nx)
        The moving volume's shape in voxels.

    Returns
    -------
    inside : (n,) bool ndarray
        Which pixels fall on a moving voxel.
    voxels : (z, y, x)
        Integer index arrays of those voxels (one per pixel inside).
    """
    m = check_matrix(index_matrix, "index_matrix")
    rows, cols = (np.asarray(a, float).ravel() for a in pixels)
    ref = np.stack([np.full(rows.size, float(z)), rows, cols])
    idx = np.rint(m[:3, :3] @ ref + m[:3, 3:4]).astype(np.int64)
    inside = np.all((idx >= 0) & (idx < np.asarray(moving_shape)[:, None]), axis=0)
    return inside, tuple(idx[:, inside])


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
    (ny, nx) ndarray
        The moving data at each reference voxel of the plane: float32, or the volume's
        dtype for ``order=0`` (labels stay labels).
    """
    m = check_matrix(index_matrix, "index_matrix")
    ny, nx = (int(n) for n in plane_shape)
    dtype = np.dtype(volume.dtype) if order == 0 else np.dtype(np.float32)
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
        return np.full((ny, nx), cval, dtype)
    block = np.asarray(volume[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]])
    coords -= lo[:, None, None]
    # The block keeps every in-volume sample's neighbours, so its edges are the volume's
    # wherever a sample needs them and 'constant' fills only what lies outside the volume.
    # Nearest sampling shows each voxel whole (to +-0.5 of its centre, like napari does).
    mode = "grid-constant" if order == 0 else "constant"
    return ndimage.map_coordinates(block, coords, order=order, mode=mode, cval=cval,
                                   output=dtype)
