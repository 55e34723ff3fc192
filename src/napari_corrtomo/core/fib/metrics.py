"""Reconstruction quality of FIB volumes: against ground truth (MP, MGP, MDS,
Sardhara et al. eq. 1-3) and, without it, from anisotropy (e_TPCF, e_LPF, e_D, eq. 4-5)."""

from __future__ import annotations

import numpy as np

from .._checks import check_spacing
from ..quantify import lineal_path, local_thickness, two_point_correlation


def _binary(name: str, arr) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.dtype == bool:
        return arr
    values = np.unique(arr)
    if values.size > 2 or not set(values.tolist()) <= {0, 1}:
        raise ValueError(
            f"{name} must be binary (bool or 0/1; True = solid), got values "
            f"{values[:6].tolist()}{' ...' if values.size > 6 else ''}; threshold or select "
            "one phase first"
        )
    return arr.astype(bool)


def metrics(result, truth) -> dict[str, float]:
    """Misplaced-voxel metrics of a binary reconstruction against its ground truth.

    With the solid phase as positive class (TP: solid in both, TN: pore in both):

    - ``mp_percent`` = (1 - (TP + TN) / all) * 100, misplaced voxels (eq. 1);
    - ``mgp_percent`` = (1 - TP / (TP + FN)) * 100, misplaced solid ("gold") voxels
      (eq. 2);
    - ``mds`` = mean of the Dice scores 2TP / (2TP + FN + FP) of the solid and of the
      pore phase (eq. 3), also returned as ``dice_solid`` and ``dice_pore``.

    Parameters
    ----------
    result, truth
        Boolean (or 0/1) arrays of the same shape; True = solid.
    """
    r = _binary("result", result)
    t = _binary("truth", truth)
    if r.shape != t.shape:
        raise ValueError(
            f"result {r.shape} and truth {t.shape} differ in shape; crop both to the "
            "common region first"
        )
    if r.size == 0:
        raise ValueError("result and truth are empty")
    tp = np.count_nonzero(r & t)
    tn = np.count_nonzero(~r & ~t)
    fp = np.count_nonzero(r & ~t)
    fn = np.count_nonzero(~r & t)
    n = r.size
    if tp + fn == 0:
        raise ValueError("the ground truth has no solid voxels; MGP is undefined")
    if tn + fp == 0:
        raise ValueError("the ground truth has no pore voxels; the pore Dice score is undefined")
    dice_solid = 2 * tp / (2 * tp + fn + fp)
    dice_pore = 2 * tn / (2 * tn + fp + fn)
    return {
        "mp_percent": 100.0 * (1.0 - (tp + tn) / n),
        "mgp_percent": 100.0 * (1.0 - tp / (tp + fn)),
        "mds": 0.5 * (dice_solid + dice_pore),
        "dice_solid": float(dice_solid),
        "dice_pore": float(dice_pore),
    }


def _normalised_l2(f: np.ndarray, g: np.ndarray) -> float:
    """2 ||f - g|| / (||f|| + ||g||), in [0, 2] (eq. 4's terms; 0 for f == g)."""
    den = np.linalg.norm(f) + np.linalg.norm(g)
    return float(2.0 * np.linalg.norm(f - g) / den) if den > 0 else 0.0


def plane_diameters(mask: np.ndarray, spacing, plane_step: int = 1,
                    progress=None) -> dict[str, float]:
    """Mean in-plane ligament diameter of the phase in the xy, xz and yz planes.

    ``D_ij`` is the mean 2D local thickness (largest inscribed disc diameter,
    :func:`~napari_corrtomo.core.quantify.local_thickness` of each 2D section) over
    the phase pixels of all sections parallel to the ij-plane (every
    ``plane_step``-th section), in the units of ``spacing``.
    """
    sp = np.asarray(spacing, dtype=float)
    out = {}
    # (name, axis normal to the planes, in-plane spacing)
    cases = (("d_xy", 0, (sp[1], sp[2])), ("d_xz", 1, (sp[0], sp[2])),
             ("d_yz", 2, (sp[0], sp[1])))
    total = sum(len(range(0, mask.shape[ax], plane_step)) for _n, ax, _s in cases)
    done = 0
    for name, ax, psp in cases:
        acc, count = 0.0, 0
        for i in range(0, mask.shape[ax], plane_step):
            sec = np.take(mask, i, axis=ax)
            done += 1
            if sec.any() and not sec.all():
                lt = local_thickness(sec, psp, backend="numpy")
                acc += float(lt[sec].sum())
                count += int(sec.sum())
            if progress is not None:
                progress(done, total)
        if count == 0:
            raise ValueError(f"no section parallel to the {name[2:]}-plane holds the phase")
        out[name] = acc / count
    return out


