"""A registered (rotated) nanoCT is drawn in 2D: screenshots of a real viewer (Issue 16)."""

import numpy as np
import pytest

from napari_corrtomo.widgets._layers import index_to_world
from napari_corrtomo.widgets.register import RegisterWidget

pytest.importorskip("SimpleITK")


def test_registered_nanoct_is_drawn_in_2d_at_three_slices(make_napari_viewer, qtbot,
                                                           correlative_sample):
    s, truth = correlative_sample, correlative_sample.truth
    viewer = make_napari_viewer(show=True)
    micro = viewer.add_image(s.microct.data, name="microCT", scale=s.microct.scale, units="um")
    nano = viewer.add_image(s.nanoct.data, name="nanoCT", scale=s.nanoct.scale, units="um",
                            colormap="magenta")
    widget = RegisterWidget(viewer)
    widget.fixed_select.set_layer(micro)
    widget.moving_select.set_layer(nano)
    pf, pm = widget.create_landmark_layers()
    pf.add(truth.landmarks_microct)
    pm.add(truth.landmarks_nanoct)
    widget.fit()
    widget.apply_button.click()
    pf.visible = pm.visible = False
    view = widget.views["nanoCT"]
    assert view.layer in viewer.layers
    viewer.dims.ndisplay = 2
    # world z of the nanoCT field of view (its 8 corners mapped by its affine)
    corners = np.array([[a, b, c, 1.0] for a in (0, 1) for b in (0, 1) for c in (0, 1)])
    m = widget.views["nanoCT"].moving
    world = (index_to_world(m) @ (corners * np.r_[np.array(m.data.shape) - 1, 1]).T).T
    lo, hi = world[:, 0].min(), world[:, 0].max()
    # look at the nanoCT field (it is a small part of the microCT)
    viewer.camera.center = world[:, :3].mean(axis=0)
    viewer.camera.zoom = 0.6 * min(viewer.window._qt_viewer.canvas.size) / np.ptp(world[:, 1:3],
                                                                                  axis=0).max()
    for z in np.linspace(lo, hi, 5)[1:4]:
        viewer.dims.set_point(0, z)
        qtbot.waitUntil(view.is_current, timeout=20000)
        plane = view.layer.data[0]
        assert np.ptp(plane) > 0, "the sampled plane holds moving data"
        with_view = viewer.screenshot(canvas_only=True, flash=False).astype(float)
        view.layer.visible = False
        alone = viewer.screenshot(canvas_only=True, flash=False).astype(float)
        view.layer.visible = True
        # magenta adds red and blue only where the nanoCT lies: the screenshots differ there
        diff = np.abs(with_view - alone)[..., :3].sum(axis=-1)
        assert (diff > 30).mean() > 0.01, f"no nanoCT drawn at z={z:.1f}"
        np.testing.assert_allclose(with_view[..., 1], alone[..., 1], atol=2)
