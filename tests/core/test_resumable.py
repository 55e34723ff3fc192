import dask.array as da
import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_corrtomo.core import io
from napari_corrtomo.core.backend import map_blocks
from napari_corrtomo.core.resumable import run_state, store_resumable


def _smooth(block):
    return ndi.gaussian_filter(block, 1.0)


@pytest.fixture
def volume():
    return np.random.default_rng(0).normal(size=(48, 40, 36)).astype(np.float32)


def test_store_equals_in_memory_and_is_a_lazy_pyramid(tmp_path, volume):
    lazy = map_blocks(_smooth, da.from_array(volume, chunks=16), halo=4)
    store_resumable(lazy, tmp_path / "out.ome.zarr", (2.0, 1.0, 1.0), "nm", pyramid_min_size=8)
    [v] = io.read_volumes(tmp_path / "out.ome.zarr")
    np.testing.assert_array_equal(v.data[0].compute(), _smooth(volume))
    assert [d.shape for d in v.data] == [(48, 40, 36), (24, 20, 18), (12, 10, 9)]
    assert v.scale == (2.0, 1.0, 1.0) and v.units == ("nm",) * 3
    assert run_state(tmp_path / "out.ome.zarr")["complete"] is True


def test_interrupted_run_resumes_without_redoing_chunks(tmp_path, volume):
    path = tmp_path / "out.ome.zarr"
    calls = []

    def flaky(block):
        calls.append(block.shape)
        if len(calls) == 5:
            raise RuntimeError("node lost")
        return block * 2

    meta = np.empty((0, 0, 0), np.float32)  # no trial call of the function by dask
    lazy = da.from_array(volume, chunks=(16, 20, 18)).map_blocks(flaky, meta=meta)
    with pytest.raises(RuntimeError, match="node lost"):
        store_resumable(lazy, path, (1, 1, 1), "um", signature={"op": "x2"},
                        scheduler="synchronous")
    finished = len(list((path / ".corrtomo-done").iterdir()))
    assert finished == 4
    assert run_state(path)["complete"] is False

    calls.clear()
    again = da.from_array(volume, chunks=(16, 20, 18)).map_blocks(
        lambda b: (calls.append(1), b * 2)[1], meta=meta)
    store_resumable(again, path, (1, 1, 1), "um", signature={"op": "x2"}, scheduler="synchronous")
    assert len(calls) == 12 - finished  # 3 x 2 x 2 chunks in all
    np.testing.assert_array_equal(io.read_volumes(path)[0].array.compute(), volume * 2)
    # A completed store is not recomputed.
    calls.clear()
    store_resumable(again, path, (1, 1, 1), "um", signature={"op": "x2"})
    assert calls == []


def test_a_different_run_is_refused_or_replaced(tmp_path, volume):
    path = tmp_path / "out.ome.zarr"
    store_resumable(da.from_array(volume, chunks=16), path, (1, 1, 1), "um", signature={"a": 1})
    with pytest.raises(ValueError, match="different result"):
        store_resumable(da.from_array(volume, chunks=16), path, (1, 1, 1), "um", signature={"a": 2})
    store_resumable(da.from_array(-volume, chunks=16), path, (1, 1, 1), "um", signature={"a": 2},
                    overwrite=True)
    np.testing.assert_array_equal(io.read_volumes(path)[0].array.compute(), -volume)


def test_labels_store_keeps_label_values(tmp_path):
    lab = np.zeros((32, 32, 32), np.int32)
    lab[::2] = 70000
    store_resumable(da.from_array(lab, chunks=8), tmp_path / "l.ome.zarr", (1, 1, 1), "um",
                    layer_type="labels", pyramid_min_size=8)
    [v] = io.read_volumes(tmp_path / "l.ome.zarr")
    assert v.layer_type == "labels"
    assert set(np.unique(v.data[1].compute())) == {70000}
