"""A dock's plot pops out into a window of its own and comes back (widgets._plot)."""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import Qt

from napari_corrtomo.widgets._plot import MIN_HEIGHT, PlotCanvas


def _red_pixels(widget) -> int:
    img = widget.grab().toImage()
    ptr = img.constBits()
    ptr.setsize(img.sizeInBytes())
    px = np.frombuffer(ptr, np.uint8).reshape(img.height(), img.bytesPerLine() // 4, 4)
    b, g, r = px[..., 0].astype(int), px[..., 1].astype(int), px[..., 2].astype(int)
    return int(((r > 200) & (g < 60) & (b < 60)).sum())


def test_pop_out_enlarges_the_plot_and_closing_brings_it_back(qtbot):
    plot = PlotCanvas(title="Test plot")
    qtbot.addWidget(plot)
    plot.resize(380, 320)
    plot.show()
    qtbot.waitExposed(plot)
    assert plot.canvas.height() >= MIN_HEIGHT
    qtbot.mouseClick(plot.pop_button, Qt.MouseButton.LeftButton)
    window = plot.popup
    assert window is not None and window.isVisible() and window.windowTitle() == "Test plot"
    qtbot.waitExposed(window)
    assert plot.canvas.window() is window and plot.placeholder.isVisible()
    assert not plot.pop_button.isEnabled()
    qtbot.waitUntil(lambda: plot.canvas.width() > 600 and plot.canvas.height() > 400)
    # a result drawn while the plot is out shows in its window
    plot.axes().plot([0, 1], [0, 1], color="red", linewidth=4)
    plot.canvas.draw()
    assert _red_pixels(window) > 200
    window.close()
    qtbot.waitUntil(lambda: plot.popup is None)
    assert plot.canvas.parent() is plot and plot.canvas.isVisible()
    assert not plot.placeholder.isVisible() and plot.pop_button.isEnabled()
    plot.canvas.draw()
    assert _red_pixels(plot) > 50
