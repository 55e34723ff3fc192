"""Benchmark: filter-bank speed and accuracy (issue 21).

One run, same float32 inputs for every engine:

1. 2D (512^2 and 2048^2, ilastik's 7 scales 0.3-10): our ``compute_features`` vs
   ``fastfilters2`` (ilastik's SIMD engine; 2D only; its ``compute_filters(image, scale)``
   gives Gaussian, gradient magnitude, LoG, Hessian and structure-tensor eigenvalues at one
   scale, 7 outputs) vs ``scipy.ndimage`` (the same filters, float32, one thread). Ours is
   timed on fastfilters2's exact set (5 filters x 7 scales, 49 outputs) and on ilastik's
   default table (``FeatureSpec.ilastik_default("2d")``, also 49: DoG instead of the
   0.3 derivatives).
2. Accuracy: per filter, the largest error over scales and components, relative to the
   feature's largest magnitude (``max |a - ref| / max |ref|``), against a float64
   ``scipy.ndimage`` reference built with the same kernel windows and borders as the engine
   (ours: ``int(3.5 sigma + 0.5)``, "reflect"; fastfilters2: ``ceil((3 + order / 2) sigma)``,
   "mirror"); what remains for fastfilters2 is its own kernel design; 2D at the
   smaller size, 3D (full 3D default set, 61 features) on a ``--size3d-acc`` cube.
3. 3D 256^3 full default set (61 features): ours now vs ours at ``--baseline`` (a git
   revision, run from an exported copy in a subprocess), best of ``--repeats``.
4. Forest prediction on those features (``--forest-voxels`` of a FIB-SEM-like volume, 100
   trees fitted on simulated scribbles): our flat forest (numba) vs scikit-learn's
   ``predict_proba`` (one job and all cores); the same class decisions are checked.

``--parts`` picks sections (default all).

Run under the benchmark lock:
``flock /tmp/corrtomo-bench.lock python benchmarks/features.py --baseline <rev>``.
fastfilters2 is an optional benchmark dependency (``pip install .[bench]``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.ndimage as ndi
from _revision import export_src
from sklearn.ensemble import RandomForestClassifier

from napari_corrtomo.core import synthetic
from napari_corrtomo.core.classify.features import (
    DOG_K,
    ILASTIK_SIGMAS,
    STE_OUTER_K,
    TRUNCATE,
    FeatureSpec,
    FilterItem,
    compute_features,
)
from napari_corrtomo.core.classify.forest import FlatForest

ROOT = Path(__file__).resolve().parents[1]
#: fastfilters2's per-scale outputs, in its order
FF2_FILTERS = ("gaussian", "ggm", "log", "hessian", "ste")


def _best(fn, repeats: int) -> tuple[float, float]:
    """Best wall-clock and best CPU time (this process, all threads) of ``repeats`` runs."""
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return min(wall), min(cpu)


def ff2_spec(mode: str = "2d") -> FeatureSpec:
    """fastfilters2's set as our spec: its 5 filters at all 7 scales."""
    return FeatureSpec(tuple(FilterItem(n, s, mode) for n in FF2_FILTERS for s in ILASTIK_SIGMAS))


# ----------------------------------------------------------------------------- reference


def ours_radius(sigma: float, order: int) -> int:
    return int(TRUNCATE * sigma + 0.5)


def ff2_radius(sigma: float, order: int) -> int:
    return math.ceil((3 + 0.5 * order) * sigma)


def reference(img: np.ndarray, name: str, sigma: float, radius,
              mode: str = "reflect") -> list[np.ndarray]:
    """One filter with ``scipy.ndimage`` in float64 (descending eigenvalues)."""
    x = img.astype(np.float64)
    nd = x.ndim

    def g(order: tuple[int, ...], s: float = sigma, src: np.ndarray = x) -> np.ndarray:
        return ndi.gaussian_filter(src, s, order=order, mode=mode,
                                   radius=[radius(s, o) for o in order])

    def unit(ax: int, k: int) -> tuple[int, ...]:
        o = [0] * nd
        o[ax] += k
        return tuple(o)

    zero = (0,) * nd
    if name == "gaussian":
        return [g(zero)]
    if name == "dog":
        return [g(zero) - g(zero, DOG_K * sigma)]
    if name == "ggm":
        return [np.sqrt(sum(g(unit(a, 1)) ** 2 for a in range(nd)))]
    if name == "log":
        return [sum(g(unit(a, 2)) for a in range(nd))]
    if name == "hessian":
        m = np.empty(x.shape + (nd, nd))
        for a in range(nd):
            for b in range(a, nd):
                o = list(unit(a, 1))
                o[b] += 1
                m[..., a, b] = m[..., b, a] = g(tuple(o))
    else:  # structure tensor
        grads = [g(unit(a, 1)) for a in range(nd)]
        m = np.empty(x.shape + (nd, nd))
        for a in range(nd):
            for b in range(a, nd):
                m[..., a, b] = m[..., b, a] = g(zero, STE_OUTER_K * sigma, grads[a] * grads[b])
    ev = np.linalg.eigvalsh(m)[..., ::-1]
    return [ev[..., k] for k in range(nd)]


