"""The physical frame of a volume: voxel size, one length unit, origin.

napari layers, files (:class:`~napari_corrtomo.core.io.Volume`) and the CLI all
describe where voxels sit as a per-axis ``scale`` with per-axis ``units`` and a
``translate``; the core wants one ``spacing`` (z, y, x) in one unit.
:func:`frame_of` is the one place that turns the former into the latter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ._checks import check_spacing
from .units import convert, normalize_unit


@dataclass(frozen=True)
class Frame:
    """Voxel ``spacing`` (per spatial axis, z first) and ``origin`` (the first voxel's
    centre) in one length ``unit``; ``unit == "pixel"`` means the voxel size is unknown."""

    spacing: tuple[float, ...]
    unit: str = "pixel"
    origin: tuple[float, ...] | None = None

    @property
    def ndim(self) -> int:
        return len(self.spacing)

    @property
    def physical(self) -> bool:
        return self.unit != "pixel"

    @property
    def offset(self) -> tuple[float, ...]:
        """The origin, zeros when none was given."""
        return self.origin if self.origin is not None else (0.0,) * self.ndim

    def require_physical(self, what: str, fix: str = "set its voxel size and unit") -> Frame:
        """This frame, or a ``ValueError`` naming ``what`` when the voxel size is unknown."""
        if not self.physical:
            raise ValueError(f"{what} has no physical voxel size; {fix}")
        return self

    def to(self, unit: str) -> Frame:
        """The same frame in another length unit."""
        unit = normalize_unit(unit)
        conv = [float(v) for v in np.atleast_1d(convert(np.asarray(self.spacing), self.unit, unit))]
        origin = None if self.origin is None else tuple(
            float(v) for v in np.atleast_1d(convert(np.asarray(self.origin), self.unit, unit)))
        return Frame(tuple(conv), unit, origin)


def frame_of(scale: Sequence[float], units: Sequence[str] | str, ndim: int | None = None,
             translate: Sequence[float] | None = None, what: str = "the volume") -> Frame:
    """The frame of the last ``ndim`` axes of a napari-style ``scale``/``units``/``translate``.

    Raises ``ValueError`` when those axes have different units (convert them first) or
    an invalid voxel size.
    """
    scale = tuple(float(s) for s in np.atleast_1d(scale))
    ndim = len(scale) if ndim is None else int(ndim)
    if ndim > len(scale):
        raise ValueError(f"{what} has {len(scale)} axes, {ndim} spatial axes are needed")
    names = [units] * len(scale) if isinstance(units, str) else list(units)
    canon = {normalize_unit(str(u)) for u in names[-ndim:]}
    if len(canon) != 1:
        raise ValueError(f"{what} has axes in different units {sorted(canon)}; "
                         "give all spatial axes one unit")
    origin = None if translate is None else tuple(float(t) for t in list(translate)[-ndim:])
    return Frame(check_spacing(scale[-ndim:], ndim), canon.pop(), origin)
