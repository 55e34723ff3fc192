"""Decision threshold of the ML inpainting on validation structures (docs/fib.md).

Seeds 1000-1003: neither the benchmark's (0-9) nor the training stream's.

    PYTHONPATH=src python benchmarks/fib_threshold.py
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from napari_corrtomo.core import synthetic as syn  # noqa: E402
from napari_corrtomo.core.fib import metrics, reposition  # noqa: E402
from napari_corrtomo.core.fib._inpaint import inpaint  # noqa: E402

TH = (0.5, 0.45, 0.4, 0.35)
acc = {t: [] for t in TH}
for seed in range(1000, 1004):
    vol = syn.hierarchical_leveled_wave((256, 160, 160), 2.5, seed=seed)
    m = syn.fib_mimic(vol, 2.5, 10.0, 4.0, seed=seed)
    v, k = reposition(m.stack, m.thickness_nm, 2.5)
    p = inpaint(v, k)
    n = min(len(p), len(m.truth))
    for t in TH:
        r = metrics(p[:n] > t, m.truth[:n])
        acc[t].append((r["mp_percent"], r["mgp_percent"], r["mds"]))
    print(seed, {t: np.round(acc[t][-1], 3).tolist() for t in TH}, flush=True)
for t in TH:
    print(f"threshold {t}: MP, MGP, MDS =", np.round(np.mean(acc[t], 0), 3).tolist())
