"""GPU against CPU paths of the compute core, one run, one table (issue 19's goals).

Each row runs the same public function with ``backend="numpy"`` and ``backend="cupy"``
on the same input and reports both times (best of ``--repeats``, after one warm-up
call that compiles kernels and fills caches), the speed-up and how far the GPU result
is from the CPU one. ``make gpu-check`` runs it on a machine with a CUDA device and
writes docs/benchmarks/gpu.md; without a device it says so and exits.

    python benchmarks/gpu.py [--scale 0.25] [--repeats 2] [--out docs/benchmarks/gpu.md]

``--scale`` shrinks every size (a quick look; the goals hold for the full sizes).
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_corrtomo.core import backend as bk
from napari_corrtomo.core.classify import FeatureSpec, PixelClassifier
from napari_corrtomo.core.quantify.thickness import local_thickness
from napari_corrtomo.core.quantify.transport import tortuosity_factor
from napari_corrtomo.core.recon import reconstruct, select_engine
from napari_corrtomo.core.synthetic import leveled_wave, projections


@dataclass
class Case:
    name: str
    size: str
    goal: str
    run: Callable[[str], object]  # backend -> result
    compare: Callable[[object, object], str]  # (cpu, gpu) -> agreement text


def _rel(cpu, gpu) -> str:
    a = np.asarray(bk.to_host(cpu), np.float64)
    b = np.asarray(bk.to_host(gpu), np.float64)
    return f"rel. L2 {np.linalg.norm(a - b) / max(np.linalg.norm(a), 1e-30):.1e}"


def _labels_agree(cpu, gpu) -> str:
    a = np.argmax(np.asarray(bk.to_host(cpu)), 0)
    b = np.argmax(np.asarray(bk.to_host(gpu)), 0)
    return f"labels equal {np.mean(a == b):.4%}"


def _tau(cpu, gpu) -> str:
    return f"tau {cpu.tau:.4f} vs {gpu.tau:.4f}"


def cases(scale: float) -> list[Case]:
    def n(full: int) -> int:
        return max(16, int(round(full * scale)))

    out = []
    s = n(256)
    img = leveled_wave((s, s, s), wavelength=40.0, solid_fraction=0.4, seed=1,
                       return_field=True)[1].astype(np.float32)
    truth = (img > np.median(img)).astype(np.uint8) + 1
    scribbles = np.zeros_like(truth)
    scribbles[s // 2, ::3, ::3] = truth[s // 2, ::3, ::3]  # sparse labels on one slice
    clf = PixelClassifier(FeatureSpec.ilastik_default(), n_trees=100).fit(img, scribbles)
    out.append(Case("filter bank + prediction (61 features, 100 trees)", f"{s}^3",
                    ">= 20x", lambda b: clf.predict_proba(img, backend=b), _labels_agree))

    s = n(512)
    mask = leveled_wave((s, s, s), wavelength=60.0, solid_fraction=0.5, seed=2)
    out.append(Case("local thickness", f"{s}^3", ">= 10x",
                    lambda b: local_thickness(mask, 1.0, backend=b), _rel))

    s = n(256)
    pores = leveled_wave((s, s, s), wavelength=40.0, solid_fraction=0.5, seed=3)
    out.append(Case("tortuosity factor", f"{s}^3", ">= TauFactor's GPU speed per voxel",
                    lambda b: tortuosity_factor(pores, 1.0, 0, backend=b), _tau))

    s = n(256)
    for kind, method, goal, kw in (("cone", "fdk", "< 1 s on the GPU", {}),
                                   ("parallel", "sirt", "faster than the CPU",
                                    {"iterations": 50})):
        scan = projections(kind, volume_shape=(s, s, s), det_shape=(s, int(s * 1.25)),
                           n_angles=360, photons=None)
        label = f"{method.upper()}" + (" 50 it" if kw else "") + f", {kind}, 360 proj."
        out.append(Case(label, f"{s}^3", goal,
                        lambda b, sc=scan, m=method, k=kw: reconstruct(
                            sc.projections, sc.geometry, sc.volume_shape, sc.voxel_size, m,
                            backend=b, **k), _rel))
    return out


def timed(func: Callable[[], object], repeats: int) -> tuple[float, object]:
    result = func()  # warm-up: kernel compilation, plans, caches
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = func()
        if bk.is_cupy_array(result):
            bk.to_host(result)  # wait for the device: timings include the copy back
        best = min(best, time.perf_counter() - t0)
    return best, result


def device_name() -> str:
    import cupy

    props = cupy.cuda.runtime.getDeviceProperties(0)
    name = props["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=float, default=1.0, help="shrink every size by this")
    ap.add_argument("--repeats", type=int, default=2, help="timed calls per path (best)")
    ap.add_argument("--out", type=Path, help="also write the table (markdown) here")
    args = ap.parse_args(argv)
    if not bk.cupy_available():
        print("no CUDA device usable by CuPy here: nothing to compare (run on a GPU machine)")
        return 0
    head = (f"Device: {device_name()}; host: {platform.processor() or platform.machine()}, "
            f"Python {platform.python_version()}. Reconstruction on the GPU: "
            + ("ASTRA's CUDA algorithms" if select_engine("cupy") == "astra" else
               "the numba CUDA kernels (core/recon/_cuda_kernels.py)")
            + ". Command: `python benchmarks/gpu.py"
            + (f" --scale {args.scale:g}" if args.scale != 1 else "") + "`.")
    rows = ["| computation | size | CPU (s) | GPU (s) | speed-up | goal | GPU vs CPU |",
            "|---|---|---:|---:|---:|---|---|"]
    print(head)
    for case in cases(args.scale):
        t_cpu, r_cpu = timed(lambda c=case: c.run("numpy"), args.repeats)
        t_gpu, r_gpu = timed(lambda c=case: c.run("cupy"), args.repeats)
        rows.append(f"| {case.name} | {case.size} | {t_cpu:.2f} | {t_gpu:.3f} | "
                    f"{t_cpu / t_gpu:.1f}x | {case.goal} | {case.compare(r_cpu, r_gpu)} |")
        print(rows[-1], flush=True)
    if args.out:
        args.out.write_text("# GPU against CPU paths\n\n" + head + "\n\n" + "\n".join(rows)
                            + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
