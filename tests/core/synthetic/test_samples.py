import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_corrtomo.core import synthetic as syn
from napari_corrtomo.core.register import apply_to_points


def test_correlative_deterministic():
    a = syn.correlative_particles(seed=3, microct_shape=(48, 64, 64), n_particles=20,
                                  nanoct_shape=(96, 96, 96), nanoct_voxel_um=0.15,
                                  et_shape=(48, 48, 48))
    b = syn.correlative_particles(seed=3, microct_shape=(48, 64, 64), n_particles=20,
                                  nanoct_shape=(96, 96, 96), nanoct_voxel_um=0.15,
                                  et_shape=(48, 48, 48))
    np.testing.assert_array_equal(a.microct.data, b.microct.data)
    np.testing.assert_array_equal(a.nanoct.data, b.nanoct.data)
    np.testing.assert_array_equal(a.truth.nanoct_to_microct, b.truth.nanoct_to_microct)


def test_correlative_frames_and_units(correlative_sample):
    s = correlative_sample
    assert s.microct.scale == (1.0, 1.0, 1.0) and s.microct.units == ("um",) * 3
    assert s.nanoct.scale == (0.065,) * 3 and s.nanoct.units == ("um",) * 3
    assert s.et.scale == (0.5,) * 3 and s.et.units == ("nm",) * 3
    m = s.truth.nanoct_to_microct
    rs = m[:3, :3]
    scale = np.cbrt(np.linalg.det(rs))
    assert scale > 0  # proper similarity: no mirror
    np.testing.assert_allclose(rs.T @ rs, scale**2 * np.eye(3), atol=1e-12)


def test_landmarks_correspond_through_transform(correlative_sample):
    t = correlative_sample.truth
    assert len(t.landmarks_microct) >= 7
    np.testing.assert_allclose(apply_to_points(t.nanoct_to_microct, t.landmarks_nanoct),
                               t.landmarks_microct, atol=1e-9)
    # Fiducials are bright in both images at the landmark positions.
    for img, pts, vox in ((correlative_sample.microct, t.landmarks_microct, 1.0),
                          (correlative_sample.nanoct, t.landmarks_nanoct, 0.065)):
        idx = np.round(pts[:-1] / vox).astype(int)  # last landmark is the particle centre
        assert np.all(idx >= 0) and np.all(idx < img.data.shape)
        assert np.all(img.data[tuple(idx.T)] > 1.0)


def test_nanoct_truth_agrees_with_microct_truth(correlative_sample):
    # Phases at random nanoCT voxels, mapped into the microCT grid, agree away from edges.
    t = correlative_sample.truth
    nl, ml = t.nanoct_labels.data, t.microct_labels.data
    rng = np.random.default_rng(0)
    idx = rng.integers(0, nl.shape[0], size=(4000, 3))
    world = apply_to_points(t.nanoct_to_microct, idx * 0.065)
    micro_idx = np.round(world).astype(int)
    interior = ndi.binary_erosion(ml == ndi.maximum_filter(ml, 3), iterations=1)
    ok = interior[tuple(micro_idx.T)] & (ndi.minimum_filter(ml, 3) == ml)[tuple(micro_idx.T)]
    agree = nl[tuple(idx.T)][ok] == ml[tuple(micro_idx.T)][ok]
    assert ok.sum() > 1000
    assert agree.mean() > 0.97


def test_particle_truth_matches_rendered_volumes(correlative_sample):
    t = correlative_sample.truth
    inst = t.microct_particles.data
    counts = np.bincount(inst.ravel())[1:]
    big = t.particles["esd_um"].to_numpy() > 20
    np.testing.assert_allclose(counts[big], t.particles["volume_um3"].to_numpy()[big], rtol=0.06)
    assert len(t.particles) >= 200
    d = t.particles["esd_um"]
    assert d.min() >= 10 and d.max() <= 50
    # nanoCT: voxel porosity of the particle matches the analytic (Monte Carlo) truth.
    nl = t.nanoct_labels.data
    center = apply_to_points(np.linalg.inv(t.nanoct_to_microct), t.landmarks_microct[-1])[0]
    zz, yy, xx = np.indices(nl.shape) * 0.065
    r = t.particles["esd_um"][0] / 2 / np.cbrt(np.linalg.det(t.nanoct_to_microct[:3, :3]))
    inside = (zz - center[0]) ** 2 + (yy - center[1]) ** 2 + (xx - center[2]) ** 2 <= r**2
    voxel_porosity = np.mean(nl[inside] == syn.PORE)
    assert voxel_porosity == pytest.approx(t.nanoct_macroporosity, abs=0.01)
    assert 0.25 < t.nanoct_macroporosity < 0.4
    assert 0 < t.closed_pore_fraction < 0.05


