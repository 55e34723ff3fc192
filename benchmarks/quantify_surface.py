"""Surface area of digitised spheres and cubes: ours vs the analytic area, scikit-image, TauFactor.

Each shape is digitised (voxel centres inside) at 3 random placements (sub-voxel
centre offsets; cubes also at 3 random rotations besides the axis-aligned one) and
measured by

- ours: ``surface_area`` with its default (Gaussian sigma 1 voxel, curvature-corrected
  marching cubes) and ``smooth=0`` (binary marching cubes);
- scikit-image: ``marching_cubes(mask, 0.5)`` + ``mesh_surface_area`` on the binary
  mask (zero-padded);
- TauFactor ``metrics.specific_surface_area`` (times the array volume), its three
  methods: ``gradient`` (default), ``marching_cubes`` (3^3 Gaussian, sigma 1), and
  ``face_counting``. TauFactor needs PyTorch; it runs in a separate interpreter
  (``--taufactor-python``, a virtual environment with ``taufactor`` and ``torch``), or
  its columns are left out.

Errors are relative to the analytic area of the continuous shape (``4 pi r^2``,
``6 L^2``), in %: mean over the placements and the largest absolute one.

    flock /tmp/corrtomo-bench.lock env PYTHONPATH=src python benchmarks/quantify_surface.py \
        --taufactor-python /path/to/venv/bin/python

Writes its section into ``docs/benchmarks/quantify.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from quantify_transport import splice_section  # benchmarks/ is on the path of a script
from scipy.spatial.transform import Rotation
from skimage.measure import marching_cubes, mesh_surface_area

from napari_corrtomo.core.quantify.surface import DEFAULT_SMOOTH, surface_area

OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks" / "quantify.md"
SECTION = "## Surface area of digitised spheres and cubes"
MACHINE = "2-core x86-64 VM, 24 GB, shared and noisy; CPU only"
PLACEMENTS = 3

TAUFACTOR_CHILD = """
import json, sys, numpy as np
from taufactor.metrics import specific_surface_area
out = {}
for path in sys.argv[1:]:
    m = np.load(path).astype(np.uint8)
    out[path] = {meth: specific_surface_area(m, phases={"p": 1}, method=meth,
                                             device="cpu")["p"] * m.size
                 for meth in ("gradient", "marching_cubes", "face_counting")}
