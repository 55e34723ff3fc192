"""Draw docs/images/recon_geometry.png from the Geometry code (so the figure cannot drift).

    python scripts/recon_geometry_figure.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Arc, Circle, FancyArrowPatch

from napari_corrtomo.core.recon import Geometry

OUT = Path(__file__).resolve().parents[1] / "docs" / "images" / "recon_geometry.png"


def arrow(ax, start, vec, color, label=None, scale=1.0, offset=(0.05, 0.05)):
    start = np.asarray(start, float)
    end = start + scale * np.asarray(vec, float)
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=14, color=color,
                                 lw=1.8))
    if label:
        ax.text(end[0] + offset[0], end[1] + offset[1], label, color=color, fontsize=9)


def _rotate(axis, angle, p):
    """Right-hand rotation of point ``p`` (x, y, z) about unit ``axis`` by ``angle`` (rad)."""
    axis = np.asarray(axis, float)
    p = np.asarray(p, float)
    return (p * np.cos(angle) + np.cross(axis, p) * np.sin(angle)
            + axis * np.dot(axis, p) * (1 - np.cos(angle)))


def rotation_hint(ax, geometry, plane, radius, y_down):
    """Trace a sample point turned by +theta (right-hand rule about the geometry's axis) in the
    plane of the panel and say which way that looks on screen."""
    axis = geometry.rotation_axis
    start = np.zeros(3)
    start[plane[0]] = radius
    pts = np.array([_rotate(axis, a, start) for a in np.deg2rad(np.linspace(0, 110, 40))])
    xy = pts[:, plane]
    ax.plot(xy[:-3, 0], xy[:-3, 1], color="C3", lw=1.5)
    ax.add_patch(FancyArrowPatch(xy[-4], xy[-1], arrowstyle="-|>", mutation_scale=12,
                                 color="C3"))
    ax.plot(*xy[0], "o", color="k")
    screen = xy * np.array([1.0, -1.0 if y_down else 1.0])
    step = screen[5] - screen[0]
    turn = screen[0, 0] * step[1] - screen[0, 1] * step[0]
    sense = "counter-clockwise" if turn > 0 else "clockwise"
    ax.text(-1.3, 1.15 if y_down else -1.25, f"+θ turns the sample {sense}", color="C3",
            fontsize=9)


def panel_ct(ax):
    """z-slice as napari shows it: x to the right, y down."""
    f = Geometry.parallel([0.0], (1, 2)).frame_vectors()
    d, u = f["d"][0], f["u"][0]
    ax.set_title("parallel / cone CT: a z-slice in napari\n"
                 "(x right, y down; axis +z into the page)", fontsize=9)
    ax.add_patch(Circle((0, 0), 1.0, fill=False, color="0.4"))
    arrow(ax, (0, -1.9), (d[0], d[1]), "C0", "beam (+y) at 0°", scale=0.7, offset=(0.08, -0.1))
    ax.plot([-1.3, 1.3], [1.6, 1.6], color="C2", lw=4)
    arrow(ax, (-1.2, 1.75), (u[0], u[1]), "C2", "detector columns u = +x", scale=0.8,
          offset=(0.05, 0.2))
    rotation_hint(ax, Geometry.parallel([0.0], (1, 2)), (0, 1), 0.6, y_down=True)
    ax.set_xlim(-2, 2)
    ax.set_ylim(2.3, -2.3)  # y down, as in napari
    ax.set_xlabel("x")
    ax.set_ylabel("y")


def panel_et(ax):
    """x-z plane (x right, z down): tilt axis +y out of the page."""
    f = Geometry.tilt_series([0.0], (2, 2)).frame_vectors()
    d, u = f["d"][0], f["u"][0]
    ax.set_title("tilt series: an x-z plane\n(x right, z down; tilt axis +y out of the page)",
                 fontsize=9)
    ax.add_patch(Circle((0, 0), 0.8, fill=False, color="0.4"))
    arrow(ax, (0, -1.9), (d[0], d[2]), "C0", "beam (+z) at 0°", scale=0.7, offset=(0.08, -0.1))
    ax.plot([-1.3, 1.3], [1.6, 1.6], color="C2", lw=4)
    arrow(ax, (-1.2, 1.75), (u[0], u[2]), "C2", "columns u = +x, rows v = +y", scale=0.8,
          offset=(0.05, 0.2))
    rotation_hint(ax, Geometry.tilt_series([0.0], (2, 2)), (0, 2), 0.5, y_down=True)
    ax.set_xlim(-2, 2)
    ax.set_ylim(2.3, -2.3)
    ax.set_xlabel("x")
    ax.set_ylabel("z")


def panel_lamino(ax, tilt=30.0):
    """y-z plane of the sample (y right, z up), theta = 0."""
    f = Geometry.laminography([0.0], (2, 2), tilt).frame_vectors()
    d, v = f["d"][0], f["v"][0]
    ax.set_title(f"laminography (tilt {tilt:g}°): side view of the plate\n(y right, z up = plate "
                 "normal = rotation axis)", fontsize=9)
    ax.fill_between([-1.6, 1.6], -0.12, 0.12, color="0.85")
    ax.text(1.0, -0.35, "flat sample", fontsize=8, color="0.4")
    arrow(ax, (0, 0), (0, 1), "C3", "rotation axis +z", scale=1.2, offset=(0.05, 0.0))
    start = -1.7 * np.array([d[1], d[2]])
    arrow(ax, start, (d[1], d[2]), "C0", "beam", scale=1.4, offset=(-0.45, -0.3))
    ax.add_patch(Arc((0, 0), 1.6, 1.6, theta1=180, theta2=180 + tilt, color="C0"))
    ax.text(-1.05, -0.42, "tilt", color="C0", fontsize=9)
    det_c = 1.6 * np.array([d[1], d[2]])
    ax.plot([det_c[0] - v[1], det_c[0] + v[1]], [det_c[1] - v[2], det_c[1] + v[2]], color="C2",
            lw=4)
    arrow(ax, det_c + 0.1 * np.array([d[1], d[2]]), (v[1], v[2]), "C2", "rows v", scale=0.6)
    ax.set_xlim(-2.2, 2.2)
    ax.set_ylim(-1.6, 1.8)
    ax.set_xlabel("y")
    ax.set_ylabel("z")


def panel_cone(ax):
    g = Geometry.cone([0.0], (2, 2), 2.0, 1.5)
    vec = g.vectors()[0]
    src, det = vec[0:3], vec[3:6]
    ax.set_title("cone beam at 0°: side view\n(y right, z up; source at −SO·d, detector at +OD·d)",
                 fontsize=9)
    ax.plot([src[1]], [src[2]], "*", color="C1", ms=14)
    ax.text(src[1] - 0.2, src[2] + 0.25, "source", color="C1", fontsize=9)
    ax.plot([det[1], det[1]], [-1.3, 1.3], color="C2", lw=4)
    for z in (-1.2, -0.4, 0.4, 1.2):
        ax.plot([src[1], det[1]], [src[2], z], color="C0", lw=0.8)
    ax.add_patch(Circle((0, 0), 0.45, fill=False, color="0.4"))
    ax.text(-0.35, -0.75, "rotation axis", fontsize=8, color="0.4")
    ax.text(-1.8, -1.55, "magnification (SO + OD) / SO;\nvoxel = pixel / magnification",
            fontsize=8)
    ax.set_xlim(-2.3, 1.9)
    ax.set_ylim(-1.8, 1.6)
    ax.set_xlabel("y")
    ax.set_ylabel("z")


def main() -> Path:
    fig = Figure(figsize=(10, 9), layout="constrained")
    axes = fig.subplots(2, 2)
    panel_ct(axes[0, 0])
    panel_et(axes[0, 1])
    panel_lamino(axes[1, 0])
    panel_cone(axes[1, 1])
    for ax in axes.ravel():
        ax.set_aspect("equal")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, dpi=110)
    return OUT


if __name__ == "__main__":
    print(main())
