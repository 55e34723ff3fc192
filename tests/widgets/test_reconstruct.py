"""The Reconstruct dock widget in a real viewer: geometry form, preview, full run, FSC,
centre search, JSON round trip, bad input and cancel."""

import re

import numpy as np
import pytest

from napari_corrtomo.core import synthetic
from napari_corrtomo.core.recon import Geometry
from napari_corrtomo.widgets.reconstruct import ReconstructWidget


@pytest.fixture(scope="module")
def small_ct():
    return synthetic.projections("parallel", seed=0, volume_shape=(8, 48, 48), det_shape=(8, 48),
                                 n_angles=90, raw=True, zingers=1e-3, center_offset=1.5)


def _add(viewer, s, name="proj"):
    ps = s.geometry.pixel_size
    data = s.raw if s.raw is not None else s.projections
    layer = viewer.add_image(data, name=name, scale=(1, ps, ps),
                             metadata={"geometry": s.geometry.to_dict(),
                                       "truth": {"volume_shape": list(s.phantom.shape)}})
    if s.raw is not None:
        viewer.add_image(s.flats, name="flats")
        viewer.add_image(s.darks, name="darks")
    return layer


def _wait(qtbot, widget, timeout=60000):
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=timeout)


def test_full_pipeline_from_raw_counts(make_napari_viewer, qtbot, small_ct):
    viewer = make_napari_viewer()
    _add(viewer, small_ct)
    w = ReconstructWidget(viewer)
    w.projections.set_layer(viewer.layers["proj"])
    # the form was filled from the layer metadata
    assert w.kind.currentText() == "parallel" and w.unit.currentText() == "um"
    assert w.reconstruction.value().shape == small_ct.volume_shape
    w.flats.set_layer(viewer.layers["flats"])
    w.darks.set_layer(viewer.layers["darks"])
    assert w.preprocess["log"].value is True
    w.preprocess["outlier_threshold"].value = 5.0
    w.find_center()
    _wait(qtbot, w)
    assert abs(w.center.value() - 1.5) < 0.2
    viewer.layers["proj"].metadata["modality"] = "microCT"  # as the sample's scans say
    # the slider stands in the middle of the projections, above the volume to come
    assert viewer.dims.point[0] > small_ct.volume_shape[0] * 0.5
    w.run_button.click()
    _wait(qtbot, w)
    assert w.runner.last_error is None
    out = viewer.layers["proj reconstruction"]
    # ... and is moved into the reconstruction, which is on screen (it was not)
    low, high = out.extent.world
    assert low[0] <= viewer.dims.point[0] <= high[0]
    np.testing.assert_allclose(out.scale, (0.5, 0.5, 0.5))
    assert str(out.units[0]) == "micrometer"
    err = np.linalg.norm(out.data - small_ct.phantom) / np.linalg.norm(small_ct.phantom)
    assert err < 0.3
    assert viewer.layers["proj"].data is not out.data  # input untouched, new layer
    assert out.metadata["modality"] == "microCT"  # the Project table's column (was empty)
    assert "replaced" not in w.result.text()
    w.run_button.click()  # again: the panel says it replaced its own earlier result
    _wait(qtbot, w)
    assert w.result.text().endswith("; replaced the earlier 'proj reconstruction' (rename a "
                                    "layer to keep it)")


def test_raw_counts_without_flats_or_log_are_said_to_be_raw(make_napari_viewer, qtbot,
                                                             small_ct, monkeypatch):
    """Raw counts reconstructed as line integrals gave an error of 1e5 against the phantom
    without a word: the panel says what they look like and what to choose."""
    from napari_corrtomo.widgets import reconstruct as module

    warned: list[str] = []
    monkeypatch.setattr(module, "show_warning", warned.append)
    viewer = make_napari_viewer()
    _add(viewer, small_ct)
    w = ReconstructWidget(viewer)
    w.projections.set_layer(viewer.layers["proj"])
    for select in (w.flats, w.darks):  # none chosen: -log follows the flats
        select.setCurrentIndex(select.findText(""))
    assert w.preprocess["log"].value is False
    w._inputs()
    assert len(warned) == 1 and "looks like raw detector counts" in warned[0]
    assert "'Flat fields'" in warned[0] and "'-log'" in warned[0]
    w.flats.set_layer(viewer.layers["flats"])
    w._inputs()
    assert len(warned) == 1  # with its flats: nothing to say


