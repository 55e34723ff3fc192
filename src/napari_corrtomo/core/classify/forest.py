"""A trained random forest as flat arrays, evaluated by our own compiled kernel.

On the CPU a numba kernel over tiles of voxels, in threads: trees of up to 64 leaves
(the usual case for sparse scribbles) by QuickScorer's bit vectors (Lucchese et al.
2015: the nodes of all trees sorted by feature and threshold, each voxel's "go right"
nodes clear leaves from its tree's 64-bit mask; the leaf is the lowest bit left, a
loop that vectorises over voxels), deeper trees by a level-synchronous traversal. On
the GPU an array-based traversal written once for NumPy/CuPy. All decide exactly as
scikit-learn does for float32 features and sum the trees in the same order.
"""

from __future__ import annotations

import functools
from typing import Any

import numba
import numpy as np
from numba.cpython.unsafe.numbers import trailing_zeros

from .. import backend as bk
from .._kernels import _run_range
from ..progress import ProgressCallback, report
from ._filterbank import _threads

#: voxels per tile of the CPU kernel (the bit vectors of a 100-tree tile: 200 kB)
TILE = 256
#: trees with more leaves than bits in a mask are traversed instead
MASK_BITS = 64
#: progress (and Cancel) between chunks of about this many voxel-trees: ~0.1 s with bit
#: masks on one core, a few tenths for deep traversed trees; chunks of more than
#: ``_kernels.SPLIT_VOXELS`` voxel-trees are split over threads
CHUNK_VOXEL_TREES = 1 << 24


