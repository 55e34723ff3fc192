"""Slice repositioning, gap interpolation and the MP/MGP/MDS metrics (core.fib)."""

import itertools

import numpy as np
import pytest
from scipy.interpolate import CubicSpline

from napari_corrtomo.core import synthetic as syn
from napari_corrtomo.core.fib import (
    interpolate,
    metrics,
    nearest_known,
    reposition,
    slice_positions,
)
from napari_corrtomo.core.fib.reposition import _place_in_order

# ----------------------------------------------------------------------------- positions


def test_positions_are_rounded_depths_without_collisions():
    t = np.array([10.0, 7.5, 12.5, 5.0, np.nan])
    np.testing.assert_array_equal(slice_positions(t, 2.5), [0, 4, 7, 12, 14])
    # repositioning on 10 nm, returned on the 2.5 nm grid
    np.testing.assert_array_equal(slice_positions([10, 10, 10, 10], 10.0, 2.5), [0, 4, 8, 12])


def test_collision_goes_to_the_nearest_free_plane():
    # depths 0, 10, 12 nm on a 10 nm grid: slice 2 rounds onto slice 1 -> next plane
    np.testing.assert_array_equal(slice_positions([10.0, 2.0, 1.0], 10.0), [0, 1, 2])
    # depths 0, 16, 17: slice 1 would round to 2 and slice 2 too; the free plane 1 is
    # nearest for slice 1 (order kept)
    np.testing.assert_array_equal(slice_positions([16.0, 1.0, 1.0], 10.0), [0, 1, 2])


def test_collision_placement_is_optimal_against_brute_force():
    rng = np.random.default_rng(3)
    for _ in range(150):
        n = int(rng.integers(2, 6))
        exact = np.concatenate([[0.0], np.cumsum(rng.gamma(2.0, 0.5, n - 1))])
        best = min(np.abs(np.array(c) - exact).sum()
                   for c in itertools.combinations(range(int(exact.max()) + n + 1), n))
        got = _place_in_order(exact)
        assert np.all(np.diff(got) > 0) and got[0] >= 0
        assert np.abs(got - exact).sum() == pytest.approx(best, abs=1e-9)


def test_reposition_puts_slices_on_their_planes():
    rng = np.random.default_rng(0)
    stack = rng.integers(1, 255, (5, 4, 6), dtype=np.uint8)
    vol, known = reposition(stack, [5.0, 2.5, 10.0, 7.5, np.nan], 2.5)
    assert vol.shape == (11, 4, 6) and vol.dtype == np.uint8
    np.testing.assert_array_equal(np.flatnonzero(known), [0, 2, 3, 7, 10])
    np.testing.assert_array_equal(vol[known], stack)
    assert np.all(vol[~known] == 0)


@pytest.mark.parametrize("bad, match", [
    ([10.0, 10.0], "got 2 slice thicknesses for a stack of 3"),
    ([10.0, 0.0, 10.0], r"slices 1 \(0\)"),
    ([10.0, -2.0, 10.0], r"slices 1 \(-2\)"),
    ([np.nan, 10.0, 10.0], "positive and finite"),
    ([10.0, 10.0, -1.0], "last slice thickness"),
])
def test_bad_thicknesses_are_clear_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        reposition(np.zeros((3, 2, 2)), bad, 2.5)


def test_bad_grid_and_stack():
    with pytest.raises(ValueError, match="grid_spacing must be positive"):
        reposition(np.zeros((3, 2, 2)), [1, 1, 1], 0.0)
    with pytest.raises(ValueError, match="must divide"):
        slice_positions([10, 10], 10.0, 3.0)
    with pytest.raises(ValueError, match=r"\(slices, y, x\)"):
        reposition(np.zeros((3, 2)), [1, 1, 1], 1.0)


# ----------------------------------------------------------------------------- interpolation


def test_nearest_known_ties_go_up():
    known = np.array([1, 0, 0, 0, 1, 0, 1], bool)
    np.testing.assert_array_equal(nearest_known(known), [0, 0, 0, 4, 4, 4, 6])


def test_cubic_matches_scipy_and_keeps_measured_planes():
    rng = np.random.default_rng(1)
    known = np.zeros(20, bool)
    known[[0, 3, 7, 8, 12, 19]] = True
    vol = np.zeros((20, 5, 6), np.float32)
    vol[known] = rng.normal(size=(known.sum(), 5, 6))
    out = interpolate(vol, known, "cubic")
    ref = CubicSpline(np.flatnonzero(known), vol[known], axis=0)(np.arange(20))
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(out[known], vol[known])
    # blockwise (a tiny memory budget) gives the same answer
    import os
    os.environ["CORRTOMO_MEMORY_BUDGET"] = "20000"
    try:
        np.testing.assert_array_equal(interpolate(vol, known, "cubic"), out)
    finally:
        del os.environ["CORRTOMO_MEMORY_BUDGET"]


