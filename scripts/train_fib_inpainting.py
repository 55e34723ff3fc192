"""Train the FIB gap-inpainting network shipped as ``core/_weights/fib_inpaint_v1.npz``.

Reproducible (fixed seeds, CPU, deterministic algorithms):

    PYTHONPATH=src python scripts/train_fib_inpainting.py            # full run
    PYTHONPATH=src python scripts/train_fib_inpainting.py --quick    # smoke test

Training data are generated here, never downloaded: leveled-wave structures from
:mod:`napari_corrtomo.core.synthetic` (70 % hierarchical, HNPG-like; 30 % single
level) with randomised wavelengths and solid fractions, cut into FIB stacks with
gamma-distributed slice thicknesses (random mean 7.5-12.5 nm, shape 2-10) by
:func:`~napari_corrtomo.core.synthetic.fib_mimic`, repositioned on the 2.5 nm grid.
Training seeds start at ``--seed-base`` (default 100000); the benchmark and the
tests use seeds below 1000, so evaluation structures are never seen in training.

The network, its features and the NumPy forward pass are defined in
:mod:`napari_corrtomo.core.fib._inpaint`; this script only needs PyTorch to fit
the weights (PyTorch is not needed at run time). The weights file records the
full training configuration and the validation scores under ``config``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from napari_corrtomo.core import synthetic as syn
from napari_corrtomo.core.fib import _inpaint as inp

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "src" / "napari_corrtomo" / "core" / "_weights" / inp.WEIGHTS


# ----------------------------------------------------------------------------- data


def random_structure(rng: np.random.Generator,
                     shape: tuple[int, int, int]) -> tuple[np.ndarray, dict]:
    seed = int(rng.integers(2**31))
    if rng.uniform() < 0.7:
        params = dict(upper_wavelength=float(rng.uniform(120, 260)),
                      upper_solid_fraction=float(rng.uniform(0.28, 0.5)),
                      lower_wavelength=float(rng.uniform(19, 36)),
                      lower_solid_fraction=float(rng.uniform(0.28, 0.45)), seed=seed)
        vol = syn.hierarchical_leveled_wave(shape, 2.5, **params)
        return vol, {"kind": "hierarchical", **params}
    params = dict(wavelength=float(rng.uniform(19, 45)),
                  solid_fraction=float(rng.uniform(0.2, 0.5)), seed=seed)
    return syn.leveled_wave(shape, 2.5, **params), {"kind": "single", **params}


def make_sample(rng: np.random.Generator, shape: tuple[int, int, int]) -> dict:
    """One repositioned training volume: SDF of measured planes, their indices, truth."""
    vol, params = random_structure(rng, shape)
    if rng.uniform() < 0.5:
        vol = vol[::-1]
    mean = float(rng.uniform(7.5, 12.5))
    gshape = float(rng.uniform(2.0, 10.0))
    m = syn.fib_mimic(vol, 2.5, mean, gshape, seed=int(rng.integers(2**31)))
    return {
        "sdf": inp.plane_sdf(m.stack).astype(np.float16),
        "known": m.planes,
        "truth": m.truth,
        "params": {**params, "mean_thickness_nm": mean, "gamma_shape": gshape},
    }


def gaps_of(sample: dict) -> np.ndarray:
    known = sample["known"]
    z = np.arange(known[0] + 1, known[-1])
    return z[~np.isin(z, known)]


def batch(samples: list[dict], rng: np.random.Generator, size: int, crop: int, margin: int = 0):
    """Features of ``crop + 2 * margin`` pixels and labels; the loss uses the central
    ``crop`` (``margin`` >= the receptive radius: every scored pixel sees real context,
    as in blockwise inference)."""
    full = crop + 2 * margin
    feats = np.empty((size, inp.N_FEATURES, full, full), np.float32)
    labels = np.empty((size, full, full), np.float32)
    for i in range(size):
        s = samples[int(rng.integers(len(samples)))]
        gaps = gaps_of(s)
        j = int(gaps[rng.integers(gaps.size)])
        h, w = s["sdf"].shape[1:]
        y0, x0 = int(rng.integers(h - full + 1)), int(rng.integers(w - full + 1))
        sdf = s["sdf"][:, y0:y0 + full, x0:x0 + full].astype(np.float32)
        f = inp.gap_features(sdf, s["known"], np.array([j]))[0]
        lab = s["truth"][j, y0:y0 + full, x0:x0 + full].astype(np.float32)
        k = int(rng.integers(4))
        f, lab = np.rot90(f, k, axes=(1, 2)), np.rot90(lab, k)
        if rng.uniform() < 0.5:
            f, lab = f[:, :, ::-1], lab[:, ::-1]
        feats[i], labels[i] = f, lab
    return torch.from_numpy(feats), torch.from_numpy(labels)


# ----------------------------------------------------------------------------- model


class Net(nn.Module):
    def __init__(self, channels: list[int], kernels: list[int], dilations: list[int]):
        super().__init__()
        layers = []
        c_in = inp.N_FEATURES
        for c, k, d in zip(channels, kernels, dilations, strict=True):
            layers.append(nn.Conv2d(c_in, c, k, padding=d * (k // 2), dilation=d,
                                    padding_mode="reflect"))
            c_in = c
        self.convs = nn.ModuleList(layers)
        self.skip = nn.Parameter(torch.tensor([4.0, 0.0]))

    def forward(self, x):
        cubic = x[:, 5]
        h = x
        for i, conv in enumerate(self.convs):
            h = conv(h)
            if i < len(self.convs) - 1:
                h = torch.relu(h)
        return h[:, 0] + self.skip[0] * cubic + self.skip[1]


def to_arrays(net: Net, config: dict) -> dict[str, np.ndarray]:
    out = {}
    for i, conv in enumerate(net.convs):
        out[f"w{i}"] = conv.weight.detach().numpy().astype(np.float32)
        out[f"b{i}"] = conv.bias.detach().numpy().astype(np.float32)
    out["skip"] = net.skip.detach().numpy().astype(np.float32)
    out["config"] = np.array(json.dumps(config))
    return out


# ----------------------------------------------------------------------------- evaluation


def evaluate(model: dict, samples: list[dict]) -> dict[str, float]:
    """MP (%) over whole volumes: ML vs cubic SDF (shape-based) vs nearest."""
    from napari_corrtomo.core.fib.interpolate import interpolate
    from napari_corrtomo.core.fib.metrics import metrics

    res: dict[str, list[float]] = {"ml": [], "cubic_sdf": [], "nearest": []}
    for s in samples:
        truth = s["truth"]
        known = np.zeros(truth.shape[0], bool)
        known[s["known"]] = True
        vol = np.where(known[:, None, None], truth, False)
        prob = inp.inpaint(vol, known, model=model)
        res["ml"].append(metrics(prob > inp.THRESHOLD, truth)["mp_percent"])
        res["cubic_sdf"].append(metrics(interpolate(vol, known, "shape"), truth)["mp_percent"])
        res["nearest"].append(metrics(interpolate(vol, known, "nearest"), truth)["mp_percent"])
    return {k: float(np.mean(v)) for k, v in res.items()}


def structure_seeds(seed_base: int, n: int) -> list[int]:
    """Replay the data stream of ``main`` (same RNG calls, tiny stand-in volumes) and
    return the structure seeds it uses: they must not overlap the evaluation seeds."""
    from unittest import mock

    seeds: list[int] = []

    def stub(shape, spacing, *args, seed=0, **kw):
        seeds.append(int(seed))
        return np.zeros((shape[0], 2, 2), bool)

    rng = np.random.default_rng(seed_base)
    with mock.patch.object(syn, "hierarchical_leveled_wave", stub), \
            mock.patch.object(syn, "leveled_wave", stub):
        for _ in range(n):
            make_sample(rng, (192, 2, 2))
    return seeds


# ----------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--seed-base", type=int, default=100000)
    ap.add_argument("--n-train", type=int, default=48, help="training volumes")
    ap.add_argument("--n-val", type=int, default=4, help="validation volumes")
    ap.add_argument("--shape", type=int, nargs=3, default=(160, 128, 128))
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--batch", type=int, default=24)
    ap.add_argument("--crop", type=int, default=64)
    ap.add_argument("--margin", type=int, default=0,
                    help="context pixels around each crop that are seen but not scored")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--channels", type=int, nargs="+", default=[32, 32, 32, 32, 16, 1])
    ap.add_argument("--kernels", type=int, nargs="+", default=[3, 3, 3, 3, 1, 1])
    ap.add_argument("--dilations", type=int, nargs="+", default=[1, 2, 4, 1, 1, 1])
    ap.add_argument("--threads", type=int, default=1,
                    help="PyTorch threads (1: robust on a shared machine; more threads spin)")
    ap.add_argument("--quick", action="store_true", help="tiny run to check the pipeline")
    ap.add_argument("--list-seeds", action="store_true",
                    help="only print the structure seeds the data stream would use")
    args = ap.parse_args()
    if args.list_seeds:
        seeds = structure_seeds(args.seed_base, args.n_train + args.n_val)
        print(f"{len(seeds)} structure seeds, min {min(seeds)}, max {max(seeds)}, "
              f"below 1000 (evaluation range): {sum(s < 1000 for s in seeds)}")
        return
    if args.quick:
        args.n_train, args.n_val, args.steps, args.shape = 3, 1, 20, (64, 64, 64)
    torch.manual_seed(args.seed_base)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    t0 = time.time()
    rng = np.random.default_rng(args.seed_base)
    train = [make_sample(rng, tuple(args.shape)) for _ in range(args.n_train)]
    val = [make_sample(rng, tuple(args.shape)) for _ in range(args.n_val)]
    print(f"data: {len(train)} + {len(val)} volumes in {time.time() - t0:.0f} s", flush=True)

    net = Net(args.channels, args.kernels, args.dilations)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps,
                                                pct_start=0.1)
    loss_fn = nn.BCEWithLogitsLoss()
    brng = np.random.default_rng(args.seed_base + 1)
    running = None
    history = []
    m = args.margin
    inner = (slice(None), slice(m, m + args.crop), slice(m, m + args.crop))
    for step in range(1, args.steps + 1):
        x, y = batch(train, brng, args.batch, args.crop, m)
        opt.zero_grad()
        loss = loss_fn(net(x)[inner], y[inner])
        loss.backward()
        opt.step()
        sched.step()
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if step % 200 == 0 or step == args.steps:
            history.append((step, round(running, 5)))
            print(f"step {step:6d}  loss {running:.4f}  {time.time() - t0:.0f} s", flush=True)

    config = {
        "version": 1,
        "script": "scripts/train_fib_inpainting.py",
        "args": {k: (list(v) if isinstance(v, (list, tuple)) else
                     (v.name if isinstance(v, Path) else v))  # file names only: no machine paths
                 for k, v in vars(args).items()},
        "dilations": list(args.dilations),
        "relu": [True] * (len(args.channels) - 1) + [False],
        "features": list(inp.FEATURE_NAMES),
        "clip_px": inp.CLIP,
        "gap_scale": inp.GAP_SCALE,
        "grid_nm": 2.5,
        "train_seeds": f"numpy default_rng({args.seed_base}) stream",
        "loss_history": history,
        "torch": torch.__version__,
    }
    arrays = to_arrays(net, config)
    model = inp.model_from_arrays(arrays)
    # the NumPy forward must reproduce PyTorch
    x, _ = batch(val, np.random.default_rng(0), 2, args.crop)
    with torch.no_grad():
        ref = net(x).numpy()
    np.testing.assert_allclose(inp.forward(model, x.numpy()), ref, rtol=1e-4, atol=1e-4)
    scores = evaluate(model, val)
    config["validation_mp_percent"] = scores
    config["train_seconds"] = round(time.time() - t0)
    arrays["config"] = np.array(json.dumps(config))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    print(f"validation MP %: {scores}")
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
