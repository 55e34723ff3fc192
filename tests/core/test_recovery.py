import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from napari_corrtomo.core.classify import PixelClassifier
from napari_corrtomo.core.classify.features import FeatureSpec, FilterItem
from napari_corrtomo.core.project import ProjectLayer, load_project, save_project
from napari_corrtomo.core.recovery import (
    RECOVERY_DIR,
    RecoveryState,
    claim_recovery_folder,
    default_recovery_folder,
    discard_recovery,
    end_writer,
    holds_changes,
    live_writer,
    new_writer,
    read_recovery,
    recovery_folder,
    recovery_info,
    recovery_siblings,
    write_recovery,
)


def _state(seed=0):
    rng = np.random.default_rng(seed)
    scribbles = np.zeros((6, 20, 24), np.uint8)
    scribbles[2, 3:8, 4:12] = 1
    scribbles[3, 12:18, 10:20] = 2
    img = rng.normal(size=scribbles.shape).astype(np.float32) + scribbles
    clf = PixelClassifier(FeatureSpec((FilterItem("gaussian", 1.0, "3d"),)), n_trees=5, seed=0)
    clf.fit(img, scribbles, (0.5, 0.25, 0.25), "um", ["SE2"])
    affine = np.eye(4)
    affine[:3, 3] = (1.5, -2.0, 0.25)
    return img, RecoveryState(
        layers=[
            ProjectLayer("SE2 scribbles", "labels", scribbles, (0.5, 0.25, 0.25), ("um",) * 3),
            ProjectLayer("landmarks fixed", "points", rng.random((4, 3)) * 7.3, (1.0,) * 3,
                         ("um",) * 3),
        ],
        frames={"nanoCT": {"affine": affine, "metadata": {"modality": "nanoCT"}}},
        settings={"register": {"active": [True, False, True, True], "model": "rigid"}},
        classifier=clf,
    )


def test_snapshot_round_trip_is_exact(tmp_path):
    img, state = _state()
    snap = write_recovery(tmp_path / "rec", state)
    assert snap.parent == tmp_path / "rec"
    back = read_recovery(tmp_path / "rec")
    assert [layer.name for layer in back.layers] == ["SE2 scribbles", "landmarks fixed"]
    np.testing.assert_array_equal(np.asarray(back.layers[0].data), state.layers[0].data)
    assert np.asarray(back.layers[0].data).dtype == np.uint8
    np.testing.assert_array_equal(back.layers[1].data, state.layers[1].data)  # bit-exact
    assert back.layers[0].scale == (0.5, 0.25, 0.25)
    np.testing.assert_array_equal(back.frames["nanoCT"]["affine"],
                                  state.frames["nanoCT"]["affine"])
    assert back.settings == state.settings
    np.testing.assert_array_equal(back.classifier.predict_proba(img),
                                  state.classifier.predict_proba(img))
    assert back.pid == os.getpid() and back.saved_at <= time.time()
    info = recovery_info(tmp_path / "rec")
    assert info.writer_alive and info.saved_at == back.saved_at


def test_a_new_snapshot_replaces_the_old_one_and_discard_empties(tmp_path):
    _, state = _state()
    first = write_recovery(tmp_path, state)
    state.layers[0].data[0, 0, 0] = 3
    state.classifier = None
    second = write_recovery(tmp_path, state)
    assert not first.exists() and second.exists()
    back = read_recovery(tmp_path)
    assert np.asarray(back.layers[0].data)[0, 0, 0] == 3 and back.classifier is None
    discard_recovery(tmp_path)
    assert read_recovery(tmp_path) is None and recovery_info(tmp_path) is None


def test_folders_and_a_dead_writer(tmp_path, monkeypatch):
    assert recovery_folder(tmp_path) == tmp_path / RECOVERY_DIR
    monkeypatch.setenv("CORRTOMO_RECOVERY_DIR", str(tmp_path / "env"))
    assert recovery_folder(None) == default_recovery_folder() == tmp_path / "env"
    monkeypatch.delenv("CORRTOMO_RECOVERY_DIR")
    assert "napari-corrtomo" in str(default_recovery_folder())
    assert read_recovery(tmp_path / "nothing") is None
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    _, state = _state()
    state.pid = int(dead.stdout)
    write_recovery(tmp_path, state)
    assert not recovery_info(tmp_path).writer_alive
    (tmp_path / "current.json").write_text("{not json")
    with pytest.raises(ValueError, match="damaged recovery pointer"):
        read_recovery(tmp_path)


_WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    from napari_corrtomo.core.project import ProjectLayer, load_project, save_project
    from napari_corrtomo.core.recovery import RecoveryState, write_recovery
    k = 0
    while True:
        k += 1
        labels = np.full((16, 64, 64), k % 250, np.uint8)
        points = np.full((k % 7 + 1, 3), float(k))
        write_recovery(sys.argv[1], RecoveryState(
            layers=[ProjectLayer("s", "labels", labels, (1.0,) * 3, ("um",) * 3),
                    ProjectLayer("p", "points", points, (1.0,) * 3, ("um",) * 3)],
            settings={"k": {"k": k}}))
        print(k, flush=True)
""")


def test_sigkill_mid_write_leaves_a_whole_snapshot(tmp_path):
    """A writer killed at random moments: what is read back is always one whole snapshot."""
    rng = np.random.default_rng(1)
    for trial in range(4):
        folder = tmp_path / f"rec{trial}"
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(folder)],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "1"  # one snapshot is complete
        time.sleep(float(rng.uniform(0.05, 0.6)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        printed = [int(line) for line in proc.stdout.read().split()] or [1]
        back = read_recovery(folder)
        k = back.settings["k"]["k"]
        assert printed[-1] <= k <= printed[-1] + 1  # the last finished, or the one after it
        np.testing.assert_array_equal(np.asarray(back.layers[0].data), k % 250)
        np.testing.assert_array_equal(back.layers[1].data, np.full((k % 7 + 1, 3), float(k)))
        assert len(list(folder.glob("state-*"))) <= 2


def test_one_writer_per_folder(tmp_path):
    """Two viewers of one project (new windows of one napari, or two napari): the second
    autosaves into a sibling folder of its own while the first lives; a closed writer's
    snapshot is a leftover (offered like a crash's), its folder taken only when preferred
    (offered); a writer keeps its own folder."""
    base = tmp_path / RECOVERY_DIR
    first, second, third = new_writer(), new_writer(), new_writer()
    try:
        assert claim_recovery_folder(base, first) == base
        # claimed, nothing written yet: the second still keeps out
        assert claim_recovery_folder(base, second) == tmp_path / f"{RECOVERY_DIR}-2"
        assert live_writer(base, second) is True
        _, state = _state()
        state.writer = first
        write_recovery(base, state)
        info = recovery_info(base)
        assert info.writer == first and info.writer_alive
        assert live_writer(base, second) == info and live_writer(base, first) is None
        assert claim_recovery_folder(base, first) == base  # its own snapshot
        write_recovery(tmp_path / f"{RECOVERY_DIR}-2", RecoveryState(writer=second))
        assert recovery_siblings(base) == [base, tmp_path / f"{RECOVERY_DIR}-2"]
        end_writer(first)  # the first viewer closed with unsaved work
        assert not recovery_info(base).writer_alive
        # not overwritten unasked (it is offered first) ...
        assert claim_recovery_folder(base, third) == tmp_path / f"{RECOVERY_DIR}-3"
        # ... taken once offered
        assert claim_recovery_folder(base, third, prefer=base) == base
    finally:
        for writer in (first, second, third):
            end_writer(writer)
    assert claim_recovery_folder(base, third) == tmp_path / f"{RECOVERY_DIR}-3"  # ended


def test_a_snapshot_holds_changes_only_where_it_differs_from_the_project(tmp_path):
    """What a load offers: a snapshot equal to the saved project is not worth a question."""
    _, state = _state()
    project = state.layers + [ProjectLayer("nanoCT", "image", np.zeros((2, 2, 2), np.float32),
                                           (1.0,) * 3, ("um",) * 3,
                                           affine=state.frames["nanoCT"]["affine"],
                                           metadata={"modality": "nanoCT"})]
    save_project(tmp_path / "p", project)
    write_recovery(tmp_path / "rec", state)
    saved, snap = load_project(tmp_path / "p"), read_recovery(tmp_path / "rec")
    settings = dict(state.settings)
    assert not holds_changes(snap, saved, settings)
    snap.frames["2D view"] = {"affine": np.eye(4) * 2, "metadata": {}}  # not in the project
    assert not holds_changes(snap, saved, settings)
    assert holds_changes(snap, saved, {"register": {"active": [True] * 4, "model": "rigid"}})
    moved = read_recovery(tmp_path / "rec")
    moved.layers[1].data[2, 0] += 1e-9  # one landmark moved
    assert holds_changes(moved, saved, settings)
    shifted = read_recovery(tmp_path / "rec")
    shifted.frames["nanoCT"]["affine"][0][3] += 1.0  # another transform applied
    assert holds_changes(shifted, saved, settings)
    assert holds_changes(snap, saved[1:], settings)  # scribbles the project lacks
