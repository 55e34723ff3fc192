"""Autosave and crash recovery: a real napari process is killed (SIGKILL) while labelling;
reopening the project brings back the scribbles, landmarks and panel state of the last
autosave."""

import json
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pandas as pd

from napari_corrtomo.core.project import ProjectLayer, save_project
from napari_corrtomo.core.recovery import read_recovery, recovery_folder, recovery_info
from napari_corrtomo.widgets import _autosave
from napari_corrtomo.widgets._autosave import autosave_for
from napari_corrtomo.widgets._layers import TABLES, attach_table
from napari_corrtomo.widgets.classify import ClassifyWidget
from napari_corrtomo.widgets.project import ProjectWidget
from napari_corrtomo.widgets.register import RegisterWidget

_CHILD = textwrap.dedent("""
    import json, os, sys, time
    import napari
    import numpy as np
    from qtpy.QtCore import QTimer
    from napari_corrtomo.widgets.classify import ClassifyWidget
    from napari_corrtomo.widgets.project import ProjectWidget
    from napari_corrtomo.widgets.register import RegisterWidget

    project, expected = sys.argv[1], sys.argv[2]
    viewer = napari.Viewer()
    pw, cw, rw = ProjectWidget(viewer), ClassifyWidget(viewer), RegisterWidget(viewer)
    for w in (pw, cw, rw):
        viewer.window.add_dock_widget(w)
    autosave = pw.autosave
    saves = []
    autosave.saved.connect(saves.append)
    steps = []

    def say(**kw):
        print(json.dumps(kw), flush=True)

    def then(cond, func):
        steps.append((cond, func))

    def tick():
        for w in (pw, cw, rw):
            if w.runner.last_error is not None:
                say(event="error", panel=type(w).__name__, error=str(w.runner.last_error))
                sys.exit(1)
        if steps and steps[0][0]():
            steps.pop(0)[1]()
    timer = QTimer()
    timer.timeout.connect(tick)
    timer.start(50)

    def label():
        cw.set_channels(["microCT"])
        scr = cw.create_scribble_layer()
        scr.brush_size = 3
        for z, y, x in ((4, 10, 10), (4, 12, 14), (5, 11, 12)):
            scr.paint((z, y, x), 1)
        for z, y, x in ((4, 40, 44), (5, 42, 40), (6, 45, 41)):
            scr.paint((z, y, x), 2)
        cw.train_button.click()

    def landmarks():
        rw.fixed_select.set_layer(viewer.layers["microCT"])
        rw.moving_select.set_layer(viewer.layers["nanoCT"])
        pf, pm = rw.create_landmark_layers()
        rng = np.random.default_rng(3)
        for _ in range(4):
            pf.add(rng.random(3) * 30)
            pm.add(rng.random(3) * 15)
        rw.set_active(2, False)

    def quiet():  # everything written: no change pending, no write under way
        return saves and not autosave.dirty and autosave._thread is None and \\
            not autosave._timer.isActive()

    def dump():
        scr = viewer.layers["microCT scribbles"]
        pf, pm = rw._points_layers()
        img = np.asarray(viewer.layers["microCT"].data)
        np.savez(expected + ".npz", scribbles=scr.data, fixed=pf.data, moving=pm.data,
                 active=np.array(rw.active), proba=cw.classifier.predict_slice(img, 5))
        say(event="saved", t=time.time(), snapshots=len(saves))
        # a change after the last autosave: a crash within the autosave delay loses it
        scr.paint((10, 30, 30), 2)
        pf.add((1.0, 2.0, 3.0))
        say(event="changed-after", t=time.time())

    pw.load(project)
    then(lambda: "microCT" in viewer.layers and not pw.runner.busy, label)
    # the trained state autosaved first: the landmarks then make a second snapshot
    then(lambda: cw.classifier is not None and not cw.runner.busy and quiet(), landmarks)
    then(lambda: rw.transform is not None and len(saves) >= 2 and quiet(), dump)
    napari.run()
""")


