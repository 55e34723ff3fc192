"""A matplotlib figure inside a dock widget, with 'Save PNG'."""

from __future__ import annotations

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.QtWidgets import QFileDialog, QPushButton, QVBoxLayout, QWidget

#: the plot never collapses below this height (pixels), even in a crowded dock
MIN_HEIGHT = 250


class PlotCanvas(QWidget):
    """``canvas.figure`` is a plain matplotlib Figure; call ``draw()`` after plotting."""

    def __init__(self, parent: QWidget | None = None, height_in: float = 2.6):
        super().__init__(parent)
        self.figure = Figure(figsize=(4.0, height_in), layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.save_button = QPushButton("Save plot as PNG ...")
        self.save_button.clicked.connect(self._ask_save)
        self.save_button.setToolTip("save this plot as a PNG image (150 dpi)")
        self.canvas.setMinimumHeight(MIN_HEIGHT)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)
        layout.addWidget(self.save_button)

    def axes(self, clear: bool = True):
        """A single Axes, cleared by default."""
        if clear:
            self.figure.clear()
        return self.figure.axes[0] if self.figure.axes else self.figure.add_subplot()

    def draw(self) -> None:
        self.canvas.draw_idle()

    def save(self, path: str) -> None:
        self.figure.savefig(path, dpi=150)

    def _ask_save(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save plot", "plot.png", "PNG (*.png)")
        if path:
            self.save(path)
