import logging
import sys
import types

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_corrtomo.core import backend
from napari_corrtomo.core.progress import Cancelled


def test_auto_falls_back_to_numpy_without_gpu(monkeypatch):
    monkeypatch.setattr(backend, "cupy_available", lambda: False)
    monkeypatch.delenv(backend.ENV_BACKEND, raising=False)
    assert backend.resolve_backend("auto") == "numpy"
    with pytest.raises(ValueError, match="needs CuPy and a CUDA GPU"):
        backend.resolve_backend("cupy")


def test_env_var_selects_backend(monkeypatch):
    monkeypatch.setenv(backend.ENV_BACKEND, "numpy")
    assert backend.resolve_backend() == "numpy"
    monkeypatch.setenv(backend.ENV_BACKEND, "tpu")
    with pytest.raises(ValueError, match="unknown backend"):
        backend.resolve_backend()


def test_cupy_absent_means_cpu_path_works(monkeypatch):
    # Simulate a machine where importing cupy fails outright.
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith("cupy"):
            raise ImportError("no cupy here")
        return real_import(name, *args, **kwargs)

    backend.cupy_available.cache_clear()
    monkeypatch.setattr(builtins, "__import__", fake_import)
    monkeypatch.delenv(backend.ENV_BACKEND, raising=False)
    try:
        assert backend.cupy_available() is False
        assert backend.xp_for("auto") is np
        x = np.arange(27.0).reshape(3, 3, 3)
        out = backend.map_blocks(lambda b: b * 2, x, halo=1, backend="auto")
        np.testing.assert_array_equal(out, 2 * x)
    finally:
        backend.cupy_available.cache_clear()


def test_to_host_passes_numpy_through():
    x = np.ones(3)
    assert backend.to_host(x) is x


@pytest.mark.parametrize("text,expected", [("8GB", 8e9), ("512MiB", 512 * 2**20), ("1000", 1000)])
def test_parse_bytes(text, expected):
    assert backend.parse_bytes(text) == int(expected)


def test_memory_budget_env(monkeypatch):
    monkeypatch.setenv(backend.ENV_MEMORY, "2GB")
    assert backend.memory_budget() == 2_000_000_000
    monkeypatch.setenv(backend.ENV_MEMORY, "-1")
    with pytest.raises(ValueError):
        backend.memory_budget()


def test_block_shape_respects_budget():
    shape, halo = (200, 300, 400), (4, 4, 4)
    block = backend.block_shape_for(shape, halo, bytes_per_voxel=8, budget=8 * 50**3)
    padded = np.prod([min(b + 2 * h, s) for b, h, s in zip(block, halo, shape)])
    assert padded * 8 <= 8 * 50**3
    assert min(block) >= 30  # not needlessly small
    assert backend.block_shape_for(shape, halo, 1, 10**12) == shape
    with pytest.raises(ValueError, match="memory budget") as e:
        backend.block_shape_for(shape, (100, 100, 100), 8, 1000)
    # sizes as people read them (a 1 kB budget once read "0.00 GB"); 201^3 voxels of 8 bytes
    assert str(e.value).startswith("a single block with halo (100, 100, 100) needs 65 MB, "
                                   "more than the memory budget of 1 kB;")
    assert [backend.format_bytes(n) for n in (2.25e9, 3.5e8, 5.04e7, 476_000, 24_000)] == [
        "2.2 GB", "0.3 GB", "50 MB", "476 kB", "24 kB"]
    # the API's and widgets' budget is the environment variable; the CLI's its --memory
    assert str(e.value).endswith("raise CORRTOMO_MEMORY_BUDGET or reduce the filter size")
    assert e.value.worded({"budget": "--memory"}).endswith("raise --memory or reduce the "
                                                          "filter size")