def test_sigkill_while_labelling_then_reopen_restores_the_last_autosave(make_napari_viewer,
                                                                      qtbot, tmp_path,
                                                                      child_events):
    rng = np.random.default_rng(0)
    img = np.zeros((12, 64, 64), np.float32)
    img[:, 30:, 30:] = 1.0
    img += 0.2 * rng.random(img.shape, np.float32)
    project = tmp_path / "project"
    save_project(project, [
        ProjectLayer("microCT", "image", img, (1.0, 1.0, 1.0), ("um",) * 3),
        ProjectLayer("nanoCT", "image", img[:, ::2, ::2].copy(), (1.0, 0.5, 0.5), ("um",) * 3),
    ])
    expected = tmp_path / "expected"
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(project), str(expected)],
                            stdout=subprocess.PIPE, text=True)
    try:
        events = child_events(proc, "changed-after", timeout_s=300)
        proc.send_signal(signal.SIGKILL)
        killed = time.time()
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGKILL and "saved" in events
    info = recovery_info(recovery_folder(project))
    print(f"killed {killed - events['saved']['t']:.2f} s after the last autosave "
          f"({events['saved']['snapshots']} snapshots written); snapshot taken "
          f"{killed - info.saved_at:.2f} s before the kill")
    assert not info.writer_alive
    assert killed - info.saved_at < 10.0  # "up to a few seconds before"
    want = np.load(f"{expected}.npz")

    viewer = make_napari_viewer()
    pw = ProjectWidget(viewer)
    rw, cw = RegisterWidget(viewer), ClassifyWidget(viewer)
    asked = []
    pw.confirm = lambda text: asked.append(text) or True
    pw.load(project)
    qtbot.waitUntil(lambda: not pw.runner.busy, timeout=60000)
    assert pw.runner.last_error is None
    assert len(asked) == 1 and "ended without saving" in asked[0]
    scr = viewer.layers["microCT scribbles"]
    np.testing.assert_array_equal(scr.data, want["scribbles"])  # exact, not the later stroke
    assert scr.data[10, 30, 30] == 0
    pf, pm = rw._points_layers()
    assert pf.name == "landmarks fixed: microCT" and pm.name == "landmarks moving: nanoCT"
    np.testing.assert_array_equal(pf.data, want["fixed"])  # bit-exact coordinates
    np.testing.assert_array_equal(pm.data, want["moving"])
    assert rw.active == list(want["active"]) == [True, True, False, True]
    assert rw.transform is not None
    np.testing.assert_array_equal(cw.classifier.predict_slice(np.asarray(
        viewer.layers["microCT"].data), 5), want["proba"])
    assert cw.scribbles.layer() is scr
    # painting goes on: the restored layer is autosaved again
    scr.paint((2, 5, 5), 1)
    assert pw.autosave.dirty


