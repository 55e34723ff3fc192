"""Sparse scribbles drawn from a ground truth, as a user would paint them."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def scribbles_from_truth(
    truth: np.ndarray,
    slices: tuple[int, ...] | None = None,
    strokes_per_class: int = 4,
    stroke_length_px: int = 40,
    width_px: int = 1,
    margin_px: int = 2,
    classes: tuple[int, ...] | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Sparse training strokes like a user paints them, simulated from a truth volume.

    On each of ``slices`` (z indices of a (z, y, x) truth; default four evenly spaced
    slices), ``strokes_per_class`` smooth random walks of up to ``stroke_length_px``
    steps are drawn inside each class, kept ``margin_px`` pixels away from its boundary
    (users paint inside a phase, not on its edge), ``2 * width_px - 1`` pixels wide.
    Returns labels of the truth's dtype: 0 = unlabelled, else the class.
    """
    truth = np.asarray(truth)
    if truth.ndim != 3:
        raise ValueError(f"scribbles need a (z, y, x) truth volume, got {truth.ndim}D")
    rng = np.random.default_rng(seed)
    nz = truth.shape[0]
    if slices is None:
        slices = tuple(int(round(z)) for z in np.linspace(0, nz - 1, 6)[1:-1])
    classes = tuple(int(c) for c in np.unique(truth) if c != 0) if classes is None else classes
    out = np.zeros_like(truth)
    disk = ndi.generate_binary_structure(2, 1)
    for z in slices:
        if not 0 <= z < nz:
            raise ValueError(f"slice {z} is outside the {nz} slices")
        for c in classes:
            inside = ndi.binary_erosion(truth[z] == c, disk, iterations=margin_px) if margin_px \
                else truth[z] == c
            cand = np.argwhere(inside)
            if len(cand) == 0:
                continue
            for _ in range(strokes_per_class):
                pos = cand[rng.integers(len(cand))].astype(float)
                angle = rng.uniform(0, 2 * np.pi)
                path = []
                for _ in range(stroke_length_px):
                    iy, ix = int(round(pos[0])), int(round(pos[1]))
                    if not (0 <= iy < inside.shape[0] and 0 <= ix < inside.shape[1]) \
                            or not inside[iy, ix]:
                        break
                    path.append((iy, ix))
                    angle += rng.normal(0, 0.35)
                    pos += (np.sin(angle), np.cos(angle))
                stroke = np.zeros(inside.shape, bool)
                for iy, ix in path:
                    stroke[iy, ix] = True
                if width_px > 1:
                    stroke = ndi.binary_dilation(stroke, disk, iterations=width_px - 1) & inside
                out[z][stroke] = c
    return out
