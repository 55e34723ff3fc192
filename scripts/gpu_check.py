"""``make gpu-check``: the GPU tests on a machine with a CUDA device, or a dry run.

On a device it runs the GPU tests, then benchmarks/gpu.py, which writes the GPU vs CPU
table to docs/benchmarks/gpu.md. With ``DRY_RUN=1``, or automatically when no CUDA
device is usable, it runs nothing
and prints what it would run and what a bare Python + CuPy + numba + SciPy /
scikit-image / scikit-learn machine lacks to import the compute core (the wheels
to carry there). Exit status 0 for a dry run, pytest's status otherwise.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "src" / "napari_corrtomo" / "core"
#: What a bare GPU machine is assumed to have (import names).
BARE = {"numpy", "scipy", "skimage", "sklearn", "cupy", "cupyx", "numba"}
#: Tests with CuPy / numba CUDA / ASTRA CUDA paths compared against the CPU path.
GPU_TESTS = [
    "tests/core/test_backend.py",
    "tests/core/test_backend_cupy.py",
    "tests/core/recon/test_cuda_kernels.py",
    "tests/core/recon/test_gpu.py",
]

#: The GPU benchmark table, written where the docs link it.
BENCH = ["benchmarks/gpu.py", "--out", "docs/benchmarks/gpu.md"]


def core_imports(core: Path = CORE) -> dict[str, list[str]]:
    """Third-party top-level modules the core imports: name -> core files importing it
    (module level or inside functions; relative and standard-library imports left out)."""
    found: dict[str, list[str]] = {}
    for path in sorted(core.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top == "napari_corrtomo":
                    continue
                found.setdefault(top, []).append(str(path.relative_to(core)))
    return {k: sorted(set(v)) for k, v in sorted(found.items())}


def plan(dry: bool, reason: str) -> list[str]:
    """Lines saying what the check runs and what a bare GPU machine lacks."""
    pytest_cmd = f"{sys.executable} -m pytest -q -p no:cacheprovider " + " ".join(GPU_TESTS)
    lines = [f"gpu-check ({'dry run: ' + reason if dry else 'on a CUDA device'})",
             f"would run: {pytest_cmd}" if dry else f"running: {pytest_cmd}",
             "needs: a CUDA device, CuPy, numba with its CUDA target (numba-cuda) for "
             "tests/core/recon/test_cuda_kernels.py; ASTRA (CUDA build) only for "
             "tests/core/recon/test_gpu.py (skipped without it)",
             f"a bare machine is assumed to have: {', '.join(sorted(BARE))}",
             "wheels to carry (core imports beyond that):"]
    for name, files in core_imports().items():
        if name not in BARE:
            shown = ", ".join(files[:3]) + (" ..." if len(files) > 3 else "")
            lines.append(f"  {name:<14} imported by {shown}")
    verb = "would then run" if dry else "then"
    lines.append(f"{verb}: {sys.executable} {' '.join(BENCH)} (the GPU vs CPU table, "
                 "under 8 minutes on an H100/H200)")
    return lines


def main() -> int:
    # Imported here only so that a dry run never needs the package on sys.path first.
    sys.path.insert(0, str(ROOT / "src"))
    from napari_corrtomo.core.backend import cupy_available

    dry = os.environ.get("DRY_RUN", "") not in ("", "0")
    reason = "DRY_RUN=1" if dry else ""
    if not dry and not cupy_available():
        dry, reason = True, "no usable CUDA device here"
    print("\n".join(plan(dry, reason)))
    if dry:
        return 0
    status = subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                              *GPU_TESTS], cwd=ROOT)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    return status or subprocess.call([sys.executable, *BENCH], cwd=ROOT, env=env)


if __name__ == "__main__":
    raise SystemExit(main())
