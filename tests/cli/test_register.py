"""``corrtomo register``: landmarks CSV in, transform out, optional refinement and resampling."""

import json

import numpy as np
import pytest

from napari_corrtomo.cli import main
from napari_corrtomo.core import io
from napari_corrtomo.core import register as reg


def _write_landmarks(path, fixed, moving):
    return reg.save_landmarks_csv(path, reg.Landmarks(fixed, moving, "um"))


def test_register_writes_json_tfm_and_residuals(tmp_path, correlative_sample, capsys):
    t = correlative_sample.truth
    csv = _write_landmarks(tmp_path / "lm.csv", t.landmarks_microct, t.landmarks_nanoct)
    out = [tmp_path / "t.json", tmp_path / "t.tfm"]
    rc = main(["register", str(csv), "--model", "similarity", "--out", str(out[0]),
               "--out", str(out[1]), "--residuals", str(tmp_path / "res.csv")])
    assert rc == 0
    assert "similarity: scale 1.01500" in capsys.readouterr().out
    data = json.loads(out[0].read_text())
    np.testing.assert_allclose(data["matrix"], t.nanoct_to_microct, atol=1e-9)
    tfm = reg.load_transform(out[1], unit="um")
    np.testing.assert_allclose(tfm.matrix, t.nanoct_to_microct, atol=1e-9)
    import pandas as pd

    res = pd.read_csv(tmp_path / "res.csv")
    assert list(res.columns[:3]) == ["name", "active", "fitted"]
    assert len(res) == len(t.landmarks_microct) and res["residual_um"].max() < 1e-9


def test_register_robust_rejects_the_planted_outlier(tmp_path, correlative_sample, capsys):
    t = correlative_sample.truth
    fixed = t.landmarks_microct.copy()
    fixed[2] += 9.0
    # the warning names the pair as the user's file does (was its 0-based row index)
    names = [f"bead {i + 1}" for i in range(len(fixed))]
    csv = reg.save_landmarks_csv(tmp_path / "lm.csv",
                                 reg.Landmarks(fixed, t.landmarks_nanoct, "um", names))
    rc = main(["register", str(csv), "--robust", "--out", str(tmp_path / "t.json")])
    assert rc == 0
    assert "rejected landmark(s) bead 3 as outliers" in capsys.readouterr().err
    got = reg.load_transform(tmp_path / "t.json")
    np.testing.assert_allclose(got.matrix, t.nanoct_to_microct, atol=1e-9)


def test_register_refine_and_resample_volumes(tmp_path, correlative_sample):
    s, t = correlative_sample, correlative_sample.truth
    # a microCT crop around the nanoCT field of view keeps the files small
    lo = np.array([60, 85, 80])
    micro = s.microct.data[60:115, 85:135, 80:130]
    io.write_tiff(tmp_path / "micro.tif", micro, s.microct.scale, "um")
    io.write_tiff(tmp_path / "nano.tif", s.nanoct.data, s.nanoct.scale, "um")
    shift = np.eye(4)
    shift[:3, 3] = -lo * 1.0
    truth = shift @ t.nanoct_to_microct
    rng = np.random.default_rng(1)
    idx = rng.choice(len(t.landmarks_microct), 6, replace=False)
    fixed = t.landmarks_microct[idx] - lo + rng.normal(0, 1.0, (6, 3))
    moving = t.landmarks_nanoct[idx] + rng.normal(0, 0.065, (6, 3))
    csv = _write_landmarks(tmp_path / "lm.csv", fixed, moving)
    rc = main(["register", str(csv), "--fixed", str(tmp_path / "micro.tif"),
               "--moving", str(tmp_path / "nano.tif"), "--refine",
               "--out", str(tmp_path / "t.json"), "--resampled", str(tmp_path / "reg.tif")])
    assert rc == 0
    refined = reg.load_transform(tmp_path / "t.json")
    fov = reg.box_corners(reg.fov_box(s.nanoct.data.shape, s.nanoct.scale))
    assert reg.compare(refined, truth, fov)["tre_max"] < 0.5
    out = io.read_volumes(tmp_path / "reg.tif")[0]
    assert out.data.shape == micro.shape and out.scale == pytest.approx(s.microct.scale)
    # the resampled nanoCT correlates with the microCT where it has data
    inside = out.data != 0
    assert inside.mean() > 0.02
    assert np.corrcoef(out.data[inside], micro[inside])[0, 1] > 0.8


