"""Dock widget "Correlative project": modalities, frames and fields of view; save/load the session."""

from __future__ import annotations

from pathlib import Path

import napari
import numpy as np
from napari.layers import Image, Labels, Points, Shapes
from napari.utils.notifications import show_error, show_info
from qtpy.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..core.project import ProjectLayer, describe, load_project, save_project
from ._layers import TABLES, layer_tables
from ._runner import TaskRunner
from ._table import TableView

_DISPLAY = {
    "image": ("colormap", "contrast_limits", "gamma", "opacity", "blending", "visible"),
    "labels": ("opacity", "blending", "visible"),
    "points": ("size", "opacity", "visible", "symbol"),
    "shapes": ("edge_width", "opacity", "visible"),
}


def to_project_layer(layer) -> ProjectLayer:
    """Snapshot of a napari layer (data, frame, display, tables) for saving."""
    kind = layer._type_string
    display = {}
    for key in _DISPLAY.get(kind, ()):
        value = getattr(layer, key)
        display[key] = value.name if hasattr(value, "name") else value
    metadata = {k: v for k, v in layer.metadata.items() if k != TABLES}
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
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
    )


def add_project_layer(viewer: napari.Viewer, entry: ProjectLayer):
    """Recreate a saved layer in the viewer (a new layer; nothing existing is replaced)."""
    kwargs = dict(name=entry.name, scale=entry.scale, units=entry.units,
                  metadata=dict(entry.metadata))
    if entry.affine is not None:
        kwargs["affine"] = entry.affine
    display = dict(entry.display)
    if entry.layer_type == "shapes":
        layer = viewer.add_shapes(entry.data, shape_type=entry.shape_types, **kwargs, **display)
    else:
        layer = getattr(viewer, f"add_{entry.layer_type}")(entry.data, **kwargs, **display)
    if entry.tables:
        if "features" in entry.tables and entry.layer_type != "image":
            layer.features = entry.tables.pop("features")
        if entry.tables:
            layer.metadata = {**layer.metadata, TABLES: entry.tables}
    return layer


class ProjectWidget(QWidget):
    """Lists every volume with its voxel size, unit, registration and field of view, and
    saves/loads the whole session (layers as OME-Zarr/CSV/JSON + a JSON manifest)."""

    def __init__(self, napari_viewer: napari.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.table = TableView()
        self.save_button = QPushButton("Save project ...")
        self.load_button = QPushButton("Load project ...")
        self.save_button.clicked.connect(lambda: self._ask("save"))
        self.load_button.clicked.connect(lambda: self._ask("load"))
        self.runner = TaskRunner()
        buttons = QHBoxLayout()
        buttons.addWidget(self.save_button)
        buttons.addWidget(self.load_button)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Modalities in this session (voxel size, unit, frame):"))
        layout.addWidget(self.table)
        layout.addLayout(buttons)
        layout.addWidget(self.runner)
        for event in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            event.connect(self.refresh)
        self.refresh()

    def refresh(self, *_) -> None:
        volumes = [to_project_layer(layer) for layer in self.viewer.layers
                   if isinstance(layer, (Image, Labels)) and layer.ndim == 3]
        self.table.set_frame(describe(volumes))

    def save(self, directory: str | Path):
        """Save every image/labels/points/shapes layer into ``directory`` (in a worker)."""
        layers = [to_project_layer(layer) for layer in self.viewer.layers
                  if isinstance(layer, (Image, Labels, Points, Shapes))]
        if not layers:
            show_error("Nothing to save: the viewer has no image, labels, points or shapes layers.")
            return None
        return self.runner.start(
            save_project, directory, layers, label="Saving project",
            on_result=lambda path: show_info(f"Project saved to {path}"))

    def load(self, directory: str | Path):
        """Add the layers of a saved project to the viewer."""
        def added(entries):
            for entry in entries:
                add_project_layer(self.viewer, entry)
            show_info(f"Loaded {len(entries)} layers from {directory}")

        return self.runner.start(_load, directory, label="Loading project", on_result=added)

    def _ask(self, action: str) -> None:
        directory = QFileDialog.getExistingDirectory(self, f"{action.title()} project folder")
        if directory:
            getattr(self, action)(directory)


def _load(directory, progress=None):
    return load_project(directory)
