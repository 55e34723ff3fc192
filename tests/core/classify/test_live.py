"""LiveTrainer: per-slice strokes, batch-grown forest, preview, cancel, cap."""

from __future__ import annotations

import numpy as np
import pytest

from napari_corrtomo.core.classify import LiveTrainer, PixelClassifier
from napari_corrtomo.core.classify.features import FeatureSpec, FilterItem
from napari_corrtomo.core.progress import Cancelled
from napari_corrtomo.core.synthetic import scribbles_from_truth

SPEC = FeatureSpec(tuple(FilterItem(n, s) for n in ("gaussian", "ggm", "hessian")
                         for s in (0.7, 1.6)))


@pytest.fixture(scope="module")
def crop(fib_sample):
    img = fib_sample.image[0, 8:32, 16:80, 40:104].copy()
    truth = fib_sample.labels.data[8:32, 16:80, 40:104].copy()
    scr = scribbles_from_truth(truth, slices=(4, 12), strokes_per_class=4, seed=1)
    return img, truth, scr, fib_sample.labels.scale


def _trainer(crop, **kw):
    img, _, _, sp = crop
    return LiveTrainer(img, SPEC, sp, "nm", n_trees=40, seed=0, batch_trees=16, **kw)


def test_update_predicts_the_slice_as_the_whole_forest_does(crop):
    img, truth, scr, sp = crop
    live = _trainer(crop)
    live.set_labels(scr)
    previews = []
    update = live.update(12, on_preview=previews.append)
    clf = live.classifier
    # the batches (16 + 16 + 8 trees) became one forest of 40
    assert clf.forest.n_trees == 40 and update.n_trees == update.n_trees_total == 40
    assert update.final and update.n_samples == update.n_labelled == int((scr > 0).sum())
    [first] = previews
    assert first.n_trees == 16 and not first.final and first.z == 12
    # the incremental mean of the batches = the whole forest evaluated independently
    # (the classifier's own slab features, its own forest pass)
    np.testing.assert_allclose(update.proba, clf.predict_slice(img, 12), atol=1e-5)
    np.testing.assert_allclose(update.proba, live.predict_slice(12), atol=1e-5)
    np.testing.assert_array_equal(update.labels, clf.classes_[np.argmax(update.proba, 0)])
    # the uncertainty: 1 - (top - runner-up), from the probabilities independently
    second, top = np.partition(update.proba, -2, axis=0)[-2:]
    np.testing.assert_allclose(update.uncertainty, 1.0 - (top - second), atol=1e-6)
    # and it segments: most of an unlabelled slice right
    forest = clf.forest
    other = live.update(8)
    assert np.mean(other.labels == truth[8]) > 0.85
    # and its uncertainty points at the mistakes: higher where the labels are wrong
    wrong = other.labels != truth[8]
    assert other.uncertainty[wrong].mean() > 1.5 * other.uncertainty[~wrong].mean()
    # another slice without new strokes: the same forest evaluated, not refitted
    assert clf.forest is forest and other.final and other.n_trees == 40
    np.testing.assert_allclose(other.proba, clf.predict_slice(img, 8), atol=1e-5)
    live.set_slice_labels(12, scr[12])  # an edit (even one giving the same strokes) refits
    live.update(8)
    assert clf.forest is not forest


def test_a_stroke_on_one_slice_equals_taking_all_strokes_again(crop):
    img, truth, scr, sp = crop
    more = scr.copy()
    extra = scribbles_from_truth(truth, slices=(12,), strokes_per_class=1, seed=7)
    more[12][extra[12] > 0] = extra[12][extra[12] > 0]
    by_slice = _trainer(crop)
    by_slice.set_labels(scr)
    by_slice.set_slice_labels(12, more[12])
    whole = _trainer(crop)
    whole.set_labels(more)
    for a, b in zip(by_slice.training_set(), whole.training_set(), strict=True):
        np.testing.assert_array_equal(a, b)
    # erasing a slice drops its strokes
    by_slice.set_slice_labels(4, np.zeros_like(scr[4]))
    assert by_slice.n_labelled == int((more[12] > 0).sum())
    with pytest.raises(ValueError, match="different shapes"):
        by_slice.set_slice_labels(12, more[12, :10])
    by_slice.set_slice_labels(12, np.where(more[12] == 1, 1, 0).astype(np.uint8))
    with pytest.raises(ValueError, match="only class 1"):
        by_slice.update(12)


def test_cancel_between_batches_keeps_the_previous_forest(crop):
    _, _, scr, _ = crop
    live = _trainer(crop)
    live.train(scr)
    before = live.classifier.forest
    live.set_slice_labels(4, scr[4])  # an edit: the next update refits

    def cancel_after_preview(done, total):
        if done > 1:
            raise Cancelled()

    with pytest.raises(Cancelled):
        live.update(12, cancel_after_preview)
    assert live.classifier.forest is before


def test_the_cap_subsamples_every_class(crop):
    _, _, scr, _ = crop
    live = _trainer(crop, max_samples=60)
    live.set_labels(scr)
    update = live.update(12)
    assert update.n_samples == live.classifier.n_samples_ == 60
    assert update.n_labelled == int((scr > 0).sum()) > 60
    _, y = live.training_set()
    assert set(np.unique(y)) == {1, 2, 3}
    # each slice keeps at most the cap (memory stays bounded), every class in it
    for x, ys, values, painted in live._samples.values():
        assert len(ys) == len(x) == len(values) == min(60, painted)
        assert len(np.unique(ys)) == 3


def test_train_gives_a_fitted_classifier_on_2d(crop):
    img, truth, scr, sp = crop
    live = LiveTrainer(img[12], SPEC, sp[1:], "nm", spatial_ndim=2, n_trees=20)
    clf = live.train(scr[12])
    assert isinstance(clf, PixelClassifier) and clf.forest.n_trees == 20
    update = live.update(0)
    assert update.proba.shape == (3,) + img.shape[1:]
    np.testing.assert_allclose(update.proba, clf.predict_proba(img[12]), atol=1e-5)
