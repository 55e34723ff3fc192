"""``corrtomo reconstruct``: projections file + geometry JSON -> volume file."""

import numpy as np
import pandas as pd

from napari_corrtomo.cli import main
from napari_corrtomo.core import io, synthetic
from napari_corrtomo.core.recon import Geometry


def test_reconstruct_from_raw_counts_with_auto_centre(tmp_path, capsys):
    s = synthetic.projections("parallel", seed=0, volume_shape=(8, 48, 48), det_shape=(8, 48),
                              n_angles=90, raw=True, zingers=1e-3, center_offset=2.0)
    io.write_tiff(tmp_path / "proj.tif", s.raw, (1.0, 0.5, 0.5), "um")
    io.write_tiff(tmp_path / "flats.tif", s.flats, (1.0, 0.5, 0.5), "um")
    io.write_tiff(tmp_path / "darks.tif", s.darks, (1.0, 0.5, 0.5), "um")
    s.geometry.save(tmp_path / "geom.json")
    rc = main(["reconstruct", str(tmp_path / "proj.tif"), "--geometry", str(tmp_path / "geom.json"),
               "--out", str(tmp_path / "vol.tif"), "--flats", str(tmp_path / "flats.tif"),
               "--darks", str(tmp_path / "darks.tif"), "--outliers", "6", "--center", "auto",
               "--shape", "8", "48", "48", "--fsc", str(tmp_path / "fsc.csv"),
               "--save-geometry", str(tmp_path / "used.json")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "rotation axis offset" in out and "FSC resolution" in out
    [vol] = io.read_volumes(tmp_path / "vol.tif")
    assert vol.scale == (0.5, 0.5, 0.5) and vol.units == ("um",) * 3
    err = np.linalg.norm(vol.array - s.phantom) / np.linalg.norm(s.phantom)
    assert err < 0.3
    used = Geometry.load(tmp_path / "used.json")
    assert abs(used.shifts[0, 1] - 2.0) < 0.2
    table = pd.read_csv(tmp_path / "fsc.csv")
    assert {"frequency_per_um", "fsc", "threshold_half_bit", "threshold_one_bit"} <= set(table)


def test_sirt_to_ome_zarr_and_clear_failures(tmp_path, capsys):
    s = synthetic.projections("cone", seed=1, volume_shape=(16, 24, 24), det_shape=(20, 32),
                              n_angles=40)
    io.write_tiff(tmp_path / "cone.tif", s.projections, (1.0, 2.0, 2.0), "um")
    s.geometry.save(tmp_path / "g.json")
    rc = main(["reconstruct", str(tmp_path / "cone.tif"), "--geometry", str(tmp_path / "g.json"),
               "--out", str(tmp_path / "v.ome.zarr"), "--method", "sirt", "--iterations", "5",
               "--min-value", "0", "--shape", "16", "24", "24"])
    assert rc == 0
    [vol] = io.read_volumes(tmp_path / "v.ome.zarr")
    assert vol.scale == (1.0, 1.0, 1.0) and np.asarray(vol.array).min() >= 0
    # wrong method for the geometry, mismatched angle count: one clear line, exit 1
    capsys.readouterr()
    assert main(["reconstruct", str(tmp_path / "cone.tif"), "--geometry",
                 str(tmp_path / "g.json"), "--out", str(tmp_path / "x.tif"),
                 "--method", "fbp"]) == 1
    assert ("error: --method 'fbp' does not fit this cone-beam geometry; use 'fdk'"
            in capsys.readouterr().err)
    Geometry.cone(np.arange(10.0), (20, 32), 96.0, 96.0, 2.0).save(tmp_path / "bad.json")
    assert main(["reconstruct", str(tmp_path / "cone.tif"), "--geometry",
                 str(tmp_path / "bad.json"), "--out", str(tmp_path / "x.tif")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("corrtomo reconstruct: error:") and "angles" in err
    assert not (tmp_path / "x.tif").exists()
    # a cone scan on workers: refused in the command line's words before any cluster starts
    assert main(["reconstruct", str(tmp_path / "cone.tif"), "--geometry",
                 str(tmp_path / "g.json"), "--out", str(tmp_path / "x.tif"), "--workers",
                 "2"]) == 1
    err = capsys.readouterr().err
    assert "--workers/--scheduler reconstructs parallel-beam scans with FBP" in err
    assert "fdk reconstructs the whole volume at once (drop those options" in err
    assert "slab=" not in err and not (tmp_path / "x.tif").exists()


def test_align_takes_the_method_the_pipeline_uses(tmp_path, capsys):
    """``--align`` is the automatic choice, ``--align xcorr`` cross-correlation alone: the
    geometry written is the pipeline's for that method, and the choice is printed."""
    from napari_corrtomo.core import recon

    s = synthetic.projections("tilt_series", seed=2, volume_shape=(24, 8, 24),
                              det_shape=(8, 24), n_angles=36, jitter_px=1.0)
    io.write_tiff(tmp_path / "tilt.tif", s.projections, (1.0, 1.0, 1.0), "nm")
    s.geometry.save(tmp_path / "g.json")
    for args, method in (([], "auto"), (["xcorr"], "xcorr")):
        used = tmp_path / f"used_{method}.json"
        assert main(["reconstruct", str(tmp_path / "tilt.tif"), "--geometry",
                     str(tmp_path / "g.json"), "--align", *args, "--out",
                     str(tmp_path / f"{method}.tif"), "--save-geometry", str(used)]) == 0
        _, ref = recon.prepare_scan(s.projections, s.geometry,
                                    recon.ScanSettings(align=True, align_method=method))
        np.testing.assert_allclose(Geometry.load(used).shifts, ref.shifts)
        if method == "auto":
            chosen = recon.measure_alignment(s.projections, s.geometry.angles_deg)
            assert f"alignment: {chosen.summary()}" in capsys.readouterr().out
    assert chosen.method != "xcorr"  # the pillar stays in the field: a centre-of-mass method
    assert not np.allclose(Geometry.load(tmp_path / "used_xcorr.json").shifts,
                           Geometry.load(tmp_path / "used_auto.json").shifts)


def test_wrong_settings_are_refused_in_the_options_words(tmp_path, capsys):
    """--voxel-size 0 once ran with the default voxel size; the checks spoke the API's
    names (voxel_size, threshold, size): now one line naming the option, nothing written."""
    s = synthetic.projections("parallel", seed=0, volume_shape=(4, 16, 16), det_shape=(4, 16),
                              n_angles=12)
    io.write_tiff(tmp_path / "p.tif", s.projections, (1.0, 1.0, 1.0), "um")
    io.write_tiff(tmp_path / "f.tif", np.ones((2, 4, 16), np.float32), (1.0, 1.0, 1.0), "um")
    s.geometry.save(tmp_path / "g.json")
    base = ["reconstruct", str(tmp_path / "p.tif"), "--geometry", str(tmp_path / "g.json"),
            "--out", str(tmp_path / "v.tif")]
    for extra, words in [(["--voxel-size", "0"], "--voxel-size must be a positive length"),
                         (["--iterations", "0", "--method", "sirt"],
                          "--iterations must be a positive whole number"),
                         (["--min-value", "0"], "--min-value is a finite lower bound of SIRT"),
                         (["--outliers", "-1"], "--outliers must be a positive number"),
                         (["--rings", "1"], "--rings is a window of at least 3"),
                         (["--shape", "0", "4", "4"], "--shape must be three positive"),
                         # a stack given twice (its own flats once failed as a zero flat)
                         (["--flats", str(tmp_path / "p.tif")],
                          "--flats and the projections are one stack"),
                         (["--flats", str(tmp_path / "f.tif"), "--darks", str(tmp_path / "f.tif")],
                          "--darks and --flats are one stack"),
                         (["--align"], "--align is for tilt series (electron tomography), "
                          "whose neighbouring projections nearly match; a parallel scan is "
                          "aligned by its rotation-axis offset (--center)")]:
        capsys.readouterr()
        assert main([*base, *extra]) == 1
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1, err
    assert not (tmp_path / "v.tif").exists()


def test_a_gpu_asked_for_where_there_is_none_is_refused_in_the_options_words(
        tmp_path, capsys, monkeypatch):
    from napari_corrtomo.core.recon import _astra, _cuda_kernels

    monkeypatch.setattr(_astra, "cuda_available", lambda: False)
    monkeypatch.setattr(_cuda_kernels, "available", lambda: False)
    s = synthetic.projections("parallel", seed=0, volume_shape=(4, 16, 16), det_shape=(4, 16),
                              n_angles=12)
    io.write_tiff(tmp_path / "p.tif", s.projections, (1.0, 1.0, 1.0), "um")
    s.geometry.save(tmp_path / "g.json")
    assert main(["reconstruct", str(tmp_path / "p.tif"), "--geometry", str(tmp_path / "g.json"),
                 "--out", str(tmp_path / "v.tif"), "--backend", "cupy"]) == 1
    assert capsys.readouterr().err == (
        "corrtomo reconstruct: error: --backend 'cupy' needs an NVIDIA GPU usable by numba (or "
        "ASTRA) and none is usable here; choose 'auto' or 'numpy' for the CPU engines\n")
    assert not (tmp_path / "v.tif").exists()
