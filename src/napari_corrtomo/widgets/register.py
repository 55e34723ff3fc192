"""Register: landmark and intensity registration across modalities, ROI selection across scales.

Thin: the widget holds a :class:`~napari_corrtomo.core.register.RegistrationSession`
(landmark pairs, active flags, fit, current transform), fills it from its form and the
landmark layers, and renders it; every step is the registration pipeline's
(:mod:`napari_corrtomo.core.register.pipeline`):

- paired Points layers (one per volume, alternating clicks) hold the landmarks in
  each volume's *physical* coordinates (``index * scale + translate``, in the
  volume's own unit); the fit maps moving physical -> fixed physical in the fixed
  layer's unit;
- "Apply as layer affine" sets ``moving.affine = fixed.affine @ T @ unit`` (napari
  composes data -> world as ``affine @ (scale, translate)``), so the moving volume
  overlays the fixed one without resampling; "Reset" restores the old affine (in 2D a
  rotated volume is drawn by its 2D view, its landmarks in 3D only: napari never slices
  them rotated); the summary says when the layer shows another transform than the
  current one (a refit after Apply or Refine);
- "Resample", "Refine by intensity" run in a worker with progress and Cancel;
- "ROI across scales" crops the region under a Shapes box from another volume,
  and "Show fields of view" outlines every other volume's field of view in the
  slices of a reference volume.
"""

from __future__ import annotations

import functools
import itertools
from typing import Any

import napari
import numpy as np
import pandas as pd
from napari.layers import Image, Points, Shapes
from napari.utils.colormaps.standardize_color import transform_color
from napari.utils.notifications import show_info, show_warning
from qtpy.QtCore import QCoreApplication, QEvent, Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..core import register as reg
from ..core._checks import in_words
from ..core.frame import Frame
from ..core.units import convert
from ._autosave import autosave_for
from ._dock import DockForm, hbox
from ._form import Field, SettingsForm
from ._layers import (
    CREATED_BY,
    DERIVED_FROM,
    LayerSelect,
    add_result,
    full_resolution,
    index_to_world,
    is_projection_stack,
    layer_affine,
    layer_frame,
)
from ._registered_view import META_VIEW_OF, is_view, registered_views
from ._runner import TaskRunner
from ._table import TableView

NAME = "register"
#: layer metadata keys written by this widget
META_TRANSFORM = "corrtomo_register_transform"
META_ORIGINAL_AFFINE = "corrtomo_register_original_affine"
META_ROLE = "corrtomo_register_role"
#: on the landmark layers: the volume they were placed in (its layer's name)
META_VOLUME = "corrtomo_register_volume"
#: on the moving landmarks: hidden in 2D by this widget while rotated (shown in 3D)
META_HIDDEN_2D = "corrtomo_register_hidden_in_2d"
FOV_COLORS = ("yellow", "cyan", "magenta", "lime", "orange", "deepskyblue", "red")
#: the output grids as the widget names them, in the order of core.register.GRIDS
GRIDS = ("fixed volume grid", "moving voxel size over its field of view")
#: RegisterSettings fields (SettingError keys) in the widget's words
WORDS = {"model": "the model", "metric": "the metric", "grid": "grid: fixed volume grid",
         "threshold": "the 'inlier distance'",
         "unit": "save the landmark file in the fixed layer's unit"}


# ============================================================================ layer geometry


def physical_frame(layer) -> Frame:
    """The frame of a 3D image (physical = index * spacing + origin) without its affine."""
    _check_3d(layer)
    if not np.allclose(np.asarray(layer.rotate)[-3:, -3:], np.eye(3)) or \
            not np.allclose(np.asarray(layer.shear), 0):
        raise ValueError(f"layer {layer.name!r} has a rotate/shear transform; Register expects "
                         "an axis-aligned grid (scale and translate) plus an affine")
    return layer_frame(layer, 3)


def _check_3d(layer) -> None:
    if layer.ndim != 3:
        raise ValueError(f"layer {layer.name!r} is {layer.ndim}D; Register works on 3D volumes "
                         "(z, y, x)")


def _rotated(layer, affine: np.ndarray) -> bool:
    """Whether a 3D layer under ``affine`` is not axis-aligned (napari cannot slice it in 2D;
    the test of :func:`~._registered_view.is_axis_aligned`, before the affine is set)."""
    m = np.asarray(affine, float)[-4:, -4:][:3, :3] * np.asarray(layer.scale, float)[-3:]
    return not np.allclose(m, np.diag(np.diag(m)))


def _layer_color(layer) -> np.ndarray | None:
    """The RGBA colour a single-hue colormap draws the layer's brightest voxels in."""
    rgba = np.asarray(layer.colormap.colors, float)[-1]
    return None if np.ptp(rgba[:3]) < 1e-6 else rgba


# ============================================================================ widget


#: the residual table's columns as the panel heads them (``<name>_<unit>`` -> with unit), on
#: two lines so that the columns stay narrow and every head can be read whole
_HEADERS = {"fitted": "in the\nfit", "residual": "residual", "loo_tre": "leave-one-out\nTRE"}
#: what each column measures (a refinement or a loaded transform changes the residuals, not
#: the landmark fit's leave-one-out errors)
_HEADER_TIPS = {
    "name": "The pair's name (kept in the landmarks CSV)",
    "active": "Untick to leave the pair out of the landmark fit (refits at once)",
    "fitted": "Whether the landmark fit used the pair (a robust fit drops outliers)",
    "residual": "Distance between the fixed landmark and its moving partner under the "
                "transform in use (the fit, its refinement or a loaded transform)",
    "loo_tre": "Target registration error of the landmark fit made without this pair "
               "(unchanged by a refinement; '-' for a pair left out of the fit and after "
               "loading a transform)",
    **{axis: f"Residual along {axis[1]} (fixed minus transformed moving)"
       for axis in ("dz", "dy", "dx")},
}


def _header(column: str) -> str:
    """'loo_tre_um' -> 'leave-one-out\\nTRE (um)', 'dz_um' -> 'dz\\n(um)'; other columns
    as they are."""
    name, _, unit = column.rpartition("_")
    if _is_length(column):
        head = _HEADERS.get(name, name)
        return f"{head} ({unit})" if "\n" in head else f"{head}\n({unit})"
    return _HEADERS.get(column, column)


def _is_length(column: str) -> bool:
    """Whether a residual-table column is a length (``<name>_<unit>``)."""
    name = column.rpartition("_")[0]
    return bool(name) and (name in _HEADERS or name in ("dz", "dy", "dx"))


