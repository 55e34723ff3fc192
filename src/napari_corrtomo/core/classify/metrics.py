"""Segmentation accuracy against ground truth (Osenberg et al., 2023).

Per-class intersection over union and the average weighted error
``awe = (1 - sum_i IoU_i p_i) * 100 %`` with ``p_i`` the true volume fraction of
class ``i`` (eq. 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def iou_per_class(truth: Any, prediction: Any, classes: Sequence[int] | None = None,
                  mask: Any = None) -> dict[int, float]:
    """Intersection over union per class, over the voxels of ``mask`` (default: truth != 0).

    Classes default to the nonzero values of ``truth``. A class absent from both truth
    and prediction in the mask gets NaN.
    """
    truth, pred = np.asarray(truth), np.asarray(prediction)
    if truth.shape != pred.shape:
        raise ValueError(f"truth {truth.shape} and prediction {pred.shape} differ in shape")
    mask = truth != 0 if mask is None else np.asarray(mask, bool)
    t, p = truth[mask], pred[mask]
    classes = np.unique(t[t != 0]) if classes is None else classes
    out = {}
    for c in classes:
        inter = np.count_nonzero((t == c) & (p == c))
        union = np.count_nonzero((t == c) | (p == c))
        out[int(c)] = inter / union if union else float("nan")
    return out


def weighted_error(truth: Any, prediction: Any, mask: Any = None) -> float:
    """Average weighted error awe in percent (Osenberg et al., eq. 1):
    ``(1 - sum_i IoU_i p_i) * 100`` with ``p_i`` the true volume fraction of class i
    among the voxels of ``mask`` (default: truth != 0, i.e. all sample voxels)."""
    truth = np.asarray(truth)
    mask = truth != 0 if mask is None else np.asarray(mask, bool)
    t = truth[mask]
    if t.size == 0:
        raise ValueError("no truth voxels to evaluate (the mask is empty)")
    classes, counts = np.unique(t, return_counts=True)
    keep = classes != 0
    classes, counts = classes[keep], counts[keep]
    ious = iou_per_class(truth, prediction, classes, mask)
    frac = counts / counts.sum()
    return float((1.0 - sum(ious[int(c)] * f for c, f in zip(classes, frac, strict=True))) * 100.0)
