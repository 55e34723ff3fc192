"""Every control of the six docks says what it does: a non-empty tooltip (issue 17)."""

from __future__ import annotations

import pytest
from qtpy.QtWidgets import (
    QAbstractButton,
    QAbstractSpinBox,
    QComboBox,
    QLineEdit,
    QListWidget,
    QSlider,
    QWidget,
)

from napari_corrtomo.widgets._plot import MIN_HEIGHT
from napari_corrtomo.widgets.classify import ClassifyWidget
from napari_corrtomo.widgets.fib import FibWidget
from napari_corrtomo.widgets.project import ProjectWidget
from napari_corrtomo.widgets.quantify import QuantifyWidget
from napari_corrtomo.widgets.reconstruct import ReconstructWidget
from napari_corrtomo.widgets.register import RegisterWidget

CONTROLS = (QAbstractButton, QAbstractSpinBox, QComboBox, QLineEdit, QListWidget, QSlider)
DOCKS = (ReconstructWidget, ClassifyWidget, RegisterWidget, FibWidget, QuantifyWidget,
         ProjectWidget)


def controls(widget: QWidget) -> list[QWidget]:
    """The controls a user can operate, without Qt's own parts (a table's corner button,
    a spin box's line edit)."""
    return [c for c in widget.findChildren(QWidget)
            if isinstance(c, CONTROLS) and not c.objectName().startswith("qt_")
            and not isinstance(c.parent(), (QAbstractSpinBox, QComboBox))]


@pytest.mark.parametrize("dock", DOCKS, ids=lambda d: d.__name__)
def test_every_control_has_a_tooltip(make_napari_viewer, qtbot, dock):
    viewer = make_napari_viewer()
    widget = dock(viewer)
    qtbot.addWidget(widget)
    found = controls(widget)
    assert len(found) >= 5  # the search sees the form
    missing = [f"{type(c).__name__} {getattr(c, 'text', lambda: '')()!r}" for c in found
               if not c.toolTip().strip()]
    assert not missing, missing


def test_six_docks_fit_a_1080_pixel_screen(make_napari_viewer, qtbot):
    """All six docks added the way napari adds plugin docks (stacked on the right) in a
    1920 x 1080 window: the window stays 1080 px high (each dock scrolls), every dock
    shows part of its form, and the Quantify plot keeps a readable height."""
    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    window.resize(1920, 1080)
    docks = [viewer.window.add_dock_widget(dock(viewer), name=dock.__name__, area="right")
             for dock in DOCKS]
    qtbot.waitUntil(lambda: all(d.height() > 0 for d in docks), timeout=5000)
    qtbot.wait(200)
    assert window.height() <= 1080
    assert all(d.widget().viewport().height() >= 50 for d in docks)
    quantify = docks[DOCKS.index(QuantifyWidget)].widget()
    assert quantify.plot.canvas.height() >= MIN_HEIGHT
