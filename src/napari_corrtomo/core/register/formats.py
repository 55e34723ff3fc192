"""Transforms as JSON and ITK ``.tfm``; landmarks as BigWarp-compatible CSV.

JSON (napari-corrtomo's own format) stores the 4x4 moving -> fixed matrix on
(z, y, x) points with its unit and model; nothing is implicit.

ITK ``.tfm`` follows ITK's conventions, which differ from ours on three counts,
each converted explicitly here:

1. **direction** -- an ITK registration transform maps *fixed* physical points to
   *moving* ones (it is what resampling needs), so the file holds the inverse of
   ``Transform.matrix``;
2. **axis order** -- ITK points are (x, y, z); ours are (z, y, x);
3. **world frame** -- ITK physical space is LPS. By default our world (x, y, z)
   *is* ITK's LPS space (SimpleITK images built from our arrays with
   ``spacing = scale[::-1]``, ``origin = translate[::-1]`` and identity direction
   sit exactly where napari shows them). ``world="RAS"`` declares that world
   coordinates are RAS (e.g. taken from NIfTI tools or 3D Slicer's GUI); x and y
   are then negated on the way to and from the file.

BigWarp landmark CSV: one row per pair, no header, every field quoted:
``"name","true|false",moving x,y,z,target(fixed) x,y,z`` in physical units, x/y/z
order (BigWarp's ``LandmarkTableModel``). The file carries no unit; the caller
states it.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_path, jsonable
from ..units import normalize_unit
from .transform import Transform, check_matrix, xyz_to_zyx, zyx_to_xyz

JSON_FORMAT = "napari-corrtomo transform"
JSON_VERSION = 1
DIRECTION = "moving world -> fixed world"
#: LPS <-> RAS: negate x and y (its own inverse), on (x, y, z) homogeneous points.
LPS_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
WORLDS = ("LPS", "RAS")


def _world(world: str) -> str:
    w = str(world).upper()
    if w not in WORLDS:
        raise ValueError(f"world must be 'LPS' (ITK's own, the default) or 'RAS', got {world!r}")
    return w


def infer_model(matrix: np.ndarray, tol: float = 1e-6) -> str:
    """The narrowest model a 4x4 matrix belongs to: rigid, similarity or affine."""
    a = np.asarray(matrix, float)[:3, :3]
    s = float(np.cbrt(np.linalg.det(a)))
    if s > 0 and np.allclose(a.T @ a, s * s * np.eye(3), atol=tol * s * s):
        return "rigid" if abs(s - 1.0) <= tol else "similarity"
    return "affine"


# =========================================================================== JSON


def transform_to_dict(transform: Transform) -> dict[str, Any]:
    """The JSON-ready description of a transform."""
    out = {
        "format": JSON_FORMAT,
        "version": JSON_VERSION,
        "direction": DIRECTION,
        "axes": ["z", "y", "x"],
        "unit": transform.unit,
        "model": transform.model,
        "matrix": transform.matrix.tolist(),
    }
    if transform.rms_fre is not None:
        out["rms_fre"] = transform.rms_fre
    if transform.rms_loo_tre is not None:
        out["rms_loo_tre"] = transform.rms_loo_tre
    if transform.metadata:
        out["metadata"] = jsonable(transform.metadata)
    return out


def transform_from_dict(data: dict[str, Any]) -> Transform:
    """Inverse of :func:`transform_to_dict`; also accepts (x, y, z) axes and the
    fixed -> moving direction when a file states them."""
    if not isinstance(data, dict) or "matrix" not in data:
        raise ValueError("not a transform: expected a JSON object with a 4x4 'matrix'")
    if data.get("format", JSON_FORMAT) != JSON_FORMAT:
        raise ValueError(f"unknown transform format {data.get('format')!r}")
    if int(data.get("version", JSON_VERSION)) > JSON_VERSION:
        raise ValueError(f"transform file version {data['version']} is newer than this "
                         f"napari-corrtomo reads ({JSON_VERSION}); update napari-corrtomo")
    if "unit" not in data:
        raise ValueError("the transform has no 'unit'; add e.g. \"unit\": \"um\"")
    matrix = check_matrix(np.asarray(data["matrix"], float), "matrix")
    axes = [str(a).lower() for a in data.get("axes", ["z", "y", "x"])]
    if axes == ["x", "y", "z"]:
        matrix = xyz_to_zyx(matrix)
    elif axes != ["z", "y", "x"]:
        raise ValueError(f"axes must be ['z', 'y', 'x'] or ['x', 'y', 'z'], got {axes}")
    direction = str(data.get("direction", DIRECTION))
    if direction == "fixed world -> moving world":
        matrix = np.linalg.inv(matrix)
    elif direction != DIRECTION:
        raise ValueError(f"direction must be {DIRECTION!r} or 'fixed world -> moving world', "
                         f"got {direction!r}")
    model = data.get("model") or infer_model(matrix)
    return Transform(matrix, model, normalize_unit(data["unit"]),
                     rms_fre=data.get("rms_fre"), metadata=dict(data.get("metadata", {})))


# =========================================================================== ITK


def to_itk_matrix(transform: Transform, world: str = "LPS") -> np.ndarray:
    """4x4 ITK matrix (fixed -> moving, (x, y, z), LPS) of a transform."""
    m = zyx_to_xyz(np.linalg.inv(transform.matrix))
    if _world(world) == "RAS":
        m = LPS_RAS @ m @ LPS_RAS
    return m


def from_itk_matrix(matrix_itk: np.ndarray, unit: str, world: str = "LPS",
                    model: str | None = None) -> Transform:
    """Inverse of :func:`to_itk_matrix`."""
    m = np.asarray(matrix_itk, float)
    if _world(world) == "RAS":
        m = LPS_RAS @ m @ LPS_RAS
    matrix = np.linalg.inv(xyz_to_zyx(check_matrix(m, "ITK transform")))
    return Transform(matrix, model or infer_model(matrix), unit)


def write_tfm(path: str | os.PathLike, transform: Transform, world: str = "LPS") -> Path:
    """Write an ITK text transform (``AffineTransform_double_3_3``), atomically."""
    m = to_itk_matrix(transform, world)
    params = " ".join(repr(float(v)) for v in [*m[:3, :3].ravel(), *m[:3, 3]])
    text = (
        "#Insight Transform File V1.0\n"
        f"# napari-corrtomo: {transform.model} transform, unit {transform.unit}; ITK convention:"
        f" maps fixed -> moving physical points, (x, y, z), {_world(world)} world written as LPS\n"
        "#Transform 0\n"
        "Transform: AffineTransform_double_3_3\n"
        f"Parameters: {params}\n"
        "FixedParameters: 0 0 0\n"
    )
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path


def read_tfm(path: str | os.PathLike, unit: str, world: str = "LPS") -> Transform:
    """Read a linear ITK transform file (.tfm/.txt/.h5/.mat) with SimpleITK.

    Composite transforms of linear parts are collapsed into one matrix; anything
    non-linear (B-spline, displacement field) is refused.
    """
    import SimpleITK as sitk

    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: no such file")
    try:
        tx = sitk.ReadTransform(str(path))
    except RuntimeError as exc:
        raise ValueError(f"{path.name}: not a readable ITK transform ({str(exc).strip()[-160:]})") \
            from None
    if tx.GetDimension() != 3:
        raise ValueError(f"{path.name}: a {tx.GetDimension()}D transform; 3D is needed")
    # Probe the transform: an affine map is fixed by 4 points and checked on more.
    probe = np.vstack([np.zeros(3), np.eye(3) * 100.0])
    out = np.array([tx.TransformPoint(tuple(float(v) for v in p)) for p in probe])
    m = np.eye(4)
    m[:3, 3] = out[0]
    m[:3, :3] = ((out[1:] - out[0]) / 100.0).T
    rng = np.random.default_rng(0)
    check = rng.uniform(-500, 500, (8, 3))
    got = np.array([tx.TransformPoint(tuple(float(v) for v in p)) for p in check])
    want = check @ m[:3, :3].T + m[:3, 3]
    if not np.allclose(got, want, rtol=1e-6, atol=1e-6 * (1 + np.abs(want).max())):
        raise ValueError(
            f"{path.name}: {tx.GetName()} is not a linear transform; napari-corrtomo reads "
            "rigid, similarity and affine transforms only"
        )
    return from_itk_matrix(m, unit, world)


# =========================================================================== files


#: what :func:`save_transform` writes: napari-corrtomo JSON, ITK text transform
SAVE_SUFFIXES = (".json", ".tfm")


def check_transform_path(path: str | os.PathLike) -> Path:
    """A path :func:`save_transform` writes, checked before any work: an ITK transform in a
    ``.txt`` (or any other name) would be a file nobody expects."""
    path = Path(path)
    if path.suffix.lower() not in SAVE_SUFFIXES:
        raise ValueError(f"{path.name}: save transforms as .json or .tfm")
    return path


def save_transform(path: str | os.PathLike, transform: Transform, world: str = "LPS") -> Path:
    """Write a transform as ``.json`` (napari-corrtomo) or ``.tfm`` (ITK)."""
    path = check_transform_path(path)
    if path.suffix.lower() == ".json":
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(transform_to_dict(transform), indent=2) + "\n")
        return path
    return write_tfm(path, transform, world)


def load_transform(path: str | os.PathLike, unit: str | None = None,
                   world: str = "LPS") -> Transform:
    """Read a transform written by :func:`save_transform` (or any linear ITK transform).

    ``unit`` is required for ITK files (they carry none); for JSON it converts the
    transform to that unit when given.
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            data = json.loads(path.read_text())
        except UnicodeDecodeError:
            raise ValueError(f"{path.name} is not a transform file (not text); give the .json "
                             "or .tfm that a registration wrote") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path.name}: not valid JSON ({exc})") from None
        if isinstance(data, dict) and data.get("format") == "napari-corrtomo/geometry":
            raise ValueError(f"{path.name} is a reconstruction geometry, not a transform: give "
                             "the .json or .tfm that a registration wrote (a 4x4 'matrix')")
        try:
            t = transform_from_dict(data)
        except ValueError as exc:
            raise ValueError(f"{path.name}: {exc}") from None
        return t if unit is None else t.in_unit(unit)
    if suffix in (".tfm", ".txt", ".h5", ".hdf5", ".mat"):
        if unit is None:
            raise ValueError(f"{path.name}: ITK transform files carry no unit; pass the unit of "
                             "the physical coordinates (e.g. unit='um')")
        return read_tfm(path, normalize_unit(unit), world)
    raise ValueError(f"{path.name}: read transforms from .json or ITK .tfm/.txt/.h5/.mat")


