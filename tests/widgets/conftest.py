"""Shared by the widget tests: Cancel clicked mid-action, measured (issue 17); the events
of a napari process a test starts."""

from __future__ import annotations

import faulthandler
import gc
import importlib
import json
import os
import re
import selectors
import subprocess
import tempfile
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from qtpy.QtCore import QPoint, Qt, QTimer

#: a file each cancel measurement is appended to as one JSON line (benchmarks/cancel.py)
RECORD_ENV = "CORRTOMO_CANCEL_RECORD"


def _record(action: str, **numbers: float) -> None:
    """Append ``numbers`` as one JSON line to ``$CORRTOMO_CANCEL_RECORD`` (when set)."""
    if os.environ.get(RECORD_ENV):
        with open(os.environ[RECORD_ENV], "a") as f:
            f.write(json.dumps({"action": action, **numbers}) + "\n")


class _Heartbeat:
    """A 20 ms QTimer on the UI thread recording when it fires (started ``settle_ms``
    before the action, so the beat before its start exists).

    A thread samples the UI thread's stack every 5 ms while a beat is over 50 ms late:
    :meth:`pause_sources` says where the long pauses went (in the benchmark tables and in
    a failing test's message), and how long the sampler itself could not run (a stack
    sampled after that shows where the UI thread went once the GIL came back)."""

    def __init__(self, qtbot, settle_ms: int):
        self.times: list[float] = []
        self._timer = QTimer()
        self._timer.timeout.connect(lambda: self.times.append(time.perf_counter()))
        self._timer.start(20)
        self._samples: list[tuple[float, str]] = []  # (the late beat, where the UI thread was)
        self._sampling = threading.Event()
        self._sampling.set()
        threading.Thread(target=self._sample, args=(threading.get_ident(),),
                         daemon=True).start()
        #: CPython's collections (start, end, generation): a collection stops every thread,
        #: and a sampled stack shows only where it was triggered
        self._collections: list[tuple[float, float, int]] = []
        gc.callbacks.append(self._on_collection)
        #: (start, end) of the sampling thread's late wake-ups: a stack sampled after one
        #: shows where the UI thread went once the GIL came back, not where the time went
        self._stalls: list[tuple[float, float]] = []
        qtbot.wait(settle_ms)

    def _on_collection(self, phase: str, info: dict) -> None:
        now = time.perf_counter()
        if phase == "start":
            self._collection_start = now
        else:
            self._collections.append((self._collection_start, now, info["generation"]))

    def stop(self) -> None:
        self._timer.stop()
        self._sampling.clear()
        gc.callbacks.remove(self._on_collection)

    def _sample(self, ui_thread: int) -> None:
        with tempfile.TemporaryFile("w+") as dump:
            while self._sampling.is_set():
                asleep = time.perf_counter()
                time.sleep(0.005)
                woke = time.perf_counter()
                if woke - asleep > 0.015:  # this thread waited for the GIL (or a core)
                    self._stalls.append((asleep + 0.005, woke))
                last = self.times[-1] if self.times else time.perf_counter()
                if time.perf_counter() - last > 0.05:
                    self._samples.append((last, _where(_stack_of(ui_thread, dump))))

    def pause_sources(self, bound_s: float = 0.1) -> list[tuple[float, str]]:
        """Each pause over ``bound_s`` (s): where the UI thread was in most of its samples,
        and the time CPython's garbage collections took of it."""
        by_beat: dict[float, Counter] = {}
        for beat, where in self._samples:
            by_beat.setdefault(beat, Counter())[where] += 1
        return [(after - before, self._where(by_beat.get(before))
                 + self._collected(before, after) + self._stalled(before, after))
                for before, after in zip(self.times, self.times[1:], strict=False)
                if after - before > bound_s]

    @staticmethod
    def _where(samples: Counter | None) -> str:
        # no sample: the sampling thread did not run either (a collection, or C code
        # holding the GIL)
        return samples.most_common(1)[0][0] if samples else "no thread ran"

    def _collected(self, before: float, after: float) -> str:
        """' (garbage collection N ms)': the collections' time within a pause, if any
        took over 10 ms."""
        spent = _overlap_s([(start, end) for start, end, _ in self._collections], before, after)
        return f" (garbage collection {1000 * spent:.0f} ms)" if spent > 0.01 else ""

    def _stalled(self, before: float, after: float) -> str:
        """' (sampler blocked N ms)': the time within a pause the sampling thread waited to
        run, if over 10 ms: compiled code held the GIL (or no core was free)."""
        spent = _overlap_s(self._stalls, before, after)
        return f" (sampler blocked {1000 * spent:.0f} ms)" if spent > 0.01 else ""

    def gaps(self, started: float, ended: float) -> np.ndarray:
        """The pauses (s) from the last beat before ``started`` (the start's own handler
        counts too) to ``ended``."""
        first = max([t for t in self.times if t <= started], default=started)
        return np.diff([t for t in self.times if first <= t <= ended] + [ended])


