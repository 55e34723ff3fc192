"""The same answers on a dask.distributed LocalCluster (2 workers) as in memory."""

import time

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_corrtomo.core.backend import compute, map_blocks
from napari_corrtomo.core.cluster import dask_client
from napari_corrtomo.core.connected import label
from napari_corrtomo.core.resumable import store_resumable


def _smooth(block):
    return ndi.gaussian_filter(block, 1.5)


@pytest.fixture(scope="module")
def client():
    with dask_client(workers=2, memory_limit="1GB") as c:
        yield c


def test_blockwise_filter_on_cluster_equals_in_memory(client):
    vol = np.random.default_rng(0).normal(size=(40, 48, 32)).astype(np.float32)
    lazy = map_blocks(_smooth, da.from_array(vol, chunks=(13, 16, 11)), halo=7)
    out = compute(lazy, scheduler=client)
    np.testing.assert_array_equal(out, _smooth(vol))
    assert len(client.scheduler_info()["workers"]) == 2


def test_labels_on_cluster_equal_in_memory(client):
    mask = ndi.gaussian_filter(np.random.default_rng(1).random((36, 40, 44)), 1.5) > 0.52
    ref, n_ref = ndi.label(mask)
    lazy, n = label(da.from_array(mask, chunks=12), scheduler=client)
    out = compute(lazy, scheduler=client)
    assert n == n_ref
    pairs = np.unique(np.column_stack([out[mask], ref[mask]]), axis=0)
    assert len(pairs) == n  # one-to-one correspondence of components


def test_resumable_store_on_cluster(client, tmp_path):
    vol = np.random.default_rng(2).normal(size=(32, 32, 32)).astype(np.float32)
    lazy = map_blocks(_smooth, da.from_array(vol, chunks=16), halo=7)
    path = store_resumable(lazy, tmp_path / "o.ome.zarr", (1, 1, 1), "um", scheduler=client)
    import zarr

    np.testing.assert_array_equal(zarr.open_array(str(path / "0"))[:], _smooth(vol))


def test_unreachable_scheduler_fails_fast_with_a_clear_message():
    start = time.monotonic()
    with pytest.raises(ValueError, match="cannot reach the dask scheduler"):
        with dask_client(scheduler="tcp://127.0.0.1:9", timeout_s=3):
            pass
    assert time.monotonic() - start < 15


def test_bad_cluster_arguments():
    with pytest.raises(ValueError, match="not both"):
        with dask_client(scheduler="tcp://x:1", workers=2):
            pass
    with pytest.raises(ValueError, match="at least 1"):
        with dask_client(workers=0):
            pass