class FlatForest:
    """A trained forest as flat arrays, evaluable on NumPy (numba) or CuPy.

    Nodes of all trees are concatenated. ``left``/``right`` are global node indices;
    a leaf points to itself on both sides (so a fixed number of steps reaches it).
    ``threshold`` is float32, rounded *down* from scikit-learn's float64 so that
    ``x <= threshold`` decides exactly as scikit-learn does for float32 ``x``.
    ``value`` holds each leaf's class fractions; the forest's probability is their mean.
    """

    def __init__(self, feature, threshold, left, right, value, roots, depth):
        self.left = np.ascontiguousarray(left, np.int32)
        # a leaf's split feature is never used; 0 keeps the traversal's reads in bounds
        self.feature = np.where(self.left == np.arange(self.left.size), 0,
                                feature).astype(np.int32)
        self.threshold = np.ascontiguousarray(threshold, np.float32)
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
            feats.append(t.feature)
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

    def predict_proba(self, X: Any, backend: str = "numpy",
                      progress: ProgressCallback | None = None) -> Any:
        """Class probabilities ``(K, N)`` float32 for features ``X`` ``(F, N)`` float32.

        On the CPU, ``progress(done, total)`` is called after each chunk of about
        :data:`CHUNK_VOXEL_TREES` voxel-trees (~0.1 s): a callback that raises stops there.
        """
        backend = bk.resolve_backend(backend, "forest.predict")
        if backend != "numpy":
            out = self.predict_proba_xp(X, backend)
            report(progress, 1, 1)
            return out
        X = np.ascontiguousarray(bk.to_host(X), dtype=np.float32)
        if X.shape[0] <= int(self.feature.max(initial=0)):
            raise ValueError(f"the forest splits on feature {int(self.feature.max())} "
                             f"but X has {X.shape[0]} features")
        out = np.empty((self.n_classes, X.shape[1]), np.float32)
        args = (X, *self._scorer, self.feature, self.threshold, self.left, self.right,
                self.value, self.roots, self.depth, out)
        n_tiles = -(-X.shape[1] // TILE)
        step = max(1, CHUNK_VOXEL_TREES // (TILE * self.n_trees))
        for lo in range(0, n_tiles, step):
            hi = min(lo + step, n_tiles)
            # each tile is computed alone, so neither chunks nor threads change a bit
            _run_range(_predict_kernel, args, lo, hi, (hi - lo) * TILE * self.n_trees,
                       _threads())
            report(progress, hi, n_tiles)
        return out

    @functools.cached_property
    def _scorer(self) -> tuple[np.ndarray, ...]:
        """QuickScorer tables of the trees with at most MASK_BITS leaves.

        ``slot`` (per tree: its row of bit vectors, or -1 to traverse it); per internal
        node of those trees, sorted by (feature, threshold): ``thr``, ``row`` (its tree's
        slot) and ``mask`` (all bits but its left subtree's leaves); ``first`` (per
        feature, where its nodes start: ``n_features + 1`` offsets); ``leaf_start`` (per
        slot) and ``leaves`` (the node index of each leaf, left to right)."""
        n_nodes = self.left.size
        is_leaf = self.left == np.arange(n_nodes)
        ends = np.append(self.roots[1:], n_nodes)
        n_leaves = np.add.reduceat(is_leaf, self.roots) if n_nodes else np.zeros(0, int)
        slot = np.full(self.n_trees, -1, np.int32)
        feats, thrs, rows, masks, leaf_start, leaves = [], [], [], [], [], []
        for t in np.flatnonzero(n_leaves <= MASK_BITS):
            slot[t] = len(leaf_start)
            leaf_start.append(len(leaves))
            tree_leaves, span = _leaf_spans(self.left, self.right, int(self.roots[t]))
            leaves += tree_leaves
            for nd in range(int(self.roots[t]), int(ends[t])):
                if not is_leaf[nd]:
                    lo, hi = span[int(self.left[nd])]
                    feats.append(self.feature[nd])
                    thrs.append(self.threshold[nd])
                    rows.append(slot[t])
                    masks.append(~((1 << hi) - (1 << lo)) & (1 << MASK_BITS) - 1)
        feats_a = np.asarray(feats, np.int64)
        thr = np.asarray(thrs, np.float32)
        order = np.lexsort((thr, feats_a))
        n_features = int(self.feature.max()) + 1 if n_nodes else 1
        first = np.searchsorted(feats_a[order], np.arange(n_features + 1)).astype(np.int64)
        return (slot, thr[order], np.asarray(rows, np.int32)[order],
                np.asarray(masks, np.uint64)[order], first,
                np.asarray(leaf_start, np.int32), np.asarray(leaves, np.int32))

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


def _leaf_spans(left: np.ndarray, right: np.ndarray, root: int
                ) -> tuple[list[int], dict[int, tuple[int, int]]]:
    """The leaves of the tree at ``root``, left to right, and per node the range of
    positions of the leaves below it."""
    leaves: list[int] = []
    span: dict[int, tuple[int, int]] = {}
    stack = [(root, False)]
    while stack:  # post-order without recursion
        nd, seen = stack.pop()
        if left[nd] == nd:
            leaves.append(nd)
            span[nd] = (len(leaves) - 1, len(leaves))
        elif seen:
            span[nd] = (span[int(left[nd])][0], span[int(right[nd])][1])
        else:
            stack += [(nd, True), (int(right[nd]), False), (int(left[nd]), False)]
    return leaves, span


@numba.njit(cache=True, nogil=True)
def _predict_kernel(X, slot, thr, row, mask, first, leaf_start, leaves, feature, threshold,
                    left, right, value, roots, depth, out, lo, hi):  # pragma: no cover
    # Tiles lo .. hi - 1 of TILE voxels. Per tile: the bit vectors of the masked trees
    # (thresholds ascending per feature, so a feature stops at the tile's largest value),
    # then the trees in order, each adding its leaf's class fractions.
    n = X.shape[1]
    k = value.shape[1]
    n_trees = roots.shape[0]
    n_masked = leaf_start.shape[0]
    ones = np.uint64(0xFFFFFFFFFFFFFFFF)
    inv = np.float32(1.0) / np.float32(n_trees)
    bits = np.empty((n_masked, TILE), np.uint64)
    acc = np.empty((k, TILE), np.float32)
    nodes = np.empty(TILE, np.int32)
    for b in range(lo, hi):
        start = b * TILE
        m = min(start + TILE, n) - start
        bits[:, :m] = ones
        for f in range(first.shape[0] - 1):
            if first[f] == first[f + 1]:
                continue
            x = X[f, start:start + m]
            top = x.max()
            for q in range(first[f], first[f + 1]):
                t = thr[q]
                if t >= top:
                    break
                mk = mask[q]
                v = bits[row[q]]
                for i in range(m):
                    v[i] &= mk if x[i] > t else ones
        acc[:, :m] = 0
        for tr in range(n_trees):
            s = slot[tr]
            if s >= 0:
                base = leaf_start[s]
                for i in range(m):
                    nodes[i] = leaves[base + trailing_zeros(bits[s, i])]
            else:
                # level-synchronous: all voxels of the tile step one level at a time
                # (independent loads in flight, no data-dependent exit; a leaf steps
                # onto itself)
                nodes[:m] = roots[tr]
                for _ in range(depth[tr]):
                    for i in range(m):
                        nd = nodes[i]
                        nodes[i] = (left[nd] if X[feature[nd], start + i] <= threshold[nd]
                                    else right[nd])
            for i in range(m):
                for c in range(k):
                    acc[c, i] += value[nodes[i], c]
        for c in range(k):
            for i in range(m):
                out[c, start + i] = acc[c, i] * inv
