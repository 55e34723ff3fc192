"""``corrtomo``: the plugin's pipelines, headless, for batch and cluster use.

Each capability adds one sub-command: a ``_add_<name>(subparsers)`` that declares
its arguments and a ``_run_<name>(args)`` that calls the core and writes files.
Failures print one clear line to stderr and exit with status 1 (2 for usage errors).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from . import __version__


def _print_progress(label: str):
    """A progress callback printing a percentage line at most every half second."""
    last = [0.0]

    def callback(done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or now - last[0] > 0.5:
            last[0] = now
            pct = 100.0 * done / total if total else 100.0
            print(f"\r{label}: {pct:5.1f}%", end="\n" if done >= total else "", file=sys.stderr,
                  flush=True)

    return callback


# ----------------------------------------------------------------------------- demo


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the end-to-end pipeline on the sample data")
    p.add_argument("--out", required=True, type=Path, help="output directory (created)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the sample data")
    p.set_defaults(func=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    report = run_demo(args.out, seed=args.seed, progress=_print_progress("demo"))
    print(report.summary_text())
    print(f"wrote {len(report.files)} files to {args.out}")
    return 0


# ----------------------------------------------------------------------------- info


def _add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="print shape, dtype, voxel size and units of volume files")
    p.add_argument("paths", nargs="+", help="TIFF/MRC/HDF5/zarr files (file.h5:/dataset)")
    p.set_defaults(func=_run_info)


def _run_info(args: argparse.Namespace) -> int:
    from .core.io import read_volumes

    for path in args.paths:
        for v in read_volumes(path):
            arr = v.array
            scale = " x ".join(f"{s:g}" for s in v.scale)
            print(f"{v.name}: {v.layer_type} {tuple(arr.shape)} {arr.dtype}, "
                  f"voxel {scale} {'/'.join(sorted(set(v.units)))}")
    return 0


# ----------------------------------------------------------------------------- quantify


def _add_quantify(sub: argparse._SubParsersAction) -> None:
    from .core.quantify import MEASURES

    p = sub.add_parser(
        "quantify",
        help="measure a label volume (porosity, pore/particle sizes, ...) -> CSV tables",
        description="Measure a segmented volume in physical units and write one CSV per "
                    "table (summary.csv first). Measures: " + ", ".join(
                        f"{k} ({s.title})" for k, s in MEASURES.items()),
    )
    p.add_argument("labels", help="label volume (TIFF/MRC/HDF5/zarr; file.h5:/dataset)")
    p.add_argument("--out", required=True, type=Path, help="output directory (created)")
    p.add_argument("--phase", type=int, required=True, help="label value of the measured phase")
    p.add_argument("--matrix", type=int, default=None,
                   help="label of the other phase of the sample (e.g. the solid)")
    p.add_argument("--outside", type=int, nargs="*", default=[],
                   help="labels of the surrounding medium (e.g. 0 1 for air and resin)")
    p.add_argument("--spacing", type=float, nargs="+", default=None,
                   help="voxel size (z y x, or one value); default: from the file")
    p.add_argument("--unit", default=None, help="unit of the voxel size (default: from the file)")
    p.add_argument("--measures", default=None,
                   help="comma-separated measure keys (default: all defaults available)")
    p.add_argument("--intensity", default=None, help="image for the proxigram")
    p.add_argument("--radius", type=float, default=None, help="rolling-ball radius (inner pores)")
    p.add_argument("--max-distance", type=float, default=None,
                   help="range of the correlation functions")
    p.add_argument("--bin-width", type=float, default=None, help="histogram/profile bin width")
    p.add_argument("--save-volumes", action="store_true",
                   help="also write the result volumes (local thickness, particles ...) as TIFF")
    p.set_defaults(func=_run_quantify)


def _run_quantify(args: argparse.Namespace) -> int:
    from .core.io import read_volumes, write_table, write_tiff
    from .core.quantify import QuantifySettings, quantify
    from .core.units import common_unit

    vol = read_volumes(args.labels)[0]
    labels = vol.array
    if args.spacing is not None:
        spacing = tuple(args.spacing) if len(args.spacing) > 1 else args.spacing[0]
        unit = args.unit or "um"
    else:
        spacing = vol.scale
        unit = args.unit or common_unit(vol.units)
        if unit == "pixel":
            raise ValueError(f"{args.labels} has no voxel size; give --spacing and --unit")
    intensity = None
    if args.intensity:
        intensity = read_volumes(args.intensity)[0].array
    measures = None if args.measures is None else [m.strip() for m in args.measures.split(",")
                                                   if m.strip()]
    settings = QuantifySettings(phase=args.phase, matrix=args.matrix, outside=tuple(args.outside),
                                radius=args.radius, max_distance=args.max_distance,
                                bin_width=args.bin_width)
    import numpy as np

    result = quantify(np.asarray(labels), spacing, unit, measures=measures, settings=settings,
                      intensity=None if intensity is None else np.asarray(intensity),
                      progress=_print_progress("quantify"))
    args.out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in result.all_tables().items():
        written.append(write_table(args.out / f"{name}.csv", frame))
    if args.save_volumes:
        for name, arr in result.arrays.items():
            path = args.out / f"{name.replace(' ', '_')}.tif"
            written.append(write_tiff(path, arr.data, result.spacing, (result.unit,) * 3,
                                      arr.kind))
    print(result.summary().to_string(index=False))
    for note in result.notes:
        print(f"note: {note}")
    print(f"wrote {len(written)} files to {args.out}")
    return 0


# ----------------------------------------------------------------------------- main

_COMMANDS = (_add_demo, _add_info, _add_quantify)


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, OSError) as exc:
        print(f"corrtomo {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"corrtomo {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
