"""``corrtomo classify``: a saved classifier applied to TIFF and (blockwise) OME-Zarr volumes."""

from __future__ import annotations

import numpy as np
import pytest

from napari_corrtomo.cli import main
from napari_corrtomo.core import io
from napari_corrtomo.core.classify import PixelClassifier
from napari_corrtomo.core.classify.features import FeatureSpec, FilterItem
from napari_corrtomo.core.synthetic import scribbles_from_truth


@pytest.fixture(scope="module")
def saved(fib_sample, tmp_path_factory):
    img = fib_sample.image[:, 8:24, 16:64, 40:88].copy()
    truth = fib_sample.labels.data[8:24, 16:64, 40:88].copy()
    scr = scribbles_from_truth(truth, slices=(3, 12), seed=4)
    spec = FeatureSpec(tuple(FilterItem(n, s) for n in ("gaussian", "hessian") for s in (0.7, 1.6)),
                       channel_differences=True)
    clf = PixelClassifier(spec, n_trees=16).fit(img, scr, fib_sample.labels.scale, "nm")
    path = clf.save(tmp_path_factory.mktemp("clf") / "clf.corrclf.npz")
    return clf, path, img


def test_tiff_in_tiff_out(saved, tmp_path, fib_sample):
    clf, path, img = saved
    sp = fib_sample.labels.scale
    files = [io.write_tiff(tmp_path / f"ch{c}.tif", img[c], sp, "nm") for c in range(2)]
    out = tmp_path / "seg.tif"
    assert main(["classify", *map(str, files), "--classifier", str(path), "--out", str(out),
                 "--uncertainty", str(tmp_path / "unc.tif"),
                 "--probabilities", str(tmp_path / "p.tif")]) == 0
    seg = io.read_volumes(out)[0]
    assert np.array_equal(seg.data, clf.predict(img))
    assert seg.scale == pytest.approx(sp) and seg.layer_type == "labels"
    proba = clf.predict_proba(img)
    for k, c in enumerate(clf.classes_):
        np.testing.assert_array_equal(io.read_volumes(tmp_path / f"p_{c}.tif")[0].data, proba[k])
    assert io.read_volumes(tmp_path / "unc.tif")[0].data.shape == img.shape[1:]


def test_probability_files_carry_the_class_names_given(saved, tmp_path, fib_sample, capsys):
    """``--probabilities p.tif`` wrote ``p_1.tif``...: a class named with ``--phase-name``
    gives ``p_1_pore.tif`` (the value first, so the files still sort by class); a label
    that is no class of the classifier, or names without --probabilities, are refused."""
    clf, path, img = saved
    channels = [str(io.write_tiff(tmp_path / f"ch{c}.tif", img[c], fib_sample.labels.scale,
                                  "nm")) for c in range(2)]
    first, *others = (int(c) for c in clf.classes_)
    base = ["classify", *channels, "--classifier", str(path), "--out", str(tmp_path / "seg.tif")]
    assert main([*base, "--probabilities", str(tmp_path / "p.tif"), "--phase-name",
                 str(first), "pore (open)"]) == 0
    proba = clf.predict_proba(img)
    expected = [f"p_{first}_pore_open.tif", *(f"p_{c}.tif" for c in others)]
    assert sorted(p.name for p in tmp_path.glob("p_*")) == sorted(expected)
    for k, name in enumerate(expected):
        np.testing.assert_array_equal(io.read_volumes(tmp_path / name)[0].data, proba[k])
    capsys.readouterr()
    missing = max(first, *others) + 1
    assert main([*base, "--overwrite", "--probabilities", str(tmp_path / "q.tif"),
                 "--phase-name", str(missing), "void"]) == 1
    assert (f"--phase-name {missing}: the classifier has no class {missing}"
            in capsys.readouterr().err)
    assert main([*base, "--overwrite", "--phase-name", str(first), "pore"]) == 1
    assert "give --probabilities PREFIX too" in capsys.readouterr().err
    assert not list(tmp_path.glob("q_*"))


def test_zarr_in_zarr_out_blockwise(saved, tmp_path, fib_sample):
    clf, path, img = saved
    sp = fib_sample.labels.scale
    files = [io.write_ome_zarr(tmp_path / f"ch{c}.ome.zarr", img[c], sp, "nm", chunks=16)
             for c in range(2)]
    out = tmp_path / "seg.ome.zarr"
    assert main(["classify", *map(str, files), "--classifier", str(path), "--out", str(out)]) == 0
    vol = io.read_volumes(out)[0]
    data = vol.array
    assert type(data).__module__.startswith("dask")  # written and read back lazily
    assert np.array_equal(np.asarray(data), clf.predict(img))


