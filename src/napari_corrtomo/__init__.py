"""napari-corrtomo: correlative, scale-bridging tomography in napari.

The compute core (:mod:`napari_corrtomo.core`) is plain NumPy/CuPy and usable
without napari; the dock widgets (:mod:`napari_corrtomo.widgets`) are thin
layers over it, and :mod:`napari_corrtomo.cli` runs the same pipelines headless.
"""

__version__ = "0.1.0"
