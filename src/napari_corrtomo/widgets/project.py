"""Dock widget "Project": modalities, frames and fields of view; save/load the
session; autosave and crash recovery (see :mod:`._autosave`)."""

from __future__ import annotations

import gc
import os
import threading
import time
import weakref
from contextlib import ExitStack, contextmanager, suppress
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import napari
import numpy as np
from napari.layers import Image, Labels, Points, Shapes
from napari.utils.notifications import show_info
from qtpy.QtCore import QEvent, QObject, Qt, QTimer
from qtpy.QtWidgets import (
    QFileDialog,
    QLabel,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
)
from vispy.visuals.line.dash_atlas import DashAtlas

from ..core.progress import report, scaled
from ..core.project import describe, load_project, read_panels, read_view, save_project
from ..core.recovery import (
    RecoveryInfo,
    discard_recovery,
    holds_changes,
    live_writer,
    read_recovery,
    recovery_folder,
    recovery_info,
    recovery_siblings,
)
from ._autosave import autosave_for
from ._dock import DockForm, hbox
from ._layers import (
    DERIVED_FROM,
    REFERENCE_IMAGES,
    add_unselected,
    bring_into_view,
    is_projection_stack,
    project_layer,
    to_project_layer,
)
from ._registered_view import META_VIEW_OF, is_drawing, is_view, registered_views
from ._runner import TaskRunner, real_viewer
from ._table import MAX_COLUMN_PX, TableView

