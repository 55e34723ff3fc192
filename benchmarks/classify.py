"""Benchmark: sparse-label random-forest classification vs thresholds and vs ilastik-napari.

Three parts, one run, same inputs for every method:

1. Accuracy (awe, Osenberg et al. eq. 1) on ``fib_sem_stack()`` with simulated sparse
   scribbles: multi-Otsu (the seed's double threshold), the depth-2 decision tree
   ("triple threshold"), RF on SE2, RF on SE2 + InLens + difference, RF + tailored
   features, and the tailored RF trained live with rounds of correction strokes over the
   live prediction (``synthetic.correction_rounds``). Evaluated on every sample voxel of
   the slices that carry no scribbles.
2. Speed of features + prediction on a 256^3 volume with ilastik's full default feature
   set (61 features), ours vs the ilastik-napari approach: its default FilterSet
   (Gaussian 0.3-10, LoG/GGM/DoG/STE/HoGE 0.7-10) computed with scikit-image/scipy on
   the whole array (ilastik-napari's fastfilters is not installed), stacked as
   (z, y, x, F) float32, and scikit-learn's ``RandomForestClassifier()`` fitted on the
   labelled voxels and ``predict_proba`` on every voxel -- as ``ilastik.napari.plugin``
   does. Interleaved repeats, best of each.
3. Latency of one live slice update (512 x 512) after a stroke: 2D features, 3D features
   from the slice's slab, two channels with tailored features.

Run under the benchmark lock: ``flock /tmp/corrtomo-bench.lock python benchmarks/classify.py``.
Writes the tables to ``docs/benchmarks/classify.md``.
``--accuracy-only`` / ``--latency-only`` re-measure part 1 / part 3 alone;
``--speed-baseline REV`` times part 2 for ours now vs ours at git revision REV (fresh
processes, interleaved, no peer) and appends a dated section.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _baselines import ThresholdTree
from _revision import export_src

from napari_corrtomo.core import synthetic
from napari_corrtomo.core.classify import (
    LiveTrainer,
    PixelClassifier,
    iou_per_class,
    weighted_error,
)
from napari_corrtomo.core.classify.features import FeatureSpec
from napari_corrtomo.core.threshold import otsu_segment

ROOT = Path(__file__).resolve().parents[1]
SEED_AWE = {"otsu": 60.8, "tree": 30.8, "rf1": 12.3, "rf2": 10.3, "tailored": 6.1,
            "corrected": 6.1}
SEED_ORDER = ["otsu", "tree", "rf1", "rf2", "tailored"]  # worst to best in the seed


# ----------------------------------------------------------------------------- peer


def peer_features(image: np.ndarray) -> np.ndarray:
    """ilastik-napari's default FilterSet, computed with scikit-image / scipy.

    Mirrors ``ilastik.napari.filters`` (DoG inner 0.5 sigma, STE inner 0.5 sigma /
    outer sigma, HoGE at sigma), default table: Gaussian at all 7 scales, the other
    filters at 0.7 .. 10. Output (z, y, x, F) float32 like ``FilterSet.transform``.
    """
    import scipy.ndimage as ndi
    from skimage import feature, filters

    scales = (0.3, 0.7, 1.0, 1.6, 3.5, 5.0, 10.0)
    img = image.astype(np.float64)
    jobs = [("g", s) for s in scales]
    jobs += [(kind, s) for kind in ("log", "ggm", "dog", "ste", "hog") for s in scales[1:]]
    n_out = sum(3 if k in ("ste", "hog") else 1 for k, _ in jobs)
    out = np.empty(image.shape + (n_out,), np.float32)
    i = 0
    for kind, s in jobs:
        if kind == "g":
            res = [filters.gaussian(img, sigma=s, preserve_range=True)]
        elif kind == "log":
            res = [ndi.gaussian_laplace(img, s)]
        elif kind == "ggm":
            res = [ndi.gaussian_gradient_magnitude(img, s)]
        elif kind == "dog":
            res = [filters.difference_of_gaussians(img, 0.5 * s, s)]
        elif kind == "ste":
            st = feature.structure_tensor(filters.gaussian(img, 0.5 * s, preserve_range=True),
                                          sigma=s, order="rc")
            res = list(feature.structure_tensor_eigenvalues(st))
        else:
            hm = feature.hessian_matrix(img, s, order="rc", use_gaussian_derivatives=False)
            res = list(feature.hessian_matrix_eigvals(hm))
        for r in res:
            out[..., i] = r
            i += 1
        del res
    return out


def peer_fit_predict(feats: np.ndarray, labels: np.ndarray, seed: int = 0):
    """ilastik-napari's NDSparseClassifier(RandomForestClassifier()) fit + predict_proba."""
    from sklearn.ensemble import RandomForestClassifier

    mask = labels != 0
    t0 = time.perf_counter()
    rf = RandomForestClassifier(random_state=seed).fit(feats[mask], labels[mask])
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    proba = rf.predict_proba(feats.reshape(-1, feats.shape[-1]))
    t_pred = time.perf_counter() - t0
    return rf, proba.reshape(labels.shape + (-1,)), t_fit, t_pred


