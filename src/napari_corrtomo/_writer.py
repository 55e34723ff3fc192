"""npe2 writers: image and labels layers to TIFF or OME-Zarr with voxel size and units."""

from __future__ import annotations

from typing import Any

from .core.io import Volume, write_volume


def _write(path: str, data: Any, meta: dict[str, Any], layer_type: str) -> list[str]:
    ndim = data[0].ndim if isinstance(data, list) else data.ndim
    scale = tuple(meta.get("scale", (1.0,) * ndim))
    units = tuple(str(u) for u in meta.get("units", ("pixel",) * ndim))
    array = data[0] if isinstance(data, list) else data
    value_unit = (meta.get("metadata") or {}).get("value_unit")
    volume = Volume(array, scale, units, meta.get("name", "layer"), layer_type,
                    value_unit=value_unit)
    return [str(write_volume(path, volume))]


def write_image(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    return _write(path, data, meta, "image")


def write_labels(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    return _write(path, data, meta, "labels")
