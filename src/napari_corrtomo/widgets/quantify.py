"""The "Quantify" dock widget: measure a segmentation in physical units.

Thin layer over :func:`napari_corrtomo.core.quantify.quantify`: pick the label
layer and which label is the measured phase / the matrix / the outside medium,
tick measures (one checkbox per registered measure, so new measures appear by
registering them in the core), run in a worker with progress and Cancel, and get

- result layers (local-thickness maps, particles with their table as layer
  features plus images coloured by ESD / porosity, closed and inner pores);
- transport descriptors along a chosen axis (tortuosity factor with the
  concentration field as a layer, geodesic tortuosity vs depth, intrusion curve
  and constrictivity);
- plots (size distributions with log-normal fits, correlation functions,
  volume-fraction profile, proxigram, transport curves) savable as PNG;
- tables (summary and every measure's table) exportable as CSV.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import napari
import numpy as np
import pandas as pd
from napari.utils.notifications import show_error
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QLabel,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..core.backend import is_lazy
from ..core.frame import Frame
from ..core.io import write_table
from ..core.isolated import IsolatedProcess
from ..core.quantify import (
    ENVELOPES,
    MEASURES,
    QuantifyResult,
    QuantifySettings,
    label_roles,
    quantify,
)
from ..core.quantify.pipeline import ENVELOPE_MEASURES
from ._dock import DockForm, hbox
from ._form import Field, SettingsForm
from ._layers import (
    LayerSelect,
    add_result,
    attach_table,
    full_resolution,
    layer_affine,
    layer_frame,
    phase_names,
)
from ._plot import PlotCanvas
from ._registered_view import is_drawing
from ._runner import TaskRunner, on_viewer_close
from ._table import TableView

CREATED_BY = "quantify"
#: transport-axis choices of the widget -> ``QuantifySettings.transport_axes``
TRANSPORT_AXES = {"all (z, y, x)": None, "z": (0,), "y": (1,), "x": (2,)}


#: what a measuring process imports as it starts
_PRELOAD = ("napari_corrtomo.core.quantify",)


def _points_in(points, labels, spacing: tuple[float, ...]) -> tuple[tuple[float, ...], ...]:
    """A points layer's points as (z, y, x) positions in the voxel frame of a 3D labels
    layer (unit of ``spacing``, from its first voxel's centre), through the world frame,
    so points placed on any registered view land on the same voxels."""
    if len(points.data) == 0:
        raise ValueError(f"points layer {points.name!r} has no point; add one on each "
                         "particle to measure, or choose none")
    if points.ndim < 3:
        raise ValueError(f"points layer {points.name!r} is {points.ndim}D; place the points "
                         "in 3D (a points layer added while the volume is shown)")
    return tuple(
        tuple(float(v) * d for v, d in zip(
            labels.world_to_data(points.data_to_world(p))[-3:], spacing, strict=True))
        for p in np.asarray(points.data))


def _same_frame(image, layer, frame: Frame) -> None:
    """Refuse an intensity image whose voxels do not lie on the segmentation's: the same
    shape at another voxel size, unit, origin or affine gives distances (proxigram) in
    the wrong frame without a word."""
    def where(f: Frame) -> str:
        return (f"voxel {' x '.join(f'{v:.4g}' for v in f.spacing)} {f.unit}, origin "
                f"{', '.join(f'{v:.4g}' for v in f.offset)} {f.unit}")

    own = layer_frame(image, 3)
    try:
        same = own.to(frame.unit)
    except ValueError:  # a unit and pixels: cannot be compared
        same = None
    tol = 1e-6 * max(frame.spacing)
    if same is None or not (
            np.allclose(same.spacing, frame.spacing, rtol=1e-6, atol=0)
            and np.allclose(same.offset, frame.offset, rtol=0, atol=tol)
            and np.allclose(layer_affine(image), layer_affine(layer))
            and np.allclose(np.asarray(image.rotate)[-3:, -3:], np.asarray(layer.rotate)[-3:, -3:])
            and np.allclose(np.asarray(image.shear)[-3:], np.asarray(layer.shear)[-3:])):
        raise ValueError(
            f"intensity {image.name!r} ({where(own)}) and segmentation {layer.name!r} "
            f"({where(frame)}) do not lie on the same voxels; choose the image the "
            "segmentation came from, or give both the same voxel size, unit, translate and "
            "affine")


def _say(ax, text: str) -> None:
    """``text`` centred on ``ax``, in place of data that is not there."""
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, color="0.35",
            transform=ax.transAxes)


class QuantifyWidget(DockForm):
    """Dock widget: porosity, pore/particle sizes, surfaces, correlations, proxigrams."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.result: QuantifyResult | None = None
        self._source = None
        #: what the shown results are of: the form's inputs, their words and as a table
        #: (exported beside the tables); set when a run starts, shown when it ends
        self._run_of: tuple[tuple | None, str, pd.DataFrame] | None = None
        self._results_of: tuple[tuple | None, str, pd.DataFrame] | None = None
        #: the process the next in-memory run uses, started when the panel is first shown
        #: and again whenever a run ends
        self._spare: IsolatedProcess | None = None
        self._closed = False
        on_viewer_close(self.viewer, self._close_spare)

        # ---- inputs
        # never a drawing (a registered layer's 2D view, the live training's one slice)
        self.labels_select = LayerSelect(
            self.viewer, (napari.layers.Labels,), skip=is_drawing, newest=True,
            tip="the segmentation to measure (labels layer with a voxel size; the newest "
                "labels layer when the panel opens)")
        self.labels_select.currentTextChanged.connect(self._labels_changed)
        #: which labels are which (fields of QuantifySettings; tooltips from its docstring)
        self.labels_form = SettingsForm(QuantifySettings, {
            "phase": Field(label="Phase label", max=2**31 - 1),
            "matrix": Field(label="Matrix label", min=-1, max=2**31 - 1, none_text="none"),
            "outside": Field(label="Outside labels", placeholder="e.g. 0, 1"),
            "mid_level": Field(label="Boundary at mid grey level"),
            "within_envelopes": Field(label="Only inside particle envelopes"),
            "exclude_border": Field(label="... not cut by the border"),
        })
        # the border choice means something only inside the envelopes
        self.labels_form["exclude_border"].enabled = False
        self.labels_form["within_envelopes"].changed.connect(self._border_follows)
        self.intensity_select = LayerSelect(
            self.viewer, (napari.layers.Image,), allow_none=True, skip=is_drawing,
            tip="the reconstruction the segmentation came from, for the proxigram (interface "
                "sharpness of the phase against the matrix; distances positive inside the "
                "phase)")
        self.points_select = LayerSelect(
            self.viewer, (napari.layers.Points,), allow_none=True,
            tip="points on the particles to measure (add them on any view, e.g. on the "
                "particle a nanoCT is centred on): the envelope measures and 'Only inside "
                "particle envelopes' keep the envelope at or nearest each point; none: every "
                "particle")
        inputs = QFormLayout()
        inputs.addRow("Segmentation", self.labels_select)
        inputs.addRow(self.labels_form.widget)
        self.add_points_button = QPushButton("Add ...")
        self.add_points_button.setToolTip(
            "add a points layer on the segmentation, ready to click: a point on each particle "
            "to measure, then Quantify")
        self.add_points_button.clicked.connect(self.add_particle_points)
        inputs.addRow("Particles at", hbox(self.points_select, self.add_points_button,
                                           stretch=self.points_select))
        inputs.addRow("Intensity", self.intensity_select)

        # ---- measures: one checkbox per registered measure
        self.checks: dict[str, QCheckBox] = {}
        box = QGroupBox("Measures")
        col = QVBoxLayout(box)
        for key, spec in MEASURES.items():
            cb = QCheckBox(spec.title)
            cb.setChecked(spec.default and not spec.needs_intensity)
            cb.setObjectName(f"measure_{key}")
            cb.setToolTip(spec.title + "".join(
                note for flag, note in ((spec.needs_matrix, "; needs the matrix label"),
                                        (spec.needs_intensity, "; needs an intensity image"),
                                        (spec.lazy, "; runs block by block on dask/zarr "
                                                    "volumes")) if flag))
            self.checks[key] = cb
            col.addWidget(cb)

        # ---- the measures' parameters, collapsed: their automatic values suit most samples
        self.params = SettingsForm(QuantifySettings, {
            "radius": Field(label="Ball radius", unit="length"),
            "max_distance": Field(label="Correlation range", unit="length"),
            "proxigram_distance": Field(label="Proxigram range", unit="length"),
            "bin_width": Field(label="Bin width", unit="length"),
            "split_h": Field(label="Split depth", unit="length"),
            "close_radius": Field(label="Pore closing radius", unit="length"),
            "min_volume": Field(label="Min particle volume", unit="volume", none_text="keep all"),
            "smooth": Field(label="Surface smoothing", max=10.0, decimals=2, step=0.1),
            "envelope": Field(label="Envelope", choices=ENVELOPES),
            "envelope_radius_fraction": Field(label="Envelope ball / ESD", min=0.1, max=10.0,
                                              decimals=2, step=0.1),
            "transport_axes": Field(label="Transport axis", choices=TRANSPORT_AXES),
            "depths": Field(label="Geodesic depths",
                            placeholder="auto: 1/8, 1/4, 3/8, 1/2 of the length"),
        }, title="Parameters (auto = from the voxel size)", collapsed=True)

        self.run_button = QPushButton("Quantify")
        self.run_button.clicked.connect(self.run)
        self.runner = TaskRunner(napari_viewer)
        self.runner.words = {
            **self.labels_form.words, **self.params.words, "intensity": "an 'Intensity' image",
            "particles_at": "'Particles at'",
            "envelope_measures": " or ".join(repr(MEASURES[m].title)
                                             for m in sorted(ENVELOPE_MEASURES)),
            "in_memory": "open a TIFF copy of the layer if it fits in memory"}
        # notes of the last run (e.g. tau = inf); own label: the runner's status ends as "Done."
        self.notes = QLabel("")
        self.notes.setWordWrap(True)

        # ---- results
        #: which layer and labels the results are of, and whether the form still is
        self.results_of = QLabel("")
        self.results_of.setWordWrap(True)
        self.results_of.setObjectName("results_of")
        self.plot_select = QComboBox()
        self.plot_select.currentTextChanged.connect(self._draw)
        self.plot = PlotCanvas(height_in=2.8, title="Quantify")
        self.table_select = QComboBox()
        self.table_select.currentTextChanged.connect(self._show_table)
        self.table = TableView()
        self.export_all_button = QPushButton("Export all tables (CSV) ...")
        self.export_all_button.setEnabled(False)
        self.export_all_button.clicked.connect(self._ask_export_all)
        for w, tip in (
                (self.run_button, "run the ticked measures; results become layers, plots and "
                                  "tables"),
                (self.plot_select, "which distribution or curve of the last run to plot"),
                (self.table_select, "which table of the last run to show"),
                (self.export_all_button, "write every table of the last run as CSV files into "
                                         "a folder (summary.csv first; inputs.csv says what "
                                         "they are of)"),
        ):
            w.setToolTip(tip)

        layout = QVBoxLayout(self.body)
        layout.addLayout(inputs)
        layout.addWidget(box)
        layout.addWidget(self.params.widget)
        layout.addWidget(self.run_button)
        layout.addWidget(self.runner)
        layout.addWidget(self.notes)
        layout.addWidget(self.results_of)
        layout.addLayout(hbox(QLabel("Plot"), self.plot_select, stretch=self.plot_select))
        layout.addWidget(self.plot)
        layout.addLayout(hbox(QLabel("Table"), self.table_select, stretch=self.table_select))
        layout.addWidget(self.table)
        layout.addWidget(self.export_all_button)
        layout.addStretch(1)
        self._labels_changed()
        # any change of the form: the results say whether they are still of it
        for signal in (self.labels_select.currentTextChanged,
                       self.intensity_select.currentTextChanged,
                       self.points_select.currentTextChanged,
                       self.labels_form.container.changed, self.params.container.changed,
                       *(cb.toggled for cb in self.checks.values())):
            signal.connect(self._say_whose)

    # ------------------------------------------------------------------ inputs

    def _labels_changed(self, *_: Any) -> None:
        layer = self.labels_select.layer()
        if layer is None:
            return
        try:
            frame = layer_frame(layer, 3 if layer.ndim >= 3 else layer.ndim)
            unit = frame.unit
        except ValueError:
            unit = ""
        self.params.set_unit(unit)
        # a segmentation that names its phases (the samples' truths): the roles they
        # suggest, said (not set: they would stay for the next, unnamed segmentation)
        names = phase_names(layer)
        roles = label_roles(names)
        self.notes.setText("" if not roles else (
            "This segmentation names its phases ("
            + ", ".join(f"{k} {v}" for k, v in sorted(names.items()))
            + f"): measure the pores with Phase label {roles['phase']}"
            + (f", Matrix label {roles['matrix']}" if roles["matrix"] is not None else "")
            + (f", Outside labels {', '.join(map(str, roles['outside']))}"
               if roles["outside"] else "") + "."))

    def _border_follows(self, inside: bool) -> None:
        """'... not cut by the border' only with 'Only inside particle envelopes': enabled
        with it, unticked without it (QuantifySettings refuses it alone)."""
        border = self.labels_form["exclude_border"]
        border.enabled = bool(inside)
        if not inside:
            border.value = False

    def add_particle_points(self) -> None:
        """A points layer in the segmentation's frame, in add mode and chosen as
        "Particles at": the user's next clicks on the canvas mark the particles."""
        try:
            layer = self.labels_select.layer(required="segmentation")
            frame = layer_frame(layer, 3)
        except ValueError as exc:
            show_error(str(exc))
            return
        points = self.viewer.add_points(
            np.zeros((0, 3)), ndim=3, name=f"{layer.name} particles to measure",
            scale=frame.spacing, translate=frame.offset, affine=layer_affine(layer),
            units=(frame.unit,) * 3, size=max(max(full_resolution(layer).shape[-3:]) / 60, 3),
            face_color="yellow", border_color="black")
        points.mode = "add"
        self.viewer.layers.selection.active = points
        self.points_select.set_layer(points)

    def _inputs(self) -> tuple | None:
        """What a run of the form would measure now (None: the form cannot be read): the
        segmentation, the settings, the measures, the intensity image where they use it,
        the points."""
        try:
            settings, measures = self.settings(), tuple(self.chosen_measures())
        except ValueError:
            return None
        image = self.intensity_select.layer() if settings.mid_level or any(
            MEASURES[m].needs_intensity for m in measures) else None
        return (self.labels_select.layer(), settings, measures, image,
                self.points_select.layer())

    def _describe(self, layer, settings: QuantifySettings, measures: list[str],
                  image) -> tuple[tuple | None, str, pd.DataFrame]:
        """A run's inputs (:meth:`_inputs`), in words and as an ``input, value`` table."""
        names = dict(settings.phase_names)
        phase = f"{settings.phase}" + (f" ({names[settings.phase]})"
                                       if settings.phase in names else "")
        matrix = "none" if settings.matrix is None else str(settings.matrix)
        points, now = self.points_select.layer(), time.localtime()
        rows = [("segmentation", layer.name), ("phase label", phase), ("matrix label", matrix),
                ("outside labels", ", ".join(map(str, settings.outside)) or "none"),
                ("intensity", image.name if image is not None else "none"),
                ("particles at", points.name if points is not None else "none"),
                ("measures", ", ".join(measures)), ("run at", time.strftime("%Y-%m-%d %H:%M:%S", now))]
        words = (f"'{layer.name}', Phase label {phase}, Matrix label {matrix}"
                 + (f", intensity '{image.name}'" if image is not None else "")
                 + f", run at {time.strftime('%H:%M:%S', now)}")
        return self._inputs(), words, pd.DataFrame(rows, columns=["input", "value"])

    def _say_whose(self, *_: Any) -> None:
        """Name what the results are of, and say so when the form no longer is."""
        if self._results_of is None:
            return
        inputs, words, _ = self._results_of
        if inputs is not None and self._inputs() == inputs:
            self.results_of.setText(f"Results of {words}.")
            self.results_of.setStyleSheet("")
        else:
            self.results_of.setText(
                f"These results are of earlier inputs: {words}; the form has changed since "
                "(Quantify again for its results).")
            self.results_of.setStyleSheet("color: orange")

    def settings(self) -> QuantifySettings:
        """The settings the two forms show."""
        return self.params.value(self.labels_form.value())

    def chosen_measures(self) -> list[str]:
        return [k for k, cb in self.checks.items() if cb.isChecked()]

    # ------------------------------------------------------------------ run

    def run(self) -> None:
        """Validate the inputs in the GUI thread and start the measurement in a worker."""
        self.notes.setText("")
        try:
            layer = self.labels_select.layer(required="segmentation")
            if layer.ndim < 3:
                raise ValueError(f"layer {layer.name!r} is {layer.ndim}D; quantification needs a "
                                 "3D (z, y, x) label volume")
            frame = layer_frame(layer, 3)
            spacing, unit = frame.spacing, frame.unit
            settings = replace(self.settings(),
                               phase_names=tuple(sorted(phase_names(layer).items())))
            points = self.points_select.layer()
            if points is not None:
                settings = replace(settings, particles_at=_points_in(points, layer, spacing))
            measures = self.chosen_measures()
            if not measures:
                raise ValueError("tick at least one measure")
            intensity = None
            needs = [MEASURES[m].title for m in measures if MEASURES[m].needs_intensity]
            if settings.mid_level:
                needs.insert(0, "The boundary at mid grey level")
            image = self.intensity_select.layer()
            if needs:
                if image is None:
                    raise ValueError(f"{needs[0]} needs an intensity image; choose one")
                intensity = full_resolution(image)
            labels = full_resolution(layer)
            if labels.ndim != 3:
                raise ValueError(f"layer {layer.name!r} has {labels.ndim} dims; choose a 3D volume")
            if intensity is not None:
                if tuple(intensity.shape) != tuple(labels.shape):
                    raise ValueError(f"intensity {tuple(intensity.shape)} and segmentation "
                                     f"{tuple(labels.shape)} have different shapes")
                _same_frame(image, layer, frame)
        except ValueError as exc:
            self.runner.refuse(str(exc))
            return
        self._source = layer
        self._run_of = self._describe(layer, settings, measures, image if needs else None)
        self.runner.start(self._compute, labels, spacing, unit, measures, settings, intensity,
                          on_result=self._on_result, label="Quantify")

    def _compute(self, labels, spacing, unit, measures, settings, intensity, progress=None):
        """Worker body: the core pipeline on the layer's data.

        In-memory data is measured in a process of its own (:mod:`..core.isolated`): the
        compiled measures that hold the GIL (distance transforms, connected components,
        marching cubes) then never pause the viewer, and Cancel kills the process. A lazy
        layer (dask, zarr, the finest level of a pyramid) stays lazy, measured block by
        block in this thread, never loaded.
        """
        if is_lazy(labels):
            return quantify(labels, spacing, unit, measures=measures, settings=settings,
                            intensity=intensity, progress=progress)
        labels = np.asarray(labels)
        intensity = None if intensity is None else np.asarray(intensity)
        process, self._spare = self._spare or IsolatedProcess(_PRELOAD), None
        try:
            return process.call(quantify, labels, spacing, unit, measures=measures,
                                settings=settings, intensity=intensity, progress=progress)
        finally:
            if not self._closed:  # ready, imports done, for the next run
                self._spare = IsolatedProcess(_PRELOAD)

    def showEvent(self, event: Any) -> None:  # noqa: N802 (Qt API)
        """The panel on screen: start the measuring process now (1-2 s of imports), so
        the first run does not wait for it."""
        super().showEvent(event)
        if self._spare is None and not self._closed and not self.runner.busy:
            self._spare = IsolatedProcess(_PRELOAD)

    def _close_spare(self, _deadline: float = 0.0) -> None:
        self._closed = True
        if self._spare is not None:
            self._spare.close()
            self._spare = None

    # ------------------------------------------------------------------ results

    def _on_result(self, result: QuantifyResult) -> None:
        self.result = result
        self._results_of = self._run_of
        layer = self._source
        base = layer.name if layer is not None else "quantify"
        translate = tuple(layer.translate[-3:]) if layer is not None else None
        frame = {"affine": layer.affine.affine_matrix} if layer is not None else {}
        for name, arr in result.arrays.items():
            kwargs: dict[str, Any] = {}
            if arr.kind == "image":
                # a lazy result (pyramid) sets its contrast from its coarsest level
                level = np.asarray(arr.data[-1] if isinstance(arr.data, list) else arr.data)
                positive = level[level > 0]  # NaN (e.g. off a transport path) never counts
                top = float(positive.max()) if positive.size else 1.0
                kwargs.update(colormap=arr.colormap or "viridis", contrast_limits=(0.0, top),
                              blending="additive")
            elif arr.features is not None:
                feats = arr.features.copy()
                feats.insert(0, "index", feats["label"].to_numpy())
                kwargs["features"] = feats
            add_result(self.viewer, arr.data, name=f"{base} {name}", layer_type=arr.kind,
                       created_by=CREATED_BY, scale=result.spacing, unit=result.unit,
                       translate=translate, metadata={"description": arr.description}, **frame,
                       source=layer, **kwargs)
        if layer is not None and layer in self.viewer.layers:
            for name, frame in result.all_tables().items():  # saved with the project
                attach_table(layer, name, frame)
        self.plot_select.blockSignals(True)
        self.plot_select.clear()
        self.plot_select.addItems(list(result.distributions) + list(result.curves))
        self.plot_select.blockSignals(False)
        self.table_select.blockSignals(True)
        self.table_select.clear()
        self.table_select.addItems(list(result.all_tables()))
        self.table_select.blockSignals(False)
        self.export_all_button.setEnabled(True)
        self._draw(self.plot_select.currentText())
        self._show_table(self.table_select.currentText())
        self.notes.setText("\n".join(f"Note: {note}" for note in result.notes))
        self._say_whose()

    def _show_table(self, name: str) -> None:
        if self.result is None or not name:
            return
        self.table.set_frame(self.result.all_tables()[name])

    def _draw(self, name: str) -> None:
        r = self.result
        if r is None:
            return
        ax = self.plot.axes()
        self.plot.save_button.setEnabled(bool(name))
        if not name:  # a blank plot would look broken: say why there is none
            ax.set_axis_off()
            _say(ax, "No distribution or curve among the measures of this run\n"
                     "(tick e.g. Local thickness or Particles for one)")
            self.plot.draw()
            return
        if name in r.distributions:
            d = r.distributions[name]
            ax.bar(d.centers, d.fraction, width=np.diff(d.edges), color="0.65", edgecolor="0.4",
                   linewidth=0.3, label=f"mean {d.mean:.3g} ± {d.std:.3g} {d.unit}")
            if d.accepted_fit is not None:
                xs = np.linspace(max(d.edges[0], 1e-9), d.edges[-1], 400)
                ax.plot(xs, d.fit_fraction(xs), "r-",
                        label=f"log-normal fit, mode {d.fit.mode:.3g} {d.unit}")
            elif d.fit is not None:  # no curve, no mode: the notes say why
                ax.plot([], [], " ", label="log-normal fit rejected (see the notes)")
            xlabel = f"size ({d.unit})" if d.unit != "fraction" else "porosity"
            ylabel = "fraction"
        else:
            c = r.curves[name]
            if any(np.isfinite(np.asarray(ys, float)).any() for ys in c.ys.values()):
                for label, ys in c.ys.items():
                    ax.plot(c.x, ys, label=label)
            else:  # blank axes with a legend would look broken: say why on them
                _say(ax, f"no data: {c.empty or 'no value of this curve is defined'}")
            if name == "proxigram" and r.proxigram is not None:
                p = r.proxigram
                for level in (0.25, 0.75):
                    ax.axhline(level, ls=":", c="orange", lw=0.8)
                ax.plot([p.x25, p.x75], [0.25, 0.75], "o", c="C3",
                        label=f"dx {p.dx:.3g} {p.unit}, slope {p.slope:.3g} 1/{p.unit}")
            xlabel, ylabel = c.xlabel, c.ylabel
        # long labels wrap within a narrow dock instead of running off the figure
        ax.set_xlabel(xlabel, wrap=True)
        ax.set_ylabel(ylabel, wrap=True)
        ax.set_title(name, fontsize=9)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
        self.plot.draw()

    def _exported(self) -> dict[str, pd.DataFrame]:
        """The tables Export all writes: the results', then ``inputs`` (what they are of)."""
        return {**self.result.all_tables(), "inputs": self._results_of[2]}

    def export_all(self, folder: str) -> list:
        """Write every table as ``<folder>/<name>.csv``, and ``inputs.csv``: the
        segmentation, labels, intensity, measures and time the tables are of."""
        if self.result is None:
            raise ValueError("nothing to export yet; run Quantify first")
        return [write_table(f"{folder}/{name}.csv", frame)
                for name, frame in self._exported().items()]

    def _ask_export_all(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, f"Export all tables of {self._results_of[1]} to folder")
        if not folder or self.result is None:
            return
        taken = [name for name in self._exported() if Path(folder, f"{name}.csv").exists()]
        if taken and QMessageBox.question(
                self, "Replace tables?",
                f"{len(taken)} of the tables exist in {folder} ({', '.join(taken[:4])}"
                f"{' ...' if len(taken) > 4 else ''}). Replace them?",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                QMessageBox.StandardButton.No) != QMessageBox.StandardButton.Yes:
            return
        self.export_all(folder)
