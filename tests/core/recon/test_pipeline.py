"""core.recon.pipeline: the reconstruction workflow is the composition of its steps, and
finds what the synthetic scan hides (axis offset, tilt-series jitter)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_corrtomo.core import recon, synthetic
from napari_corrtomo.core._checks import SettingError


@pytest.fixture(scope="module")
def raw_scan():
    return synthetic.projections("parallel", seed=1, volume_shape=(8, 48, 48), det_shape=(8, 48),
                                 n_angles=90, raw=True, zingers=1e-3, center_offset=2.0)


def test_run_reconstruction_is_its_steps_in_order(raw_scan):
    s = raw_scan
    scan = recon.ScanSettings(outlier_threshold=6.0, center="auto")
    settings = recon.ReconSettings("fbp", shape=s.volume_shape)
    r = recon.run_reconstruction(s.raw, s.geometry, scan, settings, flats=s.flats,
                                 darks=s.darks, halves=True)
    # the same steps by hand
    lines = recon.prepare(s.raw, flats=s.flats, darks=s.darks, outlier_threshold=6.0)
    offset = recon.find_center(lines, s.geometry)
    geom = s.geometry.shifted(col=offset)
    vol = recon.reconstruct(lines, geom, s.volume_shape, None, "fbp")
    np.testing.assert_array_equal(r.volume, vol)
    a, b = recon.reconstruct_halves(lines, geom, s.volume_shape, None, "fbp")
    np.testing.assert_array_equal(r.fsc.fsc, recon.fsc(a, b, geom.default_voxel_size).fsc)
    # what the scan hid is found, and the result says what it used
    assert abs(np.mean(r.geometry.shifts[:, 1]) - 2.0) < 0.2
    assert r.settings.method == "fbp" and r.voxel_size == s.geometry.default_voxel_size
    err = np.linalg.norm(r.volume - s.phantom) / np.linalg.norm(s.phantom)
    assert err < 0.3
    # the preview is that volume's slice
    img, _ = recon.preview_slice(s.raw, s.geometry, 4, scan, settings, flats=s.flats,
                                 darks=s.darks)
    np.testing.assert_allclose(img, r.volume[4], rtol=1e-5, atol=1e-6 * np.abs(vol).max())
    fsc, g = recon.half_map_fsc(s.raw, s.geometry, scan, settings, flats=s.flats,
                                darks=s.darks)
    np.testing.assert_array_equal(fsc.fsc, r.fsc.fsc)
    np.testing.assert_array_equal(g.shifts, r.geometry.shifts)


def test_tilt_series_alignment_replaces_the_shifts():
    s = synthetic.projections("tilt_series", seed=2, jitter_px=1.5)
    lines, g = recon.prepare_scan(s.projections, s.geometry, recon.ScanSettings(align=True))
    _, shifts = recon.align_tilt_series(s.projections, s.geometry.angles_deg)
    np.testing.assert_allclose(g.shifts, shifts)
    np.testing.assert_array_equal(lines, recon.prepare(s.projections))


def test_settings_are_checked_before_any_work(raw_scan):
    with pytest.raises(ValueError, match="centre takes 'auto'"):
        recon.ScanSettings(center="middle")
    # each names its setting as a placeholder a front end words its own way
    for make, name in [(lambda: recon.ReconSettings(voxel_size=0.0), "voxel_size"),
                       (lambda: recon.ReconSettings("sirt", iterations=0), "iterations"),
                       (lambda: recon.ReconSettings(shape=(0, 4, 4)), "shape"),
                       (lambda: recon.ReconSettings("cgls", min_value=0.0), "min_value"),
                       (lambda: recon.ReconSettings(min_value=0.0), "min_value"),
                       (lambda: recon.ReconSettings("art"), "method"),
                       (lambda: recon.ScanSettings(outlier_threshold=-1), "outlier_threshold"),
                       (lambda: recon.ScanSettings(ring_size=1), "ring_size")]:
        with pytest.raises(SettingError) as err:
            make()
        assert err.value.worded({name: "<it>"}).startswith("<it> "), err.value
    assert recon.ReconSettings("sirt", min_value=0.0).min_value == 0.0
    with pytest.raises(ValueError):
        recon.prepare_scan(raw_scan.raw[:-1], raw_scan.geometry)  # one projection short


def test_preview_of_a_slice_outside_the_volume_is_refused_before_any_preparation():
    s = synthetic.projections("tilt_series", seed=1, volume_shape=(8, 16, 16),
                              det_shape=(12, 20), n_angles=12)
    with pytest.raises(SettingError) as err:
        # projections of the wrong size would fail the preparation: the check comes first
        recon.preview_slice(s.projections[:, :2], s.geometry, 20,
                            settings=recon.ReconSettings(shape=(8, 16, 16)))
    assert str(err.value) == ("slice index 20 is outside the volume: its slices along the "
                              "rotation axis (y) are 0 to 15")
    assert recon.preview_slice(s.projections, s.geometry, 15,
                               settings=recon.ReconSettings(shape=(8, 16, 16)))[0].shape == (8, 16)


def test_slabs_are_for_parallel_fbp_and_refused_before_any_preparation():
    s = synthetic.projections("cone", seed=1, volume_shape=(8, 16, 16), det_shape=(12, 20),
                              n_angles=12)
    recon.check_slab(recon.ReconSettings(), s.geometry, None)  # no slabs: anything goes
    with pytest.raises(SettingError, match="slab= reconstructs parallel-beam scans with FBP"):
        # projections of the wrong size would fail the preparation: the check comes first
        recon.run_reconstruction(s.projections[:, :2], s.geometry, slab=4)


def test_alignment_is_for_tilt_series_and_a_constant_stack_is_refused(raw_scan):
    """Neighbour cross-correlation on a 180/360 degree scan measures the object turning,
    not the stage: ``align`` is refused there (naming the setting for the axis offset);
    a stack of one value (a blank frame, a mask) has nothing to reconstruct."""
    s = raw_scan
    with pytest.raises(SettingError) as err:
        recon.run_reconstruction(s.raw, s.geometry, recon.ScanSettings(align=True),
                                 flats=s.flats, darks=s.darks)
    assert err.value.worded({"align": "--align", "center": "--center"}) == (
        "--align is for tilt series (electron tomography), whose neighbouring projections "
        "nearly match; a parallel scan is aligned by its rotation-axis offset (--center)")
    one = recon.Geometry.parallel([0.0], s.geometry.det_shape, 1.0)
    with pytest.raises(ValueError, match="one projection cannot be reconstructed"):
        recon.prepare_scan(s.raw[:1], one)
    blank = np.full(s.raw.shape, 7, np.uint16)
    with pytest.raises(ValueError, match=r"hold one value \(7\) throughout"):
        recon.prepare_scan(blank, s.geometry)


def test_a_volume_over_the_memory_budget_is_refused_before_any_preparation(raw_scan,
                                                                           monkeypatch):
    g = raw_scan.geometry
    settings = recon.ReconSettings(shape=(8, 400, 400))
    need = recon.memory_needed(g, settings)
    assert need == 4 * (2 * 8 * 400 * 400 + 3 * g.n_angles * 8 * 48)  # FBP: 2 volumes
    assert recon.memory_needed(g, replace_method(settings, "sirt")) > need
    assert recon.check_memory(g, settings, budget=need) == need
    with pytest.raises(SettingError) as info:
        recon.check_memory(g, settings, budget=need - 1)
    text = str(info.value)
    assert "a 8 x 400 x 400 voxel volume" in text and "choose a smaller shape" in text
    assert "slab by slab into a zarr store (slab=" in text
    # one slab against a worker's budget
    slab = recon.memory_needed(g, settings, slab=4)
    assert slab < need
    with pytest.raises(SettingError, match="one slab of 4 slices"):
        recon.check_memory(g, settings, slab=4, budget=slab - 1)
    # run_reconstruction checks it before preparing the scan (CORRTOMO_MEMORY_BUDGET)
    monkeypatch.setenv("CORRTOMO_MEMORY_BUDGET", str(need - 1))
    prepared = []
    monkeypatch.setattr("napari_corrtomo.core.recon.pipeline._prepare",
                        lambda *a, **k: prepared.append(a))
    with pytest.raises(SettingError, match="voxel volume"):
        recon.run_reconstruction(raw_scan.raw, g, settings=settings, flats=raw_scan.flats)
    assert not prepared


def replace_method(settings, method):
    from dataclasses import replace

    return replace(settings, method=method)


def test_a_centre_off_the_detector_is_refused(raw_scan):
    g = raw_scan.geometry  # 48 columns
    recon.check_center(g, 23.0)
    recon.check_center(g, "auto")
    for bad in (24.0, -1000.0, float("nan")):
        with pytest.raises(SettingError, match="outside the detector \\(48 columns wide"):
            recon.check_center(g, bad)
    with pytest.raises(SettingError, match="center 1000 px"):
        recon.prepare_scan(raw_scan.raw, g, recon.ScanSettings(center=1000.0),
                           flats=raw_scan.flats)


@pytest.mark.parametrize("voxel_size, what", [
    (500.0, "the 8 x 48 x 48 volume of 500 um voxels casts a shadow of 6.79e+04 x 8e+03 "
            "pixels (columns x rows) on the 48 x 8 pixel detector (0.5 um per pixel at the "
            "rotation axis), of which only 7.1e-07 falls on the detector: the volume would be "
            "blank (zero) almost everywhere; the voxel size is 1e+03 times"),
    (0.0005, "the 8 x 48 x 48 volume of 0.0005 um voxels casts a shadow of 0.0679 x 0.008 "
             "pixels (columns x rows) on the 48 x 8 pixel detector (0.5 um per pixel at the "
             "rotation axis), less than one detector pixel: the volume would be one constant "
             "value; the voxel size is 0.001 times"),
])
def test_a_voxel_size_in_another_unit_is_refused_before_any_preparation(raw_scan, monkeypatch,
                                                                        voxel_size, what):
    """nm typed into a um geometry (or the reverse) gave a blank or constant volume."""
    prepared = []
    monkeypatch.setattr("napari_corrtomo.core.recon.pipeline._prepare",
                        lambda *a, **k: prepared.append(a))
    settings = recon.ReconSettings(voxel_size=voxel_size)
    with pytest.raises(SettingError) as info:
        recon.run_reconstruction(raw_scan.raw, raw_scan.geometry, settings=settings,
                                 flats=raw_scan.flats)
    assert not prepared
    assert info.value.worded({"voxel_size": "--voxel-size"}) == (
        f"{what} the detector pixel: give --voxel-size in um, the geometry's unit (nm and um "
        f"differ by a factor of 1000), or leave it empty for the pixel at the axis (0.5 um)")


def test_binned_and_supersampled_grids_run(raw_scan):
    s = raw_scan
    for factor in (0.5, 2.0, 4.0):  # the default shape: a larger or smaller field of view
        settings = recon.ReconSettings(voxel_size=factor * s.geometry.default_voxel_size)
        r = recon.run_reconstruction(s.raw, s.geometry, settings=settings, flats=s.flats,
                                     darks=s.darks)
        assert r.volume.shape == s.geometry.default_volume_shape()
        assert np.ptp(r.volume) > 0 and r.voxel_size == settings.voxel_size
