"""A local cluster's per-worker memory limit is what blocks are planned for (its own module:
one cluster at a time)."""

from __future__ import annotations

import os

import dask.array as da
import numpy as np

from napari_corrtomo.core.backend import ENV_MEMORY, compute, map_blocks
from napari_corrtomo.core.cluster import BUDGET_FRACTION, dask_client


def test_blocks_are_planned_for_the_worker_memory_limit():
    arr = da.zeros((64, 192, 192), np.float32, chunks=-1)
    with dask_client(workers=1, memory_limit="100MB", processes=False):
        assert int(os.environ[ENV_MEMORY]) == int(100e6 * BUDGET_FRACTION)
        out = map_blocks(np.negative, arr, halo=2, bytes_per_voxel=40)
        padded = np.prod([min(max(c) + 4, n) for c, n in zip(out.chunks, arr.shape)])
        assert padded * 40 <= 100e6 * BUDGET_FRACTION  # one padded block fits the budget
        assert out.npartitions > 1  # the single 64x192x192 chunk (94 MB at 40 B/voxel) split
        np.testing.assert_array_equal(compute(out), -np.zeros(arr.shape, np.float32))
    assert os.environ.get(ENV_MEMORY) != str(int(100e6 * BUDGET_FRACTION))  # restored
