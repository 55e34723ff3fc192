"""Reconstruction benchmarks: napari-corrtomo's CPU engines against ASTRA (CPU) and itk-rtk.

One run, the same inputs for both sides, interleaved repeats, best time kept:

1. SIRT, 64 slices of 256^2 from 180 parallel-beam projections, equal iterations:
   ours (batched slice engine) vs ASTRA's CPU ``SIRT`` with its ``linear`` (Joseph)
   projector, one slice at a time. Goal: >= 5x faster, equal or lower error.
2. FBP of the same data: ours vs ASTRA's CPU ``FBP`` (Ram-Lak), one slice at a time.
3. Cone-beam FDK, 128^3 from 180 projections (160^2 detector, magnification 2):
   ours vs itk-rtk ``FDKConeBeamReconstructionFilter`` (CPU). Goal: no slower, equal error.
4. GPU rows (ASTRA CUDA FDK 512^3 from 720 projections, SIRT per iteration): measured
   only when a GPU is usable.

Errors are relative RMS errors against the voxelised phantom; the projections are
closed-form line integrals of the analytic phantom (with Poisson noise), so neither
side's projector produced them. Run under the benchmark lock:

    flock /tmp/corrtomo-bench.lock python benchmarks/recon.py

and the table is written to ``docs/benchmarks/recon.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

from napari_corrtomo.core import recon, synthetic

ROOT = Path(__file__).resolve().parents[1]
MACHINE = "2-core x86-64 VM, 24 GB, shared and noisy; CPU only"


def rel_err(vol: np.ndarray, phantom: np.ndarray) -> float:
    return float(np.linalg.norm(vol - phantom) / np.linalg.norm(phantom))


def timed(func, *args, **kwargs):
    t = time.perf_counter()
    out = func(*args, **kwargs)
    return time.perf_counter() - t, out


# ============================================================================ peers


def astra_slices(sample, method: str, iterations: int) -> np.ndarray:
    """ASTRA's CPU 2D algorithm on every slice (its documented way to do a stack on a CPU)."""
    import astra

    g = sample.geometry
    nz, ny, nx = sample.volume_shape
    vg = astra.create_vol_geom(ny, nx)
    pg = astra.create_proj_geom("parallel", 1.0, g.det_shape[1], np.deg2rad(g.angles_deg))
    pid = astra.create_projector("linear", pg, vg)
    out = np.empty(sample.volume_shape, np.float32)
    # our line integrals are physical (um): ASTRA works in voxels
    data = sample.projections / np.float32(sample.voxel_size)
    try:
        for k in range(nz):
            sid = astra.data2d.create("-sino", pg, data[:, k, :])
            rid = astra.data2d.create("-vol", vg, 0)
            cfg = astra.astra_dict(method)
            cfg.update(ProjectorId=pid, ProjectionDataId=sid, ReconstructionDataId=rid)
            if method == "FBP":
                cfg["FilterType"] = "ram-lak"
            alg = astra.algorithm.create(cfg)
            astra.algorithm.run(alg, iterations)
            out[k] = astra.data2d.get(rid)
            astra.algorithm.delete(alg)
            astra.data2d.delete([sid, rid])
    finally:
        astra.projector.delete(pid)
    return out


def rtk_fdk(sample) -> np.ndarray:
    """itk-rtk FDK (CPU). RTK rotates about its y axis with the source on +z at angle 0 and
    turns the other way: our angle theta is RTK's -theta, our (z, y, x) is RTK's (y, -z, x)."""
    import itk
    from itk import RTK as rtk

    g = sample.geometry
    image = itk.Image[itk.F, 3]
    geo = rtk.ThreeDCircularProjectionGeometry.New()
    sdd = g.source_origin + g.origin_detector
    for a in g.angles_deg:
        geo.AddProjection(g.source_origin, sdd, float(-a))
    proj = itk.image_from_array(np.ascontiguousarray(sample.projections, np.float32))
    rows, cols = g.det_shape
    ps = g.pixel_size
    proj.SetSpacing([ps, ps, 1.0])
    proj.SetOrigin([-(cols - 1) / 2 * ps, -(rows - 1) / 2 * ps, 0.0])
    nz, ny, nx = sample.volume_shape
    vs = sample.voxel_size
    src = rtk.constant_image_source(
        ttype=[image], origin=[-(nx - 1) / 2 * vs, -(nz - 1) / 2 * vs, -(ny - 1) / 2 * vs],
        size=[nx, nz, ny], spacing=[vs] * 3, constant=0.0)
    fdk = rtk.FDKConeBeamReconstructionFilter[image].New()
    fdk.SetInput(0, src)
    fdk.SetInput(1, proj)
    fdk.SetGeometry(geo)
    fdk.Update()
    vol = itk.array_from_image(fdk.GetOutput())  # (z_rtk, y_rtk, x_rtk)
    return np.ascontiguousarray(np.transpose(vol, (1, 0, 2))[:, ::-1, :])


# ============================================================================ runs


