"""A trained random forest as flat arrays, evaluated by our own traversal.

A compiled, multi-threaded kernel on the CPU (numba) and an array-based,
level-synchronous traversal written once for NumPy/CuPy on the GPU; both decide
exactly as scikit-learn does for float32 features.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from .. import backend as bk
from .._filter_kernels import PARALLEL


class FlatForest:
    """A trained forest as flat arrays, evaluable on NumPy (numba) or CuPy.

    Nodes of all trees are concatenated. ``left``/``right`` are global node indices;
    a leaf points to itself on both sides (so a fixed number of steps reaches it).
    ``threshold`` is float32, rounded *down* from scikit-learn's float64 so that
    ``x <= threshold`` decides exactly as scikit-learn does for float32 ``x``.
    ``value`` holds each leaf's class fractions; the forest's probability is their mean.
    """

    def __init__(self, feature, threshold, left, right, value, roots, depth):
        self.feature = np.ascontiguousarray(feature, np.int32)
        self.threshold = np.ascontiguousarray(threshold, np.float32)
        self.left = np.ascontiguousarray(left, np.int32)
        self.right = np.ascontiguousarray(right, np.int32)
        self.value = np.ascontiguousarray(value, np.float32)
        self.roots = np.ascontiguousarray(roots, np.int32)
        self.depth = np.ascontiguousarray(depth, np.int32)

    @property
    def n_trees(self) -> int:
        return len(self.roots)

    @property
    def n_classes(self) -> int:
        return self.value.shape[1]

    @classmethod
    def from_sklearn(cls, forest) -> FlatForest:
        feats, thrs, lefts, rights, values, roots, depths = [], [], [], [], [], [], []
        offset = 0
        for est in forest.estimators_:
            t = est.tree_
            n = t.node_count
            leaf = t.children_left < 0
            idx = np.arange(n) + offset
            left = np.where(leaf, idx, t.children_left + offset)
            right = np.where(leaf, idx, t.children_right + offset)
            thr64 = np.where(leaf, np.inf, t.threshold)
            thr32 = thr64.astype(np.float32)
            over = thr32.astype(np.float64) > thr64
            thr32[over] = np.nextafter(thr32[over], np.float32(-np.inf))
            val = t.value[:, 0, :].astype(np.float64)
            val /= np.maximum(val.sum(axis=1, keepdims=True), 1e-300)
            feats.append(np.where(leaf, 0, t.feature))
            thrs.append(thr32)
            lefts.append(left)
            rights.append(right)
            values.append(val)
            roots.append(offset)
            depths.append(t.max_depth)
            offset += n
        return cls(np.concatenate(feats), np.concatenate(thrs), np.concatenate(lefts),
                   np.concatenate(rights), np.concatenate(values), roots, depths)

    @classmethod
    def concat(cls, forests: list[FlatForest]) -> FlatForest:
        """One forest of the trees of ``forests`` (same features and classes), in order."""
        offsets = np.cumsum([0] + [f.feature.size for f in forests[:-1]])
        return cls(*(np.concatenate([getattr(f, k) for f in forests]) for k in
                     ("feature", "threshold")),
                   *(np.concatenate([getattr(f, k) + o for f, o in zip(forests, offsets,
                                                                      strict=True)])
                     for k in ("left", "right")),
                   np.concatenate([f.value for f in forests]),
                   np.concatenate([f.roots + o for f, o in zip(forests, offsets, strict=True)]),
                   np.concatenate([f.depth for f in forests]))

    def arrays(self) -> dict[str, np.ndarray]:
        return {"feature": self.feature, "threshold": self.threshold, "left": self.left,
                "right": self.right, "value": self.value, "roots": self.roots, "depth": self.depth}

    def predict_proba(self, X: Any, backend: str = "numpy") -> Any:
        """Class probabilities ``(K, N)`` float32 for features ``X`` ``(F, N)`` float32."""
        backend = bk.resolve_backend(backend, "forest.predict")
        if backend == "numpy":
            X = np.ascontiguousarray(bk.to_host(X), dtype=np.float32)
            out = np.empty((self.n_classes, X.shape[1]), np.float32)
            _predict_kernel(X, self.feature, self.threshold, self.left, self.right,
                            self.value, self.roots, self.depth, out)
            return out
        return self.predict_proba_xp(X, backend)

    def predict_proba_xp(self, X: Any, backend: str = "numpy") -> Any:
        """Array-based traversal, one code path for NumPy and CuPy: all voxels step one
        level per iteration (a leaf steps onto itself), tree by tree."""
        xp = bk.xp_for(backend)
        X = bk.asarray(X, backend, dtype=np.float32)
        n = X.shape[1]
        feature = xp.asarray(self.feature)
        threshold = xp.asarray(self.threshold)
        left, right = xp.asarray(self.left), xp.asarray(self.right)
        value = xp.asarray(self.value)
        cols = xp.arange(n)
        acc = xp.zeros((n, self.n_classes), dtype=xp.float32)
        for root, depth in zip(self.roots.tolist(), self.depth.tolist(), strict=True):
            node = xp.full(n, root, dtype=xp.int32)
            for _ in range(depth):
                go_left = X[feature[node], cols] <= threshold[node]
                node = xp.where(go_left, left[node], right[node])
            acc += value[node]
        return (acc / xp.float32(self.n_trees)).T.copy()


@numba.njit(parallel=PARALLEL, cache=True, nogil=True)
def _predict_kernel(X, feature, threshold, left, right, value, roots, depth, out):  # pragma: no cover
    # Tiles of voxels in parallel; per tree, all voxels of the tile step one level at a
    # time (independent loads in flight, no data-dependent loop exit).
    n = X.shape[1]
    k = value.shape[1]
    n_trees = roots.shape[0]
    tile = 512
    n_tiles = (n + tile - 1) // tile
    inv = np.float32(1.0) / np.float32(n_trees)
    for b in numba.prange(n_tiles):
        start = b * tile
        m = min(start + tile, n) - start
        acc = np.zeros((k, m), np.float32)
        nodes = np.empty(m, np.int32)
        for t in range(n_trees):
            nodes[:] = roots[t]
            for _ in range(depth[t]):
                for i in range(m):
                    nd = nodes[i]
                    if X[feature[nd], start + i] <= threshold[nd]:
                        nodes[i] = left[nd]
                    else:
                        nodes[i] = right[nd]
            for i in range(m):
                for c in range(k):
                    acc[c, i] += value[nodes[i], c]
        for c in range(k):
            for i in range(m):
                out[c, start + i] = acc[c, i] * inv
