"""The Classify widget in a real viewer: live training, volume prediction, files, errors."""

from __future__ import annotations

import numpy as np
import pytest

from napari_corrtomo.core.classify import PixelClassifier, weighted_error
from napari_corrtomo.core.classify.features import FeatureSpec, FilterItem
from napari_corrtomo.core.synthetic import scribbles_from_truth
from napari_corrtomo.core.threshold import otsu_segment
from napari_corrtomo.widgets.classify import ClassifyWidget


@pytest.fixture(scope="module")
def crop(fib_sample):
    img = fib_sample.image[:, 8:24, 16:72, 40:96].copy()
    truth = fib_sample.labels.data[8:24, 16:72, 40:96].copy()
    scr = scribbles_from_truth(truth, slices=(3, 11), strokes_per_class=4, seed=2)
    return img, truth, scr, fib_sample.labels.scale


@pytest.fixture
def widget(make_napari_viewer, crop):
    img, truth, scr, sp = crop
    viewer = make_napari_viewer()
    viewer.add_image(img[0], name="SE2", scale=sp, units="nm")
    viewer.add_image(img[1], name="InLens", scale=sp, units="nm")
    w = ClassifyWidget(viewer)
    w.set_channels(["SE2", "InLens"])
    # a small, fast feature set
    w.set_feature_spec(FeatureSpec(tuple(FilterItem(n, s) for n in ("gaussian", "ggm", "hessian")
                                         for s in (0.7, 1.6))))
    w.n_trees.setValue(20)
    return viewer, w


def _wait(qtbot, w, timeout=60000):
    qtbot.waitUntil(lambda: not w.runner.busy, timeout=timeout)


def _wait_refused(qtbot, w):
    """A refused training: the runner is idle and Live training switched itself off."""
    qtbot.waitUntil(lambda: not w.runner.busy and not w.train_button.isChecked(), timeout=60000)


def test_live_training_then_volume_prediction(widget, crop, qtbot, tmp_path):
    viewer, w = widget
    img, truth, scr, sp = crop
    layer = w.create_scribble_layer()
    assert layer.data.shape == truth.shape and tuple(layer.scale) == tuple(sp)
    layer.data = scr
    viewer.dims.set_point(0, 11 * sp[0])
    w.train_button.setChecked(True)
    _wait(qtbot, w)
    assert w.classifier is not None and w.classifier.fitted
    assert w.classifier.channel_names == ["SE2", "InLens"]
    live = viewer.layers["SE2 scribbles live prediction"]
    assert w.live_z == 11
    pred11 = np.asarray(live.data[11])
    assert set(np.unique(pred11)) <= {1, 2, 3} and np.all(np.asarray(live.data[0]) == 0)
    # painting schedules an update of the visible slice
    viewer.dims.set_point(0, 5 * sp[0])
    qtbot.waitUntil(lambda: np.any(np.asarray(live.data[5]) > 0), timeout=30000)
    assert w.importances.frame.shape[0] > 0

    w.predict_volume()
    _wait(qtbot, w)
    seg = viewer.layers["SE2 segmentation"].data
    assert seg.shape == truth.shape
    assert weighted_error(truth, seg) < weighted_error(truth, otsu_segment(img[0], mask=truth > 0))
    for c in (1, 2, 3):
        p = viewer.layers[f"SE2 probability {c}"].data
        assert p.shape == truth.shape and p.min() >= 0 and p.max() <= 1
    unc = viewer.layers["SE2 uncertainty"].data
    assert unc.shape == truth.shape
    assert tuple(viewer.layers["SE2 segmentation"].scale) == tuple(sp)

    # save, load, apply to another (flipped) layer pair
    path = tmp_path / "clf.corrclf.npz"
    w.save_classifier(str(path))
    w.train_button.setChecked(False)
    loaded = w.load_classifier(str(path))
    assert isinstance(loaded, PixelClassifier) and w.n_trees.value() == 20
    viewer.add_image(img[0, :, ::-1].copy(), name="SE2 flipped", scale=sp, units="nm")
    viewer.add_image(img[1, :, ::-1].copy(), name="InLens flipped", scale=sp, units="nm")
    w.set_channels(["SE2 flipped", "InLens flipped"])
    w.predict_volume()
    _wait(qtbot, w)
    flipped = viewer.layers["SE2 flipped segmentation"].data
    assert weighted_error(truth[:, ::-1], flipped) < 25.0