def test_clear_failures(saved, tmp_path, fib_sample, capsys):
    clf, path, img = saved
    one = io.write_tiff(tmp_path / "one.tif", img[0], fib_sample.labels.scale, "nm")
    assert main(["classify", str(one), "--classifier", str(path), "--out",
                 str(tmp_path / "x.tif")]) == 1
    assert "trained on 2 channel" in capsys.readouterr().err
    files = [io.write_tiff(tmp_path / f"c{c}.tif", img[c], (5, 5, 5), "nm") for c in range(2)]
    assert main(["classify", *map(str, files), "--classifier", str(path), "--out",
                 str(tmp_path / "x.tif")]) == 1
    assert "voxel size" in capsys.readouterr().err
    (tmp_path / "bad.npz").write_bytes(b"junk")
    assert main(["classify", str(one), "--classifier", str(tmp_path / "bad.npz"), "--out",
                 str(tmp_path / "x.tif")]) == 1
    assert "not a napari-corrtomo classifier" in capsys.readouterr().err
    # a channel TIFF given as the classifier was said to hold "Python objects"
    assert main(["classify", str(one), "--classifier", str(one), "--out",
                 str(tmp_path / "x.tif")]) == 1
    assert capsys.readouterr().err == (
        "corrtomo classify: error: one.tif is not a napari-corrtomo classifier; give a "
        ".corrclf.npz file saved by the Classify widget ('Save classifier') or "
        "PixelClassifier.save\n")
    # the budget is the --memory option here, not the API's environment variable
    good = [io.write_tiff(tmp_path / f"g{c}.tif", img[c], fib_sample.labels.scale, "nm")
            for c in range(2)]
    assert main(["classify", *map(str, good), "--classifier", str(path), "--memory", "1KB",
                 "--out", str(tmp_path / "x.tif")]) == 1
    err = capsys.readouterr().err
    assert "raise --memory or reduce the filter size" in err and "CORRTOMO" not in err
    assert not (tmp_path / "x.tif").exists()


def test_channels_in_another_order_than_trained_are_refused(saved, tmp_path, fib_sample,
                                                            capsys):
    """The classifier stores its channels' names: files named after them in another order
    (InLens first, SE2 second) gave 36.7 % instead of 4.8 % of a phase without a word."""
    clf, _, img = saved
    clf = PixelClassifier.load(clf.save(tmp_path / "tmp.corrclf.npz"))
    clf.channel_names = ["SE2", "InLens"]
    path = clf.save(tmp_path / "named.corrclf.npz")
    se2, inlens = (io.write_tiff(tmp_path / f"FIB-SEM_{n}.tif", img[c], fib_sample.labels.scale,
                                 "nm") for c, n in enumerate(("SE2", "InLens")))
    out = tmp_path / "seg.tif"
    assert main(["classify", str(inlens), str(se2), "--classifier", str(path), "--out",
                 str(out)]) == 1
    assert capsys.readouterr().err == (
        "corrtomo classify: error: the classifier was trained on the channels SE2, InLens, in "
        "this order, but the channels given look like InLens (FIB-SEM_InLens.tif), SE2 "
        "(FIB-SEM_SE2.tif); give the input files in the training order: FIB-SEM_SE2.tif "
        "FIB-SEM_InLens.tif\n")
    assert not out.exists() and not list(tmp_path.glob("seg.tif*"))
    assert main(["classify", str(se2), str(inlens), "--classifier", str(path), "--out",
                 str(out)]) == 0


def test_channels_swapped_under_names_that_say_nothing_are_refused(saved, tmp_path, fib_sample,
                                                                  capsys):
    """The SE2 and InLens files copied to ch0.tif and ch1.tif and given as ch1.tif ch0.tif:
    the names say nothing, the training intensities do (19.2 % of the voxels changed class
    without a word)."""
    clf, _, img = saved
    clf = PixelClassifier.load(clf.save(tmp_path / "tmp.corrclf.npz"))
    clf.channel_names = ["SE2", "InLens"]
    path = clf.save(tmp_path / "named.corrclf.npz")
    ch0, ch1 = (io.write_tiff(tmp_path / f"ch{c}.tif", fib_sample.image[c],
                              fib_sample.labels.scale, "nm") for c in range(2))
    out = tmp_path / "seg.tif"
    assert main(["classify", str(ch1), str(ch0), "--classifier", str(path), "--out",
                 str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("corrtomo classify: error: the channels given (ch1.tif, ch0.tif) do "
                          "not look like the channels the classifier was trained on (SE2, "
                          "InLens, in this order)")
    assert err.endswith("with ch0.tif as SE2, ch1.tif as InLens; give the input files in the "
                        "training order: ch0.tif ch1.tif\n")
    assert not out.exists() and not list(tmp_path.glob("seg.tif*"))
    assert main(["classify", str(ch0), str(ch1), "--classifier", str(path), "--out",
                 str(out)]) == 0
    assert "error" not in capsys.readouterr().err and out.exists()


def test_a_channel_far_off_the_training_intensities_is_warned(saved, tmp_path, fib_sample,
                                                             capsys):
    """InLens saved as 8-bit-like values (x255): the run goes on, and says which channel is
    off the intensities the classifier was trained on."""
    clf, _, img = saved
    path = clf.save(tmp_path / "c.corrclf.npz")
    ch0 = io.write_tiff(tmp_path / "ch0.tif", fib_sample.image[0], fib_sample.labels.scale, "nm")
    ch1 = io.write_tiff(tmp_path / "ch1.tif", fib_sample.image[1] * 255.0,
                        fib_sample.labels.scale, "nm")
    assert main(["classify", str(ch0), str(ch1), "--classifier", str(path), "--out",
                 str(tmp_path / "seg.tif")]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines()
              if line.startswith("warning:")]
    assert len(warned) == 1 and "ch1.tif" in warned[0], warned


def test_channel_names_that_say_nothing_pass():
    from napari_corrtomo.core.classify.pipeline import check_channel_order

    check_channel_order(["ch0", "ch1"], ["a.tif", "b.tif"])
    check_channel_order(["SE", "SE2"], ["x_SE.tif", "x_SE2.tif"])  # SE2 holds SE
    with pytest.raises(ValueError, match="trained on the channels SE, SE2"):
        check_channel_order(["SE", "SE2"], ["x_SE2.tif", "x_SE.tif"])
    check_channel_order(["SE2", "InLens"], ["SE2_and_InLens.tif", "other.tif"])
