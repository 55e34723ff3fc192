"""The base of every dock: its form inside a scroll area.

A dock taller than the screen would force napari's window taller than the screen (six
docks once made it 4802 px); in a scroll area each dock takes the height napari gives it
and what does not fit scrolls. ``hbox`` lays out a row of controls and ``act_on_file`` is how a
dock acts on the file its dialog chose.
"""

from __future__ import annotations

from collections.abc import Callable

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QFrame, QHBoxLayout, QScrollArea, QWidget


class DockForm(QScrollArea):
    """Lay the dock's controls out on ``self.body``; the scroll area shows it."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.body = QWidget()
        self.setWidget(self.body)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)


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
