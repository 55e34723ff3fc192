"""Dock widget "Correlative project": modalities, frames and fields of view; save/load the
session; autosave and crash recovery (see :mod:`._autosave`)."""

from __future__ import annotations

import time
from pathlib import Path

import napari
from napari.layers import Image, Labels, Points, Shapes
from napari.utils.notifications import show_error, show_info
from qtpy.QtWidgets import (
    QFileDialog,
    QLabel,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
)
from vispy.visuals.line.dash_atlas import DashAtlas

from ..core.progress import report, scaled
from ..core.project import describe, load_project, save_project
from ..core.recovery import (
    RecoveryInfo,
    discard_recovery,
    read_recovery,
    recovery_folder,
    recovery_info,
)
from ._autosave import autosave_for
from ._dock import DockForm, hbox
from ._layers import project_layer, to_project_layer
from ._registered_view import is_view, registered_views
from ._runner import TaskRunner, real_viewer
from ._table import TableView

#: layer-list events after which the modality table is rebuilt
TABLE_EVENTS = ("inserted", "removed", "affine", "data", "name", "scale", "translate")


class ProjectWidget(DockForm):
    """Lists every volume with its voxel size, unit, registration and field of view, and
    saves/loads the whole session (layers as OME-Zarr/CSV/JSON + a JSON manifest).

    While it is open the session is autosaved to the project's recovery folder (before a
    first save: the default one); opening a project whose recovery folder holds the
    unsaved work of a session that ended without saving offers to restore it.
    """

    def __init__(self, napari_viewer: napari.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.autosave = autosave_for(napari_viewer)
        #: asks the user a yes/no question (tests answer it programmatically)
        self.confirm = self._ask_user
        self.table = TableView()
        self.save_button = QPushButton("Save project ...")
        self.load_button = QPushButton("Load project ...")
        self.restore_button = QPushButton("Restore unsaved session")
        self.restore_button.setVisible(False)
        self.save_button.setToolTip("save every layer with its voxel size, frame, scribbles, "
                                    "landmarks and tables into a project folder")
        self.load_button.setToolTip("open a project folder saved here (its layers are added)")
        self.restore_button.setToolTip("bring back the layers, scribbles and landmarks of a "
                                       "session that ended without saving")
        self.save_button.clicked.connect(lambda: self._ask("save"))
        self.load_button.clicked.connect(lambda: self._ask("load"))
        self.restore_button.clicked.connect(lambda: self.restore(self.autosave.folder))
        self.runner = TaskRunner(napari_viewer)
        self.recovery_status = QLabel("")
        self.recovery_status.setWordWrap(True)
        self.autosave.saved.connect(self._on_autosaved)
        buttons = hbox(self.save_button, self.load_button)
        layout = QVBoxLayout(self.body)
        layout.addWidget(QLabel("Modalities in this session (voxel size, unit, frame):"))
        layout.addWidget(self.table)
        layout.addLayout(buttons)
        layout.addWidget(self.restore_button)
        layout.addWidget(self.runner)
        layout.addWidget(self.recovery_status)
        # the table follows layer events: a transform applied (affine), a crop or result
        # added (inserted, data), a rename, a removal
        self.viewer.layers.events.connect(self._on_layer_event)
        registered_views(napari_viewer)  # loaded registered layers are drawn in 2D too
        self.refresh()
        self._offer_restore_button(self.autosave.folder)

    def _on_layer_event(self, event) -> None:
        if event.type in TABLE_EVENTS:
            self.refresh()

    def refresh(self, *_) -> None:
        volumes = [to_project_layer(layer) for layer in self.viewer.layers
                   if isinstance(layer, (Image, Labels)) and layer.ndim == 3
                   and not is_view(layer)]
        self.table.set_frame(describe(volumes))

    def save(self, directory: str | Path):
        """Save every image/labels/points/shapes layer into ``directory`` (in a worker)."""
        layers = [to_project_layer(layer) for layer in self.viewer.layers
                  if isinstance(layer, (Image, Labels, Points, Shapes)) and not is_view(layer)]
        if not layers:
            show_error("Nothing to save: the viewer has no image, labels, points or shapes layers.")
            return None
        lock = self.autosave.lock

        def job(progress=None):
            with lock:  # no snapshot is written into the folder while it is replaced
                return save_project(directory, layers, progress)

        def saved(path):
            self._use_folder(directory, saved=True)
            # the save replaced the folder (and its recovery state): panel state such as
            # the classifier is not in the project, so snapshot it again now
            self.autosave.dirty = True
            self.autosave.save_now()
            show_info(f"Project saved to {path}")

        return self.runner.start(job, label="Saving project", on_result=saved)

    def load(self, directory: str | Path):
        """Add the layers of a saved project to the viewer; then offer its recovery state
        when a session of it ended without saving.

        A worker reads the volumes (progress per chunk) and builds the layers; the GUI
        thread adds them one per event-loop turn. Cancel stops between two chunks or two
        layers and takes back the layers already added.
        """
        runner, viewer, autosave = self.runner, self.viewer, self.autosave

        def job(progress=None):
            # progress: reading 0-60 %, building the layers 60-70 %, adding them 70-100 %
            entries, info, state = _load(directory, scaled(progress, 0, 600, 1000))
            if any(entry.layer_type == "labels" for entry in entries):
                _warm_labels_overlays()
            layers = []
            for entry in entries:
                layers.append(project_layer(entry))
                report(progress, 600 + 100 * len(layers) // len(entries), 1000)
            added: list = []
            try:
                # no snapshot while the layers come in one by one: they are in the project
                runner.in_gui(setattr, autosave, "paused", True)
                for layer in layers:
                    added.append(runner.in_gui(_add_unselected, viewer, layer))
                    report(progress, 700 + 300 * len(added) // len(layers), 1000)
            except BaseException:  # cancelled or failed: nothing stays added
                runner.in_gui(_take_back, viewer, added, autosave, wait=False)
                raise
            return added, info, state

        def added(result):
            layers, info, state = result
            if layers:  # selected once, as the last add would have left it
                viewer.layers.selection.active = layers[-1]
            self.autosave.resume()
            self._use_folder(directory, saved=True)
            show_info(f"Loaded {len(layers)} layers from {directory}")
            if state is not None:
                self.autosave.paused = True  # keep the crash's state until answered
                try:
                    self._offer(info, state)
                finally:
                    self.autosave.resume()

        return self.runner.start(job, label="Loading project", on_result=added)

    def restore(self, folder: str | Path):
        """Restore the snapshot in a recovery folder (no question asked)."""
        return self.runner.start(_read, folder, label="Reading the recovery state",
                                 on_result=lambda res: self._restore(*res))

    # ------------------------------------------------------------------ recovery
    def _use_folder(self, directory: str | Path, saved: bool) -> None:
        """Autosave into ``directory``'s recovery folder from now on."""
        old, new = self.autosave.folder, recovery_folder(directory)
        self.autosave.set_folder(new)
        self.autosave.unsaved_project = not saved
        info = recovery_info(old) if old != new else None
        if info is not None and info.pid == self.autosave.own_pid and info.writer_alive:
            discard_recovery(old)  # this session's earlier snapshot moves with it
        self.restore_button.setVisible(False)
        self.recovery_status.setText(f"Autosaving to {new}")

    def _offer(self, info: RecoveryInfo, state) -> None:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.saved_at))
        names = ", ".join(entry.name for entry in state.layers) or "no edited layers"
        if self.confirm(f"A session of this project ended without saving; its state of "
                        f"{when} was kept ({names}). Restore it?"):
            self._restore(info, state)
        else:
            discard_recovery(info.folder)
            self.recovery_status.setText(f"Recovery state of {when} discarded.")

    def _restore(self, info: RecoveryInfo, state) -> None:
        names = self.autosave.restore(state)
        when = time.strftime("%H:%M:%S", time.localtime(info.saved_at))
        self.restore_button.setVisible(False)
        self.recovery_status.setText(f"Restored the session state of {when}: "
                                     f"{', '.join(names) or 'panel settings'}")
        show_info(self.recovery_status.text())

    def _offer_restore_button(self, folder: Path) -> None:
        """Without a project: a button for the default folder's leftover state, if any."""
        try:
            info = recovery_info(folder)
        except ValueError:
            return
        if info is not None and not info.writer_alive:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.saved_at))
            self.restore_button.setText(f"Restore unsaved session of {when}")
            self.restore_button.setVisible(True)

    def _on_autosaved(self, snapshot: Path) -> None:
        self.recovery_status.setText(f"Autosaved {time.strftime('%H:%M:%S')} to "
                                     f"{snapshot.parent}")

    def _ask_user(self, text: str) -> bool:
        answer = QMessageBox.question(self, "Restore unsaved work?", text)
        return answer == QMessageBox.StandardButton.Yes

    def _ask(self, action: str) -> None:
        directory = QFileDialog.getExistingDirectory(self, f"{action.title()} project folder")
        if directory:
            getattr(self, action)(directory)


