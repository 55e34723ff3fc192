"""Real ``corrtomo`` processes, interrupted and raced: whatever happens to a run, what
ends up in its output equals one fresh, uninterrupted run (or the run is refused).

Processes are paused with SIGSTOP at a known point (the first chunk written, or the
output lock taken) so the tests do not depend on the machine's speed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import zarr

from napari_corrtomo.core import io
from napari_corrtomo.core.classify import FeatureSpec, FilterItem, PixelClassifier
from napari_corrtomo.core.synthetic import leveled_wave, paint_spheres

SP = (0.5, 0.5, 0.5)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A one-channel OME-Zarr image (16^3 chunks), a classifier, a label OME-Zarr, and the
    result of one fresh classify run."""
    d = tmp_path_factory.mktemp("resume")
    truth = leveled_wave((48, 64, 64), SP, wavelength=8.0, solid_fraction=0.4, seed=2)
    img = (truth + np.random.default_rng(0).normal(0, 0.3, truth.shape)).astype(np.float32)
    scr = np.zeros(truth.shape, np.uint8)
    scr[::6, ::4, ::4] = truth[::6, ::4, ::4] + 1
    spec = FeatureSpec(tuple(FilterItem(n, s) for n in ("gaussian", "hessian", "ste")
                             for s in (0.7, 1.6)))
    clf = PixelClassifier(spec, n_trees=24).fit(img, scr, SP, "um")
    clf.save(d / "clf.corrclf.npz")
    io.write_ome_zarr(d / "img.ome.zarr", img, SP, "um", chunks=16)
    rng = np.random.default_rng(3)
    lab = np.ones((36, 40, 44), np.uint8)
    centres = rng.uniform(0, 20, (10, 3))
    paint_spheres(lab, centres, rng.uniform(2.0, 4.0, 10), 2, SP)
    paint_spheres(lab, centres, rng.uniform(0.6, 1.4, 10), 3, SP, only=2)
    io.write_ome_zarr(d / "lab.ome.zarr", lab, SP, "um", "labels", chunks=18)
    assert _run(_classify(d, d / "fresh.ome.zarr")).returncode == 0
    return d


def _classify(d, out):
    return ["classify", str(d / "img.ome.zarr"), "--classifier", str(d / "clf.corrclf.npz"),
            "--out", str(out)]


def _quantify(d, out, phase, *extra):
    return ["quantify", str(d / "lab.ome.zarr"), "--out", str(out), "--phase", str(phase),
            "--matrix", str(5 - phase), "--outside", "1", "--measures", "porosity,closed_pores,thickness",
            *extra]


def _cmd(args):
    return [sys.executable, "-m", "napari_corrtomo.cli", *args]


def _run(args):
    return subprocess.run(_cmd(args), capture_output=True, text=True, timeout=600,
                          env=os.environ.copy())


