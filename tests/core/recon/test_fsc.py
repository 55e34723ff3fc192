"""Fourier shell correlation against its analytic expectation for signal + noise."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_corrtomo.core.recon import (
    fsc,
    half_bit_threshold,
    one_bit_threshold,
    reconstruct_halves,
)


def test_threshold_formulas():
    # van Heel & Schatz (2005): large shells tend to 0.2071/1.2071 and 0.5/1.5
    np.testing.assert_allclose(half_bit_threshold(1e12), 0.2071 / 1.2071, rtol=1e-5)
    np.testing.assert_allclose(one_bit_threshold(1e12), 1 / 3, rtol=1e-5)
    n = np.array([10.0, 100.0, 1000.0])
    assert np.all(one_bit_threshold(n) > half_bit_threshold(n))
    assert np.all(np.diff(half_bit_threshold(n)) < 0)


def test_identical_volumes_are_resolved_to_nyquist():
    v = np.random.default_rng(0).random((24, 24, 24))
    r = fsc(v, v, voxel_size=0.5)
    np.testing.assert_allclose(r.fsc, 1.0)
    assert not r.crossed_half_bit and r.resolution_half_bit == pytest.approx(1.0)
    # the Nyquist value is a bound, and the line says so (it once read "1 um" as measured)
    assert r.summary("um") == ("FSC resolution: better than 1 um (1/2-bit: no crossing up to "
                               "Nyquist), better than 1 um (1-bit: no crossing up to Nyquist)")


def _signal_plus_noise(shape, sigma_blur, noise, seed):
    rng = np.random.default_rng(seed)
    signal = ndi.gaussian_filter(rng.normal(size=shape), sigma_blur, mode="wrap")
    a = signal + rng.normal(0, noise, shape)
    b = signal + rng.normal(0, noise, shape)
    return signal, a, b


def test_curve_matches_the_expected_snr():
    """FSC(k) = S(k) / (S(k) + N) for a signal of spectrum S plus independent white noise N;
    S is known exactly through the Gaussian filter's transfer function."""
    shape = (48, 48, 48)
    sigma, noise = 1.6, 0.04
    _, a, b = _signal_plus_noise(shape, sigma, noise, 1)
    r = fsc(a, b, voxel_size=1.0)
    freqs = np.meshgrid(*[np.fft.fftfreq(n) for n in shape], indexing="ij")
    k = np.sqrt(sum(f**2 for f in freqs))
    # periodic Gaussian filter of white noise (variance 1): |H|^2 per Fourier voxel
    h2 = np.exp(-4 * np.pi**2 * sigma**2 * k**2)
    shell = np.rint(k / r.frequency[1]).astype(int)
    s_sum = np.bincount(shell.ravel(), h2.ravel(), len(r.frequency))
    count = np.bincount(shell.ravel(), None, len(r.frequency))
    expected = s_sum / (s_sum + count * noise**2)
    sel = slice(1, len(r.frequency))
    tol = 4.0 / np.sqrt(np.maximum(count[sel], 1)) + 0.01
    assert np.all(np.abs(r.fsc[sel] - expected[sel]) < tol)
    # the 1/2-bit resolution sits where the expected curve crosses the threshold
    diff = expected - half_bit_threshold(np.maximum(count, 1))
    first = np.nonzero(diff[1:] < 0)[0][0] + 1
    k_exp = r.frequency[first - 1] + diff[first - 1] / (diff[first - 1] - diff[first]) * (
        r.frequency[first] - r.frequency[first - 1])
    assert r.crossed_half_bit and abs(1 / r.resolution_half_bit - k_exp) < 1.5 * r.frequency[1]
    assert r.resolution_one_bit >= r.resolution_half_bit  # 1 bit is the more conservative


def test_resolution_scales_with_the_voxel_size():
    _, a, b = _signal_plus_noise((32, 32, 32), 1.2, 0.05, 2)
    r1 = fsc(a, b, 1.0)
    r2 = fsc(a, b, 0.25)
    assert r2.resolution_half_bit == pytest.approx(0.25 * r1.resolution_half_bit)
    assert {"frequency_per_nm", "resolution_nm", "fsc", "threshold_half_bit"} <= set(
        r2.table("nm").columns)
    assert r2.crossed_half_bit and r2.summary("nm").startswith(
        f"FSC resolution: {r2.resolution_half_bit:.4g} nm (1/2-bit), ")


def test_frc_in_2d_and_bad_input():
    _, a, b = _signal_plus_noise((64, 64), 1.5, 0.05, 3)
    r = fsc(a, b, 1.0)
    assert r.crossed_half_bit and 2.0 < r.resolution_half_bit < 32
    with pytest.raises(ValueError, match="differ in shape"):
        fsc(a, b[:-1])
    with pytest.raises(ValueError, match="2D images or 3D"):
        fsc(a.ravel(), b.ravel())
    with pytest.raises(ValueError, match="spacing"):
        fsc(a, b, voxel_size=(1.0, 2.0, 3.0))


def test_half_reconstructions_resolution_improves_with_dose():
    from napari_corrtomo.core.synthetic import projections

    res = []
    for photons in (2e3, 2e5):
        s = projections("parallel", seed=6, volume_shape=(16, 48, 48), det_shape=(16, 48),
                        n_angles=120, photons=photons)
        even, odd = reconstruct_halves(s.projections, s.geometry, s.volume_shape, s.voxel_size,
                                       "fbp", backend="numpy")
        res.append(fsc(even, odd, s.voxel_size).resolution_half_bit)
    assert res[1] < res[0]
    assert 2 * 0.5 <= res[1] < 10 * 0.5  # between Nyquist and 10 voxels, in um
