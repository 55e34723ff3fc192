"""FIB-SEM slice thickness, slice repositioning and interpolation to isotropic volumes.

After Sardhara et al. (FIB tomography of nanoporous gold): measure every slice's
thickness (ruler marks, :func:`measure_thickness`; or an instrument log,
:func:`load_thickness`), put every slice at its true depth on a fine z grid
(:func:`reposition`), fill the gaps (:func:`interpolate`: nearest, cubic,
shape-based or the shipped ML inpainting network) and judge the result against
ground truth (:func:`metrics`: MP, MGP, MDS) or by its anisotropy
(:func:`anisotropy`: e_TPCF, e_LPF, e_D).
"""

from .interpolate import METHODS, interpolate, nearest_known
from .metrics import metrics
from .reposition import Repositioned, check_thicknesses, reposition, slice_positions

__all__ = [
    "METHODS",
    "Repositioned",
    "check_thicknesses",
    "interpolate",
    "metrics",
    "nearest_known",
    "reposition",
    "slice_positions",
]
