"""Peak-memory estimates, checked before a whole-array computation starts.

A computation that does not fit is refused with a message naming the size, the estimate
and the alternative (block by block, or a crop), instead of being killed by the operating
system part-way, taking the napari window and its unsaved state with it.

Each estimate is ``per_voxel * voxels + fixed`` bytes of host memory on top of the
input, with constants measured by ``benchmarks/memory.py`` (Linux peak resident size
around one call in a fresh process); docs/benchmarks/memory.md holds the table of
estimated against measured peaks. They hold for the structures measured there
(a porous network filling the volume, the expensive case); sparse phases need less.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .backend import format_bytes, memory_budget


@dataclass(frozen=True)
class PeakModel:
    """Peak bytes = ``(per_voxel + per_feature * features) * voxels + fixed`` held
    throughout, plus the larger of two stages: a transient whole-array pass
    (``transient_per_voxel * voxels``) and work on the largest piece handled whole
    (``per_work_voxel * work_voxels``)."""

    per_voxel: float
    fixed: float
    per_feature: float = 0.0
    transient_per_voxel: float = 0.0
    per_work_voxel: float = 0.0


#: measured by benchmarks/memory.py (2-core VM, NumPy backend); keys are what messages say
PEAKS: dict[str, PeakModel] = {
    "local thickness": PeakModel(per_voxel=8.0, fixed=5e6),
    # the labels (4 B) throughout; connected components, then one component's watershed
    "particle separation": PeakModel(per_voxel=4.0, transient_per_voxel=2.0,
                                     per_work_voxel=40.0, fixed=4e6),
    "tortuosity factor": PeakModel(per_voxel=153.0, fixed=10e6),
    "features": PeakModel(per_voxel=108.0, per_feature=3.7, fixed=20e6),
    # the sub-voxel distance of the proxigram and the volume-fraction profile
    "distance to the interface": PeakModel(per_voxel=19.0, fixed=4e6),
}

#: what to do instead, per computation
ALTERNATIVES: dict[str, str] = {
    "local thickness": (
        "Give it as OME-Zarr (e.g. `corrtomo classify ... --out seg.ome.zarr`) and run "
        "`corrtomo quantify seg.ome.zarr`, or pass a dask array: local thickness then "
        "runs block by block with the same result."),
    "particle separation": (
        "Watershed separation needs the whole volume: crop a region of interest, or run "
        "`corrtomo quantify seg.ome.zarr`, which measures the filled, face-connected "
        "particles block by block."),
    "tortuosity factor": (
        "The diffusion solve needs the whole volume: crop a representative sub-volume "
        "(as TauFactor users do) or use a machine with more memory."),
    "features": (
        "Give the image as OME-Zarr or a dask array (`corrtomo classify image.ome.zarr`): "
        "features and prediction then run block by block; or choose fewer features."),
    "distance to the interface": (
        "The proxigram and the volume-fraction profile measure the whole region at once: "
        "crop a region of interest around the interfaces (the seeds profile 300^3 "
        "regions)."),
}


class TooLarge(ValueError):
    """A computation whose estimated peak memory exceeds the memory budget."""


def peak_bytes(what: str, shape: Sequence[int], n_features: int = 0,
               work_voxels: int = 0) -> int:
    """Estimated peak host memory in bytes of ``what`` on an array of ``shape``.

    Parameters
    ----------
    what
        A key of :data:`PEAKS` (``"local thickness"``, ``"particle separation"``,
        ``"tortuosity factor"``, ``"features"``, ``"distance to the interface"``).
    shape
        Spatial shape of the input, voxels per axis.
    n_features
        Number of features (``"features"`` only).
    work_voxels
        Voxels of the largest piece worked on whole (``"particle separation"``: the
        bounding box of the largest connected component).
    """
    model = PEAKS[what]
    voxels = math.prod(int(s) for s in shape)
    stage = max(model.transient_per_voxel * voxels, model.per_work_voxel * work_voxels)
    return int(voxels * (model.per_voxel + model.per_feature * n_features) + stage
               + model.fixed)


def check_memory(what: str, shape: Sequence[int], n_features: int = 0, *,
                 work_voxels: int = 0, budget: int | str | None = None) -> int:
    """Refuse ``what`` on ``shape`` before it starts if its peak would exceed the budget.

    Parameters
    ----------
    what, shape, n_features, work_voxels
        As for :func:`peak_bytes`.
    budget
        Bytes (or text such as ``"8GB"``) the call may use; default
        :func:`~napari_corrtomo.core.backend.memory_budget` (``CORRTOMO_MEMORY_BUDGET``
        or half the free memory).

    Returns
    -------
    int
        The estimate in bytes, when it fits.

    Raises
    ------
    TooLarge
        With the size, the estimate, the budget and what to do instead.
    """
    need = peak_bytes(what, shape, n_features, work_voxels)
    have = memory_budget("numpy", budget)
    if need > have:
        size = " x ".join(str(int(s)) for s in shape)
        raise TooLarge(
            f"{what} of a {size} volume would need about {format_bytes(need)} of memory at its peak, "
            f"more than the {format_bytes(have)} it may use (half the free memory, or "
            f"CORRTOMO_MEMORY_BUDGET), so it was not started. {ALTERNATIVES[what]}")
    return need

