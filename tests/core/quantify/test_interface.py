"""Proxigram metrics on blurred interfaces of known width."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from scipy import special

from napari_corrtomo.core.quantify import proxigram
from napari_corrtomo.core.quantify._common import signed_distance
from napari_corrtomo.core.synthetic import interface_distance


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


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 1.0, 1.0), (1.0, 0.5, 0.25)])
@pytest.mark.parametrize("kind", ["oblique plane", "ball", "pore"])
def test_signed_distance_is_sub_voxel(kind, spacing):
    shape = tuple(int(round(40 / s)) for s in spacing)
    f = interface_distance(kind, shape, spacing)
    sd = signed_distance(f > 0, spacing)
    band = np.abs(f) < 6
    err = (sd - f)[band]
    sigma = max(spacing)  # the smoothing; a sphere's boundary moves by ~sigma^2 / R
    if kind == "oblique plane":
        # the smoothing sees the mask continued unchanged past the array's border: up
        # to a voxel off there, so the bound on every voxel holds from 4 sigma inside
        border = np.minimum.reduce([np.minimum(i, n - 1 - i) * s for i, n, s in zip(
            np.indices(shape), shape, spacing, strict=True)])
        # (the nearest voxel centre of the other phase minus half a voxel: 0.26 voxel
        # off on average at cubic voxels)
        inner = np.abs(sd - f)[band & (border >= 4 * sigma)]
        assert inner.max() < 0.2 * sigma and inner.mean() < 0.05 * sigma
        assert np.abs(err).max() < sigma
    else:
        assert abs(err.mean()) < sigma**2 / 10.0
        assert np.abs(err).mean() < sigma**2 / 10.0 + 0.05 * sigma
    assert np.all(sd[f > 0] >= 0) and np.all(sd[f <= 0] <= 0)


@pytest.mark.parametrize("sigma_vox", [1.0, 2.0])
@pytest.mark.parametrize("kind", ["oblique plane", "ball", "pore"])
def test_proxigram_width_of_oblique_and_curved_edges(kind, sigma_vox):
    # the image is exactly Phi(distance / sigma), so dx = 1.349 sigma and x25 = -x75 =
    # -0.6745 sigma: what is left is the distance from the segmentation and the binning
    # (nearest-voxel-centre distances on one-voxel bins: 11-16 % narrow here)
    f = interface_distance(kind, (48, 48, 48), (1.0, 1.0, 1.0))
    img = special.ndtr(f / sigma_vox)
    p = proxigram(img, f > 0, 1.0, max_distance=5 * sigma_vox)
    assert p.dx == pytest.approx(1.349 * sigma_vox, rel=0.05)
    assert p.x25 == pytest.approx(-0.6745 * sigma_vox, abs=0.1)
    assert p.x75 == pytest.approx(0.6745 * sigma_vox, abs=0.1)
    assert np.all(np.diff(p.distance) > 0) and np.all(p.voxels > 0)


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


@pytest.mark.parametrize("shape, spacing", [((23, 31, 17), (1.0, 1.0, 1.0)),
                                            ((12, 40, 33), (2.0, 0.7, 1.0)),
                                            ((1, 64, 48), (1.0, 1.0, 0.5))])
def test_nearest_edge_voxel_is_exact(shape, spacing):
    # the compiled feature transform of signed_distance against SciPy's exact EDT: the
    # voxel it picks is at the nearest edge voxel's distance (ties may pick either)
    from napari_corrtomo.core.quantify import _distance_kernels as K

    rng = np.random.default_rng(3)
    edge = rng.random(shape) < 0.01
    edge[0, 0, 0] = True
    pts = np.nonzero(edge)
    sq = np.where(edge, 0.0, np.inf).astype(np.float32)
    near = np.full(shape, -1, np.int32)
    near[pts] = np.arange(len(pts[0]), dtype=np.int32)
    for ax in (2, 1, 0):
        K.nearest_along_last(np.moveaxis(sq, ax, -1), np.moveaxis(near, ax, -1), spacing[ax])
    assert near.min() >= 0
    picked = np.sqrt(sum(((np.indices(shape)[ax] - pts[ax][near]) * spacing[ax]) ** 2
                         for ax in range(3)))
    exact = ndi.distance_transform_edt(~edge, sampling=spacing)
    np.testing.assert_allclose(picked, exact, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.sqrt(sq), exact, rtol=1e-5, atol=1e-5)


def test_the_pipelines_proxigram_is_positive_inside_the_chosen_phase():
    """``quantify`` profiles the chosen phase against the matrix, + inside the phase (it
    once profiled the matrix, its sign reversed), without the outside medium: here as
    bright as the phase (pores filled with the resin around a particle), so its boundary
    with the phase has no contrast and would sit on the profile's bright side at 0."""
    from napari_corrtomo.core.quantify import QuantifySettings, quantify

    lab = np.full((16, 16, 64), 2, np.uint8)  # matrix
    lab[:, :, :24] = 3  # the phase: x < 24, its interface with the matrix at x = 23.5
    lab[:, 12:] = 1  # outside, beside both
    lab[:, :, 44:] = 1
    sigma = 1.5
    img = ndi.gaussian_filter(np.isin(lab, (1, 3)).astype(float), sigma, mode="nearest")
    r = quantify(lab, 1.0, "um", measures=["proxigram"], intensity=img,
                 settings=QuantifySettings(phase=3, matrix=2, outside=(1,)))
    p = r.proxigram
    # the intensity rises into the phase: Phi(d / sigma) crosses 0.25 / 0.75 at -+0.6745 sigma
    assert p.x25 == pytest.approx(-0.6745 * sigma, abs=0.1)
    assert p.x75 == pytest.approx(0.6745 * sigma, abs=0.1)
    assert r.curves["proxigram"].xlabel == "distance to the interface, + inside the phase (um)"
    # the other way round the same interface, the sign reversed
    q = quantify(lab, 1.0, "um", measures=["proxigram"], intensity=img,
                 settings=QuantifySettings(phase=2, matrix=3, outside=(1,))).proxigram
    assert (q.x25, q.x75) == pytest.approx((-p.x25, -p.x75), abs=0.02)
    with pytest.raises(ValueError, match=r"farther than proxigram_distance \(12 um\) from the "
                                         "outside medium; lower it"):
        quantify(lab, 1.0, "um", measures=["proxigram"], intensity=img, settings=QuantifySettings(
            phase=3, matrix=2, outside=(1,), proxigram_distance=12.0))


