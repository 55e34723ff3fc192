"""The sample a matrix label defines (phase | matrix): labels it leaves out are said."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from napari_corrtomo.core.quantify import QuantifySettings, quantify

#: FIB-SEM electrode phases: 1 pore, 2 carbon-binder, 3 active material
NAMES = ((1, "pore"), (2, "carbon-binder"), (3, "active material"))


@pytest.fixture
def electrode() -> np.ndarray:
    """Slabs along x: pore 40 %, carbon-binder 10 %, active material 50 % of the volume."""
    lab = np.empty((10, 10, 20), np.uint8)
    lab[..., :8], lab[..., 8:10], lab[..., 10:] = 1, 2, 3
    return lab


def _porosity(result) -> float:
    return result.summary().set_index("quantity")["value"]["porosity (phase / sample)"]


@pytest.mark.parametrize("lazy", [False, True])
def test_a_label_the_matrix_leaves_out_is_noted_with_its_share(electrode, lazy):
    """Matrix 2 on a three-phase volume: porosity 0.8 (phase / (phase + matrix)) came with
    a note blaming the phase label; now a note names label 3, its share and what to set,
    and the porosity note names the left-out label as the cause, with 40 % beside it."""
    labels = da.from_array(electrode, chunks=(5, 10, 10)) if lazy else electrode
    result = quantify(labels, (1.0, 1.0, 1.0), "um", measures=["porosity"],
                      settings=QuantifySettings(phase=1, matrix=2, phase_names=NAMES))
    assert _porosity(result) == pytest.approx(0.8)  # the semantics are kept
    left = [n for n in result.notes if n.startswith("label 3")]
    assert len(left) == 1, result.notes
    assert left[0].startswith("label 3 (active material, 50% of the volume) is neither the "
                              "phase, the matrix nor outside: it is left out of the sample")
    assert "set no matrix label" in left[0] and "merge it into label 2" in left[0]
    assert ("the porosity 80% is of phase + matrix only; with the labels left out of the "
            "sample (see their note) it would be 40%") in result.notes
    assert not any("is it the pores?" in n for n in result.notes)


def test_outside_labels_and_no_matrix_leave_nothing_out(electrode):
    """Label 3 given as outside, or no matrix label: no left-out note; without a matrix
    the sample is every label not outside (porosity 0.4)."""
    as_outside = quantify(electrode, 1.0, "um", measures=["porosity"],
                          settings=QuantifySettings(phase=1, matrix=2, outside=(3,)))
    assert _porosity(as_outside) == pytest.approx(0.8)
    no_matrix = quantify(electrode, 1.0, "um", measures=["porosity"],
                         settings=QuantifySettings(phase=1))
    assert _porosity(no_matrix) == pytest.approx(0.4)
    for result in (as_outside, no_matrix):
        assert not any("left out" in n for n in result.notes), result.notes
    # the phase itself filling the sample is still questioned
    assert any("is it the pores?" in n for n in as_outside.notes)


def test_label_zero_is_not_said_to_be_left_out(electrode):
    """Label 0 (unlabelled) is not named: several left-out labels are, together."""
    electrode[0] = 0
    electrode[1, :, :5] = 4
    result = quantify(electrode, 1.0, "um", measures=["porosity"],
                      settings=QuantifySettings(phase=1, matrix=2))
    left = [n for n in result.notes if "neither the phase" in n]
    assert len(left) == 1 and left[0].startswith(
        "label 3 (45% of the volume), label 4 (2% of the volume) are neither"), left
