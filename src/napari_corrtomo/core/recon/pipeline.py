"""The reconstruction workflow as users run it: one step sequence for the Reconstruct
widget, ``corrtomo reconstruct`` and the demo.

``prepare_scan``: flat/dark normalisation -> ``-log`` -> outliers (zingers) -> rings ->
tilt-series alignment -> rotation-axis centre, giving line integrals and the geometry
that was actually used; ``run_reconstruction``: that, then FBP/FDK/SIRT/CGLS, and on
request the FSC of even/odd half reconstructions; ``preview_slice``: one slice of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .._checks import SettingError
from ..backend import format_bytes, memory_budget, requested_backend
from ..progress import ProgressCallback, scaled
from .align import ALIGN_METHODS, Alignment, find_center, measure_alignment
from .batches import reconstruct_slabs
from .fsc import FSCResult, fsc
from .geometry import Geometry
from .preprocess import prepare
from .projector import select_engine
from .reconstruct import (
    METHODS,
    check_grid,
    method_for,
    reconstruct,
    reconstruct_halves,
    reconstruct_slice,
    slice_axis,
)


@dataclass(frozen=True)
class ScanSettings:
    """How raw projections become line integrals.

    Parameters
    ----------
    log
        Take ``-log`` of the projections after the flat/dark normalisation: raw counts
        become line integrals (leave off for projections that are line integrals
        already). None: on when flat fields are given.
    outlier_threshold
        Remove zingers (isolated bright or dark pixels, e.g. X-ray hits on the
        detector): a pixel that differs from the median of its neighbours by more
        than this many robust standard deviations, in its projection and between the
        projections before and after it, is replaced by that median (5 is a safe
        start). None: off.
    ring_size
        Suppress ring artefacts (stripes in the sinogram from detector columns that
        respond differently): width in detector columns (at least 3) of the running
        median each column's offset is measured against. None: off.
    align
        Align a tilt series (electron tomography; :func:`.align_tilt_series`): the
        shifts measured on the projections replace the geometry's, its rotation-axis
        offset too.
    align_method
        How a tilt series is aligned (:func:`.measure_alignment`): ``"auto"`` (the
        default) tries each method and keeps the one whose aligned series fits a volume
        best; ``"xcorr"``, cross-correlation of neighbouring tilts (it keeps the
        tilt-axis offset, so search that too); ``"com"``, the centre of mass, or
        ``"both"`` (cross-correlation, then the centre of mass against drift): only when
        the whole object stays in the field of view at every tilt.
    center
        Rotation-axis offset in detector pixels (+ = towards higher columns) added to
        the geometry's; ``"auto"`` to search it on the preprocessed (and aligned)
        projections; None: keep the geometry's.
    """

    log: bool | None = None
    outlier_threshold: float | None = None
    ring_size: int | None = None
    align: bool = False
    center: float | str | None = None
    align_method: str = "auto"

    def __post_init__(self) -> None:
        if self.align_method not in ALIGN_METHODS:
            raise ValueError(f"alignment method must be one of {ALIGN_METHODS}, not "
                             f"{self.align_method!r}")
        if isinstance(self.center, str) and self.center != "auto":
            raise ValueError(f"centre takes 'auto' or a number of pixels, not {self.center!r}")
        if self.outlier_threshold is not None and not (
                np.isfinite(self.outlier_threshold) and self.outlier_threshold > 0):
            raise SettingError(f"$outlier_threshold must be a positive number of robust "
                               f"standard deviations (5 is a safe start), got "
                               f"{self.outlier_threshold}", outlier_threshold="outlier_threshold")
        if self.ring_size is not None and self.ring_size < 3:
            raise SettingError(f"$ring_size is a window of at least 3 detector columns, got "
                               f"{self.ring_size}", ring_size="ring_size")


@dataclass(frozen=True)
class ReconSettings:
    """How line integrals become a volume.

    Parameters
    ----------
    method
        ``"fbp"`` (filtered back-projection, parallel beams) or ``"fdk"`` (cone beams):
        fast, analytic; ``"sirt"`` or ``"cgls"``: iterative, slower, better for few or
        noisy projections. None: FBP or FDK, whichever fits the geometry.
    iterations
        Number of SIRT or CGLS iterations (FBP and FDK have none).
    min_value
        SIRT only: lower bound the volume is clipped to after every iteration (0: the
        attenuation cannot be negative). None: unbounded.
    shape
        Volume size in voxels (z, y, x). None: the detector's field of view.
    voxel_size
        Voxel size in the geometry's length unit. None: the detector pixel at the
        rotation axis (pixel size / magnification).
    filter
        Window of the FBP/FDK ramp filter: ``"ram-lak"`` (sharpest), ``"shepp-logan"``,
        ``"cosine"``, ``"hamming"`` or ``"hann"`` (smoother: less noise, less
        resolution).
    backend
        Where the projectors run: ``"auto"`` (the GPU when its engine is verified on
        the device, else the CPU), ``"numpy"`` (CPU) or ``"cupy"`` (GPU).
    """

    method: str | None = None
    iterations: int = 100
    min_value: float | None = None
    shape: tuple[int, int, int] | None = None
    voxel_size: float | None = None
    filter: str = "ram-lak"
    backend: str = "auto"

    def __post_init__(self) -> None:
        if self.method is not None and self.method not in METHODS:
            raise SettingError(f"$method must be one of {', '.join(METHODS)}, not "
                               f"{self.method!r}", method="method")
        if int(self.iterations) != self.iterations or self.iterations < 1:
            raise SettingError(f"$iterations must be a positive whole number, got "
                               f"{self.iterations}", iterations="iterations")
        if self.min_value is not None and (self.method != "sirt"
                                           or not np.isfinite(self.min_value)):
            raise SettingError(f"$min_value is a finite lower bound of SIRT only (FBP/FDK and "
                               f"CGLS are unconstrained), got {self.min_value} with "
                               f"{self.method or 'FBP/FDK'}; choose SIRT or drop it",
                               min_value="min_value")
        if self.shape is not None and (len(self.shape) != 3 or min(self.shape) < 1):
            raise SettingError(f"$shape must be three positive voxel counts (z, y, x), got "
                               f"{tuple(self.shape)}", shape="shape")
        if self.voxel_size is not None and not (np.isfinite(self.voxel_size)
                                                and self.voxel_size > 0):
            raise SettingError(f"$voxel_size must be a positive length (or none: the detector "
                               f"pixel at the axis), got {self.voxel_size}",
                               voxel_size="voxel_size")
        if requested_backend(self.backend) == "cupy":  # a GPU is there, or refused now
            select_engine("cupy")

    def resolved(self, geometry: Geometry) -> ReconSettings:
        """These settings with the method and voxel size the geometry implies."""
        return replace(self, method=self.method or method_for(geometry),
                       voxel_size=(geometry.default_voxel_size if self.voxel_size is None
                                   else self.voxel_size))


@dataclass
class Reconstruction:
    """A volume (z, y, x) with the geometry and settings that made it."""

    volume: np.ndarray
    geometry: Geometry
    settings: ReconSettings
    #: FSC of even/odd half reconstructions, when asked for
    fsc: FSCResult | None = None
    #: the tilt-series alignment (the method ``"auto"`` chose and its scores), when asked for
    alignment: Alignment | None = None

    @property
    def voxel_size(self) -> float:
        return float(self.settings.voxel_size)


def prepare_scan(projections: Any, geometry: Geometry, settings: ScanSettings = ScanSettings(),
                 flats: Any = None, darks: Any = None,
                 progress: ProgressCallback | None = None) -> tuple[np.ndarray, Geometry]:
    """Raw projections -> line integrals, and the geometry with alignment and centre.

    Parameters
    ----------
    projections
        (n_angles, rows, cols) counts or line integrals.
    geometry
        The acquisition geometry; checked against the projections before any work.
    settings
        The preprocessing steps (:class:`ScanSettings`).
    flats, darks
        Flat-field and dark frames ((rows, cols) or stacks of them, averaged).
    progress
        ``progress(done, total)``; raise ``Cancelled`` from it to stop.

    Returns
    -------
    lines : numpy.ndarray
        float32 line integrals, same shape as ``projections``.
    geometry : Geometry
        With the tilt-series shifts (absolute) and the rotation-axis offset applied.
    """
    lines, geometry, _ = _prepare(projections, geometry, settings, flats, darks, progress)
    return lines, geometry


def check_center(geometry: Geometry, center: float | str | None) -> None:
    """Raise :class:`SettingError` when an offset ``center`` (pixels, added to the
    geometry's) puts the rotation axis off the detector."""
    if center is None or isinstance(center, str):
        return
    cols = geometry.det_shape[1]
    axis = float(np.mean(geometry.shifts[:, 1])) + float(center)
    if not (np.isfinite(axis) and abs(axis) < 0.5 * cols):
        raise SettingError(
            f"$center {float(center):g} px puts the rotation axis at {axis:g} px from the "
            f"detector centre, outside the detector ({cols} columns wide: the axis must lie "
            f"within +-{0.5 * cols:g} px of its centre); give the offset in detector pixels, "
            f"or search it with $center_auto", center="center", center_auto="center='auto'")


def _prepare(projections: Any, geometry: Geometry, settings: ScanSettings, flats: Any,
             darks: Any, progress: ProgressCallback | None
             ) -> tuple[np.ndarray, Geometry, Alignment | None]:
    """:func:`prepare_scan`, and the alignment it measured (None without ``align``)."""
    data = np.asarray(projections)
    geometry.check_projections(data)
    check_center(geometry, settings.center)
    if settings.align and geometry.kind != "tilt_series":
        raise SettingError(f"$align is for tilt series (electron tomography), whose "
                           f"neighbouring projections nearly match; a {geometry.kind} scan "
                           f"is aligned by its rotation-axis offset ($center)",
                           align="align", center="center")
    if geometry.n_angles < 2:  # e.g. a single image chosen as the projections
        raise ValueError("one projection cannot be reconstructed: give the stack of "
                         "projections the scan took at its angles (angle, row, col)")
    if data.size and data.min() == data.max():  # e.g. a blank frame or a mask
        raise ValueError(f"the projections hold one value ({data.flat[0]}) throughout: "
                         f"there is nothing to reconstruct; choose the projection stack")
    lines = prepare(data, flats=flats, darks=darks, log=settings.log,
                    outlier_threshold=settings.outlier_threshold,
                    ring_size=settings.ring_size, progress=scaled(progress, 0, 400, 1000))
    alignment = None
    if settings.align:
        alignment = measure_alignment(lines, geometry.angles_deg, settings.align_method,
                                      progress=scaled(progress, 400, 800, 1000))
        # absolute: includes the tilt-axis offset
        geometry = geometry.with_shifts(alignment.shifts)
    if settings.center == "auto":
        geometry = geometry.shifted(col=find_center(lines, geometry,
                                                    progress=scaled(progress, 800, 1000, 1000)))
    elif settings.center is not None:
        geometry = geometry.shifted(col=float(settings.center))
    return lines, geometry, alignment


#: float32 volumes held at the peak of each method (the result, the method's work arrays,
#: a copy as it is written); the even/odd halves of an FSC add two
_PEAK_VOLUMES = {"fbp": 2, "fdk": 2, "sirt": 4, "cgls": 5}
#: float32 copies of the projections held at the peak (as read, line integrals, filtered)
_PEAK_PROJECTIONS = 3


def memory_needed(geometry: Geometry, settings: ReconSettings = ReconSettings(), *,
                  slab: int | None = None, halves: bool = False) -> int:
    """Estimated peak bytes of host memory of :func:`run_reconstruction`: the whole
    volume and projections, or with ``slab`` one slab task (its slices and detector rows)."""
    s = settings.resolved(geometry)
    z, y, x = (int(v) for v in (s.shape or geometry.default_volume_shape()))
    n, (rows, cols) = geometry.n_angles, geometry.det_shape
    if slab is not None:
        slices = min(int(slab), z)
        slab_rows = min(rows, math.ceil(slices * s.voxel_size / geometry.default_voxel_size) + 2)
        return 4 * (_PEAK_VOLUMES["fbp"] * slices * y * x + 2 * n * slab_rows * cols)
    volumes = _PEAK_VOLUMES[s.method] + (2 if halves else 0)
    return 4 * (volumes * z * y * x + _PEAK_PROJECTIONS * n * rows * cols)


def check_memory(geometry: Geometry, settings: ReconSettings = ReconSettings(), *,
                 slab: int | None = None, halves: bool = False,
                 budget: int | str | None = None) -> int:
    """Refuse a reconstruction, before any work, whose peak memory (:func:`memory_needed`)
    exceeds ``budget`` (bytes or ``"8GB"``; default: ``CORRTOMO_MEMORY_BUDGET`` or half the
    free memory). With ``slab`` it is one slab task against a worker's budget, and with
    ``halves`` too the even/odd halves, whole volumes made by the caller, against the
    default budget.

    Raises
    ------
    SettingError
        Naming the volume's size, the estimate, the memory there is and what to do
        (``$shape``, ``$voxel_size``, ``$slab``, ``$budget``).
    """
    s = settings.resolved(geometry)
    shape = tuple(int(v) for v in (s.shape or geometry.default_volume_shape()))
    need = memory_needed(geometry, settings, slab=slab, halves=halves)
    have = memory_budget("numpy", budget)
    if need <= have:
        if slab is not None and halves:
            check_memory(geometry, settings, halves=True)
        return need
    size = " x ".join(str(v) for v in shape)
    whole = 4 * math.prod(shape)
    if slab is not None:
        raise SettingError(
            f"one slab of {min(int(slab), shape[0])} slices of the {size} volume needs about "
            f"{format_bytes(need)} of memory, more than the {format_bytes(have)} a worker may "
            f"use ($budget); give fewer slices per task ($slab_size) or more memory per worker",
            budget="budget", slab_size="slab")
    slabs = (", or $slab"
             if s.method == "fbp" and geometry.kind == "parallel" else "")
    raise SettingError(
        f"a {size} voxel volume ({format_bytes(whole)} as float32) needs about "
        f"{format_bytes(need)} of memory at its peak ({s.method}), more than the "
        f"{format_bytes(have)} this run may use ($budget), so it was not started; choose a "
        f"smaller $shape (with a larger $voxel_size to keep the field of view){slabs}",
        budget="budget: half the free memory, or CORRTOMO_MEMORY_BUDGET", shape="shape",
        voxel_size="voxel_size",
        slab="reconstruct it slab by slab into a zarr store (slab=, store_resumable)")


def check_slab(settings: ReconSettings, geometry: Geometry, slab: int | None) -> None:
    """Raise :class:`SettingError` unless ``slab`` is None or the method is FBP (only
    parallel-beam FBP reconstructs slab by slab)."""
    method = settings.resolved(geometry).method
    if slab is not None and method != "fbp":
        raise SettingError(f"$slab reconstructs parallel-beam scans with FBP, slab by slab; "
                           f"{method} reconstructs the whole volume at once ($method)",
                           slab="slab=", method="use slab=None")


def run_reconstruction(projections: Any, geometry: Geometry,
                       scan: ScanSettings = ScanSettings(),
                       settings: ReconSettings = ReconSettings(), *, flats: Any = None,
                       darks: Any = None, halves: bool = False, slab: int | None = None,
                       progress: ProgressCallback | None = None) -> Reconstruction:
    """The whole reconstruction: :func:`prepare_scan`, then the volume, and with
    ``halves`` the FSC of even/odd half reconstructions (same method and settings).

    Parameters are those of :func:`prepare_scan` (``scan``) and :class:`ReconSettings`;
    with ``slab`` (slices per task) a parallel-beam FBP volume is a lazy dask array of
    independent slabs (:func:`.reconstruct_slabs`), computed where the caller's dask
    scheduler runs (e.g. a cluster).
    """
    stop = 500 if halves else 1000
    check_slab(settings, geometry, slab)  # before the preparation, which takes a while
    check_memory(geometry, settings, slab=slab, halves=halves)
    check_grid(geometry, settings.shape, settings.voxel_size)
    lines, geometry, alignment = _prepare(projections, geometry, scan, flats, darks,
                                          scaled(progress, 0, 200, 1000))
    s = settings.resolved(geometry)
    if slab is not None:
        volume = reconstruct_slabs(lines, geometry, s.shape, s.voxel_size, slab,
                                   filter=s.filter, backend=s.backend)
    else:
        volume = reconstruct(lines, geometry, s.shape, s.voxel_size, s.method, s.iterations,
                             s.min_value, s.backend, scaled(progress, 200, stop, 1000),
                             filter=s.filter)
    result = Reconstruction(volume, geometry, s, alignment=alignment)
    if halves:
        result.fsc = _halves_fsc(lines, geometry, s, scaled(progress, 500, 1000, 1000))
    return result


def half_map_fsc(projections: Any, geometry: Geometry, scan: ScanSettings = ScanSettings(),
                 settings: ReconSettings = ReconSettings(), *, flats: Any = None,
                 darks: Any = None, progress: ProgressCallback | None = None
                 ) -> tuple[FSCResult, Geometry]:
    """Only the FSC of even/odd half reconstructions (the resolution of a scan), with the
    geometry used; the steps of :func:`run_reconstruction`."""
    lines, geometry = prepare_scan(projections, geometry, scan, flats, darks,
                                   scaled(progress, 0, 200, 1000))
    s = settings.resolved(geometry)
    return _halves_fsc(lines, geometry, s, scaled(progress, 200, 1000, 1000)), geometry


def preview_slice(projections: Any, geometry: Geometry, index: int,
                  scan: ScanSettings = ScanSettings(), settings: ReconSettings = ReconSettings(),
                  *, flats: Any = None, darks: Any = None,
                  progress: ProgressCallback | None = None) -> tuple[np.ndarray, Geometry]:
    """Slice ``index`` (along the rotation axis) of what :func:`run_reconstruction` gives."""
    slice_axis(geometry, settings.shape, index)  # before the preprocessing
    lines, geometry = prepare_scan(projections, geometry, scan, flats, darks,
                                   scaled(progress, 0, 300, 1000))
    s = settings.resolved(geometry)
    image = reconstruct_slice(lines, geometry, index, s.shape, s.voxel_size, s.method,
                              s.iterations, s.min_value, s.backend,
                              scaled(progress, 300, 1000, 1000), filter=s.filter)
    return image, geometry


def _halves_fsc(lines: np.ndarray, geometry: Geometry, s: ReconSettings,
                progress: ProgressCallback | None) -> FSCResult:
    a, b = reconstruct_halves(lines, geometry, s.shape, s.voxel_size, s.method, s.iterations,
                              s.min_value, s.backend, progress, filter=s.filter)
    return fsc(a, b, s.voxel_size)

