"""Interactive training: paint, retrain, see the visible slice update (Qt-free session)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import backend as bk
from .._checks import check_finite
from ..progress import ProgressCallback, report, scaled
from .classifier import PixelClassifier
from .features import FeatureSpec, compute_features


class LiveTrainer:
    """Interactive training on one image: paint, retrain, see the visible slice update.

    Features of every slice that is shown or painted are computed once and cached (the
    image does not change while painting), so an update after a brush stroke costs a
    forest fit on the labelled voxels plus one forest evaluation of the visible slice.
    The cache is bounded by ``cache_bytes`` (least recently used slices are dropped).
    Works on 3D images (slices along z) and on 2D images (one "slice").
    """

    def __init__(self, image: Any, features: FeatureSpec | None = None,
                 spacing: Sequence[float] | float | None = None, unit: str = "pixel",
                 channel_names: Sequence[str] | None = None, *, spatial_ndim: int = 3,
                 n_trees: int = 100, seed: int = 0, cache_bytes: float = 1.5e9,
                 backend: str = "numpy"):
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
        self._cache: dict[int, np.ndarray] = {}

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return tuple(self.image.shape[1:])

    def slice_features(self, z: int, progress: ProgressCallback | None = None) -> np.ndarray:
        """(F, y, x) features of slice ``z`` (of the whole image in 2D), cached;
        ``progress`` after each feature computed."""
        z = int(z) if self.classifier.spatial_ndim == 3 else 0
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
            if not 0 <= z < n:
                raise ValueError(f"slice {z} is outside the {n} slices")
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

    def train(self, labels: Any, progress: ProgressCallback | None = None) -> PixelClassifier:
        """(Re)fit the forest on all labelled voxels; returns the classifier.

        ``progress(done, total)`` is called after each labelled slice's features and each
        batch of trees (a callback that raises stops the training between them).
        """
        labels = np.asarray(bk.to_host(labels))
        clf = self.classifier
        clf._validate_training(self.image, labels)
        if clf.spatial_ndim == 2:
            zs, planes = [0], [labels]
        else:
            zs = np.flatnonzero(np.any(labels != 0, axis=(1, 2))).tolist()
            planes = [labels[z] for z in zs]
        xs, ys = [], []
        total = 2 * len(zs)  # features of each slice, then the forest
        for i, (z, plane) in enumerate(zip(zs, planes, strict=True)):
            mask = plane != 0
            xs.append(self.slice_features(z, scaled(progress, i, i + 1, total))[:, mask].T)
            ys.append(plane[mask])
            report(progress, i + 1, total)
        return clf._fit_samples(np.ascontiguousarray(np.concatenate(xs)), np.concatenate(ys),
                                labels.dtype, scaled(progress, len(zs), total, total))

    def predict_slice(self, z: int = 0) -> np.ndarray:
        """Probabilities ``(K, y, x)`` of slice ``z`` with the current forest."""
        clf = self.classifier
        clf._require_fitted()
        feats = self.slice_features(z)
        proba = clf.forest.predict_proba(feats.reshape(feats.shape[0], -1), self.backend)
        return np.asarray(bk.to_host(proba)).reshape((len(clf.classes_),) + feats.shape[1:])
