"""``corrtomo quantify`` and the demo's quantify step against the sample's ground truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tifffile

from napari_corrtomo.cli import main
from napari_corrtomo.core import io
from napari_corrtomo.core.synthetic import PORE, RESIN, SOLID, paint_spheres


@pytest.fixture
def label_file(tmp_path):
    lab = np.full((30, 32, 34), RESIN, np.uint8)
    paint_spheres(lab, np.array([[3.0, 3.2, 3.4]]), np.array([2.4]), SOLID, (0.2, 0.2, 0.2))
    paint_spheres(lab, np.array([[3.0, 3.2, 2.9]]), np.array([0.8]), PORE, (0.2, 0.2, 0.2),
                  only=SOLID)
    return io.write_tiff(tmp_path / "labels.tif", lab, (0.2, 0.2, 0.2), "um", "labels"), lab


def test_quantify_writes_csv_tables(label_file, tmp_path, capsys):
    path, lab = label_file
    out = tmp_path / "q"
    code = main(["quantify", str(path), "--phase", str(PORE), "--matrix", str(SOLID),
                 "--outside", str(RESIN), "--measures", "porosity,thickness,particles",
                 "--out", str(out), "--save-volumes"])
    assert code == 0, capsys.readouterr().err
    summary = pd.read_csv(out / "summary.csv")
    por = summary.loc[summary.quantity == "porosity (phase / sample)", "value"].item()
    assert por == pytest.approx((lab == PORE).sum() / np.isin(lab, (PORE, SOLID)).sum())
    particles = pd.read_csv(out / "particles.csv")
    assert len(particles) == 1 and particles["esd_um"].item() == pytest.approx(4.8, rel=0.03)
    assert "size_lo_um" in pd.read_csv(out / "phase_size_distribution.csv").columns
    vol = io.read_volumes(out / "phase_local_thickness.tif")[0]
    assert vol.scale == pytest.approx((0.2, 0.2, 0.2)) and vol.units[0] == "um"


def test_quantify_spacing_override_and_clear_errors(label_file, tmp_path, capsys):
    path, lab = label_file
    code = main(["quantify", str(path), "--phase", str(PORE), "--measures", "porosity",
                 "--spacing", "2", "1", "1", "--unit", "nm", "--out", str(tmp_path / "a")])
    assert code == 0
    fr = pd.read_csv(tmp_path / "a" / "phase_fractions.csv")
    assert "volume_nm3" in fr.columns
    assert fr["volume_nm3"].sum() == pytest.approx(lab.size * 2.0)
    capsys.readouterr()
    assert main(["quantify", str(path), "--phase", "7", "--out", str(tmp_path / "b")]) == 1
    assert "phase label 7 has no voxel" in capsys.readouterr().err
    assert main(["quantify", str(path), "--phase", str(PORE), "--spacing", "1", "1",
                 "--out", str(tmp_path / "c")]) == 1
    assert "spacing" in capsys.readouterr().err
    assert main(["quantify", str(path), "--phase", str(PORE), "--measures", "nope",
                 "--out", str(tmp_path / "d")]) == 1
    assert "unknown measure" in capsys.readouterr().err


def test_a_spacing_takes_the_files_unit_and_a_file_without_one_needs_unit(tmp_path, capsys):
    """--spacing alone once labelled every length in um whatever the file said (a nm file:
    1000x off): it is in the file's unit; a file without a unit asks for --unit."""
    lab = np.zeros((8, 8, 8), np.uint8)
    lab[:, :, :4] = 1
    io.write_tiff(tmp_path / "nm.tif", lab, (1.0, 1.0, 1.0), "nm", layer_type="labels")
    assert main(["quantify", str(tmp_path / "nm.tif"), "--phase", "1", "--measures",
                 "porosity", "--spacing", "0.5", "--out", str(tmp_path / "a")]) == 0
    fr = pd.read_csv(tmp_path / "a" / "phase_fractions.csv")
    assert fr["volume_nm3"].sum() == pytest.approx(lab.size * 0.125)
    tifffile.imwrite(tmp_path / "bare.tif", lab)  # a plain TIFF: no voxel size, no unit
    assert io.read_volumes(tmp_path / "bare.tif")[0].units[0] == "pixel"
    capsys.readouterr()
    assert main(["quantify", str(tmp_path / "bare.tif"), "--phase", "1", "--spacing", "0.5",
                 "--out", str(tmp_path / "b")]) == 1
    assert "has no unit; give the unit of --spacing with --unit" in capsys.readouterr().err
    assert main(["quantify", str(tmp_path / "bare.tif"), "--phase", "1", "--measures",
                 "porosity", "--spacing", "0.5", "--unit", "um", "--out", str(tmp_path / "c")]) == 0
    assert "volume_um3" in pd.read_csv(tmp_path / "c" / "phase_fractions.csv").columns


