"""Distance to the interface of a segmentation (proxigram, volume-fraction profile): ours
vs scikit-fmm and the nearest voxel centre, against the analytic distance.

Shapes digitised at voxel centres (the segmentation), whose exact signed distance is
known: a plane oblique to every axis, a ball and a spherical pore (radius 12 voxels of
the finest axis), at cubic and 2:1 voxels. Each method's signed distance (positive
inside) is compared with the exact one in the band |d| < 6 voxels, 4 voxels or more
from the array's border:

- ours: ``core.quantify._common.signed_distance`` (tangent planes of the segmentation
  smoothed by a one-voxel Gaussian);
- scikit-fmm ``distance`` (fast marching, second order) from the 0.5 level of the same
  smoothed segmentation, and from the binary one (``mask - 0.5``);
- nearest voxel centre of the other phase minus half a voxel (exact EDT).

Then each proxigram of an image that is exactly ``Phi(d / 1.5 voxels)``: its width
``dx`` against ``1.349 * 1.5`` voxels. Last, the time of each distance on a 256^3
porous network (leveled wave, one run each after a warm-up).

    python benchmarks/quantify_interface.py      # scikit-fmm from the bench extra

Writes its section into ``docs/benchmarks/quantify.md``.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path

import numpy as np
import skfmm
from quantify_transport import splice_section  # benchmarks/ is on the path of a script
from scipy import ndimage as ndi
from scipy import special

import napari_corrtomo.core.quantify.interface as interface
from napari_corrtomo.core.quantify import proxigram
from napari_corrtomo.core.quantify._common import edt_distance, signed_distance
from napari_corrtomo.core.synthetic import interface_distance, leveled_wave

OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks" / "quantify.md"
SECTION = "## Distance to the interface (proxigram)"
MACHINE = "2-core x86-64 VM, 24 GB, shared and noisy; CPU only"
SIGMA = 1.5  # the proxigram image's edge, voxels


def smoothed(m: np.ndarray, sp: np.ndarray) -> np.ndarray:
    return ndi.gaussian_filter(m.astype(np.float64), sp.max() / sp, mode="nearest")


METHODS = {
    "ours": lambda m, sp: signed_distance(m, tuple(sp)),
    "scikit-fmm, smoothed": lambda m, sp: skfmm.distance(smoothed(m, sp) - 0.5, dx=sp),
    "scikit-fmm, binary": lambda m, sp: skfmm.distance(m - 0.5, dx=sp),
    "nearest voxel centre": lambda m, sp: np.where(
        m, edt_distance(m, tuple(sp)) - 0.5 * sp.min(), 0.5 * sp.min()
        - edt_distance(~m, tuple(sp))),
}


def width(img: np.ndarray, m: np.ndarray, sp: np.ndarray, d: np.ndarray) -> float:
    """The proxigram's dx with the distance map ``d`` in place of ours."""
    own = interface.signed_distance
    interface.signed_distance = lambda mask, spacing: d.astype(np.float32)
    try:
        return proxigram(img, m, tuple(sp), max_distance=5 * SIGMA * sp.min()).dx
    finally:
        interface.signed_distance = own


def main() -> None:
    lines = [SECTION, "",
             f"Machine: {MACHINE} ({platform.python_version()}), scikit-fmm "
             f"{skfmm.__version__}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. "
             "Command: `python benchmarks/quantify_interface.py`.", "",
             "Signed distance error in voxels (of the finest axis), band |d| < 6 voxels, "
             "4 voxels or more from the border: mean |error| / 99th percentile; proxigram "
             f"dx error on an exact Gaussian edge (sigma {SIGMA} voxels).", "",
             "| shape | voxels | " + " | ".join(METHODS) + " |",
             "|---|---|" + "---|" * len(METHODS)]
    for sp in ((1.0, 1.0, 1.0), (2.0, 1.0, 1.0)):
        spa = np.asarray(sp)
        shape = tuple(int(round(64 / s)) for s in sp)
        for kind in ("oblique plane", "ball", "pore"):
            f = interface_distance(kind, shape, sp, radius=12.0 * min(sp))
            m = f > 0
            border = np.minimum.reduce([np.minimum(i, n - 1 - i) * s for i, n, s in zip(
                np.indices(shape), shape, sp, strict=True)])
            band = (np.abs(f) < 6 * spa.min()) & (border >= 4 * spa.max())
            img = special.ndtr(f / (SIGMA * spa.min()))
            cells = []
            for method in METHODS.values():
                d = np.asarray(method(m, spa), np.float64)
                err = np.abs(d - f)[band] / spa.min()
                dx = width(img, m, spa, d) / (1.349 * SIGMA * spa.min()) - 1
                cells.append(f"{err.mean():.3f} / {np.quantile(err, 0.99):.2f}; dx {dx:+.1%}")
            lines.append(f"| {kind} | {' x '.join(f'{s:g}' for s in sp)} | "
                         + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
    net = leveled_wave((256, 256, 256), 1.0, wavelength=40.0, solid_fraction=0.5, seed=1)
    ones = np.ones(3)
    times = []
    for name, method in METHODS.items():
        method(net[:32, :32, :32], ones)  # compile / warm up
        t0 = time.perf_counter()
        method(net, ones)
        times.append(f"{name} {time.perf_counter() - t0:.1f} s")
    lines += ["", "Time on a 256^3 porous network (one run each): " + ", ".join(times) + "."]
    print(lines[-1])
    OUT.write_text(splice_section(OUT.read_text(), "\n".join(lines) + "\n", SECTION))


if __name__ == "__main__":
    main()
