"""FIB slice benchmark: Sardhara et al. Table 2/3 on our synthetic HNPG, ruler thickness error.

Run (holding the shared benchmark lock):

    flock /tmp/corrtomo-bench.lock python benchmarks/fib.py [--datasets 10] [--quick]

1. Reconstruction accuracy (Table 2 + 3 of the seed) on ``--datasets`` synthetic
   "mimicking" stacks. Ground truth: hierarchical leveled waves
   (:func:`~napari_corrtomo.core.synthetic.hierarchical_leveled_wave`, HNPG-like:
   lower ligaments ~15 nm, upper ~110 nm, solid ~12 %) on a 2.5 nm grid,
   (256, 160, 160) voxels = 640 x 400 x 400 nm. Slices: gamma-distributed
   thicknesses, mean 10 nm (the target), shape 4, in 2.5 nm bins
   (:func:`~napari_corrtomo.core.synthetic.fib_mimic`). Seeds 0..N-1 (the network
   was trained on seeds drawn from ``default_rng(100000)``, all >= 1000).
   Rows: DNN (no repositioning, nearest), SRCS (repositioned on 10 nm, cubic),
   RNN / RCS / RML (repositioned on 2.5 nm; nearest / cubic / ML inpainting) and,
   extra, RSB (2.5 nm, shape-based = cubic spline of signed distances).
   Metrics over the whole volume (DNN/SRCS: over the depth they share with the truth).
2. Anisotropy errors (e_TPCF, e_LPF, e_D; seed Tables S3/S4 style) of every row
   and of the truth itself, on the first ``--aniso`` datasets.
3. Sensitivity: RNN/RCS/RSB/RML for other slice-thickness spreads (gamma shape 2
   and 8) and a single-level NPG structure, on ``--sens`` datasets each.
4. Slice thickness from the ruler marks of ``fib_sem_stack()`` (seeds 0..4, with
   and without in-plane drift): RMS error in nm against the true thicknesses.
5. ML inference: our NumPy forward pass vs the same network in PyTorch (the bench
   extra) on the same features: max |difference| of probabilities and time ratio
   (interleaved repeats, best of 3).

Prints Markdown and writes it to ``docs/benchmarks/fib.md``.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from napari_corrtomo.core import synthetic as syn  # noqa: E402
from napari_corrtomo.core.fib import (  # noqa: E402
    RulerMarkers,
    anisotropy,
    interpolate,
    measure_thickness,
    metrics,
    reposition,
)
from napari_corrtomo.core.fib import _inpaint as inp  # noqa: E402

MACHINE = "2-core x86-64 VM, 24 GB, shared and noisy; CPU only"
SHAPE = (256, 160, 160)
GRID = 2.5
TARGET = 10.0
PAPER = {  # mean ± std over 250 datasets (Tables 2 and 3)
    "DNN": ((19.97, 0.91), (81.62, 3.18), (0.53, 0.002)),
    "SRCS": ((5.29, 0.37), (22.38, 1.34), (0.88, 0.0079)),
    "RNN": ((4.89, 0.53), (19.98, 2.07), (0.89, 0.012)),
    "RCS": ((3.12, 0.11), (13.52, 0.46), (0.93, 0.0023)),
    "RML": ((2.35, 0.11), (10.04, 0.42), (0.95, 0.0025)),
}
ROWS = ("DNN", "SRCS", "RNN", "RCS", "RSB", "RML")


def structure(seed: int, kind: str = "hnpg", shape=None) -> np.ndarray:
    shape = SHAPE if shape is None else shape
    if kind == "hnpg":
        return syn.hierarchical_leveled_wave(shape, GRID, seed=seed)
    return syn.leveled_wave(shape, GRID, wavelength=26.0, solid_fraction=0.3, seed=seed)


def reconstructions(mimic: syn.FibMimic, rows=ROWS) -> tuple[dict, dict]:
    """Every row's volume (cropped to the depth it shares with the truth) and its time."""
    out, times = {}, {}
    n_slices = len(mimic.stack)
    for row in rows:
        t0 = time.perf_counter()
        if row == "DNN":
            vol, known = reposition(mimic.stack, np.full(n_slices, TARGET), GRID)
            res = interpolate(vol, known, "nearest")
        elif row == "SRCS":
            vol, known = reposition(mimic.stack, mimic.thickness_nm, TARGET, GRID)
            res = interpolate(vol, known, "cubic")
        else:
            vol, known = reposition(mimic.stack, mimic.thickness_nm, GRID)
            method = {"RNN": "nearest", "RCS": "cubic", "RSB": "shape", "RML": "ml"}[row]
            res = interpolate(vol, known, method)
        times[row] = time.perf_counter() - t0
        out[row] = res
    return out, times


