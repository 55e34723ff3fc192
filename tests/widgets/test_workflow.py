"""Every step of the correlative workflow without its prerequisite names what is missing
(the workflow itself, clicked through as a user does: test_tutorial.py)."""

from __future__ import annotations

import numpy as np

from napari_corrtomo.widgets.classify import ClassifyWidget
from napari_corrtomo.widgets.project import ProjectWidget
from napari_corrtomo.widgets.quantify import QuantifyWidget
from napari_corrtomo.widgets.reconstruct import ReconstructWidget
from napari_corrtomo.widgets.register import RegisterWidget


def test_every_step_without_its_prerequisite_names_what_is_missing(make_napari_viewer, qtbot,
                                                                   errors, tmp_path):
    viewer = make_napari_viewer()
    rw, gw, cw, qw, pw = (ReconstructWidget(viewer), RegisterWidget(viewer),
                          ClassifyWidget(viewer), QuantifyWidget(viewer), ProjectWidget(viewer))

    def expect(action, *words):
        errors.clear()
        action()
        assert len(errors) == 1, errors
        for word in words:
            assert word in errors[0], (word, errors[0])
        assert len(viewer.layers) == n_layers  # nothing was added

    # an empty viewer: every step names the layer it needs
    n_layers = 0
    for button in (rw.run_button, rw.preview_button, rw.fsc_button, rw.find_button):
        expect(button.click, "no projection layer", "Image layer")
    expect(gw.new_points_button.click, "no fixed image", "Image layer")
    gw.runner.refuse("an earlier refusal")
    expect(gw.fit_button.click, "landmark Points layers")
    assert gw.runner.status.text() == f"Not started: {errors[0]}"  # not the earlier one
    expect(gw.apply_button.click, "no fixed image", "Image layer")
    for button in (gw.resample_button, gw.refine_button):
        expect(button.click, "no transform", "fit landmarks")
    expect(gw.roi_button.click, "no volume to crop from", "Image layer")
    expect(gw.fov_button.click, "no reference volume", "Image layer")
    expect(cw.new_scribbles.click, "no channel chosen", "image layer")
    expect(lambda: cw.train_button.setChecked(True), "no channel chosen")
    assert not cw.train_button.isChecked()
    expect(cw.predict_button.click, "no classifier", "train one")
    expect(qw.run_button.click, "no segmentation chosen", "Labels layer")
    expect(lambda: pw.save(tmp_path / "p"), "Nothing to save")
    assert pw.runner.status.text() == f"Not started: {errors[0]}"  # the panel says so too

    # one volume, but still not what the next step needs
    rng = np.random.default_rng(0)
    viewer.add_image(rng.random((8, 16, 16)).astype(np.float32), name="vol", scale=(0.5,) * 3,
                     units=("um",) * 3)
    n_layers = 1
    expect(gw.new_points_button.click, "same layer")  # fixed and moving would both be "vol"
    expect(lambda: cw.train_button.setChecked(True), "no scribble layer", "New scribble layer")
    expect(gw.roi_button.click, "no Shapes layer with a box", "Shapes layer")
    viewer.add_labels(rng.integers(1, 3, (8, 16, 16)).astype(np.uint8), name="seg",
                      scale=(0.5,) * 3, units=("um",) * 3)
    n_layers = 2
    # a segmentation (or a ground truth) is never taken for the strokes
    assert cw.scribbles.layer() is None
    expect(lambda: cw.train_button.setChecked(True), "no scribble layer")
    qw.labels_select.set_layer(viewer.layers["seg"])
    for key, cb in qw.checks.items():
        cb.setChecked(key == "proxigram")
    qw.intensity_select.setCurrentIndex(qw.intensity_select.findText(""))
    expect(qw.run_button.click, "needs an intensity image")
    # a folder that is no project: the runner reports it, nothing is added
    errors.clear()
    pw.load(tmp_path)
    qtbot.waitUntil(lambda: not pw.runner.busy, timeout=10000)
    assert len(errors) == 1 and "no project.json" in errors[0]
    assert len(viewer.layers) == n_layers
