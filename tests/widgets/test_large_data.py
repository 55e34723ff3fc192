"""Large zarr results open in napari lazily, as multiscale pyramids with their physical frame."""

from __future__ import annotations

import dask.array as da
import numpy as np

from napari_corrtomo.core.resumable import store_resumable


def test_resumable_result_opens_as_a_lazy_pyramid(make_napari_viewer, tmp_path):
    vol = da.random.default_rng(0).random((64, 96, 80), chunks=32).astype(np.float32)
    labels = (vol > 0.5).astype(np.uint8)
    img = store_resumable(vol, tmp_path / "img.ome.zarr", (2.0, 0.5, 0.5), "um",
                          pyramid_min_size=16)
    lab = store_resumable(labels, tmp_path / "lab.ome.zarr", (2.0, 0.5, 0.5), "um",
                          layer_type="labels", pyramid_min_size=16)
    viewer = make_napari_viewer()
    [image] = viewer.open(str(img), plugin="napari-corrtomo")
    [seg] = viewer.open(str(lab), plugin="napari-corrtomo")
    assert image.multiscale and seg.multiscale
    assert type(seg).__name__ == "Labels"
    shapes = [tuple(level.shape) for level in image.data]
    assert shapes == [(64, 96, 80), (32, 48, 40), (16, 24, 20)]
    assert all(isinstance(level, da.Array) for level in image.data)  # never loaded whole
    np.testing.assert_allclose(image.scale, (2.0, 0.5, 0.5))
    np.testing.assert_array_equal(np.asarray(seg.data[0][5]), np.asarray(labels[5]))
