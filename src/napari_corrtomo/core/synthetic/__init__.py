"""Phantoms and the sample datasets, deterministic from a ``seed``, with ground truth.

All samples are rendered from analytic scenes (spheres, leveled waves), so the
truth does not depend on the code under test. One module per modality:

- :mod:`.correlative` -- :func:`correlative_particles`: a microCT-like overview of a
  resin column with a few hundred porous silica-like particles (voxel 1 um), a
  nanoCT-like volume of one particle (voxel 65 nm) related to it by a known
  similarity transform, and an ET-like volume of the mesoporous wall (voxel 0.5 nm).
- :mod:`.fib` -- :func:`fib_sem_stack`: a three-phase porous electrode imaged by
  FIB-SEM with two detectors, shine-through, curtaining, gamma-distributed slice
  thicknesses and ruler marks; :func:`fib_mimic` of hierarchical leveled waves.
- :mod:`.scans` -- :func:`projections` of analytic phantoms in every geometry and
  :func:`scan` of any sample volume (raw counts, flats, darks, artefacts).
- :mod:`.scribbles` -- sparse training strokes and correction strokes drawn from a truth.
- :mod:`.shapes` -- spheres, rotations, leveled waves, exact interface distances.

Conventions: arrays are (z, y, x); points are (z, y, x) in physical units; a
world coordinate is ``index * spacing`` (napari's ``scale``, no offset).
"""

from .correlative import (
    AIR,
    CORRELATIVE_PHASES,
    PORE,
    RESIN,
    SOLID,
    CorrelativeSample,
    CorrelativeTruth,
    correlative_particles,
)
from .fib import (
    FIB_AM,
    FIB_CBD,
    FIB_PHASES,
    FIB_PORE,
    FibMimic,
    FibSemSample,
    RulerSpec,
    discrete_gamma_thicknesses,
    fib_mimic,
    fib_sem_stack,
    gamma_thicknesses,
    hierarchical_leveled_wave,
)
from .scans import (
    CORRELATIVE_SCANS,
    ProjectionSample,
    correlative_scans,
    projections,
    scan,
    sphere_line_integrals,
)
from .scribbles import CORRECTION_ROUNDS, correction_rounds, correction_strokes, scribbles_from_truth
from .shapes import (
    interface_distance,
    leveled_wave,
    paint_spheres,
    porous_sphere,
    random_rotation,
    similarity_matrix,
)

__all__ = [
    "AIR", "CORRECTION_ROUNDS", "CORRELATIVE_PHASES", "CORRELATIVE_SCANS", "CorrelativeSample",
    "CorrelativeTruth",
    "FIB_AM", "FIB_CBD", "FIB_PHASES", "FIB_PORE", "FibMimic", "FibSemSample", "PORE",
    "ProjectionSample", "RESIN", "RulerSpec", "SOLID", "correction_rounds",
    "correction_strokes", "correlative_particles", "correlative_scans",
    "discrete_gamma_thicknesses", "fib_mimic", "fib_sem_stack", "gamma_thicknesses",
    "hierarchical_leveled_wave", "interface_distance", "leveled_wave", "paint_spheres",
    "porous_sphere", "projections", "random_rotation", "scan", "scribbles_from_truth",
    "similarity_matrix", "sphere_line_integrals",
]
