"""The registration workflow in one place: the steps the Register widget, ``corrtomo
register`` and the demo run, in this order.

1. fit (:func:`fit_pairs`): the landmark transform (rigid, similarity or affine; robust
   on request) of the active pairs, moving world -> fixed world in the landmarks' unit;
2. residual table (:func:`residual_table`): per pair, its residual under the current
   transform, the landmark fit's leave-one-out error and whether the fit used it;
3. refine (:func:`refine_transform`, optional): intensity registration from there;
4. output grid (:func:`output_grid`): the fixed volume's grid, or the moving voxel size
   over the moving field of view mapped into the fixed frame;
5. resample (:func:`resample_moving`) the moving volume onto that grid;
6. regions across scales: the moving field of view in the fixed frame
   (:func:`moving_fov`), the voxels of any volume under a world box (:func:`crop_region`)
   and a volume's field of view outlined in another's slices (:func:`fov_outlines`).

:func:`run_register` runs 1-6 in one go (CLI, demo); the widget runs them a button at a
time through :class:`~.session.RegistrationSession`. Volumes come with their
:class:`~napari_corrtomo.core.frame.Frame` (spacing, unit, origin) in any length unit;
every step works in the transform's unit. Errors about a choice are
:class:`~napari_corrtomo.core._checks.SettingError` keyed by the settings field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .._checks import SettingError
from ..frame import Frame
from ..progress import ProgressCallback, scaled
from ..units import convert
from .fit import fit_landmarks
from .formats import Landmarks
from .geometry import MappedBox, crop_box, fov_box, fov_outlines, grid_matrix, map_box, resample
from .refine import METRICS, refine
from .transform import MODELS, Transform, unit_matrix

#: Output grids of :func:`output_grid`: the fixed volume's, or the moving voxel size over
#: the moving field of view (in the fixed orientation).
GRIDS = ("fixed", "moving")
#: Most voxels an output grid may have (a typo'd grid must not ask for terabytes).
MAX_VOXELS = 2**31

__all__ = ["GRIDS", "Grid", "Registration", "RegisterSettings", "check_landmark_unit",
           "crop_region", "fit_pairs", "fov_outlines", "moving_fov", "output_grid",
           "overlay_matrix", "refine_transform", "resample_moving", "residual_table",
           "run_register"]


@dataclass
class RegisterSettings:
    """Every choice of the registration workflow.

    Parameters
    ----------
    model
        Transform fitted to the landmarks and optimised by the refinement: ``"rigid"``
        (rotation + shift), ``"similarity"`` (+ one isotropic scale) or ``"affine"`` (any
        linear map + shift). Rigid and similarity need >= 3 pairs not on one line, affine
        >= 4 not in one plane.
    robust
        Let the fit reject mis-clicked pairs (needs 2 pairs more than the model's
        minimum): RANSAC with the inlier distance ``threshold``, else a deletion test
        that drops the pair worst predicted by the others while its error is beyond the
        others' noise. The transform is the least-squares fit of the pairs kept.
    threshold
        Inlier distance of the robust fit's RANSAC, in the landmarks' unit (the fixed
        volume's), e.g. three times the click precision; ``None`` (auto): no set distance,
        the deletion test judges each pair by the others' noise. Used only with
        ``robust``.
    refine
        Refine the landmark fit by matching the two volumes' intensities
        (:func:`run_register`; in the widget: its Refine button).
    metric
        Similarity measure of the intensity refinement: ``"mattes_mi"`` (Mattes mutual
        information, for different modalities), ``"correlation"`` (normalised
        correlation, same kind of contrast), ``"mean_squares"`` (same modality and grey
        levels) or ``"joint_histogram_mi"`` (joint-histogram mutual information).
    resample
        Resample the moving volume onto ``grid`` (:func:`run_register`; in the widget:
        its Resample button).
    grid
        Grid in the fixed frame the moving volume is resampled onto: ``"fixed"`` (fixed
        volume grid: its voxel size and field of view) or ``"moving"`` (cubic voxels of
        the moving volume's smallest voxel size over its field of view: the moving
        detail in the fixed orientation).
    order
        Interpolation of the resampling, a spline order 0-5: 0 nearest (for labels),
        1 linear, 3 cubic.
    seed
        Random seed of the RANSAC sampling and of the refinement's metric sampling (the
        same seed gives the same result).
    """

    model: str = "similarity"
    robust: bool = False
    threshold: float | None = None
    refine: bool = False
    metric: str = "mattes_mi"
    resample: bool = False
    grid: str = "fixed"
    order: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise SettingError(f"unknown $model {self.model!r}; use one of {', '.join(MODELS)}",
                               model="model")
        if self.metric not in METRICS:
            raise SettingError(f"unknown $metric {self.metric!r}; use one of "
                               f"{', '.join(METRICS)}", metric="metric")
        if self.grid not in GRIDS:
            raise SettingError(f"unknown $grid {self.grid!r}; use one of {', '.join(GRIDS)}",
                               grid="grid")


@dataclass(frozen=True)
class Grid:
    """An output grid in the fixed frame: ``shape`` voxels of ``spacing``, voxel 0 at
    ``origin`` (z, y, x), lengths in ``unit``."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    unit: str


