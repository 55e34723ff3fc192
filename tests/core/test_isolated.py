"""A core call in a process of its own: same result, its errors, Cancel kills it."""

import time

import numpy as np
import pandas as pd
import pytest

from napari_corrtomo.core.isolated import POLL_S, IsolatedProcess
from napari_corrtomo.core.progress import Cancelled
from napari_corrtomo.core.quantify import QuantifySettings, quantify
from napari_corrtomo.core.synthetic import PORE, RESIN, SOLID, paint_spheres

SP = (0.5, 0.5, 0.5)
SETTINGS = QuantifySettings(phase=PORE, matrix=SOLID, outside=(0, RESIN))


def _block(n: int) -> np.ndarray:
    rng = np.random.default_rng(5)
    lab = np.full((n, n, n), RESIN, np.uint8)
    k = max(n // 8, 2)
    centres = rng.uniform(0, n * SP[0], (k, 3))
    paint_spheres(lab, centres, rng.uniform(3.0, 6.0, k), SOLID, SP)
    paint_spheres(lab, centres, rng.uniform(0.8, 2.0, k), PORE, SP, only=SOLID)
    return lab


def test_the_result_equals_the_call_in_this_process():
    lab = _block(40)
    measures = ["porosity", "thickness", "closed_pores"]
    here = quantify(lab, SP, "um", measures=measures, settings=SETTINGS)
    reports = []
    there = IsolatedProcess(["napari_corrtomo.core.quantify"]).call(
        quantify, lab, SP, "um", measures=measures, settings=SETTINGS,
        progress=lambda d, t: reports.append((d, t)))
    pd.testing.assert_frame_equal(there.summary(), here.summary())
    assert there.arrays.keys() == here.arrays.keys()
    for name in here.arrays:
        np.testing.assert_array_equal(np.asarray(there.arrays[name].data),
                                      np.asarray(here.arrays[name].data))
    assert reports[-1][0] == reports[-1][1] > 1  # the process's own progress came through


def test_an_error_in_the_process_is_raised_with_its_message():
    lab = _block(24)
    with pytest.raises(ValueError) as here:
        quantify(lab, SP, "um", measures=["no such measure"], settings=SETTINGS)
    with pytest.raises(ValueError) as there:
        IsolatedProcess().call(quantify, lab, SP, "um", measures=["no such measure"],
                               settings=SETTINGS)
    assert str(there.value) == str(here.value)


def test_cancel_kills_the_process_within_the_poll_interval():
    lab = _block(160)
    process = IsolatedProcess(["napari_corrtomo.core.quantify"])
    cancel_at: list[float] = []

    def progress(done, total):
        if done > 0 and not cancel_at:
            cancel_at.append(time.perf_counter() + 0.3)  # well inside the measures
        if cancel_at and time.perf_counter() > cancel_at[0]:
            raise Cancelled()

    with pytest.raises(Cancelled):
        process.call(quantify, lab, SP, "um", measures=["thickness", "closed_pores", "surface"],
                     settings=SETTINGS, progress=progress)
    stopped = time.perf_counter() - cancel_at[0]
    assert stopped < POLL_S + 0.5  # one poll, then kill and join
    assert not process.is_alive()
    with pytest.raises(RuntimeError, match="one call"):
        process.call(quantify, lab, SP, "um")


class _Spy:
    """A connection's sending end that notes the size of each pickle sent through it."""

    def __init__(self, conn):
        self.conn, self.pickles = conn, []

    def send(self, message):
        self.pickles.append(len(message[0]))
        self.conn.send(message)

    def send_bytes(self, buffer):
        self.conn.send_bytes(buffer)


@pytest.mark.parametrize("readv", [True, False], ids=["readv", "recv_bytes_into"])
def test_arrays_travel_out_of_band_and_arrive_equal_and_writable(readv, monkeypatch):
    """The pickle carries none of the arrays' bytes (those would be copied into it under the
    GIL, pausing the viewer); every layout arrives equal, writable, in its own memory,
    read by ``os.readv`` (POSIX) or by the Connection's own read (elsewhere)."""
    import multiprocessing as mp
    import os
    import threading

    if not readv:
        monkeypatch.delattr(os, "readv", raising=False)

    from napari_corrtomo.core.isolated import _receive, _send

    rng = np.random.default_rng(0)
    big = rng.random((64, 256, 256), dtype=np.float32)  # 16 MiB
    arrays = [big, np.asfortranarray(rng.integers(0, 9, (30, 40, 50), dtype=np.uint16)),
              rng.random(7).astype(">f8"), np.zeros((0, 3)), rng.random((5, 6)) > 0.5,
              big[::2, 1::3]]  # the last not contiguous: pickled in band
    a, b = mp.Pipe()
    received: list = []
    reader = threading.Thread(target=lambda: received.append(_receive(b)))
    reader.start()
    spy = _Spy(a)
    _send(spy, "call", arrays[:-1], {"k": 1})
    reader.join(30)
    kind, got, extra = received[0]
    assert kind == "call" and extra == {"k": 1}
    assert spy.pickles[0] < 2000  # 16 MiB sent, a pickle of shapes and dtypes
    reader = threading.Thread(target=lambda: received.append(_receive(b)))
    reader.start()
    _send(a, "result", arrays[-1])
    reader.join(30)
    for want, have in zip(arrays, [*got, received[1][1]], strict=True):
        np.testing.assert_array_equal(have, want)
        assert have.dtype == want.dtype and have.flags.writeable
        assert not np.shares_memory(have, want)
    a.close()
    b.close()


def test_a_script_without_a_main_guard_is_not_run_again_by_the_worker(tmp_path):
    """napari's examples are scripts without ``if __name__ == "__main__"``: the spawned
    worker ran such a script again (a second viewer; here a second worker while the first
    boots: the call failed). The worker now starts without it."""
    import subprocess
    import sys

    script = tmp_path / "script.py"
    script.write_text(
        "import numpy as np\n"
        "from napari_corrtomo.core.isolated import IsolatedProcess\n"
        "from napari_corrtomo.core.quantify import QuantifySettings, quantify\n"
        "print('script start', flush=True)\n"
        "lab = np.zeros((8, 8, 8), np.uint8)\n"
        "lab[2:6, 2:6, 2:6] = 1\n"
        "r = IsolatedProcess(['napari_corrtomo.core.quantify']).call(\n"
        "    quantify, lab, (1.0,) * 3, 'um', measures=['porosity'],\n"
        "    settings=QuantifySettings(phase=1))\n"
        "print('porosity', r.summary()['value'].iloc[0], flush=True)\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["script start", "porosity 0.125"]
