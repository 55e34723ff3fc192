"""Flat/dark normalisation, -log, zinger removal and ring suppression on raw synthetic scans."""

import numpy as np
import pytest

from napari_corrtomo.core.recon import (
    minus_log,
    normalize,
    prepare,
    reconstruct,
    remove_outliers,
    suppress_rings,
)
from napari_corrtomo.core.synthetic import projections


@pytest.fixture(scope="module")
def raw_sample():
    return projections("parallel", seed=2, volume_shape=(8, 48, 48), det_shape=(8, 48),
                       n_angles=90, raw=True, photons=5e4, zingers=2e-3)


def _rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def test_normalize_is_the_reference_correction(raw_sample):
    s = raw_sample
    t = normalize(s.raw, s.flats, s.darks)
    expected = (s.raw - s.darks.mean(0)) / (s.flats.mean(0) - s.darks.mean(0))
    np.testing.assert_allclose(t, expected, rtol=1e-5)
    one_flat = normalize(s.raw, s.flats[0])
    np.testing.assert_allclose(one_flat, s.raw / s.flats[0], rtol=1e-5)


def test_zero_flat_field_is_an_error(raw_sample):
    s = raw_sample
    flats = s.flats.copy()
    flats[:, 3, 5] = 0.0
    with pytest.raises(ValueError, match="flat field is zero"):
        normalize(s.raw, flats)
    with pytest.raises(ValueError, match="flat field"):
        normalize(s.raw, s.flats, s.flats + 1)  # darks above the flats
    with pytest.raises(ValueError, match="matching the detector"):
        normalize(s.raw, s.flats[:, :-1])
    with pytest.raises(ValueError, match="3D"):
        normalize(s.raw[0], s.flats)


def test_swapped_flats_and_darks_are_said_to_be_swapped(raw_sample):
    """Darks given as flats: the message was "zero or below the dark current at 384 detector
    pixels ... (dead pixels, wrong files)", not what to do."""
    s = raw_sample
    with pytest.raises(ValueError, match="they look swapped; give the open-beam frames as "
                                         "flats and the frames without beam as darks"):
        normalize(s.raw, s.darks, s.flats)
    flats = s.flats.copy()
    flats[:, 3, 5] = 0.0  # one dead pixel is not a swap
    with pytest.raises(ValueError, match="dead pixels"):
        normalize(s.raw, flats, s.darks)


def test_nan_projections_say_where_and_what_to_do(raw_sample):
    s = raw_sample
    raw = s.raw.astype(np.float32)
    raw[4, 2, 7] = np.nan
    for lines in (False, True):  # raw counts with their flats, or line integrals
        with pytest.raises(ValueError) as info:
            prepare(raw, flats=None if lines else s.flats, log=not lines)
        assert str(info.value).startswith(
            "projections contain 1 NaN or inf values (first at angle 4, row 2, col 7); "
            "replace them")


def test_minus_log_never_clips_silently():
    t = np.array([[[1.0, np.exp(-2.0), 0.0]]], np.float32)
    with pytest.raises(ValueError, match="transmission <= 0"):
        minus_log(t)
    out = minus_log(t, floor=1e-3)
    np.testing.assert_allclose(out[0, 0], [0.0, 2.0, -np.log(1e-3)], rtol=1e-6)
    with pytest.raises(ValueError, match="floor"):
        minus_log(t, floor=0)


def test_outlier_removal_finds_zingers(raw_sample):
    s = raw_sample
    lines = minus_log(normalize(s.raw, s.flats, s.darks))
    cleaned, mask = remove_outliers(lines, threshold=6.0, return_mask=True)
    truth = s.zingers
    recall = (mask & truth).sum() / truth.sum()
    false_pos = (mask & ~truth).sum() / (~truth).sum()
    assert recall > 0.95 and false_pos < 1e-3
    clean = projections("parallel", seed=2, volume_shape=(8, 48, 48), det_shape=(8, 48),
                        n_angles=90, photons=None).projections
    assert _rel(cleaned, clean) < 0.5 * _rel(lines, clean)


def test_ring_suppression():
    """Per-column gain errors the flats do not capture make rings; suppressing them brings
    the reconstruction close to that of the same scan without the gain errors."""
    kw = dict(seed=3, volume_shape=(8, 48, 48), det_shape=(8, 48), n_angles=90, raw=True,
              photons=1e7)
    rings = projections("parallel", rings=0.01, **kw)
    clean = projections("parallel", rings=0.0, **kw)
    g = rings.geometry

    def recon(s, suppress):
        lines = minus_log(normalize(s.raw, s.flats, s.darks))
        if suppress:
            lines = suppress_rings(lines)
        return reconstruct(lines, g, rings.volume_shape, rings.voxel_size, backend="numpy")

    ref = recon(clean, False)
    assert _rel(recon(rings, True), ref) < 0.6 * _rel(recon(rings, False), ref)


def test_prepare_chain_recovers_line_integrals(raw_sample):
    s = raw_sample
    lines = prepare(s.raw, flats=s.flats, darks=s.darks, outlier_threshold=6.0)
    clean = projections("parallel", seed=2, volume_shape=(8, 48, 48), det_shape=(8, 48),
                        n_angles=90, photons=None).projections
    assert np.abs(lines - clean).mean() < 0.01
    with pytest.raises(ValueError, match="flat frames"):
        prepare(s.raw, darks=s.darks)
    with pytest.raises(ValueError, match="odd"):
        remove_outliers(lines, size=4)
    with pytest.raises(ValueError, match="size"):
        suppress_rings(lines, size=1)
    with pytest.raises(ValueError, match="3D"):
        suppress_rings(lines[0])


def test_raw_counts_are_recognised_and_log_of_line_integrals_names_the_cause():
    from napari_corrtomo.core._checks import SettingError
    from napari_corrtomo.core.recon import raw_counts_peak

    s = projections("parallel", seed=0, volume_shape=(4, 16, 16), det_shape=(4, 24),
                    n_angles=12, raw=True)
    assert raw_counts_peak(s.raw) == float(s.raw.max())
    assert raw_counts_peak(s.raw, flats=s.flats) is None
    assert raw_counts_peak(s.raw, log=True) is None
    assert raw_counts_peak(s.raw, kind="tilt_series") is None  # ET images are used as they are
    assert raw_counts_peak(s.projections) is None
    with pytest.raises(SettingError) as info:
        prepare(s.projections, log=True)
    assert "probably line integrals already" in str(info.value)
    assert info.value.worded({"log": "--log"}).endswith(
        "leave out --log (or give the flat field, flats)")
    with pytest.raises(SettingError) as info:
        minus_log(np.zeros(3))
    assert info.value.worded({"floor": "fix --flats"}).endswith("or fix --flats")
