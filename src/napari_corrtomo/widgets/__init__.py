"""Dock widgets: one module per widget, thin layers over :mod:`napari_corrtomo.core`.

Each widget reads napari layers (with their ``scale`` and ``units``), runs one
core call in a worker thread with progress and cancel (:mod:`._runner`), and
writes new layers, plots (:mod:`._plot`) and tables (:mod:`._table`). Widgets
never call each other; they meet through layers and layer metadata.
"""
