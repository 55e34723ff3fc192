"""The Register widget in a real napari viewer, against the correlative sample's truth."""

import warnings

import numpy as np
import pandas as pd
import pytest
from napari.utils._proxies import PublicOnlyProxy
from napari.utils.colormaps.standardize_color import transform_color
from qtpy.QtCore import QPoint, Qt
from qtpy.QtWidgets import QFileDialog

from napari_corrtomo.cli import main
from napari_corrtomo.core import io
from napari_corrtomo.core import register as reg
from napari_corrtomo.demo import DemoContext, step_register
from napari_corrtomo.widgets._layers import DERIVED_FROM
from napari_corrtomo.widgets.project import ProjectWidget
from napari_corrtomo.widgets.register import RegisterWidget, index_to_world

pytest.importorskip("SimpleITK")


@pytest.fixture()
def setup(make_napari_viewer, correlative_sample):
    s = correlative_sample
    viewer = make_napari_viewer()
    micro = viewer.add_image(s.microct.data, name="microCT", scale=s.microct.scale, units="um")
    nano = viewer.add_image(s.nanoct.data, name="nanoCT", scale=s.nanoct.scale, units="um")
    widget = RegisterWidget(viewer)
    widget.fixed_select.set_layer(micro)
    widget.moving_select.set_layer(nano)
    return viewer, widget, micro, nano, s.truth


def _click_pairs(widget, fixed_pts, moving_pts):
    """Add points alternately, as clicks would, through whichever layer is active."""
    pf, pm = widget.create_landmark_layers()
    viewer = widget.viewer
    for f, m in zip(fixed_pts, moving_pts, strict=True):
        assert viewer.layers.selection.active is pf
        pf.add(f)
        assert viewer.layers.selection.active is pm and pm.mode == "add"
        pm.add(m)
    return pf, pm


def _noisy(truth, seed=0, n=6):
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(truth.landmarks_microct), n, replace=False)
    return (truth.landmarks_microct[idx] + rng.normal(0, 1.0, (n, 3)),
            truth.landmarks_nanoct[idx] + rng.normal(0, 0.065, (n, 3)))


def test_crop_and_outline_volumes_follow_the_registration_until_the_user_picks(
        make_napari_viewer, qtbot):
    """*crop from* follows the moving volume and *outline in* the fixed one (not the first
    image layer, e.g. raw projections), until the user picks one with the keyboard."""
    viewer = make_napari_viewer()
    for name in ("raw projections", "micro", "nano", "other"):
        viewer.add_image(np.zeros((4, 8, 8), np.float32), name=name)
    widget = RegisterWidget(viewer)
    qtbot.addWidget(widget)
    # nothing chosen yet: moving is another volume than fixed, and *crop from* follows it
    assert widget.fixed_select.currentText() == "raw projections"
    assert widget.moving_select.currentText() == widget.roi_target.currentText() == "micro"
    widget.fixed_select.set_layer(viewer.layers["micro"])
    widget.moving_select.set_layer(viewer.layers["nano"])
    assert widget.roi_target.currentText() == "nano"
    assert widget.fov_reference.currentText() == "micro"
    qtbot.keyClick(widget.roi_target, Qt.Key.Key_Down)  # the user's own choice
    assert widget.roi_target.currentText() == "other"
    widget.moving_select.set_layer(viewer.layers["raw projections"])
    assert widget.roi_target.currentText() == "other"  # kept
    assert widget.fov_reference.currentText() == "micro"


def test_fit_apply_affine_puts_landmarks_in_place(setup, qtbot):
    viewer, widget, micro, nano, truth = setup
    _click_pairs(widget, truth.landmarks_microct, truth.landmarks_nanoct)
    t = widget.fit()
    np.testing.assert_allclose(t.matrix, truth.nanoct_to_microct, atol=1e-9)
    assert widget.table.table.rowCount() == len(truth.landmarks_microct)
    heads = [widget.table.table.horizontalHeaderItem(c).text().replace("\n", " ")
             for c in range(widget.table.table.columnCount())]
    assert {"in the fit", "residual (um)", "leave-one-out TRE (um)", "dz (um)"} <= set(heads)
    tips = {widget.table.table.horizontalHeaderItem(c).toolTip()
            for c in range(widget.table.table.columnCount())}
    assert "" not in tips and len(tips) == len(heads)  # each column says what it measures
    assert "RMS FRE" in widget.summary.text()
    widget.apply_affine()
    # world coordinates of known nanoCT voxels are where the truth puts them in the microCT
    for q, p in zip(truth.landmarks_nanoct, truth.landmarks_microct, strict=True):
        index = q / np.array(nano.scale)
        np.testing.assert_allclose(nano.data_to_world(index), p, atol=1e-9)
    np.testing.assert_allclose(index_to_world(nano) @ np.r_[0, 0, 0, 1.0],
                               np.r_[truth.nanoct_fov_microct[0], 1.0], atol=1e-9)
    widget.reset_moving()
    np.testing.assert_allclose(nano.affine.affine_matrix, np.eye(4))


def test_units_differ_nm_moving_on_um_fixed(make_napari_viewer, correlative_sample):
    s, truth = correlative_sample, correlative_sample.truth
    viewer = make_napari_viewer()
    micro = viewer.add_image(s.microct.data, name="microCT", scale=s.microct.scale, units="um")
    nano = viewer.add_image(s.nanoct.data, name="nanoCT nm",
                            scale=tuple(1000 * v for v in s.nanoct.scale), units="nm")
    widget = RegisterWidget(viewer)
    widget.fixed_select.set_layer(micro)
    widget.moving_select.set_layer(nano)
    _click_pairs(widget, truth.landmarks_microct, truth.landmarks_nanoct * 1000)
    t = widget.fit()
    assert t.unit == "um"
    np.testing.assert_allclose(t.matrix, truth.nanoct_to_microct, atol=1e-9)
    widget.apply_affine()
    q = truth.landmarks_nanoct[2] / np.array(s.nanoct.scale)
    np.testing.assert_allclose(nano.data_to_world(q), truth.landmarks_microct[2], atol=1e-9)


