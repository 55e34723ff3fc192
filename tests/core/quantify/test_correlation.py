"""Two-point correlation and lineal path against direct counts and closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from napari_corrtomo.core.quantify import lineal_path, two_point_correlation
from napari_corrtomo.core.synthetic import paint_spheres


def _direct_s2(a: np.ndarray, axis: int, k: int) -> float:
    a = np.moveaxis(a, axis, -1)
    n = a.shape[-1]
    return float(np.mean(a[..., : n - k] & a[..., k:]))


def _direct_lp(a: np.ndarray, axis: int, k: int) -> float:
    a = np.moveaxis(a, axis, -1)
    n = a.shape[-1]
    ok = np.ones(a[..., : n - k].shape, bool)
    for j in range(k + 1):
        ok &= a[..., j:n - k + j]
    return float(ok.mean())


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_directional_functions_match_direct_counts(axis):
    rng = np.random.default_rng(4)
    m = rng.random((20, 24, 28)) < 0.4
    sp = (2.0, 1.0, 1.5)
    d, s2 = two_point_correlation(m, sp, 9.0, axis=axis)
    k = np.arange(len(d))
    np.testing.assert_allclose(d, k * sp[axis])
    np.testing.assert_allclose(s2, [_direct_s2(m, axis, i) for i in k], atol=1e-12)
    lengths, lp = lineal_path(m, sp, 9.0, axis=axis)
    np.testing.assert_allclose(lp, [_direct_lp(m, axis, i) for i in k], atol=1e-12)
    # voxel noise: S2(r > 0) = p^2 and L(k) = p^(k+1) in expectation
    p = m.mean()
    assert abs(s2[2] - p * p) < 0.01 and abs(lp[2] - p**3) < 0.01


def test_lamellar_structure_closed_form():
    # layers 3 voxels thick every 8 voxels along z (64 = 8 periods), uniform in y and x
    m = np.zeros((64, 10, 12), bool)
    for j in range(8):
        m[8 * j:8 * j + 3] = True
    d, s2 = two_point_correlation(m, 0.5, 5.0, axis=0)
    k = np.arange(11)
    same = np.clip(3 - k, 0, None) * 8
    next_layer = np.clip(3 - np.abs(k - 8), 0, None) * 7
    np.testing.assert_allclose(s2, (same + next_layer) / (64 - k), atol=1e-12)
    _, lp = lineal_path(m, 0.5, 5.0, axis=0)
    np.testing.assert_allclose(lp, same / (64 - k), atol=1e-12)
    for ax in (1, 2):  # along the layers every segment stays in its layer
        np.testing.assert_allclose(two_point_correlation(m, 0.5, 4.0, axis=ax)[1], 3 / 8)
        np.testing.assert_allclose(lineal_path(m, 0.5, 4.0, axis=ax)[1], 3 / 8)


@pytest.fixture(scope="module")
def boolean_model():
    """Void of a Boolean model of spheres (radius 5 voxels): closed-form S2 and L."""
    rng = np.random.default_rng(1)
    n, r = 80, 5.0
    count = rng.poisson(0.0025 * (n + 2 * r) ** 3)
    solid = np.zeros((n, n, n), bool)
    paint_spheres(solid, rng.uniform(-r, n + r, (count, 3)), np.full(count, r), True, (1, 1, 1))
    ball = np.zeros((15, 15, 15), bool)
    paint_spheres(ball, np.array([[7.0, 7, 7]]), np.array([r]), True, (1, 1, 1))
    r_eff = (3 * ball.sum() / (4 * np.pi)) ** (1 / 3)  # the digitised sphere's radius
    return ~solid, r_eff


def test_boolean_model_closed_forms(boolean_model):
    void, r_eff = boolean_model
    phi = void.mean()
    spacing = 0.2  # um
    d, s2 = two_point_correlation(void, spacing, 3.0)
    r = d / spacing
    overlap = np.where(r < 2 * r_eff, 1 - 3 * r / (4 * r_eff) + r**3 / (16 * r_eff**3), 0)
    np.testing.assert_allclose(d, np.arange(16) * spacing)
    assert s2[0] == pytest.approx(phi)
    np.testing.assert_allclose(s2, phi ** (2 - overlap), atol=0.01)
    lengths, lp = lineal_path(void, spacing, 3.0)
    np.testing.assert_allclose(lp, phi ** (1 + 3 * (lengths / spacing) / (4 * r_eff)), atol=0.01)
    assert np.all(np.diff(lp) <= 0)
    for ax in range(3):
        np.testing.assert_allclose(two_point_correlation(void, spacing, 3.0, axis=ax)[1],
                                   phi ** (2 - overlap), atol=0.012)


def test_anisotropic_spacing_gives_the_same_physical_curve(boolean_model):
    void, _ = boolean_model
    # keep every 2nd z-slice: 2x coarser along z, same structure in physical units
    coarse = void[::2]
    d_ref, s_ref = two_point_correlation(void, 1.0, 12.0, axis=0)
    d, s = two_point_correlation(coarse, (2.0, 1.0, 1.0), 12.0, axis=0)
    np.testing.assert_allclose(d, d_ref[::2])
    np.testing.assert_allclose(s, s_ref[::2], atol=0.01)
    d, s = two_point_correlation(coarse, (2.0, 1.0, 1.0), 12.0)
    np.testing.assert_allclose(d, np.arange(13.0))
    np.testing.assert_allclose(s, two_point_correlation(void, 1.0, 12.0)[1], atol=0.012)


def test_two_dimensional_orientation_average():
    rng = np.random.default_rng(2)
    m = np.zeros((200, 200), bool)
    for _ in range(300):
        cy, cx = rng.uniform(0, 200, 2)
        yy, xx = np.ogrid[:200, :200]
        m |= (yy - cy) ** 2 + (xx - cx) ** 2 <= 16
    d, s2 = two_point_correlation(m, 1.0, 20.0)
    assert s2[0] == pytest.approx(m.mean()) and abs(s2[-1] - m.mean() ** 2) < 0.01
    _, lp = lineal_path(m, 1.0, 20.0)
    assert lp[0] == pytest.approx(m.mean()) and np.all(np.diff(lp) <= 1e-12)


def _pairs_within(a: np.ndarray, w: np.ndarray, axis: int, k: int, whole: bool) -> float:
    """Segments of k steps along ``axis`` with both ends (``whole``: every voxel) in ``a``,
    over those in ``w``."""
    a, w = np.moveaxis(a, axis, -1), np.moveaxis(w, axis, -1)
    n = a.shape[-1]
    hits, segs = np.ones(a[..., : n - k].shape, bool), np.ones(a[..., : n - k].shape, bool)
    for j in range(k + 1) if whole else (0, k):
        hits &= a[..., j:n - k + j]
        segs &= w[..., j:n - k + j]
    return hits.sum() / segs.sum()


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_a_sample_window_counts_only_pairs_and_segments_in_the_sample(axis):
    """With ``sample`` the outside medium is neither phase nor matrix: ``S2`` counts the
    pairs with both ends in the sample, ``L`` the segments wholly in it (a sample that is
    not a box: an L-shaped outside), so ``S2(0) = L(0)`` = phase / sample; a phase in a
    box of outside gives the box's own curves."""
    rng = np.random.default_rng(5)
    sample = np.ones((20, 24, 28), bool)
    sample[:6, :8] = False
    sample[:, :, 22:] = False
    m = (rng.random(sample.shape) < 0.4) & sample
    sp = (2.0, 1.0, 1.5)
    _, s2 = two_point_correlation(m, sp, 8.0, axis=axis, sample=sample)
    _, lp = lineal_path(m, sp, 8.0, axis=axis, sample=sample)
    k = np.arange(len(s2))
    np.testing.assert_allclose(s2, [_pairs_within(m, sample, axis, i, False) for i in k],
                               atol=1e-12)
    np.testing.assert_allclose(lp, [_pairs_within(m, sample, axis, i, True) for i in k],
                               atol=1e-12)
    _, s2_all = two_point_correlation(m, sp, 8.0, sample=sample)
    assert s2_all[0] == pytest.approx(m.sum() / sample.sum())
    assert abs(s2_all[3] - 0.4**2) < 0.01  # voxel noise in the sample: p^2
    box = np.zeros((30, 30, 30), bool)  # a random block in a box of outside
    box[4:24, 3:27, 5:25] = True
    block = np.zeros(box.shape, bool)
    block[box] = (rng.random((20, 24, 20)) < 0.3).ravel()
    inner = block[4:24, 3:27, 5:25]
    for func in (two_point_correlation, lineal_path):
        np.testing.assert_allclose(func(block, sp, 8.0, sample=box)[1],
                                   func(inner, sp, 8.0)[1], atol=1e-12)
        np.testing.assert_allclose(func(block, sp, 8.0, axis=axis, sample=box)[1],
                                   func(inner, sp, 8.0, axis=axis)[1], atol=1e-12)
    with pytest.raises(ValueError, match="the phase has voxels off the sample"):
        two_point_correlation(m, sp, 8.0, sample=sample[::-1])


@pytest.mark.parametrize("func", [two_point_correlation, lineal_path])
def test_bad_input(func):
    m = np.zeros((10, 10, 10), bool)
    m[2:5] = True
    with pytest.raises(ValueError, match="binary"):
        func(m.astype(int) * 2 + 1, 1.0, 3.0)
    with pytest.raises(ValueError, match="no voxel"):
        func(np.zeros_like(m), 1.0, 3.0)
    with pytest.raises(ValueError, match="spacing"):
        func(m, (1.0, 1.0), 3.0)
    with pytest.raises(ValueError, match="exceeds"):
        func(m, 1.0, 30.0, axis=0)
    with pytest.raises(ValueError, match="positive"):
        func(m, 1.0, -1.0)
    with pytest.raises(ValueError, match="axis"):
        func(m, 1.0, 3.0, axis=3)
