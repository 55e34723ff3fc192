"""Geometry: construction, conventions (rotation direction, detector orientation), ASTRA
vectors and JSON round trips."""

import json

import numpy as np
import pytest

from napari_corrtomo.core._checks import SettingError
from napari_corrtomo.core.recon import Geometry

ANGLES = np.linspace(0, 360, 12, endpoint=False)


def _all_geometries():
    return [
        Geometry.parallel(ANGLES, (5, 7), 0.5, unit="um", shifts=(0.25, -1.5)),
        Geometry.cone(ANGLES, (5, 7), 100.0, 50.0, 2.0, unit="mm"),
        Geometry.laminography(ANGLES, (5, 7), 30.0, 1.5, unit="um"),
        Geometry.laminography(ANGLES, (5, 7), 20.0, 1.5, 80.0, 40.0),
        Geometry.tilt_series(np.linspace(-60, 60, 9), (5, 7), 0.5, unit="nm"),
    ]


@pytest.mark.parametrize("geom", _all_geometries(), ids=lambda g: g.kind)
def test_json_round_trip(geom, tmp_path):
    back = Geometry.from_json(geom.to_json())
    assert back == geom
    np.testing.assert_array_equal(back.vectors(), geom.vectors())
    path = geom.save(tmp_path / "geom.json")
    assert Geometry.load(path) == geom
    assert json.loads(path.read_text())["format"] == "napari-corrtomo/geometry"


def test_hand_written_json():
    text = json.dumps({"kind": "parallel", "angles": {"start": 0, "stop": 180, "count": 90},
                       "det_shape": [4, 8], "pixel_size": 0.65, "unit": "micron",
                       "center_offset": 2.5})
    g = Geometry.from_json(text)
    np.testing.assert_allclose(g.angles_deg, np.arange(90) * 2.0)
    assert g.unit == "um"
    np.testing.assert_array_equal(g.shifts[:, 1], 2.5)


@pytest.mark.parametrize("text, match", [
    ("{not json", "cannot be parsed"),
    (json.dumps({"kind": "helical", "angles_deg": [0], "det_shape": [2, 2]}), "unknown geometry"),
    (json.dumps({"kind": "parallel", "det_shape": [2, 2]}), "angles"),
    (json.dumps({"kind": "parallel", "angles_deg": [0], "det_shape": [2, 2], "foo": 1}),
     "unknown geometry keys"),
    (json.dumps({"format": "other", "kind": "parallel"}), "not a napari-corrtomo geometry"),
])
def test_bad_json(text, match):
    with pytest.raises(ValueError, match=match):
        Geometry.from_json(text)


@pytest.mark.parametrize("tilt", [0.0, 90.0, -10.0, 95.0, float("nan"), None])
def test_laminography_tilt_outside_0_90(tilt):
    with pytest.raises(ValueError, match="tilt_deg"):
        Geometry.laminography(ANGLES, (4, 4), tilt)


@pytest.mark.parametrize("kwargs, match", [
    (dict(kind="parallel", angles_deg=[[0, 1]], det_shape=(2, 2)), "1D"),
    (dict(kind="parallel", angles_deg=[0, np.nan], det_shape=(2, 2)), "NaN"),
    (dict(kind="parallel", angles_deg=[0], det_shape=(2,)), "det_shape"),
    (dict(kind="parallel", angles_deg=[0], det_shape=(2, 2), pixel_size=0), "pixel_size"),
    (dict(kind="cone", angles_deg=[0], det_shape=(2, 2)), "source_origin"),
    (dict(kind="cone", angles_deg=[0], det_shape=(2, 2), source_origin=5), "both"),
    (dict(kind="parallel", angles_deg=[0], det_shape=(2, 2), source_origin=5,
          origin_detector=5), "parallel beam"),
    (dict(kind="parallel", angles_deg=[0, 1], det_shape=(2, 2), shifts=np.zeros((3, 2))),
     "shifts"),
    (dict(kind="parallel", angles_deg=[0], det_shape=(2, 2), unit="parsec"), "unit"),
    (dict(kind="parallel", angles_deg=[0], det_shape=(2, 2), tilt_deg=10), "laminography"),
    (dict(kind="parallel", angles_deg=[30.0] * 5, det_shape=(2, 2)),
     "the 5 angles_deg are all 30 deg: projections from one direction"),
])
def test_bad_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Geometry(**kwargs)


