"""Proxigram metrics on blurred interfaces of known width."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_corrtomo.core.quantify import proxigram


@pytest.mark.parametrize("sigma_vox", [1.5, 3.0])
def test_gaussian_edge_gives_analytic_width(sigma_vox):
    # planar silica/pore interface between voxel planes 19 and 20 (x axis), blurred
    spacing = (0.5, 0.5, 0.065)
    mask = np.zeros((8, 10, 40), bool)
    mask[..., 20:] = True
    img = ndi.gaussian_filter(mask.astype(float), (0, 0, sigma_vox), mode="nearest")
    p = proxigram(img * 3.0 + 1.0, mask, spacing, max_distance=12 * 0.065)
    s = 0.065 * sigma_vox
    # Phi(x / s) crosses 0.25 / 0.75 at -+0.6745 s
    assert p.x25 == pytest.approx(-0.6745 * s, abs=0.1 * s + 0.004)
    assert p.x75 == pytest.approx(0.6745 * s, abs=0.1 * s + 0.004)
    assert p.dx == pytest.approx(1.349 * s, rel=0.08)
    assert p.slope == pytest.approx(0.5 / p.dx)
    assert p.dy == pytest.approx(1.0, abs=0.02)
    assert p.normalized.min() == 0.0 and p.normalized.max() == 1.0
    t = p.table()
    assert list(t.columns)[0] == "distance_um" and len(t) == 24
    assert {"x25_um", "x75_um", "dx_um", "slope_per_um", "dy"} == set(p.summary())


def test_phase_contrast_fringes_lower_dy():
    mask = np.zeros((4, 4, 60), bool)
    mask[..., 30:] = True
    x = np.arange(60) - 29.5
    edge = 0.5 * (1 + np.tanh(x / 1.5))
    fringe = 2.0 * np.exp(-((x - 2) ** 2) / 2) - 2.0 * np.exp(-((x + 2) ** 2) / 2)
    img = np.broadcast_to(edge + fringe, mask.shape)
    p = proxigram(img, mask, 1.0, 20)
    assert p.dy < 0.5  # plateaus close together once the fringes set the 0..1 range


def test_bad_input():
    mask = np.zeros((5, 5, 5), bool)
    mask[:, :, 2:] = True
    with pytest.raises(ValueError, match="no interface"):
        proxigram(np.ones((5, 5, 5)), np.ones((5, 5, 5), bool), 1.0, 2.0)
    with pytest.raises(ValueError, match="shape"):
        proxigram(np.ones((5, 5, 4)), mask, 1.0, 2.0)
    with pytest.raises(ValueError, match="binary"):
        proxigram(np.ones((5, 5, 5)), mask * 2, 1.0, 2.0)
    img = np.ones((5, 5, 5))
    img[2, 2, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        proxigram(img, mask, 1.0, 2.0)
