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


# ----------------------------------------------------------------------------- transport


def _add_transport(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "transport",
        help="tortuosity factor, geodesic tortuosity and constrictivity of one phase -> CSV",
        description="Transport descriptors of one phase of a labels/mask volume: tortuosity "
                    "factor per axis (TauFactor's definition), geodesic tortuosity distribution "
                    "per depth, sphere-intrusion curve and constrictivity. Writes "
                    "tortuosity.csv, geodesic_tortuosity.csv, intrusion.csv and "
                    "constrictivity.csv into --out.",
    )
    p.add_argument("labels", help="labels or binary mask volume (TIFF/MRC/HDF5/zarr)")
    p.add_argument("--phase", type=int, default=1,
                   help="label value of the conducting phase (default 1)")
    p.add_argument("--spacing", type=float, nargs="+", metavar="S",
                   help="voxel size z y x (one value = isotropic); default: from the file")
    p.add_argument("--unit", help="length unit of the spacing (default: from the file)")
    p.add_argument("--axes", type=int, nargs="+", default=None, metavar="AXIS",
                   help="transport axes, 0 = z (default: all)")
    p.add_argument("--depths", type=float, nargs="+", metavar="D",
                   help="depths for the geodesic tortuosity, in the spacing unit "
                        "(default: 1/8, 1/4, 3/8 and 1/2 of the sample length)")
    p.add_argument("--out", required=True, type=Path, help="output directory (created)")
    p.set_defaults(func=_run_transport)


def _run_transport(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    from .core.io import read_volumes, write_table
    from .core.progress import scaled
    from .core.quantify.transport import (
        constrictivity,
        geodesic_tortuosity,
        intrusion_curve,
        tortuosity_factor,
    )
    from .core.units import common_unit, normalize_unit

    volumes = read_volumes(args.labels)
    if len(volumes) != 1:
        raise ValueError(f"{args.labels} holds {len(volumes)} volumes; pass a file with one "
                         "labels volume (file.h5:/dataset selects one)")
    vol = volumes[0]
    labels = np.asarray(vol.array)
    if labels.ndim not in (2, 3):
        raise ValueError(f"{args.labels}: expected a 2D or 3D labels volume, got shape "
                         f"{labels.shape}")
    spacing = tuple(args.spacing) if args.spacing else vol.scale
    unit = normalize_unit(args.unit) if args.unit else common_unit(vol.units)
    mask = labels == args.phase
    if not mask.any():
        present = ", ".join(str(v) for v in np.unique(labels)[:10])
        raise ValueError(f"phase {args.phase} does not occur in {args.labels} "
                         f"(values present: {present}); choose one with --phase")
    axes = tuple(range(mask.ndim)) if args.axes is None else tuple(args.axes)
    progress = _print_progress("transport")
    steps = 4 * len(axes)
    tau_rows, geo_tables, curves, beta_rows = [], [], [], []
    for i, axis in enumerate(axes):
        def part(j: int, i: int = i):
            return scaled(progress, 4 * i + j, 4 * i + j + 1, steps)

        res = tortuosity_factor(mask, spacing, axis, progress=part(0))
        tau_rows.append(res.as_row(unit))
        n = mask.shape[axis]
        step = (spacing if len(spacing) > 1 else spacing * mask.ndim)[axis]
        depths = args.depths or [max(1, round(f * (n - 1))) * step for f in (1/8, 1/4, 3/8, 1/2)]
        geo = geodesic_tortuosity(mask, spacing, depths, axis, progress=part(1))
        geo_tables.append(geo.table(unit))
        curve = intrusion_curve(mask, spacing, None, axis, unit=unit, progress=part(2))
        curves.append(curve.assign(axis=axis))
        beta_rows.append(constrictivity(mask, spacing, axis, progress=part(3)).as_row(unit))
    args.out.mkdir(parents=True, exist_ok=True)
    tau_table = pd.DataFrame(tau_rows)
    write_table(args.out / "tortuosity.csv", tau_table)
    write_table(args.out / "geodesic_tortuosity.csv", pd.concat(geo_tables, ignore_index=True))
    write_table(args.out / "intrusion.csv", pd.concat(curves, ignore_index=True))
    beta_table = pd.DataFrame(beta_rows)
    write_table(args.out / "constrictivity.csv", beta_table)
    for row, beta in zip(tau_rows, beta_rows, strict=True):
        print(f"axis {row['axis']}: tortuosity factor {row['tortuosity_factor']:.4g}, "
              f"porosity {row['porosity']:.4g}, D_eff/D_bulk {row['d_eff_ratio']:.4g}, "
              f"constrictivity {beta['constrictivity']:.3g}")
    print(f"wrote 4 tables to {args.out}")
    return 0


# ----------------------------------------------------------------------------- main

_COMMANDS = (_add_demo, _add_info, _add_transport)


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
