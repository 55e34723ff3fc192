"""Regenerate the documentation screenshots from a real napari window (run under Xvfb).

    xvfb-run -a -s "-screen 0 1920x1200x24" .venv/bin/python scripts/screenshots.py [scene ...]

Each scene sets up the viewer the way a user would (sample data, dock widgets, a
finished run) and saves ``docs/images/<scene>.png``.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import napari
from qtpy.QtWidgets import QApplication

from napari_corrtomo.__main__ import open_viewer
from napari_corrtomo.core.recovery import ENV_RECOVERY_DIR

OUT = Path(__file__).resolve().parents[1] / "docs" / "images"


def _settle(ms: int = 400) -> None:
    from qtpy.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec_()
    QApplication.processEvents()


def scene_viewer() -> napari.Viewer:
    """The whole window: the correlative sample and every dock widget."""
    viewer = open_viewer(show=True)
    viewer.layers.selection.active = viewer.layers["microCT"]
    viewer.layers["nanoCT"].visible = False
    viewer.reset_view()
    viewer.dims.set_point(0, 84.0)  # um: through the nanoCT particle
    return viewer


def scene_all_docks() -> napari.Viewer:
    """All six docks stacked on the right, as napari adds plugin docks, in a 1920 x 1080
    window: each dock scrolls instead of making the window taller than the screen."""
    from npe2 import PluginManager

    viewer = napari.Viewer(title="napari-corrtomo", show=True)
    viewer.open_sample("napari-corrtomo", "correlative_particles")
    manifest = PluginManager.instance().get_manifest("napari-corrtomo")
    for widget in manifest.contributions.widgets or []:
        _, form = viewer.window.add_plugin_dock_widget("napari-corrtomo", widget.display_name)
        if hasattr(form, "recovery_status"):  # no path of this machine in the picture
            form.autosave.saved.disconnect(form._on_autosaved)
            form.recovery_status.setText("")
    viewer.window._qt_window.resize(1920, 1080)
    return viewer


# ============================================================================ the workflow
# docs/tutorial.md: the correlative chain on a small sample (the one of
# tests/widgets/test_workflow.py), driven through the dock widgets as a user would.

SMALL = dict(microct_shape=(64, 96, 96), n_particles=40, particle_diameter_um=(10.0, 30.0),
             nanoct_shape=(96, 96, 96), nanoct_voxel_um=0.13, et_shape=(32, 32, 32))
STAGES = ("reconstruct", "register", "roi", "classify", "quantify", "project")


def _wait(widget) -> None:
    import time

    while widget.runner.busy:
        QApplication.processEvents()
        time.sleep(0.02)
    if widget.runner.last_error is not None:
        raise RuntimeError(f"{type(widget).__name__}: {widget.runner.last_error}")


def _dock(viewer, widget, name):
    viewer.window.add_dock_widget(widget, name=name, area="right")
    return widget


def workflow(until: str) -> napari.Viewer:
    """Run the chain up to stage ``until`` and show that stage's dock widget."""
    import numpy as np

    from napari_corrtomo.core import synthetic
    from napari_corrtomo.core.synthetic import RESIN, SOLID
    from napari_corrtomo.widgets.classify import ClassifyWidget
    from napari_corrtomo.widgets.project import ProjectWidget
    from napari_corrtomo.widgets.quantify import QuantifyWidget
    from napari_corrtomo.widgets.reconstruct import ReconstructWidget
    from napari_corrtomo.widgets.register import RegisterWidget

    stop = STAGES.index(until)
    sample = synthetic.correlative_particles(seed=0, **SMALL)
    t = sample.truth
    viewer = napari.Viewer(title="napari-corrtomo: correlative workflow", show=True)

    # 1. reconstruct the microCT and nanoCT scans
    rw = _dock(viewer, ReconstructWidget(viewer), "Reconstruct")
    for i, (name, key, n) in enumerate((("microCT", "microct", 180), ("nanoCT", "nanoct", 160))):
        s = synthetic.scan(t.attenuation[key], "parallel", seed=1 + i, n_angles=n, photons=1e5,
                           blur_px=0.7, max_line_integral=3.0)
        layer = viewer.add_image(s.projections, name=name,
                                 scale=(1, s.geometry.pixel_size, s.geometry.pixel_size),
                                 metadata={"geometry": s.geometry.to_dict()}, visible=False)
        rw.projections.set_layer(layer)
        rw.log.setChecked(False)
        for box, size in zip(rw.shape, s.phantom.shape, strict=True):
            box.setValue(int(size))  # the scanned object's grid
        rw.run()
        _wait(rw)
    if stop == 0:
        rw.run_fsc()
        _wait(rw)
        viewer.layers["microCT reconstruction"].visible = False
        viewer.layers.selection.active = viewer.layers["nanoCT reconstruction"]
        viewer.reset_view()
        viewer.dims.set_point(0, 6.2)  # um: the middle of the nanoCT
        return viewer
    for name in ("microCT", "nanoCT"):  # the projections have served
        viewer.layers.remove(name)
    rw.close()
    viewer.window.remove_dock_widget("all")
    micro, nano = viewer.layers["microCT reconstruction"], viewer.layers["nanoCT reconstruction"]
    nano.colormap = "magma"
    nano.blending = "additive"

    # 2. landmarks, similarity fit, intensity refinement, overlay
    gw = _dock(viewer, RegisterWidget(viewer), "Register")
    gw.fixed_select.set_layer(micro)
    gw.moving_select.set_layer(nano)
    pf, pm = gw.create_landmark_layers()
    rng = np.random.default_rng(3)
    n = len(t.landmarks_microct)
    pf.data = t.landmarks_microct + rng.normal(0, 1.0, (n, 3))
    pm.data = t.landmarks_nanoct + rng.normal(0, 0.13, (n, 3))
    gw.model.setCurrentText("similarity")
    gw.fit()
    gw.apply_affine()
    gw.refine()
    _wait(gw)
    p = t.particles.loc[t.particles["particle"] == t.target_particle].iloc[0]
    c = p[["z_um", "y_um", "x_um"]].to_numpy(float)
    viewer.dims.set_point(0, float(c[0]))
    if stop == 1:
        for layer in (pf, pm):
            layer.mode = "pan_zoom"
        _zoom(viewer, c)
        return viewer

    # 3. ROI across scales: a box on the picked particle crops the registered nanoCT
    half = 0.5 * p["esd_um"] + 0.6
    box = viewer.add_shapes([[[c[0], c[1] - half, c[2] - half], [c[0], c[1] - half, c[2] + half],
                              [c[0], c[1] + half, c[2] + half], [c[0], c[1] + half, c[2] - half]]],
                            shape_type="rectangle", ndim=3, name="ROI box", edge_color="yellow",
                            face_color="transparent", edge_width=0.4)
    gw.roi_shapes.set_layer(box)
    gw.roi_target.set_layer(nano)
    gw.roi_depth.setValue(2 * half)
    roi = gw.crop_roi()
    gw.fov_reference.set_layer(micro)
    gw.show_fields_of_view()
    for layer in (pf, pm):
        layer.visible = False
    if stop == 2:
        roi.visible = False
        _zoom(viewer, c)
        return viewer
    gw.close()
    viewer.window.remove_dock_widget("all")
    for layer in viewer.layers:
        layer.visible = layer is roi

    # 4. classify the ROI from a few strokes
    cw = _dock(viewer, ClassifyWidget(viewer), "Classify")
    cw.set_channels([roi.name])
    scr = cw.create_scribble_layer()
    (z0, z1), (y0, y1), (x0, x1) = roi.metadata["corrtomo_roi_slices"]
    truth = np.asarray(t.nanoct_labels.data)[z0:z1, y0:y1, x0:x1]
    scr.data = synthetic.scribbles_from_truth(
        np.where(truth == SOLID, SOLID, RESIN).astype(np.uint8), seed=0, margin_px=1)
    scr.mode = "pan_zoom"
    cw.start_training()
    _wait(cw)
    cw.predict_volume()
    _wait(cw)
    seg = viewer.layers[f"{roi.name} segmentation"]
    if stop == 3:
        _zoom(viewer, c, 7.0)
        return viewer
    cw.close()
    viewer.window.remove_dock_widget("all")

    # 5. quantify: particle envelopes, porosity, pore sizes
    qw = _dock(viewer, QuantifyWidget(viewer), "Quantify")
    qw.labels_select.set_layer(seg)
    qw.phase.setValue(RESIN)
    qw.matrix.setValue(SOLID)
    for key, cb in qw.checks.items():
        cb.setChecked(key in ("porosity", "closed_pores", "envelopes"))
    qw.run()
    _wait(qw)
    qw.table_select.setCurrentText("particle_envelopes")
    for layer in viewer.layers:
        layer.visible = layer.name in (roi.name, f"{seg.name} particle envelopes")
    if stop == 4:
        _zoom(viewer, c, 7.0)
        return viewer
    qw.close()
    viewer.window.remove_dock_widget("all")

    # 6. the project panel: every modality with its voxel size, frame and field of view
    _dock(viewer, ProjectWidget(viewer), "Correlative project")
    for layer in viewer.layers:
        layer.visible = layer.name in ("microCT reconstruction", "nanoCT reconstruction",
                                       f"fields of view in {micro.name}")
    _zoom(viewer, c)
    return viewer