def test_register_failures_write_nothing(tmp_path, capsys):
    pts = np.random.default_rng(2).uniform(0, 10, (2, 3))
    csv = _write_landmarks(tmp_path / "two.csv", pts, pts)
    out = tmp_path / "t.json"
    assert main(["register", str(csv), "--out", str(out)]) == 1
    assert "needs at least 3 landmark pairs" in capsys.readouterr().err
    line = np.outer(np.arange(4.0), [1, 1, 1])
    csv = _write_landmarks(tmp_path / "line.csv", line, line)
    assert main(["register", str(csv), "--out", str(out)]) == 1
    assert "collinear" in capsys.readouterr().err
    (tmp_path / "nan.csv").write_text('"a","true","1","2","3","nan","5","6"\n')
    assert main(["register", str(tmp_path / "nan.csv"), "--out", str(out)]) == 1
    assert "unpaired or has NaN" in capsys.readouterr().err
    pts = np.random.default_rng(3).uniform(0, 10, (5, 3))
    csv = _write_landmarks(tmp_path / "ok.csv", pts, pts)
    assert main(["register", str(csv), "--refine", "--out", str(out)]) == 1
    assert "need both --fixed and --moving" in capsys.readouterr().err
    assert main(["register", str(csv), "--out", str(tmp_path / "t.xml")]) == 1
    # an ITK transform in a .txt was written without a word; refused before any work
    assert main(["register", str(csv), "--out", str(tmp_path / "a.txt")]) == 1
    assert "error: --out a.txt: save transforms as .json or .tfm" in capsys.readouterr().err
    assert main(["register", str(csv), "--robust", "--threshold", "-1", "--out", str(out)]) == 1
    assert "error: --threshold must be a positive distance, got -1" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "a.txt").exists()
    assert not list(tmp_path.glob("*.tif"))


@pytest.mark.parametrize("scale, unit, right, where", [
    (1.0, "nm", "um", "within one voxel of"),  # um coordinates read as nm
    (1e3, "um", "nm", "far outside"),          # nm coordinates read as um (the default)
])
def test_register_refuses_landmarks_in_another_unit_than_given(tmp_path, capsys, scale, unit,
                                                              right, where):
    """Landmarks in the wrong unit fitted and resampled the moving volume into a corner."""
    rng = np.random.default_rng(4)
    io.write_tiff(tmp_path / "fixed.tif", rng.random((30, 40, 40), np.float32), (1.0,) * 3, "um")
    io.write_tiff(tmp_path / "moving.tif", rng.random((20, 30, 30), np.float32), (0.5,) * 3, "um")
    pts = rng.uniform(2, 14, (5, 3))  # um, inside both volumes
    csv = reg.save_landmarks_csv(tmp_path / "lm.csv", reg.Landmarks(pts * scale, pts * scale))
    args = ["register", str(csv), "--unit", unit, "--fixed", str(tmp_path / "fixed.tif"),
            "--moving", str(tmp_path / "moving.tif"), "--out", str(tmp_path / "t.json"),
            "--resampled", str(tmp_path / "reg.tif")]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert f"error: the fixed landmarks, read in {unit}, all lie {where} the fixed volume: " in err
    assert "against the volume's (-0.5, -0.5, -0.5) to (29.5, 39.5, 39.5) um" in err
    assert err.rstrip().endswith(f"The landmark coordinates are probably not in {unit}; give "
                                 "their unit with --unit")
    assert not (tmp_path / "t.json").exists() and not (tmp_path / "reg.tif").exists()
    # in their own unit they register
    args[args.index("--unit") + 1] = right
    assert main(args) == 0 and (tmp_path / "reg.tif").exists()


