"""The stratified, seeded training-set cap."""

from __future__ import annotations

import numpy as np
import pytest

from napari_corrtomo.core.classify.sampling import stratified_subsample


def test_under_the_cap_everything_is_used():
    assert stratified_subsample(np.array([1, 2, 2, 3]), 4) is None


def test_small_classes_are_kept_whole_and_the_rest_shares_the_cap():
    rng = np.random.default_rng(0)
    y = rng.permutation(np.repeat([1, 2, 3], [10, 1000, 5000]))
    idx = stratified_subsample(y, 600, seed=4)
    assert len(idx) == 600 and np.all(np.diff(idx) > 0)  # sorted, no repeats
    # water filling: class 1 keeps its 10, classes 2 and 3 share the other 590 equally
    np.testing.assert_array_equal(np.bincount(y[idx])[1:], [10, 295, 295])
    np.testing.assert_array_equal(idx, stratified_subsample(y, 600, seed=4))  # seeded
    assert not np.array_equal(idx, stratified_subsample(y, 600, seed=5))


def test_a_cap_below_the_classes_is_refused():
    with pytest.raises(ValueError, match="below the 3 classes"):
        stratified_subsample(np.array([1, 2, 3, 3]), 2)
