"""The FIB gap-inpainting network: features, weights, and a pure NumPy forward pass.

Problem: in a repositioned binary volume, fill plane ``j`` that lies between the
measured planes ``a < j < b``. The network sees, for every gap plane, eight
in-plane images plus constants (see :func:`gap_features`):

- the clipped 2D signed distance maps (SDF, in pixels, / ``clip``) of the measured
  planes ``a'`` < ``a`` and ``b`` < ``b'`` (the two nearest on each side);
- the SDF interpolated linearly between ``a`` and ``b`` and by the cubic through
  the four planes (shape-based interpolation);
- the relative position ``t = (j - a) / (b - a)``, the gap ``b - a`` and the
  outer spacings ``a - a'`` and ``b' - b`` (in planes, / 8).

and predicts the solid probability of every pixel of plane ``j`` with a small
fully convolutional 2D network (dilated 3x3 convolutions, receptive radius of a
few pixels), whose output is added to a learned multiple of the cubic SDF
(a residual on shape-based interpolation).

Training (``scripts/train_fib_inpainting.py``, PyTorch, CPU) uses the same
feature code; inference here is NumPy only. Weights and the training config
live in ``core/_weights/fib_inpaint_v1.npz``.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from ..backend import map_blocks, memory_budget
from ..progress import ProgressCallback, report, scaled
from ._planes import nearest_known, per_label

WEIGHTS = "fib_inpaint_v1.npz"
#: SDF clip (pixels) and the scale of plane spacings in the features
CLIP = 10.0
GAP_SCALE = 8.0
N_FEATURES = 10
#: Solid where the probability exceeds this. Chosen on validation structures
#: (``benchmarks/fib_threshold.py``) as the value that keeps the solid fraction
#: unbiased: 0.5 misses more solid than it adds (the solid is the minority phase).
THRESHOLD = 0.45
#: Working memory of one batch of gap planes. Small on purpose: larger batches are no
#: faster per plane on the CPU (memory bound), and each network layer of a batch is a
#: point where Cancel takes effect (~0.03-0.1 s per layer for a 160 x 160 plane).
MAX_BATCH_BYTES = 64e6
FEATURE_NAMES = ("sdf_a2", "sdf_a", "sdf_b", "sdf_b2", "sdf_linear", "sdf_cubic",
                 "t", "gap", "outer_a", "outer_b")


# =========================================================================== features


def plane_sdf(planes: np.ndarray, clip: float = CLIP) -> np.ndarray:
    """Clipped 2D signed distance of each binary plane, / ``clip``: > 0 in the solid.

    The zero level lies on the pixel boundaries between phases (+-0.5 px at the
    first pixel on either side). (n, y, x) bool -> (n, y, x) float32 in [-1, 1].
    """
    planes = np.asarray(planes, dtype=bool)
    out = np.empty(planes.shape, np.float32)
    for i, p in enumerate(planes):
        if p.all():
            out[i] = 1.0
            continue
        if not p.any():
            out[i] = -1.0
            continue
        inside = ndi.distance_transform_edt(p)
        outside = ndi.distance_transform_edt(~p)
        d = np.where(p, inside - 0.5, 0.5 - outside)
        out[i] = np.clip(d / clip, -1.0, 1.0)
    return out


def gap_neighbours(known_index: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(n_targets, 4) positions into ``known_index`` of planes a', a, b, b' per target.

    ``known_index`` are the sorted plane indices of measured planes; every target
    must lie strictly between the first and the last of them. Missing outer planes
    (at the ends) repeat the inner one.
    """
    n = known_index.size
    i = np.searchsorted(known_index, targets)
    if np.any(i <= 0) or np.any(i >= n):
        raise ValueError("gap planes must lie between two measured planes")
    return np.column_stack([np.maximum(i - 2, 0), i - 1, i, np.minimum(i + 1, n - 1)])


def _lagrange_weights(nodes: np.ndarray, x: float) -> np.ndarray:
    """Weights of the Lagrange polynomial through distinct ``nodes`` evaluated at ``x``."""
    w = np.ones(nodes.size)
    for i, xi in enumerate(nodes):
        for k, xk in enumerate(nodes):
            if k != i:
                w[i] *= (x - xk) / (xi - xk)
    return w


