"""Classifier files (``.corrclf.npz``) are untrusted input: checked whole before use.

Classifier files are what labs share, and the forest is evaluated by compiled code
that trusts its node indices; a damaged or crafted file must be refused with a
message, never crash the process (napari with it), hang, or quietly segment
differently. :func:`read_classifier_file` therefore checks, before anything is built
from it:

* the container: a NumPy ``.npz`` without pickles, every array numeric;
* the metadata: every key present with the right type and a sane range;
* the content digest (BLAKE2 over the metadata and every array, written by
  :func:`write_classifier_file`), so an accidental change of any byte is caught;
* the forest itself (a crafted file can carry a matching digest): each tree a
  contiguous block of nodes whose children lie after their parent inside the same
  block (so every walk ends at a leaf), leaves pointing to themselves, the stored
  depth equal to the real one, split features within the feature count, finite
  thresholds (``+inf`` at leaves) and class fractions in [0, 1];
* the training intensities, when the file has them (older files do not): one finite
  mean and non-negative standard deviation per class and channel.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_path

FILE_FORMAT = "napari-corrtomo/pixel-classifier"
FILE_VERSION = 2
#: version 1 files (no digest) are still read, with every structural check
READABLE_VERSIONS = (1, 2)
FILE_SUFFIX = ".corrclf.npz"
#: the first bytes of a zip archive (an .npz)
ZIP_MAGIC = b"PK\x03\x04"
FOREST_KEYS = ("feature", "threshold", "left", "right", "value", "roots", "depth")
#: the optional ``(K, C, 2)`` intensities of the training classes (classifier.class_intensities)
INTENSITIES_KEY = "class_intensities"
#: bounds that keep a crafted file from asking for absurd work
MAX_SIGMA = 256.0
MAX_NODES = 1 << 27
MAX_DEPTH = 1000


class DamagedFile(ValueError):
    """A classifier file that is not one this program wrote intact."""


def _damaged(path: Path, why: str) -> DamagedFile:
    return DamagedFile(f"{path.name}: this classifier file is damaged or not a napari-corrtomo "
                       f"classifier ({why}); train the classifier again or ask for a fresh copy "
                       "of the file")


def digest(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> str:
    """BLAKE2 of the metadata (without its digest) and of every array's dtype, shape, bytes."""
    h = hashlib.blake2b(digest_size=20)
    body = {k: v for k, v in meta.items() if k != "digest"}
    h.update(json.dumps(body, sort_keys=True).encode())
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def write_classifier_file(path: str | os.PathLike, meta: dict[str, Any],
                          arrays: dict[str, np.ndarray]) -> Path:
    """Write ``meta`` (JSON-able) and ``arrays`` as a versioned ``.npz``, atomically; a
    ``path`` not ending in ``.npz`` gets :data:`FILE_SUFFIX` (the file dialogs list
    ``*.npz``). Returns the path written."""
    meta = {**meta, "format": FILE_FORMAT, "version": FILE_VERSION}
    meta["digest"] = digest(meta, arrays)
    path = Path(path)
    if not path.name.endswith(".npz"):
        path = path.with_name(path.name + FILE_SUFFIX)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, meta=np.array(json.dumps(meta)), **arrays)
    return path


