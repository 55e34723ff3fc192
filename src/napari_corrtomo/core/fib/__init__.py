"""FIB-SEM slice thickness, slice repositioning and interpolation to isotropic volumes.

After Sardhara et al. (FIB tomography of nanoporous gold): measure every slice's
thickness (ruler marks, :func:`measure_thickness`; or an instrument log,
:func:`load_thickness`), put every slice at its true depth on a fine z grid
(:func:`reposition`), fill the gaps (:func:`interpolate`: nearest, cubic,
shape-based or the shipped ML inpainting network) and judge the result against
ground truth (:func:`metrics`: MP, MGP, MDS) or by its anisotropy
(:func:`anisotropy`: e_TPCF, e_LPF, e_D).
"""

from ._planes import nearest_known
from .interpolate import METHODS, fill_planes, interpolate
from .metrics import anisotropy, metrics, plane_diameters
from .pipeline import FibVolume, correct_drift, isotropic_volume
from .reposition import Repositioned, check_thicknesses, reposition, slice_positions
from .ruler import RulerMarkers, detect_ruler_marks
from .thickness import (
    ThicknessResult,
    fit_gamma,
    load_thickness,
    measure_thickness,
    thickness_table,
)

__all__ = [
    "METHODS",
    "FibVolume",
    "Repositioned",
    "RulerMarkers",
    "ThicknessResult",
    "anisotropy",
    "check_thicknesses",
    "correct_drift",
    "detect_ruler_marks",
    "fill_planes",
    "fit_gamma",
    "interpolate",
    "isotropic_volume",
    "load_thickness",
    "measure_thickness",
    "metrics",
    "nearest_known",
    "plane_diameters",
    "reposition",
    "slice_positions",
    "thickness_table",
]
