"""Cancel latency and UI responsiveness of the long actions (issue 17).

Run (under a display, holding the shared benchmark lock):

    flock /tmp/corrtomo-bench.lock xvfb-run -a python benchmarks/cancel.py [--repeat 3]

1. Widget actions: each entry of :data:`ACTIONS` is a widget test (real napari viewer,
   real button clicks) that clicks the action's button, clicks *Cancel* 2 s later and
   measures, with the shared ``cancel_mid_action`` fixture (tests/widgets/conftest.py),
   the time from the Cancel click to the end of the worker thread and the longest pause
   of a 20 ms ``QTimer`` on the UI thread from the start click to that end. The test is
   run with ``$CORRTOMO_CANCEL_RECORD`` set, so the numbers are the test's own.
2. Quantify, measure by measure (core, no viewer; ``--measures``): each measure alone on
   the same 192^3 porous block as the widget test, cancelled 0.5 s after it starts,
   while a Python thread sleeping 20 ms stands in for the UI thread (a compiled call
   holding the GIL shows as a long pause). A measure done before 0.5 s says so.
3. A project load run to its end (``--load N``): the 53-layer project of the widget test
   ``test_load_keeps_the_ui_responsive``, its largest UI pause and duration, N runs, and
   for each pause over 100 ms the napari/vispy call the UI thread was in (the test's
   heartbeat samples its stack while recording).
4. napari's own UI-thread cost of adding one layer (``--add-layer``): CPU time of
   ``viewer.add_layer`` for 3D images of 8^3 and of 160 x 224 x 224 voxels (contrast limits
   given, so napari scans no data), and of a first labels layer after the worker-side
   warm-up that a project load does.

Prints Markdown and writes it to ``docs/benchmarks/cancel.md``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from napari_corrtomo.core.progress import Cancelled  # noqa: E402
from napari_corrtomo.core.quantify import MEASURES, QuantifySettings, quantify  # noqa: E402
from napari_corrtomo.core.synthetic import PORE, RESIN, SOLID  # noqa: E402

#: (action, widget test that cancels it at 2 s or at the stage named); one entry per long
#: action
ACTIONS = [
    ("Quantify: all measures, 192^3",
     "tests/widgets/test_quantify.py::test_cancel_all_measures_at_2_s"),
    ("Register: refine by intensity (affine, joint histogram MI)",
     "tests/widgets/test_register.py::test_cancel_refine_at_2_s"),
    ("Project: save 400 MB",
     "tests/widgets/test_project.py::test_cancelled_save_keeps_the_previous_project"),
    ("Project: load 400 MB (53 layers)",
     "tests/widgets/test_project.py::test_cancelled_load_leaves_no_layer"),
    ("Project: load 400 MB, cancelled while adding (bar past 750 of 1000)",
     "tests/widgets/test_project.py::test_load_cancelled_while_adding_takes_every_layer_back"),
    ("Classify: live training, 8 M labelled voxels of 224^3",
     "tests/widgets/test_classify.py::test_cancel_live_training_on_8_million_labelled_voxels"),
    ("Classify: predict volume 224^3",
     "tests/widgets/test_classify.py::test_cancel_predict_volume_224"),
    ("FIB: ml interpolation, 48 x 128 x 128",
     "tests/widgets/test_fib.py::test_ml_interpolation_shows_progress_and_cancels_within_a_second"),
]


#: a long action run to its end: the test records its duration and UI gaps
LOAD_TEST = "tests/widgets/test_project.py::test_load_keeps_the_ui_responsive"


def run_recorded(test: str) -> dict:
    """Run one widget test with ``$CORRTOMO_CANCEL_RECORD`` set; its last record."""
    with tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False) as f:
        record = f.name
    env = {**os.environ, "CORRTOMO_CANCEL_RECORD": record, "PYTHONPATH": str(ROOT / "src")}
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test],
                   cwd=ROOT, env=env, stdout=subprocess.DEVNULL, check=False)
    lines = Path(record).read_text().splitlines()
    os.unlink(record)
    if not lines:
        raise RuntimeError(f"{test} recorded nothing (did it reach its measurement?)")
    return json.loads(lines[-1])


def widget_rows(repeat: int) -> list[tuple[str, list[float], list[float]]]:
    """(action, cancel latencies in s, max UI gaps in s) over ``repeat`` runs each."""
    rows = []
    for action, test in ACTIONS:
        entries = [run_recorded(test) for _ in range(repeat)]
        rows.append((action, [e["latency_s"] for e in entries],
                     [e["max_gap_s"] for e in entries]))
    return rows


def load_rows(repeat: int) -> list[str]:
    """The 53-layer project loaded to its end ``repeat`` times: UI gaps and duration."""
    entries = [run_recorded(LOAD_TEST) for _ in range(repeat)]
    gaps = [1000 * e["max_gap_s"] for e in entries]
    return ["", f"Project load to its end (`{LOAD_TEST.split('::')[1]}`: 400 MB, 53 layers "
            f"into a shown viewer, heartbeat from the click to the end), {repeat} runs:", "",
            "| max UI gap (ms): median (max) | runs with a gap > 100 ms | gaps > 100 ms per run "
            "| load (s) |", "|---|---|---|---|",
            f"| {np.median(gaps):.0f} ({max(gaps):.0f}) | {sum(g > 100 for g in gaps)} of "
            f"{repeat} | {', '.join(str(e['gaps_over_bound']) for e in entries)} | "
            f"{min(e['duration_s'] for e in entries):.1f}-"
            f"{max(e['duration_s'] for e in entries):.1f} |", *pause_table(entries)]


def pause_table(entries: list[dict]) -> list[str]:
    """Markdown lines: where the UI thread was in the pauses over 100 ms of ``entries``
    (its stack sampled every 5 ms once a beat is 50 ms late: the outermost and innermost
    napari or vispy call of most samples of each pause)."""
    where: dict[str, list[float]] = {}
    for entry in entries:
        for gap, source in entry.get("pause_sources", []):
            where.setdefault(source, []).append(1000 * gap)
    if not where:
        return ["", "No pause over 100 ms."]
    rows = sorted(where.items(), key=lambda item: -len(item[1]))
    return ["", "Where those pauses over 100 ms went (UI thread's stack sampled every 5 ms "
            "once a beat is 50 ms late; the outermost > innermost napari/vispy call of most "
            "samples):", "", "| pauses | longest (ms) | UI thread in |", "|---|---|---|",
            *(f"| {len(gaps)} | {max(gaps):.0f} | `{source}` |" for source, gaps in rows)]


def porous_block():
    """The 192^3 block of the Quantify widget test (tests/widgets/test_quantify.py)."""
    path = ROOT / "tests" / "widgets" / "test_quantify.py"
    spec = importlib.util.spec_from_file_location("test_quantify", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.porous_block_data()


def cancel_measure(key: str, lab, img, sp, after_s: float = 0.5) -> tuple[float, float, float]:
    """(run time or cancel latency in s, longest pause of a 20 ms sleeper in s, 1.0 if it
    was cancelled, 0.0 if it ended first, -1.0 if it refused the block) of one measure
    cancelled ``after_s`` into it."""
    cancel = threading.Event()
    settings = QuantifySettings(phase=PORE, matrix=SOLID, outside=(0, RESIN))

    def progress(done: int, total: int) -> None:
        if cancel.is_set():
            raise Cancelled()

    ended: list[float] = []
    failed: list[str] = []

    def work() -> None:
        try:
            quantify(lab, sp, "um", measures=[key], settings=settings, intensity=img,
                     progress=progress)
        except Cancelled:
            pass
        except ValueError as exc:  # the measure does not apply to this block
            failed.append(str(exc))
        ended.append(time.perf_counter())

    beats = [time.perf_counter()]
    start = beats[0]
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    clicked = None
    while not ended:
        time.sleep(0.02)
        beats.append(time.perf_counter())
        if clicked is None and beats[-1] - start >= after_s:
            clicked = time.perf_counter()
            cancel.set()
    thread.join()
    gap = float(np.diff(beats).max())
    if failed:
        return ended[0] - start, gap, -1.0
    if clicked is None:
        return ended[0] - start, gap, 0.0
    return ended[0] - clicked, gap, 1.0


def add_layer_costs(repeat: int) -> list[str]:
    """Markdown lines: CPU ms of the UI thread per ``viewer.add_layer``, and the part of it
    spent in CPython's full (generation 2) garbage collections (see the module doc)."""
    import gc

    import napari
    from napari.layers import Image, Labels

    from napari_corrtomo.widgets.project import _warm_labels_overlays

    full_gc: list[float] = []

    def on_gc(phase: str, info: dict) -> None:
        if info["generation"] == 2:
            full_gc.append(time.thread_time() if phase == "start" else -time.thread_time())

    def cpu_ms(call) -> str:
        full_gc.clear()
        start = time.thread_time()
        call()
        total = 1000 * (time.thread_time() - start)
        collected = -1000 * sum(full_gc)
        return f"{total:.0f}" + (f" ({collected:.0f} full GC)" if full_gc else "")

    gc.callbacks.append(on_gc)
    viewer = napari.Viewer(show=False)
    rows = []
    for shape in [(8, 8, 8), (160, 224, 224)] * 2:
        layers = [Image(np.zeros(shape, np.float32), contrast_limits=(0, 1))
                  for _ in range(repeat)]
        costs = [cpu_ms(lambda layer=layer: viewer.add_layer(layer)) for layer in layers]
        rows.append(f"| image {'x'.join(map(str, shape))} | {', '.join(costs)} |")
    warm = cpu_ms(_warm_labels_overlays)
    labels_layer = Labels(np.ones((160, 224, 224), np.uint8))
    labels = cpu_ms(lambda: viewer.add_layer(labels_layer))
    rows.append(f"| first labels 160x224x224 (after {warm} ms of warm-up in a worker) | "
                f"{labels} |")
    viewer.close()
    gc.callbacks.remove(on_gc)
    tracked = len(gc.get_objects())
    return ["", "napari's `viewer.add_layer`, UI-thread CPU ms per call (`--add-layer`), "
            f"one viewer, in this order ({tracked} objects tracked by the GC at the end):",
            "", "| layer | CPU ms per add |", "|---|---|", *rows]


