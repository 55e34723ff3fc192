"""Classify: sparse-label random-forest pixel classification (ilastik-style) in napari.

Choose the image (and other images of its shape as further channels), paint a few
strokes per class on a scribble Labels layer, pick features in the table (scales x
filters, 2D/3D), press *Live training*: the forest is trained and, while it stays on,
every brush stroke (and every change of the visible slice) updates the prediction of
that slice in a worker, the brush staying active (the newest stroke supersedes an update
still running; on a registered, rotated layer the planes the slice cuts are predicted
from the middle out, a voxel budget per step, until the whole slice is drawn). Switched
off, its drawings are hidden. *Predict volume* segments the whole volume blockwise in a worker
(progress, Cancel) and adds a segmentation, per-class probabilities and the uncertainty.
Save the classifier, load it later and apply it to other layers (same channels, same
voxel size). All computing is in :mod:`napari_corrtomo.core.classify`.
"""

from __future__ import annotations

import copy
import threading
from typing import Any

import napari
import numpy as np
from napari.layers import Image, Labels
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QObject, Qt, QTimer, Signal
from qtpy.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..core._errors import SettingError
from ..core.classify import LiveTrainer, PixelClassifier, segment, stack_channels
from ..core.classify.features import FILTERS, ILASTIK_SIGMAS, FeatureSpec, TailoredFeatures
from ..core.classify.live import LiveUpdate
from ..core.classify.pipeline import check_channel_order
from ..core.progress import Cancelled, report, scaled
from ._autosave import CLASSIFIER, autosave_for
from ._dock import DockForm, act_on_file, hbox
from ._form import Field, SettingsForm
from ._layers import (
    CREATED_BY,
    DERIVED_FROM,
    LIVE,
    LayerSelect,
    add_result,
    full_resolution,
    is_projection_stack,
    layer_frame,
    selection_kept,
)
from ._registered_view import is_axis_aligned, is_drawing, registered_views
from ._runner import Job, TaskRunner, start_job
from ._table import TableView

NAME = "classify"
#: the feature grid's row headers (the full names are their tooltips)
_SHORT_NAMES = {"gaussian": "Gaussian", "log": "LoG", "ggm": "Gradient", "dog": "DoG",
                "ste": "Structure", "hessian": "Hessian"}
#: a grid cell's next mode on a click
_NEXT_MODE = {"off": "3D", "3D": "2D", "2D": "off"}
#: the tailored-feature choices of the form -> ``FeatureSpec.tailored``
TAILORED = {"none": None, "FIB-SEM neighbour slices": TailoredFeatures()}
#: seconds a live update's worker waits for its first prediction to be drawn before it
#: grows the rest of the forest (the GUI thread gets the CPU to draw it first)
PREVIEW_WAIT_S = 0.5
#: most voxels of a registered (rotated) layer one live step predicts: the slice on
#: screen cuts across its planes (one plane showed as a line); nearest the middle first,
#: each shown when predicted (8 planes of 512 x 512); further steps predict the rest
MAX_LIVE_VOXELS = 2**21
#: rows of the Channels list shown without scrolling
CHANNEL_ROWS = 6


#: metadata key of the probability and uncertainty images a prediction adds (their value)
OUTPUT = "corrtomo_classify_output"


def _not_a_channel(layer) -> bool:
    """Image layers that are never a channel: RGB, a drawing of other layers (a
    registered layer's 2D view, the live uncertainty), a detector's images (projections,
    flats, darks), and a prediction's own probabilities and uncertainty (a forest trained
    on them learns its own answers)."""
    return (bool(layer.rgb) or is_drawing(layer) or is_projection_stack(layer)
            or OUTPUT in layer.metadata)


class _ModeCell(QPushButton):
    """One filter at one scale in the feature grid: off (blank), 3D or 2D (within each z
    slice, for anisotropic stacks); a click goes to the next, as ilastik's check boxes."""

    def __init__(self, what: str, mode: str):
        super().__init__()
        self.setCheckable(True)
        self.setToolTip(f"{what}: blank = off; a click cycles off -> 3D -> 2D (in each z "
                        "slice, for anisotropic stacks) -> off")
        self.clicked.connect(lambda: self.set_mode(_NEXT_MODE[self.mode]))
        self.set_mode(mode)

    def set_mode(self, mode: str) -> None:
        self.mode = mode
        self.setText("" if mode == "off" else mode)
        self.setChecked(mode != "off")


