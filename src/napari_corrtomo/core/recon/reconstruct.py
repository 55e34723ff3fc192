"""``reconstruct``: one entry point for FBP/FDK/SIRT/CGLS on every geometry and engine."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._checks import SettingError
from ..progress import ProgressCallback, report, scaled
from . import _astra, analytic, iterative
from . import projector as P
from .filters import ramp_filter
from .geometry import Geometry

METHODS = ("fbp", "fdk", "sirt", "cgls")


def check_projections(projections: Any, geometry: Geometry) -> np.ndarray:
    """Validate projections against a geometry; returns them as float32.

    Raises ``ValueError`` for non-3D input, a projection count that does not match
    the angles, a detector size that does not match, and NaN/inf values.
    """
    if not isinstance(geometry, Geometry):
        raise ValueError("geometry must be a napari_corrtomo.core.recon.Geometry "
                         "(build one with Geometry.parallel/cone/laminography/tilt_series)")
    arr = np.asarray(projections)
    geometry.check_projections(arr)
    if arr.dtype.kind not in "fiub":
        raise ValueError(f"projections must be real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    bad = ~np.isfinite(arr)
    if bad.any():
        a, r, c = np.argwhere(bad)[0]
        raise ValueError(
            f"projections contain {int(bad.sum())} NaN/inf values (first at angle {a}, row {r}, "
            f"col {c}); fix the flat/dark normalisation or replace them (remove_outliers) first"
        )
    return arr


def method_for(geometry: Geometry) -> str:
    """The analytic method that fits a geometry: ``"fdk"`` for cone beams, else ``"fbp"``."""
    return "fdk" if geometry.is_cone else "fbp"


def _check_method(method: str, geometry: Geometry, iterations: int,
                  min_value: float | None) -> str:
    name = str(method).lower()
    if name not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if name in ("fbp", "fdk") and name != method_for(geometry):
        beam = "cone-beam" if geometry.is_cone else "parallel-beam"
        if geometry.kind not in ("parallel", "cone"):  # "parallel-beam tilt series"
            beam += " " + geometry.kind.replace("_", " ")
        raise SettingError(
            f"$method {name!r} does not fit this {beam} geometry; use "
            f"{method_for(geometry)!r} (FBP is for parallel beams, FDK for cone beams)",
            method="method")
    if name in ("sirt", "cgls"):
        if int(iterations) != iterations or iterations < 1:
            raise ValueError(f"iterations must be a positive integer, got {iterations!r}")
    if min_value is not None:
        if name != "sirt":
            raise ValueError("min_value is a SIRT constraint; FBP/FDK and CGLS are unconstrained")
        if not np.isfinite(float(min_value)):
            raise ValueError(f"min_value must be finite, got {min_value!r}")
    return name


def check_grid(geometry: Geometry, volume_shape: Sequence[int] | None = None,
               voxel_size: float | None = None, offset: Sequence[float] = (0.0, 0.0, 0.0)
               ) -> tuple[tuple[int, int, int], float, np.ndarray]:
    """The checked volume grid ``(shape, voxel_size, offset)``, ``None`` taking the
    geometry's defaults (so that a slice preview lies on the very grid of the full
    reconstruction).

    Raises
    ------
    SettingError
        When the detector does not see the grid (:func:`check_field_of_view`).
    """
    if volume_shape is None:
        volume_shape = geometry.default_volume_shape()
    if voxel_size is None:
        voxel_size = geometry.default_voxel_size
    grid = P.check_volume(volume_shape, voxel_size, offset)
    check_field_of_view(geometry, grid[0], grid[1])
    return grid


#: least share of the volume's shadow on the detector plane that must fall on the detector;
#: a voxel size 1000 times too large leaves about 1e-6 (4x binning, shape kept: 0.04)
MIN_SHADOW_ON_DETECTOR = 1e-3


def _shadow(geometry: Geometry, shape: tuple[int, int, int], vs: float) -> np.ndarray:
    """((col_lo, col_hi), (row_lo, row_hi)): the detector pixel coordinates (0 the centre
    of the first pixel) that the corners of a volume centred on the rotation axis reach
    over all angles; a cone beam is taken with its magnification at the rotation axis."""
    half = 0.5 * vs * np.array(shape[::-1], float)
    signs = np.array(np.meshgrid([-1, 1], [-1, 1], [-1, 1])).reshape(3, -1).T
    corners = signs * half  # (8, 3) as (x, y, z)
    f = geometry.frame_vectors()
    pixel = geometry.default_voxel_size
    out = []
    for axis, key, n in ((1, "u", geometry.det_shape[1]), (0, "v", geometry.det_shape[0])):
        pos = corners @ f[key].T / pixel + geometry.shifts[:, axis] + 0.5 * (n - 1)
        out.append((pos.min(), pos.max()))
    return np.array(out)


def check_field_of_view(geometry: Geometry, shape: tuple[int, int, int], vs: float) -> None:
    """Raise :class:`SettingError` when the volume grid, centred on the rotation axis, does
    not meet the detector: its shadow spans less than one detector pixel, or lies almost
    entirely beside the detector (a voxel size in another unit than the geometry's leaves a
    blank or constant volume). An offset volume is a piece of such a grid (a slice preview,
    a slab) and may lie beyond the detector."""
    shadow = _shadow(geometry, shape, vs)
    rows, cols = geometry.det_shape
    span = shadow[:, 1] - shadow[:, 0]
    detector = np.array([cols, rows], float)
    on = np.clip(np.minimum(shadow[:, 1], detector - 0.5) - np.maximum(shadow[:, 0], -0.5),
                 0.0, None)
    share = float(np.prod(on / span))
    if span.max() >= 1.0 and share >= MIN_SHADOW_ON_DETECTOR:
        return
    pixel, unit = geometry.default_voxel_size, geometry.unit
    size = " x ".join(str(n) for n in shape)
    grid = (f"the {size} volume of {vs:g} {unit} voxels casts a shadow of {span[0]:.3g} x "
            f"{span[1]:.3g} pixels (columns x rows) on the {cols} x {rows} pixel detector "
            f"({pixel:g} {unit} per pixel at the rotation axis)")
    if span.max() < 1.0:
        what = "less than one detector pixel: the volume would be one constant value"
    else:
        what = (f"of which only {share:.2g} falls on the detector: the volume would be blank "
                "(zero) almost everywhere")
    ratio = vs / pixel
    if ratio >= 10 or ratio <= 0.1:
        hint = (f"the voxel size is {ratio:.3g} times the detector pixel: give $voxel_size "
                f"in {unit}, the geometry's unit (nm and um differ by a factor of 1000), or "
                f"leave it empty for the pixel at the axis ({pixel:g} {unit})")
    else:
        hint = "choose a smaller $shape"
    raise SettingError(f"{grid}, {what}; {hint}", voxel_size="voxel_size", shape="shape")


def slice_axis(geometry: Geometry, volume_shape: Sequence[int] | None, index: int) -> int:
    """The volume axis a slice preview cuts across (the rotation axis: z for CT and
    laminography, y for tilt series), after checking that slice ``index`` exists."""
    shape, _, _ = check_grid(geometry, volume_shape, None)
    axis = 1 if geometry.kind == "tilt_series" else 0
    if not 0 <= int(index) < shape[axis]:
        raise SettingError(f"$index {index} is outside the volume: its slices along the "
                           f"rotation axis ({'zy'[axis]}) are 0 to {shape[axis] - 1}",
                           index="slice index")
    return axis


def reconstruct(
    projections: Any,
    geometry: Geometry,
    volume_shape: Sequence[int] | None = None,
    voxel_size: float | None = None,
    method: str = "fbp",
    iterations: int = 100,
    min_value: float | None = None,
    backend: str = "auto",
    progress: ProgressCallback | None = None,
    *,
    offset: Sequence[float] = (0.0, 0.0, 0.0),
    filter: str = "ram-lak",
) -> np.ndarray:
    """Reconstruct a volume from projections.

    Parameters
    ----------
    projections
        (n_angles, rows, cols) line integrals (after flat/dark normalisation and
        ``-log``; see :mod:`.preprocess`).
    geometry
        The acquisition :class:`Geometry`.
    volume_shape
        (z, y, x) of the reconstruction; default :meth:`Geometry.default_volume_shape`.
    voxel_size
        Isotropic voxel size in ``geometry.unit``; default the detector pixel at
        the rotation centre (:attr:`Geometry.default_voxel_size`).
    method
        ``"fbp"`` (parallel beams), ``"fdk"`` (cone beams), ``"sirt"`` or ``"cgls"``
        (every geometry).
    iterations
        SIRT/CGLS iterations.
    min_value
        SIRT only: lower bound applied after every iteration (e.g. 0).
    backend
        ``"auto"``: the CPU engines unless the GPU engine is verified on a device
        (:func:`.projector.select_engine`); ``"numpy"``: CPU; ``"cupy"``: GPU (ASTRA's
        CUDA algorithms when ASTRA sees a GPU, else the numba CUDA kernels) or
        ``ValueError``.
    progress
        ``progress(done, total)``; raise :class:`~..progress.Cancelled` from it to stop.
    offset
        (z, y, x) position of the volume centre relative to the rotation centre in
        ``geometry.unit`` (e.g. to reconstruct a sub-volume or one slice).
    filter
        FBP/FDK filter window: ``"ram-lak"``, ``"shepp-logan"``, ``"cosine"``,
        ``"hamming"`` or ``"hann"``.

    Returns
    -------
    (z, y, x) float32 attenuation per unit length (1 / ``geometry.unit``).
    """
    proj = check_projections(projections, geometry)
    name = _check_method(method, geometry, iterations, min_value)
    shape, vs, off = check_grid(geometry, volume_shape, voxel_size, offset)
    if name in ("fbp", "fdk"):
        ramp_filter(8, 1.0, filter)  # validates the filter name early
    engine = P.select_engine(backend)
    if engine == "astra":
        return _astra.reconstruct(proj, geometry, shape, vs, off, name, int(iterations),
                                  min_value, filter, progress)
    proj, geometry = _rows_to_slice_grid(proj, geometry, shape, vs, off)
    if name in ("fbp", "fdk"):
        return analytic.filtered_backprojection(proj, geometry, shape, vs, off, filter, progress,
                                                engine)
    return _iterative(proj, geometry, shape, vs, off, name, int(iterations), min_value,
                      progress, engine)


def _rows_to_slice_grid(proj: np.ndarray, geometry: Geometry, shape: tuple[int, int, int],
                        vs: float, off: np.ndarray) -> tuple[np.ndarray, Geometry]:
    """Per-projection row shifts (aligned tilt series) keep parallel-beam slices off the
    detector rows, which would send the work to the slower volume engine. Shift every
    projection's rows (linear interpolation) onto one common row grid that lines up with the
    slices instead; column shifts stay exact in the geometry."""
    if geometry.kind not in ("parallel", "tilt_series") or np.ptp(geometry.shifts[:, 0]) <= 1e-9:
        return proj, geometry
    if not np.isclose(vs, geometry.pixel_size, rtol=1e-9):
        return proj, geometry
    from scipy import ndimage as ndi

    axis = 0 if geometry.kind == "parallel" else 1
    rows = geometry.det_shape[0]
    first = (-0.5 * (shape[axis] - 1)) + off[axis] / vs + 0.5 * (rows - 1)
    mean = float(np.mean(geometry.shifts[:, 0]))
    target = mean + float(np.round(first + mean) - (first + mean))
    out = np.empty_like(proj)
    for i in range(proj.shape[0]):
        out[i] = ndi.shift(proj[i], (target - geometry.shifts[i, 0], 0.0), order=1,
                           mode="nearest")
    shifts = geometry.shifts.copy()
    shifts[:, 0] = target
    return out, geometry.with_shifts(shifts)


def _iterative(proj: np.ndarray, geometry: Geometry, shape: tuple[int, int, int], vs: float,
               off: np.ndarray, name: str, iterations: int, min_value: float | None,
               progress: ProgressCallback | None, engine: str) -> np.ndarray:
    plan = P.slice_plan(geometry, shape, vs, off)
    if plan is None:
        vplan = P.volume_plan(geometry, shape, vs, off)

        def fwd(x):
            return P.volume_forward(vplan, x, geometry.det_shape, engine)

        def adj(y):
            return P.volume_adjoint(vplan, y, engine)

        if name == "sirt":
            return iterative.sirt(fwd, adj, proj, shape, iterations, min_value, progress)
        return iterative.cgls(fwd, adj, proj, shape, iterations, progress)

    out = np.zeros(shape, np.float32)
    n = shape[plan.axis]
    parts = P.batches(n, P.batch_size(plan, geometry.n_angles))
    total = len(parts) * iterations
    for i, (k0, k1) in enumerate(parts):
        rows = plan.rows[k0:k1]
        sino = P.sino_batch(proj, rows)
        x_shape = plan.slice_shape + (k1 - k0,)

        def fwd(x, plan=plan):
            return P.slice_forward(plan, x, engine)

        def adj(y, plan=plan):
            return P.slice_adjoint(plan, y, engine)

        if name == "sirt":
            x = iterative.sirt(fwd, adj, sino, x_shape, iterations, min_value, progress,
                               done=i * iterations, total=total)
        else:
            x = iterative.cgls(fwd, adj, sino, x_shape, iterations, progress,
                               done=i * iterations, total=total)
        P.from_slice_batch(x, out, plan.axis, k0, k1)
    return out


def reconstruct_slice(
    projections: Any,
    geometry: Geometry,
    index: int,
    volume_shape: Sequence[int] | None = None,
    voxel_size: float | None = None,
    method: str = "fbp",
    iterations: int = 100,
    min_value: float | None = None,
    backend: str = "auto",
    progress: ProgressCallback | None = None,
    *,
    filter: str = "ram-lak",
) -> np.ndarray:
    """One slice of the volume :func:`reconstruct` would return, cheaply (a preview).

    The slice is taken along the rotation axis (z for CT and laminography, y for
    tilt series). For parallel-beam CT and tilt series this equals the full
    reconstruction's slice for every method (slices are independent). For cone
    beam and laminography an iterative method cannot be split into slices, so the
    preview of SIRT/CGLS is the FDK/FBP slice; the analytic slice is exact.
    Returns a 2D float32 array.
    """
    shape, vs, _ = check_grid(geometry, volume_shape, voxel_size)
    axis = slice_axis(geometry, shape, index)
    n = shape[axis]
    offset = [0.0, 0.0, 0.0]
    offset[axis] = (int(index) - 0.5 * (n - 1)) * vs
    sub = list(shape)
    sub[axis] = 1
    if geometry.kind not in ("parallel", "tilt_series") and str(method).lower() in ("sirt", "cgls"):
        method, min_value = method_for(geometry), None
    vol = reconstruct(projections, geometry, sub, vs, method, iterations, min_value, backend,
                      progress, offset=offset, filter=filter)
    report(progress, 1, 1)
    return vol[0] if axis == 0 else vol[:, 0]


def reconstruct_halves(
    projections: Any,
    geometry: Geometry,
    volume_shape: Sequence[int] | None = None,
    voxel_size: float | None = None,
    method: str = "fbp",
    iterations: int = 100,
    min_value: float | None = None,
    backend: str = "auto",
    progress: ProgressCallback | None = None,
    **kwargs: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """Reconstructions from the even- and the odd-numbered projections (for :func:`.fsc`).

    As in the seed workflow, both halves use the same method and settings; their
    Fourier shell correlation measures the resolution of a half data set.
    """
    proj = check_projections(projections, geometry)
    if geometry.n_angles < 4:
        raise ValueError("splitting into even/odd halves needs at least 4 projections")
    halves = []
    n = geometry.n_angles
    for k, idx in enumerate((np.arange(0, n, 2), np.arange(1, n, 2))):
        halves.append(reconstruct(proj[idx], geometry.subset(idx), volume_shape, voxel_size, method,
                                  iterations, min_value, backend,
                                  scaled(progress, 50 * k, 50 * (k + 1), 100), **kwargs))
    return halves[0], halves[1]
