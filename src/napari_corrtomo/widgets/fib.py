"""Dock widget "FIB slices": slice thickness, repositioning and interpolation of FIB-SEM stacks.

Thin: reads the chosen stack layer (and channel), gets slice thicknesses from the
ruler marks / a CSV / a constant (core.fib), shows their histogram with a gamma
fit and the detected marks as a Points layer, and writes the repositioned,
interpolated volume as a new layer with isotropic scale and units. With a ground
truth layer it shows MP / MGP / MDS; without, the anisotropy errors.
"""

from __future__ import annotations

from typing import Any

import napari
import numpy as np
import pandas as pd
from napari.utils.notifications import show_error
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from ..core import fib
from ..core.units import convert
from ._layers import LayerSelect, add_result, layer_frame
from ._plot import PlotCanvas
from ._runner import TaskRunner
from ._table import TableView

NAME = "fib"
SOURCES = ("ruler marks", "CSV file", "constant")


def _measure(stack: np.ndarray, source: str, options: dict[str, Any],
             progress=None) -> tuple[np.ndarray, Any]:
    """Thicknesses (nm) from the chosen source; the ruler result (or None)."""
    n = stack.shape[0]
    if source == "ruler marks":
        result = fib.measure_thickness(stack, options["markers"],
                                       fallback_thickness=options.get("fallback"),
                                       progress=progress)
        return result.thickness_nm, result
    if source == "CSV file":
        if not options.get("path"):
            raise ValueError("choose a thickness CSV file first (Browse ...)")
        return fib.load_thickness(options["path"], n_slices=n), None
    value = float(options["constant"])
    if value <= 0:
        raise ValueError(f"the constant thickness must be positive, got {value:g} nm")
    return np.full(n, value), None


def _measure_and_interpolate(stack, source, options, pixel_nm, grid_nm, method, kind, cut,
                             align, progress=None):
    thickness, ruler = _measure(stack, source, options)
    if ruler is not None:
        if align:
            stack = fib.correct_drift(stack, ruler.table["drift_x_px"].to_numpy(),
                                      labels=kind in ("binary", "labels"))
        r0, r1 = options["markers"].rows
        if cut and (r0 == 0 or r1 == stack.shape[1]):
            stack = stack[:, r1:] if r0 == 0 else stack[:, :r0]
    out = fib.isotropic_volume(stack, thickness, pixel_nm, grid_nm, method, kind,
                               progress=progress)
    return thickness, ruler, out


