"""Run a core call in a worker thread with a progress bar, a cancel button and notifications.

Every worker started here belongs to a viewer: closing that viewer's window cancels
all of them and waits for them to end (at most :data:`CLOSE_TIMEOUT_S` in all), so no
computation outlives its window and keeps the process alive.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import napari
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QEvent, QObject, QTimer, Signal
from qtpy.QtWidgets import QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from ..core._checks import in_words
from ..core.progress import Cancelled
from ._dock import hbox

#: seconds closing a viewer waits, in all, for its cancelled workers to end (napari's own
#: shutdown takes about a second more)
CLOSE_TIMEOUT_S = 1.0

#: CPython's thread switch interval (s) while a worker runs (its default: 5 ms). Qt's paint
#: of a napari window calls Python many times (event filters, item delegates, overrides),
#: and each call waits for a worker running Python to give up the GIL: beside a pure-Python
#: worker, a 36-layer viewer repainted every 100 ms let a 20 ms UI timer fire after 1.5 s
#: at 5 ms, after 0.42 s at 1 ms, 0.32 s at 0.5 ms, 0.24 s at 0.2 ms (2-core VM,
#: ``benchmarks/cancel.py --gil``). The interval set before is back once the last worker
#: has ended.
WORKER_SWITCH_INTERVAL_S = 0.0005
_switch = {"workers": 0, "before": 0.005}
_SWITCH_LOCK = threading.Lock()


def _worker_started() -> None:
    with _SWITCH_LOCK:
        if _switch["workers"] == 0:
            _switch["before"] = sys.getswitchinterval()
            sys.setswitchinterval(min(_switch["before"], WORKER_SWITCH_INTERVAL_S))
        _switch["workers"] += 1


def _worker_ended() -> None:
    with _SWITCH_LOCK:
        _switch["workers"] -= 1
        if _switch["workers"] == 0:
            sys.setswitchinterval(_switch["before"])


class Job:
    """One background call: a cancel flag its progress callback obeys, a done flag."""

    def __init__(self) -> None:
        self.cancel = threading.Event()
        self.done = threading.Event()
        self.signals: QObject | None = None

    def progress(self, done: int, total: int) -> None:
        if self.cancel.is_set():
            raise Cancelled()


class _CloseWatcher(QObject):
    """Sees the viewer window's close; then cancels its jobs and runs its close callbacks."""

    def __init__(self, window: QObject):
        super().__init__()
        self.jobs: set[Job] = set()
        self.callbacks: list[Callable[[float], None]] = []
        self.closed = False
        window.installEventFilter(self)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt API)
        if event.type() != QEvent.Type.Close or self.closed:
            return False
        obj.event(event)  # let the window decide (it may ask the user and refuse)
        if event.isAccepted():
            self.shutdown()
        return True

    def shutdown(self) -> None:
        """Cancel every job, then wait for all of them and the callbacks, within the timeout."""
        self.closed = True
        deadline = time.monotonic() + CLOSE_TIMEOUT_S
        for job in list(self.jobs):
            job.cancel.set()
        for callback in self.callbacks:
            callback(deadline)
        for job in list(self.jobs):
            job.done.wait(max(deadline - time.monotonic(), 0.0))


_WATCHERS: dict[int, _CloseWatcher] = {}


def real_viewer(viewer: napari.Viewer | None) -> napari.Viewer | None:
    """The viewer behind the proxy napari hands a plugin widget (``viewer`` itself when it
    is no proxy): one object per window whatever proxy a widget holds, whose attributes
    are read without the proxy's deprecation notification for private ones."""
    return getattr(viewer, "__wrapped__", viewer)


def close_watcher(viewer: napari.Viewer | None) -> _CloseWatcher | None:
    """The close watcher of ``viewer``'s window (None without a viewer or window).

    napari has no public "viewer closes" event: the watcher listens to its Qt window, read
    on the viewer itself (through a plugin's proxy, reading it raises a deprecation
    notification), one watcher per viewer whatever proxy a widget holds."""
    real = real_viewer(viewer)
    window = getattr(getattr(real, "window", None), "_qt_window", None)
    if window is None:
        return None
    key = id(real)
    if key not in _WATCHERS:
        _WATCHERS[key] = _CloseWatcher(window)
        window.destroyed.connect(lambda *_: _WATCHERS.pop(key, None))
    return _WATCHERS[key]


def on_viewer_close(viewer: napari.Viewer | None, callback: Callable[[float], None]) -> None:
    """Call ``callback(deadline)`` (a ``time.monotonic`` deadline) when the viewer closes."""
    watcher = close_watcher(viewer)
    if watcher is not None:
        watcher.callbacks.append(callback)