# =========================================================================== landmarks


@dataclass
class Landmarks:
    """Paired landmarks: ``fixed`` and ``moving`` (N, 3) as (z, y, x) in ``unit``."""

    fixed: np.ndarray
    moving: np.ndarray
    unit: str = "pixel"
    names: list[str] = field(default_factory=list)
    active: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.fixed = np.asarray(self.fixed, float).reshape(-1, 3)
        self.moving = np.asarray(self.moving, float).reshape(-1, 3)
        if len(self.fixed) != len(self.moving):
            raise ValueError(f"unpaired landmarks: {len(self.fixed)} fixed, "
                             f"{len(self.moving)} moving")
        n = len(self.fixed)
        self.names = list(self.names) or [f"Pt-{i}" for i in range(n)]
        if len(self.names) != n:
            raise ValueError(f"{len(self.names)} names for {n} landmark pairs")
        self.active = np.ones(n, bool) if self.active is None else \
            np.asarray(self.active, bool).reshape(-1)
        if self.active.shape != (n,):
            raise ValueError(f"{self.active.size} active flags for {n} landmark pairs")
        self.unit = normalize_unit(self.unit)

    def __len__(self) -> int:
        return len(self.fixed)


def _number(text: str, row: int, col: int, path: Path) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{path.name}: row {row + 1}, column {col + 1}: {text!r} is not a "
                         "number") from None


