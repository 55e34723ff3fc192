"""The FIB workflow in one call (core.fib.pipeline): band cut placement, sources agree,
errors keyed by setting, progress and cancel inside the ML inpainting."""

import numpy as np
import pytest
from scipy.signal import correlate

from napari_corrtomo.core import synthetic as syn
from napari_corrtomo.core._checks import SettingError, in_words
from napari_corrtomo.core.fib import (
    FibSettings,
    anisotropy,
    fib_quality,
    fill_planes,
    interpolate,
    metrics,
    reposition,
    run_fib,
    slice_positions,
)
from napari_corrtomo.core.fib._inpaint import load_model
from napari_corrtomo.core.io import write_table
from napari_corrtomo.core.progress import Cancelled


@pytest.fixture(scope="module")
def sample():
    return syn.fib_sem_stack(seed=2, n_slices=20, image_shape=(56, 96))


@pytest.fixture(scope="module")
def mimic():
    return syn.fib_mimic(syn.hierarchical_leveled_wave((64, 40, 40), 2.5, seed=21), 2.5, 10.0,
                         4.0, seed=21)


def _ruler(sample, **kw):
    return FibSettings(source="ruler", angle_deg=sample.ruler.angle_deg,
                       band_rows=(0, sample.ruler.band_rows), **kw)


def _offset_on_source(source: np.ndarray, result: np.ndarray, known: np.ndarray,
                      margin: int = 8) -> tuple[int, int]:
    """(y, x) pixel offset of the result's measured planes in the source slices: the peak of
    their cross-correlation summed over slices (the result is cropped by ``margin`` in x
    so that x shifts can be seen)."""
    total = 0.0
    for k, p in enumerate(np.flatnonzero(known)):
        src = source[k] - source[k].mean()
        plane = result[p][:, margin:-margin]
        total = total + correlate(src, plane - plane.mean(), mode="valid")
    y, x = np.unravel_index(int(np.argmax(total)), total.shape)
    return int(y), int(x) - margin


@pytest.mark.parametrize("method", ["nearest", "cubic"])
def test_band_cut_result_lies_on_its_source(sample, method):
    se2 = sample.channels[0].data
    px = sample.ruler.pixel_size_nm
    out = run_fib(se2, px, _ruler(sample, method=method))
    band = sample.ruler.band_rows
    assert out.volume.shape[1] == se2.shape[1] - band
    assert out.origin_nm == (0.0, band * px, 0.0)
    # where the result's own origin puts it, the cross-correlation with the source peaks
    # at zero shift (the widget's old cut put it 16 px = 160 nm too high)
    dy, dx = _offset_on_source(se2, np.asarray(out.volume), out.known)
    assert (dy - out.origin_nm[1] / px, dx) == (0, 0)


def test_band_at_the_bottom_keeps_the_origin(sample):
    flipped = sample.channels[0].data[:, ::-1]
    h = flipped.shape[1]
    s = FibSettings(source="constant", constant_nm=20.0, band_rows=(h - sample.ruler.band_rows, h))
    out = run_fib(flipped, 10.0, s)
    assert out.origin_nm == (0.0, 0.0, 0.0)
    assert out.volume.shape[1] == h - sample.ruler.band_rows
    assert _offset_on_source(flipped, np.asarray(out.volume), out.known) == (0, 0)


def test_csv_and_ruler_sources_give_the_same_placed_volume(sample, tmp_path):
    se2 = sample.channels[0].data
    ruler = run_fib(se2, 10.0, _ruler(sample))
    csv = write_table(tmp_path / "t.csv", {"thickness_nm": ruler.thickness.thickness_nm})
    from_csv = run_fib(se2, 10.0, FibSettings(source="csv", csv_path=str(csv),
                                              band_rows=(0, sample.ruler.band_rows)))
    np.testing.assert_array_equal(from_csv.volume, ruler.volume)
    assert from_csv.origin_nm == ruler.origin_nm
    np.testing.assert_array_equal(from_csv.known, ruler.known)
    # the measured thicknesses are the truth's within a nanometre
    err = ruler.thickness.thickness_nm[:-1] - sample.thickness_nm[:-1]
    assert np.sqrt(np.mean(err**2)) < 1.0
    assert ruler.thickness.ruler is not None and ruler.thickness.gamma is not None