def rel_err(got: list[np.ndarray], ref: list[np.ndarray],
            norm: list[np.ndarray] | None = None) -> float:
    """Largest error over the components of one filter, relative to the largest magnitude of
    any component of ``norm`` (default ``ref``: an eigenvalue's error is bounded by the
    matrix's norm, not its own)."""
    scale = max(max(float(np.max(np.abs(r))) for r in (ref if norm is None else norm)), 1e-30)
    return max(float(np.max(np.abs(g.astype(np.float64) - r))) for g, r in zip(got, ref)) / scale


def errors_ours(img: np.ndarray, spec: FeatureSpec) -> dict[str, float]:
    """Largest relative error per filter of ``compute_features`` vs the reference."""
    nd = img.ndim
    feats = compute_features(img, spec, spatial_ndim=nd)
    out: dict[str, float] = {}
    i = 0
    for f in spec.filters:
        ref = reference(img, f.name, f.sigma, ours_radius)
        # DoG: relative to the Gaussian it is the difference of (features.REL_TOLERANCE)
        norm = reference(img, "gaussian", f.sigma, ours_radius) if f.name == "dog" else ref
        out[f.name] = max(out.get(f.name, 0.0),
                          rel_err(list(feats[i:i + len(ref)]), ref, norm))
        i += len(ref)
    return out


def errors_ff2(img: np.ndarray) -> dict[str, float]:
    import fastfilters2

    out: dict[str, float] = {}
    for s in ILASTIK_SIGMAS:
        res = fastfilters2.compute_filters(img, s)
        i = 0
        for name in FF2_FILTERS:
            ref = reference(img, name, s, ff2_radius, "mirror")  # its borders: no edge repeat
            if name == "gaussian" or s >= 0.7:  # ilastik's table: derivatives from 0.7 on
                out[name] = max(out.get(name, 0.0), rel_err(list(res[i:i + len(ref)]), ref))
            i += len(ref)
    return out


# ----------------------------------------------------------------------------- timing


def scipy_features(img: np.ndarray, spec: FeatureSpec) -> list[np.ndarray]:
    """The spec's features with ``scipy.ndimage`` in float32 (timing only)."""
    out = []
    zero = (0,) * img.ndim
    for f in spec.filters:
        if f.name == "gaussian":
            out.append(ndi.gaussian_filter(img, f.sigma, truncate=TRUNCATE))
        elif f.name == "dog":
            out.append(ndi.gaussian_filter(img, f.sigma, truncate=TRUNCATE)
                       - ndi.gaussian_filter(img, DOG_K * f.sigma, truncate=TRUNCATE))
        elif f.name == "ggm":
            out.append(ndi.gaussian_gradient_magnitude(img, f.sigma, truncate=TRUNCATE))
        elif f.name == "log":
            out.append(ndi.gaussian_laplace(img, f.sigma, truncate=TRUNCATE))
        else:
            nd = img.ndim
            m = np.empty(img.shape + (nd, nd), np.float32)
            grads = [ndi.gaussian_filter(img, f.sigma, order=tuple(int(i == a) for i in range(nd)),
                                         truncate=TRUNCATE) for a in range(nd)]
            for a in range(nd):
                for b in range(a, nd):
                    if f.name == "hessian":
                        o = [0] * nd
                        o[a] += 1
                        o[b] += 1
                        v = ndi.gaussian_filter(img, f.sigma, order=o, truncate=TRUNCATE)
                    else:
                        v = ndi.gaussian_filter(grads[a] * grads[b], STE_OUTER_K * f.sigma,
                                                order=zero, truncate=TRUNCATE)
                    m[..., a, b] = m[..., b, a] = v
            ev = np.linalg.eigvalsh(m)
            out.extend(ev[..., k] for k in range(nd))
    return out