def test_interpolation_reproduces_linear_ramps():
    # a ramp along z is reproduced exactly by the spline; a tilted binary plane by
    # shape-based interpolation (its signed distance is linear in z)
    known = np.zeros(13, bool)
    known[[0, 4, 5, 9, 12]] = True
    z, y, x = np.indices((13, 8, 24)).astype(float)
    ramp = (2.0 * z + x).astype(np.float32)
    np.testing.assert_allclose(interpolate(np.where(known[:, None, None], ramp, 0), known,
                                           "cubic"), ramp, atol=1e-4)
    solid = x < 6.5 + z  # boundaries on pixel edges in every plane
    got = interpolate(np.where(known[:, None, None], solid, False), known, "shape")
    assert got.dtype == bool
    np.testing.assert_array_equal(got, solid)


def test_binary_and_label_kinds():
    known = np.array([1, 0, 0, 1], bool)
    vol = np.zeros((4, 3, 3), np.uint8)
    vol[0] = 2
    vol[3] = 5
    lab = interpolate(vol, known, "cubic", kind="labels")
    assert set(np.unique(lab)) == {2, 5} and lab.dtype == np.uint8
    np.testing.assert_array_equal(lab[:, 0, 0], [2, 2, 5, 5])
    b = interpolate(vol > 3, known, "nearest")
    assert b.dtype == bool
    np.testing.assert_array_equal(b[:, 1, 1], [False, False, True, True])


def test_interpolate_bad_input():
    vol = np.zeros((5, 4, 4), np.float32)
    with pytest.raises(ValueError, match="unknown interpolation method"):
        interpolate(vol, np.ones(5, bool), "linearish")
    with pytest.raises(ValueError, match="the volume has 5 planes"):
        interpolate(vol, np.ones(4, bool), "cubic")
    with pytest.raises(ValueError, match="at least two measured planes"):
        interpolate(vol, np.array([1, 0, 0, 0, 0], bool), "cubic")
    with pytest.raises(ValueError, match="segment the stack first"):
        interpolate(vol, np.array([1, 0, 0, 0, 1], bool), "ml")
    with pytest.raises(ValueError, match="boolean mask"):
        interpolate(vol, np.array([1, 0, 0, 0, 1]), "cubic")
    bad = vol.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        interpolate(bad, np.array([1, 0, 0, 0, 1], bool), "cubic")
    with pytest.raises(ValueError, match="isotropic"):
        interpolate(vol > 0, np.array([1, 0, 0, 0, 1], bool), "ml", spacing=(2.5, 10, 10))


# ----------------------------------------------------------------------------- metrics


def test_metrics_against_sklearn():
    from sklearn.metrics import accuracy_score, f1_score, recall_score

    rng = np.random.default_rng(0)
    truth = rng.uniform(size=(6, 7, 8)) < 0.3
    result = truth ^ (rng.uniform(size=truth.shape) < 0.1)
    m = metrics(result, truth)
    t, r = truth.ravel(), result.ravel()
    assert m["mp_percent"] == pytest.approx(100 * (1 - accuracy_score(t, r)))
    assert m["mgp_percent"] == pytest.approx(100 * (1 - recall_score(t, r)))
    assert m["dice_solid"] == pytest.approx(f1_score(t, r))
    assert m["dice_pore"] == pytest.approx(f1_score(~t, ~r))
    assert m["mds"] == pytest.approx(0.5 * (f1_score(t, r) + f1_score(~t, ~r)))
    perfect = metrics(truth, truth)
    assert perfect["mp_percent"] == 0 and perfect["mgp_percent"] == 0 and perfect["mds"] == 1


def test_metrics_bad_input():
    a = np.zeros((3, 3, 3), bool)
    a[0] = True
    with pytest.raises(ValueError, match="differ in shape"):
        metrics(a, a[:2])
    with pytest.raises(ValueError, match="must be binary"):
        metrics(a.astype(np.uint8) * 3, a)
    with pytest.raises(ValueError, match="no solid voxels"):
        metrics(a, np.zeros_like(a))


# ----------------------------------------------------------------------------- pipeline


@pytest.fixture(scope="module")
def mimic():
    vol = syn.hierarchical_leveled_wave((96, 64, 64), 2.5, seed=11)
    return syn.fib_mimic(vol, 2.5, 10.0, 4.0, seed=11)


def test_mimic_protocol(mimic):
    t = mimic.thickness_nm
    assert np.all(t > 0) and np.allclose(t / 2.5, np.round(t / 2.5))
    np.testing.assert_array_equal(mimic.planes, np.concatenate([[0], np.cumsum(t[:-1] / 2.5)]))
    np.testing.assert_array_equal(mimic.stack, mimic.truth[mimic.planes])
    assert 0.08 < mimic.truth.mean() < 0.17