def _start(args):
    # SIGINT as in a terminal: a test session started in the background (CI scripts, nohup)
    # passes SIGINT on ignored, and the run would never see the interrupt
    return subprocess.Popen(_cmd(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=os.environ.copy(),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _stop_when(proc, ready, timeout=120.0):
    """SIGSTOP ``proc`` as soon as ``ready()`` holds (it must still be running)."""
    end = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, f"finished before the test could pause it: {proc.stderr.read()}"
        assert time.monotonic() < end, "the run never reached the pause point"
        time.sleep(0.01)
    proc.send_signal(signal.SIGSTOP)


def _volume(path):
    return np.asarray(io.read_volumes(path)[0].array)


def _chunks_written(out: Path):
    done = out / ".corrtomo-done"
    return lambda: done.is_dir() and any(done.iterdir())


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_an_interrupted_run_resumes_to_the_fresh_result(inputs, tmp_path, sig):
    out = tmp_path / "seg.ome.zarr"
    proc = _start(_classify(inputs, out))
    _stop_when(proc, _chunks_written(out))
    proc.send_signal(sig)
    proc.send_signal(signal.SIGCONT)
    proc.wait(timeout=60)
    assert proc.returncode == (130 if sig == signal.SIGINT else -signal.SIGKILL)
    if sig == signal.SIGINT:
        assert "interrupted" in proc.stderr.read()
    done_before = len(list((out / ".corrtomo-done").iterdir()))
    assert 0 < done_before < 3 * 4 * 4  # stopped part-way (48x64x64 in 16^3 chunks)
    again = _run(_classify(inputs, out))  # SIGKILL left a stale lock: taken over
    assert again.returncode == 0, again.stderr
    np.testing.assert_array_equal(_volume(out), _volume(inputs / "fresh.ome.zarr"))


def test_two_concurrent_runs_to_one_output(inputs, tmp_path):
    out = tmp_path / "seg.ome.zarr"
    lock = tmp_path / "seg.ome.zarr.corrtomo-lock"
    first = _start(_classify(inputs, out))
    _stop_when(first, lock.exists)  # the first run holds the output
    try:
        second = _run(_classify(inputs, out))
    finally:
        first.send_signal(signal.SIGCONT)
    assert second.returncode == 1
    assert "being written by another run" in second.stderr and str(first.pid) in second.stderr
    assert second.stderr.count("\n") == 1
    assert first.wait(timeout=600) == 0
    np.testing.assert_array_equal(_volume(out), _volume(inputs / "fresh.ome.zarr"))


def test_a_changed_setting_never_reuses_the_earlier_results(inputs, tmp_path):
    """--phase 2 after a --phase 3 run once reused the phase-3 stores (135 stale closed
    pores); now it is refused, and with --overwrite equals a fresh run."""
    out, fresh = tmp_path / "q", tmp_path / "fresh"
    assert _run(_quantify(inputs, out, 3)).returncode == 0
    refused = _run(_quantify(inputs, out, 2))
    assert refused.returncode == 1 and "--overwrite" in refused.stderr
    assert _run(_quantify(inputs, out, 2, "--overwrite")).returncode == 0
    assert _run(_quantify(inputs, fresh, 2)).returncode == 0
    pd.testing.assert_frame_equal(pd.read_csv(out / "summary.csv"),
                                  pd.read_csv(fresh / "summary.csv"))


def test_an_edited_input_chunk_is_noticed(inputs, tmp_path):
    """Painting into the label zarr in place changes the run's input: the earlier stores
    are not reused; with --overwrite the result equals a fresh run on the edited labels."""
    lab = tmp_path / "lab.ome.zarr"
    io.write_ome_zarr(lab, _volume(inputs / "lab.ome.zarr"), SP, "um", "labels", chunks=18)
    args = ["quantify", str(lab), "--phase", "3", "--matrix", "2", "--outside", "1",
            "--measures", "porosity,closed_pores,thickness"]
    out, fresh = tmp_path / "q", tmp_path / "fresh"
    assert _run([*args, "--out", str(out)]).returncode == 0
    before = pd.read_csv(out / "summary.csv")
    arr = zarr.open_group(str(lab), mode="r+")["0"]
    arr[10:16, 10:16, 10:16] = 3  # a painted pore
    refused = _run([*args, "--out", str(out)])
    assert refused.returncode == 1 and "--overwrite" in refused.stderr
    assert _run([*args, "--out", str(out), "--overwrite"]).returncode == 0
    assert _run([*args, "--out", str(fresh)]).returncode == 0
    after = pd.read_csv(out / "summary.csv")
    pd.testing.assert_frame_equal(after, pd.read_csv(fresh / "summary.csv"))
    assert not after.equals(before)


def test_a_rerun_says_that_it_resumes(inputs, tmp_path):
    """Reruns of an interrupted classify or quantify once gave no sign of resuming."""
    out = tmp_path / "seg.ome.zarr"
    proc = _start(_classify(inputs, out))
    _stop_when(proc, _chunks_written(out))
    proc.send_signal(signal.SIGKILL)
    proc.send_signal(signal.SIGCONT)
    proc.wait(timeout=60)
    done = len(list((out / ".corrtomo-done").iterdir()))
    again = _run(_classify(inputs, out))
    assert again.returncode == 0, again.stderr
    assert (f"corrtomo classify: resuming the interrupted run: {done} of 48 blocks of the "
            "result already written") in again.stderr
    assert "resuming" not in _run(_classify(inputs, tmp_path / "new.ome.zarr")).stderr

    q = tmp_path / "q"
    proc = _start(_quantify(inputs, q, 3))
    _stop_when(proc, lambda: any((q / "volumes").glob("*.ome.zarr/.corrtomo-done/*")))
    proc.send_signal(signal.SIGKILL)
    proc.send_signal(signal.SIGCONT)
    proc.wait(timeout=60)
    again = _run(_quantify(inputs, q, 3))
    assert again.returncode == 0, again.stderr
    assert "corrtomo quantify: resuming the interrupted run: " in again.stderr
