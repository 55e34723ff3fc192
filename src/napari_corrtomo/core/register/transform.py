"""The :class:`Transform` object and 4x4 matrix helpers shared by the registration modules.

Conventions (see ``docs/registration.md``):

- points are rows ``(z, y, x)`` in physical world coordinates (``index * voxel``,
  plus any origin), in one length unit for both frames (``Transform.unit``);
- ``Transform.matrix`` is a 4x4 homogeneous matrix that maps **moving world ->
  fixed world**: ``x_fixed = A @ x_moving + t`` with ``A = matrix[:3, :3]`` and
  ``t = matrix[:3, 3]``; it is the matrix napari takes as the moving layer's
  ``affine`` when both layers use that unit;
- a transform never mirrors: ``det(A) > 0`` is checked everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..units import convert, normalize_unit

#: Landmark models and the fewest landmark pairs each needs.
MODELS: dict[str, int] = {"rigid": 3, "similarity": 3, "affine": 4}

#: Permutation between (z, y, x) and (x, y, z) as a 4x4 matrix (its own inverse).
SWAP_ZYX_XYZ = np.eye(4)[[2, 1, 0, 3]]


def check_matrix(matrix: Any, name: str = "matrix") -> np.ndarray:
    """A finite, invertible, non-mirroring 4x4 homogeneous matrix as float64.

    Raises ``ValueError`` saying what is wrong otherwise.
    """
    m = np.asarray(matrix, dtype=float)
    if m.shape != (4, 4):
        raise ValueError(f"{name} must be a 4x4 homogeneous matrix, got shape {m.shape}")
    if not np.all(np.isfinite(m)):
        raise ValueError(f"{name} contains NaN or infinite values; refit the transform")
    if not np.allclose(m[3], [0, 0, 0, 1], atol=1e-9):
        raise ValueError(f"{name} last row must be [0, 0, 0, 1] (an affine map), got {m[3]}")
    det = np.linalg.det(m[:3, :3])
    scale = np.abs(m[:3, :3]).max()
    if scale == 0 or abs(det) <= 1e-12 * scale**3:
        raise ValueError(f"{name} is singular (it collapses space onto a plane or line)")
    if det < 0:
        raise ValueError(
            f"{name} mirrors space (det {det:.3g} < 0); napari-corrtomo never mirrors data "
            "silently: flip the volume explicitly first if it really is mirrored"
        )
    return m


def apply_to_points(matrix: np.ndarray, points: Any) -> np.ndarray:
    """Apply a 4x4 matrix to (N, 3) points (rows), returning (N, 3)."""
    pts = np.atleast_2d(np.asarray(points, dtype=float))
    return pts @ matrix[:3, :3].T + matrix[:3, 3]


def polar(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Polar decomposition of the linear part, ``A = R @ S`` (R proper rotation, S symmetric)."""
    u, s, vt = np.linalg.svd(np.asarray(matrix, float)[:3, :3])
    d = np.sign(np.linalg.det(u @ vt))
    u[:, -1] *= d
    rot = u @ vt
    stretch = vt.T @ np.diag(s * np.r_[1, 1, d]) @ vt
    return rot, stretch


