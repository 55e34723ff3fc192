"""Acquisition geometries: parallel beam, cone beam, laminography and ET tilt series.

Every geometry is a set of per-projection vectors (ASTRA's vector form), so one
set of projectors serves all of them and each converts exactly to ASTRA's
``parallel3d_vec`` / ``cone_vec`` geometries.

Frame and conventions
---------------------
Volumes are arrays ``(z, y, x)``. The world frame has its origin at the centre of
the reconstruction volume (``voxel (k, j, i)`` sits at
``x = (i - (nx - 1) / 2) * voxel_size`` and likewise for y and z) and its axes
along the array axes; vectors are written ``(x, y, z)``.

Projections are ``(angle, row, col)``. The centre of detector pixel ``(r, c)`` of
projection ``i`` is ``D_i + (c - (n_cols - 1) / 2) u_i + (r - (n_rows - 1) / 2) v_i``:
``u`` is the step from one column to the next, ``v`` from one row to the next, both
``pixel_size`` long.

A positive angle turns the **sample** by ``theta`` about the rotation axis ``a``
following the right-hand rule, while beam and detector stay put (equivalently the
source/detector pair turns by ``-theta`` about the sample). At ``theta = 0``:

============== ================== ================ ====================== =========================
geometry       rotation axis a    beam direction    detector columns (u)  detector rows (v)
============== ================== ================ ====================== =========================
parallel, cone +z (volume axis 0) +y               +x                     +z
tilt_series    +y (volume axis 1) +z               +x                     +y
laminography   +z (plate normal)  (0, cos t, sin t) +x                    (0, -sin t, cos t)
============== ================== ================ ====================== =========================

so the 0-degree projection of a parallel-beam CT scan is ``volume.sum(axis=1)``
(rows = z, columns = x) and that of an ET tilt series is ``volume.sum(axis=0)``
(rows = y, columns = x). In a napari view of one z-slice (x to the right, y down)
a positive CT angle turns the sample clockwise. The angles follow
:func:`skimage.transform.radon` and ASTRA's 2D ``parallel`` geometry exactly; in
ASTRA's 3D geometries (whose volume y axis runs the other way round) our angle
``theta`` is ASTRA's ``-theta``.

Laminography tilts the rotation axis (the sample's +z, the normal of a flat
sample) by ``tilt_deg`` out of the detector plane towards the detector: the beam
then crosses the plate at ``90 - tilt_deg`` degrees to its normal. ``tilt -> 0`` is
ordinary CT; the unmeasured "missing double cone" in Fourier space has a half
angle of ``tilt_deg`` about k_z.

Cone beam places the source at ``-source_origin * d`` and the detector centre at
``+origin_detector * d`` (``d`` the beam direction); ``pixel_size`` is then the
physical detector pixel, and the pixel size at the rotation axis is
``pixel_size * source_origin / (source_origin + origin_detector)``.

Detector shifts (rotation-axis offset, per-projection alignment) are stored in
pixels as ``shifts[i] = (row, col)``: the rotation centre appears at pixel
``((n_rows - 1) / 2 + row, (n_cols - 1) / 2 + col)`` of projection ``i``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._checks import SettingError, check_length
from ..io import atomic_path
from ..units import normalize_unit

KINDS = ("parallel", "cone", "laminography", "tilt_series")
JSON_FORMAT = "napari-corrtomo/geometry"
JSON_VERSION = 1
#: A scan of this many projections or more whose angles all lie within +-RADIANS_MAX
#: degrees was given in radians: no tomography turns through only a few degrees in many
#: steps (a limited-angle tilt series still spans tens of degrees)
RADIANS_MIN_COUNT = 20
RADIANS_MAX = 2 * math.pi + 0.01


def _rot_z(theta: np.ndarray, vec: Sequence[float]) -> np.ndarray:
    """Rotate ``vec`` (x, y, z) by ``-theta`` about +z for every angle: (n, 3)."""
    c, s = np.cos(theta), np.sin(theta)
    x, y, z = vec
    return np.stack([c * x + s * y, -s * x + c * y, np.full_like(theta, z)], axis=1)


def _rot_y(theta: np.ndarray, vec: Sequence[float]) -> np.ndarray:
    """Rotate ``vec`` (x, y, z) by ``-theta`` about +y for every angle: (n, 3)."""
    c, s = np.cos(theta), np.sin(theta)
    x, y, z = vec
    return np.stack([c * x - s * z, np.full_like(theta, y), s * x + c * z], axis=1)


def _check_angles(angles_deg: Any) -> np.ndarray:
    arr = np.asarray(angles_deg, dtype=float)
    if arr.ndim != 1 or arr.size < 1:
        raise ValueError(
            f"angles_deg must be a 1D sequence of projection angles in degrees, got shape "
            f"{arr.shape}; pass e.g. np.linspace(0, 180, 180, endpoint=False)"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError("angles_deg contains NaN or inf; every projection needs a finite angle")
    if arr.size > 1 and np.ptp(arr) == 0:  # e.g. start = stop in a form
        raise SettingError(f"the {arr.size} $angles_deg are all {arr[0]:g} deg: projections "
                           "from one direction cannot be reconstructed; give the angles the "
                           "scan turned through (e.g. 0 to 180)", angles_deg="angles_deg")
    if arr.size >= RADIANS_MIN_COUNT and np.abs(arr).max() <= RADIANS_MAX:
        raise SettingError(
            f"the {arr.size} $angles_deg span {arr.min():g} to {arr.max():g}, which looks like "
            f"radians ({np.degrees(arr.min()):.4g} to {np.degrees(arr.max()):.4g} degrees); "
            f"angles are in degrees: give them in degrees (e.g. 0 to 180 for a half turn)",
            angles_deg="angles_deg")
    arr = arr.copy()
    arr.setflags(write=False)
    return arr


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _field(data: dict[str, Any], key: str, kind: str, where: str = "") -> Any:
    """``data[key]`` (None when absent) checked to be of JSON type ``kind``: "number",
    "integer", "boolean", "string" or "list"; a wrong type raises ``ValueError`` naming
    the field."""
    value = data.get(key)
    if value is None:
        return None
    ok = {"number": _is_number(value),
          "integer": _is_number(value) and float(value).is_integer(),
          "boolean": isinstance(value, bool),
          "string": isinstance(value, str),
          "list": isinstance(value, list)}[kind]
    if not ok:
        what = {"number": "a number", "integer": "a whole number",
                "boolean": "true or false (JSON, without quotes)", "string": "a string",
                "list": "a list"}[kind]
        hint = ""
        if key == "center_offset" and isinstance(value, str):
            hint = ("; leave it out and search the centre with $center_auto")
        raise SettingError(f"'{key}'{where} must be {what}, got {json.dumps(value)}{hint}",
                           center_auto="center='auto'")
    return value


def _check_det_shape(det_shape: Any) -> tuple[int, int]:
    try:
        rows, cols = (int(v) for v in det_shape)
    except (TypeError, ValueError):
        raise ValueError(
            f"det_shape must be (rows, cols) of the detector, got {det_shape!r}"
        ) from None
    if rows < 1 or cols < 2:
        raise ValueError(f"det_shape must have rows >= 1 and cols >= 2, got {(rows, cols)}")
    return rows, cols


@dataclass(frozen=True, eq=False)
class Geometry:
    """Projection geometry of one scan; build it with the class methods.

    Attributes
    ----------
    kind
        ``"parallel"``, ``"cone"``, ``"laminography"`` or ``"tilt_series"``.
    angles_deg
        (n_angles,) rotation angles in degrees (see the module docstring for the
        rotation direction).
    det_shape
        Detector (rows, cols) in pixels.
    pixel_size
        Detector pixel size in ``unit`` (square pixels).
    source_origin, origin_detector
        Source-to-rotation-centre and rotation-centre-to-detector distances in
        ``unit`` (cone beam only; ``None`` for parallel beam).
    tilt_deg
        Laminography tilt of the rotation axis in degrees, in (0, 90).
    shifts
        (n_angles, 2) detector shifts (row, col) in pixels: where the rotation
        centre appears relative to the detector centre.
    unit
        Length unit of ``pixel_size`` and the distances (``"pixel"`` if unknown).
    """

    kind: str
    angles_deg: np.ndarray
    det_shape: tuple[int, int]
    pixel_size: float = 1.0
    source_origin: float | None = None
    origin_detector: float | None = None
    tilt_deg: float | None = None
    shifts: np.ndarray = field(default=None)  # type: ignore[assignment]
    unit: str = "pixel"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(
                f"unknown geometry kind {self.kind!r}; choose one of {', '.join(KINDS)}")
        angles = _check_angles(self.angles_deg)
        object.__setattr__(self, "angles_deg", angles)
        object.__setattr__(self, "det_shape", _check_det_shape(self.det_shape))
        object.__setattr__(self, "pixel_size", check_length(self.pixel_size, "pixel_size"))
        object.__setattr__(self, "unit", normalize_unit(self.unit))
        cone_given = (self.source_origin is not None, self.origin_detector is not None)
        if cone_given[0] != cone_given[1]:
            raise ValueError(
                "give both source_origin and origin_detector for a cone beam, or neither for "
                "a parallel beam"
            )
        if self.kind == "cone" and not cone_given[0]:
            raise ValueError("a cone-beam geometry needs source_origin and origin_detector")
        if self.kind in ("parallel", "tilt_series") and cone_given[0]:
            raise ValueError(f"a {self.kind} geometry is parallel beam; use Geometry.cone for "
                             "source/detector distances")
        if cone_given[0]:
            object.__setattr__(self, "source_origin",
                               check_length(self.source_origin, "source_origin"))
            object.__setattr__(self, "origin_detector",
                               check_length(self.origin_detector, "origin_detector",
                                            allow_zero=True))
        if self.kind == "laminography":
            try:
                tilt = float(self.tilt_deg)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise SettingError(f"$tilt_deg must be a number of degrees in (0, 90) for "
                                   f"laminography, got {self.tilt_deg!r}",
                                   tilt_deg="tilt_deg") from None
            if not (0.0 < tilt < 90.0):
                raise SettingError(
                    f"$tilt_deg must lie strictly between 0 and 90 degrees for laminography, "
                    f"got {self.tilt_deg!r} (0 is ordinary CT: use the parallel or cone "
                    "geometry; 90 puts the rotation axis along the beam)", tilt_deg="tilt_deg")
            object.__setattr__(self, "tilt_deg", tilt)
        elif self.tilt_deg is not None:
            raise ValueError(f"tilt_deg only applies to laminography, not to {self.kind}")
        n = angles.size
        if self.shifts is None:
            shifts = np.zeros((n, 2))
        else:
            shifts = np.array(self.shifts, dtype=float)
            if shifts.shape == (2,):
                shifts = np.tile(shifts, (n, 1))
            if shifts.shape != (n, 2):
                raise ValueError(
                    f"shifts must be (row, col) or one (row, col) per projection, shape ({n}, 2); "
                    f"got shape {shifts.shape}"
                )
            if not np.all(np.isfinite(shifts)):
                raise ValueError("shifts contain NaN or inf")
        shifts.setflags(write=False)
        object.__setattr__(self, "shifts", shifts)

    # ------------------------------------------------------------------ constructors

    @classmethod
    def parallel(cls, angles_deg: Any, det_shape: Sequence[int], pixel_size: float = 1.0,
                 *, unit: str = "pixel", shifts: Any = None) -> Geometry:
        """Parallel-beam CT: rotation about volume z, beam along +y at 0 degrees."""
        return cls("parallel", angles_deg, det_shape, pixel_size, shifts=shifts, unit=unit)

    @classmethod
    def cone(cls, angles_deg: Any, det_shape: Sequence[int], source_origin: float,
             origin_detector: float, pixel_size: float = 1.0, *, unit: str = "pixel",
             shifts: Any = None) -> Geometry:
        """Circular cone-beam CT (flat detector); ``pixel_size`` is the physical detector pixel."""
        return cls("cone", angles_deg, det_shape, pixel_size, source_origin, origin_detector,
                   shifts=shifts, unit=unit)

    @classmethod
    def laminography(cls, angles_deg: Any, det_shape: Sequence[int], tilt_deg: float,
                     pixel_size: float = 1.0, source_origin: float | None = None,
                     origin_detector: float | None = None, *, unit: str = "pixel",
                     shifts: Any = None) -> Geometry:
        """Computed laminography: rotation axis (sample +z) tilted by ``tilt_deg`` towards the
        detector; parallel beam unless both distances are given."""
        return cls("laminography", angles_deg, det_shape, pixel_size, source_origin,
                   origin_detector, tilt_deg, shifts=shifts, unit=unit)

    @classmethod
    def tilt_series(cls, angles_deg: Any, det_shape: Sequence[int], pixel_size: float = 1.0,
                    *, unit: str = "pixel", shifts: Any = None) -> Geometry:
        """Electron-tomography tilt series (parallel beam): tilt axis along the detector rows
        (volume y), beam along +z at 0 degrees. 360-degree and limited-angle series alike."""
        return cls("tilt_series", angles_deg, det_shape, pixel_size, shifts=shifts, unit=unit)

    # ------------------------------------------------------------------ properties

    @property
    def n_angles(self) -> int:
        return int(self.angles_deg.size)

    @property
    def is_cone(self) -> bool:
        return self.source_origin is not None

    @property
    def magnification(self) -> float:
        """Detector pixel / pixel at the rotation centre (1 for parallel beam)."""
        if not self.is_cone:
            return 1.0
        return (self.source_origin + self.origin_detector) / self.source_origin  # type: ignore[operator]

    @property
    def rotation_axis(self) -> np.ndarray:
        """Unit rotation axis (x, y, z) in the volume frame."""
        if self.kind == "tilt_series":
            return np.array([0.0, 1.0, 0.0])
        return np.array([0.0, 0.0, 1.0])

    @property
    def default_voxel_size(self) -> float:
        """The detector pixel size at the rotation centre (``pixel_size / magnification``)."""
        return self.pixel_size / self.magnification

    def default_volume_shape(self) -> tuple[int, int, int]:
        """(z, y, x) covering the detector's field of view at ``default_voxel_size``."""
        rows, cols = self.det_shape
        if self.kind == "tilt_series":
            return (cols, rows, cols)
        return (rows, cols, cols)

    # ------------------------------------------------------------------ vectors

    def frame_vectors(self) -> dict[str, np.ndarray]:
        """Unit beam direction ``d``, detector axes ``u``, ``v`` per projection, (n, 3) each,
        without shifts or distances."""
        theta = np.deg2rad(self.angles_deg)
        if self.kind in ("parallel", "cone"):
            d, u, v = (0.0, 1.0, 0.0), (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)
            rot = _rot_z
        elif self.kind == "tilt_series":
            d, u, v = (0.0, 0.0, 1.0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0)
            rot = _rot_y
        else:
            t = math.radians(self.tilt_deg)  # type: ignore[arg-type]
            d, u = (0.0, math.cos(t), math.sin(t)), (1.0, 0.0, 0.0)
            v = (0.0, -math.sin(t), math.cos(t))
            rot = _rot_z
        return {"d": rot(theta, d), "u": rot(theta, u), "v": rot(theta, v)}

    def vectors(self) -> np.ndarray:
        """ASTRA-style vectors in physical units, (n_angles, 12), components (x, y, z).

        Parallel beam: ``(ray, detector centre, u, v)`` with ``ray`` the unit beam
        direction; cone beam: ``(source, detector centre, u, v)``. ``u`` and ``v`` are
        ``pixel_size`` long; the detector centre includes the shifts.
        """
        f = self.frame_vectors()
        d, u, v = f["d"], f["u"] * self.pixel_size, f["v"] * self.pixel_size
        centre = (self.origin_detector or 0.0) * d
        centre = centre - self.shifts[:, 1:2] * u - self.shifts[:, 0:1] * v
        first = -self.source_origin * d if self.is_cone else d  # type: ignore[operator]
        return np.concatenate([first, centre, u, v], axis=1)

    def astra_geometry(self, volume_shape: Sequence[int], voxel_size: float,
                       offset: Sequence[float] = (0.0, 0.0, 0.0)) -> tuple[dict, dict]:
        """ASTRA 3D ``(vol_geom, proj_geom)`` in voxel units (``parallel3d_vec`` or ``cone_vec``).

        ``offset`` is the (z, y, x) position of the volume centre in ``unit``. The
        vectors are divided by ``voxel_size`` so ASTRA works with unit voxels; ASTRA's
        line integrals are then in voxels (multiply by ``voxel_size``).
        """
        import astra

        nz, ny, nx = (int(s) for s in volume_shape)
        vec = self.vectors() / float(voxel_size)
        shift = np.array([offset[2], offset[1], offset[0]], float) / float(voxel_size)
        if self.is_cone:
            vec[:, 0:3] -= shift
        vec[:, 3:6] -= shift
        rows, cols = self.det_shape
        kind = "cone_vec" if self.is_cone else "parallel3d_vec"
        proj_geom = astra.create_proj_geom(kind, rows, cols, vec)
        vol_geom = astra.create_vol_geom(ny, nx, nz)
        return vol_geom, proj_geom

    # ------------------------------------------------------------------ derived geometries

    def subset(self, indices: Any) -> Geometry:
        """The geometry of a subset of the projections (e.g. even/odd halves)."""
        idx = np.asarray(indices)
        return self._replace(angles_deg=self.angles_deg[idx], shifts=self.shifts[idx])

    def with_shifts(self, shifts: Any) -> Geometry:
        """A copy with these detector shifts (row, col) in pixels (one pair or one per angle)."""
        return self._replace(shifts=shifts)

    def shifted(self, row: float | Any = 0.0, col: float | Any = 0.0) -> Geometry:
        """A copy whose shifts are increased by ``row``/``col`` pixels (scalars or per angle)."""
        add = np.stack(np.broadcast_arrays(np.asarray(row, float), np.asarray(col, float)), -1)
        return self._replace(shifts=self.shifts + add)

    def _replace(self, **changes: Any) -> Geometry:
        fields = self.to_dict(full=True)
        fields.pop("format"), fields.pop("version")
        fields["det_shape"] = tuple(fields["det_shape"])
        fields.update(changes)
        return Geometry(**fields)

    # ------------------------------------------------------------------ JSON

    def to_dict(self, full: bool = False) -> dict[str, Any]:
        """JSON-ready description; :meth:`from_dict` restores an equal geometry."""
        out: dict[str, Any] = {
            "format": JSON_FORMAT,
            "version": JSON_VERSION,
            "kind": self.kind,
            "angles_deg": [float(a) for a in self.angles_deg],
            "det_shape": list(self.det_shape),
            "pixel_size": self.pixel_size,
            "unit": self.unit,
            "source_origin": self.source_origin,
            "origin_detector": self.origin_detector,
            "tilt_deg": self.tilt_deg,
            "shifts": self.shifts.tolist(),
        }
        if full:
            out["shifts"] = self.shifts.copy()
            out["angles_deg"] = np.array(self.angles_deg)
        return out

    def to_json(self, indent: int | None = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the geometry as JSON (atomically)."""
        path = Path(path)
        with atomic_path(path) as tmp:
            tmp.write_text(self.to_json())
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Geometry:
        """Build from :meth:`to_dict` output or a hand-written description.

        Besides ``angles_deg`` (a list) a hand-written file may give ``angles`` as
        ``{"start": 0, "stop": 360, "count": 720, "endpoint": false}``, and
        ``center_offset`` (columns) instead of per-projection ``shifts``.
        """
        if not isinstance(data, dict):
            raise ValueError("a geometry description must be a JSON object")
        fmt = data.get("format", JSON_FORMAT)
        if fmt != JSON_FORMAT:
            raise ValueError(f"not a napari-corrtomo geometry (format {fmt!r})")
        if int(data.get("version", JSON_VERSION)) > JSON_VERSION:
            raise ValueError(f"geometry version {data['version']} is newer than this program "
                             f"understands ({JSON_VERSION}); update napari-corrtomo")
        known = {"format", "version", "kind", "angles_deg", "angles", "det_shape", "pixel_size",
                 "unit", "source_origin", "origin_detector", "tilt_deg", "shifts", "center_offset"}
        unknown = set(data) - known
        if unknown:
            raise ValueError(
                f"unknown geometry keys {sorted(unknown)}; known keys: {sorted(known)}")
        if "kind" not in data or "det_shape" not in data:
            raise ValueError("a geometry needs at least 'kind', 'det_shape' and the angles")
        _field(data, "kind", "string")
        for key in ("det_shape", "shifts"):
            _field(data, key, "list")
        for key in ("pixel_size", "source_origin", "origin_detector", "tilt_deg",
                    "center_offset"):
            _field(data, key, "number")
        _field(data, "unit", "string")
        if "angles_deg" in data:
            angles = _field(data, "angles_deg", "list")
            if angles is None or not all(_is_number(a) for a in angles):
                raise ValueError("'angles_deg' must be a list of numbers (degrees)")
        elif "angles" in data:
            spec = data["angles"]
            usage = ("'angles' must be {\"start\": deg, \"stop\": deg, \"count\": n, "
                     "\"endpoint\": false}")
            if not isinstance(spec, dict) or not {"start", "stop", "count"} <= set(spec):
                raise ValueError(usage)
            if set(spec) - {"start", "stop", "count", "endpoint"}:
                raise ValueError(f"unknown keys {sorted(set(spec) - {'start', 'stop', 'count', 'endpoint'})} "
                                 f"in 'angles'; {usage}")
            for key, kind in (("start", "number"), ("stop", "number"), ("count", "integer"),
                              ("endpoint", "boolean")):
                if spec.get(key, 0) is None:
                    raise ValueError(f"'{key}' in 'angles' must not be null; {usage}")
                _field(spec, key, kind, " in 'angles'")
            angles = np.linspace(float(spec["start"]), float(spec["stop"]), int(spec["count"]),
                                 endpoint=bool(spec.get("endpoint", False)))
        else:
            raise ValueError("a geometry needs 'angles_deg' (list) or 'angles' (start/stop/count)")
        shifts = data.get("shifts")
        if shifts is None and data.get("center_offset") is not None:
            shifts = (0.0, float(data["center_offset"]))
        return cls(
            kind=data["kind"],
            angles_deg=angles,
            det_shape=tuple(data["det_shape"]),
            pixel_size=data.get("pixel_size", 1.0),
            source_origin=data.get("source_origin"),
            origin_detector=data.get("origin_detector"),
            tilt_deg=data.get("tilt_deg"),
            shifts=shifts,
            unit=data.get("unit", "pixel"),
        )

    @classmethod
    def from_json(cls, text: str) -> Geometry:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"geometry JSON cannot be parsed: {exc}") from None
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Geometry:
        path = Path(path)
        if not path.exists():
            raise ValueError(f"{path}: no such geometry file")
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            raise ValueError(f"{path.name} is not a geometry file (not text); give the JSON "
                             "that the Reconstruct widget or --save-geometry wrote") from None
        try:
            return cls.from_json(text)
        except SettingError as exc:  # still worded by each front end
            raise SettingError(path.name.replace("$", "$$") + ": " + exc.template.template,
                               **exc.api_words) from None
        except ValueError as exc:
            raise ValueError(f"{path.name}: {exc}") from None

    # ------------------------------------------------------------------ misc

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Geometry):
            return NotImplemented
        a, b = self.to_dict(), other.to_dict()
        return a == b

    def __hash__(self) -> int:  # frozen and comparable: hash the JSON form
        return hash(self.to_json(indent=None))

    def __repr__(self) -> str:
        extra = ""
        if self.is_cone:
            extra += (f", source_origin={self.source_origin:g}, "
                      f"origin_detector={self.origin_detector:g}")
        if self.tilt_deg is not None:
            extra += f", tilt_deg={self.tilt_deg:g}"
        a = self.angles_deg
        return (f"Geometry.{self.kind}({self.n_angles} angles {a.min():g}..{a.max():g} deg, "
                f"det_shape={self.det_shape}, pixel_size={self.pixel_size:g} {self.unit}{extra})")

    def check_projections(self, projections: Any) -> None:
        """Raise ``ValueError`` unless ``projections`` are (n_angles, rows, cols) here."""
        shape = getattr(projections, "shape", None)
        if shape is None or len(shape) != 3:
            dims = "?" if shape is None else len(shape)
            raise ValueError(
                f"projections must be a 3D array (angle, row, col), got {dims} dimensions; "
                "stack single sinograms as (angle, 1, col)"
            )
        if shape[0] != self.n_angles:
            raise ValueError(
                f"{shape[0]} projections but the geometry has {self.n_angles} angles; give one "
                "angle per projection (check the angle range/count or drop extra frames)"
            )
        if tuple(shape[1:]) != self.det_shape:
            raise ValueError(
                f"projections are {tuple(shape[1:])} (rows, cols) but the geometry's detector is "
                f"{self.det_shape}; set det_shape to the projection size"
            )
