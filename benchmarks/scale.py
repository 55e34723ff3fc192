"""Scale benchmark: a synthetic volume in OME-Zarr through ``corrtomo classify`` and
``corrtomo quantify`` on a dask.distributed local cluster, with peak memory.

Run (holding the shared benchmark lock, nothing else heavy running):

    flock /tmp/corrtomo-bench.lock python benchmarks/scale.py [--size 1024] [--small 256]

1. A porous-particle volume (``--size``^3 voxels of 0.5 um, uint8, OME-Zarr in 128^3
   chunks) is generated block by block, never whole in memory: ~(size/48)^3 solid
   spheres (label 2, radius 9-18 vox) on a jittered grid, each with 3 inner pores
   (label 3, radius 2.5-5 vox) in a background (label 1), rendered with Gaussian
   noise. The truth labels are written too.
2. A pixel classifier (7 features, 24 trees) is trained live on a 96^3 crop as a user
   does: strokes on 12 slices, up to 1 voxel from a phase's edge, then 4 rounds of
   strokes over the live prediction's largest mistakes (``synthetic.correction_rounds``;
   the pores are 5-10 voxels across, and the strokes alone left the porosity 7.6 % low).
3. Exactly the documented commands run as subprocesses (docs/large-data.md):
   ``corrtomo classify image.ome.zarr --classifier clf --out seg.ome.zarr --workers W
   --memory-limit M`` then ``corrtomo quantify seg.ome.zarr --out q --phase 3 --matrix 2
   --outside 1 --measures porosity,thickness,particles,closed_pores --workers W
   --memory-limit M``. Peak memory is the largest sum of the resident set sizes of the
   command's whole process tree (CLI, scheduler, nannies, workers), sampled every 0.1 s.
4. Throughput with 1 vs 2 workers on a ``--small``^3 volume (interleaved, best of 2),
   and the full ``--size``^3 run with 2 workers.

Prints Markdown and writes it to ``docs/benchmarks/scale.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

MACHINE = "2-core x86-64 VM, 24 GB, shared and noisy; CPU only"
VOXEL = 0.5  # um
CONTRAST = np.array([0, 200, 110, 25], np.float32)  # -, background, solid, pore (uint8 grey)
NOISE = 25.0
PITCH = 48
CHUNK = 128
MEASURES = "porosity,thickness,particles,closed_pores"


# ----------------------------------------------------------------------------- the volume


def layout(n: int, seed: int = 0):
    """Particle and pore spheres (voxel units): non-overlapping particles on a jittered grid."""
    rng = np.random.default_rng(seed)
    g = np.arange(PITCH // 2, n - PITCH // 4, PITCH, dtype=float)
    c = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    r = rng.uniform(9.0, 18.0, len(c))
    slack = PITCH / 2 - r - 2
    c = c + rng.uniform(-1, 1, c.shape) * slack[:, None]
    pr = rng.uniform(2.5, 5.0, (len(c), 3))
    d = rng.normal(size=(len(c), 3, 3))
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    pc = c[:, None, :] + d * (rng.uniform(0, 1, (len(c), 3)) * (r[:, None] - pr - 2).clip(0))[..., None]
    return c, r, pc.reshape(-1, 3), pr.ravel()


def _truth_block(block_info=None, spheres=None):
    from napari_corrtomo.core.synthetic import paint_spheres

    info = block_info[None]
    lo = np.array([a for a, _ in info["array-location"]], float)
    hi = np.array([b for _, b in info["array-location"]], float)
    lab = np.ones(info["chunk-shape"], np.uint8)
    c, r, pc, pr = spheres
    for centres, radii, value, only in ((c, r, 2, None), (pc, pr, 3, 2)):
        sel = np.all((centres + radii[:, None] >= lo) & (centres - radii[:, None] < hi), axis=1)
        paint_spheres(lab, centres[sel] - lo, radii[sel], value, (1.0, 1.0, 1.0), only=only)
    return lab


def _render_block(lab, block_info=None, seed=0):
    rng = np.random.default_rng([seed, *block_info[0]["chunk-location"]])
    img = CONTRAST[lab] + rng.normal(0.0, NOISE, lab.shape).astype(np.float32)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def make_volume(folder: Path, n: int, seed: int = 0) -> tuple[Path, Path, int]:
    import dask.array as da

    from napari_corrtomo.core.io import write_ome_zarr

    spheres = layout(n, seed)
    truth = da.map_blocks(_truth_block, dtype=np.uint8,
                          chunks=da.core.normalize_chunks(CHUNK, (n,) * 3), spheres=spheres)
    image = truth.map_blocks(_render_block, dtype=np.uint8, seed=seed)
    t_path = write_ome_zarr(folder / "truth.ome.zarr", truth, (VOXEL,) * 3, "um", "labels",
                            chunks=CHUNK)
    i_path = write_ome_zarr(folder / "image.ome.zarr", image, (VOXEL,) * 3, "um", "image",
                            chunks=CHUNK)
    return i_path, t_path, len(spheres[0])


def train(image_path: Path, truth_path: Path, out: Path) -> Path:
    """The classifier, trained live on a 96^3 crop as a user does: strokes inside the
    phases, then rounds of strokes over the live prediction's mistakes."""
    from napari_corrtomo.core.classify import LiveTrainer
    from napari_corrtomo.core.classify.features import FeatureSpec, FilterItem
    from napari_corrtomo.core.io import read_volumes
    from napari_corrtomo.core.synthetic import correction_rounds, scribbles_from_truth

    crop = (slice(0, 96),) * 3
    img = np.asarray(read_volumes(image_path)[0].array[crop])
    truth = np.asarray(read_volumes(truth_path)[0].array[crop])
    slices = tuple(range(4, 96, 8))
    scr = scribbles_from_truth(truth, slices=slices, strokes_per_class=6, margin_px=1, seed=1)
    spec = FeatureSpec((FilterItem("gaussian", 0.7), FilterItem("gaussian", 1.6),
                        FilterItem("log", 1.6), FilterItem("ggm", 1.0),
                        FilterItem("hessian", 1.6)))
    trainer = LiveTrainer(img, spec, (VOXEL,) * 3, "um", n_trees=24, seed=0)
    correction_rounds(trainer, truth, scr, slices, seed=1)
    return trainer.classifier.save(out)


