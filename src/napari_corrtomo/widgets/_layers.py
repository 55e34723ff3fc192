"""Layer plumbing shared by the widgets: choosers, physical frames, result layers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import napari
import numpy as np
from qtpy.QtWidgets import QComboBox, QWidget

from ..core.frame import Frame, frame_of
from ..core.project import ProjectLayer
from ._runner import real_viewer

#: metadata key naming the widget that created a layer (so it may update it later)
CREATED_BY = "corrtomo_created_by"

#: metadata key naming the layer a derived layer was made from (a crop, a segmentation,
#: a measurement's image): the Project table shows that layer's modality for it
DERIVED_FROM = "corrtomo_derived_from"


#: metadata flag of the live training's layers (drawings of the forest, made again by
#: the next live update: never a channel, never strokes, not saved in a project)
LIVE = "corrtomo_live"


#: ``metadata["detector"]`` of a scan's flat and dark fields (a FIB-SEM channel names its
#: detector there too: ``SE2``, ``InLens``)
REFERENCE_IMAGES = ("flats", "darks")


def phase_names(layer) -> dict[int, str]:
    """Label value -> phase name from a layer's metadata (``phases``, or the ``truth``
    record of the plugin's samples); {} where it names none."""
    meta = {} if layer is None else layer.metadata
    phases = meta.get("phases") or (meta.get("truth") or {}).get("phases") or {}
    return {int(k): str(v) for k, v in phases.items()}


def is_projection_stack(layer) -> bool:
    """Whether ``layer`` holds a detector's images, not a volume of the sample: projections
    (an acquisition geometry in its metadata and no reconstruction method) or their flat or
    dark fields (``metadata["detector"]`` in :data:`REFERENCE_IMAGES`)."""
    md = layer.metadata
    return ("geometry" in md and "method" not in md) or md.get("detector") in REFERENCE_IMAGES


class LayerSelect(QComboBox):
    """A combo box of the viewer's layers of some types, kept in sync with the layer list."""

    def __init__(
        self,
        viewer: napari.Viewer,
        layer_types: tuple[type, ...],
        allow_none: bool = False,
        parent: QWidget | None = None,
        *,
        tip: str,
        skip: Callable[[Any], bool] | None = None,
        newest: bool = False,
        score: Callable[[Any], float] | None = None,
        keep_removed: bool = False,
    ):
        super().__init__(parent)
        self.setToolTip(tip)
        self.viewer = viewer
        self.layer_types = layer_types
        self.allow_none = allow_none
        #: layers of those types not offered (e.g. overlays a widget drew itself)
        self.skip = skip or (lambda layer: False)
        #: with nothing chosen, offer the newest layer (the top one: what the user just made)
        #: instead of the oldest
        self.newest = newest
        #: with nothing chosen, offer the first layer of the highest score (e.g. a shown volume
        #: before a sample's hidden ground truth); a default that scores lower than another
        #: layer gives way to it (one arrives, the score changes) until a layer is picked
        self.score = score
        #: when the chosen layer is removed, choose none (not another layer) until one is picked
        self.keep_removed = keep_removed
        self._default: str | None = None  # the layer chosen by default (none picked since)
        self._emptied = False  # the chosen layer was removed (``keep_removed``)
        self.activated.connect(self._picked)
        for event in (viewer.layers.events.inserted, viewer.layers.events.removed,
                      viewer.layers.events.reordered):
            event.connect(self.refresh)
        self.refresh()

    def refresh(self, *_: Any) -> None:
        current = self.currentText()
        self.blockSignals(True)
        self.clear()
        if self.allow_none:
            self.addItem("")
        for layer in self.viewer.layers:
            if isinstance(layer, self.layer_types) and not self.skip(layer):
                self.addItem(layer.name)
        index = self.findText(current)
        if index < 0 and self.keep_removed and (current or self._emptied):
            self._emptied = True  # the chosen layer was removed: no stand-in for it
        elif index < 0 or (current == self._default and self._best() != index
                           and self._score(self._best()) > self._score(index)):
            index = self._best()
            self._default = self.itemText(index) if index >= 0 else None
        self.setCurrentIndex(index)
        self.blockSignals(False)
        if self.currentText() != current:
            # e.g. the first layer of its kind appeared: the widget fills its form from it
            self.currentIndexChanged.emit(self.currentIndex())
            self.currentTextChanged.emit(self.currentText())

    def _picked(self, *_: Any) -> None:
        """A layer picked (by the user, or :meth:`set_layer`): no longer a default."""
        self._default, self._emptied = None, False

    def _score(self, index: int) -> float:
        name = self.itemText(index)
        if self.score is None or not name or name not in self.viewer.layers:
            return 0.0
        return float(self.score(self.viewer.layers[name]))

    def _best(self) -> int:
        """The default: the first (the newest with ``newest``) layer of the highest score."""
        order = range(self.count() - 1, -1, -1) if self.newest else range(self.count())
        if self.score is None or self.allow_none:
            return next(iter(order), -1)
        return max(order, key=self._score, default=-1)

    def layer(self, required: str | None = None):
        """The chosen layer; ``None`` or, if ``required`` names it, a ``ValueError``."""
        name = self.currentText()
        if name and name in self.viewer.layers:
            return self.viewer.layers[name]
        if required:
            kinds = "/".join(t.__name__ for t in self.layer_types)
            article = "an" if kinds[:1] in tuple("AEIOU") else "a"
            raise ValueError(f"no {required} chosen: add or open {article} {kinds} layer first")
        return None

    def set_layer(self, layer) -> None:
        self.refresh()
        self._picked()
        self.setCurrentIndex(self.findText(layer.name))


