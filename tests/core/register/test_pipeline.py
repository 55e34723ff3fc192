"""The registration pipeline and its session on the correlative sample's ground truth."""

from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_corrtomo.core import register as reg
from napari_corrtomo.core._checks import SettingError
from napari_corrtomo.core.frame import Frame

UM = Frame((0.065,) * 3, "um")


def _truth_landmarks(t, offset=None, bad=None):
    fixed = t.landmarks_microct.copy()
    active = np.ones(len(fixed), bool)
    if bad is not None:
        fixed[bad] += offset
        active[bad] = False
    return reg.Landmarks(fixed, t.landmarks_nanoct, "um", active=active)


def test_exact_landmarks_recover_the_transform_and_the_table_holds_the_planted_error(
        correlative_sample):
    t = correlative_sample.truth
    offset = np.array([0.3, -0.4, 1.2])
    lm = _truth_landmarks(t, offset, bad=2)
    fit = reg.fit_pairs(lm, reg.RegisterSettings("similarity"))
    np.testing.assert_allclose(fit.matrix, t.nanoct_to_microct, atol=1e-9)
    table = reg.residual_table(lm, fit)
    assert list(table.columns) == ["name", "active", "fitted", "residual_um", "loo_tre_um",
                                   "dz_um", "dy_um", "dx_um"]
    # the excluded pair's residual is exactly the offset planted on its fixed point
    np.testing.assert_allclose(table.loc[2, ["dz_um", "dy_um", "dx_um"]].to_numpy(float),
                               offset, atol=1e-9)
    assert table.loc[2, "residual_um"] == pytest.approx(np.linalg.norm(offset), abs=1e-9)
    others = table.drop(index=2)
    assert others["residual_um"].max() < 1e-9 and others["loo_tre_um"].max() < 1e-9
    assert np.isnan(table.loc[2, "loo_tre_um"])  # not fitted: no leave-one-out
    assert table["active"].tolist() == table["fitted"].tolist() == lm.active.tolist()
    # in another unit the same table, scaled
    nm = reg.residual_table(reg.Landmarks(lm.fixed * 1000, lm.moving * 1000, "nm",
                                          active=lm.active), fit)
    np.testing.assert_allclose(nm["residual_nm"], table["residual_um"] * 1000, atol=1e-6)


def test_robust_fit_finds_the_outlier_and_run_register_refines(correlative_sample):
    s, t = correlative_sample, correlative_sample.truth
    rng = np.random.default_rng(7)
    idx = rng.choice(len(t.landmarks_microct), 7, replace=False)
    fixed = t.landmarks_microct[idx] + rng.normal(0, 1.0, (7, 3))
    moving = t.landmarks_nanoct[idx] + rng.normal(0, 0.065, (7, 3))
    fixed[4] += 12.0
    # the moving volume in nm: every step works in the landmarks' unit
    settings = reg.RegisterSettings("similarity", robust=True, refine=True)
    calls = []
    out = reg.run_register(reg.Landmarks(fixed, moving, "um"), settings,
                           fixed_image=s.microct.data, fixed_frame=Frame(s.microct.scale, "um"),
                           moving_image=s.nanoct.data,
                           moving_frame=Frame(tuple(1000 * v for v in s.nanoct.scale), "nm"),
                           progress=lambda d, n: calls.append((d, n)))
    assert out.table["fitted"].tolist() == [i != 4 for i in range(7)]
    assert out.transform.unit == "um" and out.transform.metadata["source"] == "refine"
    fov = reg.box_corners(reg.fov_box(s.nanoct.data.shape, s.nanoct.scale))
    assert reg.compare(out.transform, t.nanoct_to_microct, fov)["tre_max"] < 0.5
    # the table describes the refined transform at the landmarks; LOO comes from the fit
    vec = fixed - out.transform.apply(moving)
    np.testing.assert_allclose(out.table["residual_um"], np.linalg.norm(vec, axis=1))
    np.testing.assert_allclose(out.table["loo_tre_um"], out.fit.loo_tre)
    # the nanoCT field of view lands where the truth puts it (< half a microCT voxel)
    assert np.abs(out.fov.corners - t.nanoct_fov_microct).max() < 0.5
    assert calls[-1] == (1000, 1000) and out.resampled is None
    assert not out.transform.warnings  # landmarks and intensities agree
    # landmarks that agree with each other (LOO 0.2 um) but sit 4 um off: the refinement
    # moves the overlap back, far beyond their error, and says they disagree
    shift = np.eye(4)
    shift[:3, 3] = (0.0, 4.0, 0.0)
    off = replace(out.fit, matrix=shift @ out.fit.matrix, loo_tre=np.full(7, 0.2))
    far = reg.refine_transform(s.microct.data, Frame(s.microct.scale, "um"), s.nanoct.data,
                               Frame(s.nanoct.scale, "um"), off, settings)
    assert far.metadata["refine"]["max_shift"] > 3.0
    assert any("the landmarks and the intensities disagree" in w for w in far.warnings)


