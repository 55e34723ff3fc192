"""Peak memory: the estimates of core.memory against measured peaks, and the refusal of a
request that does not fit.

Run (holding the shared benchmark lock, nothing else heavy running):

    flock /tmp/corrtomo-bench.lock python benchmarks/memory.py [--sizes 128 256 512]

Each (computation, structure, size) runs in a fresh process: the input is made, the
numba kernels are compiled on a small input, then Linux's peak resident size (VmHWM) is
reset (``/proc/self/clear_refs``) and read after one call; the peak is that minus the
resident size before the call, i.e. what the computation itself needs on top of its
input. A case whose estimate exceeds the memory budget is not run: core.memory refuses
it, and the table says so. Last, a 2048^3 local thickness is requested in a fresh process
and must be refused at once, without allocating.

Prints a Markdown table and writes it to ``docs/benchmarks/memory.md``.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

MACHINE = "2-core x86-64 VM, 24 GB, shared and noisy; CPU only"
#: (computation, structure) pairs measured
CASES = [("local thickness", "network"), ("particle separation", "network"),
         ("particle separation", "spheres"), ("tortuosity factor", "network"),
         ("features", "network"), ("distance to the interface", "network")]


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{key} not in /proc/self/status (Linux only)")


def structure(kind: str, n: int) -> np.ndarray:
    """``network``: a leveled wave, 50 % phase, one connected network (every function's
    expensive case); ``spheres``: separate and touching balls, 20 % of the volume."""
    from napari_corrtomo.core.synthetic import leveled_wave
    from napari_corrtomo.core.synthetic.shapes import paint_spheres

    if kind == "network":
        return leveled_wave((n, n, n), 1.0, wavelength=40.0, solid_fraction=0.5, seed=1)
    rng = np.random.default_rng(1)
    radii = rng.uniform(5, 12, int(0.2 * n ** 3 / (4 / 3 * np.pi * 9 ** 3)) + 1)
    out = np.zeros((n, n, n), np.uint8)
    paint_spheres(out, rng.uniform(0, n, (len(radii), 3)), radii, 1, (1.0, 1.0, 1.0))
    return out.astype(bool)


def _call(what: str):
    """The computation, and the numbers its estimate needs from the input."""
    from napari_corrtomo.core.classify.features import FeatureSpec, compute_features
    from napari_corrtomo.core.quantify import local_thickness, separate_particles, tortuosity_factor
    from napari_corrtomo.core.quantify._common import signed_distance

    spec = FeatureSpec.ilastik_default()
    return {
        "local thickness": lambda m: local_thickness(m, 1.0, backend="numpy"),
        "particle separation": lambda m: separate_particles(m, 1.0),
        "tortuosity factor": lambda m: tortuosity_factor(m, 1.0, axis=0, backend="numpy"),
        "features": lambda m: compute_features(m.astype(np.float32), spec, spatial_ndim=3),
        "distance to the interface": lambda m: signed_distance(m, (1.0, 1.0, 1.0)),
    }[what], spec.n_features(1, 3)


def largest_box(mask: np.ndarray) -> int:
    """Voxels in the bounding box of the largest connected component (the watershed's)."""
    import cc3d

    boxes = cc3d.statistics(cc3d.connected_components(mask, connectivity=6))["bounding_boxes"]
    return max(int(np.prod([b.stop - b.start for b in box])) for box in boxes[1:])


def measure_one(what: str, kind: str, n: int) -> dict:
    """Run one case in this process (called in a fresh one): estimate, peak, time."""
    from napari_corrtomo.core.memory import TooLarge, check_memory, peak_bytes

    call, n_features = _call(what)
    call(structure(kind, 32))  # compile outside the measurement
    x = structure(kind, n)
    feats = n_features if what == "features" else 0
    work = largest_box(x) if what == "particle separation" else 0
    row = {"what": what, "structure": kind, "n": n}
    try:
        row["estimate"] = check_memory(what, x.shape, feats, work_voxels=work)
    except TooLarge as exc:
        row["refused"] = str(exc)
        row["estimate"] = peak_bytes(what, x.shape, feats, work)
        return row
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # return what the set-up freed, for a clean base
    base = _status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current resident size
    t0 = time.perf_counter()
    call(x)
    row["seconds"] = time.perf_counter() - t0
    row["peak"] = _status("VmHWM") - base
    return row


def run_case(what: str, kind: str, n: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--one", what, kind, str(n)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def request_2048() -> dict:
    """A 2048^3 local thickness requested in a fresh process: refused, nothing allocated."""
    code = (
        "import numpy as np, time\n"
        "from napari_corrtomo.core.quantify import local_thickness\n"
        "def rss():\n"
        "    return next(int(l.split()[1]) * 1024 for l in open('/proc/self/status')"
        " if l.startswith('VmRSS'))\n"
        "m = np.zeros((2048, 2048, 2048), bool)  # 8.6 GB of address space, not yet touched\n"
        "m[1024, 1024, 1024] = True\n"
        "r0, t0 = rss(), time.perf_counter()\n"
        "try:\n"
        "    local_thickness(m, 1.0)\n"
        "    print('RAN')\n"
        "except ValueError as e:\n"
        "    print(f'{time.perf_counter() - t0:.3f} {rss() - r0}', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"})
    line = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else out.stderr[-500:]
    seconds, grew, message = line.split(" ", 2)
    return {"exit": out.returncode, "seconds": float(seconds), "rss_growth": int(grew),
            "message": message}


def _gb(b: float) -> str:
    return f"{b / 1e9:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 384, 512])
    ap.add_argument("--one", nargs=3, metavar=("WHAT", "STRUCTURE", "N"))
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure_one(args.one[0], args.one[1], int(args.one[2]))))
        return
    from napari_corrtomo.core.backend import memory_budget

    t0 = time.perf_counter()
    lines = [
        "# Peak memory: estimated vs measured",
        "",
        f"Machine: {MACHINE} ({platform.python_version()}); budget "
        f"{_gb(memory_budget('numpy'))} GB (half the free memory). "
        "Command: `python benchmarks/memory.py --sizes " + " ".join(map(str, args.sizes)) + "`.",
        "",
        "Peak = resident memory above the input's during one call, fresh process (Linux "
        "VmHWM). Estimates from core.memory.PEAKS; `network` = leveled wave, 50 % phase; "
        "`spheres` = balls at 20 %.",
        "",
        "| computation | structure | size | estimated (GB) | measured (GB) | "
        "estimate / measured | time (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for what, kind in CASES:
        for n in args.sizes:
            row = run_case(what, kind, n)
            if "refused" in row:
                lines.append(f"| {what} | {kind} | {n}^3 | {_gb(row['estimate'])}: refused "
                             "before starting (above the budget) | – | – | – |")
            else:
                lines.append(f"| {what} | {kind} | {n}^3 | {_gb(row['estimate'])} | "
                             f"{_gb(row['peak'])} | {row['estimate'] / row['peak']:.2f} | "
                             f"{row['seconds']:.1f} |")
            print(lines[-1], flush=True)
    big = request_2048()
    lines += [
        "",
        "## A 2048^3 request",
        "",
        f"`local_thickness` of an in-memory 2048^3 mask, fresh process: refused in "
        f"{big['seconds']:.3f} s, resident memory grew by {big['rss_growth'] / 1e6:.1f} MB, "
        f"message:",
        "",
        f"> {big['message']}",
        "",
        f"Total run time: {time.perf_counter() - t0:.0f} s.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    (ROOT / "docs" / "benchmarks" / "memory.md").write_text(text)


if __name__ == "__main__":
    main()