# ----------------------------------------------------------------------------- parts


def accuracy_table(seeds: tuple[int, ...] = (0, 1, 2)) -> tuple[list[dict], dict]:
    """awe and IoU of every method on the FIB-SEM sample (seed 0) for several sets of
    simulated scribbles (scribble and forest seed ``s``); means and ranges over the sets."""
    fib = synthetic.fib_sem_stack(seed=0)
    truth, img, sp = fib.labels.data, fib.image, fib.labels.scale
    runs: dict[str, list[dict]] = {}
    names: dict[str, tuple[str, int]] = {}
    info: dict = {}
    for seed in seeds:
        scr = synthetic.scribbles_from_truth(truth, seed=seed)
        scribbled = np.unique(np.nonzero(scr)[0])
        evalmask = (truth != 0) & ~np.isin(np.arange(len(truth)), scribbled)[:, None, None]
        info.setdefault("scribbled_voxels", []).append(int((scr > 0).sum()))
        info["scribbled_slices"] = scribbled.tolist()
        info["eval_voxels"] = int(evalmask.sum())

        def add(key, name, pred, n_features, seconds, evalmask=evalmask):
            ious = iou_per_class(truth, pred, mask=evalmask)
            names[key] = (name, n_features)
            runs.setdefault(key, []).append({
                "awe": weighted_error(truth, pred, evalmask), "iou_pore": ious[1],
                "iou_cbd": ious[2], "iou_am": ious[3], "time_s": seconds})

        t0 = time.perf_counter()
        add("otsu", "Multi-Otsu, 2 thresholds (SE2)", otsu_segment(img[0], mask=truth != 0), 1,
            time.perf_counter() - t0)
        t0 = time.perf_counter()
        tree = ThresholdTree(seed=seed).fit(img[0], scr)
        add("tree", "Triple threshold: depth-2 tree on scribbles (SE2)", tree.predict(img[0]), 1,
            time.perf_counter() - t0)
        for key, name, chans, spec in (
            ("rf1", "RF, SE2", img[:1], FeatureSpec.ilastik_default()),
            ("rf2", "RF, SE2 + InLens + difference", img,
             FeatureSpec.ilastik_default(channel_differences=True)),
            ("tailored", "RF, SE2 + InLens + difference + tailored z features", img,
             FeatureSpec.ilastik_default(channel_differences=True, tailored=True)),
        ):
            t0 = time.perf_counter()
            clf = PixelClassifier(spec, n_trees=100, seed=seed).fit(chans, scr, sp, "nm")
            pred = clf.predict(chans)
            add(key, name, pred, clf.n_features, time.perf_counter() - t0)
            gc.collect()
        # the same strokes, then rounds of corrections where the live prediction errs, as
        # a user trains the forest in the widget (LiveTrainer, the widget's engine)
        t0 = time.perf_counter()
        trainer = LiveTrainer(img, FeatureSpec.ilastik_default(channel_differences=True,
                                                               tailored=True),
                              sp, "nm", n_trees=100, seed=seed)
        labels = synthetic.correction_rounds(trainer, truth, scr, scribbled.tolist(),
                                             seed=seed)
        add("corrected", f"RF, tailored, trained live: + {synthetic.CORRECTION_ROUNDS} rounds of "
            "correction strokes", trainer.classifier.predict(img), trainer.classifier.n_features,
            time.perf_counter() - t0)
        info.setdefault("corrected_voxels", []).append(int((labels > 0).sum()))
        gc.collect()
        print(f"  scribble set {seed}: " + ", ".join(
            f"{k} {v[-1]['awe']:.1f}" for k, v in runs.items()), flush=True)
    rows = []
    for key, vals in runs.items():
        awes = [v["awe"] for v in vals]
        rows.append({"key": key, "method": names[key][0], "features": names[key][1],
                     "awe_pct": float(np.mean(awes)), "awe_min": min(awes), "awe_max": max(awes),
                     "awes": awes,
                     **{c: float(np.mean([v[c] for v in vals]))
                        for c in ("iou_pore", "iou_cbd", "iou_am", "time_s")},
                     "seed_awe_pct": SEED_AWE[key]})
    per_seed_ok = all(
        [runs[k][i]["awe"] for k in SEED_ORDER]
        == sorted([runs[k][i]["awe"] for k in SEED_ORDER], reverse=True)
        for i in range(len(seeds)))
    info.update({"shape": truth.shape, "spacing": sp, "seeds": list(seeds),
                 "ordering_each_set": per_seed_ok})
    return rows, info