def test_preview_and_fsc(make_napari_viewer, qtbot):
    s = synthetic.projections("tilt_series", seed=1, volume_shape=(48, 8, 48),
                              det_shape=(8, 48), n_angles=90)
    viewer = make_napari_viewer()
    _add(viewer, s)
    w = ReconstructWidget(viewer)
    w.reconstruction["method"].value = "SIRT"
    w.reconstruction["iterations"].value = 20
    w.slice_index.setValue(3)
    w.preview()
    _wait(qtbot, w)
    prev = viewer.layers["proj preview"]
    assert prev.data.shape == (48, 48)
    np.testing.assert_allclose(prev.scale, (0.5, 0.5))
    w.reconstruction["method"].value = "FBP / FDK (analytic)"
    w.run_fsc()
    _wait(qtbot, w)
    res = w.last_fsc
    assert res is not None and res.resolution_half_bit >= 2 * 0.5
    assert w.result.text() == res.summary("nm") and " nm (1/2-bit" in w.result.text()
    labels = [line.get_label() for line in w.plot.figure.axes[0].lines]
    assert {"FSC (even/odd)", "1/2-bit", "1-bit"} <= set(labels)


def test_geometry_json_round_trip_and_angles_file(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((12, 6, 10), np.float32), name="stack")
    w = ReconstructWidget(viewer)
    g = Geometry.laminography(np.linspace(0, 360, 12, endpoint=False), (6, 10), 25.0, 2.0, 80.0,
                              40.0, unit="mm", shifts=(0, 0.75))
    path = g.save(tmp_path / "g.json")
    w.load_geometry(str(path))
    assert w.geometry() == g
    w.save_geometry(str(tmp_path / "again.json"))
    assert Geometry.load(tmp_path / "again.json") == g
    angles = np.sort(np.random.default_rng(0).uniform(0, 360, 12))
    np.savetxt(tmp_path / "angles.txt", angles)
    w.load_angles(str(tmp_path / "angles.txt"))
    np.testing.assert_allclose(w.geometry().angles_deg, angles)


def test_a_docked_panel_refuses_the_projections_as_their_own_flats(make_napari_viewer, errors):
    """Docked from the Plugins menu the widget sees napari's proxy viewer, whose layers are
    new objects on each access: the refusal compares names (it once let the run start)."""
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((10, 6, 12), np.float32), name="stack")
    _, w = viewer.window.add_plugin_dock_widget("napari-corrtomo", "Reconstruct")
    w.flats.setCurrentText("stack")
    assert w.projections.layer() is not w.flats.layer()  # the proxy's new objects
    w.run_button.click()
    assert errors == ["'Flat fields' is the projection layer 'stack' itself: choose the "
                      "layer of those images, or none"]
    assert not w.runner.busy and [layer.name for layer in viewer.layers] == ["stack"]


def test_bad_input_adds_nothing(make_napari_viewer, qtbot, errors):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((10, 12), np.float32), name="flat image")
    w = ReconstructWidget(viewer)
    assert w.run() is None and "3D" in errors[-1]
    viewer.add_image(np.zeros((10, 12, 3), np.uint8), name="photo", rgb=True)
    w.projections.set_layer(viewer.layers["photo"])
    assert w.run() is None and "'photo' is an RGB image" in errors[-1]
    viewer.layers.remove("photo")
    viewer.add_image(np.zeros((10, 6, 12), np.float32), name="stack")
    w.projections.set_layer(viewer.layers["stack"])
    w.kind.setCurrentText("laminography")
    w.tilt.setValue(0.0)  # the geometry's (0, 90): 0 cannot be typed
    assert 0.0 < w.tilt.value() < 1.0 and w.tilt.maximum() < 90.0
    w.kind.setCurrentText("parallel")
    # start = stop: every projection at one angle
    w.angle_stop.setValue(w.angle_start.value())
    w.run_button.click()
    assert "the 10 angles (from 'First angle' to 'Stop angle') are all 0 deg" in errors[-1]
    w.angle_stop.setValue(180.0)
    # a layer as its own flats or darks, one layer as both
    w.flats.setCurrentText("stack")
    w.run_button.click()
    assert "'Flat fields' is the projection layer 'stack' itself" in errors[-1]
    viewer.add_image(np.ones((2, 6, 12), np.float32), name="beam")
    w.flats.setCurrentText("beam")
    w.darks.setCurrentText("beam")
    w.run_button.click()
    assert "'beam' is chosen as both 'Flat fields' and 'Dark fields'" in errors[-1]
    w.flats.setCurrentText("")
    w.darks.setCurrentText("")
    # a preview slice outside the volume, in the form's words, before any work
    w.slice_index.setValue(50)
    with qtbot.capture_exceptions():
        w.preview_button.click()
        _wait(qtbot, w)
    assert "'Slice' 50 is outside the volume" in str(w.runner.status.text())
    # a settings check speaks the form's labels (the core's SettingError, worded by the form)
    w.reconstruction["shape"].value = "0, 6, 12"
    w.run_button.click()
    assert "'Volume (z, y, x)' must be three positive voxel counts" in errors[-1]
    # the panel's status says so too (it kept the last run's "Done.")
    assert w.runner.status.text() == f"Not started: {errors[-1]}"
    w.reconstruction["shape"].value = ""
    stack = viewer.layers["stack"]
    stack.data = np.full((10, 6, 12), np.nan, np.float32)
    # (the foundation's TaskRunner also re-raises worker errors into the Qt event loop)
    with qtbot.capture_exceptions():
        w.run()
        _wait(qtbot, w)
    assert isinstance(w.runner.last_error, ValueError) and "NaN" in str(w.runner.last_error)
    stack.data = np.zeros((10, 6, 12), np.float32)  # once reconstructed to zeros, silently
    with qtbot.capture_exceptions():
        w.run()
        _wait(qtbot, w)
    assert "hold one value (0.0) throughout: there is nothing to reconstruct" in str(
        w.runner.last_error)
    assert [layer.name for layer in viewer.layers] == ["flat image", "stack", "beam"]