def _zoom(viewer: napari.Viewer, centre, factor: float = 3.0) -> None:
    """Centre the 2D view on a world point (z, y, x) and zoom in."""
    viewer.reset_view()
    viewer.dims.set_point(0, float(centre[0]))
    viewer.camera.center = tuple(float(v) for v in centre[1:])
    viewer.camera.zoom = viewer.camera.zoom * factor


def scene_fib() -> napari.Viewer:
    """docs/fib.md: slice thicknesses from the ruler marks of the FIB-SEM sample (marks
    overlaid, histogram with gamma fit), then the stack repositioned on a 10 nm grid."""
    from napari_corrtomo.core import synthetic
    from napari_corrtomo.widgets.fib import FibWidget

    fib = synthetic.fib_sem_stack(seed=0)
    viewer = napari.Viewer(show=True)
    ch = fib.channels[0]
    layer = viewer.add_image(ch.data, name="SE2", scale=ch.scale, units=ch.units)
    w = _dock(viewer, FibWidget(viewer), "FIB slices")
    w.stack.set_layer(layer)
    w.source.setCurrentText("ruler marks")
    w.angle.setValue(fib.ruler.angle_deg)
    w.row0.setValue(0)
    w.row1.setValue(fib.ruler.band_rows)
    w.measure()
    _wait(w)
    w.method.setCurrentText("cubic")
    w.run()
    _wait(w)
    layer.visible = False
    viewer.dims.ndisplay = 2
    viewer.reset_view()
    return viewer