def test_et_and_combined_porosity(correlative_sample):
    t = correlative_sample.truth
    assert t.et_mesoporosity == pytest.approx(np.mean(t.et_labels.data == syn.PORE))
    assert 0.25 < t.et_mesoporosity < 0.4
    assert t.combined_porosity == pytest.approx(
        t.nanoct_macroporosity + (1 - t.nanoct_macroporosity) * t.et_mesoporosity)
    assert 12 < np.median(t.et_pore_diameters_nm) < 22


def test_fib_stack_truth(fib_sample):
    f = fib_sample
    assert f.image.shape[0] == 2 and f.image.shape[1:] == f.labels.data.shape
    assert f.labels.scale == (20.0, 10.0, 10.0) and f.labels.units == ("nm",) * 3
    fractions = np.bincount(f.labels.data[:, f.ruler.band_rows:].ravel(), minlength=4)[1:]
    fractions = fractions / fractions.sum()
    assert np.all(fractions > 0.08)  # three phases present
    assert np.all(f.labels.data[:, : f.ruler.band_rows] == 0)
    np.testing.assert_allclose(np.diff(f.slice_z_nm), f.thickness_nm[:-1])
    assert f.thickness_nm.mean() == pytest.approx(20.0, rel=0.15)
    assert f.thickness_nm.std() > 3.0  # gamma-distributed, not constant


def test_fib_slices_show_the_fine_structure_at_their_depth(fib_sample):
    f = fib_sample
    planes = np.round(f.slice_z_nm / 2.5).astype(int)
    band = f.ruler.band_rows
    np.testing.assert_array_equal(f.labels.data[:, band:], f.fine_labels.data[planes])


def test_fib_ruler_marks_visible_where_specified(fib_sample):
    f = fib_sample
    band = f.image[0][:, 8:f.ruler.band_rows].mean(axis=1)  # (z, x) profile of the notches
    expected = f.ruler.positions(f.slice_z_nm)
    for k in (0, len(band) // 2, len(band) - 1):
        minima = np.sort(np.argsort(ndi.minimum_filter1d(band[k], 5) == band[k])[-4:])
        found = np.sort(np.argsort(band[k])[:1])  # darkest pixel is one of the marks
        assert np.min(np.abs(expected[k] - found[0])) < 1.5
        assert len(minima) == 4


def test_fib_pores_show_shine_through(fib_sample):
    # Pore pixels with material just behind them are brighter than deep pores (SE2).
    f = fib_sample
    se2 = f.channels[0].data
    band = f.ruler.band_rows
    lab = f.labels.data[:, band:]
    pore_vals = se2[:, band:][lab == syn.FIB_PORE]
    assert np.percentile(pore_vals, 90) > np.percentile(pore_vals, 10) + 0.2


def test_leveled_wave_fraction_and_scale():
    s = syn.leveled_wave((64, 64, 64), 2.5, wavelength=40.0, solid_fraction=0.3, seed=1)
    assert s.dtype == bool and s.mean() == pytest.approx(0.3, abs=0.005)
    s2 = syn.leveled_wave((64, 64, 64), 2.5, wavelength=40.0, solid_fraction=0.3, seed=1)
    np.testing.assert_array_equal(s, s2)
    # The structure's dominant period is the wavelength: autocorrelation minimum near lambda/2.
    f = np.fft.fftn(s - s.mean())
    ac = np.real(np.fft.ifftn(f * np.conj(f)))[0, 0, :32]
    assert 5 <= np.argmin(ac) <= 11  # 40 nm / 2 = 20 nm = 8 voxels
    with pytest.raises(ValueError):
        syn.leveled_wave((8, 8), solid_fraction=1.0)