def test_cancel_leaves_no_layer(make_napari_viewer, qtbot):
    s = synthetic.projections("parallel", seed=2, volume_shape=(8, 48, 48), det_shape=(8, 48),
                              n_angles=90)
    viewer = make_napari_viewer()
    _add(viewer, s)
    w = ReconstructWidget(viewer)
    w.reconstruction["method"].value = "SIRT"
    w.reconstruction["iterations"].value = 100000
    with qtbot.capture_exceptions():
        w.run()
        qtbot.waitUntil(lambda: w.runner.bar.maximum() > 1, timeout=30000)
        w.runner.cancel()
        _wait(qtbot, w)
    assert "proj reconstruction" not in viewer.layers
    assert "Cancelled" in w.runner.status.text()


def test_projection_samples_open_and_fill_the_form(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-corrtomo", "et_tilt_series")
    et = viewer.layers["ET tilt series"]
    assert Geometry.from_dict(et.metadata["geometry"]).kind == "tilt_series"
    assert np.asarray(et.metadata["truth"]["shifts"]).shape == (et.data.shape[0], 2)
    assert viewer.layers["ET phantom"].visible is False
    viewer.layers.clear()
    viewer.open_sample("napari-corrtomo", "tomography_projections")
    names = [layer.name for layer in viewer.layers]
    for name in ("microCT raw projections", "microCT flats", "microCT darks",
                 "cone-beam projections", "laminography projections"):
        assert name in names
    assert viewer.layers.extent.units is not None  # one unit per axis for napari
    w = ReconstructWidget(viewer)
    w.projections.set_layer(viewer.layers["cone-beam projections"])
    g = w.geometry()
    assert g.kind == "cone" and g.magnification == pytest.approx(2.0)
    assert w.reconstruction.value().shape == (64, 64, 64)


def test_tilt_series_alignment_in_the_widget(make_napari_viewer, qtbot):
    s = synthetic.projections("tilt_series", seed=4, volume_shape=(48, 16, 48),
                              det_shape=(16, 48), n_angles=90, jitter_px=1.5)
    viewer = make_napari_viewer()
    _add(viewer, s)
    w = ReconstructWidget(viewer)
    # the default: the most consistent of the methods (the pillar stays in the field of
    # view, so a centre-of-mass one; cross-correlation alone drifts over 90 tilts)
    assert w.alignment["align_method"].value == "automatic (the most consistent)"
    assert w.alignment["align"].value is True  # ticked for a tilt series (a GUI trial: off)
    errors = []
    for align in (False, True):
        w.alignment["align"].value = align
        w.run()
        _wait(qtbot, w)
        out = viewer.layers["proj reconstruction"].data
        errors.append(np.linalg.norm(out - s.phantom) / np.linalg.norm(s.phantom))
    assert w.alignment["align"].enabled and errors[1] < 0.6 * errors[0]
    # in the form's words: the chosen centre-of-mass method and every method's residual
    assert re.search(r"alignment: (centre of mass|cross-correlation \+ centre of mass) "
                     r"\(the most consistent; reprojection residual cross-correlation ",
                     w.result.text()), w.result.text()


def test_widget_cli_and_demo_give_the_same_reconstruction(make_napari_viewer, qtbot, tmp_path):
    """One raw scan, three front ends, one pipeline (core.recon.pipeline): the same volume,
    the same rotation-axis offset and the same FSC of even/odd halves."""
    import pandas as pd
    from qtpy.QtCore import Qt

    from napari_corrtomo.cli import main
    from napari_corrtomo.core import io
    from napari_corrtomo.demo import (
        MICROCT_RAW_SCAN,
        DemoContext,
        raw_microct_scan,
        reconstruct_raw_microct,
    )

    s = raw_microct_scan(0)
    assert MICROCT_RAW_SCAN == {"outlier_threshold": 5.0, "center": "auto"}
    # widget: the form filled as a user would, the buttons clicked
    viewer = make_napari_viewer()
    _add(viewer, s)
    w = ReconstructWidget(viewer)
    qtbot.addWidget(w)
    w.projections.set_layer(viewer.layers["proj"])
    w.flats.set_layer(viewer.layers["flats"])
    w.darks.set_layer(viewer.layers["darks"])
    w.preprocess["outlier_threshold"].value = 5.0
    w.auto_center.setChecked(True)
    geometry = w.geometry()
    np.testing.assert_array_equal(geometry.angles_deg, s.geometry.angles_deg)
    assert geometry.pixel_size == s.geometry.pixel_size
    qtbot.mouseClick(w.run_button, Qt.MouseButton.LeftButton)
    _wait(qtbot, w)
    assert w.runner.last_error is None, w.runner.last_error
    qtbot.mouseClick(w.fsc_button, Qt.MouseButton.LeftButton)
    _wait(qtbot, w)
    assert w.runner.last_error is None, w.runner.last_error
    widget_vol = np.asarray(viewer.layers["proj reconstruction"].data)
    widget_geometry = Geometry.from_dict(
        viewer.layers["proj reconstruction"].metadata["geometry"])
    # demo: its raw microCT reconstruction, and the scan it writes for the command line
    ctx = DemoContext(out=tmp_path / "demo", seed=0, data={})
    (ctx.out / "data").mkdir(parents=True)
    reconstruct_raw_microct(ctx)
    demo = ctx.data["microct_raw_reconstructions"]["fbp"]
    # command line on the scan as the demo wrote it (docs/reconstruction.md's example)
    data = ctx.out / "data"
    assert main(["reconstruct", str(data / "microCT_raw_projections.tif"), "--geometry",
                 str(data / "microCT_geometry.json"), "--flats", str(data / "microCT_flats.tif"),
                 "--darks", str(data / "microCT_darks.tif"), "--outliers", "5", "--center",
                 "auto", "--shape", *map(str, s.volume_shape), "--out", str(tmp_path / "vol.tif"),
                 "--fsc", str(tmp_path / "fsc.csv"), "--save-geometry",
                 str(tmp_path / "used.json")]) == 0
    [cli] = io.read_volumes(tmp_path / "vol.tif")
    cli_fsc = pd.read_csv(tmp_path / "fsc.csv")
    cli_geometry = Geometry.load(tmp_path / "used.json")

    np.testing.assert_array_equal(widget_vol, cli.data)
    np.testing.assert_array_equal(widget_vol, demo.volume)
    np.testing.assert_array_equal(widget_geometry.shifts, cli_geometry.shifts)
    np.testing.assert_array_equal(widget_geometry.shifts, demo.geometry.shifts)
    assert abs(np.mean(demo.geometry.shifts[:, 1]) - 2.5) < 0.3
    np.testing.assert_array_equal(w.last_fsc.fsc, cli_fsc["fsc"].to_numpy())
    np.testing.assert_array_equal(w.last_fsc.fsc, demo.fsc.fsc)


def test_correlative_scans_reconstruct_into_the_correlative_frames(make_napari_viewer, qtbot):
    """Tutorial step 1: the raw microCT scan of the correlative sample, reconstructed in the
    widget (its flats and darks picked with it, Reconstruct clicked), gives the overview volume in the
    frame of the correlative sample (same shape and voxel size) close to its object."""
    from qtpy.QtCore import Qt

    viewer = make_napari_viewer()
    viewer.open_sample("napari-corrtomo", "correlative_scans")
    names = [layer.name for layer in viewer.layers]
    for name in ("microCT raw projections", "microCT flats", "microCT darks", "microCT phantom",
                 "nanoCT raw projections", "nanoCT flats", "nanoCT darks", "nanoCT phantom"):
        assert name in names
    sample = synthetic.correlative_particles()
    phantom = viewer.layers["microCT phantom"]
    assert phantom.data.shape == sample.microct.data.shape
    np.testing.assert_allclose(phantom.scale, sample.microct.scale)
    w = ReconstructWidget(viewer)
    qtbot.addWidget(w)
    w.projections.set_layer(viewer.layers["microCT raw projections"])
    # its flats and darks come with it, and -log with the flats
    assert (w.flats.currentText(), w.darks.currentText()) == ("microCT flats", "microCT darks")
    assert w.preprocess["log"].value is True
    assert w.reconstruction.value().shape == sample.microct.data.shape
    qtbot.mouseClick(w.run_button, Qt.MouseButton.LeftButton)
    _wait(qtbot, w)
    assert w.runner.last_error is None, w.runner.last_error
    out = viewer.layers["microCT reconstruction"]  # named for the sample
    np.testing.assert_allclose(out.scale, sample.microct.scale)
    vol, ref = np.asarray(out.data), np.asarray(phantom.data)
    err = np.linalg.norm(vol - ref) / np.linalg.norm(ref)
    assert err < 0.25, err  # 0.187 measured
    # the reconstruction shows the overview's structure, voxel for voxel
    assert np.corrcoef(vol.ravel(), np.asarray(sample.microct.data).ravel())[0, 1] > 0.95


def test_flats_and_darks_are_picked_for_the_chosen_projections(make_napari_viewer):
    """The flats and darks named like the chosen projections, with their detector shape, are
    chosen for them (and -log with them), whether they were opened before or after; a
    stack without its own leaves none chosen; a choice made stays when layers arrive."""
    viewer = make_napari_viewer()
    w = ReconstructWidget(viewer)
    rng = np.random.default_rng(0)
    stack = {"microCT": (6, 8, 12), "nanoCT": (6, 8, 12), "cone-beam": (6, 10, 12)}
    for name, shape in stack.items():
        viewer.add_image(rng.random(shape, np.float32), name=f"{name} raw projections")
    assert w.flats.currentText() == "" and w.preprocess["log"].value is False
    for name in ("nanoCT", "microCT"):  # opened after the projections
        for ref in ("flats", "darks"):
            viewer.add_image(rng.random((3, *stack[name][1:]), np.float32), name=f"{name} {ref}")
    w.projections.set_layer(viewer.layers["microCT raw projections"])
    assert (w.flats.currentText(), w.darks.currentText()) == ("microCT flats", "microCT darks")
    assert w.preprocess["log"].value is True
    # same detector shape: the name decides
    w.projections.set_layer(viewer.layers["nanoCT raw projections"])
    assert (w.flats.currentText(), w.darks.currentText()) == ("nanoCT flats", "nanoCT darks")
    # none named for it and the detector differs: none chosen, no -log
    w.projections.set_layer(viewer.layers["cone-beam raw projections"])
    assert (w.flats.currentText(), w.darks.currentText()) == ("", "")
    assert w.preprocess["log"].value is False
    # opened while the projections are chosen: picked as they arrive
    viewer.add_image(rng.random((3, 10, 12), np.float32), name="cone-beam flat field")
    assert w.flats.currentText() == "cone-beam flat field"
    # a choice made stays when another layer arrives
    w.darks.setCurrentText("nanoCT darks")
    viewer.add_image(rng.random((3, 10, 12), np.float32), name="cone-beam dark field")
    assert w.darks.currentText() == "nanoCT darks"
    # files named for what they are, nothing in common with the projections' name
    viewer.add_image(rng.random((6, 7, 9), np.float32), name="scan")
    for ref in ("flats", "darks"):
        viewer.add_image(rng.random((3, 7, 9), np.float32), name=ref)
    w.projections.set_layer(viewer.layers["scan"])
    assert (w.flats.currentText(), w.darks.currentText()) == ("flats", "darks")
    # same detector, none named for it: the other stack's references are cleared (they
    # stayed, and the ET tilt series' -log of microCT counts failed)
    viewer.add_image(rng.random((6, 8, 12), np.float32), name="ET tilt series")
    w.projections.set_layer(viewer.layers["microCT raw projections"])
    assert w.flats.currentText() == "microCT flats"
    w.projections.set_layer(viewer.layers["ET tilt series"])
    assert (w.flats.currentText(), w.darks.currentText()) == ("", "")
    assert w.preprocess["log"].value is False


def _click(qtbot, button):
    from qtpy.QtCore import Qt

    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def test_an_angle_file_of_another_count_is_refused(make_napari_viewer, qtbot, small_ct,
                                                    tmp_path, errors):
    """10 angles from a file for 90 projections: the label said "10 angles from ..." and the
    preview used the First/Stop range instead, without a word."""
    viewer = make_napari_viewer()
    _add(viewer, small_ct)
    w = ReconstructWidget(viewer)
    w.projections.set_layer(viewer.layers["proj"])
    np.savetxt(tmp_path / "angles_wrong.txt", np.linspace(0, 180, 10, endpoint=False))
    w.load_angles(str(tmp_path / "angles_wrong.txt"))
    _click(qtbot, w.preview_button)
    assert errors == ["the angle list has 10 angles (from angles_wrong.txt) but 'proj' has 90 "
                      "projections: load a file with one angle per projection, or change "
                      "'First angle' or 'Stop angle' to use a range"]
    assert not w.runner.busy and "proj preview" not in viewer.layers
    assert w.runner.status.text() == f"Not started: {errors[-1]}"
    # a range typed instead drops the list
    w.angle_stop.setValue(179.0)
    w.angle_stop.setValue(180.0)
    assert w.angle_info.text() == ""
    _click(qtbot, w.preview_button)
    _wait(qtbot, w)
    assert w.runner.last_error is None and "proj preview" in viewer.layers


def test_a_volume_chosen_as_projections_is_warned_about(make_napari_viewer, qtbot, small_ct,
                                                        monkeypatch, errors):
    """The microCT phantom as 'Projections' kept the raw scan's geometry and its preview
    ended "Done." without a word; a reconstruction is refused."""
    from napari_corrtomo.widgets import reconstruct as module

    warned: list[str] = []
    monkeypatch.setattr(module, "show_warning", warned.append)
    viewer = make_napari_viewer()
    _add(viewer, small_ct)
    viewer.add_image(small_ct.phantom, name="phantom", metadata={"modality": "microCT"})
    w = ReconstructWidget(viewer)
    w.projections.set_layer(viewer.layers["proj"])
    for select in (w.flats, w.darks):
        select.setCurrentIndex(select.findText(""))
    viewer.layers["proj"].data = small_ct.projections  # line integrals: nothing to warn
    _click(qtbot, w.preview_button)
    _wait(qtbot, w)
    assert warned == [] and w.result.text() == ""
    w.projections.set_layer(viewer.layers["phantom"])
    _click(qtbot, w.preview_button)
    _wait(qtbot, w)
    expected = ("'phantom' has no acquisition geometry of its own and looks like a volume of "
                "the sample (z, y, x): the geometry of 'proj' is used for it; choose a "
                "projection stack (angle, row, col) as 'Projections', or check the geometry")
    assert warned == [expected]
    assert w.result.text() == expected  # still there once the notification is gone
    viewer.add_image(small_ct.phantom, name="volume",
                     metadata={"geometry": small_ct.geometry.to_dict(), "method": "fbp"})
    w.projections.set_layer(viewer.layers["volume"])
    _click(qtbot, w.run_button)
    assert errors[-1] == ("'volume' is a reconstruction, a volume (z, y, x), not a projection "
                          "stack: choose the projections (angle, row, col) as 'Projections'")
    assert "volume reconstruction" not in viewer.layers


def test_a_short_cone_scan_is_warned_about_in_the_panel(make_napari_viewer, qtbot,
                                                        monkeypatch):
    """FDK of a 180-degree cone-beam scan: the core's warning went to the terminal only and
    the panel said "Done."."""
    from napari_corrtomo.widgets import reconstruct as module

    warned: list[str] = []
    monkeypatch.setattr(module, "show_warning", warned.append)
    viewer = make_napari_viewer()
    viewer.add_image(np.random.default_rng(0).random((12, 6, 10)).astype(np.float32),
                     name="stack")
    w = ReconstructWidget(viewer)
    w.kind.setCurrentText("cone")
    w.angle_stop.setValue(180.0)
    w.slice_index.setValue(2)
    _click(qtbot, w.preview_button)
    _wait(qtbot, w)
    message = ("cone FBP/FDK assumes a full 360-degree rotation but the angles cover 180 "
               "degrees; expect artefacts (use SIRT or CGLS for short scans)")
    assert warned == [message] and w.result.text() == message
    assert w.runner.last_error is None
    w.angle_stop.setValue(360.0)
    _click(qtbot, w.preview_button)
    _wait(qtbot, w)
    assert warned == [message] and w.result.text() == ""


def test_swapped_references_and_raw_defaults_say_what_to_do(make_napari_viewer, qtbot,
                                                             small_ct, errors):
    viewer = make_napari_viewer()
    _add(viewer, small_ct)
    w = ReconstructWidget(viewer)
    w.projections.set_layer(viewer.layers["proj"])
    w.flats.set_layer(viewer.layers["darks"])
    w.darks.set_layer(viewer.layers["flats"])
    _click(qtbot, w.preview_button)
    _wait(qtbot, w)
    assert "they look swapped; give the open-beam frames as 'Flat fields' and the frames " \
           "without beam as 'Dark fields'" in errors[-1]
    w.flats.set_layer(viewer.layers["flats"])
    w.darks.set_layer(viewer.layers["darks"])
    _click(qtbot, w.preview_button)  # raw counts, zinger filter off, offset 0 px
    _wait(qtbot, w)
    hint = ("From raw counts: if the volume shows streaks or doubled edges, try 'Find centre' "
            "and a 'Zinger threshold' of 5 sigma.")
    assert w.result.text() == hint
    assert "'Slice'" in w.find_button.toolTip()  # it searches its own rows, says so
    w.preprocess["outlier_threshold"].value = 5.0
    _click(qtbot, w.preview_button)
    _wait(qtbot, w)
    assert w.result.text() == ""


def _dialogs(monkeypatch, path):
    """The file dialogs of the panel answer ``path``."""
    from napari_corrtomo.widgets import reconstruct as module

    for name in ("getOpenFileName", "getSaveFileName"):
        monkeypatch.setattr(module.QFileDialog, name, lambda *a, **k: (str(path), ""))


def test_a_geometry_json_of_another_scan_is_refused(make_napari_viewer, qtbot, small_ct,
                                                    tmp_path, monkeypatch, errors):
    """The cone scan's JSON loaded for the parallel one: the form became a cone of its
    detector and a volume was added without a word."""
    from napari_corrtomo.widgets import reconstruct as module

    warned: list[str] = []
    monkeypatch.setattr(module, "show_warning", warned.append)
    viewer = make_napari_viewer()
    _add(viewer, small_ct)
    cone = Geometry.cone(np.linspace(0, 360, 90, endpoint=False), (12, 20), 100.0, 100.0, 2.0,
                         unit="um")
    viewer.add_image(np.zeros((90, 12, 20), np.float32), name="cone scan",
                     metadata={"geometry": cone.to_dict()})
    w = ReconstructWidget(viewer)
    w.projections.set_layer(viewer.layers["cone scan"])
    _dialogs(monkeypatch, tmp_path / "cone.json")
    _click(qtbot, w.save_json)
    w.projections.set_layer(viewer.layers["proj"])
    before = w.geometry()
    _click(qtbot, w.load_json)
    assert errors == ["cone.json describes 90 projections of 12 x 20 pixels (rows x cols) but "
                      "'proj' is 90 of 8 x 48: it seems to be the geometry of 'cone scan' "
                      "(choose that layer as 'Projections' to use it); load the geometry of "
                      "'proj' instead; the form is unchanged"]
    assert w.geometry() == before and w.kind.currentText() == "parallel"
    # another angle count, of no layer here
    Geometry.parallel(np.linspace(0, 180, 45, endpoint=False), (8, 48), 0.5,
                      unit="um").save(tmp_path / "half.json")
    _dialogs(monkeypatch, tmp_path / "half.json")
    _click(qtbot, w.load_json)
    assert errors[-1] == ("half.json describes 45 projections of 8 x 48 pixels (rows x cols) "
                          "but 'proj' is 90 of 8 x 48: load the geometry of 'proj' instead; the "
                          "form is unchanged")
    assert w.geometry() == before
    # a file that fits is loaded for the chosen layer: another still gets a word
    _dialogs(monkeypatch, tmp_path / "proj.json")
    _click(qtbot, w.save_json)
    _click(qtbot, w.load_json)
    assert len(errors) == 2 and w.geometry() == before
    viewer.add_image(small_ct.projections, name="copy", scale=(1, 0.5, 0.5))
    w.projections.set_layer(viewer.layers["copy"])
    w.flats.setCurrentText("")
    _click(qtbot, w.preview_button)
    _wait(qtbot, w)
    assert warned == ["'copy' has no acquisition geometry of its own: the geometry of 'proj' is "
                      "used for it; choose a projection stack (angle, row, col) as "
                      "'Projections', or check the geometry"]


def test_a_pixel_size_far_from_the_layers_own_is_refused(make_napari_viewer, qtbot, small_ct,
                                                         errors):
    """500 typed for 0.5 um gave 500 um voxels, nm for um 0.5 nm voxels, without a word."""
    viewer = make_napari_viewer()
    _add(viewer, small_ct)
    w = ReconstructWidget(viewer)
    w.projections.set_layer(viewer.layers["proj"])
    w.pixel_size.setValue(500.0)
    _click(qtbot, w.run_button)
    assert errors == ["'Detector pixel size' 500 um is 1000 times the pixel size of 'proj' "
                      "(0.5 um, from its geometry metadata): check the number and its unit"]
    assert w.runner.status.text() == f"Not started: {errors[-1]}"
    w.pixel_size.setValue(0.5)
    w.unit.setCurrentText("nm")
    _click(qtbot, w.preview_button)
    assert errors[-1] == ("'Detector pixel size' 0.5 nm is 1/1000 of the pixel size of 'proj' "
                          "(0.5 um, from its geometry metadata): check the number and its unit")
    # a layer without geometry metadata: its scale in its unit
    viewer.add_image(small_ct.projections, name="scaled", scale=(1, 2.0, 2.0),
                     units=("um", "um", "um"))
    w.projections.set_layer(viewer.layers["scaled"])
    w.unit.setCurrentText("mm")
    _click(qtbot, w.preview_button)
    assert errors[-1].startswith("'Detector pixel size' 0.5 mm is 250 times the pixel size of "
                                 "'scaled' (2 um, from its scale)")
    assert "scaled preview" not in viewer.layers
    # a calibrated size a few % off passes
    w.projections.set_layer(viewer.layers["proj"])
    w.pixel_size.setValue(0.52)
    w.flats.setCurrentText("")
    viewer.layers["proj"].data = small_ct.projections
    _click(qtbot, w.preview_button)
    _wait(qtbot, w)
    assert len(errors) == 3 and w.runner.last_error is None and "proj preview" in viewer.layers


def test_an_axis_offset_off_the_detector_names_the_offset(make_napari_viewer, qtbot, small_ct,
                                                          errors):
    """100 px on a 48-column scan was said to make the volume's shadow miss the detector
    ("choose a smaller 'Volume (z, y, x)'")."""
    viewer = make_napari_viewer()
    _add(viewer, small_ct)
    w = ReconstructWidget(viewer)
    w.projections.set_layer(viewer.layers["proj"])
    w.center.setValue(100.0)
    _click(qtbot, w.run_button)
    assert errors == ["'Rotation-axis offset' 100 px puts the rotation axis at 100 px from the "
                      "detector centre, outside the detector (48 columns wide: the axis must "
                      "lie within +-24 px of its centre); give the offset in detector pixels, "
                      "or search it with 'Find centre'"]
    assert w.runner.status.text() == f"Not started: {errors[-1]}"
    assert "proj reconstruction" not in viewer.layers


def test_clearing_the_flats_clears_the_darks(make_napari_viewer, qtbot, small_ct, errors):
    """Darks left alone were refused ("dark frames need flat frames too") after a warning
    to choose flats."""
    viewer = make_napari_viewer()
    _add(viewer, small_ct)
    w = ReconstructWidget(viewer)
    w.projections.set_layer(viewer.layers["proj"])
    assert w.darks.currentText() == "darks"
    w.flats.setCurrentText("")
    assert w.darks.currentText() == "" and w.preprocess["log"].value is False
    w.preprocess["log"].value = True  # the counts as transmission, say
    _click(qtbot, w.preview_button)
    _wait(qtbot, w)
    assert errors == [] and w.runner.last_error is None and "proj preview" in viewer.layers


def test_the_result_line_is_of_the_chosen_layer(make_napari_viewer, qtbot, small_ct, errors):
    """A refusal, or other projections chosen, left the earlier success on the result line
    (and the other layer's refusal on the status)."""
    viewer = make_napari_viewer()
    _add(viewer, small_ct)
    viewer.add_image(small_ct.projections, name="copy", scale=(1, 0.5, 0.5))
    w = ReconstructWidget(viewer)
    w.projections.set_layer(viewer.layers["proj"])
    w.preprocess["outlier_threshold"].value = 5.0  # no hint on the result line
    _click(qtbot, w.run_button)
    _wait(qtbot, w)
    assert w.result.text().startswith("FBP: (8, 48, 48) voxels of 0.5 um")
    w.pixel_size.setValue(500.0)
    _click(qtbot, w.run_button)
    assert w.result.text() == "" and w.runner.status.text().startswith("Not started:")
    w.projections.set_layer(viewer.layers["copy"])  # the form is proj's: no word of it
    assert w.runner.status.text() == "" and w.result.text() == ""
    w.projections.set_layer(viewer.layers["proj"])
    _click(qtbot, w.run_button)
    w.projections.set_layer(viewer.layers["copy"])  # while it runs
    assert w.runner.status.text() == "Reconstruction ..."
    _wait(qtbot, w)
    assert w.result.text().startswith("Of 'proj': FBP: (8, 48, 48) voxels of 0.5 um")