def _length_format(values: Any):
    """The text of the residual table's lengths: one number of decimals for all of them
    (3 significant digits at their median magnitude, 1 to 6 decimals); '-' where unknown."""
    v = np.abs(np.asarray(values, float))
    v = v[np.isfinite(v) & (v > 0)]
    decimals = 3 if not v.size else int(np.clip(2 - np.floor(np.log10(np.median(v))), 1, 6))

    def text(value: float) -> str:
        # round first: no '-0.000' for a residual of -1e-15
        return "-" if not np.isfinite(value) else f"{round(float(value), decimals) + 0.0:.{decimals}f}"

    return text


_NO_TRANSFORM = "No transform yet: place >= 3 landmark pairs and press Fit."
#: landmark pairs the residual table shows without scrolling
_TABLE_ROWS = 8
#: a residual table of typical widths (:meth:`RegisterWidget._size_table`)
_TYPICAL_TABLE = pd.DataFrame({"name": ["Pt-00"], "active": [True], "fitted": [True],
                               **{f"{c}_um": [-0.123] for c in
                                  ("residual", "loo_tre", "dz", "dy", "dx")}})

#: what a new landmark fit says it replaced (:meth:`RegistrationSession.source`)
_DROPPED = {
    "refined": "The refinement by intensity was of the earlier landmark fit and is no longer "
               "in use: press 'Refine by intensity' again to refine this fit",
    "loaded": "This landmark fit replaces the loaded transform",
}


def _not_a_volume(layer) -> bool:
    """A registered layer's 2D view or a stack of projections: never fixed or moving."""
    return is_view(layer) or is_projection_stack(layer)


def _shown(viewer, layer) -> bool:
    """Whether ``layer`` is on screen, itself or through its 2D view: a hidden one (a
    sample's ground-truth phantom) is no default volume while a shown one exists."""
    return layer.visible or any(is_view(lay) and lay.visible and
                                lay.metadata.get(META_VIEW_OF) == layer.name
                                for lay in viewer.layers)


def _volume_of(points) -> str | None:
    """The volume a landmark layer was made for (``None``: unknown, e.g. the user's own
    Points layer); layers made before :data:`META_VOLUME` name it after the colon."""
    md = points.metadata
    return md.get(META_VOLUME) or (points.name.partition(": ")[2] or None
                                   if META_ROLE in md else None)


def _sentences(*parts: str) -> str:
    """Sentences joined with one full stop between them ('... press Fit. The ...')."""
    parts = tuple(p for p in parts if p)
    return ". ".join([p.rstrip(". ") for p in parts[:-1]] + list(parts[-1:]))


#: the choosers' inputs as the summary names them
_WHAT = {"fixed_select": "fixed image", "moving_select": "moving image",
         "fixed_points_select": "fixed landmarks layer",
         "moving_points_select": "moving landmarks layer"}