def test_pipeline_is_reposition_plus_interpolate(mimic):
    t = mimic.thickness_nm
    s = FibSettings(source="constant", constant_nm=float(np.mean(t)), method="shape")
    out = run_fib(mimic.stack.astype(np.uint8), 2.5, s, labels=True)
    vol, known = reposition(mimic.stack, np.full(len(t), np.mean(t)), 2.5)
    np.testing.assert_array_equal(out.volume, interpolate(vol, known, "shape"))
    assert out.kind == "binary" and out.spacing_nm == (2.5, 2.5, 2.5)


def test_quality_matches_the_metrics(mimic):
    vol, known = reposition(mimic.stack, mimic.thickness_nm, 2.5)
    res = interpolate(vol, known, "cubic")
    assert fib_quality(res.astype(np.uint8) * 3, 2.5, mimic.truth.astype(np.uint8) * 3,
                       phase=3) == metrics(res, mimic.truth)
    assert fib_quality(res, (2.5,) * 3) == anisotropy(res, (2.5,) * 3)
    with pytest.raises(ValueError, match="different shapes"):
        fib_quality(res[1:], 2.5, mimic.truth)


@pytest.mark.parametrize("settings, key, words", [
    (FibSettings(source="constant", constant_nm=10.0, band_rows=(20, 30)), "cut_band",
     "'cut the ruler band'"),
    (FibSettings(source="constant", constant_nm=10.0, align=True), "align", "'undo x drift'"),
    (FibSettings(source="ruler", band_rows=(0, 16)), "angle_deg", "'Inclined angle'"),
    (FibSettings(source="ruler", angle_deg=25.0), "band_rows", "'Band rows'"),
    (FibSettings(source="constant", constant_nm=0.0), "constant_nm", "'Thickness'"),
    (FibSettings(source="constant"), "constant_nm", "give 'Thickness'"),
    (FibSettings(source="constant", constant_nm=10.0, band_rows=(16, 0)), "band_rows",
     "'Band rows' (16, 0) must be (first, stop) with first < stop"),
    # 0.02 "nm" on 10 nm pixels: 0.02 um meant (was accepted, 64 planes written)
    (FibSettings(source="constant", constant_nm=0.02), "constant_nm", "'Thickness'"),
    (FibSettings(source="csv"), "csv_path", "a CSV file"),
    (FibSettings(source="ruler", angle_deg=25.0, band_rows=(30, 50)), "polarity",
     "'Marks are'"),
    (FibSettings(source="ruler", angle_deg=95.0, band_rows=(0, 16)), "angle_deg",
     "'Inclined angle'"),
    # a greyscale stack called binary: was all ones (astype(bool)) without a word
    (FibSettings(source="constant", constant_nm=10.0, kind="binary", method="shape"), "kind",
     "'Data are' binary"),
])
def test_setting_errors_name_the_setting(sample, settings, key, words):
    with pytest.raises(SettingError) as info:
        run_fib(sample.channels[0].data, 10.0, settings)
    assert key in info.value.api_words
    assert words in in_words(info.value, {key: words})
    assert words not in str(info.value)


def test_ml_progress_reports_inside_the_block_and_cancels_there(mimic):
    planes = slice_positions(mimic.thickness_nm, 2.5)
    calls = []
    fill_planes(mimic.stack, planes, int(planes[-1]) + 1, "ml",
                progress=lambda d, t: calls.append((d, t)))
    done = [d / t for d, t in calls]
    # one report per network layer of every batch of gap planes, not one per block
    assert len(calls) > len(load_model()["layers"])
    assert done == sorted(done) and done[-1] == 1.0

    def cancel_early(d, t):
        if d > 0:
            raise Cancelled()

    seen = []
    with pytest.raises(Cancelled):
        fill_planes(mimic.stack, planes, int(planes[-1]) + 1, "ml",
                    progress=lambda d, t: (seen.append(d), cancel_early(d, t)))
    assert len(seen) == 1  # stopped at the first layer of the first batch
