"""The whole correlative workflow driven through the real dock widgets in one viewer:
reconstruct (microCT + nanoCT) -> register (landmarks, intensity refinement) -> ROI across
scales -> classify -> quantify -> export CSV and save/load the project; every number is
checked against the ground truth of a small ``correlative_particles`` sample.

Tolerances (stated with each check) are what this small sample, its noise and a few
simulated scribbles allow; they are not tuned to pass, each has room for a real
regression to fail it.
"""

from __future__ import annotations

import cc3d
import numpy as np
import pandas as pd
import pytest

from napari_corrtomo.core import register as reg
from napari_corrtomo.core import synthetic
from napari_corrtomo.core.classify import iou_per_class
from napari_corrtomo.core.quantify import spherical_envelopes
from napari_corrtomo.core.register import apply_to_points
from napari_corrtomo.core.synthetic import RESIN, SOLID
from napari_corrtomo.demo import fsc_reference_resolution
from napari_corrtomo.widgets._layers import TABLES, attach_table
from napari_corrtomo.widgets._registered_view import is_view
from napari_corrtomo.widgets.classify import ClassifyWidget
from napari_corrtomo.widgets.project import ProjectWidget
from napari_corrtomo.widgets.quantify import QuantifyWidget
from napari_corrtomo.widgets.reconstruct import ReconstructWidget
from napari_corrtomo.widgets.register import RegisterWidget

#: the small sample: 40 particles in a 64 x 96 x 96 um column; the picked particle (10 um)
#: imaged by nanoCT with 0.13 um voxels
SMALL = dict(microct_shape=(64, 96, 96), n_particles=40, particle_diameter_um=(10.0, 30.0),
             nanoct_shape=(96, 96, 96), nanoct_voxel_um=0.13, et_shape=(32, 32, 32))


@pytest.fixture(scope="module")
def chain():
    sample = synthetic.correlative_particles(seed=0, **SMALL)
    scans = {
        "microCT": synthetic.scan(sample.truth.attenuation["microct"], "parallel", seed=1,
                                  n_angles=180, photons=1e5, blur_px=0.7, max_line_integral=3.0),
        "nanoCT": synthetic.scan(sample.truth.attenuation["nanoct"], "parallel", seed=2,
                                 n_angles=160, photons=1e5, blur_px=0.7, max_line_integral=3.0),
    }
    return sample, scans


def _wait(qtbot, widget, timeout=60000):
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=timeout)
    assert widget.runner.last_error is None, widget.runner.last_error


