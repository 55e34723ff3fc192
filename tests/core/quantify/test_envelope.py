"""Particle envelopes: analytic particles with open pores, neighbours that must not merge."""

from dataclasses import replace

import dask.array as da
import numpy as np
import pandas as pd
import pytest

from napari_corrtomo.core.quantify import particle_envelopes, spherical_envelopes
from napari_corrtomo.core.synthetic import paint_spheres


def _ball(shape, centre, radius, spacing=(1.0, 1.0, 1.0)):
    grids = np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing, strict=True)],
                        indexing="ij", sparse=True)
    return sum((g - c) ** 2 for g, c in zip(grids, centre, strict=True)) <= radius**2


def test_open_pore_is_enclosed_and_neighbours_are_not_bridged():
    shape = (44, 44, 70)
    a = _ball(shape, (22, 22, 20), 12.0)
    b = _ball(shape, (22, 22, 47), 12.0)  # a gap of 3 voxels between the two spheres
    pore = _ball(shape, (22, 22 + 9.0, 20), 5.0)  # cuts a's surface: an open pore
    solid = (a | b) & ~pore
    labels = np.zeros(shape, np.uint8)
    labels[a] = 1
    labels[b] = 2
    env = particle_envelopes(solid, labels, (1.0, 1.0, 1.0), 1.5)
    # the envelope of particle 1 holds its sphere: the open pore inside the sphere is
    # enclosed (the mouth sags in by less than 3 % of the sphere's volume)
    inside = np.count_nonzero((env == 1) & a) / np.count_nonzero(a)
    assert inside > 0.97
    enclosed = np.count_nonzero((env == 1) & pore & a) / np.count_nonzero(pore & a)
    assert enclosed > 0.8
    # and not much outside it (the ball closes over the mouth, it does not grow the sphere)
    assert np.count_nonzero((env == 1) & ~a) < 0.01 * np.count_nonzero(a)
    # the gap between the two particles stays empty (one ball per particle)
    gap = np.zeros(shape, bool)
    gap[22, 22, 33:35] = True
    assert not env[gap].any()
    # particle 2 (no pore) is its own solid
    assert np.array_equal(env == 2, b)


def test_anisotropic_voxels_and_bad_input():
    sp = (2.0, 1.0, 1.0)
    shape = (20, 40, 40)
    ball = _ball(shape, (20.0, 20.0, 20.0), 12.0, sp)
    pore = _ball(shape, (20.0, 20.0 + 9.0, 20.0), 5.0, sp)
    env = particle_envelopes(ball & ~pore, ball.astype(np.uint8), sp, 1.5)
    assert np.count_nonzero((env == 1) & ball) / np.count_nonzero(ball) > 0.95
    with pytest.raises(ValueError, match="radius_fraction"):
        particle_envelopes(ball, ball.astype(np.uint8), sp, 0.0)
    with pytest.raises(ValueError, match="shape"):
        particle_envelopes(ball, ball[:-1].astype(np.uint8), sp)
    with pytest.raises(ValueError, match="spacing"):
        particle_envelopes(ball, ball.astype(np.uint8), (1.0, 1.0))


@pytest.mark.parametrize("radius", [5.3, 10.7, 20.2, 40.5])
@pytest.mark.parametrize("porosity", [0.0, 0.3])
def test_sphere_envelope_of_a_digitised_sphere_is_the_sphere(radius, porosity):
    """The envelope of a digitised ball, solid or with 30 % of it in pores that cut its
    surface, is the same ball: equivalent radius within 0.06 voxel (the fit's scatter is
    0.02 voxel at radius 5), and the voxels that differ from the ball no more than a
    shell 0.1 voxel thick over its surface (5.7 % of the ball at radius 5.3, 0.7 % at
    40.5). The hull's volume alone falls 0.3-0.5 voxel short on the porous balls."""
    rng = np.random.default_rng(int(radius * 10))
    n = int(2 * radius + 8)
    c = (n - 1) / 2 + rng.uniform(-0.5, 0.5, 3)
    ball = _ball((n, n, n), c, radius)
    solid = ball.copy()
    removed = 0.0
    while removed < -np.log(1 - porosity) * radius**3:  # a Boolean model of pores
        u = rng.normal(size=3)
        pr = 0.45 * radius * np.exp(rng.normal(0, 0.25))
        solid &= ~_ball((n, n, n), c + u / np.linalg.norm(u) * radius * rng.uniform() ** (1 / 3),
                        pr)
        removed += pr**3
    assert 1 - solid.sum() / ball.sum() == pytest.approx(porosity, abs=0.12)
    env = spherical_envelopes(solid, solid.astype(np.uint8), 1.0) > 0

    def r_eq(mask):
        return np.cbrt(0.75 * mask.sum() / np.pi)

    assert abs(r_eq(env) - r_eq(ball)) < 0.06
    assert np.count_nonzero(env ^ ball) < 0.1 * 4 * np.pi * radius**2


