"""``corrtomo``: the plugin's pipelines, headless, for batch and cluster use.

Each capability adds one sub-command: a ``_add_<name>(subparsers)`` that declares
its arguments and a ``_run_<name>(args)`` that calls the core and writes files.
Failures print one clear line to stderr and exit with status 1 (2 for usage errors).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from . import __version__
from .core._checks import SettingError, in_words
from .core.resumable import blocks_done, input_signature

#: whether a progress line is open (an error then starts on a line of its own)
_progress_line = {"open": False}


def _print_progress(label: str):
    """A progress callback printing a percentage line at most every half second."""
    last = [0.0]

    def callback(done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or now - last[0] > 0.5:
            last[0] = now
            pct = 100.0 * done / total if total else 100.0
            _progress_line["open"] = done < total
            print(f"\r{label}: {pct:5.1f}%", end="\n" if done >= total else "", file=sys.stderr,
                  flush=True)

    return callback


# ----------------------------------------------------------------------------- clusters
# Shared by the pipelines that run blockwise (classify, quantify, reconstruct): one set of
# options and one way to open the cluster (core.cluster.dask_client).


def _add_cluster_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "large data and clusters",
        "zarr input is processed block by block; with a .ome.zarr output the result is "
        "written chunk by chunk and a rerun with the same arguments resumes after the "
        "chunks already written. Without these options the blocks run on local threads.")
    g.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="run on an existing dask.distributed scheduler (tcp://host:8786)")
    g.add_argument("--workers", metavar="N", type=int, default=None,
                   help="start a local dask.distributed cluster of N worker processes")
    g.add_argument("--memory-limit", metavar="SIZE", default=None, type=_memory_size,
                   help="memory per worker, e.g. 4GB (local cluster: its limit); blocks are "
                        "sized to fit it")
    g.add_argument("--scheduler-timeout", metavar="SECONDS", type=float, default=10.0,
                   help="give up reaching --scheduler after this long (default 10)")


# ----------------------------------------------------------------------------- outputs
# Every command declares which options name its input files and which its outputs;
# main() checks them all (core.outputs) before any work, so no run writes over an input,
# another output or an existing file the user did not ask to replace.


#: --backend's help (reconstruct, classify)
BACKEND_HELP = ("where the compute runs: auto (a GPU path verified on a device, else the CPU; "
                "default), numpy (CPU) or cupy (GPU)")


def _memory_size(text: str) -> str:
    """argparse type: a memory size such as 4GB (checked now, used as given)."""
    from .core.backend import parse_bytes

    try:
        parse_bytes(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _seed(text: str) -> int:
    """argparse type: a whole number >= 0 (NumPy's seeds)."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"the seed is a whole number >= 0, not {value}")
    return value


def _declare_files(p: argparse.ArgumentParser, inputs: Sequence[str], outputs: Sequence[str] = (),
                   folder: str | None = None, volumes: Sequence[str] = ()) -> None:
    """Declare the option names (``"--out"``, or a positional's name) of files read and
    written; ``folder``: the option naming an output folder of several files; ``volumes``:
    the outputs that are volumes (.tif or .ome.zarr, checked before the work)."""
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing outputs (files, another run's zarr store or results "
                        "folder); inputs are never replaced, and a rerun of the same run "
                        "resumes instead")
    p.set_defaults(file_inputs=tuple(inputs), file_outputs=tuple(outputs), out_folder=folder,
                   volume_outputs=tuple(volumes))


#: arguments that say how a run executes, not what it computes (a rerun may change them)
_NOT_SETTINGS = {"func", "file_inputs", "file_outputs", "out_folder", "volume_outputs",
                 "setting_words", "overwrite", "scheduler", "workers", "memory_limit",
                 "scheduler_timeout", "memory", "backend"}


def _attr(option: str) -> str:
    return option.removeprefix("--").replace("-", "_")


def _check_files(args: argparse.Namespace, extra: dict | None = None) -> None:
    """Refuse the run's outputs that would overwrite an input, each other or a file."""
    from .core.io import check_volume_path
    from .core.outputs import check_outputs, claim_folder, folder_record

    inputs = {o: getattr(args, _attr(o)) for o in getattr(args, "file_inputs", ())}
    outputs = {o: getattr(args, _attr(o)) for o in getattr(args, "file_outputs", ())}
    check_outputs({**outputs, **(extra or {})}, inputs, getattr(args, "overwrite", False))
    for option in getattr(args, "volume_outputs", ()):
        if outputs[option] is not None:
            try:
                check_volume_path(outputs[option])
            except ValueError as exc:
                raise ValueError(f"{option} {exc}") from None
    if getattr(args, "out_folder", None) and extra is None:
        settings = {k: v for k, v in vars(args).items() if k not in _NOT_SETTINGS}
        folder = getattr(args, _attr(args.out_folder))
        previous = folder_record(folder)
        claim_folder(folder, args.command, settings, inputs, args.overwrite)
        if previous is not None and not previous["complete"]:
            print(f"corrtomo {args.command}: the earlier corrtomo "
                  f"{previous.get('command', '?')} run in {folder} did not finish "
                  "(interrupted or failed): its files there are partial until this run ends",
                  file=sys.stderr)


def _record_outputs(folder: Path, written: Sequence[Path]) -> None:
    """Mark the results folder's run complete with the files it wrote; with --overwrite,
    the earlier run's files that this run did not write again go (said so)."""
    from .core.outputs import record_outputs

    removed = record_outputs(folder, written)
    if removed:
        print(f"removed {len(removed)} files of the earlier run: "
              + ", ".join(str(p.relative_to(folder.resolve())) for p in removed))


@contextlib.contextmanager
def _locked_outputs(args: argparse.Namespace) -> Iterator[None]:
    """Hold the write lock of every output for the whole run: a second run writing to
    the same output stops at once with a message naming the first."""
    from .core.resumable import writing

    names = [*getattr(args, "file_outputs", ()), getattr(args, "out_folder", None)]
    paths = []
    for name in filter(None, names):
        value = getattr(args, _attr(name))
        paths += [] if value is None else value if isinstance(value, list) else [value]
    with contextlib.ExitStack() as stack:
        for path in dict.fromkeys(Path(p).resolve() for p in paths):
            stack.enter_context(writing(path))
        yield


def _cluster(args: argparse.Namespace):
    """The cluster the options ask for (a context manager yielding the client or None)."""
    from .core.cluster import dask_client

    return dask_client(scheduler=args.scheduler, workers=args.workers,
                       memory_limit=args.memory_limit, timeout_s=args.scheduler_timeout)


def _distributed(args: argparse.Namespace) -> bool:
    return bool(args.scheduler or args.workers)


def _say_resumed(command: str, states: Sequence[tuple[int, int] | None]) -> None:
    """One line when a run picks up an earlier one's stores: how much was already done."""
    found = [s for s in states if s is not None and s[0]]
    if not found:
        return
    whole = sum(1 for done, total in found if done == total)
    parts = [f"{whole} result volume{'s' * (whole > 1)} already complete"] if whole else []
    parts += [f"{done} of {total} blocks of {'another' if whole else 'the'} result already "
              "written" for done, total in found if done < total][:1]
    print(f"corrtomo {command}: resuming the interrupted run: {', '.join(parts)}",
          file=sys.stderr)


def _check_given_size(path: str, option: str, given: Sequence[float], given_unit: str,
                      file_size: Sequence[float], file_unit: str) -> None:
    """Warn when a voxel size given with ``option`` is a slip
    (:func:`.core.units.slip_ratio`) of the voxel size the file records (both in the
    message)."""
    from .core.units import SLIP_FACTOR, slip_ratio

    ratio = slip_ratio(given, given_unit, file_size, file_unit)
    if ratio is None:
        return  # they agree, or nothing to compare (a size the core refuses in its words)
    big, small = float(ratio.max()), float(ratio.min())
    how = f"{big:,.0f} times" if big >= SLIP_FACTOR else f"1/{1 / small:,.0f} of"
    shown = " x ".join(f"{v:g}" for v in given)
    recorded = " x ".join(f"{v:g}" for v in file_size)
    print(f"warning: {option} {shown} {given_unit} is {how} the voxel size {path} records "
          f"({recorded} {file_unit}); check its unit (the value given is used)",
          file=sys.stderr)


# ----------------------------------------------------------------------------- demo


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the end-to-end pipeline on the sample data")
    p.add_argument("--out", required=True, type=Path, help="output directory (created)")
    p.add_argument("--seed", type=_seed, default=0,
                   help="random seed of the sample data (a whole number >= 0; default 0)")
    _declare_files(p, (), folder="--out")
    p.set_defaults(func=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    report = run_demo(args.out, seed=args.seed, progress=_print_progress("demo"))
    print(report.summary_text())
    print(f"wrote {len(report.files)} files to {args.out}")
    _record_outputs(args.out, report.files)
    return 0


# ----------------------------------------------------------------------------- info


def _add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="print shape, dtype, voxel size and units of volume files, "
                                    "or which run wrote a results folder and whether it finished")
    p.add_argument("paths", nargs="+", help="TIFF/MRC/HDF5/zarr files (file.h5:/dataset), or "
                                            "results folders (corrtomo demo/quantify --out)")
    p.set_defaults(func=_run_info)


def _run_info(args: argparse.Namespace) -> int:
    from .core.io import read_volumes
    from .core.outputs import describe_folder

    for path in args.paths:
        folder = describe_folder(path) if Path(path).is_dir() else None
        if folder is not None:
            print(folder)
            continue
        for v in read_volumes(path):
            arr = v.array
            scale = " x ".join(f"{s:g}" for s in v.scale)
            values = f", values in {v.value_unit}" if v.value_unit else ""
            print(f"{v.name}: {v.layer_type} {tuple(arr.shape)} {arr.dtype}, "
                  f"voxel {scale} {'/'.join(sorted(set(v.units)))}{values}")
    return 0


# ----------------------------------------------------------------------------- register


def _add_register(sub: argparse._SubParsersAction) -> None:
    from .core.register import GRIDS, METRICS, MODELS

    p = sub.add_parser(
        "register",
        help="fit a transform to landmark pairs (BigWarp CSV); optionally refine and resample",
        description="Fit the moving -> fixed transform to BigWarp landmark pairs and write it "
        "as JSON or ITK .tfm (core.register.run_register, the steps of the Register widget). "
        "With --moving and --fixed volumes it can refine the fit by intensity registration "
        "and resample the moving volume onto the fixed grid or at its own voxel size "
        "(--grid moving). Nothing is written when the fit fails.",
    )
    p.add_argument("landmarks", type=Path, nargs="?", default=None,
                   help="BigWarp landmark CSV (moving x,y,z, fixed x,y,z); optional with "
                        "--transform")
    p.add_argument("--unit", default="um", help="unit of the landmark coordinates (default um)")
    p.add_argument("--model", default="similarity", choices=tuple(MODELS),
                   help="transform model of the fit and the refinement (default similarity)")
    p.add_argument("--robust", action="store_true",
                   help="reject outlier pairs (trimmed fit + forward search; RANSAC with "
                        "--threshold)")
    p.add_argument("--threshold", type=float, default=None,
                   help="RANSAC inlier distance in --unit (default: estimated)")
    p.add_argument("--transform", type=Path, default=None,
                   help="start from this transform (.json, or ITK .tfm in --unit) instead of "
                        "fitting the landmarks, as the widget's 'Load transform'; landmarks "
                        "then only give the residual table")
    p.add_argument("--out", type=Path, action="append", required=True,
                   help="transform file(s) to write: .json and/or .tfm (repeatable)")
    p.add_argument("--residuals", type=Path, default=None,
                   help="per-landmark residual table (CSV) of the final transform")
    p.add_argument("--fixed", default=None, help="fixed volume (for --refine / --resampled)")
    p.add_argument("--moving", default=None, help="moving volume (for --refine / --resampled)")
    p.add_argument("--refine", action="store_true", help="refine the fit by intensity")
    p.add_argument("--metric", default="mattes_mi", choices=METRICS,
                   help="intensity metric of --refine (default mattes_mi)")
    p.add_argument("--resampled", type=Path, default=None,
                   help="write the moving volume resampled into the fixed frame (.tif/.ome.zarr)")
    p.add_argument("--grid", default="fixed", choices=GRIDS,
                   help="grid of --resampled: the fixed volume's (default), or 'moving': the "
                        "moving voxel size over its field of view (its origin is printed)")
    p.add_argument("--order", type=int, default=1, choices=(0, 1, 3),
                   help="interpolation order for --resampled (0 labels, 1 linear, 3 cubic; "
                        "default 1)")
    p.add_argument("--roi", type=float, nargs=6, default=None,
                   metavar=("Z0", "Y0", "X0", "Z1", "Y1", "X1"),
                   help="a box in the fixed frame (--unit) whose moving voxels --roi-out "
                        "writes at their own voxel size, as the widget's 'Crop matching "
                        "region' (needs --moving)")
    p.add_argument("--roi-out", type=Path, default=None,
                   help="the --roi crop of the moving volume (.tif/.ome.zarr)")
    _declare_files(p, ("landmarks", "--transform", "--fixed", "--moving"),
                   ("--out", "--residuals", "--resampled", "--roi-out"),
                   volumes=("--resampled", "--roi-out"))
    p.set_defaults(func=_run_register)


#: RegisterSettings fields in the command line's words
_REGISTER_WORDS = {"model": "--model", "metric": "--metric", "grid": "--grid fixed",
                   "refine": "--refine", "resample": "--resampled", "fixed_image": "--fixed",
                   "moving_image": "--moving", "landmarks": "a landmark CSV",
                   "initial": "--transform FILE", "roi": "--roi", "threshold": "--threshold",
                   "unit": "give their unit with --unit"}


def _run_register(args: argparse.Namespace) -> int:
    import numpy as np

    from .core import register as reg
    from .core._checks import in_words
    from .core.io import Volume, read_volumes, write_table, write_volume
    from .core.units import normalize_unit

    for out in args.out:
        try:
            reg.check_transform_path(out)
        except ValueError as exc:
            raise ValueError(f"--out {exc}") from None
    if args.residuals is not None and args.landmarks is None:
        raise ValueError("--residuals needs a landmark CSV")
    if (args.roi is None) != (args.roi_out is None):
        raise ValueError("--roi and --roi-out go together")
    unit = normalize_unit(args.unit)
    volumes = {}
    for role in ("fixed", "moving"):
        path = getattr(args, role)
        if path is not None:
            vol = read_volumes(path)[0]
            if vol.array.ndim != 3:
                raise ValueError(f"{path}: a 3D volume is needed, got {vol.array.ndim}D")
            volumes[f"{role}_image"] = vol.array
            volumes[f"{role}_frame"] = vol.frame(3).require_physical(
                str(path), "save the volume with its voxel size and unit")
            volumes[role] = vol
    try:
        settings = reg.RegisterSettings(args.model, args.robust, args.threshold, args.refine,
                                        args.metric, args.resampled is not None, args.grid,
                                        args.order)
        lm = None if args.landmarks is None else reg.load_landmarks_csv(args.landmarks, unit=unit)
        initial = None if args.transform is None else reg.load_transform(args.transform, unit)
        roi = None if args.roi is None else [args.roi[:3], args.roi[3:]]
        out = reg.run_register(lm, settings, initial=initial, roi=roi,
                               progress=_print_progress("register"),
                               **{k: v for k, v in volumes.items() if "_" in k})
    except ValueError as exc:
        raise ValueError(in_words(exc, _REGISTER_WORDS)) from None
    if out.fit is None:
        print(f"from {args.transform}: {initial.summary()}")
    else:
        print(out.fit.summary())
        for w in out.fit.warnings:
            print(f"warning: {w}", file=sys.stderr)
    t = out.transform
    if settings.refine:
        print(f"refined: {t.summary()} (moved up to "
              f"{t.metadata['refine']['max_shift']:.4g} {t.unit})")
        for w in t.warnings:
            print(f"warning: {w}", file=sys.stderr)
    for path in args.out:
        reg.save_transform(path, t)
        print(f"wrote {path}")
    if args.residuals is not None:
        write_table(args.residuals, out.table)
        print(f"wrote {args.residuals}")
    if args.resampled is not None:
        g = out.grid
        write_volume(args.resampled, Volume(out.resampled, g.spacing, (g.unit,) * 3,
                                            f"{volumes['moving'].name} registered"),
                     args.overwrite)
        print(f"wrote {args.resampled}: {g.shape} voxels of "
              f"{' x '.join(f'{v:g}' for v in g.spacing)} {g.unit}; origin (z, y, x) "
              f"{' '.join(f'{v:g}' for v in g.origin)} {g.unit} in the fixed frame")
    if args.roi_out is not None:
        crop, slices, clipped = out.roi
        mv = volumes["moving"]
        write_volume(args.roi_out, Volume(np.asarray(crop), mv.scale, mv.units, f"{mv.name} ROI"),
                     args.overwrite)
        print(f"wrote {args.roi_out}: moving voxels (z, y, x) "
              + ", ".join(f"{s.start}:{s.stop}" for s in slices)
              + (" (the box reaches outside the moving volume)" if clipped else ""))
    return 0


# ----------------------------------------------------------------------------- classify


class _StoreOnce(argparse._StoreAction):
    """``store``, refusing an option given twice (``--phase 3 --phase 2`` took the last)."""

    def __call__(self, parser, namespace, values, option_string=None):
        if getattr(self, "_given_in", None) is namespace:
            parser.error(f"{option_string} is given twice; give it once")
        self._given_in = namespace
        super().__call__(parser, namespace, values, option_string)


def _once(p: argparse.ArgumentParser) -> None:
    """Make the single-valued options that ``p`` adds next refuse being given twice."""
    p.register("action", None, _StoreOnce)
    p.register("action", "store", _StoreOnce)


def _add_classify(sub: argparse._SubParsersAction) -> None:
    from .core.backend import BACKENDS

    p = sub.add_parser(
        "classify",
        help="segment a volume with a saved pixel classifier (Classify widget / PixelClassifier)",
        description="Apply a saved classifier (.corrclf.npz) to a volume. Give one file per "
                    "channel in the training order (a multichannel TIFF/OME-Zarr gives all its "
                    "channels). zarr input is processed block by block and, with a .zarr "
                    "output, written block by block (volumes larger than memory).",
    )
    _once(p)
    p.add_argument("inputs", nargs="+", help="channel volumes (TIFF/MRC/HDF5/zarr)")
    p.add_argument("--classifier", required=True, type=Path, help="saved classifier file")
    p.add_argument("--out", required=True, type=Path,
                   help="segmentation output (.tif or .ome.zarr)")
    p.add_argument("--probabilities", type=Path, default=None,
                   help="also write class probabilities, one file per class: "
                        "PREFIX_<class>.tif/.ome.zarr, PREFIX_<class>_<name> for a class "
                        "named with --phase-name")
    p.add_argument("--phase-name", dest="phase_names", nargs=2, action="append", default=[],
                   metavar=("LABEL", "NAME"),
                   help="name a class in the --probabilities file names (e.g. --phase-name 1 "
                        "pore writes PREFIX_1_pore.tif; repeat for more)")
    p.add_argument("--uncertainty", type=Path, default=None,
                   help="also write the uncertainty (1 - margin) to this .tif/.ome.zarr")
    p.add_argument("--backend", default="auto", choices=BACKENDS,
                   help=BACKEND_HELP)
    p.add_argument("--memory", metavar="SIZE", default=None, type=_memory_size,
                   help="memory one block of features may take here, e.g. 4GB (default: "
                        "half the free memory; on a cluster, --memory-limit per worker)")
    _add_cluster_options(p)
    _declare_files(p, ("inputs", "--classifier"), ("--out", "--uncertainty"),
                   volumes=("--out", "--uncertainty"))
    p.set_defaults(func=_run_classify, setting_words={"budget": "--memory",
                                                      "reorder": "give the input files"})


def _class_names(pairs: Sequence[Sequence[str]], classes: Sequence[int]) -> dict[int, str]:
    """``--phase-name LABEL NAME`` pairs -> class value: the name as a file name part (the
    value stays first in the file name, so that files sort by class)."""
    from .core.outputs import file_stem

    known = ", ".join(map(str, classes))
    names: dict[int, str] = {}
    for label, name in pairs:
        try:
            value = int(label)
        except ValueError:
            raise ValueError(f"--phase-name {label} {name}: the label is a class value of the "
                             f"classifier ({known})") from None
        if value not in classes:
            raise ValueError(f"--phase-name {label}: the classifier has no class {value}; its "
                             f"classes are {known}")
        if value in names:
            raise ValueError(f"--phase-name {label} is given twice; name each class once")
        if not file_stem(name):
            raise ValueError(f"--phase-name {label} {name!r}: give a name with a letter or digit")
        names[value] = file_stem(name)
    return names


def _run_classify(args: argparse.Namespace) -> int:

    from .core import backend as bk
    from .core.classify import PixelClassifier, segment
    from .core.io import Volume, read_volumes, write_volume
    from .core.resumable import Output, store_resumable_many

    clf = PixelClassifier.load(args.classifier)
    proba_paths = []  # PREFIX_<class>[_<name>].tif/.ome.zarr, checked like the other outputs
    if args.probabilities is not None:
        names = _class_names(args.phase_names, [int(c) for c in clf.classes_])
        base = str(args.probabilities)
        suffix = ".ome.zarr" if base.endswith((".zarr", ".ome.zarr")) else ".tif"
        stem = base.removesuffix(".ome.zarr").removesuffix(".zarr").removesuffix(".tiff")
        proba_paths = [Path(f"{stem.removesuffix('.tif')}_{int(c)}"
                            f"{'_' + names[int(c)] if int(c) in names else ''}{suffix}")
                       for c in clf.classes_]
        _check_files(args, {"--probabilities": proba_paths})
    elif args.phase_names:
        raise ValueError("--phase-name names the --probabilities files; give --probabilities "
                         "PREFIX too")
    per_file = [read_volumes(path) for path in args.inputs]
    volumes = [v for vols in per_file for v in vols]
    # each channel's name: the file's, or the channel's in a multichannel file
    names = [Path(path).name if len(vols) == 1 else f"{Path(path).name}:{v.name}"
             for path, vols in zip(args.inputs, per_file) for v in vols]
    ref = volumes[0]
    # zarr input, or a cluster: blockwise (in-memory input is cut into blocks for the workers)
    lazy = any(bk.is_lazy(v.array) for v in volumes) or _distributed(args)
    known = all(u != "pixel" for u in ref.units)
    spacing, unit = (ref.scale, ref.units[0]) if known else (None, None)
    if not known:
        print(f"corrtomo classify: {ref.name} has no voxel size; using the classifier's "
              f"{clf.spacing} {clf.unit}", file=sys.stderr)
    scale = clf.spacing if not known else ref.scale
    units = (clf.unit,) * len(scale) if not known else ref.units
    with _cluster(args):
        seg = segment(clf, [v.array for v in volumes], spacing, unit, lazy=lazy,
                      backend=args.backend, budget=args.memory,
                      progress=None if lazy else _print_progress("classify"), names=names)
        for text in seg.warnings:  # e.g. a channel far off the training's intensities
            print(f"warning: {text}", file=sys.stderr)
        outputs = [(args.out, seg.labels, "labels", "segmentation")]
        if args.uncertainty is not None:
            outputs.append((args.uncertainty, seg.uncertainty, "image", "uncertainty"))
        for k, (c, path) in enumerate(zip(clf.classes_, proba_paths)):
            outputs.append((path, seg.probabilities[k], "image", f"probability {int(c)}"))
        chunked = [o for o in outputs if lazy and str(o[0]).endswith(".zarr")]
        if chunked:  # one pass over the blocks for all of them, resumable
            signature = {"command": "classify", "classifier": input_signature([args.classifier]),
                         "inputs": input_signature(args.inputs), "backend": args.backend}
            _say_resumed("classify", [blocks_done(Path(o[0]), signature.__eq__)
                                      for o in chunked])
            store_resumable_many([Output(data, path, tuple(scale), tuple(units), kind, name)
                                  for path, data, kind, name in chunked],
                                 signature=signature, overwrite=args.overwrite,
                                 progress=_print_progress("classify"))
        for path, data, kind, name in outputs:
            if not any(path is o[0] for o in chunked):
                write_volume(path, Volume(data, tuple(scale), tuple(units), name, kind),
                             args.overwrite)
            print(f"wrote {name} to {path}")
    return 0


# ----------------------------------------------------------------------------- reconstruct


def _add_reconstruct(sub: argparse._SubParsersAction) -> None:
    from .core import recon
    from .core.backend import BACKENDS

    p = sub.add_parser(
        "reconstruct",
        help="reconstruct a projection stack (angle, row, col) with a geometry JSON",
        description="Projections -> (flat/dark, -log, zingers, rings, centre, alignment) -> "
        "FBP/FDK/SIRT/CGLS -> volume with voxel size and unit (TIFF or OME-Zarr).",
    )
    p.add_argument("projections", help="projection stack (TIFF/MRC/HDF5/zarr; file.h5:/dataset)")
    p.add_argument("--geometry", required=True, type=Path,
                   help="geometry JSON (see docs/reconstruction.md)")
    p.add_argument("--out", required=True, type=Path, help="output volume (.tif or .ome.zarr)")
    p.add_argument("--method", choices=recon.METHODS,
                   help="default: fbp for parallel beams, fdk for cone beams")
    p.add_argument("--iterations", type=int, default=100,
                   help="SIRT/CGLS iterations (default 100)")
    p.add_argument("--min-value", type=float,
                   help="SIRT lower bound of the attenuation, in 1/unit of the geometry (e.g. "
                        "0: non-negative; default: none)")
    p.add_argument("--shape", type=int, nargs=3, metavar=("Z", "Y", "X"),
                   help="volume shape (default: the detector's field of view)")
    p.add_argument("--voxel-size", type=float,
                   help="voxel size in the geometry's length unit (default: the detector "
                        "pixel at the rotation axis)")
    p.add_argument("--filter", default="ram-lak",
                   choices=recon.FILTERS,
                   help="FBP/FDK ramp filter window (default ram-lak, the sharpest; the others "
                        "smooth: less noise, less resolution)")
    p.add_argument("--flats", help="flat-field frames (averaged)")
    p.add_argument("--darks", help="dark frames (averaged)")
    p.add_argument("--log", action=argparse.BooleanOptionalAction, default=None,
                   help="take -log (default: on when flats are given)")
    p.add_argument("--outliers", type=float, metavar="SIGMA",
                   help="remove zingers above this many robust standard deviations (5 is a "
                        "safe start; default: off)")
    p.add_argument("--rings", type=int, metavar="COLUMNS",
                   help="suppress rings: width in detector columns (at least 3) of the running "
                        "median (default: off)")
    p.add_argument("--center", metavar="auto|OFFSET",
                   help="rotation-axis offset in pixels added to the geometry's, or 'auto' to "
                        "search it (default: the geometry's own offset)")
    p.add_argument("--align", nargs="?", const="auto", default=None,
                   choices=recon.ALIGN_METHODS, metavar="METHOD",
                   help="align a tilt series: auto (default; tries the others and keeps the "
                        "one whose aligned series fits a volume best), xcorr (neighbour "
                        "cross-correlation), com (centre of mass) or both (the last two need "
                        "the object in the field of view at every tilt)")
    p.add_argument("--fsc", type=Path, metavar="CSV",
                   help="also reconstruct even/odd halves and write their FSC table")
    p.add_argument("--save-geometry", type=Path, metavar="JSON",
                   help="write the geometry actually used (with centre and alignment shifts)")
    p.add_argument("--backend", default="auto", choices=BACKENDS,
                   help=BACKEND_HELP)
    p.add_argument("--slab", type=int, default=None, metavar="SLICES",
                   help="slices per task (parallel-beam FBP; default 16); needs --workers or "
                        "--scheduler")
    _add_cluster_options(p)
    _declare_files(p, ("projections", "--geometry", "--flats", "--darks"),
                   ("--out", "--fsc", "--save-geometry"), volumes=("--out",))
    p.set_defaults(func=_run_reconstruct, setting_words={
        "outlier_threshold": "--outliers", "ring_size": "--rings", "log": "--log",
        "center_auto": "--center auto", "angles_deg": "'angles' of the geometry JSON",
        "floor": "give the right --flats/--darks (corrtomo does not clamp them)"})


def _run_reconstruct(args: argparse.Namespace) -> int:
    import numpy as np

    from .core import recon
    from .core.cluster import check_memory_limit
    from .core.io import Volume, read_volumes, split_dataset, write_table, write_volume

    def first(path: str | None):
        if path is None:
            return None
        return np.asarray(read_volumes(path)[0].array)

    # one stack given twice (the projections as their own flats failed as "flat field
    # zero at 129 pixels"); two datasets of one HDF5 file are two stacks
    seen: dict[tuple, str] = {}
    for what, path in (("the projections", args.projections), ("--flats", args.flats),
                       ("--darks", args.darks)):
        if path is not None:
            file, dataset = split_dataset(path)
            if (key := (file.resolve(), dataset)) in seen:
                raise ValueError(f"{what} and {seen[key]} are one stack ({path}): flats are "
                                 "taken with the beam and no sample, darks without the beam")
            seen[key] = what
    geometry = recon.Geometry.load(args.geometry)
    given = geometry
    center = args.center
    if center is not None and center != "auto":
        try:
            center = float(center)
        except ValueError:
            raise ValueError(f"--center takes 'auto' or a number of pixels, not "
                             f"{args.center!r}") from None
    scan = recon.ScanSettings(log=args.log, outlier_threshold=args.outliers,
                              ring_size=args.rings, align=args.align is not None,
                              align_method=args.align or "auto", center=center)
    settings = recon.ReconSettings(args.method, args.iterations, args.min_value,
                                   None if args.shape is None else tuple(args.shape),
                                   args.voxel_size, args.filter, args.backend)
    recon.check_center(geometry, center)  # an axis off the detector, before any reading
    name = args.out.name.split(".")[0]
    distributed = _distributed(args)
    if args.slab is not None and not distributed:
        raise ValueError("--slab sets the slices per task of --workers/--scheduler; give one "
                         "of those, or leave out --slab to reconstruct here")
    slab = (16 if args.slab is None else args.slab) if distributed else None
    if slab is not None and slab < 1:
        raise ValueError(f"--slab must be at least 1 slice, got {slab}")
    check_memory_limit(args.memory_limit)  # before the cluster starts (workers would loop)
    try:  # before a cluster starts
        recon.check_slab(settings, geometry, slab)
    except SettingError as exc:
        raise ValueError(exc.worded({"slab": "--workers/--scheduler",
                                     "method": "drop those options to run it here"})) from None
    # the volume's memory, before any reading: whole here, or one slab per worker when it is
    # written slab by slab into a zarr store
    slab_wise = slab is not None and str(args.out).endswith(".zarr")
    worker = None
    if slab_wise and args.memory_limit is not None:
        from .core.backend import parse_bytes
        from .core.cluster import BUDGET_FRACTION

        worker = int(parse_bytes(args.memory_limit) * BUDGET_FRACTION)
    try:
        recon.check_memory(geometry, settings, slab=slab if slab_wise else None,
                           halves=args.fsc is not None, budget=worker)
    except SettingError as exc:
        raise ValueError(exc.worded({
            "shape": "--shape", "voxel_size": "--voxel-size", "slab_size": "--slab",
            "slab": "write it slab by slab into a .ome.zarr --out with --workers N",
            "budget": ("60 % of --memory-limit" if worker is not None else
                       "half the free memory, or CORRTOMO_MEMORY_BUDGET")})) from None
    # a grid that misses the detector (a unit slip): after the memory, as in the pipeline,
    # and before any reading
    try:
        recon.check_grid(geometry, settings.shape, settings.voxel_size)
    except SettingError as exc:
        raise ValueError(exc.worded({"shape": "--shape", "voxel_size": "--voxel-size"})) from None
    data, flats, darks = first(args.projections), first(args.flats), first(args.darks)
    if args.log is None and (peak := recon.raw_counts_peak(data, flats, args.log,
                                                           geometry.kind)) is not None:
        raise ValueError(f"these look like raw detector counts (values up to {peak:.6g}), not "
                         "line integrals: give --flats/--darks or --log (or --no-log to "
                         "reconstruct them as they are)")
    with _cluster(args):
        # on a cluster: slabs of slices, computed and written slab by slab
        result = recon.run_reconstruction(data, geometry, scan, settings, flats=flats,
                                          darks=darks, halves=args.fsc is not None, slab=slab,
                                          progress=_print_progress("reconstruct"))
        geometry, s = result.geometry, result.settings
        vol = result.volume
        if distributed and str(args.out).endswith(".zarr"):
            from .core.resumable import store_resumable

            signature = {"command": "reconstruct", "geometry": geometry.to_json(),
                         "projections": input_signature([args.projections]),
                         "shape": list(vol.shape), "voxel_size": s.voxel_size,
                         "filter": s.filter,
                         "preprocess": [args.flats, args.darks, args.log, args.outliers,
                                        args.rings, args.align]}
            out = store_resumable(vol, args.out, (s.voxel_size,) * 3, geometry.unit, name=name,
                                  signature=signature, overwrite=args.overwrite,
                                  progress=_print_progress(s.method))
        else:
            # attenuation per length of the geometry's unit
            out = write_volume(args.out, Volume(np.asarray(vol), (s.voxel_size,) * 3,
                                                (geometry.unit,) * 3, name, "image",
                                                value_unit=f"1/{geometry.unit}"),
                               args.overwrite)
    if result.alignment is not None:
        moved = np.abs(geometry.shifts - given.shifts).mean(axis=0)
        print(f"alignment: {result.alignment.summary()}; mean |shift| "
              f"{moved.round(3).tolist()} px (row, col)")
    if center is not None:
        print(f"rotation axis offset: {float(np.mean(geometry.shifts[:, 1])):.3f} px")
    print(f"wrote {out}: {tuple(result.volume.shape)} voxels of {s.voxel_size:.6g} "
          f"{geometry.unit} ({s.method})")
    if args.save_geometry:
        geometry.save(args.save_geometry)
    if args.fsc:
        write_table(args.fsc, result.fsc.table(geometry.unit))
        print(result.fsc.summary(geometry.unit))


# ----------------------------------------------------------------------------- quantify


def _add_quantify(sub: argparse._SubParsersAction) -> None:
    from .core.quantify import ENVELOPES, MEASURES
    from .core.quantify.pipeline import ENVELOPE_MEASURES

    p = sub.add_parser(
        "quantify",
        help="measure a label volume (porosity, pore/particle sizes, ...) -> CSV tables",
        description="Measure a segmented volume in physical units and write one CSV per "
                    "table (summary.csv first). Measures: " + ", ".join(
                        f"{k} ({s.title})" for k, s in MEASURES.items()),
    )
    _once(p)
    p.add_argument("labels", help="label volume (TIFF/MRC/HDF5/zarr; file.h5:/dataset)")
    p.add_argument("--out", required=True, type=Path, help="output directory (created)")
    p.add_argument("--phase", type=int, required=True, help="label value of the measured phase")
    p.add_argument("--matrix", type=int, default=None,
                   help="label of the other phase of the sample (e.g. the solid)")
    p.add_argument("--outside", type=int, nargs="*", default=[],
                   help="labels of the surrounding medium (e.g. 0 1 for air and resin; "
                        "default: none)")
    p.add_argument("--spacing", type=float, nargs="+", default=None,
                   help="voxel size (z y x, or one value) in --unit; default: from the file")
    p.add_argument("--unit", default=None,
                   help="unit of the voxel size and of every length option (default: the "
                        "file's; the file's voxel size is converted to it; needed with "
                        "--spacing for a file without one)")
    p.add_argument("--measures", default=None,
                   help="comma-separated measure keys (default: " + ", ".join(
                       k + (" (with --intensity)" if s.needs_intensity else "")
                       + (" (with --matrix)" if s.needs_matrix else "")
                       for k, s in MEASURES.items() if s.default)
                        + "; a zarr volume or a cluster: those of them that run block by "
                          "block)")
    p.add_argument("--intensity", default=None,
                   help="image for the proxigram and the partial-volume porosity")
    # one option per QuantifySettings field, named like it (tests/cli/test_quantify.py)
    p.add_argument("--mid-level", action="store_true",
                   help="move the phase/matrix boundary to the grey level half way between "
                        "them (needs --intensity and --matrix): a classifier trained on "
                        "phase interiors leaves it anywhere in the blurred band")
    p.add_argument("--within-envelopes", action="store_true",
                   help="measure inside the particle envelopes only (needs --matrix): the "
                        "phase outside every envelope counts as outside, so porosity and "
                        "pore sizes are those of the particles' own pores")
    p.add_argument("--exclude-border", action="store_true",
                   help="with --within-envelopes: leave out the particles whose envelope is "
                        "cut by the volume's border")
    p.add_argument("--particle-at", dest="particles_at", type=float, nargs=3, action="append",
                   default=[], metavar=("Z", "Y", "X"),
                   help="a point on a particle to measure (unit of the voxel size, from the "
                        "first voxel's centre; repeat for more): the envelope measures and "
                        "--within-envelopes keep the envelope at or nearest each point only")
    p.add_argument("--phase-name", dest="phase_names", nargs=2, action="append", default=[],
                   metavar=("LABEL", "NAME"),
                   help="name a label value in the tables and notes (e.g. --phase-name 3 "
                        "macropore; repeat for more)")
    p.add_argument("--radius", type=float, default=None,
                   help="rolling-ball radius of the inner pores, in the voxel size's unit "
                        "(default: 2 voxels)")
    p.add_argument("--max-distance", type=float, default=None,
                   help="range of the correlation functions, in the voxel size's unit "
                        "(default: 1/4 of the extent)")
    p.add_argument("--proxigram-distance", type=float, default=None,
                   help="half-width of the proxigram, in the voxel size's unit (default: 8 "
                        "voxels)")
    p.add_argument("--bin-width", type=float, default=None,
                   help="histogram/profile bin width, in the voxel size's unit (default: one "
                        "voxel)")
    p.add_argument("--split-h", type=float, default=None,
                   help="depth of the distance maxima that split touching particles, in the "
                        "voxel size's unit (default: the largest voxel size)")
    p.add_argument("--close-radius", type=float, default=None,
                   help="porous particles: radius (voxel size's unit) of a closing of each "
                        "matrix particle alone "
                        "(fills surface pores, never bridges two particles) before touching "
                        "particles are split; their porosity is then all that is not matrix")
    p.add_argument("--min-volume", type=float, default=0.0,
                   help="particles smaller than this volume (unit^3) are dropped (default 0: "
                        "none)")
    p.add_argument("--smooth", type=float, default=1.0,
                   help="Gaussian smoothing (voxels) of the surfaces before meshing, "
                        "curvature-corrected (default 1; 0: binary marching cubes)")
    p.add_argument("--envelope", choices=ENVELOPES, default="sphere",
                   type=lambda text: text.replace("-", " ").replace("_", " "),
                   metavar="{" + ",".join(e.replace(" ", "-") for e in ENVELOPES) + "}",
                   help="particle envelopes: a sphere per particle (the seed's spherical "
                        "mask; default) or a ball rolling around it (any shape; rolling-ball "
                        "or 'rolling ball')")
    p.add_argument("--envelope-radius-fraction", type=float, default=1.5,
                   help="rolling-ball envelopes: ball radius over the particle's "
                        "equivalent-sphere radius (default 1.5)")
    p.add_argument("--axes", dest="transport_axes", type=int, nargs="+", default=None,
                   metavar="AXIS",
                   help="transport axes (tortuosity, geodesic tortuosity, constrictivity), "
                        "0 = z (default: all)")
    p.add_argument("--depths", type=float, nargs="+", default=None, metavar="D",
                   help="depths of the geodesic tortuosity, in the voxel size's unit "
                        "(default: 1/8, 1/4, 3/8 and 1/2 of the sample length)")
    p.add_argument("--save-volumes", action="store_true",
                   help="also write the result volumes (local thickness, particles ...) as TIFF "
                        "(blockwise runs always write them, as OME-Zarr in OUT/volumes)")
    _add_cluster_options(p)
    _declare_files(p, ("labels", "--intensity"), folder="--out")
    # SettingError words beyond the options' own names
    p.set_defaults(func=_run_quantify, setting_words={
        "envelope_measures": " or ".join(sorted(ENVELOPE_MEASURES)) + " in --measures",
        "in_memory": "use a TIFF copy without --workers/--scheduler if it fits in memory"})


def _tuples(value: Any) -> Any:
    """argparse's lists (of lists) as the tuples the settings hold."""
    return tuple(map(_tuples, value)) if isinstance(value, list) else value


def _check_label_file(path: str, labels: Any) -> None:
    """Refuse a label file that is not a 3D volume, or a grey image given as the label
    volume (the image itself, not its segmentation), naming the file: its first slices
    are looked at."""
    import numpy as np

    if labels.ndim != 3:
        raise ValueError(f"{path} is {labels.ndim}D ({' x '.join(map(str, labels.shape))}); "
                         "quantify measures 3D label volumes (z, y, x): give the segmented "
                         "volume, not a single slice")
    if labels.dtype == bool or np.issubdtype(labels.dtype, np.integer):
        return
    head = np.asarray(labels[: min(8, labels.shape[0])]) if labels.ndim else np.asarray(labels)
    fractional = head[np.isfinite(head) & (head != np.round(head))]
    if fractional.size or not np.all(np.isfinite(head)):
        shown = ", ".join(f"{v:g}" for v in np.unique(fractional)[:3])
        raise ValueError(f"{path} holds {labels.dtype} grey values ({shown or 'NaN'} ...), not "
                         "integer labels: it may be the image. Give its segmentation (a label "
                         "volume, e.g. from corrtomo classify) as the labels argument, and the "
                         "image as --intensity")


def _run_quantify(args: argparse.Namespace) -> int:
    from .core._checks import check_spacing
    from .core.io import read_volumes, write_table, write_tiff
    from .core.outputs import file_stem
    from .core.quantify import QuantifySettings, quantify
    from .core.quantify.pipeline import store_signature
    from .core.units import common_unit, convert, normalize_unit

    # checked before any file is read
    settings = QuantifySettings(**{
        f.name: _tuples(getattr(args, f.name)) for f in fields(QuantifySettings)})
    vol = read_volumes(args.labels)[0]
    labels = vol.array
    _check_label_file(args.labels, labels)
    # --spacing is in --unit (default: the file's unit); --unit alone converts the file's
    # voxel size (it once relabelled it: 0.25 um voxels read as 0.25 nm)
    # --unit pixel measures in voxels (the unit of a file without a voxel size)
    file_unit = common_unit(vol.units)
    unit = normalize_unit(args.unit) if args.unit else file_unit
    if args.spacing is not None:
        spacing = tuple(args.spacing) if len(args.spacing) > 1 else args.spacing[0]
        if args.unit is None and unit == "pixel":
            raise ValueError(f"{args.labels} has no unit; give the unit of --spacing with "
                             "--unit (e.g. --unit um; --unit pixel measures in voxels)")
        _check_given_size(args.labels, "--spacing", args.spacing, unit, vol.scale, file_unit)
    elif unit == "pixel" and file_unit != "pixel":
        raise ValueError(f"{args.labels} records voxels of "
                         f"{' x '.join(f'{v:g}' for v in vol.scale)} {file_unit}; to measure "
                         "in voxels give --spacing 1 --unit pixel")
    elif unit == "pixel":
        if args.unit is None:
            raise ValueError(f"{args.labels} has no voxel size; give --spacing and --unit "
                             "(or --unit pixel to measure in voxels)")
        spacing = 1.0
    else:
        spacing = tuple(float(v) for v in convert(vol.scale, file_unit, unit))
    intensity = None
    if args.intensity:
        intensity = read_volumes(args.intensity)[0].array
    measures = None if args.measures is None else [m.strip() for m in args.measures.split(",")
                                                   if m.strip()]
    import numpy as np

    from .core.backend import is_lazy

    # zarr input, or a cluster: blockwise measures, volumes written chunk by chunk (resumable)
    lazy = is_lazy(labels) or _distributed(args)
    args.out.mkdir(parents=True, exist_ok=True)
    written = []
    with _cluster(args):
        if lazy:
            import dask.array as da

            lab = labels if is_lazy(labels) else da.from_array(np.asarray(labels), chunks=128)
            img = None
            if intensity is not None:
                img = intensity if is_lazy(intensity) else da.from_array(np.asarray(intensity),
                                                                          chunks=128)
            signature = {"command": "quantify", "labels": input_signature([args.labels])}
            # each result's store holds the run's signature and the result's name
            ours = json.loads(json.dumps(store_signature(
                signature, settings, check_spacing(spacing, lab.ndim), unit)))
            stores = sorted((args.out / "volumes").glob("*.ome.zarr"))
            _say_resumed("quantify", [blocks_done(p, lambda sig: {
                k: v for k, v in sig.items() if k != "result"} == ours) for p in stores])
            result = quantify(lab, spacing, unit, measures=measures, settings=settings,
                              intensity=img, progress=_print_progress("quantify"),
                              store=args.out / "volumes", signature=signature,
                              overwrite=args.overwrite)
        else:
            result = quantify(np.asarray(labels), spacing, unit, measures=measures,
                              settings=settings,
                              intensity=None if intensity is None else np.asarray(intensity),
                              progress=_print_progress("quantify"))
    for name, frame in result.all_tables().items():
        written.append(write_table(args.out / f"{name}.csv", frame))
    for name, arr in result.arrays.items():
        if arr.path is not None:
            written.append(arr.path)
        elif args.save_volumes:
            path = args.out / f"{file_stem(name)}.tif"
            written.append(write_tiff(path, arr.data, result.spacing, (result.unit,) * 3,
                                      arr.kind))
    print(result.summary().to_string(index=False, float_format="{:.6g}".format))
    for note in result.notes:
        print(f"note: {note}")
    print(f"wrote {len(written)} files to {args.out}")
    _record_outputs(args.out, written)


# ----------------------------------------------------------------------------- fib


def _add_fib(sub: argparse._SubParsersAction) -> None:
    from .core import fib

    p = sub.add_parser(
        "fib",
        help="FIB-SEM stack + slice thicknesses -> isotropic volume (reposition + interpolate)",
        description="Put every FIB slice at its true depth on a fine z grid and fill the gaps "
                    "(core.fib.run_fib, the steps of the FIB widget). Thicknesses come from a "
                    "CSV (--thickness), the ruler marks in the images (--ruler-rows) or a "
                    "constant (--constant).",
    )
    _once(p)
    p.add_argument("stack", help="slice stack (TIFF/MRC/HDF5/zarr), slice 0 first")
    p.add_argument("--out", required=True, type=Path, help="output volume (.tif or .ome.zarr)")
    p.add_argument("--channel", type=int, default=0,
                   help="channel/volume index in the file, from 0 (default 0: the first)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--thickness", type=Path, help="CSV with a thickness_nm (or _um ...) column")
    src.add_argument("--ruler-rows", type=int, nargs=2, metavar=("FIRST", "STOP"),
                     help="measure thicknesses from the ruler marks in these image rows")
    src.add_argument("--constant", type=float, metavar="NM",
                     help="assume this thickness (nm) for every slice")
    p.add_argument("--band-rows", type=int, nargs=2, metavar=("FIRST", "STOP"), default=None,
                   help="rows of a ruler band to cut from the result with --thickness or "
                        "--constant (with --ruler-rows: those rows)")
    p.add_argument("--keep-band", action="store_true",
                   help="keep the ruler band rows in the output (default: cut them; the band "
                        "must touch the top or bottom edge)")
    p.add_argument("--ruler-angle", type=float, default=None, metavar="DEG",
                   help="angle (deg) of the inclined ruler trenches (required with --ruler-rows)")
    p.add_argument("--ruler-layout", default=None,
                   help="left-to-right types of the four marks, P parallel and I inclined, "
                        "e.g. IPPI (default: inferred, the two whose distance stays constant "
                        "are parallel)")
    p.add_argument("--ruler-x-first", type=float, nargs=4, default=None,
                   metavar=("X0", "X1", "X2", "X3"),
                   help="approximate x (pixels) of the four marks in the first slice "
                        "(default: the four strongest)")
    p.add_argument("--polarity", choices=fib.POLARITIES, default="dark",
                   help="whether the ruler marks are darker or brighter than their "
                        "surroundings (default dark)")
    p.add_argument("--max-step", type=float, default=None, metavar="PX",
                   help="largest mark motion between slices in pixels (default: 3x the median)")
    p.add_argument("--fallback-thickness", type=float, default=None, metavar="NM",
                   help="thickness (nm) for slices whose ruler marks are not found "
                        "(default: such slices are an error)")
    p.add_argument("--align", action="store_true",
                   help="undo the in-plane x drift measured from the parallel ruler marks")
    p.add_argument("--pixel-size", type=float, default=None, metavar="NM",
                   help="in-plane pixel size in nm (default: from the file)")
    p.add_argument("--grid", type=float, default=None, metavar="NM",
                   help="z grid spacing in nm (default: the pixel size -> isotropic voxels)")
    p.add_argument("--method", choices=fib.METHODS, default="cubic",
                   help="how the planes between measured slices are filled: nearest slice, "
                        "cubic spline along z (default), shape-based (signed distances, for "
                        "labels) or ml (the shipped network, binary stacks on ~isotropic "
                        "voxels)")
    p.add_argument("--kind", choices=fib.KINDS, default="auto",
                   help="what the stack holds (default auto: bool or 0/1 -> binary, else grey)")
    p.add_argument("--thickness-out", type=Path, default=None,
                   help="write the thicknesses used (with ruler confidence/flags) to this CSV")
    _declare_files(p, ("stack", "--thickness"), ("--out", "--thickness-out"),
                   volumes=("--out",))
    p.set_defaults(func=_run_fib)


#: FibSettings fields (and message phrases) in the command line's words
_FIB_WORDS = {
    "band_rows": "--ruler-rows / --band-rows", "cut_band": "pass --keep-band",
    "angle_deg": "--ruler-angle", "layout": "--ruler-layout", "x_first": "--ruler-x-first",
    "polarity": "--polarity", "max_step_px": "--max-step",
    "fallback_thickness": "--fallback-thickness", "csv_path": "--thickness",
    "constant_nm": "--constant", "align": "--align", "grid_nm": "--grid",
    "method": "--method ", "cubic_method": "--method cubic", "unit_hint": "",
    "kind": "--kind binary", "grey_kind": "--kind grey", "pixel_size_nm": "--pixel-size",
    "labels_kind": "--kind labels",
}


def _fib_settings(args: argparse.Namespace):
    from .core import fib

    source = "csv" if args.thickness else "ruler" if args.ruler_rows else "constant"
    band = args.ruler_rows or args.band_rows
    if args.ruler_rows and args.band_rows and list(args.band_rows) != list(args.ruler_rows):
        raise ValueError("--band-rows differs from --ruler-rows; the ruler band is one band")
    return fib.FibSettings(
        source=source, band_rows=tuple(band) if band else None, cut_band=not args.keep_band,
        angle_deg=args.ruler_angle, layout=args.ruler_layout,
        x_first=tuple(args.ruler_x_first) if args.ruler_x_first else None,
        polarity=args.polarity, max_step_px=args.max_step,
        fallback_thickness=args.fallback_thickness,
        csv_path=str(args.thickness) if args.thickness else None, constant_nm=args.constant,
        align=args.align, grid_nm=args.grid, method=args.method, kind=args.kind)


def _run_fib(args: argparse.Namespace) -> int:
    import numpy as np

    from .core import fib
    from .core._checks import in_words
    from .core.io import Volume, read_volumes, write_table, write_volume
    from .core.units import convert

    vols = read_volumes(args.stack)
    if not 0 <= args.channel < len(vols):
        raise ValueError(f"--channel {args.channel}: the file holds {len(vols)} volume(s)")
    vol = vols[args.channel]
    stack = vol.array  # zarr stacks stay lazy (processed block by block)
    if stack.ndim != 3:
        raise ValueError(f"{args.stack}: need a 3D stack (slices, y, x), got shape {stack.shape}")
    if args.pixel_size is not None:
        px = float(args.pixel_size)
    else:
        frame = vol.frame(3).require_physical(str(args.stack), "pass --pixel-size (nm)")
        px = float(convert(frame.spacing[-1], frame.unit, "nm"))
    try:
        out = fib.run_fib(stack, px, _fib_settings(args), labels=vol.layer_type == "labels",
                          progress=_print_progress("fib"))
    except ValueError as exc:
        raise ValueError(in_words(exc, _FIB_WORDS)) from None
    thickness = out.thickness
    if thickness.ruler is not None:
        flagged = thickness.ruler.flagged
        listed = ", ".join(map(str, flagged["slice"].tolist()[:10]))
        print(f"ruler: {stack.shape[0]} slices, median thickness "
              f"{np.nanmedian(thickness.thickness_nm):.2f} nm, {len(flagged)} flagged"
              + (f" ({listed})" if len(flagged) else ""))
    if args.thickness_out is not None:
        write_table(args.thickness_out, thickness.table)
    layer_type = "image" if out.kind == "grey" else "labels"
    data = out.volume.astype(np.uint8) if out.volume.dtype == bool else out.volume
    write_volume(args.out, Volume(data, out.spacing_nm, ("nm",) * 3, args.out.name, layer_type),
                 args.overwrite)
    print(f"wrote {args.out}: {data.shape} voxels of "
          f"{' x '.join(f'{s:g}' for s in out.spacing_nm)} nm ({out.method}, {out.kind}; "
          f"{int(out.known.sum())} measured planes); origin (z, y, x) "
          f"{' '.join(f'{v:g}' for v in out.origin_nm)} nm from the stack's first voxel")
    return 0


# ----------------------------------------------------------------------------- main

_COMMANDS = (_add_demo, _add_info, _add_reconstruct, _add_register, _add_classify, _add_fib,
             _add_quantify)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="corrtomo",
        description="Correlative tomography pipelines (napari-corrtomo), headless.",
    )
    parser.add_argument("--version", action="version", version=f"corrtomo {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in _COMMANDS:
        add(sub)
    return parser


def _option_words(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, str]:
    """A setting's name -> the command's option for it (the option's own name, or what
    the command declares in ``setting_words``), for :class:`SettingError` messages."""
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    sub = commands.choices[args.command]
    words = {a.dest: a.option_strings[-1] for a in sub._actions if a.option_strings}
    return {**words, **getattr(args, "setting_words", {})}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # a results folder this run makes is taken back if it fails before writing into it
    folder = getattr(args, "out_folder", None) and getattr(args, _attr(args.out_folder))
    new_folder = folder is not None and not Path(folder).exists()
    try:
        _check_files(args)
        with _locked_outputs(args):
            code = int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, OSError) as exc:
        _end_progress_line()
        print(f"corrtomo {args.command}: error: {in_words(exc, _option_words(parser, args))}",
              file=sys.stderr)
        code = 1
    except MemoryError as exc:  # never a traceback: what ran out, and what to do
        _end_progress_line()
        detail = f" ({exc})" if str(exc) else ""
        print(f"corrtomo {args.command}: error: out of memory{detail}; nothing was written. "
              "Work on a smaller volume or crop, give zarr input or a .ome.zarr --out "
              "(processed block by block), or use a machine with more memory", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        _end_progress_line()
        print(f"corrtomo {args.command}: interrupted", file=sys.stderr)
        code = 130
    if code and new_folder:
        from .core.outputs import release_folder

        release_folder(folder)
    return code


def _end_progress_line() -> None:
    if _progress_line["open"]:
        print(file=sys.stderr)
        _progress_line["open"] = False


if __name__ == "__main__":
    sys.exit(main())
