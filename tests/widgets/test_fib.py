"""The "FIB slices" dock widget in a real viewer."""


import re

import numpy as np
import pandas as pd
import pytest
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QGroupBox
from scipy import ndimage as ndi

from napari_corrtomo.cli import main
from napari_corrtomo.core import synthetic as syn
from napari_corrtomo.core.io import read_volumes, write_tiff
from napari_corrtomo.demo import DemoContext, fib_se2_settings, step_fib
from napari_corrtomo.widgets.fib import FibWidget


@pytest.fixture(scope="module")
def small_fib():
    return syn.fib_sem_stack(seed=2, n_slices=20, image_shape=(56, 96))


@pytest.fixture(scope="module")
def small_mimic():
    vol = syn.hierarchical_leveled_wave((64, 40, 40), 2.5, seed=21)
    return syn.fib_mimic(vol, 2.5, 10.0, 4.0, seed=21)


def _wait(qtbot, widget):
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=120000)


def _widget_on_se2(viewer, fib):
    """A FIB widget whose stack is the sample's first channel, added as layer "SE2"."""
    ch = fib.channels[0]
    layer = viewer.add_image(ch.data, name="SE2", scale=ch.scale, units=ch.units)
    w = FibWidget(viewer)
    w.stack.set_layer(layer)
    return w, layer


def _error_after_click(qtbot, w, button) -> str:
    """A real click on ``button``; the error the run ended with (the worker's, re-raised)."""
    with qtbot.capture_exceptions():
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
        _wait(qtbot, w)
    return str(w.runner.last_error)


def test_ruler_thickness_histogram_and_marks(make_napari_viewer, qtbot, small_fib):
    viewer = make_napari_viewer()
    w, layer = _widget_on_se2(viewer, small_fib)
    w.source_form["source"].value = "ruler marks"
    w.ruler_form["angle_deg"].value = small_fib.ruler.angle_deg
    w.source_form["band_rows"].value = f"0, {small_fib.ruler.band_rows}"
    w.measure()
    _wait(qtbot, w)
    assert w.runner.last_error is None
    err = w.thickness_nm[:-1] - small_fib.thickness_nm[:-1]
    assert np.sqrt(np.mean(err**2)) < 1.0
    marks = viewer.layers["SE2 ruler marks"]
    assert len(marks.data) == 4 * 20
    np.testing.assert_allclose(marks.scale, small_fib.channels[0].scale)
    assert "gamma fit" in w.summary.text()
    assert w.thickness_table.frame["thickness_nm"].notna().sum() == 19

    # reposition + interpolate: a new layer on the isotropic grid, input untouched
    before = layer.data.copy()
    w.volume_form["method"].value = "cubic"
    w.run()
    _wait(qtbot, w)
    out = w.result_layer
    assert out is not None and out.name == "SE2 isotropic (cubic)"
    np.testing.assert_allclose(out.scale, (10.0, 10.0, 10.0))
    assert tuple(str(u) for u in out.units) == ("nanometer",) * 3
    assert out.data.shape[1] == 56 - small_fib.ruler.band_rows  # band cut
    depth = np.sum(w.thickness_nm[:-1])
    assert out.data.shape[0] == pytest.approx(depth / 10.0 + 1, abs=1.0)
    np.testing.assert_array_equal(layer.data, before)


def test_constant_source_and_metrics_against_truth(make_napari_viewer, qtbot, small_mimic):
    viewer = make_napari_viewer()
    stack = viewer.add_labels(small_mimic.stack.astype(np.uint8), name="seg",
                              scale=(10.0, 2.5, 2.5), units="nm")
    truth = viewer.add_labels(small_mimic.truth.astype(np.uint8), name="truth",
                              scale=(2.5, 2.5, 2.5), units="nm")
    w = FibWidget(viewer)
    w.stack.set_layer(stack)
    # the true thicknesses from a CSV
    import tempfile
    from pathlib import Path

    from napari_corrtomo.core.io import write_table

    tmp = Path(tempfile.mkdtemp()) / "t.csv"
    write_table(tmp, {"thickness_nm": small_mimic.thickness_nm})
    w.source_form["source"].value = "CSV file"
    w.csv_form["csv_path"].value = str(tmp)
    w.volume_form["method"].value = "ml"
    w.run()
    _wait(qtbot, w)
    assert w.runner.last_error is None
    assert w.result_layer.data.shape == small_mimic.truth.shape
    w.truth.set_layer(truth)
    w.compute_metrics()
    _wait(qtbot, w)
    res = dict(zip(w.metrics_table.frame["quantity"], w.metrics_table.frame["value"],
                   strict=True))
    from napari_corrtomo.core.fib import interpolate, metrics, reposition

    vol, known = reposition(small_mimic.stack, small_mimic.thickness_nm, 2.5)
    ref = metrics(interpolate(vol, known, "ml"), small_mimic.truth)
    assert res["mp_percent"] == pytest.approx(ref["mp_percent"])
    assert res["mds"] == pytest.approx(ref["mds"])


