"""The tutorial (docs/tutorial.md) followed as written, in one real napari window (Issue 16).

Every step is what the tutorial tells the user to do: buttons are clicked, the landmarks
are clicked on the canvas, the ROI box is drawn with the rectangle tool and the scribbles
are painted on the registered ROI with mouse strokes; each result is checked against the
truth of a small ``correlative_particles`` sample (the tutorial's own, scanned by the same
``synthetic.correlative_scans`` as the full-size sample of the File menu). With
``CORRTOMO_TUTORIAL_SHOTS=<folder>`` the run saves the tutorial's screenshots there
(``make screenshots``).

Tolerances (stated with each check) are what this small sample, its noise and a few
strokes allow; each has room for a real regression to fail it.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import cc3d
import numpy as np
import pandas as pd
import pytest
from napari.layers import Layer
from qtpy.QtCore import QPoint, Qt
from qtpy.QtWidgets import QCheckBox, QFileDialog
from scipy import ndimage as ndi

from napari_corrtomo._sample_data import _scan_layers
from napari_corrtomo.core import register as reg
from napari_corrtomo.core import synthetic
from napari_corrtomo.core.classify import iou_per_class
from napari_corrtomo.core.quantify import QuantifySettings, quantify, spherical_envelopes
from napari_corrtomo.core.register import apply_to_points
from napari_corrtomo.core.register.plane import sample_plane
from napari_corrtomo.core.synthetic import PORE, RESIN, SOLID
from napari_corrtomo.demo import fsc_reference_resolution
from napari_corrtomo.widgets._layers import TABLES
from napari_corrtomo.widgets._registered_view import is_drawing, is_view, registered_views
from napari_corrtomo.widgets.classify import ClassifyWidget
from napari_corrtomo.widgets.project import ProjectWidget
from napari_corrtomo.widgets.quantify import QuantifyWidget
from napari_corrtomo.widgets.reconstruct import ReconstructWidget
from napari_corrtomo.widgets.register import RegisterWidget

pytest.importorskip("SimpleITK")

#: the tutorial's sample: 40 particles in a 64 x 96 x 96 um column; the picked particle
#: (10 um) imaged by nanoCT with 0.13 um voxels
SMALL = dict(microct_shape=(64, 96, 96), n_particles=40, particle_diameter_um=(10.0, 30.0),
             nanoct_shape=(96, 96, 96), nanoct_voxel_um=0.13, et_shape=(32, 32, 32))
SHOTS = os.environ.get("CORRTOMO_TUTORIAL_SHOTS")
LEFT = Qt.MouseButton.LeftButton


@pytest.fixture(scope="module")
def sample():
    s = synthetic.correlative_particles(seed=0, **SMALL)
    return s, synthetic.correlative_scans(s, raw=True, modalities=("microCT", "nanoCT"))


def _wait(qtbot, widget, timeout=90000):
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=timeout)
    assert widget.runner.last_error is None, widget.runner.last_error


class Tutorial:
    """The window of the tutorial: one dock at a time, as the tutorial opens them."""

    def __init__(self, viewer, qtbot):
        self.viewer, self.qtbot, self.dock = viewer, qtbot, None

    def open(self, widget, name: str):
        if self.dock is not None:  # the user closes the previous step's dock
            self.viewer.window.remove_dock_widget(self.dock)
        self.dock = self.viewer.window.add_dock_widget(widget, name=name, area="right")
        self.qtbot.waitUntil(widget.isVisible)
        return widget

    def click(self, button) -> None:
        """Click a button (a check box on its box, where a person clicks it)."""
        assert button.isVisible() and button.isEnabled(), button.text()
        pos = QPoint(8, button.height() // 2) if isinstance(button, QCheckBox) else QPoint()
        self.qtbot.mouseClick(button, LEFT, pos=pos)

    def shot(self, name: str) -> None:
        """The window as the user sees it, saved as docs/images/tutorial_<name>.png."""
        if not SHOTS:
            return
        spec = importlib.util.spec_from_file_location(
            "screenshots", Path(__file__).resolve().parents[2] / "scripts" / "screenshots.py")
        screenshots = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(screenshots)
        screenshots.save_window(self.viewer, Path(SHOTS) / f"tutorial_{name}.png")


def _strokes(labels_plane: np.ndarray, label: int, n: int, rng, depth: float = 3.5,
             length: float = 10.0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` straight strokes (pixel end points) ``length`` px long whose every point lies
    ``depth`` px or more inside ``label`` (a hand painting a phase's interior)."""
    inside = ndi.distance_transform_edt(labels_plane == label)
    seeds = np.argwhere(inside >= depth)
    out = []
    for _ in range(500):
        if len(out) == n or not len(seeds):
            break
        a = seeds[rng.integers(len(seeds))].astype(float)
        angle = rng.uniform(0, np.pi)
        b = a + length * np.array([np.sin(angle), np.cos(angle)])
        line = np.rint(a + np.linspace(0, 1, 20)[:, None] * (b - a)).astype(int)
        if (line >= 0).all() and (line < labels_plane.shape).all() and \
                (inside[tuple(line.T)] >= depth).all():
            out.append((a, b))
    assert len(out) == n, f"no room for {n} strokes of label {label}"
    return out