def layer_frame(layer, ndim: int | None = None) -> Frame:
    """The physical frame (voxel size, unit, origin) of a layer's last ``ndim`` axes.

    Raises ``ValueError`` when the axes have different units (convert first).
    """
    return frame_of(layer.scale, [str(u) for u in layer.units], ndim, layer.translate,
                    what=f"layer {layer.name!r}")


def layer_affine(layer) -> np.ndarray:
    """The layer's ``affine`` as a 4x4 matrix."""
    return np.asarray(layer.affine.affine_matrix, float)[-4:, -4:]


def index_to_world(layer) -> np.ndarray:
    """4x4 matrix taking a 3D layer's voxel indices (z, y, x) to napari world coordinates."""
    if layer.ndim != 3:
        raise ValueError(f"layer {layer.name!r} must be 3D (z, y, x), got {layer.ndim}D")
    origin = np.asarray(layer.data_to_world((0.0, 0.0, 0.0)), float)
    m = np.eye(4)
    m[:3, 3] = origin
    for ax in range(3):
        e = np.zeros(3)
        e[ax] = 1.0
        m[:3, ax] = np.asarray(layer.data_to_world(tuple(e)), float) - origin
    return m


def layer_units(unit: str, ndim: int) -> tuple[str, ...]:
    return (unit,) * ndim