def speed_volume(n: int):
    """A (n, n, n) FIB-SEM-like volume (SE2) with truth, 10 nm isotropic voxels."""
    fib = synthetic.fib_sem_stack(seed=1, n_slices=n, image_shape=(n + 16, n),
                                  target_thickness_nm=10.0, ruler_angle_deg=8.0)
    img = np.ascontiguousarray(fib.channels[0].data[:, 16:, :])
    truth = np.ascontiguousarray(fib.labels.data[:, 16:, :])
    return img, truth


def speed_table(n: int, repeats: int) -> tuple[list[dict], dict]:
    t0 = time.perf_counter()
    img, truth = speed_volume(n)
    t_gen = time.perf_counter() - t0
    scr = synthetic.scribbles_from_truth(truth, strokes_per_class=6, seed=0)
    spec = FeatureSpec.ilastik_default()
    ours_t, peer_t = [], []
    ours_fit, peer_fit = [], []
    ours_awe = peer_awe = None
    for _ in range(repeats):
        gc.collect()
        t0 = time.perf_counter()
        clf = PixelClassifier(spec, n_trees=100, seed=0).fit(img, scr, (10, 10, 10), "nm")
        ours_fit.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        proba = clf.predict_proba(img, backend="numpy")
        ours_t.append(time.perf_counter() - t0)
        ours_awe = weighted_error(truth, clf.classes_[np.argmax(proba, 0)])
        del proba, clf
        gc.collect()
        t0 = time.perf_counter()
        feats = peer_features(img)
        t_feat = time.perf_counter() - t0
        rf, proba, t_fit, t_pred = peer_fit_predict(feats, scr)
        peer_t.append(t_feat + t_pred)
        peer_fit.append(t_fit)
        peer_awe = weighted_error(truth, rf.classes_[np.argmax(proba, -1)])
        del feats, proba, rf
    rows = [
        {"method": "napari-corrtomo (blockwise, compiled filters + flat forest)",
         "features_plus_prediction_s": min(ours_t), "all_runs_s": ours_t, "fit_s": min(ours_fit),
         "awe_pct": ours_awe},
        {"method": "ilastik-napari approach (scikit-image filters + scikit-learn RF, whole array)",
         "features_plus_prediction_s": min(peer_t), "all_runs_s": peer_t, "fit_s": min(peer_fit),
         "awe_pct": peer_awe},
    ]
    return rows, {"shape": img.shape, "generate_s": t_gen, "scribbled_voxels": int((scr > 0).sum()),
                  "repeats": repeats}


