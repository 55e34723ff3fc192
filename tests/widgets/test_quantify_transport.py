"""Transport measures in the Quantify dock widget, in a real viewer."""

from __future__ import annotations

import numpy as np
import pytest

from napari_corrtomo.widgets.quantify import QuantifyWidget

TRANSPORT = ("tortuosity", "geodesic_tortuosity", "constrictivity")


def _channels():
    """Label 1: a straight channel along z and a wall spanning z and x; label 2 elsewhere."""
    labels = np.full((16, 12, 12), 2, np.uint8)
    labels[:, 3:6, 3:6] = 1
    labels[:, 8:10, :] = 1
    return labels


def _widget(make_napari_viewer, qtbot, labels, spacing=(0.5, 0.25, 0.25)):
    viewer = make_napari_viewer()
    viewer.add_labels(labels, name="seg", scale=spacing, units=("um",) * 3)
    widget = QuantifyWidget(viewer)
    qtbot.addWidget(widget)
    widget.labels_select.set_layer(viewer.layers["seg"])
    widget.labels_form["phase"].value = 1
    for key, cb in widget.checks.items():
        cb.setChecked(key in TRANSPORT)
    return viewer, widget


def test_transport_measures_in_the_widget(make_napari_viewer, qtbot):
    labels = _channels()
    viewer, widget = _widget(make_napari_viewer, qtbot, labels)
    assert set(TRANSPORT) <= set(widget.checks)
    widget.params["transport_axes"].value = "z"
    widget.params["depths"].value = "1, 2"
    n_before = len(viewer.layers)
    widget.run()
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=60_000)
    assert widget.runner.last_error is None, widget.runner.last_error
    tau = widget.result.tables["tortuosity"]
    assert tau["axis"].tolist() == [0]
    assert tau["tortuosity_factor"].item() == pytest.approx(1.0, abs=1e-4)
    geo = widget.result.tables["geodesic_tortuosity"]
    assert geo["depth_um"].tolist() == [1.0, 2.0]
    np.testing.assert_allclose(geo["mean"], 1.0)
    # the concentration field is a new image layer in the segmentation's frame
    assert len(viewer.layers) == n_before + 1
    field = viewer.layers["seg concentration z"]
    np.testing.assert_allclose(field.scale, (0.5, 0.25, 0.25))
    np.testing.assert_allclose(field.data[:, 4, 4], 1.0 - (np.arange(16) + 0.5) / 16, atol=1e-4)
    assert viewer.layers["seg"].data is labels  # the input is untouched
    # plots and tables show the transport results
    plots = [widget.plot_select.itemText(i) for i in range(widget.plot_select.count())]
    assert {"geodesic tortuosity vs depth z", "intrusion curve"} <= set(plots)
    for i in range(widget.plot_select.count()):
        widget.plot_select.setCurrentIndex(i)
        assert widget.plot.figure.axes
    tables = [widget.table_select.itemText(i) for i in range(widget.table_select.count())]
    assert {"tortuosity", "geodesic_tortuosity", "constrictivity", "intrusion"} <= set(tables)


def test_no_percolating_path_is_reported_not_an_error(make_napari_viewer, qtbot):
    labels = _channels()
    viewer, widget = _widget(make_napari_viewer, qtbot, labels)
    widget.checks["geodesic_tortuosity"].setChecked(False)
    widget.checks["constrictivity"].setChecked(False)
    widget.params["transport_axes"].value = "y"  # nothing spans y
    widget.run()
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=60_000)
    assert widget.runner.last_error is None, widget.runner.last_error
    assert widget.result.tables["tortuosity"]["tortuosity_factor"].item() == np.inf
    assert "tortuosity factor y = inf" in widget.notes.text()


def test_bad_depths_notify_and_add_nothing(make_napari_viewer, qtbot, errors):
    viewer, widget = _widget(make_napari_viewer, qtbot, _channels())
    n_before = len(viewer.layers)
    widget.params["depths"].value = "1, deep"
    widget.run()
    assert errors and "Geodesic depths: numbers separated by commas" in errors[0]
    assert not widget.runner.busy and len(viewer.layers) == n_before
    widget.params["depths"].value = "100"  # beyond the sample: the core's ValueError, raised in the worker
    widget.run()
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=60_000)
    assert "do not fit" in str(widget.runner.last_error)
    assert len(viewer.layers) == n_before