def add_result(
    viewer: napari.Viewer,
    data: Any,
    *,
    name: str,
    layer_type: str,
    created_by: str,
    scale: tuple[float, ...],
    unit: str,
    translate: tuple[float, ...] | None = None,
    source: Any = None,
    **kwargs: Any,
):
    """Add a result layer, or update the layer of that name this widget made earlier, and
    move the sliders into it where the slice on screen misses it (:func:`bring_into_view`).
    A new layer is selected (napari's way) unless it is hidden or the selected layer is
    being edited (a drawing mode).

    A layer of the same name that the widget did not create is never touched: the
    result gets a new name instead (never lose data).
    """
    metadata = dict(kwargs.pop("metadata", {}) or {})
    metadata[CREATED_BY] = created_by
    if source is not None:  # the layer it was made from (the Project table's modality)
        metadata[DERIVED_FROM] = source.name
    units = layer_units(unit, len(scale))
    if name in viewer.layers:
        old = viewer.layers[name]
        if old.metadata.get(CREATED_BY) == created_by and layer_kind(old) == layer_type:
            old.data = data
            old.scale = scale
            old.units = units
            if translate is not None:
                old.translate = translate
            old.metadata.update(metadata)
            for key, value in kwargs.items():
                setattr(old, key, value)
            bring_into_view(viewer, old)
            return old
    extra = {"translate": translate} if translate is not None else {}
    layer = napari.layers.Layer.create(
        data, dict(name=name, scale=scale, units=units, metadata=metadata, **extra, **kwargs),
        layer_type)
    # a hidden result (an uncertainty, the closed pores) or one made while the user edits
    # a layer (paints strokes) leaves the selection, and with it the brush, where it was
    active = viewer.layers.selection.active
    editing = active is not None and getattr(active, "mode", "pan_zoom") not in (
        "pan_zoom", "transform")
    if editing or not layer.visible:
        layer = add_unselected(viewer, layer)
    else:
        layer = viewer.add_layer(layer)
    bring_into_view(viewer, layer)
    return layer


def bring_into_view(viewer: napari.Viewer, layer) -> None:
    """Move each slider whose position lies outside ``layer``'s world extent to the middle
    of that extent: a reconstruction 160 um high was added while the slider stood at
    179 um, the middle of its 360 projections, and nothing new was on screen."""
    if layer_kind(layer) not in ("image", "labels"):
        return
    low, high = layer.extent.world
    offset = viewer.dims.ndim - layer.ndim  # the layer's axes are the viewer's last ones
    for axis in viewer.dims.not_displayed:
        k = axis - offset
        if k >= 0 and not low[k] <= viewer.dims.point[axis] <= high[k]:
            viewer.dims.set_point(axis, (low[k] + high[k]) / 2)


#: metadata key holding measurement tables (name -> DataFrame) attached to a layer
TABLES = "corrtomo_tables"


def attach_table(layer, name: str, frame) -> None:
    """Keep a measurement table with the layer it was measured on (saved with the project)."""
    tables = dict(layer.metadata.get(TABLES, {}))
    tables[name] = frame
    layer.metadata = {**layer.metadata, TABLES: tables}


def layer_tables(layer) -> dict:
    """Tables attached with :func:`attach_table`, plus non-empty ``layer.features``."""
    tables = dict(layer.metadata.get(TABLES, {}))
    features = getattr(layer, "features", None)
    if features is not None and len(features.columns) and len(features):
        tables.setdefault("features", features)
    return tables


# ============================================================================ projects

_DISPLAY = {
    "image": ("colormap", "contrast_limits", "gamma", "opacity", "blending", "visible"),
    "labels": ("opacity", "blending", "visible"),
    "points": ("size", "opacity", "visible", "symbol"),
    "shapes": ("edge_width", "opacity", "visible"),
}


def layer_kind(layer) -> str:
    """``"image"``, ``"labels"``, ``"points"``, ``"shapes"`` ...: napari's layer type name,
    read from the public class (its ``_type_string`` is private: through a plugin's viewer
    proxy, reading it raises a deprecation notification)."""
    return layer.__class__.__name__.lower()


def full_resolution(layer) -> Any:
    """The layer's full-resolution data (level 0 of a pyramid), lazy if it is lazy."""
    return layer.data[0] if getattr(layer, "multiscale", False) else layer.data


#: what a project keeps of a points or shapes layer's looks beyond its ``display`` (the
#: arguments it is made with), set in this order once it is made: each element's colours
#: (and border widths), then those of the next one drawn
STYLE = {
    "points": ("face_color", "border_color", "border_width_is_relative", "border_width",
               "current_face_color", "current_border_color", "current_border_width"),
    "shapes": ("face_color", "edge_color", "current_face_color", "current_edge_color",
               "current_edge_width"),
}
#: the keys of :data:`STYLE` with a value per element
PER_ELEMENT = ("face_color", "border_color", "border_width", "edge_color")