def test_true_repositioning_beats_assuming_constant_thickness(mimic):
    vol, known = reposition(mimic.stack, mimic.thickness_nm, 2.5)
    assert vol.shape == mimic.truth.shape
    np.testing.assert_array_equal(np.flatnonzero(known), mimic.planes)
    rnn = metrics(interpolate(vol, known, "nearest"), mimic.truth)
    rcs = metrics(interpolate(vol, known, "cubic"), mimic.truth)
    shape = metrics(interpolate(vol, known, "shape"), mimic.truth)
    dv, dk = reposition(mimic.stack, np.full(len(mimic.stack), 10.0), 2.5)
    dnn = interpolate(dv, dk, "nearest")
    n = min(len(dnn), len(mimic.truth))
    dnn_m = metrics(dnn[:n], mimic.truth[:n])
    assert dnn_m["mp_percent"] > 1.5 * rnn["mp_percent"]
    assert shape["mp_percent"] < rnn["mp_percent"]
    assert rcs["mds"] > dnn_m["mds"]


# ----------------------------------------------------------------------------- anisotropy


def test_anisotropy_zero_for_isotropic_and_grows_with_stretching():
    from napari_corrtomo.core.fib import anisotropy

    iso = syn.leveled_wave((48, 48, 48), 1.0, wavelength=12.0, solid_fraction=0.4, seed=2)
    a = anisotropy(iso, 1.0, max_distance=12.0, plane_step=4)
    # same structure stretched 2x along z (every plane twice): clearly anisotropic
    stretched = np.repeat(iso[:24], 2, axis=0)
    b = anisotropy(stretched, 1.0, max_distance=12.0, plane_step=4)
    for k in ("e_tpcf", "e_lpf", "e_d"):
        assert 0 <= a[k] < b[k], k
    assert a["e_tpcf"] < 0.1 and a["e_d"] < 0.1
    # stretched along z: the ligaments look thicker in the xz and yz sections
    assert b["d_xz"] > 1.1 * b["d_xy"] and b["d_yz"] > 1.1 * b["d_xy"]
    # anisotropic voxels are honoured: the isotropic structure sampled every second
    # voxel along x, with that spacing, stays (nearly) isotropic
    c = anisotropy(iso[:, :, ::2], (1.0, 1.0, 2.0), max_distance=12.0, plane_step=4)
    assert c["e_tpcf"] < 0.5 * b["e_tpcf"]


def test_anisotropy_eq4_by_hand():
    from napari_corrtomo.core.fib import anisotropy
    from napari_corrtomo.core.quantify import lineal_path, two_point_correlation

    vol = syn.leveled_wave((20, 24, 28), 1.0, wavelength=9.0, solid_fraction=0.35, seed=4)
    got = anisotropy(vol, 1.0, max_distance=8.0, plane_step=5)
    for key, fn in (("e_tpcf", two_point_correlation), ("e_lpf", lineal_path)):
        f = [fn(vol, 1.0, 8.0, axis=ax)[1] for ax in range(3)]
        fz, fy, fx = f

        def term(a, b):
            return 2 * np.sqrt(np.sum((a - b) ** 2)) / (np.sqrt(np.sum(a**2))
                                                         + np.sqrt(np.sum(b**2)))

        assert got[key] == pytest.approx(0.5 * (term(fx, fz) + term(fy, fz)))
    d = got
    assert got["e_d"] == pytest.approx(0.5 * (abs(d["d_xz"] - d["d_xy"])
                                              + abs(d["d_yz"] - d["d_xy"])) / d["d_xy"])


def test_anisotropy_bad_input():
    from napari_corrtomo.core.fib import anisotropy

    with pytest.raises(ValueError, match="both phases"):
        anisotropy(np.zeros((8, 8, 8), bool), 1.0)
    with pytest.raises(ValueError, match="3D"):
        anisotropy(np.zeros((8, 8), bool), 1.0)
    vol = np.zeros((8, 8, 8), bool)
    vol[2:5] = True
    with pytest.raises(ValueError, match="max_distance"):
        anisotropy(vol, 1.0, max_distance=100.0)


@pytest.mark.parametrize("method", ["nearest", "cubic", "shape", "ml"])
def test_lazy_stacks_give_the_same_volume(mimic, method):
    import dask.array as da

    from napari_corrtomo.core.fib import isotropic_volume

    stack = mimic.stack[:, :40, :48]
    eager = isotropic_volume(stack, mimic.thickness_nm, 2.5, method=method)
    lazy = isotropic_volume(da.from_array(stack, chunks=(-1, 20, 24)), mimic.thickness_nm, 2.5,
                            method=method)
    assert isinstance(lazy.volume, da.Array)
    np.testing.assert_array_equal(lazy.volume.compute(), eager.volume)
    vol, known = reposition(stack, mimic.thickness_nm, 2.5)
    np.testing.assert_array_equal(eager.volume, interpolate(vol, known, method))
    np.testing.assert_array_equal(eager.known, known)