def bench_sirt_fbp(rows: list, n_slices: int, size: int, n_angles: int, iterations: int,
                   repeats: int) -> None:
    s = synthetic.projections("parallel", seed=0, volume_shape=(n_slices, size, size),
                              det_shape=(n_slices, size), n_angles=n_angles, photons=1e5)
    g = s.geometry

    def ours_sirt():
        return recon.reconstruct(s.projections, g, s.volume_shape, s.voxel_size, "sirt",
                                 iterations, backend="numpy")

    def ours_fbp():
        return recon.reconstruct(s.projections, g, s.volume_shape, s.voxel_size, "fbp",
                                 backend="numpy")

    # warm-up (JIT compile from the on-disk cache, allocations)
    recon.reconstruct(s.projections[:, :1], recon.Geometry.parallel(g.angles_deg, (1, size),
                      s.voxel_size), (1, size, size), s.voxel_size, "sirt", 2, backend="numpy")
    t_ours, t_astra = [], []
    for k in range(repeats):
        t, vol_ours = timed(ours_sirt)
        t_ours.append(t)
        if k == 0:  # ASTRA's CPU SIRT takes minutes: one run over all slices
            t, vol_astra = timed(astra_slices, s, "SIRT", iterations)
            t_astra.append(t)
    rows.append({
        "task": f"SIRT {n_slices}x{size}^2, {n_angles} proj, {iterations} it",
        "ours_s": min(t_ours), "peer": "ASTRA CPU SIRT (linear)", "peer_s": min(t_astra),
        "ours_err": rel_err(vol_ours, s.phantom), "peer_err": rel_err(vol_astra, s.phantom),
        "goal": ">= 5x faster, error <=",
    })
    t_ours, t_astra = [], []
    for _ in range(repeats):
        t, vol_ours = timed(ours_fbp)
        t_ours.append(t)
        t, vol_astra = timed(astra_slices, s, "FBP", 1)
        t_astra.append(t)
    rows.append({
        "task": f"FBP {n_slices}x{size}^2, {n_angles} proj",
        "ours_s": min(t_ours), "peer": "ASTRA CPU FBP (ram-lak)", "peer_s": min(t_astra),
        "ours_err": rel_err(vol_ours, s.phantom), "peer_err": rel_err(vol_astra, s.phantom),
        "goal": "-",
    })


def bench_fdk(rows: list, size: int, n_angles: int, det: int, repeats: int) -> None:
    s = synthetic.projections("cone", seed=1, volume_shape=(size,) * 3, det_shape=(det, det),
                              n_angles=n_angles, photons=1e5)

    def ours():
        return recon.reconstruct(s.projections, s.geometry, s.volume_shape, s.voxel_size, "fdk",
                                 backend="numpy")

    ours()  # warm-up: JIT from cache
    rtk_fdk(s)  # warm-up: ITK's lazy module loading takes seconds on first use
    t_ours, t_rtk = [], []
    for _ in range(repeats):
        t, vol_ours = timed(ours)
        t_ours.append(t)
        t, vol_rtk = timed(rtk_fdk, s)
        t_rtk.append(t)
    rows.append({
        "task": f"FDK {size}^3, {n_angles} proj ({det}^2 detector)",
        "ours_s": min(t_ours), "peer": "itk-rtk FDK (CPU)", "peer_s": min(t_rtk),
        "ours_err": rel_err(vol_ours, s.phantom), "peer_err": rel_err(vol_rtk, s.phantom),
        "goal": "no slower, equal error",
    })


def bench_gpu(rows: list, size: int = 512, n_angles: int = 720, repeats: int = 3) -> None:
    """ASTRA CUDA FDK of a size^3 volume from n_angles projections, and SIRT per iteration.
    The projections are ASTRA's own forward projection of the voxelised phantom (an analytic
    ray sum of 720 x 640^2 rays would dominate the run)."""
    vs = 1.0
    so = 4.0 * size
    det = int(1.25 * size)
    geom = recon.Geometry.cone(np.linspace(0, 360, n_angles, endpoint=False), (det, det), so, so,
                               2.0)
    spheres = synthetic.scans._phantom_spheres("cone", (size,) * 3, vs, np.random.default_rng(0))
    phantom = synthetic.scans._voxelize(spheres, (size,) * 3, vs, supersample=1)
    proj = recon.forward_project(phantom, geom, vs, backend="cupy")

    def fdk():
        return recon.reconstruct(proj, geom, phantom.shape, vs, "fdk", backend="cupy")

    fdk()
    times = []
    for _ in range(repeats):
        t, vol = timed(fdk)
        times.append(t)
    rows.append({"task": f"GPU: ASTRA CUDA FDK {size}^3, {n_angles} proj", "ours_s": min(times),
                 "peer": "(ours = ASTRA CUDA via napari-corrtomo)", "peer_s": min(times),
                 "ours_err": rel_err(vol, phantom), "peer_err": rel_err(vol, phantom),
                 "goal": "-"})
    t10, _ = timed(recon.reconstruct, proj, geom, phantom.shape, vs, "sirt", 10, backend="cupy")
    t30, vol = timed(recon.reconstruct, proj, geom, phantom.shape, vs, "sirt", 30,
                     backend="cupy")
    per_it = (t30 - t10) / 20
    rows.append({"task": f"GPU: ASTRA CUDA SIRT {size}^3, per iteration", "ours_s": per_it,
                 "peer": "(ours = ASTRA CUDA via napari-corrtomo)", "peer_s": per_it,
                 "ours_err": rel_err(vol, phantom), "peer_err": rel_err(vol, phantom),
                 "goal": "-"})


