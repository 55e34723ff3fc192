import numpy as np

from napari_corrtomo.cli import main
from napari_corrtomo.core import io

# The full demo run is checked in tests/test_demo.py (it runs once there).


def test_info_and_clear_failure(tmp_path, capsys):
    io.write_tiff(tmp_path / "v.tif", np.zeros((3, 4, 5), np.float32), (2, 1, 1), "nm")
    assert main(["info", str(tmp_path / "v.tif")]) == 0
    assert "voxel 2 x 1 x 1 nm" in capsys.readouterr().out
    (tmp_path / "bad.mrc").write_bytes(b"junk")
    assert main(["info", str(tmp_path / "bad.mrc")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("corrtomo info: error: bad.mrc")


def test_demo_failure_exits_nonzero(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert main(["demo", "--out", str(blocker / "sub")]) == 1
    assert "error" in capsys.readouterr().err


def test_every_option_has_help_and_the_cores_choices():
    """Each option of each command says what it does (argparse prints nothing for one
    without help); the choice lists are the core's own, so neither drifts."""
    import argparse

    from napari_corrtomo.cli import build_parser
    from napari_corrtomo.core.fib.interpolate import KINDS, METHODS
    from napari_corrtomo.core.recon import ALIGN_METHODS, FILTERS

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    bare = [f"{name} {'/'.join(a.option_strings) or a.dest}"
            for name, sub in commands.choices.items() for a in sub._actions
            if not a.help and not isinstance(a, argparse._HelpAction)]
    assert bare == []
    options = {name: {a.dest: a for a in sub._actions} for name, sub in commands.choices.items()}
    assert tuple(options["reconstruct"]["align"].choices) == ALIGN_METHODS
    assert tuple(options["reconstruct"]["filter"].choices) == FILTERS
    assert tuple(options["fib"]["method"].choices) == METHODS
    assert tuple(options["fib"]["kind"].choices) == KINDS


def test_natural_mistakes_get_one_line_in_the_users_words(tmp_path, capsys):
    """A binary file where a JSON or CSV belongs, a point outside the volume, a negative
    seed: one line that says what the file is not or where the point lies (were a UTF-8
    codec error, ``np.float64(900.0)`` and a failed demo step)."""
    import pytest

    from napari_corrtomo.core import synthetic

    s = synthetic.projections("parallel", seed=0, volume_shape=(4, 16, 16), det_shape=(4, 16),
                              n_angles=12)
    io.write_tiff(tmp_path / "p.tif", s.projections, (1.0, 1.0, 1.0), "um")
    lab = np.zeros((8, 8, 8), np.uint8)
    lab[2:6, 2:6, 2:6] = 1
    io.write_tiff(tmp_path / "l.tif", lab, (1.0, 1.0, 1.0), "um", layer_type="labels")
    cases = [
        (["reconstruct", str(tmp_path / "p.tif"), "--geometry", str(tmp_path / "p.tif"),
          "--out", str(tmp_path / "v.tif")], "p.tif is not a geometry file (not text)"),
        (["fib", str(tmp_path / "p.tif"), "--thickness", str(tmp_path / "p.tif"), "--out",
          str(tmp_path / "f.tif")], "p.tif is not a CSV file (not text)"),
        (["quantify", str(tmp_path / "l.tif"), "--phase", "0", "--matrix", "1",
          "--within-envelopes", "--particle-at", "900", "0", "0", "--out", str(tmp_path / "q")],
         "the particle point (900.0, 0.0, 0.0) um lies outside the volume"),
    ]
    for args, words in cases:
        capsys.readouterr()
        assert main(args) == 1
        err = capsys.readouterr().err  # (after a progress line, on a line of its own)
        assert err.splitlines()[-1].startswith("corrtomo "), err
        assert words in err.splitlines()[-1] and "np." not in err, err
    with pytest.raises(SystemExit):
        main(["demo", "--seed", "-1", "--out", str(tmp_path / "d")])
    assert "the seed is a whole number >= 0, not -1" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()
    with pytest.raises(SystemExit):  # was accepted unless a cluster started
        main(["quantify", str(tmp_path / "l.tif"), "--phase", "1", "--memory-limit", "3XB",
              "--out", str(tmp_path / "q2")])
    assert "cannot read a memory size from '3XB'" in capsys.readouterr().err


def test_info_shows_the_unit_of_the_values(tmp_path, capsys):
    io.write_tiff(tmp_path / "r.tif", np.ones((2, 3, 3), np.float32), 1, "um", value_unit="1/um")
    lab = np.zeros((2, 3, 3), np.uint32)
    lab[0, 0, 0] = 70_000  # OME-TIFF: the layer type is kept there too
    io.write_tiff(tmp_path / "l.tif", lab, 1, "um", "labels")
    assert main(["info", str(tmp_path / "r.tif"), str(tmp_path / "l.tif")]) == 0
    r, lab_line = capsys.readouterr().out.splitlines()
    assert r.endswith("voxel 1 x 1 x 1 um, values in 1/um")
    assert lab_line.startswith("l: labels (2, 3, 3) uint32") and "values in" not in lab_line
