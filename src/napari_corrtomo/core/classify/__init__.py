"""Sparse-label random-forest pixel classification (ilastik-style).

- :mod:`.features` -- the ilastik filter bank (2D/3D, anisotropic) and FIB tailored features;
- :mod:`.forest` -- trained forests as flat arrays, compiled CPU / CuPy traversal;
- :mod:`.classifier` -- :class:`PixelClassifier`: fit on scribbles, predict blockwise, save/load;
- :mod:`.files` -- classifier files: written with a digest, checked whole before use;
- :mod:`.live` -- :class:`LiveTrainer`: the Qt-free interactive labelling session;
- :mod:`.pipeline` -- :func:`segment`: channels -> probabilities, labels, uncertainty (the
  workflow the widget, the CLI and the demo run);
- :mod:`.metrics` -- IoU and the average weighted error (Osenberg et al., 2023).
"""

from .classifier import PixelClassifier, proba_to_labels, proba_uncertainty
from .features import FILTERS, ILASTIK_SIGMAS, FeatureSpec, FilterItem, TailoredFeatures, compute_features
from .files import FILE_FORMAT, FILE_SUFFIX, FILE_VERSION
from .forest import FlatForest
from .live import LiveTrainer
from .metrics import iou_per_class, weighted_error
from .pipeline import Segmentation, segment, stack_channels

__all__ = [
    "FILE_FORMAT", "FILE_SUFFIX", "FILE_VERSION", "FILTERS", "FeatureSpec", "FilterItem",
    "FlatForest", "ILASTIK_SIGMAS", "LiveTrainer", "PixelClassifier", "Segmentation",
    "TailoredFeatures", "compute_features", "iou_per_class", "proba_to_labels",
    "proba_uncertainty", "segment", "stack_channels", "weighted_error",
]