def test_sphere_envelope_of_a_particle_cut_by_the_border_is_its_sphere():
    """A ball cut by the array border keeps its radius: the cut face is left out of the
    fit (the hull of the cut ball is smaller than the ball)."""
    n, radius = 40, 12.3
    ball = _ball((n, n, n), (20.2, 19.6, 35.1), radius)  # 3.9 voxels beyond the last x
    env = spherical_envelopes(ball, ball.astype(np.uint8), 1.0) > 0
    assert np.count_nonzero(env ^ ball) / ball.sum() < 0.02


def test_sphere_envelope_keeps_wide_surface_pores_the_rolling_ball_cuts():
    """A particle like the correlative sample's (radius 5 um, pores 2-4.5 um wide cutting
    its surface, 0.2 um voxels): the porosity inside the sphere envelope is within 2 % of
    the Monte-Carlo truth; the rolling ball loses the mouths of the wide pores."""
    rng = np.random.default_rng(4)
    sp = (0.2, 0.2, 0.2)
    centre, r = np.array([5.6, 5.5, 5.7]), 5.0
    lab = np.zeros((57, 57, 57), np.uint8)
    paint_spheres(lab, centre[None], np.array([r]), 2, sp)
    u = rng.normal(size=(14, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    pc = centre + u * r * rng.uniform(0.3, 1.0, (14, 1))
    pr = rng.uniform(1.0, 2.25, 14)
    paint_spheres(lab, pc, pr, 3, sp, only=2)
    solid = lab == 2
    # truth: the pore fraction of the analytic ball
    pts = rng.normal(size=(300_000, 3))
    pts = centre + pts / np.linalg.norm(pts, axis=1, keepdims=True) * r * rng.uniform(
        size=(300_000, 1)) ** (1 / 3)
    truth = np.mean((np.linalg.norm(pts[:, None] - pc[None], axis=2) <= pr).any(axis=1))
    assert 0.15 < truth < 0.5  # a porous particle

    def porosity(env):
        e = env > 0
        return np.count_nonzero(e & ~solid) / np.count_nonzero(e)

    sphere = porosity(spherical_envelopes(solid, solid.astype(np.uint8), sp))
    ball = porosity(particle_envelopes(solid, solid.astype(np.uint8), sp, 1.5))
    assert sphere == pytest.approx(truth, rel=0.02)
    assert ball < truth * 0.97  # the rolling ball dips into the wide mouths


def test_sphere_envelope_ignores_a_bead_stuck_to_the_particle():
    """A porous 5-voxel particle with two dense beads (radius 1.5 voxels) fused to its
    surface, all one particle label (as at 1 um voxels next to fiducials): the envelope
    is the particle's sphere (radius within 0.2 voxel), not one through the beads (a
    least-squares fit over all hull vertices is 0.5 voxel too large, RANSAC with a
    one-voxel tolerance 0.7 voxel)."""
    n = 32
    centre = np.array([15.3, 15.6, 15.2])
    ball = _ball((n, n, n), centre, 5.0)
    pore = _ball((n, n, n), centre + (0.0, 4.0, 0.0), 2.0)
    beads = _ball((n, n, n), centre + (0.0, 0.0, 6.3), 1.5) | _ball(
        (n, n, n), centre + (6.3, 0.0, 0.0), 1.5)
    solid = (ball & ~pore) | beads
    env = spherical_envelopes(solid, solid.astype(np.uint8), 1.0) > 0
    r_env, r_ball = np.cbrt(0.75 * env.sum() / np.pi), np.cbrt(0.75 * ball.sum() / np.pi)
    assert abs(r_env - r_ball) < 0.2


def test_sphere_envelope_ignores_beads_whose_hull_hides_the_particle():
    """A 5-voxel particle with 6 pores cutting its surface and four beads (radius 2
    voxels) 8 voxels from its centre, fused to it by necks (as fiducials 1-2 um off a
    particle at 1 um voxels, seeds 5, 6 and 8 of the demo): the hull between the beads
    covers most of the particle, so most hull vertices lie on the beads and the sphere
    through most *vertices* is one through the beads (radius 10.0 voxels). The sphere
    through most surface voxels is the particle's: radius within 0.1 voxel."""
    n = 40
    rng = np.random.default_rng(1)
    centre = np.array([19.3, 19.6, 19.2])
    ball = _ball((n, n, n), centre, 5.0)
    solid = ball.copy()
    for _ in range(6):
        u = rng.normal(size=3)
        solid &= ~_ball((n, n, n), centre + 4.5 * u / np.linalg.norm(u), rng.uniform(1.5, 2.2))
    directions = rng.normal(size=(4, 3))
    for u in directions / np.linalg.norm(directions, axis=1, keepdims=True):
        solid |= _ball((n, n, n), centre + 8.0 * u, 2.0)
        for t in np.linspace(4.5, 8.0, 8):
            solid |= _ball((n, n, n), centre + t * u, 1.0)
    env = spherical_envelopes(solid, solid.astype(np.uint8), 1.0) > 0
    r_env, r_ball = np.cbrt(0.75 * env.sum() / np.pi), np.cbrt(0.75 * ball.sum() / np.pi)
    assert abs(r_env - r_ball) < 0.1
    assert not (env & ~_ball((n, n, n), centre, 5.6)).any()  # no bead inside


def test_measures_within_envelopes_are_those_of_the_particles_own_pores():
    """``within_envelopes``: porous spheres in resin (the pores resin-filled; in the first
    one closed in the middle and one open at the surface, one open in the second, one
    closed in a third cut by the border); the phase outside the envelopes becomes
    outside, so porosity, pore sizes and closed pores are the particles' own: equal to
    measuring labels relabelled by hand, pore sizes up to the largest pore's diameter;
    ``exclude_border`` leaves the cut particle out."""
    from napari_corrtomo.core.quantify import QuantifySettings, quantify

    shape = (48, 48, 104)
    lab = np.ones(shape, np.uint8)  # 1 resin (and pores), 2 solid
    paint_spheres(lab, np.array([[24.0, 24, 22], [24, 24, 66], [24, 24, 100]]),
                  np.array([16.0, 14, 8]), 2, (1.0, 1, 1))
    radii = np.array([5.0, 5.5, 4.0, 3.0])
    paint_spheres(lab, np.array([[24.0, 24, 22], [24, 33, 66], [24, 12, 18], [24, 24, 97]]),
                  radii, 1, (1.0, 1, 1))
    before = lab.copy()
    measures = ["porosity", "thickness", "closed_pores"]
    s = QuantifySettings(phase=1, matrix=2)
    r = quantify(lab, 1.0, "um", measures=measures, settings=replace(s, within_envelopes=True))
    np.testing.assert_array_equal(lab, before)  # the input is not relabelled
    value = r.summary().set_index("quantity")["value"]
    assert value["particles enveloped"] == 3
    # the note says so without the label it gives inside (the user's has no label 3)
    assert "measured inside 3 particle envelopes; what lies outside them is left out of " \
        "every measure" in r.notes
    # the phase measured is the pores in the envelopes: porosity = the envelopes'
    assert value["porosity (phase / sample)"] == pytest.approx(
        value["porosity of all envelopes"], rel=1e-3)
    # by hand: what lies outside the envelopes given an outside label of its own
    envelopes = np.asarray(r.arrays["particle envelopes"].data)
    manual = lab.copy()
    manual[(envelopes == 0) & np.isin(lab, (1, 2))] = 3
    ref = quantify(manual, 1.0, "um", measures=measures, settings=replace(s, outside=(3,)))
    for name in ("phase_size_distribution", "closed_pores", "phase_fractions"):
        pd.testing.assert_frame_equal(r.tables[name], ref.tables[name])
    # pore sizes: none beyond the largest pore's diameter (the resin between the particles
    # is tens of voxels wide); closed: the middle pore of the first (diameter 10) and the
    # pore of the cut particle (6)
    sizes = r.distributions["phase size distribution"]
    assert sizes.edges[-1] <= 2 * radii.max() + 1
    assert quantify(lab, 1.0, "um", measures=["thickness"], settings=s).distributions[
        "phase size distribution"].edges[-1] > 4 * radii.max()
    assert value["closed pores"] == 2
    # exclude_border: the cut particle's pore and solid are outside too
    table = r.tables["particle_envelopes"]
    cut = table.loc[table["touches_border"], "label"].to_numpy()
    assert len(cut) == 1 and value["of them cut by the border"] == 1  # said in the summary
    x = quantify(lab, 1.0, "um", measures=measures,
                 settings=replace(s, within_envelopes=True, exclude_border=True))
    xv = x.summary().set_index("quantity")["value"]
    assert xv["closed pores"] == 1
    assert xv["closed pore ESD mean"] == pytest.approx(2 * radii[0], rel=0.05)
    whole = table[~table["touches_border"]]
    assert xv["porosity (phase / sample)"] == pytest.approx(
        (whole["porosity"] * whole["voxels"]).sum() / whole["voxels"].sum(), rel=1e-3)
    assert "1 cut by the border left out" in " ".join(x.notes)
    with pytest.raises(ValueError, match="matrix"):
        quantify(lab, 1.0, "um", measures=["thickness"],
                 settings=QuantifySettings(phase=1, within_envelopes=True))
    with pytest.raises(ValueError, match="border"):  # nothing left to measure
        quantify(lab[:, :, 80:], 1.0, "um", measures=["thickness"],
                 settings=replace(s, within_envelopes=True, exclude_border=True))
    with pytest.raises(ValueError, match="in memory"):  # a dask volume: said, not loaded
        quantify(da.from_array(lab, chunks=24), 1.0, "um", measures=["thickness"],
                 settings=replace(s, within_envelopes=True))


def test_labels_at_is_the_nearest_labelled_voxel():
    """``labels_at`` against a brute-force search over every labelled voxel: points on
    labels, beside them, far from any (sparse labels), fractional and at the corners,
    outside the array, isotropic and anisotropic voxels (the physical nearest, and its
    distance where the point's own voxel is unlabelled)."""
    from napari_corrtomo.core.quantify import labels_at

    rng = np.random.default_rng(3)
    on_labels = 0
    for density, spacing in ((0.3, (1.0, 1.0, 1.0)), (0.001, (1.0, 1.0, 1.0)),
                             (0.001, (2.0, 0.5, 0.7))):
        lab = np.where(rng.random((20, 23, 26)) < density,
                       rng.integers(1, 9, (20, 23, 26)), 0).astype(np.uint16)
        pts = np.vstack([rng.random((40, 3)) * (np.array(lab.shape) - 1),
                         [[0, 0, 0], np.array(lab.shape) - 1, [-3.2, 5.1, 30.4]]])
        where = np.argwhere(lab)
        d2 = [np.sum(((where - p) * spacing) ** 2, axis=1) for p in pts]
        got, dist = labels_at(lab, pts, spacing)
        np.testing.assert_array_equal(got, [lab[tuple(where[np.argmin(d)])] for d in d2])
        voxel = np.rint(pts).astype(int)
        own = [lab[tuple(v)] if np.all((v >= 0) & (v < lab.shape)) else 0 for v in voxel]
        np.testing.assert_allclose(dist, [0.0 if o else np.sqrt(d.min())
                                          for o, d in zip(own, d2, strict=True)])
        on_labels += np.count_nonzero(own)
    assert 0 < on_labels < 3 * len(pts)  # points on labels and beside them
    with pytest.raises(ValueError, match="no labelled voxel"):
        labels_at(np.zeros((4, 4, 4), np.uint8), [[1.0, 1, 1]])


def test_particles_at_points_measures_those_particles_only():
    """``particles_at``: three porous spheres; a point inside the second and one in the
    resin beside the third measure those two (their envelopes, porosity and pores
    alone, equal to the envelopes measured without points, restricted to them); with
    ``within_envelopes`` the porosity is the two particles' volume-weighted porosity and
    the first particle's closed pore is not counted; points outside the volume and points
    without an envelope measure are refused in words."""
    from napari_corrtomo.core.quantify import QuantifySettings, quantify

    spacing = (0.5, 0.5, 0.5)
    shape = (48, 48, 150)
    lab = np.ones(shape, np.uint8)  # 1 resin (and pores), 2 solid
    centres = np.array([[24.0, 24, 24], [24, 24, 72], [24, 24, 122]])
    paint_spheres(lab, centres, np.array([16.0, 14, 12]), 2, (1.0, 1, 1))
    paint_spheres(lab, np.array([[24.0, 24, 24], [24, 36, 72], [24, 24, 122]]),
                  np.array([5.0, 4.0, 3.0]), 1, (1.0, 1, 1))
    s = QuantifySettings(phase=1, matrix=2)
    every = quantify(lab, spacing, "um", measures=["envelopes"], settings=s)
    table = every.tables["particle_envelopes"].set_index("label")
    env = np.asarray(every.arrays["particle envelopes"].data)
    second, third = (int(env[tuple(c.astype(int))]) for c in centres[1:])
    beside = (centres[2] + [0, 0, 16]) * spacing  # resin, 4 voxels off the third's sphere
    points = (tuple(centres[1] * spacing), tuple(beside))
    picked = quantify(lab, spacing, "um", measures=["envelopes"],
                      settings=replace(s, particles_at=points))
    pt = picked.tables["particle_envelopes"]
    assert sorted(pt["label"]) == sorted([second, third])
    # the point beside the third is said to have missed it, with the distance (its
    # sphere's radius is 12 voxels, the point 16 voxels from the centre: the nearest
    # envelope voxel 4-5 voxels of 0.5 um away)
    missed = [n for n in picked.notes if "outside every envelope" in n]
    assert len(missed) == 1 and f"envelope {third}," in missed[0]
    gap = float(missed[0].split(", ")[-1].split(" um")[0])
    assert 2.0 - 1e-9 <= gap <= 2.5 + 1e-9
    pd.testing.assert_frame_equal(pt.set_index("label"), table.loc[pt["label"]])
    penv = np.asarray(picked.arrays["particle envelopes"].data)
    np.testing.assert_array_equal(penv, np.where(np.isin(env, [second, third]), env, 0))
    inside = quantify(lab, spacing, "um", measures=["porosity", "closed_pores"],
                      settings=replace(s, particles_at=points, within_envelopes=True))
    value = inside.summary().set_index("quantity")["value"]
    two = table.loc[[second, third]]
    assert value["porosity (phase / sample)"] == pytest.approx(
        (two["porosity"] * two["voxels"]).sum() / two["voxels"].sum(), rel=1e-3)
    assert value["closed pores"] == 1  # the third's; the first's is not measured
    assert quantify(lab, spacing, "um", measures=["closed_pores"], settings=replace(
        s, within_envelopes=True)).summary().set_index("quantity")["value"][
        "closed pores"] == 2
    with pytest.raises(ValueError, match="outside the volume"):
        quantify(lab, spacing, "um", measures=["envelopes"],
                 settings=replace(s, particles_at=((12.0, 12.0, 80.0),)))
    with pytest.raises(ValueError, match="envelope"):
        quantify(lab, spacing, "um", measures=["porosity"],
                 settings=replace(s, particles_at=points))


def test_a_picked_particle_has_one_label_in_both_envelope_tables():
    """With ``within_envelopes`` and ``particles_at`` the grey-value envelopes
    (``pv_porosity``) were fitted on the relabelled volume, whose matrix components number
    anew: the picked particle was 2 in ``particle_envelopes`` and 1 in ``pv_porosity``.
    Each grey-value envelope now takes the label of the envelope it overlaps most; their
    voxels differ by the offset of the mid-grey-level boundary from the labels' only."""
    from scipy import ndimage as ndi

    from napari_corrtomo.core.quantify import QuantifySettings, quantify

    spacing = (0.5, 0.5, 0.5)
    lab = np.ones((40, 40, 120), np.uint8)  # 1 resin (and pores), 2 solid
    centres = np.array([[20.0, 20, 20], [20, 20, 60], [20, 20, 100]])
    paint_spheres(lab, centres, np.array([13.0, 12, 11]), 2, (1.0, 1, 1))
    paint_spheres(lab, centres + [0, 4, 0], np.array([4.0, 3.5, 3.0]), 1, (1.0, 1, 1))
    img = ndi.gaussian_filter(np.where(lab == 2, 1.0, 0.35), 1.0).astype(np.float32)
    s = QuantifySettings(phase=1, matrix=2)
    env = np.asarray(quantify(lab, spacing, "um", measures=["envelopes"], settings=s)
                     .arrays["particle envelopes"].data)
    second = int(env[tuple(centres[1].astype(int))])
    assert second == 2
    r = quantify(lab, spacing, "um", measures=["pv_porosity", "envelopes"], intensity=img,
                 settings=replace(s, within_envelopes=True,
                                  particles_at=(tuple(centres[1] * spacing),)))
    envelopes, pv = r.tables["particle_envelopes"], r.tables["pv_porosity"]
    assert envelopes["label"].tolist() == pv["label"].tolist() == [second]
    assert set(np.unique(r.arrays["partial-volume envelopes"].data)) == {0, second}
    assert pv["voxels"].item() == pytest.approx(envelopes["voxels"].item(), rel=0.03)
