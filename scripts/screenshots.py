"""Regenerate the documentation screenshots from a real napari window (run under Xvfb).

    xvfb-run -a -s "-screen 0 1920x1200x24" .venv/bin/python scripts/screenshots.py [scene ...]

Each scene sets up the viewer the way a user would (sample data, dock widgets, a
finished run) and saves ``docs/images/<scene>.png``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import napari
from qtpy.QtWidgets import QApplication

from napari_corrtomo.__main__ import open_viewer

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


SCENES: dict[str, Callable[[], napari.Viewer]] = {
    "viewer": scene_viewer,
}


def main(names: list[str]) -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for name in names or list(SCENES):
        viewer = SCENES[name]()
        viewer.window._qt_window.resize(1800, 1100)
        _settle(800)
        path = OUT / f"{name}.png"
        viewer.screenshot(str(path), canvas_only=False, flash=False)
        print(f"wrote {path}")
        viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