def read_classifier_file(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The checked metadata and arrays of a classifier file.

    Raises ``ValueError`` (:class:`DamagedFile` for damaged content) with a message
    for the user; nothing else escapes.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such classifier file")
    _check_archive(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except ValueError as exc:  # NumPy's words for pickled (object) arrays
        raise _damaged(path, "it holds Python objects, which are never loaded") from exc
    except (OSError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile, KeyError) as exc:
        raise _damaged(path, f"not a readable .npz archive: {type(exc).__name__}") from exc
    except Exception as exc:  # zlib/format errors deep in the archive reader
        raise _damaged(path, f"unreadable archive: {type(exc).__name__}") from exc
    if not all(isinstance(a, np.ndarray) for a in arrays.values()):
        raise _damaged(path, "the archive holds entries that are not arrays")
    meta_arr = arrays.pop("meta", None)
    if meta_arr is None or meta_arr.dtype.kind != "U" or meta_arr.ndim != 0:
        raise _damaged(path, "no metadata")
    try:
        meta = json.loads(str(meta_arr))
    except ValueError as exc:
        raise _damaged(path, "unreadable metadata") from exc
    if not isinstance(meta, dict) or meta.get("format") != FILE_FORMAT:
        raise _damaged(path, "not a classifier's metadata")
    version = meta.get("version")
    if version not in READABLE_VERSIONS:
        newer = isinstance(version, int) and version > FILE_VERSION
        raise ValueError(
            f"{path.name}: classifier file format version {version!r} "
            f"{'is newer than' if newer else 'differs from'} the versions this napari-corrtomo "
            f"reads {READABLE_VERSIONS}; "
            + ("upgrade napari-corrtomo" if newer else "retrain the classifier and save it again"))
    if version >= 2 and meta.get("digest") != digest(meta, arrays):
        raise _damaged(path, "its content does not match its checksum")
    try:
        _check_meta(meta)
        _check_arrays(arrays, meta)
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise _damaged(path, str(exc) if isinstance(exc, ValueError) else
                       f"bad metadata: {type(exc).__name__} {exc}") from exc
    return meta, arrays


def _check_archive(path: Path) -> None:
    """Refuse a file that is not a zip archive (a TIFF, a .npy) with what a classifier file
    is: NumPy would read it as a pickle and refuse that, a misleading reason."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head and head != ZIP_MAGIC:
        raise DamagedFile(f"{path.name} is not a napari-corrtomo classifier; give a "
                          f"{FILE_SUFFIX} file saved by the Classify widget ('Save classifier') "
                          "or PixelClassifier.save")


def _int(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} {value!r} is not a whole number in [{low}, {high}]")
    return value


def _check_meta(meta: dict[str, Any]) -> None:
    nd = _int(meta["spatial_ndim"], "spatial_ndim", 2, 3)
    n_ch = _int(meta["n_channels"], "n_channels", 1, 64)
    _int(meta["n_trees"], "n_trees", 1, 100_000)
    _int(meta["n_features"], "n_features", 1, 1_000_000)
    _int(meta["n_samples"], "n_samples", 0, 1 << 62)
    _int(meta["seed"], "seed", -(1 << 63), 1 << 64)
    spacing = meta["spacing"]
    if (not isinstance(spacing, list) or len(spacing) != nd
            or not all(isinstance(s, (int, float)) and 0 < s < float("inf") for s in spacing)):
        raise ValueError(f"spacing {spacing!r} is not {nd} positive numbers")
    if not isinstance(meta["unit"], str):
        raise ValueError("unit is not text")
    names = meta["channel_names"]
    if not isinstance(names, list) or len(names) != n_ch or not all(
            isinstance(n, str) for n in names):
        raise ValueError(f"channel_names is not {n_ch} names")
    classes = meta["classes"]
    if meta["labels_dtype"] not in ("uint8", "uint16", "uint32", "uint64", "int8", "int16",
                                    "int32", "int64"):
        raise ValueError(f"labels dtype {meta['labels_dtype']!r} is not an integer type")
    info = np.iinfo(meta["labels_dtype"])
    if (not isinstance(classes, list) or len(classes) < 2 or len(set(classes)) != len(classes)
            or not all(isinstance(c, int) and not isinstance(c, bool)
                       and max(info.min, 1) <= c <= info.max for c in classes)):
        raise ValueError(f"classes {classes!r} are not distinct label values >= 1")
    feats = meta["features"]
    sigmas = [f[1] for f in feats["filters"]] + list((feats.get("tailored") or {}).get(
        "sigmas", []))
    if not all(isinstance(s, (int, float)) and 0 < s <= MAX_SIGMA for s in sigmas):
        raise ValueError(f"filter scales {sigmas} are outside (0, {MAX_SIGMA:g}]")
    truncate = feats.get("truncate", 4.0)
    if not isinstance(truncate, (int, float)) or not 0 < truncate <= 8:
        raise ValueError(f"filter truncation {truncate!r} is outside (0, 8]")


def _check_arrays(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    missing = [k for k in (*FOREST_KEYS, "importances") if k not in arrays]
    if missing:
        raise ValueError(f"missing arrays {missing}")
    for name, a in arrays.items():
        if a.dtype.kind not in "iuf":
            raise ValueError(f"array {name!r} has dtype {a.dtype}, not numbers")
    n_features, n_classes = meta["n_features"], len(meta["classes"])
    imp = arrays["importances"]
    if imp.shape != (n_features,) or not np.all(np.isfinite(imp)):
        raise ValueError(f"importances: shape {imp.shape}, expected ({n_features},) finite")
    check_forest(*(arrays[k] for k in FOREST_KEYS), n_features=n_features,
                 n_classes=n_classes, n_trees=meta["n_trees"])
    if INTENSITIES_KEY in arrays:
        _check_intensities(arrays[INTENSITIES_KEY], n_classes, meta["n_channels"])


def _check_intensities(a: np.ndarray, n_classes: int, n_channels: int) -> None:
    expected = (n_classes, n_channels, 2)
    if a.shape != expected or a.dtype.kind != "f":
        raise ValueError(f"{INTENSITIES_KEY}: {a.dtype} of shape {a.shape}, expected floats "
                         f"of shape {expected}")
    if not np.all(np.isfinite(a)) or np.any(a[..., 1] < 0):
        raise ValueError(f"{INTENSITIES_KEY}: not finite means and standard deviations >= 0")


def check_forest(feature: np.ndarray, threshold: np.ndarray, left: np.ndarray,
                 right: np.ndarray, value: np.ndarray, roots: np.ndarray, depth: np.ndarray,
                 *, n_features: int, n_classes: int, n_trees: int) -> None:
    """Raise ``ValueError`` unless the flat forest is one the prediction kernels may walk.

    See the module docstring for the rules; they guarantee that every walk of
    ``depth[t]`` steps from ``roots[t]`` stays inside tree ``t`` and ends on a leaf.
    """
    n = feature.shape[0] if feature.ndim == 1 else -1
    if not 0 < n <= MAX_NODES:
        raise ValueError(f"the forest has {n} nodes (at most {MAX_NODES})")
    for name, a in (("threshold", threshold), ("left", left), ("right", right)):
        if a.shape != (n,):
            raise ValueError(f"{name} has shape {a.shape}, expected ({n},)")
    if value.shape != (n, n_classes):
        raise ValueError(f"value has shape {value.shape}, expected ({n}, {n_classes})")
    if roots.shape != (n_trees,) or depth.shape != (n_trees,):
        raise ValueError(f"roots/depth have shapes {roots.shape}/{depth.shape}, expected "
                         f"({n_trees},)")
    for name, a in (("feature", feature), ("left", left), ("right", right), ("roots", roots),
                    ("depth", depth)):
        if a.dtype.kind not in "iu":
            raise ValueError(f"{name} holds {a.dtype} values, not node indices")
    feature, left, right, roots, depth = (a.astype(np.int64) for a in
                                          (feature, left, right, roots, depth))
    if roots[0] != 0 or np.any(np.diff(roots) <= 0) or roots[-1] >= n:
        raise ValueError("tree roots are not increasing node indices starting at 0")
    ends = np.append(roots[1:], n)
    tree = np.repeat(np.arange(n_trees), ends - roots)
    idx = np.arange(n)
    leaf = (left == idx) & (right == idx)
    inner = ~leaf
    lo, hi = roots[tree], ends[tree]
    for name, child in (("left", left), ("right", right)):
        if np.any(inner & ((child <= idx) | (child >= hi))) or np.any(child < lo):
            raise ValueError(f"{name} child indices leave their tree or point backwards")
    if np.any(inner & ((feature < 0) | (feature >= n_features))):
        raise ValueError(f"split features outside [0, {n_features})")
    thr = threshold.astype(np.float64)
    if np.any(np.isnan(thr)) or np.any(inner & ~np.isfinite(thr)):
        raise ValueError("split thresholds are not finite numbers")
    val = value.astype(np.float64)
    if not np.all((val >= 0) & (val <= 1)):
        raise ValueError("class fractions outside [0, 1]")
    # real depth of each tree: level by level from the roots (children lie after their
    # parent, so this ends; the cap keeps a crafted chain from taking long)
    real = np.zeros(n_trees, np.int64)
    frontier = roots[inner[roots]]
    for level in range(1, MAX_DEPTH + 1):
        if frontier.size == 0:
            break
        children = np.unique(np.concatenate([left[frontier], right[frontier]]))
        real[tree[children]] = level
        frontier = children[inner[children]]
    else:
        raise ValueError(f"trees deeper than {MAX_DEPTH} levels")
    if np.any(depth != real):
        raise ValueError(f"stored tree depths {depth[:5].tolist()}... differ from the trees' "
                         f"real depths {real[:5].tolist()}...")
