"""Particle envelopes: analytic particles with open pores, neighbours that must not merge."""

import numpy as np
import pytest

from napari_corrtomo.core.quantify import particle_envelopes


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