def test_moving_grid_resample_matches_an_independent_interpolation(correlative_sample):
    s, t = correlative_sample, correlative_sample.truth
    moving = s.nanoct.data[60:100, 50:90, 70:110]
    frame = Frame(s.nanoct.scale, "um", tuple(np.array([60, 50, 70]) * 0.065))
    truth = reg.Transform(t.nanoct_to_microct, "similarity", "um")
    grid = reg.output_grid(truth, "moving", s.microct.data.shape, Frame(s.microct.scale, "um"),
                           moving.shape, frame)
    assert grid.spacing == (0.065,) * 3 and grid.unit == "um"
    # the grid covers the mapped field of view, one voxel to spare at most
    corners = reg.moving_fov(moving.shape, frame, truth).corners
    lo, hi = np.array(grid.origin), np.array(grid.origin) + (np.array(grid.shape) - 1) * 0.065
    assert np.all(corners.min(0) >= lo - 1e-9) and np.all(corners.max(0) <= hi + 0.065)
    out = reg.resample_moving(moving, frame, truth, grid)
    # independently: every output voxel centre mapped back into the moving voxel grid
    idx = np.indices(grid.shape).reshape(3, -1).T
    world = lo + idx * 0.065
    q = (truth.apply_inverse(world) - np.array(frame.origin)) / 0.065
    expected = ndi.map_coordinates(moving.astype(np.float64), q.T, order=1)
    inside = np.all((q >= 0.5) & (q <= np.array(moving.shape) - 1.5), axis=1)
    assert inside.mean() > 0.2
    np.testing.assert_allclose(out.reshape(-1)[inside], expected[inside], atol=1e-4)
    # the fixed grid is the fixed volume's
    fixed = reg.output_grid(truth, "fixed", s.microct.data.shape, Frame((1.0,) * 3, "um",
                                                                         (1.0, 2.0, 3.0)),
                            moving.shape, frame)
    assert fixed == reg.Grid(s.microct.data.shape, (1.0,) * 3, (1.0, 2.0, 3.0), "um")


def test_settings_and_grid_errors_name_the_setting():
    with pytest.raises(SettingError, match="unknown grid 'x'") as e:
        reg.RegisterSettings(grid="x")
    assert e.value.worded({"grid": "the output grid"}).startswith("unknown the output grid")
    with pytest.raises(SettingError, match="model"):
        reg.RegisterSettings(model="warp")
    t = reg.Transform(np.diag([1e4, 1e4, 1e4, 1.0]), "similarity", "um")
    with pytest.raises(SettingError, match=r"voxels; use the fixed grid \(grid='fixed'\)"):
        reg.output_grid(t, "moving", (8, 8, 8), UM, (100, 100, 100), UM)
    lm = reg.Landmarks(np.eye(3), np.eye(3), "um")
    with pytest.raises(SettingError, match="need both fixed_image and moving_image"):
        reg.run_register(lm, reg.RegisterSettings(resample=True))
    with pytest.raises(SettingError, match=r"give landmarks or an initial transform \(initial"):
        reg.run_register(None, reg.RegisterSettings())


def test_landmarks_read_in_another_unit_are_refused_and_nearby_ones_pass():
    """A unit slip puts every landmark within a voxel, or 1000 times too far, of its volume;
    landmarks near or outside their volume by less (a crop of it) are no slip."""
    fixed, moving = Frame((1.0,) * 3, "um", (10.0, 0.0, 0.0)), Frame((0.5,) * 3, "nm")
    shapes = dict(fixed_shape=(20, 40, 40), fixed_frame=fixed, moving_shape=(30, 30, 30),
                  moving_frame=moving)
    pts = np.array([[15.0, 5, 5], [20, 30, 10], [25, 10, 35], [12, 20, 20]])  # fixed, um
    near = pts / 1000.0 * [-3, 2, 2]  # outside the moving volume (15 nm) by up to 3 sizes
    reg.check_landmark_unit(reg.Landmarks(pts, near, "um"), **shapes)
    reg.check_landmark_unit(reg.Landmarks(pts[:2] * 1e-3, pts[:2] * 1e-6, "um"), **shapes)
    with pytest.raises(SettingError) as e:  # um read as nm
        reg.check_landmark_unit(reg.Landmarks(pts * 1e-3, near * 1e-3, "nm"), **shapes)
    assert str(e.value) == (
        "the fixed landmarks, read in nm, all lie within one voxel of the fixed volume: "
        "(z, y, x) (1.2e-05, 5e-06, 5e-06) to (2.5e-05, 3e-05, 3.5e-05) um against the "
        "volume's (9.5, -0.5, -0.5) to (29.5, 39.5, 39.5) um. The landmark coordinates are "
        "probably not in nm; read them in their unit (load_landmarks_csv(path, unit=...))")
    with pytest.raises(SettingError, match="the moving landmarks, read in um, all lie far "
                                           "outside the moving volume"):
        reg.check_landmark_unit(reg.Landmarks(pts, near * 1e3, "um"), **shapes)
    assert e.value.worded({"unit": "set --unit"}).endswith("not in nm; set --unit")
    # run_register checks before the fit, the volumes it is given
    lm = reg.Landmarks(pts * 1e3, near, "um")
    with pytest.raises(SettingError, match="fixed landmarks, read in um, all lie far outside"):
        reg.run_register(lm, reg.RegisterSettings(), fixed_image=np.zeros(shapes["fixed_shape"]),
                         fixed_frame=fixed, moving_image=np.zeros((30, 30, 30)),
                         moving_frame=moving)