def common(res: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = min(len(res), len(truth))
    return res[:n], truth[:n]


def fmt(values, digits=2) -> str:
    v = np.asarray(values, float)
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1) if v.size > 1 else 0:.{digits}f}"


def table2(n: int, aniso_n: int, log) -> tuple[str, dict]:
    scores = {r: {"mp": [], "mgp": [], "mds": [], "t": []} for r in ROWS}
    aniso = {r: {"e_tpcf": [], "e_lpf": [], "e_d": []} for r in ("truth",) + ROWS}
    phis, nsl = [], []
    for seed in range(n):
        t0 = time.perf_counter()
        truth_vol = structure(seed)
        mimic = syn.fib_mimic(truth_vol, GRID, TARGET, 4.0, seed=seed)
        phis.append(mimic.truth.mean())
        nsl.append(len(mimic.stack))
        recs, times = reconstructions(mimic)
        for row, res in recs.items():
            r, t = common(res, mimic.truth)
            m = metrics(r, t)
            scores[row]["mp"].append(m["mp_percent"])
            scores[row]["mgp"].append(m["mgp_percent"])
            scores[row]["mds"].append(m["mds"])
            scores[row]["t"].append(times[row])
        if seed < aniso_n:
            n_common = min(len(v) for v in recs.values())
            for row, vol in (("truth", mimic.truth), *recs.items()):
                a = anisotropy(vol[:n_common], GRID, max_distance=80.0, plane_step=8)
                for k in aniso[row]:
                    aniso[row][k].append(a[k])
        log(f"dataset {seed}: {len(mimic.stack)} slices, solid {phis[-1]:.3f}, "
            f"RML MP {scores['RML']['mp'][-1]:.2f} %, {time.perf_counter() - t0:.0f} s")

    lines = [
        f"### 1. Reconstruction accuracy ({n} datasets, mean ± std)",
        "",
        f"Ground truth: HNPG-like hierarchical leveled wave {SHAPE} voxels of {GRID} nm "
        f"(solid fraction {np.mean(phis):.3f}); {np.mean(nsl):.0f} slices per stack, "
        f"thickness gamma (mean {TARGET:g} nm, shape 4) in {GRID} nm bins.",
        "",
        "| dataset | MP % | MGP % | MDS | time / dataset (s) | paper MP % | paper MGP % "
        "| paper MDS |",
        "|---|---|---|---|---|---|---|---|",
    ]
    desc = {
        "DNN": "DNN (no repositioning, nearest)",
        "SRCS": "SRCS (10 nm grid, cubic)",
        "RNN": "RNN (2.5 nm grid, nearest)",
        "RCS": "RCS (2.5 nm grid, cubic)",
        "RSB": "RSB (2.5 nm grid, shape-based; extra)",
        "RML": "RML (2.5 nm grid, ML inpainting)",
    }
    for row in ROWS:
        s = scores[row]
        p = PAPER.get(row)
        ptxt = (f"{p[0][0]} ± {p[0][1]} | {p[1][0]} ± {p[1][1]} | {p[2][0]}" if p
                else "– | – | –")
        lines.append(f"| {desc[row]} | {fmt(s['mp'])} | {fmt(s['mgp'])} | "
                     f"{fmt(s['mds'], 3)} | {np.mean(s['t']):.1f} | {ptxt} |")
    mp = {r: np.mean(scores[r]["mp"]) for r in ROWS}
    goal = {
        "RML MP <= 2.35 %": mp["RML"] <= 2.35,
        "RML MGP <= 10.0 %": np.mean(scores["RML"]["mgp"]) <= 10.0,
        "RML MDS >= 0.95": np.mean(scores["RML"]["mds"]) >= 0.95,
        "MP order RML < RCS < SRCS < DNN": mp["RML"] < mp["RCS"] < mp["SRCS"] < mp["DNN"],
    }
    per = [scores["RML"]["mp"][i] < scores["RCS"]["mp"][i] < scores["SRCS"]["mp"][i]
           < scores["DNN"]["mp"][i] for i in range(n)]
    lines += ["", "Goals: " + "; ".join(f"{k}: **{'met' if v else 'missed'}**"
                                        for k, v in goal.items())
              + f" (order holds in {sum(per)}/{n} datasets individually)."]
    if aniso_n:
        lines += ["", f"### 2. Anisotropy errors ({aniso_n} datasets, mean ± std; 0 = isotropic)",
                  "", "Directional functions to 80 nm; D_ij from every 8th section.", "",
                  "| dataset | e_TPCF | e_LPF | e_D |", "|---|---|---|---|"]
        for row, a in aniso.items():
            lines.append(f"| {row} | {fmt(a['e_tpcf'], 3)} | {fmt(a['e_lpf'], 3)} | "
                         f"{fmt(a['e_d'], 3)} |")
    return "\n".join(lines), {"scores": scores, "goal": goal}