class _Preview(QObject):
    """Carries a live update's first prediction from its worker to the GUI thread."""

    ready = Signal(object)


class ClassifyWidget(DockForm):
    """Dock widget: channels + scribbles -> features -> live training -> volume prediction."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.live: LiveTrainer | None = None
        self.classifier: PixelClassifier | None = None
        self._watched: Labels | None = None
        # live updates: one worker at a time; strokes since it started wait for the next
        self._live_job: Job | None = None
        self._live_inputs: tuple[np.ndarray | None, dict[int, np.ndarray]] = (None, {})
        self._live_planes: dict[int, np.ndarray] = {}
        self._live_full = False
        self._live_request = False
        #: planes on screen still to predict (middle out), in later live steps; those
        #: predicted since the newest strokes or slice change, of how many
        self._live_rest: list[int] = []
        self._live_drawn: set[int] = set()
        self._live_total = 0
        self._preview = _Preview(self)
        self._preview.ready.connect(self._show_preview)

        # ---- inputs
        #: the image to classify: the first channel; the list offers the images of its
        #: shape as further channels
        self.image = LayerSelect(
            napari_viewer, (Image,),
            tip="the image to classify (its first channel); the Channels list offers the "
                "images of the same shape as further channels",
            skip=_not_a_channel)
        self.channel_list = QListWidget()
        # none until the user makes or picks one: any Labels layer (a ground truth, a
        # segmentation) is not a layer of strokes
        self.scribbles = LayerSelect(
            napari_viewer, (Labels,), allow_none=True,
            tip="labels layer with your strokes (1, 2, 3 ... = classes, 0 = unlabelled); "
                "New scribble layer makes one",
            skip=is_drawing)  # the forest's own drawing, a registered layer's 2D view
        self.new_scribbles = QPushButton("New scribble layer")
        self.new_scribbles.clicked.connect(self.create_scribble_layer)
        inputs = QFormLayout()
        inputs.addRow("Image:", self.image)
        inputs.addRow("Channels:", self.channel_list)
        inputs.addRow("Scribbles:", hbox(self.scribbles, self.new_scribbles, stretch=self.scribbles))

        # ---- features
        self.feature_table = QTableWidget(len(FILTERS), len(ILASTIK_SIGMAS))
        self.feature_table.setHorizontalHeaderLabels([f"{s:g}" for s in ILASTIK_SIGMAS])
        ilastik = {(f.name, f.sigma) for f in FeatureSpec.ilastik_default().filters}
        for r, name in enumerate(FILTERS):
            header = QTableWidgetItem(_SHORT_NAMES[name])
            header.setToolTip(FILTERS[name])
            self.feature_table.setVerticalHeaderItem(r, header)
            for c, s in enumerate(ILASTIK_SIGMAS):
                mode = "3D" if (name, s) in ilastik else "off"
                self.feature_table.setCellWidget(r, c, _ModeCell(f"{FILTERS[name]} at scale {s:g}",
                                                                 mode))
        # the columns share the dock's width (no sideways scrolling), every row in view
        self.feature_table.horizontalHeader().setMinimumSectionSize(30)
        self.feature_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        rows = self.feature_table.verticalHeader()
        rows.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.feature_table.setMinimumHeight(
            rows.defaultSectionSize() * (len(FILTERS) + 1) + 2 * self.feature_table.frameWidth())
        #: the rest of the FeatureSpec and the forest's size: forms from the core classes
        self.spec_form = SettingsForm(FeatureSpec, {
            "channel_differences": Field(label="Channel differences"),
            "tailored": Field(label="Tailored z features", choices=TAILORED),
        })
        self.spec_form["channel_differences"].value = True
        self.forest_form = SettingsForm(PixelClassifier, {
            "n_trees": Field(label="Trees", min=1, max=1000)})
        feats = QVBoxLayout()
        feats.addWidget(self.feature_table)
        feats.addWidget(self.spec_form.widget)
        feats.addWidget(self.forest_form.widget)
        feat_box = QGroupBox("Features (scales in finest-voxel units)")
        feat_box.setLayout(feats)

        # ---- actions
        self.train_button = QPushButton("Live training")
        self.train_button.setCheckable(True)
        self.train_button.toggled.connect(self._on_train_toggled)
        self.predict_button = QPushButton("Predict volume")
        self.predict_button.clicked.connect(self.predict_volume)
        self.save_button = QPushButton("Save classifier ...")
        self.save_button.clicked.connect(self._ask_save)
        self.load_button = QPushButton("Load classifier ...")
        self.load_button.clicked.connect(self._ask_load)
        self.status = QLabel("Paint a few strokes per class, then press Live training.")
        self.status.setWordWrap(True)
        self.runner = TaskRunner(napari_viewer)
        self.importances = TableView()
        buttons = hbox(self.train_button, self.predict_button)
        files = hbox(self.save_button, self.load_button)

        for w, tip in (
                (self.channel_list, "the channels, in this order: the image above, then the "
                                    "images of its shape you tick (a saved classifier needs "
                                    "the same order); projections, flats and darks are no "
                                    "channels"),
                (self.new_scribbles, "add an empty labels layer on the first channel's grid "
                                     "to paint on"),
                (self.train_button, "retrain on your strokes after every stroke and show the "
                                    "prediction of the visible slice"),
                (self.predict_button, "classify the whole volume into a segmentation and an "
                                      "uncertainty layer"),
                (self.save_button, "write the trained classifier (.corrclf.npz) for another "
                                   "volume or 'corrtomo classify'"),
                (self.load_button, "read a classifier file (validated before use)"),
        ):
            w.setToolTip(tip)
        layout = QVBoxLayout(self.body)
        layout.addLayout(inputs)
        layout.addWidget(feat_box)
        layout.addLayout(buttons)
        layout.addLayout(files)
        layout.addWidget(self.runner)
        layout.addWidget(self.status)
        layout.addWidget(QLabel("Feature importance"))
        layout.addWidget(self.importances, 1)  # the spare height: no gaps between the rows above

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(100)  # slice changes: settle on the slice the slider stops at
        self._timer.timeout.connect(self._request_live)
        for event in (napari_viewer.layers.events.inserted, napari_viewer.layers.events.removed,
                      napari_viewer.layers.events.reordered):
            event.connect(self.refresh_channels)
        napari_viewer.dims.events.current_step.connect(self._schedule_live)
        # the image the user has selected, else the newest one
        active = napari_viewer.layers.selection.active
        images = [self.image.itemText(i) for i in range(self.image.count())]
        if active is not None and active.name in images:
            self.image.set_layer(active)
        elif images:
            self.image.setCurrentIndex(len(images) - 1)
        self.image.currentTextChanged.connect(self._image_chosen)
        self.refresh_channels()
        self._clf_snapshot: PixelClassifier | None = None
        self.autosave = autosave_for(napari_viewer)
        self.autosave.register(NAME, self.recovery_state, self.restore_state)

    # ------------------------------------------------------------------ inputs

    def refresh_channels(self, *_: Any) -> None:
        """List the layers that can be channels of the chosen image: itself (ticked, first)
        and the other images of its shape (no drawings, no projections, flats or darks),
        every entry in view up to :data:`CHANNEL_ROWS` rows."""
        checked = set(self.checked_channel_names())
        first = self.image.layer()
        names = []
        if first is not None:
            shape = full_resolution(first).shape
            names = [first.name] + [
                layer.name for layer in self.viewer.layers
                # by name: a docked panel sees napari's proxies of the layers, never ``first``
                if isinstance(layer, Image) and layer.name != first.name
                and not _not_a_channel(layer)
                and full_resolution(layer).shape == shape]
        self.channel_list.clear()
        for k, name in enumerate(names):
            item = QListWidgetItem(name)
            if k == 0:  # the image itself: always a channel
                item.setFlags(item.flags() & ~Qt.ItemIsUserCheckable)
                item.setToolTip("the image chosen above: always the first channel")
            else:
                item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
            item.setCheckState(Qt.Checked if k == 0 or name in checked else Qt.Unchecked)
            self.channel_list.addItem(item)
        rows = min(max(len(names), 1), CHANNEL_ROWS)
        row = (self.channel_list.sizeHintForRow(0) if names
               else self.channel_list.fontMetrics().height() + 4)
        self.channel_list.setFixedHeight(rows * row + 2 * self.channel_list.frameWidth())

    def _image_chosen(self, *_: Any) -> None:
        """Another image: its channels start from it alone."""
        self.channel_list.clear()
        self.refresh_channels()

    def checked_channel_names(self) -> list[str]:
        return [self.channel_list.item(i).text() for i in range(self.channel_list.count())
                if self.channel_list.item(i).checkState() == Qt.Checked]

    def set_channels(self, names: list[str]) -> None:
        """Choose ``names[0]`` as the image and tick the others (those of its shape)."""
        if names and self.image.findText(names[0]) >= 0:
            self.image.setCurrentIndex(self.image.findText(names[0]))
        for i in range(1, self.channel_list.count()):
            item = self.channel_list.item(i)
            item.setCheckState(Qt.Checked if item.text() in names else Qt.Unchecked)

    def channel_layers(self) -> list[Image]:
        names = self.checked_channel_names()
        if not names:
            raise ValueError("no channel chosen: tick at least one image layer under Channels")
        layers = [self.viewer.layers[n] for n in names]
        for layer in layers:
            if layer.ndim not in (2, 3):
                raise ValueError(f"layer '{layer.name}' is {layer.ndim}D: channels are 2D or "
                                 "3D images (z, y, x); split a stack of channels into one "
                                 "layer each (right-click the layer: Split Stack)")
        first = layers[0]
        for layer in layers[1:]:
            if full_resolution(layer).shape != full_resolution(first).shape:
                raise ValueError(f"channels {first.name!r} {full_resolution(first).shape} and "
                                 f"{layer.name!r} {full_resolution(layer).shape} differ in shape; "
                                 "choose matching layers")
            if not np.allclose(layer.scale, first.scale):
                raise ValueError(f"channels {first.name!r} and {layer.name!r} differ in voxel size")
        return layers

    def create_scribble_layer(self) -> Labels | None:
        try:
            first = self.channel_layers()[0]
        except ValueError as exc:
            show_error(str(exc))
            return None
        layer = self.viewer.add_labels(np.zeros(full_resolution(first).shape, np.uint8),
                                       name=f"{first.name} scribbles", scale=first.scale,
                                       metadata={DERIVED_FROM: first.name},
                                       units=first.units, translate=first.translate,
                                       affine=first.affine.affine_matrix)
        layer.brush_size = 4
        layer.mode = "paint"
        self.scribbles.set_layer(layer)
        return layer

    def feature_spec(self) -> FeatureSpec:
        table = {(name, s): self.feature_table.cellWidget(r, c).mode.lower()
                 for r, name in enumerate(FILTERS) for c, s in enumerate(ILASTIK_SIGMAS)}
        if all(mode == "off" for mode in table.values()):
            raise ValueError("no feature selected: choose 2D or 3D for at least one cell")
        return FeatureSpec.from_table({k: None if m == "off" else m for k, m in table.items()},
                                      **self.spec_form.kwargs())

    def n_trees(self) -> int:
        return self.forest_form.kwargs()["n_trees"]

    def set_feature_spec(self, spec: FeatureSpec) -> None:
        chosen = {(f.name, f.sigma): f.mode.upper() for f in spec.filters}
        for r, name in enumerate(FILTERS):
            for c, s in enumerate(ILASTIK_SIGMAS):
                self.feature_table.cellWidget(r, c).set_mode(chosen.get((name, s), "off"))
        self.spec_form.set_value(spec)

    def _inputs(self):
        """The chosen channel layers, their arrays (not copied here: the workers stack
        them, a copy of the volume), voxel size and unit."""
        layers = self.channel_layers()
        arrays = [full_resolution(layer) for layer in layers]
        nd = 3 if arrays[0].ndim >= 3 else 2
        frame = layer_frame(layers[0], nd)
        return layers, arrays, frame.spacing, frame.unit

    def _current_z(self, layer) -> int:
        if layer.ndim < 3:
            return 0
        z = layer.world_to_data(self.viewer.dims.point)[-3]
        return int(np.clip(np.round(z), 0, full_resolution(layer).shape[-3] - 1))

    def _planes_on_screen(self, layer) -> list[int]:
        """The layer's z planes the slice on screen shows, the current one first: one for a
        layer in the viewer's axes; for a registered (rotated) layer seen across its planes,
        all those the screen plane cuts inside its box, from the middle out (the live steps
        take :meth:`_planes_per_step` of them at a time)."""
        dims = self.viewer.dims
        if (layer.ndim < 3 or is_axis_aligned(layer)
                or tuple(dims.displayed) != (dims.ndim - 2, dims.ndim - 1)):
            return [self._current_z(layer)]
        low, high = layer.extent.world
        point = np.array(dims.point, float)
        zs = []
        for y in (low[-2], high[-2]):  # the plane's z in the layer is linear: corners bound it
            for x in (low[-1], high[-1]):
                point[-2:] = y, x
                zs.append(layer.world_to_data(point)[-3])
        last = full_resolution(layer).shape[-3] - 1
        first, stop = max(0, int(np.floor(min(zs)))), min(last, int(np.ceil(max(zs))))
        if first > stop:  # the slice on screen misses the layer
            return [self._current_z(layer)]
        middle = (first + stop) / 2  # the plane at the layer's middle on screen
        return sorted(range(first, stop + 1), key=lambda k: (abs(k - middle), k))

    @staticmethod
    def _planes_per_step(layer) -> int:
        """Planes one live step predicts: at most :data:`MAX_LIVE_VOXELS` (one at least)."""
        return max(1, MAX_LIVE_VOXELS // int(np.prod(full_resolution(layer).shape[-2:])))

    # ------------------------------------------------------------------ training

    def _set_live(self, on: bool) -> None:
        """Show the live-training state on the button without re-triggering it."""
        self.train_button.blockSignals(True)
        self.train_button.setChecked(on)
        self.train_button.blockSignals(False)

    def _on_train_toggled(self, on: bool) -> None:
        if on:
            # stays off until the first training succeeded (a refused one leaves it off)
            self._set_live(False)
            self.start_training()
        else:
            self._unwatch()
            self.live = None  # its feature cache goes too
            for layer in self._live_layers():
                self._show_drawing(layer, False)
            self.status.setText("Live training off.")

    def _live_layers(self, scribbles: Labels | None = None) -> list:
        """The live predictions and uncertainties this panel drew (of ``scribbles``)."""
        return [lay for lay in self.viewer.layers
                if lay.metadata.get(LIVE) and lay.metadata.get(CREATED_BY) == NAME
                and (scribbles is None or lay.name.startswith(f"{scribbles.name} live "))]

    def _show_drawing(self, layer, visible: bool) -> None:
        """Show or hide a live drawing: hidden when live training goes off (a stale
        prediction left on screen tints what comes next, the segmentation). A registered
        layer is drawn by its 2D view in 2D: the view is shown or hidden (napari's own 2D
        slice of the rotated layer would be wrong), hidden with the layer."""
        views = registered_views(self.viewer)
        view = views[layer.name].layer if layer.name in views else None
        if visible and view is not None and self.viewer.dims.ndisplay == 2:
            view.visible = True
            return
        layer.visible = visible
        if view is not None and not visible:
            view.visible = False

    def start_training(self) -> None:
        """Build the trainer and fit on the current scribbles (in a worker)."""
        try:
            layers, arrays, spacing, unit = self._inputs()
            labels_layer = self.scribbles.layer()
            if labels_layer is None:
                raise ValueError("no scribble layer: press 'New scribble layer' and paint a "
                                 "few strokes per class, or choose a Labels layer of strokes "
                                 "under 'Scribbles'")
            spec = self.feature_spec()
        except ValueError as exc:
            self.runner.refuse(str(exc))
            return
        labels = np.asarray(labels_layer.data).copy()
        names = [layer.name for layer in layers]
        nd = labels.ndim
        z = self._current_z(labels_layer)
        n_trees = self.n_trees()

        def job(progress=None):
            live = LiveTrainer(stack_channels(arrays, lazy=False), spec, spacing, unit, names,
                               spatial_ndim=nd, n_trees=n_trees)
            live.set_labels(labels, scaled(progress, 0, 500, 1000))
            return live, live.update(z, scaled(progress, 500, 1000, 1000))

        self.runner.start(job, on_result=self._trained, label="Training")

    def _trained(self, result) -> None:
        live, update = result
        self._set_live(True)
        self.live = live
        self.classifier = live.classifier
        self._live_total, self._live_drawn = 0, set()
        scribbles = self.scribbles.layer()
        if scribbles is not None:  # drawings of an earlier session: cleared, shown again
            for layer in self._live_layers(scribbles):
                layer.data[...] = 0
                if layer.name.endswith(" live prediction"):
                    self._show_drawing(layer, True)
        self._show_update(update)
        self._show_importances()
        self._watch(self.scribbles.layer())
        self.autosave.changed()
        if self._watched is not None and len(self._planes_on_screen(self._watched)) > 1:
            self._request_live()  # the other planes on screen

    def _watch(self, layer: Labels | None) -> None:
        self._unwatch()
        if layer is None:
            return
        self._watched = layer
        layer.events.paint.connect(self._on_stroke)
        layer.events.data.connect(self._on_labels_replaced)

    def _unwatch(self) -> None:
        if self._watched is not None:
            self._watched.events.paint.disconnect(self._on_stroke)
            self._watched.events.data.disconnect(self._on_labels_replaced)
        self._watched = None
        self._live_rest = []
        if self._live_job is not None:
            self._live_job.cancel.set()

    def _live_on(self) -> bool:
        return self.train_button.isChecked() and self.live is not None and self._watched is not None

    def _schedule_live(self, *_: Any) -> None:
        if self._live_on():
            self._timer.start()

    def _on_stroke(self, *_: Any) -> None:
        """A stroke ended (napari's paint event comes once per stroke): take the slices
        it can have touched and update at once."""
        layer = self._watched
        if layer is None:
            return
        dims = self.viewer.dims
        in_plane = (layer.n_edit_dimensions == 2 and dims.ndisplay == 2
                    and tuple(dims.displayed) == (dims.ndim - 2, dims.ndim - 1))
        if layer.ndim == 2:
            self._live_planes[0] = np.array(layer.data)
        elif layer.ndim == 3 and in_plane and is_axis_aligned(layer):
            z = self._current_z(layer)
            self._live_planes[z] = np.array(layer.data[z])
        else:  # a 3D brush, or a stroke across slices (a registered layer's view)
            self._live_full = True
        self._request_live()

    def _on_labels_replaced(self, *_: Any) -> None:
        self._live_full = True
        self._request_live()

    def _request_live(self, *_: Any) -> None:
        """Update the visible slice with the newest strokes; an update still running is
        superseded (cancelled) and the newest request runs as soon as it has stopped."""
        if not self._live_on():
            return
        self._live_request = True
        if self._live_job is not None:
            self._live_job.cancel.set()
        else:
            self._run_live()

    def _run_live(self) -> None:
        """Refit on the newest strokes and predict the visible slice from its middle out:
        the first live step (in a worker); further steps predict the rest of the planes
        on screen (:meth:`_live_done`)."""
        layer = self._watched
        full = np.asarray(layer.data).copy() if self._live_full else None
        planes, self._live_planes = self._live_planes, {}
        self._live_full = self._live_request = False
        self._live_inputs = (full, planes)
        self._live_rest = self._planes_on_screen(layer)
        self._live_total, self._live_drawn = len(self._live_rest), set()
        self._live_step(full, planes)

    def _live_step(self, full: np.ndarray | None = None,
                   planes: dict[int, np.ndarray] | None = None) -> None:
        """Take the new strokes (``full`` labels, or ``planes`` by slice), refit, and predict
        the next :meth:`_planes_per_step` planes of the slice on screen, each drawn when
        predicted; a new stroke or slice cancels it (and starts again from the middle)."""
        live, planes = self.live, planes or {}
        n = self._planes_per_step(self._watched)
        shown, self._live_rest = self._live_rest[:n], self._live_rest[n:]

        def preview(update: LiveUpdate) -> None:
            drawn = threading.Event()
            self._preview.ready.emit((update, drawn))
            drawn.wait(PREVIEW_WAIT_S)

        def step(progress=None):
            report(progress, 0, len(shown))  # cancelled before it began (a viewer closing)
            if full is not None:
                live.set_labels(full, progress)
            for zz, plane in planes.items():
                live.set_slice_labels(zz, plane, progress)
            update = live.update(shown[0], progress, on_preview=preview)
            for k, zz in enumerate(shown[1:], 1):  # a registered layer: each plane shown
                preview(update)                     # as it is predicted
                report(progress, k, len(shown))  # a cancel check (features may be cached)
                update = live.update(zz, progress)
            return update

        # owned by the viewer: closing it cancels the update
        self._live_job = start_job(step, viewer=self.viewer, on_result=self._show_update,
                                   on_error=self._live_failed, on_finished=self._live_done)

    def _live_failed(self, exc: BaseException) -> None:
        if isinstance(exc, Cancelled):
            # superseded: its strokes go with the next update (newer slices win)
            full, planes = self._live_inputs
            self._live_full |= full is not None
            for z, plane in planes.items():
                self._live_planes.setdefault(z, plane)
            if not self._live_request:  # not superseded (the viewer closes): stop here
                self._live_rest = []
        else:
            self._live_rest = []
            self.status.setText(f"Live update skipped: {exc}")

    def _live_done(self) -> None:
        self._live_job = None
        self._live_inputs = (None, {})
        self.autosave.changed()
        if not self._live_on():
            self._live_rest = []
        elif self._live_request:  # new strokes or another slice: from the middle again
            self._run_live()
        elif self._live_rest:  # the rest of the slice on screen, the next planes out
            self._live_step()

    def _show_preview(self, shown: tuple[LiveUpdate, threading.Event]) -> None:
        update, drawn = shown
        try:
            self._show_update(update)
        finally:  # after the events queued now (the canvas redraw): the worker goes on
            QTimer.singleShot(0, drawn.set)

    def _show_update(self, update: LiveUpdate) -> None:
        """Status and the live-prediction layer for one live update."""
        labels_layer = self.scribbles.layer()
        if (labels_layer is None or self.live is None
                or not self.train_button.isChecked()):  # live training was left meanwhile
            return
        sample = ("" if update.n_samples == update.n_labelled else
                  f" (a stratified sample of the {update.n_labelled} painted)")
        trees = ("" if update.final else
                 f"; first {update.n_trees} of {update.n_trees_total} trees, the rest follow")
        self._live_drawn.add(update.z)
        planes = ("" if len(self._live_drawn) >= self._live_total else
                  f" ({len(self._live_drawn)} of the {self._live_total} planes on screen "
                  "predicted, the others follow)")
        self.status.setText(
            f"Trained on {update.n_samples} labelled voxels{sample}, "
            f"{self.classifier.n_features} features{trees}. Paint to refine where it errs "
            f"or is unsure (show the live uncertainty layer); the visible slice updates"
            f"{planes}.")
        shape = full_resolution(labels_layer).shape
        shown = ((update.labels, "live prediction", "labels", {"opacity": 0.5}),
                 (update.uncertainty, "live uncertainty", "image",
                  {"colormap": "inferno", "contrast_limits": (0.0, 1.0), "visible": False,
                   "blending": "additive"}))
        for plane, what, layer_type, kw in shown:
            layer = self._live_layer(labels_layer, shape, plane.dtype, what, layer_type, kw)
            if len(shape) == 3:
                layer.data[update.z] = plane
            else:
                layer.data[...] = plane
            layer.refresh()
            if layer.name in (views := registered_views(self.viewer)):
                views[layer.name].resample()  # its 2D view: written in place, no data event
        self.live_z = update.z

    def _live_layer(self, labels_layer: Labels, shape: tuple[int, ...], dtype: np.dtype,
                    what: str, layer_type: str, kw: dict[str, Any]):
        """The ``<scribbles> <what>`` layer of the live updates, made on the first update:
        in the strokes' frame (a registered ROI keeps its place), under the strokes, and
        never the selected layer (the brush stays active). Its volume is ``np.zeros``,
        whose pages the system maps only when a slice is written."""
        name = f"{labels_layer.name} {what}"
        layer = self.viewer.layers[name] if name in self.viewer.layers else None
        if layer is not None and layer.data.shape == shape:
            return layer
        with selection_kept(self.viewer):
            layer = add_result(self.viewer, np.zeros(shape, dtype), name=name,
                               layer_type=layer_type, created_by=NAME,
                               scale=tuple(labels_layer.scale), unit=_unit(labels_layer),
                               translate=tuple(labels_layer.translate),
                               affine=labels_layer.affine.affine_matrix,
                               metadata={LIVE: True}, source=labels_layer, **kw)
            self.viewer.layers.move(self.viewer.layers.index(layer),
                                    self.viewer.layers.index(labels_layer))
        return layer

    def _show_importances(self) -> None:
        if self.classifier is not None:
            self.importances.set_frame(self.classifier.feature_importances.head(25))

    # ------------------------------------------------------------------ prediction

    def predict_volume(self) -> None:
        """Segment the chosen channels with the current classifier (worker, progress, cancel)."""
        try:
            if self.classifier is None or not self.classifier.fitted:
                raise ValueError("no classifier yet: train one (Live training) or load one")
            layers, arrays, spacing, unit = self._inputs()
            # a classifier loaded from a file: its channels named as the layers are
            check_channel_order(self.classifier.channel_names, [la.name for la in layers])
        except SettingError as exc:
            self.runner.refuse(exc.worded({"reorder": "choose them as Image and Channels"}))
            return
        except ValueError as exc:
            self.runner.refuse(str(exc))
            return
        clf = self.classifier

        # the channels' intensities against the training's (core.classify.segment): another
        # order of them that fits better is refused in the panel's words
        names = [la.name for la in layers]
        self.runner.words = {"reorder": "choose them as Image and Channels"}

        def job(progress=None):
            s = segment(clf, arrays, spacing, unit, progress=progress,
                        names=names).computed(progress)
            return s.probabilities, s.labels, s.uncertainty, s.warnings

        self.runner.start(job, on_result=lambda res: self._add_outputs(layers[0], *res),
                          label="Predicting volume")

    def _add_outputs(self, ref: Image, proba, seg, unc, warnings: list[str] = ()) -> None:
        for text in warnings:  # e.g. a channel far off the intensities it was trained on
            show_warning(text)
        scale, unit = tuple(ref.scale), _unit(ref)
        # in the channel's frame (a registered volume or ROI keeps its place)
        kw = dict(created_by=NAME, scale=scale, unit=unit, translate=tuple(ref.translate),
                  affine=ref.affine.affine_matrix, source=ref)
        # the layer the user had selected stays selected (the scribbles: the brush goes on)
        with selection_kept(self.viewer):
            add_result(self.viewer, seg, name=f"{ref.name} segmentation", layer_type="labels",
                       **kw)
            for k, c in enumerate(self.classifier.classes_):
                add_result(self.viewer, proba[k], name=f"{ref.name} probability {int(c)}",
                           layer_type="image", colormap="magma", contrast_limits=(0.0, 1.0),
                           visible=False, metadata={OUTPUT: "probability"}, **kw)
            add_result(self.viewer, unc, name=f"{ref.name} uncertainty", layer_type="image",
                       colormap="inferno", contrast_limits=(0.0, 1.0), visible=False,
                       metadata={OUTPUT: "uncertainty"}, **kw)
        self.status.setText(f"Segmented {ref.name}: {len(self.classifier.classes_)} classes.")

    # ------------------------------------------------------------------ files

    def save_classifier(self, path: str) -> None:
        if self.classifier is None or not self.classifier.fitted:
            raise ValueError("no trained classifier to save")
        self.status.setText(f"Saved classifier to {self.classifier.save(path)}")

    def load_classifier(self, path: str) -> PixelClassifier:
        clf = PixelClassifier.load(path)
        self.train_button.setChecked(False)
        self.live = None
        self.classifier = clf
        self.set_feature_spec(clf.features)
        self.forest_form.set_value(clf)
        self._show_importances()
        self.status.setText(
            f"Loaded classifier: channels {', '.join(clf.channel_names)}, classes "
            f"{', '.join(str(int(c)) for c in clf.classes_)}, voxel {clf.spacing} {clf.unit}. "
            "Tick the channels to apply it to and press Predict volume."
        )
        return clf

    def _ask_save(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save classifier", "classifier.corrclf.npz",
                                              "Classifier (*.npz)")
        act_on_file(path, self.save_classifier, self._file_failed, (ValueError, OSError))

    def _ask_load(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load classifier", "", "Classifier (*.npz)")
        if act_on_file(path, self.load_classifier, self._file_failed):
            show_info(f"Loaded {path}")

    def _file_failed(self, message: str) -> None:
        """A classifier file not saved or loaded: said in a notification and in the status
        line, which otherwise still tells of the last action."""
        self.status.setText(f"Failed: {message}")
        show_error(message)

    # ------------------------------------------------------------------ autosave

    def recovery_state(self) -> dict:
        """Settings, scribble layer and classifier for the autosave (UI thread)."""
        if self._live_job is None:  # a live update re-fits self.classifier in place
            self._clf_snapshot = copy.copy(self.classifier)
        scribbles = self.scribbles.layer()
        try:
            features = self.feature_spec().to_dict()
        except ValueError:
            features = None
        return {"channels": self.checked_channel_names(),
                "scribbles": scribbles.name if scribbles is not None else "",
                "features": features, "n_trees": self.n_trees(),
                CLASSIFIER: self._clf_snapshot}

    def restore_state(self, state: dict) -> None:
        """Take back what :meth:`recovery_state` gave (after a crash)."""
        self.set_channels(state.get("channels", []))
        if state.get("scribbles") in self.viewer.layers:
            self.scribbles.set_layer(self.viewer.layers[state["scribbles"]])
        if state.get("features"):
            self.set_feature_spec(FeatureSpec.from_dict(state["features"]))
        self.forest_form["n_trees"].value = int(state.get("n_trees", self.n_trees()))
        if isinstance(state.get(CLASSIFIER), PixelClassifier):
            self.train_button.setChecked(False)
            self.live = None
            self.classifier = state[CLASSIFIER]
            self._show_importances()
            self.status.setText("Restored the classifier of the recovered session; press "
                                "Live training to go on refining it, or Predict volume.")


def _unit(layer) -> str:
    from ..core.units import normalize_unit

    return normalize_unit(str(list(layer.units)[-1]))
