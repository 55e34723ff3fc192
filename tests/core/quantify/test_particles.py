"""Particle separation and the per-particle table against known spheres."""

from __future__ import annotations

import math

import numpy as np
import pytest

from napari_corrtomo.core.progress import Cancelled
from napari_corrtomo.core.quantify import (
    fill_holes,
    particle_table,
    separate_particles,
    size_distribution,
    specific_surface,
    surface_area,
)
from napari_corrtomo.core.synthetic import paint_spheres


def _spheres(spacing=(1.0, 1.0, 1.0)):
    centres = np.array([[20.0, 20.0, 14.0], [20.0, 20.0, 30.0], [20.0, 40.0, 40.0]])
    radii = np.array([8.0, 8.5, 6.0])
    m = np.zeros((40, 56, 56), bool)
    paint_spheres(m, centres, radii, True, spacing)
    return m, centres, radii


def test_touching_spheres_are_separated_and_measured():
    m, centres, radii = _spheres()
    assert m[20, 20, 22] and m[20, 20, 21]  # the first two spheres overlap (neck)
    lab = separate_particles(m, 1.0)
    assert lab.max() == 3
    tab = particle_table(lab, 1.0, unit="um")
    order = np.argsort(tab["x_um"].to_numpy() + 100 * tab["y_um"].to_numpy())
    esd = tab["esd_um"].to_numpy()[order]
    # each piece holds its own sphere minus a small lens: ESD within 5 % of 2 r
    np.testing.assert_allclose(esd, 2 * radii, rtol=0.05)
    np.testing.assert_allclose(tab[["z_um", "y_um", "x_um"]].to_numpy()[order], centres, atol=1.0)
    iso = tab["sphericity"].to_numpy()[order][2]
    assert iso == pytest.approx(1.0, abs=0.02)  # the free sphere (area within 1 %)
    assert not tab["touches_border"].any()


def test_esd_and_volume_in_anisotropic_units():
    sp = (2.0, 1.0, 1.0)
    m = np.zeros((20, 40, 40), bool)
    paint_spheres(m, np.array([[20.0, 20.0, 20.0]]), np.array([10.0]), True, sp)
    tab = particle_table(m.astype(np.int32), sp, unit="nm")
    assert tab["volume_nm3"].item() == pytest.approx(m.sum() * 2.0)
    assert tab["esd_nm"].item() == pytest.approx(20.0, rel=0.02)
    assert tab["surface_nm2"].item() == pytest.approx(4 * math.pi * 100, rel=0.06)


def test_per_particle_porosity_and_fill_holes():
    m, _, _ = _spheres()
    lab = separate_particles(m, 1.0)
    pore = np.zeros_like(m)
    pore[18:23, 18:23, 12:17] = True  # 125 voxels inside the first sphere
    solid = m & ~pore
    np.testing.assert_array_equal(fill_holes(solid), m)
    tab = particle_table(lab, 1.0, pore=pore)
    first = tab.loc[tab["x_um"].idxmin()]
    assert first["porosity"] == pytest.approx(125 / first["voxels"])
    assert (tab["porosity"] == 0).sum() == 2


@pytest.mark.parametrize("radius", [6.0, 9.3, 14.0])
def test_surface_area_of_digitised_spheres_within_one_percent_of_analytic(radius):
    n = int(2 * radius) + 10
    m = np.zeros((n, n, n), bool)
    centre = np.array([n / 2 + 0.31, n / 2 - 0.17, n / 2 + 0.42])
    paint_spheres(m, centre[None], np.array([radius]), True, (1, 1, 1))
    exact = 4 * math.pi * radius**2
    assert surface_area(m, 1.0) == pytest.approx(exact, rel=0.01)
    # physical units scale as spacing^2
    assert surface_area(m, 0.5) == pytest.approx(0.25 * exact, rel=0.01)
    # without the curvature correction the smoothed level set lies sigma^2 / r inside
    import napari_corrtomo.core.quantify.surface as surf

    field = surf._field(m, (1.0,) * 3)
    shrunk = surf.mesh_area(np.pad(field, 1, mode="edge"), (1.0,) * 3, pads=((1, 1),) * 3)
    assert shrunk < exact * (1 - 1 / radius**2)
    binary = surface_area(m, 1.0, smooth=0)
    assert binary > 1.05 * exact  # staircase facets overestimate