def test_bad_input_notifies_and_adds_nothing(widget, crop, qtbot):
    viewer, w = widget
    img, truth, scr, sp = crop
    layer = w.create_scribble_layer()
    n_layers = len(viewer.layers)
    # no labels
    w.train_button.setChecked(True)
    _wait_refused(qtbot, w)
    assert "no labelled voxels" in str(w.runner.last_error)
    assert not w.train_button.isChecked() and w.classifier is None
    # a single class
    layer.data = np.where(scr == 3, 3, 0).astype(np.uint8)
    w.train_button.setChecked(True)
    _wait_refused(qtbot, w)
    assert "only class 3" in str(w.runner.last_error)
    # NaN in a channel
    layer.data = scr
    viewer.layers["SE2"].data = np.where(truth == 1, np.nan, img[0]).astype(np.float32)
    w.train_button.setChecked(True)
    _wait_refused(qtbot, w)
    assert "NaN" in str(w.runner.last_error)
    assert len(viewer.layers) == n_layers
    # train on two channels, apply to one: clear error, nothing added
    viewer.layers["SE2"].data = img[0]
    w.train_button.setChecked(True)
    _wait(qtbot, w)
    assert w.classifier is not None
    w.train_button.setChecked(False)
    n_layers = len(viewer.layers)
    w.set_channels(["SE2"])
    w.predict_volume()
    _wait(qtbot, w)
    assert "trained on 2 channel" in str(w.runner.last_error)
    assert len(viewer.layers) == n_layers
    # scribbles of the wrong shape
    bad = viewer.add_labels(np.zeros((4, 5, 6), np.uint8), name="wrong")
    bad.data[1, 1, 1] = 1
    bad.data[2, 2, 2] = 2
    w.scribbles.set_layer(bad)
    w.set_channels(["SE2", "InLens"])
    w.train_button.setChecked(True)
    _wait_refused(qtbot, w)
    assert "labels have shape" in str(w.runner.last_error)


def test_widget_cli_and_demo_give_the_same_segmentation(make_napari_viewer, qtbot, fib_sample,
                                                        tmp_path, monkeypatch):
    """One classifier (the demo's, trained on scribbles), one image, three front ends, one
    pipeline (core.classify.segment): the same labels."""
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QFileDialog

    from napari_corrtomo.cli import main
    from napari_corrtomo.core.io import read_volumes, write_tiff
    from napari_corrtomo.demo import FIB_CLASSIFY_SLICES, DemoContext, classify_fib

    ctx = DemoContext(out=tmp_path / "demo", seed=0, data={"fib": fib_sample})
    ctx.out.mkdir()
    classify_fib(ctx)
    demo = ctx.data["fib_segmentation"]
    clf_path = ctx.out / "classifier_fib.corrclf.npz"
    img = fib_sample.image[:, FIB_CLASSIFY_SLICES, fib_sample.ruler.band_rows:]
    sp = fib_sample.labels.scale
    # widget: the classifier loaded and Predict volume clicked
    viewer = make_napari_viewer()
    names = [c.metadata.get("detector", c.name) for c in fib_sample.channels]
    for name, channel in zip(names, img):
        viewer.add_image(channel, name=name, scale=sp, units="nm")
    w = ClassifyWidget(viewer)
    qtbot.addWidget(w)
    w.set_channels(names)
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(clf_path), ""))
    qtbot.mouseClick(w.load_button, Qt.MouseButton.LeftButton)
    assert w.classifier is not None and w.classifier.fitted
    qtbot.mouseClick(w.predict_button, Qt.MouseButton.LeftButton)
    _wait(qtbot, w, 300_000)
    assert w.runner.last_error is None, w.runner.last_error
    widget_seg = np.asarray(viewer.layers[f"{names[0]} segmentation"].data)
    widget_unc = np.asarray(viewer.layers[f"{names[0]} uncertainty"].data)
    # command line on the same channels written to files
    paths = []
    for name, channel in zip(names, img):
        paths.append(str(write_tiff(tmp_path / f"{name}.tif", channel, sp, "nm")))
    assert main(["classify", *paths, "--classifier", str(clf_path), "--out",
                 str(tmp_path / "seg.tif"), "--uncertainty", str(tmp_path / "unc.tif")]) == 0
    [cli] = read_volumes(tmp_path / "seg.tif")
    [cli_unc] = read_volumes(tmp_path / "unc.tif")

    np.testing.assert_array_equal(widget_seg, demo)
    np.testing.assert_array_equal(widget_seg, cli.data)
    np.testing.assert_array_equal(widget_unc, cli_unc.data)
    assert len(np.unique(demo)) == 3  # three phases found, not a constant
