"""PixelClassifier, the flat forest, metrics, baselines and simulated scribbles."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_corrtomo.core import classify as cmod
from napari_corrtomo.core.classify import (
    FlatForest,
    PixelClassifier,
    iou_per_class,
    weighted_error,
)
from napari_corrtomo.core.classify.features import FeatureSpec, FilterItem, TailoredFeatures
from napari_corrtomo.core.synthetic import scribbles_from_truth
from napari_corrtomo.core.threshold import otsu_segment

SPEC = FeatureSpec(
    tuple(FilterItem(n, s) for n in ("gaussian", "ggm", "hessian", "ste") for s in (0.7, 1.6)),
    channel_differences=True, tailored=TailoredFeatures(sigmas=(1.0,)))


@pytest.fixture(scope="module")
def crop(fib_sample):
    """A 24 x 64 x 64 crop of the FIB-SEM sample (below the ruler band), both detectors."""
    img = fib_sample.image[:, 8:32, 16:80, 40:104].copy()
    truth = fib_sample.labels.data[8:32, 16:80, 40:104].copy()
    scr = scribbles_from_truth(truth, slices=(4, 12, 20), strokes_per_class=4, seed=1)
    return img, truth, scr, fib_sample.labels.scale


@pytest.fixture(scope="module")
def trained(crop):
    img, truth, scr, sp = crop
    return PixelClassifier(SPEC, n_trees=24, seed=0).fit(img, scr, sp, "nm", ["SE2", "InLens"])


def test_scribbles_lie_inside_their_class_on_the_chosen_slices(crop):
    _, truth, scr, _ = crop
    labelled = np.nonzero(scr)
    assert set(np.unique(labelled[0])) == {4, 12, 20}
    assert np.array_equal(scr[labelled], truth[labelled])
    assert set(np.unique(scr[scr > 0])) == {1, 2, 3}
    assert np.array_equal(scr, scribbles_from_truth(truth, slices=(4, 12, 20),
                                                    strokes_per_class=4, seed=1))
    assert scr.astype(bool).mean() < 0.01  # sparse


def test_flat_forest_equals_scikit_learn(trained, crop):
    img, *_ = crop
    from napari_corrtomo.core.classify.features import compute_features

    X = compute_features(img, SPEC, trained.spacing).reshape(trained.n_features, -1)
    ref = trained._sklearn.predict_proba(X.T).T
    fast = trained.forest.predict_proba(X)
    xp_path = trained.forest.predict_proba_xp(X)
    np.testing.assert_allclose(fast, ref, atol=1e-6)
    np.testing.assert_allclose(xp_path, ref, atol=1e-6)
    assert np.array_equal(np.argmax(fast, 0), np.argmax(ref, 0))


def test_float32_thresholds_decide_like_scikit_learn():
    from sklearn.ensemble import RandomForestClassifier

    # adjacent float32 values: the float64 midpoint threshold must not round up
    a = np.float32(1.0)
    b = np.nextafter(a, np.float32(2))
    X = np.array([[a], [b]] * 20, np.float32)
    y = np.array([0, 1] * 20)
    rf = RandomForestClassifier(3, random_state=0, bootstrap=False).fit(X, y)
    ff = FlatForest.from_sklearn(rf)
    probe = np.array([[a, b]], np.float32)
    np.testing.assert_array_equal(ff.predict_proba(probe), rf.predict_proba(probe.T).T)


def test_masked_and_traversed_trees_predict_like_scikit_learn():
    from sklearn.ensemble import RandomForestClassifier

    from napari_corrtomo.core.classify import forest as forest_mod

    # noisy labels grow trees of hundreds of leaves (traversed) next to depth-3 trees
    # (bit masks); the split over threads (from SPLIT_VOXELS voxel-trees) must not change
    # a bit either
    rng = np.random.default_rng(3)
    X = rng.random((3000, 6)).astype(np.float32)
    y = (X[:, 0] + 0.3 * rng.random(3000) > 0.6).astype(int) + (X[:, 1] > 0.5)
    deep = RandomForestClassifier(4, random_state=0).fit(X, y)
    shallow = RandomForestClassifier(5, random_state=1, max_depth=3).fit(X, y)
    ff = FlatForest.concat([FlatForest.from_sklearn(deep), FlatForest.from_sklearn(shallow)])
    slot = ff._scorer[0]
    assert np.array_equal(slot >= 0, [False] * 4 + [True] * 5)
    probe = rng.random((6, 120000)).astype(np.float32)
    ref = (deep.predict_proba(probe.T) * 4 + shallow.predict_proba(probe.T) * 5).T / 9
    got = ff.predict_proba(probe)
    np.testing.assert_allclose(got, ref, atol=1e-6)
    np.testing.assert_allclose(got, ff.predict_proba_xp(probe), atol=1e-6)
    split = np.concatenate([ff.predict_proba(probe[:, a:a + forest_mod.TILE * 3])
                            for a in range(0, probe.shape[1], forest_mod.TILE * 3)], axis=1)
    assert np.array_equal(got, split)


def test_training_learns_the_phases(trained, crop):
    img, truth, scr, _ = crop
    pred = trained.predict(img)
    assert pred.shape == truth.shape and pred.dtype == scr.dtype
    awe_rf = weighted_error(truth, pred)
    awe_otsu = weighted_error(truth, otsu_segment(img[0], mask=truth > 0))
    assert awe_rf < awe_otsu
    assert awe_rf < 25.0


def test_blockwise_prediction_equals_whole_array_exactly(trained, crop):
    img, *_ = crop
    whole = trained.predict_proba(img, block_shape=img.shape[1:])
    blocks = trained.predict_proba(img, block_shape=(10, 24, 40))
    assert np.array_equal(whole, blocks)
    # the default in-memory path: slabs of whole slices, the filters on each slab's own
    # slices (z_range) into one reused stack; a tiny stack forces several slabs
    assert np.array_equal(trained.predict_proba(img), whole)
    from napari_corrtomo.core.classify import classifier as clf_mod

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(clf_mod, "SLAB_BYTES", 1)
        assert clf_mod._slab_thickness(img.shape[1:], trained.halo(), 1.0, 1 << 30,
                                    trained.n_features) == 16 < img.shape[1]
        assert np.array_equal(trained.predict_proba(img), whole)
        # slabs of unequal thickness (24 slices in 5 -> 5, 5, 4, 5, 5) share one buffer
        mp.setattr(clf_mod, "_slab_thickness", lambda *a: 5)
        assert np.array_equal(trained.predict_proba(img), whole)
    import dask.array as da

    lazy = trained.predict_proba(da.from_array(img, chunks=(2, 12, 32, 32)))
    assert isinstance(lazy, da.Array)
    assert np.array_equal(lazy.compute(), whole)
    labels = cmod.proba_to_labels(lazy, trained.classes_)
    assert np.array_equal(labels.compute(), trained.classes_[np.argmax(whole, 0)])


def test_live_slice_matches_the_volume(trained, crop):
    img, *_ = crop
    whole = trained.predict_proba(img)
    for z in (0, 11, 23):
        sl = trained.predict_slice(img, z)
        np.testing.assert_allclose(sl, whole[:, z], atol=0.02)
        assert np.mean(np.argmax(sl, 0) == np.argmax(whole[:, z], 0)) > 0.995


def test_trees_fitted_in_batches_of_any_size_give_the_same_forest(crop, monkeypatch):
    """The forest grows in time-sized batches (a progress report, i.e. a cancel check,
    after each): one tree at a time or all at once, the same forest."""
    from napari_corrtomo.core.classify import classifier as clf_mod

    img, _, scr, sp = crop
    spec = FeatureSpec((FilterItem("gaussian", 0.7), FilterItem("ggm", 1.6)))
    whole = PixelClassifier(spec, n_trees=12, seed=2).fit(img, scr, sp)
    monkeypatch.setattr(clf_mod, "TREE_BATCH_S", 0.0)  # a report after every tree
    X, y = whole._training_samples(img, scr, None)
    calls = []
    one_by_one = PixelClassifier(spec, n_trees=12, seed=2)
    one_by_one._set_frame(img, sp, "pixel", None)
    one_by_one._fit_samples(X, y, scr.dtype, img[:, scr != 0].T,
                           lambda d, t: calls.append((d, t)))
    assert calls == [(n, 12) for n in range(1, 13)]
    for k, v in whole.forest.arrays().items():
        assert np.array_equal(getattr(one_by_one.forest, k), v), k


def test_uncertainty_and_importances(trained, crop):
    img, *_ = crop
    proba = trained.predict_proba(img)
    unc = trained.uncertainty(img)
    top = np.sort(proba, axis=0)
    np.testing.assert_allclose(unc, 1 - (top[-1] - top[-2]), atol=1e-6)
    assert unc.min() >= 0 and unc.max() <= 1
    imp = trained.feature_importances
    assert len(imp) == trained.n_features == SPEC.n_features(2)
    assert np.isclose(imp["importance"].sum(), 1.0)
    assert imp["importance"].is_monotonic_decreasing


def test_save_load_round_trip(trained, crop, tmp_path):
    img, *_ = crop
    path = trained.save(tmp_path / "clf.corrclf.npz")
    again = PixelClassifier.load(path)
    assert again.features == trained.features
    assert again.channel_names == ["SE2", "InLens"]
    assert again.spacing == trained.spacing and again.unit == "nm"
    assert np.array_equal(again.classes_, trained.classes_)
    assert np.array_equal(again.predict_proba(img), trained.predict_proba(img))
    assert again.feature_importances.equals(trained.feature_importances)


def test_a_name_without_npz_gets_the_classifier_suffix(trained, tmp_path):
    """A name typed without an extension is saved where the load dialog (``*.npz``) finds
    it; a name ending in .npz is kept."""
    assert trained.save(tmp_path / "myclassifier") == tmp_path / "myclassifier.corrclf.npz"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["myclassifier.corrclf.npz"]
    assert PixelClassifier.load(tmp_path / "myclassifier.corrclf.npz").fitted
    assert trained.save(tmp_path / "c.npz") == tmp_path / "c.npz"


def test_incompatible_files_are_refused(trained, tmp_path):
    path = trained.save(tmp_path / "c.npz")
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(str(arrays["meta"]))
    meta["version"] = cmod.FILE_VERSION + 1
    arrays["meta"] = np.array(json.dumps(meta))
    newer = tmp_path / "newer.npz"
    np.savez(newer, **arrays)
    with pytest.raises(ValueError, match="newer than .* upgrade"):
        PixelClassifier.load(newer)
    meta["version"], meta["format"] = cmod.FILE_VERSION, "something-else"
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "other.npz", **arrays)
    with pytest.raises(ValueError, match="not a napari-corrtomo classifier"):
        PixelClassifier.load(tmp_path / "other.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a napari-corrtomo classifier"):
        PixelClassifier.load(tmp_path / "junk.npz")
    with pytest.raises(ValueError, match="no such"):
        PixelClassifier.load(tmp_path / "missing.npz")


def test_bad_input_is_refused(crop, trained):
    img, truth, scr, sp = crop
    clf = PixelClassifier(SPEC, n_trees=4)
    with pytest.raises(ValueError, match="labels have shape"):
        clf.fit(img, scr[:, :-1])
    with pytest.raises(ValueError, match="no labelled voxels"):
        clf.fit(img, np.zeros_like(scr))
    with pytest.raises(ValueError, match="only class 2"):
        clf.fit(img, np.where(scr == 2, 2, 0).astype(scr.dtype))
    bad = img.copy()
    bad[0, 3, 4, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        clf.fit(bad, scr)
    with pytest.raises(ValueError, match="NaN"):
        trained.predict(bad)
    with pytest.raises(ValueError, match="trained on 2 channel"):
        trained.predict(img[0])
    with pytest.raises(ValueError, match="voxel size"):
        trained.predict(img, spacing=(10.0, 10.0, 10.0), unit="nm")
    # the same voxel size in other units is accepted
    in_um = tuple(s / 1000 for s in sp)
    assert trained.predict(img[:, :6], spacing=in_um, unit="um").shape == (6, 64, 64)
    with pytest.raises(ValueError, match="not trained"):
        PixelClassifier().predict(img)


def test_metrics_on_known_cases():
    truth = np.array([[1, 1, 2, 2], [3, 3, 3, 3], [0, 0, 1, 1]])
    pred = np.array([[1, 2, 2, 2], [3, 3, 3, 1], [3, 3, 1, 1]])
    ious = iou_per_class(truth, pred)
    # class 1: 4 true, 4 predicted inside the mask (truth != 0), 3 shared -> 3 / 5
    # class 3: 4 true, 3 predicted in the mask (the two on truth 0 do not count) -> 3 / 4
    assert ious == {1: 3 / 5, 2: 2 / 3, 3: 3 / 4}
    frac = {1: 4 / 10, 2: 2 / 10, 3: 4 / 10}
    expected = (1 - sum(ious[c] * frac[c] for c in frac)) * 100
    assert weighted_error(truth, pred) == pytest.approx(expected)
    assert weighted_error(truth, truth) == 0.0


def test_otsu_baseline_recovers_levels():
    rng = np.random.default_rng(0)
    truth = rng.integers(1, 4, size=(20, 20, 20)).astype(np.uint8)
    img = np.array([0, 0.1, 0.5, 0.9], np.float32)[truth] + rng.normal(0, 0.02, truth.shape)
    assert weighted_error(truth, otsu_segment(img)) < 0.5
