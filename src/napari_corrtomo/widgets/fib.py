"""Dock widget "FIB slices": slice thickness, repositioning and interpolation of FIB-SEM stacks.

Thin: turns the form into :class:`~napari_corrtomo.core.fib.FibSettings` and calls
the FIB pipeline (``core.fib.slice_thickness`` / ``run_fib`` / ``fib_quality``) in
a worker; shows the thickness histogram with its gamma fit and the detected marks
as a Points layer, and adds the isotropic volume as a new layer placed on its
source (scale, units, translate). With a ground truth layer it shows MP / MGP /
MDS; without, the anisotropy errors. Core errors about a setting name its control.
"""

from __future__ import annotations

from typing import Any

import napari
import numpy as np
import pandas as pd
from qtpy.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)
from scipy import stats

from ..core import fib
from ..core._checks import in_words
from ..core.units import convert
from ._dock import DockForm
from ._form import Field, SettingsForm
from ._layers import CREATED_BY, LayerSelect, add_result, layer_frame, phase_names
from ._plot import PlotCanvas
from ._runner import TaskRunner
from ._table import TableView

NAME = "fib"
#: the thickness sources as the widget names them -> core.fib.SOURCES
SOURCES = {"ruler marks": "ruler", "CSV file": "csv", "constant": "constant"}
#: the form's defaults where they differ from FibSettings': the ruler first, a typical
#: trench angle, 10 nm slices
DEFAULTS = fib.FibSettings(source="ruler", angle_deg=25.0, constant_nm=10.0)
#: FibSettings fields (and message phrases) in the widget's words
WORDS = {
    "band_rows": "'Band rows'",
    "cut_band": "untick 'cut the ruler band from the result'",
    "angle_deg": "'Inclined angle'",
    "layout": "'Mark layout'",
    "x_first": "'Mark x (slice 0)' (the marks' approximate x in the first slice)",
    "polarity": "'Marks are'",
    "max_step_px": "'Max mark step'",
    "fallback_thickness": "'Fallback thickness' (under Ruler details)",
    "csv_path": "the CSV 'File'",
    "constant_nm": "'Thickness'",
    "align": "'undo x drift'",
    "grid_nm": "'Grid spacing'",
    "method": "Interpolation ",
    "cubic_method": "Interpolation 'cubic'",
    "unit_hint": "",
    "kind": "'Data are' binary",
    "labels_kind": "'Data are' labels",
    "grey_kind": "'Data are' grey",
    "pixel_size_nm": "the layer's pixel size (its scale, with its unit)",
}


PHASE_TIP = "label value of the solid phase (binary data: 1)"
CHANNEL_TIP = "channel index of a (C, z, y, x) stack"
#: why Channel is off: the sample's detectors arrive as separate 3D layers
ONE_CHANNEL_TIP = ("a 3D (z, y, x) layer has one channel; to measure another detector, "
                   "choose its layer as Stack")


