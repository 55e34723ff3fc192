"""Fixtures for the reconstruction tests: small, seeded projection samples (session scope)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def parallel_sample():
    from napari_corrtomo.core.synthetic import projections

    return projections("parallel", seed=0, volume_shape=(16, 64, 64), det_shape=(16, 64),
                       photons=None)


@pytest.fixture(scope="session")
def cone_sample():
    from napari_corrtomo.core.synthetic import projections

    return projections("cone", seed=0, volume_shape=(40, 40, 40), det_shape=(52, 52),
                       n_angles=120, photons=None)


@pytest.fixture(scope="session")
def lamino_sample():
    from napari_corrtomo.core.synthetic import projections

    return projections("laminography", seed=0, volume_shape=(16, 40, 40), det_shape=(36, 40),
                       n_angles=90, photons=None)


@pytest.fixture(scope="session")
def tilt_sample():
    from napari_corrtomo.core.synthetic import projections

    return projections("tilt_series", seed=0, volume_shape=(48, 16, 48), det_shape=(16, 48),
                       n_angles=120, photons=None)
