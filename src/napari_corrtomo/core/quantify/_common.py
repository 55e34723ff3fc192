"""Distance transforms (exact, anisotropic) and padded-box helpers shared by the
quantification functions."""

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


def padded_box(box: tuple[slice, ...], pad: list[int], local: tuple[int, ...],
               shape: tuple[int, ...]) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """Where an array computed on ``box`` padded by ``pad`` voxels per axis (shape
    ``local``) lies on the full grid of ``shape``: ``(src, dst)`` slices, clipped to the
    grid (a particle's padded envelope or closing may reach past the array)."""
    src, dst = [], []
    for b, p, n_local, n in zip(box, pad, local, shape, strict=True):
        a = b.start - p
        end = a + n_local
        src.append(slice(max(0, -a), n_local - max(0, end - n)))
        dst.append(slice(max(a, 0), min(end, n)))
    return tuple(src), tuple(dst)