# ----------------------------------------------------------------------------- running


def run_measured(cmd: list[str]) -> dict:
    """Run a command; wall time and the peak summed RSS of its process tree."""
    import psutil

    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    peak = [0]
    stop = threading.Event()

    def sample():
        root = psutil.Process(proc.pid)
        while not stop.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
                rss = 0
                for p in procs:
                    try:
                        rss += p.memory_info().rss
                    except psutil.Error:
                        pass
                peak[0] = max(peak[0], rss)
            except psutil.Error:
                pass
            stop.wait(0.1)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    output = proc.communicate()[0]
    stop.set()
    thread.join()
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{output[-3000:]}")
    return {"time_s": wall, "peak_gb": peak[0] / 1e9, "output": output}


def pipeline(folder: Path, image: Path, clf: Path, workers: int, memory: str, tag: str) -> dict:
    seg = folder / f"seg-{tag}.ome.zarr"
    q = folder / f"q-{tag}"
    for p in (seg, q):
        shutil.rmtree(p, ignore_errors=True)
    py = sys.executable
    classify = [py, "-m", "napari_corrtomo.cli", "classify", str(image), "--classifier", str(clf),
                "--out", str(seg), "--workers", str(workers), "--memory-limit", memory]
    quantify = [py, "-m", "napari_corrtomo.cli", "quantify", str(seg), "--out", str(q),
                "--phase", "3", "--matrix", "2", "--outside", "1", "--measures", MEASURES,
                "--workers", str(workers), "--memory-limit", memory]
    a = run_measured(classify)
    b = run_measured(quantify)
    return {"classify": a, "quantify": b, "seg": seg, "q": q,
            "commands": [" ".join(classify[1:]), " ".join(quantify[1:])]}


