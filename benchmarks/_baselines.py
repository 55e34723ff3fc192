"""Benchmark-only segmentation baselines (Osenberg et al., 2023, Fig. 1)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.tree import DecisionTreeClassifier


class ThresholdTree:
    """The seed's "triple threshold": a depth-2 decision tree on one channel's grey value,
    fitted on labelled voxels; up to three thresholds, each interval mapped to a class."""

    def __init__(self, max_depth: int = 2, seed: int = 0):
        self.max_depth = int(max_depth)
        self.seed = int(seed)

    def fit(self, image: Any, labels: Any) -> ThresholdTree:
        img, labels = np.asarray(image, np.float32), np.asarray(labels)
        if img.shape != labels.shape:
            raise ValueError(f"labels {labels.shape} and image {img.shape} differ in shape")
        mask = labels != 0
        if np.unique(labels[mask]).size < 2:
            raise ValueError("label at least two classes to fit thresholds")
        self.tree_ = DecisionTreeClassifier(max_depth=self.max_depth, random_state=self.seed)
        self.tree_.fit(img[mask][:, None], labels[mask])
        t = self.tree_.tree_
        self.thresholds_ = np.sort(t.threshold[t.children_left >= 0])
        return self

    def predict(self, image: Any) -> np.ndarray:
        img = np.asarray(image, np.float32)
        return self.tree_.predict(img.reshape(-1, 1)).reshape(img.shape)
