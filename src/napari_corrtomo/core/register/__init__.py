"""Landmark fits, intensity refinement, resampling and ROI mapping across scales.

Everything works on physical world coordinates, points as rows ``(z, y, x)``:
a voxel ``i`` of a volume with voxel size ``scale`` and origin ``translate`` sits
at ``translate + i * scale`` (napari's convention). A :class:`Transform` holds a
4x4 homogeneous matrix mapping **moving world -> fixed world** in one length unit;
with both layers in that unit it is exactly the moving layer's napari ``affine``.

- :func:`fit_landmarks` -- closed-form least squares (rigid, similarity, affine;
  never a reflection), RANSAC with ``robust=True``, residuals, RMS FRE and a
  leave-one-out TRE estimate;
- :func:`refine` -- multi-resolution intensity registration with SimpleITK
  (Mattes mutual information by default) for pairs of very different voxel sizes;
- :func:`resample` -- the moving volume in any grid of the fixed frame;
- :func:`map_box`, :func:`crop_slices`, :func:`box_sections` -- regions of
  interest and fields of view carried between frames;
- :func:`save_transform` / :func:`load_transform` (JSON, ITK ``.tfm``),
  :func:`save_landmarks_csv` / :func:`load_landmarks_csv` (BigWarp CSV);
- :func:`run_register` and its steps (:mod:`.pipeline`): the workflow the widget, the
  CLI and the demo run; :class:`RegistrationSession`, its interactive state.

See ``docs/registration.md`` for the conventions (direction, units, handedness).
"""

from .fit import degeneracy, fit_landmarks
from .formats import (
    Landmarks,
    check_transform_path,
    from_itk_matrix,
    infer_model,
    load_landmarks_csv,
    load_transform,
    read_tfm,
    save_landmarks_csv,
    save_transform,
    to_itk_matrix,
    transform_from_dict,
    transform_to_dict,
    write_tfm,
)
from .geometry import (
    MappedBox,
    box_corners,
    box_sections,
    crop_box,
    crop_slices,
    fov_box,
    fov_in_fixed,
    fov_outlines,
    grid_matrix,
    map_box,
    resample,
)
from .pipeline import (
    GRIDS,
    Grid,
    RegisterSettings,
    Registration,
    check_landmark_unit,
    crop_region,
    fit_pairs,
    moving_fov,
    output_grid,
    overlay_matrix,
    refine_transform,
    resample_moving,
    residual_table,
    run_register,
)
from .refine import METRICS, refine
from .session import RegistrationSession
from .transform import (
    MODELS,
    Transform,
    apply_to_points,
    as_transform,
    check_matrix,
    compare,
    polar,
    rotation_angle_deg,
    unit_matrix,
    xyz_to_zyx,
    zyx_to_xyz,
)

__all__ = [
    "apply_to_points", "as_transform", "box_corners", "box_sections", "check_landmark_unit",
    "check_matrix", "check_transform_path", "compare", "crop_box", "crop_region", "crop_slices",
    "degeneracy", "fit_landmarks", "fov_box", "fit_pairs", "fov_in_fixed", "fov_outlines",
    "from_itk_matrix", "Grid", "GRIDS", "grid_matrix", "infer_model", "Landmarks",
    "load_landmarks_csv", "load_transform", "map_box", "MappedBox", "METRICS", "MODELS",
    "moving_fov", "output_grid", "overlay_matrix", "polar", "read_tfm", "refine",
    "refine_transform", "Registration", "RegistrationSession", "RegisterSettings", "resample",
    "resample_moving", "residual_table", "rotation_angle_deg", "run_register",
    "save_landmarks_csv", "save_transform", "to_itk_matrix", "Transform", "transform_from_dict",
    "transform_to_dict", "unit_matrix", "write_tfm", "xyz_to_zyx", "zyx_to_xyz",
]