def test_surface_area_slabwise_equality_and_border_convention():
    m = np.zeros((50, 50, 50), bool)
    paint_spheres(m, np.array([[24.6, 25.1, 24.8]]), np.array([18.0]), True, (1, 1, 1))
    # slab-by-slab meshing gives the same area as one block
    import napari_corrtomo.core.quantify.surface as surf

    field = surf._field(m, (1.0,) * 3)
    disp = np.pad(surf._displacement(field, (1.0,) * 3, (1.0,) * 3), ((0, 0),) + ((1, 1),) * 3,
                  mode="edge")
    whole = surf.mesh_area(np.pad(field, 1, mode="edge"), (1.0,) * 3, pads=((1, 1),) * 3,
                           displacement=disp)
    sliced = surf.memory_budget
    try:  # a tiny memory budget forces 8-plane slabs
        surf.memory_budget = lambda _: 64 * 50 * 50 * 30
        assert surface_area(m, 1.0) == pytest.approx(whole, rel=1e-6)
    finally:
        surf.memory_budget = sliced
    # border is not a surface: a full slab across the array has area 2 * face
    slab = np.zeros((10, 12, 14), bool)
    slab[3:6] = True
    assert surface_area(slab, (1.0, 2.0, 3.0), smooth=0) == pytest.approx(2 * 24 * 42)
    assert surface_area(slab, (1.0, 2.0, 3.0)) == pytest.approx(2 * 24 * 42, rel=1e-4)
    assert specific_surface(slab, (1.0, 2.0, 3.0), smooth=0) == pytest.approx(
        2 * 24 * 42 / (10 * 24 * 42))


def test_cancel_is_checked_before_a_components_watershed_and_between_surface_slabs(
        monkeypatch):
    import skimage.segmentation

    m, _, _ = _spheres()  # first component: two touching spheres, one watershed
    calls: list[tuple[int, int]] = []

    def cancel_at_second(done: int, total: int) -> None:
        calls.append((done, total))
        if len(calls) == 2:
            raise Cancelled()

    flooded = []
    monkeypatch.setattr(skimage.segmentation, "watershed",
                        lambda *a, **k: flooded.append(1))
    with pytest.raises(Cancelled):
        separate_particles(m, 1.0, progress=cancel_at_second)
    assert calls == [(0, 2), (0, 2)] and flooded == []  # stopped before the watershed
    # a volume over 4 M voxels is meshed in slabs, with a cancel check after each
    calls.clear()
    big = np.zeros((80, 256, 256), bool)
    big[20:60, 50:200, 50:200] = True
    with pytest.raises(Cancelled):
        surface_area(big, 1.0, progress=cancel_at_second)
    assert calls[0][1] >= 2


def test_size_distribution_lognormal_fit_recovers_parameters():
    rng = np.random.default_rng(0)
    mu, sigma = math.log(6.8), 0.3
    values = rng.lognormal(mu, sigma, 20000)
    dist = size_distribution(values, bin_width=0.25, unit="um")
    assert dist.fraction.sum() == pytest.approx(1.0)
    assert dist.mean == pytest.approx(values.mean())
    assert dist.std == pytest.approx(values.std())
    assert dist.fit.mode == pytest.approx(math.exp(mu - sigma**2), rel=0.03)
    assert dist.fit.sigma == pytest.approx(sigma, rel=0.05)
    s = dist.summary()
    assert {"mean_um", "std_um", "fit_mode_um"} <= set(s)
    assert "fit_fraction" in dist.table().columns
    weighted = size_distribution(values, weights=values**3, bins=40)
    assert weighted.mean > dist.mean
    # goodness of fit: a log-normal sample is followed closely, without a note
    assert dist.fit.ks_distance < 0.02 and s["fit_ks_distance"] == dist.fit.ks_distance
    assert not any("poorly" in n for n in dist.notes)
    assert dist.accepted_fit is dist.fit and not dist.fit.rejected
    # drawn over the histogram, the fit is a fraction per bin like the bars
    assert dist.fit_fraction(dist.centers).max() == pytest.approx(dist.fraction.max(), rel=0.1)
    with pytest.raises(ValueError, match="no sizes"):
        size_distribution([])
    with pytest.raises(ValueError, match="non-negative"):
        size_distribution([-1.0, 2.0])


def test_bad_particle_input():
    with pytest.raises(ValueError, match="3D"):
        separate_particles(np.ones((5, 5), bool), 1.0)
    with pytest.raises(ValueError, match="no particle"):
        particle_table(np.zeros((4, 4, 4), np.int32), 1.0)
    with pytest.raises(ValueError, match="spacing"):
        particle_table(np.ones((4, 4, 4), np.int32), (1.0, 1.0))
    with pytest.raises(ValueError, match="binary"):
        separate_particles(np.arange(64).reshape(4, 4, 4), 1.0)


