"""Slice thickness from ruler marks, thickness CSVs and the gamma fit (core.fib)."""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from napari_corrtomo.core import synthetic as syn
from napari_corrtomo.core.fib import (
    RulerMarkers,
    correct_drift,
    detect_ruler_marks,
    fit_gamma,
    load_thickness,
    measure_thickness,
)


def _markers(sample, **kw):
    # only what a user knows: angle, pixel size, band rows (no true mark positions)
    r = sample.ruler
    return RulerMarkers(angle_deg=r.angle_deg, pixel_size=r.pixel_size_nm, rows=(0, r.band_rows),
                        **kw)


@pytest.fixture(scope="module")
def drifting():
    return syn.fib_sem_stack(seed=4, n_slices=32, image_shape=(48, 160), drift_px=1.5)


def test_ruler_thickness_matches_truth(fib_sample):
    res = measure_thickness(fib_sample.image, _markers(fib_sample))
    t = res.thickness_nm
    assert np.isnan(t[-1]) and "last" in res.table["flags"].iloc[-1]
    err = t[:-1] - fib_sample.thickness_nm[:-1]
    rms = np.sqrt(np.mean(err**2))
    assert rms < 0.5  # nm, for 10 nm pixels and ~19 nm slices
    assert res.layout == "IPPI"  # inferred from the motion of the marks
    # the reported 1-sigma uncertainty is calibrated (z-scores of unit spread)
    z = err / res.table["uncertainty_nm"].to_numpy()[:-1]
    assert 0.6 < np.std(z) < 1.5
    np.testing.assert_allclose(res.table["depth_nm"], fib_sample.slice_z_nm, atol=3.0)
    assert res.flagged.empty
    # one channel alone also works (noisier)
    one = measure_thickness(fib_sample.channels[1].data, _markers(fib_sample))
    assert np.sqrt(np.mean((one.thickness_nm[:-1] - fib_sample.thickness_nm[:-1]) ** 2)) < 0.7


def test_ruler_with_drift_and_drift_correction(drifting):
    res = measure_thickness(drifting.image, _markers(drifting))
    err = res.thickness_nm[:-1] - drifting.thickness_nm[:-1]
    assert np.sqrt(np.mean(err**2)) < 0.6
    drift = res.table["drift_x_px"].to_numpy()
    assert np.ptp(drift) > 2  # the sample really drifts
    # the parallel marks' drift is the labels' drift: undoing it re-aligns the truth
    band = drifting.ruler.band_rows
    lab = drifting.labels.data[:, band:].astype(np.int16)
    fixed = correct_drift(lab, drift, labels=True)

    def misfit(stack):
        return np.mean(stack[1:, :, 20:-20] != stack[:-1, :, 20:-20])

    assert misfit(fixed) < misfit(lab)


def test_detected_marks_and_points(fib_sample):
    marks = detect_ruler_marks(fib_sample.channels[0].data, _markers(fib_sample))
    xs = marks[["x0", "x1", "x2", "x3"]].to_numpy()
    truth = fib_sample.ruler.positions(fib_sample.slice_z_nm)  # only to check, never used
    np.testing.assert_allclose(np.sort(xs, axis=1), np.sort(truth, axis=1), atol=0.15)
    res = measure_thickness(fib_sample.channels[0].data, _markers(fib_sample))
    pts = res.mark_points()
    assert pts.shape == (4 * len(xs), 3)
    assert np.all(pts[:, 1] < fib_sample.ruler.band_rows)


def test_explicit_layout_and_bright_polarity(fib_sample):
    inverted = -fib_sample.channels[0].data
    res = measure_thickness(inverted, _markers(fib_sample, layout="IPPI", polarity="bright"))
    err = res.thickness_nm[:-1] - fib_sample.thickness_nm[:-1]
    assert np.sqrt(np.mean(err**2)) < 0.7
    with pytest.raises(ValueError, match="no marks found|found 0 ruler marks|found [0-3] ruler"):
        measure_thickness(inverted, _markers(fib_sample))  # wrong polarity


def test_missing_marks_listed_and_fallback_only_when_asked(fib_sample):
    stack = fib_sample.channels[0].data.copy()
    band = fib_sample.ruler.band_rows
    for k in (10, 11, 30):  # wipe the marks in three slices
        stack[k, :band] = np.median(stack[k, :band])
    with pytest.raises(ValueError, match=r"not found in slices 10, 11, 30.*fallback_thickness"):
        measure_thickness(stack, _markers(fib_sample))
    res = measure_thickness(stack, _markers(fib_sample), fallback_thickness=20.0)
    assert res.missing == [10, 11, 30]
    flags = res.table["flags"]
    for k in (9, 10, 11, 29, 30):
        assert "fallback" in flags.iloc[k]
        assert res.thickness_nm[k] == 20.0
    good = ~flags.str.contains("fallback|last")
    err = res.thickness_nm[good] - fib_sample.thickness_nm[good]
    assert np.sqrt(np.mean(err**2)) < 0.7
    assert set(res.flagged["slice"]) >= {9, 10, 11, 29, 30}
    with pytest.raises(ValueError, match="fallback_thickness must be positive"):
        measure_thickness(stack, _markers(fib_sample), fallback_thickness=-1.0)


