"""Run a core call in a worker thread with a progress bar, a cancel button and notifications."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from napari.qt.threading import create_worker
from napari.utils import progress as napari_progress
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from ..core.progress import Cancelled


class _Bridge(QObject):
    progressed = Signal(int, int)


class TaskRunner(QWidget):
    """Progress bar + Cancel for one long call at a time.

    ``start(func, ..., on_result=cb)`` calls ``func(*args, progress=callback, **kwargs)``
    in a napari worker thread. The callback forwards ``(done, total)`` to the bar and
    to napari's activity dock, and raises :class:`Cancelled` inside the worker once
    *Cancel* is pressed. ``on_result`` runs in the GUI thread; a ``ValueError`` (bad
    input) or any other failure becomes a napari notification and nothing is added.
    """

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.bar, 1)
        row.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.status)
        self._bridge = _Bridge()
        self._bridge.progressed.connect(self._on_progress)
        self._cancel = threading.Event()
        self._worker = None
        self._pbar: napari_progress | None = None
        self.last_error: BaseException | None = None

    @property
    def busy(self) -> bool:
        return self._worker is not None

    def cancel(self) -> None:
        if self.busy:
            self._cancel.set()
            self.status.setText("Cancelling ...")

    def start(
        self,
        func: Callable[..., Any],
        *args: Any,
        on_result: Callable[[Any], None],
        label: str,
        **kwargs: Any,
    ):
        """Run ``func`` in a worker; returns the worker (or None if one is already running)."""
        if self.busy:
            show_info("A task is already running in this panel; wait for it or press Cancel.")
            return None
        self._cancel.clear()
        self.last_error = None

        def callback(done: int, total: int) -> None:
            if self._cancel.is_set():
                raise Cancelled()
            self._bridge.progressed.emit(int(done), int(total))

        # Errors are ours to report (notification + status), not to re-raise in the GUI thread.
        worker = create_worker(func, *args, progress=callback, _ignore_errors=True, **kwargs)
        worker.returned.connect(on_result)
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._on_finished)
        self._worker = worker
        self._pbar = napari_progress(total=0, desc=label)
        self.bar.setRange(0, 0)  # busy until the first report
        self.cancel_button.setEnabled(True)
        self.status.setText(f"{label} ...")
        worker.start()
        return worker

    def _on_progress(self, done: int, total: int) -> None:
        self.bar.setRange(0, max(total, 1))
        self.bar.setValue(done)
        if self._pbar is not None:
            if self._pbar.total != total:
                self._pbar.total = total
            self._pbar.n = done
            self._pbar.refresh()

    def _on_error(self, exc: BaseException) -> None:
        if isinstance(exc, Cancelled):
            self.status.setText("Cancelled; nothing was changed.")
            return
        self.last_error = exc
        self.status.setText(f"Failed: {exc}")
        show_error(str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}")

    def _on_finished(self) -> None:
        self._worker = None
        self.cancel_button.setEnabled(False)
        self.bar.setRange(0, 1)
        self.bar.setValue(0 if self._cancel.is_set() or self.last_error else 1)
        if not self._cancel.is_set() and self.last_error is None:
            self.status.setText("Done.")
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
