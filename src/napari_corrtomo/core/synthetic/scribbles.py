"""Sparse scribbles drawn from a ground truth, as a user would paint them: first strokes
inside each phase, then correction strokes over the live prediction's mistakes."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

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


#: Correction rounds the demo and the benchmarks play: fewer left the binder of the FIB-SEM
#: sample up to 8 % off on seeds 0-9 (docs/benchmarks/demo_seeds.md)
CORRECTION_ROUNDS = 4


def correction_strokes(
    truth: np.ndarray,
    prediction: np.ndarray,
    labels: np.ndarray,
    mistakes_per_class: int = 2,
    stroke_length_px: int = 40,
    seed: int = 0,
) -> np.ndarray:
    """One correction round on one slice, as a user paints it over the live prediction.

    For each class, the ``mistakes_per_class`` largest mistakes (8-connected pixels of
    the class in ``truth`` that ``prediction`` gives another class and that are not
    painted yet) each get a stroke of the class: up to ``stroke_length_px`` pixels grown
    from a random pixel of the mistake through it, nearest first (the brush follows a
    thin rim along its length). Interior strokes alone never show the classifier a
    phase's edge; these do, where it errs.

    Parameters
    ----------
    truth, prediction, labels
        (y, x) planes: the classes (0 = none), the classifier's classes, the strokes so far.

    Returns
    -------
    A copy of ``labels`` with the correction strokes added.
    """
    truth, prediction = np.asarray(truth), np.asarray(prediction)
    out = np.array(labels, copy=True)
    if not truth.shape == prediction.shape == out.shape or truth.ndim != 2:
        raise ValueError(f"truth, prediction and labels must be (y, x) planes of one shape, "
                         f"got {truth.shape}, {prediction.shape}, {out.shape}")
    rng = np.random.default_rng(seed)
    for c in (int(c) for c in np.unique(truth) if c != 0):
        wrong = (truth == c) & (prediction != c) & (out == 0)
        comps, n = ndi.label(wrong, np.ones((3, 3), bool))
        if n == 0:
            continue
        sizes = ndi.sum_labels(wrong, comps, np.arange(1, n + 1))
        for i in np.argsort(sizes, kind="stable")[::-1][:mistakes_per_class]:
            mistake = comps == i + 1
            pixels = np.argwhere(mistake)
            for iy, ix in _grow(mistake, tuple(pixels[rng.integers(len(pixels))]),
                                stroke_length_px):
                out[iy, ix] = c
    return out


def correction_rounds(trainer: Any, truth: np.ndarray, labels: np.ndarray,
                      slices: Sequence[int], rounds: int = CORRECTION_ROUNDS, seed: int = 0
                      ) -> np.ndarray:
    """Train a live trainer as a user does: strokes, then rounds of corrections.

    ``trainer`` is a :class:`~napari_corrtomo.core.classify.LiveTrainer` (anything with
    its ``set_slice_labels(z, plane)`` and ``update(z).labels``). The strokes of
    ``labels`` on ``slices`` are given to it; then, ``rounds`` times, each slice in turn
    is shown (its live prediction), corrected (:func:`correction_strokes`) and its strokes
    given back, so the next slice's prediction already learnt from them; at the end the
    forest is fitted on every stroke.

    Parameters
    ----------
    truth, labels
        (z, y, x) classes (0 = none) and the strokes so far (e.g.
        :func:`scribbles_from_truth` on the same slices).

    Returns
    -------
    The strokes after the last round, (z, y, x).
    """
    out = np.array(labels, copy=True)
    for z in slices:
        trainer.set_slice_labels(z, out[z])
    for r in range(rounds):
        for z in slices:
            shown = trainer.update(z).labels
            out[z] = correction_strokes(truth[z], shown, out[z], seed=seed + 1000 * r + z)
            trainer.set_slice_labels(z, out[z])
    trainer.update(None)
    return out


def _grow(region: np.ndarray, start: tuple[int, int], n: int) -> list[tuple[int, int]]:
    """Up to ``n`` pixels of ``region`` reached from ``start`` in 8-connected steps,
    breadth first."""
    reached, queue = [start], deque([start])
    seen = {start}
    while queue and len(reached) < n:
        y, x = queue.popleft()
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                p = (y + dy, x + dx)
                if p in seen or not (0 <= p[0] < region.shape[0] and 0 <= p[1] < region.shape[1]) \
                        or not region[p]:
                    continue
                seen.add(p)
                reached.append(p)
                queue.append(p)
                if len(reached) == n:
                    return reached
    return reached
