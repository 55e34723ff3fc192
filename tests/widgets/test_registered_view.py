"""A registered (rotated) nanoCT is drawn in 2D: screenshots of a real viewer (Issue 16)."""

import time

import numpy as np
import pytest
from qtpy.QtCore import QPoint, Qt, QTimer

from napari_corrtomo.widgets._layers import index_to_world
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


def test_registered_nanoct_is_drawn_in_2d_at_three_slices(make_napari_viewer, qtbot,
                                                           correlative_sample):
    s = correlative_sample
    viewer = make_napari_viewer(show=True)
    widget, micro, nano = _registered(viewer, s, colormap="magenta")
    view = widget.views["nanoCT"]
    assert view.layer in viewer.layers
    viewer.dims.ndisplay = 2
    # world z of the nanoCT field of view (its 8 corners mapped by its affine)
    corners = np.array([[a, b, c, 1.0] for a in (0, 1) for b in (0, 1) for c in (0, 1)])
    m = widget.views["nanoCT"].moving
    world = (index_to_world(m) @ (corners * np.r_[np.array(m.data.shape) - 1, 1]).T).T
    lo, hi = world[:, 0].min(), world[:, 0].max()
    # look at the nanoCT field (it is a small part of the microCT)
    viewer.scene.camera.center = world[:, :3].mean(axis=0)
    viewer.scene.camera.zoom = 0.6 * min(viewer.window._qt_viewer.canvas.size) / np.ptp(world[:, 1:3],
                                                                                  axis=0).max()
    for z in np.linspace(lo, hi, 5)[1:4]:
        viewer.dims.set_point(0, z)
        qtbot.waitUntil(view.is_current, timeout=20000)
        plane = view.layer.data
        assert np.ptp(plane) > 0, "the sampled plane holds moving data"
        with_view = viewer.screenshot(canvas_only=True, flash=False).astype(float)
        view.layer.visible = False
        alone = viewer.screenshot(canvas_only=True, flash=False).astype(float)
        view.layer.visible = True
        # magenta adds red and blue only where the nanoCT lies: the screenshots differ there
        diff = np.abs(with_view - alone)[..., :3].sum(axis=-1)
        assert (diff > 30).mean() > 0.01, f"no nanoCT drawn at z={z:.1f}"
        np.testing.assert_allclose(with_view[..., 1], alone[..., 1], atol=2)


def _canvas_pos(viewer, world_yx):
    """The canvas pixel (Qt logical coordinates) where a world (y, x) point is drawn."""
    canvas = viewer.window._qt_viewer.canvas
    xy = canvas.view.scene.transform.map([world_yx[1], world_yx[0], 0, 1])[:2]
    return QPoint(int(round(xy[0])), int(round(xy[1])))


def test_painting_a_registered_roi_writes_its_voxels_at_the_clicked_place(
        make_napari_viewer, qtbot, correlative_sample):
    s, truth = correlative_sample, correlative_sample.truth
    viewer = make_napari_viewer(show=True)
    widget, micro, nano = _registered(viewer, s)
    # the ROI: a 4 um box around a bead drawn on the microCT, cropped from the nanoCT
    p = truth.landmarks_microct[0]
    box = viewer.add_shapes(ndim=3, name="ROI box")
    box.add_rectangles(np.array([[p[0], p[1] - 2, p[2] - 2], [p[0], p[1] - 2, p[2] + 2],
                                 [p[0], p[1] + 2, p[2] + 2], [p[0], p[1] + 2, p[2] - 2]]))
    box.visible = False
    widget.roi_shapes.set_layer(box)
    widget.roi_target.set_layer(nano)
    widget.roi_depth.setValue(4.0)
    qtbot.mouseClick(widget.roi_button, Qt.MouseButton.LeftButton)
    roi = viewer.layers["nanoCT ROI"]
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
    native = viewer.window._qt_viewer.canvas.native
    # what the Classify widget's live training listens to: at the paint event the voxels
    # are written already (it reads the labels then)
    edits = []
    scribbles.events.paint.connect(lambda e: edits.append(int((scribbles.data == 2).sum())))
    qtbot.wait(50)

    # a click 1 um beside the bead
    target = p + np.array([0.0, 1.0, -0.5])
    pos = _canvas_pos(viewer, target[1:])
    qtbot.mouseMove(native, pos)
    qtbot.waitUntil(lambda: np.abs(np.asarray(viewer.cursor.position)[1:] - target[1:]).max()
                    < 0.5 * view.grid[1, 1])
    qtbot.mousePress(native, Qt.MouseButton.LeftButton, pos=pos)
    qtbot.mouseRelease(native, Qt.MouseButton.LeftButton, pos=pos)
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
    qtbot.mouseMove(native, _canvas_pos(viewer, a[1:]))
    qtbot.mousePress(native, Qt.MouseButton.LeftButton, pos=_canvas_pos(viewer, a[1:]))
    for t in np.linspace(0, 1, 9)[1:]:
        qtbot.wait(20)  # vispy drops moves < 10 ms apart (a hand is slower)
        qtbot.mouseMove(native, _canvas_pos(viewer, (a + t * (b - a))[1:]))
    qtbot.mouseRelease(native, Qt.MouseButton.LeftButton, pos=_canvas_pos(viewer, b[1:]))
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