def switch_interval_rows(seconds: float = 3.0) -> list[str]:
    """Markdown lines: the UI heartbeat of a 36-layer viewer repainted every 100 ms, with a
    worker running Python beside it or not, at CPython's default thread switch interval
    (5 ms) and at the one TaskRunner sets while its workers run."""
    import sys
    import threading

    import napari
    from qtpy.QtCore import QEventLoop, QTimer

    from napari_corrtomo.widgets._runner import WORKER_SWITCH_INTERVAL_S

    viewer = napari.Viewer(show=True)
    rng = np.random.default_rng(0)
    for i in range(36):
        if i % 2:
            viewer.add_points(rng.random((50, 3)) * 32)
        else:
            viewer.add_image(rng.random((32, 128, 128), dtype=np.float32), opacity=0.5)

    def heartbeat(busy: bool) -> np.ndarray:
        stop = threading.Event()

        def python_work() -> None:  # what building graphs or tables looks like to the GIL
            while not stop.is_set():
                {k: str(k) for k in range(2000)}

        worker = threading.Thread(target=python_work)
        if busy:
            worker.start()
        beats: list[float] = []
        beat, repaint, loop = QTimer(), QTimer(), QEventLoop()
        beat.timeout.connect(lambda: beats.append(time.perf_counter()))
        step = iter(range(10**6))
        repaint.timeout.connect(
            lambda: setattr(viewer.layers[0], "opacity", 0.5 + 0.01 * (next(step) % 5)))
        beat.start(20)
        repaint.start(100)
        QTimer.singleShot(int(1000 * seconds), loop.quit)
        loop.exec()
        beat.stop()
        repaint.stop()
        stop.set()
        if busy:
            worker.join()
        return np.diff(beats)

    default = sys.getswitchinterval()
    heartbeat(False)  # every visual drawn once
    rows = []
    for interval in (default, WORKER_SWITCH_INTERVAL_S):
        sys.setswitchinterval(interval)
        for busy in (False, True):
            gaps = heartbeat(busy)
            rows.append(f"| {1000 * interval:g} | {'running Python' if busy else 'none'} | "
                        f"{1000 * gaps.max():.0f} | {1000 * np.median(gaps):.0f} | "
                        f"{(gaps > 0.1).sum()} |")
    sys.setswitchinterval(default)
    viewer.close()
    return ["", f"UI heartbeat of a 36-layer viewer repainted every 100 ms for {seconds:g} s "
            "(`--gil`):", "",
            "| switch interval (ms) | worker thread | max gap (ms) | median gap (ms) | "
            "gaps > 100 ms |", "|---|---|---|---|---|", *rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs per widget action (0: none, e.g. with --load alone)")
    parser.add_argument("--measures", action="store_true",
                        help="also cancel each Quantify measure alone (core, no viewer)")
    parser.add_argument("--load", type=int, default=0, metavar="N",
                        help="also load the 53-layer project to its end N times")
    parser.add_argument("--add-layer", action="store_true",
                        help="also time napari's add_layer on the UI thread")
    parser.add_argument("--gil", action="store_true",
                        help="also time the UI's repaints beside a Python worker at two "
                             "thread switch intervals")
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks" / "cancel.md"))
    args = parser.parse_args()

    lines = ["# Cancel latency and UI responsiveness (issue 17)", "",
             f"Machine: 2-core VM, shared, noisy ({platform.machine()}, Python "
             f"{platform.python_version()}), load average {os.getloadavg()[0]:.1f} at the "
             f"start. Command: `xvfb-run -a python benchmarks/cancel.py --repeat {args.repeat}"
             f"{' --measures' if args.measures else ''}{f' --load {args.load}' if args.load else ''}"
             f"{' --add-layer' if args.add_layer else ''}{' --gil' if args.gil else ''}`.", "",
             "Cancel clicked 2 s after the action's button (the row that says so: at a "
             "stage of the action) (real napari viewer, real clicks); "
             "time to cancel effective = Cancel click to the end of the worker thread; max UI "
             "gap = longest pause of a 20 ms QTimer on the UI thread from the start click to "
             "the panel's end (the undo the worker posted done, Cancel off). Median (max) of "
             f"{args.repeat} runs. Bounds: 1 s and 100 ms.", "",
             "| action | time to cancel effective (s) | max UI gap (ms) |", "|---|---|---|"]
    for action, latencies, gaps in widget_rows(args.repeat) if args.repeat else []:
        lines.append(f"| {action} | {np.median(latencies):.2f} ({max(latencies):.2f}) | "
                     f"{1000 * np.median(gaps):.0f} ({1000 * max(gaps):.0f}) |")
        print(lines[-1], flush=True)
    if args.measures:
        lab, img, sp = porous_block()
        for key in MEASURES:  # compile every kernel first, on a corner of the block
            cancel_measure(key, lab[:64, :64, :64], img[:64, :64, :64], sp, after_s=1e9)
        lines += ["", "Quantify measure by measure (core, 192^3 block, cancelled 0.5 s into the "
                  "measure; a 20 ms sleeping thread stands in for the UI thread):", "",
                  "| measure | time to cancel effective (s) | max gap of a 20 ms thread (ms) |",
                  "|---|---|---|"]
        for key in MEASURES:
            took, gap, cancelled = cancel_measure(key, lab, img, sp)
            when = {1.0: f"{took:.2f}", 0.0: f"done in {took:.2f} s, before the cancel",
                    -1.0: "does not apply to this block"}[cancelled]
            lines.append(f"| {key} | {when} | {1000 * gap:.0f} |")
            print(lines[-1], flush=True)
    if args.load:
        lines += load_rows(args.load)
        print("\n".join(lines[-6:]), flush=True)
    if args.add_layer:
        lines += add_layer_costs(args.repeat or 3)
        print("\n".join(lines[-7:]), flush=True)
    if args.gil:
        lines += switch_interval_rows()
        print("\n".join(lines[-8:]), flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
