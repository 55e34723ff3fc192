"""Regenerate the documentation screenshots from a real napari window (run under Xvfb).

    xvfb-run -a -s "-screen 0 1920x1200x24" .venv/bin/python scripts/screenshots.py [scene ...]

Each scene sets up the viewer the way a user would (sample data, dock widgets, a
finished run) and saves ``docs/images/<scene>.png``. The tutorial's screenshots come from
the test that follows it (``make screenshots`` runs both).
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
    """All six docks opened from the Plugins menu in a 1920 x 1080 window: they open as
    tabs with the window's height, the last one (Quantify) in front."""
    from npe2 import PluginManager

    viewer = napari.Viewer(title="napari-corrtomo", show=True)
    viewer.open_sample("napari-corrtomo", "correlative_particles")
    manifest = PluginManager.instance().get_manifest("napari-corrtomo")
    for widget in manifest.contributions.widgets or []:
        viewer.window.add_plugin_dock_widget("napari-corrtomo", widget.display_name)
    return viewer


def _wait(widget) -> None:
    import time

    while widget.runner.busy:
        QApplication.processEvents()
        time.sleep(0.02)
    if widget.runner.last_error is not None:
        raise RuntimeError(f"{type(widget).__name__}: {widget.runner.last_error}")


def _await_live(widget) -> None:
    """Until the Classify widget's last live update (the whole forest's) is drawn."""
    while widget._live_job is not None:
        _settle(100)


def _dock(viewer, widget, name):
    viewer.window.add_dock_widget(widget, name=name, area="right")
    return widget


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
    w.source_form["source"].value = "ruler marks"
    w.ruler_form["angle_deg"].value = fib.ruler.angle_deg
    w.source_form["band_rows"].value = f"0, {fib.ruler.band_rows}"
    w.measure()
    _wait(w)
    w.volume_form["method"].value = "cubic"
    w.run()
    _wait(w)
    layer.visible = False
    viewer.dims.ndisplay = 2
    viewer.reset_view()
    return viewer


def scene_classify_live() -> napari.Viewer:
    """docs/classification.md: live training on the FIB-SEM sample -- a few strokes per
    class inside the phases of one slice and two rounds of corrections where the live
    prediction erred (as a user paints them), its live uncertainty shown over the SE2
    image: bright along the phase edges, where the next strokes help most."""
    from napari_corrtomo.core import synthetic
    from napari_corrtomo.widgets.classify import ClassifyWidget

    fib = synthetic.fib_sem_stack(seed=0)
    viewer = napari.Viewer(show=True)
    for ch in fib.channels:
        viewer.add_image(ch.data, name=ch.name, scale=ch.scale, units=ch.units)
    viewer.layers[fib.channels[1].name].visible = False
    w = _dock(viewer, ClassifyWidget(viewer), "Classify")
    w.set_channels([ch.name for ch in fib.channels])
    z = 32
    scribbles = w.create_scribble_layer()
    scribbles.data = synthetic.scribbles_from_truth(fib.labels.data, slices=(z,),
                                                    strokes_per_class=3, seed=1)
    viewer.dims.set_point(0, z * fib.labels.scale[0])
    w.train_button.setChecked(True)
    _wait(w)
    _await_live(w)
    scribbles.data = synthetic.correction_rounds(w.live, fib.labels.data, scribbles.data,
                                                 (z,), rounds=2, seed=1)
    _settle(100)
    _await_live(w)
    viewer.layers[f"{scribbles.name} live prediction"].visible = False
    viewer.layers[f"{scribbles.name} live uncertainty"].visible = True
    viewer.dims.ndisplay = 2
    return viewer


SCENES: dict[str, Callable[[], napari.Viewer]] = {
    "viewer": scene_viewer,
    "fib": scene_fib,
    "classify_live": scene_classify_live,
    "all_docks": scene_all_docks,
}


#: window size per scene (default 1800 x 1100)
SIZES = {"all_docks": (1920, 1080)}


def save_window(viewer: napari.Viewer, path: Path) -> None:
    """The window as the user sees it (no notification toasts) saved as ``path``, a
    palette PNG (256 colours: a third to a tenth of the bytes). The tutorial's test saves
    its pictures with it too."""
    from napari._qt.dialogs.qt_notification import NapariQtNotification
    from PIL import Image

    for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
        toast.close()
    _settle(300)
    viewer.screenshot(str(path), canvas_only=False, flash=False)
    img = Image.open(path).convert("RGB")
    img.quantize(256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def _no_machine_paths(viewer: napari.Viewer) -> None:
    """The Project dock's autosave line names a folder of this machine: not in the picture."""
    from napari_corrtomo.widgets.project import ProjectWidget

    for form in viewer.window._qt_window.findChildren(ProjectWidget):
        form.autosave.saved.disconnect(form._on_autosaved)
        form.recovery_status.setText("")


def main(names: list[str]) -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    # autosave into a fresh folder: no earlier session of this machine to offer
    os.environ[ENV_RECOVERY_DIR] = tempfile.mkdtemp(prefix="corrtomo-recovery-")
    for name in names or list(SCENES):
        viewer = SCENES[name]()
        _no_machine_paths(viewer)
        viewer.window._qt_window.resize(*SIZES.get(name, (1800, 1100)))
        _settle(800)
        viewer.reset_view()  # the data fills the canvas of the resized window
        _settle(300)
        path = OUT / f"{name}.png"
        save_window(viewer, path)
        print(f"wrote {path} ({path.stat().st_size // 1024} KB)")
        viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
