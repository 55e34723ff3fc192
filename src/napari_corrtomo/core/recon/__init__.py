"""Tomographic reconstruction: geometries, preprocessing, FBP/FDK/SIRT/CGLS, alignment, FSC.

Projections are ``(angle, row, col)`` line integrals, volumes ``(z, y, x)`` in
1 / length. Geometries (:class:`Geometry`) document their rotation direction and
detector orientation and convert to ASTRA vector geometries. Engines: ASTRA CUDA
when a GPU is usable; otherwise compiled CPU projectors (a batched slice engine
for parallel beams, a 3D engine for cone beam and laminography).

Typical use::

    from napari_corrtomo.core.recon import Geometry, prepare, find_center, reconstruct
    geom = Geometry.parallel(np.linspace(0, 180, 900, endpoint=False), proj.shape[1:], 0.65,
                             unit="um")
    lines = prepare(raw, flats=flats, darks=darks, outlier_threshold=5)
    geom = geom.shifted(col=find_center(lines, geom))
    vol = reconstruct(lines, geom, method="sirt", iterations=100, min_value=0)
"""

from .align import (
    ALIGN_METHODS,
    Alignment,
    align_tilt_series,
    alignment_residual,
    find_center,
    measure_alignment,
    shift_projections,
)
from .filters import FILTERS, ramp_filter, short_scan_message
from .fsc import FSCResult, first_crossing, fsc, half_bit_threshold, one_bit_threshold
from .geometry import KINDS, Geometry
from .pipeline import (
    ReconSettings,
    Reconstruction,
    ScanSettings,
    check_center,
    check_memory,
    check_slab,
    half_map_fsc,
    memory_needed,
    prepare_scan,
    preview_slice,
    run_reconstruction,
)
from .preprocess import (
    minus_log,
    normalize,
    prepare,
    raw_counts_peak,
    remove_outliers,
    suppress_rings,
)
from .projector import backproject, forward_project, select_engine
from .reconstruct import (
    METHODS,
    check_grid,
    check_projections,
    method_for,
    reconstruct,
    reconstruct_halves,
    reconstruct_slice,
)

__all__ = [
    "FILTERS",
    "FSCResult",
    "Geometry",
    "KINDS",
    "METHODS",
    "ReconSettings",
    "Reconstruction",
    "ScanSettings",
    "ALIGN_METHODS",
    "Alignment",
    "align_tilt_series",
    "alignment_residual",
    "backproject",
    "check_projections",
    "find_center",
    "first_crossing",
    "forward_project",
    "fsc",
    "check_center",
    "check_grid",
    "check_memory",
    "check_slab",
    "half_bit_threshold",
    "half_map_fsc",
    "measure_alignment",
    "memory_needed",
    "method_for",
    "minus_log",
    "normalize",
    "one_bit_threshold",
    "prepare",
    "prepare_scan",
    "preview_slice",
    "ramp_filter",
    "raw_counts_peak",
    "reconstruct",
    "reconstruct_halves",
    "reconstruct_slice",
    "run_reconstruction",
    "remove_outliers",
    "select_engine",
    "shift_projections",
    "short_scan_message",
    "suppress_rings",
]
