"""Crash recovery: the interactive state of a session, written as you work.

A recovery folder (``<project>/.corrtomo-recovery``, or :func:`default_recovery_folder`
while no project folder is chosen) holds

- ``state-<n>/`` -- one complete snapshot: ``layers/`` (a project, see
  :mod:`.project`, of the layers the user edits: scribbles, landmarks, shapes),
  ``session.json`` (the frames of the other layers, e.g. an applied registration
  affine, and each panel's settings and state) and ``classifier.corrclf.npz``
  (the trained classifier, if any);
- ``current.json`` -- names the newest complete snapshot, the time it was taken and
  the process (and, within it, the viewer's autosave: its *writer* id) that wrote it.

One folder has one writer at a time: a second viewer of the same project (in this
process or another) autosaves into a sibling folder of its own, ``<folder>-2``,
``<folder>-3``, ... (:func:`claim_recovery_folder`).

A snapshot is written in full into a new ``state-<n>`` folder first; only then is
``current.json`` replaced (``os.replace``, atomic) and older snapshots removed. A
process killed at any moment therefore leaves either the previous or the new
snapshot readable, never a mix.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import platformdirs

from .classify import PixelClassifier
from .io import jsonable
from .project import CLASSIFIER, ProjectLayer, load_project, save_project

FORMAT = "napari-corrtomo-recovery"
VERSION = 1
#: the recovery folder's name inside a project folder
RECOVERY_DIR = ".corrtomo-recovery"
POINTER = "current.json"
#: environment variable naming the recovery folder of sessions without a project
ENV_RECOVERY_DIR = "CORRTOMO_RECOVERY_DIR"


@dataclass
class RecoveryState:
    """What a session needs to come back after a crash.

    Attributes
    ----------
    layers
        Layers the user edits, in full (scribble labels, landmark points, shapes).
    frames
        For other layers (images that come from files or a project), by name: their
        ``affine`` (4x4) and JSON-safe ``metadata``, so an applied transform survives.
    settings
        Per panel (e.g. ``"register"``, ``"classify"``): JSON-safe settings and state.
    classifier
        The trained pixel classifier, or None.
    saved_at, pid, host
        When and by which process (on which machine) the snapshot was written.
    writer
        Which autosaving session of that process wrote it (:func:`new_writer`; empty:
        unknown, the process stands for it).
    """

    layers: list[ProjectLayer] = field(default_factory=list)
    frames: dict[str, dict[str, Any]] = field(default_factory=dict)
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    classifier: PixelClassifier | None = None
    saved_at: float = 0.0
    pid: int = 0
    host: str = ""
    writer: str = ""


@dataclass(frozen=True)
class RecoveryInfo:
    """The newest snapshot in a recovery folder, without reading it."""

    folder: Path
    saved_at: float
    pid: int
    host: str
    writer: str = ""

    @property
    def writer_alive(self) -> bool:
        """True while the session that wrote it still runs (then it is no crash's leftover):
        its process, and in this process the writer itself (:func:`new_writer`: a viewer
        closed without saving left its state as a crash would)."""
        if self.host != socket.gethostname():
            return False
        if self.pid == os.getpid() and self.writer:
            with _WRITERS_LOCK:
                return self.writer in _WRITERS
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # exists, owned by someone else
            return True
        return True


#: this process's live writers (autosaving sessions), each with the folder it claimed
_WRITERS: dict[str, Path | None] = {}
_WRITERS_LOCK = threading.RLock()  # a claim checks and takes a folder under it
#: sibling folders tried before one named after the writer
MAX_SIBLINGS = 99


def new_writer() -> str:
    """The id of a new autosaving session of this process (alive until :func:`end_writer`)."""
    writer = uuid.uuid4().hex
    with _WRITERS_LOCK:
        _WRITERS[writer] = None
    return writer


def end_writer(writer: str) -> None:
    """The session ``writer`` ended: its folder is free, its snapshot a leftover."""
    with _WRITERS_LOCK:
        _WRITERS.pop(writer, None)


def recovery_siblings(base: str | os.PathLike) -> list[Path]:
    """``base`` and its sibling folders that exist (``<base>-2``, ``<base>-3``, ...): where
    the sessions of one project (or of no project) autosave."""
    base = Path(base)
    found = [base]
    if base.parent.is_dir():
        found += sorted((p for p in base.parent.glob(f"{base.name}-*")
                         if p.is_dir() and p.name[len(base.name) + 1:].isdigit()),
                        key=lambda p: int(p.name[len(base.name) + 1:]))
    return found


def _claimed_by_another(folder: Path, writer: str) -> bool:
    """Whether another writer of this process claimed ``folder``."""
    with _WRITERS_LOCK:
        return any(f == folder and w != writer for w, f in _WRITERS.items())


def live_writer(folder: str | os.PathLike, writer: str = "") -> RecoveryInfo | bool | None:
    """Another session than ``writer`` that autosaves into ``folder`` now: its last
    snapshot's :class:`RecoveryInfo`, True when it claimed the folder without a snapshot
    yet (a viewer of this process), else None."""
    folder = Path(folder)
    held = _claimed_by_another(folder, writer)
    try:
        info = recovery_info(folder)
    except ValueError:  # damaged: no one writes it
        info = None
    if info is not None and info.writer_alive and not (writer and info.writer == writer):
        return info
    return True if held else None


def claim_recovery_folder(base: str | os.PathLike, writer: str,
                          prefer: str | os.PathLike | None = None) -> Path:
    """The folder ``writer`` autosaves into from now on: ``prefer`` (when given) or
    ``base``, else the first free ``<base>-<n>``.

    A folder is free when no other live session writes it (:func:`live_writer`) and it
    holds no snapshot or one of ``writer``'s; ``prefer`` also when its snapshot is a dead
    session's (offered to the user, or the folder this writer used so far). A damaged
    folder is skipped.
    """
    base = Path(base)
    candidates = [Path(prefer)] if prefer is not None else []
    candidates += [base] + [base.with_name(f"{base.name}-{n}")
                            for n in range(2, MAX_SIBLINGS + 1)]
    with _WRITERS_LOCK:  # two viewers of this process never take one folder
        chosen = base.with_name(f"{base.name}-{writer[:12]}")
        for i, folder in enumerate(candidates):
            if _claimed_by_another(folder, writer):
                continue  # another viewer of this process claimed it
            try:
                info = recovery_info(folder)
            except ValueError:
                continue
            if info is None or (writer and info.writer == writer) or (
                    prefer is not None and i == 0 and not info.writer_alive):
                chosen = folder
                break
        if writer in _WRITERS:
            _WRITERS[writer] = chosen
        return chosen


def default_recovery_folder() -> Path:
    """Where a session without a project folder keeps its recovery state:
    ``$CORRTOMO_RECOVERY_DIR`` if set, else the user's cache folder (e.g.
    ``~/.cache/napari-corrtomo/recovery`` on Linux)."""
    if os.environ.get(ENV_RECOVERY_DIR):
        return Path(os.environ[ENV_RECOVERY_DIR])
    return Path(platformdirs.user_cache_dir("napari-corrtomo")) / "recovery"


def recovery_folder(project: str | os.PathLike | None) -> Path:
    """The recovery folder of a project folder, or the default one for ``None``."""
    if project is None:
        return default_recovery_folder()
    return Path(project) / RECOVERY_DIR


def write_recovery(folder: str | os.PathLike, state: RecoveryState) -> Path:
    """Write ``state`` as the newest snapshot of ``folder`` (created if missing).

    ``state.saved_at``/``pid``/``host`` are filled in when left empty. Returns the
    snapshot's folder. Arrays are read, not modified; call it from a worker thread
    with copies of anything the UI may change meanwhile.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    saved_at = state.saved_at or time.time()
    pid, host = state.pid or os.getpid(), state.host or socket.gethostname()
    snap = folder / f"state-{time.time_ns()}-{pid}"
    snap.mkdir()
    try:
        save_project(snap / "layers", state.layers)
        if state.classifier is not None:
            state.classifier.save(snap / CLASSIFIER)
        session = {"frames": jsonable(state.frames), "settings": jsonable(state.settings)}
        (snap / "session.json").write_text(json.dumps(session))
        pointer = {"format": FORMAT, "version": VERSION, "state": snap.name,
                   "saved_at": saved_at, "pid": pid, "host": host,
                   "writer": state.writer}
        tmp = folder / f".{POINTER}.{pid}.partial"
        with open(tmp, "w") as fh:
            json.dump(pointer, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, folder / POINTER)
    except BaseException:
        shutil.rmtree(snap, ignore_errors=True)
        raise
    for old in folder.glob("state-*"):
        if old != snap:
            shutil.rmtree(old, ignore_errors=True)
    return snap


