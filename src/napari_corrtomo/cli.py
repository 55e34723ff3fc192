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


# ----------------------------------------------------------------------------- fib


def _add_fib(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fib",
        help="FIB-SEM stack + slice thicknesses -> isotropic volume (reposition + interpolate)",
        description="Put every FIB slice at its true depth on a fine z grid and fill the gaps. "
                    "Thicknesses come from a CSV (--thickness), the ruler marks in the images "
                    "(--ruler-rows) or a constant (--constant).",
    )
    p.add_argument("stack", help="slice stack (TIFF/MRC/HDF5/zarr), slice 0 first")
    p.add_argument("--out", required=True, type=Path, help="output volume (.tif or .ome.zarr)")
    p.add_argument("--channel", type=int, default=0, help="channel/volume index in the file")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--thickness", type=Path, help="CSV with a thickness_nm (or _um ...) column")
    src.add_argument("--ruler-rows", type=int, nargs=2, metavar=("FIRST", "STOP"),
                     help="measure thicknesses from the ruler marks in these image rows")
    src.add_argument("--constant", type=float, help="assume this thickness (nm) for every slice")
    p.add_argument("--ruler-angle", type=float, default=None,
                   help="angle (deg) of the inclined ruler trenches (required with --ruler-rows)")
    p.add_argument("--ruler-layout", default=None, help="left-to-right mark types, e.g. IPPI")
    p.add_argument("--polarity", choices=("dark", "bright"), default="dark")
    p.add_argument("--fallback-thickness", type=float, default=None,
                   help="thickness (nm) for slices whose ruler marks are not found "
                        "(default: such slices are an error)")
    p.add_argument("--align", action="store_true",
                   help="undo the in-plane x drift measured from the parallel ruler marks")
    p.add_argument("--keep-band", action="store_true",
                   help="keep the ruler band rows in the output (default: cut when at an edge)")
    p.add_argument("--pixel-size", type=float, default=None,
                   help="in-plane pixel size in nm (default: from the file)")
    p.add_argument("--grid", type=float, default=None,
                   help="z grid spacing in nm (default: the pixel size -> isotropic voxels)")
    p.add_argument("--method", choices=("nearest", "cubic", "shape", "ml"), default="cubic")
    p.add_argument("--kind", choices=("auto", "grey", "binary", "labels"), default="auto")
    p.add_argument("--thickness-out", type=Path, default=None,
                   help="write the thicknesses used (with ruler confidence/flags) to this CSV")
    p.set_defaults(func=_run_fib)


def _run_fib(args: argparse.Namespace) -> int:
    import numpy as np

    from .core import fib
    from .core.fib.interpolate import resolve_kind
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
    elif vol.units[-1] == "pixel":
        raise ValueError(f"{args.stack} has no pixel size; pass --pixel-size (nm)")
    else:
        px = float(convert(vol.scale[-1], vol.units[-1], "nm"))
    table = None
    if args.thickness is not None:
        thickness = fib.load_thickness(args.thickness, n_slices=stack.shape[0])
    elif args.constant is not None:
        thickness = np.full(stack.shape[0], float(args.constant))
    else:
        if args.ruler_angle is None:
            raise ValueError("--ruler-rows needs --ruler-angle (degrees)")
        markers = fib.RulerMarkers(angle_deg=args.ruler_angle, pixel_size=px,
                                   rows=tuple(args.ruler_rows), layout=args.ruler_layout,
                                   polarity=args.polarity)
        result = fib.measure_thickness(stack, markers, fallback_thickness=args.fallback_thickness,
                                       progress=_print_progress("ruler marks"))
        thickness = result.thickness_nm
        table = result.table
        flagged = result.flagged
        listed = ", ".join(map(str, flagged["slice"].tolist()[:10]))
        print(f"ruler: {stack.shape[0]} slices, median thickness "
              f"{np.nanmedian(thickness):.2f} nm, {len(flagged)} flagged"
              + (f" ({listed})" if len(flagged) else ""))
        if args.align:
            stack = fib.correct_drift(stack, table["drift_x_px"].to_numpy(),
                                      labels=vol.layer_type == "labels")
        r0, r1 = args.ruler_rows
        if not args.keep_band and (r0 == 0 or r1 == stack.shape[1]):
            stack = stack[:, r1:] if r0 == 0 else stack[:, :r0]
    if args.thickness_out is not None:
        write_table(args.thickness_out, table if table is not None
                    else fib.thickness_table(thickness))
    kind = args.kind
    if kind == "auto" and vol.layer_type == "labels" and resolve_kind(stack) != "binary":
        kind = "labels"
    out = fib.isotropic_volume(stack, thickness, px, args.grid, args.method, kind,
                               progress=_print_progress(f"{args.method} interpolation"))
    layer_type = "image" if out.kind == "grey" else "labels"
    data = out.volume.astype(np.uint8) if out.volume.dtype == bool else out.volume
    write_volume(args.out, Volume(data, out.spacing_nm, ("nm",) * 3, args.out.name, layer_type))
    print(f"wrote {args.out}: {data.shape} voxels of "
          f"{' x '.join(f'{s:g}' for s in out.spacing_nm)} nm ({out.method}, {out.kind}; "
          f"{int(out.known.sum())} measured planes)")
    return 0


# ----------------------------------------------------------------------------- main

_COMMANDS = (_add_demo, _add_info, _add_fib)


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