def test_include_exclude_refits_and_failures_keep_nothing(setup, qtbot):
    viewer, widget, micro, nano, truth = setup
    fixed, moving = _noisy(truth, n=6)
    fixed[1] += 10.0
    _click_pairs(widget, fixed, moving)
    first = widget.fit()
    assert first.used.all()
    widget.fit_form["robust"].value = True  # the fit finds the bad pair itself
    assert not widget.fit().used[1]
    widget.fit_form["robust"].value = False
    widget.fit()
    item = widget.table.table.item(1, 0)
    item.setCheckState(Qt.Unchecked)  # the user unticks the bad pair
    second = widget.transform
    assert widget.active[1] is False and not second.used[1]
    assert second.rms_fre < first.rms_fre
    # fewer pairs than a model needs: error, no transform, nothing resampled
    for row in range(6):
        widget.active[row] = row < 2
    n_layers = len(viewer.layers)
    assert widget.fit() is None and widget.transform is None
    assert "needs at least 3" in widget.summary.text()
    widget.resample_button.click()
    widget.refine_button.click()
    assert len(viewer.layers) == n_layers and not widget.runner.busy


def test_unpaired_click_is_reported(setup):
    viewer, widget, micro, nano, truth = setup
    pf, pm = widget.create_landmark_layers()
    pf.add(truth.landmarks_microct[:4])
    pm.add(truth.landmarks_nanoct[:3])
    assert widget.fit() is None
    assert "unpaired" in widget.summary.text()


def test_refine_and_resample_in_workers(setup, qtbot):
    viewer, widget, micro, nano, truth = setup
    fixed, moving = _noisy(truth, seed=3)
    _click_pairs(widget, fixed, moving)
    fit = widget.fit()
    widget.apply_affine()
    fov = reg.box_corners(reg.fov_box(nano.data.shape, nano.scale))
    assert reg.compare(fit, truth.nanoct_to_microct, fov)["tre_max"] > 0.5
    widget.refine()
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=60000)
    assert widget.runner.last_error is None
    refined = widget.transform
    assert refined.metadata["source"] == "refine"
    assert reg.compare(refined, truth.nanoct_to_microct, fov)["tre_max"] < 0.5
    np.testing.assert_allclose(nano.affine.affine_matrix, refined.matrix)  # re-applied
    widget.options["grid"].value = "moving voxel size over its field of view"
    widget.resample()
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=60000)
    out = viewer.layers["nanoCT registered"]
    assert out.scale[0] == pytest.approx(nano.scale[0])
    # the resampled volume's voxel at a landmark holds the nanoCT value there
    p = truth.landmarks_microct[0]
    i_out = np.round((p - np.asarray(out.translate)) / np.asarray(out.scale)).astype(int)
    q = refined.apply_inverse(out.translate + i_out * np.asarray(out.scale))[0]
    i_nano = np.round(q / np.asarray(nano.scale)).astype(int)
    assert out.data[tuple(i_out)] == pytest.approx(nano.data[tuple(i_nano)], abs=0.3)


def test_save_load_landmarks_and_transform_and_affine_after_reload(
        setup, tmp_path, make_napari_viewer, correlative_sample):
    viewer, widget, micro, nano, truth = setup
    fixed, moving = _noisy(truth, seed=5)
    _click_pairs(widget, fixed, moving)
    widget.set_active(4, False)
    widget.names[0] = "bead A"
    t = widget.fit()
    widget.save_landmarks(str(tmp_path / "lm.csv"))
    widget.save_transform(str(tmp_path / "t.json"))
    widget.save_transform(str(tmp_path / "t.tfm"))
    widget.apply_affine()
    world = [nano.data_to_world(q / np.array(nano.scale)) for q in truth.landmarks_nanoct]

    # a fresh session: new viewer, layers loaded again
    s = correlative_sample
    v2 = make_napari_viewer()
    m2 = v2.add_image(s.microct.data, name="microCT", scale=s.microct.scale, units="um")
    n2 = v2.add_image(s.nanoct.data, name="nanoCT", scale=s.nanoct.scale, units="um")
    w2 = RegisterWidget(v2)
    w2.fixed_select.set_layer(m2)
    w2.moving_select.set_layer(n2)
    w2.load_landmarks(str(tmp_path / "lm.csv"))
    pf, pm = w2._points_layers()
    np.testing.assert_allclose(pf.data, fixed)
    np.testing.assert_allclose(pm.data, moving)
    assert w2.active[4] is False and w2.names[0] == "bead A"
    np.testing.assert_allclose(w2.fit().matrix, t.matrix, atol=1e-12)
    for path in ("t.json", "t.tfm"):
        w2.transform = None
        w2.load_transform(str(tmp_path / path))
        w2.apply_affine()
        again = [n2.data_to_world(q / np.array(n2.scale)) for q in truth.landmarks_nanoct]
        np.testing.assert_allclose(again, world, atol=1e-9)