class _JobSignals(QObject):
    """Carries a job's outcome from its thread to the GUI thread (queued connections)."""

    returned = Signal(object)
    errored = Signal(object)
    finished = Signal()


def start_job(func: Callable[..., Any], *args: Any, viewer: napari.Viewer | None,
              on_result: Callable[[Any], None], on_error: Callable[[BaseException], None],
              on_finished: Callable[[], None], job: Job | None = None, **kwargs: Any) -> Job:
    """Run ``func(*args, progress=job.progress, **kwargs)`` in a thread owned by ``viewer``.

    Closing the viewer cancels the job and waits for it (see :class:`_CloseWatcher`). The
    thread is a daemon: a call stuck in compiled code past that wait cannot keep the
    process alive. ``on_result``/``on_error``/``on_finished`` run in the GUI thread.
    """
    job = job or Job()
    watcher = close_watcher(viewer)
    signals = job.signals = _JobSignals()
    signals.returned.connect(on_result)
    signals.errored.connect(on_error)
    signals.finished.connect(on_finished)

    def run() -> None:
        try:
            result = func(*args, progress=job.progress, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - reported in the GUI thread
            signals.errored.emit(exc)
        else:
            signals.returned.emit(result)
        finally:
            job.done.set()
            if watcher is not None:
                watcher.jobs.discard(job)
            _worker_ended()
            signals.finished.emit()

    if watcher is not None:
        if watcher.closed:
            job.cancel.set()
        watcher.jobs.add(job)
    _worker_started()  # before the thread: the click's own paint comes next
    threading.Thread(target=run, name=f"corrtomo-{getattr(func, '__name__', 'job')}",
                     daemon=True).start()
    return job


class _Bridge(QObject):
    progressed = Signal(int, int)
    #: (func, done event, result box) to run in the GUI thread for :meth:`TaskRunner.in_gui`
    posted = Signal(object)


class _BarJob(Job):
    """A job whose progress also moves a TaskRunner's bar."""

    def __init__(self, bridge: _Bridge):
        super().__init__()
        self.bridge = bridge
        self._last: tuple[int, int] | None = None

    def progress(self, done: int, total: int) -> None:
        super().progress(done, total)
        # the core re-reports unchanged numbers as cancel checks: the bar needs new ones only
        if (done, total) != self._last:
            self._last = (int(done), int(total))
            self.bridge.progressed.emit(*self._last)


class TaskRunner(QWidget):
    """Progress bar + Cancel for one long call at a time.

    ``start(func, ..., on_result=cb)`` calls ``func(*args, progress=callback, **kwargs)``
    in a worker thread. The callback forwards ``(done, total)`` to the bar and raises
    :class:`Cancelled` inside the worker once *Cancel* is pressed or ``viewer`` closes.
    ``on_result`` runs in the GUI thread; a ``ValueError`` (bad input) or any other
    failure becomes a napari notification and nothing is added.
    """

    def __init__(self, viewer: napari.Viewer | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = viewer
        self.bar = QProgressBar()
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.setToolTip("stop the running task; nothing it made is added")
        self.cancel_button.clicked.connect(self.cancel)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(hbox(self.bar, self.cancel_button, stretch=self.bar))
        layout.addWidget(self.status)
        self._bridge = _Bridge()
        self._bridge.progressed.connect(self._on_progress)
        self._bridge.posted.connect(self._run_posted)
        self._job = Job()
        self._worker = None
        # Not mirrored in napari's activity dock: that puts a bar in every open viewer and
        # runs Qt's event loop (QApplication.processEvents) in each on every update, which
        # repaints their windows; the first bar of a session froze the UI 190-280 ms with
        # a 36-layer viewer beside it (2-core VM, software OpenGL)
        # in_gui's calls, one per event-loop turn: a call posted from the worker while the
        # previous one ran would otherwise run in the same turn (Qt sends the events posted
        # meanwhile at once), before the timers and paints waiting since (2-core VM: 2
        # layer adds and their frames back to back, 250-460 ms without a timer turn). A
        # QTimer of 0 ms fires after the timers due before it.
        self._posted: deque = deque()
        self._posted_timer = QTimer(self)
        self._posted_timer.setSingleShot(True)
        self._posted_timer.setInterval(0)
        self._posted_timer.timeout.connect(self._run_next_posted)
        self.last_error: BaseException | None = None
        self._cancelled = False  # the last job ended by a cancel
        #: a setting's name -> the panel's word for it (its control's label): a failed
        #: job's :class:`SettingError` is shown in those words
        self.words: dict[str, str] = {}

    def refuse(self, message: str) -> None:
        """An action refused before it started (its input is wrong): the status says so,
        not the last job's outcome, and a notification."""
        self.status.setText(f"Not started: {message}")
        show_error(message)

    @property
    def busy(self) -> bool:
        return self._worker is not None

    def cancel(self) -> None:
        if self.busy:
            self._job.cancel.set()
            self.status.setText("Cancelling ...")

    def start(
        self,
        func: Callable[..., Any],
        *args: Any,
        on_result: Callable[[Any], None],
        label: str,
        **kwargs: Any,
    ):
        """Run ``func`` in a worker; returns its :class:`Job` (None if one is already running)."""
        if self.busy:
            show_info("A task is already running in this panel; wait for it or press Cancel.")
            return None
        self.last_error = None
        self._cancelled = False
        job = self._job = _BarJob(self._bridge)
        # Errors are ours to report (notification + status), not to re-raise in the GUI thread.
        self._set_bar(0, 0)  # busy until the first report
        self.cancel_button.setEnabled(True)
        self.status.setText(f"{label} ...")
        self._worker = start_job(func, *args, viewer=self.viewer, on_result=on_result,
                                 on_error=self._on_error, on_finished=self._on_finished,
                                 job=job, **kwargs)
        return self._worker

    def in_gui(self, func: Callable[..., Any], *args: Any, wait: bool = True) -> Any:
        """From the running worker: call ``func(*args)`` in the GUI thread (in an event-loop
        turn of its own, so the UI stays responsive between calls) and return its result.

        For work napari only allows in the GUI thread (adding a layer), done in small
        steps. Once *Cancel* is pressed the call is skipped if it has not run yet and
        :class:`Cancelled` is raised at once. ``wait=False`` posts the call and returns
        (it runs even after a cancel: use it to undo what earlier calls did).
        """
        job = self._job
        done = threading.Event()
        box: list = []

        if not wait:
            self._bridge.posted.emit((lambda: func(*args), None, box))
            return None

        def call() -> Any:
            if job.cancel.is_set():
                raise Cancelled()
            return func(*args)

        self._bridge.posted.emit((call, done, box))
        while not done.wait(0.02):
            # Cancel is set in the GUI thread, so the call has either run to its end (its
            # result must come back: a layer it added is the caller's to take back) or will
            # not run ``func`` at all
            if job.cancel.is_set() and not done.is_set():
                raise Cancelled()
        if isinstance(box[0], BaseException):
            raise box[0]
        return box[0]

    def _run_posted(self, item: tuple) -> None:
        self._posted.append(item)
        if not self._posted_timer.isActive():
            self._posted_timer.start()

    def _run_next_posted(self) -> None:
        call, done, box = self._posted.popleft()
        try:
            if done is None:  # nobody waits: errors are shown like any GUI-thread error
                call()
                return
            try:
                box.append(call())
            except BaseException as exc:  # noqa: BLE001 - re-raised in the worker
                box.append(exc)
            finally:
                done.set()
        finally:
            if self._posted:  # started after the call: the timers due meanwhile go first
                self._posted_timer.start()

    def _on_progress(self, done: int, total: int) -> None:
        self._set_bar(done, max(total, 1))

    def _set_bar(self, value: int, maximum: int) -> None:
        # QProgressBar.setValue repaints at once: a synchronous flush of the window, which
        # composes napari's OpenGL canvas (50-100 ms with 33-53 layers in software OpenGL,
        # 2-core VM). With updates off it only marks the bar for the next paint, drawn
        # with the canvas's own frame
        self.bar.setUpdatesEnabled(False)
        try:
            self.bar.setRange(0, maximum)
            self.bar.setValue(value)
        finally:
            self.bar.setUpdatesEnabled(True)

    def _on_error(self, exc: BaseException) -> None:
        self._cancelled = isinstance(exc, Cancelled)
        if not self._cancelled:
            self.last_error = exc

    def _on_finished(self) -> None:
        """The worker ended: what it posted without waiting (an undo) runs first, one call
        per event-loop turn as before; the panel stays busy until then."""
        self._run_posted((self._finish, None, []))

    def _finish(self) -> None:
        exc = self.last_error
        stopped = self._cancelled or self._job.cancel.is_set()
        if self._cancelled:
            self.status.setText("Cancelled; nothing was changed.")
        elif exc is not None:
            text = in_words(exc, self.words)
            self.status.setText(f"Failed: {text}")
            show_error(text if isinstance(exc, ValueError) else f"{type(exc).__name__}: {text}")
        elif not stopped:
            self.status.setText("Done.")
        self._worker = None
        self.cancel_button.setEnabled(False)
        self._set_bar(0 if stopped or exc is not None else 1, 1)