#: layer-list events after which the modality table is rebuilt
TABLE_EVENTS = ("inserted", "removed", "affine", "data", "name", "scale", "translate")
#: a load shows the layers it adds (registered layers' 2D views included) in steps of this
#: many: a scene update (5-30 ms per pair on a 2-core VM once their overlays are made,
#: :meth:`_AddBatch.make_overlays`) and a frame (which builds the new visuals' shaders)
SCENE_STEP = 2
#: the table's columns on screen: header and header tooltip (the others, and each cell's
#: whole text, are in every cell's tooltip)
SHOWN_COLUMNS = {
    "layer": ("layer", "the layer's name"),
    "modality": ("modality", "the instrument (a crop, segmentation or measurement: that of "
                             "the layer it was made from)"),
    "voxel": ("voxel", "voxel size (a detector stack: pixel size), with its unit"),
    "registered": ("reg.", "placed in the common frame by an affine (Register: Apply as "
                           "layer affine)"),
    "size": ("size", "field of view in the common frame (a detector stack: its images, "
                     "projections, flats or darks, and their pixels)"),
}


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
        self._restore_folder = self.autosave.folder
        self.restore_button.clicked.connect(lambda: self.restore(self._restore_folder))
        self.runner = TaskRunner(napari_viewer)
        self._batch: _AddBatch | None = None  # while a load adds its layers
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
        if event.type in TABLE_EVENTS and self._batch is None:
            self.refresh()

    def _begin_adding(self) -> _AddBatch:
        """A load's add phase starts: one batch (:class:`_AddBatch`), the table waits
        (rebuilt once at the end: O(N) per add, 3-10 ms with 53 layers), autosave pauses
        (the layers are in the project)."""
        self._batch = _AddBatch(self.viewer)
        self.autosave.paused = True
        return self._batch

    def _end_batch(self) -> None:
        """The batch ends: frames go on, the table follows layer events again (rebuild it
        then, in a turn of its own: 53 rows were 20-30 ms, 2-core VM); autosave resumes
        later."""
        if self._batch is not None:
            batch, self._batch = self._batch, None
            batch.close()

    def _take_back(self, layer) -> None:
        """Remove a layer a cancelled load added (one per event-loop turn: 40-60 ms of
        napari each, 2-core VM), its data released first (:func:`_release_data`: its
        canvas visual too holds a view of the volume)."""
        if layer in self.viewer.layers:
            _release_data(layer)
            self.viewer.layers.remove(layer)

    def _end_take_back(self) -> None:
        """A cancelled load's layers are removed: the batch ends, snapshots go on.

        napari ends a batch, as each removal, with ``gc.collect()`` (a removed layer is a
        reference cycle holding its data); over the unfrozen heap of a session that one
        collection paused the UI thread 0.27 s (alone) to 0.93 s (in the test suite's
        process), 2-core VM. The load holds the heap frozen (:func:`_hold_frozen`) until
        here, so it scans only what the removals made; the layers taken back are freed
        with the rest of the heap's cyclic garbage, at CPython's next full collection.
        """
        try:
            if not len(self.viewer.layers):  # as napari leaves an emptied viewer
                self.viewer.dims.ndim = 2
            self._end_batch()
            self.refresh()
            self.autosave.resume()
        finally:
            _release_frozen()

    def _saved_layers(self) -> list:
        """The layers a save writes: every image/labels/points/shapes layer but the
        registered layers' 2D views and the live training's drawings."""
        return [layer for layer in self.viewer.layers
                if isinstance(layer, (Image, Labels, Points, Shapes)) and not is_drawing(layer)]

    def refresh(self, *_) -> None:
        """The table of modalities: the volumes a save writes (and the detector stacks,
        in their own terms), fitted to the dock's width (:func:`_fit_table`)."""
        volumes = [to_project_layer(layer) for layer in self._saved_layers()
                   if isinstance(layer, (Image, Labels)) and layer.ndim == 3]
        derived = derived_modalities(self.viewer.layers)
        frame = describe(volumes, stack_kind=stack_kind,
                         modalities={name: m for name, (m, _) in derived.items()})
        if not frame.empty:  # the layer an inherited modality is read from
            frame["modality_of"] = [derived.get(name, ("", ""))[1] for name in frame["layer"]]
        self.table.set_frame(frame)
        _fit_table(self.table)

    def _shown_visibility(self) -> dict[str, bool]:
        """In 2D, the registered layers drawn through a 2D view (napari cannot slice
        them; the layer itself is hidden then): whether each is shown, by name."""
        if self.viewer.dims.ndisplay != 2:
            return {}
        return {layer.metadata.get(META_VIEW_OF): bool(layer.visible)
                for layer in self.viewer.layers if is_view(layer)}

    def save(self, directory: str | Path):
        """Save the layers of :meth:`_saved_layers` into ``directory`` (in a worker), each
        visible as on screen (a registered layer as its 2D view) and in its colours, the
        sliders' position and the docks' state (those :class:`._autosave.Autosave` has:
        Register's landmark pairs and transform, Classify's classifier, ...)."""
        shown = self._shown_visibility()
        layers = []
        for layer in self._saved_layers():
            entry = to_project_layer(layer)
            if layer.name in shown and "visible" in entry.display:
                entry.display["visible"] = shown[layer.name]
            layers.append(entry)
        if not layers:
            self.runner.refuse("Nothing to save: the viewer has no image, labels, points or "
                               "shapes layers.")
            return None
        lock = self.autosave.lock
        view = {"dims_point": [float(v) for v in self.viewer.dims.point]}
        panels, classifier = self.autosave.panel_states()

        def job(progress=None):
            with lock:  # no snapshot is written into the folder while it is replaced
                return save_project(directory, layers, progress, view=view, panels=panels,
                                    classifier=classifier)

        def saved(path):
            # the save replaced the folder and its recovery state, all of which it holds
            self._use_folder(directory, saved=True)
            show_info(f"Project saved to {path}")

        return self.runner.start(job, label="Saving project", on_result=saved)

    def load(self, directory: str | Path):
        """Add the layers of a saved project to the viewer and give the docks their saved
        state (a dock opened later when it opens); then offer its recovery state when a
        session of it ended with changes beyond the project.

        A worker reads the volumes (progress per chunk) and builds the layers; the GUI
        thread adds them one per event-loop turn. Cancel stops between two chunks or two
        layers and takes back the layers already added.
        """
        runner = self.runner

        def job(progress=None):
            with _frozen_heap() as settle:
                return add_all(progress, settle)

        def add_all(progress, settle):
            # progress: reading 0-60 %, building the layers 60-70 %, adding them 70-100 %
            entries, view, panels, recovered = _load(directory, scaled(progress, 0, 600, 1000))
            if any(entry.layer_type == "labels" for entry in entries):
                _warm_labels_overlays()
            # each entry goes once its layer is made: the layer holds the volume, and a
            # cancelled load's traceback keeps this frame, whose volumes must not stay
            layers, total = [], len(entries)
            while entries:
                layers.append(project_layer(entries.pop(0)))
                report(progress, 600 + 100 * len(layers) // total, 1000)
            ndim = max((lay.ndim for lay in layers), default=2)
            point, first = _start_point(view, layers, ndim)
            settle()
            added: list = []
            try:
                # one batch: no snapshot, no table; each add and each registered
                # layer's 2D view in an event-loop turn of its own, a scene update and a
                # frame once SCENE_STEP is due; a controls panel only for the last layer
                batch = runner.in_gui(self._begin_adding)
                runner.in_gui(batch.take_dims, ndim, point, first)

                def frame(done: int, last: bool = False) -> None:
                    if runner.in_gui(batch.draw, last):
                        # a cancel check: the bar does not move
                        _await_frame(batch, partial(report, progress, done, 1000))

                def show_due(done: int, last: bool = False) -> None:
                    if batch.due(last):
                        # napari's end of a batch runs a full collection: while the heap
                        # is frozen, it scans only what this step made
                        runner.in_gui(batch.show, last)
                        frame(done)

                def after_add(done: int) -> None:
                    settle()
                    runner.in_gui(batch.make_overlays)
                    show_due(done)

                for layer in layers:
                    added.append(runner.in_gui(batch.add, layer))
                    done = 700 + 300 * len(added) // len(layers)
                    report(progress, done, 1000)
                    after_add(done)
                    if runner.in_gui(batch.add_view):  # a registered layer's 2D view
                        after_add(done)
                show_due(1000, last=True)
                if added:  # selected once, as the last add would have left it
                    runner.in_gui(batch.panels.build, added[-1])
                    runner.in_gui(batch.select, added[-1])
                    frame(1000, last=True)
                runner.in_gui(self._end_batch)
                runner.in_gui(self.refresh)
            except BaseException:  # cancelled or failed: nothing stays added
                # the heap stays frozen until the last removal is done (_end_take_back)
                _hold_frozen()
                for layer in layers[len(added):]:  # built, never added
                    _release_data(layer)
                for layer in reversed(added):
                    runner.in_gui(self._take_back, layer, wait=False)
                runner.in_gui(self._end_take_back, wait=False)
                raise
            return added, panels, recovered

        def added(result):
            layers, (panels, classifier), (info, state) = result
            self.autosave.resume()
            self.autosave.set_panel_states(panels, classifier)
            # a crashed session's folder, offered below, is this session's from now on
            self._use_folder(directory, saved=True,
                             prefer=info.folder if state is not None else None)
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
    def _use_folder(self, directory: str | Path, saved: bool, prefer=None) -> None:
        """Autosave into ``directory``'s recovery folder from now on, or into a folder of
        this window's own beside it while another open viewer autosaves there (said in the
        panel)."""
        new = recovery_folder(directory)
        # this session's snapshot moves with it
        folder = self.autosave.set_folder(new, move=True, prefer=prefer)
        self.autosave.unsaved_project = not saved
        self.restore_button.setVisible(False)
        if folder == new:
            self.recovery_status.setText(f"Autosaving to {new}")
        else:
            self.recovery_status.setText(f"{_other_writer(new, self.autosave.writer)} "
                                         f"autosaves this project to {new}: this window "
                                         f"autosaves to {folder}")

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
        text = f"Autosaved {time.strftime('%H:%M:%S')} to {snapshot.parent}"
        base = self.autosave.base
        if snapshot.parent != base:
            text += (f" ({_other_writer(base, self.autosave.writer).lower()} autosaves to "
                     f"{base})")
        self.recovery_status.setText(text)

    def _ask_user(self, text: str) -> bool:
        answer = QMessageBox.question(self, "Restore unsaved work?", text)
        return answer == QMessageBox.StandardButton.Yes

    def _ask(self, action: str) -> None:
        directory = QFileDialog.getExistingDirectory(self, f"{action.title()} project folder")
        if directory:
            getattr(self, action)(directory)


class _AddBatch:
    """A load's layers added as a batch, on the UI thread.

    napari updates its canvas's scene after each add, over all the layers (15-40 ms each
    with 53 of them on a 2-core VM), and each add asks for a frame, which in software
    OpenGL grows with the visible layers (Xvfb: 30-90 ms after each add with 30-50 of
    them). Here napari's batch (``LayerList.batched_update``, as its ``clear`` uses) holds
    the scene updates and the canvas widget holds its frames; once the layers waiting
    reach :data:`SCENE_STEP` (:meth:`due`) :meth:`show` updates the scene and :meth:`draw`
    lets one frame through, which the loading thread awaits (:attr:`drawn`) before it
    posts the next add. One scene update and frame for all 53 layers at the end were
    110-120 ms and 100-190 ms (the first frame of a visual builds its shaders); a step of
    two layers is 5-30 ms of scene update once their canvas overlays are made in a turn
    before it (:meth:`make_overlays`: within the update a labels layer and its 2D view
    were 60-90 ms), then a frame. The registered layers' 2D views (:meth:`add_view`) are
    made in turns of their own; the layers' controls panels when they are selected
    (:class:`_DeferredPanels`).
    """

    def __init__(self, viewer: napari.Viewer):
        self.viewer = viewer
        self.canvas = _vispy_canvas(viewer)
        #: set in the turn after the frame :meth:`draw` let through was painted
        self.drawn = threading.Event()
        #: frames are no longer held once the last is let through (or the batch closed)
        self._held = True
        self._stack = ExitStack()
        self._shown = len(viewer.layers)  # the layers in the last scene update
        self._new: list = []  # the layers added whose overlays are not made yet
        self._stack.enter_context(viewer.layers.batched_update())
        if self.canvas is not None:
            self.canvas.events.draw.connect(self._on_draw, position="last")
        self._frames(False)
        #: where the sliders go as the layers come (:meth:`take_dims`)
        self.point: np.ndarray | None = None
        self.first = None
        self.views = registered_views(viewer)
        self.views.held = True
        self.panels = _DeferredPanels(viewer)

    def take_dims(self, ndim: int, point=None, first=None) -> None:
        """An empty viewer takes the layers' dimensions before the first add: napari would
        make the slice sliders and lay the window out again within that add (its UI
        thread time 130 -> 90 ms with the events that follow, 2-core VM); and the sliders
        go to ``point`` (world), the saved one, as the layers come (:meth:`_go_to_point`).
        Without one, or in a viewer that had layers, they stay where napari puts them
        unless they miss ``first``, the first loaded volume shown (:func:`bring_into_view`
        after its add: napari's middle of 360 projections is past the volumes)."""
        self.point, self.first = None, first
        if not len(self.viewer.layers):
            self.viewer.dims.ndim = ndim
            if point is not None:
                self.point, self.first = np.asarray(point, float), None

    def add(self, layer):
        self._frames(False)
        self._new.append(layer)
        added = add_unselected(self.viewer, layer)
        self._go_to_point(layer)
        return added

    def _go_to_point(self, layer) -> None:
        """Within an add: the sliders at the point asked for, as far as the layers added
        so far reach (napari puts them in the middle of the first layer, e.g. at 179 um of
        360 projections where the volumes end at 160 um). Set once the layers reach it
        (after the first add, as a rule: 8-10 ms, a re-slice of the one layer in by then,
        2-core VM), and again when a layer with finer voxels makes napari's slider steps
        finer (the tutorial: the nanoCT projections, 5th); without a point, ``first``
        brought into view once added."""
        dims = self.viewer.dims
        if self.point is not None and len(self.point) == dims.ndim:
            low = [r.start for r in dims.range]
            high = [r.stop for r in dims.range]
            want = np.clip(self.point, low, high)
            # napari puts the sliders on its steps (the finest layer's voxel): set again
            # only when a finer step (a layer added) brings it nearer
            half = np.array([r.step for r in dims.range]) / 2 + 1e-9
            if np.any(np.abs(np.asarray(dims.point, float) - want) > half):
                dims.set_point(range(dims.ndim), tuple(float(v) for v in want))
        elif self.first is not None and layer is self.first:
            bring_into_view(self.viewer, layer)

    def add_view(self) -> bool:
        """The 2D view of the registered layer just added (a second napari add), if it
        needs one; whether one was added."""
        before = len(self.viewer.layers)
        self._frames(False)
        self.views.settle()
        self._new.extend(list(self.viewer.layers)[before:])
        return len(self.viewer.layers) > before

    def make_overlays(self) -> None:
        """The canvas overlays of the layers just added (a labels layer's polygon tool:
        20-25 ms of vispy visuals), which napari makes in its scene update otherwise."""
        make = getattr(self.canvas, "_update_layer_overlays", None)
        for layer in self._new:
            if make is not None and layer in self.viewer.layers:
                make(layer)
        self._new.clear()

    def select(self, layer) -> None:
        """Make ``layer`` the selected one: napari swaps the controls panel now (8-10 ms
        of Python, then Qt's paint); the canvas's frame and the layer list's paint, about
        a quarter each of that paint when they come with it (py-spy, 2-core VM), wait for
        :meth:`draw`."""
        self._frames(False)
        self._list_updates(False)
        self.viewer.layers.selection.active = layer

    def due(self, last: bool = False) -> bool:
        """Whether a scene update and frame are due (``last``: the batch ends, one is);
        the loading thread asks between its calls (a read of what the UI thread last
        wrote)."""
        return last or len(self.viewer.layers) - self._shown >= SCENE_STEP

    def show(self, last: bool = False) -> None:
        """The scene update for the layers added so far (no frame yet); ``last``: the
        batch ends."""
        self._stack.close()
        self._shown = len(self.viewer.layers)
        if not last:
            self._stack.enter_context(self.viewer.layers.batched_update())

    def draw(self, last: bool = False) -> bool:
        """Let one frame through (at Qt's next paint, in an event-loop turn of its own);
        whether one comes (a canvas on screen). ``last``: the frames are not held again
        (turned on at the end, the canvas would draw the same frame once more: 80-110 ms
        of software OpenGL with 53 layers on a 2-core VM)."""
        self.drawn.clear()
        if last:
            self._held = False
        self._frames(True)
        self._list_updates(True)
        with suppress(RuntimeError, AttributeError):
            return self.canvas.native.isVisible()
        return False

    def close(self) -> None:
        self._held = False
        self.panels.close()
        self.views.held = False
        self.views.settle()
        self._stack.close()
        self._frames(True)
        self._list_updates(True)
        if self.canvas is not None:
            self.canvas.events.draw.disconnect(self._on_draw)

    def _on_draw(self, event=None) -> None:
        # the scene is drawn, Qt's paint of the window goes on: the loading thread's next
        # call waits for the turn after it (posted now, it would run in the same pause)
        QTimer.singleShot(0, self._after_frame)

    def _after_frame(self) -> None:
        """The frame :meth:`draw` let through is painted: the next wait for the next
        :meth:`draw`. Let through, napari's updates in the loading thread's next steps (the
        next add) drew the canvas again with their repaint of the window, and Qt paints
        before the next timer: 40-50 ms more in each of those pauses."""
        if self._held:
            self._frames(False)
        self.drawn.set()

    def _list_updates(self, on: bool) -> None:
        with suppress(RuntimeError, AttributeError):
            _qt_viewer(self.viewer).layers.setUpdatesEnabled(on)

    def _frames(self, on: bool) -> None:
        with suppress(RuntimeError, AttributeError):  # no canvas, or the window is gone
            self.canvas.native.setUpdatesEnabled(on)


class _DeferredPanels:
    """napari's layer controls panels of a load's layers, each built when the user first
    selects its layer rather than within the layer's add.

    A panel is ~120 widgets (napari builds it on insertion: 60-100 ms of the UI thread
    with Qt's layout and paint of the window 50-70 ms more, 2-core VM): a load built 53 of
    them, each in a pause of its own, to show one. While the batch lasts napari's panel
    building on insertion is held; the selection and removal handling of
    :func:`_panels_on_selection` (which stays) builds a panel when its layer is selected
    and removes only the panels that exist.
    """

    def __init__(self, viewer: napari.Viewer):
        self.controls = _layer_controls(viewer)
        self._stack = ExitStack()
        if self.controls is not None:
            _panels_on_selection(viewer, self.controls)
            self._stack.enter_context(
                real_viewer(viewer).layers.events.inserted.blocker(self.controls._add))

    def build(self, layer) -> None:
        """The panel of ``layer`` if it has none (hidden until the layer is selected)."""
        if self.controls is not None:
            _build_panel(self.controls, layer)

    def close(self) -> None:
        """Give napari its building on insertion back."""
        self._stack.close()


#: the controls stacks whose panels :func:`_panels_on_selection` builds on selection
_ON_SELECTION: weakref.WeakSet = weakref.WeakSet()


def _build_panel(controls, layer) -> None:
    if layer not in controls.widgets:
        controls._add(SimpleNamespace(value=layer))


def _panels_on_selection(viewer: napari.Viewer, controls) -> None:
    """From now on the controls stack builds a layer's panel when the layer is selected
    without one, and removes only the panels that exist: napari's handling otherwise
    (which expects a panel for every layer). Once per stack; the callbacks hold it weakly,
    so a closed window is freed."""
    if controls in _ON_SELECTION:
        return
    _ON_SELECTION.add(controls)
    stack = weakref.ref(controls)
    layers = real_viewer(viewer).layers

    def selected(event=None) -> None:
        panels = stack()
        if panels is None:
            return
        if layers.selection.active is not None:
            _build_panel(panels, layers.selection.active)
        panels._populate()

    def removed(event) -> None:
        panels = stack()
        if panels is not None and event.value in panels.widgets:
            panels._remove(event)

    layers.selection.events.changed.disconnect(controls._populate)
    layers.selection.events.changed.connect(selected)
    layers.events.removed.disconnect(controls._remove)
    layers.events.removed.connect(removed)


def _qt_viewer(viewer: napari.Viewer):
    """napari's Qt viewer, None without a window: napari has no public handle on it or its
    parts, so it is read on the viewer itself (not through a plugin's proxy)."""
    return getattr(getattr(real_viewer(viewer), "window", None), "_qt_viewer", None)


def _vispy_canvas(viewer: napari.Viewer):
    """napari's canvas (its Qt widget ``native``, its vispy ``events``), or None."""
    return getattr(_qt_viewer(viewer), "canvas", None)


def _layer_controls(viewer: napari.Viewer):
    """napari's stack of layer controls panels (one per layer in ``widgets``, made by
    ``_add`` on each insertion), or None where napari has it otherwise."""
    controls = getattr(_qt_viewer(viewer), "controls", None)
    if isinstance(getattr(controls, "widgets", None), dict) and hasattr(controls, "_add"):
        return controls
    return None


def _await_frame(batch: _AddBatch, check, timeout_s: float = 0.5) -> None:
    """In the loading thread: wait for the frame ``batch.draw`` let through (at most
    ``timeout_s``: a minimised window draws none), calling ``check`` (which raises
    :class:`Cancelled` once Cancel is pressed) meanwhile."""
    end = time.monotonic() + timeout_s
    while not batch.drawn.wait(0.02) and time.monotonic() < end:
        check()


_FREEZE_LOCK = threading.Lock()
_freezes = {"depth": 0}  # loads in progress


@contextmanager
def _frozen_heap():
    """The objects that exist now, and those made before each call of the function it
    gives (``settle``), are left out of CPython's collections until the end.

    A load adds many long-lived objects (napari makes ~8k per layer: 53 layers took a
    session from 333k to 762k tracked objects), so CPython's rule (a full collection
    each time the surviving objects grow by 25 %) ran 3-5 full collections during one,
    each over the whole session so far, 200-450 ms of the UI thread (2-core VM). Frozen,
    the session is not scanned, and after each ``settle`` neither are the layers added:
    a collection scans what the current step made.

    The heap is unfrozen at the end of the last load running: frozen objects are never
    freed when they become cyclic garbage (a removed napari layer is such a cycle, with its
    data), so a session must not stay frozen. The collections the new objects make due then
    come at CPython's next full collection, one instead of several. A heap the application
    froze before is unfrozen too: telling its objects from the load's takes
    ``gc.get_freeze_count()``, a walk over every frozen object with the GIL held (153 ms of
    the load's click in a full test session, the UI thread waiting for the worker to start);
    an application that keeps its heap frozen freezes it again after a load.
    """
    _hold_frozen()
    try:
        yield gc.freeze
    finally:
        _release_frozen()


def _hold_frozen() -> None:
    """One more holder of the frozen heap (:func:`_frozen_heap`): all objects that exist
    now are frozen, until the last holder releases it."""
    with _FREEZE_LOCK:
        _freezes["depth"] += 1
        gc.freeze()


def _release_frozen() -> None:
    """A holder of the frozen heap is done; the last one unfreezes it."""
    with _FREEZE_LOCK:
        _freezes["depth"] -= 1
        if _freezes["depth"] == 0:
            gc.unfreeze()


def _release_data(layer) -> None:
    """Give a layer a cancelled load takes back a one-voxel placeholder for its in-memory
    volume, so that the volume is freed now: the layer itself is cyclic garbage that the
    frozen heap (:func:`_hold_frozen`) leaves to CPython's next full collection, which
    kept all 400 MB of a cancelled 53-layer load in memory. A lazy or multiscale volume
    holds no data of its own to free."""
    if isinstance(layer, (Image, Labels)) and not layer.multiscale \
            and isinstance(layer.data, np.ndarray):
        layer.data = np.zeros((1,) * layer.ndim, layer.data.dtype)


def _warm_labels_overlays() -> None:
    """Fill vispy's process-wide cache of dash patterns from the worker: otherwise the first
    labels layer's ``add_layer`` makes them on the UI thread (napari's polygon overlay draws
    'agg' lines), 57-91 ms of numpy on a 2-core VM, a third to a half of that call."""
    DashAtlas()


def _load(directory, progress=None):
    """The project's layers (volumes in memory when they fit), the saved view, the docks'
    saved state and classifier (:func:`core.project.read_panels`) and, as ``(info, state)``,
    the recovery state of a session of it that ended with changes beyond the project (the
    newest of its recovery folders', see :func:`core.recovery.claim_recovery_folder`; one
    holding none is discarded); ``(None, None)`` without one."""
    entries = load_project(directory, progress, in_memory=True)
    view, panels = read_view(directory), read_panels(directory)
    left = [info for info in map(recovery_info, recovery_siblings(recovery_folder(directory)))
            if info is not None and not info.writer_alive]
    info = max(left, key=lambda i: i.saved_at, default=None)
    state = None if info is None else read_recovery(info.folder)
    if state is None or not holds_changes(state, entries, panels[0]):
        if info is not None:
            discard_recovery(info.folder)
        return entries, view, panels, (None, None)
    return entries, view, panels, (info, state)


def _start_point(view: dict, layers: list, ndim: int):
    """Where a load puts the sliders: the saved point (world, one value per axis; None
    when not saved), and the first volume shown (not a detector stack: its first axis
    counts images), which the sliders must not miss without one."""
    volumes = [lay for lay in layers if isinstance(lay, (Image, Labels)) and lay.ndim == ndim
               and not is_projection_stack(lay) and not is_view(lay)]
    shown = [lay for lay in volumes if lay.visible] or volumes
    first = shown[0] if shown else None
    saved = view.get("dims_point")
    if isinstance(saved, list) and len(saved) == ndim and all(
            isinstance(v, (int, float)) for v in saved):
        return tuple(float(v) for v in saved), first
    return None, first


def stack_kind(layer) -> str | None:
    """``"projections"``, ``"flats"`` or ``"darks"`` for a detector stack
    (:func:`._layers.is_projection_stack`; ``layer`` may be a project layer), else None."""
    if not is_projection_stack(layer):
        return None
    detector = layer.metadata.get("detector")
    return detector if detector in REFERENCE_IMAGES else "projections"


def _derived_from(layer, names: set[str]) -> str | None:
    """The name of the layer ``layer`` was made from (its :data:`DERIVED_FROM`, which the
    docks write on what they make, or the layer a 2D view draws), if it is still there."""
    md = layer.metadata
    source = md.get(DERIVED_FROM) or md.get(META_VIEW_OF)
    if isinstance(source, str) and source in names and source != layer.name:
        return source
    return None


def derived_modalities(layers) -> dict[str, tuple[str, str]]:
    """Modality of each layer, by name, and the layer it is read from: its own
    ``metadata["modality"]`` (``(modality, "")``), else that of the layer it was made from
    (:func:`_derived_from`, followed back to a layer that has one; ``("", "")``: none)."""
    by_name = {layer.name: layer for layer in layers}
    names = set(by_name)
    found: dict[str, tuple[str, str]] = {}
    for layer in by_name.values():
        chain, current = [], layer
        while current is not None and current.name not in found and current.name not in chain:
            modality = current.metadata.get("modality")
            if modality:
                found[current.name] = (str(modality), "")
                break
            chain.append(current.name)
            source = _derived_from(current, names)
            current = by_name.get(source) if source else None
        end = ("", "")
        if current is not None and current.name in found:
            modality, origin = found[current.name]
            end = (modality, origin or current.name) if modality else ("", "")
        for link in chain:
            found[link] = end
    return found


def _other_writer(folder: Path, writer: str) -> str:
    """Who else autosaves into ``folder``: for the panel's line."""
    info = live_writer(folder, writer)
    if isinstance(info, RecoveryInfo) and info.pid != os.getpid():
        return f"Another napari (process {info.pid})"
    return "Another open viewer"


def _compact_size(row) -> str:
    """A volume's field of view to 3 digits, ``2.08\u00d72.91\u00d72.91 um``; a stack's
    ``360 projections of 160\u00d7318 px``."""
    if row["kind"] in ("image", "labels"):
        if not row["fov_extent"]:
            return ""
        extent, _, unit = str(row["fov_extent"]).rpartition(" ")
        return "\u00d7".join(f"{float(e):.3g}" for e in extent.split(" x ")) + f" {unit}"
    return str(row["size"]).split(" (")[0].replace(" x ", "\u00d7")


def _compact_voxel(row) -> str:
    """``0.13 um`` for an isotropic voxel, ``1\u00d70.5\u00d70.5 um`` otherwise."""
    sizes = str(row["voxel"]).split(" x ")
    text = sizes[0] if len(set(sizes)) == 1 else "\u00d7".join(sizes)
    return f"{text} {row['unit']}".strip()


def _row_tooltip(row) -> str:
    """The whole row, for every cell's tooltip (the columns the dock hides included)."""
    kind = row["kind"]
    modality = row["modality"]
    if modality and row.get("modality_of"):
        modality += f" (that of {row['modality_of']!r}, which it was made from)"
    lines = [str(row["layer"]), f"{kind}" + (f", {modality}" if modality else "")]
    if kind in ("image", "labels"):
        lines += [f"shape {row['shape']} voxels of {row['voxel']} {row['unit']}",
                  f"field of view {row['fov_extent']}" if row["fov_extent"] else "",
                  "registered (affine)" if row["registered"] else "not registered"]
    else:
        lines += [str(row["size"]), f"shape {row['shape']} (images, rows, columns)"]
    return "\n".join(line for line in lines if line)


#: narrowest a column is made to fit the dock (px); the layer names' column
MIN_COLUMN_PX, MIN_LAYER_PX = 48, 110


class _FitWidths(QObject):
    """Keeps a table's shown columns within its width (each resize of the dock): each
    column as wide as its contents (at most :data:`MAX_COLUMN_PX`) while they fit, the
    layer names taking what is left; narrower, the widest columns give way first, down to
    :data:`MIN_COLUMN_PX` (:data:`MIN_LAYER_PX` for the names), their text elided."""

    def __init__(self, table):
        super().__init__(table)
        self.table = table
        #: column -> width of its contents
        self.natural: dict[int, int] = {}
        self.layer_column: int | None = None
        # the viewport: resized after the table (the table's own event comes before)
        table.viewport().installEventFilter(self)

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 (Qt API)
        if event.type() == QEvent.Type.Resize:
            self.apply()
        return False

    def apply(self) -> None:
        if not self.natural:
            return
        avail = self.table.viewport().width()
        natural = self.natural
        floor = {c: min(w, MIN_LAYER_PX if c == self.layer_column else MIN_COLUMN_PX)
                 for c, w in natural.items()}
        if sum(natural.values()) <= avail:
            widths = dict(natural)
            if self.layer_column in widths:
                widths[self.layer_column] += avail - sum(natural.values())
        else:
            # the level L at which sum(max(floor, min(natural, L))) fills the width
            low, high = 0, max(natural.values())
            while low < high:
                level = (low + high + 1) // 2
                if sum(max(floor[c], min(w, level)) for c, w in natural.items()) <= avail:
                    low = level
                else:
                    high = level - 1
            widths = {c: max(floor[c], min(w, low)) for c, w in natural.items()}
        for c, w in widths.items():
            if self.table.columnWidth(c) != w:
                self.table.setColumnWidth(c, w)


def _fit_table(view: TableView) -> None:
    """The Project table fitted to a dock's width: the columns of
    :data:`SHOWN_COLUMNS` only (type, kind, shape, unit and the raw extent are in the
    tooltips and the exported CSV), short cells (an isotropic voxel once,
    ``160\u00d7224\u00d7224 um``, a tick for registered), widths kept within the table's
    (:class:`_FitWidths`), long texts elided in the middle (where long layer names end in
    what tells them apart), no row numbers; every cell's tooltip holds the whole row."""
    frame, table = view.frame, view.table
    columns = list(frame.columns)
    short = {"voxel": _compact_voxel, "size": _compact_size,
             "registered": lambda row: "\u2713" if row["registered"] else ""}
    for r, row in frame.iterrows():
        tip = _row_tooltip(row)
        for c, name in enumerate(columns):
            item = table.item(r, c)
            if item is None:
                continue
            if name in short:
                item.setText(short[name](row))
            if name == "registered":
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
            item.setToolTip(tip)
    fit = table.findChild(_FitWidths) or _FitWidths(table)
    fit.natural.clear()
    fit.layer_column = columns.index("layer") if "layer" in columns else None
    table.verticalHeader().setVisible(False)
    table.setWordWrap(False)
    table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
    table.horizontalHeader().setMinimumSectionSize(24)
    for c, name in enumerate(columns):
        table.setColumnHidden(c, name not in SHOWN_COLUMNS)
        if name in SHOWN_COLUMNS:
            item = table.horizontalHeaderItem(c)
            item.setText(SHOWN_COLUMNS[name][0])
            item.setToolTip(SHOWN_COLUMNS[name][1])
            table.resizeColumnToContents(c)
            fit.natural[c] = min(table.columnWidth(c), MAX_COLUMN_PX)
    fit.apply()


def _read(folder, progress=None):
    return recovery_info(folder), read_recovery(folder)