def _overlap_s(intervals: list[tuple[float, float]], before: float, after: float) -> float:
    """The time (s) ``intervals`` (start, end) cover within ``before``-``after``."""
    return sum(min(end, after) - max(start, before)
               for start, end in intervals if start < after and end > before)


def _stack_of(thread: int, dump) -> list[tuple[str, str]]:
    """``thread``'s Python stack as (file, function), outermost first, read by faulthandler:
    ``sys._current_frames`` builds frame objects of a running thread, which crashed
    CPython 3.11 in one benchmark run; faulthandler only reads them."""
    dump.seek(0)
    dump.truncate()
    faulthandler.dump_traceback(dump, all_threads=True)
    dump.seek(0)
    header = re.compile(rf"(Current thread|Thread) 0x0*{thread:x} ")
    lines = iter(dump.read().splitlines())
    for line in lines:
        if header.match(line):
            break
    stack = []
    for line in lines:
        found = re.match(r'\s+File "(.*)", line \d+ in (\S+)', line)
        if found is None:
            break
        stack.append((found[1], found[2]))
    return stack[::-1]


def _where(stack: list[tuple[str, str]]) -> str:
    """A stack as 'outermost napari/vispy call > innermost one' (module:function), then
    its innermost frame where that is outside them, or only that frame."""
    names = [f"{Path(file).stem}:{function}" for file, function in stack
             if any(part in file for part in ("/napari/", "/vispy/"))]
    inner = f"{Path(stack[-1][0]).stem}:{stack[-1][1]}" if stack else "?"
    if not names:
        return inner
    where = names[0] if len(names) == 1 else f"{names[0]} > {names[-1]}"
    return where if inner == names[-1] else f"{where} | {inner}"


def _gap_summary(gaps: np.ndarray) -> str:
    return (f"UI heartbeat max gap {1000 * gaps.max():.0f} ms, 99th percentile "
            f"{1000 * np.percentile(gaps, 99):.0f} ms")


@dataclass
class Beats:
    """A 20 ms heartbeat on the UI thread over one action."""

    gaps: np.ndarray  #: pauses between beats (s), the action's start and end included
    seconds: float  #: the action's duration
    #: pauses over 0.1 s and where the UI thread was
    sources: list[tuple[float, str]] = field(default_factory=list)

    def summary(self, what: str) -> str:
        return (f"{what}: {self.seconds:.1f} s; {_gap_summary(self.gaps)}, "
                f"{int((self.gaps > 0.1).sum())} gaps > 100 ms")


@pytest.fixture
def heartbeat(qtbot):
    """``with heartbeat() as beats:`` an action; then ``beats.gaps``: the pauses of a
    20 ms QTimer on the UI thread from the last beat before the block to its end."""

    @contextmanager
    def measure():
        beat = _Heartbeat(qtbot, settle_ms=200)
        beats = Beats(np.zeros(1), 0.0)
        started = time.perf_counter()
        try:
            yield beats
        finally:
            ended = time.perf_counter()
            beat.stop()
        beats.gaps = beat.gaps(started, ended)
        beats.seconds = ended - started
        beats.sources = beat.pause_sources()

    return measure


@pytest.fixture
def ui_record():
    """``record(action, **numbers)``: a measurement for benchmarks/cancel.py's tables."""
    return _record


@dataclass
class CancelRun:
    """What a Cancel click mid-action did."""

    latency_s: float  #: from the Cancel click to the end of the worker thread's call
    #: longest pause of a 20 ms UI-thread timer, start click to the panel's end (the undo
    #: the worker posted done, the Cancel button off)
    max_gap_s: float
    bar: tuple[int, int]  #: the progress bar (value, maximum) at the Cancel click
    added: list[str]  #: names of the layers added from the start click to the end
    status: str  #: the runner's status line afterwards
    #: pauses over 0.1 s and where the UI thread was
    sources: list[tuple[float, str]] = field(default_factory=list)

    def assert_prompt(self) -> None:
        """Issue 17's Must-show for one action: the worker ends within 1 s of the click,
        nothing is added, the bar showed real progress, the UI thread never paused > 0.1 s."""
        assert self.latency_s < 1.0
        assert self.added == []
        assert 0 < self.bar[0] < self.bar[1]  # a bar that moved, not a busy indicator
        assert self.status.startswith("Cancelled")
        assert self.max_gap_s < 0.1, f"UI thread paused: {self.sources}"