def test_run_register_from_a_given_transform(correlative_sample):
    """The widget's 'Load transform' path: no fit; landmarks only give the table."""
    t = correlative_sample.truth
    given = reg.Transform(t.nanoct_to_microct, "similarity", "um")
    out = reg.run_register(None, reg.RegisterSettings(), initial=given.in_unit("nm"))
    assert out.fit is None and out.table is None
    np.testing.assert_allclose(out.transform.in_unit("um").matrix, given.matrix)
    lm = reg.Landmarks(t.landmarks_microct + 0.5, t.landmarks_nanoct, "um")
    out = reg.run_register(lm, reg.RegisterSettings(), initial=given.in_unit("nm"))
    assert out.fit is None and out.transform.unit == "um"
    np.testing.assert_allclose(out.table[["dz_um", "dy_um", "dx_um"]], 0.5, atol=1e-9)
    assert out.table["fitted"].all() and out.table["loo_tre_um"].isna().all()


def test_session_fits_refits_excludes_and_round_trips(correlative_sample, tmp_path):
    t = correlative_sample.truth
    session = reg.RegistrationSession("um")
    fixed = t.landmarks_microct.copy()
    fixed[1] += 5.0
    session.set_points(fixed[:4], t.landmarks_nanoct[:3])
    assert session.names == [f"Pt-{i}" for i in range(4)] and session.active == [True] * 4
    with pytest.raises(ValueError, match="unpaired"):
        session.fit_landmarks()
    assert session.transform is None and session.table() is None
    session.set_points(fixed, t.landmarks_nanoct)
    first = session.fit_landmarks()
    session.set_active(1, False)
    second = session.fit_landmarks()
    np.testing.assert_allclose(second.matrix, t.nanoct_to_microct, atol=1e-9)
    assert second.rms_fre < first.rms_fre
    table = session.table()
    assert table.loc[1, "residual_um"] == pytest.approx(5.0 * np.sqrt(3), abs=1e-9)
    assert not table.loc[1, "fitted"]
    # a refinement keeps the fit's LOO errors; a loaded transform replaces the fit
    session.use(reg.Transform(t.nanoct_to_microct, "similarity", "um"))
    assert np.isfinite(session.table()["loo_tre_um"]).sum() == len(fixed) - 1
    session.names[0] = "bead A"
    session.save_landmarks(tmp_path / "lm.csv")
    session.save_transform(tmp_path / "t.json")
    other = reg.RegistrationSession("um")
    other.load_landmarks(tmp_path / "lm.csv")
    assert other.names[0] == "bead A" and other.active[1] is False
    np.testing.assert_array_equal(other.fixed, session.fixed)
    other.load_transform(tmp_path / "t.json")
    assert other.fit is None and np.isnan(other.table()["loo_tre_um"]).all()
    np.testing.assert_allclose(other.overlay_matrix("nm") @ [1000.0, 0, 0, 1],
                               t.nanoct_to_microct @ [1.0, 0, 0, 1])
    # crash recovery state
    restored = reg.RegistrationSession("um")
    restored.restore(session.state())
    assert restored.active == session.active and restored.names == session.names
    np.testing.assert_array_equal(restored.transform.matrix, session.transform.matrix)
    with pytest.raises(ValueError, match="no transform"):
        reg.RegistrationSession().require_transform()


def test_session_says_when_a_refit_drops_a_refined_or_loaded_transform(correlative_sample,
                                                                        tmp_path):
    """The widget says so when a pair unticked after a refinement refits the landmarks (a
    trial found the refinement dropped silently)."""
    t = correlative_sample.truth
    session = reg.RegistrationSession("um")
    assert session.source() is None
    session.set_points(t.landmarks_microct, t.landmarks_nanoct)
    fit = session.fit_landmarks()
    assert session.source() == "fit" and session.replaced is None
    session.use(reg.Transform(t.nanoct_to_microct, "similarity", "um"))  # a refinement
    assert session.source() == "refined"
    session.set_active(1, False)
    session.fit_landmarks()
    assert session.replaced == "refined" and session.source() == "fit"
    session.fit_landmarks()
    assert session.replaced is None  # said once
    # a refinement dropped by a fit that failed is still said at the next fit that works
    session.use(fit)
    session.active[:] = [True, True] + [False] * (len(session.active) - 2)
    with pytest.raises(ValueError):
        session.fit_landmarks()
    assert session.source() is None and session.replaced == "refined"
    session.active[:] = [True] * len(session.active)
    session.fit_landmarks()
    assert session.replaced == "refined"
    session.save_transform(tmp_path / "t.json")
    session.load_transform(tmp_path / "t.json")
    assert session.source() == "loaded"
    session.fit_landmarks()
    assert session.replaced == "loaded"
