"""Dock widget "Reconstruct": projections -> geometry -> preprocessing -> FBP/FDK/SIRT/CGLS.

Thin by design: it builds a :class:`~napari_corrtomo.core.recon.Geometry` from the
form and the core's ``ScanSettings`` / ``ReconSettings`` from forms generated from them
(:mod:`._form`: their docstrings are the tooltips), runs
:mod:`napari_corrtomo.core.recon` in a worker (progress, Cancel) and writes new layers
with the voxel size and unit of the geometry. The FSC action reconstructs the even/odd
halves and plots the curve with both thresholds.
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from typing import Any

import napari
import numpy as np
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..core import recon
from ..core._checks import SettingError, in_words
from ..core.recon import pipeline
from ..core.units import slip_ratio
from ._dock import DockForm, act_on_file, hbox
from ._form import Field, SettingsForm
from ._layers import (
    LayerSelect,
    add_result,
    full_resolution,
    is_projection_stack,
    layer_frame,
)
from ._plot import PlotCanvas
from ._runner import TaskRunner

CREATED_BY = "reconstruct"
UNITS = ("pixel", "nm", "um", "mm")
#: the geometry's settings in the form's words
GEOMETRY_WORDS = {"pixel_size": "'Detector pixel size'",
                  "source_origin": "'Source-axis distance'",
                  "origin_detector": "'Axis-detector distance'",
                  "tilt_deg": "'Laminography tilt'",
                  "angles_deg": "angles (from 'First angle' to 'Stop angle')",
                  "index": "'Slice'",
                  "center": "'Rotation-axis offset'", "center_auto": "'Find centre'"}
#: ReconSettings.method as the form shows it (None: the analytic method of the geometry)
METHOD_CHOICES = {"FBP / FDK (analytic)": None, "SIRT": "sirt", "CGLS": "cgls"}
#: tilt-series alignment methods (core.recon.ALIGN_METHODS) as the form shows them
ALIGN_CHOICES = {"automatic (the most consistent)": "auto", "cross-correlation": "xcorr",
                 "centre of mass": "com", "cross-correlation + centre of mass": "both"}
#: the alignment methods in the form's words, for the result line
ALIGN_WORDS = {code: label for label, code in ALIGN_CHOICES.items() if code != "auto"}
#: ReconSettings.min_value as the form shows it
BOUND_CHOICES = {"none": None, "0 (non-negative)": 0.0}


def _spin(lo: float, hi: float, value: float, decimals: int = 3, step: float = 1.0,
          suffix: str = "") -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(lo, hi)
    box.setDecimals(decimals)
    box.setSingleStep(step)
    box.setValue(value)
    if suffix:
        box.setSuffix(suffix)
    return box


def _ispin(lo: int, hi: int, value: int) -> QSpinBox:
    box = QSpinBox()
    box.setRange(lo, hi)
    box.setValue(value)
    return box


#: the words a projection stack's name ends with, left out of its results' names
_STACK_WORDS = re.compile(r"\s*(raw\s+)?projections$")


def _result_name(projections: str, what: str) -> str:
    """``"microCT raw projections"`` -> ``"microCT reconstruction"``: a result is named for
    the sample, not for the stack it came from."""
    return f"{_STACK_WORDS.sub('', projections) or projections} {what}"


class ReconstructWidget(DockForm):
    """Reconstruct a projection stack (angle, row, col) into a volume (z, y, x)."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewer = napari_viewer
        #: one angle per projection (degrees) from a file or a layer's geometry, and where
        #: from (for the refusal when the count does not fit the projections)
        self._angle_list: np.ndarray | None = None
        self._angle_source = ""
        #: the layer whose metadata or loaded JSON filled the geometry form (None: typed by
        #: the user), so that it is not used for another layer without a word
        self._geometry_from: str | None = None
        #: warnings of the action being started, repeated on the result line
        self._notes: list[str] = []
        self.last_fsc: recon.FSCResult | None = None
        layout = QVBoxLayout(self.body)

        # ------------------------------------------------------------- input
        self.projections = LayerSelect(
            napari_viewer, (napari.layers.Image,),
            tip="projection stack (angle, row, col): raw counts (give flats) or line integrals")
        self.projections.currentTextChanged.connect(self._on_layer_changed)
        top = QFormLayout()
        top.addRow("Projections (angle, row, col)", self.projections)
        layout.addLayout(top)

        # ------------------------------------------------------------- geometry
        box = QGroupBox("Geometry")
        form = QFormLayout(box)
        self.kind = QComboBox()
        self.kind.addItems(list(recon.KINDS))
        self.kind.currentTextChanged.connect(self._update_enabled)
        self.kind.currentTextChanged.connect(self._on_kind_changed)
        form.addRow("Kind", self.kind)
        self.angle_start = _spin(-3600, 3600, 0.0, 3, 1.0, " deg")
        self.angle_stop = _spin(-3600, 3600, 180.0, 3, 1.0, " deg")
        self.endpoint = QCheckBox("last angle = stop")
        # one row each: side by side, napari's narrow spin boxes cut "180.000 deg" off
        form.addRow("First angle", self.angle_start)
        form.addRow("Stop angle", self.angle_stop)
        form.addRow("", self.endpoint)
        # a range typed after a list was loaded is the user's new choice
        for w in (self.angle_start, self.angle_stop):
            w.valueChanged.connect(self._clear_angle_list)
        self.endpoint.toggled.connect(self._clear_angle_list)
        self.angle_info = QLabel("")
        self.angles_file = QPushButton("Angles from file ...")
        self.angles_file.clicked.connect(self._ask_angles)
        form.addRow("", hbox(self.angles_file, self.angle_info, stretch=self.angle_info))
        self.cone_beam = QCheckBox("cone beam (laminography)")
        self.cone_beam.toggled.connect(self._update_enabled)
        form.addRow("", self.cone_beam)
        self.source_origin = _spin(0.0, 1e9, 100.0, 3, 10.0)
        self.origin_detector = _spin(0.0, 1e9, 100.0, 3, 10.0)
        form.addRow("Source-axis distance", self.source_origin)
        form.addRow("Axis-detector distance", self.origin_detector)
        # the core's (0, 90) exclusive: a value the geometry refuses cannot be typed
        self.tilt = _spin(0.001, 89.999, 30.0, 3, 1.0, " deg")
        form.addRow("Laminography tilt", self.tilt)
        self.pixel_size = _spin(1e-6, 1e9, 1.0, 5, 0.1)
        self.unit = QComboBox()
        self.unit.addItems(list(UNITS))
        form.addRow("Detector pixel size", hbox(self.pixel_size, self.unit, stretch=self.pixel_size))
        self.center = _spin(-1e4, 1e4, 0.0, 3, 0.1, " px")
        self.find_button = QPushButton("Find centre")
        self.find_button.clicked.connect(self.find_center)
        form.addRow("Rotation-axis offset", hbox(self.center, self.find_button, stretch=self.center))
        self.load_json = QPushButton("Load geometry JSON ...")
        self.save_json = QPushButton("Save geometry JSON ...")
        self.load_json.clicked.connect(self._ask_load)
        self.save_json.clicked.connect(self._ask_save)
        form.addRow(hbox(self.load_json, self.save_json))
        layout.addWidget(box)

        # ------------------------------------------------------------- preprocessing
        box = QGroupBox("Preprocessing")
        form = QFormLayout(box)
        self.flats = LayerSelect(napari_viewer, (napari.layers.Image,), allow_none=True,
                                 tip="open-beam images (n, row, col) to normalise raw counts; "
                                     "empty: the projections are line integrals already")
        self.darks = LayerSelect(napari_viewer, (napari.layers.Image,), allow_none=True,
                                 tip="detector images without beam (n, row, col), subtracted "
                                     "from projections and flats")
        form.addRow("Flat fields", self.flats)
        form.addRow("Dark fields", self.darks)
        # a flat or dark opened after the projections is picked as it arrives
        napari_viewer.layers.events.inserted.connect(self._on_layer_inserted)
        #: fields of ScanSettings (tooltips from its docstring); center: the geometry's
        #: offset and the search below
        self.preprocess = SettingsForm(pipeline.ScanSettings, {
            "log": Field(label="-log (counts -> line integrals)"),
            "outlier_threshold": Field(label="Zinger threshold", max=100.0, step=0.5,
                                       decimals=1, none_text="off"),
            "ring_size": Field(label="Ring filter window", min=2, max=101, none_text="off"),
        })
        self.preprocess["outlier_threshold"].native.setSuffix(" sigma")
        self.preprocess["ring_size"].native.setSuffix(" columns")
        self.flats.currentTextChanged.connect(self._on_flats_changed)
        form.addRow(self.preprocess.widget)
        #: tilt series only: collapsed unless the geometry is one
        self.alignment = SettingsForm(pipeline.ScanSettings, {
            "align": Field(label="align tilt series"),
            "align_method": Field(label="Alignment", choices=ALIGN_CHOICES),
        }, title="Tilt-series alignment", collapsed=True)
        self.alignment.section.toggleButton().setToolTip(
            "show the alignment of tilt series (electron tomography)")
        form.addRow(self.alignment.widget)
        self.auto_center = QCheckBox("search the rotation-axis offset on every run")
        self.auto_center.setToolTip(
            "Adds the offset found after preprocessing (and alignment) to the one in the "
            "geometry, as 'corrtomo reconstruct --center auto' does.")
        form.addRow(self.auto_center)
        layout.addWidget(box)

        # ------------------------------------------------------------- reconstruction
        box = QGroupBox("Reconstruction")
        form = QFormLayout(box)
        #: fields of ReconSettings (tooltips from its docstring); the voxel size is the
        #: geometry's
        self.reconstruction = SettingsForm(pipeline.ReconSettings, {
            "method": Field(label="Method", choices=METHOD_CHOICES),
            "iterations": Field(label="Iterations", min=1, max=100000),
            "min_value": Field(label="Lower bound (SIRT)", choices=BOUND_CHOICES),
            "shape": Field(label="Volume (z, y, x)",
                           placeholder="empty: the detector's field of view"),
        })
        self.reconstruction["method"].changed.connect(self._update_enabled)
        form.addRow(self.reconstruction.widget)
        self.voxel_label = QLabel("")
        form.addRow("Voxel size", self.voxel_label)
        self.slice_index = _ispin(0, 100000, 0)
        self.preview_button = QPushButton("Preview slice")
        self.preview_button.clicked.connect(self.preview)
        form.addRow("Slice", hbox(self.slice_index, self.preview_button))
        self.run_button = QPushButton("Reconstruct")
        self.run_button.clicked.connect(self.run)
        self.fsc_button = QPushButton("FSC (even/odd halves)")
        self.fsc_button.clicked.connect(self.run_fsc)
        form.addRow(hbox(self.run_button, self.fsc_button))
        layout.addWidget(box)

        self.runner = TaskRunner(napari_viewer)
        self.runner.words = {**GEOMETRY_WORDS, **self.preprocess.words, **self.alignment.words,
                             **self.reconstruction.words, "flats": "'Flat fields'",
                             "darks": "'Dark fields'"}
        layout.addWidget(self.runner)
        self.plot = PlotCanvas(title="Fourier shell correlation")
        layout.addWidget(self.plot)
        self.result = QLabel("")
        self.result.setWordWrap(True)
        layout.addWidget(self.result)
        layout.addStretch(1)
        for w in (self.pixel_size, self.source_origin, self.origin_detector):
            w.valueChanged.connect(self._update_voxel)
        for w, tip in (
                (self.kind, "scan geometry: parallel beam (synchrotron, nanoCT), cone beam "
                            "(lab microCT), laminography (flat samples, tilted axis) or an "
                            "electron-tomography tilt series"),
                (self.angle_start, "angle of the first projection"),
                (self.angle_stop, "angle after the last projection (or of the last one, see "
                                  "'last angle = stop')"),
                (self.endpoint, "the last projection is taken at the stop angle (e.g. 0 to 360 "
                                "with both ends)"),
                (self.angles_file, "read one angle per projection (degrees) from a text file "
                                   "(.rawtlt, .tlt, .txt, .csv), for uneven tilt series"),
                (self.cone_beam, "laminography with a cone beam (give both distances)"),
                (self.source_origin, "distance from the source to the rotation axis, in the "
                                     "detector pixel unit"),
                (self.origin_detector, "distance from the rotation axis to the detector, in the "
                                       "detector pixel unit"),
                (self.tilt, "angle by which the rotation axis leans out of the detector plane "
                            "towards the detector (laminography; 0 deg would be ordinary CT)"),
                (self.pixel_size, "physical size of one detector pixel"),
                (self.unit, "length unit of the pixel size (and of the volume's voxels)"),
                (self.center, "horizontal offset of the rotation axis from the detector centre "
                              "(pixels, + = towards higher columns)"),
                (self.find_button, "search the rotation-axis offset on the preprocessed "
                                   "projections and put it here (the search picks its own "
                                   "detector rows, not 'Slice')"),
                (self.load_json, "read the geometry from a JSON file (corrtomo format)"),
                (self.save_json, "write this geometry as JSON (for 'corrtomo reconstruct "
                                 "--geometry')"),
                (self.slice_index, "z slice to preview"),
                (self.preview_button, "reconstruct only this slice, to check the settings "
                                      "quickly"),
                (self.run_button, "reconstruct the whole volume into a new image layer"),
                (self.fsc_button, "reconstruct even and odd projections separately and plot "
                                  "their Fourier shell correlation (resolution)"),
        ):
            w.setToolTip(tip)
        self._on_layer_changed()
        self._update_enabled()

    # ================================================================ form <-> geometry

    def _update_enabled(self, *_: Any) -> None:
        kind = self.kind.currentText()
        cone = kind == "cone" or (kind == "laminography" and self.cone_beam.isChecked())
        self.cone_beam.setEnabled(kind == "laminography")
        self.source_origin.setEnabled(cone)
        self.origin_detector.setEnabled(cone)
        self.tilt.setEnabled(kind == "laminography")
        self.alignment["align"].enabled = kind == "tilt_series"
        self.alignment["align_method"].enabled = kind == "tilt_series"
        method = METHOD_CHOICES[self.reconstruction["method"].value]
        self.reconstruction["iterations"].enabled = method in ("sirt", "cgls")
        self.reconstruction["min_value"].enabled = method == "sirt"
        self._update_voxel()

    def _on_kind_changed(self, kind: str) -> None:
        """Open the alignment section for a tilt series, with alignment ticked (a tilt
        series is rarely aligned as acquired: unaligned, the sample's ET error was 0.33
        against 0.12), close it for other scans."""
        if kind == "tilt_series":
            self.alignment["align"].value = True
            self.alignment.section.expand(animate=False)
        else:
            self.alignment.section.collapse(animate=False)

    def _update_voxel(self, *_: Any) -> None:
        try:
            g = self.geometry(quiet=True)
        except ValueError:
            self.voxel_label.setText("(geometry incomplete)")
            return
        if g is not None:
            self.voxel_label.setText(f"{g.default_voxel_size:.5g} {g.unit} (pixel at the axis)")

    def _layer_data(self) -> Any:
        layer = self.projections.layer(required="projection layer")
        data = full_resolution(layer)
        if layer.rgb:  # (y, x, RGB) has three axes too
            raise ValueError(f"layer {layer.name!r} is an RGB image; projections must be a "
                             "grey-level 3D stack (angle, row, col)")
        if data.ndim != 3:
            raise ValueError(
                f"layer {layer.name!r} is {data.ndim}D; projections must be a 3D stack "
                "(angle, row, col)"
            )
        return layer, data

    def geometry(self, quiet: bool = False) -> recon.Geometry | None:
        """The geometry described by the form for the chosen projection layer."""
        layer = self.projections.layer()
        if layer is None:
            if quiet:
                return None
            raise ValueError("no projection layer chosen: add or open a projection stack first")
        shape = full_resolution(layer).shape
        if len(shape) != 3:
            if quiet:
                return None
            raise ValueError(f"layer {layer.name!r} is {len(shape)}D; projections must be "
                             "(angle, row, col)")
        n = shape[0]
        if self._angle_list is not None:
            if len(self._angle_list) != n:  # never the range instead, without a word
                raise ValueError(
                    f"the angle list has {len(self._angle_list)} angles ({self._angle_source}) "
                    f"but {layer.name!r} has {n} projections: load a file with one angle per "
                    "projection, or change 'First angle' or 'Stop angle' to use a range")
            angles = self._angle_list
        else:
            angles = np.linspace(self.angle_start.value(), self.angle_stop.value(), n,
                                 endpoint=self.endpoint.isChecked())
        try:
            return self._form_geometry(angles, shape[1:])
        except SettingError as exc:  # the form's labels, not the API's names
            raise ValueError(in_words(exc, GEOMETRY_WORDS)) from None

    def _form_geometry(self, angles: np.ndarray, det: tuple[int, int]) -> recon.Geometry:
        kind = self.kind.currentText()
        common = dict(unit=self.unit.currentText(), shifts=(0.0, self.center.value()))
        ps = self.pixel_size.value()
        if kind == "parallel":
            return recon.Geometry.parallel(angles, det, ps, **common)
        if kind == "tilt_series":
            return recon.Geometry.tilt_series(angles, det, ps, **common)
        if kind == "cone":
            return recon.Geometry.cone(angles, det, self.source_origin.value(),
                                       self.origin_detector.value(), ps, **common)
        so = od = None
        if self.cone_beam.isChecked():
            so, od = self.source_origin.value(), self.origin_detector.value()
        return recon.Geometry.laminography(angles, det, self.tilt.value(), ps, so, od, **common)

    def set_geometry(self, geometry: recon.Geometry) -> None:
        """Fill the form from a geometry (JSON file or layer metadata)."""
        self.kind.setCurrentText(geometry.kind)
        a = geometry.angles_deg
        step = np.diff(a)
        uniform = a.size > 1 and np.allclose(step, step[0], atol=1e-6)
        if uniform:
            self.angle_start.setValue(float(a[0]))
            self.angle_stop.setValue(float(a[0] + step[0] * a.size))
            self.endpoint.setChecked(False)
            self._clear_angle_list()
        else:
            self._set_angle_list(a, "a list")
        self.pixel_size.setValue(geometry.pixel_size)
        self.unit.setCurrentText(geometry.unit if geometry.unit in UNITS else "pixel")
        if geometry.is_cone:
            self.source_origin.setValue(geometry.source_origin)
            self.origin_detector.setValue(geometry.origin_detector)
        self.cone_beam.setChecked(geometry.kind == "laminography" and geometry.is_cone)
        if geometry.tilt_deg is not None:
            self.tilt.setValue(geometry.tilt_deg)
        self.center.setValue(float(np.mean(geometry.shifts[:, 1])))
        self._update_enabled()

    def _pick_references(self, keep_choice: bool = False) -> None:
        """Choose the projections' flats and darks among the layers named for them.

        For each of *Flat fields* / *Dark fields*: among the image layers whose name holds
        "flat" ("dark") and whose detector shape (row, col) is the projections', the one
        whose name starts like the projections' the longest (``microCT raw projections``
        -> ``microCT flats``, never ``nanoCT flats``) or, with nothing in common, starts
        with the word (``flats.tif`` opened beside ``scan.tif``); none where two tie. With
        ``keep_choice`` a choice already made stays; otherwise (other projections chosen) a
        choice not named for these projections is cleared (``microCT flats`` has the ET
        tilt series' detector shape, and its counts made the ET's -log fail).
        """
        layer = self.projections.layer()
        if layer is None:
            return
        detector = tuple(full_resolution(layer).shape[-2:])
        for select, word in ((self.flats, "flat"), (self.darks, "dark")):
            current = select.layer()
            if current is not None and keep_choice:
                continue
            fits: dict[str, int] = {}
            for c in self.viewer.layers:
                name = c.name.lower()
                if (isinstance(c, napari.layers.Image) and c.name != layer.name and word in name
                        and tuple(full_resolution(c).shape[-2:]) == detector):
                    common = os.path.commonprefix([c.name, layer.name])
                    if common.strip() or name.lstrip().startswith(word):
                        fits[c.name] = len(common)
            best = max(fits.values(), default=None)
            named = [name for name, common in fits.items() if common == best]
            if len(named) == 1:
                select.setCurrentText(named[0])
            elif current is not None and current.name not in fits:
                select.setCurrentText("")  # chosen for other projections

    def _on_layer_inserted(self, _event: Any) -> None:
        self._pick_references(keep_choice=True)

    def _on_flats_changed(self, text: str) -> None:
        """-log follows the flats (raw counts need it), as the core's log=None does; the
        darks go with cleared flats (darks alone are refused, after a warning to choose
        flats)."""
        self.preprocess["log"].value = bool(text)
        if not text:
            self.darks.setCurrentText("")

    def _on_layer_changed(self, *_: Any) -> None:
        # the last outcome was of the layer chosen before (a running task's shows its own)
        self.result.setText("")
        if not self.runner.busy:
            self.runner.status.setText("")
        layer = self.projections.layer()
        if layer is None:
            return
        self._pick_references()
        shape = full_resolution(layer).shape
        meta = layer.metadata.get("geometry")
        if isinstance(meta, dict):
            try:
                self.set_geometry(recon.Geometry.from_dict(meta))
                self._geometry_from = layer.name
            except ValueError as exc:
                show_error(f"geometry in the layer metadata is unusable: {exc}")
        if len(shape) == 3:
            try:
                g = self.geometry(quiet=True)
            except ValueError:
                g = None
            vol = g.default_volume_shape() if g is not None else (shape[1], shape[2], shape[2])
            truth = layer.metadata.get("truth", {})
            if isinstance(truth, dict) and "volume_shape" in truth:
                vol = tuple(truth["volume_shape"])
            self.reconstruction["shape"].value = ", ".join(str(int(n)) for n in vol)
            axis = 1 if self.kind.currentText() == "tilt_series" else 0
            self.slice_index.setValue(int(vol[axis]) // 2)
        self._update_voxel()

    def load_geometry(self, path: str) -> recon.Geometry:
        """Fill the form from a geometry JSON that fits the chosen projections (the cone
        scan's was once used for the parallel one, detector and all, without a word)."""
        g = recon.Geometry.load(path)
        layer = self.projections.layer()
        if layer is not None:
            self._check_fits(g, os.path.basename(str(path)), layer)
        self.set_geometry(g)
        self._geometry_from = None if layer is None else layer.name
        return g

    def _check_fits(self, geometry: recon.Geometry, source: str, layer: Any) -> None:
        """Refuse a geometry whose angle count or detector (rows, cols) is not the layer's,
        naming the layer it fits if there is one."""
        scan = (geometry.n_angles, *geometry.det_shape)
        shape = tuple(full_resolution(layer).shape)
        if len(shape) != 3 or shape == scan:  # a 2D layer is refused as projections anyway
            return
        fits = [c.name for c in self.viewer.layers
                if isinstance(c, napari.layers.Image) and tuple(full_resolution(c).shape) == scan]
        of = (f"it seems to be the geometry of {fits[0]!r} (choose that layer as "
              "'Projections' to use it); " if fits else "")
        raise ValueError(
            f"{source} describes {scan[0]} projections of {scan[1]} x {scan[2]} pixels "
            f"(rows x cols) but {layer.name!r} is {shape[0]} of {shape[1]} x {shape[2]}: "
            f"{of}load the geometry of {layer.name!r} instead; the form is unchanged")

    def save_geometry(self, path: str) -> None:
        self.geometry().save(path)

    def _ask_load(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load geometry", "", "JSON (*.json)")
        act_on_file(path, self.load_geometry, show_error)

    def _ask_save(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save geometry", "geometry.json",
                                              "JSON (*.json)")
        act_on_file(path, self.save_geometry, show_error)

    def load_angles(self, path: str) -> np.ndarray:
        """One angle (degrees) per line, or a .npy array."""
        try:
            angles = np.load(path) if str(path).endswith(".npy") else np.loadtxt(path, ndmin=1,
                                                                                  delimiter=None)
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read angles from {path}: {exc}") from None
        angles = np.asarray(angles, float).ravel()
        self._set_angle_list(angles, os.path.basename(str(path)))
        return angles

    def _set_angle_list(self, angles: np.ndarray, source: str) -> None:
        self._angle_list = np.array(angles, float)
        self._angle_source = f"from {source}"
        self.angle_info.setText(f"{angles.size} angles {self._angle_source}")

    def _clear_angle_list(self, *_: Any) -> None:
        self._angle_list = None
        self._angle_source = ""
        self.angle_info.setText("")

    def _ask_angles(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Angles (degrees)", "",
                                              "Text or NumPy (*.txt *.csv *.npy)")
        act_on_file(path, self.load_angles, show_error)

    # ================================================================ actions

    def scan_settings(self) -> pipeline.ScanSettings:
        """The preprocessing forms as the core's settings (alignment for tilt series only;
        the offset itself is the geometry's)."""
        align = self.alignment["align"].value and self.kind.currentText() == "tilt_series"
        return self.alignment.value(self.preprocess.value(), align=align,
                                    center="auto" if self.auto_center.isChecked() else None)

    def recon_settings(self) -> pipeline.ReconSettings:
        """The reconstruction form as the core's settings (the lower bound for SIRT only);
        raises ValueError in the form's words (e.g. a volume shape that is not three
        positive sizes)."""
        form = self.reconstruction.kwargs()
        return self.reconstruction.value(
            min_value=form["min_value"] if form["method"] == "sirt" else None)

    def _warn(self, message: str) -> None:
        """A warning about the action being started: a notification, and on the result line
        once it is done (the notification fades)."""
        self._notes.append(message)
        show_warning(message)

    def _check_stack(self, layer: Any) -> None:
        """Refuse a reconstruction as projections; warn about a layer without an acquisition
        geometry of its own that looks like a volume or would get another layer's geometry
        (the microCT phantom was once reconstructed with the raw scan's, without a word)."""
        if is_projection_stack(layer):
            return
        if "method" in layer.metadata:
            raise ValueError(f"{layer.name!r} is a reconstruction, a volume (z, y, x), not a "
                             "projection stack: choose the projections (angle, row, col) as "
                             "'Projections'")
        volume = "modality" in layer.metadata  # a sample's volume, as the samples name them
        other = self._geometry_from not in (None, layer.name)
        if volume or other:
            looks = " and looks like a volume of the sample (z, y, x)" if volume else ""
            used = f"the geometry of {self._geometry_from!r}" if other else "the form's geometry"
            self._warn(f"{layer.name!r} has no acquisition geometry of its own{looks}: {used} "
                       "is used for it; choose a projection stack (angle, row, col) as "
                       "'Projections', or check the geometry")

    @staticmethod
    def _own_pixel_size(layer: Any) -> tuple[float, str, str] | None:
        """The detector pixel size the layer gives itself, its unit and where it is from
        (its geometry metadata, else its scale); None where it has no length unit."""
        meta = layer.metadata.get("geometry")
        try:
            if isinstance(meta, dict):
                g = recon.Geometry.from_dict(meta)
                own = (g.pixel_size, g.unit, "geometry metadata")
            else:
                frame = layer_frame(layer, 2)
                own = (frame.spacing[-1], frame.unit, "scale")
        except ValueError:  # unusable metadata or mixed units: said elsewhere
            return None
        return own if own[1] in UNITS[1:] else None

    def _check_pixel_size(self, layer: Any, geometry: recon.Geometry) -> None:
        """Refuse a 'Detector pixel size' (with its unit) that is a slip
        (:func:`.core.units.slip_ratio`) of the layer's own: 500 typed for 0.5 um, or nm
        chosen for um, gave voxels of 500 um (0.5 nm) beside the 0.5 um layers without a
        word."""
        own = self._own_pixel_size(layer)
        if own is None:
            return
        size, unit, where = own
        slip = slip_ratio(geometry.pixel_size, geometry.unit, size, unit)
        if slip is None:
            return
        ratio = float(slip[0])
        off = f"{ratio:.0f} times" if ratio > 1 else f"1/{1.0 / ratio:.0f} of"
        raise ValueError(
            f"'Detector pixel size' {geometry.pixel_size:g} {geometry.unit} is {off} the pixel "
            f"size of {layer.name!r} ({size:g} {unit}, from its {where}): check the number "
            "and its unit")

    def _inputs(self, action: str = "reconstruct") -> dict[str, Any]:
        """Everything a worker needs, read in the GUI thread (raises ValueError); warns
        (:meth:`_warn`) about what would make a reconstruction (``action``: "reconstruct",
        "preview" or "search") wrong."""
        layer, data = self._layer_data()
        self._check_stack(layer)
        geometry = self.geometry()
        self._check_pixel_size(layer, geometry)
        offset = self.center.value()
        try:  # an axis off the detector, named before the grid that misses it is
            recon.check_center(geometry.shifted(col=-offset), offset)
        except SettingError as exc:
            raise ValueError(in_words(exc, GEOMETRY_WORDS)) from None
        flats = self.flats.layer()
        darks = self.darks.layer()
        # by name: a docked plugin's viewer is a proxy whose layers are new objects on
        # each access (layer names are unique)
        for chosen, label in ((flats, "Flat fields"), (darks, "Dark fields")):
            if chosen is not None and chosen.name == layer.name:
                raise ValueError(f"'{label}' is the projection layer {layer.name!r} itself: "
                                 "choose the layer of those images, or none")
        if flats is not None and darks is not None and flats.name == darks.name:
            raise ValueError(f"{flats.name!r} is chosen as both 'Flat fields' and 'Dark "
                             "fields': flats are taken with the beam, darks without")
        scan = self.scan_settings()
        peak = recon.raw_counts_peak(data, flats, scan.log, geometry.kind)
        if peak is not None:  # reconstructed as line integrals they give garbage
            self._warn(f"{layer.name!r} looks like raw detector counts (values up to "
                       f"{peak:.6g}), not line integrals: choose its 'Flat fields' or tick "
                       "'-log' (reconstructed as they are, the volume is not attenuation)")
        settings = self.recon_settings()
        # a preview of a cone beam or laminography is FDK/FBP whatever the method
        if action == "preview" or (action == "reconstruct"
                                   and settings.method in (None, "fbp", "fdk")):
            short = recon.short_scan_message(geometry)
            if short is not None:
                self._warn(short)
        # FBP of the raw microCT sample: relative error 0.81 so, 0.13 with both
        if (action != "search" and flats is not None and scan.outlier_threshold is None
                and scan.center is None and self.center.value() == 0.0):
            self._notes.append("From raw counts: if the volume shows streaks or doubled edges, "
                               "try 'Find centre' and a 'Zinger threshold' of 5 sigma.")
        return {
            "layer": layer,
            "data": np.asarray(data),
            "flats": None if flats is None else np.asarray(flats.data),
            "darks": None if darks is None else np.asarray(darks.data),
            "scan": scan,
            "settings": settings,
            "geometry": geometry,
        }

    def _start(self, func, on_result, label: str, action: str = "reconstruct") -> Any:
        self._notes = []
        try:
            inputs = self._inputs(action)
        except ValueError as exc:
            self.result.setText("")  # the last outcome is not this action's
            self.runner.refuse(str(exc))
            return None
        notes = self._notes
        name = inputs["layer"].name

        def done(result: Any) -> None:
            self.result.setText("")
            on_result(result)
            text = "\n".join(t for t in (self.result.text(), *notes) if t)
            # other projections were chosen while it ran: say which scan this is of
            of = f"Of {name!r}: " if text and self.projections.currentText() != name else ""
            self.result.setText(of + text)

        return self.runner.start(func, inputs, on_result=done, label=label)

    def preview(self) -> Any:
        """Reconstruct one slice (along the rotation axis) into a 2D preview layer."""
        index = int(self.slice_index.value())

        def work(inp, progress=None):
            img, g = pipeline.preview_slice(inp["data"], inp["geometry"], index, inp["scan"],
                                            inp["settings"], flats=inp["flats"],
                                            darks=inp["darks"], progress=progress)
            return inp, inp["settings"].resolved(g), img

        def done(result) -> None:
            inp, s, img = result
            vs = s.voxel_size
            add_result(self.viewer, img, name=_result_name(inp["layer"].name, "preview"),
                       layer_type="image", created_by=CREATED_BY, scale=(vs, vs),
                       unit=inp["geometry"].unit, metadata={"slice": index, "method": s.method},
                       source=inp["layer"])

        return self._start(work, done, "Reconstruction preview", "preview")

    def run(self) -> Any:
        """Full reconstruction into a new image layer with voxel size and unit."""

        def work(inp, progress=None):
            return inp, pipeline.run_reconstruction(
                inp["data"], inp["geometry"], inp["scan"], inp["settings"], flats=inp["flats"],
                darks=inp["darks"], progress=progress)

        def done(result) -> None:
            inp, r = result
            vs, g, s = r.voxel_size, r.geometry, r.settings
            name = _result_name(inp["layer"].name, "reconstruction")
            replaced = name in self.viewer.layers
            layer = add_result(self.viewer, r.volume, name=name,
                       layer_type="image", created_by=CREATED_BY, scale=(vs, vs, vs), unit=g.unit,
                       metadata={"geometry": g.to_dict(), "method": s.method,
                                 "iterations": s.iterations,
                                 # the Project table's modality column, from the scan's
                                 **{k: v for k, v in inp["layer"].metadata.items()
                                    if k == "modality"}},
                       source=inp["layer"])
            aligned = "" if r.alignment is None else (
                f"; alignment: {r.alignment.summary(ALIGN_WORDS)}")
            # add_result updates the layer it made earlier (never another's): say so
            again = (f"; replaced the earlier '{name}' (rename a layer to keep it)"
                     if replaced and layer.name == name else "")
            self.result.setText(f"{s.method.upper()}: {r.volume.shape} voxels of {vs:.4g} "
                                f"{g.unit}{aligned}{again}")

        return self._start(work, done, "Reconstruction")

    def run_fsc(self) -> Any:
        """Reconstruct even/odd halves, plot their FSC and report the resolution."""

        def work(inp, progress=None):
            res, g = pipeline.half_map_fsc(inp["data"], inp["geometry"], inp["scan"], inp["settings"],
                                           flats=inp["flats"], darks=inp["darks"],
                                           progress=progress)
            return g, res

        def done(result) -> None:
            g, res = result
            self.last_fsc = res
            unit = g.unit
            ax = self.plot.axes()
            ax.plot(res.frequency, res.fsc, label="FSC (even/odd)")
            ax.plot(res.frequency, res.threshold_half_bit, "--", label="1/2-bit")
            ax.plot(res.frequency, res.threshold_one_bit, ":", label="1-bit")
            ax.axhline(0, color="0.7", lw=0.5)
            ax.set_xlabel(f"spatial frequency (1/{unit})")
            ax.set_ylabel("correlation")
            ax.set_ylim(-0.2, 1.05)
            ax.legend(fontsize=8)
            self.plot.draw()
            self.result.setText(res.summary(unit))

        return self._start(work, done, "FSC of even/odd halves")

    def find_center(self) -> Any:
        """Search the rotation-axis offset and put it into the form."""

        def work(inp, progress=None):
            _, g = pipeline.prepare_scan(inp["data"], inp["geometry"], replace(inp["scan"], center="auto"),
                                         inp["flats"], inp["darks"], progress)
            return float(np.mean(g.shifts[:, 1] - inp["geometry"].shifts[:, 1]))

        def done(offset: float) -> None:
            self.center.setValue(self.center.value() + float(offset))
            text = (f"Rotation-axis offset: {self.center.value():.3f} px (the search moved it "
                    f"by {offset:+.3f} px)")
            self.result.setText(text)
            show_info(text)

        return self._start(work, done, "Rotation-centre search", "search")