def _constant_nearest(viewer, small_mimic) -> FibWidget:
    """The panel on the mimic's labels ('seg', 10 x 2.5 x 2.5 nm): constant 10 nm slices,
    nearest interpolation."""
    stack = viewer.add_labels(small_mimic.stack.astype(np.uint8), name="seg",
                              scale=(10.0, 2.5, 2.5), units="nm")
    w = FibWidget(viewer)
    w.stack.set_layer(stack)
    w.source_form["source"].value = "constant"
    w.constant_form["constant_nm"].value = 10.0
    w.volume_form["method"].value = "nearest"
    return w


def test_thickness_and_metrics_keep_their_own_results_with_units(make_napari_viewer, qtbot,
                                                                 small_mimic):
    """Measure, interpolate, Compute metrics: the thickness table and summary stay in Slice
    thickness, the metrics (every number with its unit) in Quality metrics; a failed Measure
    clears the thickness results it would have replaced, not the metrics."""
    viewer = make_napari_viewer()
    w = _constant_nearest(viewer, small_mimic)
    for button in (w.measure_button, w.run_button, w.metrics_button):
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
        _wait(qtbot, w)
        assert w.runner.last_error is None
    thickness_box, metrics_box = (b for b in w.findChildren(QGroupBox)
                                  if b.title() in ("Slice thickness", "Quality metrics"))
    assert thickness_box.isAncestorOf(w.thickness_table)
    assert metrics_box.isAncestorOf(w.metrics_table)
    n = viewer.layers["seg"].data.shape[0]
    assert w.thickness_table.frame["thickness_nm"].tolist() == [10.0] * n
    assert w.summary.text().startswith(f"{n} thicknesses, mean 10.00 nm")
    frame = w.metrics_table.frame
    assert {"d_xy_nm", "d_xz_nm", "d_yz_nm", "e_tpcf", "e_lpf", "e_d"} == set(frame["quantity"])
    assert dict(zip(frame["quantity"], frame["unit"], strict=True))["d_xy_nm"] == "nm"
    assert re.search(r"d_xy [\d.]+ nm, d_xz [\d.]+ nm, d_yz [\d.]+ nm",
                     w.metrics_summary.text())
    # a failed Measure: its section empty (the status says why), the metrics kept
    metrics_text = w.metrics_summary.text()
    w.constant_form["constant_nm"].value = 0.01
    assert "'Thickness'" in _error_after_click(qtbot, w, w.measure_button)
    assert w.summary.text() == "" and w.thickness_table.frame.empty
    assert not w.hist.figure.axes or not w.hist.figure.axes[0].patches
    assert w.metrics_summary.text() == metrics_text


def test_solid_label_names_the_phases_and_a_wrong_truth_says_what_to_pick(
        make_napari_viewer, qtbot, small_mimic, errors):
    """A labelled stack whose metadata names its phases (label 1 = pore): 'Solid label'
    lists them and defaults to a solid; a truth on the slice grid is refused with the way
    to get one on the isotropic grid."""
    viewer = make_napari_viewer()
    lab = small_mimic.stack.astype(np.uint8) + 1  # 1 = pore, 2 = solid
    phases = {"1": "pore", "2": "carbon-binder"}
    stack = viewer.add_labels(lab, name="seg", scale=(10.0, 2.5, 2.5), units="nm",
                              metadata={"truth": {"phases": phases}})
    w = FibWidget(viewer)
    w.stack.set_layer(stack)
    w.source_form["source"].value = "constant"
    w.constant_form["constant_nm"].value = 10.0
    w.volume_form["method"].value = "nearest"
    qtbot.mouseClick(w.run_button, Qt.MouseButton.LeftButton)
    _wait(qtbot, w)
    assert w.runner.last_error is None
    assert w.phase.value() == 2 and w.phase_name.text() == "carbon-binder"
    assert "1 = pore, 2 = carbon-binder" in w.phase.toolTip()
    w.truth.set_layer(stack)
    qtbot.mouseClick(w.metrics_button, Qt.MouseButton.LeftButton)
    assert errors[-1].startswith(f"'Ground truth' 'seg' is {lab.shape} voxels but "
                                 f"'{w.result_layer.name}' is {w.result_layer.data.shape}")
    assert "pick that isotropic layer as 'Ground truth'" in errors[-1]