def test_blocks_cover_array_exactly_once():
    shape = (17, 23, 9)
    count = np.zeros(shape, int)
    for blk in backend.iter_blocks(shape, (5, 7, 4), (2, 2, 2)):
        count[blk.inner] += 1
        for i, o in zip(blk.inner, blk.outer):
            assert o.start <= i.start and o.stop >= i.stop
    assert np.all(count == 1)


def _gauss(block, sigma=2.0):
    return ndi.gaussian_filter(block, sigma, mode="reflect")


def test_map_blocks_equals_whole_array_numpy():
    rng = np.random.default_rng(0)
    vol = rng.normal(size=(40, 50, 60)).astype(np.float32)
    halo = int(4 * 2.0 + 0.5)  # gaussian_filter truncates at 4 sigma
    whole = _gauss(vol)
    blocked = backend.map_blocks(_gauss, vol, halo, block_shape=(13, 17, 19))
    np.testing.assert_array_equal(blocked, whole)


def test_map_blocks_too_small_halo_differs():
    # Guards the test above: a halo that is too small must change the answer.
    rng = np.random.default_rng(0)
    vol = rng.normal(size=(40, 50, 60)).astype(np.float32)
    blocked = backend.map_blocks(_gauss, vol, 2, block_shape=(13, 17, 19))
    assert not np.array_equal(blocked, _gauss(vol))


def test_map_blocks_leading_axes_change():
    # (C, z, y, x) -> (K, z, y, x): channels in, different channel count out.
    rng = np.random.default_rng(1)
    vol = rng.normal(size=(2, 20, 24, 28))

    def feats(block):
        return np.stack([block[0] + block[1], _gauss(block[0], 1.0), block[1] ** 2])

    whole = feats(vol)
    blocked = backend.map_blocks(feats, vol, 5, spatial_ndim=3, block_shape=(7, 9, 11))
    np.testing.assert_array_equal(blocked, whole)


def test_map_blocks_dask_and_zarr_equal_whole(tmp_path):
    import dask.array as da
    import zarr

    rng = np.random.default_rng(2)
    vol = rng.normal(size=(30, 40, 50)).astype(np.float32)
    halo = 9
    whole = _gauss(vol)
    lazy = backend.map_blocks(_gauss, da.from_array(vol, chunks=(10, 16, 20)), halo)
    assert isinstance(lazy, da.Array)
    np.testing.assert_array_equal(lazy.compute(), whole)
    z = zarr.open_array(str(tmp_path / "v.zarr"), mode="w", shape=vol.shape, chunks=(8, 8, 8),
                        dtype=vol.dtype)
    z[:] = vol
    # chunks (8) smaller than 2*halo are rechunked, answers unchanged
    out = backend.map_blocks(_gauss, z, halo)
    assert min(min(c) for c in out.chunks) >= 2 * halo or out.shape == vol.shape
    np.testing.assert_array_equal(out.compute(), whole)


@pytest.mark.parametrize("meta", [False, True], ids=["learned", "given"])
def test_map_blocks_dask_leading_axes_change_and_a_halo_beyond_the_array(meta):
    # (C, z, y, x) -> (K, z, y, x) and -> (z, y, x) on dask input whose z axis (6) is
    # shorter than the halo and whose chunks are smaller than it; the output's leading
    # shape learned from one block or given
    import dask.array as da

    rng = np.random.default_rng(3)
    vol = da.from_array(rng.normal(size=(2, 6, 24, 28)).astype(np.float32),
                        chunks=(1, 3, 5, 28))

    def feats(block):
        return np.stack([block[0] + block[1], _gauss(block[0], 1.0), block[1] ** 2])

    def merged(block):
        return _gauss(block.sum(axis=0), 1.0)

    for func, lead in ((feats, (3,)), (merged, ())):
        kw = {"out_leading": lead, "out_dtype": np.float32} if meta else {}
        lazy = backend.map_blocks(func, vol, 7, spatial_ndim=3, **kw)
        assert lazy.shape == lead + vol.shape[1:] and lazy.dtype == np.float32
        np.testing.assert_array_equal(lazy.compute(), func(vol.compute()))


