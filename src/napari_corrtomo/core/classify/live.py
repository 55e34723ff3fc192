"""Interactive training: paint, retrain, see the visible slice update (Qt-free session)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import backend as bk
from .._checks import check_finite, check_labels, check_same_shape
from ..progress import ProgressCallback, report, scaled
from ._grow import grow_forest
from .classifier import (
    PixelClassifier,
    check_classes,
    class_intensities,
    proba_to_labels,
    proba_uncertainty,
)
from .features import FeatureSpec, compute_features
from .forest import FlatForest
from .sampling import stratified_subsample

#: trees grown per batch in a live update; the first batch's prediction is shown at once
LIVE_BATCH_TREES = 8
#: a live fit uses at most this many labelled voxels (stratified, seeded subsample)
MAX_LIVE_SAMPLES = 20_000


@dataclass(frozen=True)
class LiveUpdate:
    """One refresh of the visible slice: the forest grown so far and its prediction.

    Attributes
    ----------
    z
        The slice (0 for a 2D image).
    proba
        ``(K, y, x)`` float32 class probabilities, in the order of ``classes``.
    classes
        ``(K,)`` the painted label values.
    n_samples
        Labelled voxels the forest was fitted on (after the cap).
    n_labelled
        Labelled voxels painted in all.
    n_trees
        Trees behind ``proba``; the update is final when it equals ``n_trees_total``.
    n_trees_total
        Trees of the whole forest.
    labels
        ``(y, x)`` most probable class (its label value) per pixel (computed with the
        update, off the GUI thread).
    uncertainty
        ``(y, x)`` float32 in [0, 1]: one minus the margin between the two most probable
        classes (:func:`proba_uncertainty`), where the next strokes help most.
    """

    z: int
    proba: np.ndarray
    classes: np.ndarray
    n_samples: int
    n_labelled: int
    n_trees: int
    n_trees_total: int
    labels: np.ndarray = field(init=False)
    uncertainty: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", proba_to_labels(self.proba, self.classes))
        object.__setattr__(self, "uncertainty", proba_uncertainty(self.proba))

    @property
    def final(self) -> bool:
        return self.n_trees == self.n_trees_total


class LiveTrainer:
    """Interactive training on one image: paint, retrain, see the visible slice update.

    Features of every slice that is shown or painted are computed once and cached (the
    image does not change while painting), and so are the feature vectors of each
    slice's strokes: an update after a brush stroke costs the stroke's slice
    (:meth:`set_slice_labels`), a forest fit on the labelled voxels (at most
    ``max_samples``, a stratified seeded subsample beyond) and one forest evaluation of
    the visible slice (:meth:`update`). The forest grows in batches of ``batch_trees``
    trees, each evaluated on the slice once, so the first batch's prediction can be
    shown while the rest grows. The feature cache is bounded by ``cache_bytes`` (least
    recently used slices are dropped). Works on 3D images (slices along z) and on 2D
    images (one "slice").
    """

    def __init__(self, image: Any, features: FeatureSpec | None = None,
                 spacing: Sequence[float] | float | None = None, unit: str = "pixel",
                 channel_names: Sequence[str] | None = None, *, spatial_ndim: int = 3,
                 n_trees: int = 100, seed: int = 0, cache_bytes: float = 1.5e9,
                 backend: str = "numpy", batch_trees: int = LIVE_BATCH_TREES,
                 max_samples: int = MAX_LIVE_SAMPLES):
        img = np.asarray(bk.to_host(image))
        if img.ndim == spatial_ndim:
            img = img[None]
        if img.ndim != spatial_ndim + 1 or spatial_ndim not in (2, 3):
            raise ValueError(f"image of {img.ndim} axes does not fit {spatial_ndim} spatial axes")
        check_finite(img)
        self.image = img
        self.classifier = PixelClassifier(features, n_trees, seed)
        self.classifier._set_frame(img, spacing, unit, channel_names)
        self.cache_bytes = float(cache_bytes)
        self.backend = backend
        self.batch_trees = max(int(batch_trees), 1)
        self.max_samples = int(max_samples)
        self._cache: dict[int, np.ndarray] = {}
        # per labelled slice: its strokes' feature vectors (N, F), classes (N,) and raw
        # intensities (N, C) -- at most max_samples of them (memory stays bounded on huge
        # label sets) -- and the number of voxels painted
        self._samples: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, int]] = {}
        self._dtype = np.dtype(np.uint8)
        # strokes taken (bumped by every edit) and those the classifier's forest has seen
        self._edits = 0
        self._fitted_edits = -1

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return tuple(self.image.shape[1:])

    @property
    def n_labelled(self) -> int:
        """Labelled voxels taken so far (before the cap)."""
        return sum(n for *_, n in self._samples.values())

    def _z(self, z: int) -> int:
        if self.classifier.spatial_ndim == 2:
            return 0
        n = self.image.shape[1]
        if not 0 <= int(z) < n:
            raise ValueError(f"slice {z} is outside the {n} slices")
        return int(z)

    def slice_features(self, z: int, progress: ProgressCallback | None = None) -> np.ndarray:
        """(F, y, x) features of slice ``z`` (of the whole image in 2D), cached;
        ``progress`` after each feature computed."""
        z = self._z(z)
        if z in self._cache:
            feats = self._cache.pop(z)
            self._cache[z] = feats  # most recent last
            return feats
        clf = self.classifier
        if clf.spatial_ndim == 2:
            feats = compute_features(self.image, clf.features, clf.spacing, spatial_ndim=2,
                                     backend=self.backend, progress=progress)
        else:
            n = self.image.shape[1]
            hz = clf.halo()[0]
            lo, hi = max(z - hz, 0), min(z + hz + 1, n)
            feats = compute_features(self.image[:, lo:hi], clf.features, clf.spacing,
                                     spatial_ndim=3, z_range=(z - lo, z - lo + 1),
                                     backend=self.backend, progress=progress)[:, 0]
        feats = np.asarray(bk.to_host(feats))
        self._cache[z] = feats
        while (len(self._cache) > 1
               and sum(f.nbytes for f in self._cache.values()) > self.cache_bytes):
            self._cache.pop(next(iter(self._cache)))
        return feats

    # ------------------------------------------------------------------ strokes

    def set_labels(self, labels: Any, progress: ProgressCallback | None = None) -> None:
        """Take all strokes of ``labels`` (the whole scribble array, 0 = unlabelled).

        Refuses scribbles of the wrong shape or type, none, or a single class.
        ``progress`` after each labelled slice (features of a slice not seen yet are
        computed here).
        """
        labels = np.asarray(bk.to_host(labels))
        self.classifier._validate_training(self.image, labels)
        self._dtype = labels.dtype
        planes = {0: labels} if self.classifier.spatial_ndim == 2 else {
            int(z): labels[z] for z in np.flatnonzero(np.any(labels != 0, axis=(1, 2)))}
        samples = {}
        for i, (z, plane) in enumerate(planes.items()):
            samples[z] = self._slice_samples(z, plane, scaled(progress, i, i + 1, len(planes)))
        self._samples = samples
        self._edits += 1

    def set_slice_labels(self, z: int, plane: Any, progress: ProgressCallback | None = None
                         ) -> None:
        """Take the strokes of slice ``z`` (``(y, x)``; the whole labels in 2D) after an
        edit; the other slices keep theirs."""
        z = self._z(z)
        plane = check_labels(plane, "the scribbles")
        check_same_shape(plane, self.image[0, z] if self.image.ndim == 4 else self.image[0],
                         "the scribble slice", "the image slice")
        self._dtype = plane.dtype
        self._edits += 1
        if np.any(plane):
            self._samples[z] = self._slice_samples(z, plane, progress)
        else:
            self._samples.pop(z, None)

    def _slice_samples(self, z: int, plane: np.ndarray, progress: ProgressCallback | None
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        at = np.flatnonzero(plane)
        painted, y = at.size, plane.ravel()[at]
        keep = stratified_subsample(y, self.max_samples, self.classifier.seed + z)
        if keep is not None:
            at, y = at[keep], y[keep]
        feats = self.slice_features(z, progress)
        raw = self.image[:, z] if self.classifier.spatial_ndim == 3 else self.image
        return (np.ascontiguousarray(feats.reshape(feats.shape[0], -1)[:, at].T), y,
                raw.reshape(raw.shape[0], -1)[:, at].T, painted)

    def training_set(self) -> tuple[np.ndarray, np.ndarray]:
        """Feature vectors ``(N, F)`` and classes ``(N,)`` the next fit uses: every stroke,
        or a stratified seeded subsample of ``max_samples`` beyond that (drawn from each
        slice's own subsample of at most ``max_samples``)."""
        parts = [self._samples[z] for z in sorted(self._samples)]
        y = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, self._dtype)
        check_classes(y)
        idx = stratified_subsample(y, self.max_samples, self.classifier.seed)
        if idx is None:
            return np.concatenate([p[0] for p in parts]), y
        # gather slice by slice (no copy of every stroke's features)
        bounds = np.cumsum([0] + [len(p[1]) for p in parts])
        xs = [p[0][idx[(idx >= a) & (idx < b)] - a]
              for p, a, b in zip(parts, bounds[:-1], bounds[1:], strict=True)]
        return np.concatenate(xs), y[idx]

    # ------------------------------------------------------------------ forest

    def update(self, z: int | None = 0, progress: ProgressCallback | None = None,
               on_preview: Callable[[LiveUpdate], None] | None = None) -> LiveUpdate | None:
        """Refit the forest on the strokes taken so far and predict slice ``z``.

        The forest grows in batches of ``batch_trees`` trees (each fitted on the same
        samples with its own seed, drawn from the classifier's seed); after each batch
        the slice's probabilities of all trees so far are known, and those of the first
        batch go to ``on_preview`` (called in the calling thread, to show them at once;
        the forest grows on when it returns). The classifier takes the whole
        forest only at the end: cancelled in between (``progress`` raises after each
        batch's fit and after its prediction), it keeps its previous forest. The slice is
        evaluated in one pass per batch (chunks would copy the strided feature columns:
        measured slower than the cancel checks they add).
        ``z=None`` fits without predicting (returns None). Without new strokes since the
        last fit (the visible slice changed) the forest is only evaluated, not refitted.
        """
        clf = self.classifier
        if clf.fitted and self._fitted_edits == self._edits:
            if z is None:
                return None
            z = self._z(z)
            return LiveUpdate(z, self.predict_slice(z, progress), clf.classes_, clf.n_samples_,
                              self.n_labelled, clf.forest.n_trees, clf.n_trees)
        edits = self._edits
        X, y = self.training_set()
        sizes = [min(self.batch_trees, clf.n_trees - a)
                 for a in range(0, clf.n_trees, self.batch_trees)]
        seeds = np.random.default_rng(clf.seed).integers(0, 2**31 - 1, len(sizes))
        flat = None
        if z is not None:
            z = self._z(z)
            feats = self.slice_features(z, progress)
            flat = feats.reshape(feats.shape[0], -1)
        steps = 2 * len(sizes)
        forests, importances = [], []
        acc, update = None, None
        for i, (k, seed) in enumerate(zip(sizes, seeds, strict=True)):
            forest, classes, imp = grow_forest(X, y, k, int(seed))
            forests.append(forest)
            importances.append(imp * k)
            report(progress, 2 * i + 1, steps)
            if flat is None:
                continue
            proba = bk.to_host(forest.predict_proba(flat, self.backend)) * np.float32(k)
            acc = proba if acc is None else acc + proba
            report(progress, 2 * i + 2, steps)
            done = sum(sizes[:i + 1])
            update = LiveUpdate(z, (acc / np.float32(done)).reshape((-1,) + feats.shape[1:]),
                                classes.astype(self._dtype), len(y), self.n_labelled, done,
                                clf.n_trees)
            if i == 0 and on_preview is not None and not update.final:
                on_preview(update)
        # the batches are one forest (the same samples, independent seeds)
        parts = [self._samples[z] for z in sorted(self._samples)]
        intensities = class_intensities(np.concatenate([p[2] for p in parts]),
                                        np.concatenate([p[1] for p in parts]), classes)
        clf._set_forest(FlatForest.concat(forests), classes.astype(self._dtype),
                        np.sum(importances, axis=0) / clf.n_trees, len(y), intensities)
        self._fitted_edits = edits
        return update

    def train(self, labels: Any, progress: ProgressCallback | None = None) -> PixelClassifier:
        """(Re)fit the forest on all labelled voxels of ``labels``; returns the classifier.

        ``progress(done, total)`` is called after each labelled slice's features and each
        batch of trees (a callback that raises stops the training between them).
        """
        self.set_labels(labels, scaled(progress, 0, 1, 2))
        self.update(None, scaled(progress, 1, 2, 2))
        return self.classifier

    def predict_slice(self, z: int = 0, progress: ProgressCallback | None = None) -> np.ndarray:
        """Probabilities ``(K, y, x)`` of slice ``z`` with the current forest (``progress``
        while the slice's features are computed, if not cached)."""
        clf = self.classifier
        clf._require_fitted()
        feats = self.slice_features(z, progress)
        proba = clf.forest.predict_proba(feats.reshape(feats.shape[0], -1), self.backend)
        return np.asarray(bk.to_host(proba)).reshape((len(clf.classes_),) + feats.shape[1:])