def gap_features(sdf: np.ndarray, known_index: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Network input for the gap planes ``targets``.

    Parameters
    ----------
    sdf
        (n_known, y, x) float32 from :func:`plane_sdf` of the measured planes.
    known_index
        (n_known,) sorted plane indices of the measured planes.
    targets
        (n_targets,) plane indices of gap planes.

    Returns
    -------
    (n_targets, 10, y, x) float32, channels as :data:`FEATURE_NAMES`.
    """
    known_index = np.asarray(known_index)
    targets = np.asarray(targets)
    nb = gap_neighbours(known_index, targets)
    out = np.empty((targets.size, N_FEATURES) + sdf.shape[1:], np.float32)
    for r, (j, q) in enumerate(zip(targets, nb, strict=True)):
        za2, za, zb, zb2 = known_index[q].astype(float)
        out[r, 0:4] = sdf[q]
        t = (j - za) / (zb - za)
        out[r, 4] = (1 - t) * sdf[q[1]] + t * sdf[q[2]]
        nodes, idx = np.unique(np.array([za2, za, zb, zb2]), return_index=True)
        w = _lagrange_weights(nodes, float(j))
        out[r, 5] = np.tensordot(w.astype(np.float32), sdf[q[idx]], axes=1)
        out[r, 6] = t
        out[r, 7] = (zb - za) / GAP_SCALE
        out[r, 8] = (za - za2) / GAP_SCALE
        out[r, 9] = (zb2 - zb) / GAP_SCALE
    return out


# =========================================================================== network


@functools.cache
def load_model(name: str = WEIGHTS) -> dict[str, Any]:
    """The shipped network: ``layers`` [(weight (O, C, k, k), bias (O,), dilation, relu)],
    ``skip`` (w, b) on the cubic-SDF channel, and ``config`` (training record)."""
    ref = resources.files("napari_corrtomo.core") / "_weights" / name
    try:
        with resources.as_file(ref) as path, np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except FileNotFoundError as exc:
        raise ValueError(
            f"the inpainting weights {name} are missing from the installation; reinstall "
            "napari-corrtomo or run scripts/train_fib_inpainting.py"
        ) from exc
    return model_from_arrays(data)


def model_from_arrays(data: dict[str, np.ndarray]) -> dict[str, Any]:
    """Build the model dict from the arrays of a weights file."""
    config = json.loads(str(data["config"]))
    layers = []
    for i, (dil, relu) in enumerate(zip(config["dilations"], config["relu"], strict=True)):
        layers.append((data[f"w{i}"].astype(np.float32), data[f"b{i}"].astype(np.float32),
                       int(dil), bool(relu)))
    return {"layers": layers, "skip": data["skip"].astype(np.float32), "config": config}


def receptive_radius(model: dict[str, Any]) -> int:
    """Pixels of context the network reads on each side of an output pixel."""
    return int(sum(d * (w.shape[-1] // 2) for w, _b, d, _r in model["layers"]))


def conv2d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, dilation: int = 1) -> np.ndarray:
    """Same-size 2D cross-correlation with reflect padding (PyTorch's ``Conv2d`` with
    ``padding_mode="reflect"``), channels first: (C, B, y, x) -> (O, B, y, x)."""
    c, b, h, w = x.shape
    o, c2, k, _ = weight.shape
    if c2 != c:
        raise ValueError(f"conv2d: weight expects {c2} channels, input has {c}")
    if k == 1:
        out = weight.reshape(o, c) @ x.reshape(c, -1)
        return (out + bias[:, None]).reshape(o, b, h, w)
    p = dilation * (k // 2)
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), mode="reflect")
    cols = np.empty((k * k, c, b, h, w), np.float32)
    for ky in range(k):
        for kx in range(k):
            cols[ky * k + kx] = xp[:, :, ky * dilation:ky * dilation + h,
                                   kx * dilation:kx * dilation + w]
    # weight (O, C, ky, kx) -> (O, ky, kx, C) to match cols' (tap, C) order
    wm = weight.transpose(0, 2, 3, 1).reshape(o, k * k * c)
    out = wm @ cols.reshape(k * k * c, -1)
    return (out + bias[:, None]).reshape(o, b, h, w)


def forward(model: dict[str, Any], features: np.ndarray,
            progress: ProgressCallback | None = None) -> np.ndarray:
    """Logits (B, y, x) for features (B, 10, y, x); ``progress(layer, n_layers)`` after
    each layer (a layer of a few planes takes well under a second: cancel points)."""
    x = np.ascontiguousarray(features.transpose(1, 0, 2, 3), dtype=np.float32)
    skip_in = x[5]
    n_layers = len(model["layers"])
    for i, (weight, bias, dil, relu) in enumerate(model["layers"]):
        x = conv2d(x, weight, bias, dil)
        if relu:
            np.maximum(x, 0, out=x)
        report(progress, i + 1, n_layers)
    w, b = model["skip"]
    return x[0] + w * skip_in + b


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _gap_probabilities(model: dict[str, Any], mask: np.ndarray, planes: np.ndarray,
                       n_planes: int, near: np.ndarray, max_batch_bytes: float,
                       progress: ProgressCallback | None = None) -> np.ndarray:
    """(n_planes, y, x) float32 solid probability from measured binary planes (y, x block);
    ``progress(done, total)`` after every network layer of every batch of gap planes."""
    z = np.arange(n_planes)
    known = np.zeros(n_planes, bool)
    known[planes] = True
    gaps = z[(~known) & (z > planes[0]) & (z < planes[-1])]
    n_channels = max(w.shape[0] for w, *_ in model["layers"])
    sdf = plane_sdf(mask)
    out = np.empty((n_planes,) + mask.shape[1:], np.float32)
    out[planes] = mask
    per_plane = 4.0 * mask.shape[1] * mask.shape[2] * (11 * n_channels + 2 * N_FEATURES)
    batch = max(1, int(max_batch_bytes // per_plane))
    # in steps of (plane, network layer): every layer of a batch moves the bar, also for
    # batches of one or two planes (whole integer steps)
    n_layers = len(model["layers"])
    total = max(gaps.size, 1) * n_layers
    for start in range(0, gaps.size, batch):
        tg = gaps[start:start + batch]
        out[tg] = _sigmoid(forward(model, gap_features(sdf, planes, tg),
                                   scaled(progress, start * n_layers,
                                          (start + tg.size) * n_layers, total)))
    report(progress, total, total)
    outside = (z < planes[0]) | (z > planes[-1])
    out[outside] = mask[near[outside]]
    return out


def ml_block(planes, n_planes: int, near, kind: str, labels=None,
             model: dict[str, Any] | None = None, max_batch_bytes: float = MAX_BATCH_BYTES):
    """Block function, halo (pixels) and bytes per output voxel for
    :func:`~.interpolate.fill_planes` with ``method="ml"``."""
    model = load_model() if model is None else model
    halo = receptive_radius(model) + int(np.ceil(CLIP)) + 2

    def func(block: np.ndarray, progress: ProgressCallback | None = None) -> np.ndarray:
        if kind == "binary":
            return _gap_probabilities(model, block.astype(bool), planes, n_planes, near,
                                      max_batch_bytes, progress) > THRESHOLD
        done = iter(range(len(labels)))
        unit = 1000  # progress steps per label: its batches' steps stay distinct

        def prob(mask: np.ndarray) -> np.ndarray:  # one label after the other on the bar
            i = next(done)
            return _gap_probabilities(model, mask, planes, n_planes, near, max_batch_bytes,
                                      scaled(progress, i * unit, (i + 1) * unit,
                                             len(labels) * unit))

        return per_label(prob, block, labels)

    # per output voxel: the probabilities (and label scores); the network's working set
    # is bounded by max_batch_bytes
    return func, halo, 4.0 + (5.0 if kind == "labels" else 1.0)


def inpaint(
    volume: np.ndarray,
    known: np.ndarray,
    progress: ProgressCallback | None = None,
    model: dict[str, Any] | None = None,
    max_batch_bytes: float = MAX_BATCH_BYTES,
) -> np.ndarray:
    """Solid probability (z, y, x) float32 of a repositioned binary volume.

    Measured planes keep their values (0 or 1); gap planes between measured planes
    get the network's probability; planes outside the measured range copy the
    nearest measured plane. Works blockwise in (y, x) with a halo covering the
    network's reach and the SDF clip, so the result does not depend on blocking.
    """
    model = load_model() if model is None else model
    volume = np.asarray(volume, dtype=bool)
    known = np.asarray(known, dtype=bool)
    planes = np.flatnonzero(known)
    near = np.searchsorted(planes, nearest_known(known))
    halo = receptive_radius(model) + int(np.ceil(CLIP)) + 2

    def block(stack: np.ndarray, progress: ProgressCallback | None = None) -> np.ndarray:
        return _gap_probabilities(model, stack, planes, volume.shape[0], near, max_batch_bytes,
                                  progress)

    per_voxel = (4.0 * volume.shape[0] + 8.0 * planes.size) / planes.size
    return map_blocks(block, volume[planes], halo, spatial_ndim=2, bytes_per_voxel=per_voxel,
                      budget=_budget_minus(max_batch_bytes), progress=progress,
                      inner_progress=True)


def _budget_minus(reserved: float) -> int:
    budget = memory_budget("numpy")
    return int(max(budget - reserved, budget // 4))
