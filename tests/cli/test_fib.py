"""``corrtomo fib``: stack + thicknesses (CSV / ruler / constant) -> isotropic volume."""

import warnings

import numpy as np
import pandas as pd
import pytest
import tifffile

from napari_corrtomo.cli import main
from napari_corrtomo.core import io
from napari_corrtomo.core import synthetic as syn
from napari_corrtomo.core.fib import interpolate, reposition


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("fibcli")
    s = syn.fib_sem_stack(seed=1, n_slices=16, image_shape=(48, 80))
    io.write_tiff(d / "se2.tif", s.channels[0].data, s.channels[0].scale, "nm")
    io.write_table(d / "t.csv", {"slice": np.arange(16), "thickness_nm": s.thickness_nm})
    m = syn.fib_mimic(syn.hierarchical_leveled_wave((48, 40, 40), 2.5, seed=3), 2.5, 10, 4, 3)
    io.write_tiff(d / "seg.tif", m.stack.astype(np.uint8), (10.0, 2.5, 2.5), "nm", "labels")
    io.write_table(d / "m.csv", {"thickness_nm": m.thickness_nm})
    return d, s, m


def test_fib_csv_to_isotropic_volume(files, capsys):
    d, s, m = files
    out = d / "iso.tif"
    assert main(["fib", str(d / "seg.tif"), "--thickness", str(d / "m.csv"), "--method", "ml",
                 "--out", str(out)]) == 0
    assert "2.5 x 2.5 x 2.5 nm" in capsys.readouterr().out
    (vol,) = io.read_volumes(out)
    assert vol.scale == (2.5, 2.5, 2.5) and vol.units == ("nm",) * 3
    rv, known = reposition(m.stack, m.thickness_nm, 2.5)
    np.testing.assert_array_equal(vol.data.astype(bool), interpolate(rv, known, "ml"))


def test_fib_ruler_writes_thickness_table(files, capsys):
    d, s, _ = files
    out, table = d / "ruler.tif", d / "measured.csv"
    assert main(["fib", str(d / "se2.tif"), "--ruler-rows", "0", str(s.ruler.band_rows),
                 "--ruler-angle", str(s.ruler.angle_deg), "--thickness-out", str(table),
                 "--grid", "5", "--out", str(out)]) == 0
    t = pd.read_csv(table)
    err = t["thickness_nm"].to_numpy()[:-1] - s.thickness_nm[:-1]
    assert np.sqrt(np.mean(err**2)) < 1.0
    (vol,) = io.read_volumes(out)
    assert vol.scale == (5.0, 10.0, 10.0)
    assert vol.data.shape[1] == 48 - s.ruler.band_rows  # band cut
    assert vol.data.shape[0] == int(round(np.sum(t["thickness_nm"].to_numpy()[:-1]) / 5)) + 1


