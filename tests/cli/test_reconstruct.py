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
    assert vol.value_unit == "1/um"  # attenuation per length of the geometry's unit
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
    assert vol.value_unit == f"1/{s.geometry.unit}"
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


def _micro(tmp_path):
    """A small parallel-beam scan on a 64-column detector: line integrals, raw counts with
    flats, and its geometry (the trial's micro_proj.tif, micro_raw.tif, micro.json)."""
    s = synthetic.projections("parallel", seed=0, volume_shape=(8, 48, 48), det_shape=(8, 64),
                              n_angles=30, raw=True)
    io.write_tiff(tmp_path / "micro_proj.tif", s.projections, (1.0, 0.5, 0.5), "um")
    io.write_tiff(tmp_path / "micro_raw.tif", s.raw, (1.0, 0.5, 0.5), "um")
    io.write_tiff(tmp_path / "flats.tif", s.flats, (1.0, 0.5, 0.5), "um")
    s.geometry.save(tmp_path / "micro.json")
    return s


def _refused(tmp_path, capsys, args, out="y.tif"):
    """Run ``corrtomo reconstruct`` expecting a refusal: exit 1, one error line, no
    traceback, no output and no lock left; returns the message."""
    rc = main(["reconstruct", *args, "--out", str(tmp_path / out)])
    err = capsys.readouterr().err
    assert rc == 1, err
    assert err.startswith("corrtomo reconstruct: error:") and "Traceback" not in err
    assert not (tmp_path / out).exists() and not list(tmp_path.glob("*lock*"))
    return err


def test_a_volume_larger_than_the_memory_is_refused_before_any_work(tmp_path, capsys,
                                                                     monkeypatch):
    _micro(tmp_path)
    proj, geom = str(tmp_path / "micro_proj.tif"), str(tmp_path / "micro.json")
    read = []
    monkeypatch.setattr(io, "read_volumes", lambda *a, **k: read.append(a) or 1 / 0)
    err = _refused(tmp_path, capsys, [proj, "--geometry", geom, "--shape", "4000", "4000",
                                      "4000"])
    assert "a 4000 x 4000 x 4000 voxel volume (256.0 GB as float32)" in err
    assert "this run may use (half the free memory, or CORRTOMO_MEMORY_BUDGET)" in err
    assert "choose a smaller --shape (with a larger --voxel-size" in err
    assert "a .ome.zarr --out with --workers N" in err and not read  # nothing was read
    # the budget named by CORRTOMO_MEMORY_BUDGET, and the same on workers with a .tif out
    monkeypatch.setenv("CORRTOMO_MEMORY_BUDGET", "1MB")
    err = _refused(tmp_path, capsys, [proj, "--geometry", geom, "--shape", "8", "200", "200"])
    assert "more than the 1 MB this run may use" in err


def test_running_out_of_memory_is_one_line_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    from napari_corrtomo.core import recon

    _micro(tmp_path)

    def oom(*args, **kwargs):
        raise MemoryError("Unable to allocate 238. GiB for an array")

    monkeypatch.setattr(recon, "run_reconstruction", oom)
    err = _refused(tmp_path, capsys, [str(tmp_path / "micro_proj.tif"), "--geometry",
                                      str(tmp_path / "micro.json")])
    assert "error: out of memory (Unable to allocate 238. GiB" in err
    assert "nothing was written" in err


def test_a_worker_memory_limit_too_small_is_refused_before_the_cluster(tmp_path, capsys,
                                                                        monkeypatch):
    import pytest

    from napari_corrtomo.core import cluster
    from napari_corrtomo.core._errors import SettingError

    # every command's cluster refuses it too (classify, quantify), before any worker starts
    with pytest.raises(SettingError, match=r"memory_limit 1kB per worker is too small"):
        with cluster.dask_client(workers=2, memory_limit="1kB"):
            pass
    _micro(tmp_path)
    started = []
    monkeypatch.setattr(cluster, "dask_client", lambda *a, **k: started.append(a) or 1 / 0)
    base = [str(tmp_path / "micro_proj.tif"), "--geometry", str(tmp_path / "micro.json"),
            "--workers", "2"]
    err = _refused(tmp_path, capsys, [*base, "--memory-limit", "1kB"], out="y.ome.zarr")
    assert "--memory-limit 1kB per worker is too small" in err and "256 MB" in err
    # above the floor but too small for one slab of a large volume
    err = _refused(tmp_path, capsys, [*base, "--memory-limit", "300MB", "--shape", "16",
                                      "6000", "6000"], out="y.ome.zarr")
    assert "one slab of 16 slices of the 16 x 6000 x 6000 volume needs about" in err
    assert "(60 % of --memory-limit); give fewer slices per task (--slab)" in err
    assert not started


