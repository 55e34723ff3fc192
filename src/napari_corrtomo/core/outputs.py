"""Output paths that never cost the user data: checked before any work starts.

The rules every front end (CLI, widget exports) follows:

* an output never names an input, a file inside an input folder, or a folder that
  holds an input (``corrtomo classify img.tif --out img.tif`` is refused, not run);
* two outputs of one run never name the same path;
* an existing file is replaced only when the user asked (``overwrite=True``);
* a folder is never replaced by a file, and a folder or zarr store this program did
  not write is never replaced (a store written whole is replaced as a file is);
* an output *folder* (several tables) is written only when it is new, empty, or was
  written by the same command (:func:`claim_folder`); a rerun with other settings
  needs ``overwrite=True``;
* a results folder's mark says whether its run completed: ``"complete": false`` from
  the claim on, ``true`` with the files written once the run has ended
  (:func:`record_outputs`), so a folder an interrupted or failed run left is told
  from a finished one (:func:`describe_folder`).

Resumable zarr stores keep their own rule (:mod:`.resumable`: the same run resumes,
another run's store is replaced only with ``overwrite``); here such a store is left to
that rule, and a run that writes its result whole gives ``overwrite`` to
:func:`.io.write_volume`, which refuses to replace it otherwise.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

from .io import is_zarr_store, run_record, split_dataset

#: file that marks a folder as the output of one command (and of which settings)
FOLDER_MARK = ".corrtomo-output.json"

PathLike = str | Path


def file_stem(name: str) -> str:
    """The file name (without suffix) of a result called ``name``: each run of spaces,
    brackets and other punctuation but ``-`` is one ``_``, so that no name needs quoting
    in a shell (``"labels (mid-level boundary)"`` -> ``labels_mid-level_boundary``)."""
    return re.sub(r"[^\w-]+", "_", name).strip("_")


def _paths(value: PathLike | Iterable[PathLike] | None) -> list[Path]:
    if value is None:
        return []
    if isinstance(value, (str, Path)):
        value = [value]
    return [Path(split_dataset(v)[0]).resolve() for v in value]


def _overlaps(a: Path, b: Path) -> bool:
    return a == b or a in b.parents or b in a.parents


def check_outputs(outputs: Mapping[str, PathLike | Iterable[PathLike] | None],
                  inputs: Mapping[str, PathLike | Iterable[PathLike] | None],
                  overwrite: bool = False) -> None:
    """Refuse outputs that would overwrite an input, each other or an existing file.

    Parameters
    ----------
    outputs, inputs
        Option name (as the user knows it, e.g. ``"--out"``) -> path or paths;
        ``None`` values are ignored. Input paths may carry ``file.h5:/dataset``.
    overwrite
        Whether existing output files (and stores of another run) may be replaced.

    Raises
    ------
    ValueError
        Naming the option and saying what to choose instead. Nothing has been
        written when it is raised.
    """
    ins = [(name, p) for name, value in inputs.items() for p in _paths(value)]
    seen: dict[Path, str] = {}
    for name, value in outputs.items():
        for out in _paths(value):
            for in_name, src in ins:
                if _overlaps(out, src):
                    # an option is named; a positional's name ("inputs") is not the user's
                    option = f"{in_name} " if in_name.startswith("-") else ""
                    raise ValueError(
                        f"{name} {out} would overwrite the input {option}{src}; choose "
                        "another output path (inputs are never written)")
            if out in seen:
                raise ValueError(f"{name} and {seen[out]} both name {out}; give each output "
                                 "its own path")
            seen[out] = name
            _check_existing(name, out, overwrite)


def _check_existing(name: str, out: Path, overwrite: bool) -> None:
    store = out.name.lower().endswith(".zarr")
    if out.is_dir():
        if not store:
            raise ValueError(f"{name} {out} is a folder; give a file name")
        if not any(out.iterdir()):
            return
        if not is_zarr_store(out):
            raise ValueError(f"{name} {out} is a folder that is not a zarr store; nothing in "
                             "it is replaced: choose another output path")
        record = run_record(out)
        if record is None:
            raise ValueError(f"{name} {out} is a zarr store napari-corrtomo did not write; it "
                             "is never replaced: choose another output path")
        if "signature" in record:
            return  # a resumable run's store: resumed or replaced by that writer's rule
    if out.exists() and not overwrite:
        raise ValueError(f"{name} {out} exists; give --overwrite to replace it, or choose "
                         "another output path")


def claim_folder(folder: PathLike, command: str, settings: Mapping,
                 inputs: Mapping[str, PathLike | Iterable[PathLike] | None] | None = None,
                 overwrite: bool = False) -> Path:
    """Make ``folder`` the output folder of ``command`` run with ``settings``.

    A new or empty folder (or one holding only the mark of a run that failed before
    writing anything) is claimed; a folder claimed before by the same command
    with the same settings is reused (a rerun or resume gives the same files); one
    claimed with other settings is reused only with ``overwrite``; a non-empty
    folder this program did not write is never written into, nor one that holds or
    lies inside an input (``inputs``: option name -> path, as in :func:`check_outputs`).

    Returns the folder (created). Raises ``ValueError`` otherwise.
    """
    folder = Path(folder)
    for name, value in (inputs or {}).items():
        for src in _paths(value):
            if _overlaps(folder.resolve(), src):
                raise ValueError(f"the results folder {folder} and the input {name} {src} "
                                 "overlap; choose a results folder apart from the inputs")
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} is a file; give a folder for the results")
    record = {"command": command, "settings": json.loads(json.dumps(dict(settings),
                                                                   default=str))}
    mark = folder / FOLDER_MARK
    previous = _read_mark(folder)
    if folder.is_dir() and any(p.name != FOLDER_MARK for p in folder.iterdir()):
        if not mark.exists():
            raise ValueError(f"{folder} already holds files that corrtomo {command} did not "
                             "write; choose a new or empty folder")
        same = previous is not None and all(previous.get(k) == v for k, v in record.items())
        if not same and not overwrite:
            raise ValueError(f"{folder} holds the results of another corrtomo "
                             f"{(previous or {}).get('command', '')} run (other settings); "
                             "give --overwrite to replace them, or choose another folder")
    # the files earlier runs wrote here: those this run does not write again are removed
    # once it has written its own (record_outputs), never before
    earlier = sorted({*_listed(previous, "outputs"), *_listed(previous, "replacing")})
    if earlier:
        record["replacing"] = earlier
    record["complete"] = False  # until record_outputs: an interrupted run stays marked
    try:
        folder.mkdir(parents=True, exist_ok=True)
        mark.write_text(json.dumps(record, indent=1))
    except OSError as exc:  # a read-only disk, a parent that is a file, no permission
        raise ValueError(f"cannot write the results folder {folder}: "
                         f"{exc.strerror or exc}; choose a folder you can write to") from None
    return folder


def release_folder(folder: PathLike) -> None:
    """Undo :func:`claim_folder` for a run that failed before writing anything: a folder
    holding only the mark loses it, and is removed when that leaves it empty (a refused
    setting left an empty results folder behind)."""
    folder = Path(folder)
    mark = folder / FOLDER_MARK
    if mark.is_file() and all(p.name == FOLDER_MARK for p in folder.iterdir()):
        mark.unlink()
        folder.rmdir()


def _read_mark(folder: Path) -> dict | None:
    try:
        mark = json.loads((folder / FOLDER_MARK).read_text())
    except (OSError, ValueError):
        return None
    return mark if isinstance(mark, dict) else None


def folder_record(folder: PathLike) -> dict | None:
    """The mark of a results folder (``command``, ``settings``, ``complete``: whether the
    run ended, ``outputs``: the files it wrote), or ``None`` for a folder without one.
    A mark older than ``complete`` was completed when it lists its outputs."""
    mark = _read_mark(Path(folder))
    if mark is not None:
        mark["complete"] = mark.get("complete", "outputs" in mark) is True
    return mark


def describe_folder(folder: PathLike) -> str | None:
    """One line saying which command wrote the results folder ``folder`` and whether
    that run completed (``None`` for a folder without a mark)."""
    mark = folder_record(folder)
    if mark is None:
        return None
    run = f"corrtomo {mark.get('command', '?')}"
    if mark["complete"]:
        return f"{folder}: results of {run}, complete ({len(_listed(mark, 'outputs'))} files)"
    return (f"{folder}: results of {run}, unfinished (the run was interrupted, failed or is "
            "still running): its files are partial; run the same command again to complete "
            "them")


def _listed(mark: dict | None, key: str) -> list[str]:
    value = (mark or {}).get(key)
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _inside(folder: Path, name: str) -> Path | None:
    """``folder / name`` when it stays inside ``folder`` (a record cannot name elsewhere)."""
    path = (folder / name).resolve()
    return path if folder.resolve() in path.parents else None


def record_outputs(folder: PathLike, written: Iterable[PathLike]) -> list[Path]:
    """Record the files a run wrote into its results folder (claimed with
    :func:`claim_folder`), and remove those an earlier run wrote there that this run did
    not write again, so that the folder holds this run's results only.

    Only paths listed in the folder's mark as an earlier run's outputs are removed (a
    file or a zarr store napari-corrtomo wrote); a file the user put into the folder is
    never touched. Folders left empty by the removal (``volumes``) go too.

    Returns the paths removed.
    """
    folder = Path(folder)
    mark = _read_mark(folder) or {}
    root = folder.resolve()
    names = []
    for path in written:
        path = Path(path).resolve()
        if root in path.parents:
            names.append(path.relative_to(root).as_posix())
    keep = set(names)
    removed = []
    for name in [*_listed(mark, "outputs"), *_listed(mark, "replacing")]:
        path = _inside(folder, name)
        if name in keep or path is None or path.is_symlink():
            continue
        if path.is_file():
            path.unlink()
        elif path.is_dir() and run_record(path) is not None:  # a store this program wrote
            shutil.rmtree(path)
        else:
            continue
        removed.append(path)
        parent = path.parent
        while parent != root and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
    mark.pop("replacing", None)
    mark["outputs"] = sorted(keep)
    mark["complete"] = True
    (folder / FOLDER_MARK).write_text(json.dumps(mark, indent=1))
    return removed
