"""The base of every dock: its form inside a scroll area.

A dock taller than the screen would force napari's window taller than the screen (six
docks once made it 4802 px); in a scroll area each dock takes the height napari gives it
and what does not fit scrolls.
"""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QFrame, QScrollArea, QWidget


class DockForm(QScrollArea):
    """Lay the dock's controls out on ``self.body``; the scroll area shows it."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.body = QWidget()
        self.setWidget(self.body)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
