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
    for test in ("test_backend.py", "test_backend_cupy.py", "recon/test_gpu.py"):
        assert test in text
    carried = [line.split()[0] for line in text.splitlines() if line.startswith("  ")]
    # psutil (memory budget) is imported by the core and not on a bare GPU machine;
    # numpy/scipy/cupy are there and never listed.
    assert "psutil" in carried
    assert not {"numpy", "scipy", "cupy", "skimage"} & set(carried)
    assert "running:" not in text
