"""The one set of input checks (core._checks) and the physical frame (core.frame)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_corrtomo.core._checks import (
    SettingError,
    as_mask,
    check_finite,
    check_labels,
    check_length,
    check_same_shape,
    check_spacing,
)
from napari_corrtomo.core.frame import Frame, frame_of


def test_check_spacing():
    assert check_spacing(2, 3) == (2.0, 2.0, 2.0)
    assert check_spacing((1, 2, 3), 3) == (1.0, 2.0, 3.0)
    with pytest.raises(ValueError, match=r"spatial axes; give one voxel size per axis in \(z, y, x\)"):
        check_spacing((1, 2), 3)
    with pytest.raises(ValueError, match="positive"):
        check_spacing((1, 0, 1), 3)
    with pytest.raises(ValueError, match="positive"):
        check_spacing(np.nan, 2)
    with pytest.raises(ValueError, match="numbers"):
        check_spacing("abc", 2)


def test_check_length():
    assert check_length("2.5", "grid") == 2.5
    for bad in (0, -1, np.inf, "x", None):
        with pytest.raises(SettingError, match="grid") as err:
            check_length(bad, "grid")
        assert err.value.worded({"grid": "'Grid'"}).startswith("'Grid' must be")
    assert check_length(0, "distance", allow_zero=True) == 0.0
    with pytest.raises(SettingError, match="distance must be zero or positive and finite"):
        check_length(-1e-9, "distance", allow_zero=True)


def test_as_mask_accepts_binary_only():
    m = as_mask(np.array([[0, 1], [1, 0]], np.uint8))
    assert m.dtype == bool and m.sum() == 2
    with pytest.raises(ValueError, match="labels == 3"):
        as_mask(np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="no voxel of the phase"):
        as_mask(np.zeros(4, bool))
    with pytest.raises(ValueError, match="2D or 3D"):
        as_mask(np.ones(4, bool), ndim=(2, 3))
    with pytest.raises(ValueError, match="empty"):
        as_mask(np.zeros((0, 3), bool))


def test_labels_shapes_finite():
    assert check_labels(np.array([0.0, 2.0])).dtype == np.int64
    with pytest.raises(ValueError, match="negative"):
        check_labels(np.array([-1, 1]))
    with pytest.raises(ValueError, match="integer labels"):
        check_labels(np.array([0.5]))
    with pytest.raises(ValueError, match="same voxels"):
        check_same_shape(np.zeros(3), np.zeros(4), "a", "b")
    with pytest.raises(ValueError, match="1 NaN/inf"):
        check_finite(np.array([0.0, np.inf]))


def test_frame_of_napari_scale_and_units():
    f = frame_of((1.0, 0.5, 0.25, 0.25), ("", "µm", "micron", "um"), ndim=3,
                 translate=(0, 10, 20, 30))
    assert f == Frame((0.5, 0.25, 0.25), "um", (10.0, 20.0, 30.0))
    assert f.physical and f.ndim == 3
    nm = f.to("nm")
    assert nm.spacing == pytest.approx((500.0, 250.0, 250.0)) and nm.unit == "nm"
    assert nm.origin == pytest.approx((1e4, 2e4, 3e4))
    with pytest.raises(ValueError, match="different units"):
        frame_of((1, 1, 1), ("um", "nm", "nm"))
    unknown = frame_of((1, 1), "pixel")
    assert unknown.offset == (0.0, 0.0)
    with pytest.raises(ValueError, match="stack has no physical voxel size; set"):
        unknown.require_physical("the stack")
    with pytest.raises(ValueError, match="3 spatial axes"):
        frame_of((1, 1), "um", ndim=3)
