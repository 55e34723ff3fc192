"""Sparse-label random-forest pixel classification (ilastik-style), blockwise on CPU or GPU.

Users paint a few strokes per class; :class:`PixelClassifier` computes the
:mod:`~napari_corrtomo.core.classify.features` filter bank at the labelled voxels only,
fits a random forest (scikit-learn, on the CPU: a few thousand samples train in a
second), and stores the trees as a :class:`~.forest.FlatForest`. Prediction of an
in-memory 3D volume runs slab by slab of whole slices (each slab's features from the
slices its filters reach, in one reused stack); anything else blockwise through
:func:`napari_corrtomo.core.backend.map_blocks` with the halo the largest filter needs,
so any volume size works (NumPy eagerly; dask/zarr lazily). Every slab and block gives
exactly what the whole array would.
"""

from __future__ import annotations

import functools
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier

from .. import backend as bk
from .._checks import check_finite, check_spacing
from ..progress import ProgressCallback, report, scaled
from ..units import convert, normalize_unit
from ._workpool import keeping
from .features import FeatureSpec, compute_features
from .files import FOREST_KEYS, INTENSITIES_KEY, DamagedFile, read_classifier_file, write_classifier_file
from .forest import FlatForest

#: training adds trees in batches of about this many seconds of fitting between progress
#: reports (cancel checks); the batches do not change the forest
TREE_BATCH_S = 0.15


