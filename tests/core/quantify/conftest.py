"""Shared structures for the transport tests."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi


def _random_structure(shape, porosity, sigma=1.5, seed=0):
    """Thresholded smoothed noise: a bicontinuous random medium with the given porosity."""
    field = ndi.gaussian_filter(np.random.default_rng(seed).standard_normal(shape), sigma)
    return field < np.quantile(field, porosity)


@pytest.fixture
def random_structure():
    return _random_structure
