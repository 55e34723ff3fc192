"""Tortuosity factor: napari-corrtomo vs TauFactor, side by side on the same structures.

Random bicontinuous structures (Gaussian-smoothed white noise thresholded at the
porosity) of several sizes and porosities; for each, both solvers run on the
same array along axis 0 (TauFactor's flux direction is its first array axis),
interleaved, best of ``--repeats`` wall-clock times. A tightly converged
solution (ours with ``tol=1e-10``) is the reference for both solvers' errors.

Run it under the benchmark lock and commit the section it writes into
``docs/benchmarks/quantify.md`` (the rest of that page comes from
``benchmarks/quantify.py``)::

    flock /tmp/corrtomo-bench.lock env PYTHONPATH=src python benchmarks/quantify_transport.py

Peer tools (taufactor, torch) are imported here only.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from napari_corrtomo.core.quantify.transport import tortuosity_factor

OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks" / "quantify.md"
SECTION = "## Tortuosity factor vs TauFactor"


def splice_section(document: str, section: str, heading: str = SECTION) -> str:
    """Replace the section under ``heading`` (default: the tortuosity one) of the quantify
    benchmark page, or append it."""
    start = document.find(heading)
    if start < 0:
        return document.rstrip("\n") + "\n\n" + section
    end = document.find("\n## ", start + len(heading))
    rest = "" if end < 0 else document[end:]
    return document[:start] + section.rstrip("\n") + "\n" + rest

# (edge, porosity, spacing (z, y, x)); the last two rows: anisotropic voxels, one larger volume
CASES = [
    (64, 0.3, (1.0, 1.0, 1.0)),
    (64, 0.5, (1.0, 1.0, 1.0)),
    (64, 0.7, (1.0, 1.0, 1.0)),
    (128, 0.3, (1.0, 1.0, 1.0)),
    (128, 0.5, (1.0, 1.0, 1.0)),
    (128, 0.7, (1.0, 1.0, 1.0)),
    (128, 0.4, (1.0, 2.0, 1.0)),
    (256, 0.4, (1.0, 1.0, 1.0)),
]
# Voxels longer along the flux axis: TauFactor's AnisotropicSolver does not converge here
# (found while preparing this benchmark); run once each, reported below the table.
LONG_AXIS_CASE = (64, 0.4, (2.0, 1.0, 1.0))


def structure(edge: int, porosity: float, seed: int = 0, sigma: float = 2.0) -> np.ndarray:
    noise = np.random.default_rng(seed).standard_normal((edge,) * 3)
    field = ndi.gaussian_filter(noise, sigma)
    return (field < np.quantile(field, porosity)).astype(np.uint8)


def run_taufactor(img: np.ndarray, spacing, threads: int | None = None) -> float:
    import taufactor as tf
    import torch

    if threads is not None:
        torch.set_num_threads(threads)

    if len(set(spacing)) == 1:
        solver = tf.Solver(img, device="cpu")
    else:
        solver = tf.AnisotropicSolver(img, spacing=tuple(float(s) for s in spacing), device="cpu")
    return float(np.atleast_1d(solver.solve(verbose=False))[0])


def run_ours(img: np.ndarray, spacing, tol: float | None = None) -> float:
    kwargs = {} if tol is None else {"tol": tol}
    return tortuosity_factor(img, spacing, 0, backend="numpy", **kwargs).tau


def _status_kib(key: str) -> int:
    """A line of /proc/self/status in KiB (VmRSS: resident now, VmHWM: its peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def _peak_child(which: str, path: str, spacing, queue) -> None:
    if which == "tf":
        import taufactor  # noqa: F401  (imports before the baseline, like ours)
    img = np.load(path)  # the uint8 structure only: no float64 noise field in this process
    # the peak so far is the imports' (torch's above all), often above a solve's: reset it
    # (Linux: "5" to clear_refs) so that the peak read after is the solve's own
    base = _status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")
    (run_ours if which == "ours" else run_taufactor)(img, spacing)
    queue.put((_status_kib("VmHWM") - base) / 1024.0)


def peak_memory_mb(which: str, img: np.ndarray, spacing) -> float:
    """Peak resident memory added by one solve, in a fresh process (MiB)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "structure.npy")
        np.save(path, img)
        ctx = mp.get_context("spawn")  # no fork: thread pools (OpenMP, BLAS) do not survive it
        queue = ctx.Queue()
        proc = ctx.Process(target=_peak_child, args=(which, path, spacing, queue))
        proc.start()
        value = queue.get()
        proc.join()
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-edge", type=int, default=256)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    import torch

    threads = sorted({1, torch.get_num_threads()})
    warm = structure(24, 0.5)  # imports and first-call costs out of the timings
    for spacing in {c[2] for c in CASES}:
        run_ours(warm, spacing)
        for n in threads:
            run_taufactor(warm, spacing, n)
    rows = []
    for edge, porosity, spacing in CASES:
        if edge > args.max_edge:
            continue
        img = structure(edge, porosity)
        reference = run_ours(img, spacing, tol=1e-10)
        t_ours, t_tf = [], {n: [] for n in threads}
        repeats = args.repeats if edge <= 128 else 1  # TauFactor takes minutes at 256^3
        for _ in range(repeats):  # interleaved: ours, TauFactor with 1 and with 2 threads
            t0 = time.perf_counter()
            tau_ours = run_ours(img, spacing)
            t_ours.append(time.perf_counter() - t0)
            for n in threads:
                t0 = time.perf_counter()
                tau_tf = run_taufactor(img, spacing, n)
                t_tf[n].append(time.perf_counter() - t0)
        best_threads = min(threads, key=lambda n: min(t_tf[n]))
        big = edge >= 128
        mem_ours = peak_memory_mb("ours", img, spacing) if big else float("nan")
        mem_tf = peak_memory_mb("tf", img, spacing) if big else float("nan")
        row = dict(
            shape=f"{edge}^3", porosity=porosity, spacing="x".join(f"{s:g}" for s in spacing),
            eps=float(img.mean()), tau_ref=reference, tau_ours=tau_ours, tau_tf=tau_tf,
            diff=(tau_ours - tau_tf) / tau_tf, err_ours=(tau_ours - reference) / reference,
            err_tf=(tau_tf - reference) / reference, t_ours=min(t_ours),
            t_tf=min(t_tf[best_threads]), tf_threads=best_threads,
            mem_ours=mem_ours, mem_tf=mem_tf,
        )
        rows.append(row)
        print("ROW " + json.dumps(row), flush=True)  # raw numbers, kept in the log
        print(f"{row['shape']} eps={porosity} spacing={row['spacing']}: tau ours {tau_ours:.5f} "
              f"TauFactor {tau_tf:.5f} (diff {100 * row['diff']:+.3f} %), time ours "
              f"{row['t_ours']:.2f} s TauFactor {row['t_tf']:.2f} s ({best_threads} threads)",
              flush=True)

    header = (
        "| volume | porosity | voxel (z x y x x) | tau reference | tau ours | tau TauFactor "
        "| ours vs TauFactor | error ours | error TauFactor | time ours (s) | time TauFactor (s) "
        "| TauFactor threads | speed-up | peak extra RAM ours / TauFactor (MiB) |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for r in rows:
        mem = ("-" if np.isnan(r["mem_ours"])
               else f"{r['mem_ours']:.0f} / {r['mem_tf']:.0f}")
        lines.append(
            f"| {r['shape']} | {r['eps']:.3f} | {r['spacing']} | {r['tau_ref']:.5f} "
            f"| {r['tau_ours']:.5f} | {r['tau_tf']:.5f} | {100 * r['diff']:+.3f} % "
            f"| {100 * r['err_ours']:+.4f} % | {100 * r['err_tf']:+.3f} % "
            f"| {r['t_ours']:.2f} | {r['t_tf']:.2f} | {r['tf_threads']} "
            f"| {r['t_tf'] / r['t_ours']:.1f}x | {mem} |"
        )
    edge, porosity, spacing = LONG_AXIS_CASE
    img = structure(edge, porosity)
    t0 = time.perf_counter()
    long_ours = tortuosity_factor(img, spacing, 0, backend="numpy")
    t1 = time.perf_counter()
    long_tf = run_taufactor(img, spacing, threads[0])
    t2 = time.perf_counter()
    long_note = (
        f"Voxels longer along the flux axis ({edge}^3, porosity {porosity}, voxel "
        f"{'x'.join(f'{v:g}' for v in spacing)}, flux along the 2-long axis): ours tau = "
        f"{long_ours.tau:.4f} in {long_ours.iterations} iterations ({t1 - t0:.2f} s); TauFactor "
        f"`AnisotropicSolver` returns tau = {long_tf:.4g} after its 10000-iteration limit "
        f"without converging ({t2 - t1:.1f} s). Our value is checked against an independent "
        "direct solve and against the same structure resampled to cubic voxels in "
        "`tests/core/quantify/test_transport.py`.\n"
    )
    print(long_note)
    worst = max(abs(r["diff"]) for r in rows)
    slowest = min(r["t_tf"] / r["t_ours"] for r in rows)
    text = (
        f"{SECTION}\n\n"
        "Command: `flock /tmp/corrtomo-bench.lock python benchmarks/quantify_transport.py` "
        "(writes this section only).\n\n"
        "Machine: 2-core x86-64 VM, 24 GB, shared and noisy; CPU only. "
        f"Python {platform.python_version()}, taufactor {version('taufactor')}, "
        f"torch {torch.__version__}, float32 both; ours single-threaded (SciPy sparse), "
        f"TauFactor timed with torch on {' and on '.join(map(str, threads))} thread(s), the "
        "faster counted (torch's thread pool suffers most when the shared cores are busy).\n"
        "GPU: not measured (no GPU lent to this session).\n\n"
        "Structures: Gaussian-smoothed white noise (sigma 2 voxels, seed 0) thresholded at the "
        "porosity; transport along axis 0 (z), Dirichlet c = 1 / 0 on the two z faces, no flux "
        "elsewhere; TauFactor `Solver` (isotropic) or `AnisotropicSolver` (anisotropic voxels) "
        "with its defaults (`conv_crit=1e-2`), ours with its defaults (`tol=1e-5`). "
        "*tau reference*: ours converged to `tol=1e-10`; the error columns are relative to it. "
        f"Times: best of {args.repeats} interleaved runs (one run for 256^3), wall clock, each "
        "including set-up (percolation labelling, matrix or tensor construction). *speed-up* = "
        "TauFactor time / ours. Peak extra RAM: resident-set growth of one solve in a fresh "
        "process that loads the uint8 structure from disk before the baseline.\n\n"
        + header + "\n".join(lines) + "\n\n"
        f"Largest |ours - TauFactor| / TauFactor: {100 * worst:.3f} % (goal: within 1 %). "
        f"Smallest speed-up: {slowest:.1f}x (goal: no slower than TauFactor on the CPU, i.e. "
        ">= 1.0x).\n\n" + long_note
    )
    print()
    print(text)
    if not args.no_write:
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(splice_section(OUT.read_text() if OUT.exists() else "", text))
        print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