@pytest.mark.parametrize("args, message", [
    (["--thickness", "short.csv"], "got 3 slice thicknesses for a stack of 16"),
    (["--constant", "0"], "positive and finite"),
    (["--constant", "0.02"], "--constant 0.02 nm is 0.002 of the 10 nm pixel"),
    (["--ruler-rows", "20", "40", "--ruler-angle", "25"], "ruler marks"),
    (["--ruler-rows", "0", "16"], "needs --ruler-angle"),
    # a greyscale stack called binary was written all ones
    (["--constant", "20", "--kind", "binary", "--method", "shape"],
     "--kind binary needs a bool or 0/1 stack, but this float32 stack holds other values ("),
    (["--constant", "20", "--kind", "binary"], "segment it first, or choose --kind grey"),
    (["--constant", "20", "--pixel-size", "0"], "--pixel-size must be positive and finite, got 0.0"),
    (["--ruler-rows", "0", "16", "--ruler-angle", "95"],
     "--ruler-angle must be between 0 and 90 degrees (both excluded), got 95"),
    # um given as nm: 20 nm slices on 0.01 nm pixels were 2000 planes each (12.9 GB, killed)
    (["--constant", "20", "--pixel-size", "0.01"],
     "--constant 20 nm is 2,000 pixels of 0.01 nm; FIB slices are at most about 20 pixels "
     "thick: the thicknesses and --pixel-size are in nm"),
    (["--constant", "20", "--grid", "0.01"],
     "would have 30,001 planes of 48 x 80 pixels for the 16 slices given (2,000 planes per "
     "slice)"),
    (["--constant", "20", "--grid", "0.01"], "--pixel-size, --grid and the slice thicknesses "
     "are all in nm; was one given in um?"),
    # a grey stack called labels was interpolated once per grey value
    (["--constant", "20", "--kind", "labels"],
     "--kind labels needs a stack of whole-number labels, but this float32 stack holds other "
     "values ("),
    (["--constant", "20", "--kind", "labels"], "segment it first, or choose --kind grey"),
    # um values under a thickness_nm header
    (["--thickness", "um.csv"], "the median thickness in um.csv (--thickness), 0.02 nm, is "
     "0.002 of the 10 nm pixel; FIB slices are at least 0.05 of a pixel thick: name the "
     "thickness column by its unit (thickness_um"),
    (["--ruler-rows", "0", "16", "--ruler-angle", "25", "--max-step", "-3"],
     "--max-step must be a positive number of pixels, got -3"),
    (["--ruler-rows", "0", "16", "--ruler-angle", "25", "--max-step", "0"],
     "--max-step must be a positive number of pixels, got 0"),
])
def test_fib_bad_input(files, capsys, args, message):
    d, _, _ = files
    (d / "short.csv").write_text("thickness_nm\n10\n10\n10\n")
    (d / "um.csv").write_text("thickness_nm\n" + "0.02\n" * 16)
    args = [str(d / a) if a in ("short.csv", "um.csv") else a for a in args]
    assert main(["fib", str(d / "se2.tif"), "--out", str(d / "x.tif"), *args]) == 1
    err = capsys.readouterr().err
    assert err.startswith("corrtomo fib: error:") and message in err
    assert not (d / "x.tif").exists() and not list(d.glob("x.tif*"))


def test_fib_output_beyond_memory_is_refused_before_the_work(files, capsys, monkeypatch):
    from napari_corrtomo.core.fib import pipeline

    d, _, _ = files
    monkeypatch.setattr(pipeline, "available_memory", lambda: 1_000_000)
    assert main(["fib", str(d / "se2.tif"), "--constant", "20", "--grid", "1", "--out",
                 str(d / "x.tif")]) == 1
    err = capsys.readouterr().err
    assert ("would have 301 planes of 48 x 80 pixels for the 16 slices given (20 planes per "
            "slice), 5 MB against 1 MB of memory available, so it was not started" in err)
    assert "choose a coarser --grid" in err
    assert not list(d.glob("x.tif*"))


def test_fib_ruler_angle_in_radians_is_refused(files, capsys):
    d, s, _ = files
    radians = f"{np.radians(s.ruler.angle_deg):.4f}"
    assert main(["fib", str(d / "se2.tif"), "--ruler-rows", "0", str(s.ruler.band_rows),
                 "--ruler-angle", radians, "--out", str(d / "x.tif")]) == 1
    err = capsys.readouterr().err
    assert "the median thickness measured from the ruler marks" in err
    assert (f"--ruler-angle is in degrees, and {float(radians):g} looks like radians "
            f"({np.degrees(float(radians)):.3g} degrees)") in err
    assert not list(d.glob("x.tif*"))


def test_fib_zarr_stack_stays_lazy_and_matches(files, capsys):
    d, s, m = files
    src = io.write_ome_zarr(d / "seg.ome.zarr", m.stack.astype(np.uint8), (10.0, 2.5, 2.5), "nm",
                            "labels")
    out = d / "iso.ome.zarr"
    assert main(["fib", str(src), "--thickness", str(d / "m.csv"), "--method", "shape",
                 "--out", str(out)]) == 0
    (vol,) = io.read_volumes(out)
    rv, known = reposition(m.stack, m.thickness_nm, 2.5)
    np.testing.assert_array_equal(np.asarray(vol.array).astype(bool),
                                  interpolate(rv, known, "shape"))


