"""The base of every dock: its form inside a scroll area, tabbed with the other docks of
this plugin.

A dock taller than the screen would force napari's window taller than the screen (six
docks once made it 4802 px); in a scroll area each dock takes the height napari gives it
and what does not fit scrolls; its width is at least that of its widest row, so nothing
is cut off at the right. napari stacks the docks a user opens from its Plugins
menu, so with six of them each kept a strip of ~50 px at 1080 px: a dock of this plugin
opens as a tab beside the ones already open, with the window's full height, each one
click away (a tab can still be dragged out). ``hbox`` lays out a row of controls and
``act_on_file`` is how a dock acts on the file its dialog chose.
"""

from __future__ import annotations

from collections.abc import Callable

from qtpy.QtCore import QSize, Qt, QTimer
from qtpy.QtWidgets import (
    QDockWidget,
    QFrame,
    QHBoxLayout,
    QMainWindow,
    QScrollArea,
    QTabBar,
    QWidget,
)

#: what napari appends to the name of a dock opened from its Plugins menu
PLUGIN_SUFFIX = " (napari-corrtomo)"


class DockForm(QScrollArea):
    """Lay the dock's controls out on ``self.body``; the scroll area shows it."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.body = QWidget()
        self.setWidget(self.body)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._placed = False

    def minimumSizeHint(self) -> QSize:
        """As wide as the form's widest row and the scroll bar: a dock narrower than its
        controls would cut them off (the height scrolls instead)."""
        hint = super().minimumSizeHint()
        width = (self.body.minimumSizeHint().width() + self.verticalScrollBar().sizeHint().width()
                 + 2 * self.frameWidth())
        return QSize(max(hint.width(), width), hint.height())

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self._placed:  # once: the user may drag the tab out afterwards
            self._join_tabs()

    def _join_tabs(self) -> None:
        """Tab this dock with an open, docked dock of this plugin already placed in its
        area and bring it to the front."""
        self._placed = True
        dock = _dock_of(self)
        window = dock.parentWidget() if dock is not None else None
        if not isinstance(window, QMainWindow) or dock.isFloating():
            return
        title = dock.windowTitle()  # the tab's text; napari's title bar keeps the full name
        if title.endswith(PLUGIN_SUFFIX):
            dock.setWindowTitle(title[: -len(PLUGIN_SUFFIX)])
        area = window.dockWidgetArea(dock)
        for other in window.findChildren(QDockWidget):
            if (other is not dock and not other.isFloating()
                    and other.toggleViewAction().isChecked()
                    and window.dockWidgetArea(other) == area
                    and any(form._placed for form in other.findChildren(DockForm))):
                window.tabifyDockWidget(other, dock)
                dock.raise_()
                QTimer.singleShot(0, lambda: _full_titles(window, dock))  # the bar, once laid out
                return


def _full_titles(window: QMainWindow, dock: QDockWidget) -> None:
    """The tab bar holding ``dock`` shows whole titles, scrolling when they do not fit."""
    for bar in window.findChildren(QTabBar):
        if dock.windowTitle() in {bar.tabText(i) for i in range(bar.count())}:
            bar.setElideMode(Qt.TextElideMode.ElideNone)
            bar.setUsesScrollButtons(True)


def _dock_of(widget: QWidget) -> QDockWidget | None:
    while widget is not None and not isinstance(widget, QDockWidget):
        widget = widget.parentWidget()
    return widget


def hbox(*widgets: QWidget, stretch: QWidget | None = None) -> QHBoxLayout:
    """A row of controls, ``stretch`` (if given) taking the spare width: one way for every dock."""
    row = QHBoxLayout()
    for w in widgets:
        row.addWidget(w, 1 if w is stretch else 0)
    return row


def act_on_file(path: str, action: Callable[[str], object], show_error: Callable[[str], object],
                errors: tuple[type[Exception], ...] = (ValueError,)) -> bool:
    """Run ``action`` on a file dialog's choice ('' = cancelled), its ``errors`` shown rather
    than raised (the caller passes its own ``show_error``); True when it ran without one."""
    if not path:
        return False
    try:
        action(path)
    except errors as exc:
        show_error(str(exc))
        return False
    return True