def test_label_clashes_name_the_options(label_file, tmp_path, capsys):
    path, _ = label_file
    for extra, words in [(["--matrix", str(PORE)], f"--phase and --matrix are both {PORE}"),
                         (["--outside", str(PORE)], "--outside must not include the phase")]:
        capsys.readouterr()
        assert main(["quantify", str(path), "--phase", str(PORE), *extra, "--out",
                     str(tmp_path / "q")]) == 1
        assert words in capsys.readouterr().err


def test_an_outside_label_with_no_voxel_is_noted(label_file, tmp_path, capsys):
    """--outside 7 (no such label: a typing error most likely) ran without a word."""
    path, _ = label_file
    assert main(["quantify", str(path), "--phase", str(PORE), "--outside", "7", "--measures",
                 "porosity", "--out", str(tmp_path / "q")]) == 0
    held = ", ".join(map(str, sorted((PORE, RESIN, SOLID))))
    assert (f"note: outside label(s) 7 have no voxel in this volume (its labels: {held})"
            in capsys.readouterr().out)


# The demo's quantify step (on the classified reconstructions) is checked against the
# truth in tests/test_demo.py.


def test_unit_alone_converts_the_files_voxel_size(label_file, tmp_path, capsys):
    """--unit nm on a file of 0.2 um voxels once relabelled them 0.2 nm (every length
    1000x off): the voxel size is converted, and a --spacing is in that unit."""
    path, lab = label_file
    args = ["quantify", str(path), "--phase", str(PORE), "--measures", "porosity"]
    assert main([*args, "--unit", "nm", "--out", str(tmp_path / "a")]) == 0
    fr = pd.read_csv(tmp_path / "a" / "phase_fractions.csv")
    assert fr["volume_nm3"].sum() == pytest.approx(lab.size * 200.0**3)
    assert main([*args, "--unit", "nm", "--spacing", "100", "--out", str(tmp_path / "b")]) == 0
    fr = pd.read_csv(tmp_path / "b" / "phase_fractions.csv")
    assert fr["volume_nm3"].sum() == pytest.approx(lab.size * 100.0**3)


def test_a_tiny_bin_width_is_refused_before_allocating(label_file, tmp_path, capsys):
    """--bin-width 1e-12 once asked for a 7 TiB histogram; now one line naming a width."""
    path, _ = label_file
    assert main(["quantify", str(path), "--phase", str(PORE), "--matrix", str(SOLID),
                 "--bin-width", "1e-12", "--out", str(tmp_path / "q")]) == 1
    err = capsys.readouterr().err.splitlines()  # one error line (after the progress line)
    assert [line for line in err if "error:" in line] == err[-1:]
    assert "bins" in err[-1] and "at least" in err[-1]