def time_2d(size: int, repeats: int, with_scipy: bool) -> dict:
    rng = np.random.default_rng(0)
    img = rng.random((size, size), dtype=np.float32)
    ilastik, ff2set = FeatureSpec.ilastik_default(mode="2d"), ff2_spec()
    compute_features(img[:32, :32], ilastik, spatial_ndim=2)  # JIT warm-up
    row = {"case": f"2D {size}^2", "n": ilastik.n_features(1, 2)}
    row["ours_ilastik"] = _best(lambda: compute_features(img, ilastik, spatial_ndim=2), repeats)
    row["ours_ff2set"] = _best(lambda: compute_features(img, ff2set, spatial_ndim=2), repeats)
    if importlib.util.find_spec("fastfilters2") is not None:
        import fastfilters2

        row["ff2"] = _best(lambda: [fastfilters2.compute_filters(img, s) for s in ILASTIK_SIGMAS],
                           repeats)
    if with_scipy:
        row["scipy"] = _best(lambda: scipy_features(img, ilastik), 1)
    return row


_TIME_3D = """
import json, sys, time
import numpy as np
from napari_corrtomo.core.classify.features import FeatureSpec, compute_features
size, repeats = int(sys.argv[1]), int(sys.argv[2])
img = np.random.default_rng(0).random((size,) * 3, dtype=np.float32)
spec = FeatureSpec.ilastik_default(mode="3d")
compute_features(img[:24, :24, :24], spec, spatial_ndim=3)  # JIT warm-up
times = []
for _ in range(repeats):
    t0, c0 = time.perf_counter(), time.process_time()
    compute_features(img, spec, spatial_ndim=3)
    times.append((time.perf_counter() - t0, time.process_time() - c0))
print(json.dumps(times))
"""