def rotation_angle_deg(rotation: np.ndarray) -> float:
    """Angle (degrees) of a 3x3 rotation matrix about its axis."""
    c = (np.trace(np.asarray(rotation, float)) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


def unit_matrix(factor: float) -> np.ndarray:
    """4x4 matrix scaling coordinates by ``factor`` (a unit conversion)."""
    return np.diag([factor, factor, factor, 1.0])


def zyx_to_xyz(matrix: np.ndarray) -> np.ndarray:
    """Re-express a 4x4 matrix acting on (z, y, x) points as one acting on (x, y, z)."""
    return SWAP_ZYX_XYZ @ np.asarray(matrix, float) @ SWAP_ZYX_XYZ


xyz_to_zyx = zyx_to_xyz  # the permutation is its own inverse


@dataclass
class Transform:
    """A linear registration transform between two physical frames, with its fit diagnostics.

    Attributes
    ----------
    matrix : (4, 4) ndarray
        Homogeneous matrix mapping moving world -> fixed world, points as
        ``(z, y, x)`` in ``unit``.
    model : str
        ``"rigid"``, ``"similarity"`` or ``"affine"`` (how it was fitted).
    unit : str
        Length unit of both frames (pint spelling, e.g. ``"um"``); ``"pixel"``
        when the voxel sizes are unknown.
    residuals : (N,) ndarray or None
        Per landmark: distance between the fixed point and the mapped moving
        point, in ``unit`` (computed for every landmark, used or not).
    residual_vectors : (N, 3) ndarray or None
        Per landmark: ``fixed - T(moving)`` as (dz, dy, dx).
    used : (N,) bool ndarray or None
        Which landmarks the fit used (active and, with ``robust=True``, inliers).
    rms_fre : float or None
        Root-mean-square fiducial registration error over the used landmarks.
    loo_tre : (N,) ndarray or None
        Leave-one-out target registration error: for each used landmark, the
        residual at that landmark of a fit without it (NaN where undefined).
    metadata : dict
        Provenance (source, fixed/moving names, refinement report ...).
    warnings : list of str
        Things the user should look at (e.g. the landmarks fit a mirror better).
    """

    matrix: np.ndarray
    model: str = "affine"
    unit: str = "pixel"
    residuals: np.ndarray | None = None
    residual_vectors: np.ndarray | None = None
    used: np.ndarray | None = None
    rms_fre: float | None = None
    loo_tre: np.ndarray | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.matrix = check_matrix(self.matrix, "transform matrix")
        self.unit = normalize_unit(self.unit)
        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; use one of {', '.join(MODELS)}")

    # ------------------------------------------------------------------ mapping
    def apply(self, points: Any) -> np.ndarray:
        """Map (N, 3) moving-world points (z, y, x) to the fixed world."""
        return apply_to_points(self.matrix, points)

    def apply_inverse(self, points: Any) -> np.ndarray:
        """Map (N, 3) fixed-world points (z, y, x) to the moving world."""
        return apply_to_points(np.linalg.inv(self.matrix), points)

    def inverse(self) -> Transform:
        """The fixed -> moving transform (diagnostics dropped: they belong to this direction)."""
        meta = {**self.metadata, "inverted": not self.metadata.get("inverted", False)}
        return Transform(np.linalg.inv(self.matrix), self.model, self.unit, metadata=meta)

    def compose(self, first: Transform) -> Transform:
        """``self after first``: maps ``first``'s moving frame to ``self``'s fixed frame."""
        other = first.in_unit(self.unit)
        model = max(self.model, other.model, key=list(MODELS).index)
        return Transform(self.matrix @ other.matrix, model, self.unit)

    def in_unit(self, unit: str) -> Transform:
        """The same transform expressed for coordinates in another length unit."""
        unit = normalize_unit(unit)
        if unit == self.unit:
            return self
        k = float(convert(1.0, self.unit, unit))
        d = unit_matrix(k)
        out = replace(self, matrix=d @ self.matrix @ np.linalg.inv(d), unit=unit)
        for name in ("residuals", "residual_vectors", "loo_tre"):
            value = getattr(self, name)
            if value is not None:
                setattr(out, name, np.asarray(value) * k)
        if self.rms_fre is not None:
            out.rms_fre = self.rms_fre * k
        return out

    # ------------------------------------------------------------------ parts
    @property
    def linear(self) -> np.ndarray:
        """The 3x3 linear part ``A``."""
        return self.matrix[:3, :3]

    @property
    def translation(self) -> np.ndarray:
        """The translation ``t`` (z, y, x)."""
        return self.matrix[:3, 3]

    @property
    def scale(self) -> float:
        """Mean isotropic scale, ``det(A) ** (1/3)``."""
        return float(np.cbrt(np.linalg.det(self.linear)))

    @property
    def rotation(self) -> np.ndarray:
        """The proper rotation of the polar decomposition of ``A``."""
        return polar(self.matrix)[0]

    @property
    def rotation_deg(self) -> float:
        """Rotation angle about the rotation axis, degrees."""
        return rotation_angle_deg(self.rotation)

    @property
    def rms_loo_tre(self) -> float | None:
        """RMS of the finite leave-one-out errors (None when none could be computed)."""
        if self.loo_tre is None:
            return None
        finite = np.asarray(self.loo_tre)[np.isfinite(self.loo_tre)]
        return float(np.sqrt(np.mean(finite**2))) if finite.size else None

    def summary(self) -> str:
        """One line: model, scale, rotation, RMS FRE and LOO TRE."""
        parts = [f"{self.model}: scale {self.scale:.5f}, rotation {self.rotation_deg:.3f} deg"]
        if self.rms_fre is not None:
            parts.append(f"RMS FRE {self.rms_fre:.4g} {self.unit}")
        loo = self.rms_loo_tre
        if loo is not None:
            parts.append(f"LOO TRE {loo:.4g} {self.unit}")
        return ", ".join(parts)


def as_transform(value: Any, unit: str | None = None, model: str = "affine") -> Transform:
    """A :class:`Transform` from a Transform or a 4x4 matrix (moving -> fixed)."""
    if isinstance(value, Transform):
        return value if unit is None else value.in_unit(unit)
    return Transform(np.asarray(value, dtype=float), model, unit or "pixel")


def compare(estimate: Transform | np.ndarray, truth: Transform | np.ndarray,
            points: Any) -> dict[str, float]:
    """Errors of ``estimate`` against ``truth`` (both moving -> fixed), for reports and tests.

    Returns rotation error (degrees, angle of ``R_est R_true^T``), scale error
    (relative), translation error (distance between where the two map the
    centroid of ``points``) and TRE (RMS and max distance between the two
    mappings over ``points``), the last two in the frames' unit.
    """
    est = np.asarray(getattr(estimate, "matrix", estimate), float)
    tru = np.asarray(getattr(truth, "matrix", truth), float)
    pts = np.atleast_2d(np.asarray(points, float))
    r_est, r_true = polar(est)[0], polar(tru)[0]
    s_est, s_true = np.cbrt(np.linalg.det(est[:3, :3])), np.cbrt(np.linalg.det(tru[:3, :3]))
    d = np.linalg.norm(apply_to_points(est, pts) - apply_to_points(tru, pts), axis=1)
    centre = pts.mean(0, keepdims=True)
    return {
        "rotation_deg": rotation_angle_deg(r_est @ r_true.T),
        "scale_rel": float(s_est / s_true - 1.0),
        "translation": float(np.linalg.norm(apply_to_points(est, centre)
                                            - apply_to_points(tru, centre))),
        "tre_rms": float(np.sqrt(np.mean(d**2))),
        "tre_max": float(d.max()),
    }
