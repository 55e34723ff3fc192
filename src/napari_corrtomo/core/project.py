"""A correlative project on disk: every volume, its frame and its tables, to survive a restart.

A project directory holds

- ``project.json`` -- the manifest (format version, one entry per layer, where the
  viewer looked: ``view``, e.g. its slider positions ``dims_point``, and each dock's
  state: ``panels``, e.g. Register's landmark pairs and transform);
- ``classifier.corrclf.npz`` -- the trained pixel classifier of a dock's state, if any;
- ``layers/<name>.ome.zarr`` -- images and labels (voxel size and units inside);
- ``layers/<name>.csv`` -- points, data coordinates (z, y, x);
- ``layers/<name>.json`` -- shapes, vertices in data coordinates, and their types;
- ``tables/<layer>/<table>.csv`` -- measurement tables attached to a layer.

Each entry records the layer's voxel size (``scale``), units, grid origin
(``translate``, e.g. of an ROI crop), the 4x4 ``affine`` placing it in the common
(reference) frame (world = affine @ (data * scale + translate)), a few display
properties (and ``style``: each point's or shape's colours, the colours of the next one)
and JSON-safe metadata.
Writing goes to a temporary directory renamed into place, so a failed save never
damages an existing project.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .backend import compute_all, memory_budget
from .classify import PixelClassifier
from .io import atomic_path, jsonable, read_volumes, write_ome_zarr
from .progress import ProgressCallback, report, scaled

FORMAT = "napari-corrtomo-project"
VERSION = 1
LAYER_TYPES = ("image", "labels", "points", "shapes")
#: the file of the classifier in the docks' state (:func:`save_project`'s ``panels``)
CLASSIFIER = "classifier.corrclf.npz"


@dataclass
class ProjectLayer:
    """One layer of a project, in memory."""

    name: str
    layer_type: str
    data: Any
    scale: tuple[float, ...]
    units: tuple[str, ...]
    affine: np.ndarray | None = None
    display: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    shape_types: list[str] | None = None
    #: origin of the grid (world = affine @ (data * scale + translate)); None = zeros
    translate: tuple[float, ...] | None = None
    #: looks set on the layer once made (``display`` are arguments to make it): a points or
    #: shapes layer's colours per element and for the next one added, JSON-safe
    style: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.layer_type not in LAYER_TYPES:
            raise ValueError(f"layer {self.name!r}: a project stores {', '.join(LAYER_TYPES)} "
                             f"layers, not {self.layer_type!r}")


def field_of_view(shape: tuple[int, ...], scale: tuple[float, ...],
                  affine: np.ndarray | None = None,
                  translate: tuple[float, ...] | None = None) -> np.ndarray:
    """(8, 3) world corners of a 3D volume's box, its voxels whole (voxel centres at whole
    indices, each voxel half a voxel either side: 160 voxels of 1 um span 160 um), in the
    reference frame if ``affine``."""
    if len(shape) != 3:
        raise ValueError(f"field_of_view needs a 3D volume, got shape {shape}")
    sp = np.asarray(scale, dtype=float)
    edges = [[-0.5 * s, (n - 0.5) * s] for n, s in zip(shape, sp, strict=True)]
    corners = np.array(np.meshgrid(*edges, indexing="ij")).reshape(3, -1).T
    if translate is not None:
        corners = corners + np.asarray(translate, dtype=float)[-3:]
    if affine is None:
        return corners
    a = np.asarray(affine, dtype=float)
    return corners @ a[:3, :3].T + a[:3, 3]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "layer"


def save_project(directory: str | Path, layers: list[ProjectLayer],
                 progress: ProgressCallback | None = None,
                 view: Mapping[str, Any] | None = None,
                 panels: Mapping[str, dict] | None = None,
                 classifier: PixelClassifier | None = None) -> Path:
    """Write ``layers`` as a project directory (replacing an existing one atomically).

    ``progress(done, total)`` moves with the bytes written (per zarr chunk of a volume);
    raising :class:`~.progress.Cancelled` from it stops within a chunk and leaves an
    existing project as it was. ``view``: JSON-safe state of the viewer to bring back with
    the layers (:func:`read_view`), e.g. ``{"dims_point": [z, y, x]}`` in world units.
    ``panels``: each dock's JSON-safe state by its name, and ``classifier`` the trained
    classifier one of them holds, to bring back with the layers (:func:`read_panels`).
    """
    directory = Path(directory)
    names = [layer.name for layer in layers]
    if len(set(names)) != len(names):
        raise ValueError("layer names in a project must be unique")
    # progress share of each layer: its bytes (points/shapes count as one small chunk)
    sizes = [_nbytes(layer) for layer in layers]
    edges = np.concatenate([[0], np.cumsum(sizes)]) * (1000 / max(sum(sizes), 1))
    entries = []
    with atomic_path(directory) as tmp:
        (tmp / "layers").mkdir(parents=True)
        report(progress, 0, 1000)
        for i, layer in enumerate(layers):
            stem = _safe(layer.name)
            entry: dict[str, Any] = {
                "name": layer.name,
                "type": layer.layer_type,
                "scale": list(map(float, layer.scale)),
                "units": list(layer.units),
                "affine": None if layer.affine is None else np.asarray(layer.affine).tolist(),
                "translate": None if layer.translate is None else list(map(float, layer.translate)),
                "display": jsonable(layer.display),
                "metadata": jsonable(layer.metadata),
                "style": jsonable(layer.style),
                "tables": {},
            }
            if layer.layer_type in ("image", "labels"):
                rel = f"layers/{stem}.ome.zarr"
                write_ome_zarr(tmp / rel, layer.data, layer.scale, layer.units,
                               layer_type=layer.layer_type, name=layer.name,
                               progress=scaled(progress, int(edges[i]), int(edges[i + 1]),
                                               1000))
            elif layer.layer_type == "points":
                rel = f"layers/{stem}.csv"
                pts = np.asarray(layer.data, dtype=float).reshape(-1, len(layer.scale))
                pd.DataFrame(pts, columns=list("zyx"[-pts.shape[1]:])).to_csv(tmp / rel, index=False)
            else:
                rel = f"layers/{stem}.json"
                shapes = [np.asarray(s, dtype=float).tolist() for s in layer.data]
                (tmp / rel).write_text(json.dumps({"shapes": shapes,
                                                   "shape_types": layer.shape_types}))
            entry["file"] = rel
            for tname, frame in layer.tables.items():
                trel = f"tables/{stem}/{_safe(tname)}.csv"
                (tmp / trel).parent.mkdir(parents=True, exist_ok=True)
                frame.to_csv(tmp / trel, index=False)
                entry["tables"][tname] = trel
            entries.append(entry)
            report(progress, int(edges[i + 1]), 1000)
        manifest = {"format": FORMAT, "version": VERSION, "layers": entries}
        if view:
            manifest["view"] = jsonable(dict(view))
        if panels:
            manifest["panels"] = jsonable(dict(panels))
        if classifier is not None:
            classifier.save(tmp / CLASSIFIER)
        (tmp / "project.json").write_text(json.dumps(manifest, indent=2))
    return directory


def _nbytes(layer: ProjectLayer) -> int:
    if layer.layer_type in ("image", "labels"):
        return int(np.prod(np.shape(layer.data))) * np.dtype(layer.data.dtype).itemsize
    return 1 << 16


def load_project(directory: str | Path, progress: ProgressCallback | None = None,
                 in_memory: bool = False) -> list[ProjectLayer]:
    """Read a project directory written by :func:`save_project`.

    Parameters
    ----------
    directory
        The project folder (holding ``project.json``).
    progress
        ``progress(done, total)`` per zarr chunk read (``in_memory``); raise
        :class:`~.progress.Cancelled` from it to stop.
    in_memory
        Read images and labels into NumPy arrays when they fit the memory budget
        (:func:`~.backend.memory_budget`), so that showing them never reads a file;
        otherwise, and by default, they come back as lazy dask arrays (full
        resolution level).
    """
    directory = Path(directory)
    path = directory / "project.json"
    if not path.exists():
        raise ValueError(f"{directory}: not a napari-corrtomo project (no project.json); "
                         "choose the folder that 'Save project' created")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{path}: not a napari-corrtomo project file")
    if int(manifest.get("version", 0)) > VERSION:
        raise ValueError(f"{path}: written by a newer napari-corrtomo (format version "
                         f"{manifest['version']} > {VERSION}); update the plugin to open it")
    layers = []
    for entry in manifest["layers"]:
        file = directory / entry["file"]
        if not file.exists():
            raise ValueError(f"{path}: layer {entry['name']!r} refers to missing {entry['file']}")
        kind = entry["type"]
        shape_types = None
        if kind in ("image", "labels"):
            data = read_volumes(file)[0].array
        elif kind == "points":
            data = pd.read_csv(file).to_numpy(dtype=float)
        else:
            stored = json.loads(file.read_text())
            data = [np.asarray(s, dtype=float) for s in stored["shapes"]]
            shape_types = stored.get("shape_types")
        tables = {name: pd.read_csv(directory / rel) for name, rel in entry.get("tables", {}).items()}
        layers.append(ProjectLayer(
            name=entry["name"], layer_type=kind, data=data,
            scale=tuple(entry["scale"]), units=tuple(entry["units"]),
            affine=None if entry.get("affine") is None else np.asarray(entry["affine"]),
            display=entry.get("display", {}), metadata=entry.get("metadata", {}),
            tables=tables, shape_types=shape_types,
            translate=None if entry.get("translate") is None else tuple(entry["translate"]),
            style=entry.get("style", {}),
        ))
    volumes = [layer for layer in layers if layer.layer_type in ("image", "labels")]
    if in_memory and sum(map(_nbytes, volumes)) <= memory_budget("numpy"):
        for layer, data in zip(volumes, compute_all([v.data for v in volumes], progress),
                               strict=True):
            layer.data = data
    report(progress, 1, 1)
    return layers


def read_view(directory: str | Path) -> dict[str, Any]:
    """The viewer state saved with a project (``view`` of :func:`save_project`); empty for
    a project saved without one."""
    path = Path(directory) / "project.json"
    try:
        view = json.loads(path.read_text()).get("view")
    except (OSError, ValueError):
        return {}
    return dict(view) if isinstance(view, dict) else {}


def read_panels(directory: str | Path) -> tuple[dict[str, dict], PixelClassifier | None]:
    """The docks' state saved with a project (``panels`` of :func:`save_project`) and its
    classifier; empty and None for a project saved without them."""
    directory = Path(directory)
    try:
        panels = json.loads((directory / "project.json").read_text()).get("panels")
    except (OSError, ValueError):
        panels = None
    clf = directory / CLASSIFIER
    return (dict(panels) if isinstance(panels, dict) else {},
            PixelClassifier.load(clf) if clf.is_file() else None)


#: what a detector stack's rows are called, by its kind (:func:`describe`)
STACK_NOUNS = {"projections": ("projection", "projections"), "flats": ("flat", "flats"),
               "darks": ("dark", "darks")}


def _short_unit(unit: str) -> str:
    return {"micrometer": "um", "nanometer": "nm", "millimeter": "mm",
            "angstrom": "A"}.get(unit, unit)


def describe(layers: list[ProjectLayer],
             stack_kind: Callable[[ProjectLayer], str | None] | None = None,
             modalities: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One row per image/labels layer: modality, shape, voxel size, unit, registered or not,
    and the field-of-view extent in the reference frame.

    Parameters
    ----------
    layers
        The project's layers (points and shapes are left out).
    stack_kind
        ``stack_kind(layer)`` names a detector stack, not a volume of the sample:
        ``"projections"``, ``"flats"`` or ``"darks"`` (None for a volume). A stack's
        first axis counts images (e.g. angles), not a length: its row has no field of view
        and its ``size`` reads "360 projections of 160 x 318 px".
    modalities
        Modality by layer name for layers whose metadata names none (e.g. the modality of
        the layer a crop or a segmentation was made from).

    Columns: ``layer``, ``type`` (napari's), ``kind`` (``type`` or the stack's kind),
    ``modality``, ``shape``, ``voxel`` (voxel or pixel size per axis), ``unit``,
    ``registered``, ``fov_extent`` (volumes: world extent, with the unit) and ``size`` (a
    short summary: the field of view of a volume, the image count and size of a stack).
    """
    rows = []
    for layer in layers:
        if layer.layer_type not in ("image", "labels"):
            continue
        shape = tuple(np.shape(layer.data))
        kind = stack_kind(layer) if stack_kind is not None else None
        unit = _short_unit(str(layer.units[-1])) if layer.units else ""
        modality = layer.metadata.get("modality", "") or (modalities or {}).get(layer.name, "")
        row = {
            "layer": layer.name,
            "type": layer.layer_type,
            "kind": kind or layer.layer_type,
            "modality": modality,
            "shape": "x".join(map(str, shape)),
            "voxel": " x ".join(f"{s:g}" for s in layer.scale),
            "unit": unit,
            "registered": layer.affine is not None and not np.allclose(layer.affine, np.eye(4)),
            "fov_extent": "",
            "size": "",
        }
        if kind is not None:
            one, many = STACK_NOUNS.get(kind, (kind, kind))
            count = shape[0] if len(shape) == 3 else 1
            pixel = f"{layer.scale[-1]:g} {unit}".strip()
            row["size"] = (f"{count} {one if count == 1 else many} of "
                           f"{shape[-2]} x {shape[-1]} px ({pixel} pixels)")
        elif len(shape) == 3:
            fov = field_of_view(shape, layer.scale, layer.affine, layer.translate)
            ext = fov.max(0) - fov.min(0)
            row["fov_extent"] = row["size"] = " x ".join(f"{e:.4g}" for e in ext) + f" {unit}"
        rows.append(row)
    return pd.DataFrame(rows)


