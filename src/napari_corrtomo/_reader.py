"""npe2 reader: every format of :mod:`napari_corrtomo.core.io`, with scale and units."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .core.io import Volume, can_read, read_volumes


def volume_to_layer_data(volume: Volume) -> tuple[Any, dict[str, Any], str]:
    """A napari LayerDataTuple carrying the volume's voxel size and units (and, in the
    layer's metadata, the unit of its values when the file records one)."""
    extra = {"value_unit": volume.value_unit} if volume.value_unit else {}
    meta = {
        "name": volume.name,
        "scale": volume.scale,
        "units": volume.units,
        "metadata": {**volume.metadata, **extra},
    }
    if isinstance(volume.data, list):
        meta["multiscale"] = True
    return volume.data, meta, volume.layer_type


def get_reader(path: str | list[str]) -> Callable[[str], list] | None:
    """Return a reader for paths napari-corrtomo understands, else ``None``."""
    paths = [path] if isinstance(path, str) else list(path)
    if not paths or not all(can_read(p) for p in paths):
        return None
    return read_layers


def read_layers(path: str | list[str]) -> list[tuple[Any, dict[str, Any], str]]:
    """Read one or more files; a corrupt file raises ``ValueError`` and adds nothing."""
    paths = [path] if isinstance(path, str) else list(path)
    volumes = [v for p in paths for v in read_volumes(p)]
    return [volume_to_layer_data(v) for v in volumes]