def to_project_layer(layer) -> ProjectLayer:
    """Snapshot of a napari layer (data, frame, display, tables) for saving."""
    kind = layer_kind(layer)
    display = {}
    for key in _DISPLAY.get(kind, ()):
        value = getattr(layer, key)
        display[key] = value.name if hasattr(value, "name") else value
    metadata = {k: v for k, v in layer.metadata.items() if k != TABLES}
    data = full_resolution(layer)
    return ProjectLayer(
        name=layer.name,
        layer_type=kind,
        data=data,
        scale=tuple(float(s) for s in layer.scale),
        units=tuple(str(u) for u in layer.units),
        affine=np.asarray(layer.affine.affine_matrix),
        display=display,
        metadata=metadata,
        tables=layer_tables(layer),
        shape_types=list(layer.shape_type) if kind == "shapes" else None,
        translate=tuple(float(t) for t in layer.translate),
        style={key: np.asarray(getattr(layer, key)).tolist() for key in STYLE.get(kind, ())},
    )


@contextmanager
def selection_kept(viewer: napari.Viewer) -> Iterator[None]:
    """Layers added inside are not selected: the layers the user had selected (the
    scribbles in paint mode, and the brush controls with them) stay selected (issue 17:
    the plugin never moves the selection).

    napari's selection change (layer controls swapped, layer list and button styles redone)
    is also half the UI-thread cost of an add (median 93-115 -> 46-60 ms CPU per
    160x224x224 image, 2-core VM); a load selects once, at the end. napari has no public
    switch for this: its private one is used when present (on the viewer itself, not a
    plugin's proxy), else the selection is put back afterwards."""
    layers = real_viewer(viewer).layers
    selected, active = list(layers.selection), layers.selection.active
    activate = getattr(layers, "_activate_on_insert", None)
    if activate is not None:
        layers._activate_on_insert = False
    try:
        yield
    finally:
        if activate is not None:
            layers._activate_on_insert = activate
        kept = [layer for layer in selected if layer in layers]
        if set(layers.selection) != set(kept):
            if active is not None and active in layers:
                layers.selection.active = active
            else:
                layers.selection.clear()
                layers.selection.update(kept)


def add_unselected(viewer: napari.Viewer, layer):
    """``viewer.add_layer`` without making ``layer`` the selected one
    (:func:`selection_kept`)."""
    with selection_kept(viewer):
        return viewer.add_layer(layer)


def add_project_layer(viewer: napari.Viewer, entry: ProjectLayer):
    """Recreate a saved layer in the viewer (a new layer; nothing existing is replaced)."""
    return viewer.add_layer(project_layer(entry))


def project_layer(entry: ProjectLayer) -> napari.layers.Layer:
    """The napari layer of a saved one, not yet in a viewer.

    Building it (contrast limits, label colours) may take a while on large data: a worker
    can do it, and the GUI thread then only adds it (``viewer.add_layer``).
    """
    kwargs = dict(name=entry.name, scale=entry.scale, units=entry.units,
                  metadata=dict(entry.metadata), **entry.display)
    if entry.affine is not None:
        kwargs["affine"] = entry.affine
    if entry.translate is not None:
        kwargs["translate"] = entry.translate
    if entry.layer_type == "shapes":
        kwargs["shape_type"] = entry.shape_types
    layer = napari.layers.Layer.create(entry.data, kwargs, entry.layer_type)
    tables = dict(entry.tables)
    if "features" in tables and entry.layer_type != "image":
        layer.features = tables.pop("features")
    if tables:
        layer.metadata = {**layer.metadata, TABLES: tables}
    empty = not len(layer.data)  # napari takes no per-element colours for no elements
    for key in STYLE.get(entry.layer_type, ()):
        if key in entry.style and not (empty and key in PER_ELEMENT):
            setattr(layer, key, entry.style[key])
    return layer