def anisotropy(
    volume,
    spacing,
    max_distance: float | None = None,
    plane_step: int | None = None,
    progress=None,
) -> dict[str, float]:
    """Anisotropy errors of a reconstruction without ground truth (eq. 4-5).

    A truly isotropic structure (like nanoporous gold) must look the same along z
    as along x and y; a reconstruction's deviation from that measures its error:

    - ``e_tpcf`` = mean over x and y of the normalised L2 difference
      2 ||f^i - f^z|| / (||f^i|| + ||f^z||) between the directional two-point
      correlation functions along i and along z (eq. 4);
    - ``e_lpf`` = the same for the lineal path functions;
    - ``e_d`` = ( |D_xz - D_xy| + |D_yz - D_xy| ) / (2 D_xy), with ``D_ij`` the mean
      ligament diameter in the ij-plane sections (eq. 5, :func:`plane_diameters`).

    The functions are evaluated at distances 0 .. ``max_distance`` on the grid of
    the coarsest voxel size (default: half the smallest extent, at most 64 of those
    voxels). All three are 0 for an isotropic structure.

    Parameters
    ----------
    volume
        (z, y, x) binary (bool or 0/1), True = the phase (solid).
    spacing
        (z, y, x) voxel size (scalar = isotropic), physical units.
    plane_step
        Use every ``plane_step``-th section for ``D_ij``; default: about 32 sections
        per orientation.
    progress
        ``progress(done, total)``.

    Returns
    -------
    dict with ``e_tpcf``, ``e_lpf``, ``e_d`` and the diameters ``d_xy``, ``d_xz``,
    ``d_yz`` (units of ``spacing``).
    """
    mask = _binary("volume", volume)
    if mask.ndim != 3:
        raise ValueError(f"volume must be 3D (z, y, x), got shape {mask.shape}")
    if not mask.any() or mask.all():
        raise ValueError("volume must contain both phases (solid and pore)")
    if min(mask.shape) < 4:
        raise ValueError(f"volume {mask.shape} is too thin to compare directions; "
                         "it needs at least 4 voxels along every axis")
    sp = np.asarray(check_spacing(spacing, 3))
    step = float(sp.max())
    extent = (np.array(mask.shape) - 1) * sp
    if max_distance is None:
        max_distance = min(0.5 * extent.min(), 64 * step)
    max_distance = float(max_distance)
    if not 0 < max_distance <= extent.min():
        raise ValueError(f"max_distance must be in (0, {extent.min():g}] (the smallest "
                         f"extent), got {max_distance:g}")
    grid = np.arange(int(np.floor(max_distance / step + 1e-9)) + 1) * step
    funcs = {}
    for name, fn in (("tpcf", two_point_correlation), ("lpf", lineal_path)):
        curves = []
        for ax in range(3):
            r, f = fn(mask, tuple(sp), max_distance, axis=ax)
            curves.append(np.interp(grid, r, f))
        funcs[name] = curves  # z, y, x
    total_steps = 4
    if progress is not None:
        progress(1, total_steps)
    out = {}
    for name, (fz, fy, fx) in funcs.items():
        out[f"e_{name}"] = 0.5 * (_normalised_l2(fx, fz) + _normalised_l2(fy, fz))

    def sub(done, total):
        if progress is not None:
            progress(1 + int(3 * done / max(total, 1)), total_steps)

    if plane_step is None:
        plane_step = max(1, min(mask.shape) // 32)
    if int(plane_step) < 1:
        raise ValueError(f"plane_step must be >= 1, got {plane_step}")
    d = plane_diameters(mask, sp, plane_step=int(plane_step), progress=sub)
    out["e_d"] = 0.5 * (abs(d["d_xz"] - d["d_xy"]) + abs(d["d_yz"] - d["d_xy"])) / d["d_xy"]
    out.update(d)
    return out