def save_landmarks_csv(path: str | os.PathLike, landmarks: Landmarks) -> Path:
    """Write landmarks as a BigWarp landmark CSV (moving x, y, z then fixed x, y, z)."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh, quoting=csv.QUOTE_ALL, lineterminator="\n")
        for name, act, m, f in zip(landmarks.names, landmarks.active, landmarks.moving,
                                   landmarks.fixed, strict=True):
            writer.writerow([name, "true" if act else "false",
                             *(repr(float(v)) for v in m[::-1]),
                             *(repr(float(v)) for v in f[::-1])])
    return path


def load_landmarks_csv(path: str | os.PathLike, unit: str = "pixel") -> Landmarks:
    """Read a BigWarp landmark CSV (3D, 8 columns) into :class:`Landmarks` in ``unit``.

    Unpaired rows (BigWarp writes ``Infinity`` for the missing point) and NaN
    coordinates are refused with the row named.
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: no such file")
    try:
        with open(path, newline="") as fh:
            rows = [r for r in csv.reader(fh) if r and any(c.strip() for c in r)]
    except (UnicodeDecodeError, csv.Error):
        raise ValueError(f"{path.name} is not a landmark CSV (not text); give the landmarks "
                         "BigWarp exported (File > Export landmarks: name, active, moving x y z, "
                         "fixed x y z)") from None
    if not rows:
        raise ValueError(f"{path.name}: no landmarks in the file")
    names, active, fixed, moving = [], [], [], []
    for i, row in enumerate(rows):
        row = [c.strip() for c in row]
        if len(row) == 6:
            raise ValueError(f"{path.name}: 2D landmarks (6 columns); napari-corrtomo registers "
                             "3D volumes, export 3D landmarks from BigWarp")
        if len(row) != 8:
            raise ValueError(f"{path.name}: row {i + 1} has {len(row)} columns; a BigWarp 3D "
                             "landmark row has 8 (name, active, moving x y z, fixed x y z)")
        if i == 0 and row[1].lower() not in ("true", "false"):
            continue  # a header line written by another tool
        flag = row[1].lower()
        if flag not in ("true", "false"):
            raise ValueError(f"{path.name}: row {i + 1}: active must be true or false, "
                             f"got {row[1]!r}")
        vals = np.array([_number(c, i, j + 2, path) for j, c in enumerate(row[2:])])
        if not np.all(np.isfinite(vals)):
            raise ValueError(
                f"{path.name}: landmark {row[0]!r} (row {i + 1}) is unpaired or has NaN "
                "coordinates; place its other point in BigWarp or delete the row"
            )
        names.append(row[0])
        active.append(flag == "true")
        moving.append(vals[2::-1])   # x, y, z -> z, y, x
        fixed.append(vals[:2:-1])
    if not names:
        raise ValueError(f"{path.name}: no landmarks in the file")
    return Landmarks(np.array(fixed), np.array(moving), unit, names, np.array(active))

