"""No ``corrtomo`` run writes over its inputs, another output, a foreign folder or an
existing file the user did not ask to replace: each case is refused with one line
before any work, and every input file keeps its bytes (content digest unchanged)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_corrtomo.cli import main
from napari_corrtomo.core import io
from napari_corrtomo.core import register as reg
from napari_corrtomo.core import synthetic as syn
from napari_corrtomo.core.classify import PixelClassifier
from napari_corrtomo.core.classify.features import FeatureSpec, FilterItem
from napari_corrtomo.core.resumable import content_digest


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """One small input set per command, written once."""
    d = tmp_path_factory.mktemp("outputs")
    rng = np.random.default_rng(0)
    img = rng.random((8, 24, 24)).astype(np.float32)
    io.write_tiff(d / "img.tif", img, (1.0, 1.0, 1.0), "um")
    io.write_tiff(d / "ch_1.tif", img, (1.0, 1.0, 1.0), "um")
    scr = np.zeros(img.shape, np.uint8)
    scr[:, :4, :4], scr[:, -4:, -4:] = 1, 2
    spec = FeatureSpec((FilterItem("gaussian", 1.0),))
    PixelClassifier(spec, n_trees=4).fit(img[None], scr, (1.0, 1.0, 1.0), "um").save(
        d / "clf.corrclf.npz")
    s = syn.projections("parallel", seed=0, volume_shape=(4, 16, 16), det_shape=(4, 16),
                        n_angles=12)
    io.write_tiff(d / "proj.tif", s.projections, (1.0, 1.0, 1.0), "um")
    s.geometry.save(d / "geom.json")
    fixed = rng.random((6, 3)) * 10
    reg.save_landmarks_csv(d / "lm.csv", reg.Landmarks(fixed, fixed + 1.0, "um"))
    lab = np.where(img > 0.5, 1, 2).astype(np.uint8)
    io.write_tiff(d / "labels.tif", lab, (1.0, 1.0, 1.0), "um", "labels")
    fibs = syn.fib_sem_stack(seed=1, n_slices=6, image_shape=(48, 80))
    io.write_tiff(d / "se2.tif", fibs.channels[0].data, fibs.channels[0].scale, "nm")
    io.write_table(d / "t.csv", {"slice": np.arange(6), "thickness_nm": fibs.thickness_nm})
    return d


def _digests(d):
    return {p.name: content_digest(p) for p in sorted(d.iterdir()) if p.is_file()}


def _refused(args, capsys, *words):
    capsys.readouterr()
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error:" in err, err
    for w in words:
        assert w in err, err
    return err


@pytest.mark.parametrize("case", [
    ["classify", "{d}/img.tif", "--classifier", "{d}/clf.corrclf.npz", "--out", "{d}/img.tif"],
    ["classify", "{d}/img.tif", "--classifier", "{d}/clf.corrclf.npz", "--out", "{o}/s.tif",
     "--uncertainty", "{d}/clf.corrclf.npz"],
    ["classify", "{d}/ch_1.tif", "--classifier", "{d}/clf.corrclf.npz", "--out", "{o}/s.tif",
     "--probabilities", "{d}/ch.tif"],  # probability of class 1 -> ch_1.tif
    ["fib", "{d}/se2.tif", "--thickness", "{d}/t.csv", "--out", "{d}/se2.tif"],
    ["fib", "{d}/se2.tif", "--thickness", "{d}/t.csv", "--out", "{o}/f.tif",
     "--thickness-out", "{d}/t.csv"],
    ["register", "{d}/lm.csv", "--out", "{o}/t.json", "--residuals", "{d}/lm.csv"],
    ["register", "{d}/lm.csv", "--out", "{d}/lm.csv"],
    ["reconstruct", "{d}/proj.tif", "--geometry", "{d}/geom.json", "--out", "{o}/v.tif",
     "--save-geometry", "{d}/geom.json"],
    ["reconstruct", "{d}/proj.tif", "--geometry", "{d}/geom.json", "--out", "{d}/proj.tif"],
    ["quantify", "{d}/labels.tif", "--phase", "1", "--out", "{d}"],
], ids=["classify-out", "classify-uncertainty", "classify-probabilities", "fib-out",
        "fib-thickness-out", "register-residuals", "register-out", "reconstruct-geometry",
        "reconstruct-out", "quantify-folder-holds-input"])
def test_an_output_naming_an_input_is_refused(files, tmp_path, capsys, case):
    before = _digests(files)
    args = [a.format(d=files, o=tmp_path) for a in case]
    for flag in ("", "--overwrite"):  # asking to overwrite never makes an input writable
        err = _refused(args + ([flag] if flag else []), capsys, "input")
        assert "choose" in err
    assert _digests(files) == before
    assert not any(tmp_path.iterdir())  # nothing was written before the refusal


def test_two_outputs_naming_one_file_are_refused(files, tmp_path, capsys):
    _refused(["register", str(files / "lm.csv"), "--out", str(tmp_path / "t.json"),
              "--out", str(tmp_path / "t.json")], capsys, "both name")


def test_existing_file_is_replaced_only_when_asked(files, tmp_path, capsys):
    """Reconstructing twice to one TIFF: the second run is refused, then --overwrite."""
    base = ["reconstruct", str(files / "proj.tif"), "--geometry", str(files / "geom.json"),
            "--shape", "4", "16", "16", "--out", str(tmp_path / "v.tif")]
    assert main(base) == 0
    first = content_digest(tmp_path / "v.tif")
    (tmp_path / "v.tif").write_bytes(b"the user's own edits")
    _refused(base, capsys, "exists", "--overwrite")
    assert (tmp_path / "v.tif").read_bytes() == b"the user's own edits"
    assert main([*base, "--overwrite"]) == 0
    assert content_digest(tmp_path / "v.tif") == first


@pytest.mark.parametrize("case", [
    ["classify", "{d}/img.tif", "--classifier", "{d}/clf.corrclf.npz", "--out", "{o}/s.png"],
    ["classify", "{d}/img.tif", "--classifier", "{d}/clf.corrclf.npz", "--out", "{o}/s.tif",
     "--uncertainty", "{o}/u.png"],
    ["reconstruct", "{d}/proj.tif", "--geometry", "{d}/geom.json", "--out", "{o}/v.png"],
    ["fib", "{d}/se2.tif", "--thickness", "{d}/t.csv", "--out", "{o}/f.jpg"],
    ["register", "{d}/lm.csv", "--out", "{o}/t.json", "--fixed", "{d}/img.tif", "--moving",
     "{d}/img.tif", "--resampled", "{o}/r.png"],
], ids=["classify-out", "classify-uncertainty", "reconstruct-out", "fib-out",
        "register-resampled"])
def test_a_volume_output_in_no_volume_format_is_refused_before_the_work(files, tmp_path,
                                                                         capsys, case):
    """A .png volume was refused only after the whole run (and register had written its
    transform by then): now before anything, naming the option."""
    args = [a.format(d=files, o=tmp_path) for a in case]
    option = args[args.index(next(a for a in args if a.endswith((".png", ".jpg")))) - 1]
    _refused(args, capsys, f"error: {option} ", "write volumes as .tif or .ome.zarr")
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("command", ["reconstruct", "classify"])
def test_a_foreign_folder_is_never_replaced_by_a_store(files, tmp_path, command, capsys):
    folder = tmp_path / "x.ome.zarr"
    folder.mkdir()
    (folder / "thesis.txt").write_text("years of work")
    args = {"reconstruct": ["reconstruct", str(files / "proj.tif"), "--geometry",
                            str(files / "geom.json"), "--shape", "4", "16", "16"],
            "classify": ["classify", str(files / "img.tif"), "--classifier",
                         str(files / "clf.corrclf.npz")]}[command]
    for flag in ([], ["--overwrite"]):
        _refused([*args, "--out", str(folder), *flag], capsys, "not a zarr store")
    assert [p.name for p in folder.iterdir()] == ["thesis.txt"]
    assert (folder / "thesis.txt").read_text() == "years of work"


def test_quantify_folder_rules(files, tmp_path, capsys):
    """A foreign summary.csv is never replaced; a rerun of the same run is; another run's
    results need --overwrite."""
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "summary.csv").write_text("my,own\n1,2\n")
    base = ["quantify", str(files / "labels.tif"), "--phase", "1", "--measures", "porosity"]
    for flag in ([], ["--overwrite"]):
        _refused([*base, "--out", str(foreign), *flag], capsys, "did not write")
    assert (foreign / "summary.csv").read_text() == "my,own\n1,2\n"

    out = tmp_path / "q"
    assert main([*base, "--out", str(out)]) == 0
    summary = (out / "summary.csv").read_text()
    assert main([*base, "--out", str(out)]) == 0  # same run again: same files
    assert (out / "summary.csv").read_text() == summary
    _refused([*base[:3], "2", *base[4:], "--out", str(out)], capsys, "another", "--overwrite")
    assert (out / "summary.csv").read_text() == summary
    assert main([*base[:3], "2", *base[4:], "--out", str(out), "--overwrite"]) == 0
    assert (out / "summary.csv").read_text() != summary


def test_demo_refuses_a_foreign_folder(tmp_path, capsys):
    (tmp_path / "notes.md").write_text("keep me")
    _refused(["demo", "--out", str(tmp_path)], capsys, "did not write")
    assert (tmp_path / "notes.md").read_text() == "keep me"


def test_a_results_folder_that_cannot_be_made_is_one_line(files, tmp_path, capsys):
    """A results folder under a file (or on a read-only disk) is refused naming it, not
    with the operating system's bare error number."""
    (tmp_path / "notes.md").write_text("keep me")
    _refused(["quantify", str(files / "labels.tif"), "--phase", "1", "--out",
              str(tmp_path / "notes.md" / "results")], capsys,
             f"cannot write the results folder {tmp_path / 'notes.md' / 'results'}: ",
             "choose a folder you can write to")
    assert (tmp_path / "notes.md").read_text() == "keep me"


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_a_store_another_program_wrote_is_never_replaced(files, tmp_path, capsys, zarr_format):
    """An existing OME-Zarr the run did not write (here the zarr library's) was replaced
    without a word by every command writing its result whole: now refused, even with
    --overwrite, and its bytes are kept."""
    import zarr

    store = tmp_path / "nano.ome.zarr"
    zarr.open_group(str(store), mode="w", zarr_format=zarr_format).create_array(
        "0", shape=(4, 4), dtype="f4")[:] = 7.0
    before = content_digest(store)
    cases = [["reconstruct", str(files / "proj.tif"), "--geometry", str(files / "geom.json"),
              "--shape", "4", "16", "16", "--out", str(store)],
             ["classify", str(files / "img.tif"), "--classifier", str(files / "clf.corrclf.npz"),
              "--out", str(tmp_path / "s.tif"), "--uncertainty", str(store)],
             ["fib", str(files / "se2.tif"), "--thickness", str(files / "t.csv"), "--out",
              str(store)],
             ["register", str(files / "lm.csv"), "--out", str(tmp_path / "t.json"), "--fixed",
              str(files / "img.tif"), "--moving", str(files / "img.tif"), "--resampled",
              str(store)]]
    for args in cases:
        for flag in ([], ["--overwrite"]):
            _refused([*args, *flag], capsys, "is a zarr store napari-corrtomo did not write",
                     "never replaced")
    assert content_digest(store) == before and not (tmp_path / "s.tif").exists()


