import os
import shutil
import socket
import subprocess
import sys

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_corrtomo.core import io
from napari_corrtomo.core.backend import map_blocks
from napari_corrtomo.core.resumable import (
    content_digest,
    input_signature,
    store_resumable,
    writing,
)


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
    assert io.run_record(tmp_path / "out.ome.zarr")["complete"] is True


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
    assert io.run_record(path)["complete"] is False

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


def test_a_foreign_directory_is_never_replaced(tmp_path, volume):
    path = tmp_path / "out.ome.zarr"
    path.mkdir()
    (path / "notes.txt").write_text("mine")
    for overwrite in (False, True):
        with pytest.raises(ValueError, match="not a napari-corrtomo result store"):
            store_resumable(da.from_array(volume, chunks=16), path, (1, 1, 1), "um",
                            overwrite=overwrite)
    assert (path / "notes.txt").read_text() == "mine"
    empty = tmp_path / "empty.ome.zarr"
    empty.mkdir()
    store_resumable(da.from_array(volume, chunks=16), empty, (1, 1, 1), "um")
    assert io.run_record(empty)["complete"]


def test_a_store_being_written_is_locked(tmp_path, volume):
    path = tmp_path / "out.ome.zarr"
    lock = tmp_path / "out.ome.zarr.corrtomo-lock"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:  # another live process holds the lock
        lock.write_text(f"{socket.gethostname()} {other.pid}")
        with pytest.raises(ValueError, match=rf"being written by another run .* {other.pid}"):
            store_resumable(da.from_array(volume, chunks=16), path, (1, 1, 1), "um")
    finally:
        other.kill()
        other.wait()
    assert not path.exists()  # the refused writer touched nothing
    lock.unlink()
    with writing(path):  # the holder itself may write (a command locks its outputs first)
        store_resumable(da.from_array(volume, chunks=16), path, (1, 1, 1), "um")
        assert lock.exists()
    assert not lock.exists()
    shutil.rmtree(path)
    # a lock left by a process that no longer runs (killed) is taken over
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    lock.write_text(f"{socket.gethostname()} {dead}")
    store_resumable(da.from_array(volume, chunks=16), path, (1, 1, 1), "um")
    assert io.run_record(path)["complete"] and not lock.exists()


def test_content_digest_sees_an_edited_chunk_not_a_touched_file(tmp_path, volume):
    path = tmp_path / "in.ome.zarr"
    store_resumable(da.from_array(volume, chunks=16), path, (1, 1, 1), "um")
    before = input_signature([path])
    chunk = next(p for p in (path / "0").rglob("*") if p.is_file() and not p.name.startswith("."))
    os.utime(chunk)  # a newer mtime alone is not a change
    assert input_signature([path]) == before
    data = bytearray(chunk.read_bytes())
    data[-1] ^= 0xFF
    chunk.write_bytes(bytes(data))
    after = input_signature([path])
    assert after[0]["path"] == before[0]["path"] and after[0]["digest"] != before[0]["digest"]
    tif = tmp_path / "a.tif"
    io.write_tiff(tif, volume, (1, 1, 1), "um")
    assert content_digest(tif) != content_digest(path)
    with pytest.raises(ValueError, match="no such file"):
        content_digest(tmp_path / "missing.tif")