def test_frame_at_zero_degrees():
    """The documented detector orientation at theta = 0."""
    for g, d, u, v in (
        (Geometry.parallel([0], (2, 2)), (0, 1, 0), (1, 0, 0), (0, 0, 1)),
        (Geometry.tilt_series([0], (2, 2)), (0, 0, 1), (1, 0, 0), (0, 1, 0)),
        (Geometry.laminography([0], (2, 2), 30), (0, np.cos(np.pi / 6), 0.5), (1, 0, 0),
         (0, -0.5, np.cos(np.pi / 6))),
    ):
        f = g.frame_vectors()
        np.testing.assert_allclose(f["d"][0], d, atol=1e-12)
        np.testing.assert_allclose(f["u"][0], u, atol=1e-12)
        np.testing.assert_allclose(f["v"][0], v, atol=1e-12)


def test_positive_angle_turns_the_sample_right_handed():
    """A point p of the sample turned by +theta about the axis (right-hand rule) lands on
    detector column p . u(theta) for a fixed detector: u(theta) = R(-theta) u(0)."""
    def rot(axis, t):
        c, s = np.cos(t), np.sin(t)
        x, y, z = axis
        k = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
        return np.eye(3) + s * k + (1 - c) * k @ k

    p = np.array([0.3, -0.7, 0.2])
    for g in (Geometry.parallel([37.0], (2, 2)), Geometry.tilt_series([37.0], (2, 2)),
              Geometry.laminography([37.0], (2, 2), 25.0)):
        axis = g.rotation_axis
        u0 = g._replace(angles_deg=[0.0], shifts=None).frame_vectors()["u"][0]
        turned = rot(axis, np.deg2rad(37.0)) @ p
        np.testing.assert_allclose(turned @ u0, p @ g.frame_vectors()["u"][0], atol=1e-12)


def test_cone_vectors_equal_astra_cone_at_negative_angles():
    """Our cone geometry at theta is ASTRA's 3D 'cone' geometry at -theta, exactly."""
    import astra

    g = Geometry.cone(ANGLES, (4, 6), 100.0, 50.0, 2.0)
    pg = astra.create_proj_geom("cone", 2.0, 2.0, 4, 6, -np.deg2rad(ANGLES), 100.0, 50.0)
    np.testing.assert_allclose(g.vectors(), astra.geom_2vec(pg)["Vectors"], atol=1e-9)


def test_parallel_vectors_match_astra_parallel3d():
    import astra

    g = Geometry.parallel(ANGLES, (4, 6), 2.0)
    ref = astra.geom_2vec(astra.create_proj_geom("parallel3d", 2.0, 2.0, 4, 6,
                                                 -np.deg2rad(ANGLES)))["Vectors"]
    vec = g.vectors()
    np.testing.assert_allclose(vec[:, 6:12], ref[:, 6:12], atol=1e-12)  # u, v
    np.testing.assert_allclose(vec[:, 0:3], -ref[:, 0:3], atol=1e-12)  # rays: either sense


def test_tilt_series_slice_is_astra_2d_parallel_at_negative_angles():
    """A tilt-series projection row is ASTRA's 2D 'parallel' sinogram of the (z, x) slice
    at -theta (our sign convention, docs/reconstruction.md), not at +theta."""
    import astra

    from napari_corrtomo.core.recon import forward_project

    n = 33
    vol = np.zeros((n, 3, n), np.float32)
    vol[8:12, :, 20:25] = 1.0  # off-centre, so +theta and -theta differ
    angles = np.array([-50.0, 30.0, 65.0])
    ours = forward_project(vol, Geometry.tilt_series(angles, (3, n)), 1.0, backend="numpy")
    for sign, close in ((-1, True), (1, False)):
        pg = astra.create_proj_geom("parallel", 1.0, n, np.deg2rad(sign * angles))
        pid = astra.create_projector("linear", pg, astra.create_vol_geom(n, n))
        sid, sino = astra.create_sino(vol[:, 1, :], pid)
        astra.data2d.delete(sid)
        astra.projector.delete(pid)
        assert np.allclose(sino, ours[:, 1], atol=1e-3 * sino.max()) == close


def test_astra_geometry_in_voxel_units():
    g = Geometry.cone(ANGLES, (4, 6), 100.0, 50.0, 2.0, shifts=(0.5, 1.0))
    vol_geom, proj_geom = g.astra_geometry((3, 5, 7), 0.5, offset=(1.0, 0.0, 0.0))
    assert proj_geom["type"] == "cone_vec"
    sizes = (vol_geom["GridSliceCount"], vol_geom["GridRowCount"], vol_geom["GridColCount"])
    assert sizes == (3, 5, 7)
    expected = g.vectors() / 0.5
    expected[:, [2, 5]] -= 2.0  # the volume centre sits 1.0 (= 2 voxels) up in z
    np.testing.assert_allclose(proj_geom["Vectors"], expected)


