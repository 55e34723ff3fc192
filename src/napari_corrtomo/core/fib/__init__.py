"""FIB-SEM slice thickness, slice repositioning and interpolation to isotropic volumes.

After Sardhara et al. (FIB tomography of nanoporous gold): measure every slice's
thickness (ruler marks, :func:`measure_thickness`; or an instrument log,
:func:`load_thickness`), put every slice at its true depth on a fine z grid
(:func:`reposition`), fill the gaps (:func:`interpolate`: nearest, cubic,
shape-based or the shipped ML inpainting network) and judge the result against
ground truth (:func:`metrics`: MP, MGP, MDS) or by its anisotropy
(:func:`anisotropy`: e_TPCF, e_LPF, e_D). :func:`run_fib` and :func:`fib_quality`
run these steps as the widget, the CLI and the demo do (:class:`FibSettings`).
"""

from ._planes import nearest_known
from .interpolate import KINDS, METHODS, fill_planes, interpolate
from .metrics import anisotropy, metrics, plane_diameters
from .pipeline import (
    SOURCES,
    FibSettings,
    FibVolume,
    SliceThickness,
    correct_drift,
    cut_band,
    fib_quality,
    isotropic_volume,
    run_fib,
    slice_thickness,
)
from .reposition import Repositioned, check_thicknesses, reposition, slice_positions
from .ruler import POLARITIES, RulerMarkers, detect_ruler_marks
from .thickness import (
    ThicknessResult,
    fit_gamma,
    load_thickness,
    measure_thickness,
    thickness_table,
)

__all__ = [
    "KINDS",
    "METHODS",
    "POLARITIES",
    "SOURCES",
    "FibSettings",
    "FibVolume",
    "SliceThickness",
    "Repositioned",
    "RulerMarkers",
    "ThicknessResult",
    "anisotropy",
    "check_thicknesses",
    "correct_drift",
    "cut_band",
    "detect_ruler_marks",
    "fib_quality",
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
    "run_fib",
    "slice_positions",
    "slice_thickness",
    "thickness_table",
]