def test_roi_across_scales_and_fields_of_view(setup):
    viewer, widget, micro, nano, truth = setup
    _click_pairs(widget, truth.landmarks_microct, truth.landmarks_nanoct)
    widget.fit()
    widget.apply_affine()
    # a 4 um box drawn on the microCT around a bead, cropped from the nanoCT
    p = truth.landmarks_microct[0]
    shapes = viewer.add_shapes(ndim=3, name="roi")
    rect = np.array([[p[0], p[1] - 2, p[2] - 2], [p[0], p[1] - 2, p[2] + 2],
                     [p[0], p[1] + 2, p[2] + 2], [p[0], p[1] + 2, p[2] - 2]])
    shapes.add_rectangles(rect)
    widget.roi_shapes.set_layer(shapes)
    widget.roi_target.set_layer(nano)
    widget.roi_depth.setValue(4.0)
    assert widget.roi_depth.text().endswith(" um")  # the depth's unit is shown
    crop = widget.crop_roi()
    assert crop.name == "nanoCT ROI"
    # the bead's nanoCT voxel is inside the crop, and the crop sits in place in the world
    q = np.round(truth.landmarks_nanoct[0] / np.array(nano.scale)).astype(int)
    sl = crop.metadata["corrtomo_roi_slices"]
    assert all(a <= i < b for i, (a, b) in zip(q, sl, strict=True))
    local = q - np.array([a for a, _ in sl])
    assert crop.data[tuple(local)] == nano.data[tuple(q)]
    np.testing.assert_allclose(crop.data_to_world(local), nano.data_to_world(q), atol=1e-9)
    # the crop holds the box: about 4 um / 65 nm voxels across (the box is oblique in the nanoCT)
    assert 60 <= min(crop.data.shape) and max(crop.data.shape) <= 4 * 1.8 / 0.065 + 2

    # fields of view: the nanoCT outlined in every microCT slice it crosses; not a hidden
    # layer nor a projection stack (a GUI trial found 389 outlines of 9 such layers)
    viewer.add_image(np.ones((8, 6, 6), np.float32), name="phantom", visible=False)
    viewer.add_image(np.ones((12, 6, 6), np.float32), name="raw projections",
                     metadata={"geometry": {"kind": "parallel"}})
    widget.fov_reference.set_layer(micro)
    # ... and projections are never offered as a volume to register
    assert "raw projections" not in [widget.fixed_select.itemText(i)
                                     for i in range(widget.fixed_select.count())]
    fovs = widget.show_fields_of_view()
    zs = sorted({float(poly[0, 0]) for poly in fovs.data})
    fz = truth.nanoct_fov_microct[:, 0]
    assert zs[0] <= np.ceil(fz.min()) and zs[-1] >= np.floor(fz.max())
    assert set(fovs.features["volume"]) == {"nanoCT"}
    # outlines enclose the FOV's cross-section: the bead (inside the FOV) is inside its slice's
    bead = truth.landmarks_microct[0]
    poly = [pp for pp in fovs.data if pp[0, 0] == np.round(bead[0])][0]
    assert poly[:, 1].min() < bead[1] < poly[:, 1].max()
    assert poly[:, 2].min() < bead[2] < poly[:, 2].max()
    widget.show_fields_of_view()  # redrawn, not duplicated
    assert sum(lay.name.startswith("fields of view") for lay in viewer.layers) == 1


def test_bad_gui_input_shows_errors_and_adds_nothing(setup, errors):
    viewer, widget, micro, nano, truth = setup
    n = len(viewer.layers)
    widget.apply_button.click()      # no transform yet
    widget.resample_button.click()
    widget.roi_button.click()        # no shapes layer
    widget.moving_select.set_layer(micro)
    widget.new_points_button.click()  # fixed == moving
    assert len(errors) == 4 and len(viewer.layers) == n
    assert "no transform" in errors[0] and "same layer" in errors[-1]


def test_a_landmark_file_in_another_unit_is_refused_in_the_widgets_words(
        setup, tmp_path, monkeypatch, qtbot, errors):
    """nm coordinates loaded onto um layers were placed 1000 times too far out."""
    viewer, widget, micro, nano, truth = setup
    csv = reg.save_landmarks_csv(tmp_path / "nm.csv", reg.Landmarks(
        truth.landmarks_microct * 1e3, truth.landmarks_nanoct * 1e3, "nm"))
    n = len(viewer.layers)
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a: (str(csv), ""))
    qtbot.mouseClick(widget.file_buttons["Load landmarks"], Qt.MouseButton.LeftButton)
    assert errors and errors[-1].startswith("the fixed landmarks, read in um, all lie far "
                                            "outside the fixed volume: ")
    assert errors[-1].endswith("The landmark coordinates are probably not in um; save the "
                               "landmark file in the fixed layer's unit")
    assert len(viewer.layers) == n and len(widget.session.fixed) == 0  # nothing loaded


