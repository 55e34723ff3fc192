"""Quantification of segmented volumes in physical units (porosity, sizes, transport, ...)."""

from .transport import *  # noqa: F403  (transport descriptors; names in transport.__all__)