def test_marks_found_in_no_slice_warn_nothing(fib_sample):
    """Marks looked for where there are none: the error (or the fallback) without NumPy's
    All-NaN warning, which the command line printed above its message."""
    stack = fib_sample.channels[0].data
    markers = _markers(fib_sample, x_first=(1.0, 2.0, 3.0, 4.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="not found in slices 0, 1, 2"):
            measure_thickness(stack, markers)
        res = measure_thickness(stack, markers, fallback_thickness=20.0)
    assert np.all(res.thickness_nm[:-1] == 20.0) and np.isnan(res.table["drift_x_px"]).all()


def test_implausible_thickness_is_flagged(fib_sample):
    # drop slice 20 from the stack: the face advances by two thicknesses there
    stack = np.delete(fib_sample.channels[0].data, [20, 21, 22], axis=0)
    res = measure_thickness(stack, _markers(fib_sample))
    assert "too-thick" in res.table["flags"].iloc[19]


def test_bad_ruler_geometry():
    stack = np.zeros((4, 20, 30), np.float32)
    with pytest.raises(ValueError, match="between 0 and 90"):
        measure_thickness(stack, RulerMarkers(angle_deg=95, pixel_size=10, rows=(0, 5)))
    with pytest.raises(ValueError, match="do not fit images of 20 rows"):
        measure_thickness(stack, RulerMarkers(angle_deg=25, pixel_size=10, rows=(0, 50)))
    with pytest.raises(ValueError, match="two P and two I"):
        measure_thickness(stack, RulerMarkers(angle_deg=25, pixel_size=10, rows=(0, 5),
                                              layout="PPPI"))
    with pytest.raises(ValueError, match="no marks found"):
        measure_thickness(stack, RulerMarkers(angle_deg=25, pixel_size=10, rows=(0, 5)))
    with pytest.raises(ValueError, match="at least two slices"):
        measure_thickness(stack[:1], RulerMarkers(angle_deg=25, pixel_size=10, rows=(0, 5)))


# ----------------------------------------------------------------------------- CSV


def test_load_thickness_units_and_checks(tmp_path):
    p = tmp_path / "t.csv"
    pd.DataFrame({"slice": [0, 1, 2], "thickness_um": [0.01, 0.012, np.nan]}).to_csv(p, index=False)
    np.testing.assert_allclose(load_thickness(p, n_slices=3), [10.0, 12.0, np.nan])
    with pytest.raises(ValueError, match="got 3 slice thicknesses for a stack of 4"):
        load_thickness(p, n_slices=4)
    bare = tmp_path / "bare.csv"
    bare.write_text("10\n9.5\n11\n")
    with pytest.raises(ValueError, match="unit is unknown"):
        load_thickness(bare)
    np.testing.assert_allclose(load_thickness(bare, unit="nm"), [10, 9.5, 11])
    neg = tmp_path / "neg.csv"
    neg.write_text("thickness_nm\n10\n-1\n10\n")
    with pytest.raises(ValueError, match=r"slices 1 \(-1\)"):
        load_thickness(neg, n_slices=3)
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="no thickness column"):
        load_thickness(other)
    with pytest.raises(ValueError, match="no such thickness file"):
        load_thickness(tmp_path / "nope.csv")


def test_fit_gamma_matches_scipy():
    rng = np.random.default_rng(0)
    t = rng.gamma(4.0, 2.5, 2000)
    shape, scale = fit_gamma(np.append(t, np.nan))
    ref = stats.gamma.fit(t, floc=0)
    assert shape == pytest.approx(ref[0]) and scale == pytest.approx(ref[2])
    assert shape == pytest.approx(4.0, rel=0.1) and shape * scale == pytest.approx(10.0, rel=0.05)
    with pytest.raises(ValueError, match="at least 3"):
        fit_gamma([1.0, np.nan])


def test_lazy_stack_ruler_and_drift_correction(drifting):
    import dask.array as da

    stack = drifting.channels[0].data
    lazy = da.from_array(stack, chunks=(5, -1, -1))
    mk = _markers(drifting)
    a = measure_thickness(stack, mk)
    b = measure_thickness(lazy, mk)
    np.testing.assert_array_equal(a.thickness_nm, b.thickness_nm)
    drift = a.table["drift_x_px"].to_numpy()
    np.testing.assert_array_equal(correct_drift(lazy, drift).compute(), correct_drift(stack, drift))
