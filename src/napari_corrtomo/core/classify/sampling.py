"""Training-set caps: a seeded, class-stratified subsample of the labelled voxels."""

from __future__ import annotations

import numpy as np


def stratified_subsample(y: np.ndarray, max_samples: int, seed: int = 0) -> np.ndarray | None:
    """Indices of at most ``max_samples`` samples of ``y``, every class kept as far as it goes.

    Each class keeps all its samples up to an equal share of the cap; the share left
    unused by small classes goes to the larger ones (water filling), so a thin stroke of
    a rare class is never thinned out by a big one. Within a class the samples are drawn
    without replacement with ``seed`` (reproducible).

    Parameters
    ----------
    y
        ``(N,)`` class of each sample.
    max_samples
        The cap (>= number of classes).
    seed
        Seed of the draw.

    Returns
    -------
    ``(M,)`` sorted int64 indices into ``y`` (``M <= max_samples``), or ``None`` when
    ``y`` has no more than ``max_samples`` samples (use all).
    """
    y = np.asarray(y)
    if y.size <= max_samples:
        return None
    classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    if max_samples < len(classes):
        raise ValueError(f"max_samples={max_samples} is below the {len(classes)} classes")
    take = np.zeros(len(classes), np.int64)
    left = int(max_samples)
    for i, k in enumerate(np.argsort(counts, kind="stable")):  # smallest classes first
        take[k] = min(int(counts[k]), left // (len(classes) - i))
        left -= take[k]
    rng = np.random.default_rng(seed)
    order = np.argsort(inverse, kind="stable")  # sample indices grouped by class
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    picked = [order[s + rng.choice(c, t, replace=False)]
              for s, c, t in zip(starts, counts, take, strict=True)]
    return np.sort(np.concatenate(picked))
