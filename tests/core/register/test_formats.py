"""Transform files (JSON, ITK .tfm read back by SimpleITK) and BigWarp landmark CSV."""

import json

import numpy as np
import pytest

from napari_corrtomo.core import register as reg
from napari_corrtomo.core.synthetic import random_rotation, similarity_matrix

sitk = pytest.importorskip("SimpleITK")


@pytest.fixture()
def transform():
    rng = np.random.default_rng(0)
    m = similarity_matrix(1.7, random_rotation(rng, 120), [3.0, -40.0, 12.5])
    moving = rng.uniform(0, 30, (6, 3))
    fixed = moving @ m[:3, :3].T + m[:3, 3] + rng.normal(0, 0.2, (6, 3))
    return reg.fit_landmarks(fixed, moving, "similarity", unit="um")


def test_json_round_trip(tmp_path, transform):
    path = reg.save_transform(tmp_path / "t.json", transform)
    data = json.loads(path.read_text())
    assert data["direction"] == "moving world -> fixed world" and data["axes"] == ["z", "y", "x"]
    back = reg.load_transform(path)
    np.testing.assert_array_equal(back.matrix, transform.matrix)
    assert (back.unit, back.model) == ("um", "similarity")
    assert back.rms_fre == pytest.approx(transform.rms_fre)
    nm = reg.load_transform(path, unit="nm")
    np.testing.assert_allclose(nm.apply([[1000.0, 2000.0, 3000.0]]) / 1000,
                               transform.apply([[1.0, 2.0, 3.0]]))


def test_json_states_axes_and_direction_explicitly(tmp_path, transform):
    xyz_inverse = reg.zyx_to_xyz(np.linalg.inv(transform.matrix))
    (tmp_path / "x.json").write_text(json.dumps({
        "unit": "um", "axes": ["x", "y", "z"], "direction": "fixed world -> moving world",
        "matrix": xyz_inverse.tolist()}))
    back = reg.load_transform(tmp_path / "x.json")
    np.testing.assert_allclose(back.matrix, transform.matrix, atol=1e-12)
    assert back.model == "similarity"  # inferred from the matrix
    for bad, msg in (({"matrix": np.eye(4).tolist()}, "unit"),
                     ({"unit": "um", "matrix": np.eye(3).tolist()}, "4x4"),
                     ({"unit": "um", "matrix": np.diag([1, 1, -1, 1]).tolist()}, "mirror"),
                     ({"unit": "um", "axes": ["y", "x", "z"], "matrix": np.eye(4).tolist()},
                      "axes"),
                     ({"unit": "um", "direction": "sideways", "matrix": np.eye(4).tolist()},
                      "direction")):
        (tmp_path / "bad.json").write_text(json.dumps(bad))
        with pytest.raises(ValueError, match=msg):
            reg.load_transform(tmp_path / "bad.json")
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        reg.load_transform(tmp_path / "junk.json")


def test_tfm_is_read_by_simpleitk_with_itk_conventions(tmp_path, transform):
    """ITK maps fixed -> moving points in (x, y, z): the inverse of our (z, y, x) matrix."""
    path = reg.save_transform(tmp_path / "t.tfm", transform)
    tx = sitk.ReadTransform(str(path))
    rng = np.random.default_rng(1)
    moving_zyx = rng.uniform(-20, 20, (5, 3))
    fixed_zyx = transform.apply(moving_zyx)
    for f, m in zip(fixed_zyx, moving_zyx, strict=True):
        got_xyz = np.array(tx.TransformPoint(tuple(f[::-1])))
        np.testing.assert_allclose(got_xyz, m[::-1], atol=1e-9)
    back = reg.load_transform(path, unit="um")
    np.testing.assert_allclose(back.matrix, transform.matrix, atol=1e-12)
    assert back.model == "similarity"
    with pytest.raises(ValueError, match="carry no unit"):
        reg.load_transform(path)