def test_fib_band_cut_with_csv_source_and_keep_band(files, capsys):
    d, s, _ = files
    band = s.ruler.band_rows
    base = ["fib", str(d / "se2.tif"), "--thickness", str(d / "t.csv"), "--band-rows", "0",
            str(band)]
    assert main([*base, "--out", str(d / "cut.tif")]) == 0
    assert f"origin (z, y, x) 0 {band * 10.0:g} 0 nm" in capsys.readouterr().out
    assert main([*base, "--keep-band", "--out", str(d / "kept.tif")]) == 0
    assert "origin (z, y, x) 0 0 0 nm" in capsys.readouterr().out
    (cut,), (kept,) = io.read_volumes(d / "cut.tif"), io.read_volumes(d / "kept.tif")
    assert kept.data.shape[1] == 48 and cut.data.shape[1] == 48 - band
    # the same planes; the kept rows are the band (cubic splines act per (y, x) column)
    np.testing.assert_array_equal(cut.data, kept.data[:, band:])


def test_fib_errors_name_the_options(files, capsys):
    d, _, _ = files
    assert main(["fib", str(d / "se2.tif"), "--constant", "10", "--band-rows", "20", "30",
                 "--out", str(d / "x.tif")]) == 1
    err = capsys.readouterr().err
    assert "pass --keep-band" in err and "cut_band" not in err
    assert main(["fib", str(d / "se2.tif"), "--ruler-rows", "0", "16", "--ruler-angle", "25",
                 "--polarity", "bright", "--out", str(d / "x.tif")]) == 1
    err = capsys.readouterr().err
    assert "--polarity" in err and "--ruler-x-first" in err and "x_first" not in err
    assert not (d / "x.tif").exists()


def test_fib_ml_spacing_error_prints_plain_numbers(files, capsys):
    d, _, _ = files
    assert main(["fib", str(d / "seg.tif"), "--constant", "20", "--grid", "10", "--method", "ml",
                 "--out", str(d / "x.tif")]) == 1
    err = capsys.readouterr().err
    assert "got spacing (z, y, x) (10, 2.5, 2.5). Set --grid close to the pixel size" in err
    assert "np.float64" not in err and not (d / "x.tif").exists()


def test_fib_marks_found_nowhere_is_an_error_without_numpy_warnings(files, capsys):
    """No mark in any slice: the clean error alone (NumPy's All-NaN warning was printed)."""
    d, _, _ = files
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        assert main(["fib", str(d / "se2.tif"), "--ruler-rows", "0", "16", "--ruler-angle",
                     "25", "--ruler-x-first", "1", "2", "3", "4", "--out",
                     str(d / "x.tif")]) == 1
        assert "ruler marks not found in slices 0, 1, 2" in capsys.readouterr().err
        # with a fallback thickness the run goes on (every slice flagged)
        assert main(["fib", str(d / "se2.tif"), "--ruler-rows", "0", "16", "--ruler-angle",
                     "25", "--ruler-x-first", "1", "2", "3", "4", "--fallback-thickness", "20",
                     "--out", str(d / "fallback.tif")]) == 0
    assert "16 flagged" in capsys.readouterr().out


def test_fib_um_stack_writes_whole_nm_spacing(files, tmp_path, capsys):
    """1 um pixels are 1000 nm voxels in the file, not 999.9999999999999 (float noise)."""
    d, s, _ = files
    io.write_tiff(tmp_path / "um.tif", s.channels[0].data, (0.02, 1.0, 1.0), "um")
    out = tmp_path / "iso.tif"
    assert main(["fib", str(tmp_path / "um.tif"), "--constant", "2000", "--out", str(out)]) == 0
    with tifffile.TiffFile(out) as tif:
        assert tif.imagej_metadata["spacing"] == 1000.0
    assert io.read_volumes(out)[0].scale == (1000.0, 1000.0, 1000.0)


def test_fib_help_shows_the_units_of_lengths(capsys):
    with pytest.raises(SystemExit):
        main(["fib", "--help"])
    text = capsys.readouterr().out
    for option in ("--constant NM", "--fallback-thickness NM", "--pixel-size NM", "--grid NM",
                   "--ruler-angle DEG"):
        assert option in text


def test_fib_help_gives_the_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["fib", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "from 0 (default 0: the first)" in text
    assert "e.g. IPPI (default: inferred" in text


def test_fib_option_given_twice_is_refused(files, capsys):
    d, _, _ = files
    with pytest.raises(SystemExit) as exc:
        main(["fib", str(d / "se2.tif"), "--constant", "20", "--constant", "10", "--out",
              str(d / "x.tif")])
    assert exc.value.code == 2
    assert "--constant is given twice; give it once" in capsys.readouterr().err
    assert not list(d.glob("x.tif*"))