def test_a_poor_lognormal_fit_is_rejected():
    """Two well separated size populations: no log-normal follows them; the KS distance
    (against an independent computation from the sample) says so, and the fit is
    rejected: no mode, mean or fitted fractions, a note says why."""
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.normal(2.0, 0.15, 5000), rng.normal(8.0, 0.3, 5000)])
    dist = size_distribution(values, bin_width=0.2, unit="um")
    assert dist.fit.ks_distance > 0.1
    assert dist.accepted_fit is None and "poorly" in dist.fit.rejected
    assert [n for n in dist.notes if n.startswith("log-normal fit rejected: ")
            and "Kolmogorov-Smirnov distance" in n]
    assert not {"fit_mode_um", "fit_mean_um", "fit_median_um"} & set(dist.summary())
    assert dist.summary()["fit_ks_distance"] == dist.fit.ks_distance
    assert "fit_fraction" not in dist.table()
    # the same distance from the raw sample and the fitted parameters (scipy.stats)
    from scipy import stats

    edges = dist.edges
    fit = stats.lognorm(dist.fit.sigma, scale=math.exp(dist.fit.mu))
    cdf = (fit.cdf(edges) - fit.cdf(edges[0])) / (fit.cdf(edges[-1]) - fit.cdf(edges[0]))
    emp = np.searchsorted(np.sort(values), edges, side="right") / len(values)
    assert dist.fit.ks_distance == pytest.approx(np.max(np.abs(cdf - emp)), abs=1e-9)


def test_a_degenerate_lognormal_fit_is_rejected():
    """Sizes that only decrease from the smallest one (a power law): the least-squares
    log-normal that follows them (KS < 0.1) peaks far below every size measured, a mode
    that was never seen; it is rejected as degenerate."""
    values = (np.random.default_rng(1).pareto(2.5, 400) + 1) * 2.0
    dist = size_distribution(values, unit="um")
    assert dist.fit.ks_distance < 0.1 and dist.fit.mode < 0.5 * values.min()
    assert dist.accepted_fit is None
    assert dist.notes == [f"log-normal fit rejected: degenerate, its mode {dist.fit.mode:.3g} "
                          f"um lies far below the smallest size measured "
                          f"({values.min():.3g} um); read the histogram and its moments (no "
                          "fitted mode)"]


def test_porous_neighbours_closed_one_at_a_time_separate_and_keep_their_porosity():
    """Two porous spheres 2 voxels apart whose pores (radius 3) open to their surfaces and
    a solid one touching the second: a closing of the whole solid bridges the gap, the
    closing of each particle alone (``close_each``) does not; with ``close_radius`` the
    particles measure finds the three particles, and the envelopes measure their sizes
    and porosities (analytic, Monte Carlo) within 5 %."""
    from scipy import ndimage as ndi

    from napari_corrtomo.core.quantify import QuantifySettings, close_each, quantify

    rng = np.random.default_rng(3)
    centres = np.array([[22.0, 22.0, 16.0], [22.0, 22.0, 46.0], [22.0, 22.0, 70.0]])
    radii = np.array([12.0, 14.0, 10.0])  # gaps: 2 voxels, then touching (a neck)
    lab = np.zeros((44, 44, 82), np.uint8)
    paint_spheres(lab, centres, radii, 2, (1.0,) * 3)
    pores = []
    for c, r in zip(centres[:2], radii[:2], strict=True):
        u = rng.normal(size=(12, 3))
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        pores.append(c + u * r * rng.uniform(0.4, 1.0, (12, 1)))
    pc, pr = np.vstack(pores), np.full(24, 3.0)
    paint_spheres(lab, pc, pr, 1, (1.0,) * 3, only=2)
    solid = lab == 2
    whole = ndi.binary_closing(solid, np.ones((5, 5, 5), bool))
    assert whole[22, 22, 28:34].all()  # the plain closing bridges the 2-voxel gap
    closed = close_each(solid, 3.0, (1.0,) * 3)
    assert not closed[22, 22, 28:34].all()
    # the pores, open and closed, are filled (but for the outer parts of surface pores whose
    # mouths are as wide as the ball: 88 % filled)
    assert np.count_nonzero(fill_holes(closed) & (lab == 1)) > 0.85 * np.count_nonzero(lab == 1)
    with pytest.raises(ValueError, match="one voxel"):
        close_each(solid, 0.0, (1.0,) * 3)

    settings = QuantifySettings(phase=1, matrix=2, split_h=1.0, close_radius=3.0)
    res = quantify(lab, (1.0,) * 3, "um", measures=["particles", "envelopes"], settings=settings)
    assert len(res.tables["particles"]) == 3
    env = res.tables["particle_envelopes"].sort_values("x_um")
    np.testing.assert_allclose(env["esd_um"], 2 * radii, rtol=0.05)
    pts = rng.uniform(-1, 1, (200_000, 3))
    pts = pts[np.linalg.norm(pts, axis=1) <= 1]
    for (c, r), measured in zip(zip(centres, radii, strict=True), env["porosity"], strict=False):
        p = c + pts * r
        truth = np.mean((np.linalg.norm(p[:, None] - pc[None], axis=2) <= 3.0).any(axis=1))
        assert measured == pytest.approx(truth, rel=0.05, abs=0.01)


