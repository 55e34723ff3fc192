"""Distance transforms shared by the quantification functions (exact, anisotropic)."""

from __future__ import annotations

import os

import numpy as np


def edt_distance(mask: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    """float32 distance from every True voxel to the nearest False voxel centre (0 on False).

    Physical units of ``spacing``; the array border is not treated as False (``inf`` if
    there is no False voxel at all).
    """
    import edt

    arr = np.ascontiguousarray(mask, dtype=bool)
    return edt.edt(arr, anisotropy=tuple(float(s) for s in spacing), black_border=False,
                   parallel=max(1, os.cpu_count() or 1))


def signed_distance(mask: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    """Signed distance to the phase boundary: positive inside ``mask``, negative outside.

    The boundary lies half way between a voxel centre of the phase and one outside it,
    so ``d = EDT - s/2`` with ``s`` the smallest voxel size (exact for boundaries
    normal to an axis of that voxel size; within half a voxel otherwise).
    """
    half = 0.5 * min(spacing)
    inside = edt_distance(mask, spacing)
    outside = edt_distance(~mask, spacing)
    out = np.where(mask, inside - half, half - outside).astype(np.float32)
    return out