def test_tfm_resamples_like_our_resample(tmp_path, correlative_sample):
    """End to end through SimpleITK: a volume placed by spacing/origin (identity direction),
    resampled with the .tfm we wrote, equals our resample: axis order, direction and the
    LPS world agree."""
    s = correlative_sample
    t = reg.Transform(s.truth.nanoct_to_microct, "similarity", "um")
    reg.save_transform(tmp_path / "t.tfm", t)
    tx = sitk.ReadTransform(str(tmp_path / "t.tfm"))
    moving = s.nanoct.data[::4, ::4, ::4]
    sp_m = np.array(s.nanoct.scale) * 4
    ref_shape, ref_sp, ref_origin = (20, 20, 20), (0.75, 0.75, 0.75), np.array([72.0, 97.0, 95.0])
    img = sitk.GetImageFromArray(moving)
    img.SetSpacing(tuple(sp_m[::-1]))
    ref = sitk.Image(list(ref_shape[::-1]), sitk.sitkFloat32)
    ref.SetSpacing(ref_sp[::-1])
    ref.SetOrigin(tuple(ref_origin[::-1]))
    theirs = sitk.GetArrayFromImage(sitk.Resample(img, ref, tx, sitk.sitkLinear, -1.0))
    ours = reg.resample(moving, t, ref_shape, ref_sp, moving_spacing=sp_m,
                        reference_origin=ref_origin, cval=-1.0, antialias=False)
    inside = (theirs != -1.0) & (ours != -1.0)
    assert inside.mean() > 0.3
    np.testing.assert_allclose(ours[inside], theirs[inside], atol=1e-4)


def test_tfm_ras_world_is_converted_explicitly(tmp_path, transform):
    path = reg.save_transform(tmp_path / "ras.tfm", transform, world="RAS")
    tx = sitk.ReadTransform(str(path))
    flip = np.array([-1.0, -1.0, 1.0])  # RAS (x, y, z) -> LPS
    rng = np.random.default_rng(2)
    for m in rng.uniform(-20, 20, (4, 3)):
        f = transform.apply(m[None])[0]
        got = np.array(tx.TransformPoint(tuple(flip * f[::-1])))
        np.testing.assert_allclose(got, flip * m[::-1], atol=1e-9)
    back = reg.load_transform(path, unit="um", world="RAS")
    np.testing.assert_allclose(back.matrix, transform.matrix, atol=1e-12)
    lps = reg.load_transform(path, unit="um")  # read as LPS: a different, but proper, map
    assert not np.allclose(lps.matrix, transform.matrix)
    with pytest.raises(ValueError, match="world"):
        reg.save_transform(tmp_path / "x.tfm", transform, world="RAI")


def test_itk_composites_are_collapsed_and_nonlinear_refused(tmp_path):
    a = sitk.AffineTransform(3)
    a.SetMatrix((1.1, 0.1, 0, 0, 0.9, 0, 0, 0.05, 1.0))
    a.SetTranslation((1, 2, 3))
    b = sitk.Euler3DTransform((5, 5, 5), 0.1, 0.2, 0.3, (4, 0, -1))
    comp = sitk.CompositeTransform([a, b])
    sitk.WriteTransform(comp, str(tmp_path / "comp.tfm"))
    got = reg.load_transform(tmp_path / "comp.tfm", unit="um")
    p = np.array([3.0, -2.0, 7.5])  # (z, y, x)
    fixed = got.apply(p[None])[0]
    np.testing.assert_allclose(comp.TransformPoint(tuple(fixed[::-1])), p[::-1], atol=1e-9)
    img = sitk.Image([8, 8, 8], sitk.sitkFloat32)
    bs = sitk.BSplineTransformInitializer(img, [3, 3, 3])
    bs.SetParameters(list(np.random.default_rng(3).normal(0, 0.5, len(bs.GetParameters()))))
    sitk.WriteTransform(bs, str(tmp_path / "bs.tfm"))
    with pytest.raises(ValueError, match="not a linear transform"):
        reg.load_transform(tmp_path / "bs.tfm", unit="um")
    (tmp_path / "junk.tfm").write_text("nothing")
    with pytest.raises(ValueError, match="not a readable ITK transform"):
        reg.load_transform(tmp_path / "junk.tfm", unit="um")
    with pytest.raises(ValueError, match="save transforms as"):
        reg.save_transform(tmp_path / "t.xml", reg.Transform(np.eye(4)))