def check(res: dict, truth_path: Path, n_particles: int) -> dict:
    """Accuracy against the truth, blockwise (the volumes are not loaded whole)."""
    import dask.array as da
    import pandas as pd

    from napari_corrtomo.core.io import read_volumes

    seg = read_volumes(res["seg"])[0].array
    truth = read_volumes(truth_path)[0].array
    seg = seg[0] if isinstance(seg, list) else seg
    truth = truth[0] if isinstance(truth, list) else truth
    agree = float(da.mean(seg == truth).compute())
    counts = np.asarray(da.bincount(truth.ravel(), minlength=4).compute())
    summary = pd.read_csv(res["q"] / "summary.csv")
    value = dict(zip(summary["quantity"], summary["value"], strict=False))
    return {"agreement": agree, "porosity_truth": counts[3] / (counts[2] + counts[3]),
            "porosity": float(value["porosity (phase / sample)"]),
            "particles": int(float(value["particle count"])), "particles_truth": n_particles,
            "pore_mean": value.get("pore local thickness mean")}


def _seconds_until(hhmm: str) -> float:
    import datetime as dt

    now = dt.datetime.now(dt.timezone.utc)
    h, m = (int(v) for v in hhmm.split(":"))
    end = now.replace(hour=h, minute=m, second=0, microsecond=0)
    return (end - now).total_seconds()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--small", type=int, default=256)
    ap.add_argument("--memory-limit", default="3GB", help="per worker")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--work", type=Path, default=Path("/tmp/corrtomo-scale-bench"))
    ap.add_argument("--skip-large", action="store_true")
    ap.add_argument("--deadline", default=None, metavar="HH:MM",
                    help="UTC time by which the large run must end: the largest of --size, "
                         "768, 512 whose time (extrapolated from the small runs) fits is run")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "scale.md")
    args = ap.parse_args(argv)
    args.skipped = []
    args.work.mkdir(parents=True, exist_ok=True)
    log: dict = {}

    # small volume and classifier first (the classifier is trained on its crop)
    small = args.work / f"v{args.small}"
    small.mkdir(exist_ok=True)
    img_s, truth_s, n_s = make_volume(small, args.small)
    clf = train(img_s, truth_s, args.work / "clf.corrclf.npz")
    runs: dict[int, list] = {1: [], 2: []}

    def write(big):
        md = report(args, runs, big, n_s)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(md)
        return md

    # --- throughput, 1 vs 2 workers, small volume, interleaved
    for rep in range(args.repeats):
        for w in (1, 2):
            t0 = time.perf_counter()
            res = pipeline(small, img_s, clf, w, args.memory_limit, f"w{w}-r{rep}")
            res["acc"] = check(res, truth_s, n_s)
            res["total_s"] = time.perf_counter() - t0
            runs[w].append(res)
            print(f"{args.small}^3, {w} worker(s), repeat {rep}: classify "
                  f"{res['classify']['time_s']:.1f} s, quantify {res['quantify']['time_s']:.1f} s, "
                  f"peak {max(res['classify']['peak_gb'], res['quantify']['peak_gb']):.2f} GB, "
                  f"{res['acc']}", flush=True)
            write(None)

    # --- the large run, 2 workers: the largest size that fits before --deadline
    big = None
    if not args.skip_large:
        # ~12 s per pipeline do not grow with the volume (two cluster starts, imports); the
        # generation adds ~15 %
        per_voxel = max(min(r["total_s"] for r in runs[2]) - 12.0, 1.0) / args.small ** 3 * 1.15
        left = _seconds_until(args.deadline) if args.deadline else float("inf")
        sizes = [n for n in (args.size, 768, 512) if n <= args.size]
        fits = [n for n in sizes if per_voxel * n ** 3 <= left]
        args.skipped = [(n, per_voxel * n ** 3) for n in sizes if n not in fits and n > (
            fits[0] if fits else 0)]
        for n, est in args.skipped:
            print(f"{n}^3 skipped: estimated {est / 60:.0f} min, {left / 60:.0f} min left "
                  "before the deadline", flush=True)
        if fits:
            args.size = fits[0]
            folder = args.work / f"v{args.size}"
            folder.mkdir(exist_ok=True)
            t0 = time.perf_counter()
            img_b, truth_b, n_b = make_volume(folder, args.size)
            gen_s = time.perf_counter() - t0
            print(f"generated {args.size}^3 in {gen_s:.1f} s", flush=True)
            big = pipeline(folder, img_b, clf, 2, args.memory_limit, "w2")
            big["acc"] = check(big, truth_b, n_b)
            big["gen_s"] = gen_s
            big["estimate_s"] = per_voxel * args.size ** 3
            print(f"{args.size}^3: classify {big['classify']['time_s']:.1f} s "
                  f"(peak {big['classify']['peak_gb']:.2f} GB), quantify "
                  f"{big['quantify']['time_s']:.1f} s (peak {big['quantify']['peak_gb']:.2f} GB), "
                  f"{big['acc']}", flush=True)
            write(big)

    print(write(big))
    log = {"small": {w: [{k: r[k]["time_s"] for k in ("classify", "quantify")} for r in rs]
                     for w, rs in runs.items()}}
    (args.work / "log.json").write_text(json.dumps(log, indent=1))
    return 0