def _worded(func):
    """``func`` run in the worker, its setting errors in the widget's words."""

    def call(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except ValueError as exc:
            raise ValueError(in_words(exc, WORDS)) from None

    return call


def _channel(data, channel: int) -> np.ndarray:
    """The (slices, y, x) stack of a layer's data (a channel of (C, z, y, x) data)."""
    return np.asarray(data[channel] if data.ndim == 4 else data)


@_worded
def _thickness(data, channel, px, settings, progress=None):
    return fib.slice_thickness(_channel(data, channel), px, settings, progress=progress)


@_worded
def _run(data, channel, px, settings, labels, progress=None):
    return fib.run_fib(_channel(data, channel), px, settings, labels=labels, progress=progress)


@_worded
def _quality(data, spacing, truth, phase, progress=None):
    truth = None if truth is None else np.asarray(truth)
    return fib.fib_quality(np.asarray(data), spacing, truth, phase, progress=progress)


class FibWidget(DockForm):
    """FIB slices: thickness (ruler / CSV / constant) -> band cut -> reposition ->
    interpolate -> metrics, all through :func:`~napari_corrtomo.core.fib.run_fib`."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.thickness_nm: np.ndarray | None = None
        self.ruler_result = None
        self.result_layer = None
        layers = (napari.layers.Image, napari.layers.Labels)

        # ---- input
        self.stack = LayerSelect(napari_viewer, layers,
                                 tip="the FIB-SEM stack (z = slices), image or labels")
        self.channel = QSpinBox()
        self.channel.setRange(0, 0)
        self.stack.currentIndexChanged.connect(self._on_stack)
        form = QFormLayout()
        form.addRow("Stack", self.stack)
        form.addRow("Channel", self.channel)

        # ---- slice thickness: the band and the source (every control below that is a
        # FibSettings field comes from SettingsForm, its tooltip from the docstring)
        self.source_form = SettingsForm(fib.FibSettings, {
            "band_rows": Field(label="Band rows", placeholder="none (first, stop, e.g. 0, 16)"),
            "cut_band": Field(label="cut the ruler band from the result"),
            "source": Field(label="Source", choices=SOURCES),
        })
        self.pages = QStackedWidget()
        self.source_form["source"].native.currentIndexChanged.connect(self.pages.setCurrentIndex)
        self.ruler_form = SettingsForm(fib.FibSettings, {
            "angle_deg": Field(label="Inclined angle", max=89.5, decimals=2, step=1.0,
                               none_text="none"),
        })
        self.ruler_form["angle_deg"].native.setSuffix(" °")
        #: the ruler's optional details, collapsed: detected or automatic by default
        self.ruler_details = SettingsForm(fib.FibSettings, {
            "layout": Field(label="Mark layout", placeholder="auto (e.g. IPPI)"),
            "x_first": Field(label="Mark x (slice 0)",
                             placeholder="auto (e.g. 80 89 103 112)"),
            "polarity": Field(label="Marks are", choices=fib.POLARITIES),
            "max_step_px": Field(label="Max mark step", max=1000.0, decimals=2, step=1.0),
            "fallback_thickness": Field(label="Fallback thickness", max=1e5, decimals=2,
                                        step=1.0, none_text="off"),
            "align": Field(label="undo x drift (parallel marks)"),
        }, title="Ruler details", collapsed=True)
        self.ruler_details["max_step_px"].native.setSuffix(" px")
        self.ruler_details["fallback_thickness"].native.setSuffix(" nm")
        self.ruler_details.section.toggleButton().setToolTip(
            "show the optional ruler settings (mark layout and positions, polarity, step, "
            "fallback thickness, drift correction)")
        ruler = QWidget()
        rl = QVBoxLayout(ruler)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.ruler_form.widget)
        rl.addWidget(self.ruler_details.widget)
        csv = QWidget()
        cf = QHBoxLayout(csv)
        cf.setContentsMargins(0, 0, 0, 0)
        self.csv_form = SettingsForm(fib.FibSettings, {
            "csv_path": Field(label="File", placeholder="thickness CSV (column thickness_nm)"),
        })
        browse = QPushButton("Browse ...")
        browse.setToolTip("choose the thickness CSV file")
        browse.clicked.connect(self._browse)
        cf.addWidget(self.csv_form.widget, 1)
        cf.addWidget(browse)
        self.constant_form = SettingsForm(fib.FibSettings, {
            "constant_nm": Field(label="Thickness", max=1e5, decimals=3, step=1.0,
                                 none_text="none"),
        })
        self.constant_form["constant_nm"].native.setSuffix(" nm")
        for page in (ruler, csv, self.constant_form.widget):
            self.pages.addWidget(page)
        self.measure_button = QPushButton("Measure thickness")
        self.measure_button.clicked.connect(self.measure)
        tbox = QGroupBox("Slice thickness")
        tl = QVBoxLayout(tbox)
        tl.addWidget(self.source_form.widget)
        tl.addWidget(self.pages)
        tl.addWidget(self.measure_button)
        self.hist = PlotCanvas(height_in=2.2, title="FIB slice thickness")
        tl.addWidget(self.hist)
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        tl.addWidget(self.summary)
        self.thickness_table = TableView()
        tl.addWidget(self.thickness_table)

        # ---- reposition + interpolate
        self.volume_form = SettingsForm(fib.FibSettings, {
            "grid_nm": Field(label="Grid spacing", max=1e5, decimals=3, step=1.0,
                             none_text="pixel size (isotropic)"),
            "method": Field(label="Interpolation", choices=fib.METHODS),
            "kind": Field(label="Data are", choices=fib.KINDS),
        })
        self.volume_form["grid_nm"].native.setSuffix(" nm")
        self.run_button = QPushButton("Reposition + interpolate")
        self.run_button.clicked.connect(self.run)
        ibox = QGroupBox("Isotropic volume")
        il = QVBoxLayout(ibox)
        il.addWidget(self.volume_form.widget)
        il.addWidget(self.run_button)
        #: the volume made (and the earlier one of that name it replaced)
        self.volume_summary = QLabel("")
        self.volume_summary.setWordWrap(True)
        il.addWidget(self.volume_summary)
        #: the forms that together make the FibSettings, shown with the widget's defaults
        self.forms = (self.source_form, self.ruler_form, self.ruler_details, self.csv_form,
                      self.constant_form, self.volume_form)
        for f in self.forms:
            f.set_value(DEFAULTS)
        self.pages.setCurrentIndex(self.source_form["source"].native.currentIndex())

        # ---- metrics
        self.truth = LayerSelect(napari_viewer, layers, allow_none=True,
                                 tip="a reference segmentation on the same grid (optional): "
                                     "with it, MP / MGP / MDS against it")
        self.phase = QSpinBox()
        self.phase.setRange(0, 65535)
        self.phase.setValue(1)
        self.phase.setToolTip(PHASE_TIP)
        #: the chosen label's phase name, where the stack's metadata names its phases
        self.phase_name = QLabel("")
        self.phase.valueChanged.connect(self._on_phase)
        phase_row = QHBoxLayout()
        phase_row.addWidget(self.phase)
        phase_row.addWidget(self.phase_name, 1)
        self.metrics_button = QPushButton("Compute metrics")
        self.metrics_button.clicked.connect(self.compute_metrics)
        self.metrics_summary = QLabel("")
        self.metrics_summary.setWordWrap(True)
        self.metrics_table = TableView()
        mbox = QGroupBox("Quality metrics")
        mbox.setToolTip("MP / MGP / MDS against a ground truth; the anisotropy without one")
        ml = QFormLayout(mbox)
        ml.addRow("Ground truth", self.truth)
        ml.addRow("Solid label", phase_row)
        ml.addRow(self.metrics_button)
        ml.addRow(self.metrics_summary)
        ml.addRow(self.metrics_table)

        for w, tip in (
                (self.measure_button, "measure the thickness of every slice and plot their "
                                      "distribution"),
                (self.run_button, "place every slice at its measured depth and interpolate an "
                                  "isotropic volume (new layer)"),
                (self.metrics_button, "quality of the repositioned volume (against the "
                                      "reference, or its anisotropy)"),
        ):
            w.setToolTip(tip)
        self.runner = TaskRunner(napari_viewer)
        layout = QVBoxLayout(self.body)
        layout.addLayout(form)
        layout.addWidget(tbox)
        layout.addWidget(ibox)
        layout.addWidget(mbox)
        layout.addWidget(self.runner)
        layout.addStretch(1)
        self._on_stack()

    # ------------------------------------------------------------------ inputs

    def _on_stack(self, *_: Any) -> None:
        layer = self.stack.layer()
        channels = layer is not None and layer.ndim == 4
        self.channel.setRange(0, layer.data.shape[0] - 1 if channels else 0)
        self.channel.setEnabled(channels)
        self.channel.setToolTip(CHANNEL_TIP if channels else ONE_CHANNEL_TIP)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Slice thickness CSV", "", "CSV (*.csv)")
        if path:
            self.csv_form["csv_path"].value = path

    def settings(self) -> fib.FibSettings:
        """The forms as :class:`~napari_corrtomo.core.fib.FibSettings`."""
        settings = fib.FibSettings()
        for form in self.forms:
            settings = form.value(settings)
        if settings.band_rows is not None and len(settings.band_rows) != 2:
            raise ValueError("'Band rows' must be two whole numbers, the first and the stop "
                             f"row (e.g. 0, 16), got {self.source_form['band_rows'].value!r}")
        return settings

    def _inputs(self):
        """Layer, pixel size (nm) and settings; None (error shown) if invalid."""
        try:
            layer = self.stack.layer(required="FIB stack")
            if layer.ndim not in (3, 4):
                raise ValueError(f"layer {layer.name!r} is {layer.ndim}D; choose a "
                                 "(slices, y, x) stack")
            frame = layer_frame(layer, 3).require_physical(
                f"layer {layer.name!r}", "set its scale and units (nm) first")
            px = float(convert(frame.spacing[-1], frame.unit, "nm"))
            return layer, px, self.settings()
        except ValueError as exc:
            self.runner.refuse(in_words(exc, WORDS))
            return None

    # ------------------------------------------------------------------ actions

    def measure(self) -> None:
        if (inputs := self._inputs()) is None:
            return
        layer, px, settings = inputs

        def work(data, channel, progress=None):
            thickness = _thickness(data, channel, px, settings, progress=progress)
            self._show_steps(thickness, layer)
            return thickness

        self._clear_thickness()
        self.runner.start(work, layer.data, self.channel.value(),
                          label="Measuring slice thickness", on_result=_shown)

    def run(self) -> None:
        if (inputs := self._inputs()) is None:
            return
        layer, px, settings = inputs

        def work(data, channel, labels, progress=None):
            out = _run(data, channel, px, settings, labels, progress=progress)
            self._show_steps(out.thickness, layer)
            self.runner.in_gui(self._add_volume, out, layer)
            return out

        self._clear_thickness()
        self.volume_summary.setText("")
        self.runner.start(work, layer.data, self.channel.value(),
                          isinstance(layer, napari.layers.Labels), on_result=_shown,
                          label=f"Repositioning + {settings.method} interpolation")

    def compute_metrics(self) -> None:
        self._show_metrics({}, "")  # a refused or failed run leaves none of the last one's
        if self.result_layer is None or self.result_layer not in self.viewer.layers:
            self.runner.refuse("make an isotropic volume first (Reposition + interpolate)")
            return
        if not isinstance(self.result_layer, napari.layers.Labels):
            self.runner.refuse("the metrics compare the phases of a segmented volume, and "
                               f"'{self.result_layer.name}' holds grey values: reposition a "
                               "segmentation (a Labels or 0/1 layer as the FIB stack), or "
                               "segment the slices first (Classify)")
            return
        truth = self.truth.layer()
        shape = tuple(self.result_layer.data.shape)
        if truth is not None and tuple(truth.data.shape) != shape:
            self.runner.refuse(
                f"'Ground truth' '{truth.name}' is {tuple(truth.data.shape)} voxels but "
                f"'{self.result_layer.name}' is {shape}: the truth must be on the isotropic "
                "grid. Reposition the truth's slices with the same thicknesses: a "
                "segmentation has no ruler marks, so measure them on the grey stack of the "
                "same slices (Measure thickness), 'Export CSV ...' the thickness table, then "
                "choose the truth as Stack with Source 'CSV file' (that file) and the same "
                "'Grid spacing', 'Reposition + interpolate', and pick that isotropic layer "
                "as 'Ground truth'")
            return
        spacing = tuple(float(s) for s in self.result_layer.scale[-3:])
        what = ("anisotropy" if truth is None else "metrics") + f" of '{self.result_layer.name}'"
        self.runner.start(_quality, self.result_layer.data, spacing,
                          None if truth is None else truth.data, self.phase.value(),
                          label=what[0].upper() + what[1:],
                          on_result=lambda res: self._show_metrics(res, what))

    # ------------------------------------------------------------------ outputs

    def _clear_thickness(self) -> None:
        """Empty the Slice thickness results as a new measurement starts: a failed or
        cancelled one must not leave the previous one's on screen as if it were its own.
        The ruler marks of earlier measurements (of any stack) are hidden, not deleted."""
        self.thickness_nm = self.ruler_result = None
        self.hist.clear()
        self.summary.setText("")
        self.thickness_table.set_frame(pd.DataFrame())
        for layer in self.viewer.layers:
            if isinstance(layer, napari.layers.Points) and \
                    layer.metadata.get(CREATED_BY) == NAME:
                layer.visible = False

    def _show_steps(self, thickness: fib.SliceThickness, layer) -> None:
        """From the worker: the thickness results, then the marks layer, each in a GUI
        event-loop turn of its own (together with the volume's add they froze the UI
        1.2 s with 7 layers, 2-core VM)."""
        self.runner.in_gui(self._show_thickness, thickness)
        if thickness.ruler is not None:
            self.runner.in_gui(self._add_marks, thickness.ruler, layer)

    def _show_thickness(self, thickness: fib.SliceThickness) -> None:
        self.thickness_nm = thickness.thickness_nm
        self.ruler_result = ruler = thickness.ruler
        t = self.thickness_nm[np.isfinite(self.thickness_nm)]
        bins = max(5, min(40, t.size // 3))
        ax = self.hist.axes()
        ax.hist(t, bins=bins, color="0.6", label="slices")
        text = f"{t.size} thicknesses, mean {t.mean():.2f} nm, std {t.std():.2f} nm"
        if thickness.gamma is not None:
            shape, scale = thickness.gamma
            xs = np.linspace(0, t.max() * 1.2, 200)
            width = (t.max() - t.min()) / bins
            ax.plot(xs, stats.gamma.pdf(xs, shape, scale=scale) * t.size * width, "-",
                    color="tab:red", label=f"gamma k={shape:.2f}, θ={scale:.2f} nm")
            text += f"; gamma fit: shape {shape:.2f}, scale {scale:.2f} nm"
        ax.set_xlabel("slice thickness (nm)")
        ax.set_ylabel("slices")
        ax.legend(fontsize=7)
        self.hist.draw()
        if ruler is not None:
            flagged = ruler.flagged
            text += f"; {len(flagged)} flagged"
            if len(flagged):
                text += f" (slices {', '.join(map(str, flagged['slice'].tolist()[:12]))})"
        self.thickness_table.set_frame(thickness.table)
        self.summary.setText(text)

    def _add_marks(self, ruler, layer) -> None:
        """The detected marks as the Points layer ``<stack> ruler marks``, shown again
        where an earlier measurement hid it."""
        add_result(self.viewer, ruler.mark_points(), name=f"{layer.name} ruler marks",
                   layer_type="points", created_by=NAME, scale=tuple(layer.scale[-3:]),
                   unit=layer_frame(layer, 3).unit, translate=tuple(layer.translate[-3:]),
                   size=3, face_color="yellow", source=layer, visible=True)

    def _add_volume(self, out: fib.FibVolume, layer) -> None:
        """The result as a new layer, placed on its source (source origin + the rows cut)."""
        frame = layer_frame(layer, 3)
        source_origin = np.atleast_1d(convert(np.asarray(frame.offset), frame.unit, "nm"))
        data = out.volume
        kind = "labels" if out.kind in ("binary", "labels") else "image"
        if data.dtype == bool:
            data = data.astype(np.uint8)
        name = f"{layer.name} isotropic ({out.method})"
        replaced = name in self.viewer.layers
        self.result_layer = add_result(
            self.viewer, data, name=name, layer_type=kind,
            created_by=NAME, scale=tuple(out.spacing_nm), unit="nm",
            translate=tuple(float(v) for v in source_origin + np.asarray(out.origin_nm)),
            metadata={"fib_known_planes": out.known.tolist(), "fib_method": out.method,
                      "phases": {str(k): v for k, v in phase_names(layer).items()}},
            source=layer,
        )
        # add_result updates the layer it made earlier (never another's): say so
        again = (f"; replaced the earlier '{name}' (rename a layer to keep it)"
                 if replaced and self.result_layer.name == name else "")
        spacing = ", ".join(f"{v:.4g}" for v in out.spacing_nm)
        self.volume_summary.setText(f"'{self.result_layer.name}': {data.shape} voxels of "
                                    f"({spacing}) nm{again}")
        self._show_metrics({}, "")  # they were of the volume before
        self.truth.refresh()
        self._show_phases()

    def _show_phases(self) -> None:
        """The isotropic volume's phase names on 'Solid label' (tooltip and the chosen
        one's name), its default the first phase that is not pore: a labelled sample's
        label 1 is often the pore."""
        names = phase_names(self.result_layer)
        listed = ", ".join(f"{k} = {v}" for k, v in sorted(names.items()))
        self.phase.setToolTip(PHASE_TIP + (f"; this volume's phases: {listed}" if names else ""))
        solid = next((k for k, v in sorted(names.items()) if "pore" not in v.lower()), None)
        if solid is not None:
            self.phase.setValue(solid)
        self._on_phase()

    def _on_phase(self, *_: Any) -> None:
        self.phase_name.setText(phase_names(self.result_layer).get(self.phase.value(), ""))

    def _show_metrics(self, res: dict, what: str) -> None:
        """The Quality metrics' table and summary (empty for ``res == {}``), every number
        with its unit: the diameters in nm (the isotropic volume's unit), the rest in %
        or ratios without unit (named so)."""
        units = [_metric_unit(k) for k in res]
        names = [f"{k}_nm" if u == "nm" else k for k, u in zip(res, units, strict=True)]
        self.metrics_table.set_frame(pd.DataFrame({
            "quantity": names, "value": [float(v) for v in res.values()],
            "unit": [u or "ratio (no unit)" for u in units]}))
        shown = (f"{k.removesuffix('_percent')} {float(v):.4g}{' ' + u if u else ''}"
                 for (k, v), u in zip(res.items(), units, strict=True))
        self.metrics_summary.setText(f"{what}: {', '.join(shown)}" if res else "")


def _shown(_result: Any) -> None:
    """The runs' ``on_result``: the worker showed its results itself (``in_gui``)."""


def _metric_unit(key: str) -> str:
    """The unit of a :func:`~napari_corrtomo.core.fib.fib_quality` number: the plane
    diameters ``d_*`` are lengths (nm, as the isotropic volume), ``*_percent`` percent,
    the errors and Dice scores ratios ("")."""
    if key.endswith("_percent"):
        return "%"
    return "nm" if key.startswith("d_") else ""
