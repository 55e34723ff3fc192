"""Closed-form landmark fits (rigid, similarity, affine), outlier rejection, leave-one-out errors.

- rigid / similarity: the least-squares solution of Umeyama (1991) -- the rotation
  from the SVD of the cross-covariance with the sign correction that excludes
  reflections (Kabsch), the scale ``tr(D S) / sum |m - m_mean|^2``;
- affine: linear least squares on homogeneous coordinates; a fit that would
  mirror space is refused.

Residuals are measured in the fixed frame, the frame the least squares minimise in.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._checks import SettingError
from .transform import MODELS, Transform, apply_to_points

#: Degeneracy tolerance: the smallest singular value the model needs, relative to the largest.
DEGENERATE_RATIO = 1e-3
#: chi-square (3 d.o.f.) median and 99 % quantile (squared 3D distances of unit Gaussian noise).
_CHI2_3_MEDIAN = 2.365974
_CHI2_3_99 = 11.344867
#: free parameters of each model (3D)
MODEL_PARAMETERS = {"rigid": 6, "similarity": 7, "affine": 12}
#: Fits the automatic outlier test may spend trying sets of left-out pairs (all sets of 0,
#: 1, 2 ... pairs) before it hands over to RANSAC with a least-median-of-squares threshold.
DELETION_FITS = 5000


# =========================================================================== checks


def _points(points: Any, name: str) -> np.ndarray:
    arr = np.asarray(points, dtype=float)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise ValueError(
            f"{name} must be an (N, 3) array of (z, y, x) world coordinates, got shape {arr.shape}"
        )
    bad = np.flatnonzero(~np.isfinite(arr).all(axis=1))
    if bad.size:
        raise ValueError(
            f"{name} has NaN or infinite coordinates at landmark(s) {', '.join(map(str, bad))}; "
            "place or delete those landmarks"
        )
    return arr


def degeneracy(points: np.ndarray, model: str) -> str | None:
    """Why ``points`` cannot determine ``model`` (coincident, collinear, coplanar), else None."""
    n = len(points)
    centred = points - points.mean(axis=0)
    extent = float(np.sqrt((centred**2).sum(axis=1).max())) if n else 0.0
    if extent == 0.0:
        return f"all {n} points coincide"
    d = np.linalg.norm(points[:, None, :] - points[None, :, :], axis=2)
    close = np.argwhere(np.triu(d <= 1e-9 * extent, k=1))
    if close.size:
        i, j = close[0]
        return f"landmarks {i} and {j} coincide (a double click?)"
    sv = np.linalg.svd(centred, compute_uv=False)
    need = 2 if model in ("rigid", "similarity") else 3
    if len(sv) < need or sv[need - 1] <= DEGENERATE_RATIO * sv[0]:
        shape = "on one line (collinear)" if need == 2 or sv[1] <= DEGENERATE_RATIO * sv[0] \
            else "in one plane (coplanar)"
        return f"the points lie {shape}"
    return None


def _check_pair(fixed: np.ndarray, moving: np.ndarray, model: str) -> None:
    for pts, name in ((fixed, "fixed"), (moving, "moving")):
        why = degeneracy(pts, model)
        if why is not None:
            spread = "three points not on one line" if model != "affine" else \
                "four points not in one plane"
            raise ValueError(
                f"the {name} landmarks cannot determine a {model} transform: {why}; "
                f"spread the landmarks out (at least {spread})"
            )


# =========================================================================== closed forms


def _closed_form(fixed: np.ndarray, moving: np.ndarray, model: str) -> tuple[np.ndarray, bool]:
    """Least-squares 4x4 matrix moving -> fixed, and whether a mirror would have fitted better."""
    m = np.eye(4)
    if model == "affine":
        design = np.column_stack([moving, np.ones(len(moving))])
        sol, *_ = np.linalg.lstsq(design, fixed, rcond=None)
        m[:3, :3] = sol[:3].T
        m[:3, 3] = sol[3]
        det = np.linalg.det(m[:3, :3])
        if det <= 0:
            raise ValueError(
                "the affine fit of these landmarks mirrors or flattens space "
                f"(det {det:.3g}); check that fixed and moving points are paired correctly "
                "and that neither volume is flipped"
            )
        return m, False
    mu_f, mu_m = fixed.mean(axis=0), moving.mean(axis=0)
    a, b = moving - mu_m, fixed - mu_f
    u, s, vt = np.linalg.svd(b.T @ a)
    sign = np.sign(np.linalg.det(u @ vt)) or 1.0
    d = np.array([1.0, 1.0, sign])
    rot = u @ np.diag(d) @ vt
    scale = float((s * d).sum() / (a**2).sum()) if model == "similarity" else 1.0
    m[:3, :3] = scale * rot
    m[:3, 3] = mu_f - scale * rot @ mu_m
    mirrored = False
    if sign < 0:  # would a reflection have explained the points much better? tell the user
        mirror = u @ vt
        s_mirror = float(s.sum() / (a**2).sum()) if model == "similarity" else 1.0
        rms = np.sqrt(np.mean(np.sum((b - scale * a @ rot.T) ** 2, axis=1)))
        rms_mirror = np.sqrt(np.mean(np.sum((b - s_mirror * a @ mirror.T) ** 2, axis=1)))
        mirrored = bool(rms_mirror < 0.5 * rms)
    return m, mirrored


def _residuals(matrix: np.ndarray, fixed: np.ndarray, moving: np.ndarray) -> np.ndarray:
    return fixed - apply_to_points(matrix, moving)


# =========================================================================== RANSAC


def _subset_fits(fixed: np.ndarray, moving: np.ndarray, model: str, subsets):
    """``(subset, matrix)`` of the least-squares fit on each subset of pair indices that
    is in general position (degenerate or mirroring subsets are skipped)."""
    for subset in subsets:
        sel = list(subset)
        if degeneracy(fixed[sel], model) or degeneracy(moving[sel], model):
            continue
        try:
            m, _ = _closed_form(fixed[sel], moving[sel], model)
        except ValueError:
            continue
        yield sel, m


def _samples(n: int, k: int, max_trials: int, rng: np.random.Generator):
    if math.comb(n, k) <= max_trials:
        yield from itertools.combinations(range(n), k)
        return
    seen: set[tuple[int, ...]] = set()
    while len(seen) < max_trials:
        idx = tuple(sorted(rng.choice(n, k, replace=False).tolist()))
        if idx not in seen:
            seen.add(idx)
            yield idx


def _jacobian(fitted: np.ndarray, moving: np.ndarray, model: str) -> np.ndarray:
    """(n, 3, p): how each fitted point moves with the model's parameters at the fit.

    Columns: a small rotation, for similarity a scale, and a translation of the fitted
    points; for affine the 12 linear parameters (exact: the model is linear).
    """
    n = len(moving)
    c = fitted - fitted.mean(axis=0)
    eye = np.broadcast_to(np.eye(3), (n, 3, 3))
    if model == "affine":
        cols = [eye * x[:, None, None] for x in (moving - moving.mean(axis=0)).T]
    else:
        skew = np.zeros((n, 3, 3))
        skew[:, 0, 1], skew[:, 0, 2], skew[:, 1, 2] = -c[:, 2], c[:, 1], -c[:, 0]
        skew -= skew.transpose(0, 2, 1)
        cols = [-skew, c[:, :, None]] if model == "similarity" else [-skew]
    return np.concatenate([*cols, eye], axis=2)


def _proper_fit(fixed: np.ndarray, moving: np.ndarray, model: str) -> bool:
    """Whether the least-squares fit of these pairs keeps space's handedness (an affine fit
    of a nearly coplanar set can mirror it)."""
    try:
        _closed_form(fixed, moving, model)
    except ValueError:
        return False
    return True


def _prediction_scores(fixed: np.ndarray, moving: np.ndarray, model: str,
                       keep: np.ndarray) -> tuple[np.ndarray, float, int]:
    """Fit the kept pairs; score every pair by its noise-scaled error against that fit.

    A kept pair's score is ``r^T (I - H)^-1 r`` (``H`` its 3x3 block of the hat matrix
    ``J (J^T J)^-1 J^T``: a good pair far from the others pulls the fit towards itself
    and is not taken for an outlier), a left-out pair's ``e^T (I + J G J^T)^-1 e``
    (its prediction error, wider where the fit extrapolates). Returns the scores, the
    noise variance of the kept pairs and its degrees of freedom; under Gaussian noise a
    score over three times the variance is F(3, dof)-distributed.
    """
    idx = np.flatnonzero(keep)
    m, _ = _closed_form(fixed[idx], moving[idx], model)
    r = _residuals(m, fixed, moving)
    jac = _jacobian(apply_to_points(m, moving), moving, model)
    jk = jac[idx].reshape(3 * len(idx), -1)
    spread = np.einsum("nip,pq,njq->nij", jac, np.linalg.pinv(jk.T @ jk), jac)
    cov = np.where(keep[:, None, None], np.eye(3) - spread, np.eye(3) + spread)
    cov[keep] += 1e-9 * np.eye(3)  # a pair that alone fixes a parameter has no free residual
    score = np.einsum("ni,ni->n", r, np.linalg.solve(cov, r[:, :, None])[:, :, 0])
    dof = 3 * len(idx) - MODEL_PARAMETERS[model]
    return score, float((r[idx] ** 2).sum()) / dof, dof


def _deletion_test(fixed: np.ndarray, moving: np.ndarray,
                   model: str) -> tuple[np.ndarray, float] | None:
    """Outliers by a trimmed fit and a forward search, for few pairs.

    1. Least trimmed squares: of all sets that leave out ``m`` pairs (``m`` = 2, or a
       fifth of the pairs, as far as the rest still estimates the noise with at least 5
       degrees of freedom and the number of fits allows), the one with the smallest sum
       of squared residuals: it leaves out every outlier there are at most ``m`` of, so
       two outliers cannot hide each other as they do in a one-at-a-time deletion.
    2. Forward search: a left-out pair rejoins when its prediction error is within the
       99 % bound (F quantile, Bonferroni-corrected over the pairs) of the kept pairs'
       noise; refit and repeat until nothing changes.
    3. Check: a kept pair that is an outlier against the others (externally studentized)
       means there were more outliers than ``m``.

    None when no trimmed fit can be made within :data:`DELETION_FITS` fits or the check
    fails: RANSAC then.
    """
    from scipy.stats import f as f_dist

    n, p = len(fixed), MODEL_PARAMETERS[model]
    out, fits = 0, 1
    while (out < max(2, n // 5) and 3 * (n - out - 1) - p >= 5
           and fits + math.comb(n, out + 1) <= DELETION_FITS):
        out += 1
        fits += math.comb(n, out)
    best = None
    for idx, m in _subset_fits(fixed, moving, model,
                               itertools.combinations(range(n), n - out)):
        rss = float((_residuals(m, fixed[idx], moving[idx]) ** 2).sum())
        if best is None or rss < best[0]:
            best = (rss, idx)
    if best is None:
        return None
    keep = np.zeros(n, bool)
    keep[best[1]] = True
    for _ in range(n):
        score, var, dof = _prediction_scores(fixed, moving, model, keep)
        bound = 3 * float(f_dist.ppf(1 - 0.01 / n, 3, dof)) * var
        new = keep | (score <= bound)
        if np.array_equal(new, keep) or not _proper_fit(fixed[new], moving[new], model):
            break  # converged, or the grown set's fit would mirror or flatten space
        keep = new
    # more outliers than the trimmed fit left out: one is among the kept pairs
    score, var, dof = _prediction_scores(fixed, moving, model, keep)
    kept = score[keep]
    without = np.maximum(var * dof - kept, 0.0) / (dof - 3)
    if np.any(kept > 3 * float(f_dist.ppf(1 - 0.01 / n, 3, dof - 3)) * without):
        return None
    return keep, math.sqrt(bound)


def _lmeds_threshold(fixed: np.ndarray, moving: np.ndarray, model: str, max_trials: int,
                     seed: int) -> float:
    """Inlier distance from the least median of squares over minimal samples (many pairs).

    The noise level is the best median residual, scaled for 3D distances, with
    Rousseeuw & Leroy's finite-sample correction; the bound is its 99 % chi-square
    (3 d.o.f.) quantile.
    """
    n, k = len(fixed), MODELS[model]
    rng = np.random.default_rng(seed)
    best = None
    for _, m in _subset_fits(fixed, moving, model, _samples(n, k, max_trials, rng)):
        med = float(np.median(np.sum(_residuals(m, fixed, moving) ** 2, axis=1)))
        best = med if best is None else min(best, med)
    if best is None:
        raise ValueError(f"no {k} landmarks in general position were found for "
                         f"{_article(model)} {model} fit; "
                         "spread the landmarks out")
    sigma = (1.0 + 5.0 / max(n - k, 1)) * math.sqrt(best / _CHI2_3_MEDIAN)
    extent = float(np.ptp(fixed, axis=0).max())
    return max(math.sqrt(_CHI2_3_99) * sigma, 1e-9 * extent)


def _refine_consensus(fixed: np.ndarray, moving: np.ndarray, model: str, threshold: float,
                      inliers: np.ndarray) -> np.ndarray | None:
    """Refit on the inliers and take the pairs within ``threshold`` until stable; None when
    the set cannot carry a proper fit (too few, degenerate, or mirroring)."""
    k = MODELS[model]
    for _ in range(20):
        if inliers.sum() < k or degeneracy(fixed[inliers], model) or \
                degeneracy(moving[inliers], model):
            return None
        try:
            m, _ = _closed_form(fixed[inliers], moving[inliers], model)
        except ValueError:  # the set's own fit mirrors or flattens space
            return None
        new = np.linalg.norm(_residuals(m, fixed, moving), axis=1) <= threshold
        if new.sum() < k or np.array_equal(new, inliers):
            return inliers
        inliers = new
    return inliers


def _ransac(fixed: np.ndarray, moving: np.ndarray, model: str, threshold: float,
            max_trials: int, seed: int) -> tuple[np.ndarray, float]:
    """RANSAC inlier mask for an inlier distance ``threshold`` (fixed frame).

    Candidates come from minimal samples (all of them when there are at most
    ``max_trials``); the one with the most inliers wins (ties: smaller inlier sum
    of squares) and its inliers are refined by refitting on them until stable. A
    consensus set whose own fit would mirror or flatten space (a nearly coplanar
    set under an affine model) is passed over for the next best.
    """
    n, k = len(fixed), MODELS[model]
    rng = np.random.default_rng(seed)
    candidates: dict[bytes, tuple[tuple[float, float], np.ndarray]] = {}
    for _, m in _subset_fits(fixed, moving, model, _samples(n, k, max_trials, rng)):
        r = np.linalg.norm(_residuals(m, fixed, moving), axis=1)
        inl = r <= threshold
        score = (-float(inl.sum()), float((r[inl] ** 2).sum()))
        key = inl.tobytes()
        if key not in candidates or score < candidates[key][0]:
            candidates[key] = (score, inl)
    if not candidates:
        raise ValueError(
            f"no {k} landmarks in general position were found for {_article(model)} "
            f"{model} fit; "
            "spread the landmarks out"
        )
    for _, start in sorted(candidates.values(), key=lambda c: c[0]):
        inliers = _refine_consensus(fixed, moving, model, threshold, start)
        if inliers is not None:
            break
    else:
        inliers = np.zeros(n, bool)
    if inliers.sum() < k:
        raise ValueError(
            f"RANSAC kept only {int(inliers.sum())} inlier landmark(s) (threshold "
            f"{threshold:.3g}); {_article(model)} {model} fit needs {k}: check the pairing or "
            "raise the threshold"
        )
    return inliers, float(threshold)


# =========================================================================== public


def fit_landmarks(
    fixed_points: Any,
    moving_points: Any,
    model: str = "rigid",
    robust: bool = False,
    *,
    active: Any = None,
    threshold: float | None = None,
    max_trials: int = 2000,
    seed: int = 0,
    unit: str = "pixel",
    leave_one_out: bool = True,
    names: Sequence[str] | None = None,
) -> Transform:
    """Fit the transform mapping moving landmarks onto fixed landmarks.

    Parameters
    ----------
    fixed_points, moving_points : (N, 3) array_like
        Paired landmarks as (z, y, x) physical world coordinates, both in ``unit``
        (row i of one pairs with row i of the other).
    model : {"rigid", "similarity", "affine"}
        Rigid (rotation + translation), similarity (+ one isotropic scale) or
        affine (12 parameters). Needs at least 3, 3 and 4 pairs not on one line
        (rigid, similarity) or not in one plane (affine).
    robust : bool
        Reject outlier pairs (needs at least ``minimum + 2`` pairs); the final
        transform is the least-squares fit on the inliers. With a ``threshold``:
        RANSAC over minimal samples. Without one: a deletion test -- the pair
        worst predicted by a fit on the others is dropped while its error exceeds
        the 99 % chi-square bound of the noise level the other pairs' prediction
        errors imply (beyond 60 pairs: RANSAC with a least-median-of-squares
        threshold).
    active : (N,) bool array_like, optional
        Pairs to use (BigWarp's *active* column); the others still get residuals.
    threshold : float, optional
        RANSAC inlier distance in ``unit`` (fixed frame), e.g. three times the
        expected click precision; default: the deletion test estimates it.
    max_trials : int
        RANSAC minimal samples to try (all combinations when fewer exist).
    seed : int
        Seed of the RANSAC sampling.
    unit : str
        Length unit of the coordinates (recorded on the transform).
    leave_one_out : bool
        Compute the leave-one-out TRE estimate (one refit per used landmark).
    names : sequence of str, optional
        The pairs' names (BigWarp's first column), for the warnings; default: their
        1-based row numbers.

    Returns
    -------
    Transform
        ``matrix`` maps moving world -> fixed world; ``residuals``,
        ``residual_vectors`` (all N pairs), ``used`` (the pairs fitted),
        ``rms_fre`` and ``loo_tre`` describe the fit.

    Raises
    ------
    ValueError
        Unknown model, shapes that do not match, unpaired counts, NaN
        coordinates, fewer pairs than the model needs, coincident / collinear /
        coplanar points, a fit that would mirror space.
    """
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; use one of {', '.join(MODELS)}")
    fixed = np.asarray(fixed_points, dtype=float)
    moving = np.asarray(moving_points, dtype=float)
    if fixed.ndim == 2 and moving.ndim == 2 and len(fixed) != len(moving):
        raise ValueError(
            f"unpaired landmarks: {len(fixed)} fixed but {len(moving)} moving points; "
            "every fixed landmark needs its moving partner (same order)"
        )
    fixed = _points(fixed, "fixed_points")
    moving = _points(moving, "moving_points")
    n = len(fixed)
    act = np.ones(n, bool) if active is None else np.asarray(active, dtype=bool).reshape(-1)
    if act.shape != (n,):
        raise ValueError(f"active has {act.size} entries for {n} landmark pairs")
    k = MODELS[model]
    n_act = int(act.sum())
    if n_act < k:
        raise ValueError(
            f"{_article(model)} {model} fit needs at least {k} landmark pairs, got {n_act}"
            + (f" active of {n}" if n_act != n else "")
            + "; add more landmarks"
        )
    if robust and n_act < k + 2:
        raise ValueError(
            f"robust={robust} needs at least {k + 2} pairs for {_article(model)} {model} fit to "
            "tell outliers "
            f"from inliers, got {n_act}; add landmarks or fit without robust"
        )
    if threshold is not None and not (np.isfinite(threshold) and threshold > 0):
        raise SettingError(f"$threshold must be a positive distance, got {threshold:g}",
                           threshold="threshold")
    idx = np.flatnonzero(act)
    _check_pair(fixed[idx], moving[idx], model)

    used = act.copy()
    used_threshold = None
    if robust:
        deletion = None if threshold is not None else _deletion_test(fixed[idx], moving[idx],
                                                                    model)
        if deletion is not None:
            inl, used_threshold = deletion
        elif threshold is None:
            threshold = _lmeds_threshold(fixed[idx], moving[idx], model, max_trials, seed)
            inl, used_threshold = _ransac(fixed[idx], moving[idx], model, threshold,
                                          max_trials, seed)
        else:
            inl, used_threshold = _ransac(fixed[idx], moving[idx], model, float(threshold),
                                          max_trials, seed)
        used[idx[~inl]] = False
        idx = idx[inl]
        _check_pair(fixed[idx], moving[idx], model)
    matrix, mirrored = _closed_form(fixed[idx], moving[idx], model)
    vec = _residuals(matrix, fixed, moving)
    dist = np.linalg.norm(vec, axis=1)
    rms = float(np.sqrt(np.mean(dist[idx] ** 2)))

    loo = np.full(n, np.nan)
    if leave_one_out and len(idx) > k:
        for j in idx:  # no value where the other pairs are degenerate
            for _, m_j in _subset_fits(fixed, moving, model, [idx[idx != j]]):
                loo[j] = float(np.linalg.norm(_residuals(m_j, fixed[j:j + 1], moving[j:j + 1])))

    warnings = []
    if mirrored:
        warnings.append(
            "the landmarks fit a mirrored volume much better than any rotation: check the axis "
            "order and whether one volume is flipped (a fit never mirrors)"
        )
    if robust and (~used & act).any():
        rows = np.flatnonzero(~used & act)
        label = [str(names[i]) for i in rows] if names is not None else [
            f"row {i + 1}" for i in rows]
        warnings.append(f"the robust fit rejected landmark(s) {', '.join(label)} as outliers")
    meta = {"source": "landmarks", "n_pairs": n, "n_used": int(len(idx)), "robust": bool(robust)}
    if used_threshold is not None:
        meta["ransac_threshold"] = used_threshold
    return Transform(matrix, model, unit, residuals=dist, residual_vectors=vec, used=used,
                     rms_fre=rms, loo_tre=loo, metadata=meta, warnings=warnings)


def _article(word: str) -> str:
    """'a' or 'an' before ``word`` (the fit models: an affine, a rigid, a similarity)."""
    return "an" if word[:1].lower() in "aeiou" else "a"
