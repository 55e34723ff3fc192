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


def test_plots_never_collapse(make_napari_viewer, qtbot):
    """Docked in a 1080-pixel-high window next to the others, the Quantify plot keeps a
    readable height."""
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1920, 1080)
    widgets = [viewer.window.add_dock_widget(dock(viewer), name=dock.__name__, area="right")
               for dock in DOCKS]
    quantify = widgets[DOCKS.index(QuantifyWidget)].widget()
    widgets[DOCKS.index(QuantifyWidget)].raise_()
    qtbot.waitUntil(lambda: quantify.plot.canvas.height() > 0, timeout=5000)
    assert quantify.plot.canvas.height() >= MIN_HEIGHT