@pytest.fixture(autouse=True)
def _fresh_heap():
    """Each widget test starts with the heap a fresh session has: the objects earlier
    tests of the run left behind (540k-870k by the end of tests/widgets; a full collection
    over them paused every thread 0.35-0.76 s, measured with ``gc.callbacks``, and landed
    in the UI-heartbeat windows of unrelated tests) are collected and then frozen out of
    the collector's scans. What the test itself makes is collected as usual. A project
    load unfreezes them (``_frozen_heap``): measure nothing after a load in the same test
    that such a collection could reach."""
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


@pytest.fixture
def cancel_mid_action(qtbot, request):
    """``cancel_mid_action(viewer, runner, start_button, after_s=2.0, action=None,
    when=None)``.

    Clicks ``start_button``, clicks ``runner``'s Cancel ``after_s`` seconds later (or, with
    ``when``, as soon as ``when()`` is true: a stage of the action, not a time, which a
    faster machine reaches sooner) and
    waits for the worker to end and the panel to be free (its undo done), while a 20 ms
    ``QTimer`` beats on the UI thread. The worker's end is seen from a thread waiting on
    the job's done flag (not by polling the event loop). With ``$CORRTOMO_CANCEL_RECORD``
    set, the numbers are appended there under ``action`` (default: the test's name).
    """

    def run(viewer, runner, start_button, after_s: float = 2.0,
            action: str | None = None, when=None) -> CancelRun:
        before = [layer.name for layer in viewer.layers]
        beat = _Heartbeat(qtbot, settle_ms=100)  # the heartbeat runs before the click
        try:  # a failed step stops the timer, the sampler and the collection hook too
            started = time.perf_counter()
            qtbot.mouseClick(start_button, Qt.MouseButton.LeftButton)
            job = runner._worker
            assert job is not None, "the button started no worker"
            ended: list[float] = []

            def watch() -> None:
                job.done.wait(120)
                ended.append(time.perf_counter())

            threading.Thread(target=watch, daemon=True).start()
            if when is None:
                qtbot.wait(max(int(1000 * (after_s - (time.perf_counter() - started))), 0))
            else:
                qtbot.waitUntil(lambda: when() or job.done.is_set(), timeout=120000)
            assert runner.busy and not job.done.is_set(), "the action ended before Cancel"
            bar = (runner.bar.value(), runner.bar.maximum())
            clicked = time.perf_counter()
            qtbot.mouseClick(runner.cancel_button, Qt.MouseButton.LeftButton)
            qtbot.waitUntil(lambda: bool(ended) and not runner.busy, timeout=120000)
            free = time.perf_counter()
        finally:
            beat.stop()
        gaps = beat.gaps(started, free)
        result = CancelRun(ended[0] - clicked, float(gaps.max()), bar,
                           [layer.name for layer in viewer.layers if layer.name not in before],
                           runner.status.text(), beat.pause_sources())
        print(f"{action or request.node.name}: cancel took {result.latency_s:.3f} s, the "
              f"panel free {free - clicked:.3f} s after the click; bar at the click {bar}; "
              f"{_gap_summary(gaps)}")
        _record(action or request.node.name, latency_s=result.latency_s,
               max_gap_s=result.max_gap_s)
        return result

    return run



@pytest.fixture(scope="session")
def child_events():
    """``child_events(proc, last, timeout_s)``: the JSON lines a child process prints on
    stdout, by their ``event`` key, up to the one whose event is ``last``.

    Read with a deadline: a child that stalls (a worker failing without a word, a
    deadlock) fails the test with what the child printed, instead of hanging the suite.
    """

    def read(proc: subprocess.Popen, last: str, timeout_s: float) -> dict[str, dict]:
        events: dict[str, dict] = {}
        lines: list[str] = []
        end = time.monotonic() + timeout_s
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            while last not in events:
                left = end - time.monotonic()
                if left <= 0 or not sel.select(left):
                    pytest.fail(f"no '{last}' event from the child within {timeout_s:.0f} s; "
                                f"it printed: {lines[-20:]}")
                line = proc.stdout.readline()
                if not line:
                    pytest.fail(f"the child ended (exit {proc.wait()}) before its '{last}' "
                                f"event; it printed: {lines[-20:]}")
                lines.append(line.rstrip())
                if line.startswith("{"):
                    event = json.loads(line)
                    events[event["event"]] = event
        return events

    return read



# ============================================================================ the mouse

