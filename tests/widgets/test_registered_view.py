"""Registered (rotated) layers in 2D: painting writes the ROI's voxels where clicked, resampling
never blocks the UI (Issue 16; screenshots at three slices: test_tutorial.py)."""

import time

import numpy as np
import pytest
from qtpy.QtCore import Qt, QTimer

from napari_corrtomo.widgets._registered_view import is_axis_aligned
from napari_corrtomo.widgets.register import RegisterWidget

pytest.importorskip("SimpleITK")


def _registered(viewer, s, **nano_display):
    """microCT and nanoCT in ``viewer``, the nanoCT registered by the Register widget (the
    exact landmarks, similarity fit, Apply); the landmark layers hidden."""
    micro = viewer.add_image(s.microct.data, name="microCT", scale=s.microct.scale, units="um")
    nano = viewer.add_image(s.nanoct.data, name="nanoCT", scale=s.nanoct.scale, units="um",
                            **nano_display)
    widget = RegisterWidget(viewer)
    widget.fixed_select.set_layer(micro)
    widget.moving_select.set_layer(nano)
    pf, pm = widget.create_landmark_layers()
    pf.add(s.truth.landmarks_microct)
    pm.add(s.truth.landmarks_nanoct)
    widget.fit()
    widget.apply_button.click()
    pf.visible = pm.visible = False
    return widget, micro, nano


def _registered_roi(viewer, qtbot, s, landmark=0, half=2.0):
    """The registered nanoCT's ROI: a ``2 half`` um box (4 um) around a landmark (the first
    bead; the last: the particle) drawn on the microCT, cropped from the nanoCT with a real
    click; the Register widget, the landmark, the ROI."""
    widget, _, nano = _registered(viewer, s)
    p = s.truth.landmarks_microct[landmark]
    box = viewer.add_shapes(ndim=3, name="ROI box")
    h = half
    box.add_rectangles(np.array([[p[0], p[1] - h, p[2] - h], [p[0], p[1] - h, p[2] + h],
                                 [p[0], p[1] + h, p[2] + h], [p[0], p[1] + h, p[2] - h]]))
    box.visible = False
    widget.roi_shapes.set_layer(box)
    widget.roi_target.set_layer(nano)
    widget.roi_depth.setValue(2 * half)
    qtbot.mouseClick(widget.roi_button, Qt.MouseButton.LeftButton)
    return widget, p, viewer.layers["nanoCT ROI"]


