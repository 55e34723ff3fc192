"""Quantification of segmented volumes in physical units.

Functions take label or binary arrays with their voxel size ``spacing`` (z, y, x)
(anisotropic allowed) and return arrays and tidy tables whose column names carry
the unit. See ``docs/quantification.md`` for the definitions and seed values.

Modules: :mod:`.thickness` (local thickness), :mod:`.distributions` (size
distributions, log-normal fits), :mod:`.particles` (separation, per-particle
table), :mod:`.porosity` (porosity, closed and inner pores, gradients, cross-scale
correction), :mod:`.surface` (marching-cubes area), :mod:`.correlation`
(two-point correlation, lineal path), :mod:`.interface` (proxigrams), :mod:`.transport`
(tortuosity factor), :mod:`.pathways` (geodesic tortuosity, intrusion curve,
constrictivity), :mod:`.envelope` (particle envelopes).
"""

from . import measures  # noqa: F401  (registers the measures in MEASURES)
from .correlation import lattice_directions, lineal_path, two_point_correlation
from .distributions import LogNormalFit, SizeDistribution, lognormal_pdf, size_distribution
from .envelope import labels_at, particle_envelopes, spherical_envelopes
from .interface import Proxigram, proxigram
from .particles import close_each, fill_holes, particle_table, separate_particles
from .pathways import (
    ConstrictivityResult,
    GeodesicTortuosity,
    constrictivity,
    geodesic_tortuosity,
    intrusion_curve,
)
from .pipeline import (
    ENVELOPES,
    LENGTHS,
    MEASURES,
    Curve,
    MeasureSpec,
    QuantifyResult,
    QuantifySettings,
    ResultArray,
    label_roles,
    quantify,
    register,
)
from .porosity import (
    PhaseLevels,
    closed_pores,
    combine_porosity,
    inner_pores,
    mid_level_boundary,
    partial_volume_porosity,
    phase_fractions,
    phase_levels,
    porosity,
    volume_fraction_profile,
)
from .surface import mesh_area, specific_surface, surface_area
from .thickness import distance_ridge, local_thickness
from .transport import TortuosityResult, tortuosity_factor, tortuosity_table

__all__ = [
    "MEASURES",
    "Curve",
    "LogNormalFit",
    "MeasureSpec",
    "QuantifyResult",
    "ENVELOPES",
    "LENGTHS",
    "QuantifySettings",
    "ResultArray",
    "label_roles",
    "quantify",
    "register",
    "Proxigram",
    "SizeDistribution",
    "closed_pores",
    "combine_porosity",
    "distance_ridge",
    "fill_holes",
    "inner_pores",
    "lattice_directions",
    "lineal_path",
    "local_thickness",
    "lognormal_pdf",
    "mesh_area",
    "particle_envelopes",
    "spherical_envelopes",
    "particle_table",
    "phase_fractions",
    "PhaseLevels",
    "phase_levels",
    "mid_level_boundary",
    "partial_volume_porosity",
    "porosity",
    "proxigram",
    "separate_particles",
    "close_each",
    "size_distribution",
    "specific_surface",
    "surface_area",
    "two_point_correlation",
    "volume_fraction_profile",
    "ConstrictivityResult",
    "GeodesicTortuosity",
    "TortuosityResult",
    "constrictivity",
    "geodesic_tortuosity",
    "intrusion_curve",
    "labels_at",
    "tortuosity_factor",
    "tortuosity_table",
]