@pytest.mark.parametrize("option, value, words", [
    ("--bin-width", "0", "--bin-width must be a positive length in the voxel size's unit"),
    ("--radius", "-1", "--radius must be a positive length"),
    ("--smooth", "-0.5", "--smooth must be >= 0 voxels"),
    ("--min-volume", "-2", "--min-volume must be >= 0"),
    ("--envelope-radius-fraction", "0", "--envelope-radius-fraction must be positive"),
    ("--axes", "3", "--axes must be volume axes 0 (z), 1 (y) or 2 (x), got [3]"),
])
def test_a_bad_setting_is_refused_in_the_options_words_before_any_work(
        label_file, tmp_path, capsys, option, value, words):
    path, _ = label_file
    out = tmp_path / "q"
    assert main(["quantify", str(path), "--phase", str(PORE), "--matrix", str(SOLID),
                 option, value, "--out", str(out)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [f"corrtomo quantify: error: {err[-1].split('error: ', 1)[1]}"]
    assert words in err[-1]
    assert not out.exists()  # the results folder it made for the run is taken back


def test_every_quantify_setting_is_a_command_line_option():
    """``corrtomo quantify`` builds QuantifySettings from options named like its fields, so
    a setting the widget has cannot be missing on the command line."""
    from dataclasses import fields

    from napari_corrtomo.cli import build_parser
    from napari_corrtomo.core.quantify import QuantifySettings

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    dests = {a.dest for a in sub.choices["quantify"]._actions}
    assert {f.name for f in fields(QuantifySettings)} <= dests


def test_partial_volume_porosity_from_the_command_line_equals_the_api(tmp_path, capsys):
    """``--intensity IMG --measures pv_porosity`` writes the same table the pipeline gives."""
    from napari_corrtomo.core.quantify import QuantifySettings, quantify
    from napari_corrtomo.core.synthetic import porous_sphere

    img, lab, truth = porous_sphere(seed=3)
    labels = (lab + 1).astype(np.uint8)  # 1 = pores and surrounding, 2 = solid
    lab_path = io.write_tiff(tmp_path / "labels.tif", labels, (1.0,) * 3, "um", "labels")
    img_path = io.write_tiff(tmp_path / "image.tif", img, (1.0,) * 3, "um")
    out = tmp_path / "q"
    code = main(["quantify", str(lab_path), "--phase", "1", "--matrix", "2", "--intensity",
                 str(img_path), "--measures", "pv_porosity", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    cli = pd.read_csv(out / "pv_porosity.csv")
    api = quantify(labels, (1.0,) * 3, "um", measures=["pv_porosity"],
                   settings=QuantifySettings(phase=1, matrix=2), intensity=img)
    pd.testing.assert_frame_equal(cli, api.tables["pv_porosity"], check_dtype=False)
    row = cli.loc[cli["voxels"].idxmax()]
    assert row["porosity_pv"] == pytest.approx(truth, rel=0.05)


def test_particle_at_from_the_command_line_equals_the_api(tmp_path, capsys):
    """``--particle-at Z Y X`` (twice) picks the envelopes the same points pick through
    the pipeline: two of three particles, tables equal; a point outside the volume is one
    line naming the volume's extent."""
    from napari_corrtomo.core.quantify import QuantifySettings, quantify

    sp = (0.5, 0.5, 0.5)
    lab = np.full((30, 30, 90), RESIN, np.uint8)
    paint_spheres(lab, np.array([[7.5, 7.5, 7.5], [7.5, 7.5, 22.5], [7.5, 7.5, 37.5]]),
                  np.array([5.0, 4.5, 4.0]), SOLID, sp)
    paint_spheres(lab, np.array([[7.5, 7.5, 7.5], [7.5, 7.5, 22.5], [7.5, 7.5, 37.5]]),
                  np.array([1.5, 1.2, 1.0]), PORE, sp, only=SOLID)
    path = io.write_tiff(tmp_path / "labels.tif", lab, sp, "um", "labels")
    points = ((7.5, 7.5, 22.5), (7.5, 7.5, 43.0))  # the second's centre, beside the third
    out = tmp_path / "q"
    code = main(["quantify", str(path), "--phase", str(PORE), "--matrix", str(SOLID),
                 "--outside", str(RESIN), "--measures", "envelopes,closed_pores",
                 "--within-envelopes", *(a for p in points for a in ("--particle-at",
                                                                     *map(str, p))),
                 "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    api = quantify(lab, sp, "um", measures=["envelopes", "closed_pores"],
                   settings=QuantifySettings(phase=PORE, matrix=SOLID, outside=(RESIN,),
                                             within_envelopes=True, particles_at=points))
    cli = pd.read_csv(out / "particle_envelopes.csv")
    assert len(cli) == 2
    pd.testing.assert_frame_equal(cli, api.tables["particle_envelopes"].reset_index(drop=True),
                                  check_dtype=False)
    assert pd.read_csv(out / "summary.csv").set_index("quantity").loc[
        "closed pores", "value"] == 2
    capsys.readouterr()
    assert main(["quantify", str(path), "--phase", str(PORE), "--matrix", str(SOLID),
                 "--measures", "envelopes", "--particle-at", "7.5", "7.5", "60",
                 "--out", str(tmp_path / "bad")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert [line for line in err if "error:" in line] == err[-1:]
    assert "outside the volume" in err[-1] and "44.5" in err[-1]


@pytest.mark.parametrize("zarr, extra, words", [
    (False, ["--exclude-border"],
     "--exclude-border works only with --within-envelopes (it leaves out, of the particles "
     "measured inside their envelopes, those the border cuts); set both, or neither"),
    (False, ["--measures", "proxigram"],
     "Proxigram (interface sharpness) needs --intensity, the image the labels were "
     "segmented from"),
    (False, ["--measures", "porosity", "--particle-at", "3", "3", "3"],
     "--particle-at picks particles by their envelopes: also choose envelopes or pv_porosity "
     "in --measures, or --within-envelopes"),
    (False, ["--spacing", "0", "1", "1"],
     "--spacing must be positive and finite, got (0.0, 1.0, 1.0)"),
    (True, ["--measures", "surface"],
     "measure(s) ['surface'] need the whole volume in memory; for a dask/zarr volume choose "
     "from ['porosity', 'thickness', 'matrix_thickness', 'particles', 'closed_pores'], or "
     "use a TIFF copy without --workers/--scheduler if it fits in memory"),
    (True, ["--measures", "porosity", "--within-envelopes"],
     "--within-envelopes needs the volume in memory; measure without it, or use a TIFF copy "
     "without --workers/--scheduler if it fits in memory"),
])
def test_a_refusal_names_the_options_not_the_widget_or_the_api(
        label_file, tmp_path, capsys, zarr, extra, words):
    """These refusals once spoke of an intensity image to choose, a box to tick, np.asarray
    or a bare ``spacing`` (or, for --exclude-border alone, said nothing and ignored it)."""
    path, lab = label_file
    if zarr:
        path = io.write_volume(tmp_path / "labels.ome.zarr", io.read_volumes(path)[0])
    assert main(["quantify", str(path), "--phase", str(PORE), "--matrix", str(SOLID),
                 "--outside", str(RESIN), *extra, "--out", str(tmp_path / "q")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == f"corrtomo quantify: error: {words}"


def test_the_summary_prints_counts_whole_and_names_each_dimensionless_unit(
        label_file, tmp_path, capsys):
    """"particle count 3.0", a sphericity without a unit beside a porosity in "fraction",
    and a note "log-normal fit skipped" that did not say of which distribution."""
    path, _ = label_file
    out = tmp_path / "q"
    assert main(["quantify", str(path), "--phase", str(PORE), "--matrix", str(SOLID),
                 "--outside", str(RESIN), "--measures", "particles", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert [line.split() for line in printed if "particle count" in line] == [
        ["particles", "particle", "count", "1", "count"]]
    assert "particles,particle count,1,count" in (out / "summary.csv").read_text().splitlines()
    units = pd.read_csv(out / "summary.csv").set_index("quantity")["unit"]
    assert units["sphericity mean"] == "1" and units["porosity mean"] == "fraction"
    assert units.notna().all()
    assert ("note: particle size distribution: log-normal fit skipped: fewer than 3 non-empty "
            "bins") in printed


def test_the_rolling_ball_envelope_needs_no_quotes():
    from napari_corrtomo.cli import build_parser

    for typed in ("rolling-ball", "rolling_ball", "rolling ball"):
        args = build_parser().parse_args(["quantify", "l.tif", "--phase", "1", "--out", "q",
                                          "--envelope", typed])
        assert args.envelope == "rolling ball"


def _files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_overwrite_replaces_the_earlier_runs_files_and_keeps_the_users(label_file, tmp_path,
                                                                      capsys):
    """--overwrite leaves exactly this run's outputs (an earlier run's particles.csv,
    size distributions and volumes went stale beside the new summary.csv), and a file
    the user put into the folder survives."""
    path, lab = label_file
    out = tmp_path / "q"
    base = ["quantify", str(path), "--phase", str(PORE), "--matrix", str(SOLID), "--outside",
            str(RESIN), "--out", str(out)]
    assert main([*base, "--measures", "porosity,thickness,particles", "--save-volumes"]) == 0
    first = _files(out)
    assert {"particles.csv", "phase_size_distribution.csv",
            "phase_local_thickness.tif"} <= set(first)
    (out / "my_notes.txt").write_text("mine")
    assert main([*base, "--measures", "porosity", "--overwrite"]) == 0
    text = capsys.readouterr().out
    assert "removed" in text and "particles.csv" in text
    # a fresh run of the same settings writes exactly the files left
    fresh = tmp_path / "fresh"
    assert main([*base[:-1], str(fresh), "--measures", "porosity"]) == 0
    assert _files(out) == sorted([*_files(fresh), "my_notes.txt"])
    assert (out / "my_notes.txt").read_text() == "mine"
    assert not list(out.glob("*lock*"))


def test_overwrite_removes_the_earlier_runs_zarr_volumes(label_file, tmp_path, capsys):
    path, lab = label_file
    store = io.write_ome_zarr(tmp_path / "labels.ome.zarr", lab, (0.2, 0.2, 0.2), "um",
                              "labels")
    out = tmp_path / "q"
    assert main(["quantify", str(store), "--phase", str(PORE), "--measures",
                 "porosity,thickness", "--out", str(out)]) == 0
    assert list((out / "volumes").glob("*.ome.zarr"))
    assert main(["quantify", str(path), "--phase", str(PORE), "--measures", "porosity",
                 "--out", str(out), "--overwrite"]) == 0
    assert not (out / "volumes").exists()
    assert all("/" not in f for f in _files(out))


def test_an_image_given_as_labels_is_named_with_what_to_give(tmp_path, capsys):
    """"labels must hold integer labels, got dtype float32" named neither the file nor
    the likely slip (the image given instead of its segmentation)."""
    img = np.random.default_rng(0).random((8, 16, 16)).astype(np.float32)
    path = io.write_tiff(tmp_path / "image.tif", img, (0.2, 0.2, 0.2), "um")
    out = tmp_path / "q"
    assert main(["quantify", str(path), "--phase", "1", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"corrtomo quantify: error: {path} holds float32 grey values (")
    assert ("not integer labels: it may be the image. Give its segmentation (a label volume, "
            "e.g. from corrtomo classify) as the labels argument, and the image as "
            "--intensity") in err
    assert not out.exists()


def test_a_depth_error_names_the_option_and_unit(label_file, tmp_path, capsys):
    path, _ = label_file
    out = tmp_path / "q"
    assert main(["quantify", str(path), "--phase", str(PORE), "--measures",
                 "geodesic_tortuosity", "--depths", "100", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "--depths 100 um do not fit along axis 0: with a voxel of 0.2 um" in err
    assert "depths must lie between 0.2 and 5.8 um" in err
    assert not out.exists()


def test_the_help_gives_the_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["quantify", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for phrase in ("curvature-corrected (default 1;", "are dropped (default 0: none)",
                   "spherical mask; default)", "equivalent-sphere radius (default 1.5)",
                   "air and resin; default: none)",
                   "(default: porosity, thickness, particles, closed_pores, surface, "
                   "proxigram (with --intensity);"):
        assert phrase in text


@pytest.mark.parametrize("option, values", [("--phase", ("3", "2")), ("--out", ("a", "b")),
                                            ("--smooth", ("1", "2"))])
def test_a_single_valued_option_given_twice_is_refused(tmp_path, capsys, option, values):
    """"--phase 3 --phase 2" took the last one without a word."""
    args = {"--phase": ["--phase", "1"], "--out": ["--out", str(tmp_path / "q")]}
    args.pop(option, None)
    with pytest.raises(SystemExit) as exc:
        main(["quantify", "labels.tif", *sum(args.values(), []),
              *(v for value in values for v in (option, value))])
    assert exc.value.code == 2
    assert f"corrtomo quantify: error: {option} is given twice; give it once" in (
        capsys.readouterr().err)
    assert not list(tmp_path.iterdir())


def test_phase_names_from_the_command_line_name_the_table_rows(tmp_path, capsys):
    """``--phase-name LABEL NAME`` (repeated) names the rows of phase_fractions.csv."""
    lab = np.full((10, 12, 14), RESIN, np.uint8)
    lab[:4] = SOLID
    lab[:2, :3] = PORE
    path = io.write_tiff(tmp_path / "labels.tif", lab, (1.0,) * 3, "um", "labels")
    out = tmp_path / "q"
    code = main(["quantify", str(path), "--phase", str(PORE), "--measures", "porosity",
                 "--phase-name", str(RESIN), "resin", "--phase-name", str(PORE), "macropore",
                 "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    names = pd.read_csv(out / "phase_fractions.csv").set_index("label")["name"].to_dict()
    assert names == {RESIN: "resin", SOLID: str(SOLID), PORE: "macropore"}


def test_unit_pixel_measures_in_voxels(tmp_path, capsys):
    """A file without a voxel size once refused --spacing 1 --unit pixel with "give the
    unit with --unit"; --unit pixel now measures in voxels (with or without --spacing)."""
    lab = np.zeros((8, 8, 8), np.uint8)
    lab[:, :, :4] = 1
    tifffile.imwrite(tmp_path / "bare.tif", lab)
    for extra, out in ((["--spacing", "1"], "a"), ([], "b")):
        assert main(["quantify", str(tmp_path / "bare.tif"), "--phase", "1", "--measures",
                     "porosity", "--unit", "pixel", *extra, "--out", str(tmp_path / out)]) == 0
        fr = pd.read_csv(tmp_path / out / "phase_fractions.csv")
        assert fr["volume_pixel3"].sum() == pytest.approx(lab.size)
    capsys.readouterr()
    assert main(["quantify", str(tmp_path / "bare.tif"), "--phase", "1",
                 "--out", str(tmp_path / "c")]) == 1
    assert "or --unit pixel to measure in voxels" in capsys.readouterr().err
    # a file with a voxel size: --unit pixel alone would drop it silently
    io.write_tiff(tmp_path / "um.tif", lab, 1, "um", "labels")
    assert main(["quantify", str(tmp_path / "um.tif"), "--phase", "1", "--unit", "pixel",
                 "--out", str(tmp_path / "d")]) == 1
    assert "records voxels of 1 x 1 x 1 um" in capsys.readouterr().err


def test_a_spacing_far_off_the_files_voxel_size_is_warned_with_both(label_file, tmp_path,
                                                                   capsys):
    """--spacing 1000 on a file of 0.2 um voxels (nm meant) once ran silently."""
    path, _ = label_file
    args = ["quantify", str(path), "--phase", str(PORE), "--measures", "porosity"]
    assert main([*args, "--spacing", "1000", "--out", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert ("warning: --spacing 1000 um is 5,000 times the voxel size" in err
            and "(0.2 x 0.2 x 0.2 um)" in err)
    # the same size in another unit, or a correction within 100x: no warning
    assert main([*args, "--spacing", "200", "--unit", "nm", "--out", str(tmp_path / "b")]) == 0
    assert main([*args, "--spacing", "0.25", "--out", str(tmp_path / "c")]) == 0
    assert "warning" not in capsys.readouterr().err


def test_a_2d_label_file_is_refused_in_the_users_words(tmp_path, capsys):
    io.write_tiff(tmp_path / "slice.tif", np.ones((16, 16), np.uint8), 1, "um", "labels")
    assert main(["quantify", str(tmp_path / "slice.tif"), "--phase", "1",
                 "--out", str(tmp_path / "q")]) == 1
    err = capsys.readouterr().err
    assert "slice.tif is 2D (16 x 16); quantify measures 3D label volumes" in err
