"""The compiled live-loop forest trainer against scikit-learn."""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import RandomForestClassifier

from napari_corrtomo.core.classify._grow import grow_forest


def _problem(n, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 25)).astype(np.float32)
    y = 1 + (X[:, 0] + 0.5 * X[:, 1] > 0) + 2 * (X[:, 2] > 1.0)
    return X, y.astype(np.uint8)


def test_accuracy_and_importances_match_scikit_learn():
    X, y = _problem(1500, 0)
    Xt, yt = _problem(4000, 1)
    forest, classes, imp = grow_forest(X, y, 40, seed=3)
    assert forest.n_trees == 40 and list(classes) == [1, 2, 3, 4]
    proba = forest.predict_proba(Xt.T)
    np.testing.assert_allclose(proba.sum(axis=0), 1.0, atol=1e-5)
    ours = np.mean(classes[np.argmax(proba, 0)] == yt)
    rf = RandomForestClassifier(40, random_state=0).fit(X, y)
    theirs = np.mean(rf.predict(Xt) == yt)
    assert ours > theirs - 0.03, (ours, theirs)
    # mean decrease in impurity: the three informative features first, like scikit-learn's
    assert np.isclose(imp.sum(), 1.0)
    assert set(np.argsort(imp)[-3:]) == set(np.argsort(rf.feature_importances_)[-3:]) == {0, 1, 2}
    # seeded
    again = grow_forest(X, y, 40, seed=3)[0]
    np.testing.assert_array_equal(again.threshold, forest.threshold)


def test_one_split_lies_between_the_classes():
    x = np.linspace(0, 1, 2001, dtype=np.float32)[:, None]
    y = np.where(x[:, 0] > 0.5, 2, 1)
    forest, classes, _ = grow_forest(x, y, 1, seed=0)
    # the root splits feature 0 between the two classes; each leaf is pure
    assert forest.feature[0] == 0 and abs(forest.threshold[0] - 0.5) < 0.01
    np.testing.assert_array_equal(classes[np.argmax(forest.predict_proba(x.T), 0)], y)
    assert forest.depth[0] == 1 and forest.feature.size == 3