def test_bad_input_shows_error_and_adds_nothing(make_napari_viewer, qtbot, small_fib, tmp_path,
                                                errors):
    viewer = make_napari_viewer()
    w, _ = _widget_on_se2(viewer, small_fib)
    w.metrics_button.click()  # before any isotropic volume: refused, and the panel says so
    assert errors == ["make an isotropic volume first (Reposition + interpolate)"]
    assert w.runner.status.text() == f"Not started: {errors[0]}"
    w.source_form["band_rows"].value = "0, 20, 40"  # the band is two rows (first, stop)
    with pytest.raises(ValueError, match="'Band rows' must be two whole numbers"):
        w.settings()
    w.source_form["source"].value = "ruler marks"
    w.source_form["band_rows"].value = "20, 40"  # rows without marks
    n_layers = len(viewer.layers)

    def refused() -> str:
        """Run: the worker's error, in the panel's words; no layer added."""
        # (older runners re-raise worker errors in the Qt loop; capture them either way)
        with qtbot.capture_exceptions():
            w.run()
            _wait(qtbot, w)
        assert isinstance(w.runner.last_error, ValueError)
        assert len(viewer.layers) == n_layers
        return str(w.runner.last_error)

    assert "ruler marks" in refused()
    # a CSV with the wrong number of thicknesses
    tmp = tmp_path / "t.csv"
    tmp.write_text("thickness_nm\n10\n10\n")
    w.source_form["source"].value = "CSV file"
    w.csv_form["csv_path"].value = str(tmp)
    assert "got 2 slice thicknesses for a stack of 20" in refused()
    # thicknesses in um under a thickness_nm head: a unit slip, said in the panel's words
    tmp.write_text("thickness_nm\n" + "0.02\n" * 20)
    error = refused()
    assert "the median thickness in t.csv (the CSV 'File'), 0.02 nm," in error
    assert "name the thickness column by its unit" in error
    # a grey stack said to be labels (interpolated label by label, one per grey value)
    tmp.write_text("thickness_nm\n" + "10\n" * 20)
    w.volume_form["kind"].value = "labels"
    error = refused()
    assert "'Data are' labels needs a stack of whole-number labels" in error
    assert "choose 'Data are' grey" in error
    w.volume_form["kind"].value = "auto"
    # metrics of a grey isotropic volume (they compare phases): refused in the panel
    tmp.write_text("thickness_nm\n" + "10\n" * 20)
    w.source_form["band_rows"].value = ""
    qtbot.mouseClick(w.run_button, Qt.MouseButton.LeftButton)
    _wait(qtbot, w)
    assert w.runner.last_error is None and w.result_layer is not None
    qtbot.mouseClick(w.metrics_button, Qt.MouseButton.LeftButton)
    assert errors[-1].startswith(f"the metrics compare the phases of a segmented volume, and "
                                 f"'{w.result_layer.name}' holds grey values")


