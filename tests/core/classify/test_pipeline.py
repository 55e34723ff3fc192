"""core.classify.pipeline: segment = the classifier's probabilities, their argmax and their
uncertainty, the same in memory and block by block."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from napari_corrtomo.core.classify import (
    FeatureSpec,
    FilterItem,
    PixelClassifier,
    segment,
    stack_channels,
    weighted_error,
)
from napari_corrtomo.core.synthetic import scribbles_from_truth


@pytest.fixture(scope="module")
def trained(fib_sample):
    img = fib_sample.image[:, 8:24, 16:64, 40:88].copy()
    truth = fib_sample.labels.data[8:24, 16:64, 40:88].copy()
    scr = scribbles_from_truth(truth, slices=(3, 11), strokes_per_class=4, seed=2)
    spec = FeatureSpec(tuple(FilterItem(n, s) for n in ("gaussian", "ggm") for s in (0.7, 1.6)))
    clf = PixelClassifier(spec, n_trees=10, seed=0).fit(img, scr, fib_sample.labels.scale, "nm")
    return clf, img, truth


def test_segment_is_probabilities_argmax_and_margin(trained):
    clf, img, truth = trained
    s = segment(clf, list(img))
    proba = clf.predict_proba(img)
    np.testing.assert_array_equal(s.probabilities, proba)
    np.testing.assert_array_equal(s.labels, clf.classes_[np.argmax(proba, axis=0)])
    top2 = np.sort(proba, axis=0)[-2:]
    np.testing.assert_allclose(s.uncertainty, 1 - (top2[1] - top2[0]), atol=1e-6)
    assert weighted_error(truth, s.labels, truth > 0) < 20  # a real segmentation (awe %)
    assert s.computed() is s and not s.lazy


def test_block_by_block_equals_in_memory(trained):
    clf, img, _ = trained
    eager = segment(clf, list(img))
    lazy = segment(clf, [da.from_array(c, chunks=(8, 24, 24)) for c in img])
    assert lazy.lazy
    done = lazy.computed()
    np.testing.assert_allclose(done.probabilities, eager.probabilities, atol=1e-5)
    np.testing.assert_array_equal(done.labels, eager.labels)
    forced = segment(clf, list(img), lazy=True)
    assert forced.lazy


def test_channels_and_classifier_are_checked(trained):
    clf, img, _ = trained
    with pytest.raises(ValueError, match="differ in shape"):
        stack_channels([img[0], img[1][:-1]])
    with pytest.raises(ValueError, match="no channel"):
        stack_channels([])
    with pytest.raises(ValueError, match="not trained"):
        segment(PixelClassifier(clf.features), list(img))
    # two 2D channels for a 3D classifier stacked into one 3D volume ("got 1 channel")
    with pytest.raises(ValueError, match=r"the images are 2D but this classifier was trained "
                                         r"on 3D volumes \(z, y, x\)"):
        segment(clf, [c[0] for c in img])
