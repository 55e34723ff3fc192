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


def test_common_unit():
    assert common_unit(["um", "micron", "µm"]) == "um"
    with pytest.raises(ValueError, match="different units"):
        common_unit(["um", "nm"])