@pytest.mark.parametrize("lazy", [False, True])
def test_a_particle_smaller_than_the_smoothing_has_no_surface_or_sphericity(lazy):
    """A one-voxel speck has no isosurface once smoothed (its indicator peaks near 0.06):
    its surface and sphericity are not measured (NaN, was 0 and inf), the sphere beside it
    is, and the sphericity mean skips the speck."""
    import dask.array as da

    lab = np.zeros((24, 24, 40), np.int32)
    paint_spheres(lab, np.array([[12.0, 12.0, 12.0]]), np.array([7.0]), 1, (1.0, 1.0, 1.0))
    lab[12, 12, 32] = 2
    tab = particle_table(da.from_array(lab, chunks=12) if lazy else lab, 1.0, unit="um")
    speck = tab[tab["label"] == 2].iloc[0]
    assert speck["voxels"] == 1
    assert math.isnan(speck["surface_um2"]) and math.isnan(speck["sphericity"])
    sphere = tab[tab["label"] == 1].iloc[0]
    assert sphere["surface_um2"] == pytest.approx(4 * math.pi * 49, rel=0.03)
    assert np.isfinite(tab["sphericity"]).sum() == 1
    assert np.nanmean(tab["sphericity"]) == pytest.approx(sphere["sphericity"])


@pytest.mark.parametrize("lazy", [False, True])
def test_sphericity_is_nan_for_tiny_particles_and_never_above_one(lazy):
    """A 16-voxel particle had a sphericity of 2.41 (a summary said "sphericity mean 1.10"):
    too small to mesh meaningfully, it is NaN and left out of the mean; the smoothed mesh
    of a ball can come out a little smaller than its sphere, which is clipped at 1."""
    import dask.array as da

    from napari_corrtomo.core.quantify.particles import MIN_SHAPE_VOXELS

    lab = np.zeros((24, 24, 40), np.int32)
    paint_spheres(lab, np.array([[12.0, 12.0, 12.0]]), np.array([6.0]), 1, (1.0, 1.0, 1.0))
    paint_spheres(lab, np.array([[12.3, 12.3, 32.3]]), np.array([1.6]), 2, (1.0, 1.0, 1.0))
    tab = particle_table(da.from_array(lab, chunks=12) if lazy else lab, 1.0, unit="um")
    tiny = tab[tab["label"] == 2].iloc[0]  # its mesh gave a sphericity of 36
    assert tiny["voxels"] < MIN_SHAPE_VOXELS and math.isnan(tiny["sphericity"])
    ball = tab[tab["label"] == 1].iloc[0]
    assert 0.97 < ball["sphericity"] <= 1.0
    assert np.nanmax(tab["sphericity"]) <= 1.0


def test_the_sphericity_mean_leaves_out_tiny_particles():
    from napari_corrtomo.core.quantify import QuantifySettings, quantify

    lab = np.zeros((24, 24, 40), np.uint8)
    paint_spheres(lab, np.array([[12.0, 12.0, 12.0]]), np.array([6.0]), 1, (1.0, 1.0, 1.0))
    paint_spheres(lab, np.array([[12.3, 12.3, 32.3]]), np.array([1.6]), 1, (1.0, 1.0, 1.0))
    r = quantify(lab, (1.0, 1.0, 1.0), "um", measures=["particles"],
                 settings=QuantifySettings(phase=1, outside=(0,)))
    assert len(r.tables["particles"]) == 2
    summary = r.summary()
    mean = summary.loc[summary["quantity"] == "sphericity mean", "value"].item()
    assert 0.97 < mean <= 1.0


def test_the_poor_fit_note_prints_the_distance_above_its_limit():
    """"Kolmogorov-Smirnov distance 0.10 > 0.1" read as 0.10 > 0.10."""
    from napari_corrtomo.core.quantify.distributions import _above

    assert _above(0.1004, 0.1) == "0.1004" and _above(0.104, 0.1) == "0.104"
    assert _above(0.37, 0.1) == "0.37"