def test_full_chain_in_the_viewer(make_napari_viewer, qtbot, chain, tmp_path):
    sample, scans = chain
    t = sample.truth
    viewer = make_napari_viewer()

    # ---- 1. reconstruct both scans (the form is filled from the layers' geometry)
    rw = ReconstructWidget(viewer)
    for name, s in scans.items():
        layer = viewer.add_image(s.projections, name=name,
                                 scale=(1, s.geometry.pixel_size, s.geometry.pixel_size),
                                 metadata={"geometry": s.geometry.to_dict(),
                                           "truth": {"volume_shape": list(s.phantom.shape)}})
        rw.projections.set_layer(layer)
        assert rw.unit.currentText() == "um"
        rw.log.setChecked(False)  # already line integrals
        rw.run()
        _wait(qtbot, rw)
        rec = viewer.layers[f"{name} reconstruction"]
        np.testing.assert_allclose(rec.scale, (s.voxel_size,) * 3)
        # FBP of 160-180 noisy projections: within 25 % (relative L2) of the object
        err = np.linalg.norm(rec.data - s.phantom) / np.linalg.norm(s.phantom)
        assert err < 0.25, (name, err)
    # FSC of even/odd halves (nanoCT) against the resolution the object itself gives:
    # within 35 % (one shell of this 96-voxel volume is ~2 % of Nyquist; the half-bit
    # curve is noisy where it crosses)
    rw.projections.set_layer(viewer.layers["nanoCT"])
    rw.run_fsc()
    _wait(qtbot, rw)
    nano_rec = viewer.layers["nanoCT reconstruction"]
    s = scans["nanoCT"]
    ref = fsc_reference_resolution(np.asarray(nano_rec.data), s.phantom, s.voxel_size, rw.last_fsc)
    assert rw.last_fsc.resolution_half_bit == pytest.approx(ref, rel=0.35)

    # ---- 2. register the nanoCT onto the microCT: 6 landmarks (fiducials + particle
    # centre, picked with an error of one voxel), similarity fit, intensity refinement
    gw = RegisterWidget(viewer)
    micro_rec = viewer.layers["microCT reconstruction"]
    gw.fixed_select.set_layer(micro_rec)
    gw.moving_select.set_layer(nano_rec)
    pf, pm = gw.create_landmark_layers()
    rng = np.random.default_rng(3)
    n = len(t.landmarks_microct)
    pf.data = t.landmarks_microct + rng.normal(0, 1.0, (n, 3))
    pm.data = t.landmarks_nanoct + rng.normal(0, 0.13, (n, 3))
    gw.model.setCurrentText("similarity")
    assert gw.fit() is not None
    gw.apply_affine()
    gw.refine()
    _wait(qtbot, gw, 90000)
    fov = reg.fov_box(nano_rec.data.shape, nano_rec.scale)
    grid = np.stack(np.meshgrid(*[np.linspace(a, b, 4) for a, b in zip(*fov, strict=True)],
                                indexing="ij"), -1).reshape(-1, 3)
    err = reg.compare(gw.transform, t.nanoct_to_microct, grid)
    # TRE over the nanoCT field of view below half a microCT voxel (1 um)
    assert err["tre_rms"] < 0.5, err
    # the overlay: the nanoCT layer now sits where the truth puts it (corner error < 0.5 um)
    corners = np.array([nano_rec.data_to_world(c) for c in
                        np.array(np.meshgrid(*[[0, 95]] * 3, indexing="ij")).reshape(3, -1).T])
    truth_corners = apply_to_points(t.nanoct_to_microct, corners_index(95, 0.13))
    assert np.abs(corners - truth_corners).max() < 0.5

    # ---- 3. ROI across scales: a box drawn around the picked particle in the microCT
    # slice through its centre crops the matching region of the registered nanoCT; the
    # nanoCT field of view is outlined in the microCT slices
    p = t.particles.loc[t.particles["particle"] == t.target_particle].iloc[0]
    c = p[["z_um", "y_um", "x_um"]].to_numpy(float)
    half = 0.5 * p["esd_um"] + 0.6
    box = viewer.add_shapes([[[c[0], c[1] - half, c[2] - half], [c[0], c[1] - half, c[2] + half],
                              [c[0], c[1] + half, c[2] + half], [c[0], c[1] + half, c[2] - half]]],
                            shape_type="rectangle", ndim=3, name="ROI box")
    gw.roi_shapes.set_layer(box)
    gw.roi_target.set_layer(nano_rec)
    gw.roi_depth.setValue(2 * half)
    roi = gw.crop_roi()
    assert roi.name == "nanoCT reconstruction ROI"
    (z0, z1), (y0, y1), (x0, x1) = roi.metadata["corrtomo_roi_slices"]
    truth_roi = np.asarray(t.nanoct_labels.data)[z0:z1, y0:y1, x0:x1]
    np.testing.assert_allclose(np.asarray(roi.data),
                               np.asarray(nano_rec.data)[z0:z1, y0:y1, x0:x1])
    # the crop holds the picked particle: >= 97 % of its true voxels (solid and pores)
    tl = np.asarray(t.nanoct_labels.data)
    comp = cc3d.connected_components(tl >= SOLID, connectivity=6)
    centre = np.rint(apply_to_points(np.linalg.inv(t.nanoct_to_microct), c)[0] / 0.13)
    particle = comp == comp[tuple(centre.astype(int))]
    assert np.count_nonzero(particle[z0:z1, y0:y1, x0:x1]) / np.count_nonzero(particle) > 0.97
    gw.fov_reference.set_layer(micro_rec)
    outlines = gw.show_fields_of_view()
    mine = np.asarray(outlines.features["volume"]) == nano_rec.name
    assert mine.any()
    verts = np.concatenate([np.array([outlines.data_to_world(v) for v in poly])
                            for poly, keep in zip(outlines.data, mine, strict=True) if keep])
    lo, hi = t.nanoct_fov_microct.min(0), t.nanoct_fov_microct.max(0)
    # every outline vertex on the true field of view's bounds within one microCT voxel
    assert np.all(verts >= lo - 1.0) and np.all(verts <= hi + 1.0)
    assert np.allclose(verts.min(0)[1:], lo[1:], atol=1.0)

    # ---- 4. classify the ROI: resin (1) vs solid (2) from simulated scribbles
    cw = ClassifyWidget(viewer)
    cw.set_channels([roi.name])
    scr_layer = cw.create_scribble_layer()
    truth2 = np.where(truth_roi == SOLID, SOLID, RESIN).astype(np.uint8)
    scr_layer.data = synthetic.scribbles_from_truth(truth2, seed=0, margin_px=1)
    cw.start_training()
    _wait(qtbot, cw, 90000)
    cw.predict_volume()
    _wait(qtbot, cw, 90000)
    seg_layer = viewer.layers[f"{roi.name} segmentation"]
    seg = np.asarray(seg_layer.data)
    # solid IoU > 0.9 against the truth (resin-filled macropores count as resin)
    assert iou_per_class(truth2, seg)[SOLID] > 0.9
    np.testing.assert_allclose(seg_layer.scale, roi.scale)

    # ---- 5. quantify: particle envelopes (a sphere per solid particle, the default) give
    # the picked particle's macroporosity; closed pores; pore sizes
    qw = QuantifyWidget(viewer)
    qw.labels_select.set_layer(seg_layer)
    qw.phase.setValue(RESIN)
    qw.matrix.setValue(SOLID)
    for key, cb in qw.checks.items():
        cb.setChecked(key in ("porosity", "envelopes"))
    qw.run()
    _wait(qtbot, qw, 90000)
    summary = qw.result.summary().set_index("quantity")["value"]
    # (a) against the same envelope of the TRUE solid in the crop: what segmentation and
    # reconstruction change, within 0.03 absolute
    true_solid = truth_roi == SOLID
    comps = cc3d.connected_components(true_solid, connectivity=6)
    biggest = np.argmax(np.bincount(comps.ravel())[1:]) + 1
    env = spherical_envelopes(true_solid, (comps == biggest).astype(np.uint8), roi.scale) > 0
    ref = np.count_nonzero(env & ~true_solid) / np.count_nonzero(env)
    assert summary["largest particle porosity"] == pytest.approx(ref, abs=0.03)
    # (b) against the analytic particle (pores inside its sphere): the spherical envelope
    # keeps the surface pores whole (the rolling ball lost 0.04-0.1 to their mouths)
    assert summary["largest particle porosity"] == pytest.approx(t.nanoct_macroporosity,
                                                                  abs=0.03)
    assert summary["largest particle ESD"] == pytest.approx(p["esd_um"], rel=0.1)
    env_layer = viewer.layers[f"{seg_layer.name} particle envelopes"]
    assert env_layer.data.shape == seg.shape

    # ---- 6. export every table as CSV; tables stay with the measured layer
    files = qw.export_all(str(tmp_path / "tables"))
    assert {f.name for f in files} >= {"summary.csv", "particle_envelopes.csv"}
    exported = pd.read_csv(tmp_path / "tables" / "summary.csv")
    assert exported.set_index("quantity").loc["largest particle porosity", "value"] == \
        pytest.approx(summary["largest particle porosity"])
    assert "particle_envelopes" in seg_layer.metadata[TABLES]

    # ---- 7. the project: save the whole session, load it into a fresh viewer
    attach_table(nano_rec, "registration", pd.DataFrame([err]))
    pw = ProjectWidget(viewer)
    listed = pw.table.frame.set_index("layer")
    assert {"microCT reconstruction", "nanoCT reconstruction", roi.name} <= set(listed.index)
    pw.save(tmp_path / "session")
    _wait(qtbot, pw)
    fresh = make_napari_viewer()
    pw2 = ProjectWidget(fresh)
    pw2.load(tmp_path / "session")
    _wait(qtbot, pw2)
    # the registered layers' 2D views are drawn, not saved: made again for the loaded ones
    assert [layer.name for layer in fresh.layers if not is_view(layer)] == [
        layer.name for layer in viewer.layers if not is_view(layer)
        and layer._type_string in ("image", "labels", "points", "shapes")]
    qtbot.waitUntil(lambda: "nanoCT reconstruction (2D view)" in fresh.layers, timeout=10000)
    for name in ("nanoCT reconstruction", roi.name, seg_layer.name, "ROI box"):
        old, new = viewer.layers[name], fresh.layers[name]
        np.testing.assert_allclose(new.affine.affine_matrix, old.affine.affine_matrix)
        np.testing.assert_allclose(new.scale, old.scale)
        np.testing.assert_allclose(new.translate, old.translate)
    np.testing.assert_array_equal(np.asarray(fresh.layers[seg_layer.name].data), seg)
    np.testing.assert_allclose(fresh.layers[pf.name].data, pf.data)
    assert fresh.layers["nanoCT reconstruction"].metadata[TABLES]["registration"][
        "tre_rms"].iloc[0] == pytest.approx(err["tre_rms"])
    loaded = fresh.layers[seg_layer.name].metadata[TABLES]["particle_envelopes"]
    pd.testing.assert_frame_equal(loaded.reset_index(drop=True),
                                  seg_layer.metadata[TABLES]["particle_envelopes"]
                                  .reset_index(drop=True), check_dtype=False)


