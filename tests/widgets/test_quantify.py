"""The Quantify dock widget in a real viewer: layers, plots, tables, CSV, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from qtpy.QtCore import Qt
from scipy import ndimage as ndi

from napari_corrtomo.core.quantify import MEASURES, quantify
from napari_corrtomo.core.synthetic import PORE, RESIN, SOLID, paint_spheres
from napari_corrtomo.widgets.quantify import QuantifyWidget


@pytest.fixture(scope="module")
def particle_volume():
    """Two porous spheres in resin (label 1): solid 2, pores 3 (one closed), 0.5 um voxels."""
    sp = (0.5, 0.5, 0.5)
    lab = np.full((36, 40, 60), RESIN, np.uint8)
    paint_spheres(lab, np.array([[9.0, 10.0, 8.5], [9.0, 10.0, 21.0]]), np.array([6.0, 5.0]),
                  SOLID, sp)
    paint_spheres(lab, np.array([[9.0, 10.0, 13.5], [9.0, 10.0, 24.0]]), np.array([2.0, 1.8]),
                  PORE, sp, only=SOLID)  # open
    paint_spheres(lab, np.array([[9.0, 10.0, 6.0]]), np.array([1.5]), PORE, sp, only=SOLID)
    img = np.where(lab == SOLID, 1.0, 0.35).astype(np.float32)
    img = ndi.gaussian_filter(img, 1.2)
    return lab, img, sp


def _widget(make_napari_viewer, qtbot, particle_volume, show=False, translate=(0.0,) * 3):
    lab, img, sp = particle_volume
    viewer = make_napari_viewer(show=show)
    viewer.add_image(img, name="nanoCT", scale=sp, translate=translate, units=("um",) * 3)
    viewer.add_labels(lab, name="seg", scale=sp, translate=translate, units=("um",) * 3)
    widget = QuantifyWidget(viewer)
    qtbot.addWidget(widget)
    widget.labels_select.set_layer(viewer.layers["seg"])
    widget.intensity_select.set_layer(viewer.layers["nanoCT"])
    widget.labels_form["phase"].value = PORE
    widget.labels_form["matrix"].value = SOLID
    widget.labels_form["outside"].value = "0, 1"
    return viewer, widget


def test_every_registered_measure_has_a_checkbox(make_napari_viewer, qtbot, particle_volume):
    _, widget = _widget(make_napari_viewer, qtbot, particle_volume)
    assert set(widget.checks) == set(MEASURES)


def test_quantify_adds_layers_plots_and_tables(make_napari_viewer, qtbot, particle_volume,
                                               tmp_path):
    viewer, widget = _widget(make_napari_viewer, qtbot, particle_volume)
    for key, cb in widget.checks.items():
        cb.setChecked(key in {"porosity", "thickness", "particles", "closed_pores", "proxigram"})
    n_before = len(viewer.layers)
    seg = viewer.layers["seg"]
    viewer.layers.selection.active = seg
    seg.mode = "paint"  # the user edits the segmentation while it is measured
    widget.run()
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=120_000)
    assert widget.runner.last_error is None, widget.runner.last_error
    # the results never took the selection (nor the brush) from the layer being edited
    assert viewer.layers.selection.active is seg and seg.mode == "paint"
    names = [layer.name for layer in viewer.layers]
    assert "seg phase local thickness" in names and "seg particles" in names
    assert "seg closed pores" in names and "seg particle ESD" in names
    assert len(viewer.layers) > n_before
    lt = viewer.layers["seg phase local thickness"]
    np.testing.assert_allclose(lt.scale, (0.5, 0.5, 0.5))
    assert lt.data[particle_volume[0] != PORE].max() == 0
    particles = viewer.layers["seg particles"]
    assert particles.data.max() == 2
    assert "esd_um" in particles.features.columns and "porosity" in particles.features.columns
    closed = viewer.layers["seg closed pores"].data
    assert closed.max() == 1  # the one closed pore
    summary = widget.result.summary()
    assert set(summary["measure"]) >= {"porosity", "local_thickness", "particles", "proxigram"}
    # plots: every distribution and curve can be drawn and saved
    for i in range(widget.plot_select.count()):
        widget.plot_select.setCurrentIndex(i)
        assert widget.plot.figure.axes
    png = tmp_path / "plot.png"
    widget.plot.save(str(png))
    assert png.read_bytes()[:4] == b"\x89PNG"
    # tables: shown in the dock and exported as CSV
    widget.table_select.setCurrentText("particles")
    assert widget.table.table.rowCount() == 2
    widget.table.export(str(tmp_path / "particles.csv"))
    assert "esd_um" in pd.read_csv(tmp_path / "particles.csv").columns
    files = widget.export_all(str(tmp_path))
    assert (tmp_path / "summary.csv").exists() and len(files) == len(widget.result.all_tables()) + 1
    # inputs.csv: what the tables are of
    inputs = pd.read_csv(tmp_path / "inputs.csv").set_index("input")["value"]
    assert inputs["segmentation"] == "seg" and str(inputs["phase label"]) == str(PORE)
    # the input layers are untouched
    np.testing.assert_array_equal(viewer.layers["seg"].data, particle_volume[0])


def test_bad_input_notifies_and_adds_nothing(make_napari_viewer, qtbot, particle_volume):
    viewer, widget = _widget(make_napari_viewer, qtbot, particle_volume)
    for key, cb in widget.checks.items():
        cb.setChecked(key == "porosity")
    widget.labels_form["phase"].value = 9  # no such label
    n = len(viewer.layers)
    widget.run()
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=60_000)
    assert isinstance(widget.runner.last_error, ValueError)
    assert "no voxel" in str(widget.runner.last_error)
    assert len(viewer.layers) == n
    # proxigram without an intensity image: refused in the GUI thread, nothing started
    widget.labels_form["phase"].value = PORE
    widget.checks["proxigram"].setChecked(True)
    widget.intensity_select.setCurrentIndex(0)  # the empty entry
    widget.run()
    assert not widget.runner.busy and len(viewer.layers) == n
    widget.labels_form["outside"].value = "zero"
    with pytest.raises(ValueError, match="Outside labels: whole numbers separated by commas"):
        widget.settings()


def test_a_point_clicked_on_a_particle_measures_that_particle_alone(
        make_napari_viewer, qtbot, particle_volume, mouse, errors):
    """A person clicks "Add ..." beside "Particles at" (a points layer on the
    segmentation, ready to click), clicks on the smaller particle of a segmentation shifted
    in the world, ticks "Only inside particle envelopes" and clicks Quantify: one
    envelope, the clicked particle's (its ESD), and the other particle's closed pore is
    not counted (it is without the points)."""
    shift = (1.0, 2.0, 3.0)
    viewer, widget = _widget(make_napari_viewer, qtbot, particle_volume, show=True,
                             translate=shift)
    widget.labels_form["within_envelopes"].value = True
    for key, cb in widget.checks.items():
        cb.setChecked(key in {"envelopes", "closed_pores"})

    def closed_pores() -> float:
        qtbot.mouseClick(widget.run_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: not widget.runner.busy, timeout=120_000)
        assert widget.runner.last_error is None, widget.runner.last_error
        return widget.result.summary().set_index("quantity")["value"]["closed pores"]

    assert closed_pores() == 1  # every particle: the larger one's closed pore
    qtbot.mouseClick(widget.add_points_button, Qt.MouseButton.LeftButton)
    points = widget.points_select.layer()
    assert points is viewer.layers.selection.active and points.mode == "add"
    assert points.name == "seg particles to measure"
    target = np.array([9.0, 10.0, 21.0]) + shift  # the smaller particle's centre, world um
    mouse.look_at(viewer, target[0], target[1:], width=30.0)
    mouse.click(viewer, target[1:], tol=0.5)
    assert len(points.data) == 1
    assert closed_pores() == 0
    table = widget.result.tables["particle_envelopes"]
    assert len(table) == 1
    assert table["esd_um"].item() == pytest.approx(10.0, rel=0.1)
    assert "particle envelopes" in widget.points_select.toolTip()
    points.data = np.empty((0, 3))
    qtbot.mouseClick(widget.run_button, Qt.MouseButton.LeftButton)
    assert not widget.runner.busy
    assert errors == ["points layer 'seg particles to measure' has no point; add one on each "
                     "particle to measure, or choose none"]


class _ReadCounter:
    """An array that records the size of every read: proves what the widget loads."""

    def __init__(self, data: np.ndarray):
        self.data, self.shape, self.dtype, self.ndim = data, data.shape, data.dtype, data.ndim
        self.largest = 0

    def __getitem__(self, key):
        out = self.data[key]
        self.largest = max(self.largest, np.size(out))
        return out


def test_a_lazy_layer_is_measured_block_by_block_and_never_loaded(
        make_napari_viewer, qtbot, particle_volume):
    import dask.array as da

    lab, _, sp = particle_volume
    source = _ReadCounter(lab)
    viewer = make_napari_viewer()
    viewer.add_labels(da.from_array(source, chunks=(12, 20, 20)), name="seg", scale=sp,
                      units=("um",) * 3)
    widget = QuantifyWidget(viewer)
    qtbot.addWidget(widget)
    widget.labels_select.set_layer(viewer.layers["seg"])
    widget.labels_form["phase"].value = PORE
    widget.labels_form["matrix"].value = SOLID
    widget.labels_form["outside"].value = "0, 1"
    for key, cb in widget.checks.items():
        cb.setChecked(key in {"porosity", "thickness"})
    qtbot.mouseClick(widget.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=120_000)
    assert widget.runner.last_error is None, widget.runner.last_error
    # never more than a block (or a displayed plane) at a time
    assert 0 < source.largest <= max(12 * 20 * 20, lab.shape[1] * lab.shape[2])
    assert "stored in" in widget.notes.text()
    # the same numbers as the in-memory pipeline
    eager = quantify(lab, sp, "um", measures=["porosity", "thickness"],
                     settings=widget.settings())
    pd.testing.assert_frame_equal(widget.result.summary(), eager.summary(), check_exact=False,
                                  rtol=1e-9)
    layer = viewer.layers["seg phase local thickness"]
    lt = layer.data[0] if layer.multiscale else layer.data
    np.testing.assert_allclose(np.asarray(lt), eager.arrays["phase local thickness"].data,
                               rtol=1e-6)


def test_export_all_asks_before_replacing_tables(make_napari_viewer, qtbot, particle_volume,
                                                 tmp_path, monkeypatch):
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication, QFileDialog, QMessageBox

    _, widget = _widget(make_napari_viewer, qtbot, particle_volume)
    for key, cb in widget.checks.items():
        cb.setChecked(key == "porosity")
    qtbot.mouseClick(widget.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=60_000)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(tmp_path))
    summary = tmp_path / "summary.csv"
    qtbot.mouseClick(widget.export_all_button, Qt.MouseButton.LeftButton)  # new: no question
    written = summary.read_text()
    assert "porosity" in written

    def answer(button):
        def click():
            box = QApplication.activeModalWidget()
            assert isinstance(box, QMessageBox) and "Replace" in box.text()
            box.button(button).click()
        QTimer.singleShot(300, click)

    summary.write_text("mine\n")
    answer(QMessageBox.StandardButton.No)
    qtbot.mouseClick(widget.export_all_button, Qt.MouseButton.LeftButton)
    assert summary.read_text() == "mine\n"
    answer(QMessageBox.StandardButton.Yes)
    qtbot.mouseClick(widget.export_all_button, Qt.MouseButton.LeftButton)
    assert summary.read_text() == written


def test_widget_cli_and_demo_give_the_same_particles(make_napari_viewer, qtbot, tmp_path):
    """The demo's microCT particle settings (boundary at the mid grey level, pores closed
    particle by particle, sphere envelopes), one segmentation and its image (a slab of
    the correlative sample's microCT), three front ends, one pipeline
    (core.quantify.quantify): the same particle and envelope labels and tables."""
    from napari_corrtomo.cli import main
    from napari_corrtomo.core import io, synthetic
    from napari_corrtomo.demo import MICROCT_QUANTIFY, DemoContext, quantify_microct

    sample = synthetic.correlative_particles(seed=0)
    lab = np.ascontiguousarray(np.asarray(sample.truth.microct_labels.data)[:40])
    img = np.ascontiguousarray(np.asarray(sample.microct.data)[:40])
    sp = sample.truth.microct_labels.scale
    s = MICROCT_QUANTIFY
    image = io.Volume(img, sp, ("um",) * 3, "microCT", "image")
    # demo
    ctx = DemoContext(out=tmp_path / "demo", seed=0,
                      data={"correlative": sample, "segmentation": {"microCT": lab},
                            "reconstructed": {"microCT": image}})
    ctx.out.mkdir()
    demo = quantify_microct(ctx)
    # widget: the settings typed into the form, "particles" and "envelopes" ticked, the
    # button clicked
    viewer = make_napari_viewer()
    viewer.add_image(img, name="microCT", scale=sp, units=("um",) * 3)
    viewer.add_labels(lab, name="microCT seg", scale=sp, units=("um",) * 3)
    widget = QuantifyWidget(viewer)
    qtbot.addWidget(widget)
    widget.labels_select.set_layer(viewer.layers["microCT seg"])
    widget.intensity_select.set_layer(viewer.layers["microCT"])
    widget.labels_form["phase"].value = s.phase
    widget.labels_form["matrix"].value = s.matrix
    widget.labels_form["mid_level"].value = s.mid_level
    widget.params["split_h"].value = s.split_h
    widget.params["close_radius"].value = s.close_radius
    widget.params["min_volume"].value = s.min_volume
    for key, cb in widget.checks.items():
        cb.setChecked(key in ("particles", "envelopes"))
    assert widget.settings() == s
    qtbot.mouseClick(widget.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=300_000)
    assert widget.runner.last_error is None, widget.runner.last_error
    # command line on the segmentation and the image written to files
    path = io.write_tiff(tmp_path / "seg.tif", lab, sp, "um", "labels")
    ipath = io.write_tiff(tmp_path / "img.tif", img, sp, "um")
    out = tmp_path / "cli"
    assert main(["quantify", str(path), "--intensity", str(ipath), "--phase", str(s.phase),
                 "--matrix", str(s.matrix), "--mid-level", "--split-h", str(s.split_h),
                 "--close-radius", str(s.close_radius), "--min-volume", str(s.min_volume),
                 "--measures", "particles,envelopes", "--save-volumes",
                 "--out", str(out)]) == 0

    for array, layer, file, table in (
            ("particles", "microCT seg particles", "particles", "particles"),
            ("particle envelopes", "microCT seg particle envelopes", "particle_envelopes",
             "particle_envelopes")):
        expected = np.asarray(demo.arrays[array].data)
        assert expected.max() > 5  # particles found
        np.testing.assert_array_equal(np.asarray(viewer.layers[layer].data), expected)
        np.testing.assert_array_equal(io.read_volumes(out / f"{file}.tif")[0].data, expected)
        pd.testing.assert_frame_equal(widget.result.tables[table], demo.tables[table])
        pd.testing.assert_frame_equal(pd.read_csv(out / f"{table}.csv"), demo.tables[table],
                                      check_exact=False, rtol=1e-12, check_dtype=False)
    assert len(table) >= 10  # many particles separated, not one blob


def porous_block_data():
    """A 192^3 block of porous particles in resin (solid 2, pores 3) and its image (also
    used by benchmarks/cancel.py)."""
    rng = np.random.default_rng(17)
    sp = (0.5, 0.5, 0.5)
    lab = np.full((192, 192, 192), RESIN, np.uint8)
    centres = rng.uniform(20.0, 76.0, (10, 3))
    paint_spheres(lab, centres, rng.uniform(12.0, 20.0, 10), SOLID, sp)
    pores = ndi.uniform_filter(rng.random(lab.shape, np.float32), 5) > 0.53  # ~15 % pores
    lab[pores & (lab == SOLID)] = PORE
    img = np.where(lab == SOLID, 1.0, 0.35).astype(np.float32)
    return lab, img, sp


def test_cancel_all_measures_at_2_s(make_napari_viewer, qtbot, particle_volume,
                                    cancel_mid_action):
    """Every measure ticked on a 192^3 block, cancelled at 2 s. The measures run in a
    process of their own, so the compiled code that holds the GIL (distance transforms,
    connected components, marching cubes) never pauses the viewer; the panel's first run
    (a small one here) leaves that process started for the next."""
    viewer, widget = _widget(make_napari_viewer, qtbot, particle_volume)
    qtbot.mouseClick(widget.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=120_000)
    assert widget.result is not None and widget._spare is not None
    lab, img, sp = porous_block_data()
    viewer.add_image(img, name="block", scale=sp, units=("um",) * 3)
    viewer.add_labels(lab, name="block seg", scale=sp, units=("um",) * 3)
    widget.labels_select.set_layer(viewer.layers["block seg"])
    widget.intensity_select.set_layer(viewer.layers["block"])
    widget.result = None
    for cb in widget.checks.values():
        cb.setChecked(True)
    process = widget._spare
    run = cancel_mid_action(viewer, widget.runner, widget.run_button,
                            action="Quantify: all measures, 192^3")
    run.assert_prompt()
    assert widget.result is None
    assert not process.is_alive()  # killed, not left computing


def test_the_panel_on_screen_starts_the_measuring_process_its_first_run_uses(
        make_napari_viewer, qtbot, particle_volume):
    viewer, widget = _widget(make_napari_viewer, qtbot, particle_volume)
    assert widget._spare is None  # not on screen: no process yet
    widget.show()
    assert widget._spare is not None
    started = widget._spare
    qtbot.mouseClick(widget.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=120_000)
    assert widget.runner.last_error is None and widget.result is not None
    assert not started.is_alive()  # it ran this call and ended
    spare = widget._spare
    assert spare is not started and spare.is_alive()  # the next run's, started
    viewer.close()  # no process outlives its viewer
    assert widget._spare is None and not spare.is_alive()


def test_points_on_a_rotated_segmentation_land_on_its_voxels():
    """"Particles at" maps points through the world frame: a segmentation registered with
    a rotation and shift (its affine) and points placed in the world (a layer of its own
    transform) give the physical position in the segmentation's voxel frame."""
    import napari
    from scipy.spatial.transform import Rotation

    from napari_corrtomo.widgets.quantify import _points_in

    sp = (0.5, 0.25, 0.25)
    affine = np.eye(4)
    affine[:3, :3] = Rotation.from_euler("zyx", [20, -10, 35], degrees=True).as_matrix()
    affine[:3, 3] = (4.0, -3.0, 7.0)
    labels = napari.layers.Labels(np.zeros((20, 30, 40), np.uint8), scale=sp, affine=affine)
    voxels = np.array([[3.0, 7.0, 11.0], [12.5, 20.0, 33.0]])
    world = (affine[:3, :3] @ (voxels * sp).T).T + affine[:3, 3]
    points = napari.layers.Points((world - 1.5) / 2.0, scale=(2.0,) * 3, translate=(1.5,) * 3)
    np.testing.assert_allclose(_points_in(points, labels, sp), voxels * sp, atol=1e-9)


def _refused_porosity_run(widget, qtbot) -> None:
    """Porosity alone, run with a real click on Quantify (refused: the worker's error)."""
    for key, cb in widget.checks.items():
        cb.setChecked(key == "porosity")
    with qtbot.capture_exceptions():
        qtbot.mouseClick(widget.run_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: not widget.runner.busy, timeout=60_000)


def test_a_missing_setting_is_named_by_its_control(make_napari_viewer, qtbot, particle_volume):
    """The core names a missing setting by a placeholder; the panel shows its own label
    (was "choose it first", the CLI saw the same words): here 'Matrix label'."""
    _, widget = _widget(make_napari_viewer, qtbot, particle_volume)
    widget.labels_form["matrix"].value = -1  # the spin box at its minimum: "none"
    widget.labels_form["within_envelopes"].value = True
    _refused_porosity_run(widget, qtbot)
    assert widget.runner.status.text() == (
        "Failed: 'Only inside particle envelopes' needs 'Matrix label' (the label of the solid "
        "phase)")


def test_the_border_choice_goes_with_only_inside_envelopes(make_napari_viewer, qtbot,
                                                           particle_volume):
    """'... not cut by the border' without 'Only inside particle envelopes' was ignored
    without a word; QuantifySettings refuses it now, so unticking the one unticks the
    other, and a refusal is in the panel's words."""
    _, widget = _widget(make_napari_viewer, qtbot, particle_volume)
    inside, border = widget.labels_form["within_envelopes"], widget.labels_form["exclude_border"]
    inside.value = True
    border.value = True
    assert widget.settings().exclude_border
    inside.value = False
    assert not border.value and not border.native.isEnabled()
    assert not widget.settings().exclude_border
    border.value = True  # set from code, past the disabled control
    with pytest.raises(ValueError) as err:
        widget.settings()
    assert str(err.value) == (
        "'... not cut by the border' works only with 'Only inside particle envelopes' (it "
        "leaves out, of the particles measured inside their envelopes, those the border "
        "cuts); set both, or neither")


def test_points_without_an_envelope_measure_are_refused_in_the_panels_words(
        make_napari_viewer, qtbot, particle_volume):
    """The core's refusal once said "tick ... (--within-envelopes)" to both front ends."""
    viewer, widget = _widget(make_napari_viewer, qtbot, particle_volume)
    widget.points_select.set_layer(viewer.add_points([[9.0, 10.0, 21.0]], ndim=3))
    _refused_porosity_run(widget, qtbot)
    assert widget.runner.status.text() == (
        "Failed: 'Particles at' picks particles by their envelopes: also choose 'Particle "
        "envelopes and their porosity' or 'Envelope porosity from grey values', or 'Only "
        "inside particle envelopes'")


def test_drawings_are_never_offered_as_the_segmentation(make_napari_viewer):
    """After live training the Segmentation combo held the live prediction (one painted
    slice) first: drawings (live layers, registered 2D views) are not offered."""
    from napari_corrtomo.widgets._layers import CREATED_BY, LIVE
    from napari_corrtomo.widgets._registered_view import NAME

    viewer = make_napari_viewer()
    viewer.add_labels(np.zeros((4, 8, 8), np.uint8), name="strokes live prediction",
                      metadata={LIVE: True})
    viewer.add_image(np.zeros((4, 8, 8), np.float32), name="nano (2D view)",
                     metadata={CREATED_BY: NAME})
    viewer.add_labels(np.zeros((4, 8, 8), np.uint8), name="segmentation")
    viewer.add_image(np.zeros((4, 8, 8), np.float32), name="nano")
    widget = QuantifyWidget(viewer)
    combos = (widget.labels_select, widget.intensity_select)
    assert [[c.itemText(i) for i in range(c.count())] for c in combos] == [
        ["segmentation"], ["", "nano"]]


def test_the_segmentation_offered_first_is_the_newest_labels_layer(make_napari_viewer):
    """Opened after Predict volume, the panel offered the scribbles (made first) as the
    segmentation: with nothing chosen it offers the newest labels layer, and keeps the
    user's choice when more layers come."""
    viewer = make_napari_viewer()
    viewer.add_labels(np.zeros((4, 8, 8), np.uint8), name="ROI scribbles")
    viewer.add_labels(np.zeros((4, 8, 8), np.uint8), name="ROI segmentation")
    viewer.add_image(np.zeros((4, 8, 8), np.float32), name="ROI uncertainty")
    widget = QuantifyWidget(viewer)
    assert widget.labels_select.currentText() == "ROI segmentation"
    widget.labels_select.setCurrentText("ROI scribbles")
    viewer.add_labels(np.zeros((4, 8, 8), np.uint8), name="later")
    assert widget.labels_select.currentText() == "ROI scribbles"


def _click_quantify(widget, qtbot, measures: set[str]) -> None:
    """Tick ``measures`` alone and click Quantify; the run must succeed."""
    for key, cb in widget.checks.items():
        cb.setChecked(key in measures)
    qtbot.mouseClick(widget.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=120_000)
    assert widget.runner.last_error is None, widget.runner.last_error


def test_a_rejected_lognormal_fit_is_neither_reported_nor_drawn(make_napari_viewer, qtbot):
    """Particles of two size populations: the log-normal fit follows their histogram
    poorly. The summary showed its mode and the plot its curve (a degenerate one reached
    1.15 on the fraction axis) while a note called it poor: now no mode, no curve, and
    the notes and the legend say it was rejected and why."""
    lab = np.full((16, 64, 96), RESIN, np.uint8)
    centres = [(8.0, 8.0 + 16 * i, 8.0 + 16 * j) for j in range(2) for i in range(4)]
    radii = [5.0 + 0.25 * k for k in range(8)]
    centres += [(8.0, 4.0 + 8 * i, 40.0 + 8 * j) for i in range(8) for j in range(7)]
    radii += [1.6 + 0.1 * ((i + j) % 8) for i in range(8) for j in range(7)]
    paint_spheres(lab, np.array(centres), np.array(radii), SOLID, (1.0, 1.0, 1.0))
    viewer = make_napari_viewer()
    viewer.add_labels(lab, name="seg", units=("um",) * 3)
    widget = QuantifyWidget(viewer)
    qtbot.addWidget(widget)
    widget.labels_form["phase"].value = SOLID
    widget.labels_form["outside"].value = "1"
    _click_quantify(widget, qtbot, {"particles"})
    quantities = set(widget.result.summary()["quantity"])
    assert "ESD mean" in quantities and "ESD log-normal mode" not in quantities
    assert ("Note: particle size distribution: log-normal fit rejected: Kolmogorov-Smirnov "
            "distance") in widget.notes.text()
    widget.plot_select.setCurrentText("particle size distribution")
    ax = widget.plot.figure.axes[0]
    assert not [line for line in ax.get_lines() if len(line.get_xdata())]  # no fit curve
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "log-normal fit rejected (see the notes)" in legend
    assert "fit_fraction" not in widget.result.tables["particle_size_distribution"]


def test_a_phase_or_particle_filling_the_sample_is_questioned(make_napari_viewer, qtbot,
                                                             particle_volume):
    """The panel's defaults on a sample of porous particles in resin (Phase label 1,
    the resin; Matrix none; no outside label): porosity 0.9 and one particle, the whole
    field, came without a word. The notes now question both."""
    _, widget = _widget(make_napari_viewer, qtbot, particle_volume)
    widget.labels_form["phase"].value = RESIN
    widget.labels_form["matrix"].value = -1  # "none"
    widget.labels_form["outside"].value = ""
    _click_quantify(widget, qtbot, {"porosity", "particles"})
    rows = widget.result.summary().set_index("quantity")["value"]
    assert rows["porosity (phase / sample)"] > 0.85 and rows["particle count"] == 1
    notes = widget.notes.text()
    assert f"Note: the phase (label {RESIN}) fills 8" in notes and "is it the pores?" in notes
    assert "Note: one particle fills 100% of the volume" in notes
    # the right labels: no such note
    widget.labels_form["phase"].value = PORE
    widget.labels_form["matrix"].value = SOLID
    widget.labels_form["outside"].value = "0, 1"
    _click_quantify(widget, qtbot, {"porosity", "particles"})
    assert "fills" not in widget.notes.text()


def test_an_empty_curve_says_why_on_its_axes(make_napari_viewer, qtbot, particle_volume):
    """With "Only inside particle envelopes" no pore path starts at the volume's faces:
    the geodesic tortuosity plots were blank axes with a legend, the reason only in the
    notes; now the axes say it and carry no legend."""
    _, widget = _widget(make_napari_viewer, qtbot, particle_volume)
    widget.labels_form["within_envelopes"].value = True
    widget.params["transport_axes"].value = "z"
    _click_quantify(widget, qtbot, {"geodesic_tortuosity"})
    widget.plot_select.setCurrentText("geodesic tortuosity vs depth z")
    ax = widget.plot.figure.axes[0]
    assert [t.get_text() for t in ax.texts] == [
        "no data: no path through the phase from the inlet face reaches any of the depths"]
    assert ax.get_legend() is None


def test_the_saved_plot_keeps_its_labels_in_a_narrow_dock(make_napari_viewer, qtbot,
                                                          particle_volume, tmp_path,
                                                          monkeypatch):
    """The proxigram saved from a narrow dock lost the end of its x label ("... inside
    the phase (um"): the labels wrap within the figure and the PNG holds all of it."""
    from napari_corrtomo.widgets import _plot

    _, widget = _widget(make_napari_viewer, qtbot, particle_volume)
    _click_quantify(widget, qtbot, {"proxigram"})
    widget.plot.figure.set_size_inches(2.6, 2.8)  # the dock made narrow
    widget.plot_select.setCurrentText("proxigram")
    png = tmp_path / "proxigram.png"
    monkeypatch.setattr(_plot.QFileDialog, "getSaveFileName", lambda *a, **k: (str(png), ""))
    qtbot.mouseClick(widget.plot.save_button, Qt.MouseButton.LeftButton)
    assert png.read_bytes()[:4] == b"\x89PNG"
    fig = widget.plot.figure
    renderer = fig.canvas.get_renderer()
    label = fig.axes[0].xaxis.label
    assert label.get_text().endswith("inside the phase (um)")
    box = label.get_window_extent(renderer)
    assert box.x0 >= 0 and box.x1 <= fig.bbox.width and box.y0 >= 0


def test_a_point_outside_every_envelope_is_noted_once(make_napari_viewer, qtbot,
                                                      particle_volume):
    """A point that missed its particle, measured by both envelope measures: the note
    came twice, naming a different envelope each time; now once."""
    viewer, widget = _widget(make_napari_viewer, qtbot, particle_volume)
    points = viewer.add_points(np.array([[9.0, 10.0, 29.0]]), ndim=3, units=("um",) * 3)
    widget.points_select.set_layer(points)
    _click_quantify(widget, qtbot, {"envelopes", "pv_porosity"})
    notes = [n for n in widget.result.notes if "lies outside every envelope" in n]
    assert len(notes) == 1 and "envelope 2," in notes[0], widget.result.notes


def test_a_segmentation_naming_its_phases_suggests_the_label_roles(make_napari_viewer, qtbot,
                                                                   particle_volume):
    """The correlative sample's truth names its phases (metadata ``phases``): choosing it
    says which labels measure the pores (the defaults measured the resin, label 1) without
    setting them (they would stay for the next, unnamed segmentation); the tables name
    the phases."""
    lab, _, sp = particle_volume
    viewer = make_napari_viewer()
    viewer.add_labels(lab, name="plain", scale=sp, units=("um",) * 3)
    names = {"0": "air", "1": "resin", "2": "solid", "3": "macropore"}
    viewer.add_labels(lab, name="named truth", scale=sp, units=("um",) * 3,
                      metadata={"phases": names})
    widget = QuantifyWidget(viewer)
    qtbot.addWidget(widget)
    widget.labels_select.set_layer(viewer.layers["named truth"])
    assert widget.notes.text() == (
        "This segmentation names its phases (0 air, 1 resin, 2 solid, 3 macropore): measure "
        "the pores with Phase label 3, Matrix label 2, Outside labels 0, 1.")
    assert widget.labels_form["phase"].value == 1  # said, not set
    widget.labels_select.set_layer(viewer.layers["plain"])
    assert widget.notes.text() == ""
    widget.labels_select.set_layer(viewer.layers["named truth"])
    widget.labels_form["phase"].value = PORE
    _click_quantify(widget, qtbot, {"porosity"})
    table = widget.result.tables["phase_fractions"].set_index("label")["name"]
    assert table.to_dict() == {RESIN: "resin", SOLID: "solid", PORE: "macropore"}


def test_a_label_the_matrix_leaves_out_of_the_sample_is_said(make_napari_viewer, qtbot):
    """A FIB-SEM electrode (1 pore, 2 carbon-binder, 3 active material), Phase label 1:
    setting Matrix label 2 turned the porosity from 0.4 to 0.8 without a word on label 3,
    and the only note asked whether the phase label was the pores. Now a note names label
    3 with its share and what to set; the porosity note blames the left-out label."""
    lab = np.empty((10, 10, 20), np.uint8)
    lab[..., :8], lab[..., 8:10], lab[..., 10:] = 1, 2, 3
    viewer = make_napari_viewer()
    viewer.add_labels(lab, name="electrode", units=("um",) * 3, metadata={"phases": {
        "1": "pore", "2": "carbon-binder", "3": "active material"}})
    widget = QuantifyWidget(viewer)
    qtbot.addWidget(widget)
    widget.labels_form["phase"].value = 1
    _click_quantify(widget, qtbot, {"porosity"})  # Matrix none: the whole volume
    assert widget.result.summary()["value"][0] == pytest.approx(0.4)
    assert "left out" not in widget.notes.text()
    widget.labels_form["matrix"].value = 2
    _click_quantify(widget, qtbot, {"porosity"})
    assert widget.result.summary()["value"][0] == pytest.approx(0.8)  # phase / (phase + matrix)
    notes = widget.notes.text()
    assert ("Note: label 3 (active material, 50% of the volume) is neither the phase, the "
            "matrix nor outside: it is left out of the sample") in notes
    assert "set no matrix label" in notes
    assert "with the labels left out of the sample (see their note) it would be 40%" in notes
    assert "is it the pores?" not in notes


def test_an_intensity_image_on_other_voxels_is_refused(make_napari_viewer, qtbot,
                                                       particle_volume):
    """The intensity was checked for its shape alone: the same shape at 1 um voxels
    beside a 0.5 um segmentation gave a proxigram in the wrong frame. Another voxel size
    or origin is refused naming both; the same voxels in nm are measured alike."""
    viewer, widget = _widget(make_napari_viewer, qtbot, particle_volume)
    img = viewer.layers["nanoCT"].data
    _click_quantify(widget, qtbot, {"proxigram"})
    dx = widget.result.proxigram.dx
    viewer.add_image(img, name="coarse", scale=(1.0,) * 3, units=("um",) * 3)
    viewer.add_image(img, name="shifted", scale=(0.5,) * 3, translate=(0.0, 0.0, 2.0),
                     units=("um",) * 3)
    viewer.add_image(img, name="in nm", scale=(500.0,) * 3, units=("nm",) * 3)
    for name, where in (("coarse", "voxel 1 x 1 x 1 um, origin 0, 0, 0 um"),
                        ("shifted", "voxel 0.5 x 0.5 x 0.5 um, origin 0, 0, 2 um")):
        widget.intensity_select.setCurrentText(name)
        qtbot.mouseClick(widget.run_button, Qt.MouseButton.LeftButton)
        assert not widget.runner.busy
        assert widget.runner.status.text() == (
            f"Not started: intensity {name!r} ({where}) and segmentation 'seg' (voxel 0.5 x "
            "0.5 x 0.5 um, origin 0, 0, 0 um) do not lie on the same voxels; choose the image "
            "the segmentation came from, or give both the same voxel size, unit, translate "
            "and affine")
    widget.intensity_select.setCurrentText("in nm")
    _click_quantify(widget, qtbot, {"proxigram"})
    assert widget.result.proxigram.dx == pytest.approx(dx)


def test_the_results_say_what_they_are_of(make_napari_viewer, qtbot, particle_volume,
                                          tmp_path, monkeypatch):
    """After a run, changing the form (phase, segmentation, even during the run) or a
    refused run left the old plots and tables beside the new values without a word:
    the results now name their layer, phase and time, say when the form no longer
    matches, and Export all writes inputs.csv, what the tables are of."""
    from qtpy.QtWidgets import QFileDialog

    viewer, widget = _widget(make_napari_viewer, qtbot, particle_volume)
    viewer.layers["seg"].metadata["phases"] = {"3": "macropore"}
    viewer.add_labels(particle_volume[0], name="other", scale=particle_volume[2],
                      units=("um",) * 3)
    widget.labels_select.setCurrentText("seg")
    assert widget.results_of.text() == ""
    _click_quantify(widget, qtbot, {"porosity"})
    said = widget.results_of.text()
    assert said.startswith(f"Results of 'seg', Phase label {PORE} (macropore), Matrix label "
                           f"{SOLID}, run at "), said
    widget.labels_form["phase"].value = SOLID + 10
    assert widget.results_of.text().startswith(
        f"These results are of earlier inputs: 'seg', Phase label {PORE} (macropore)")
    qtbot.mouseClick(widget.run_button, Qt.MouseButton.LeftButton)  # refused: no voxel
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=60_000)
    assert widget.runner.last_error is not None
    assert widget.results_of.text().startswith("These results are of earlier inputs: 'seg'")
    widget.labels_form["phase"].value = PORE
    assert widget.results_of.text() == said  # the form matches them again
    widget.labels_select.setCurrentText("other")
    assert widget.results_of.text().startswith("These results are of earlier inputs: 'seg'")
    # the form changed while a run measures 'other': its results are of 'other' and say so
    qtbot.mouseClick(widget.run_button, Qt.MouseButton.LeftButton)
    widget.labels_select.setCurrentText("seg")
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=60_000)
    assert widget.runner.last_error is None, widget.runner.last_error
    assert widget.results_of.text().startswith(
        f"These results are of earlier inputs: 'other', Phase label {PORE}, Matrix label")
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(tmp_path))
    qtbot.mouseClick(widget.export_all_button, Qt.MouseButton.LeftButton)
    inputs = pd.read_csv(tmp_path / "inputs.csv").set_index("input")["value"]
    assert inputs["segmentation"] == "other" and str(inputs["phase label"]) == str(PORE)
    assert inputs["measures"] == "porosity" and inputs["outside labels"] == "0, 1"