def time_3d(size: int, repeats: int, src: Path) -> list[list[float]]:
    """(wall, CPU) times of compute_features on a size^3 cube with the package under ``src``
    (fresh process)."""
    env = dict(os.environ, PYTHONPATH=str(src))
    res = subprocess.run([sys.executable, "-c", _TIME_3D, str(size), str(repeats)], env=env,
                         check=True, capture_output=True, text=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def forest_rows(voxels: int, repeats: int) -> tuple[list[tuple[str, float, float]], dict]:
    """Flat forest vs scikit-learn on the 3D default features of a FIB-SEM-like cube."""
    n = round(voxels ** (1 / 3))
    fib = synthetic.fib_sem_stack(seed=1, n_slices=n, image_shape=(n + 16, n),
                                  target_thickness_nm=10.0, ruler_angle_deg=8.0)
    img = np.ascontiguousarray(fib.channels[0].data[:, 16:, :])  # without the ruler marks
    truth = np.ascontiguousarray(fib.labels.data[:, 16:, :])
    scr = synthetic.scribbles_from_truth(truth, seed=0)
    feats = compute_features(img, FeatureSpec.ilastik_default(), spatial_ndim=3)
    X = feats.reshape(len(feats), -1)
    lab = scr.reshape(-1)
    rf = RandomForestClassifier(n_estimators=100, random_state=0)
    rf.fit(X[:, lab > 0].T, lab[lab > 0])
    flat = FlatForest.from_sklearn(rf)
    flat.predict_proba(X[:, :1000])  # JIT warm-up
    XT = np.ascontiguousarray(X.T)  # scikit-learn's layout, not timed
    ours = flat.predict_proba(X)
    rows = [("flat forest (numba, this package)",
             *_best(lambda: flat.predict_proba(X), repeats))]
    for jobs in (1, -1):
        rf.set_params(n_jobs=jobs)
        rows.append((f"scikit-learn predict_proba, n_jobs={jobs}",
                     *_best(lambda: rf.predict_proba(XT), repeats)))
    same = float(np.mean(np.argmax(ours, 0) == np.argmax(rf.predict_proba(XT), 1)))
    return rows, {"shape": img.shape, "features": len(feats), "same": same,
                  "scribbled": int((scr > 0).sum())}


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    """Print markdown tables of filter-bank times and errors."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes2d", type=int, nargs="+", default=[512, 2048])
    ap.add_argument("--scipy-max", type=int, default=1024,
                    help="time scipy.ndimage on 2D sizes up to this (it takes minutes beyond)")
    ap.add_argument("--size3d", type=int, default=256)
    ap.add_argument("--size3d-acc", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5, help="2D repeats (best of)")
    ap.add_argument("--repeats3d", type=int, default=2)
    ap.add_argument("--baseline", default=None, help="git revision to time in 3D as well")
    ap.add_argument("--forest-voxels", type=int, default=1 << 21)
    ap.add_argument("--parts", default="2d,accuracy,3d,forest",
                    help="comma-separated sections to run")
    args = ap.parse_args(argv)
    parts = set(args.parts.split(","))
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores; Python "
          f"{platform.python_version()}, numpy {np.__version__}; load average "
          f"{os.getloadavg()[1]:.1f} (5 min) at start.\n")

    if "2d" in parts:
        table_2d(args)
    if "accuracy" in parts:
        table_accuracy(args)
    if "3d" in parts:
        table_3d(args)
    if "forest" in parts:
        rows, info = forest_rows(args.forest_voxels, args.repeats3d)
        print(f"\nForest prediction, {info['features']} features x "
              f"{'x'.join(map(str, info['shape']))} voxels, 100 trees fitted on "
              f"{info['scribbled']} scribbled voxels; best of {args.repeats3d}; same class "
              f"as scikit-learn at {100 * info['same']:.3f} % of the voxels:\n")
        print("| engine | wall (s) | CPU (s) |")
        print("|---|---:|---:|")
        for name, w, c in rows:
            print(f"| {name} | {w:.2f} | {c:.2f} |")


def table_2d(args: argparse.Namespace) -> None:
    rows = [time_2d(s, args.repeats, s <= args.scipy_max) for s in args.sizes2d]
    print("Wall-clock / CPU seconds, best of each (CPU: this process, all threads; on a "
          "shared machine the fairer measure of work).\n")
    print("| case | features | ours, ilastik default (s) | ours, fastfilters2's set (s) "
          "| fastfilters2 (s) | scipy.ndimage, ilastik default (s) "
          "| fastfilters2 / ours, same set (wall, CPU) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    nan = (float("nan"), float("nan"))
    for r in rows:
        ff2, ours = r.get("ff2", nan), r["ours_ff2set"]
        cols = [f"{w:.3f} / {c:.3f}" for w, c in (r["ours_ilastik"], ours, ff2)]
        sp = "{:.2f} / {:.2f}".format(*r["scipy"]) if "scipy" in r else "-"
        print(f"| {r['case']} | {r['n']} | {' | '.join(cols)} | {sp} | "
              f"{ff2[0] / ours[0]:.2f}x, {ff2[1] / ours[1]:.2f}x |")



def table_accuracy(args: argparse.Namespace) -> None:
    rng = np.random.default_rng(1)
    img2 = rng.random((args.sizes2d[0],) * 2, dtype=np.float32)
    img3 = rng.random((args.size3d_acc,) * 3, dtype=np.float32)
    e2 = errors_ours(img2, _union_2d())
    e3 = errors_ours(img3, FeatureSpec.ilastik_default(mode="3d"))
    eff = errors_ff2(img2) if importlib.util.find_spec("fastfilters2") is not None else {}
    print(f"\nMax relative error vs float64 scipy.ndimage (same windows and borders), over all "
          f"7 scales and components (fastfilters2: derivatives 0.7-10, ilastik's table; at 0.3 "
          f"its normalised derivative kernels are not sampled Gaussian derivatives); "
          f"2D {args.sizes2d[0]}^2, 3D {args.size3d_acc}^3 uniform noise:\n")
    print("| filter | ours 2D | ours 3D | fastfilters2 2D |")
    print("|---|---:|---:|---:|")
    for name in ("gaussian", "dog", "ggm", "log", "hessian", "ste"):
        ff = f"{eff[name]:.1e}" if name in eff else "-"
        print(f"| {name} | {e2[name]:.1e} | {e3[name]:.1e} | {ff} |")



def table_3d(args: argparse.Namespace) -> None:
    print(f"\n3D {args.size3d}^3, full default set "
          f"({FeatureSpec.ilastik_default().n_features(1, 3)} features), best of "
          f"{args.repeats3d}:\n")
    print("| code | wall (s) | CPU (s) | runs, wall / CPU (s) |")
    print("|---|---:|---:|---|")
    now = time_3d(args.size3d, args.repeats3d, ROOT / "src")
    res = [("this tree", now)]
    if args.baseline:
        with tempfile.TemporaryDirectory() as tmp:
            res.append((f"`{args.baseline}`", time_3d(args.size3d, args.repeats3d,
                                                      export_src(args.baseline, Path(tmp)))))
    for label, ts in res:
        runs = ", ".join(f"{w:.1f} / {c:.1f}" for w, c in ts)
        print(f"| {label} | {min(w for w, _ in ts):.2f} | {min(c for _, c in ts):.2f} | {runs} |")
    if len(res) == 2:
        speed = [min(t[k] for t in res[1][1]) / min(t[k] for t in now) for k in (0, 1)]
        print(f"\nSpeed-up over `{args.baseline}`: {speed[0]:.1f}x wall, {speed[1]:.1f}x CPU")


def _union_2d() -> FeatureSpec:
    """Every filter at every scale in 2D (accuracy covers what either set computes)."""
    return FeatureSpec(tuple(FilterItem(n, s, "2d") for n in
                             ("gaussian", "dog", "ggm", "log", "hessian", "ste")
                             for s in ILASTIK_SIGMAS))


if __name__ == "__main__":
    main()