def test_landmarks_csv_round_trip_and_bigwarp_layout(tmp_path):
    rng = np.random.default_rng(4)
    fixed, moving = rng.uniform(0, 100, (5, 3)), rng.uniform(0, 10, (5, 3))
    lm = reg.Landmarks(fixed, moving, "um", [f"bead {i}" for i in range(5)],
                       [True, True, False, True, True])
    path = reg.save_landmarks_csv(tmp_path / "lm.csv", lm)
    first = path.read_text().splitlines()[0]
    # quoted, no header; moving x, y, z then fixed x, y, z
    want = ",".join(f'"{v}"' for v in ["bead 0", "true", *(repr(float(v)) for v in moving[0][::-1]),
                                        *(repr(float(v)) for v in fixed[0][::-1])])
    assert first == want
    back = reg.load_landmarks_csv(path, unit="um")
    np.testing.assert_array_equal(back.fixed, fixed)
    np.testing.assert_array_equal(back.moving, moving)
    assert back.names == lm.names and back.active.tolist() == [True, True, False, True, True]


def test_landmarks_csv_as_bigwarp_writes_it(tmp_path):
    (tmp_path / "bw.csv").write_text(
        '"Pt-0","true","1.5","2.5","3.5","10.0","20.0","30.0"\n'
        '"Pt-1","false","4","5","6","40","50","60"\n')
    lm = reg.load_landmarks_csv(tmp_path / "bw.csv", unit="nm")
    np.testing.assert_array_equal(lm.moving[0], [3.5, 2.5, 1.5])
    np.testing.assert_array_equal(lm.fixed[1], [60, 50, 40])
    assert lm.unit == "nm" and lm.active.tolist() == [True, False]


@pytest.mark.parametrize("text, msg", [
    ('"Pt-0","true","1","2","3","Infinity","Infinity","Infinity"\n', "unpaired"),
    ('"Pt-0","true","1","2","nan","4","5","6"\n', "unpaired or has NaN"),
    ('"Pt-0","true","1","2","4","5"\n', "2D landmarks"),
    ('"Pt-0","true","1","2","3","4","5"\n', "7 columns"),
    ('"Pt-0","true","1","2","3","4","5","6"\n"Pt-1","maybe","1","2","3","4","5","6"\n',
     "active must be true or false"),
    ('"Pt-0","true","1","2","x","4","5","6"\n', "not a number"),
    ("", "no landmarks"),
])
def test_bad_landmark_files(tmp_path, text, msg):
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(ValueError, match=msg):
        reg.load_landmarks_csv(tmp_path / "bad.csv")


@pytest.mark.parametrize("name", ["t.txt", "t.xml", "t"])
def test_transforms_are_saved_as_json_or_tfm_only(tmp_path, transform, name):
    """An ITK transform written into a .txt was a file nobody expected."""
    with pytest.raises(ValueError, match=f"^{name}: save transforms as .json or .tfm$"):
        reg.save_transform(tmp_path / name, transform)
    assert not (tmp_path / name).exists()
    assert reg.check_transform_path(tmp_path / "t.TFM").name == "t.TFM"


def test_missing_files(tmp_path):
    for func in (reg.load_landmarks_csv, reg.load_transform):
        with pytest.raises(ValueError, match="no such file"):
            func(tmp_path / "absent.json")