def test_the_tutorial_as_written(make_napari_viewer, qtbot, mouse, sample, tmp_path,
                                 monkeypatch, heartbeat, ui_record):
    s, scans = sample
    t = s.truth
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1800, 1100)
    tut = Tutorial(viewer, qtbot)
    # the raw scans as File > Open Sample > "Correlative particles, raw microCT and nanoCT
    # scans" gives them (projections, flats, darks, hidden phantom), at the tutorial's size
    for name, scan in scans.items():
        for data in _scan_layers(f"{name} raw projections", scan):
            viewer.add_layer(Layer.create(*data))

    # ---- 1. Reconstruct: projections chosen (their flats and darks with them), Reconstruct
    # clicked
    rw = tut.open(ReconstructWidget(viewer), "Reconstruct")
    for name, scan in scans.items():
        rw.projections.set_layer(viewer.layers[f"{name} raw projections"])
        assert (rw.flats.currentText(), rw.darks.currentText()) == (f"{name} flats",
                                                                     f"{name} darks")
        assert rw.preprocess["log"].value is True  # -log ticks itself with the flats
        assert rw.reconstruction.value().shape == scan.phantom.shape  # filled in
        tut.click(rw.run_button)
        _wait(qtbot, rw)
        rec = viewer.layers[f"{name} reconstruction"]
        np.testing.assert_allclose(rec.scale, (scan.voxel_size,) * 3)
        # FBP of 240-360 noisy projections: within 25 % (relative L2) of the object
        err = np.linalg.norm(rec.data - scan.phantom) / np.linalg.norm(scan.phantom)
        assert err < 0.25, (name, err)
        viewer.layers[f"{name} raw projections"].visible = False
    # FSC of even/odd halves (nanoCT, the projections still chosen) against the resolution
    # the object itself gives: within 35 % (one shell of this 96-voxel volume is ~2 % of
    # Nyquist; the half-bit curve is noisy where it crosses)
    tut.click(rw.fsc_button)
    _wait(qtbot, rw)
    micro = viewer.layers["microCT reconstruction"]
    nano = viewer.layers["nanoCT reconstruction"]
    nano_scan = scans["nanoCT"]
    ref = fsc_reference_resolution(np.asarray(nano.data), nano_scan.phantom,
                                   nano_scan.voxel_size, rw.last_fsc)
    assert rw.last_fsc.resolution_half_bit == pytest.approx(ref, rel=0.35)
    micro.visible = False
    mouse.look_at(viewer, 48 * 0.13, (48 * 0.13, 48 * 0.13), 14.0)
    tut.shot("1_reconstruct")
    qt_viewer = viewer.window._qt_viewer

    # ---- 2. Register: landmarks clicked alternately in the two volumes, similarity fit,
    # Apply, Refine by intensity
    gw = tut.open(RegisterWidget(viewer), "Register")
    gw.fixed_select.set_layer(micro)
    gw.moving_select.set_layer(nano)
    tut.click(gw.new_points_button)
    pf, pm = gw.fixed_points_select.layer(), gw.moving_points_select.layer()
    assert viewer.layers.selection.active is pf and pf.mode == "add"
    gw.fit_form["model"].value = "similarity"
    # the user's picking error: one voxel in each volume
    rng = np.random.default_rng(3)
    n = len(t.landmarks_microct)
    targets_f = t.landmarks_microct + rng.normal(0, 1.0, (n, 3))
    targets_m = t.landmarks_nanoct + rng.normal(0, 0.13, (n, 3))
    for i, (f, m) in enumerate(zip(targets_f, targets_m, strict=True)):
        micro.visible, nano.visible = True, False  # the eye buttons
        mouse.look_at(viewer, f[0], f[1:], 40.0)
        mouse.click(viewer, f[1:], tol=0.2)
        # the click landed where it was made; the moving layer is chosen for its partner
        assert np.abs(pf.data[i] - f).max() < 0.2, (pf.data[i], f)
        assert viewer.layers.selection.active is pm and pm.mode == "add"
        micro.visible, nano.visible = False, True
        mouse.look_at(viewer, m[0], m[1:], 12.0)
        mouse.click(viewer, m[1:], tol=0.05)
        assert np.abs(pm.data[i] - m).max() < 0.07, (pm.data[i], m)
        assert viewer.layers.selection.active is pf
        # live residuals: from the third pair on, every completed pair refits
        assert gw.table.table.rowCount() == (i + 1 if i >= 2 else 0)
    micro.visible = True
    tut.click(gw.fit_button)
    assert gw.transform is not None and gw.table.table.rowCount() == n  # residual per pair
    tut.click(gw.apply_button)
    tut.click(gw.refine_button)
    _wait(qtbot, gw)
    fov = reg.fov_box(nano.data.shape, nano.scale)
    grid = np.stack(np.meshgrid(*[np.linspace(a, b, 4) for a, b in zip(*fov, strict=True)],
                                indexing="ij"), -1).reshape(-1, 3)
    err = reg.compare(gw.transform, t.nanoct_to_microct, grid)
    assert err["tre_rms"] < 0.5, err  # over the nanoCT field: below half a microCT voxel
    # the overlay in 2D: at three z-slices of the microCT through the nanoCT field the
    # window shows the nanoCT's data (the screenshots differ from the microCT alone there)
    pf.visible = pm.visible = False
    nano.colormap = "magenta"
    view = registered_views(viewer)[nano.name]
    lo, hi = t.nanoct_fov_microct.min(0), t.nanoct_fov_microct.max(0)
    for z in np.linspace(lo[0], hi[0], 5)[1:4]:
        mouse.look_at(viewer, z, 0.5 * (lo[1:] + hi[1:]), 1.3 * np.ptp(t.nanoct_fov_microct[:, 1:],
                                                                        axis=0).max())
        qtbot.waitUntil(view.is_current, timeout=20000)
        with_view = viewer.screenshot(canvas_only=True, flash=False).astype(float)
        view.layer.visible = False
        alone = viewer.screenshot(canvas_only=True, flash=False).astype(float)
        view.layer.visible = True
        # magenta adds red and blue only where the nanoCT lies
        diff = np.abs(with_view - alone)[..., :3].sum(axis=-1)
        assert (diff > 30).mean() > 0.01, f"no nanoCT drawn at z={z:.1f}"
        np.testing.assert_allclose(with_view[..., 1], alone[..., 1], atol=2)
    tut.shot("2_register")

    # ---- 3. ROI across scales: a rectangle drawn over the picked particle in the microCT
    # slice through its centre; Crop matching region; Show fields of view
    p = t.particles.loc[t.particles["particle"] == t.target_particle].iloc[0]
    c = p[["z_um", "y_um", "x_um"]].to_numpy(float)
    half = 0.5 * p["esd_um"] + 0.6
    mouse.look_at(viewer, c[0], c[1:], 4 * half)
    viewer.layers.selection.active = micro  # the new Shapes layer takes its frame
    tut.click(qt_viewer.layerButtons.newShapesButton)
    box = viewer.layers.selection.active
    tut.click(qt_viewer.controls.widgets[box].rectangle_button)
    mouse.drag(viewer, c[1:] - half, c[1:] + half, tol=0.1)
    assert len(box.data) == 1 and box.ndim == 3
    drawn = np.array([box.data_to_world(v) for v in box.data[0]])
    assert np.abs(drawn.min(0)[1:] - (c[1:] - half)).max() < 0.2
    assert np.abs(drawn.max(0)[1:] - (c[1:] + half)).max() < 0.2
    box.mode = "pan_zoom"
    assert gw.roi_shapes.layer() is box  # the only box on offer; never the FOV overlay
    assert gw.roi_target.layer() is nano  # crop from: the moving volume, preselected
    gw.roi_depth.setValue(2 * half)
    tut.click(gw.roi_button)
    roi = viewer.layers[f"{nano.name} ROI"]
    (z0, z1), (y0, y1), (x0, x1) = roi.metadata["corrtomo_roi_slices"]
    tl = np.asarray(t.nanoct_labels.data)
    truth_roi = tl[z0:z1, y0:y1, x0:x1]
    np.testing.assert_allclose(np.asarray(roi.data), np.asarray(nano.data)[z0:z1, y0:y1, x0:x1])
    # the crop holds the picked particle: >= 97 % of its true voxels (solid and pores)
    comp = cc3d.connected_components(tl >= SOLID, connectivity=6)
    centre = np.rint(apply_to_points(np.linalg.inv(t.nanoct_to_microct), c)[0] / 0.13)
    particle = comp == comp[tuple(centre.astype(int))]
    assert np.count_nonzero(particle[z0:z1, y0:y1, x0:x1]) / np.count_nonzero(particle) > 0.97
    assert gw.fov_reference.layer() is micro  # outline in: the fixed volume, preselected
    tut.click(gw.fov_button)
    outlines = viewer.layers[f"fields of view in {micro.name}"]
    mine = np.asarray(outlines.features["volume"]) == nano.name
    verts = np.concatenate([np.array([outlines.data_to_world(v) for v in poly])
                            for poly, keep in zip(outlines.data, mine, strict=True) if keep])
    # every outline vertex on the true field of view's bounds within one microCT voxel
    assert np.all(verts >= lo - 1.0) and np.all(verts <= hi + 1.0)
    tut.shot("3_roi")

    # ---- 4. Classify: the ROI ticked, New scribble layer, strokes painted on it in 2D,
    # Live training, Predict volume
    for layer in viewer.layers:
        layer.visible = layer is roi or is_view(layer) and layer.name.startswith(roi.name)
    cw = tut.open(ClassifyWidget(viewer), "Classify")
    assert cw.checked_channel_names() == [roi.name]  # the selected layer is ticked
    tut.click(cw.new_scribbles)
    scribbles = cw.scribbles.layer()
    paint = registered_views(viewer)[scribbles.name]
    truth2 = np.where(truth_roi == SOLID, SOLID, RESIN).astype(np.uint8)
    centre_roi = np.asarray(roi.data_to_world(np.array(truth2.shape) / 2))
    strokes = []  # (world end a, world end b, label)
    for dz in (-0.25, 0.0, 0.25):  # three slices through the ROI, a quarter apart
        z = centre_roi[0] + dz * np.ptp(verts[:, 0])
        mouse.look_at(viewer, z, centre_roi[1:], 1.1 * 2 * half)
        qtbot.waitUntil(paint.is_current, timeout=20000)
        viewer.layers.selection.active = paint.layer
        paint.layer.mode = "paint"
        paint.layer.brush_size = 3
        k = paint.plane_index()
        plane = sample_plane(truth2, paint._matrix(), paint.shape[1:], k, order=0, cval=0)
        for label in (RESIN, SOLID):
            paint.layer.selected_label = label
            for a, b in _strokes(plane, label, 3, rng):
                wa, wb = (np.asarray(paint.layer.data_to_world(e)) for e in (a, b))
                mouse.drag(viewer, wa, wb, steps=6, tol=0.05)
                assert paint.layer.mode == "paint"  # the brush stays active
                strokes.append((np.r_[z, wa], np.r_[z, wb], label))
    marked = np.asarray(scribbles.data)
    # every stroke landed in the ROI's voxels at the clicked world position (within one
    # voxel): its two ends are painted with its label there
    for a, b, label in strokes:
        for end in (a, b):
            idx = np.asarray(scribbles.world_to_data(end))
            near = np.argwhere(marked == label)
            assert np.abs(near - idx).max(axis=1).min() <= 1.0, (end, label)
    # and nothing else: the painted voxels are the truth's phase (interiors only)
    for label in (RESIN, SOLID):
        assert (truth2[marked == label] == label).mean() > 0.97, label
    assert (marked > 0).sum() > 300
    tut.click(cw.train_button)  # live training
    _wait(qtbot, cw)
    assert cw.train_button.isChecked() and cw.live is not None
    tut.click(cw.predict_button)
    _wait(qtbot, cw)
    tut.click(cw.train_button)  # live training off
    seg_layer = viewer.layers[f"{roi.name} segmentation"]
    seg = np.asarray(seg_layer.data)
    # solid IoU > 0.9 against the truth (resin-filled macropores count as resin)
    assert iou_per_class(truth2, seg)[SOLID] > 0.9
    np.testing.assert_allclose(seg_layer.scale, roi.scale)
    tut.shot("4_classify")

    # ---- 5. Quantify: phase 1 (resin: the pores), matrix 2 (solid), the boundary at the
    # mid grey level of the ROI's image, only inside the particle envelopes not cut by the
    # ROI's border (the particle, not a neighbour's fragment); porosity,
    # envelopes, local thickness (the pore size distribution) and closed pores
    qw = tut.open(QuantifyWidget(viewer), "Quantify")
    qw.labels_select.set_layer(seg_layer)
    qw.labels_form["phase"].value = RESIN
    qw.labels_form["matrix"].value = SOLID
    qw.intensity_select.set_layer(roi)
    tut.click(qw.labels_form["mid_level"].native)
    assert not qw.labels_form["exclude_border"].native.isEnabled()  # only with the next
    tut.click(qw.labels_form["within_envelopes"].native)
    tut.click(qw.labels_form["exclude_border"].native)
    assert qw.settings().mid_level and qw.settings().within_envelopes
    assert qw.settings().exclude_border
    for key, cb in qw.checks.items():
        if cb.isChecked() != (key in ("porosity", "envelopes", "thickness", "closed_pores")):
            cb.click()
    tut.click(qw.run_button)
    _wait(qtbot, qw)
    summary = qw.result.summary().set_index("quantity")["value"]
    # (a) against the same envelope of the TRUE solid in the crop: what segmentation and
    # reconstruction change, within 0.03 absolute
    true_solid = truth_roi == SOLID
    comps = cc3d.connected_components(true_solid, connectivity=6)
    biggest = np.argmax(np.bincount(comps.ravel())[1:]) + 1
    env = spherical_envelopes(true_solid, (comps == biggest).astype(np.uint8), roi.scale) > 0
    ref = np.count_nonzero(env & ~true_solid) / np.count_nonzero(env)
    assert summary["largest particle porosity"] == pytest.approx(ref, abs=0.03)
    # (b) against the analytic particle (its pores inside its sphere)
    assert summary["largest particle porosity"] == pytest.approx(t.nanoct_macroporosity,
                                                                  abs=0.03)
    assert summary["largest particle ESD"] == pytest.approx(p["esd_um"], rel=0.1)
    # the pore size distribution (local thickness of the pores in the envelopes, the seed's
    # PoSD) against the same measure of the true pores of the true particle in the crop
    true_particle = particle[z0:z1, y0:y1, x0:x1]
    true_sizes = quantify(np.where(true_particle, truth_roi, RESIN).astype(np.uint8),
                          roi.scale, "um", measures=["thickness"], settings=QuantifySettings(
                              phase=PORE, matrix=SOLID, outside=(RESIN,))).summary()
    true_sizes = true_sizes.set_index("quantity")["value"]
    print("tutorial pore sizes (um): mean", summary["phase mean"], "truth",
          true_sizes["phase mean"], "median", summary["phase median"], "truth",
          true_sizes["phase median"])
    assert summary["phase mean"] == pytest.approx(true_sizes["phase mean"], rel=0.1)
    assert summary["phase median"] == pytest.approx(true_sizes["phase median"], rel=0.1)
    assert qw.plot_select.currentText() == "phase size distribution"  # plotted with its fit
    assert len(qw.plot.figure.axes[0].patches) > 3 and qw.plot.figure.axes[0].lines
    # Export all tables (CSV): the folder chosen in the dialog
    monkeypatch.setattr(QFileDialog, "getExistingDirectory",
                        staticmethod(lambda *a, **k: str(tmp_path / "tables")))
    (tmp_path / "tables").mkdir()
    tut.click(qw.export_all_button)
    exported = pd.read_csv(tmp_path / "tables" / "summary.csv").set_index("quantity")
    assert exported.loc["largest particle porosity", "value"] == \
        pytest.approx(summary["largest particle porosity"])
    assert (tmp_path / "tables" / "particle_envelopes.csv").exists()
    assert "particle_envelopes" in seg_layer.metadata[TABLES]
    for layer in viewer.layers:  # the ROI and the envelope, in 2D
        layer.visible = layer in (registered_views(viewer)[roi.name].layer, registered_views(
            viewer)[f"{seg_layer.name} particle envelopes"].layer)
    qw.table_select.setCurrentText("particle_envelopes")
    qw.verticalScrollBar().setValue(qw.verticalScrollBar().maximum())  # plot and table
    tut.shot("5_quantify")

    # ---- 6. Save project, then Load project into a fresh viewer
    pw = tut.open(ProjectWidget(viewer), "Project")
    listed = set(pw.table.frame["layer"])
    assert {micro.name, nano.name, roi.name, seg_layer.name} <= listed
    # what the docks made from the nanoCT (crop, strokes, segmentation) is the nanoCT's
    modality = pw.table.frame.set_index("layer")["modality"]
    assert {modality[n] for n in (nano.name, roi.name, scribbles.name, seg_layer.name)} == \
        {"nanoCT"}
    monkeypatch.setattr(QFileDialog, "getExistingDirectory",
                        staticmethod(lambda *a, **k: str(tmp_path / "session")))
    tut.click(pw.save_button)
    _wait(qtbot, pw)
    for layer in viewer.layers:
        layer.visible = layer.name in (micro.name, outlines.name) or layer is view.layer
    mouse.look_at(viewer, c[0], c[1:], 4 * half)
    # no path of this machine in the picture (the autosave line names its folder)
    pw.autosave.saved.disconnect(pw._on_autosaved)
    pw.recovery_status.setText("")
    tut.shot("6_project")
    fresh = make_napari_viewer(show=True)
    pw2 = Tutorial(fresh, qtbot).open(ProjectWidget(fresh), "Project")
    with heartbeat() as beats:
        tut.click(pw2.load_button)
        _wait(qtbot, pw2)
    # issue 17: each add, 2D view, controls panel, labels overlay, scene update, frame and
    # the final selection in a turn of its own: max gap 77-109 ms in 9 runs on a 2-core
    # VM (was 122-188 ms); a busy machine stretches napari's steps, hence 0.2 s here
    print(beats.summary(f"tutorial project load, {len(fresh.layers)} layers"))
    ui_record("Project: load the tutorial's project", duration_s=beats.seconds,
              max_gap_s=float(beats.gaps.max()), gaps_over_bound=int((beats.gaps > 0.1).sum()),
              pause_sources=beats.sources)
    assert beats.gaps.max() < 0.2
    # the live training's drawings are made again by live training, not saved
    saved = [layer.name for layer in viewer.layers if not is_drawing(layer)]
    assert len(saved) < len([layer for layer in viewer.layers if not is_view(layer)])
    assert [layer.name for layer in fresh.layers if not is_view(layer)] == saved
    # the registered layers' 2D views are drawn, not saved: made again for the loaded ones
    qtbot.waitUntil(lambda: f"{nano.name} (2D view)" in fresh.layers, timeout=10000)
    for name in (nano.name, roi.name, seg_layer.name, box.name, pf.name):
        old, new = viewer.layers[name], fresh.layers[name]
        np.testing.assert_allclose(new.affine.affine_matrix, old.affine.affine_matrix)
        np.testing.assert_allclose(new.scale, old.scale)
        np.testing.assert_allclose(new.translate, old.translate)
    np.testing.assert_array_equal(np.asarray(fresh.layers[seg_layer.name].data), seg)
    np.testing.assert_array_equal(np.asarray(fresh.layers[scribbles.name].data), marked)
    np.testing.assert_allclose(fresh.layers[pf.name].data, pf.data)
    loaded = fresh.layers[seg_layer.name].metadata[TABLES]["particle_envelopes"]
    pd.testing.assert_frame_equal(loaded.reset_index(drop=True),
                                  seg_layer.metadata[TABLES]["particle_envelopes"]
                                  .reset_index(drop=True), check_dtype=False)
    assert set(pw2.table.frame["layer"]) == listed