def test_a_store_written_whole_is_replaced_only_when_asked(files, tmp_path, capsys):
    """Reconstructing twice to one OME-Zarr (another centre) replaced the first silently:
    now the second run is refused, then --overwrite replaces it; a resumable (blockwise)
    run replaces such a store with --overwrite (it once called it foreign), and a run
    written whole does not replace a resumable run's store without it."""
    store = tmp_path / "v.ome.zarr"
    base = ["reconstruct", str(files / "proj.tif"), "--geometry", str(files / "geom.json"),
            "--shape", "4", "16", "16", "--out", str(store)]
    assert main(base) == 0
    first = content_digest(store)
    _refused([*base, "--center", "0.5"], capsys, "exists", "--overwrite")
    assert content_digest(store) == first
    assert main([*base, "--center", "0.5", "--overwrite"]) == 0
    assert content_digest(store) != first
    # classify: whole from a TIFF, then blockwise (a zarr input) into the same store
    seg = tmp_path / "seg.ome.zarr"
    io.write_ome_zarr(tmp_path / "img.ome.zarr", np.asarray(io.read_volumes(
        files / "img.tif")[0].array), (1.0, 1.0, 1.0), "um")
    whole = ["classify", str(files / "img.tif"), "--classifier",
             str(files / "clf.corrclf.npz"), "--out", str(seg)]
    blockwise = [*whole[:1], str(tmp_path / "img.ome.zarr"), *whole[2:]]
    assert main(whole) == 0
    _refused(blockwise, capsys, "exists", "--overwrite")
    assert main([*blockwise, "--overwrite"]) == 0
    assert "signature" in io.run_record(seg)
    resumable = content_digest(seg)
    capsys.readouterr()  # refused when it would write (a run may resume such a store)
    assert main(whole) == 1
    assert f"error: {seg} exists; give --overwrite to replace it" in capsys.readouterr().err
    assert content_digest(seg) == resumable


