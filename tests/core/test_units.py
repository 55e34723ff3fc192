import numpy as np
import pytest

from napari_corrtomo.core.units import common_unit, convert, normalize_unit


@pytest.mark.parametrize("raw,canon", [("micron", "um"), ("µm", "um"), ("nm", "nm"),
                                       ("Å", "angstrom"), ("", "pixel"), ("MM", "mm")])
def test_normalize(raw, canon):
    assert normalize_unit(raw) == canon


def test_convert():
    assert convert(1.0, "um", "nm") == pytest.approx(1000.0)
    np.testing.assert_allclose(convert(np.array([10.0, 5.0]), "angstrom", "nm"), [1.0, 0.5])
    with pytest.raises(ValueError, match="voxel size is unknown"):
        convert(1.0, "pixel", "nm")
    with pytest.raises(ValueError, match="unknown length unit"):
        normalize_unit("furlong")


@pytest.mark.parametrize("value, a, b, exact", [
    (1.0, "um", "nm", 1000.0), (0.7, "um", "nm", 700.0), (1e-6, "m", "nm", 1000.0),
    (300.0, "nm", "um", 0.3), (1.0, "angstrom", "nm", 0.1), (2.5, "nm", "angstrom", 25.0)])
def test_convert_gives_the_decimal_value_without_float_noise(value, a, b, exact):
    """1 um is 1000 nm exactly (1e-6 / 1e-9 made it 999.9999999999999 in file metadata)."""
    assert convert(value, a, b) == exact
    assert convert(np.array([value]), a, b)[0] == exact


def test_common_unit():
    assert common_unit(["um", "micron", "µm"]) == "um"
    with pytest.raises(ValueError, match="different units"):
        common_unit(["um", "nm"])


def test_slip_ratio_names_a_size_a_unit_slip_off_and_nothing_else():
    from napari_corrtomo.core.units import slip_ratio

    assert slip_ratio(0.52, "um", 0.5, "um") is None  # a calibration a few % off
    assert slip_ratio(500, "nm", 0.5, "um") is None  # the same size in another unit
    np.testing.assert_allclose(slip_ratio(500, "um", 0.5, "um"), [1000.0])
    np.testing.assert_allclose(slip_ratio(0.5, "nm", 0.5, "um"), [0.001])
    # per axis: one axis off is enough, and the ratio of every axis is given
    np.testing.assert_allclose(slip_ratio([1, 1000], "um", [1, 1], "um"), [1, 1000])
    for args in ((1, "pixel", 1000, "um"), (0, "um", 1, "um"), ([1, 2], "um", [1, 1, 1], "um")):
        assert slip_ratio(*args) is None  # nothing to compare