@dataclass
class Registration:
    """What :func:`run_register` gives: the landmark ``fit`` (``None`` when it started from
    a given transform), the final ``transform`` (refined, the fit or the given one), the
    residual ``table`` (``None`` without landmarks), the moving field of view in the fixed
    frame (``fov``, when volumes were given) and the ``resampled`` moving volume on
    ``grid`` (when asked)."""

    fit: Transform | None
    transform: Transform
    table: pd.DataFrame | None
    fov: MappedBox | None = None
    grid: Grid | None = None
    resampled: np.ndarray | None = None
    #: ``(crop, slices, clipped)`` of the moving volume under the ``roi`` box (see
    #: :func:`crop_region`), when one was given
    roi: tuple[Any, tuple[slice, ...], bool] | None = None


def fit_pairs(landmarks: Landmarks, settings: RegisterSettings) -> Transform:
    """Step 1: the transform mapping the active moving landmarks onto the fixed ones.

    Parameters
    ----------
    landmarks
        Paired (N, 3) points (z, y, x) in one unit, with names and active flags.
    settings
        ``model``, ``robust``, ``threshold`` and ``seed``.

    Returns
    -------
    Transform
        Moving world -> fixed world in ``landmarks.unit``, with residuals, ``used`` and
        leave-one-out errors (:func:`~.fit.fit_landmarks`).
    """
    return fit_landmarks(landmarks.fixed, landmarks.moving, settings.model,
                         robust=settings.robust, active=landmarks.active,
                         threshold=settings.threshold, unit=landmarks.unit, seed=settings.seed,
                         names=landmarks.names)


#: landmarks further outside a volume than this many times its largest size are "far
#: outside" it (:func:`check_landmark_unit`): a unit slip puts them about 1000 times
#: further out, while landmarks of a whole volume kept with a crop of it lie a few sizes out
FAR_OUTSIDE = 100.0


def check_landmark_unit(landmarks: Landmarks, fixed_shape: Any = None,
                        fixed_frame: Frame | None = None, moving_shape: Any = None,
                        moving_frame: Frame | None = None) -> None:
    """Refuse landmarks whose unit cannot be the one they were read in.

    Read in the wrong unit (um coordinates as nm, or the reverse), a set of landmarks
    lies 1000 times too close to the origin or too far from it: all within one voxel of
    its volume, or all further outside it than :data:`FAR_OUTSIDE` times its size. The
    fit then succeeds and the resampled volume is silently misplaced. Landmarks outside
    their volume by less pass; a set needs 3 landmarks (a fit's least) to be "within a
    voxel". Volumes without a shape or frame are not checked.
    """
    for role, shape, frame in (("fixed", fixed_shape, fixed_frame),
                               ("moving", moving_shape, moving_frame)):
        if shape is None or frame is None:
            continue
        points = np.asarray(convert(getattr(landmarks, role), landmarks.unit, frame.unit))
        lo, hi = fov_box(shape, frame.spacing, frame.offset, edges=True)
        margin = FAR_OUTSIDE * np.max(hi - lo)
        far = np.any((points < lo - margin) | (points > hi + margin), axis=1)
        cramped = len(points) >= 3 and np.all(np.ptp(points, axis=0) < frame.spacing)
        if far.all() or cramped:
            where = "within one voxel of" if cramped else "far outside"
            raise SettingError(
                f"the {role} landmarks, read in {landmarks.unit}, all lie {where} the {role} "
                f"volume: (z, y, x) {_span(points.min(0), points.max(0))} {frame.unit} "
                f"against the volume's {_span(lo, hi)} {frame.unit}. The landmark "
                f"coordinates are probably not in {landmarks.unit}; $unit",
                unit="read them in their unit (load_landmarks_csv(path, unit=...))")