def _pointer(folder: Path) -> dict[str, Any] | None:
    path = folder / POINTER
    if not path.is_file():
        return None
    try:
        pointer = json.loads(path.read_text())
    except ValueError as exc:
        raise ValueError(f"{path}: damaged recovery pointer ({exc}); delete the folder "
                         f"{folder} to start afresh") from exc
    if not isinstance(pointer, dict) or pointer.get("format") != FORMAT:
        raise ValueError(f"{path}: not a napari-corrtomo recovery file")
    if int(pointer.get("version", 0)) > VERSION:
        raise ValueError(f"{path}: written by a newer napari-corrtomo; update the plugin to "
                         "restore it")
    for key, kind in (("state", str), ("saved_at", (int, float)), ("pid", int), ("host", str)):
        if not isinstance(pointer.get(key), kind):
            raise ValueError(f"{path}: damaged recovery pointer (no valid {key!r})")
    if not isinstance(pointer.get("writer", ""), str):
        raise ValueError(f"{path}: damaged recovery pointer (no valid 'writer')")
    return pointer


def recovery_info(folder: str | os.PathLike) -> RecoveryInfo | None:
    """The newest snapshot's time and writer, or None when ``folder`` holds none."""
    folder = Path(folder)
    pointer = _pointer(folder)
    if pointer is None or not (folder / pointer["state"]).is_dir():
        return None
    return RecoveryInfo(folder, float(pointer["saved_at"]), pointer["pid"], pointer["host"],
                        pointer.get("writer", ""))


