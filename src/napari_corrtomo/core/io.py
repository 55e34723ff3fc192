"""Readers and writers shared by the napari plugin and the ``corrtomo`` CLI.

Every reader returns :class:`Volume` objects: the array (z, y, x) (or angle, row,
col) with its voxel size ``scale`` and ``units`` per axis, so that physical
measurements never depend on the file format. Writers never leave a half-written
file behind: they write to a temporary sibling and rename it into place.

Formats
-------
- TIFF / OME-TIFF stacks: voxel size from OME ``PhysicalSize*`` or ImageJ
  resolution + ``spacing`` + ``unit``; channels become separate volumes.
- MRC / REC (electron tomography): ``voxel_size`` (Å) reported in nm.
- HDF5 / NeXus: one volume per chosen dataset; voxel size from
  ``element_size_um`` (ilastik/Fiji) or ``voxel_size`` + ``units`` attributes.
- zarr / OME-Zarr (NGFF 0.4/0.5): opened lazily as dask arrays, multiscale
  pyramids as lists, voxel size from the coordinate transformations.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._checks import SettingError
from .backend import as_dask, compute_all
from .frame import Frame, frame_of
from .progress import ProgressCallback
from .units import normalize_unit

TIFF_SUFFIXES = (".tif", ".tiff")
MRC_SUFFIXES = (".mrc", ".rec", ".st", ".ali", ".map")
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".nxs")
ZARR_SUFFIXES = (".zarr", ".ome.zarr")
READ_SUFFIXES = TIFF_SUFFIXES + MRC_SUFFIXES + HDF5_SUFFIXES + ZARR_SUFFIXES


@dataclass
class Volume:
    """An array with its physical frame.

    ``data`` is (z, y, x) (2D images are (y, x)); a list of arrays for a
    multiscale pyramid, finest first. ``scale`` is the voxel size per axis in
    ``units`` (per axis, pint spelling). ``layer_type`` is ``"image"`` or
    ``"labels"``. ``value_unit`` is the unit of the values themselves when they have
    one (a reconstruction's attenuation: ``"1/um"``), else None.
    """

    data: Any
    scale: tuple[float, ...]
    units: tuple[str, ...]
    name: str
    layer_type: str = "image"
    metadata: dict[str, Any] = field(default_factory=dict)
    value_unit: str | None = None

    @property
    def array(self) -> Any:
        """The full-resolution array (first level of a pyramid)."""
        return self.data[0] if isinstance(self.data, list) else self.data

    def frame(self, ndim: int | None = None) -> Frame:
        """The physical frame of the last ``ndim`` (default all) axes."""
        return frame_of(self.scale, self.units, ndim, what=self.name)


def _axes_frame(ndim: int, scale: Sequence[float] | float | None,
                units: Sequence[str] | str | None):
    if scale is None or np.isscalar(scale):
        scale = (1.0 if scale is None else scale,) * ndim
    scale = tuple(float(s) for s in scale)  # type: ignore[union-attr]
    if isinstance(units, str) or units is None:
        units = (normalize_unit(units or "pixel"),) * ndim
    units = tuple(normalize_unit(u) for u in units)
    if len(scale) != ndim or len(units) != ndim:
        raise ValueError(f"scale {scale} / units {units} do not match a {ndim}D array")
    return scale, units


# =========================================================================== reading


def read_volumes(path: str | os.PathLike, dataset: str | None = None) -> list[Volume]:
    """Read every volume in a supported file; raises ``ValueError`` with the reason otherwise.

    ``dataset`` selects one HDF5 dataset or one zarr array inside a group
    (``file.h5:/entry/data`` on the command line does the same).
    """
    path, inner = split_dataset(path)
    dataset = dataset or inner
    if not path.exists():
        raise ValueError(f"{path}: no such file or directory")
    suffix = _suffix(path)
    try:
        if suffix in TIFF_SUFFIXES:
            return read_tiff(path)
        if suffix in MRC_SUFFIXES:
            return [read_mrc(path)]
        if suffix in HDF5_SUFFIXES:
            return read_hdf5(path, dataset)
        if suffix in ZARR_SUFFIXES or is_zarr_store(path):
            return read_zarr(path, dataset)
    except Exception as exc:  # corrupt files surface as library-specific errors
        if isinstance(exc, ValueError) and str(exc).startswith(path.name):
            raise
        raise ValueError(f"{path.name}: cannot be read as {suffix or 'zarr'} ({exc})") from exc
    raise ValueError(
        f"{path.name}: unsupported file type; napari-corrtomo reads "
        f"{', '.join(READ_SUFFIXES)} (zarr as a directory)"
    )


def split_dataset(path: str | os.PathLike) -> tuple[Path, str | None]:
    """``"file.h5:/entry/data"`` -> (Path("file.h5"), "/entry/data"); plain paths pass through."""
    text = str(path)
    if Path(text).exists() or ":" not in text:
        return Path(text), None
    head, _, inner = text.rpartition(":")
    return Path(head), inner or None


def can_read(path: str | os.PathLike) -> bool:
    """True when :func:`read_volumes` would try this path (by its name)."""
    path = split_dataset(path)[0]
    return _suffix(path) in READ_SUFFIXES or is_zarr_store(path)


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for compound in (".ome.zarr", ".ome.tif", ".ome.tiff"):
        if name.endswith(compound):
            return ".ome.zarr" if compound == ".ome.zarr" else ".tif"
    return path.suffix.lower()


#: the zarr attribute that marks a store as napari-corrtomo's (and holds its run record)
RUN_RECORD = "corrtomo_run"
#: the zarr attribute holding the unit of the values (NGFF has none for them)
VALUE_UNIT = "value_unit"


def is_zarr_store(path: Path) -> bool:
    """True when ``path`` is a zarr (v2 or v3) group or array folder."""
    return path.is_dir() and any(
        (path / marker).exists() for marker in (".zgroup", ".zarray", "zarr.json")
    )


def run_record(path: str | os.PathLike) -> dict | None:
    """The record napari-corrtomo keeps in a zarr store it wrote, or None (not ours):
    ``{"complete": True}`` for a store written whole, the run's signature and state for a
    resumable one (:mod:`.resumable`)."""
    attrs = Path(path) / ".zattrs"
    if not attrs.exists():
        return None
    try:
        record = json.loads(attrs.read_text()).get(RUN_RECORD)
    except (OSError, ValueError, AttributeError):
        return None
    return record if isinstance(record, dict) else None


# ---------------------------------------------------------------- TIFF


def read_tiff(path: str | os.PathLike) -> list[Volume]:
    """TIFF/OME-TIFF/ImageJ hyperstack -> one :class:`Volume` per channel."""
    import tifffile

    path = Path(path)
    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        axes = series.axes.upper()
        data = series.asarray()
        info: dict[str, Any] = {}
        if tif.is_ome and tif.ome_metadata:
            spacing = _ome_tiff_spacing(tif.ome_metadata)
            info = _ome_tiff_info(tif.ome_metadata)
            was_3d = "Z" in spacing
        elif tif.is_imagej:
            spacing, info = _imagej_spacing(tif)
            was_3d = info.get("ndim") == 3
        else:
            spacing, was_3d = {}, False
    # Plain multi-page stacks have no named depth axis (tifffile: 'I' or 'Q'): it is z.
    if "Z" not in axes:
        for generic in "IQ":
            if generic in axes:
                axes = axes.replace(generic, "Z", 1)
                break
    # tifffile reads a one-slice volume as one image; the file says it was a volume.
    if "Z" not in axes and was_3d and axes.endswith("YX"):
        data, axes = data[..., None, :, :], axes[:-2] + "ZYX"
    # Reorder to (C?, Z?, Y, X); time and sample axes are not part of this project's data.
    keep = [a for a in "CZYX" if a in axes]
    extra = [a for a in axes if a not in keep]
    for a in extra:
        if data.shape[axes.index(a)] != 1:
            raise ValueError(
                f"{path.name}: axis {a!r} of length {data.shape[axes.index(a)]} is not supported; "
                "save one time point / sample per file"
            )
    data = data.squeeze(axis=tuple(axes.index(a) for a in extra)) if extra else data
    axes = "".join(a for a in axes if a in keep)
    data = np.moveaxis(data, [axes.index(a) for a in keep], range(len(keep)))
    spatial = [a for a in keep if a != "C"]
    scale = tuple(spacing.get(a, (1.0, "pixel"))[0] for a in spatial)
    units = tuple(spacing.get(a, (1.0, "pixel"))[1] for a in spatial)
    layer_type, value_unit = info.get("layer_type", "image"), info.get("value_unit")
    base = path.name.split(".")[0]
    if "C" in keep:
        return [
            Volume(data[c], scale, units, f"{base} [ch{c}]", layer_type, {"source": str(path)},
                   value_unit)
            for c in range(data.shape[0])
        ]
    return [Volume(data, scale, units, base, layer_type, {"source": str(path)}, value_unit)]


def _ome_tiff_spacing(xml: str) -> dict[str, tuple[float, str]]:
    root = ET.fromstring(xml)
    pixels = next((el for el in root.iter() if el.tag.endswith("Pixels")), None)
    if pixels is None:
        return {}
    out = {}
    for ax in "XYZ":
        size = pixels.get(f"PhysicalSize{ax}")
        if size is not None:
            out[ax] = (float(size), normalize_unit(pixels.get(f"PhysicalSize{ax}Unit", "um")))
    return out


#: the namespace of the OME-TIFF map annotation holding what ImageJ's ``Info`` holds
_OME_NAMESPACE = "napari-corrtomo"


def _ome_tiff_info(xml: str) -> dict[str, str]:
    """The layer type and value unit this program wrote into an OME-TIFF (or {})."""
    root = ET.fromstring(xml)
    for el in root.iter():
        if el.tag.endswith("MapAnnotation") and el.get("Namespace") == _OME_NAMESPACE:
            return {m.get("K"): m.text or "" for m in el.iter() if m.tag.endswith("}M")}
    return {}


def _imagej_spacing(tif) -> tuple[dict[str, tuple[float, str]], dict[str, Any]]:
    meta = tif.imagej_metadata or {}
    unit = normalize_unit(meta.get("unit", "pixel"))
    page = tif.pages[0]
    out: dict[str, tuple[float, str]] = {}
    for ax, tag in (("X", "XResolution"), ("Y", "YResolution")):
        res = page.tags.get(tag)
        if res is not None:
            num, den = res.value
            if num:
                out[ax] = (den / num, unit)
    if "spacing" in meta:
        out["Z"] = (float(meta["spacing"]), unit)
    elif "X" in out:
        out["Z"] = out["X"]
    info = {}
    with contextlib.suppress(TypeError, ValueError):
        info = json.loads(meta.get("Info", "{}")).get("corrtomo", {})
    return out, info


# ---------------------------------------------------------------- MRC


def read_mrc(path: str | os.PathLike) -> Volume:
    """MRC/REC volume (electron tomography). Å voxel sizes are reported in nm."""
    import mrcfile

    path = Path(path)
    try:
        mrc = mrcfile.open(path, permissive=False)
    except ValueError as exc:
        # files written before MRC2014 (older IMOD, SerialEM, FEI software) lack the "MAP "
        # ID; read them when the rest of the header describes the data block exactly
        if "Map ID string not found" not in str(exc):
            raise
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mrc = mrcfile.open(path, permissive=True)
        h = mrc.header
        expected = (1024 + int(h.nsymbt) + int(h.nx) * int(h.ny) * int(h.nz)
                    * (mrc.data.dtype.itemsize if mrc.data is not None else 0))
        if mrc.data is None or path.stat().st_size != expected:
            mrc.close()
            raise ValueError("not an MRC file: no MAP ID and a header that does not match the "
                             "file size") from exc
    with mrc:
        data = np.asarray(mrc.data).copy()
        vs = mrc.voxel_size
        size_a = (float(vs.z), float(vs.y), float(vs.x))
    if data.ndim not in (2, 3):
        raise ValueError(f"{path.name}: MRC data has {data.ndim} dimensions, expected 2 or 3")
    size_a = size_a[-data.ndim:]
    if all(s > 0 for s in size_a):
        scale, units = tuple(s / 10.0 for s in size_a), ("nm",) * data.ndim
    else:
        scale, units = (1.0,) * data.ndim, ("pixel",) * data.ndim
    return Volume(data, scale, units, path.stem, "image", {"source": str(path)})


# ---------------------------------------------------------------- HDF5


def hdf5_datasets(path: str | os.PathLike) -> list[str]:
    """Paths of all array datasets with >= 2 dimensions in an HDF5 file."""
    import h5py

    found: list[str] = []
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda name, obj: found.append("/" + name)
            if isinstance(obj, h5py.Dataset) and obj.ndim >= 2
            else None
        )
    return found


def read_hdf5(path: str | os.PathLike, dataset: str | None = None) -> list[Volume]:
    """One volume per chosen dataset (all >= 2D datasets when none is chosen)."""
    import h5py

    path = Path(path)
    names = [dataset] if dataset else hdf5_datasets(path)
    if not names:
        raise ValueError(f"{path.name}: the HDF5 file holds no array with 2 or more dimensions")
    volumes = []
    with h5py.File(path, "r") as f:
        for name in names:
            if name not in f or not isinstance(f[name], h5py.Dataset):
                raise ValueError(
                    f"{path.name}: no dataset {name!r}; available: {', '.join(hdf5_datasets(path))}"
                )
            dset = f[name]
            data = dset[()]
            scale, units = _hdf5_frame(dset, data.ndim)
            volumes.append(
                Volume(data, scale, units, f"{path.stem}{name}", _attr_str(dset, "layer_type", "image"),
                       {"source": str(path), "dataset": name})
            )
    return volumes


def _attr_str(obj, key: str, default: str) -> str:
    val = obj.attrs.get(key, default)
    return val.decode() if isinstance(val, bytes) else str(val)


def _hdf5_frame(dset, ndim: int) -> tuple[tuple[float, ...], tuple[str, ...]]:
    attrs = dset.attrs
    if "element_size_um" in attrs:
        size = tuple(float(v) for v in np.atleast_1d(attrs["element_size_um"]))[-ndim:]
        return _axes_frame(ndim, size, "um")
    if "voxel_size" in attrs:
        size = tuple(float(v) for v in np.atleast_1d(attrs["voxel_size"]))
        size = size * ndim if len(size) == 1 else size[-ndim:]
        return _axes_frame(ndim, size, _attr_str(dset, "units", "pixel"))
    return _axes_frame(ndim, None, None)


# ---------------------------------------------------------------- zarr / OME-Zarr


def read_zarr(path: str | os.PathLike, dataset: str | None = None) -> list[Volume]:
    """Lazy dask arrays from a zarr array or an OME-Zarr image (multiscale as a list)."""
    import zarr

    path = Path(path)
    node = zarr.open(str(path), mode="r")
    if dataset:
        node = node[dataset.strip("/")]
    if isinstance(node, zarr.Array):
        attrs = dict(node.attrs)
        arr = as_dask(node)
        scale, units = _axes_frame(arr.ndim, attrs.get("scale"), attrs.get("units"))
        return [Volume(arr, scale, units, path.name.split(".")[0],
                       attrs.get("layer_type", "image"), {"source": str(path)},
                       attrs.get(VALUE_UNIT))]
    attrs = dict(node.attrs)
    ome = attrs.get("ome", attrs)  # NGFF 0.5 nests under "ome"
    if "multiscales" not in ome:
        arrays = [k for k, v in node.arrays()]
        raise ValueError(
            f"{path.name}: a zarr group without OME-Zarr 'multiscales' metadata; "
            f"choose one of its arrays: {', '.join(arrays) or '(none)'}"
        )
    ms = ome["multiscales"][0]
    axes = ms.get("axes", [])
    levels = [as_dask(node[d["path"]]) for d in ms["datasets"]]
    scale = [1.0] * levels[0].ndim
    for tr in ms["datasets"][0].get("coordinateTransformations", []):
        if tr.get("type") == "scale":
            scale = [float(s) for s in tr["scale"]]
    ax_types = [a.get("type", "space") if isinstance(a, dict) else "space" for a in axes]
    ax_units = [a.get("unit", "pixel") if isinstance(a, dict) else "pixel" for a in axes]
    layer_type = "labels" if "image-label" in ome else "image"
    value_unit = attrs.get(VALUE_UNIT)
    name = ms.get("name") or path.name.split(".")[0]
    spatial = [i for i, t in enumerate(ax_types) if t == "space"] or list(range(len(scale)))
    frame = _axes_frame(len(spatial), [scale[i] for i in spatial], [ax_units[i] for i in spatial])
    chan = [i for i, t in enumerate(ax_types) if t == "channel"]
    if chan:
        c = chan[0]
        return [
            Volume([lvl.take(k, axis=c) for lvl in levels], *frame, f"{name} [ch{k}]", layer_type,
                   {"source": str(path)}, value_unit)
            for k in range(levels[0].shape[c])
        ]
    data: Any = levels if len(levels) > 1 else levels[0]
    return [Volume(data, *frame, name, layer_type, {"source": str(path)}, value_unit)]


# =========================================================================== writing


def jsonable(value: Any) -> Any:
    """What strict JSON can hold of ``value``: dict keys become strings, arrays (up to 4096
    elements) and tuples lists, NumPy scalars Python numbers, NaN/inf ``None``; anything
    else (objects, big arrays) is dropped, so metadata never fails a save."""
    if isinstance(value, dict):
        out = {str(k): jsonable(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not _DROP}
    if isinstance(value, (list, tuple)):
        return [v for v in map(jsonable, value) if v is not _DROP]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist()) if value.size <= 4096 else _DROP
    if isinstance(value, (np.generic, float)) and not isinstance(value, (np.str_, np.bytes_)):
        value = value.item() if isinstance(value, np.generic) else value
        return None if isinstance(value, float) and not np.isfinite(value) else value
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return _DROP


_DROP = object()


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling path; on success rename it onto ``target``.

    On any error the temporary is removed and an existing ``target`` is untouched.
    Works for files and directories (zarr stores).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()
    try:
        yield tmp
        if target.is_dir() and not target.is_symlink():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            target.rename(old)
            tmp.rename(target)
            shutil.rmtree(old)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def write_tiff(
    path: str | os.PathLike,
    data: Any,
    scale: Sequence[float],
    units: Sequence[str] | str,
    layer_type: str = "image",
    value_unit: str | None = None,
) -> Path:
    """TIFF with voxel size and unit: ImageJ-compatible when the data type allows, else
    OME-TIFF (float64, int32/uint32, negative integers), so no value is ever changed. Both
    keep the layer type and ``value_unit`` (the unit of the values, if they have one)."""
    import tifffile

    original = np.asarray(data)
    if original.ndim not in (2, 3):
        raise ValueError(f"TIFF export takes 2D or 3D arrays, got {original.ndim}D")
    scale, units = _axes_frame(original.ndim, scale, units)
    path = Path(path)
    data = _imagej_dtype(original)
    info = {"layer_type": layer_type, **({"value_unit": value_unit} if value_unit else {})}
    if data is None or len(set(units)) != 1:  # ImageJ holds one unit and few data types
        return _write_ome_tiff(path, _ome_dtype(original, path), scale, units, info)
    unit = {"um": "micron"}.get(units[0], units[0])
    meta = {
        "unit": unit,
        "axes": "TZCYXS",
        "Info": json.dumps({"corrtomo": {**info, "ndim": data.ndim}}),
    }
    if data.ndim == 3:
        meta["spacing"] = scale[0]
    with atomic_path(path) as tmp:
        tifffile.imwrite(
            # All six ImageJ axes spelled out: tifffile would read a trailing length-1 axis
            # of a bare (z, y, 1) array as samples and drop it.
            tmp, data.reshape(1, len(data) if data.ndim == 3 else 1, 1, *data.shape[-2:], 1),
            imagej=True, photometric="minisblack",
            resolution=(1.0 / scale[-1], 1.0 / scale[-2]), metadata=meta,
        )
    return path


def _imagej_dtype(data: np.ndarray) -> np.ndarray | None:
    """``data`` in a type ImageJ stores exactly (uint8/uint16/float32), or None if none fits."""
    if data.dtype in (np.uint8, np.uint16, np.float32):
        return data
    if data.dtype.kind == "f":
        return data.astype(np.float32) if data.dtype.itemsize <= 4 else None
    if data.dtype.kind in "iub":
        lo, hi = (int(data.min()), int(data.max())) if data.size else (0, 0)
        if lo >= 0 and hi <= 255:
            return data.astype(np.uint8)
        if lo >= 0 and hi <= 65535:
            return data.astype(np.uint16)
    return None


def _ome_dtype(data: np.ndarray, path: Path) -> np.ndarray:
    """``data`` in a type OME-TIFF holds (64-bit integers narrowed to 32 bit when their
    values fit); raises ``ValueError`` when none holds them exactly."""
    if data.dtype.kind not in "iu" or data.dtype.itemsize < 8:
        return data
    lo, hi = (int(data.min()), int(data.max())) if data.size else (0, 0)
    for dtype in (np.uint32, np.int32):
        info = np.iinfo(dtype)
        if info.min <= lo and hi <= info.max:
            return data.astype(dtype)
    raise ValueError(f"{path.name}: values {lo}..{hi} do not fit the 32-bit integers TIFF "
                     "holds; write it as .ome.zarr")


def _write_ome_tiff(path: Path, data: np.ndarray, scale: tuple[float, ...],
                    units: tuple[str, ...], info: dict[str, str]) -> Path:
    """OME-TIFF for types ImageJ cannot hold exactly (float64, int32/uint32 labels);
    ``info`` (layer type, value unit) goes into a map annotation."""
    import tifffile

    axes = "ZYX"[-data.ndim:]
    meta: dict[str, Any] = {"axes": axes,
                            "MapAnnotation": {"Namespace": _OME_NAMESPACE, **info}}
    for ax, s, u in zip(axes, scale, units):
        meta[f"PhysicalSize{ax}"] = s
        meta[f"PhysicalSize{ax}Unit"] = {"um": "µm", "angstrom": "Å"}.get(u, u)
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, data, ome=True, photometric="minisblack", metadata=meta)
    return path


def pyramid(arr: Any, layer_type: str, min_size: int) -> list:
    """Lazy 2x levels below ``arr`` while the smallest axis stays >= ``min_size``.

    Images are averaged (dtype kept); labels are subsampled, so they stay labels.
    """
    import dask.array as da

    levels = []
    current = arr if isinstance(arr, da.Array) else da.asarray(arr)
    while min(current.shape) // 2 >= min_size:
        if layer_type == "labels":
            current = current[(slice(None, None, 2),) * current.ndim]
        else:
            current = da.coarsen(np.mean, current, {i: 2 for i in range(current.ndim)},
                                 trim_excess=True).astype(current.dtype)
        levels.append(current)
    return levels


#: NGFF 0.4 spells axis units as UDUNITS-2 names (reading takes these and the short ones)
_NGFF_UNITS = {"m": "meter", "mm": "millimeter", "um": "micrometer", "nm": "nanometer",
               "angstrom": "angstrom", "pm": "picometer"}


def multiscales(name: str, scale: Sequence[float], units: Sequence[str], n_levels: int) -> dict:
    """NGFF 0.4 ``multiscales`` entry for ``n_levels`` 2x levels of a (z, y, x) volume;
    axes of unknown size (``pixel``) carry no unit."""
    axes = "zyx"[-len(scale):]
    return {
        "version": "0.4",
        "name": name,
        "axes": [{"name": a, "type": "space",
                  **({"unit": _NGFF_UNITS[u]} if u in _NGFF_UNITS else {})}
                 for a, u in zip(axes, units)],
        "datasets": [{"path": str(i), "coordinateTransformations": [
            {"type": "scale", "scale": [float(s) * 2**i for s in scale]}]} for i in range(n_levels)],
    }


def write_ome_zarr(
    path: str | os.PathLike,
    data: Any,
    scale: Sequence[float],
    units: Sequence[str] | str,
    layer_type: str = "image",
    name: str | None = None,
    chunks: int | Sequence[int] = 128,
    min_level_size: int = 64,
    progress: ProgressCallback | None = None,
    value_unit: str | None = None,
) -> Path:
    """OME-Zarr (NGFF 0.4) with a 2x multiscale pyramid, written block by block.

    Images are averaged, labels subsampled (labels must stay labels). Dask input is
    never loaded whole. ``progress(done, total)`` counts the chunks written; raising
    :class:`~.progress.Cancelled` from it stops between two chunks and leaves an
    existing ``path`` untouched (the store is written aside and renamed at the end).
    """
    import dask.array as da
    import zarr

    arr = data if isinstance(data, da.Array) else da.asarray(data)
    scale, units = _axes_frame(arr.ndim, scale, units)
    chunk_t = (chunks,) * arr.ndim if np.isscalar(chunks) else tuple(chunks)
    levels = [arr, *pyramid(arr, layer_type, min_level_size)]
    ms = multiscales(name or Path(path).name.split(".")[0], scale, units, len(levels))
    path = Path(path)
    with atomic_path(path) as tmp:
        group = zarr.open_group(str(tmp), mode="w", zarr_format=2)
        # marks the store as this program's (written whole: no run to resume)
        attrs: dict[str, Any] = {"multiscales": [ms], RUN_RECORD: {"complete": True}}
        if layer_type == "labels":
            attrs["image-label"] = {"version": "0.4"}
        if value_unit:
            attrs[VALUE_UNIT] = value_unit
        group.attrs.update(attrs)
        stores = []
        for i, lvl in enumerate(levels):
            c = tuple(min(ci, s) for ci, s in zip(chunk_t, lvl.shape))
            lvl = lvl.rechunk(c)
            target = group.create_array(str(i), shape=lvl.shape, dtype=lvl.dtype, chunks=c,
                                        chunk_key_encoding={"name": "v2", "separator": "/"})
            stores.append(da.store(lvl, target, lock=False, compute=False))
        # one chunk at a time in this thread: a cancel leaves no pool thread still writing
        # into the store that is being removed
        compute_all(stores, progress, scheduler="synchronous")
    return path


def write_table(path: str | os.PathLike, table: Any) -> Path:
    """Write a table (pandas DataFrame or dict of columns) as CSV, atomically."""
    import pandas as pd

    df = table if isinstance(table, pd.DataFrame) else pd.DataFrame(table)
    path = Path(path)
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)
    return path


def check_volume_path(path: str | os.PathLike) -> None:
    """Raise ``ValueError`` unless :func:`write_volume` can write ``path`` (.tif or
    .ome.zarr): checked before a run, not after its work."""
    if _suffix(Path(path)) not in TIFF_SUFFIXES + ZARR_SUFFIXES:
        raise ValueError(f"{Path(path).name}: write volumes as .tif or .ome.zarr")


def write_volume(path: str | os.PathLike, volume: Volume, overwrite: bool = True) -> Path:
    """Write a :class:`Volume` as TIFF or OME-Zarr, chosen by the file name; an existing
    file or non-empty store is replaced only with ``overwrite``."""
    check_volume_path(path)
    p = Path(path)
    if not overwrite and (p.is_file() or (p.is_dir() and any(p.iterdir()))):
        raise SettingError(f"{p} exists; give $overwrite to replace it, or choose another "
                           "output path", overwrite="overwrite=True")
    if _suffix(Path(path)) in TIFF_SUFFIXES:
        return write_tiff(path, np.asarray(volume.array), volume.scale, volume.units,
                          volume.layer_type, volume.value_unit)
    return write_ome_zarr(path, volume.array, volume.scale, volume.units, volume.layer_type,
                          volume.name, value_unit=volume.value_unit)