def test_widget_cli_and_demo_give_the_same_registration(setup, qtbot, tmp_path, monkeypatch,
                                                       correlative_sample):
    """One input, three front ends, one pipeline: the same transform, residual table and
    resampled volume (landmarks -> fit -> refine -> residuals -> fixed grid -> resample)."""
    viewer, widget, micro, nano, truth = setup
    s = correlative_sample
    # demo: its register step on the sample (6 noisy landmarks, refined, resampled)
    ctx = DemoContext(out=tmp_path / "demo", seed=0, data={"correlative": s})
    ctx.out.mkdir()
    step_register(ctx)
    demo = ctx.data["register_result"]
    landmarks = ctx.out / "register" / "landmarks.csv"
    # widget: the demo's landmark file loaded, then every step by a button click
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a: (str(landmarks), ""))
    qtbot.mouseClick(widget.file_buttons["Load landmarks"], Qt.MouseButton.LeftButton)
    qtbot.mouseClick(widget.fit_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(widget.refine_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=120000)
    assert widget.options["grid"].value == "fixed volume grid"
    qtbot.mouseClick(widget.resample_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=120000)
    assert widget.runner.last_error is None
    out = viewer.layers["nanoCT registered"]
    # command line on the same volumes written to files
    io.write_tiff(tmp_path / "micro.tif", s.microct.data, s.microct.scale, "um")
    io.write_tiff(tmp_path / "nano.tif", s.nanoct.data, s.nanoct.scale, "um")
    assert main(["register", str(landmarks), "--fixed", str(tmp_path / "micro.tif"),
                 "--moving", str(tmp_path / "nano.tif"), "--refine", "--out",
                 str(tmp_path / "t.json"), "--residuals", str(tmp_path / "res.csv"),
                 "--resampled", str(tmp_path / "reg.tif")]) == 0
    (cli,) = io.read_volumes(tmp_path / "reg.tif")

    np.testing.assert_array_equal(widget.transform.matrix, demo.transform.matrix)
    np.testing.assert_array_equal(reg.load_transform(tmp_path / "t.json").matrix,
                                  demo.transform.matrix)
    np.testing.assert_array_equal(out.data, demo.resampled)
    np.testing.assert_array_equal(cli.data, demo.resampled)
    assert tuple(out.scale) == cli.scale == demo.grid.spacing == tuple(s.microct.scale)
    tables = [widget.table.frame, pd.read_csv(tmp_path / "res.csv", float_precision="round_trip"),
              pd.read_csv(ctx.out / "register_landmarks.csv", float_precision="round_trip")]
    assert len(tables[0]) == 6 and tables[0]["residual_um"].max() > 0
    for col in demo.table.columns:
        for table in tables:
            np.testing.assert_array_equal(table[col].to_numpy(), demo.table[col].to_numpy())


def test_cancel_refine_at_2_s(setup, cancel_mid_action):
    """The slowest refinement the panel offers (affine, joint-histogram MI: 3.7 s on the
    correlative sample here; the default similarity / Mattes MI ends in 0.8 s)."""
    viewer, widget, micro, nano, truth = setup
    widget.fit_form["model"].value = "affine"
    _click_pairs(widget, *_noisy(truth, seed=3))
    fit = widget.fit()
    widget.options["metric"].value = "joint_histogram_mi"
    assert widget.options["metric"].value == "joint_histogram_mi"
    run = cancel_mid_action(viewer, widget.runner, widget.refine_button,
                            action="Register: refine by intensity (affine, joint histogram MI)")
    run.assert_prompt()
    assert widget.transform is fit  # the landmark fit is kept


def test_overlays_defaults_layer_identity_names_and_the_project_table(setup, qtbot, errors):
    """Issue 16's small defects: the crop box never defaults to the field-of-view overlay;
    the overlay outlines the other modalities (not the reference), each in its colour;
    fixed == moving is refused under napari's proxy viewer; a second resample adds a
    layer; the project table follows Apply, a crop and a removal."""
    viewer, widget, micro, nano, truth = setup
    nano.colormap = "magenta"
    project = ProjectWidget(viewer)

    def registered(name):
        frame = project.table.frame
        return bool(frame.loc[frame["layer"] == name, "registered"].iloc[0])

    _click_pairs(widget, truth.landmarks_microct, truth.landmarks_nanoct)
    widget.fit()
    assert not registered("nanoCT")
    qtbot.mouseClick(widget.apply_button, Qt.MouseButton.LeftButton)
    assert registered("nanoCT")  # the table followed the affine
    assert "nanoCT (2D view)" not in set(project.table.frame["layer"])  # derived, not listed

    widget.fov_reference.set_layer(micro)
    qtbot.mouseClick(widget.fov_button, Qt.MouseButton.LeftButton)
    fovs = viewer.layers["fields of view in microCT"]
    assert set(fovs.features["volume"]) == {"nanoCT"}
    np.testing.assert_allclose(fovs.edge_color, np.tile(transform_color("magenta"),
                                                         (len(fovs.data), 1)))
    assert widget.roi_shapes.currentText() == ""  # the overlay is no box to crop with
    p = truth.landmarks_microct[0]
    box = viewer.add_shapes(ndim=3, name="my box")
    box.add_rectangles(np.array([[p[0], p[1] - 2, p[2] - 2], [p[0], p[1] - 2, p[2] + 2],
                                 [p[0], p[1] + 2, p[2] + 2], [p[0], p[1] + 2, p[2] - 2]]))
    assert widget.roi_shapes.currentText() == "my box"
    widget.roi_target.set_layer(nano)
    qtbot.mouseClick(widget.roi_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(widget.roi_button, Qt.MouseButton.LeftButton)  # a re-crop: a new layer
    crops = [lay.name for lay in viewer.layers if lay.name.startswith("nanoCT ROI")
             and "(2D view)" not in lay.name]
    assert len(crops) == 2 and set(crops) <= set(project.table.frame["layer"])
    viewer.layers.remove(crops[-1])
    assert crops[-1] not in set(project.table.frame["layer"])
    assert f"{crops[-1]} (2D view)" not in viewer.layers  # its view went with it

    for _ in range(2):
        qtbot.mouseClick(widget.resample_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: not widget.runner.busy, timeout=60000)
    resampled = [lay for lay in viewer.layers if lay.name.startswith("nanoCT registered")]
    assert len(resampled) == 2 and resampled[0].data is not resampled[1].data

    # a plugin's viewer is a proxy whose layers are new objects on each access
    proxied = RegisterWidget(PublicOnlyProxy(viewer))
    proxied.fixed_select.set_layer(micro)
    proxied.moving_select.set_layer(micro)
    qtbot.mouseClick(proxied.new_points_button, Qt.MouseButton.LeftButton)
    assert errors and "same layer" in errors[-1]
    proxied.fov_reference.set_layer(micro)
    assert set(proxied.show_fields_of_view().features["volume"]) == {"nanoCT"}


def test_moving_starts_on_another_volume_and_one_points_layer_is_refused(
        make_napari_viewer, correlative_sample, errors):
    """Both combos once started on the first image ("the same layer" at the first click),
    and one points layer as fixed and moving landmarks fitted a silent identity through
    the plugin's proxy viewer."""
    s = correlative_sample
    viewer = make_napari_viewer()
    proxy = PublicOnlyProxy(viewer)
    widget = RegisterWidget(proxy)  # docked before the data is opened
    viewer.add_image(s.microct.data, name="microCT", scale=s.microct.scale, units="um")
    viewer.add_image(s.nanoct.data, name="nanoCT", scale=s.nanoct.scale, units="um")
    assert (widget.fixed_select.currentText(), widget.moving_select.currentText()) == (
        "microCT", "nanoCT")
    pf, _ = widget.create_landmark_layers()
    widget.fixed_points_select.set_layer(pf)
    widget.moving_points_select.set_layer(pf)
    widget.fit_button.click()
    assert errors and "two different Points layers" in errors[-1]
    assert widget.transform is None


# ============================================================================ new-user trial


def _tick(qtbot, table, row: int) -> None:
    """A real click on the check box of ``row``'s first cell."""
    rect = table.visualItemRect(table.item(row, 0))
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton,
                     pos=QPoint(rect.left() + 10, rect.center().y()))


def test_unticking_after_refine_says_the_refinement_is_dropped_and_what_the_layer_shows(
        setup, qtbot, monkeypatch):
    """A trial: after *Refine by intensity*, unticking a pair refitted the landmarks and
    silently dropped the refinement, the moving layer still showing the refined affine."""
    viewer, widget, micro, nano, truth = setup
    infos = []
    monkeypatch.setattr("napari_corrtomo.widgets.register.show_info", infos.append)
    _click_pairs(widget, *_noisy(truth, seed=3))
    qtbot.mouseClick(widget.fit_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(widget.apply_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(widget.refine_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=60000)
    refined = widget.transform
    assert widget.session.source() == "refined" and "refined by" in widget.summary.text()
    assert "still shows" not in widget.summary.text()  # re-applied: the layer shows it

    table = widget.table.table
    _tick(qtbot, table, 1)  # the user unticks a pair
    assert widget.active[1] is False and widget.session.source() == "fit"
    text = widget.summary.text()
    assert "The refinement by intensity was of the earlier landmark fit" in text
    assert "press 'Refine by intensity' again" in text
    assert "'nanoCT' still shows the earlier transform until you press 'Apply as layer " \
           "affine'" in text
    assert infos and "Refine by intensity" in infos[-1]
    # the layer indeed still shows the refinement, not the new fit
    np.testing.assert_allclose(nano.affine.affine_matrix, refined.matrix)
    assert not np.allclose(widget.transform.matrix, refined.matrix)
    qtbot.mouseClick(widget.apply_button, Qt.MouseButton.LeftButton)
    np.testing.assert_allclose(nano.affine.affine_matrix, widget.transform.matrix)
    assert "still shows" not in widget.summary.text()
    # the next change says nothing more of the refinement (it was said once)
    _tick(qtbot, table, 1)
    assert widget.active[1] is True and "refinement" not in widget.summary.text()
    assert "still shows the earlier transform" in widget.summary.text()
    # a failed refit keeps no transform, and says the layer still shows the old one
    for row in range(6):
        widget.active[row] = row < 2
    widget.fit()
    assert "Fit failed" in widget.summary.text()
    assert "'Reset moving layer' removes it" in widget.summary.text()


def test_apply_and_reset_of_a_rotated_transform_warn_nothing(setup, qtbot, monkeypatch):
    """A trial: *Apply as layer affine* with a rotation made napari warn "Non-orthogonal
    slicing is being requested" (a popup): napari sliced the rotated volume once before its
    2D view took over, and sliced the moving landmarks, under the same affine, at every
    step. The volume's 2D view takes over before the affine is set; the moving landmarks
    are drawn in 3D only while rotated."""
    viewer, widget, micro, nano, truth = setup
    infos = []
    monkeypatch.setattr("napari_corrtomo.widgets.register.show_info", infos.append)
    pf, pm = _click_pairs(widget, truth.landmarks_microct, truth.landmarks_nanoct)
    widget.fit()
    assert widget.transform.rotation_deg > 20
    assert viewer.dims.ndisplay == 2 and nano.visible and pm.visible

    def no_warning(action):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            action()
            qtbot.wait(100)
        assert not [w for w in caught if "Non-orthogonal" in str(w.message)]

    no_warning(lambda: qtbot.mouseClick(widget.apply_button, Qt.MouseButton.LeftButton))
    view = widget.views["nanoCT"]
    assert view.layer.visible and not nano.visible and not pm.visible
    np.testing.assert_allclose(nano.affine.affine_matrix, pm.affine.affine_matrix)
    qtbot.waitUntil(view.is_current, timeout=20000)
    no_warning(lambda: viewer.dims.set_point(0, viewer.dims.point[0] + 3))  # a slice step
    # a fixed landmark clicked: its partner cannot be clicked on the hidden moving layer
    pf.add(truth.landmarks_microct[0] + 1.0)
    assert viewer.layers.selection.active is pf and "Reset moving layer" in infos[-1]
    pf.data = pf.data[:-1]
    viewer.dims.ndisplay = 3  # in 3D napari draws both, rotated
    assert nano.visible and pm.visible and not view.layer.visible
    viewer.dims.ndisplay = 2
    assert not pm.visible
    no_warning(lambda: qtbot.mouseClick(widget.reset_button, Qt.MouseButton.LeftButton))
    assert nano.visible and pm.visible and "nanoCT" not in widget.views
    # the eye button wins: landmarks the user hides stay hidden in 3D
    no_warning(lambda: qtbot.mouseClick(widget.apply_button, Qt.MouseButton.LeftButton))
    pm.visible = False
    viewer.dims.ndisplay = 3
    assert nano.visible and not pm.visible


def test_raw_scan_sample_never_defaults_to_projections_flats_or_darks(
        make_napari_viewer, monkeypatch):
    """A trial: with the raw correlative scans opened, *fixed* opened on 'microCT flats' and
    *moving* on 'microCT darks'. Docked before or after the sample is opened, neither
    combo offers a projection stack, flats or darks."""
    from napari_corrtomo import _sample_data
    from napari_corrtomo.core import synthetic

    small = synthetic.correlative_particles(
        seed=0, microct_shape=(64, 96, 96), n_particles=40, particle_diameter_um=(10.0, 30.0),
        nanoct_shape=(96, 96, 96), nanoct_voxel_um=0.13, et_shape=(32, 32, 32))
    monkeypatch.setattr(_sample_data.synthetic, "correlative_particles", lambda: small)
    viewer = make_napari_viewer()
    before = RegisterWidget(viewer)
    viewer.open_sample("napari-corrtomo", "correlative_scans")
    names = {lay.name for lay in viewer.layers}
    stacks = {f"{m} {kind}" for m in ("microCT", "nanoCT")
              for kind in ("raw projections", "flats", "darks")}
    assert stacks <= names
    for widget in (before, RegisterWidget(viewer)):
        for select in (widget.fixed_select, widget.moving_select):
            offered = {select.itemText(i) for i in range(select.count())}
            assert not offered & stacks
            assert select.currentText() in {"", "microCT phantom", "nanoCT phantom"}
        assert widget.fixed_select.currentText() != widget.moving_select.currentText()


def test_residual_table_reads_whole_heads_yes_no_and_even_decimals(setup, qtbot, tmp_path):
    """A trial: heads cut ("n the fi", "-one-out TRE"), Python's True/False in *in the fit*
    and decimals varying from row to row (1.091, -0.03881). The CSV keeps full precision
    and the column names."""
    viewer, widget, micro, nano, truth = setup
    widget.show()
    fixed, moving = _noisy(truth, seed=1, n=6)
    fixed[2] += 12.0
    _click_pairs(widget, fixed, moving)
    widget.fit_form["robust"].value = True
    qtbot.mouseClick(widget.fit_button, Qt.MouseButton.LeftButton)
    table = widget.table.table
    header = table.horizontalHeader()
    fm = header.fontMetrics()
    columns = list(widget.table.frame.columns)
    most = 1
    for c in range(table.columnCount()):
        lines = table.horizontalHeaderItem(c).text().split("\n")
        assert max(fm.horizontalAdvance(line) for line in lines) < table.columnWidth(c), lines
        most = max(most, len(lines))
    assert most == 2  # two-line heads: narrow columns
    qtbot.waitUntil(lambda: header.height() >= most * fm.height())  # every line shown
    fitted = columns.index("fitted")
    texts = [table.item(r, fitted).text() for r in range(table.rowCount())]
    assert set(texts) == {"yes", "no"} and texts[2] == "no"  # the outlier was dropped
    decimals = set()
    for c, column in enumerate(columns):
        if column.endswith("_um"):
            for r in range(table.rowCount()):
                text = table.item(r, c).text()
                if text != "-":
                    decimals.add(len(text.split(".")[1]))
    assert len(decimals) == 1  # one number of decimals for every length
    assert table.item(0, 0).text() == "" and table.item(0, 0).checkState() == Qt.Checked
    # the export: the column names and every digit
    widget.table.export(str(tmp_path / "residuals.csv"))
    back = pd.read_csv(tmp_path / "residuals.csv", float_precision="round_trip")
    assert list(back.columns) == columns
    np.testing.assert_array_equal(back["residual_um"], widget.table.frame["residual_um"])
    assert back["fitted"].dtype == bool


def test_roi_section_shows_the_drawn_box_size(make_napari_viewer, correlative_sample, qtbot,
                                              mouse):
    """A trial: the box depth defaulted to 16 um and the box's width and height were shown
    nowhere (the tutorial says to set the depth to the box's width)."""
    s = correlative_sample
    viewer = make_napari_viewer(show=True)
    micro = viewer.add_image(s.microct.data, name="microCT", scale=s.microct.scale, units="um")
    nano = viewer.add_image(s.nanoct.data, name="nanoCT", scale=s.nanoct.scale, units="um")
    widget = RegisterWidget(viewer)
    widget.moving_select.set_layer(nano)
    assert widget.roi_size.text() == "draw a rectangle on a Shapes layer"
    p = s.truth.landmarks_microct[0]
    mouse.look_at(viewer, p[0], p[1:], 40.0)
    viewer.layers.selection.active = micro
    viewer.window._qt_viewer.layerButtons.newShapesButton.click()
    box = viewer.layers.selection.active
    assert widget.roi_shapes.layer() is box
    box.mode = "add_rectangle"
    mouse.drag(viewer, p[1:] - (5.0, 7.0), p[1:] + (5.0, 7.0), tol=0.3)
    drawn = np.ptp([box.data_to_world(v) for v in box.data[0]], axis=0)
    text = widget.roi_size.text()
    assert text.startswith("z 16 (depth) \u00d7 y ") and text.endswith(" um")
    _, y, x = (float(part.split()[1]) for part in text.split("\u00d7"))
    assert (y, x) == pytest.approx(drawn[1:], abs=0.01) and y == pytest.approx(10, abs=0.6)
    widget.roi_depth.setValue(x)  # the tutorial: depth = the box's width
    assert widget.roi_size.text().startswith(f"z {x:.4g} (depth)")
    # an edit of the box is followed
    box.data = [np.asarray(box.data[0]) * [1, 1.1, 1]]
    assert float(widget.roi_size.text().split("\u00d7")[1].split()[1]) != pytest.approx(y)


# ============================================================================ trial A


def _choose(qtbot, combo, name: str) -> None:
    """Pick ``name`` in a chooser with the keyboard, as a user does."""
    target = combo.findText(name)
    assert target >= 0, name
    key = Qt.Key.Key_Down if target > combo.currentIndex() else Qt.Key.Key_Up
    while combo.currentIndex() != target:
        qtbot.keyClick(combo, key)


def _click(qtbot, button) -> None:
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def test_changing_the_volumes_takes_their_landmarks_and_never_applies_a_transform_of_others(
        setup, qtbot, errors, correlative_sample):
    """Trial A: with the moving volume changed after a fit, Apply gave the microCT phantom
    the nanoCT's transform; with fixed and moving swapped, Fit refitted the old landmarks
    (still chosen) and Apply moved the microCT away."""
    viewer, widget, micro, nano, truth = setup
    phantom = viewer.add_image(correlative_sample.microct.data, name="microCT phantom",
                               scale=micro.scale, units="um", visible=False)
    _click_pairs(widget, *_noisy(truth))
    _click(qtbot, widget.fit_button)
    _click(qtbot, widget.apply_button)
    placed = np.array(nano.affine.affine_matrix)
    assert not np.allclose(placed, np.eye(4))
    n_layers = len(viewer.layers)

    # another moving volume: no landmarks of it yet, and the transform is not its
    _choose(qtbot, widget.moving_select, "microCT phantom")
    assert widget.fixed_points_select.currentText() == "landmarks fixed: microCT"
    assert widget.moving_points_select.currentText() == ""
    assert "The transform in use is of 'nanoCT' onto 'microCT', not of the chosen " \
           "volumes" in widget.summary.text()
    assert widget.table.table.rowCount() == 0
    for button in (widget.apply_button, widget.resample_button, widget.refine_button):
        _click(qtbot, button)
        assert errors[-1].startswith("the transform is of 'nanoCT' onto 'microCT', not of "
                                     "'microCT phantom' onto 'microCT'")
    np.testing.assert_allclose(phantom.affine.affine_matrix, np.eye(4))
    assert not widget.runner.busy and len(viewer.layers) == n_layers  # nothing resampled

    # back to the nanoCT: its landmarks and its transform again
    _choose(qtbot, widget.moving_select, "nanoCT")
    assert widget.moving_points_select.currentText() == "landmarks moving: nanoCT"
    assert "RMS FRE" in widget.summary.text() and widget.table.table.rowCount() == 6

    # swapped: no landmarks of these volumes in these roles; the old ones are not fitted
    _choose(qtbot, widget.fixed_select, "nanoCT")
    _choose(qtbot, widget.moving_select, "microCT")
    assert widget.fixed_points_select.currentText() == ""
    assert widget.moving_points_select.currentText() == ""
    _click(qtbot, widget.apply_button)
    assert errors[-1].startswith("the transform is of 'nanoCT' onto 'microCT', not of "
                                 "'microCT' onto 'nanoCT'")
    np.testing.assert_allclose(micro.affine.affine_matrix, np.eye(4))
    # landmarks placed in another volume, chosen by hand, are refused
    _click(qtbot, widget.new_points_button)
    assert widget.fixed_points_select.currentText() == "landmarks fixed: nanoCT"
    assert widget.moving_points_select.currentText() == "landmarks moving: microCT"
    _choose(qtbot, widget.moving_points_select, "landmarks moving: nanoCT")
    _click(qtbot, widget.fit_button)
    assert errors[-1].startswith("the moving landmarks 'landmarks moving: nanoCT' were "
                                 "placed in 'nanoCT', not in the moving image 'microCT'")
    assert widget.transform is None
    np.testing.assert_allclose(micro.affine.affine_matrix, np.eye(4))
    np.testing.assert_allclose(nano.affine.affine_matrix, placed)


def test_the_layers_made_from_the_moving_volume_move_with_it(setup, qtbot):
    """Trial A: a crop of the nanoCT stayed where it was when the nanoCT was registered
    again (1 um off its parent, with no word)."""
    viewer, widget, micro, nano, truth = setup
    _click_pairs(widget, *_noisy(truth, seed=3))
    _click(qtbot, widget.fit_button)
    _click(qtbot, widget.apply_button)
    p = truth.landmarks_microct[0]
    box = viewer.add_shapes(ndim=3, name="box")
    box.add_rectangles(np.array([[p[0], p[1] - 2, p[2] - 2], [p[0], p[1] - 2, p[2] + 2],
                                 [p[0], p[1] + 2, p[2] + 2], [p[0], p[1] + 2, p[2] - 2]]))
    widget.roi_shapes.set_layer(box)
    _choose(qtbot, widget.roi_target, "nanoCT")
    widget.roi_depth.setValue(4.0)
    _click(qtbot, widget.roi_button)
    crop = viewer.layers["nanoCT ROI"]
    # scribbles on the crop, in its frame, as Classify makes them
    scribbles = viewer.add_labels(
        np.zeros(crop.data.shape, np.uint8), name="nanoCT ROI scribbles", scale=crop.scale,
        units=crop.units, translate=crop.translate, affine=crop.affine.affine_matrix,
        metadata={DERIVED_FROM: crop.name})
    q = np.round(truth.landmarks_nanoct[0] / np.array(nano.scale)).astype(int)
    local = q - np.array([a for a, _ in crop.metadata["corrtomo_roi_slices"]])

    def on_parent():
        for layer in (crop, scribbles):
            np.testing.assert_allclose(layer.data_to_world(local), nano.data_to_world(q),
                                       atol=1e-9)

    on_parent()
    before = np.array(nano.affine.affine_matrix)
    _tick(qtbot, widget.table.table, 1)  # a refit without one pair
    _click(qtbot, widget.apply_button)
    assert np.abs(np.asarray(nano.affine.affine_matrix) - before).max() > 0.1
    on_parent()
    text = widget.summary.text()
    assert "Moved with 'nanoCT' (made from it in its frame): 'nanoCT ROI', 'nanoCT ROI " \
           "scribbles'" in text
    _click(qtbot, widget.reset_button)
    on_parent()
    np.testing.assert_allclose(crop.affine.affine_matrix, np.eye(4), atol=1e-12)
    assert "Moved with 'nanoCT'" in widget.summary.text()


def test_hidden_truth_is_no_default_and_a_removed_volume_leaves_its_choosers_empty(
        make_napari_viewer, qtbot, errors):
    """Trial A: the panel opened on the sample's hidden phantoms; with the nanoCT removed,
    *moving* and *crop from* switched to 'microCT phantom' and Crop cropped it."""
    viewer = make_napari_viewer()
    data = np.zeros((8, 16, 16), np.float32)
    for name in ("microCT phantom", "nanoCT phantom"):  # as the sample marks its truth
        viewer.add_image(data, name=name, visible=False, metadata={"modality": name[:7]})
    before = RegisterWidget(viewer)  # docked before the reconstructions
    # nothing else yet: the phantoms, two of them
    assert (before.fixed_select.currentText(), before.moving_select.currentText()) == (
        "microCT phantom", "nanoCT phantom")
    for name in ("microCT reconstruction", "nanoCT reconstruction"):
        viewer.add_image(data, name=name)
    after = RegisterWidget(viewer)
    widgets = (before, after)
    for widget in widgets:
        assert widget.fixed_select.currentText() == "microCT reconstruction"
        assert widget.moving_select.currentText() == "nanoCT reconstruction"
        assert widget.roi_target.currentText() == "nanoCT reconstruction"
        assert widget.fov_reference.currentText() == "microCT reconstruction"
    viewer.layers.remove("nanoCT reconstruction")
    viewer.add_image(data, name="other")  # no stand-in either when a layer arrives
    for widget in widgets:
        assert widget.moving_select.currentText() == ""
        assert widget.roi_target.currentText() == ""
        assert "The moving image 'nanoCT reconstruction' was removed: choose another" in \
               widget.summary.text()
        _click(qtbot, widget.roi_button)
        assert errors[-1].startswith("no volume to crop from chosen")
        _click(qtbot, widget.new_points_button)
        assert errors[-1].startswith("no moving image chosen")
    assert not [lay.name for lay in viewer.layers if "ROI" in lay.name]
    _choose(qtbot, after.moving_select, "other")  # the user's choice
    assert after.moving_select.currentText() == "other"


def test_a_removed_landmark_layer_is_said_and_its_table_cleared(setup, qtbot):
    """Trial A: with the moving landmarks removed, the summary and the residual table
    still showed the fit until Fit failed."""
    viewer, widget, micro, nano, truth = setup
    _, pm = _click_pairs(widget, *_noisy(truth))
    _click(qtbot, widget.fit_button)
    assert widget.table.table.rowCount() == 6
    viewer.layers.remove(pm)
    assert widget.moving_points_select.currentText() == ""
    assert "The moving landmarks layer 'landmarks moving: nanoCT' was removed: choose " \
           "another or press 'New landmark layers'" in widget.summary.text()
    assert widget.table.table.rowCount() == 0


def test_summary_reads_one_full_stop_and_an_unpaired_fit_is_no_lasting_error(
        setup, qtbot, errors):
    """Trial A: "press Fit.. The moving layer"; Fit pressed between a landmark and its
    partner left the error "unpaired landmarks: 3 fixed, 2 moving" on screen after the
    partner was placed."""
    viewer, widget, micro, nano, truth = setup
    fixed, moving = _noisy(truth)
    pf, pm = _click_pairs(widget, fixed[:2], moving[:2])
    pf.add(fixed[2])
    _click(qtbot, widget.fit_button)
    assert not errors
    text = widget.summary.text()
    assert "unpaired landmarks: 3 fixed, 2 moving" in text and "Place the partner" in text
    pm.add(moving[2])  # the pair completed: fitted at once
    assert "RMS FRE" in widget.summary.text() and widget.transform is not None
    _click(qtbot, widget.apply_button)
    _tick(qtbot, widget.table.table, 0)  # 2 pairs left: no fit; the layer shows the last
    assert widget.transform is None
    viewer.layers.remove(pf)
    text = widget.summary.text()
    assert text.startswith("No transform yet: place >= 3 landmark pairs and press Fit. The "
                           "moving layer 'nanoCT' still shows the earlier transform")
    assert ".." not in text


def test_the_residual_table_shows_eight_pairs_and_every_column(
        make_napari_viewer, correlative_sample, qtbot):
    """Trial A: in a 1920x1200 window the table showed 4.5 rows and cut dy and dx off
    (a horizontal scroll bar)."""
    s, truth = correlative_sample, correlative_sample.truth
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1920, 1200)
    viewer.add_image(s.microct.data, name="microCT reconstruction", scale=s.microct.scale,
                     units="um")
    viewer.add_image(s.nanoct.data, name="nanoCT reconstruction", scale=s.nanoct.scale,
                     units="um")
    widget = RegisterWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Register")
    # the dock opens as wide as the table will be: no canvas moving under the clicks
    qtbot.waitUntil(lambda: widget.width() >= widget.minimumSizeHint().width())
    qtbot.wait(100)
    width = widget.width()
    n = len(truth.landmarks_microct)
    assert n >= 8
    rng = np.random.default_rng(0)
    _click_pairs(widget, truth.landmarks_microct + rng.normal(0, 1.0, (n, 3)),
                 truth.landmarks_nanoct)
    _click(qtbot, widget.fit_button)
    table = widget.table.table
    assert table.rowCount() == n

    def table_in_dock():
        right = table.viewport().mapTo(widget, QPoint(table.viewport().width(), 0)).x()
        assert right <= widget.viewport().width()  # the dock cuts no column off

    qtbot.waitUntil(table_in_dock, timeout=3000)

    def all_in_view():
        assert not table.horizontalScrollBar().isVisible()  # every column in view
        assert not table.verticalScrollBar().isVisible()  # every pair
        assert table.rowViewportPosition(7) + table.rowHeight(7) <= table.viewport().height()

    qtbot.waitUntil(all_in_view, timeout=3000)
    qtbot.wait(100)
    assert widget.width() == width


def test_the_first_partner_click_is_told_where_to_go(setup, monkeypatch):
    """After the first fixed click the moving layer is selected, and the user is told to
    click the same feature in the moving image, hiding the fixed one where it covers it
    (one canvas shows both volumes); only once, not at every pair."""
    from napari_corrtomo.widgets import register as register_module

    viewer, widget, micro, nano, truth = setup
    said = []
    monkeypatch.setattr(register_module, "show_info", said.append)
    _click_pairs(widget, truth.landmarks_microct[:3], truth.landmarks_nanoct[:3])
    partner = [m for m in said if m.startswith("Now click")]
    assert partner == ["Now click the same feature in 'nanoCT' (hide 'microCT' with its eye "
                       "where it covers it)"]
