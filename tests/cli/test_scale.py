"""``corrtomo classify/quantify`` on clusters: --workers/--scheduler/--memory-limit, zarr outputs
written chunk by chunk and resumed after an interruption, clear failures."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from napari_corrtomo.cli import main
from napari_corrtomo.core import io, resumable, synthetic
from napari_corrtomo.core.classify import PixelClassifier
from napari_corrtomo.core.classify.features import FeatureSpec, FilterItem
from napari_corrtomo.core.quantify import QuantifySettings, quantify
from napari_corrtomo.core.synthetic import leveled_wave, paint_spheres

SP = (0.5, 0.5, 0.5)


@pytest.fixture(scope="module")
def classified(tmp_path_factory):
    """A one-channel OME-Zarr image in 16^3 chunks and a saved classifier."""
    folder = tmp_path_factory.mktemp("clf")
    truth = leveled_wave((40, 48, 48), SP, wavelength=8.0, solid_fraction=0.4, seed=2)
    img = (truth + np.random.default_rng(0).normal(0, 0.3, truth.shape)).astype(np.float32)
    scr = np.zeros(truth.shape, np.uint8)
    scr[::6, ::4, ::4] = truth[::6, ::4, ::4] + 1
    spec = FeatureSpec((FilterItem("gaussian", 0.7), FilterItem("hessian", 0.7)))
    clf = PixelClassifier(spec, n_trees=8).fit(img, scr, SP, "um")
    path = clf.save(folder / "clf.corrclf.npz")
    zimg = io.write_ome_zarr(folder / "img.ome.zarr", img, SP, "um", chunks=16)
    return clf, path, img, zimg


@pytest.fixture(scope="module")
def label_zarr(tmp_path_factory):
    rng = np.random.default_rng(3)
    lab = np.ones((36, 40, 44), np.uint8)
    centres = rng.uniform(0, 20, (10, 3))
    paint_spheres(lab, centres, rng.uniform(2.0, 4.0, 10), 2, SP)
    paint_spheres(lab, centres, rng.uniform(0.6, 1.4, 10), 3, SP, only=2)
    folder = tmp_path_factory.mktemp("lab")
    return lab, io.write_ome_zarr(folder / "lab.ome.zarr", lab, SP, "um", "labels", chunks=18)


def _classify_args(path, zimg, out):
    return ["classify", str(zimg), "--classifier", str(path), "--out", str(out)]


def test_classify_on_a_local_cluster_equals_in_memory(classified, tmp_path):
    clf, path, img, zimg = classified
    out = tmp_path / "seg.ome.zarr"
    assert main([*_classify_args(path, zimg, out), "--workers", "2", "--memory-limit", "1GB",
                 "--uncertainty", str(tmp_path / "unc.ome.zarr")]) == 0
    vol = io.read_volumes(out)[0]
    assert type(vol.array).__module__.startswith("dask")  # read back lazily
    np.testing.assert_array_equal(np.asarray(vol.array), clf.predict(img))
    unc = np.asarray(io.read_volumes(tmp_path / "unc.ome.zarr")[0].array)
    np.testing.assert_allclose(unc, clf.uncertainty(img), atol=1e-6)
    assert io.run_record(out)["complete"]


def test_classify_resumes_after_an_interruption(classified, tmp_path, monkeypatch):
    clf, path, img, zimg = classified
    out = tmp_path / "seg.ome.zarr"
    real = resumable._write_chunk
    written = []

    def lost_after_five(*args):
        if len(written) >= 5:
            raise RuntimeError("worker lost")
        written.append(args[2])
        return real(*args)

    monkeypatch.setattr(resumable, "_write_chunk", lost_after_five)
    with pytest.raises(RuntimeError, match="worker lost"):
        main(_classify_args(path, zimg, out))
    done = {p.name for p in (out / ".corrtomo-done").iterdir()}
    assert len(done) == len(written) == 5 and not io.run_record(out)["complete"]

    second = []

    def counting(*args):
        second.append(args[2])
        return real(*args)

    monkeypatch.setattr(resumable, "_write_chunk", counting)
    assert main(_classify_args(path, zimg, out)) == 0
    grid = 3 * 3 * 3  # 16^3 chunks of (40, 48, 48)
    assert len(second) == grid - len(done)  # only the chunks not written before
    assert not {str(r) for r in second} & {str(r) for r in written}
    np.testing.assert_array_equal(np.asarray(io.read_volumes(out)[0].array), clf.predict(img))
    # a finished run is not recomputed
    second.clear()
    assert main(_classify_args(path, zimg, out)) == 0
    assert second == []


def test_quantify_on_a_local_cluster_equals_in_memory_and_resumes(label_zarr, tmp_path,
                                                                 monkeypatch):
    lab, path = label_zarr
    out = tmp_path / "q"
    measures = "porosity,thickness,closed_pores"
    args = ["quantify", str(path), "--out", str(out), "--phase", "3", "--matrix", "2",
            "--outside", "1", "--measures", measures]
    assert main([*args, "--workers", "2", "--memory-limit", "1GB"]) == 0
    ref = quantify(lab, SP, "um", measures=measures.split(","),
                   settings=QuantifySettings(phase=3, matrix=2, outside=(1,))).summary()
    got = pd.read_csv(out / "summary.csv")
    assert list(got["quantity"]) == list(ref["quantity"])
    np.testing.assert_allclose(got["value"].astype(float), ref["value"].astype(float), rtol=1e-7)
    lt = io.read_volumes(out / "volumes" / "phase_local_thickness.ome.zarr")[0]
    assert lt.scale == pytest.approx(SP) and lt.units == ("um",) * 3
    # a rerun (here without a cluster) reuses every finished store: no chunk is written
    monkeypatch.setattr(resumable, "_write_chunk", lambda *a: pytest.fail("chunk recomputed"))
    assert main(args) == 0
    pd.testing.assert_frame_equal(pd.read_csv(out / "summary.csv"), got)


@pytest.mark.parametrize("command", ["classify", "quantify"])
def test_unreachable_scheduler_fails_fast(command, classified, label_zarr, tmp_path, capsys):
    _, path, _, zimg = classified
    args = (_classify_args(path, zimg, tmp_path / "s.ome.zarr") if command == "classify" else
            ["quantify", str(label_zarr[1]), "--out", str(tmp_path / "q"), "--phase", "3"])
    start = time.monotonic()
    assert main([*args, "--scheduler", "tcp://127.0.0.1:1", "--scheduler-timeout", "2"]) == 1
    assert time.monotonic() - start < 20
    err = capsys.readouterr().err
    assert "cannot reach the dask scheduler at 'tcp://127.0.0.1:1'" in err


def test_bad_cluster_options(classified, tmp_path, capsys):
    _, path, _, zimg = classified
    base = _classify_args(path, zimg, tmp_path / "s.ome.zarr")
    assert main([*base, "--workers", "0"]) == 1
    assert "workers must be at least 1" in capsys.readouterr().err
    assert main([*base, "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"]) == 1
    assert "not both" in capsys.readouterr().err
    # a size is read when the command line is (exit 2 as for any bad option), with or
    # without a cluster to start
    for workers in (["--workers", "1"], []):
        with pytest.raises(SystemExit) as exited:
            main([*base, *workers, "--memory-limit", "lots"])
        assert exited.value.code == 2
        assert "cannot read a memory size from 'lots'" in capsys.readouterr().err


def test_reconstruct_on_workers_writes_slabs(tmp_path, capsys):
    s = synthetic.projections("parallel", seed=0, volume_shape=(16, 64, 64), det_shape=(16, 64),
                              photons=None)
    io.write_tiff(tmp_path / "proj.tif", s.projections, (1.0, 1.0, 1.0), s.unit)
    s.geometry.save(tmp_path / "g.json")
    base = ["reconstruct", str(tmp_path / "proj.tif"), "--geometry", str(tmp_path / "g.json")]
    assert main([*base, "--out", str(tmp_path / "ref.tif"), "--backend", "numpy",
                 "--fsc", str(tmp_path / "ref_fsc.csv")]) == 0
    out = tmp_path / "vol.ome.zarr"
    assert main([*base, "--out", str(out), "--backend", "numpy", "--workers", "2", "--slab", "4",
                 "--memory-limit", "1GB", "--fsc", str(tmp_path / "fsc.csv")]) == 0
    # the half maps come from the same prepared scan as on one machine
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "fsc.csv"),
                                  pd.read_csv(tmp_path / "ref_fsc.csv"))
    vol = io.read_volumes(out)[0]
    ref = io.read_volumes(tmp_path / "ref.tif")[0]
    np.testing.assert_allclose(np.asarray(vol.array), ref.array, rtol=1e-6, atol=1e-7)
    assert vol.scale == pytest.approx(ref.scale) and vol.units == ref.units
    assert main([*base, "--out", str(tmp_path / "v2.ome.zarr"), "--method", "sirt",
                 "--workers", "2"]) == 1
    assert "FBP" in capsys.readouterr().err
