"""Autosave: the session's interactive state goes to a recovery folder as you work.

One :class:`Autosave` per viewer (:func:`autosave_for`). It watches the layers: a brush
stroke on a Labels layer, a change of a Points or Shapes layer, a new affine of any
layer. :data:`DELAY_MS` after the last change (at the latest :data:`MAX_WAIT_S` after the
first unsaved one) it takes a snapshot on the UI thread -- copies of the edited layers,
the frames of the others, each panel's state from the providers registered with
:meth:`Autosave.register` -- and writes it with :func:`core.recovery.write_recovery` in
a background thread. Where: the project folder once one is saved or opened, else
:func:`core.recovery.default_recovery_folder`. Panels never call each other: each
registers how to give and take its own state.

One folder has one writer: each autosave is a writer of its own
(:func:`core.recovery.new_writer`) and writes where it claimed
(:func:`core.recovery.claim_recovery_folder`): a second viewer of the same project (a
new window of this napari, or another napari) writes ``<folder>-2`` instead, and a
folder another live writer took meanwhile is left to it at the next snapshot.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

import napari
import numpy as np
from napari.layers import Labels, Points, Shapes
from napari.utils.notifications import show_warning
from qtpy.QtCore import QObject, QTimer, Signal

from ..core.classify import PixelClassifier
from ..core.recovery import (
    RecoveryState,
    claim_recovery_folder,
    discard_recovery,
    end_writer,
    new_writer,
    recovery_folder,
    recovery_info,
    write_recovery,
)
from ._layers import TABLES, add_project_layer, layer_kind, to_project_layer
from ._runner import on_viewer_close, real_viewer

#: quiet time after the last change before a snapshot is written
DELAY_MS = 2000
#: a snapshot is written at the latest this long after the first unsaved change
MAX_WAIT_S = 10.0
#: key under which a provider's state carries a PixelClassifier (not JSON)
CLASSIFIER = "classifier"


class Autosave(QObject):
    """Writes recovery snapshots of a viewer's session (see the module docstring)."""

    #: the snapshot folder, after each write (in the UI thread)
    saved = Signal(object)
    _written = Signal(object)

    def __init__(self, viewer: napari.Viewer):
        super().__init__()
        self.viewer = viewer
        #: this autosave's id in the recovery pointers (one writer per folder)
        self.writer = new_writer()
        #: the recovery folder asked for (a project's, or the default one) ...
        self.base: Path = recovery_folder(None)
        #: ... and the one written: ``base``, or a sibling where another viewer writes base
        self.folder: Path = self.base
        self.providers: dict[str, tuple[Callable[[], dict], Callable[[dict], None]]] = {}
        #: restored panel states waiting for their panel to be opened
        self.pending: dict[str, dict] = {}
        #: Labels layers the user painted (they are saved in full; others are not)
        self.edited: set[str] = set()
        #: a change not yet in a snapshot / not yet in a saved project
        self.dirty = False
        self.unsaved_project = False
        self.last_snapshot: RecoveryState | None = None
        #: no snapshot is taken while True (e.g. while the user is asked about a restore, or
        #: while a project's layers are added); changes meanwhile count once it ends
        #: (:meth:`resume`)
        self.paused = False
        #: held while a snapshot is written (a project save into the folder waits for it)
        self.lock = threading.Lock()
        self.own_pid = os.getpid()
        self._first_change: float | None = None
        self._thread: threading.Thread | None = None
        self._again = False
        self._left_behind: list[Path] = []  # see set_folder
        self._closed = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DELAY_MS)
        self._timer.timeout.connect(self.save_now)
        self._written.connect(self._on_written)
        viewer.layers.events.inserted.connect(lambda e: self._watch(e.value))
        # a removal leaves nothing to restore: the snapshot follows, no work is unsaved (a
        # viewer's close removes every layer before it ends this autosave)
        viewer.layers.events.removed.connect(lambda e: self.changed(unsaved=False))
        for layer in viewer.layers:
            self._watch(layer)
        on_viewer_close(viewer, self.close)

    # ------------------------------------------------------------------ providers
    def register(self, key: str, get_state: Callable[[], dict],
                 set_state: Callable[[dict], None]) -> None:
        """A panel's state: ``get_state()`` (UI thread) gives a JSON-safe dict, plus an
        optional :data:`CLASSIFIER`; ``set_state`` takes it back after a restore."""
        self.providers[key] = (get_state, set_state)
        if key in self.pending:
            set_state(self.pending.pop(key))

    # ------------------------------------------------------------------ changes
    def _watch(self, layer) -> None:
        if isinstance(layer, Labels):
            layer.events.paint.connect(lambda *_: self._painted(layer))
        elif isinstance(layer, (Points, Shapes)):
            layer.events.data.connect(self.changed)
        layer.events.affine.connect(self.changed)
        self.changed()

    def _painted(self, layer: Labels) -> None:
        self.edited.add(layer.name)
        self.changed()

    def changed(self, *_: Any, unsaved: bool = True) -> None:
        """Note a change: a snapshot follows after :data:`DELAY_MS` of quiet. ``unsaved``:
        it is work the saved project lacks (a snapshot holding it is kept at the close)."""
        if self._closed:
            return
        self.dirty = True
        self.unsaved_project |= unsaved
        if self.paused:  # the clock starts at resume()
            return
        now = time.monotonic()
        if self._first_change is None:
            self._first_change = now
        if now - self._first_change >= MAX_WAIT_S:
            self.save_now()
        else:
            self._timer.start()

    def resume(self) -> None:
        """End a pause; changes made during it are snapshotted as usual from now on."""
        self.paused = False
        if self.dirty:
            self.changed()

    def set_folder(self, folder: str | Path, move: bool = False,
                   prefer: str | Path | None = None) -> Path:
        """Write future snapshots to ``folder`` (a project's recovery folder), or to a
        sibling of it of this session's own while another live viewer writes ``folder``
        (:func:`core.recovery.claim_recovery_folder`; ``prefer``: a folder whose dead
        session's state was offered). Returns the folder written. ``move``: this session's
        snapshot in the folder used so far goes (once a write in progress into it has
        ended: removed under it, the write failed), another session's stays."""
        self.base = Path(folder)
        old, self.folder = self.folder, claim_recovery_folder(self.base, self.writer, prefer)
        if move and old != self.folder:
            self._left_behind.append(old)
            self._discard_left_behind()
        return self.folder

    def _discard_left_behind(self) -> None:
        while self._thread is None and self._left_behind:
            self._discard_own(self._left_behind.pop())

    def _discard_own(self, folder: Path) -> None:
        """Remove ``folder``'s snapshot if this session wrote it."""
        with suppress(ValueError):  # not a recovery folder (any more)
            info = recovery_info(folder)
            if info is not None and info.pid == self.own_pid and info.writer in (
                    "", self.writer):  # not another viewer's of this process
                discard_recovery(folder)

    # ------------------------------------------------------------------ snapshot
    def snapshot(self) -> RecoveryState:
        """The session state now (UI thread; the arrays are copies)."""
        layers, frames = [], {}
        for layer in self.viewer.layers:
            if isinstance(layer, (Points, Shapes)) or (
                    isinstance(layer, Labels) and layer.name in self.edited):
                entry = to_project_layer(layer)
                entry.data = ([np.array(s) for s in entry.data] if isinstance(layer, Shapes)
                              else np.array(entry.data))
                layers.append(entry)
            else:
                # tables are the project's business (and not JSON)
                frames[layer.name] = {"affine": np.asarray(layer.affine.affine_matrix),
                                      "metadata": {k: v for k, v in layer.metadata.items()
                                                   if k != TABLES}}
        settings, classifier = self.panel_states()
        return RecoveryState(layers, frames, settings, classifier, writer=self.writer)

    def panel_states(self) -> tuple[dict[str, dict], PixelClassifier | None]:
        """Each panel's JSON-safe state by key (those waiting for their panel included) and
        the classifier one of them holds, marked True in its state (UI thread)."""
        settings = {key: dict(get_state()) for key, (get_state, _) in self.providers.items()}
        settings.update((key, dict(state)) for key, state in self.pending.items())
        classifier = None
        for state in settings.values():
            if state.get(CLASSIFIER) is not None:
                classifier = state.pop(CLASSIFIER)
                state[CLASSIFIER] = True  # given back from the classifier file
        return settings, classifier

    def set_panel_states(self, settings: dict[str, dict],
                         classifier: PixelClassifier | None = None) -> None:
        """Give each panel its state of :meth:`panel_states` (a panel not open yet when it
        registers)."""
        for key, state in settings.items():
            state = dict(state)
            if state.get(CLASSIFIER):
                state[CLASSIFIER] = classifier
            if key in self.providers:
                self.providers[key][1](state)
            else:
                self.pending[key] = state

    def save_now(self) -> None:
        """Take a snapshot and write it in the background (once the previous write ended)."""
        self._timer.stop()
        if self._closed or self.paused or not self.dirty:
            return
        if self._thread is not None:
            self._again = True
            return
        state = self.snapshot()
        self.dirty = False
        self._first_change = None
        base, folder, writer = self.base, self.folder, self.writer

        def write() -> None:
            try:
                with self.lock:
                    # another viewer may have taken the folder since: then a sibling
                    target = claim_recovery_folder(base, writer, prefer=folder)
                    snap = write_recovery(target, state)
                self._written.emit((snap, folder))
            except Exception as exc:  # noqa: BLE001 - a failed autosave must not stop work
                self._written.emit((folder, exc))

        self.last_snapshot = state
        # a daemon: the process may end mid-write; the previous snapshot then stays
        self._thread = threading.Thread(target=write, name="corrtomo-autosave", daemon=True)
        self._thread.start()

    def _on_written(self, result: tuple[Path, Any]) -> None:
        """``(snapshot, folder it was meant for)`` or ``(folder, exception)``."""
        self._thread = None
        path, outcome = result
        if isinstance(outcome, BaseException):
            self._discard_left_behind()
            show_warning(f"Autosave to {path} failed: {outcome}")
        else:
            if outcome == self.folder and path.parent != self.folder:
                self.folder = path.parent  # another viewer took the folder: ours from now
            self._discard_left_behind()
            self.saved.emit(path)
        if self._again:
            self._again = False
            self.save_now()

    # ------------------------------------------------------------------ restore
    def restore(self, state: RecoveryState) -> list[str]:
        """Bring a snapshot back: edited layers (replacing the data of a layer of the same
        name and kind, else added), other layers' frames, panel states. Returns the names
        of the restored layers."""
        names = []
        for entry in state.layers:
            if entry.layer_type == "labels":
                entry.data = np.asarray(entry.data)  # editable again
                self.edited.add(entry.name)
            existing = self.viewer.layers[entry.name] if entry.name in self.viewer.layers else None
            if existing is not None and layer_kind(existing) == entry.layer_type:
                existing.data = entry.data
            else:
                add_project_layer(self.viewer, entry)
            names.append(entry.name)
        for name, frame in state.frames.items():
            if name in self.viewer.layers:
                layer = self.viewer.layers[name]
                layer.affine = np.asarray(frame["affine"])
                layer.metadata = {**layer.metadata, **frame.get("metadata", {})}
        self.set_panel_states(state.settings, state.classifier)
        self.changed()
        return names

    # ------------------------------------------------------------------ end
    def close(self, deadline: float) -> None:
        """The viewer closes: no new snapshot; a write under way may finish until
        ``deadline`` (a write cut short leaves the previous snapshot, see
        :func:`core.recovery.write_recovery`). With nothing unsaved since the project was
        saved or opened, this session's snapshot is removed."""
        self._closed = True
        self._timer.stop()
        writing = self._thread
        if writing is not None:
            writing.join(max(deadline - time.monotonic(), 0.0))
        if not self.unsaved_project and (writing is None or not writing.is_alive()):
            self._discard_own(self.folder)
        # the folder is free; a snapshot kept is a leftover, offered like a crash's
        end_writer(self.writer)
        _BY_VIEWER.pop(id(self.viewer), None)


_BY_VIEWER: dict[int, Autosave] = {}


def autosave_for(viewer: napari.Viewer) -> Autosave:
    """The viewer's autosave (created on first use): one per window, whatever proxy of it a
    dock holds (napari hands each plugin dock a proxy of its own)."""
    real = real_viewer(viewer)
    if id(real) not in _BY_VIEWER or _BY_VIEWER[id(real)].viewer is not real:
        _BY_VIEWER[id(real)] = Autosave(real)
    return _BY_VIEWER[id(real)]