def _span(lo: Any, hi: Any) -> str:
    return " to ".join("(" + ", ".join(f"{v:.4g}" for v in p) + ")" for p in (lo, hi))


def residual_table(landmarks: Landmarks, transform: Transform,
                   fit: Transform | None = None) -> pd.DataFrame:
    """Step 2: one row per landmark pair under ``transform`` (in the landmarks' unit).

    Parameters
    ----------
    landmarks
        The pairs (N of them).
    transform
        The current transform (the fit, a refinement of it, or one loaded from a file).
    fit
        The landmark fit it came from, for ``loo_tre`` and ``fitted``; default
        ``transform`` itself. A fit of another number of pairs is ignored.

    Returns
    -------
    DataFrame
        ``name``, ``active``, ``fitted`` (used by the fit; the active flag when there is
        no fit), ``residual_<unit>`` (distance fixed - T(moving)), ``loo_tre_<unit>``
        (residual of a fit without that pair; NaN where unknown) and the residual vector
        ``dz_<unit>``, ``dy_<unit>``, ``dx_<unit>``.
    """
    u = landmarks.unit
    n = len(landmarks)
    vec = landmarks.fixed - transform.in_unit(u).apply(landmarks.moving).reshape(-1, 3)
    source = (transform if fit is None else fit).in_unit(u)
    loo = source.loo_tre if source.loo_tre is not None and len(source.loo_tre) == n \
        else np.full(n, np.nan)
    used = source.used if source.used is not None and len(source.used) == n \
        else landmarks.active
    return pd.DataFrame({
        "name": list(landmarks.names),
        "active": np.asarray(landmarks.active, bool),
        "fitted": np.asarray(used, bool),
        f"residual_{u}": np.linalg.norm(vec, axis=1),
        f"loo_tre_{u}": np.asarray(loo, float),
        f"dz_{u}": vec[:, 0], f"dy_{u}": vec[:, 1], f"dx_{u}": vec[:, 2],
    })


def refine_transform(fixed_image: Any, fixed_frame: Frame, moving_image: Any,
                     moving_frame: Frame, transform: Transform, settings: RegisterSettings,
                     progress: ProgressCallback | None = None) -> Transform:
    """Step 3: refine ``transform`` by intensity registration (SimpleITK).

    Parameters
    ----------
    fixed_image, moving_image
        (Z, Y, X) volumes (NumPy, dask or zarr; only the overlap is read).
    fixed_frame, moving_frame
        Their spacing, unit and origin (any length units).
    transform
        Starting moving world -> fixed world transform.
    settings
        ``model``, ``metric`` and ``seed``.
    progress
        ``progress(done, total)``; raise ``Cancelled`` in it to stop.

    Returns
    -------
    Transform
        The refined transform in ``transform.unit``; ``metadata["refine"]`` says how.
    """
    f, m = fixed_frame.to(transform.unit), moving_frame.to(transform.unit)
    out = refine(fixed_image, moving_image, transform, settings.metric,
                 fixed_spacing=f.spacing, moving_spacing=m.spacing, fixed_origin=f.offset,
                 moving_origin=m.offset, model=settings.model, seed=settings.seed,
                 progress=progress)
    shift, loo = out.metadata["refine"]["max_shift"], transform.rms_loo_tre
    if loo is not None and shift > max(REFINE_FAR * loo, 2 * max(f.spacing)):
        # landmarks in z, y, x order read as x, y, z fit with a LOO error of 2.6 um; the
        # refinement then moved the overlap 17 um, to a wrong optimum
        out.warnings.append(
            f"the refinement moved the overlap up to {shift:.3g} {out.unit}, {shift / loo:.0f} "
            f"times the landmark fit's leave-one-out error ({loo:.3g} {out.unit}): the "
            "landmarks and the intensities disagree; check the landmarks (BigWarp writes x, y, "
            "z) before trusting either")
    return out