def _interrupt_after(monkeypatch, module, name, calls):
    """Make ``module.name`` (a writer) raise KeyboardInterrupt (Ctrl+C) once it has run
    ``calls`` times: a run stopped with some of its files written."""
    real, done = getattr(module, name), []

    def writer(*args, **kwargs):
        if len(done) == calls:
            raise KeyboardInterrupt
        done.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, writer)


def _mark(folder):
    import json

    from napari_corrtomo.core.outputs import FOLDER_MARK

    return json.loads((folder / FOLDER_MARK).read_text())


def _info(folder, capsys):
    capsys.readouterr()
    assert main(["info", str(folder)]) == 0
    return capsys.readouterr().out


def _demo_steps(monkeypatch):
    """Two quick demo steps, each writing a table (the real ones take minutes)."""
    from napari_corrtomo import demo

    def table(name):
        return lambda ctx: ctx.table(name, {"a": [1, 2]})

    monkeypatch.setattr(demo, "STEPS", [("one", table("one")), ("two", table("two"))])
    return demo


@pytest.mark.parametrize("command", ["demo", "quantify"])
def test_an_interrupted_run_leaves_its_folder_marked_unfinished(files, tmp_path, capsys,
                                                               monkeypatch, command):
    """Ctrl+C in a run that writes a results folder left partial CSVs beside a mark that
    looked like a finished run's: the mark says ``complete: false`` until the run ends,
    ``corrtomo info`` and the rerun say the earlier run did not finish, and the rerun that
    ends marks it complete with the files it wrote."""
    out = tmp_path / "results"
    if command == "demo":
        args = ["demo", "--out", str(out)]
        _demo_steps(monkeypatch)
        from napari_corrtomo import demo as module
    else:
        args = ["quantify", str(files / "labels.tif"), "--phase", "1", "--measures",
                "porosity,particles", "--out", str(out)]
        module = io
    with monkeypatch.context() as m:
        _interrupt_after(m, module, "write_table", 1)
        assert main(args) == 130
    assert len(list(out.glob("*.csv"))) == 1  # the partial results stay, marked
    mark = _mark(out)
    assert mark["command"] == command and mark["complete"] is False and "outputs" not in mark
    text = _info(out, capsys)
    assert f"results of corrtomo {command}, unfinished" in text and "partial" in text

    assert main(args) == 0
    assert f"the earlier corrtomo {command} run in {out} did not finish" in \
        capsys.readouterr().err
    mark = _mark(out)
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*")
                     if p.is_file() and p.name != ".corrtomo-output.json")
    assert mark["complete"] is True and mark["outputs"] == written
    assert f"results of corrtomo {command}, complete ({len(written)} files)" in _info(out, capsys)
    assert main(args) == 0  # a finished folder's rerun says nothing of an earlier one
    assert "did not finish" not in capsys.readouterr().err


