"""core.classify.pipeline: segment = the classifier's probabilities, their argmax and their
uncertainty, the same in memory and block by block."""

from __future__ import annotations

import json

import dask.array as da
import numpy as np
import pytest

from napari_corrtomo.core._errors import SettingError
from napari_corrtomo.core.classify import (
    FeatureSpec,
    FilterItem,
    LiveTrainer,
    PixelClassifier,
    segment,
    stack_channels,
    weighted_error,
)
from napari_corrtomo.core.classify.files import digest
from napari_corrtomo.core.classify.pipeline import check_channel_intensities
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


# ------------------------------------------------------------------ channel intensities


@pytest.fixture(scope="module")
def detectors(trained, fib_sample, tmp_path_factory):
    """The trained classifier with the FIB sample's detector names, saved and loaded."""
    clf, *_ = trained
    clf = PixelClassifier.load(clf.save(tmp_path_factory.mktemp("clf") / "c.corrclf.npz"))
    clf.channel_names = ["SE2", "InLens"]
    return clf


def test_swapped_channels_are_refused_by_their_intensities(detectors, fib_sample):
    """Files named ch0/ch1 say nothing of their detector: the names cannot catch InLens
    given first (19 % of the voxels changed class), the training intensities do."""
    se2, inlens = fib_sample.image
    with pytest.raises(SettingError) as e:
        segment(detectors, [inlens, se2], names=["ch1.tif", "ch0.tif"])
    msg = str(e.value)
    assert "trained on (SE2, InLens, in this order)" in msg
    assert "with ch0.tif as SE2, ch1.tif as InLens" in msg
    assert msg.endswith("pass the channels in the training order: ch0.tif ch1.tif")
    assert e.value.worded({"reorder": "give the input files"}).endswith(
        "give the input files in the training order: ch0.tif ch1.tif")


@pytest.mark.parametrize("region", [np.s_[:, :, :, :], np.s_[:, :20], np.s_[:, 40:60, 100:, 100:],
                                    np.s_[:, :, 16:]])
def test_the_training_order_passes_without_warning_on_other_regions(detectors, fib_sample,
                                                                    region):
    image = fib_sample.image[region]
    assert check_channel_intensities(detectors, image, ["ch0.tif", "ch1.tif"]) == []
    with pytest.raises(SettingError, match="in another order"):
        check_channel_intensities(detectors, image[::-1])


def test_a_rescaled_channel_is_warned_about(trained, detectors):
    clf, img, _ = trained
    s = segment(detectors, [img[0], img[1] * 255], names=["se2.tif", "inlens_8bit.tif"])
    assert len(s.warnings) == 1
    w = s.warnings[0]
    assert w.startswith("the intensities of inlens_8bit.tif (") and "trained on for InLens" in w
    assert "rescaled (8-bit against float)" in w
    assert segment(detectors, list(img)).warnings == []
    lazy = segment(detectors, [da.from_array(c, chunks=8) for c in (img[0], img[1] * 255)])
    assert lazy.lazy and len(lazy.warnings) == 1 and len(lazy.computed().warnings) == 1


def test_intensities_are_those_of_the_labelled_voxels_live_or_not(trained, fib_sample):
    clf, img, truth = trained
    scr = scribbles_from_truth(truth, slices=(3, 11), strokes_per_class=4, seed=2)
    for c, k in enumerate(clf.classes_):
        for ch in range(2):
            v = img[ch][scr == k]
            np.testing.assert_allclose(clf.class_intensities_[c, ch], (v.mean(), v.std()),
                                       rtol=1e-6)
    live = LiveTrainer(img, clf.features, fib_sample.labels.scale, "nm", n_trees=4)
    np.testing.assert_allclose(live.train(scr).class_intensities_, clf.class_intensities_,
                               rtol=1e-6)


def test_a_classifier_file_without_intensities_predicts_as_before(trained, tmp_path):
    """Files saved before the intensities were kept load, predict the same and are not
    checked."""
    clf, img, _ = trained
    path = clf.save(tmp_path / "new.corrclf.npz")
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(str(arrays.pop("meta")))
    del arrays["class_intensities"]
    meta["digest"] = digest(meta, arrays)
    np.savez(tmp_path / "old.corrclf.npz", meta=np.array(json.dumps(meta)), **arrays)
    old = PixelClassifier.load(tmp_path / "old.corrclf.npz")
    assert old.class_intensities_ is None
    s = segment(old, list(img[::-1]))  # not refused: nothing to compare with
    assert s.warnings == []
    np.testing.assert_array_equal(segment(old, list(img)).probabilities,
                                  clf.predict_proba(img))