#: how many times the landmark fit's RMS leave-one-out error a refinement may move the
#: overlap before it is said to disagree with the landmarks
REFINE_FAR = 5.0


def moving_fov(moving_shape: Any, moving_frame: Frame, transform: Transform) -> MappedBox:
    """Step 6: the moving volume's field of view (voxel centres) in the fixed frame, in
    ``transform.unit``: its 8 corners and their bounds."""
    m = moving_frame.to(transform.unit)
    return map_box(fov_box(moving_shape, m.spacing, m.offset), transform)


def crop_region(image: Any, frame: Frame, box: Any, placement: Any = None
                ) -> tuple[Any, tuple[slice, ...], bool]:
    """Step 6: the voxels of a volume under a world box (a region of interest across scales).

    Parameters
    ----------
    image
        (Z, Y, X) volume (NumPy, dask, zarr: only the crop is read).
    frame
        Its frame; its voxel ``i`` sits at ``origin + i * spacing`` (``frame.unit``).
    box
        ``[[z0, y0, x0], [z1, y1, x1]]`` in world coordinates.
    placement
        4x4 matrix from the volume's physical coordinates to that world: a registration
        transform (moving world -> fixed world, in ``frame.unit``) or a napari layer's
        ``affine``; default identity (the box is in the volume's own frame).

    Returns
    -------
    crop, slices, clipped
        The voxels whose centres lie in the box's bounding box in the volume (native
        resolution, no interpolation), their index slices, and whether the box reached
        outside the volume.
    """
    place = np.eye(4) if placement is None else np.asarray(placement, float)
    return crop_box(image, box, place @ grid_matrix(frame.spacing, frame.offset))


def output_grid(transform: Transform, grid: str, fixed_shape: Any, fixed_frame: Frame,
                moving_shape: Any, moving_frame: Frame) -> Grid:
    """Step 4: the grid of the fixed frame the moving volume is resampled onto.

    Parameters
    ----------
    transform
        Moving world -> fixed world; the grid is in its unit.
    grid
        ``"fixed"``: the fixed volume's grid (shape, spacing, origin). ``"moving"``: cubic
        voxels of the smallest moving spacing covering the moving field of view mapped
        into the fixed frame (the moving detail, in the fixed orientation).
    fixed_shape, moving_shape
        (Z, Y, X) shapes of the volumes.
    fixed_frame, moving_frame
        Their frames.

    Raises
    ------
    SettingError
        Unknown ``grid``, or a grid of more than :data:`MAX_VOXELS` voxels.
    """
    u = transform.unit
    if grid == "fixed":
        f = fixed_frame.to(u)
        shape = np.asarray(fixed_shape, int)[-3:]
        spacing, origin = np.asarray(f.spacing), np.asarray(f.offset)
    elif grid == "moving":
        bounds = moving_fov(moving_shape, moving_frame, transform).bounds
        spacing = np.full(3, min(moving_frame.to(u).spacing))
        shape = np.floor((bounds[1] - bounds[0]) / spacing).astype(int) + 1
        origin = bounds[0]
    else:
        raise SettingError(f"unknown $grid {grid!r}; use one of {', '.join(GRIDS)}", grid="grid")
    n_vox = int(np.prod(shape))
    if n_vox > MAX_VOXELS:
        raise SettingError(f"the output grid has {n_vox:.3g} voxels; use the fixed grid ($grid) "
                           "or crop the moving volume first", grid="grid='fixed'")
    return Grid(tuple(int(v) for v in shape), tuple(float(v) for v in spacing),
                tuple(float(v) for v in origin), u)


