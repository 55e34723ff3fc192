"""``synthetic.scan``: projections of a voxel object against closed-form line integrals."""

import numpy as np
import pytest

from napari_corrtomo.core import recon, synthetic
from napari_corrtomo.core.io import Volume


def _ball(n=32, radius=10.0, voxel=0.5):
    g = np.arange(n) - (n - 1) / 2
    z, y, x = np.meshgrid(g, g, g, indexing="ij")
    obj = (z**2 + y**2 + x**2 <= radius**2).astype(np.float32)
    return Volume(obj, (voxel,) * 3, ("um",) * 3, "ball", "image")


def test_centred_ball_projects_to_the_chord_length_at_every_angle():
    vol = _ball()
    s = synthetic.scan(vol, "parallel", n_angles=12, photons=None, max_line_integral=2.0)
    p = s.projections
    assert p.shape == (12, 32, s.geometry.det_shape[1])
    assert p.max() == pytest.approx(2.0, rel=1e-5)  # scaled to the longest line integral
    # every projection carries the object's whole mass, whatever the angle
    mass = p.sum(axis=(1, 2))
    np.testing.assert_allclose(mass, mass.mean(), rtol=0.01)
    # the central row: chord lengths 2 sqrt(R^2 - u^2) (in voxels), scaled like the data
    k = float(s.phantom.max())  # attenuation per unit object value (1/um)
    row = p[0, 15:17].mean(axis=0)  # the two rows either side of the centre
    u = np.arange(p.shape[2]) - (p.shape[2] - 1) / 2
    h = 0.5  # half a voxel: the central plane lies between rows
    chord = 2 * np.sqrt(np.clip(10.0**2 - u**2 - h**2, 0, None)) * 0.5 * k  # um * 1/um
    # (the voxelised ball's staircase edge differs from the sphere by up to ~0.3 at the rim)
    assert np.abs(row - chord).mean() < 0.05
    assert np.abs(row - chord)[np.abs(u) < 7].max() < 0.1
    np.testing.assert_allclose(s.phantom, vol.data * k, rtol=1e-6)
    assert s.voxel_size == 0.5 and s.unit == "um"
    # the nominal geometry reconstructs the object on its own grid
    rec = recon.reconstruct(s.projections, s.geometry, s.phantom.shape, s.voxel_size, "fbp")
    assert np.linalg.norm(rec - s.phantom) / np.linalg.norm(s.phantom) < 0.25


def test_binning_noise_and_bad_input():
    vol = _ball()
    s = synthetic.scan(vol, "tilt_series", n_angles=8, bin_factor=2, photons=1e4, seed=1)
    assert s.projections.shape[1] == 16 and s.voxel_size == 1.0
    assert s.phantom.shape == (16, 16, 16)
    again = synthetic.scan(vol, "tilt_series", n_angles=8, bin_factor=2, photons=1e4, seed=1)
    np.testing.assert_array_equal(s.projections, again.projections)  # seeded
    bad = Volume(vol.data, (1.0, 0.5, 0.5), ("um",) * 3, "aniso", "image")
    with pytest.raises(ValueError, match="isotropic"):
        synthetic.scan(bad)
    with pytest.raises(ValueError, match="bin_factor"):
        synthetic.scan(vol, bin_factor=3)
    with pytest.raises(ValueError, match="kind"):
        synthetic.scan(vol, "cone")
