"""Plane bookkeeping shared by the interpolators and the ML inpainting."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def nearest_known(known: np.ndarray) -> np.ndarray:
    """Index of the nearest known plane for every plane (ties: the lower index)."""
    idx = np.flatnonzero(known)
    z = np.arange(known.size)
    pos = np.clip(np.searchsorted(idx, z), 1, idx.size - 1)
    below, above = idx[pos - 1], idx[pos]
    return np.where(np.abs(z - below) <= np.abs(above - z), below, above)


def per_label(score: Callable[[np.ndarray], np.ndarray], block: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Label with the highest score per voxel (one-vs-rest), as the block's dtype."""
    best, top = None, None
    for lab in labels:
        s = score(block == lab)
        if best is None:
            best = np.full(s.shape, lab, block.dtype)
            top = s
        else:
            better = s > top
            best[better] = lab
            np.maximum(top, s, out=top)
    return best