SCENES: dict[str, Callable[[], napari.Viewer]] = {
    "viewer": scene_viewer,
    "fib": scene_fib,
    "all_docks": scene_all_docks,
    **{f"workflow_{i + 1}_{stage}": (lambda stage=stage: workflow(stage))
       for i, stage in enumerate(STAGES)},
}


#: window size per scene (default 1800 x 1100)
SIZES = {"all_docks": (1920, 1080)}


def _close_notifications(viewer: napari.Viewer) -> None:
    from napari._qt.dialogs.qt_notification import NapariQtNotification

    for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
        toast.close()
    _settle(300)


def _shrink(path: Path, limit: int = 300_000) -> None:
    """Palette PNG (256 colours) when the full-colour file is over ``limit`` bytes."""
    if path.stat().st_size <= limit:
        return
    from PIL import Image

    img = Image.open(path).convert("RGB")
    img.quantize(256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def main(names: list[str]) -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    # autosave into a fresh folder: no earlier session of this machine to offer
    os.environ[ENV_RECOVERY_DIR] = tempfile.mkdtemp(prefix="corrtomo-recovery-")
    for name in names or list(SCENES):
        viewer = SCENES[name]()
        viewer.window._qt_window.resize(*SIZES.get(name, (1800, 1100)))
        _settle(800)
        path = OUT / f"{name}.png"
        _close_notifications(viewer)
        viewer.screenshot(str(path), canvas_only=False, flash=False)
        _shrink(path)
        print(f"wrote {path} ({path.stat().st_size // 1024} KB)")
        viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