class Mouse:
    """A person's clicks and strokes on the canvas of a 2D view: Qt mouse events on the
    canvas widget at the pixels where napari draws the given world points."""

    def __init__(self, qtbot):
        self.qtbot = qtbot

    @staticmethod
    def pos(viewer, world_yx) -> QPoint:
        """The canvas pixel (Qt logical coordinates) where a world (y, x) point is drawn."""
        canvas = viewer.window._qt_viewer.canvas
        xy = canvas.view.scene.transform.map([world_yx[1], world_yx[0], 0, 1])[:2]
        return QPoint(int(round(xy[0])), int(round(xy[1])))

    @staticmethod
    def look_at(viewer, z: float, centre_yx, width: float) -> None:
        """The slider to world ``z``, the camera on ``centre_yx`` with ``width`` world units
        across the canvas (what a user does with the slider and the wheel)."""
        viewer.dims.ndisplay = 2
        viewer.dims.set_point(0, float(z))
        viewer.camera.center = tuple(float(v) for v in centre_yx)
        viewer.camera.zoom = 0.8 * min(viewer.window._qt_viewer.canvas.size) / float(width)

    def _move(self, viewer, world_yx, tol: float) -> QPoint:
        native = viewer.window._qt_viewer.canvas.native
        pos = self.pos(viewer, world_yx)
        # from beside the target: a move to the pixel the mouse is on sends no event
        for at in (pos + QPoint(3, 3), pos):
            self.qtbot.wait(20)  # vispy drops moves < 10 ms apart (a hand is slower)
            self.qtbot.mouseMove(native, at)
        self.qtbot.waitUntil(lambda: np.abs(np.asarray(viewer.cursor.position)[-2:]
                                            - np.asarray(world_yx)).max() <= tol, timeout=5000)
        return pos

    def click(self, viewer, world_yx, tol: float = 0.5) -> None:
        """Move to the world point (within ``tol`` world units) and click there."""
        native = viewer.window._qt_viewer.canvas.native
        pos = self._move(viewer, world_yx, tol)
        self.qtbot.mousePress(native, Qt.MouseButton.LeftButton, pos=pos)
        self.qtbot.mouseRelease(native, Qt.MouseButton.LeftButton, pos=pos)

    def drag(self, viewer, a_yx, b_yx, steps: int = 8, tol: float = 0.5) -> None:
        """Press at world point ``a``, drag in ``steps`` moves to ``b``, release there."""
        native = viewer.window._qt_viewer.canvas.native
        a, b = np.asarray(a_yx, float), np.asarray(b_yx, float)
        self.qtbot.mousePress(native, Qt.MouseButton.LeftButton, pos=self._move(viewer, a, tol))
        for t in np.linspace(0, 1, steps + 1)[1:]:
            self.qtbot.wait(20)
            self.qtbot.mouseMove(native, self.pos(viewer, a + t * (b - a)))
        # release only once the cursor is at b: a last move vispy dropped (too soon after
        # the one before, on a busy machine) left a rectangle one step short; come again
        # from half a step back along the stroke (a stroke paints nothing off its line)
        for _ in range(3):
            if self._arrived(viewer, b, tol, timeout_s=1.0):
                break
            for at in (b - 0.5 * (b - a) / steps, b):
                self.qtbot.wait(20)
                self.qtbot.mouseMove(native, self.pos(viewer, at))
        assert self._arrived(viewer, b, tol, timeout_s=1.0), "the cursor never reached b"
        self.qtbot.mouseRelease(native, Qt.MouseButton.LeftButton, pos=self.pos(viewer, b))

    def _arrived(self, viewer, world_yx, tol: float, timeout_s: float) -> bool:
        """Whether napari's cursor comes within ``tol`` of the world point in time."""
        end = time.monotonic() + timeout_s
        while np.abs(np.asarray(viewer.cursor.position)[-2:] - world_yx).max() > tol:
            if time.monotonic() > end:
                return False
            self.qtbot.wait(10)
        return True


@pytest.fixture
def mouse(qtbot) -> Mouse:
    """:class:`Mouse` on the canvas of the viewers of a test."""
    return Mouse(qtbot)


@pytest.fixture
def errors(monkeypatch):
    """Every ``show_error`` of the widgets (and of the task runner), in order."""
    shown: list[str] = []
    import napari_corrtomo.widgets as widgets

    for mod in ("reconstruct", "register", "classify", "quantify", "project", "fib", "_runner",
                "_layers", "_dock", "_registered_view"):
        module = importlib.import_module(f"{widgets.__name__}.{mod}")
        if hasattr(module, "show_error"):  # the modules that notify an error themselves
            monkeypatch.setattr(module, "show_error", shown.append)
    return shown