def test_shifts_move_the_rotation_centre_image():
    g = Geometry.parallel([0.0, 90.0], (3, 5), 2.0).shifted(col=1.5, row=-0.5)
    vec = g.vectors()
    # the rotation centre (origin) appears at column 2 + 1.5, row 1 - 0.5
    for k in range(2):
        centre, u, v = vec[k, 3:6], vec[k, 6:9], vec[k, 9:12]
        pix = centre + (3.5 - 2) * u + (0.5 - 1) * v
        np.testing.assert_allclose(pix, 0.0, atol=1e-12)


def test_subset_and_defaults():
    g = Geometry.cone(ANGLES, (40, 60), 100.0, 100.0, 2.0)
    assert g.magnification == 2.0 and g.default_voxel_size == 1.0
    assert g.default_volume_shape() == (40, 60, 60)
    assert Geometry.tilt_series([0, 1], (40, 60)).default_volume_shape() == (60, 40, 60)
    half = g.subset(np.arange(0, 12, 2))
    np.testing.assert_array_equal(half.angles_deg, ANGLES[::2])
    assert half.n_angles == 6 and "cone" in repr(half)


@pytest.mark.parametrize("change, message", [
    ({"angles": {"start": 0, "stop": 180, "count": 12, "endpoint": "no"}},
     "'endpoint' in 'angles' must be true or false"),
    ({"angles": {"start": 0, "stop": 180, "count": 12.5}},
     "'count' in 'angles' must be a whole number"),
    ({"center_offset": "auto"}, "'center_offset' must be a number, got \"auto\"; leave it out "
                                "and search the centre with center='auto'"),
    ({"pixel_size": "1"}, "'pixel_size' must be a number"),
    ({"kind": 3}, "'kind' must be a string"),
    ({"angles_deg": [0, "90"]}, "'angles_deg' must be a list of numbers"),
])
def test_geometry_file_fields_are_checked_by_type(tmp_path, change, message):
    data = {"kind": "parallel", "det_shape": [4, 8],
            "angles": {"start": 0, "stop": 180, "count": 12}}
    (tmp_path / "g.json").write_text(json.dumps({**data, **change}))
    with pytest.raises(ValueError) as info:
        Geometry.load(tmp_path / "g.json")
    assert str(info.value).startswith("g.json: ") and message in str(info.value)
    ok = {**data, "angles": {**data["angles"], "endpoint": True}, "center_offset": 1.5}
    (tmp_path / "ok.json").write_text(json.dumps(ok))
    g = Geometry.load(tmp_path / "ok.json")
    assert g.angles_deg[-1] == 180 and g.shifts[0, 1] == 1.5


@pytest.mark.parametrize("angles, degrees", [
    ({"start": 0, "stop": 3.14159, "count": 180, "endpoint": False}, "0 to 179 degrees"),
    ({"start": 0, "stop": 6.2832, "count": 360, "endpoint": False}, "0 to 359 degrees"),
    ({"start": -1.2217, "stop": 1.2217, "count": 61, "endpoint": True}, "-70 to 70 degrees"),
])
def test_angles_in_radians_are_refused(tmp_path, angles, degrees):
    """A half or full turn (or an ET tilt range) typed in radians: many projections within a
    few 'degrees' is no scan anyone takes; it would reconstruct silently, ~100x too faint."""
    data = {"kind": "parallel", "det_shape": [24, 64], "pixel_size": 0.5, "unit": "um",
            "angles": angles}
    (tmp_path / "g.json").write_text(json.dumps(data))
    with pytest.raises(SettingError) as info:
        Geometry.load(tmp_path / "g.json")
    text = str(info.value)
    assert text.startswith(f"g.json: the {angles['count']} angles_deg span ")
    assert f"which looks like radians ({degrees}); angles are in degrees" in text
    assert info.value.worded({"angles_deg": "<angles>"}).startswith(
        f"g.json: the {angles['count']} <angles> span")
    with pytest.raises(SettingError, match="looks like radians"):  # the API, as the widget
        Geometry.tilt_series(np.linspace(-1.2217, 1.2217, 61), (16, 48), 0.5)


@pytest.mark.parametrize("make", [
    lambda: Geometry.parallel(np.linspace(0, 180, 180, endpoint=False), (4, 8)),
    lambda: Geometry.tilt_series(np.linspace(-70, 70, 71), (4, 8)),  # limited angle
    lambda: Geometry.tilt_series(np.linspace(-60, 40, 51), (4, 8)),  # asymmetric
    lambda: Geometry.laminography(np.linspace(0, 360, 400), (4, 8), 30.0),
    lambda: Geometry.tilt_series(np.linspace(-3, 3, 13), (4, 8)),  # few views, small range
    lambda: Geometry.parallel(np.linspace(0, 6.3, 19), (4, 8)),  # too few to call radians
])
def test_degree_scans_and_few_views_are_not_taken_for_radians(make):
    assert make().n_angles > 1
