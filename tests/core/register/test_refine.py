"""Intensity refinement (SimpleITK, Mattes MI) on the correlative sample against its truth."""

import numpy as np
import pytest

from napari_corrtomo.core import register as reg
from napari_corrtomo.core.progress import Cancelled

pytest.importorskip("SimpleITK")


@pytest.fixture(scope="module")
def case(correlative_sample):
    s, t = correlative_sample, correlative_sample.truth
    fov = reg.fov_box(s.nanoct.data.shape, s.nanoct.scale)
    grid = np.stack(np.meshgrid(*[np.linspace(a, b, 5) for a, b in zip(*fov, strict=True)],
                                indexing="ij"), -1).reshape(-1, 3)
    rng = np.random.default_rng(42)
    idx = rng.choice(len(t.landmarks_microct), 6, replace=False)
    fixed = t.landmarks_microct[idx] + rng.normal(0, 1.0, (6, 3))     # 1 microCT voxel
    moving = t.landmarks_nanoct[idx] + rng.normal(0, 0.065, (6, 3))   # 1 nanoCT voxel
    fit = reg.fit_landmarks(fixed, moving, "similarity", unit="um")
    return s, t, grid, fit


def test_refinement_brings_tre_below_half_a_coarse_voxel(case):
    s, t, grid, fit = case
    before = reg.compare(fit, t.nanoct_to_microct, grid)
    assert before["tre_rms"] > 0.5  # the landmark fit alone is not good enough
    calls = []
    refined = reg.refine(s.microct.data, s.nanoct.data, fit, fixed_spacing=s.microct.scale,
                         moving_spacing=s.nanoct.scale, progress=lambda d, n: calls.append((d, n)))
    after = reg.compare(refined, t.nanoct_to_microct, grid)
    assert after["tre_rms"] < 0.5 and after["tre_max"] < 0.5, after
    assert after["rotation_deg"] < before["rotation_deg"]
    assert refined.model == "similarity" and refined.unit == "um"
    info = refined.metadata["refine"]
    assert info["sampled_frame"] == "moving" and info["iterations"] > 0
    assert info["max_shift"] == pytest.approx(
        np.abs(np.linalg.norm(fit.apply(reg.box_corners(reg.fov_box(
            s.nanoct.data.shape, s.nanoct.scale))) - refined.apply(reg.box_corners(reg.fov_box(
                s.nanoct.data.shape, s.nanoct.scale))), axis=1)).max(), rel=0.2)
    assert calls and calls[-1][0] == calls[-1][1] and all(d <= n for d, n in calls)


def test_refinement_works_with_the_roles_swapped_and_lazy_input(case):
    """nanoCT as fixed, microCT (as a dask array) as moving: same answer, inverted."""
    import dask.array as da

    s, t, grid, fit = case
    refined = reg.refine(s.nanoct.data, da.from_array(s.microct.data, chunks=64), fit.inverse(),
                         fixed_spacing=s.nanoct.scale, moving_spacing=s.microct.scale)
    assert refined.metadata["refine"]["sampled_frame"] == "fixed"
    after = reg.compare(refined.inverse(), t.nanoct_to_microct, grid)
    assert after["tre_rms"] < 0.5, after


def test_refinement_cancel_and_bad_input(case):
    s, t, grid, fit = case
    kw = dict(fixed_spacing=s.microct.scale, moving_spacing=s.nanoct.scale)

    def cancel(done, total):
        if done >= 3:
            raise Cancelled()

    with pytest.raises(Cancelled):
        reg.refine(s.microct.data, s.nanoct.data, fit, progress=cancel, **kw)
    far = fit.matrix.copy()
    far[:3, 3] += 1000.0
    with pytest.raises(ValueError, match="do not overlap.*fit landmarks"):
        reg.refine(s.microct.data, s.nanoct.data, far, **kw)
    # fixed and moving given the other way round with the same transform: said so
    with pytest.raises(ValueError, match="do not overlap.*under its inverse.*swapped"):
        reg.refine(s.nanoct.data, s.microct.data, fit, fixed_spacing=s.nanoct.scale,
                   moving_spacing=s.microct.scale)
    with pytest.raises(ValueError, match="3D"):
        reg.refine(s.microct.data[0], s.nanoct.data, fit, **kw)
    with pytest.raises(ValueError, match="unknown metric"):
        reg.refine(s.microct.data, s.nanoct.data, fit, "cross_entropy", **kw)
    with pytest.raises(ValueError, match="unknown model"):
        reg.refine(s.microct.data, s.nanoct.data, fit, model="bspline", **kw)
    with pytest.raises(ValueError, match="spacing"):
        reg.refine(s.microct.data, s.nanoct.data, fit, fixed_spacing=(1, 1, -1),
                   moving_spacing=s.nanoct.scale)
    with pytest.raises(ValueError, match="too small"):
        reg.refine(s.microct.data, s.nanoct.data[:20, :20, :20], fit, **kw)
    nan = s.nanoct.data.copy()
    nan[100, 100, 100] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        reg.refine(s.microct.data, nan, fit, **kw)