def read_recovery(folder: str | os.PathLike) -> RecoveryState | None:
    """The newest snapshot of ``folder``, or None when there is none.

    Layers come back as written (labels lazily, as dask arrays); the classifier file is
    checked like any classifier file (:meth:`PixelClassifier.load`).
    """
    folder = Path(folder)
    pointer = _pointer(folder)
    if pointer is None:
        return None
    snap = folder / pointer["state"]
    if not snap.is_dir() or snap.parent != folder:
        return None
    session = json.loads((snap / "session.json").read_text())
    clf_path = snap / CLASSIFIER
    return RecoveryState(
        layers=load_project(snap / "layers"),
        frames=dict(session.get("frames", {})),
        settings=dict(session.get("settings", {})),
        classifier=PixelClassifier.load(clf_path) if clf_path.is_file() else None,
        saved_at=float(pointer["saved_at"]), pid=pointer["pid"], host=pointer["host"],
        writer=pointer.get("writer", ""),
    )


def holds_changes(state: RecoveryState, layers: list[ProjectLayer],
                  panels: Mapping[str, dict]) -> bool:
    """Whether a restore of ``state`` would change a session opened from a project of
    ``layers`` and docks' state ``panels`` (:func:`.project.read_panels`): a snapshot
    holding nothing beyond the saved project is not worth offering.

    Compared: the edited layers (data and frame), the frames of the project's other layers
    (a frame of a layer the project lacks is never restored) and the docks' state (the
    classifier by its presence: it is trained from the scribbles and settings compared).
    """
    saved = {layer.name: layer for layer in layers}
    for entry in state.layers:
        old = saved.get(entry.name)
        if old is None or old.layer_type != entry.layer_type or not _same_data(old, entry) \
                or not _same_affine(old.affine, entry.affine):
            return True
    for name, frame in state.frames.items():
        old = saved.get(name)
        if old is not None and not (_same_affine(old.affine, frame.get("affine"))
                                    and jsonable(old.metadata) == jsonable(frame.get("metadata", {}))):
            return True
    return jsonable(state.settings) != jsonable(dict(panels))


def _same_data(a: ProjectLayer, b: ProjectLayer) -> bool:
    if a.layer_type == "shapes":
        return len(a.data) == len(b.data) and all(
            np.array_equal(x, y) for x, y in zip(a.data, b.data, strict=True))
    return np.array_equal(np.asarray(a.data), np.asarray(b.data))


def _same_affine(a: Any, b: Any) -> bool:
    """Equal 4x4 affines (None: the identity)."""
    return np.array_equal(np.eye(4) if a is None else np.asarray(a, float),
                          np.eye(4) if b is None else np.asarray(b, float))


def discard_recovery(folder: str | os.PathLike) -> None:
    """Remove a recovery folder's snapshots (after a restore was declined or done)."""
    folder = Path(folder)
    (folder / POINTER).unlink(missing_ok=True)
    for old in folder.glob("state-*"):
        shutil.rmtree(old, ignore_errors=True)