class FibWidget(QWidget):
    """FIB slices: thickness (ruler / CSV / constant) -> reposition -> interpolate -> metrics."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.thickness_nm: np.ndarray | None = None
        self.ruler_result = None
        self.result_layer = None
        layers = (napari.layers.Image, napari.layers.Labels)

        # ---- input
        self.stack = LayerSelect(napari_viewer, layers)
        self.channel = QSpinBox()
        self.channel.setRange(0, 0)
        self.channel.setToolTip("channel index for (C, z, y, x) layers")
        self.stack.currentIndexChanged.connect(self._on_stack)
        form = QFormLayout()
        form.addRow("Stack", self.stack)
        form.addRow("Channel", self.channel)

        # ---- thickness source
        self.source = QComboBox()
        self.source.addItems(SOURCES)
        self.pages = QStackedWidget()
        self.source.currentIndexChanged.connect(self.pages.setCurrentIndex)
        ruler = QWidget()
        rf = QFormLayout(ruler)
        self.angle = QDoubleSpinBox()
        self.angle.setRange(0.5, 89.5)
        self.angle.setValue(25.0)
        self.angle.setSuffix(" °")
        self.row0 = QSpinBox()
        self.row1 = QSpinBox()
        for box in (self.row0, self.row1):
            box.setRange(0, 100000)
        self.row1.setValue(16)
        rows = QHBoxLayout()
        rows.addWidget(self.row0)
        rows.addWidget(QLabel("to"))
        rows.addWidget(self.row1)
        self.layout_edit = QLineEdit()
        self.layout_edit.setPlaceholderText("auto (e.g. IPPI)")
        self.polarity = QComboBox()
        self.polarity.addItems(["dark", "bright"])
        self.use_fallback = QCheckBox("constant where marks are missing:")
        self.fallback = QDoubleSpinBox()
        self.fallback.setRange(0.01, 1e5)
        self.fallback.setValue(10.0)
        self.fallback.setSuffix(" nm")
        fb = QHBoxLayout()
        fb.addWidget(self.use_fallback)
        fb.addWidget(self.fallback)
        self.align = QCheckBox("undo x drift (parallel marks)")
        self.cut_band = QCheckBox("cut the ruler band from the result")
        self.cut_band.setChecked(True)
        rf.addRow("Inclined angle", self.angle)
        rf.addRow("Band rows", rows)
        rf.addRow("Mark layout", self.layout_edit)
        rf.addRow("Marks are", self.polarity)
        rf.addRow(fb)
        rf.addRow(self.align)
        rf.addRow(self.cut_band)
        csv = QWidget()
        cf = QHBoxLayout(csv)
        self.csv_path = QLineEdit()
        self.csv_path.setPlaceholderText("thickness CSV (column thickness_nm)")
        browse = QPushButton("Browse ...")
        browse.clicked.connect(self._browse)
        cf.addWidget(self.csv_path)
        cf.addWidget(browse)
        const = QWidget()
        kf = QFormLayout(const)
        self.constant = QDoubleSpinBox()
        self.constant.setRange(0.0, 1e5)
        self.constant.setDecimals(3)
        self.constant.setValue(10.0)
        self.constant.setSuffix(" nm")
        kf.addRow("Thickness", self.constant)
        for page in (ruler, csv, const):
            self.pages.addWidget(page)
        self.measure_button = QPushButton("Measure thickness")
        self.measure_button.clicked.connect(self.measure)
        tbox = QGroupBox("Slice thickness")
        tl = QVBoxLayout(tbox)
        tl.addWidget(self.source)
        tl.addWidget(self.pages)
        tl.addWidget(self.measure_button)
        self.hist = PlotCanvas(height_in=2.2)
        tl.addWidget(self.hist)
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        tl.addWidget(self.summary)

        # ---- reposition + interpolate
        self.grid = QDoubleSpinBox()
        self.grid.setRange(0.0, 1e5)
        self.grid.setDecimals(3)
        self.grid.setSuffix(" nm")
        self.grid.setSpecialValueText("pixel size (isotropic)")
        self.method = QComboBox()
        self.method.addItems(list(fib.METHODS))
        self.method.setCurrentText("cubic")
        self.kind = QComboBox()
        self.kind.addItems(["auto", "grey", "binary", "labels"])
        self.run_button = QPushButton("Reposition + interpolate")
        self.run_button.clicked.connect(self.run)
        ibox = QGroupBox("Isotropic volume")
        il = QFormLayout(ibox)
        il.addRow("Grid spacing", self.grid)
        il.addRow("Interpolation", self.method)
        il.addRow("Data are", self.kind)
        il.addRow(self.run_button)

        # ---- metrics
        self.truth = LayerSelect(napari_viewer, layers, allow_none=True)
        self.phase = QSpinBox()
        self.phase.setRange(0, 65535)
        self.phase.setValue(1)
        self.phase.setToolTip("label value of the solid phase (binary data: 1)")
        self.metrics_button = QPushButton("Compute metrics")
        self.metrics_button.clicked.connect(self.compute_metrics)
        self.table = TableView()
        mbox = QGroupBox("Quality (MP / MGP / MDS with truth; anisotropy without)")
        ml = QFormLayout(mbox)
        ml.addRow("Ground truth", self.truth)
        ml.addRow("Solid label", self.phase)
        ml.addRow(self.metrics_button)
        ml.addRow(self.table)

        self.runner = TaskRunner()
        layout = QVBoxLayout(self)
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
        self.channel.setRange(0, layer.data.shape[0] - 1 if layer is not None and layer.ndim == 4
                              else 0)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Slice thickness CSV", "", "CSV (*.csv)")
        if path:
            self.csv_path.setText(path)

    def _stack(self) -> tuple[np.ndarray, float, Any]:
        """(slices, y, x) array of the chosen layer/channel, pixel size (nm), layer."""
        layer = self.stack.layer(required="FIB stack")
        data = np.asarray(layer.data)
        if data.ndim == 4:
            data = data[self.channel.value()]
        if data.ndim != 3:
            raise ValueError(f"layer {layer.name!r} is {layer.ndim}D; choose a (slices, y, x) "
                             "stack")
        frame = layer_frame(layer, 3)
        scale, unit = frame.spacing, frame.unit
        if unit == "pixel":
            raise ValueError(f"layer {layer.name!r} has no physical pixel size; set its scale "
                             "and units (nm) first")
        return data, float(convert(scale[-1], unit, "nm")), layer

    def _options(self, pixel_nm: float) -> dict[str, Any]:
        layout = self.layout_edit.text().strip() or None
        markers = fib.RulerMarkers(angle_deg=self.angle.value(), pixel_size=pixel_nm,
                                   rows=(self.row0.value(), self.row1.value()), layout=layout,
                                   polarity=self.polarity.currentText())
        return {
            "markers": markers,
            "fallback": self.fallback.value() if self.use_fallback.isChecked() else None,
            "path": self.csv_path.text().strip(),
            "constant": self.constant.value(),
        }

    # ------------------------------------------------------------------ actions

    def _inputs(self) -> tuple[np.ndarray, float, Any, dict[str, Any]] | None:
        """Stack, pixel size (nm), layer and thickness options; None (error shown) if invalid."""
        try:
            stack, px, layer = self._stack()
            return stack, px, layer, self._options(px)
        except ValueError as exc:
            show_error(str(exc))
            return None

    def measure(self) -> None:
        if (inputs := self._inputs()) is None:
            return
        stack, _px, layer, options = inputs
        source = self.source.currentText()
        self.runner.start(_measure, stack, source, options, label="Measuring slice thickness",
                          on_result=lambda res: self._show_thickness(*res, layer=layer))

    def run(self) -> None:
        if (inputs := self._inputs()) is None:
            return
        stack, px, layer, options = inputs
        grid = self.grid.value() or None
        method = self.method.currentText()
        kind = self.kind.currentText()
        if kind == "auto" and isinstance(layer, napari.layers.Labels):
            kind = "labels" if _resolve(stack) != "binary" else "auto"

        def done(res):
            thickness, ruler, out = res
            self._show_thickness(thickness, ruler, layer=layer)
            self._add_volume(out, layer)

        self.runner.start(_measure_and_interpolate, stack, self.source.currentText(), options,
                          px, grid, method, kind, self.cut_band.isChecked(),
                          self.align.isChecked(), on_result=done,
                          label=f"Repositioning + {method} interpolation")

    def compute_metrics(self) -> None:
        if self.result_layer is None or self.result_layer not in self.viewer.layers:
            show_error("make an isotropic volume first (Reposition + interpolate)")
            return
        data = np.asarray(self.result_layer.data)
        truth_layer = self.truth.layer()
        spacing = tuple(float(s) for s in self.result_layer.scale[-3:])
        phase = self.phase.value()
        solid = data.astype(bool) if data.dtype == bool else data == phase
        if truth_layer is None:
            self.runner.start(fib.anisotropy, solid, spacing, label="Anisotropy",
                              on_result=lambda res: self._show_table(res, "anisotropy"))
            return
        truth = np.asarray(truth_layer.data)
        truth_solid = truth.astype(bool) if truth.dtype == bool else truth == phase
        if truth_solid.shape != solid.shape:
            show_error(f"ground truth {truth_solid.shape} and result {solid.shape} differ in "
                       "shape; give a truth on the same isotropic grid")
            return

        def job(progress=None):
            return fib.metrics(solid, truth_solid)

        self.runner.start(job, label="Metrics",
                          on_result=lambda res: self._show_table(res, "metrics"))

    # ------------------------------------------------------------------ outputs

    def _show_thickness(self, thickness, ruler, layer) -> None:
        self.thickness_nm = np.asarray(thickness, float)
        self.ruler_result = ruler
        t = self.thickness_nm[np.isfinite(self.thickness_nm)]
        ax = self.hist.axes()
        ax.hist(t, bins=max(5, min(40, t.size // 3)), color="0.6", label="slices")
        text = f"{t.size} thicknesses, mean {t.mean():.2f} nm, std {t.std():.2f} nm"
        try:
            shape, scale = fib.fit_gamma(t)
        except ValueError:
            shape = None
        if shape is not None:
            from scipy import stats

            xs = np.linspace(0, t.max() * 1.2, 200)
            width = (t.max() - t.min()) / max(5, min(40, t.size // 3))
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
            pts = ruler.mark_points()
            add_result(self.viewer, pts, name=f"{layer.name} ruler marks", layer_type="points",
                       created_by=NAME, scale=tuple(layer.scale[-3:]),
                       unit=layer_frame(layer, 3).unit, size=3, face_color="yellow")
            self.table.set_frame(ruler.table)
        else:
            self.table.set_frame(fib.thickness_table(self.thickness_nm))
        self.summary.setText(text)

    def _add_volume(self, out, layer) -> None:
        data = out.volume
        kind = "labels" if out.kind in ("binary", "labels") else "image"
        if data.dtype == bool:
            data = data.astype(np.uint8)
        self.result_layer = add_result(
            self.viewer, data, name=f"{layer.name} isotropic ({out.method})", layer_type=kind,
            created_by=NAME, scale=tuple(out.spacing_nm), unit="nm",
            metadata={"fib_known_planes": out.known.tolist(), "fib_method": out.method},
        )
        self.truth.refresh()

    def _show_table(self, res: dict, what: str) -> None:
        frame = pd.DataFrame({"quantity": list(res.keys()),
                              "value": [float(v) for v in res.values()]})
        self.table.set_frame(frame)
        self.summary.setText(", ".join(f"{k} {float(v):.4g}" for k, v in res.items()))


def _resolve(stack: np.ndarray) -> str:
    from ..core.fib.interpolate import resolve_kind

    return resolve_kind(stack)