def report(args, runs, big, n_small) -> str:
    from napari_corrtomo.core.synthetic import CORRECTION_ROUNDS

    def best(rs, key):
        return min(r[key]["time_s"] for r in rs)

    nv = args.small ** 3
    lines = [
        "# Benchmark: large data and clusters",
        "",
        f"Machine: {MACHINE} ({platform.machine()}, Python {platform.python_version()}). "
        "GPU: not measured (no GPU lent to this session).",
        "",
        "Produced by `flock /tmp/corrtomo-bench.lock python benchmarks/scale.py "
        f"--size {args.size} --small {args.small}` (memory limit {args.memory_limit} per worker).",
        "",
        "Input: synthetic porous particles in OME-Zarr (uint8, 0.5 um voxels, 128^3 chunks): "
        "solid spheres (label 2) with 3 inner pores each (label 3) in a background (label 1), "
        f"Gaussian noise sigma {NOISE:g} grey values. Classifier: 7 features "
        "(Gaussian 0.7/1.6, LoG 1.6, gradient magnitude 1.0, Hessian eigenvalues 1.6), "
        "24 trees, trained live on a 96^3 crop (strokes on 12 slices, up to 1 voxel "
        f"from a phase's edge, then {CORRECTION_ROUNDS} rounds of correction strokes over the "
        "live prediction's mistakes). Quantify measures: "
        f"`{MEASURES}` (phase 3 = pores, matrix 2, outside 1).",
        "",
        "Peak memory: the largest sum of resident set sizes over the command's whole process "
        "tree (CLI process, scheduler, nannies and worker processes), sampled every 0.1 s; "
        "shared pages are counted once per process, so this overestimates.",
        "",
        f"## Throughput, 1 vs 2 workers ({args.small}^3 = {nv / 1e6:.1f} M voxels)",
        "",
        f"Interleaved runs, best of {args.repeats}; times include starting the local cluster "
        "(all runs listed).",
        "",
        "| workers | classify (s) | classify (M voxels/s) | quantify (s) | quantify (M voxels/s) "
        "| peak memory (GB) | runs classify / quantify (s) |",
        "|---:|---:|---:|---:|---:|---:|---|",
    ]
    for w in (1, 2):
        rs = runs[w]
        if not rs:
            lines.append(f"| {w} | not run | | | | | |")
            continue
        c, q = best(rs, "classify"), best(rs, "quantify")
        peak = max(max(r["classify"]["peak_gb"], r["quantify"]["peak_gb"]) for r in rs)
        lines.append(
            f"| {w} | {c:.1f} | {nv / c / 1e6:.2f} | {q:.1f} | {nv / q / 1e6:.2f} | {peak:.2f} | "
            + "; ".join(f"{r['classify']['time_s']:.1f} / {r['quantify']['time_s']:.1f}" for r in rs)
            + " |")
    if runs[1] and runs[2]:
        c1, c2 = best(runs[1], "classify"), best(runs[2], "classify")
        q1, q2 = best(runs[1], "quantify"), best(runs[2], "quantify")
        lines += ["", f"Speed-up with 2 workers: classify **{c1 / c2:.2f}x**, quantify "
                  f"**{q1 / q2:.2f}x** (2 cores, shared with other jobs).", ""]
        acc = runs[2][0]["acc"]
        lines += [f"Accuracy ({args.small}^3): voxels agreeing with the truth "
                  f"{100 * acc['agreement']:.2f} %; porosity {acc['porosity']:.4f} (truth "
                  f"{acc['porosity_truth']:.4f}); particles {acc['particles']} (truth "
                  f"{n_small}).", ""]
    if big is not None:
        n = args.size
        goal = big["classify"]["peak_gb"] < 8 and big["quantify"]["peak_gb"] < 8
        a = big["acc"]
        lines += [
            f"## {n}^3 ({n ** 3 / 1e9:.2f} G voxels), 2 workers",
            "",
            "| step | time (s) | M voxels/s | peak memory (GB) |",
            "|---|---:|---:|---:|",
            f"| generate the volume (not part of the pipeline) | {big['gen_s']:.0f} | "
            f"{n ** 3 / big['gen_s'] / 1e6:.2f} | - |",
            f"| classify | {big['classify']['time_s']:.0f} | "
            f"{n ** 3 / big['classify']['time_s'] / 1e6:.2f} | {big['classify']['peak_gb']:.2f} |",
            f"| quantify | {big['quantify']['time_s']:.0f} | "
            f"{n ** 3 / big['quantify']['time_s'] / 1e6:.2f} | {big['quantify']['peak_gb']:.2f} |",
            "",
            f"Goal: completes with peak < 8 GB -- {'met' if goal else 'MISSED'} (input image "
            f"{n ** 3 / 1e9:.2f} GB as uint8; its float32 features alone would be "
            f"{n ** 3 * 4 * 7 / 1e9:.0f} GB).",
            "",
            f"Accuracy: voxels agreeing with the truth {100 * a['agreement']:.2f} %; porosity "
            f"{a['porosity']:.4f} (truth {a['porosity_truth']:.4f}); particles "
            f"{a['particles']} (truth {a['particles_truth']}).",
            "",
            "Commands (from the repository root, `PYTHONPATH=src`):",
            "",
            "```",
            *[f"python {c}" for c in big["commands"]],
            "```",
            "",
        ]
    for n, est in args.skipped:
        lines += [f"{n}^3 was not run: extrapolated from the {args.small}^3 runs it would take "
                  f"~{est / 60:.0f} min, more than the time left before this session's deadline "
                  f"(--deadline {args.deadline}).", ""]
    if big is None and not args.skipped:
        lines += ["No large run (--skip-large).", ""]
    if big is not None:
        took = big["classify"]["time_s"] + big["quantify"]["time_s"] + big["gen_s"]
        lines += [f"The {args.size}^3 run (generation, classify, quantify) took {took / 60:.1f} min "
                  f"(extrapolated from {args.small}^3: {big['estimate_s'] / 60:.1f} min).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