def test_widget_cli_and_demo_give_the_same_band_cut_volume(make_napari_viewer, qtbot, small_fib,
                                                            tmp_path, capsys):
    """One input, three front ends, one pipeline: the same array, table and placement."""
    ch = small_fib.channels[0]
    band = small_fib.ruler.band_rows
    # widget: the form filled as a user would, the button clicked
    viewer = make_napari_viewer()
    w, layer = _widget_on_se2(viewer, small_fib)
    w.source_form["source"].value = "ruler marks"
    w.ruler_form["angle_deg"].value = small_fib.ruler.angle_deg
    w.source_form["band_rows"].value = f"0, {band}"
    assert w.source_form["cut_band"].value and w.volume_form["method"].value == "cubic"
    qtbot.mouseClick(w.run_button, Qt.MouseButton.LeftButton)
    _wait(qtbot, w)
    assert w.runner.last_error is None
    widget_vol = np.asarray(w.result_layer.data)
    widget_table = w.thickness_table.frame
    # command line on the same stack written to a file
    write_tiff(tmp_path / "se2.tif", ch.data, ch.scale, "nm")
    assert main(["fib", str(tmp_path / "se2.tif"), "--ruler-rows", "0", str(band),
                 "--ruler-angle", str(small_fib.ruler.angle_deg),
                 "--thickness-out", str(tmp_path / "t.csv"), "--out", str(tmp_path / "iso.tif")]
                ) == 0
    printed = capsys.readouterr().out
    (cli,) = read_volumes(tmp_path / "iso.tif")
    cli_table = pd.read_csv(tmp_path / "t.csv")
    # demo: its FIB step on the same sample
    ctx = DemoContext(out=tmp_path / "demo", seed=0, data={"fib": small_fib})
    ctx.out.mkdir()
    step_fib(ctx)
    demo = ctx.data["fib_se2_isotropic"]
    demo_table = pd.read_csv(ctx.out / "fib_thickness.csv")

    np.testing.assert_array_equal(widget_vol, cli.data)
    np.testing.assert_array_equal(widget_vol, demo.volume)
    assert widget_vol.shape[1] == ch.data.shape[1] - band
    for col in ("slice", "depth_nm", "thickness_nm", "uncertainty_nm", "confidence",
                "drift_x_px"):
        np.testing.assert_array_equal(widget_table[col].to_numpy(float),
                                      cli_table[col].to_numpy(float))
        np.testing.assert_array_equal(widget_table[col].to_numpy(float),
                                      demo_table[col].to_numpy(float))
    assert (widget_table["flags"].tolist() == cli_table["flags"].fillna("").tolist()
            == demo_table["flags"].fillna("").tolist())
    # one placement: the band's rows below the stack's first voxel
    origin = (0.0, band * ch.scale[-1], 0.0)
    np.testing.assert_allclose(w.result_layer.translate, origin)
    assert demo.origin_nm == origin
    assert f"origin (z, y, x) 0 {origin[1]:g} 0 nm" in printed
    assert cli.scale == tuple(w.result_layer.scale) == demo.spacing_nm
    assert fib_se2_settings(small_fib).band_rows == (0, band)


def test_ml_interpolation_shows_progress_and_cancels_within_a_second(make_napari_viewer,
                                                                     cancel_mid_action):
    """Cancel clicked 2 s into the ML inpainting stops it within 1 s and adds nothing; the
    bar has moved by then; the UI thread keeps beating (20 ms timer) meanwhile."""
    rng = np.random.default_rng(5)
    seg = ndi.gaussian_filter(rng.random((48, 128, 128)), 3.0) > 0.5  # ~70 s of ML on 2 cores
    viewer = make_napari_viewer()
    layer = viewer.add_labels(seg.astype(np.uint8), name="seg", scale=(10.0, 2.5, 2.5),
                              units="nm")
    w = FibWidget(viewer)
    w.stack.set_layer(layer)
    w.source_form["source"].value = "constant"
    w.constant_form["constant_nm"].value = 10.0
    w.volume_form["method"].value = "ml"
    run = cancel_mid_action(viewer, w.runner, w.run_button, action="FIB: ml interpolation")
    run.assert_prompt()
    assert w.result_layer is None


def test_errors_name_the_widgets_controls(make_napari_viewer, qtbot, small_fib):
    viewer = make_napari_viewer()
    ch = small_fib.channels[0]
    data = ch.data.copy()
    data[5:7, :small_fib.ruler.band_rows] = data[0, :small_fib.ruler.band_rows].mean()
    layer = viewer.add_image(data, name="SE2 blank", scale=ch.scale, units=ch.units)
    w = FibWidget(viewer)
    w.stack.set_layer(layer)
    w.source_form["source"].value = "ruler marks"
    w.ruler_form["angle_deg"].value = small_fib.ruler.angle_deg
    w.source_form["band_rows"].value = f"0, {small_fib.ruler.band_rows}"
    text = _error_after_click(qtbot, w, w.measure_button)
    assert "not found in slices 5, 6" in text
    assert "'Fallback thickness'" in text and "'Band rows'" in text
    assert "fallback_thickness" not in text and "max_step_px" not in text
    # ticking the fallback measures, flagged
    w.ruler_details["fallback_thickness"].value = 10.0
    qtbot.mouseClick(w.measure_button, Qt.MouseButton.LeftButton)
    _wait(qtbot, w)
    assert w.runner.last_error is None and "flagged" in w.summary.text()
    # a band in the middle of the image cannot be cut
    w.source_form["source"].value = "constant"
    w.source_form["band_rows"].value = "20, 30"
    text = _error_after_click(qtbot, w, w.run_button)
    assert "untick 'cut the ruler band from the result'" in text and "cut_band" not in text
    # too few marks in the first slice: the widget's mark-x control, not x_first
    w.source_form["source"].value = "ruler marks"
    w.source_form["band_rows"].value = f"0, {small_fib.ruler.band_rows}"
    w.ruler_details["polarity"].value = "bright"
    text = _error_after_click(qtbot, w, w.measure_button)
    assert "x_first" not in text and "polarity" not in text and "'Marks are'" in text
    # a greyscale stack called binary (was all ones) names the control, not kind=
    w.source_form["source"].value = "constant"
    w.volume_form["kind"].value = "binary"
    text = _error_after_click(qtbot, w, w.run_button)
    assert text.startswith("'Data are' binary needs a bool or 0/1 stack, but this float32")
    assert text.endswith("segment it first, or choose 'Data are' grey") and "kind=" not in text