class PixelClassifier:
    """Random-forest pixel classifier trained from sparse labels.

    Parameters
    ----------
    features
        The :class:`~napari_corrtomo.core.classify.features.FeatureSpec`; default ilastik's full
        3D table.
    n_trees
        Number of trees (ilastik and scikit-learn default: 100).
    seed
        Seed of the forest's bootstrap and feature sampling.
    max_depth, min_samples_leaf, max_features
        Tree growth (scikit-learn meaning); defaults grow full trees with sqrt(F)
        features per split, as ilastik does.

    Notes
    -----
    Images are ``(z, y, x)`` or ``(C, z, y, x)`` (2D: ``(y, x)`` / ``(C, y, x)``); the
    labels fix the spatial dimensionality at :meth:`fit`. Labels: 0 = unlabelled,
    any other integer is a class.
    """

    def __init__(self, features: FeatureSpec | None = None, n_trees: int = 100, seed: int = 0,
                 *, max_depth: int | None = None, min_samples_leaf: int = 1,
                 max_features: str | float | int = "sqrt"):
        if int(n_trees) < 1:
            raise ValueError(f"n_trees must be >= 1, got {n_trees}")
        self.features = FeatureSpec.ilastik_default() if features is None else features
        self.n_trees = int(n_trees)
        self.seed = int(seed)
        self.max_depth = max_depth
        self.min_samples_leaf = int(min_samples_leaf)
        self.max_features = max_features
        self.forest: FlatForest | None = None
        self.classes_: np.ndarray | None = None
        self.spacing: tuple[float, ...] | None = None
        self.unit: str = "pixel"
        self.spatial_ndim: int | None = None
        self.n_channels: int | None = None
        self.channel_names: list[str] = []
        self._importances: np.ndarray | None = None
        self.n_samples_: int = 0
        #: ``(K, C, 2)`` mean and standard deviation of each channel's intensity at each
        #: class's labelled voxels (:func:`class_intensities`); None for older files
        self.class_intensities_: np.ndarray | None = None

    # ------------------------------------------------------------------ helpers

    @property
    def fitted(self) -> bool:
        return self.forest is not None

    def _require_fitted(self) -> None:
        if not self.fitted:
            raise ValueError("the classifier is not trained yet: call fit() (Train) first")

    def _require_frame(self) -> None:
        if self.spatial_ndim is None:
            raise ValueError("the classifier is not trained yet: call fit() (Train) first")

    def feature_names(self) -> list[str]:
        self._require_frame()
        return self.features.names(self.channel_names, self.spatial_ndim)

    @property
    def n_features(self) -> int:
        self._require_frame()
        return self.features.n_features(self.n_channels, self.spatial_ndim)

    def halo(self) -> tuple[int, ...]:
        """Context (voxels per spatial axis) the features need; blocks get this halo."""
        self._require_frame()
        return self.features.halo(self.spacing, self.spatial_ndim)

    def _channels(self, image: Any, nd: int, what: str) -> Any:
        """``image`` with a channel axis; checks dimensionality."""
        if image.ndim == nd:
            return image[None]
        if image.ndim == nd + 1:
            return image
        raise ValueError(
            f"{what} has {image.ndim} axes but the labels have {nd} spatial axes; give "
            f"({'z, ' if nd == 3 else ''}y, x) or (channels, {'z, ' if nd == 3 else ''}y, x)"
        )

    def _check_frame(self, spacing, unit) -> tuple[float, ...]:
        """The voxel size to use at prediction; refuses one unlike the training's."""
        if spacing is None:
            return self.spacing
        sp = tuple(float(s) for s in
                   np.broadcast_to(np.asarray(spacing, float), (self.spatial_ndim,)))
        unit = self.unit if unit is None else unit
        try:
            given = tuple(float(convert(s, normalize_unit(unit), self.unit)) for s in sp)
        except ValueError:
            given = sp if normalize_unit(unit) == self.unit else None
        if given is None or not np.allclose(given, self.spacing, rtol=1e-3):
            raise ValueError(
                f"the classifier was trained at voxel size {self.spacing} {self.unit} but this "
                f"volume has {sp} {unit}; resample the volume to the training voxel size or "
                "train a classifier on it"
            )
        return self.spacing

    # ------------------------------------------------------------------ training

    def fit(self, image: Any, labels: Any, spacing: Sequence[float] | float | None = None,
            unit: str = "pixel", channel_names: Sequence[str] | None = None,
            progress: ProgressCallback | None = None) -> PixelClassifier:
        """Train on the labelled voxels of ``labels`` (0 = unlabelled).

        Features are computed only on the slices that carry labels (with the context
        their filters need), so training on a large volume with a few strokes is cheap.
        Raises ``ValueError`` for mismatching shapes, no labels, a single class, or
        NaN/inf in the image.
        """
        labels = np.asarray(bk.to_host(labels))
        img, _ = self._validate_training(image, labels)
        self._set_frame(img, spacing, unit, channel_names)
        X, y = self._training_samples(img, labels, progress)
        # the labelled voxels in the order of y (slice by slice, row-major)
        return self._fit_samples(X, y, labels.dtype, img[:, labels != 0].T)

    def _validate_training(self, image: Any, labels: np.ndarray
                           ) -> tuple[np.ndarray, np.ndarray]:
        """The image with a channel axis and the labelled classes; refuses bad input."""
        nd = labels.ndim
        if nd not in (2, 3):
            raise ValueError(f"labels must be 2D or 3D, got {labels.ndim}D")
        if labels.dtype.kind not in "iub":
            raise ValueError(f"labels must be integers (0 = unlabelled), got {labels.dtype}")
        img = self._channels(np.asarray(bk.to_host(image)), nd, "the image")
        if tuple(img.shape[1:]) != tuple(labels.shape):
            raise ValueError(
                f"labels have shape {labels.shape} but the image's spatial shape is "
                f"{tuple(img.shape[1:])}; paint the scribbles on a Labels layer of the "
                "image's shape"
            )
        classes = check_classes(labels[labels != 0])
        check_finite(img)
        return img, classes

    def _set_frame(self, img: np.ndarray, spacing, unit, channel_names) -> None:
        nd = img.ndim - 1
        self.spatial_ndim = nd
        self.n_channels = int(img.shape[0])
        self.spacing = check_spacing(1.0 if spacing is None else spacing, nd)
        self.unit = normalize_unit(unit)
        if channel_names is not None and len(channel_names) != self.n_channels:
            raise ValueError(f"{len(channel_names)} channel names for {self.n_channels} channels")
        self.channel_names = (list(channel_names) if channel_names is not None
                              else [f"ch{i}" for i in range(self.n_channels)])

    def _fit_samples(self, X: np.ndarray, y: np.ndarray, dtype: Any, values: np.ndarray,
                     progress: ProgressCallback | None = None) -> PixelClassifier:
        """Fit the forest on features ``X`` (N, F) of classes ``y``; ``values`` (N, C): the
        samples' raw intensities (:func:`class_intensities`)."""
        n_jobs = 1 if len(y) < 20000 else min(2, os.cpu_count() or 1)
        rf = RandomForestClassifier(
            n_estimators=self.n_trees, random_state=self.seed, max_depth=self.max_depth,
            min_samples_leaf=self.min_samples_leaf, max_features=self.max_features,
            # threads pay off only for large training sets (measured: 100 trees on ~700
            # samples fit faster on one thread)
            n_jobs=n_jobs, warm_start=True,
        )
        # Trees are added in batches (warm start draws the same per-tree seeds as one
        # fit, so the forest is identical whatever the batches) sized from the time the
        # trees so far took: progress is reported, and Cancel acts, every ~TREE_BATCH_S
        # (a tree on 20 000 samples of noisy features takes up to ~0.7 s here).
        n, step = 0, n_jobs
        while n < self.n_trees:
            add = min(step, self.n_trees - n)
            start = time.perf_counter()
            rf.set_params(n_estimators=n + add)
            rf.fit(X, y)
            n += add
            report(progress, n, self.n_trees)
            rounds = TREE_BATCH_S / max((time.perf_counter() - start) * n_jobs / add, 1e-6)
            step = n_jobs * max(1, int(rounds))
        self._set_forest(FlatForest.from_sklearn(rf), rf.classes_.astype(dtype),
                         rf.feature_importances_, len(y),
                         class_intensities(values, y, rf.classes_))
        self._sklearn = rf
        return self

    def _set_forest(self, forest: FlatForest, classes: np.ndarray, importances: np.ndarray,
                    n_samples: int, intensities: np.ndarray) -> PixelClassifier:
        """Adopt a fitted forest: its classes (label values, in its class order), feature
        importances, the number of voxels it was trained on and their classes'
        intensities (:func:`class_intensities`)."""
        self.forest = forest
        self.classes_ = classes
        self._importances = np.asarray(importances, float)
        self.n_samples_ = int(n_samples)
        self.class_intensities_ = intensities
        self._sklearn = None
        return self

    def _training_samples(self, img: np.ndarray, labels: np.ndarray,
                          progress: ProgressCallback | None) -> tuple[np.ndarray, np.ndarray]:
        """Features (N, F) and classes (N,) at the labelled voxels."""
        if self.spatial_ndim == 2:
            feats = compute_features(img, self.features, self.spacing, spatial_ndim=2)
            mask = labels != 0
            report(progress, 1, 1)
            return np.ascontiguousarray(feats[:, mask].T), labels[mask]
        hz = self.halo()[0]
        zs = np.flatnonzero(np.any(labels != 0, axis=(1, 2)))
        runs = np.split(zs, np.flatnonzero(np.diff(zs) > 1) + 1)
        xs, ys = [], []
        for i, run in enumerate(runs):
            z0, z1 = int(run[0]), int(run[-1]) + 1
            lo, hi = max(z0 - hz, 0), min(z1 + hz, img.shape[1])
            feats = compute_features(img[:, lo:hi], self.features, self.spacing, spatial_ndim=3,
                                     z_range=(z0 - lo, z1 - lo))
            mask = labels[z0:z1] != 0
            xs.append(feats[:, mask].T)
            ys.append(labels[z0:z1][mask])
            report(progress, i + 1, len(runs))
        return np.ascontiguousarray(np.concatenate(xs)), np.concatenate(ys)

    # ------------------------------------------------------------------ prediction

    def _proba(self, block: Any, backend: str, progress: ProgressCallback | None = None,
               z_range: tuple[int, int] | None = None, stack: Any = None) -> Any:
        """Probabilities ``(K, *spatial)`` of ``block`` (``(C, *spatial)``; 3D: of its
        slices ``z_range``), its feature stack written into ``stack`` when given. Progress
        after each feature and each chunk of voxels: Cancel acts within one."""
        check_finite(block, xp=bk.xp_for(backend))
        feats = compute_features(block, self.features, self.spacing,
                                 spatial_ndim=self.spatial_ndim, z_range=z_range,
                                 backend=backend, out=stack,
                                 progress=scaled(progress, 0, 1000, 2000))
        proba = self.forest.predict_proba(feats.reshape(feats.shape[0], -1), backend,
                                          progress=scaled(progress, 1000, 2000, 2000))
        return proba.reshape((-1,) + tuple(feats.shape[1:]))

    def _prepare(self, image: Any, spacing, unit) -> Any:
        self._require_fitted()
        nd = self.spatial_ndim
        if image.ndim == nd:
            image = image[None]
        elif image.ndim != nd + 1:
            raise ValueError(
                f"the image has {image.ndim} axes; this classifier works on {nd}D images "
                f"with {self.n_channels} channel(s)"
            )
        if image.shape[0] != self.n_channels:
            raise ValueError(
                f"the classifier was trained on {self.n_channels} channel(s) "
                f"({', '.join(self.channel_names)}) but got {image.shape[0]}; give the same "
                "channels in the same order"
            )
        self._check_frame(spacing, unit)
        return image

    def _bytes_per_voxel(self) -> float:
        return 4.0 * (self.n_features + 24 + 2 * len(self.classes_))

    def predict_proba(self, image: Any, spacing: Sequence[float] | None = None,
                      unit: str | None = None, *, backend: str = "auto",
                      block_shape: Sequence[int] | None = None, budget: int | str | None = None,
                      progress: ProgressCallback | None = None) -> Any:
        """Class probabilities ``(K, *spatial)`` float32 in the order of ``classes_``.

        NumPy/CuPy input is processed eagerly (NumPy result); dask/zarr input gives a
        lazy dask array computed block by block (use :func:`~napari_corrtomo.core.backend.compute`).
        ``spacing``/``unit``, when given, must match the training voxel size.
        """
        image = self._prepare(image, spacing, unit)
        backend = bk.resolve_backend(backend, "classify.predict")
        halo = self.halo()
        if block_shape is None and not bk.is_lazy(image) and self.spatial_ndim == 3:
            thick = _slab_thickness(image.shape[1:], halo, self._bytes_per_voxel(),
                                    bk.memory_budget(backend, budget), self.n_features)
            if thick is not None:
                return self._predict_slabs(image, thick, backend, progress)
        return bk.map_blocks(functools.partial(self._proba, backend=backend), image, halo,
                             spatial_ndim=self.spatial_ndim,
                             backend=backend, bytes_per_voxel=self._bytes_per_voxel(),
                             block_shape=block_shape, budget=budget, progress=progress,
                             out_leading=(len(self.classes_),), out_dtype=np.float32,
                             inner_progress=True)

    def _predict_slabs(self, image: Any, thick: int, backend: str,
                       progress: ProgressCallback | None) -> np.ndarray:
        """Probabilities of an in-memory 3D image, slab of ``thick`` whole slices after
        slab: each slab's features from the slices its filters reach (``z_range``: the
        passes work on the slab's own slices), written into one reused stack, then the
        forest. The same numbers as the whole volume at once, without its stack (61
        features of a 256^3 volume: 3.9 GB of fresh memory)."""
        n, nf, hz = image.shape[1], self.n_features, self.halo()[0]
        xp = bk.xp_for(backend)
        cuts = np.linspace(0, n, -(-n // thick) + 1).round().astype(int)
        out = np.empty((len(self.classes_),) + tuple(image.shape[1:]), np.float32)
        # one buffer for the thickest slab; each slab's stack is a contiguous view of it
        buffer = xp.empty(nf * int(np.diff(cuts).max()) * math.prod(image.shape[2:]),
                          xp.float32)
        # the work arrays of one slab stay for the next (twice the stack: a generous
        # bound on the passes' intermediates)
        with keeping(2 * nf * 4 * thick * math.prod(image.shape[2:])):
            for i, (z0, z1) in enumerate(zip(cuts[:-1].tolist(), cuts[1:].tolist())):
                lo, hi = max(z0 - hz, 0), min(z1 + hz, n)
                shape = (nf, z1 - z0) + tuple(image.shape[2:])
                stack = buffer[:math.prod(shape)].reshape(shape)
                proba = self._proba(bk.asarray(image[:, lo:hi], backend), backend,
                                    scaled(progress, 2000 * i, 2000 * (i + 1),
                                           2000 * (len(cuts) - 1)),
                                    (z0 - lo, z1 - lo), stack)
                out[:, z0:z1] = bk.to_host(proba)
        return out

    def predict(self, image: Any, spacing: Sequence[float] | None = None, unit: str | None = None,
                **kwargs: Any) -> Any:
        """Class labels (values of ``classes_``), shape ``spatial``."""
        return proba_to_labels(self.predict_proba(image, spacing, unit, **kwargs), self.classes_)

    def uncertainty(self, image: Any, spacing: Sequence[float] | None = None,
                    unit: str | None = None, **kwargs: Any) -> Any:
        """1 - (p_first - p_second): 0 where the forest is sure, 1 where two classes tie."""
        return proba_uncertainty(self.predict_proba(image, spacing, unit, **kwargs))

    def predict_slice(self, image: Any, z: int, backend: str = "numpy") -> np.ndarray:
        """Probabilities ``(K, y, x)`` of slice ``z`` of a 3D image, using only the slab
        of slices its features reach: the live update while painting."""
        image = self._prepare(image, None, None)
        if self.spatial_ndim != 3:
            raise ValueError("predict_slice needs a classifier trained on 3D images")
        n = image.shape[1]
        if not 0 <= z < n:
            raise ValueError(f"slice {z} is outside the {n} slices")
        hz = self.halo()[0]
        lo, hi = max(z - hz, 0), min(z + hz + 1, n)
        slab = np.asarray(bk.to_host(image[:, lo:hi]))
        proba = self._proba(slab, backend, z_range=(z - lo, z - lo + 1))
        return np.asarray(bk.to_host(proba))[:, 0]

    # ------------------------------------------------------------------ inspection

    @property
    def feature_importances(self):
        """pandas DataFrame (feature, importance), most important first (mean decrease in
        impurity of the forest)."""
        self._require_fitted()
        df = pd.DataFrame({"feature": self.feature_names(), "importance": self._importances})
        return df.sort_values("importance", ascending=False, ignore_index=True)

    # ------------------------------------------------------------------ files

    def save(self, path: str | os.PathLike) -> Path:
        """Write a versioned classifier file (NumPy ``.npz``, no pickles, with a content
        digest), atomically; ``.corrclf.npz`` is added to a name without ``.npz``. Returns
        the path written."""
        self._require_fitted()
        meta = {
            "features": self.features.to_dict(),
            "spacing": list(self.spacing), "unit": self.unit,
            "spatial_ndim": self.spatial_ndim, "n_channels": self.n_channels,
            "channel_names": self.channel_names,
            "classes": [int(c) for c in self.classes_], "labels_dtype": str(self.classes_.dtype),
            "n_trees": self.n_trees, "seed": self.seed, "max_depth": self.max_depth,
            "min_samples_leaf": self.min_samples_leaf, "max_features": self.max_features,
            "n_samples": self.n_samples_, "n_features": self.n_features,
        }
        arrays = {"importances": self._importances, **self.forest.arrays()}
        if self.class_intensities_ is not None:
            arrays[INTENSITIES_KEY] = self.class_intensities_
        return write_classifier_file(path, meta, arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> PixelClassifier:
        """Read a file written by :meth:`save`; any other, damaged or crafted file is
        refused with a ``ValueError`` before any of it is used (see :mod:`.files`)."""
        path = Path(path)
        meta, arrays = read_classifier_file(path)
        try:
            clf = cls(FeatureSpec.from_dict(meta["features"]), meta["n_trees"], meta["seed"],
                      max_depth=meta["max_depth"], min_samples_leaf=meta["min_samples_leaf"],
                      max_features=meta["max_features"])
        except (KeyError, TypeError, ValueError) as exc:
            raise DamagedFile(f"{path.name}: this classifier file is damaged or not a "
                              f"napari-corrtomo classifier (its settings: {exc})") from exc
        clf.forest = FlatForest(*(arrays[k] for k in FOREST_KEYS))
        clf.classes_ = np.asarray(meta["classes"], dtype=meta["labels_dtype"])
        clf.spacing = tuple(float(s) for s in meta["spacing"])
        clf.unit = meta["unit"]
        clf.spatial_ndim = meta["spatial_ndim"]
        clf.n_channels = meta["n_channels"]
        clf.channel_names = list(meta["channel_names"])
        clf._importances = np.asarray(arrays["importances"], float)
        clf.n_samples_ = meta["n_samples"]
        clf.class_intensities_ = arrays.get(INTENSITIES_KEY)
        if clf.n_features != meta["n_features"]:
            raise DamagedFile(f"{path.name}: this classifier file is damaged or not a "
                              f"napari-corrtomo classifier (its features give {clf.n_features} "
                              f"values per voxel, its forest expects {meta['n_features']})")
        return clf


def class_intensities(values: np.ndarray, y: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """``(K, C, 2)``: mean and standard deviation of each channel's raw intensity
    (``values``, ``(N, C)``) at the labelled voxels of each of ``classes`` (``y``, ``(N,)``).

    Kept with the classifier so that prediction can tell channels given in another order
    or at another scale from those it was trained on
    (:func:`~napari_corrtomo.core.classify.pipeline.check_channel_intensities`).
    """
    values = np.asarray(values, np.float64)
    out = np.empty((len(classes), values.shape[1], 2))
    for k, c in enumerate(classes):
        v = values[y == c]
        out[k, :, 0], out[k, :, 1] = v.mean(axis=0), v.std(axis=0)
    return out


def check_classes(values: np.ndarray) -> np.ndarray:
    """The classes among the labelled voxels' ``values``; refuses none, one or negatives."""
    classes = np.unique(values)
    if classes.size == 0:
        raise ValueError("no labelled voxels: paint a few strokes for at least two classes")
    if classes.size == 1:
        raise ValueError(
            f"only class {int(classes[0])} is labelled; paint strokes for at least two "
            "classes to train a classifier"
        )
    if np.any(classes < 0):
        raise ValueError("labels must be >= 0 (0 = unlabelled)")
    return classes


#: bytes of the feature stack of one slab of an in-memory 3D prediction (see
#: :meth:`PixelClassifier._predict_slabs`): small enough to stay mapped from slab to
#: slab, thick enough that the context the filters read around it costs little
SLAB_BYTES = 512 << 20


def _slab_thickness(shape: Sequence[int], halo: Sequence[int], bytes_per_voxel: float,
                    budget: int, n_features: int) -> int | None:
    """Slices per slab of a 3D prediction of whole (y, x) planes (:data:`SLAB_BYTES` of
    features, at least 16 slices, at most what the budget allows with the z halo), or
    None when not even one slice with its halo fits: then map_blocks tiles all axes."""
    plane = math.prod(shape[1:])
    fit = int(budget // (plane * bytes_per_voxel)) - 2 * int(halo[0])
    if fit < 1:
        return None
    return max(1, min(fit, shape[0], max(16, SLAB_BYTES // (4 * n_features * plane))))


def proba_to_labels(proba: Any, classes: np.ndarray) -> Any:
    """Most probable class (its label value) per voxel; works on NumPy and dask arrays."""
    classes = np.asarray(classes)
    if bk.is_lazy(proba):
        return da.map_blocks(lambda p: classes[np.argmax(p, axis=0)], proba, drop_axis=0,
                             dtype=classes.dtype)
    return classes[np.argmax(np.asarray(proba), axis=0)]


def proba_uncertainty(proba: Any) -> Any:
    """1 - margin between the two most probable classes (float32)."""
    if bk.is_lazy(proba):
        return da.map_blocks(_margin_uncertainty, proba, drop_axis=0, dtype=np.float32)
    return _margin_uncertainty(np.asarray(proba))


def _margin_uncertainty(p: np.ndarray) -> np.ndarray:
    if p.shape[0] < 2:
        return np.zeros(p.shape[1:], np.float32)
    top2 = np.sort(p, axis=0)[-2:]
    return (1.0 - (top2[1] - top2[0])).astype(np.float32)
