"""The shipped FIB inpainting network: NumPy inference, features, accuracy on unseen data."""

import json

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_corrtomo.core import synthetic as syn
from napari_corrtomo.core.fib import _inpaint as inp
from napari_corrtomo.core.fib import interpolate, metrics, reposition


def test_shipped_weights_are_small_and_documented():
    from importlib import resources

    ref = resources.files("napari_corrtomo.core") / "_weights" / inp.WEIGHTS
    with resources.as_file(ref) as path:
        assert path.stat().st_size < 1_000_000
        with np.load(path) as z:
            config = json.loads(str(z["config"]))
    model = inp.load_model()
    assert config["script"] == "scripts/train_fib_inpainting.py"
    assert config["features"] == list(inp.FEATURE_NAMES)
    assert config["args"]["seed_base"] >= 1000  # training seeds disjoint from tests/benchmark
    assert model["layers"][0][0].shape[1] == inp.N_FEATURES
    assert "validation_mp_percent" in config


def test_conv2d_matches_scipy_correlate():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 2, 12, 15)).astype(np.float32)
    w = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
    b = rng.normal(size=4).astype(np.float32)
    for dil in (1, 2):
        got = inp.conv2d(x, w, b, dil)
        kern = np.zeros((4, 3, 2 * dil + 1, 2 * dil + 1), np.float32)
        kern[:, :, ::dil, ::dil] = w
        for o in range(4):
            for bi in range(2):
                ref = sum(ndi.correlate(x[c, bi], kern[o, c], mode="mirror") for c in range(3))
                np.testing.assert_allclose(got[o, bi], ref + b[o], rtol=1e-4, atol=1e-4)