def cold_start_seconds() -> float:
    """First FDK + SIRT call in a fresh interpreter with an empty numba cache (JIT compile)."""
    code = textwrap.dedent("""
        import time, numpy as np
        t = time.perf_counter()
        from napari_corrtomo.core import recon
        g = recon.Geometry.cone(np.linspace(0, 360, 8, endpoint=False), (8, 8), 50.0, 50.0, 2.0)
        p = np.zeros((8, 8, 8), np.float32)
        recon.reconstruct(p, g, (4, 4, 4), 1.0, "fdk", backend="numpy")
        recon.reconstruct(p, g, (4, 4, 4), 1.0, "sirt", 1, backend="numpy")
        gp = recon.Geometry.parallel(np.linspace(0, 180, 8, endpoint=False), (2, 8))
        recon.reconstruct(np.zeros((8, 2, 8), np.float32), gp, (2, 8, 8), 1.0, "sirt", 1,
                          backend="numpy")
        recon.reconstruct(np.zeros((8, 2, 8), np.float32), gp, (2, 8, 8), 1.0, "fbp",
                          backend="numpy")
        print(time.perf_counter() - t)
    """)
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache,
               "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


# ============================================================================ report


def table(rows: list[dict]) -> str:
    lines = ["| task | ours (s) | peer | peer (s) | speed-up | error ours | error peer | goal |",
             "|---|---:|---|---:|---:|---:|---:|---|"]
    for r in rows:
        if r.get("ours_s") is None:
            lines.append(f"| {r['task']} | - | {r['peer']} | - | - | - | - | {r['goal']} |")
            continue
        lines.append(
            f"| {r['task']} | {r['ours_s']:.2f} | {r['peer']} | {r['peer_s']:.2f} | "
            f"{r['peer_s'] / r['ours_s']:.1f}x | {r['ours_err']:.4f} | {r['peer_err']:.4f} | "
            f"{r['goal']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="do not write the docs table")
    args = parser.parse_args(argv)
    import numba

    rows: list[dict] = []
    if args.quick:
        bench_sirt_fbp(rows, 4, 64, 60, 5, 1)
        bench_fdk(rows, 32, 60, 48, 1)
    else:
        bench_sirt_fbp(rows, 64, 256, 180, args.iterations, args.repeats)
        bench_fdk(rows, 128, 180, 160, args.repeats)
    from napari_corrtomo.core.recon._astra import cuda_available

    gpu_note = "not measured (no GPU lent to this session)"
    if cuda_available() and not args.quick:
        bench_gpu(rows)
    else:
        rows.append({"task": "GPU: ASTRA CUDA FDK 512^3, 720 proj", "peer": gpu_note,
                     "goal": "-", "ours_s": None})
        rows.append({"task": "GPU: ASTRA CUDA SIRT, per iteration", "peer": gpu_note,
                     "goal": "-", "ours_s": None})
    cold = cold_start_seconds()
    text = table(rows)
    print(text)
    print(f"\nfirst call with an empty numba cache (JIT compile of all kernels): {cold:.1f} s")
    if not args.no_write and not args.quick:
        doc = ROOT / "docs" / "benchmarks" / "recon.md"
        doc.parent.mkdir(parents=True, exist_ok=True)
        doc.write_text(
            "# Reconstruction benchmarks\n\n"
            f"Machine: {MACHINE} ({platform.processor() or platform.machine()}, "
            f"{numba.get_num_threads()} numba threads). Written by `benchmarks/recon.py` "
            f"({time.strftime('%Y-%m-%d')}); best of {args.repeats} interleaved runs "
            "(ASTRA's CPU SIRT once: it takes minutes). Errors: relative RMS error against "
            "the voxelised phantom; the projections are closed-form line integrals of the "
            "analytic phantom with Poisson noise (1e5 photons), the same input for both "
            "sides.\n\n" + text + "\n\n"
            f"JIT: the first call in a fresh environment compiles the numba kernels "
            f"({cold:.1f} s with an empty cache); compiled code is cached on disk, so later "
            "sessions start in well under a second. The timings above exclude compilation "
            "(warm-up run first) and, for itk-rtk, its lazy module loading.\n\n"
            + ("" if cuda_available() else "GPU: not measured (no GPU lent to this session).\n"))
        print(f"wrote {doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
