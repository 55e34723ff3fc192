"""Shared fixtures: small, seeded sample data reused across the suite."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Tests compare CPU answers; a GPU, if any, is exercised by tests that ask for it.
os.environ.setdefault("CORRTOMO_BACKEND", "numpy")


@pytest.fixture(scope="session", autouse=True)
def _recovery_folder(tmp_path_factory):
    """Sessions without a project autosave here, not into the user's cache folder."""
    os.environ["CORRTOMO_RECOVERY_DIR"] = str(tmp_path_factory.mktemp("recovery"))


@pytest.fixture(scope="session")
def correlative_sample():
    from napari_corrtomo.core.synthetic import correlative_particles

    return correlative_particles(seed=0)


@pytest.fixture(scope="session")
def fib_sample():
    from napari_corrtomo.core.synthetic import fib_sem_stack

    return fib_sem_stack(seed=0)


# Property tests (tests/core/test_properties.py): reproducible in CI (derandomized), bounded.
settings.register_profile("corrtomo", max_examples=40, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                 HealthCheck.too_slow])
# A deeper search for developers: HYPOTHESIS_PROFILE=thorough make test
settings.register_profile("thorough", max_examples=1000, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                 HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "corrtomo"))


def _stand_in():
    spec = importlib.util.spec_from_file_location("strict_cupy", Path(__file__).with_name(
        "strict_cupy.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def strict_cupy(monkeypatch):
    """The strict CuPy stand-in (tests/strict_cupy.py) as ``cupy`` with one "device",
    so CuPy code paths run without a GPU; host/device mix-ups raise TypeError."""
    from napari_corrtomo.core import backend

    module = _stand_in()
    yield module, module.install(monkeypatch)
    backend.cupy_available.cache_clear()


@pytest.fixture
def cupy_device(monkeypatch):
    """``"device"`` where CuPy sees a CUDA device (``make gpu-check``), else ``"stand-in"``
    with the strict stand-in installed: a CuPy code path's test runs on every machine."""
    from napari_corrtomo.core import backend

    if backend.cupy_available():
        yield "device"
        return
    _stand_in().install(monkeypatch)
    yield "stand-in"
    backend.cupy_available.cache_clear()
