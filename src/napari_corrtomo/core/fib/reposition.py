"""Slice repositioning: put every FIB slice at its measured depth on a fine z grid.

Conventions
-----------
``thicknesses[k]`` is the distance (in the units of ``grid_spacing``) from the face
imaged in slice ``k`` to the face imaged in slice ``k + 1``; slice 0 is the
reference at z = 0, so slice ``k`` sits at ``z_k = sum(thicknesses[:k])``. The last
entry (material milled after the last image) positions nothing; it may be NaN
(e.g. when thicknesses come from ruler marks, which cannot measure it). The
repositioned volume ends at the last imaged face.

Collisions (Sardhara et al., 2.2.2): positions are rounded to the grid; slices that
land on the same grid plane are distributed to the nearest free planes. We keep
the slice order (a later slice is never put above an earlier one) and choose, among
all order-preserving placements, the one with the least total displacement from
the exact depths (ties: the least squared displacement) -- for an isolated
collision this is exactly "move one slice to the nearest free plane".
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._checks import check_length


class Repositioned(NamedTuple):
    """``volume`` (n_planes, y, x) on the fine grid; ``known`` (n_planes,) True on planes
    holding a measured slice (the others are gaps, filled with 0)."""

    volume: np.ndarray
    known: np.ndarray


def check_thicknesses(thicknesses, n_slices: int) -> np.ndarray:
    """Validate slice thicknesses for ``n_slices`` slices; return them as float64.

    Raises ``ValueError`` when the count does not match, or when any thickness but
    the last is zero, negative or not finite (the last one may be NaN).
    """
    t = np.asarray(thicknesses, dtype=float).ravel()
    if t.size != n_slices:
        hint = (" (append the last slice's thickness, or NaN: it is not used)"
                if t.size == n_slices - 1 else "")
        raise ValueError(
            f"got {t.size} slice thicknesses for a stack of {n_slices} slices; "
            f"give exactly one per slice{hint}"
        )
    body = t[:-1]
    bad = np.flatnonzero(~np.isfinite(body) | (body <= 0))
    if bad.size:
        shown = ", ".join(f"{i} ({body[i]:g})" for i in bad[:10])
        more = f" and {bad.size - 10} more" if bad.size > 10 else ""
        raise ValueError(
            f"slice thicknesses must be positive and finite; slices {shown}{more} are not. "
            "Fix or remove those entries (a constant fallback must be asked for explicitly)"
        )
    if np.isfinite(t[-1]) and t[-1] <= 0:
        raise ValueError(f"the last slice thickness is {t[-1]:g}; it must be positive or NaN")
    return t


def check_stack(stack, thicknesses) -> None:
    """Validate a (slices, y, x) stack (NumPy or lazy) and its slice thicknesses."""
    if stack.ndim != 3:
        raise ValueError(f"stack must be (slices, y, x), got shape {tuple(stack.shape)}")
    if stack.shape[0] < 2:
        raise ValueError("stack has fewer than 2 slices: nothing to reposition")
    check_thicknesses(thicknesses, stack.shape[0])


def slice_positions(
    thicknesses,
    grid_spacing: float,
    output_spacing: float | None = None,
) -> np.ndarray:
    """Plane index of every slice on the repositioning grid, collisions resolved.

    Parameters
    ----------
    thicknesses
        (n_slices,) distances face k -> face k+1 (last entry unused, may be NaN).
    grid_spacing
        Repositioning grid (same unit as ``thicknesses``): depths are rounded to
        multiples of it (2.5 nm in the seed; 10 nm for "standard" repositioning).
    output_spacing
        Spacing of the returned plane indices; default ``grid_spacing``. Must divide
        ``grid_spacing`` (e.g. reposition on 10 nm, output on 2.5 nm).

    Returns
    -------
    (n_slices,) strictly increasing int64 plane indices, the first one 0.
    """
    grid = check_length(grid_spacing, "grid_spacing")
    out = grid if output_spacing is None else check_length(output_spacing, "output_spacing")
    ratio = grid / out
    if abs(ratio - round(ratio)) > 1e-6 or round(ratio) < 1:
        raise ValueError(
            f"output_spacing {out:g} must divide grid_spacing {grid:g} a whole number of times"
        )
    t = np.asarray(thicknesses, dtype=float).ravel()
    n = t.size
    check_thicknesses(t, n)
    exact = np.concatenate([[0.0], np.cumsum(t[:-1])]) / grid
    positions = _place_in_order(exact)
    return positions * int(round(ratio))


def _place_in_order(exact: np.ndarray) -> np.ndarray:
    """Strictly increasing integers p >= 0 minimising sum|p - exact| (then sum (p-exact)^2).

    Dynamic programme over candidate planes: cost_k(p) = c(p, exact_k) +
    min_{q < p} cost_{k-1}(q). Without collisions the answer is ``round(exact)``.
    """
    n = exact.size
    rounded = np.round(exact).astype(np.int64)
    if np.all(rounded >= 0) and np.all(np.diff(rounded) > 0):
        return rounded  # nothing collides
    hi = int(np.ceil(exact.max())) + n + 1
    grid = np.arange(hi + 1, dtype=float)
    index = np.arange(hi + 1, dtype=np.int64)
    back = np.zeros((n, hi + 1), dtype=np.int64)
    dev = np.abs(grid - exact[0])
    cost = dev + 1e-6 * dev**2
    for k in range(1, n):
        # best previous cost over q < p, and where it is (first minimum)
        run_min = np.minimum.accumulate(cost)
        is_new = cost < np.concatenate([[np.inf], run_min[:-1]])
        run_arg = np.maximum.accumulate(np.where(is_new, index, 0))
        best_prev = np.concatenate([[np.inf], run_min[:-1]])
        back[k] = np.concatenate([[0], run_arg[:-1]])
        dev = np.abs(grid - exact[k])
        cost = best_prev + dev + 1e-6 * dev**2
    p = np.empty(n, dtype=np.int64)
    p[-1] = int(np.argmin(cost))
    for k in range(n - 1, 0, -1):
        p[k - 1] = back[k, p[k]]
    return p


def reposition(
    stack: np.ndarray,
    thicknesses,
    grid_spacing: float,
    output_spacing: float | None = None,
    fill: float | int = 0,
) -> Repositioned:
    """Place every slice of a FIB stack at its true depth on a fine z grid.

    Parameters
    ----------
    stack
        (n_slices, y, x) images or segmentations in milling order (slice 0 first).
    thicknesses
        (n_slices,) measured thicknesses, same unit as ``grid_spacing``; see the
        module notes (last entry unused, may be NaN).
    grid_spacing
        Repositioning grid spacing (e.g. 2.5 nm).
    output_spacing
        z spacing of the returned volume; default ``grid_spacing``. Repositioning on
        10 nm and returning 2.5 nm planes is the seed's "standard" repositioning.
    fill
        Value of the gap planes.

    Returns
    -------
    Repositioned(volume, known): ``volume`` (n_planes, y, x) with the dtype of
    ``stack``; ``known`` (n_planes,) bool, True where a slice was placed. The z
    voxel size of ``volume`` is ``output_spacing`` (or ``grid_spacing``).
    """
    stack = np.asarray(stack)
    check_stack(stack, thicknesses)
    planes = slice_positions(thicknesses, grid_spacing, output_spacing)
    volume = np.full((int(planes[-1]) + 1,) + stack.shape[1:], fill, dtype=stack.dtype)
    volume[planes] = stack
    known = np.zeros(volume.shape[0], dtype=bool)
    known[planes] = True
    return Repositioned(volume, known)