print(json.dumps(out))
"""


def sphere(r: float, rng: np.random.Generator) -> np.ndarray:
    n = int(2 * r) + 10
    c = n / 2 + rng.uniform(-0.5, 0.5, 3)
    z, y, x = np.ogrid[:n, :n, :n]
    return (z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2 <= r * r


def cube(side: float, rng: np.random.Generator, rotate: bool) -> np.ndarray:
    n = int(side * (1.8 if rotate else 1.0)) + 10
    c = n / 2 + rng.uniform(-0.5, 0.5, 3)
    rot = Rotation.random(random_state=rng).as_matrix() if rotate else np.eye(3)
    g = np.stack(np.meshgrid(*[np.arange(n)] * 3, indexing="ij"), -1).reshape(-1, 3) - c
    return (np.abs(g @ rot) <= side / 2).all(axis=1).reshape(n, n, n)


def skimage_binary(m: np.ndarray) -> float:
    verts, faces, _, _ = marching_cubes(np.pad(m, 1).astype(np.float32), 0.5)
    return float(mesh_surface_area(verts, faces))


def cases() -> list[tuple[str, float, list[np.ndarray]]]:
    rng = np.random.default_rng(0)
    out = []
    for r in (4, 6, 8, 12, 20, 30):
        out.append((f"sphere r = {r}", 4 * math.pi * r * r,
                    [sphere(r, rng) for _ in range(PLACEMENTS)]))
    for side in (12, 20, 32, 48):
        out.append((f"cube L = {side}, axis-aligned", 6.0 * side * side,
                    [cube(side, rng, False) for _ in range(PLACEMENTS)]))
        out.append((f"cube L = {side}, rotated", 6.0 * side * side,
                    [cube(side, rng, True) for _ in range(PLACEMENTS)]))
    return out


def taufactor_areas(python: str | None, masks: list[np.ndarray]) -> list[dict] | None:
    if not python:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, m in enumerate(masks):
            paths.append(str(Path(tmp) / f"m{i}.npy"))
            np.save(paths[-1], m)
        proc = subprocess.run([python, "-c", TAUFACTOR_CHILD, *paths], capture_output=True,
                              text=True, check=True)
        got = json.loads(proc.stdout.strip().splitlines()[-1])
        return [got[p] for p in paths]


def run(tau_python: str | None) -> tuple[list[str], dict]:
    rows = []
    tools = {f"ours (smooth={DEFAULT_SMOOTH:g}, curvature-corrected)": lambda m: surface_area(m, 1.0),
             "ours (smooth=0, binary marching cubes)": lambda m: surface_area(m, 1.0, smooth=0),
             "scikit-image marching cubes (binary)": skimage_binary}
    all_cases = cases()
    flat = [m for _, _, ms in all_cases for m in ms]
    tau = taufactor_areas(tau_python, flat)
    names = list(tools) + ([f"TauFactor {k}" for k in ("gradient", "marching_cubes",
                                                        "face_counting")] if tau else [])
    worst = dict.fromkeys(names, 0.0)
    small: dict[str, float] = {}
    k = 0
    for label, exact, masks in all_cases:
        errs = {n: [] for n in names}
        for m in masks:
            for name, fn in tools.items():
                errs[name].append(100 * (fn(m) / exact - 1))
            if tau:
                for meth in ("gradient", "marching_cubes", "face_counting"):
                    errs[f"TauFactor {meth}"].append(100 * (tau[k][meth] / exact - 1))
            k += 1
        cells = []
        for n in names:
            e = np.asarray(errs[n])
            if label == "sphere r = 4":
                small.setdefault(n, float(np.abs(e).max()))
            elif "sphere" in label:
                worst[n] = max(worst[n], float(np.abs(e).max()))
            cells.append(f"{e.mean():+.2f} ({np.abs(e).max():.2f})")
        rows.append(f"| {label} | {exact:.0f} | " + " | ".join(cells) + " |")
    header = ["| shape (voxels) | analytic area | " + " | ".join(names) + " |",
              "|---|---:|" + "---:|" * len(names)]
    return header + rows, {"worst_sphere": worst, "small_sphere": small[names[0]],
                           "tau": bool(tau)}


def section(lines: list[str], info: dict, tau_version: str | None) -> str:
    ours = next(iter(info["worst_sphere"]))
    text = [SECTION, "",
            "Command: `flock /tmp/corrtomo-bench.lock env PYTHONPATH=src python "
            "benchmarks/quantify_surface.py --taufactor-python <venv with taufactor>/bin/python`"
            " (writes this section only).", "",
            f"Machine: {MACHINE} (Python {platform.python_version()}"
            + (f", taufactor {tau_version}" if tau_version else "") + ").", "",
            f"Each shape at {PLACEMENTS} random sub-voxel placements (rotated cubes: 3 random "
            "rotations); voxel centres inside the shape are set. Cell: mean error vs the "
            "analytic area of the continuous shape in %, and in brackets the largest absolute "
            "error. TauFactor's `specific_surface_area` is multiplied by the array volume.", "",
            *lines, "",
            f"Largest sphere error, ours: r = 4 voxels {info['small_sphere']:.2f} %, r = 6-30 "
            f"voxels {info['worst_sphere'][ours]:.2f} % (goal: within 1 %: "
            f"{'met' if info['worst_sphere'][ours] <= 1 else 'missed'} for r >= 6). The "
            "residual +0.6 % at large radii is the staircase of near-axis facets, whose "
            "period is too long for a 1-voxel Gaussian to remove (TauFactor's gradient "
            "method shows the same). "
            "Cubes: the goal is missed. Any smoothing that removes the staircase of a "
            "curved surface also rounds a sharp edge; ours loses about 0.5 voxel of area "
            "per unit edge length (-2 % at L = 48), binary marching cubes chamfers it "
            "(-0.29 per unit length axis-aligned, but +9 % on rotated faces). The curvature "
            "correction is exact to first order for smooth surfaces only. Border "
            "convention: the array border is not a surface (the mask continues by edge "
            "replication; a phase crossing the array has no area on the border).", ""]
    return "\n".join(text)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--taufactor-python", default=None,
                        help="interpreter of a virtual environment with taufactor and torch")
    args = parser.parse_args()
    lines, info = run(args.taufactor_python)
    tau_version = None
    if info["tau"]:
        tau_version = subprocess.run(
            [args.taufactor_python, "-c",
             "from importlib.metadata import version; print(version('taufactor'))"],
            capture_output=True, text=True, check=True).stdout.strip()
    text = section(lines, info, tau_version)
    print(text)
    OUT.write_text(splice_section(OUT.read_text() if OUT.exists() else "", text, SECTION))
    return 0


if __name__ == "__main__":
    sys.exit(main())