def resample_moving(moving_image: Any, moving_frame: Frame, transform: Transform, grid: Grid,
                    order: int = 1, progress: ProgressCallback | None = None) -> np.ndarray:
    """Step 5: the moving volume on ``grid`` (a :class:`Grid` of the fixed frame).

    Returns a ``grid.shape`` array (the input dtype for ``order=0``, else float32 or
    float64); voxels outside the moving volume are 0.
    """
    m = moving_frame.to(grid.unit)
    return resample(moving_image, transform.in_unit(grid.unit), grid.shape, grid.spacing,
                    moving_spacing=m.spacing, reference_origin=grid.origin,
                    moving_origin=m.offset, order=order, progress=progress)


def overlay_matrix(transform: Transform, moving_unit: str) -> np.ndarray:
    """The 4x4 matrix taking moving world coordinates *in the moving unit* to fixed world
    coordinates in ``transform.unit``: the moving layer's napari ``affine`` that overlays
    it on the fixed one (both layers otherwise unmoved)."""
    k = float(convert(1.0, moving_unit, transform.unit))
    return transform.matrix @ unit_matrix(k)


def run_register(landmarks: Landmarks | None, settings: RegisterSettings, *,
                 initial: Transform | None = None, roi: Any = None,
                 fixed_image: Any = None, fixed_frame: Frame | None = None,
                 moving_image: Any = None, moving_frame: Frame | None = None,
                 progress: ProgressCallback | None = None) -> Registration:
    """The registration workflow: fit (or a given transform) -> refine -> residual table ->
    grid -> resample.

    Parameters
    ----------
    landmarks
        Paired landmarks in physical coordinates of each volume, both in one unit;
        ``None`` with ``initial`` (no fit, no residual table).
    settings
        :class:`RegisterSettings`; ``refine`` and ``resample`` need both volumes.
    initial
        Start from this transform (e.g. one saved earlier) instead of fitting the
        landmarks, which then only give the residual table.
    roi
        ``[[z0, y0, x0], [z1, y1, x1]]``: a box in the fixed frame (the transform's unit)
        whose moving voxels are cropped (:attr:`Registration.roi`).
    fixed_image, moving_image
        (Z, Y, X) volumes (optional without ``refine`` / ``resample``).
    fixed_frame, moving_frame
        Their frames (any length units).
    progress
        ``progress(done, total)`` over the run; raising ``Cancelled`` stops it.

    Returns
    -------
    :class:`Registration`
    """
    volumes = fixed_image is not None and moving_image is not None
    if (settings.refine or settings.resample) and not volumes:
        raise SettingError("$refine and $resample need both $fixed_image and $moving_image",
                           refine="refine", resample="resample", fixed_image="fixed_image",
                           moving_image="moving_image")
    if volumes and (fixed_frame is None or moving_frame is None):
        raise ValueError("give the frames (spacing, unit) of both volumes")
    if landmarks is None and initial is None:
        raise SettingError("give $landmarks or $initial", landmarks="landmarks",
                           initial="an initial transform (initial)")
    if landmarks is not None:
        check_landmark_unit(landmarks, getattr(fixed_image, "shape", None), fixed_frame,
                            getattr(moving_image, "shape", None), moving_frame)
    fit = fit_pairs(landmarks, settings) if initial is None else None
    transform = fit if initial is None else \
        initial if landmarks is None else initial.in_unit(landmarks.unit)
    split = 500 if settings.refine and settings.resample else 0 if settings.resample else 1000
    if settings.refine:
        transform = refine_transform(fixed_image, fixed_frame, moving_image, moving_frame, fit,
                                     settings, scaled(progress, 0, split, 1000))
    out = Registration(fit, transform, None if landmarks is None else
                       residual_table(landmarks, transform, fit))
    if volumes:
        out.fov = moving_fov(moving_image.shape, moving_frame, transform)
    if roi is not None:
        if moving_image is None:
            raise SettingError("$roi needs $moving_image", roi="roi",
                               moving_image="moving_image")
        out.roi = crop_region(moving_image, moving_frame.to(transform.unit), roi,
                              transform.matrix)
    if settings.resample:
        out.grid = output_grid(transform, settings.grid, fixed_image.shape, fixed_frame,
                               moving_image.shape, moving_frame)
        out.resampled = resample_moving(moving_image, moving_frame, transform, out.grid,
                                        settings.order, scaled(progress, split, 1000, 1000))
    return out
