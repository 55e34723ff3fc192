"""Reconstruction quality of FIB volumes: against ground truth (MP, MGP, MDS,
Sardhara et al. eq. 1-3) and, without it, from anisotropy (e_TPCF, e_LPF, e_D, eq. 4-5)."""

from __future__ import annotations

import numpy as np


def _binary(name: str, arr) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.dtype == bool:
        return arr
    values = np.unique(arr)
    if values.size > 2 or not set(values.tolist()) <= {0, 1}:
        raise ValueError(
            f"{name} must be binary (bool or 0/1; True = solid), got values "
            f"{values[:6].tolist()}{' ...' if values.size > 6 else ''}; threshold or select "
            "one phase first"
        )
    return arr.astype(bool)


def metrics(result, truth) -> dict[str, float]:
    """Misplaced-voxel metrics of a binary reconstruction against its ground truth.

    With the solid phase as positive class (TP: solid in both, TN: pore in both):

    - ``mp_percent`` = (1 - (TP + TN) / all) * 100, misplaced voxels (eq. 1);
    - ``mgp_percent`` = (1 - TP / (TP + FN)) * 100, misplaced solid ("gold") voxels
      (eq. 2);
    - ``mds`` = mean of the Dice scores 2TP / (2TP + FN + FP) of the solid and of the
      pore phase (eq. 3), also returned as ``dice_solid`` and ``dice_pore``.

    Parameters
    ----------
    result, truth
        Boolean (or 0/1) arrays of the same shape; True = solid.
    """
    r = _binary("result", result)
    t = _binary("truth", truth)
    if r.shape != t.shape:
        raise ValueError(
            f"result {r.shape} and truth {t.shape} differ in shape; crop both to the "
            "common region first"
        )
    if r.size == 0:
        raise ValueError("result and truth are empty")
    tp = np.count_nonzero(r & t)
    tn = np.count_nonzero(~r & ~t)
    fp = np.count_nonzero(r & ~t)
    fn = np.count_nonzero(~r & t)
    n = r.size
    if tp + fn == 0:
        raise ValueError("the ground truth has no solid voxels; MGP is undefined")
    if tn + fp == 0:
        raise ValueError("the ground truth has no pore voxels; the pore Dice score is undefined")
    dice_solid = 2 * tp / (2 * tp + fn + fp)
    dice_pore = 2 * tn / (2 * tn + fp + fn)
    return {
        "mp_percent": 100.0 * (1.0 - (tp + tn) / n),
        "mgp_percent": 100.0 * (1.0 - tp / (tp + fn)),
        "mds": 0.5 * (dice_solid + dice_pore),
        "dice_solid": float(dice_solid),
        "dice_pore": float(dice_pore),
    }