def sensitivity(n: int, log) -> str:
    cases = (("HNPG, gamma shape 2 (broad)", "hnpg", 2.0),
             ("HNPG, gamma shape 8 (narrow)", "hnpg", 8.0),
             ("single-level NPG (solid 0.30, 15 nm ligaments), shape 4", "npg", 4.0))
    rows = ("DNN", "SRCS", "RNN", "RCS", "RSB", "RML")
    lines = [f"### 3. Sensitivity ({n} datasets each, MP % / MGP %, mean)", "",
             "| case | " + " | ".join(rows) + " |", "|---" * (len(rows) + 1) + "|"]
    for name, kind, gshape in cases:
        acc = {r: [] for r in rows}
        for seed in range(n):
            mimic = syn.fib_mimic(structure(seed, kind), GRID, TARGET, gshape, seed=seed)
            recs, _ = reconstructions(mimic, rows)
            for r in rows:
                m = metrics(*common(recs[r], mimic.truth))
                acc[r].append((m["mp_percent"], m["mgp_percent"]))
        log(f"sensitivity: {name} done")
        lines.append(f"| {name} | " + " | ".join(
            f"{np.mean([a for a, _ in acc[r]]):.2f} / {np.mean([b for _, b in acc[r]]):.1f}"
            for r in rows) + " |")
    return "\n".join(lines)


def ruler(log) -> str:
    lines = ["### 4. Slice thickness from the ruler marks of `fib_sem_stack()`", "",
             "Both detector channels, marks found without their true positions "
             "(only angle, pixel size, band rows). Pixel 10 nm, mean thickness ~19.4 nm, "
             "64 slices (63 measurable thicknesses per stack).", "",
             "| drift_px | stacks | RMS error (nm) | max error (nm) | median reported 1-sigma (nm) "
             "| flagged slices | time / stack (s) |", "|---|---|---|---|---|---|---|"]
    for drift in (0.0, 1.0, 3.0):
        errs, uncs, flagged, times = [], [], 0, []
        for seed in range(5):
            s = syn.fib_sem_stack(seed=seed, drift_px=drift)
            mk = RulerMarkers(angle_deg=s.ruler.angle_deg, pixel_size=s.ruler.pixel_size_nm,
                              rows=(0, s.ruler.band_rows))
            t0 = time.perf_counter()
            r = measure_thickness(s.image, mk)
            times.append(time.perf_counter() - t0)
            errs.append(r.thickness_nm[:-1] - s.thickness_nm[:-1])
            uncs.append(r.table["uncertainty_nm"].to_numpy()[:-1])
            flagged += len(r.flagged)
        e = np.concatenate(errs)
        lines.append(f"| {drift:g} | 5 | {np.sqrt(np.mean(e**2)):.3f} | {np.abs(e).max():.2f} | "
                     f"{np.median(np.concatenate(uncs)):.3f} | {flagged} | {np.mean(times):.2f} |")
        log(f"ruler drift {drift}: rms {np.sqrt(np.mean(e**2)):.3f} nm")
    return "\n".join(lines)