def corners_index(last: int, voxel: float) -> np.ndarray:
    """World corners (um) of a cubic grid's first and last voxel centres."""
    return np.array(np.meshgrid(*[[0, last * voxel]] * 3, indexing="ij")).reshape(3, -1).T


# ============================================================================ bad input


@pytest.fixture
def errors(monkeypatch):
    """Every ``show_error`` of the widgets (and of the task runner), in order."""
    shown: list[str] = []
    for mod in ("reconstruct", "register", "classify", "quantify", "project", "_runner"):
        monkeypatch.setattr(f"napari_corrtomo.widgets.{mod}.show_error", shown.append)
    return shown


def test_every_step_without_its_prerequisite_names_what_is_missing(make_napari_viewer, qtbot,
                                                                   errors, tmp_path):
    viewer = make_napari_viewer()
    rw, gw, cw, qw, pw = (ReconstructWidget(viewer), RegisterWidget(viewer),
                          ClassifyWidget(viewer), QuantifyWidget(viewer), ProjectWidget(viewer))

    def expect(action, *words):
        errors.clear()
        action()
        assert len(errors) == 1, errors
        for word in words:
            assert word in errors[0], (word, errors[0])
        assert len(viewer.layers) == n_layers  # nothing was added

    # an empty viewer: every step names the layer it needs
    n_layers = 0
    for button in (rw.run_button, rw.preview_button, rw.fsc_button, rw.find_button):
        expect(button.click, "no projection layer", "Image layer")
    expect(gw.new_points_button.click, "no fixed image", "Image layer")
    expect(gw.fit_button.click, "landmark Points layers")
    expect(gw.apply_button.click, "no fixed image", "Image layer")
    for button in (gw.resample_button, gw.refine_button):
        expect(button.click, "no transform", "fit landmarks")
    expect(gw.roi_button.click, "no volume to crop from", "Image layer")
    expect(gw.fov_button.click, "no reference volume", "Image layer")
    expect(cw.new_scribbles.click, "no channel chosen", "image layer")
    expect(lambda: cw.train_button.setChecked(True), "no channel chosen")
    assert not cw.train_button.isChecked()
    expect(cw.predict_button.click, "no classifier", "train one")
    expect(qw.run_button.click, "no segmentation chosen", "Labels layer")
    expect(lambda: pw.save(tmp_path / "p"), "Nothing to save")

    # one volume, but still not what the next step needs
    rng = np.random.default_rng(0)
    viewer.add_image(rng.random((8, 16, 16)).astype(np.float32), name="vol", scale=(0.5,) * 3,
                     units=("um",) * 3)
    n_layers = 1
    expect(gw.new_points_button.click, "same layer")  # fixed and moving would both be "vol"
    expect(lambda: cw.train_button.setChecked(True), "no scribble Labels layer", "Labels")
    expect(gw.roi_button.click, "no Shapes layer with a box", "Shapes layer")
    viewer.add_labels(rng.integers(1, 3, (8, 16, 16)).astype(np.uint8), name="seg",
                      scale=(0.5,) * 3, units=("um",) * 3)
    n_layers = 2
    qw.labels_select.set_layer(viewer.layers["seg"])
    for key, cb in qw.checks.items():
        cb.setChecked(key == "proxigram")
    qw.intensity_select.setCurrentIndex(qw.intensity_select.findText(""))
    expect(qw.run_button.click, "needs an intensity image")
    # a folder that is no project: the runner reports it, nothing is added
    errors.clear()
    pw.load(tmp_path)
    qtbot.waitUntil(lambda: not pw.runner.busy, timeout=10000)
    assert len(errors) == 1 and "no project.json" in errors[0]
    assert len(viewer.layers) == n_layers
