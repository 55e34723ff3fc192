"""Shared fixtures: small, seeded sample data reused across the suite."""

from __future__ import annotations

import os

import pytest

# Tests compare CPU answers; a GPU, if any, is exercised by tests that ask for it.
os.environ.setdefault("CORRTOMO_BACKEND", "numpy")


@pytest.fixture(scope="session")
def correlative_sample():
    from napari_corrtomo.core.synthetic import correlative_particles

    return correlative_particles(seed=0)


@pytest.fixture(scope="session")
def fib_sample():
    from napari_corrtomo.core.synthetic import fib_sem_stack

    return fib_sem_stack(seed=0)