class RegisterWidget(DockForm):
    """Landmark registration, intensity refinement, resampling and ROI/FOV across scales."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.session = reg.RegistrationSession()
        #: 2D views of the registered layers napari cannot slice (``views[name]``)
        self.views = registered_views(napari_viewer)
        self._switching = False
        self._hiding = False  # this widget hides or shows rotated landmarks (not the user)

        # -- volumes and landmarks
        # by default a shown volume (not a sample's hidden truth), the moving one another
        # than the fixed one; a removed one leaves its chooser empty (no stand-in volume)
        shown = functools.partial(_shown, napari_viewer)
        self.fixed_select = LayerSelect(
            self.viewer, (Image,), skip=_not_a_volume, score=shown, keep_removed=True,
            tip="the reference volume (e.g. the microCT overview): its frame is where the "
                "moving volume is mapped")
        self.moving_select = LayerSelect(
            self.viewer, (Image,), skip=_not_a_volume, keep_removed=True,
            score=lambda lay: 2 * (lay.name != self.fixed_select.currentText()) + shown(lay),
            tip="the volume to map onto the fixed one (e.g. the nanoCT of one particle)")
        self.fixed_points_select = LayerSelect(
            self.viewer, (Points,), allow_none=True,
            tip="points layer of the landmarks clicked in the fixed volume")
        self.moving_points_select = LayerSelect(
            self.viewer, (Points,), allow_none=True,
            tip="points layer of the partner landmarks in the moving volume (same order)")
        self.new_points_button = QPushButton("New landmark layers")
        self.new_points_button.clicked.connect(self._guard(self.create_landmark_layers))
        self.alternate = QCheckBox("Alternate clicks fixed / moving")
        self.alternate.setChecked(True)
        self.fixed_points_select.currentIndexChanged.connect(self._connect_points)
        self.moving_points_select.currentIndexChanged.connect(self._connect_points)

        # -- fit; the settings are fields of RegisterSettings (tooltips from its docstring)
        self.fit_form = SettingsForm(reg.RegisterSettings, {
            "model": Field(choices=tuple(reg.MODELS)),
            "robust": None,
        })
        #: the choices with good defaults, collapsed
        self.options = SettingsForm(reg.RegisterSettings, {
            "threshold": Field(label="inlier distance", unit="length"),
            "metric": Field(choices=reg.METRICS),
            "grid": Field(choices=dict(zip(GRIDS, reg.GRIDS, strict=True))),
        }, title="Options: inlier distance, metric, grid", collapsed=True)
        self.fixed_select.currentIndexChanged.connect(self._fixed_changed)
        self._fixed_changed()
        self.fit_button = QPushButton("Fit landmarks")
        self.fit_button.clicked.connect(lambda: self.fit())
        self.summary = QLabel(_NO_TRANSFORM)
        self.summary.setWordWrap(True)
        self._summary_text = self.summary.text()
        #: what the summary says of the transform in use (its fit, refinement or file)
        self._transform_text = _NO_TRANSFORM
        self.table = TableView()
        self.table.table.itemChanged.connect(self._on_item_changed)
        self.table.table.verticalHeader().hide()  # the pairs' names number the rows

        # -- apply / resample / refine
        self.apply_button = QPushButton("Apply as layer affine")
        self.apply_button.clicked.connect(self._guard(self.apply_affine))
        self.reset_button = QPushButton("Reset moving layer")
        self.reset_button.clicked.connect(self._guard(self.reset_moving))
        self.resample_button = QPushButton("Resample into new layer")
        self.resample_button.clicked.connect(self._guard(self.resample))
        self.refine_button = QPushButton("Refine by intensity")
        self.refine_button.clicked.connect(self._guard(self.refine))

        # -- files: a button per file action, each asking for its path
        self.file_buttons: dict[str, QPushButton] = {}
        for title, save, filt, slot in (
                ("Save landmarks", True, "BigWarp CSV (*.csv)", self.save_landmarks),
                ("Load landmarks", False, "BigWarp CSV (*.csv)", self.load_landmarks),
                ("Save transform", True, "Transform (*.json *.tfm)", self.save_transform),
                ("Load transform", False, "Transform (*.json *.tfm *.txt *.h5)",
                 self.load_transform)):
            b = self.file_buttons[title] = QPushButton(f"{title} ...")
            b.clicked.connect(self._guard(functools.partial(self._ask, save, title, filt, slot)))

        # -- ROI / FOV across scales
        # the box is the user's: never default to an overlay this widget drew
        self.roi_shapes = LayerSelect(
            self.viewer, (Shapes,), skip=lambda lay: lay.metadata.get(CREATED_BY) == NAME,
            tip="shapes layer with the rectangle drawn on a slice of one volume")
        self.roi_target = LayerSelect(
            self.viewer, (Image,), skip=is_view, score=shown, keep_removed=True,
            tip="the volume to crop at its own resolution (the other side of the registration)")
        self.roi_depth = QDoubleSpinBox()
        self.roi_depth.setRange(0.0, 1e9)
        self.roi_depth.setDecimals(4)
        self.roi_depth.setValue(16.0)
        self.roi_depth.setToolTip("Depth of the box along the axis the rectangle does not span "
                                  "(world units); the rectangle's slice is its centre")
        #: the box the crop takes, as drawn (its extents, the depth along the axis the
        #: rectangle does not span), in world units
        self.roi_size = QLabel()
        self.roi_size.setWordWrap(True)
        self.roi_size.setToolTip("Size of the box the crop takes: the selected (else the last) "
                                 "rectangle's extents and, along the axis it does not span, "
                                 "the box depth; follows the drawing")
        self._roi_layers: list[Any] = []
        self.roi_target.currentTextChanged.connect(self._show_depth_unit)
        self.roi_depth.valueChanged.connect(self._show_roi_size)
        self.roi_shapes.currentTextChanged.connect(self._watch_roi_shapes)
        self._show_depth_unit()
        self._watch_roi_shapes()
        self.roi_button = QPushButton("Crop matching region")
        self.roi_button.clicked.connect(self._guard(self.crop_roi))
        self.fov_reference = LayerSelect(
            self.viewer, (Image,), skip=is_view, score=shown, keep_removed=True,
            tip="the volume on which the other volumes' fields of view are outlined")
        self.fov_button = QPushButton("Show fields of view")
        self.fov_button.clicked.connect(self._guard(self.show_fields_of_view))
        # until the user picks them: crop from the moving volume (under a box drawn on the
        # fixed overview), outline the fields of view in the fixed one
        self._picked: set[LayerSelect] = set()
        for select in (self.roi_target, self.fov_reference):
            select.activated.connect(lambda _, picked=select: self._picked.add(picked))
        # a default moving volume gives way to another than the fixed one
        self.fixed_select.currentTextChanged.connect(self.moving_select.refresh)
        for select in (self.fixed_select, self.moving_select):
            select.currentTextChanged.connect(self._follow_registration)
        # and once every chooser offers a new layer (a default moving volume may become it)
        napari_viewer.layers.events.inserted.connect(self._follow_registration)
        self._follow_registration()
        # the landmarks of the chosen volumes, what was removed, whether the transform is
        # of these volumes and what the moving layer shows: said in the summary
        self._chosen: dict[str, str] = {}
        self._following = False
        for key in self._CHOOSERS:
            getattr(self, key).currentTextChanged.connect(self._inputs_changed)
        # rotated moving landmarks: shown in 3D, hidden in 2D (napari's own callbacks run
        # first: a switch to 2D slices them once, as it does the rotated volume)
        napari_viewer.dims.events.ndisplay.connect(self._landmarks_follow_ndisplay)

        for w, tip in (
                (self.new_points_button, "add a fixed and a moving points layer to click "
                                         "landmark pairs into"),
                (self.alternate, "after a click in one volume, switch to the other volume's "
                                 "points layer for its partner (hide the fixed image with its "
                                 "eye where it covers the moving one)"),
                (self.fit_button, "fit the moving -> fixed transform to the landmark pairs and "
                                  "list each pair's residual"),
                (self.apply_button, "show the moving layer through the transform (its data "
                                    "are not changed)"),
                (self.reset_button, "drop the transform from the moving layer's display"),
                (self.resample_button, "resample the moving volume through the transform into "
                                       "a new layer"),
                (self.refine_button, "improve the landmark fit by matching the two volumes' "
                                     "intensities"),
                (self.file_buttons["Save landmarks"], "write the landmark pairs as a BigWarp "
                                                      "CSV"),
                (self.file_buttons["Load landmarks"], "read landmark pairs from a BigWarp CSV"),
                (self.file_buttons["Save transform"], "write the transform as JSON or ITK .tfm"),
                (self.file_buttons["Load transform"], "read a transform (JSON, ITK .tfm/.txt/"
                                                      ".h5)"),
                (self.roi_button, "crop the region under the rectangle from the other volume "
                                  "at its full resolution (new layer)"),
                (self.fov_button, "outline the field of view of every other shown volume "
                                  "on the reference (hide a layer to leave it out)"),
        ):
            w.setToolTip(tip)
        self.runner = TaskRunner(napari_viewer)

        # -- layout
        layout = QVBoxLayout(self.body)
        box = QGroupBox("Volumes and landmarks")
        form = QFormLayout(box)
        form.addRow("fixed image", self.fixed_select)
        form.addRow("moving image", self.moving_select)
        form.addRow("fixed landmarks", self.fixed_points_select)
        form.addRow("moving landmarks", self.moving_points_select)
        form.addRow(self.new_points_button, self.alternate)
        layout.addWidget(box)
        box = QGroupBox("Fit")
        form = QFormLayout(box)
        form.addRow(hbox(self.fit_form.widget, self.fit_button))
        form.addRow(self.summary)
        form.addRow(self.table)
        layout.addWidget(box)
        box = QGroupBox("Apply")
        form = QFormLayout(box)
        form.addRow(hbox(self.apply_button, self.reset_button))
        form.addRow(hbox(self.resample_button, self.refine_button))
        files = list(self.file_buttons.values())
        form.addRow(hbox(*files[:2]))  # landmarks
        form.addRow(hbox(*files[2:]))  # transform
        layout.addWidget(box)
        layout.addWidget(self.options.widget)
        box = QGroupBox("ROI and fields of view across scales")
        form = QFormLayout(box)
        form.addRow("box on (Shapes)", self.roi_shapes)
        form.addRow("crop from", self.roi_target)
        form.addRow("box depth", self.roi_depth)
        form.addRow("box size", self.roi_size)
        form.addRow(self.roi_button)
        form.addRow("outline in", self.fov_reference)
        form.addRow(self.fov_button)
        layout.addWidget(box)
        layout.addWidget(self.runner)
        layout.addStretch(1)
        self._connected: list[Any] = []
        self._inputs_changed()
        self.autosave = autosave_for(napari_viewer)
        self.autosave.register(NAME, self.recovery_state, self.restore_state)

    def showEvent(self, event) -> None:
        """Shown (in the style it is shown in) without a table yet, the table is sized as a
        typical one: the dock opens that wide, and the first fit, at the third pair, does
        not widen it (moving the canvas under the user's clicks)."""
        super().showEvent(event)
        if self.table.frame.empty:
            self._show_frame(_TYPICAL_TABLE)
            self._size_table()
            self.table.set_frame(pd.DataFrame())

    # ------------------------------------------------------------------ helpers
    def _guard(self, func):
        """Run a GUI-thread action; a ValueError becomes a notification and changes nothing."""

        def run(*_: Any) -> None:
            try:
                func()
            except ValueError as exc:
                self.runner.refuse(str(exc))

        return run

    def _layers(self) -> tuple[Image, Image]:
        fixed = self.fixed_select.layer("fixed image")
        moving = self.moving_select.layer("moving image")
        # by name: a plugin's viewer is a proxy whose layers are new objects on each access
        if fixed.name == moving.name:
            raise ValueError("fixed and moving image are the same layer; choose two volumes")
        return fixed, moving

    def _frames(self) -> tuple[Image, Image, Frame, Frame]:
        """Fixed/moving layers and frames; the session works in the fixed unit."""
        fixed, moving = self._layers()
        ff, fm = physical_frame(fixed), physical_frame(moving)
        self.session.unit = ff.unit
        return fixed, moving, ff, fm

    def _settings(self, **override: Any) -> reg.RegisterSettings:
        """The forms as :class:`~napari_corrtomo.core.register.RegisterSettings`;
        ``override``: the fields the clicked button decides (``refine``, ``resample``)."""
        return self.options.value(self.fit_form.value(), **override)

    def _volume_names(self) -> tuple[str, str]:
        """The chosen (fixed, moving) volumes' names: what a transform is of."""
        return self.fixed_select.currentText(), self.moving_select.currentText()

    def _inputs_changed(self, *_: Any) -> None:
        """A chooser changed: take the landmark layers of newly chosen volumes, and say in
        the summary what was removed and whether the transform is of these volumes (the
        table shows its residuals only then)."""
        if self._following:  # the landmark choosers follow the volumes (below)
            return
        before = self._chosen
        if self._volume_names() != (before.get("fixed_select"), before.get("moving_select")):
            self._following = True
            try:
                self._pick_landmarks()
            finally:
                self._following = False
        self._chosen = {key: getattr(self, key).currentText() for key in self._CHOOSERS}
        removed = [f"The {_WHAT[key]} {name!r} was removed: choose another" +
                   (" or press 'New landmark layers'" if "points" in key else "")
                   for key, name in before.items()
                   if name and name != self._chosen[key] and name not in self.viewer.layers]
        self._transform_changed(*removed)

    def _pick_landmarks(self) -> None:
        """The landmark layers made for the chosen volumes (in their role), else none:
        landmarks placed in other volumes are never fitted to these."""
        for select, volume, role in zip(
                (self.fixed_points_select, self.moving_points_select), self._volume_names(),
                ("fixed", "moving"), strict=True):
            mine = [lay for lay in self.viewer.layers if isinstance(lay, Points) and
                    lay.metadata.get(META_ROLE) == role and _volume_of(lay) == volume]
            if mine:
                select.set_layer(mine[0])
            else:
                select.setCurrentIndex(0)  # none ('' is the first choice)

    def _transform_changed(self, *notes: str) -> None:
        """The summary and the residual table of the transform in use, for the chosen
        volumes; ``notes`` (what was removed) follow."""
        volumes = self._volume_names()
        t = self.session.transform
        if t is None:
            text = _NO_TRANSFORM
        elif self.session.is_for(volumes):
            text = self._transform_text
        else:
            fixed, moving = self.session.volumes
            text = (f"The transform in use is of {moving!r} onto {fixed!r}, not of the chosen "
                    "volumes: Apply, Resample and Refine refuse it. Place landmarks in these "
                    "volumes and press Fit, or choose those volumes again")
        self._set_summary(text, *notes)
        self._show_transform()

    def _follow_registration(self, *_) -> None:
        for select, source in ((self.roi_target, self.moving_select),
                               (self.fov_reference, self.fixed_select)):
            if select not in self._picked and select.findText(source.currentText()) >= 0:
                select.setCurrentText(source.currentText())

    def _fixed_changed(self, *_: Any) -> None:
        """The inlier distance is in the fixed volume's unit: show it."""
        layer = self.fixed_select.layer()
        try:
            unit = "" if layer is None else physical_frame(layer).unit
        except ValueError:
            unit = ""
        self.options.set_unit(unit)

    # the session's state, under the names the widget always had
    transform = property(lambda self: self.session.transform,
                         lambda self, t: setattr(self.session, "transform", t))
    names = property(lambda self: self.session.names)
    active = property(lambda self: self.session.active)

    def _points_layers(self, required: bool = True) -> tuple[Points | None, Points | None]:
        pf = self.fixed_points_select.layer()
        pm = self.moving_points_select.layer()
        if required and (pf is None or pm is None):
            raise ValueError("choose the fixed and moving landmark Points layers, or press "
                             "'New landmark layers'")
        # by name, as for the images: the proxy's layers are new objects on each access
        if required and pf.name == pm.name:
            raise ValueError("fixed and moving landmarks must be two different Points layers")
        return pf, pm

    # ------------------------------------------------------------------ landmark layers
    def create_landmark_layers(self) -> tuple[Points, Points]:
        """Points layers for the landmarks of each volume, in that volume's physical frame."""
        fixed, moving = self._layers()
        out = []
        for layer, role, color in ((fixed, "fixed", "magenta"), (moving, "moving", "lime")):
            unit = physical_frame(layer).unit
            name = f"landmarks {role}: {layer.name}"
            if name in self.viewer.layers and isinstance(self.viewer.layers[name], Points):
                pts = self.viewer.layers[name]
                pts.metadata.setdefault(META_VOLUME, layer.name)
            else:
                # on a moving layer shown rotated (applied), 3D only (_place_landmarks)
                hide = role == "moving" and self.viewer.dims.ndisplay == 2 and _rotated(
                    layer, layer_affine(layer))
                pts = self.viewer.add_points(
                    np.zeros((0, 3)), ndim=3, name=name, units=(unit,) * 3,
                    affine=layer_affine(layer), size=self._point_size(layer), face_color=color,
                    border_color="white", visible=not hide,
                    metadata={CREATED_BY: NAME, META_ROLE: role, META_VOLUME: layer.name,
                              **({META_HIDDEN_2D: True} if hide else {})})
            out.append(pts)
        self.fixed_points_select.set_layer(out[0])
        self.moving_points_select.set_layer(out[1])
        self._connect_points()
        self.viewer.layers.selection.active = out[0]
        out[0].mode = "add"
        return out[0], out[1]

    @staticmethod
    def _point_size(layer) -> float:
        scale = np.asarray(physical_frame(layer).spacing)
        extent = np.asarray(layer.data.shape[-3:] if not getattr(layer, "multiscale", False)
                            else layer.data[0].shape[-3:]) * scale
        return float(max(extent.max() / 60.0, 3 * scale.max()))

    def _connect_points(self, *_: Any) -> None:
        for layer in self._connected:
            for event, slot in ((layer.events.data, self._on_points_changed),
                                (layer.events.visible, self._on_points_visible)):
                try:
                    event.disconnect(slot)
                except (TypeError, ValueError, RuntimeError):
                    pass
        self._connected = [p for p in self._points_layers(required=False) if p is not None]
        for layer in self._connected:
            layer.events.data.connect(self._on_points_changed)
            layer.events.visible.connect(self._on_points_visible)

    def _on_points_visible(self, event: Any) -> None:
        """The user's eye button wins: landmarks they show or hide are no longer shown
        again in 3D by :meth:`_landmarks_follow_ndisplay`."""
        if not self._hiding:
            event.source.metadata.pop(META_HIDDEN_2D, None)

    def _on_points_changed(self, event: Any = None) -> None:
        action = str(getattr(event, "action", "added")).lower()
        if self._switching or not action.endswith("added"):
            return
        pf, pm = self._points_layers(required=False)
        if pf is None or pm is None:
            return
        if len(pf.data) == len(pm.data) >= 3:
            self.fit(live=True)  # live residuals: every completed pair refits
        if not self.alternate.isChecked():
            return
        target = pm if len(pf.data) > len(pm.data) else pf
        if target is pm and pm.metadata.get(META_HIDDEN_2D):
            show_info(f"{pm.name!r} is drawn in 3D only while the moving layer is shown "
                      "rotated (napari cannot draw it in 2D): press 'Reset moving layer' to "
                      "click the partner in 2D")
            return
        if self.viewer.layers.selection.active is not target:
            self._switching = True
            try:
                self.viewer.layers.selection.active = target
                target.mode = "add"
            finally:
                self._switching = False
            if target is pm and len(pm.data) == 0:  # the first partner: say where to click
                self._say_partner()

    def _say_partner(self) -> None:
        """Where the first moving click goes, and how to see it (one canvas, both volumes)."""
        fixed, moving = self.fixed_select.layer(), self.moving_select.layer()
        if fixed is None or moving is None:
            return
        show_info(f"Now click the same feature in {moving.name!r}"
                  + (f" (hide {fixed.name!r} with its eye where it covers it)"
                     if fixed.visible else ""))

    def landmark_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Fixed and moving landmarks, both in the fixed unit, copied into the session."""
        pf, pm = self._points_layers()
        fixed, moving, ff, fm = self._frames()
        for points, volume, role in ((pf, fixed, "fixed"), (pm, moving, "moving")):
            placed_in = _volume_of(points)
            if placed_in not in (None, volume.name):
                raise ValueError(f"the {role} landmarks {points.name!r} were placed in "
                                 f"{placed_in!r}, not in the {role} image {volume.name!r}: "
                                 f"choose landmarks of {volume.name!r} or press 'New landmark "
                                 "layers'")
        k = float(convert(1.0, fm.unit, ff.unit))
        self.session.set_points(pf.data, np.asarray(pm.data, float) * k, ff.unit)
        return self.session.fixed, self.session.moving

    # ------------------------------------------------------------------ fit
    def fit(self, live: bool = False) -> reg.Transform | None:
        """Fit the chosen model to the active pairs; on failure no transform is kept.

        ``live``: the refit after a completed pair, whose failure (too few pairs for the
        model yet) is said in the summary line only, not in a notification; so is a landmark
        whose partner is not placed yet (a notification of it outlived the pair's
        completion).
        """
        placing = False
        try:
            self.session.discard()
            self.session.settings = self._settings()
            self.landmark_pairs()
            placing = len(self.session.fixed) != len(self.session.moving)
            t = self.session.fit_landmarks(self._volume_names())
        except ValueError as exc:
            message = in_words(exc, WORDS)
            if placing:
                message = _sentences(message, "Place the partner of each landmark: the fit "
                                              "follows each completed pair")
            self._set_summary(f"Fit failed: {message}")
            self._show_transform()
            if not (live or placing):
                self.runner.refuse(message)
            return None
        if not live:
            for w in t.warnings:
                show_warning(w)
        dropped = _DROPPED.get(self.session.replaced)
        self._transform_text = _sentences(t.summary(), dropped or "")
        self._set_summary(self._transform_text)
        if dropped and not live:
            show_info(dropped)
        self._show_transform()
        self.autosave.changed()
        return t

    def _set_summary(self, text: str, *notes: str) -> None:
        """The summary line: ``text``, where the moving layer shows another transform than
        the current one (a refit after Apply) that it still does, and ``notes`` (said once:
        the next change of the summary drops them)."""
        self._summary_text = text
        self.summary.setText(_sentences(text, self._layer_note(), *notes))

    def _layer_note(self) -> str:
        """'' or a sentence saying that the moving layer still shows an earlier transform."""
        moving = self.moving_select.layer()
        shown = None if moving is None else moving.metadata.get(META_TRANSFORM)
        if not shown:
            return ""
        t = self.session.transform if self.session.is_for(self._volume_names()) else None
        try:
            same = t is not None and np.allclose(
                reg.transform_from_dict(shown).in_unit(t.unit).matrix, t.matrix,
                rtol=1e-9, atol=1e-9)
        except ValueError:  # not a Register transform we can read: say nothing about it
            return ""
        if same:
            return ""
        if t is None:
            return (f"The moving layer {moving.name!r} still shows the earlier transform "
                    "('Reset moving layer' removes it)")
        return (f"The moving layer {moving.name!r} still shows the earlier transform until "
                "you press 'Apply as layer affine'")

    def _show_transform(self) -> None:
        """The session's residual table, its active column first, as check boxes; empty
        without a transform of the chosen volumes or their landmark pairs."""
        frame = None
        if self.transform is not None and self.session.is_for(self._volume_names()):
            try:
                self.landmark_pairs()
            except ValueError:
                pass
            else:
                frame = self.session.table()
        if frame is None:
            self.table.set_frame(pd.DataFrame())
        else:
            self._show_frame(frame)
            self._size_table()

    def _show_frame(self, frame: pd.DataFrame) -> None:
        """A residual table in the panel: its active column first, as check boxes."""
        table = self.table.table
        table.blockSignals(True)
        shown = frame[["active", *frame.columns.drop("active")]]
        # in the panel's words (the CSV export keeps the columns' names, units in them, and
        # the full precision): yes/no, and every length with the same decimals
        lengths = [str(c) for c in shown.columns if _is_length(str(c))]
        text = _length_format(shown[lengths].to_numpy())
        self.table.set_frame(shown, headers=[_header(str(c)) for c in shown.columns],
                             formats={"active": lambda _: "",
                                      "fitted": lambda v: "yes" if v else "no",
                                      **dict.fromkeys(lengths, text)})
        for i, column in enumerate(map(str, shown.columns)):
            name = column.rpartition("_")[0] or column
            table.horizontalHeaderItem(i).setToolTip(_HEADER_TIPS.get(name, ""))
        for row, active in enumerate(frame["active"]):
            item = table.item(row, 0)
            item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
            item.setCheckState(Qt.Checked if active else Qt.Unchecked)
        table.blockSignals(False)

    def _size_table(self) -> None:
        """:data:`_TABLE_ROWS` pairs and every column in view: the table asks for the
        width of its columns (the dock widens to its controls' minimum width, see
        :class:`~._dock.DockForm`; never narrower again) and the height of the rows."""
        table = self.table.table
        frame = 2 * table.frameWidth()
        header = table.horizontalHeader()
        width = max(table.minimumWidth(), header.length() + frame +
                    table.verticalScrollBar().sizeHint().width())
        rows = table.rowHeight(0) if table.rowCount() else \
            table.verticalHeader().defaultSectionSize()
        height = rows * _TABLE_ROWS + header.sizeHint().height() + frame
        if (width, height) == (table.minimumWidth(), table.minimumHeight()):
            return
        table.setMinimumSize(width, height)
        # the layouts take it now, up to the window (the dock widens to its minimum, the
        # canvas narrows): not at a later turn, under the user's next click
        QCoreApplication.sendPostedEvents(None, QEvent.Type.LayoutRequest)
        self.updateGeometry()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.LayoutRequest)
        window = self.window().layout()
        if window is not None:
            window.activate()
            QCoreApplication.sendPostedEvents(None, QEvent.Type.LayoutRequest)

    def _on_item_changed(self, item) -> None:
        if item.column() != 0 or item.row() >= len(self.active):
            return
        self.set_active(item.row(), item.checkState() == Qt.Checked)

    def set_active(self, row: int, active: bool) -> None:
        """Include (True) or exclude a landmark pair and refit."""
        self.session.set_active(row, active)
        self.fit()

    # ------------------------------------------------------------------ apply
    def _transform(self) -> reg.Transform:
        """The transform in use, refused where it is of other volumes than the chosen."""
        return self.session.require_transform(self._volume_names())

    def world_affine(self) -> np.ndarray:
        """The moving layer's affine that overlays it on the fixed one."""
        fixed, _, _, fm = self._frames()
        self._transform()
        return layer_affine(fixed) @ self.session.overlay_matrix(fm.unit)

    def apply_affine(self) -> None:
        """Overlay the moving layer on the fixed one (its ``affine``; no resampling), and
        the layers made from it in its frame with it."""
        _, moving = self._layers()
        affine = self.world_affine()
        before = layer_affine(moving)
        if META_ORIGINAL_AFFINE not in moving.metadata:
            moving.metadata[META_ORIGINAL_AFFINE] = before.tolist()
        self._place(moving, affine)
        moving.metadata[META_TRANSFORM] = reg.transform_to_dict(self.transform)
        _, pm = self._points_layers(required=False)
        if pm is not None:
            self._place_landmarks(pm, affine)
        # the layer shows the current transform
        self._set_summary(self._summary_text, self._move_derived(moving, before, affine))

    def reset_moving(self) -> None:
        """Restore the moving layer's affine from before the first *Apply* (and that of the
        layers made from it in its frame)."""
        _, moving = self._layers()
        original = moving.metadata.pop(META_ORIGINAL_AFFINE, None)
        if original is None:
            raise ValueError(f"{moving.name!r} was not moved by Register; nothing to reset")
        before, original = layer_affine(moving), np.asarray(original)
        moving.affine = original
        moving.metadata.pop(META_TRANSFORM, None)
        _, pm = self._points_layers(required=False)
        if pm is not None:
            self._place_landmarks(pm, original)
        self._set_summary(self._summary_text, self._move_derived(moving, before, original))

    def _move_derived(self, parent, before: np.ndarray, after: np.ndarray) -> str:
        """Give the layers made from ``parent`` in its frame (crops, their scribbles and
        segmentations, at any depth: 3D layers of its affine ``before``; not a resampled
        volume, which has a registration of its own) ``parent``'s new affine ``after``:
        they stay on the features they were made of. Returns the sentence naming them."""
        if np.allclose(before, after):
            return ""
        moved: list[str] = []
        sources = [parent.name]
        while sources:
            source = sources.pop()
            for layer in list(self.viewer.layers):
                if (layer.metadata.get(DERIVED_FROM) == source and layer.ndim == 3
                        and not is_view(layer) and META_TRANSFORM not in layer.metadata
                        and layer.name not in moved
                        and np.allclose(layer_affine(layer), before)):
                    self._place(layer, after)
                    moved.append(layer.name)
                    sources.append(layer.name)
        if not moved:
            return ""
        return (f"Moved with {parent.name!r} (made from it in its frame): " +
                ", ".join(map(repr, moved)))

    def _place(self, layer, affine: np.ndarray) -> None:
        """Give a 3D image ``affine`` without napari slicing it in 2D under a rotation.

        napari re-slices a visible layer as its affine is set, before the affine event on
        which the layer gets its 2D view (``self.views``): in 2D a rotated layer was sliced
        once by napari ("Non-orthogonal slicing is being requested", a popup at Apply).
        So the layer is hidden first and its view shown in its place (what the view does
        at each switch to 2D)."""
        handover = layer.visible and self.viewer.dims.ndisplay == 2 and _rotated(layer, affine)
        if handover:
            layer.visible = False
        layer.affine = affine
        if handover:
            if layer.name in self.views:
                self.views[layer.name].layer.visible = True
            else:  # napari can slice it after all (within its tolerance)
                layer.visible = True

    def _place_landmarks(self, points, affine: np.ndarray) -> None:
        """The moving landmarks follow the moving layer's ``affine``. napari cannot draw
        points under a rotation in 2D (it drops the out-of-plane part, draws them off their
        features and warns "Non-orthogonal slicing" at each slice step): while rotated,
        they are shown in 3D only, hidden before the affine is set."""
        if points.visible and self.viewer.dims.ndisplay == 2 and _rotated(points, affine):
            self._hide_in_2d(points)
        points.affine = affine
        self._landmarks_follow_ndisplay()

    def _landmarks_follow_ndisplay(self, *_: Any) -> None:
        """Rotated moving landmarks hidden in 2D, shown again in 3D or once not rotated."""
        _, pm = self._points_layers(required=False)
        if pm is None:
            return
        if self.viewer.dims.ndisplay == 2 and _rotated(pm, layer_affine(pm)):
            if pm.visible:
                self._hide_in_2d(pm)
        elif pm.metadata.get(META_HIDDEN_2D):
            self._hide_in_2d(pm, False)

    def _hide_in_2d(self, points, hide: bool = True) -> None:
        """Hide (``hide``) rotated landmarks in 2D, or show them again; marked as done here."""
        self._hiding = True
        try:
            points.visible = not hide
        finally:
            self._hiding = False
        if hide:
            points.metadata[META_HIDDEN_2D] = True
        else:
            points.metadata.pop(META_HIDDEN_2D, None)

    def resample(self):
        """Resample the moving volume into the chosen fixed-frame grid (new layer)."""
        t = self._transform()
        fixed, moving, ff, fm = self._frames()
        t = t.in_unit(ff.unit)
        settings = self._settings(resample=True)
        try:
            grid = reg.output_grid(t, settings.grid, full_resolution(fixed).shape, ff,
                                   full_resolution(moving).shape, fm)
        except ValueError as exc:
            raise ValueError(in_words(exc, WORDS)) from None
        affine = layer_affine(fixed)

        def done(data: np.ndarray) -> None:
            # a new layer each time (napari numbers repeated names): a second resample,
            # e.g. after refining, never replaces the first
            self.viewer.add_image(
                data, name=f"{moving.name} registered", scale=grid.spacing,
                units=(grid.unit,) * 3, translate=grid.origin, affine=affine,
                metadata={CREATED_BY: NAME, META_TRANSFORM: reg.transform_to_dict(t),
                          DERIVED_FROM: moving.name},
                colormap=moving.colormap.name, blending="additive")

        return self.runner.start(reg.resample_moving, full_resolution(moving), fm, t, grid,
                                 settings.order, on_result=done,
                                 label=f"Resampling {moving.name}")

    def refine(self):
        """Refine the current transform by intensity registration (worker)."""
        t = self._transform()
        fixed, moving, ff, fm = self._frames()
        t = t.in_unit(ff.unit)

        def done(result: reg.Transform) -> None:
            applied = META_TRANSFORM in moving.metadata
            self.session.use(result)
            self._show_transform()
            info = result.metadata.get("refine", {})
            self._transform_text = (
                f"{result.summary()}; refined by {info.get('metric')} in "
                f"{info.get('iterations')} iterations, moved up to {info.get('max_shift', 0):.3g} "
                f"{ff.unit}")
            self._set_summary(self._transform_text + (
                "" if applied else "; press 'Apply as layer affine' to overlay"))
            for w in result.warnings:
                show_warning(w)
            if applied:  # (refused where the volumes were changed meanwhile)
                self._guard(self.apply_affine)()

        return self.runner.start(reg.refine_transform, full_resolution(fixed), ff,
                                 full_resolution(moving), fm, t,
                                 self._settings(refine=True), on_result=done,
                                 label="Refining by intensity")

    # ------------------------------------------------------------------ files
    def save_landmarks(self, path: str) -> None:
        """Write the landmark pairs as BigWarp CSV (both sets in the fixed unit)."""
        self.landmark_pairs()
        self.session.save_landmarks(path)

    def load_landmarks(self, path: str) -> None:
        """Read a BigWarp CSV (coordinates in the fixed unit) into the landmark layers; a
        file in another unit is refused before anything changes."""
        fixed, moving, ff, fm = self._frames()
        lm = reg.load_landmarks_csv(path, ff.unit)
        try:
            reg.check_landmark_unit(lm, full_resolution(fixed).shape, ff,
                                    full_resolution(moving).shape, fm)
        except ValueError as exc:
            raise ValueError(in_words(exc, WORDS)) from None
        pf, pm = self._points_layers(required=False)
        if pf is None or pm is None:
            pf, pm = self.create_landmark_layers()
        self.session.take_landmarks(lm)
        self._switching = True
        try:
            pf.data = lm.fixed
            pm.data = lm.moving / float(convert(1.0, fm.unit, ff.unit))
        finally:
            self._switching = False

    def save_transform(self, path: str) -> None:
        self.session.save_transform(path)

    def load_transform(self, path: str) -> reg.Transform:
        """Read a JSON or ITK transform (ITK files are taken in the fixed layer's unit)."""
        self._frames()
        t = self.session.load_transform(path, self._volume_names())
        self._transform_text = f"loaded: {t.summary()}"
        self._set_summary(self._transform_text)
        self._show_transform()
        return t

    def _ask(self, save: bool, title: str, filt: str, slot) -> None:
        get = QFileDialog.getSaveFileName if save else QFileDialog.getOpenFileName
        path, _ = get(self, title, "", filt)
        if path:
            slot(path)

    # ------------------------------------------------------------------ autosave
    _CHOOSERS = ("fixed_select", "moving_select", "fixed_points_select", "moving_points_select")

    def recovery_state(self) -> dict:
        """Chosen layers, pair names and active flags, fit settings and the transform."""
        self.session.settings = self._settings()
        return {**{key: getattr(self, key).currentText() for key in self._CHOOSERS},
                **self.session.state()}

    def restore_state(self, state: dict) -> None:
        """Take back what :meth:`recovery_state` gave (after a crash)."""
        for key in self._CHOOSERS:
            if state.get(key) in self.viewer.layers:
                getattr(self, key).set_layer(self.viewer.layers[state[key]])
        self._connect_points()
        self.session.restore(state)
        self.fit_form.set_value(self.session.settings)
        self.options.set_value(self.session.settings)
        if self.transform is not None:
            self._transform_text = f"restored: {self.transform.summary()}"
            self._transform_changed()

    # ------------------------------------------------------------------ ROI / FOV
    def _show_depth_unit(self, *_: Any) -> None:
        """The box depth's unit, the world's (that of the volume to crop; a new Shapes layer
        says 'pixel'), shown beside the value."""
        target = self.roi_target.layer()
        try:
            unit = "" if target is None else layer_frame(target).unit
        except ValueError:  # axes in different units
            unit = ""
        self.roi_depth.setSuffix(f" {unit}" if unit and unit != "pixel" else "")
        self._show_roi_size()

    def _watch_roi_shapes(self, *_: Any) -> None:
        """Follow the drawing on the chosen box layer (added, edited, selected shapes)."""
        for layer in self._roi_layers:
            for event in (layer.events.data, layer.events.set_data, layer.events.highlight):
                try:
                    event.disconnect(self._show_roi_size)
                except (TypeError, ValueError, RuntimeError):
                    pass
        shapes = self.roi_shapes.layer()
        self._roi_layers = [] if shapes is None else [shapes]
        for layer in self._roi_layers:
            for event in (layer.events.data, layer.events.set_data, layer.events.highlight):
                event.connect(self._show_roi_size)
        self._show_roi_size()

    def _show_roi_size(self, *_: Any) -> None:
        """'z 16 (depth) x y 20.5 x x 18 um': the box :meth:`roi_box` crops."""
        try:
            (lo, hi), flat = self._roi_box()
        except ValueError as exc:
            shapes = self.roi_shapes.layer()
            self.roi_size.setText("draw a rectangle on a Shapes layer" if shapes is None or
                                  not len(shapes.data) else str(exc))
            return
        unit = self.roi_depth.suffix().strip()
        parts = [f"{axis} {size:.4g}" + (" (depth)" if depth else "")
                 for axis, size, depth in zip("zyx", hi - lo, flat, strict=True)]
        self.roi_size.setText(" \u00d7 ".join(parts) + (f" {unit}" if unit else ""))

    def roi_box(self) -> np.ndarray:
        """World box (2, 3) of the selected (else last) shape on the ROI Shapes layer."""
        return self._roi_box()[0]

    def _roi_box(self) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`roi_box` and its axes that the rectangle does not span (box depth)."""
        shapes = self.roi_shapes.layer("Shapes layer with a box")
        if not len(shapes.data):
            raise ValueError(f"{shapes.name!r} has no shapes: draw a rectangle over the region")
        if shapes.ndim != 3:
            raise ValueError(f"{shapes.name!r} is {shapes.ndim}D; draw the box on a 3D Shapes "
                             "layer (add it while the volumes are shown)")
        index = max(shapes.selected_data) if shapes.selected_data else len(shapes.data) - 1
        verts = np.array([shapes.data_to_world(v) for v in np.asarray(shapes.data[index])])
        lo, hi = verts.min(axis=0), verts.max(axis=0)
        flat = (hi - lo) <= 1e-9 * max(float(np.abs(verts).max()), 1.0)
        half = self.roi_depth.value() / 2.0
        if flat.all() or (flat.any() and half <= 0):
            raise ValueError("the box has no extent: draw a rectangle and set a box depth > 0")
        lo[flat] -= half
        hi[flat] += half
        return np.array([lo, hi]), flat

    def crop_roi(self):
        """Crop the region under the ROI box from the target volume (new layer, in place)."""
        target = self.roi_target.layer("volume to crop from")
        box = self.roi_box()
        frame = physical_frame(target)
        crop, slices, clipped = reg.crop_region(full_resolution(target), frame, box,
                                                layer_affine(target))
        start = np.array([s.start for s in slices], float)
        # a new layer each time (napari numbers repeated names): a re-crop keeps the first
        layer = self.viewer.add_image(
            np.asarray(crop), name=f"{target.name} ROI", scale=frame.spacing,
            units=(frame.unit,) * 3,
            translate=tuple(np.asarray(frame.offset) + start * frame.spacing),
            affine=layer_affine(target), colormap=target.colormap.name,
            metadata={CREATED_BY: NAME, DERIVED_FROM: target.name,
                      "corrtomo_roi_slices": [[s.start, s.stop] for s in slices]})
        if clipped:
            show_info(f"the box reaches outside {target.name!r}; the crop holds the part inside")
        return layer

    def show_fields_of_view(self):
        """Outline every other shown 3D volume's field of view in the slices of the
        reference: not hidden layers (a phantom, flats, darks) nor projection stacks (an
        acquisition geometry and no reconstruction: a detector, not a field of view)."""
        ref = self.fov_reference.layer("reference volume")
        ref_m = index_to_world(ref)
        ref_shape = full_resolution(ref).shape
        polys, names, colors = [], [], []
        # by name, not identity (plugin viewers hand out proxies); no outline of derived layers
        # a registered volume is shown in 2D through its view (itself hidden)
        shown = {lay.name for lay in self.viewer.layers if lay.visible} | {
            lay.metadata.get(META_VIEW_OF) for lay in self.viewer.layers
            if is_view(lay) and lay.visible}
        others = [lay for lay in self.viewer.layers if isinstance(lay, Image)
                  and lay.name != ref.name and lay.ndim == 3 and lay.name in shown
                  and lay.metadata.get(CREATED_BY) != NAME and not is_view(lay)
                  and not is_projection_stack(lay)]
        spare = itertools.cycle(FOV_COLORS)
        for layer in others:
            # each modality in the colour it is drawn in (gray ones get a distinct one)
            color = _layer_color(layer)
            color = transform_color(next(spare))[0] if color is None else color
            outlines = reg.fov_outlines(full_resolution(layer).shape, index_to_world(layer),
                                        ref_shape, ref_m)
            polys += outlines
            names += [layer.name] * len(outlines)
            colors += [color] * len(outlines)
        if not polys:
            raise ValueError(f"no other volume's field of view crosses {ref.name!r}; register "
                             "the volumes first")
        frame = physical_frame(ref)
        name = f"fields of view in {ref.name}"
        if name in self.viewer.layers and self.viewer.layers[name].metadata.get(CREATED_BY) == NAME:
            self.viewer.layers.remove(name)  # our own overlay: redraw it from scratch
        return add_result(
            self.viewer, polys, name=name, layer_type="shapes", created_by=NAME,
            scale=frame.spacing, unit=frame.unit, translate=frame.offset, affine=layer_affine(ref),
            shape_type="polygon", edge_color=colors, face_color="transparent", edge_width=0.5,
            features={"volume": names}, opacity=0.9)
