"""A compiled random-forest trainer for the live loop (small training sets, many refits).

scikit-learn's forest costs about 3 ms of Python and validation per tree whatever the
training set; on the few hundred to few thousand painted voxels of a live session that
is most of a refit. This trainer grows the same kind of forest -- bootstrap samples,
``sqrt(F)`` candidate features per split, best Gini split at the midpoint between two
neighbouring values, full depth, leaves holding class fractions -- in one compiled call
without the GIL, straight into :class:`~.forest.FlatForest` arrays. It is not
scikit-learn's forest tree by tree (other random draws); tests compare the accuracy.
"""

from __future__ import annotations

import numba
import numpy as np

from .forest import FlatForest


def grow_forest(X: np.ndarray, y: np.ndarray, n_trees: int, seed: int
                ) -> tuple[FlatForest, np.ndarray, np.ndarray]:
    """Fit ``n_trees`` trees on features ``X`` ``(N, F)`` and classes ``y`` ``(N,)``.

    Returns the forest (its class axis in the order of ``classes``), ``classes`` ``(K,)``
    (the sorted values of ``y``) and the mean-decrease-in-impurity importances ``(F,)``
    (each tree's normalised, averaged over the trees that split, as scikit-learn does).
    """
    X = np.ascontiguousarray(X, np.float32)
    classes, yi = np.unique(np.asarray(y), return_inverse=True)
    n, f = X.shape
    mtry = max(1, int(np.sqrt(f)))
    cap = 2 * n  # nodes of one tree: at most 2 x (distinct bagged samples) - 1
    feature = np.zeros(n_trees * cap, np.int32)
    threshold = np.full(n_trees * cap, np.inf, np.float32)
    left = np.zeros(n_trees * cap, np.int32)
    right = np.zeros(n_trees * cap, np.int32)
    value = np.zeros((n_trees * cap, len(classes)), np.float32)
    imp = np.zeros((n_trees, f), np.float64)
    sizes = np.zeros(n_trees, np.int64)
    depth = np.zeros(n_trees, np.int32)
    seeds = np.random.default_rng(seed).integers(0, 2**31 - 1, n_trees)
    for t in range(n_trees):
        o = t * cap
        sizes[t], depth[t] = _grow_tree(
            X, yi.astype(np.int32), len(classes), mtry, seeds[t], o, feature[o:o + cap],
            threshold[o:o + cap], left[o:o + cap], right[o:o + cap], value[o:o + cap], imp[t])
    keep = np.concatenate([np.arange(t * cap, t * cap + sizes[t]) for t in range(n_trees)])
    # node indices are global: shift each tree's by the nodes of the trees before it
    shift = np.repeat(np.concatenate(([0], np.cumsum(sizes)[:-1])) - np.arange(n_trees) * cap,
                      sizes)
    roots = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    forest = FlatForest(feature[keep], threshold[keep], left[keep] + shift, right[keep] + shift,
                        value[keep], roots, depth)
    split = imp.sum(axis=1) > 0
    per_tree = imp[split] / imp[split].sum(axis=1, keepdims=True)
    importances = per_tree.mean(axis=0) if split.any() else np.zeros(f)
    return forest, classes, importances


@numba.njit(cache=True, nogil=True)
def _grow_tree(X, y, k, mtry, seed, offset, feature, threshold, left, right, value, imp
               ):  # pragma: no cover - compiled
    """One tree into the given node arrays (global node index = offset + local);
    returns (nodes, depth). ``imp`` accumulates the weighted Gini decrease per feature."""
    np.random.seed(seed)  # noqa: NPY002 - numba implements only the legacy API
    n, f = X.shape
    w = np.zeros(n, np.float64)
    for _ in range(n):  # bootstrap: N draws with replacement, as sample weights
        w[np.random.randint(n)] += 1.0  # noqa: NPY002
    order = np.flatnonzero(w > 0)
    m = order.size
    # depth-first: stack of (start, end, node, depth) over ranges of `order`
    stack = np.zeros((2 * m + 2, 4), np.int64)
    stack[0, 1] = m
    top, n_nodes, max_depth = 1, 1, 0
    feats = np.arange(f)
    counts = np.empty(k, np.float64)
    lc = np.empty(k, np.float64)
    while top:
        top -= 1
        s, e, node, d = stack[top, 0], stack[top, 1], stack[top, 2], stack[top, 3]
        max_depth = max(max_depth, d)
        counts[:] = 0.0
        for j in range(s, e):
            counts[y[order[j]]] += w[order[j]]
        total = counts.sum()
        gini = 1.0
        for c in range(k):
            gini -= (counts[c] / total) ** 2
        g = offset + node
        left[node] = right[node] = g  # a leaf points to itself
        for c in range(k):
            value[node, c] = counts[c] / total
        if gini <= 0.0 or e - s < 2:
            continue
        best, best_f, best_t = -1.0, -1, np.float32(0.0)
        # candidate features in random order; constant ones do not count (as scikit-learn)
        tried = 0
        for i in range(f):
            r = i + np.random.randint(f - i)  # noqa: NPY002
            feats[i], feats[r] = feats[r], feats[i]
            fi = feats[i]
            idx = order[s:e]
            v = X[idx, fi]
            srt = np.argsort(v, kind="mergesort")
            if v[srt[0]] == v[srt[-1]]:
                continue
            tried += 1
            lc[:] = 0.0
            wl = 0.0
            for j in range(e - s - 1):
                a = idx[srt[j]]
                lc[y[a]] += w[a]
                wl += w[a]
                va, vb = v[srt[j]], v[srt[j + 1]]
                if va == vb:
                    continue
                wr = total - wl
                # maximise sum_c l_c^2 / w_l + sum_c r_c^2 / w_r (= minimise the
                # weighted Gini of the children)
                score = 0.0
                for c in range(k):
                    rc = counts[c] - lc[c]
                    score += lc[c] * lc[c] / wl + rc * rc / wr
                if score > best:
                    mid = np.float32((np.float64(va) + np.float64(vb)) / 2.0)
                    if mid >= vb:  # neighbouring floats: split at the left value
                        mid = va
                    best, best_f, best_t = score, fi, mid
            if tried >= mtry:
                break
        if best_f < 0:
            continue
        # partition order[s:e] at the split
        lo, hi = s, e - 1
        while lo <= hi:
            if X[order[lo], best_f] <= best_t:
                lo += 1
            else:
                order[lo], order[hi] = order[hi], order[lo]
                hi -= 1
        l_node, r_node = n_nodes, n_nodes + 1
        n_nodes += 2
        feature[node], threshold[node] = best_f, best_t
        left[node], right[node] = offset + l_node, offset + r_node
        # weighted impurity decrease: total*gini - (w_l gini_l + w_r gini_r)
        #   = total*gini - (total - best)  since w*gini = w - sum c^2 / w
        imp[best_f] += total * gini - (total - best)
        stack[top, 0], stack[top, 1], stack[top, 2], stack[top, 3] = s, lo, l_node, d + 1
        stack[top + 1, 0], stack[top + 1, 1] = lo, e
        stack[top + 1, 2], stack[top + 1, 3] = r_node, d + 1
        top += 2
    return n_nodes, max_depth
