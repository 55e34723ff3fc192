"""A matplotlib figure inside a dock widget, with 'Save PNG' and a window of its own."""

from __future__ import annotations

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg, NavigationToolbar2QT
from matplotlib.figure import Figure
from qtpy.QtCore import QEvent, QObject, Qt
from qtpy.QtWidgets import QFileDialog, QLabel, QPushButton, QVBoxLayout, QWidget

from ._dock import hbox

#: the plot never collapses below this height (pixels), even in a crowded dock
MIN_HEIGHT = 250


class PlotCanvas(QWidget):
    """``canvas.figure`` is a plain matplotlib Figure; call ``draw()`` after plotting.

    *Pop out* moves the canvas into a resizable window of its own with matplotlib's
    toolbar (zoom, pan, save); closing that window puts it back in the dock. The figure
    stays one, so a new result drawn meanwhile shows in the window.
    """

    def __init__(self, parent: QWidget | None = None, height_in: float = 2.6,
                 title: str = "Plot"):
        super().__init__(parent)
        self.title = title
        self.figure = Figure(figsize=(4.0, height_in), layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(MIN_HEIGHT)
        self.save_button = QPushButton("Save plot as PNG ...")
        self.save_button.clicked.connect(self._ask_save)
        self.save_button.setToolTip("save this plot as a PNG image (150 dpi)")
        self.pop_button = QPushButton("Pop out")
        self.pop_button.setToolTip("show the plot in a window of its own, to enlarge, zoom "
                                   "and pan it (closing the window brings it back)")
        self.pop_button.clicked.connect(self.pop_out)
        #: where the canvas was, while it is in its own window
        self.placeholder = QLabel("The plot is in its own window; close it to bring the "
                                  "plot back here.")
        self.placeholder.setWordWrap(True)
        self.placeholder.hide()
        #: the plot's own window while it is popped out
        self.popup: QWidget | None = None
        self._layout = layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)
        layout.addWidget(self.placeholder)
        layout.addLayout(hbox(self.save_button, self.pop_button, stretch=self.save_button))

    def axes(self, clear: bool = True):
        """A single Axes, cleared by default."""
        if clear:
            self.figure.clear()
        return self.figure.axes[0] if self.figure.axes else self.figure.add_subplot()

    def draw(self) -> None:
        self.canvas.draw_idle()

    def clear(self) -> None:
        """An empty figure, no axes: its draw lays out no text (empty axes took 0.1-0.3 s
        of the UI thread as a long action started, 2-core VM)."""
        self.figure.clear()
        self.draw()

    def save(self, path: str) -> None:
        # the whole figure, labels and legend included, whatever the dock's width was
        self.figure.savefig(path, dpi=150, bbox_inches="tight")

    def pop_out(self) -> QWidget:
        """The plot's own window (made and shown, or raised when it is already open)."""
        if self.popup is None:
            # a child with the Window flag: it closes with the dock and the viewer
            window = QWidget(self, Qt.WindowType.Window)
            window.setWindowTitle(self.title)
            window.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            box = QVBoxLayout(window)
            box.addWidget(NavigationToolbar2QT(self.canvas, window))
            box.addWidget(self.canvas)
            window.installEventFilter(self)
            window.resize(900, 650)
            self.popup = window
            self.placeholder.show()
            self.pop_button.setEnabled(False)
            window.show()
        self.popup.raise_()
        return self.popup

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if obj is self.popup and event.type() == QEvent.Type.Close:
            self._layout.insertWidget(0, self.canvas)
            self.canvas.show()
            self.placeholder.hide()
            self.pop_button.setEnabled(True)
            self.popup = None
        return super().eventFilter(obj, event)

    def _ask_save(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save plot", "plot.png", "PNG (*.png)")
        if path:
            self.save(path)