def _take_back(viewer: napari.Viewer, layers: list, autosave) -> None:
    """Remove the layers a cancelled load added; snapshots go on."""
    for layer in layers:
        if layer in viewer.layers:
            viewer.layers.remove(layer)
    autosave.resume()


def _add_unselected(viewer: napari.Viewer, layer):
    """``viewer.add_layer`` without making ``layer`` the selected one: napari's selection
    change (layer controls swapped, layer list and button styles redone) is half the
    UI-thread cost of an add (median 93-115 -> 46-60 ms CPU per 160x224x224 image, 2-core
    VM); a load selects once, at the end. napari has no public switch for this: its
    private one is used when present (on the viewer itself, not a plugin's proxy)."""
    layers = real_viewer(viewer).layers
    activate = getattr(layers, "_activate_on_insert", None)
    if activate is None:
        return viewer.add_layer(layer)
    layers._activate_on_insert = False
    try:
        return viewer.add_layer(layer)
    finally:
        layers._activate_on_insert = activate


def _warm_labels_overlays() -> None:
    """Fill vispy's process-wide cache of dash patterns from the worker: otherwise the first
    labels layer's ``add_layer`` makes them on the UI thread (napari's polygon overlay draws
    'agg' lines), 57-91 ms of numpy on a 2-core VM, a third to a half of that call."""
    DashAtlas()


def _load(directory, progress=None):
    """The project's layers (volumes in memory when they fit) and, if a session of it ended
    unsaved, its recovery state."""
    entries = load_project(directory, progress, in_memory=True)
    info = recovery_info(recovery_folder(directory))
    if info is None or info.writer_alive:
        return entries, None, None
    return entries, info, read_recovery(info.folder)


def _read(folder, progress=None):
    return recovery_info(folder), read_recovery(folder)
