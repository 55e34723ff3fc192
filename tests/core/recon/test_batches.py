"""Parallel-beam FBP in slabs (one task per slab) equals the whole reconstruction, on a
2-worker LocalCluster (``corrtomo reconstruct --workers``: tests/test_cli_scale.py)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_corrtomo.core.backend import compute
from napari_corrtomo.core.cluster import dask_client
from napari_corrtomo.core.recon import reconstruct
from napari_corrtomo.core.recon.batches import reconstruct_slabs


@pytest.fixture(scope="module")
def client():
    with dask_client(workers=2, processes=False) as c:
        yield c


@pytest.mark.parametrize("case", ["default", "sub-volume", "row shifts"])
def test_slabs_equal_the_whole_reconstruction(client, parallel_sample, case):
    p, g = parallel_sample.projections, parallel_sample.geometry
    shape, vs, off = None, None, (0.0, 0.0, 0.0)
    if case == "sub-volume":  # finer voxels, off-centre: slabs read other rows than slices
        shape, vs, off = (10, 40, 40), 0.8 * g.pixel_size, (1.3 * g.pixel_size, 2.0, 0.0)
    if case == "row shifts":  # an aligned scan: every projection shifted along the rows
        shifts = g.shifts.copy()
        shifts[:, 0] = np.random.default_rng(0).uniform(-1.5, 1.5, len(shifts))
        g = g.with_shifts(shifts)
    ref = reconstruct(p, g, shape, vs, "fbp", backend="numpy", offset=off)
    lazy = reconstruct_slabs(p, g, shape, vs, slab=3, offset=off, backend="numpy")
    assert lazy.chunks[0][0] == 3 and lazy.numblocks[0] > 3
    np.testing.assert_allclose(compute(lazy), ref, rtol=1e-6, atol=1e-6 * np.abs(ref).max())


def test_slabs_refuse_other_geometries(lamino_sample):
    with pytest.raises(ValueError, match="parallel-beam"):
        reconstruct_slabs(lamino_sample.projections, lamino_sample.geometry)
