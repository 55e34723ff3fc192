"""Every control of the six docks says what it does: a non-empty tooltip (issue 17)."""

from __future__ import annotations

import pytest
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QAbstractButton,
    QAbstractSpinBox,
    QComboBox,
    QLineEdit,
    QListWidget,
    QSlider,
    QStyle,
    QTabBar,
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


def cut_off(form) -> list[str]:
    """The visible controls of a dock whose text does not fit: a spin box's value, a line
    edit's text or placeholder, a button narrower than its own text needs."""
    cut = []
    for c in controls(form.body):
        if not c.isVisibleTo(form.body):
            continue
        if isinstance(c, QAbstractButton):  # its minimum size hint is its text's
            fits = c.width() >= c.minimumSizeHint().width()
        elif isinstance(c, QAbstractSpinBox):
            fits = c.fontMetrics().horizontalAdvance(c.text()) <= c.lineEdit().width()
        elif isinstance(c, QLineEdit):
            frame = c.style().pixelMetric(QStyle.PixelMetric.PM_DefaultFrameWidth)
            fits = (c.fontMetrics().horizontalAdvance(c.text() or c.placeholderText())
                    <= c.width() - 2 * frame)
        else:
            continue
        if not fits:
            cut.append(f"{type(c).__name__} {c.text() or getattr(c, 'placeholderText', str)()!r}")
    return cut


def shown(docks: list) -> list:
    """The docks a user sees: a tab behind another is covered, not hidden, in Qt."""
    return [d for d in docks if not d.widget().visibleRegion().isEmpty()]


def test_six_docks_open_as_tabs_that_fit_a_1080_pixel_screen(make_napari_viewer, qtbot):
    """All six docks added the way napari adds plugin docks (on the right, one after the
    other) to a 1920 x 1080 window: they open as tabs of one dock area, the last one in
    front; a real click on each tab brings its dock forward with the window's height
    (not a strip) and, even dragged to its narrowest, the width of its widest row; the
    window stays 1080 px high and the Quantify plot keeps a readable height."""
    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    window.resize(1920, 1080)
    docks = []
    for dock in DOCKS:
        docks.append(viewer.window.add_dock_widget(dock(viewer), name=dock.__name__,
                                                   area="right"))
        qtbot.waitUntil(docks[-1].widget().isVisible, timeout=5000)
    qtbot.waitUntil(lambda: len(window.tabifiedDockWidgets(docks[0])) == 5, timeout=5000)
    qtbot.wait(200)
    assert shown(docks) == [docks[-1]]
    bars = [bar for bar in window.findChildren(QTabBar) if bar.isVisible() and {
        bar.tabText(i) for i in range(bar.count())} == {d.__name__ for d in DOCKS}]
    assert len(bars) == 1
    bar = bars[0]
    for dock, kind in zip(docks, DOCKS, strict=True):
        tab = next(i for i in range(bar.count()) if bar.tabText(i) == kind.__name__)
        qtbot.mouseClick(bar, Qt.MouseButton.LeftButton, pos=bar.tabRect(tab).center())
        qtbot.waitUntil(lambda: shown(docks) == [dock], timeout=5000)  # noqa: B023
        form = dock.widget()
        assert form.viewport().height() >= 700, kind.__name__
        # the dock area dragged to its narrowest: still nothing cut off at the right
        window.resizeDocks([dock], [1], Qt.Orientation.Horizontal)
        qtbot.wait(50)
        assert form.body.minimumSizeHint().width() <= form.viewport().width(), kind.__name__
        # and no control's own text is cut (napari's style lets spin boxes shrink to 90 px:
        # "180.000 deg" beside another once showed "180.0")
        assert cut_off(form) == [], kind.__name__
    assert window.height() <= 1080
    quantify = docks[DOCKS.index(QuantifyWidget)].widget()
    assert quantify.plot.canvas.height() >= MIN_HEIGHT


def test_docks_opened_from_the_plugins_menu_show_their_names_in_full_tabs(
        make_napari_viewer, qtbot):
    """The six docks opened the way the Plugins menu opens them (napari names each
    "Quantify (napari-corrtomo)") at 1920 x 1080: the tabs read the docks' own names, none
    elided, all six on the bar at once."""
    from npe2 import PluginManager

    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    window.resize(1920, 1080)
    names = [w.display_name for w in
             PluginManager.instance().get_manifest("napari-corrtomo").contributions.widgets]
    for name in names:
        dock, _ = viewer.window.add_plugin_dock_widget("napari-corrtomo", name)
        assert dock.name == f"{name} (napari-corrtomo)"  # what napari calls it
        qtbot.waitUntil(dock.widget().isVisible, timeout=5000)
    qtbot.wait(200)
    bars = [bar for bar in window.findChildren(QTabBar) if bar.isVisible() and bar.count() == 6]
    assert len(bars) == 1
    bar = bars[0]
    assert sorted(bar.tabText(i) for i in range(6)) == sorted(names)
    assert bar.elideMode() == Qt.TextElideMode.ElideNone
    for i in range(6):  # each tab whole on the bar, no scrolling needed at this width
        assert bar.rect().contains(bar.tabRect(i)), bar.tabText(i)
