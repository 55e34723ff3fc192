"""Classifier files are untrusted: a fuzz over corruptions of a valid file.

Every corrupted file must either be refused with a plain ``ValueError`` message, or
load and predict exactly as a valid classifier: the original one when the damage is
accidental (the digest no longer matches, so in practice it is refused), and, for
files crafted with a recomputed digest, exactly as the bounds-checked NumPy traversal
of the same forest (so the compiled kernel never reads memory it does not own). The
cases run in subprocesses with a time limit: a crash or a hang fails the test instead
of taking the test run down.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

from napari_corrtomo.core.classify import FeatureSpec, FilterItem, PixelClassifier
from napari_corrtomo.core.classify.files import FOREST_KEYS, INTENSITIES_KEY, digest
from napari_corrtomo.core.io import write_tiff

N_CASES = 120
BATCHES = 4
ARRAY_KEYS = FOREST_KEYS + ("importances", INTENSITIES_KEY)

WORKER = textwrap.dedent("""
    import json, sys
    import numpy as np
    from napari_corrtomo.core.classify import PixelClassifier, compute_features

    img = np.load(sys.argv[1])
    expected = np.load(sys.argv[2])
    for path in sys.argv[3:]:
        print(json.dumps({"case": path, "state": "start"}), flush=True)
        try:
            clf = PixelClassifier.load(path)
        except ValueError as exc:
            print(json.dumps({"case": path, "state": "refused", "message": str(exc)}), flush=True)
            continue
        proba = clf.predict_proba(img)
        feats = compute_features(img, clf.features, clf.spacing, spatial_ndim=clf.spatial_ndim)
        ref = clf.forest.predict_proba_xp(feats.reshape(feats.shape[0], -1), "numpy")
        print(json.dumps({"case": path, "state": "loaded",
                          "as_original": bool(np.array_equal(proba, expected)),
                          "as_numpy_walk": bool(np.array_equal(proba.reshape(ref.shape), ref))}),
              flush=True)
