"""The FIB workflow in one place: the steps the "FIB slices" widget, ``corrtomo fib`` and
the demo run, in this order.

1. thickness source (:func:`slice_thickness`): ruler marks, a CSV log or a constant;
2. drift correction (optional, from the parallel ruler marks, :func:`correct_drift`);
3. ruler-band cut (optional): the band rows at the top or bottom edge are removed and
   the result's origin moves with them, so it stays on its source;
4. repositioning on the z grid and interpolation (:func:`isotropic_volume`, incl. the
   ML inpainting);
5. quality (:func:`fib_quality`): MP / MGP / MDS against a truth, else the anisotropy.

Every choice is a field of :class:`FibSettings`; errors about a choice are
:class:`~napari_corrtomo.core._checks.SettingError` keyed by the field name, so each
front end names the control or option the user sets.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from .._checks import SettingError, check_length, check_same_shape
from ..backend import as_dask, available_memory, format_bytes, is_lazy
from ..progress import ProgressCallback, scaled
from .interpolate import fill_planes, resolve_kind
from .metrics import anisotropy, metrics
from .reposition import check_stack, slice_positions
from .ruler import RulerMarkers, check_band_rows
from .thickness import (
    ThicknessResult,
    fit_gamma,
    load_thickness,
    measure_thickness,
    thickness_table,
)

#: Thickness sources of :class:`FibSettings`.
SOURCES = ("ruler", "csv", "constant")


@dataclass
class FibSettings:
    """Every choice of the FIB workflow (lengths in nm, rows and x in pixels).

    Parameters
    ----------
    source
        Where the slice thicknesses come from: ``"ruler"``, the ruler marks milled into
        the protective layer (found in ``band_rows`` of every slice image); ``"csv"``, a
        file with one thickness per slice (``csv_path``); or ``"constant"``, one
        thickness for every slice (``constant_nm``).
    band_rows
        ``(first, stop)`` image rows (pixels, stop excluded, e.g. ``0, 40``) of the band
        that shows the ruler marks; needed for ``"ruler"``, and to cut the band
        (``cut_band``) with any source. ``None`` (empty): the images have no band.
    cut_band
        Remove the ruler band rows from the result (the band must touch the top or
        bottom edge of the images); the result's origin moves by the rows cut, so it
        stays in place on its source. Nothing is cut without ``band_rows``.
    angle_deg
        Angle between the inclined and the parallel ruler trenches (degrees, between 0
        and 90); needed for ``"ruler"``.
    layout
        Left-to-right order of the four ruler marks in the first slice, ``P`` parallel
        and ``I`` inclined (e.g. ``IPPI``). ``None`` (empty): inferred from how the
        marks move (the two whose distance stays constant are the parallel ones).
    x_first
        Approximate x (pixels) of the four ruler marks in the first slice, left to
        right (e.g. ``80, 89, 103, 112``). ``None`` (empty): the four strongest marks of
        the first slice.
    polarity
        ``"dark"``: the marks are darker than the band around them (e.g. notches);
        ``"bright"``: brighter.
    max_step_px
        Largest expected move of a mark from one slice to the next (pixels); marks are
        searched that far around where they are expected. ``None`` (auto): 3 x the
        marks' recent move, at least 2 px.
    fallback_thickness
        Thickness (nm) given to the slices whose ruler marks are not found (they are
        flagged in the table). ``None`` (off): such slices stop the measurement with an
        error that lists them.
    csv_path
        Thickness CSV file: one row per slice in milling order, the thickness in a
        column named by its unit (``thickness_nm``, ``thickness_um`` ...); the last
        value may be empty.
    constant_nm
        Thickness of every slice (nm) for ``"constant"``.
    align
        Estimate the sideways (x) drift of the slice images from the parallel ruler
        marks and undo it (``"ruler"`` only).
    grid_nm
        Spacing of the result's z grid (nm). ``None``: the in-plane pixel size
        (isotropic voxels).
    method
        How the planes between the slices are filled: ``"nearest"`` copies the nearest
        slice; ``"cubic"`` fits a cubic spline along z (binary stacks thresholded at
        0.5, label stacks per label); ``"shape"`` splines the slices' distance maps
        (shape-based, segmented stacks only); ``"ml"`` is the shipped inpainting
        network (segmented stacks with about isotropic voxels: ``grid_nm`` close to the
        pixel size).
    kind
        What the stack holds: ``"grey"`` values, a ``"binary"`` mask or ``"labels"``
        (interpolated per label). ``"auto"``: binary for bool or 0/1 integer data,
        labels for a labels layer (``labels=True``) that is not binary, else grey.
    """

    source: str = "constant"
    band_rows: tuple[int, int] | None = None
    cut_band: bool = True
    angle_deg: float | None = None
    layout: str | None = None
    x_first: tuple[float, float, float, float] | None = None
    polarity: str = "dark"
    max_step_px: float | None = None
    fallback_thickness: float | None = None
    csv_path: str | None = None
    constant_nm: float | None = None
    align: bool = False
    grid_nm: float | None = None
    method: str = "cubic"
    kind: str = "auto"


@dataclass
class SliceThickness:
    """Slice thicknesses (nm) with their table (ruler: confidence, drift, flags), the
    ruler measurement (``None`` for other sources) and the gamma fit (``None`` when
    there are too few distinct values)."""

    thickness_nm: np.ndarray
    table: pd.DataFrame
    ruler: ThicknessResult | None = None
    gamma: tuple[float, float] | None = None


@dataclass
class FibVolume:
    """An interpolated FIB volume: ``volume`` (z, y, x) with voxel ``spacing_nm``
    (z = the grid spacing), ``known`` planes, the settings that made it and
    ``origin_nm``, where its first voxel lies in the source stack's frame (nonzero in
    y after cutting a band at the top). ``volume`` is a lazy dask array when the stack
    was one."""

    volume: Any
    known: np.ndarray
    spacing_nm: tuple[float, float, float]
    method: str
    kind: str
    origin_nm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    thickness: SliceThickness | None = None


def correct_drift(stack: np.ndarray, drift_x_px, labels: bool = False) -> np.ndarray:
    """Undo an in-plane x drift: slice ``k`` is shifted by ``-drift_x_px[k]`` pixels.

    Linear interpolation for images, nearest for labels/binary (``labels=True``);
    pixels shifted in from outside repeat the edge. (n, y, x) -> same shape/dtype.
    """
    lazy = is_lazy(stack)
    if not lazy:
        stack = np.asarray(stack)
    drift = np.asarray(drift_x_px, dtype=float)
    if stack.ndim != 3 or drift.shape != (stack.shape[0],):
        raise ValueError(f"need a (slices, y, x) stack and one drift per slice; got "
                         f"{tuple(stack.shape)} and {drift.shape}")
    if not np.all(np.isfinite(drift)):
        missing = ", ".join(str(k) for k in np.flatnonzero(~np.isfinite(drift))[:10])
        raise SettingError(f"the x drift is unknown for slices {missing} (ruler marks missing); "
                           "turn $align off or fix the marks", align="the drift correction")
    order = 0 if labels or stack.dtype == bool else 1

    def shift(planes: np.ndarray, first: int) -> np.ndarray:
        out = np.empty_like(planes)
        for i, p in enumerate(planes):
            d = drift[first + i]
            out[i] = p if d == 0 else ndi.shift(p, (0.0, -d), order=order, mode="nearest")
        return out

    if not lazy:
        return shift(stack, 0)

    arr = as_dask(stack).rechunk({1: -1, 2: -1})

    def shift_chunk(b: np.ndarray, block_info=None) -> np.ndarray:
        return shift(b, block_info[0]["array-location"][0][0])

    return arr.map_blocks(shift_chunk, dtype=arr.dtype)


def isotropic_volume(
    stack: np.ndarray,
    thickness_nm,
    pixel_size_nm: float,
    grid_nm: float | None = None,
    method: str = "cubic",
    kind: str = "auto",
    progress: ProgressCallback | None = None,
) -> FibVolume:
    """Reposition a FIB stack on a fine z grid and fill the gaps.

    Parameters
    ----------
    stack
        (n_slices, y, x) images or segmentation, slice 0 first; NumPy, or dask/zarr
        for stacks larger than memory (the result is then lazy).
    thickness_nm
        (n_slices,) slice thicknesses in nm (the last may be NaN).
    pixel_size_nm
        In-plane pixel size (nm).
    grid_nm
        z grid spacing (nm); default ``pixel_size_nm`` (isotropic voxels).
    method, kind
        See :func:`~napari_corrtomo.core.fib.interpolate.interpolate`.
    """
    if not is_lazy(stack):
        stack = np.asarray(stack)
    check_stack(stack, thickness_nm)
    px = float(pixel_size_nm)
    if not np.isfinite(px) or px <= 0:
        raise ValueError(f"pixel size must be positive, got {pixel_size_nm}")
    if grid_nm is not None and not (np.isfinite(grid_nm) and grid_nm > 0):
        raise SettingError(f"$grid_nm must be positive, got {grid_nm}", grid_nm="grid_nm")
    grid = px if grid_nm is None else float(grid_nm)
    kind = resolve_kind(stack, kind)
    check_output_size(stack, thickness_nm, px, grid, method, kind)
    planes = slice_positions(thickness_nm, grid)
    n_planes = int(planes[-1]) + 1
    out = fill_planes(stack, planes, n_planes, method, kind=kind, spacing=(grid, px, px),
                      progress=progress)
    known = np.zeros(n_planes, bool)
    known[planes] = True
    return FibVolume(out, known, (grid, px, px), method, kind)


#: the most z planes per FIB slice a repositioned volume may have: FIB slices are a few
#: pixels thick at most, so far more planes per slice is a unit slip (a pixel size or a
#: grid in um given as nm: 20 nm slices on a 0.01 "nm" grid are 2000 planes each)
MAX_PLANES_PER_SLICE = 100


def output_size(stack, thickness_nm, grid_nm: float, method: str, kind: str) -> tuple[int, int]:
    """Planes and bytes of the repositioned volume, estimated before any work (the
    depth of the last slice over the grid; the in-plane size and the result's dtype)."""
    t = np.asarray(thickness_nm, dtype=float).ravel()
    n_planes = int(np.round(np.nansum(t[:-1]) / float(grid_nm))) + 1
    if kind == "binary":
        itemsize = 1
    elif kind == "grey" and method != "nearest":
        itemsize = 4  # float32 splines
    else:
        itemsize = np.dtype(stack.dtype).itemsize
    return n_planes, n_planes * int(stack.shape[1]) * int(stack.shape[2]) * itemsize


def check_output_size(stack, thickness_nm, pixel_size_nm: float, grid_nm: float,
                      method: str = "cubic", kind: str = "grey") -> int:
    """Refuse a repositioned volume far beyond plausibility or memory before it starts.

    More than :data:`MAX_PLANES_PER_SLICE` planes per slice is a unit slip (lengths in
    um given as nm); an in-memory result larger than the memory available now would be
    killed part-way. Returns the estimated bytes.
    """
    n = int(stack.shape[0])
    n_planes, nbytes = output_size(stack, thickness_nm, grid_nm, method, kind)
    per_slice = n_planes / max(n - 1, 1)
    t = np.asarray(thickness_nm, dtype=float).ravel()[:-1]
    median = float(np.nanmedian(t)) if np.isfinite(t).any() else float("nan")
    available = available_memory()
    lazy = is_lazy(stack)
    too_big = not lazy and nbytes > available
    if per_slice <= MAX_PLANES_PER_SLICE and not too_big:
        return nbytes
    size = (f"{n_planes:,} planes of {stack.shape[1]} x {stack.shape[2]} pixels for the "
            f"{n} slices given ({per_slice:,.0f} planes per slice), "
            f"{format_bytes(nbytes)} against {format_bytes(available)} of memory available")
    if per_slice > MAX_PLANES_PER_SLICE:
        raise SettingError(
            f"the repositioned volume would have {size}, so it was not started: FIB slices "
            f"give at most about {MAX_PLANES_PER_SLICE} planes each. Median slice thickness "
            f"{median:g} nm, pixel size {pixel_size_nm:g} nm, z grid {grid_nm:g} nm: "
            "$pixel_size_nm, $grid_nm and the slice thicknesses are all in nm; was one "
            "given in um?", pixel_size_nm="pixel_size_nm", grid_nm="grid_nm")
    raise SettingError(
        f"the repositioned volume would have {size}, so it was not started: give the stack "
        "as OME-Zarr (processed block by block), crop it, or choose a coarser $grid_nm",
        grid_nm="grid_nm")


#: the thinnest slice thickness accepted, in pixels: below it the value is a unit slip
#: (0.02 "nm" meant 0.02 um = 20 nm)
MIN_THICKNESS_PIXELS = 0.05
#: the thickest median slice thickness accepted, in pixels: FIB slices are a few pixels
#: thick (near-isotropic voxels); far thicker is a slip (a ruler angle in radians, a
#: pixel size in um given as nm)
MAX_THICKNESS_PIXELS = 20.0


def slice_thickness(stack, pixel_size_nm: float, settings: FibSettings,
                    progress: ProgressCallback | None = None) -> SliceThickness:
    """Step 1: every slice's thickness (nm) from the source ``settings`` names.

    Parameters
    ----------
    stack
        (n_slices, y, x) slice images (ruler marks are read from the band rows only).
    pixel_size_nm
        In-plane pixel size (nm).
    settings
        :class:`FibSettings` (``source`` and its fields).
    progress
        ``progress(done, total)`` per slice (ruler marks).
    """
    n = int(stack.shape[0])
    s = settings
    ruler = None
    if s.source == "ruler":
        if s.angle_deg is None:
            raise SettingError("measuring from ruler marks needs $angle_deg",
                               angle_deg="the ruler angle (angle_deg)")
        if s.band_rows is None:
            raise SettingError("measuring from ruler marks needs $band_rows",
                               band_rows="the band rows (band_rows)")
        markers = RulerMarkers(angle_deg=s.angle_deg, pixel_size=pixel_size_nm,
                               rows=tuple(int(r) for r in s.band_rows), layout=s.layout,
                               x_first=s.x_first, polarity=s.polarity,
                               max_step_px=s.max_step_px)
        ruler = measure_thickness(stack, markers, fallback_thickness=s.fallback_thickness,
                                  progress=progress)
        thickness, table = ruler.thickness_nm, ruler.table
    elif s.source == "csv":
        if not s.csv_path:
            raise SettingError("choose $csv_path first", csv_path="a thickness CSV (csv_path)")
        thickness = load_thickness(s.csv_path, n_slices=n)
        table = thickness_table(thickness)
    elif s.source == "constant":
        if s.constant_nm is None:
            raise SettingError("give $constant_nm (nm per slice)",
                               constant_nm="the constant thickness (constant_nm)")
        if not np.isfinite(s.constant_nm) or s.constant_nm <= 0:
            raise SettingError(f"$constant_nm must be positive and finite, got {s.constant_nm:g}",
                               constant_nm="the constant thickness (constant_nm)")
        thickness = np.full(n, float(s.constant_nm))
        table = thickness_table(thickness)
    else:
        raise ValueError(f"unknown thickness source {s.source!r}; choose one of "
                         f"{', '.join(SOURCES)}")
    check_plausible_thickness(thickness, pixel_size_nm, s)
    try:
        gamma = fit_gamma(thickness)
    except ValueError:
        gamma = None
    return SliceThickness(np.asarray(thickness, float), table, ruler, gamma)


def check_plausible_thickness(thickness_nm, pixel_size_nm: float,
                              settings: FibSettings) -> None:
    """Refuse slice thicknesses implausible against the pixel size, whatever their
    source: a median below :data:`MIN_THICKNESS_PIXELS` or above
    :data:`MAX_THICKNESS_PIXELS` pixels is a slip (um given as nm, a ruler angle in
    radians), named in the message."""
    s = settings
    t = np.asarray(thickness_nm, dtype=float).ravel()[:-1]
    t = t[np.isfinite(t)]
    if not t.size:
        return
    median = float(np.median(t))
    px = float(pixel_size_nm)
    ratio = median / px
    pixels = f"{ratio:,.0f}" if ratio >= 100 else f"{ratio:.3g}"
    words = {"constant_nm": "the constant thickness (constant_nm)",
             "csv_path": "the thickness CSV (csv_path)",
             "angle_deg": "the ruler angle (angle_deg)", "pixel_size_nm": "pixel_size_nm"}
    if s.source == "constant":
        what = f"$constant_nm {median:.4g} nm"
    elif s.source == "csv":
        name = Path(str(s.csv_path)).name
        what = f"the median thickness in {name} ($csv_path), {median:.4g} nm,"
    else:
        what = f"the median thickness measured from the ruler marks, {median:.4g} nm,"
    if median < MIN_THICKNESS_PIXELS * px:
        hint = {"constant": "give the thickness in nm",
                "csv": "name the thickness column by its unit (thickness_um for values "
                       "in um)",
                "ruler": "check $pixel_size_nm (nm)"}[s.source]
        raise SettingError(f"{what} is {median / px:.2g} of the {px:g} nm pixel; FIB slices "
                           f"are at least {MIN_THICKNESS_PIXELS:g} of a pixel thick: {hint}",
                           **words)
    if median > MAX_THICKNESS_PIXELS * px:
        if s.source == "ruler" and s.angle_deg is not None and s.angle_deg < np.pi / 2:
            hint = (f"$angle_deg is in degrees, and {s.angle_deg:g} looks like radians "
                    f"({np.degrees(s.angle_deg):.3g} degrees)")
        elif s.source == "ruler":
            hint = "check $angle_deg (degrees) and $pixel_size_nm (nm)"
        else:
            hint = ("the thicknesses and $pixel_size_nm are in nm: was the pixel size "
                    "given in um?")
        raise SettingError(f"{what} is {pixels} pixels of {px:g} nm; FIB slices "
                           f"are at most about {MAX_THICKNESS_PIXELS:g} pixels thick: {hint}",
                           **words)


def cut_band(stack, band_rows: tuple[int, int]) -> tuple[Any, int]:
    """Step 3: the stack without the band rows, and how many rows were cut above it.

    The band must touch the top (``first == 0``) or the bottom edge: cutting rows out
    of the middle would glue two parts of the image together.
    """
    height = int(stack.shape[1])
    r0, r1 = check_band_rows(band_rows, height)
    if r0 == 0:
        return stack[:, r1:], r1
    if r1 == height:
        return stack[:, :r0], 0
    raise SettingError(f"the ruler band (rows {r0} to {r1}) touches neither the top nor the "
                       "bottom of the images, so it cannot be cut; $cut_band",
                       cut_band="set cut_band=False")


def run_fib(stack, pixel_size_nm: float, settings: FibSettings, *, labels: bool = False,
            progress: ProgressCallback | None = None) -> FibVolume:
    """The FIB workflow: thickness -> drift -> band cut -> reposition + interpolate.

    Parameters
    ----------
    stack
        (n_slices, y, x) images or segmentation, slice 0 first (NumPy, dask or zarr).
    pixel_size_nm
        In-plane pixel size (nm).
    settings
        :class:`FibSettings`.
    labels
        The stack is a label image: ``kind="auto"`` then means ``"labels"`` unless it is
        binary, and drift correction uses nearest-neighbour shifts.
    progress
        ``progress(done, total)`` over the whole run; raising
        :class:`~napari_corrtomo.core.progress.Cancelled` in it stops the run.

    Returns
    -------
    :class:`FibVolume` with ``thickness`` and ``origin_nm`` (z, y, x) relative to the
    stack's first voxel.
    """
    s = settings
    if not is_lazy(stack):
        stack = np.asarray(stack)
    if stack.ndim != 3:
        raise ValueError(f"stack must be (slices, y, x), got shape {tuple(stack.shape)}")
    px = check_length(pixel_size_nm, "pixel_size_nm")
    kind = s.kind
    if kind == "auto" and labels and resolve_kind(stack) != "binary":
        kind = "labels"
    kind = resolve_kind(stack, kind)
    if s.align and s.source != "ruler":
        raise SettingError("$align needs the ruler marks as the thickness source",
                           align="align")
    thickness = slice_thickness(stack, px, s, scaled(progress, 0, 100, 1000))
    if s.align:
        stack = correct_drift(stack, thickness.table["drift_x_px"].to_numpy(),
                              labels=kind in ("binary", "labels"))
    rows_cut = 0
    if s.cut_band and s.band_rows is not None:
        stack, rows_cut = cut_band(stack, s.band_rows)
    out = isotropic_volume(stack, thickness.thickness_nm, px, s.grid_nm, s.method, kind,
                           progress=scaled(progress, 100, 1000, 1000))
    out.origin_nm = (0.0, rows_cut * px, 0.0)
    out.thickness = thickness
    return out


def fib_quality(volume, spacing, truth=None, phase: int = 1,
                progress: ProgressCallback | None = None) -> dict[str, float]:
    """Step 5: MP / MGP / MDS against ``truth``, or without one the anisotropy errors.

    Parameters
    ----------
    volume
        (z, y, x) result: bool, or labels whose ``phase`` is the solid.
    spacing
        (z, y, x) voxel size (for the anisotropy).
    truth
        Optional (z, y, x) ground truth on the same grid (bool or labels, ``phase``).
    phase
        Label value of the solid phase (ignored for bool arrays).
    """
    solid = _solid(volume, phase)
    if truth is None:
        return anisotropy(solid, spacing, progress=progress)
    truth_solid = _solid(truth, phase)
    check_same_shape(solid, truth_solid, "the result", "the ground truth")
    return metrics(solid, truth_solid)


def _solid(arr, phase: int) -> np.ndarray:
    arr = np.asarray(arr)
    return arr if arr.dtype == bool else arr == phase
