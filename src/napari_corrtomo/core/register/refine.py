"""Intensity-based refinement of a landmark transform with SimpleITK, in physical space.

Cross-scale pairs (a 1 um microCT around a 65 nm nanoCT) are handled by sampling
the metric on the *finer* image's field of view, smoothed to the coarser image's
resolution and resampled onto a registration grid a few times finer than the
coarse voxels; the coarser image is cropped to the overlap (plus a capture
margin) and interpolated. This keeps the metric well sampled where the two
volumes overlap without ever loading more of the large overview than needed.
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Any

import numpy as np

from .._checks import check_spacing
from ..backend import as_dask, is_lazy
from ..progress import Cancelled, ProgressCallback, report
from .geometry import box_corners, crop_slices, fov_box, map_box
from .transform import (
    MODELS,
    Transform,
    apply_to_points,
    as_transform,
    polar,
    xyz_to_zyx,
    zyx_to_xyz,
)

METRICS = ("mattes_mi", "correlation", "mean_squares", "joint_histogram_mi")


def _to_sitk(arr: np.ndarray, spacing: np.ndarray, origin: np.ndarray):
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(arr, dtype=np.float32))
    img.SetSpacing(tuple(float(v) for v in spacing[::-1]))   # ITK is (x, y, z)
    img.SetOrigin(tuple(float(v) for v in origin[::-1]))
    return img


def _read(image: Any, slices: tuple[slice, ...]) -> np.ndarray:
    part = image[slices]
    part = np.asarray(part.compute() if hasattr(part, "compute") else part, dtype=np.float32)
    if not np.all(np.isfinite(part)):
        raise ValueError("an image has NaN or infinite values where the volumes overlap; "
                         "fill them (e.g. with the background value) before refining")
    return part


class _Steps:
    """The refinement's progress: ``done`` of ``total``, re-reported by :meth:`check` (at
    most every 50 ms) so that a cancel is seen inside long preparation steps."""

    def __init__(self, progress: ProgressCallback | None, total: int):
        self.progress, self.total, self.done = progress, total, 0
        self._last = 0.0

    def report(self, done: int) -> None:
        self.done = done
        report(self.progress, done, self.total)

    def check(self) -> None:
        now = time.monotonic()
        if now - self._last >= 0.05:
            self._last = now
            report(self.progress, self.done, self.total)


def _block_mean(image: Any, slices: tuple[slice, ...], factor: int,
                steps: _Steps | None = None) -> np.ndarray:
    """Crop and average ``factor``^3 blocks (reads lazily for dask/zarr inputs); in-memory
    images a few slices at a time, checking ``steps`` for a cancel in between."""
    if factor <= 1:
        return _read(image, slices)
    sl = tuple(slice(s.start, s.start + (s.stop - s.start) // factor * factor) for s in slices)
    if is_lazy(image):
        import dask.array as da

        arr = as_dask(image)
        part = da.coarsen(np.mean, arr[sl].astype(np.float32), {0: factor, 1: factor, 2: factor})
        return _read(part, (slice(None),) * 3)
    z0, z1 = sl[0].start, sl[0].stop
    y, x = ((s.stop - s.start) // factor for s in sl[1:])
    out = np.empty(((z1 - z0) // factor, y, x), np.float32)
    rows = max(1, 16 // factor)  # output slices per piece
    for i in range(0, out.shape[0], rows):
        n = min(rows, out.shape[0] - i)
        part = _read(image, (slice(z0 + i * factor, z0 + (i + n) * factor), *sl[1:]))
        out[i:i + n] = part.reshape(n, factor, y, factor, x, factor).mean(axis=(1, 3, 5))
        if steps is not None:
            steps.check()
    return out


@contextlib.contextmanager
def _quiet_cancel():
    """Keep :class:`Cancelled` raised inside a SimpleITK command out of ``sys.excepthook``.

    SimpleITK prints (``PyErr_Print``) an exception raised by a Python command before
    turning it into a ``RuntimeError``; napari would show that print as an error. Only
    ``Cancelled`` is silenced; every other exception reaches the previous hook.
    """
    previous = sys.excepthook

    def hook(kind, value, tb):
        if not (isinstance(kind, type) and issubclass(kind, Cancelled)):
            previous(kind, value, tb)

    sys.excepthook = hook
    try:
        yield
    finally:
        if sys.excepthook is hook:
            sys.excepthook = previous


def _execute(filt, steps: _Steps, *images):
    """Run a SimpleITK filter, checking for a cancel at each of its progress events (the
    filter is aborted), so a long smoothing or resampling stops within a fraction of it."""
    import SimpleITK as sitk

    state = {"cancelled": False}

    def check() -> None:
        try:
            steps.check()
        except Cancelled:
            state["cancelled"] = True
            filt.Abort()

    filt.AddCommand(sitk.sitkProgressEvent, check)
    try:
        return filt.Execute(*images)
    except RuntimeError:
        if state["cancelled"]:
            raise Cancelled() from None
        raise


def _itk_transform(model: str, matrix_xyz: np.ndarray, center_xyz: np.ndarray):
    """A centred SimpleITK transform for ``model`` equal to a 4x4 (x, y, z) matrix."""
    import SimpleITK as sitk

    lin = matrix_xyz[:3, :3]
    if model == "affine":
        tx = sitk.AffineTransform(3)
        tx.SetCenter(tuple(center_xyz))
        tx.SetMatrix(tuple(lin.ravel()))
    else:
        rot = polar(matrix_xyz)[0]
        s = float(np.cbrt(np.linalg.det(lin)))
        if model == "rigid":
            tx = sitk.VersorRigid3DTransform()
            s = 1.0
        else:
            tx = sitk.Similarity3DTransform()
        tx.SetCenter(tuple(center_xyz))
        tx.SetMatrix(tuple(rot.ravel()))
        if model == "similarity":
            tx.SetScale(s)
        lin = s * rot
    # T(x) = A (x - c) + c + t_itk  ==  A x + b   ->   t_itk = b + A c - c
    tx.SetTranslation(tuple(matrix_xyz[:3, 3] + lin @ center_xyz - center_xyz))
    return tx


def _itk_matrix(tx) -> np.ndarray:
    """4x4 (x, y, z) matrix of a SimpleITK matrix-offset transform."""
    m = np.eye(4)
    m[:3, :3] = np.asarray(tx.GetMatrix()).reshape(3, 3)
    c = np.asarray(tx.GetCenter())
    m[:3, 3] = np.asarray(tx.GetTranslation()) + c - m[:3, :3] @ c
    return m


def refine(
    fixed_image: Any,
    moving_image: Any,
    initial: Transform | np.ndarray,
    metric: str = "mattes_mi",
    *,
    fixed_spacing: Any,
    moving_spacing: Any,
    fixed_origin: Any = None,
    moving_origin: Any = None,
    model: str | None = None,
    grid_spacing: float | None = None,
    max_grid: int = 96,
    smoothing: float | None = None,
    shrink_factors: tuple[int, ...] = (4, 2, 1),
    smoothing_sigmas: tuple[float, ...] | None = None,
    iterations: int = 200,
    sampling: float = 0.25,
    bins: int = 32,
    margin: float | None = None,
    seed: int = 0,
    progress: ProgressCallback | None = None,
) -> Transform:
    """Refine a moving -> fixed transform by intensity registration (SimpleITK).

    Parameters
    ----------
    fixed_image, moving_image : (Z, Y, X) arrays
        NumPy, dask or zarr. Only the overlap (and a capture margin) is read.
    initial : Transform or (4, 4) array
        Starting moving world -> fixed world transform (e.g. from
        :func:`fit_landmarks`), in the unit of the spacings.
    metric : {"mattes_mi", "correlation", "mean_squares", "joint_histogram_mi"}
        Similarity measure; Mattes mutual information suits different modalities.
    fixed_spacing, moving_spacing : 3 floats
        Voxel sizes (z, y, x) in the transform's unit (napari's ``scale``).
    fixed_origin, moving_origin : 3 floats, optional
        World position of voxel (0, 0, 0) (napari's ``translate``), default 0.
    model : {"rigid", "similarity", "affine"}, optional
        Degrees of freedom to optimise; default the initial transform's model.
    grid_spacing : float, optional
        Spacing of the registration grid on which the metric is sampled;
        default a quarter of the coarser voxel (never finer than the finer one),
        enlarged so that no axis exceeds ``max_grid`` samples.
    smoothing : float, optional
        Gaussian sigma (physical) applied to the finer image so it matches the
        coarser resolution; default one coarser voxel, a typical point-spread
        width of tomograms (0 disables).
    shrink_factors, smoothing_sigmas
        Multi-resolution schedule of the registration grid; sigmas are
        physical, default ``(1, 0.5, 0) x`` the coarser voxel.
    iterations : int
        Maximum optimiser iterations per level (regular-step gradient descent
        with scales from physical shifts).
    sampling : float
        Fraction of grid points used by the metric (random, seeded by ``seed``).
    bins : int
        Histogram bins for the mutual-information metrics.
    margin : float, optional
        How far (physical) beyond the mapped overlap the coarser image is read,
        the capture range; default 20 % of the overlap extent, at least 5
        coarse voxels.
    seed : int
        Seed of the metric sampling.
    progress : callable, optional
        ``progress(done, total)`` every optimiser iteration; raise
        :class:`~napari_corrtomo.core.progress.Cancelled` from it to stop.

    Returns
    -------
    Transform
        The refined moving -> fixed transform; ``metadata["refine"]`` holds the
        metric value, iterations, stop condition and how far the refinement
        moved the overlap (``max_shift``) from the initial transform.

    Raises
    ------
    ValueError
        Not 3D, bad spacing, unknown metric/model, no overlap under the initial
        transform, too small an overlap, NaN values in the overlap, or an
        optimisation that ran out of the images.
    """
    import SimpleITK as sitk

    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; use one of {', '.join(METRICS)}")
    init = as_transform(initial)
    model = init.model if model is None else model
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; use one of {', '.join(MODELS)}")
    for name, img in (("fixed_image", fixed_image), ("moving_image", moving_image)):
        if getattr(img, "ndim", None) != 3:
            raise ValueError(
                f"{name} must be a 3D (z, y, x) volume, got {getattr(img, 'ndim', '?')}D")
    sp_f = np.array(check_spacing(fixed_spacing, 3))
    sp_m = np.array(check_spacing(moving_spacing, 3))
    if not (0 < sampling <= 1):
        raise ValueError(f"sampling must be a fraction in (0, 1], got {sampling}")
    if iterations < 1:
        raise ValueError(f"iterations must be at least 1, got {iterations}")
    if len(shrink_factors) < 1 or any(int(f) < 1 for f in shrink_factors):
        raise ValueError(f"shrink_factors must be positive integers, got {shrink_factors}")

    # The finer image is sampled (the registration grid); the coarser one is interpolated.
    moving_is_fine = sp_m.max() <= sp_f.max()
    if moving_is_fine:
        fine, sp_fine, o_fine = moving_image, sp_m, moving_origin
        coarse, sp_coarse, o_coarse = fixed_image, sp_f, fixed_origin
        fine_to_coarse = init.matrix
    else:
        fine, sp_fine, o_fine = fixed_image, sp_f, fixed_origin
        coarse, sp_coarse, o_coarse = moving_image, sp_m, moving_origin
        fine_to_coarse = np.linalg.inv(init.matrix)
    coarse_vox = float(sp_coarse.max())

    # sampling domain: the fine field of view within the coarse one
    fine_box = fov_box(fine.shape, sp_fine, o_fine)
    coarse_box = fov_box(coarse.shape, sp_coarse, o_coarse)
    coarse_in_fine = map_box(coarse_box, fine_to_coarse, inverse=True).bounds
    lo = np.maximum(fine_box[0], coarse_in_fine[0])
    hi = np.minimum(fine_box[1], coarse_in_fine[1])
    if np.any(hi - lo <= 0):
        # the inverse transform overlaps them: fixed and moving were given the other way
        flipped = map_box(coarse_box, np.linalg.inv(fine_to_coarse), inverse=True).bounds
        swapped = np.all(np.minimum(fine_box[1], flipped[1])
                         - np.maximum(fine_box[0], flipped[0]) > 0)
        raise ValueError(
            "the volumes do not overlap under the initial transform; "
            + ("they do under its inverse, so the fixed and moving volumes (or the landmarks' "
               "fixed and moving columns) are probably swapped" if swapped else
               "fit landmarks (or load a transform) that brings the moving volume onto the "
               "fixed one first")
        )
    extent = hi - lo
    if grid_spacing is None:
        grid_spacing = max(float(sp_fine.max()), coarse_vox / 4.0, float(extent.max()) / max_grid)
    g = float(grid_spacing)
    size = np.floor(extent / g).astype(int) + 1
    if np.any(size < 8):
        raise ValueError(
            f"the overlap ({' x '.join(f'{e:.3g}' for e in extent)}) is too small to refine on "
            f"a {g:.3g} grid; it needs at least 8 grid points per axis"
        )

    # fine image: block-mean pre-reduction, smoothing to the coarse resolution, regrid
    reduce = max(1, int(np.floor(g / float(sp_fine.max()) / 2.0)))
    sl, _ = crop_slices(np.array([lo, hi]), fine.shape, sp_fine, o_fine)
    pad = int(np.ceil(2 * reduce))
    sl = tuple(slice(max(s.start - pad, 0), min(s.stop + pad, n))
               for s, n in zip(sl, fine.shape, strict=True))
    # progress: the preparation below is a fifth of the bar, the iterations the rest
    n_iter = len(shrink_factors) * int(iterations)
    steps = _Steps(progress, n_iter + n_iter // 4)
    step = max(n_iter // 16, 1)
    part = _block_mean(fine, sl, reduce, steps)
    steps.report(step)
    start = np.array([s.start for s in sl], float)
    origin = (np.zeros(3) if o_fine is None else np.asarray(o_fine, float)) + start * sp_fine
    sp_red = sp_fine * reduce
    origin = origin + (reduce - 1) / 2.0 * sp_fine  # block centres
    fine_img = _to_sitk(part, sp_red, origin)
    sigma = coarse_vox if smoothing is None else float(smoothing)
    if sigma > 0:
        smooth = sitk.SmoothingRecursiveGaussianImageFilter()
        smooth.SetSigma(sigma)
        fine_img = _execute(smooth, steps, fine_img)
    steps.report(2 * step)
    ref = sitk.Image([int(v) for v in size[::-1]], sitk.sitkFloat32)
    ref.SetSpacing((g, g, g))
    ref.SetOrigin(tuple(float(v) for v in lo[::-1]))
    regrid = sitk.ResampleImageFilter()
    regrid.SetReferenceImage(ref)
    regrid.SetInterpolator(sitk.sitkLinear)
    regrid.SetDefaultPixelValue(0.0)
    grid_img = _execute(regrid, steps, fine_img)
    steps.report(3 * step)

    # coarse image: the mapped overlap plus a capture margin
    if margin is None:
        margin = max(0.2 * float(extent.max()), 5.0 * coarse_vox)
    in_coarse = apply_to_points(fine_to_coarse, box_corners(np.array([lo, hi])))
    box = np.array([in_coarse.min(0) - margin, in_coarse.max(0) + margin])
    csl, _ = crop_slices(box, coarse.shape, sp_coarse, o_coarse)
    cpart = _read(coarse, csl)
    c_origin = (np.zeros(3) if o_coarse is None else np.asarray(o_coarse, float)) + \
        np.array([s.start for s in csl]) * sp_coarse
    coarse_img = _to_sitk(cpart, sp_coarse, c_origin)
    steps.report(4 * step)

    # registration: ITK maps fixed (grid, fine frame) points into the moving (coarse) frame
    centre = (lo + hi) / 2.0
    tx = _itk_transform(model, zyx_to_xyz(fine_to_coarse), centre[::-1])
    reg = sitk.ImageRegistrationMethod()
    if metric == "mattes_mi":
        reg.SetMetricAsMattesMutualInformation(int(bins))
    elif metric == "joint_histogram_mi":
        reg.SetMetricAsJointHistogramMutualInformation(int(bins))
    elif metric == "correlation":
        reg.SetMetricAsCorrelation()
    else:
        reg.SetMetricAsMeanSquares()
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(float(sampling), int(seed) % (2**32 - 1) + 1)
    reg.SetInterpolator(sitk.sitkLinear)
    step = 0.5 * coarse_vox
    reg.SetOptimizerAsRegularStepGradientDescent(step, 1e-3 * step, int(iterations), 0.5, 1e-8)
    reg.SetOptimizerScalesFromPhysicalShift()
    shrink = [int(f) for f in shrink_factors]
    sig = [float(s) * coarse_vox for s in (smoothing_sigmas or (1.0, 0.5, 0.0)[-len(shrink):])]
    if len(sig) != len(shrink):
        raise ValueError("smoothing_sigmas needs one value per shrink factor")
    reg.SetShrinkFactorsPerLevel(shrink)
    reg.SetSmoothingSigmasPerLevel(sig)
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    reg.SetInitialTransform(tx, inPlace=True)

    state = {"cancelled": False, "history": []}
    first = steps.total - n_iter

    def on_iteration() -> None:
        state["history"].append(reg.GetMetricValue())
        done = reg.GetCurrentLevel() * int(iterations) + reg.GetOptimizerIteration()
        try:
            steps.report(first + min(done, n_iter - 1))
        except Cancelled:
            state["cancelled"] = True
            raise

    def on_level() -> None:  # a level starts by smoothing both images: check before it
        try:
            steps.check()
        except Cancelled:
            state["cancelled"] = True
            raise

    reg.AddCommand(sitk.sitkIterationEvent, on_iteration)
    reg.AddCommand(sitk.sitkMultiResolutionIterationEvent, on_level)
    # One thread: ITK's multithreaded metric sums differ in the last bits from run to run
    # (the refined matrix by up to 1e-9), so one input would not always give one result.
    # The metric sees at most max_grid^3 samples: the same time on 2 cores (2.5 s, demo).
    threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    try:
        with _quiet_cancel():
            reg.Execute(grid_img, coarse_img)
    except RuntimeError as exc:
        if state["cancelled"]:
            raise Cancelled() from None
        raise ValueError(
            f"intensity refinement failed ({str(exc).strip().splitlines()[-1][:200]}); check that "
            "the initial transform overlays the volumes roughly and that both show the same "
            "structures"
        ) from None
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    steps.report(steps.total)

    fine_to_coarse_new = xyz_to_zyx(_itk_matrix(tx))
    matrix = fine_to_coarse_new if moving_is_fine else np.linalg.inv(fine_to_coarse_new)
    corners = box_corners(np.array([lo, hi]))
    shift = np.linalg.norm(apply_to_points(fine_to_coarse_new, corners)
                           - apply_to_points(fine_to_coarse, corners), axis=1)
    info = {
        "metric": metric,
        "metric_value": float(reg.GetMetricValue()),
        "iterations": int(len(state["history"])),
        "stop_condition": reg.GetOptimizerStopConditionDescription(),
        "grid_spacing": g,
        "grid_shape": [int(v) for v in size],
        "sampled_frame": "moving" if moving_is_fine else "fixed",
        "max_shift": float(shift.max()),
        "initial_matrix": init.matrix.tolist(),
    }
    return Transform(matrix, model, init.unit,
                     metadata={**init.metadata, "source": "refine", "refine": info})
