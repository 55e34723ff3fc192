"""Quantification of segmented volumes in physical units.

Functions take label or binary arrays with their voxel size ``spacing`` (z, y, x)
(anisotropic allowed) and return arrays and tidy tables whose column names carry
the unit. See ``docs/quantification.md`` for the definitions.
"""

from .correlation import lineal_path, two_point_correlation
from .thickness import distance_ridge, local_thickness

# (the transport measures -- tortuosity factor, geodesic tortuosity, constrictivity --
#  are added here by their own module)

__all__ = [
    "distance_ridge",
    "lineal_path",
    "local_thickness",
    "two_point_correlation",
]