def torch_vs_numpy(log) -> str:
    try:
        import torch
    except ImportError:
        return "### 5. ML inference vs PyTorch\n\nPyTorch not installed (bench extra); skipped."
    model = inp.load_model()
    torch.set_num_threads(2)
    convs = []
    for w, b, d, _relu in model["layers"]:
        c = torch.nn.Conv2d(w.shape[1], w.shape[0], w.shape[-1], dilation=d,
                            padding=d * (w.shape[-1] // 2), padding_mode="reflect")
        c.weight.data = torch.from_numpy(w)
        c.bias.data = torch.from_numpy(b)
        convs.append(c)
    skip = model["skip"]

    def torch_forward(x):
        with torch.no_grad():
            h = torch.from_numpy(x)
            cubic = h[:, 5]
            for i, c in enumerate(convs):
                h = c(h)
                if i < len(convs) - 1:
                    h = torch.relu(h)
            return torch.sigmoid(h[:, 0] + float(skip[0]) * cubic + float(skip[1])).numpy()

    vol = structure(123, shape=(96, 160, 160))
    mimic = syn.fib_mimic(vol, GRID, TARGET, 4.0, seed=123)
    sdf = inp.plane_sdf(mimic.stack)
    z = np.arange(mimic.planes[-1] + 1)
    gaps = z[~np.isin(z, mimic.planes)][:24]
    feats = inp.gap_features(sdf, mimic.planes, gaps)
    best = {"numpy": np.inf, "torch": np.inf}
    for _ in range(3):
        t0 = time.perf_counter()
        p_np = 1 / (1 + np.exp(-inp.forward(model, feats)))
        best["numpy"] = min(best["numpy"], time.perf_counter() - t0)
        t0 = time.perf_counter()
        p_t = torch_forward(feats)
        best["torch"] = min(best["torch"], time.perf_counter() - t0)
    diff = float(np.abs(p_np - p_t).max())
    log(f"numpy vs torch: {best}, max diff {diff:.2e}")
    return "\n".join([
        "### 5. ML inference: NumPy (shipped) vs PyTorch (same weights)", "",
        f"{len(gaps)} gap planes of 160 x 160 pixels, best of 3, interleaved.", "",
        "| engine | time (s) | ratio to PyTorch | max abs. difference of probabilities |",
        "|---|---|---|---|",
        f"| ours (NumPy) | {best['numpy']:.2f} | {best['numpy'] / best['torch']:.2f} | "
        f"{diff:.1e} |",
        f"| PyTorch {torch.__version__} | {best['torch']:.2f} | 1.00 | – |",
    ])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", type=int, default=10)
    ap.add_argument("--aniso", type=int, default=3)
    ap.add_argument("--sens", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="2 datasets, no extras (smoke test)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    global SHAPE
    if args.quick:
        args.datasets, args.aniso, args.sens = 2, 1, 0
        SHAPE = (96, 96, 96)
    t0 = time.perf_counter()

    def log(msg):
        print(f"[{time.perf_counter() - t0:6.0f} s] {msg}", file=sys.stderr, flush=True)

    cfg = inp.load_model()["config"]
    parts = [
        "# FIB slices benchmark (Sardhara et al., Tables 2-3)",
        "",
        f"Machine: {MACHINE}. Python {platform.python_version()}, NumPy {np.__version__}. "
        "GPU: not measured (no GPU lent to this session).",
        f"Command: `flock /tmp/corrtomo-bench.lock python benchmarks/fib.py "
        f"--datasets {args.datasets} --aniso {args.aniso} --sens {args.sens}`.",
        f"Inpainting weights: `{inp.WEIGHTS}` (trained by `{cfg.get('script')}`, "
        f"{cfg.get('args', {}).get('steps')} steps on {cfg.get('args', {}).get('n_train')} "
        "generated volumes; training seeds disjoint from the seeds here); decision threshold "
        f"{inp.THRESHOLD} on the probability (chosen on validation seeds 1000-1003 by "
        "`benchmarks/fib_threshold.py`: the least biased solid fraction).",
        "",
    ]
    text, _ = table2(args.datasets, args.aniso, log)
    parts += [text, ""]
    if args.sens:
        parts += [sensitivity(args.sens, log), ""]
    parts += [ruler(log), "", torch_vs_numpy(log), ""]
    parts.append(f"Total run time: {time.perf_counter() - t0:.0f} s.")
    md = "\n".join(parts) + "\n"
    print(md)
    if not args.no_write and not args.quick:
        out = ROOT / "docs" / "benchmarks" / "fib.md"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(md)
        log(f"wrote {out}")


if __name__ == "__main__":
    main()