def test_save_moves_autosave_into_the_project_and_a_declined_restore_is_discarded(
        make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    pw = ProjectWidget(viewer)
    viewer.add_image(np.zeros((4, 8, 8), np.float32), name="img")
    scr = viewer.add_labels(np.zeros((4, 8, 8), np.uint8), name="scr")
    pw.save(tmp_path / "p")
    qtbot.waitUntil(lambda: not pw.runner.busy, timeout=30000)
    assert pw.autosave.folder == recovery_folder(tmp_path / "p")
    with qtbot.waitSignal(pw.autosave.saved, timeout=20000):
        scr.paint((2, 3, 3), 1)  # unsaved work: autosaved into the project
    assert recovery_info(pw.autosave.folder).writer_alive

    # a live session's state is never offered to another viewer
    other = make_napari_viewer()
    other_pw = ProjectWidget(other)
    asked = []
    other_pw.confirm = lambda text: asked.append(text) or True
    other_pw.load(tmp_path / "p")
    qtbot.waitUntil(lambda: not other_pw.runner.busy, timeout=30000)
    assert asked == [] and other.layers["scr"].data[2, 3, 3] == 0
    pw.autosave.paused = other_pw.autosave.paused = True  # no more snapshots from these

    # the same state left by a dead process: offered; declined -> discarded, nothing added
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    pointer = pw.autosave.folder / "current.json"
    pointer.write_text(json.dumps({**json.loads(pointer.read_text()), "pid": int(dead.stdout)}))
    third = make_napari_viewer()
    third_pw = ProjectWidget(third)
    third_pw.confirm = lambda text: asked.append(text) or False
    third_pw.load(tmp_path / "p")
    qtbot.waitUntil(lambda: not third_pw.runner.busy, timeout=30000)
    assert len(asked) == 1 and third.layers["scr"].data[2, 3, 3] == 0
    assert recovery_info(pw.autosave.folder) is None


def test_a_folder_moved_during_a_write_gets_the_next_snapshot_and_loses_nothing(
        make_napari_viewer, qtbot, tmp_path, monkeypatch):
    """A project saved while a snapshot is being written into the old recovery folder
    (the tutorial's save right after painting): the write ends in the old folder without
    a failure, that snapshot is removed afterwards (not under the writer) and the next
    one goes into the new folder."""
    viewer = make_napari_viewer()
    autosave = autosave_for(viewer)
    scr = viewer.add_labels(np.zeros((4, 8, 8), np.uint8), name="scr")
    old, new = tmp_path / "old", tmp_path / "new"
    autosave.set_folder(old)
    gate, real = threading.Event(), _autosave.write_recovery
    monkeypatch.setattr(_autosave, "write_recovery",
                        lambda folder, state: gate.wait(10) and real(folder, state))
    scr.paint((2, 3, 3), 1)
    autosave.save_now()  # the write waits at the gate
    autosave.set_folder(new, move=True)
    assert not gate.is_set()
    with qtbot.waitSignal(autosave.saved, timeout=10000) as written:
        gate.set()
    assert written.args[0].parent == old  # a snapshot, not a failure
    assert recovery_info(old) is None  # then removed: the session's state moved
    scr.paint((2, 4, 4), 1)
    with qtbot.waitSignal(autosave.saved, timeout=10000) as written:
        autosave.save_now()
    assert written.args[0].parent == new
    assert read_recovery(new).layers[0].data[2, 4, 4] == 1


def test_restore_brings_back_an_applied_affine_and_keeps_the_layers_tables(make_napari_viewer):
    viewer = make_napari_viewer()
    img = viewer.add_image(np.zeros((4, 8, 8), np.float32), name="img")
    attach_table(img, "porosity", pd.DataFrame({"porosity": [0.3]}))
    autosave = autosave_for(viewer)
    affine = np.eye(4)
    affine[:3, 3] = (1.0, 2.0, 3.0)
    img.affine = affine  # as Register's 'Apply as layer affine' does
    state = autosave.snapshot()
    img.affine = np.eye(4)
    autosave.restore(state)
    np.testing.assert_array_equal(img.affine.affine_matrix, affine)
    assert img.metadata[TABLES]["porosity"]["porosity"][0] == 0.3


def test_a_snapshot_brings_points_and_shapes_back_in_their_colours(make_napari_viewer,
                                                                   tmp_path):
    """A landmark layer that exists only in the snapshot (lost in a crash) comes back
    magenta with its white border, an outline with its edge colour and no fill."""
    from napari.utils.colormaps.standardize_color import transform_color

    from napari_corrtomo.core.recovery import write_recovery

    viewer = make_napari_viewer()
    pts = viewer.add_points(np.array([[1.0, 2, 3], [4, 5, 6]]), name="landmarks",
                            face_color="magenta", border_color="white")
    box = viewer.add_shapes([np.array([[0.0, 0], [0, 5], [5, 5], [5, 0]])], ndim=2,
                            name="outline", edge_color="lime", face_color="transparent")
    expected = {(layer.name, key): transform_color(getattr(layer, key))
                for layer, keys in ((pts, ("face_color", "border_color")),
                                    (box, ("edge_color", "face_color", "current_edge_color")))
                for key in keys}
    autosave = autosave_for(viewer)
    write_recovery(tmp_path, autosave.snapshot())
    viewer.layers.clear()
    autosave.restore(read_recovery(tmp_path))
    for (name, key), value in expected.items():
        np.testing.assert_allclose(transform_color(getattr(viewer.layers[name], key)), value,
                                   err_msg=key)
