import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_corrtomo.core import synthetic as syn


def _rims():
    """Class 2 in three thin mistakes of 100, 30 and 3 pixels; class 1 elsewhere."""
    truth = np.ones((40, 120), np.uint8)
    truth[5, 10:110] = 2  # a 1-pixel rim, 100 long
    truth[20, 10:40] = 2  # 30 long
    truth[30, 10:13] = 2  # 3 long
    return truth


def test_correction_strokes_cover_the_largest_mistakes_with_their_true_class():
    truth = _rims()
    prediction = np.ones_like(truth)  # every class-2 pixel predicted wrong
    labels = np.zeros_like(truth)
    labels[35, 50:60] = 1  # earlier strokes stay
    labels[5, 10:50] = 2  # 40 pixels of the longest rim are painted: 60 left to correct
    out = syn.correction_strokes(truth, prediction, labels, mistakes_per_class=2,
                                 stroke_length_px=40, seed=3)
    added = (out != labels)
    assert np.all(labels == np.where(added, 0, out))
    assert np.all(out[added] == 2) and np.all(truth[added] == 2)  # only mistakes, true class
    assert added[5, 50:].sum() == 40  # the rest of the rim: one stroke of 40 pixels along it
    assert ndi.label(added[5])[1] == 1  # grown through the rim: one connected piece
    assert added[20].sum() == 30  # the second: all of it (shorter than a stroke)
    assert added[30].sum() == 0  # the third largest is left for the next round
    # class 1 has no mistakes here; predicted right where painted, nothing more to paint
    assert syn.correction_strokes(truth, truth, out, seed=3).tolist() == out.tolist()


def test_correction_strokes_skip_what_is_painted_and_vary_with_the_seed():
    truth = _rims()
    prediction = np.ones_like(truth)
    first = syn.correction_strokes(truth, prediction, np.zeros_like(truth), 1, 40, seed=0)
    second = syn.correction_strokes(truth, prediction, first, 1, 40, seed=0)
    # the next round's stroke goes on the largest mistake not painted yet
    again = second != first
    assert 0 < again.sum() <= 40 and ndi.label(again)[1] == 1 and not np.any(again & (first > 0))
    others = {syn.correction_strokes(truth, prediction, np.zeros_like(truth), 1, 40,
                                     seed=s)[5].tobytes() for s in range(5)}
    assert len(others) > 1  # the stroke starts at a random pixel of the mistake


def test_correction_strokes_need_planes_of_one_shape():
    truth = _rims()
    with pytest.raises(ValueError, match="planes of one shape"):
        syn.correction_strokes(truth, truth[:-1], np.zeros_like(truth))
    with pytest.raises(ValueError, match="planes of one shape"):
        syn.correction_strokes(truth[None], truth[None], np.zeros_like(truth)[None])


def test_correction_rounds_train_a_live_trainer_slice_by_slice_on_its_mistakes():
    """Interior strokes on a blurred two-phase image leave the forest's edge where the
    strokes leave it; rounds of corrections (strokes where the live prediction errs)
    are taken by the trainer and lower the mistakes of the painted slices."""
    from napari_corrtomo.core.classify import LiveTrainer
    from napari_corrtomo.core.classify.features import FeatureSpec, FilterItem

    rng = np.random.default_rng(0)
    truth = np.ones((6, 64, 64), np.uint8)
    truth[:, :, 30:] = 2
    truth[:, 20:44, 10:30] = 2  # a bright block reaching into the dark phase
    image = ndi.gaussian_filter(np.where(truth == 2, 1.0, 0.0), (0, 2.0, 2.0))
    image += np.where(truth == 2, 0.25, 0.0) * ndi.gaussian_filter(  # texture: not one grey
        rng.normal(size=truth.shape), (0, 1, 1)) + rng.normal(0, 0.05, truth.shape)
    slices = (1, 4)
    first = syn.scribbles_from_truth(truth, slices=slices, strokes_per_class=1, margin_px=6,
                                     seed=1)
    spec = FeatureSpec((FilterItem("gaussian", 1.0, "2d"), FilterItem("ggm", 1.0, "2d")))

    def mistakes(trainer):
        trainer.update(None)
        return sum(int(np.sum(trainer.predict_slice(z).argmax(0) + 1 != truth[z]))
                   for z in slices)

    plain = LiveTrainer(image.astype(np.float32), spec, n_trees=20, seed=0)
    plain.set_labels(first)
    trainer = LiveTrainer(image.astype(np.float32), spec, n_trees=20, seed=0)
    out = syn.correction_rounds(trainer, truth, first, slices, rounds=3, seed=2)
    added = (out != first)
    assert np.all(out[first > 0] == first[first > 0])
    assert np.all(out[added] == truth[added])
    assert set(np.nonzero(added)[0]) <= set(slices) and added.sum() > 0
    assert trainer.n_labelled == np.count_nonzero(out)  # every stroke given to the trainer
    assert mistakes(trainer) < mistakes(plain) / 5  # measured: 30 vs 901 pixels