def _click(qtbot, w, button) -> None:
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    _wait(qtbot, w)


def test_rerun_says_it_replaced_the_volume_and_stale_metrics_are_cleared(
        make_napari_viewer, qtbot, small_mimic, errors):
    """Run again with another 'Grid spacing': the volume line says the earlier layer of
    that name was replaced. The metrics name their volume and are cleared by a new volume
    and by a refused metrics run."""
    viewer = make_napari_viewer()
    w = _constant_nearest(viewer, small_mimic)
    _click(qtbot, w, w.run_button)
    assert w.runner.last_error is None
    assert w.volume_summary.text().startswith("'seg isotropic (nearest)': ")
    assert "replaced" not in w.volume_summary.text()
    _click(qtbot, w, w.metrics_button)
    assert w.metrics_summary.text().startswith("anisotropy of 'seg isotropic (nearest)': ")
    w.volume_form["grid_nm"].value = 5.0
    _click(qtbot, w, w.run_button)
    assert w.runner.last_error is None
    assert [layer.name for layer in viewer.layers].count("seg isotropic (nearest)") == 1
    assert ("; replaced the earlier 'seg isotropic (nearest)' (rename a layer to keep it)"
            in w.volume_summary.text())
    assert "voxels of (5, 2.5, 2.5) nm" in w.volume_summary.text()
    assert w.metrics_summary.text() == "" and w.metrics_table.frame.empty  # a new volume
    _click(qtbot, w, w.metrics_button)
    assert w.metrics_summary.text() != ""
    w.truth.set_layer(viewer.layers["seg"])  # on the slice grid: refused, the last metrics cleared
    qtbot.mouseClick(w.metrics_button, Qt.MouseButton.LeftButton)
    assert errors[-1].startswith("'Ground truth' 'seg' is ")
    assert w.metrics_summary.text() == "" and w.metrics_table.frame.empty


def _two_detectors(viewer, fib):
    """The sample as the plugin ships it: one 3D layer per detector."""
    return [viewer.add_image(ch.data, name=name, scale=ch.scale, units=ch.units)
            for ch, name in zip(fib.channels, ("SE2", "InLens"), strict=True)]


def test_channel_is_off_for_a_3d_stack_and_marks_of_other_runs_are_hidden(
        make_napari_viewer, qtbot, small_fib):
    viewer = make_napari_viewer()
    se2, inlens = _two_detectors(viewer, small_fib)
    both = viewer.add_image(np.stack([se2.data, inlens.data]), name="both",
                            scale=se2.scale, units="nm")
    w = FibWidget(viewer)
    w.stack.set_layer(se2)
    assert not w.channel.isEnabled()
    assert "3D (z, y, x) layer has one channel" in w.channel.toolTip()
    assert "choose its layer as Stack" in w.channel.toolTip()
    w.stack.set_layer(both)
    assert w.channel.isEnabled() and w.channel.maximum() == 1
    w.source_form["source"].value = "ruler marks"
    w.ruler_form["angle_deg"].value = small_fib.ruler.angle_deg
    band = f"0, {small_fib.ruler.band_rows}"
    w.source_form["band_rows"].value = band
    w.channel.setValue(1)
    _click(qtbot, w, w.measure_button)
    from_both = w.thickness_nm.copy()
    # a measurement on InLens, then a failed one on SE2: InLens's marks hidden, kept
    w.stack.set_layer(inlens)
    assert not w.channel.isEnabled()
    _click(qtbot, w, w.measure_button)
    np.testing.assert_allclose(w.thickness_nm, from_both)  # channel 1 is InLens
    marks = viewer.layers["InLens ruler marks"]
    assert marks.visible and not viewer.layers["both ruler marks"].visible
    w.stack.set_layer(se2)
    w.source_form["band_rows"].value = "20, 40"  # no marks there
    with qtbot.capture_exceptions():
        _click(qtbot, w, w.measure_button)
    assert w.runner.last_error is not None
    assert marks in viewer.layers and not marks.visible
    # measured again on InLens: its marks shown again
    w.stack.set_layer(inlens)
    w.source_form["band_rows"].value = band
    _click(qtbot, w, w.measure_button)
    assert viewer.layers["InLens ruler marks"] is marks and marks.visible