def test_painting_a_registered_roi_writes_its_voxels_at_the_clicked_place(
        make_napari_viewer, qtbot, mouse, correlative_sample):
    viewer = make_napari_viewer(show=True)
    widget, p, roi = _registered_roi(viewer, qtbot, correlative_sample)
    assert not is_axis_aligned(roi)  # rotated with the nanoCT: napari cannot slice it in 2D
    # scribbles on the ROI, in the ROI's frame (as the Classify widget makes them)
    scribbles = viewer.add_labels(np.zeros(roi.data.shape, np.uint8), name="ROI scribbles",
                                  scale=roi.scale, units=roi.units, translate=roi.translate,
                                  affine=roi.affine.affine_matrix)
    view = widget.views["ROI scribbles"]
    viewer.dims.ndisplay = 2
    viewer.dims.set_point(0, p[0])
    qtbot.waitUntil(view.is_current, timeout=20000)
    viewer.scene.camera.center = p
    viewer.scene.camera.zoom = 0.8 * min(viewer.window._qt_viewer.canvas.size) / 4.0  # 4 um across
    viewer.layers.selection.active = view.layer
    view.layer.mode = "paint"
    view.layer.brush_size = 1
    view.layer.selected_label = 2
    # what the Classify widget's live training listens to: at the paint event the voxels
    # are written already (it reads the labels then)
    edits = []
    scribbles.events.paint.connect(lambda e: edits.append(int((scribbles.data == 2).sum())))
    qtbot.wait(50)

    # a click 1 um beside the bead
    target = p + np.array([0.0, 1.0, -0.5])
    mouse.click(viewer, target[1:], tol=0.5 * view.grid[1, 1])
    painted = np.argwhere(scribbles.data == 2)
    assert len(painted), "the click wrote nothing into the ROI scribbles"
    expected = np.asarray(scribbles.world_to_data(target))
    # every voxel written is the ROI voxel at the clicked world position (within one voxel)
    assert np.abs(painted - expected).max() <= 1.0, (painted, expected)
    assert edits == [len(painted)]  # one event, after the write
    # and the view shows it where it was painted, after the plane is sampled again
    viewer.dims.set_point(0, p[0] + 4 * view.grid[0, 0])
    qtbot.waitUntil(view.is_current, timeout=20000)
    viewer.dims.set_point(0, p[0])
    qtbot.waitUntil(view.is_current, timeout=20000)
    assert (view.layer.data == 2).sum() >= 1

    # a stroke: press at one end, drag, release at the other
    view.layer.selected_label = 3
    a, b = p + np.array([0.0, -1.0, -1.0]), p + np.array([0.0, -1.0, 1.0])
    mouse.drag(viewer, a[1:], b[1:], tol=0.5 * view.grid[1, 1])
    stroke = np.argwhere(scribbles.data == 3)
    ends = np.array([scribbles.world_to_data(a), scribbles.world_to_data(b)])
    for end in ends:  # both ends painted, within one voxel
        assert np.abs(stroke - end).max(axis=1).min() <= 1.0
    # ... and the line between them: about 2 um / voxel length voxels, none off the line
    assert len(stroke) >= 2.0 / view.grid[0, 0]
    d = np.cross(stroke - ends[0], ends[1] - ends[0]) / np.linalg.norm(ends[1] - ends[0])
    assert np.linalg.norm(d, axis=1).max() <= 1.5


def test_the_ui_thread_runs_while_planes_are_resampled(make_napari_viewer, qtbot,
                                                       correlative_sample):
    """Slice jumps on the registered 224^3 nanoCT, each to a plane not yet sampled: in the
    0.3 s after napari's own slicing of the step (the worker resampling the plane and its
    neighbours, the plane written in), a 20 ms heartbeat never waits more than 0.1 s. The
    viewer is not shown (no OpenGL draws: benchmarks/registered_view.py times drawn frames
    and napari's own per-step cost)."""
    s, truth = correlative_sample, correlative_sample.truth
    viewer = make_napari_viewer()
    widget, micro, nano = _registered(viewer, s)
    view = widget.views["nanoCT"]
    viewer.dims.ndisplay = 2
    viewer.dims.set_point(0, float(truth.landmarks_microct[0][0]))
    qtbot.waitUntil(view.is_current, timeout=20000)
    beats: list[float] = []
    timer = QTimer()
    timer.timeout.connect(lambda: beats.append(time.perf_counter()))
    timer.start(20)
    windows = []
    for k in np.linspace(0.1, 0.9, 12) * view.shape[0]:  # planes 10+ apart across the field
        # napari slices the layers here (synchronously)
        viewer.dims.set_point(0, view.grid[0, 3] + round(k) * view.grid[0, 0])
        begin = time.perf_counter()
        if view.is_current():
            continue  # the plane the test started on (cached)
        # the worker samples the plane, then the two each side (about 0.1-0.2 s in all)
        qtbot.waitUntil(view.is_current, timeout=20000)
        qtbot.wait(max(0, int(1000 * (begin + 0.3 - time.perf_counter()))))
        windows.append((begin, time.perf_counter()))
    timer.stop()
    assert len(windows) >= 10
    beats = np.array(beats)
    gaps = np.concatenate([np.diff([b, *beats[(beats > b) & (beats < e)], e])
                           for b, e in windows])
    print(f"UI heartbeat while resampling: max gap {gaps.max():.3f} s, 99th percentile "
          f"{np.percentile(gaps, 99):.3f} s over {len(gaps)} intervals")
    assert gaps.max() < 0.1