def test_map_blocks_rejects_shape_changing_function():
    with pytest.raises(ValueError, match="preserve the spatial shape"):
        backend.map_blocks(lambda b: b[:-1], np.zeros((10, 10)), 1)


def test_progress_and_cancel():
    seen = []
    backend.map_blocks(lambda b: b, np.zeros((20, 20)), 1, block_shape=(5, 5),
                       progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (16, 16) and len(seen) == 16

    def cancel(done, total):
        if done == 3:
            raise Cancelled()

    with pytest.raises(Cancelled):
        backend.map_blocks(lambda b: b, np.zeros((20, 20)), 1, block_shape=(5, 5), progress=cancel)


def test_compute_reports_progress():
    import dask.array as da

    seen = []
    x = da.ones((20, 20), chunks=5) * 2
    out = backend.compute(x.sum(), progress=lambda d, t: seen.append((d, t)))
    assert out == 800
    assert seen and seen[-1][0] == seen[-1][1]


def test_dask_chunks_follow_the_memory_budget():
    import dask.array as da

    vol = np.random.default_rng(3).normal(size=(60, 60, 60)).astype(np.float32)
    big_chunks = da.from_array(vol, chunks=60)
    # 8 bytes per voxel and 40^3 padded voxels: blocks must shrink below 60.
    out = backend.map_blocks(_gauss, big_chunks, 9, bytes_per_voxel=8, budget=8 * 40**3)
    assert max(max(c) for c in out.chunks) < 60
    np.testing.assert_array_equal(out.compute(), _gauss(vol))


class _NoDeviceCupy(types.ModuleType):
    """CuPy installed on a machine without a device: the device query raises like
    ``cupy.cuda.runtime.getDeviceCount`` does there."""

    class CUDARuntimeError(RuntimeError):
        pass

    def __init__(self):
        super().__init__("cupy")
        self.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(
            getDeviceCount=self._no_device))

    def _no_device(self):
        raise self.CUDARuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")


def test_cupy_without_a_device_takes_the_cpu_path(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", _NoDeviceCupy())
    monkeypatch.delenv(backend.ENV_BACKEND, raising=False)
    backend.cupy_available.cache_clear()
    try:
        assert backend.cupy_available() is False
        assert backend.resolve_backend("auto", "forest.predict") == "numpy"
        with pytest.raises(ValueError, match="needs CuPy and a CUDA GPU"):
            backend.resolve_backend("cupy")
        x = np.arange(27.0).reshape(3, 3, 3)
        np.testing.assert_array_equal(backend.map_blocks(lambda b: b + 1, x, 1), x + 1)
    finally:
        backend.cupy_available.cache_clear()


def test_auto_uses_only_verified_gpu_paths_and_notes_the_rest_once(monkeypatch, caplog):
    monkeypatch.setattr(backend, "cupy_available", lambda: True)
    monkeypatch.delenv(backend.ENV_BACKEND, raising=False)
    monkeypatch.setattr(backend, "VERIFIED_GPU_PATHS", {"forest.predict": "a test device"})
    backend._note_unverified.cache_clear()
    with caplog.at_level(logging.WARNING, logger=backend.__name__):
        assert backend.resolve_backend("auto", "forest.predict") == "cupy"
        assert backend.resolve_backend("auto", "thickness.edt") == "numpy"
        assert backend.resolve_backend("auto", "thickness.edt") == "numpy"
        assert backend.resolve_backend("cupy", "thickness.edt") == "cupy"  # explicit: forced
    notes = [r.getMessage() for r in caplog.records]
    assert len(notes) == 1 and "'thickness.edt' is not verified" in notes[0]
    backend._note_unverified.cache_clear()


def test_no_gpu_path_is_verified_without_a_device_run():
    # Only a run on a real device (make gpu-check) may add entries, with its device name.
    assert all(isinstance(dev, str) and dev for dev in backend.VERIFIED_GPU_PATHS.values())