def test_truth_on_the_slice_grid_repositioned_with_the_grey_stacks_thicknesses(
        make_napari_viewer, qtbot, small_fib, tmp_path, monkeypatch, errors):
    """The refusal of a truth on the slice grid says how to reposition it; doing that
    (measure on SE2, Export CSV, the CSV as the truth's source) gives a truth on the
    isotropic grid, and the metrics against it run."""
    viewer = make_napari_viewer()
    se2, _ = _two_detectors(viewer, small_fib)
    lab = small_fib.labels
    truth = viewer.add_labels(lab.data, name="truth", scale=lab.scale, units=lab.units)
    w = FibWidget(viewer)
    w.stack.set_layer(truth)
    w.source_form["source"].value = "constant"
    w.constant_form["constant_nm"].value = 20.0
    w.volume_form["method"].value = "nearest"
    _click(qtbot, w, w.run_button)
    w.truth.set_layer(truth)
    qtbot.mouseClick(w.metrics_button, Qt.MouseButton.LeftButton)
    assert ("measure them on the grey stack of the same slices (Measure thickness), "
            "'Export CSV ...' the thickness table, then choose the truth as Stack with "
            "Source 'CSV file'") in errors[-1]
    # ... which works: thicknesses of SE2, exported, read for the truth
    w.stack.set_layer(se2)
    w.source_form["source"].value = "ruler marks"
    w.ruler_form["angle_deg"].value = small_fib.ruler.angle_deg
    w.source_form["band_rows"].value = f"0, {small_fib.ruler.band_rows}"
    _click(qtbot, w, w.run_button)
    grey_shape = viewer.layers["SE2 isotropic (nearest)"].data.shape
    csv = tmp_path / "thickness.csv"
    monkeypatch.setattr("napari_corrtomo.widgets._table.QFileDialog.getSaveFileName",
                        lambda *a, **k: (str(csv), "CSV (*.csv)"))
    qtbot.mouseClick(w.thickness_table.export_button, Qt.MouseButton.LeftButton)
    w.stack.set_layer(truth)
    w.source_form["source"].value = "CSV file"
    w.csv_form["csv_path"].value = str(csv)
    _click(qtbot, w, w.run_button)
    assert w.runner.last_error is None
    iso_truth = viewer.layers["truth isotropic (nearest)"]
    assert iso_truth.data.shape == grey_shape
    np.testing.assert_allclose(iso_truth.translate,
                               viewer.layers["SE2 isotropic (nearest)"].translate)
    w.truth.set_layer(iso_truth)
    _click(qtbot, w, w.metrics_button)
    assert w.runner.last_error is None
    assert w.metrics_summary.text().startswith("metrics of 'truth isotropic (nearest)': ")


def test_the_end_of_a_run_keeps_the_ui_responsive(make_napari_viewer, qtbot, heartbeat):
    """Reposition + interpolate (ruler marks, cubic) on the shipped sample with 7 layers:
    the thickness results, the marks layer and the volume layer come in event-loop turns
    of their own (together they paused the UI thread 1.2 s)."""
    viewer = make_napari_viewer(show=True)
    viewer.open_sample("napari-corrtomo", "fib_sem_stack")
    se2 = viewer.layers["FIB-SEM SE2"]
    for k in range(4):
        viewer.add_image(se2.data[::2], name=f"other {k}", scale=se2.scale, units="nm")
    assert len(viewer.layers) == 7
    w = FibWidget(viewer)
    w.stack.set_layer(se2)
    w.source_form["band_rows"].value = "0, 16"
    w.volume_form["method"].value = "cubic"
    with heartbeat() as beats:
        _click(qtbot, w, w.run_button)
    print(beats.summary("Reposition + interpolate"), beats.sources)
    assert w.runner.last_error is None
    assert {"FIB-SEM SE2 ruler marks", "FIB-SEM SE2 isotropic (cubic)"} <= {
        layer.name for layer in viewer.layers}
    assert beats.gaps.max() < 0.5, beats.sources
