"""The interactive state of a registration, without Qt: :class:`RegistrationSession`.

The Register widget holds one and renders it; tests drive it without a viewer. It keeps
the landmark pairs (both in the fixed volume's unit), their names and active flags, the
settings, the landmark fit and the current transform (the fit, its refinement or one
loaded from a file) with the volumes it is of, and runs the pipeline's steps on them
(:mod:`~napari_corrtomo.core.register.pipeline`).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

from .formats import (
    Landmarks,
    load_landmarks_csv,
    load_transform,
    save_landmarks_csv,
    save_transform,
    transform_from_dict,
    transform_to_dict,
)
from .pipeline import RegisterSettings, fit_pairs, overlay_matrix, residual_table
from .transform import Transform


class RegistrationSession:
    """Landmark pairs, active flags, settings, fitted and current transform.

    Parameters
    ----------
    unit
        Length unit of the landmarks and the transform (the fixed volume's).
    settings
        :class:`~.pipeline.RegisterSettings` (the fit and refinement choices).
    """

    def __init__(self, unit: str = "pixel", settings: RegisterSettings | None = None):
        self.unit = unit
        self.settings = settings or RegisterSettings()
        self.fixed = np.zeros((0, 3))
        self.moving = np.zeros((0, 3))
        self.names: list[str] = []
        self.active: list[bool] = []
        #: the last landmark fit (its leave-one-out errors and used pairs feed the table)
        self.fit: Transform | None = None
        #: the transform in use: the fit, its refinement, or one loaded from a file
        self.transform: Transform | None = None
        #: what the last :meth:`fit_landmarks` replaced and dropped: ``"refined"`` (a
        #: refinement of the earlier fit), ``"loaded"`` or ``None`` (:meth:`source`)
        self.replaced: str | None = None
        #: the (fixed, moving) volumes the current transform maps (moving onto fixed), as
        #: the caller names them; ``None``: not said (:meth:`is_for` any)
        self.volumes: tuple[str, str] | None = None

    # ------------------------------------------------------------------ landmarks
    def set_points(self, fixed: Any, moving: Any, unit: str | None = None) -> None:
        """Take the current (N, 3) fixed and moving points (z, y, x), both in ``unit``
        (default the session's); names and flags follow the larger count."""
        self.unit = self.unit if unit is None else unit
        self.fixed = np.asarray(fixed, float).reshape(-1, 3)
        self.moving = np.asarray(moving, float).reshape(-1, 3)
        self.sync(max(len(self.fixed), len(self.moving)))

    def sync(self, n: int) -> None:
        """``n`` names and active flags: new pairs are named ``Pt-<i>`` and active."""
        self.names = (self.names + [f"Pt-{i}" for i in range(len(self.names), n)])[:n]
        self.active = (self.active + [True] * n)[:n]

    def landmarks(self) -> Landmarks:
        """The pairs as :class:`~.formats.Landmarks` (``ValueError`` when unpaired)."""
        return Landmarks(self.fixed, self.moving, self.unit, list(self.names),
                         np.asarray(self.active, bool))

    def set_active(self, row: int, active: bool) -> None:
        """Include (True) or exclude pair ``row`` from the fit (refit to see it)."""
        self.sync(max(len(self.active), row + 1))
        self.active[row] = bool(active)

    # ------------------------------------------------------------------ steps
    def fit_landmarks(self, volumes: tuple[str, str] | None = None) -> Transform:
        """Fit the active pairs (:func:`~.pipeline.fit_pairs`), placed in the (fixed,
        moving) ``volumes``; on failure no transform is kept and the ``ValueError``
        propagates."""
        self.discard()
        self.fit = self.transform = fit_pairs(self.landmarks(), self.settings)
        self.volumes = _volumes(volumes)
        return self.fit

    def discard(self) -> None:
        """Drop the fit and the current transform (a fit starts: if it fails, none is
        kept), noting in :attr:`replaced` a refined or loaded transform so dropped."""
        before = self.source()
        if before is not None:  # (a fit that failed before dropped nothing new)
            self.replaced = before if before in ("refined", "loaded") else None
        self.fit = self.transform = self.volumes = None

    def use(self, transform: Transform, fitted: bool = True) -> None:
        """Make ``transform`` the current one: a refinement of the fit (``fitted``) or,
        with ``fitted=False``, one from elsewhere (a file) that replaces the fit."""
        self.transform = transform.in_unit(self.unit)
        if not fitted:
            self.fit = None

    def source(self) -> str | None:
        """What the current transform is: ``"fit"`` (the landmark fit), ``"refined"`` (a
        refinement of the landmark fit, e.g. by intensity), ``"loaded"`` (from a file or
        crash recovery: no fit of these landmarks) or ``None`` (no transform).

        A new landmark fit (a pair unticked or added) replaces a refined or loaded
        transform: say so to the user (:meth:`discard`, which each fit starts with, keeps
        the answer in :attr:`replaced`)."""
        if self.transform is None:
            return None
        if self.fit is None:
            return "loaded"
        return "fit" if self.transform is self.fit else "refined"

    def is_for(self, volumes: tuple[str, str] | None) -> bool:
        """Whether the current transform may map these (fixed, moving) ``volumes``: it is
        of them, or either side is not said."""
        return self.volumes is None or volumes is None or _volumes(volumes) == self.volumes

    def require_transform(self, volumes: tuple[str, str] | None = None) -> Transform:
        """The current transform, or a ``ValueError`` saying how to get one; ``volumes``:
        the (fixed, moving) volumes it is to map (refused when it is of others)."""
        if self.transform is None:
            raise ValueError("no transform: fit landmarks or load a transform first "
                             "(nothing was changed)")
        if not self.is_for(volumes):
            (fixed, moving), (to_fixed, to_moving) = self.volumes, volumes
            raise ValueError(
                f"the transform is of {moving!r} onto {fixed!r}, not of {to_moving!r} onto "
                f"{to_fixed!r}: place landmarks in these volumes and fit them, load their "
                "transform, or choose those volumes again (nothing was changed)")
        return self.transform

    def table(self) -> pd.DataFrame | None:
        """The residual table of the current transform (:func:`~.pipeline.residual_table`),
        or ``None`` without a transform or complete pairs."""
        if self.transform is None or not len(self.fixed) or len(self.fixed) != len(self.moving):
            return None
        return residual_table(self.landmarks(), self.transform, self.fit)

    def overlay_matrix(self, moving_unit: str) -> np.ndarray:
        """Moving world (in ``moving_unit``) -> fixed world (in the session's unit) matrix of
        the current transform (:func:`~.pipeline.overlay_matrix`)."""
        return overlay_matrix(self.require_transform().in_unit(self.unit), moving_unit)

    # ------------------------------------------------------------------ files
    def save_landmarks(self, path: str | os.PathLike) -> None:
        """Write the pairs as BigWarp CSV (both sets in the session's unit)."""
        save_landmarks_csv(path, self.landmarks())

    def load_landmarks(self, path: str | os.PathLike) -> Landmarks:
        """Read a BigWarp CSV (coordinates in the session's unit): points, names, flags."""
        return self.take_landmarks(load_landmarks_csv(path, unit=self.unit))

    def take_landmarks(self, lm: Landmarks) -> Landmarks:
        """Make ``lm`` (in the session's unit) the pairs: points, names, flags."""
        self.fixed, self.moving = lm.fixed, lm.moving
        self.names = list(lm.names)
        self.active = [bool(a) for a in lm.active]
        return lm

    def save_transform(self, path: str | os.PathLike) -> None:
        save_transform(path, self.require_transform())

    def load_transform(self, path: str | os.PathLike,
                       volumes: tuple[str, str] | None = None) -> Transform:
        """Read a JSON or ITK transform (ITK files are taken in the session's unit) as the
        transform of the (fixed, moving) ``volumes``."""
        self.use(load_transform(path, unit=self.unit), fitted=False)
        self.volumes = _volumes(volumes)
        return self.transform

    # ------------------------------------------------------------------ state
    def state(self) -> dict:
        """Names, active flags, fit settings, the transform and its volumes (for crash
        recovery and projects)."""
        s = self.settings
        return {"names": list(self.names), "active": list(self.active), "model": s.model,
                "robust": s.robust, "threshold": s.threshold or 0.0,
                "transform": None if self.transform is None else transform_to_dict(self.transform),
                "volumes": None if self.volumes is None else list(self.volumes),
                "source": self.source(), "fit": _fit_to_dict(self.fit)}

    def restore(self, state: dict) -> None:
        """Take back what :meth:`state` gave."""
        self.names = [str(n) for n in state.get("names", [])]
        self.active = [bool(a) for a in state.get("active", [])]
        self.settings.model = state.get("model", self.settings.model)
        self.settings.robust = bool(state.get("robust", False))
        self.settings.threshold = float(state.get("threshold", 0.0)) or None
        if state.get("transform"):  # as it was (the layers' unit is not known yet)
            self.fit = _fit_from_dict(state.get("fit"))
            self.transform = transform_from_dict(state["transform"])
            if state.get("source") == "fit" and self.fit is not None:
                self.transform = self.fit  # still the landmark fit, not a 'loaded' one
            self.volumes = _volumes(state.get("volumes"))


def _volumes(volumes: Any) -> tuple[str, str] | None:
    """(fixed, moving) names as a tuple (a saved state holds a list), or ``None``."""
    return None if volumes is None else (str(volumes[0]), str(volumes[1]))


def _fit_to_dict(fit: Transform | None) -> dict | None:
    """A landmark fit with what its residual table shows per pair (used, leave-one-out
    TRE), JSON-safe; ``None`` without a fit."""
    if fit is None:
        return None
    per_pair = {name: None if getattr(fit, name) is None else np.asarray(
        getattr(fit, name), float).tolist() for name in ("used", "loo_tre")}
    return {**transform_to_dict(fit), **per_pair}


def _fit_from_dict(data: Any) -> Transform | None:
    """Inverse of :func:`_fit_to_dict` (``None`` for a state saved without a fit)."""
    if not isinstance(data, dict):
        return None
    fit = transform_from_dict(data)
    if data.get("used") is not None:
        fit.used = np.asarray(data["used"], bool)
    if data.get("loo_tre") is not None:
        fit.loo_tre = np.asarray(data["loo_tre"], float)
    return fit
