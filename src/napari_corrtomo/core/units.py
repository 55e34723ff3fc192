"""Physical length units: one spelling per unit and exact conversions between them.

Spellings follow pint (which napari uses for ``layer.units``): ``"nm"``, ``"um"``,
``"mm"``, ``"angstrom"``. ``"pixel"`` marks data without a known voxel size.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: metres per unit as a power of ten: conversions multiply or divide by an exact power of
#: ten, so 1 um is 1000 nm, not 999.9999999999999 (1e-6 / 1e-9)
_METRES = {
    "m": 0,
    "mm": -3,
    "um": -6,
    "nm": -9,
    "angstrom": -10,
    "pm": -12,
}
_ALIASES = {
    "meter": "m", "metre": "m", "meters": "m", "metres": "m",
    "millimeter": "mm", "millimetre": "mm",
    "micron": "um", "microns": "um", "micrometer": "um", "micrometre": "um",
    "µm": "um", "μm": "um", "\\u00b5m": "um", "u": "um",
    "nanometer": "nm", "nanometre": "nm",
    "å": "angstrom", "a": "angstrom", "angstroms": "angstrom", "ångström": "angstrom",
    "picometer": "pm", "picometre": "pm",
    "pixel": "pixel", "pixels": "pixel", "px": "pixel", "": "pixel",
}


def normalize_unit(unit: str | None) -> str:
    """Canonical spelling of a length unit; raises ``ValueError`` for unknown ones."""
    key = ("" if unit is None else str(unit)).strip()
    if key in _METRES or key == "pixel":
        return key
    low = key.lower()
    if low in _METRES:
        return low
    if low in _ALIASES:
        return _ALIASES[low]
    raise ValueError(
        f"unknown length unit {unit!r}; use one of {', '.join(list(_METRES) + ['pixel'])}"
    )


def convert(value, from_unit: str, to_unit: str):
    """Convert lengths (scalar or array) between units; ``pixel`` converts only to itself."""
    a, b = normalize_unit(from_unit), normalize_unit(to_unit)
    if a == b:
        return value
    if "pixel" in (a, b):
        raise ValueError(f"cannot convert between {a!r} and {b!r}: the voxel size is unknown")
    value = value if np.isscalar(value) else np.asarray(value, dtype=float)
    decades = _METRES[a] - _METRES[b]
    return value * 10.0**decades if decades > 0 else value / 10.0**-decades


def common_unit(units: Sequence[str]) -> str:
    """The single unit shared by all axes; raises when axes disagree."""
    canon = {normalize_unit(u) for u in units}
    if len(canon) != 1:
        raise ValueError(f"axes have different units {sorted(canon)}; convert them to one unit first")
    return canon.pop()


#: a length this many times off (or 1/this of) the one it should equal is a slip of number
#: or unit (500 typed for 0.5 um, nm given as um); a calibration a few % off is not
SLIP_FACTOR = 100.0


def slip_ratio(given, given_unit: str, own, own_unit: str) -> np.ndarray | None:
    """``given / own`` per axis (``own`` converted to ``given_unit``) where some axis is
    :data:`SLIP_FACTOR` or more times off; None where all agree within it, or where the two
    cannot be compared (a ``pixel`` unit, a given size not positive and finite, or one
    value per axis for another number of axes)."""
    size = np.atleast_1d(np.asarray(given, float))
    ref = np.atleast_1d(np.asarray(own, float))
    if ("pixel" in (normalize_unit(given_unit), normalize_unit(own_unit))
            or size.size not in (1, ref.size) or not np.all(np.isfinite(size) & (size > 0))):
        return None
    ratio = size / np.asarray(convert(ref, own_unit, given_unit), float)
    return None if np.all((ratio < SLIP_FACTOR) & (ratio > 1 / SLIP_FACTOR)) else ratio
