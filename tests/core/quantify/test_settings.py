"""QuantifySettings checks every parameter when it is made, before any measure runs."""

from __future__ import annotations

import numpy as np
import pytest

from napari_corrtomo.core._checks import SettingError
from napari_corrtomo.core.quantify import LENGTHS, QuantifySettings, quantify


@pytest.mark.parametrize("name, value, words", [
    *[(name, bad, "must be a positive length") for name in LENGTHS
      for bad in (0.0, -1.0, float("nan"))],
    ("min_volume", -1.0, "must be >= 0"),
    ("smooth", float("inf"), "must be >= 0 voxels"),
    ("envelope", "cube", "must be 'sphere' or 'rolling ball'"),
    ("envelope_radius_fraction", 0.0, "must be positive"),
    ("transport_axes", (), "must be volume axes"),
    ("transport_axes", (0, 3), "got [0, 3]"),
    ("depths", (2.0, -1.0), "got [2.0, -1.0]"),
    ("depths", (), "must be positive lengths"),
])
def test_a_bad_parameter_is_refused_naming_it(name, value, words):
    with pytest.raises(SettingError) as err:
        QuantifySettings(phase=1, matrix=2, **{name: value})
    assert err.value.api_words == {name: name}
    assert str(err.value).startswith(f"{name} ") and words in str(err.value)
    assert err.value.worded({name: "--it"}).startswith("--it ")


def test_good_parameters_pass_and_measure():
    s = QuantifySettings(phase=1, matrix=2, min_volume=0.0, smooth=0.0, bin_width=0.5,
                         transport_axes=(2,), depths=(4.0,), envelope="rolling ball")
    lab = np.full((12, 12, 12), 2, np.uint8)
    lab[:, :, 4:8] = 1
    res = quantify(lab, 1.0, "um", ["porosity"], s)
    table = res.summary().set_index("quantity")["value"]
    assert table["porosity (phase / sample)"] == (
        pytest.approx(1 / 3))


def test_exclude_border_without_within_envelopes_is_refused_naming_both():
    """``exclude_border`` alone was accepted and ignored without a word."""
    with pytest.raises(SettingError) as err:
        QuantifySettings(phase=1, matrix=2, exclude_border=True)
    assert str(err.value) == (
        "exclude_border works only with within_envelopes (it leaves out, of the particles "
        "measured inside their envelopes, those the border cuts); set both, or neither")
    assert err.value.api_words == {"exclude_border": "exclude_border",
                                   "within_envelopes": "within_envelopes"}
    assert QuantifySettings(phase=1, matrix=2, exclude_border=True, within_envelopes=True)