_TIME_OURS = """
import json, sys, time, gc
import numpy as np
from napari_corrtomo.core.classify import PixelClassifier, weighted_error
from napari_corrtomo.core.classify.features import FeatureSpec
d = sys.argv[1]
img, scr, truth = (np.load(f"{d}/{k}.npy") for k in ("img", "scr", "truth"))
clf = PixelClassifier(FeatureSpec.ilastik_default(), n_trees=100, seed=0)
t0 = time.perf_counter()
clf.fit(img, scr, (10, 10, 10), "nm")
t_fit = time.perf_counter() - t0
clf.predict_proba(img[:24, :24, :24], backend="numpy")  # JIT warm-up, not timed
gc.collect()
t0, c0 = time.perf_counter(), time.process_time()
proba = clf.predict_proba(img, backend="numpy")
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
awe = float(weighted_error(truth, clf.classes_[np.argmax(proba, 0)]))
print(json.dumps({"wall": wall, "cpu": cpu, "fit": t_fit, "awe": awe}))
"""


def speed_vs_baseline(n: int, repeats: int, baseline: str) -> tuple[list[dict], dict]:
    """Features + prediction of ours now vs ours at git revision ``baseline`` on the same
    n^3 volume and scribbles, each run in a fresh process, interleaved (no peer)."""
    img, truth = speed_volume(n)
    scr = synthetic.scribbles_from_truth(truth, strokes_per_class=6, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        for k, v in (("img", img), ("scr", scr), ("truth", truth)):
            np.save(f"{tmp}/{k}.npy", v)
        srcs = {"now": ROOT / "src", baseline: export_src(baseline, Path(tmp) / "base")}
        runs: dict[str, list[dict]] = {k: [] for k in srcs}
        for _ in range(repeats):
            for key, src in srcs.items():
                env = dict(os.environ, PYTHONPATH=str(src))
                res = subprocess.run([sys.executable, "-c", _TIME_OURS, tmp], env=env,
                                     check=True, capture_output=True, text=True)
                runs[key].append(json.loads(res.stdout.strip().splitlines()[-1]))
                runs[key][-1]["load5"] = os.getloadavg()[1]
                print(f"  {key}: {runs[key][-1]}", flush=True)
    rows = [{"rev": k, "best_wall_s": min(r["wall"] for r in v),
             "best_cpu_s": min(r["cpu"] for r in v), "walls": [r["wall"] for r in v],
             "fit_s": min(r["fit"] for r in v), "awe_pct": v[-1]["awe"],
             "load5": [r["load5"] for r in v]} for k, v in runs.items()]
    return rows, {"shape": img.shape, "scribbled_voxels": int((scr > 0).sum()),
                  "repeats": repeats}


def speed_baseline_markdown(rows: list[dict], info: dict, baseline: str) -> list[str]:
    now, base = rows
    lines = [f"## Speed vs `{baseline}`: features + prediction, {info['shape'][0]}^3 "
             f"({time.strftime('%Y-%m-%d')})", "",
             "Produced by `PYTHONPATH=src nice -n 5 python benchmarks/classify.py "
             f"--speed-baseline {baseline} --size {info['shape'][0]} --repeats "
             f"{info['repeats']}`. 2-core x86-64 VM, CPU only. Volume {info['shape']} "
             f"(FIB-SEM-like SE2, 10 nm voxels), {info['scribbled_voxels']} scribbled voxels, "
             "full ilastik set (61 features), 100 trees, `predict_proba(backend=\"numpy\")`; "
             "each run a fresh process on the same saved inputs, the two revisions interleaved; "
             "best of each (all runs listed).", "",
             "| revision | features + prediction: wall (s) | CPU (s) | runs, wall (s) "
             "| fit (s) | awe (%) | 5-min load during runs |",
             "|---|---:|---:|---|---:|---:|---|"]
    for r in rows:
        lines.append(f"| `{r['rev']}` | {r['best_wall_s']:.1f} | {r['best_cpu_s']:.1f} | "
                     + ", ".join(f"{t:.1f}" for t in r["walls"])
                     + f" | {r['fit_s']:.1f} | {r['awe_pct']:.2f} | "
                     + ", ".join(f"{x:.1f}" for x in r["load5"]) + " |")
    lines += ["", f"Speed-up over `{baseline}`: **{base['best_wall_s'] / now['best_wall_s']:.2f}x "
              f"wall**, {base['best_cpu_s'] / now['best_cpu_s']:.2f}x CPU (goal >= 3x, "
              "issue 21).", ""]
    return lines


def latency_table(repeats: int = 5) -> list[dict]:
    """Live update on a 512 x 512 slice, as the widget runs it: cold (first look at a
    slice: its features from the slab of slices the filters reach, then the forest) and
    after a brush stroke on the visible slice (``set_slice_labels`` with the slice's
    features cached, then ``update``: the forest grows in batches, the first batch's
    prediction is what the widget draws first, the whole forest's follows)."""
    fib = synthetic.fib_sem_stack(seed=0)
    sp = fib.labels.scale
    big = np.tile(fib.image, (1, 1, 3, 3))[:, :, :512, :512].copy()
    truth = np.tile(fib.labels.data, (1, 3, 3))[:, :512, :512].copy()
    scr = synthetic.scribbles_from_truth(truth, slices=(16, 32, 48), seed=0)
    stroke = synthetic.scribbles_from_truth(truth, slices=(40,), strokes_per_class=1, seed=5)
    rows = []
    for name, chans, spec in (
        ("RF, SE2, ilastik set in 2D (49 features)", big[:1],
         FeatureSpec.ilastik_default(mode="2d")),
        ("RF, SE2, full ilastik set, 3D from the slab (61 features)", big[:1],
         FeatureSpec.ilastik_default()),
        ("RF, SE2 + InLens + difference + tailored (219 features)", big,
         FeatureSpec.ilastik_default(channel_differences=True, tailored=True)),
    ):
        live = LiveTrainer(chans, spec, sp, "nm", n_trees=100, seed=0)
        live.set_labels(scr)
        live.update(32)  # compile / warm up
        cold = []
        for z in (36, 38, 42, 44, 50, 52, 54, 56, 58)[:repeats]:  # no scribbled slice
            t0 = time.perf_counter()
            live.predict_slice(z)
            cold.append(time.perf_counter() - t0)
        live.update(40)  # slice 40 on screen (its features cached), as before a stroke
        first, whole = [], []
        plane = scr[40].copy()
        for k in range(repeats):
            # one more stroke per class each time, painted inside the phase as a user does
            # (straight lines across phases with one class would be contradictory labels)
            more = synthetic.scribbles_from_truth(truth, slices=(40,), strokes_per_class=1,
                                                  seed=10 + k)[40]
            plane[stroke[40] > 0] = stroke[40][stroke[40] > 0]
            plane[more > 0] = more[more > 0]
            shown = []
            t0 = time.perf_counter()
            live.set_slice_labels(40, plane.copy())
            live.update(40, on_preview=lambda u, out=shown: out.append(time.perf_counter()))
            whole.append(time.perf_counter() - t0)
            first.append(shown[0] - t0)
        rows.append({"setting": name, "cold_best_s": min(cold),
                     "cold_median_s": float(np.median(cold)), "first_best_s": min(first),
                     "first_median_s": float(np.median(first)),
                     "whole_median_s": float(np.median(whole)),
                     "labelled": live.n_labelled, "batch": live.batch_trees})
    return rows


# ----------------------------------------------------------------------------- report


def accuracy_markdown(acc, acc_info) -> list[str]:
    lines = ["## Accuracy on `fib_sem_stack()` with sparse scribbles", "",
             f"Stack {acc_info['shape']} (z, y, x), voxel {acc_info['spacing']} nm. "
             f"{len(acc_info['seeds'])} sets of simulated scribbles (seeds "
             f"{acc_info['seeds']}; {acc_info['scribbled_voxels']} voxels) on slices "
             f"{acc_info['scribbled_slices']}; awe and IoU over the {acc_info['eval_voxels']} "
             "sample voxels of all other slices; mean over the sets (range in brackets). "
             "Seed values: Osenberg et al., Fig. 1 (real NMC cathode, one hand-labelled slice; "
             "their double threshold is our multi-Otsu row; their forests were trained in "
             "ilastik by a person, who sees the prediction while painting).", "",
             "| method | features | awe (%) | IoU pore | IoU carbon-binder | IoU active | "
             "seed awe (%) | time (s) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in acc:
        lines.append(f"| {r['method']} | {r['features']} | {r['awe_pct']:.1f} "
                     f"({r['awe_min']:.1f}-{r['awe_max']:.1f}) | {r['iou_pore']:.3f} "
                     f"| {r['iou_cbd']:.3f} | {r['iou_am']:.3f} | {r['seed_awe_pct']:.1f} "
                     f"| {r['time_s']:.1f} |")
    order = [r["key"] for r in sorted(acc, key=lambda r: -r["awe_pct"]) if r["key"] in SEED_ORDER]
    same = order == SEED_ORDER
    each = acc_info["ordering_each_set"]
    lines += ["", f"Ordering of the mean awe (worst to best): {' > '.join(order)} -- "
              f"{'the same as the seed, tailored best' if same else 'DIFFERS from the seed'}; "
              f"{'the same ordering for every scribble set' if each else 'not for every set'}.",
              "", f"*Trained live*: the tailored forest trained in `LiveTrainer` (the Classify "
              f"widget's engine) on the same strokes, then {synthetic.CORRECTION_ROUNDS} rounds in which "
              "each scribbled slice's live prediction is shown and its 2 largest mistakes per "
              "class get a stroke of up to 40 pixels (`synthetic.correction_rounds`; labelled "
              f"voxels after the rounds: {acc_info['corrected_voxels']}). Strokes inside the "
              "phases never show the forest a phase's edge; the corrections do.", ""]
    return lines


def markdown(acc, acc_info, speed, speed_info, latency) -> str:
    machine = "2-core x86-64 VM, 24 GB, shared and noisy; CPU only"
    lines = ["# Benchmark: pixel classification", "",
             f"Machine: {machine} ({platform.python_version()}, numpy {np.__version__}).",
             "Produced by `flock /tmp/corrtomo-bench.lock python benchmarks/classify.py`.", "",
             *accuracy_markdown(acc, acc_info)]
    ours, peer = speed
    ratio = peer["features_plus_prediction_s"] / ours["features_plus_prediction_s"]
    lines += ["## Speed: features + prediction, 256^3, full ilastik feature set", "",
              f"Volume {speed_info['shape']} (FIB-SEM-like SE2, 10 nm voxels), "
              f"{speed_info['scribbled_voxels']} scribbled voxels, 61 features, 100 trees; "
              f"best of {speed_info['repeats']} interleaved runs (all runs listed).", "",
              "| method | features + prediction (s) | runs (s) | fit (s) | awe (%) |",
              "|---|---:|---|---:|---:|"]
    for r in speed:
        runs = ", ".join(f"{t:.1f}" for t in r["all_runs_s"])
        lines.append(f"| {r['method']} | {r['features_plus_prediction_s']:.1f} | {runs} "
                     f"| {r['fit_s']:.1f} | {r['awe_pct']:.2f} |")
    lines += ["", f"Speed-up (CPU): **{ratio:.1f}x** (goal >= 3x at equal accuracy; "
              f"awe {ours['awe_pct']:.2f} % vs {peer['awe_pct']:.2f} %).", "",
              "GPU: not measured (no GPU lent to this session).", ""]
    return "\n".join(lines + latency_markdown(latency))


def latency_markdown(latency) -> list[str]:
    lines = ["## Live slice update (512 x 512)", "",
             "*After a stroke*: the widget's update while painting on the visible slice "
             "(`LiveTrainer.set_slice_labels` + `update`, what the widget's worker runs): the "
             "stroke's slice taken (its features cached), the 100-tree forest refitted on all "
             f"scribbles in batches of {latency[0]['batch']} trees; *first drawn* = the first "
             "batch's prediction of the 262 144 voxels of the slice (what the widget draws at "
             "once), *whole forest* = all 100 trees (drawn next; a new stroke cancels it). "
             "Each update adds one stroke per class painted inside its phase (simulated from "
             "the truth). *Cold*: first look at a slice -- its features from the slab of "
             "slices the filters reach, then the forest.", "",
             "| setting | scribbled voxels | after a stroke, first drawn: best / median (s) "
             "| whole forest: median (s) | cold slice: best / median (s) |",
             "|---|---:|---:|---:|---:|"]
    for r in latency:
        lines.append(f"| {r['setting']} | {r['labelled']} | {r['first_best_s']:.3f} / "
                     f"{r['first_median_s']:.3f} | {r['whole_median_s']:.3f} "
                     f"| {r['cold_best_s']:.3f} / {r['cold_median_s']:.3f} |")
    lines += ["", "Goal: < 0.5 s on the CPU (issue 17), < 0.2 s median with 3D features from "
              "the slab (issue 21). The widget test (tests/widgets/test_classify.py, real "
              "mouse strokes on the canvas of a real viewer) measures stroke release -> "
              "prediction drawn on screen.",
              "GPU: not measured (no GPU lent to this session).", ""]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="edge of the speed volume")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved speed repeats")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "classify.md")
    parser.add_argument("--latency-only", action="store_true",
                        help="re-measure only the live update and replace its section of --out")
    parser.add_argument("--accuracy-only", action="store_true",
                        help="re-measure only the accuracy table and replace its section of --out")
    parser.add_argument("--speed-baseline", metavar="REV", default=None,
                        help="time only features + prediction, ours now vs ours at git "
                             "revision REV, and append a dated section to --out")
    args = parser.parse_args()
    if args.speed_baseline:
        rows, info = speed_vs_baseline(args.size, args.repeats, args.speed_baseline)
        text = "\n".join(speed_baseline_markdown(rows, info, args.speed_baseline))
        print(text)
        with args.out.open("a") as f:
            f.write("\n" + text)
        return
    if args.accuracy_only:
        acc, acc_info = accuracy_table()
        head, tail = args.out.read_text().split("## Accuracy on")
        _, sep, rest = tail.partition("\n## ")  # the sections after it stay
        text = head + "\n".join(accuracy_markdown(acc, acc_info)) + (
            f"\nAccuracy re-measured alone (`--accuracy-only`) on {time.strftime('%Y-%m-%d')} "
            f"at a 5-minute load average of {os.getloadavg()[1]:.1f} on 2 cores.\n"
            f"\n{sep.lstrip()}{rest}")
        print(text)
        args.out.write_text(text)
        return
    if args.latency_only:
        latency = latency_table(repeats=9)
        head, tail = args.out.read_text().split("## Live slice update")
        section, sep, rest = tail.partition("\n## ")  # the sections after it stay
        # the full run's load line (accuracy and speed parts) stays
        loads = [ln for ln in section.splitlines()
                 if ln.startswith("Machine load while measuring")]
        text = head + "\n".join(latency_markdown(latency) + loads) + (
            f"\n\nLive update re-measured alone (`--latency-only`, best / median of 9) at a "
            f"5-minute load average of {os.getloadavg()[1]:.1f} on 2 cores.\n") + (
            f"\n{sep.lstrip()}{rest}" if sep else "")
        print(text)
        args.out.write_text(text)
        return
    t0 = time.perf_counter()
    loads = {}
    acc, acc_info = accuracy_table()
    loads["accuracy"] = os.getloadavg()[1]
    print(f"accuracy part done ({time.perf_counter() - t0:.0f} s)", flush=True)
    latency = latency_table()
    loads["latency"] = os.getloadavg()[1]
    print(f"latency part done ({time.perf_counter() - t0:.0f} s)", flush=True)
    speed, speed_info = speed_table(args.size, args.repeats)
    loads["speed"] = os.getloadavg()[1]
    print(f"speed part done ({time.perf_counter() - t0:.0f} s)", flush=True)
    text = markdown(acc, acc_info, speed, speed_info, latency)
    text += ("\nMachine load while measuring (5-minute load average on 2 cores, other helpers' "
             "work included): " + ", ".join(f"{k} {v:.1f}" for k, v in loads.items()) + ".\n")
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
