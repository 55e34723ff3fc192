"""Peak-memory estimates (core.memory): close to measured peaks, and a request that does
not fit is refused before it allocates anything."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from napari_corrtomo.core.classify.features import FeatureSpec, compute_features
from napari_corrtomo.core.memory import TooLarge, check_memory, peak_bytes
from napari_corrtomo.core.quantify import (
    local_thickness,
    separate_particles,
    tortuosity_factor,
    volume_fraction_profile,
)

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "memory.py"


def _rss() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS"))


@pytest.mark.parametrize("what, structure", [
    ("local thickness", "network"), ("particle separation", "network"),
    ("particle separation", "spheres"), ("tortuosity factor", "network"),
    ("features", "network"), ("distance to the interface", "network")])
def test_estimate_is_within_25_percent_of_the_measured_peak(what, structure):
    """The measurement of benchmarks/memory.py (fresh process, Linux peak resident size
    around one call), at 128^3: the estimate must be within 25 % of it."""
    out = subprocess.run([sys.executable, str(BENCH), "--one", what, structure, "128"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    row = json.loads(out.stdout.strip().splitlines()[-1])
    assert row["peak"] > 0
    assert row["estimate"] == pytest.approx(row["peak"], rel=0.25)


@pytest.mark.parametrize("what, run", [
    ("local thickness", lambda m: local_thickness(m, 1.0)),
    ("particle separation", lambda m: separate_particles(m, 1.0)),
    ("tortuosity factor", lambda m: tortuosity_factor(m, 1.0, backend="numpy")),
    ("distance to the interface", lambda m: volume_fraction_profile(m, m, 1.0, 1.0)),
])
def test_a_2048_cubed_request_is_refused_before_allocating(what, run):
    mask = np.zeros((2048, 2048, 2048), bool)  # address space only: its pages are untouched
    mask[1024, 1024, 1024] = True
    before = _rss()
    with pytest.raises(TooLarge) as info:
        run(mask)
    assert _rss() - before < 50e6
    message = str(info.value)
    assert what in message and "2048 x 2048 x 2048" in message
    estimate = peak_bytes(what, mask.shape)
    assert f"{estimate / 1e9:.1f} GB" in message
    assert "not started" in message and ("block by block" in message or "crop" in message)


def test_features_beyond_the_budget_are_refused_and_a_slab_of_them_is_not():
    image = np.zeros((1024, 1024, 1024), np.float32)  # untouched pages
    spec = FeatureSpec.ilastik_default()
    with pytest.raises(TooLarge, match="features of a 1024 x 1024 x 1024 volume"):
        compute_features(image, spec, spatial_ndim=3)
    # the live update of one slice works on that slice only, however large the volume
    small = np.random.default_rng(0).random((40, 32, 32), dtype=np.float32)
    one = compute_features(small, spec, spatial_ndim=3, z_range=(20, 21))
    whole = compute_features(small, spec, spatial_ndim=3)
    np.testing.assert_allclose(one[:, 0], whole[:, 20], rtol=1e-5, atol=1e-5)


def test_the_budget_can_be_set_and_the_message_says_so(monkeypatch):
    monkeypatch.setenv("CORRTOMO_MEMORY_BUDGET", "10MB")
    mask = np.zeros((128, 128, 128), bool)
    mask[40:80, 40:80, 40:80] = True
    with pytest.raises(TooLarge, match="CORRTOMO_MEMORY_BUDGET"):
        local_thickness(mask, 1.0)
    assert check_memory("local thickness", (64, 64, 64)) == peak_bytes("local thickness",
                                                                       (64, 64, 64))
    monkeypatch.setenv("CORRTOMO_MEMORY_BUDGET", "1GB")
    assert local_thickness(mask, 1.0).max() > 0