def test_a_proxigram_without_both_plateaus_gives_no_dy_row_but_says_why():
    """A phase two voxels thin has no profile points deep inside it: dy (the plateaus'
    contrast) is unknown, and the summary says so instead of a row without a value."""
    from napari_corrtomo.core.quantify import QuantifySettings, quantify

    labels = np.ones((12, 16, 32), np.uint8)
    labels[..., 15:17] = 2
    img = ndi.gaussian_filter((labels == 2).astype(float), 1.0)
    thin = quantify(labels, 1.0, "um", measures=["proxigram"],
                    settings=QuantifySettings(phase=2), intensity=img)
    assert np.isnan(thin.proxigram.dy) and np.isfinite(thin.proxigram.dx)
    rows = thin.summary()
    assert "dy" not in set(rows["quantity"]) and "x25" in set(rows["quantity"])
    assert any("proxigram dy" in note and "raise proxigram distance" in note
               for note in thin.notes)
    labels[..., 8:24] = 2  # a thick phase: both plateaus, a dy row
    thick = quantify(labels, 1.0, "um", measures=["proxigram"],
                     settings=QuantifySettings(phase=2),
                     intensity=ndi.gaussian_filter((labels == 2).astype(float), 1.0))
    assert thick.summary().set_index("quantity").loc["dy", "value"] == pytest.approx(1, abs=0.05)