""")


@pytest.fixture(scope="module")
def valid(tmp_path_factory):
    d = tmp_path_factory.mktemp("clf-files")
    rng = np.random.default_rng(0)
    img = rng.random((24, 24)).astype(np.float32)
    img[:, 12:] += 1.0
    scr = np.zeros(img.shape, np.uint8)
    scr[::3, :4], scr[::3, -4:] = 1, 2
    spec = FeatureSpec((FilterItem("gaussian", 1.0), FilterItem("hessian", 1.0, "2d")))
    clf = PixelClassifier(spec, n_trees=5, seed=1).fit(img, scr, (1.0, 1.0), "um")
    path = clf.save(d / "valid.corrclf.npz")
    np.save(d / "img.npy", img)
    np.save(d / "expected.npy", clf.predict_proba(img))
    return d, path


def _arrays(path):
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    return json.loads(str(arrays.pop("meta"))), arrays


def _write(path, meta, arrays, recompute_digest):
    if recompute_digest:
        meta = {**meta, "digest": digest(meta, arrays)}
    np.savez(path, meta=np.array(json.dumps(meta)), **arrays)


def _corrupt(rng, valid_path, out):
    """Write one random corruption of ``valid_path`` to ``out``; return its description."""
    raw = valid_path.read_bytes()
    kind = rng.choice(["truncate", "flip", "index", "shape", "dtype", "missing_array",
                       "missing_key", "meta_value", "depth", "threshold", "npz_in_npz",
                       "intensities"])
    crafted = bool(rng.random() < 0.6)  # digest recomputed, as a deliberate forgery would
    meta, arrays = _arrays(valid_path)
    if kind == "truncate":
        out.write_bytes(raw[:int(rng.integers(0, len(raw)))])
        return kind
    if kind == "flip":
        buf = bytearray(raw)
        for pos in rng.integers(0, len(buf), int(rng.integers(1, 8))):
            buf[pos] ^= int(rng.integers(1, 256))
        out.write_bytes(bytes(buf))
        return kind
    if kind == "npz_in_npz":
        with zipfile.ZipFile(out, "w") as z:
            z.writestr("meta.npy", raw)
        return kind
    if kind == "index":
        key = str(rng.choice(["feature", "left", "right", "roots"]))
        a = arrays[key].astype(np.int64)
        i = int(rng.integers(0, a.size))
        a[i] = int(rng.choice([-1, -(2 ** 31), a.size, 2 ** 31 - 1, 10 ** 6, a[i] - 1]))
        arrays[key] = a.astype(arrays[key].dtype, casting="unsafe")
    elif kind == "shape":
        key = str(rng.choice(ARRAY_KEYS))
        a = arrays[key]
        arrays[key] = a[:-1] if rng.random() < 0.5 else np.concatenate([a, a[:1]])
    elif kind == "dtype":
        key = str(rng.choice(FOREST_KEYS + (INTENSITIES_KEY,)))
        new = rng.choice(["float64", "complex", "U", "bool"])
        arrays[key] = arrays[key].astype(str(new))
    elif kind == "missing_array":
        del arrays[str(rng.choice(ARRAY_KEYS))]
    elif kind == "missing_key":
        del meta[str(rng.choice([k for k in meta if k not in ("format", "version", "digest")]))]
    elif kind == "meta_value":
        key = str(rng.choice(["spacing", "n_channels", "spatial_ndim", "classes", "labels_dtype",
                              "n_trees", "features", "channel_names", "n_features"]))
        meta[key] = [None, -1, 0, 10 ** 12, "x", [1e300], {"a": 1}, [1, 1], "object"][
            int(rng.integers(0, 9))]
    elif kind == "depth":
        d = arrays["depth"].copy()
        d[int(rng.integers(0, d.size))] = int(rng.choice([10 ** 9, -3, 0, d.max() + 1]))
        arrays["depth"] = d
    elif kind == "intensities":  # the training intensities: only checked, never walked
        a = arrays[INTENSITIES_KEY].copy()
        a[tuple(int(rng.integers(0, n)) for n in a.shape)] = rng.choice(
            [np.nan, np.inf, -1.0, 1e300, 0.0, 2.5])
        arrays[INTENSITIES_KEY] = a
    elif kind == "threshold":  # a valid forest that decides differently
        t = arrays["threshold"].copy()
        t[rng.integers(0, t.size, 3)] = rng.choice([np.nan, -np.inf, 0.5, 1e30])
        arrays["threshold"] = t
    _write(out, meta, arrays, crafted)
    return f"{kind}{' (crafted)' if crafted else ''}"


def test_fuzzed_classifier_files_are_refused_or_exact(valid, tmp_path):
    d, path = valid
    rng = np.random.default_rng(2026)
    cases = {}
    for i in range(N_CASES):
        out = tmp_path / f"case{i:03d}.corrclf.npz"
        cases[str(out)] = _corrupt(rng, path, out)
    outcome = {}
    names = list(cases)
    for b in range(BATCHES):
        batch = names[b::BATCHES]
        proc = subprocess.run([sys.executable, "-c", WORKER, str(d / "img.npy"),
                               str(d / "expected.npy"), *batch],
                              capture_output=True, text=True, timeout=300)
        lines = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
        last = lines[-1] if lines else {}
        assert proc.returncode == 0, (
            f"exit {proc.returncode} at {cases.get(last.get('case'), '?')}: {proc.stderr[-2000:]}")
        for r in lines:
            if r["state"] != "start":
                outcome[r["case"]] = r
    assert set(outcome) == set(cases)
    refused = 0
    for case, r in outcome.items():
        what = cases[case]
        if r["state"] == "refused":
            refused += 1
            msg = r["message"]
            assert "classifier" in msg and "Traceback" not in msg, (what, msg)
            assert "allow_pickle" not in msg, (what, msg)
        elif "crafted" in what:
            assert r["as_numpy_walk"], (what, r)
        else:
            assert r["as_original"], (what, r)
    # the fuzz is not vacuous: most corruptions are caught, every kind was tried
    assert refused >= 0.8 * N_CASES
    kinds = {w.split(" ")[0] for w in cases.values()}
    assert len(kinds) == 12


@pytest.mark.parametrize("content, words", [
    (b"", "not a readable .npz"),
    (None, "Python objects"),
])
def test_messages_for_common_mistakes(valid, tmp_path, content, words):
    d, path = valid
    bad = tmp_path / "bad.corrclf.npz"
    if content is None:  # labels of object dtype (needs pickles to read)
        meta, arrays = _arrays(path)
        arrays["roots"] = arrays["roots"].astype(object)
        np.savez(bad, meta=np.array(json.dumps(meta)), **arrays)
    else:
        bad.write_bytes(content)
    with pytest.raises(ValueError, match=words):
        PixelClassifier.load(bad)


@pytest.mark.parametrize("name", ["ch0.tif", "labels.npy"])
def test_another_kind_of_file_is_named_as_not_a_classifier(valid, tmp_path, name):
    """A TIFF or .npy given as the classifier was said to hold "Python objects"."""
    d, _ = valid
    path = tmp_path / name
    if name.endswith(".tif"):
        write_tiff(path, np.zeros((2, 4, 4), np.float32), (1.0, 1.0, 1.0), "um")
    else:
        np.save(path, np.load(d / "img.npy"))
    with pytest.raises(ValueError) as e:
        PixelClassifier.load(path)
    assert str(e.value) == (f"{name} is not a napari-corrtomo classifier; give a .corrclf.npz "
                            "file saved by the Classify widget ('Save classifier') or "
                            "PixelClassifier.save")


def test_a_version_1_file_without_digest_is_still_read(valid, tmp_path):
    d, path = valid
    meta, arrays = _arrays(path)
    del meta["digest"]
    meta["version"] = 1
    np.savez(tmp_path / "v1.npz", meta=np.array(json.dumps(meta)), **arrays)
    img = np.load(d / "img.npy")
    np.testing.assert_array_equal(PixelClassifier.load(tmp_path / "v1.npz").predict_proba(img),
                                  np.load(d / "expected.npy"))


@pytest.mark.parametrize("change, words", [
    (lambda a: a[:, :, :1], "of shape"),
    (lambda a: a.astype(np.int64), "expected floats"),
    (lambda a: np.where(np.arange(2) == 0, np.nan, a), "not finite"),
    (lambda a: np.where(np.arange(2) == 1, -1.0, a), "deviations >= 0"),
])
def test_crafted_training_intensities_are_refused(valid, tmp_path, change, words):
    """The intensities the channels are compared with are checked like the forest, even
    when the digest was recomputed."""
    _, path = valid
    meta, arrays = _arrays(path)
    assert arrays[INTENSITIES_KEY].shape == (2, 1, 2)  # 2 classes, 1 channel
    arrays[INTENSITIES_KEY] = change(arrays[INTENSITIES_KEY])
    _write(tmp_path / "bad.corrclf.npz", meta, arrays, recompute_digest=True)
    with pytest.raises(ValueError, match=f"damaged.*{INTENSITIES_KEY}.*{words}"):
        PixelClassifier.load(tmp_path / "bad.corrclf.npz")
