import importlib.util
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_dry_run_says_what_it_would_run_and_which_wheels_to_carry():
    env = dict(os.environ, DRY_RUN="1")
    out = subprocess.run([sys.executable, "scripts/gpu_check.py"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "dry run: DRY_RUN=1" in text and "would run:" in text
    for test in ("test_backend.py", "test_backend_cupy.py", "recon/test_cuda_kernels.py",
                 "recon/test_gpu.py"):
        assert test in text
    carried = [line.split()[0] for line in text.splitlines() if line.startswith("  ")]
    # psutil (memory budget) is imported by the core and not on a bare GPU machine;
    # numpy/scipy/cupy are there and never listed.
    assert "psutil" in carried
    assert not {"numpy", "scipy", "cupy", "skimage"} & set(carried)
    assert "running:" not in text and "benchmarks/gpu.py" in text


def test_gpu_benchmark_runs_its_cases_on_the_stand_in(strict_cupy, monkeypatch):
    """The device run must not fail on arrival: every non-reconstruction row of
    benchmarks/gpu.py runs at a tiny size on the strict CuPy stand-in and agrees with
    the CPU (reconstruction's GPU engines are tested in tests/core/recon)."""
    spec = importlib.util.spec_from_file_location("gpu_bench", ROOT / "benchmarks" / "gpu.py")
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "gpu_bench", bench)  # dataclasses look their module up
    spec.loader.exec_module(bench)
    checked = 0
    for case in bench.cases(0.06):
        if case.name.startswith(("FDK", "SIRT")):
            continue
        _t, cpu = bench.timed(lambda c=case: c.run("numpy"), 1)
        _t, gpu = bench.timed(lambda c=case: c.run("cupy"), 1)
        text = case.compare(cpu, gpu)
        assert text in ("labels equal 100.0000%", "rel. L2 0.0e+00") or (
            text == f"tau {cpu.tau:.4f} vs {cpu.tau:.4f}"), (case.name, text)
        checked += 1
    assert checked == 3