def test_register_resamples_onto_the_moving_grid(tmp_path, correlative_sample, capsys):
    """--grid moving: the moving voxel size over its field of view in the fixed frame."""
    s, t = correlative_sample, correlative_sample.truth
    start = np.array([60, 50, 70])
    crop = s.nanoct.data[60:100, 50:90, 70:110]
    io.write_tiff(tmp_path / "nano.tif", crop, s.nanoct.scale, "um")
    io.write_tiff(tmp_path / "micro.tif", s.microct.data[:8, :8, :8], s.microct.scale, "um")
    off = start * 0.065  # the crop's first voxel in the nanoCT frame
    csv = _write_landmarks(tmp_path / "lm.csv", t.landmarks_microct, t.landmarks_nanoct - off)
    assert main(["register", str(csv), "--fixed", str(tmp_path / "micro.tif"), "--moving",
                 str(tmp_path / "nano.tif"), "--grid", "moving", "--out",
                 str(tmp_path / "t.json"), "--resampled", str(tmp_path / "reg.tif")]) == 0
    printed = capsys.readouterr().out
    out = io.read_volumes(tmp_path / "reg.tif")[0]
    assert out.scale == pytest.approx((0.065,) * 3)
    # by hand: the crop's corners under the true transform bound the grid
    shift = np.eye(4)
    shift[:3, 3] = off
    truth = t.nanoct_to_microct @ shift
    corners = reg.apply_to_points(truth, reg.box_corners([[0, 0, 0], np.array(crop.shape) - 1])
                                  * 0.065)
    lo = corners.min(0)
    shape = np.floor((corners.max(0) - lo) / 0.065 + 1e-6).astype(int) + 1
    assert out.data.shape == tuple(shape)
    assert "origin (z, y, x) " + " ".join(f"{v:g}" for v in lo) in printed
    expected = reg.resample(crop, truth, shape, 0.065, moving_spacing=0.065, reference_origin=lo)
    inside = expected != 0
    assert inside.mean() > 0.2
    np.testing.assert_allclose(out.data, expected, atol=1e-4)
    # the widget's 'Load transform' then resample: the saved transform, no landmarks
    assert main(["register", "--transform", str(tmp_path / "t.json"), "--fixed",
                 str(tmp_path / "micro.tif"), "--moving", str(tmp_path / "nano.tif"), "--grid",
                 "moving", "--out", str(tmp_path / "t2.json"), "--resampled",
                 str(tmp_path / "again.tif")]) == 0
    assert "from " in capsys.readouterr().out
    np.testing.assert_array_equal(io.read_volumes(tmp_path / "again.tif")[0].data, out.data)
    # ROI across scales: a 1 um box in the microCT around the crop's centre voxel
    p = reg.apply_to_points(truth, np.array([20, 20, 20]) * 0.065)[0]
    box = [*(p - 0.5), *(p + 0.5)]
    assert main(["register", "--transform", str(tmp_path / "t.json"), "--moving",
                 str(tmp_path / "nano.tif"), "--roi", *map(str, box), "--roi-out",
                 str(tmp_path / "roi.tif"), "--out", str(tmp_path / "t4.json")]) == 0
    printed = capsys.readouterr().out
    roi = io.read_volumes(tmp_path / "roi.tif")[0]
    # the voxels under the box (a rotated cube: 1 um / 65 nm and up to sqrt(3) more across)
    sl = [tuple(map(int, r.split(":"))) for r in printed.split("(z, y, x) ")[1].split()[0:3]
          for r in [r.rstrip(",")]]
    assert all(a <= 20 < b for a, b in sl) and roi.scale == pytest.approx((0.065,) * 3)
    assert 15 <= min(roi.data.shape) and max(roi.data.shape) <= 1.8 / 0.065 + 2
    np.testing.assert_array_equal(roi.data, crop[tuple(slice(a, b) for a, b in sl)])
    assert main(["register", "--out", str(tmp_path / "t3.json")]) == 1
    assert "give a landmark CSV or --transform FILE" in capsys.readouterr().err


def test_register_names_the_file_given_in_the_wrong_place(tmp_path, capsys):
    """A TIFF given as the landmark CSV, a reconstruction geometry or another JSON given as
    --transform: the message names the file and what was expected; nothing is written."""
    from napari_corrtomo.core.recon import Geometry

    io.write_tiff(tmp_path / "micro.tif", np.arange(64, dtype=np.uint16).reshape(4, 4, 4) + 224,
                  (1.0, 1.0, 1.0), "um")
    out = tmp_path / "b.json"
    assert main(["register", str(tmp_path / "micro.tif"), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "micro.tif is not a landmark CSV" in err and "BigWarp" in err
    assert "codec" not in err
    Geometry.parallel(np.arange(0.0, 180.0, 10.0), (4, 8)).save(tmp_path / "micro.json")
    assert main(["register", "--transform", str(tmp_path / "micro.json"), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "micro.json is a reconstruction geometry, not a transform" in err
    (tmp_path / "other.json").write_text('{"a": 1}')
    assert main(["register", "--transform", str(tmp_path / "other.json"), "--out", str(out)]) == 1
    assert "other.json: not a transform: expected a JSON object with a 4x4 'matrix'" in (
        capsys.readouterr().err)
    assert not out.exists() and not list(tmp_path.glob("*lock"))