def test_a_mark_without_complete_is_read_by_its_outputs(tmp_path):
    """A folder marked before ``complete`` existed: finished when it lists its outputs."""
    import json

    from napari_corrtomo.core.outputs import FOLDER_MARK, folder_record

    (tmp_path / FOLDER_MARK).write_text(json.dumps({"command": "quantify", "settings": {}}))
    assert folder_record(tmp_path)["complete"] is False
    (tmp_path / FOLDER_MARK).write_text(json.dumps({"command": "quantify", "settings": {},
                                                    "outputs": ["summary.csv"]}))
    assert folder_record(tmp_path)["complete"] is True
    assert folder_record(tmp_path / "nothing") is None


def test_info_of_a_volume_still_describes_the_volume(files, capsys):
    assert "voxel 1 x 1 x 1 um" in _info(files / "img.tif", capsys)


@pytest.mark.parametrize("name, stem", [
    ("labels (mid-level boundary)", "labels_mid-level_boundary"),
    ("FIB-SEM SE2", "FIB-SEM_SE2"),
    ("pore/solid: 1", "pore_solid_1"),
])
def test_a_result_name_gives_a_file_name_without_quoting(name, stem):
    from napari_corrtomo.core.outputs import file_stem

    assert file_stem(name) == stem


def test_saved_volumes_have_plain_file_names(tmp_path, capsys):
    """``--save-volumes`` wrote ``labels_(mid-level_boundary).tif``: a name a shell needs
    quoted. Each volume's file name is letters, digits, ``-`` and ``_``."""
    import re

    rng = np.random.default_rng(1)
    lab = np.ones((24, 32, 32), np.uint8)
    lab[6:18, 8:24, 8:24] = 2
    img = np.where(lab == 2, 1.0, 0.0) + rng.normal(0, 0.05, lab.shape)
    lab_path = io.write_tiff(tmp_path / "labels.tif", lab, (1.0,) * 3, "um", "labels")
    img_path = io.write_tiff(tmp_path / "img.tif", img.astype(np.float32), (1.0,) * 3, "um")
    out = tmp_path / "q"
    assert main(["quantify", str(lab_path), "--phase", "1", "--matrix", "2", "--intensity",
                 str(img_path), "--mid-level", "--measures", "porosity,thickness", "--out",
                 str(out), "--save-volumes"]) == 0, capsys.readouterr().err
    names = sorted(p.name for p in out.glob("*.tif"))
    assert "labels_mid-level_boundary.tif" in names, names
    assert all(re.fullmatch(r"[\w-]+\.tif", n) for n in names), names
