"""Transport measures through ``corrtomo quantify``: labels file + phase + spacing -> CSV tables."""

import numpy as np
import pandas as pd
import pytest

from napari_corrtomo.cli import main
from napari_corrtomo.core import io

MEASURES = "tortuosity,geodesic_tortuosity,constrictivity"


def test_quantify_transport_writes_tables(tmp_path, capsys):
    labels = np.full((16, 12, 12), 2, np.uint8)
    labels[:, 3:6, 3:6] = 1  # a straight pore channel along z
    labels[:, 8:10, :] = 1  # a wall along z and x
    io.write_tiff(tmp_path / "labels.tif", labels, (0.5, 0.25, 0.25), "um", layer_type="labels")
    out = tmp_path / "out"
    assert main(["quantify", str(tmp_path / "labels.tif"), "--phase", "1", "--out", str(out),
                 "--measures", MEASURES, "--depths", "1", "2", "--save-volumes"]) == 0
    tau = pd.read_csv(out / "tortuosity.csv")
    assert tau["axis"].tolist() == [0, 1, 2] and "flux_um" in tau.columns
    assert tau.loc[0, "tortuosity_factor"] == pytest.approx(1.0)
    assert tau.loc[1, "tortuosity_factor"] == np.inf  # nothing spans y
    eps = np.mean(labels == 1)  # only the wall spans x: D_eff = its cross-section fraction
    assert tau.loc[2, "tortuosity_factor"] == pytest.approx(eps / (2 / 12))
    geo = pd.read_csv(out / "geodesic_tortuosity.csv")
    z_rows = geo[geo["axis"] == 0]
    assert z_rows["depth_um"].tolist() == [1.0, 2.0]
    np.testing.assert_allclose(z_rows["mean"], 1.0)
    beta = pd.read_csv(out / "constrictivity.csv")
    assert {"constrictivity", "r_min_um", "r_max_um"} <= set(beta.columns)
    curve = pd.read_csv(out / "intrusion.csv")
    assert {"radius_um", "intruded_fraction", "covered_fraction", "axis"} <= set(curve.columns)
    summary = pd.read_csv(out / "summary.csv").set_index("quantity")["value"]
    assert summary["tortuosity factor z"] == pytest.approx(1.0)
    field = io.read_volumes(out / "concentration_z.tif")[0]
    assert field.scale == pytest.approx((0.5, 0.25, 0.25))
    printed = capsys.readouterr().out
    assert "tortuosity factor y = inf" in printed

    # explicit spacing overrides the file's; the unit column follows --unit; one axis
    assert main(["quantify", str(tmp_path / "labels.tif"), "--phase", "1", "--axes", "0",
                 "--measures", "geodesic_tortuosity", "--spacing", "2", "--unit", "nm",
                 "--out", str(tmp_path / "o2")]) == 0
    geo = pd.read_csv(tmp_path / "o2" / "geodesic_tortuosity.csv")
    assert "depth_nm" in geo.columns and (geo["depth_nm"] % 2 == 0).all()
    assert set(geo["axis"]) == {0}


def test_quantify_transport_clear_failures(tmp_path, capsys):
    labels = np.zeros((6, 6, 6), np.uint8)
    labels[:, :3] = 1
    io.write_tiff(tmp_path / "l.tif", labels, (1, 1, 1), "um", layer_type="labels")
    assert main(["quantify", str(tmp_path / "l.tif"), "--phase", "5", "--measures", MEASURES,
                 "--out", str(tmp_path / "o")]) == 1
    assert "phase label 5 has no voxel in this volume (its labels: 0, 1)" in capsys.readouterr().err
    assert main(["quantify", str(tmp_path / "l.tif"), "--phase", "1", "--spacing", "1", "1",
                 "--measures", MEASURES, "--out", str(tmp_path / "o")]) == 1
    assert "spacing" in capsys.readouterr().err
    assert main(["quantify", str(tmp_path / "l.tif"), "--phase", "1", "--axes", "4",
                 "--measures", "tortuosity", "--out", str(tmp_path / "o")]) == 1
    assert "--axes must be volume axes 0 (z), 1 (y) or 2 (x), got [4]" in capsys.readouterr().err


def test_the_outside_is_no_part_of_the_sample_in_any_measure(tmp_path, capsys):
    """A FIB volume's band without data (label 0, --outside 0) once counted as solid in
    the transport and correlation measures: tortuosity.csv and S2(0) gave the phase
    fraction of the whole array beside the summary's porosity over the sample, and no
    phase reached the y inlet face in the band. Every measure now sees the sample alone:
    the same tables as the volume without the band."""
    rng = np.random.default_rng(0)
    labels = np.where(rng.random((12, 16, 14)) < 0.5, 1, 2).astype(np.uint8)
    labels[:, :4] = 0  # the band, along z and x, at the y = 0 face
    io.write_tiff(tmp_path / "band.tif", labels, (2.0, 1.0, 1.0), "nm", layer_type="labels")
    io.write_tiff(tmp_path / "crop.tif", labels[:, 4:], (2.0, 1.0, 1.0), "nm",
                  layer_type="labels")
    measures = "porosity,tortuosity,correlation,geodesic_tortuosity,constrictivity"
    assert main(["quantify", str(tmp_path / "band.tif"), "--phase", "1", "--outside", "0",
                 "--measures", measures, "--depths", "4", "--save-volumes",
                 "--out", str(tmp_path / "b")]) == 0
    assert main(["quantify", str(tmp_path / "crop.tif"), "--phase", "1", "--measures",
                 measures, "--depths", "4", "--out", str(tmp_path / "c")]) == 0
    summary = pd.read_csv(tmp_path / "b" / "summary.csv").set_index("quantity")["value"]
    porosity = np.mean(labels[:, 4:] == 1)
    assert summary["porosity (phase / sample)"] == pytest.approx(porosity)
    assert summary["S2(0) = volume fraction (phase / sample)"] == pytest.approx(porosity)
    for table in ("tortuosity", "correlation", "geodesic_tortuosity", "constrictivity"):
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "b" / f"{table}.csv"),
                                      pd.read_csv(tmp_path / "c" / f"{table}.csv"))
    tau = pd.read_csv(tmp_path / "b" / "tortuosity.csv")
    np.testing.assert_allclose(tau["porosity"], porosity)
    assert np.isfinite(tau["tortuosity_factor"]).all()  # y too: its inlet is the sample's
    field = np.asarray(io.read_volumes(tmp_path / "b" / "concentration_y.tif")[0].array)
    assert field.shape == labels.shape and np.isnan(field[:, :4]).all()