def _inside(viewer, view_layer, layer) -> np.ndarray:
    """Which pixels of a 2D view show a voxel of ``layer`` (view pixel -> world -> the
    layer's voxel is affine: fitted on three pixels)."""
    def voxel(i: float, j: float) -> np.ndarray:
        point = np.array(viewer.dims.point, float)
        point[-2:] = view_layer.data_to_world([i, j])[-2:]
        return np.asarray(layer.world_to_data(point))

    origin = voxel(0, 0)
    di, dj = voxel(1, 0) - origin, voxel(0, 1) - origin
    i, j = np.indices(view_layer.data.shape)
    vox = np.round(origin + i[..., None] * di + j[..., None] * dj)
    return np.all((vox >= 0) & (vox < np.array(layer.data.shape)), axis=-1)


def test_live_training_on_a_registered_roi_predicts_the_slice_on_screen(
        make_napari_viewer, qtbot, mouse, correlative_sample):
    """Tutorial step 4: strokes painted on the 2D view of the registered ROI's scribbles,
    then Live training. The slice on screen cuts across the ROI's planes; the update
    predicted one of them, so the live prediction's view showed a line (a GUI trial: 0
    labelled pixels). Every plane the screen cuts is predicted now."""
    from napari_corrtomo.widgets.classify import ClassifyWidget

    viewer = make_napari_viewer(show=True)
    widget, p, _ = _registered_roi(viewer, qtbot, correlative_sample)
    classify = ClassifyWidget(viewer)
    classify.set_channels(["nanoCT ROI"])
    qtbot.mouseClick(classify.new_scribbles, Qt.MouseButton.LeftButton)
    scribbles = classify.scribbles.layer()
    views = widget.views
    qtbot.waitUntil(lambda: scribbles.name in views, timeout=20000)
    view = views[scribbles.name]
    viewer.dims.ndisplay = 2
    viewer.dims.set_point(0, p[0])
    qtbot.waitUntil(view.is_current, timeout=20000)
    viewer.scene.camera.center = p
    viewer.scene.camera.zoom = 0.8 * min(viewer.window._qt_viewer.canvas.size) / 4.0
    viewer.layers.selection.active = view.layer
    view.layer.mode = "paint"
    view.layer.brush_size = 3
    for label, dy in ((1, -1.2), (2, 0.0), (1, 1.2)):  # strokes across the bead and beside
        view.layer.selected_label = label
        a, b = p + np.array([0.0, dy, -1.5]), p + np.array([0.0, dy, 1.5])
        mouse.drag(viewer, a[1:], b[1:], tol=0.5 * view.grid[1, 1])
    assert set(np.unique(scribbles.data)) == {0, 1, 2}
    qtbot.mouseClick(classify.train_button, Qt.MouseButton.LeftButton)
    live_view = f"{scribbles.name} live prediction (2D view)"
    qtbot.waitUntil(lambda: live_view in viewer.layers and not classify._live_job
                    and not classify.runner.busy, timeout=120000)
    qtbot.waitUntil(views[f"{scribbles.name} live prediction"].is_current, timeout=20000)
    shown = viewer.layers[live_view].data
    footprint = np.count_nonzero(_inside(viewer, viewer.layers[live_view], scribbles))
    print(f"live prediction on screen: {np.count_nonzero(shown)} of {footprint} ROI pixels")
    assert np.count_nonzero(shown) > 0.9 * footprint

    # the eye of the live uncertainty ticked (tutorial step 4): its 2D view shows it (a GUI
    # trial: the view stayed hidden and empty while the layer held 1.25 M voxels)
    from napari_corrtomo.core.register.plane import sample_plane

    unc = viewer.layers[f"{scribbles.name} live uncertainty"]
    unc_view = views[unc.name]
    assert not unc.visible and not unc_view.layer.visible and np.count_nonzero(unc.data)
    unc.visible = True
    assert unc_view.layer.visible and not unc.visible  # in 2D the view draws it
    qtbot.waitUntil(unc_view.is_current, timeout=20000)
    expected = sample_plane(np.asarray(unc.data), unc_view._matrix(), unc_view.shape[1:],
                            unc_view.plane_index(), order=1, cval=0.0)
    on_screen = np.asarray(unc_view.layer.data)
    print(f"live uncertainty on screen: {np.count_nonzero(on_screen)} pixels")
    assert np.count_nonzero(expected) > 0.05 * footprint
    assert np.all(on_screen[expected > 0] > 0)
    np.testing.assert_allclose(on_screen, expected, atol=1e-6)
    # a new stroke writes both in place again: the views follow
    qtbot.waitUntil(lambda: not classify._live_job, timeout=60000)
    before = on_screen.copy()
    view.layer.selected_label = 2
    mouse.drag(viewer, (p + np.array([0.0, -0.6, -1.5]))[1:], (p + np.array([0.0, -0.6, 1.5]))[1:],
               tol=0.5 * view.grid[1, 1])
    qtbot.waitUntil(lambda: not classify._live_job and unc_view.is_current()
                    and not np.array_equal(unc_view.layer.data, before), timeout=120000)
    expected = sample_plane(np.asarray(unc.data), unc_view._matrix(), unc_view.shape[1:],
                            unc_view.plane_index(), order=1, cval=0.0)
    np.testing.assert_allclose(unc_view.layer.data, expected, atol=1e-6)
    assert viewer.layers.selection.active is view.layer and view.layer.mode == "paint"

    # Live training off (a click): its drawings and their 2D views are hidden (a GUI
    # trial: the stale live prediction tinted the segmentation); nothing else changes
    drawings = [f"{scribbles.name} live {what}{view}" for what in ("prediction", "uncertainty")
                for view in ("", " (2D view)")]
    shown = [layer.name for layer in viewer.layers if layer.visible]
    assert set(drawings) & set(shown)
    qtbot.mouseClick(classify.train_button, Qt.MouseButton.LeftButton)
    assert not classify.train_button.isChecked()
    qtbot.wait(300)  # nothing comes back (a preview on its way)
    assert all(name in viewer.layers and not viewer.layers[name].visible for name in drawings)
    assert [layer.name for layer in viewer.layers if layer.visible] == [
        name for name in shown if name not in drawings]
    assert viewer.layers.selection.active is view.layer and view.layer.mode == "paint"