def test_numpy_forward_matches_pytorch():
    torch = pytest.importorskip("torch")  # bench extra: an independent implementation
    model = inp.load_model()
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, inp.N_FEATURES, 24, 20)).astype(np.float32)
    h = torch.from_numpy(x)
    cubic = h[:, 5]
    with torch.no_grad():
        for i, (w, b, d, relu) in enumerate(model["layers"]):
            h = torch.nn.functional.conv2d(
                torch.nn.functional.pad(h, (d * (w.shape[-1] // 2),) * 4, mode="reflect")
                if w.shape[-1] > 1 else h, torch.from_numpy(w), torch.from_numpy(b), dilation=d)
            if relu:
                h = torch.relu(h)
            assert relu == (i < len(model["layers"]) - 1)
        ref = (h[:, 0] + float(model["skip"][0]) * cubic + float(model["skip"][1])).numpy()
    np.testing.assert_allclose(inp.forward(model, x), ref, rtol=1e-4, atol=1e-4)


def test_features_encode_positions_and_shape_interpolation():
    planes = np.zeros((4, 9, 9), bool)
    planes[:, 3:6, 3:6] = True
    sdf = inp.plane_sdf(planes)
    assert sdf[0, 4, 4] == pytest.approx(1.5 / inp.CLIP)  # centre of 3 px: edge at 1.5 px
    assert sdf[0, 4, 6] == pytest.approx(-0.5 / inp.CLIP)
    known = np.array([0, 3, 7, 8])
    f = inp.gap_features(sdf, known, np.array([5]))
    assert f.shape == (1, inp.N_FEATURES, 9, 9)
    # a = 3, b = 7: t = 0.5, gap 4, outer spacings 3 and 1
    assert f[0, 6, 0, 0] == pytest.approx(0.5)
    assert f[0, 7, 0, 0] == pytest.approx(4 / inp.GAP_SCALE)
    assert f[0, 8, 0, 0] == pytest.approx(3 / inp.GAP_SCALE)
    assert f[0, 9, 0, 0] == pytest.approx(1 / inp.GAP_SCALE)
    np.testing.assert_allclose(f[0, 4], sdf[1], atol=1e-6)  # equal planes: linear = same
    np.testing.assert_allclose(f[0, 5], sdf[1], atol=1e-5)  # cubic too
    with pytest.raises(ValueError, match="between two measured planes"):
        inp.gap_features(sdf, known, np.array([9]))


@pytest.fixture(scope="module")
def unseen():
    # seeds far from the training stream; a slab of the benchmark's structure
    vol = syn.hierarchical_leveled_wave((112, 64, 64), 2.5, seed=7)
    return syn.fib_mimic(vol, 2.5, 10.0, 4.0, seed=7)


def test_ml_beats_classical_interpolation_on_unseen_structures(unseen):
    vol, known = reposition(unseen.stack, unseen.thickness_nm, 2.5)
    ml = interpolate(vol, known, "ml")
    assert ml.dtype == bool and ml.shape == unseen.truth.shape
    np.testing.assert_array_equal(ml[known], unseen.stack)
    m_ml = metrics(ml, unseen.truth)
    m_nn = metrics(interpolate(vol, known, "nearest"), unseen.truth)
    m_cs = metrics(interpolate(vol, known, "cubic"), unseen.truth)
    assert m_ml["mp_percent"] < 0.8 * m_cs["mp_percent"] < 0.8 * m_nn["mp_percent"] * 1.1
    assert m_ml["mds"] > m_cs["mds"]


def test_ml_is_blockwise_exact_and_reports_progress(unseen, monkeypatch):
    # exactness of the (y, x) blocking does not depend on the weights: a small random
    # network with the shipped layout keeps this fast
    rng = np.random.default_rng(5)
    arrays = {"w0": rng.normal(size=(6, inp.N_FEATURES, 3, 3)), "b0": rng.normal(size=6),
              "w1": rng.normal(size=(1, 6, 3, 3)), "b1": rng.normal(size=1),
              "skip": np.array([3.0, 0.1]),
              "config": np.array(json.dumps({"dilations": [2, 1], "relu": [True, False]}))}
    model = inp.model_from_arrays(arrays)
    assert inp.receptive_radius(model) == 3
    vol, known = reposition(unseen.stack[:12], unseen.thickness_nm[:12], 2.5)
    whole = inp.inpaint(vol, known, model=model)
    calls = []
    monkeypatch.setenv("CORRTOMO_MEMORY_BUDGET", "600000")  # forces several (y, x) blocks
    blocked = inp.inpaint(vol, known, progress=lambda d, t: calls.append((d, t)), model=model,
                          max_batch_bytes=1.0)
    np.testing.assert_allclose(blocked, whole, atol=1e-5)
    assert len(calls) > 1 and calls[-1][0] == calls[-1][1]


def test_ml_for_label_stacks(unseen):
    lab = unseen.stack.astype(np.uint8) * 3 + 1  # labels 1 and 4
    vol, known = reposition(lab, unseen.thickness_nm, 2.5)
    out = interpolate(vol, known, "ml", kind="labels")
    assert set(np.unique(out)) == {1, 4} and out.dtype == np.uint8
    np.testing.assert_array_equal(out[known], lab)
    # one-vs-rest with two labels agrees with the binary model almost everywhere
    vol_b, _ = reposition(unseen.stack, unseen.thickness_nm, 2.5)
    assert np.mean((out == 4) == interpolate(vol_b, known, "ml")) > 0.99


def test_ml_progress_moves_per_layer_batch_and_label(unseen):
    """The bar moves with the work: many distinct, increasing (done / total) reports over
    the labels and the batches of gap planes, each batch's network layers included."""
    lab = (unseen.stack[:8, :32, :32].astype(np.uint8)
           + (np.arange(32) >= 16).astype(np.uint8) * 2)  # labels 0 to 3
    vol, known = reposition(lab, unseen.thickness_nm[:8], 2.5)
    reports = []
    interpolate(vol, known, "ml", kind="labels",
                progress=lambda done, total: reports.append(done / total))
    n_layers = len(inp.load_model()["layers"])
    assert reports == sorted(reports) and reports[-1] == 1.0
    # each of the 4 labels: at least one batch of all the network's layers
    assert len(set(reports)) >= 4 * n_layers
