import dask.array as da
import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_corrtomo.core.connected import label


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Two labelings describe the same components (equal up to renumbering)."""
    if not np.array_equal(a > 0, b > 0):
        return False
    pairs = np.unique(np.column_stack([a[a > 0], b[b > 0]]), axis=0)
    return len(np.unique(pairs[:, 0])) == len(pairs) == len(np.unique(pairs[:, 1]))


@pytest.mark.parametrize("connectivity", [1, 2, 3])
def test_dask_labels_equal_scipy(connectivity):
    rng = np.random.default_rng(connectivity)
    mask = ndi.gaussian_filter(rng.random((40, 44, 36)), 1.5) > 0.52  # winding blobs
    ref, n_ref = ndi.label(mask, ndi.generate_binary_structure(3, connectivity))
    lazy, n = label(da.from_array(mask, chunks=(9, 13, 8)), connectivity)
    out = lazy.compute()
    assert n == n_ref
    assert _same_partition(out, ref)
    assert set(np.unique(out)) == set(range(n + 1))  # consecutive labels


def test_diagonal_contact_across_a_chunk_corner():
    # Two voxels touching only at a corner that is also a chunk corner.
    mask = np.zeros((4, 4, 4), bool)
    mask[1, 1, 1] = mask[2, 2, 2] = True
    lazy, n26 = label(da.from_array(mask, chunks=2), connectivity=3)
    assert n26 == 1 and len(np.unique(lazy.compute())) == 2
    _, n6 = label(da.from_array(mask, chunks=2), connectivity=1)
    assert n6 == 2


def test_numpy_path_and_bad_input():
    mask = np.zeros((5, 5), np.uint8)
    mask[1, 1] = mask[3, 3] = 1
    lab, n = label(mask)
    assert n == 2 and lab.dtype == np.int32
    with pytest.raises(ValueError, match="binary mask"):
        label(np.arange(25).reshape(5, 5))
    with pytest.raises(ValueError, match="connectivity"):
        label(mask, connectivity=3)


def test_progress_reports_every_chunk():
    seen = []
    mask = da.from_array(np.ones((8, 8), bool), chunks=4)
    lazy, n = label(mask, progress=lambda d, t: seen.append((d, t)))
    assert n == 1 and seen[-1][0] == seen[-1][1] and len(seen) >= 4