def test_live_training_predicts_the_whole_slice_of_a_large_rotated_roi(
        make_napari_viewer, qtbot, mouse, correlative_sample):
    """A GUI trial on the sample's full ROI (224 x 224 x 210, rotated ~28 deg): live
    training predicted a tilted strip about a quarter of the slice tall (one step's voxel
    budget). The first step still stops at the budget (its first plane is drawn at once);
    further steps predict the other planes on screen, middle out, each drawn, until every
    ROI pixel of the slice has a prediction; a new stroke starts again from the middle."""
    from time import perf_counter

    from napari_corrtomo.core.classify.features import FeatureSpec, FilterItem
    from napari_corrtomo.widgets.classify import MAX_LIVE_VOXELS, ClassifyWidget

    viewer = make_napari_viewer(show=True)
    widget, p, roi = _registered_roi(viewer, qtbot, correlative_sample, landmark=-1, half=6.0)
    classify = ClassifyWidget(viewer)
    classify.set_channels([roi.name])
    classify.set_feature_spec(FeatureSpec(tuple(FilterItem(n, s) for n in ("gaussian", "ggm")
                                                for s in (0.7, 1.6))))
    classify.forest_form["n_trees"].value = 16
    qtbot.mouseClick(classify.new_scribbles, Qt.MouseButton.LeftButton)
    scribbles = classify.scribbles.layer()
    views = widget.views
    qtbot.waitUntil(lambda: scribbles.name in views, timeout=20000)
    view = views[scribbles.name]
    mouse.look_at(viewer, p[0], p[1:], 12.0)
    qtbot.waitUntil(view.is_current, timeout=20000)
    # the slice on screen cuts more ROI planes than one live step predicts
    planes = classify._planes_on_screen(scribbles)
    per_step = classify._planes_per_step(scribbles)
    plane_voxels = int(np.prod(scribbles.data.shape[1:]))
    print(f"ROI {scribbles.data.shape}: {len(planes)} planes on screen, {per_step} per step")
    assert len(planes) * plane_voxels > MAX_LIVE_VOXELS and len(planes) > per_step
    viewer.layers.selection.active = view.layer
    view.layer.mode = "paint"
    view.layer.brush_size = 3

    def stroke(label, dy):
        view.layer.selected_label = label
        a, b = p + np.array([0.0, dy, -3.0]), p + np.array([0.0, dy, 3.0])
        mouse.drag(viewer, a[1:], b[1:], tol=0.5 * view.grid[1, 1])

    for label, dy in ((1, -3.0), (2, 0.0), (1, 3.0)):
        stroke(label, dy)
    shown: list[tuple[float, int, int]] = []  # (when, plane, labelled voxels) of each drawing
    draw = classify._show_update

    def spy(update):
        shown.append((perf_counter(), update.z, update.n_labelled))
        draw(update)

    classify._show_update = spy
    live_name = f"{scribbles.name} live prediction"

    def predicted() -> int:
        """Planes on screen whose every voxel has a prediction."""
        if live_name not in viewer.layers:
            return 0
        data = viewer.layers[live_name].data
        return sum(bool(np.all(data[z] > 0)) for z in planes)

    clicked = perf_counter()
    qtbot.mouseClick(classify.train_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(shown), timeout=120000)
    first = shown[0][0] - clicked
    # the first step ends at the budget, the next goes on: a stroke then starts again
    qtbot.waitUntil(lambda: len({z for _, z, _ in shown}) > per_step + 2, timeout=120000)
    assert classify._live_rest or predicted() == len(planes)
    n_before = shown[-1][2]
    stroke(2, 1.5)
    qtbot.waitUntil(lambda: shown[-1][2] > n_before, timeout=60000)
    restart = next(i for i, s in enumerate(shown) if s[2] > n_before)
    assert shown[restart][1] == planes[0]  # the middle plane first
    qtbot.waitUntil(lambda: predicted() == len(planes) and classify._live_job is None,
                    timeout=300000)
    done = perf_counter() - clicked
    after = {z for _, z, n in shown[restart:]}
    assert after == set(planes)  # the new forest drew every plane on screen
    assert viewer.layers.selection.active is view.layer and view.layer.mode == "paint"
    print(f"first drawing {first:.2f} s after the click, every plane {done:.2f} s; "
          f"{len(shown)} drawings")
    assert first < done / 3
    # the 2D view: every ROI pixel of the slice on screen has a prediction
    live_view = views[live_name]
    qtbot.waitUntil(live_view.is_current, timeout=20000)
    inside = _inside(viewer, live_view.layer, scribbles)
    from scipy import ndimage as ndi

    inner = ndi.binary_erosion(inside)  # pixels a rounding away from the ROI's faces
    data = np.asarray(live_view.layer.data)
    print(f"2D view: {np.count_nonzero(data[inside])} of {inside.sum()} ROI pixels predicted")
    assert inner.sum() > 0.5 * inside.size and np.all(data[inner] > 0)


def test_a_switch_from_3d_to_2d_raises_no_non_orthogonal_slicing_popup(make_napari_viewer):
    """napari slices a visible rotated layer at a switch from 3D to 2D before a plugin can
    hide it, and warns "Non-orthogonal slicing" (a popup). With registered views that
    slice is never drawn (its view is): the warning is not shown there."""
    import warnings

    from napari_corrtomo.widgets._registered_view import registered_views

    c, s = np.cos(0.5), np.sin(0.5)
    rotation = np.array([[c, -s, 0, 0], [s, c, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]])  # z-y

    def switch(viewer, views: bool) -> list:
        viewer.add_image(np.ones((8, 16, 16), np.float32), affine=rotation)
        viewer.dims.ndisplay = 3
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if views:
                registered_views(viewer)  # as every dock of the plugin does when it opens
            viewer.dims.ndisplay = 2
        return [w for w in caught if "Non-orthogonal slicing" in str(w.message)]

    assert switch(make_napari_viewer(), views=False)  # napari alone warns
    assert not switch(make_napari_viewer(), views=True)