def test_raw_counts_without_flats_or_log_are_refused(tmp_path, capsys):
    s = _micro(tmp_path)
    raw, geom = str(tmp_path / "micro_raw.tif"), str(tmp_path / "micro.json")
    err = _refused(tmp_path, capsys, [raw, "--geometry", geom])
    assert (f"these look like raw detector counts (values up to {s.raw.max():.6g}), not line "
            "integrals: give --flats/--darks or --log (or --no-log") in err
    # with flats they are normalised; --no-log reconstructs them as they are, on request
    for extra in (["--flats", str(tmp_path / "flats.tif")], ["--no-log"]):
        out = tmp_path / f"v{len(extra)}.tif"
        assert main(["reconstruct", raw, "--geometry", geom, "--out", str(out), *extra]) == 0
        assert out.exists()


def test_a_centre_off_the_detector_is_refused(tmp_path, capsys):
    _micro(tmp_path)
    err = _refused(tmp_path, capsys, [str(tmp_path / "micro_proj.tif"), "--geometry",
                                      str(tmp_path / "micro.json"), "--center", "1000"])
    assert "--center 1000 px puts the rotation axis" in err
    assert "outside the detector (64 columns wide" in err


def test_unit_slips_are_refused_in_the_options_words_before_reading(tmp_path, capsys,
                                                                   monkeypatch):
    """A voxel size in nm for a geometry in um, and angles in radians: refused by the
    core's checks, worded for the command line, before the projections are read."""
    import json

    s = _micro(tmp_path)
    read = []
    monkeypatch.setattr(io, "read_volumes", lambda *a, **k: read.append(a) or [])
    err = _refused(tmp_path, capsys, [str(tmp_path / "micro_proj.tif"), "--geometry",
                                      str(tmp_path / "micro.json"), "--voxel-size", "500"])
    assert "give --voxel-size in um" in err and not read
    g = json.loads((tmp_path / "micro.json").read_text())
    g["angles_deg"] = np.radians(s.geometry.angles_deg).tolist()
    (tmp_path / "rad.json").write_text(json.dumps(g))
    err = _refused(tmp_path, capsys, [str(tmp_path / "micro_proj.tif"), "--geometry",
                                      str(tmp_path / "rad.json")])
    assert "looks like radians" in err and "'angles' of the geometry JSON" in err and not read


def test_log_of_line_integrals_names_the_likely_cause_in_the_options_words(tmp_path, capsys):
    _micro(tmp_path)
    err = _refused(tmp_path, capsys, [str(tmp_path / "micro_proj.tif"), "--geometry",
                                      str(tmp_path / "micro.json"), "--log"])
    assert "probably line integrals already" in err and "leave out --log" in err
    assert "floor=" not in err


def test_geometry_fields_of_the_wrong_type_name_the_file_and_field(tmp_path, capsys):
    import json

    _micro(tmp_path)
    base = {"kind": "parallel", "det_shape": [8, 64], "pixel_size": 0.5, "unit": "um",
            "angles": {"start": 0, "stop": 180, "count": 30}}
    cases = [({"angles": {**base["angles"], "endpoint": "no"}},
              "bad.json: 'endpoint' in 'angles' must be true or false"),
             ({"center_offset": "auto"},
              "bad.json: 'center_offset' must be a number, got \"auto\"; leave it out and "
              "search the centre with --center auto"),
             ({"pixel_size": "0.5um"}, "bad.json: 'pixel_size' must be a number")]
    for change, message in cases:
        (tmp_path / "bad.json").write_text(json.dumps({**base, **change}))
        err = _refused(tmp_path, capsys, [str(tmp_path / "micro_proj.tif"), "--geometry",
                                          str(tmp_path / "bad.json")])
        assert message in err


def test_slab_needs_workers_and_the_help_says_the_defaults(tmp_path, capsys):
    _micro(tmp_path)
    err = _refused(tmp_path, capsys, [str(tmp_path / "micro_proj.tif"), "--geometry",
                                      str(tmp_path / "micro.json"), "--slab", "4"])
    assert "--slab sets the slices per task of --workers/--scheduler" in err
    import pytest

    with pytest.raises(SystemExit):
        main(["reconstruct", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for words in ("robust standard deviations (5 is a safe start; default: off)",
                  "of the running median (default: off)",
                  "(default: the geometry's own offset)",
                  "slices per task (parallel-beam FBP; default 16); needs --workers or "
                  "--scheduler"):
        assert words in text
