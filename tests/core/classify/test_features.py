"""The filter bank against scipy / scikit-image / NumPy reference implementations."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi

from napari_corrtomo.core import _kernels
from napari_corrtomo.core.backend import map_blocks
from napari_corrtomo.core.classify import _filterbank as filterbank
from napari_corrtomo.core.classify import features as fmod
from napari_corrtomo.core.classify.features import (
    FeatureSpec,
    FilterItem,
    TailoredFeatures,
    compute_features,
)


@pytest.fixture(scope="module")
def volume():
    rng = np.random.default_rng(3)
    return ndi.gaussian_filter(rng.random((24, 30, 34)), 1.2).astype(np.float32)


def _one(name, sigma, mode="3d", truncate=fmod.TRUNCATE):
    return FeatureSpec((FilterItem(name, sigma, mode),), truncate=truncate)


def _tol(ref):
    return 2e-5 * max(float(np.abs(ref).max()), 1e-3)


@pytest.mark.parametrize("sigma", [0.7, 1.6, 3.5])
def test_gaussian_log_ggm_dog_match_scipy(volume, sigma):
    v64 = volume.astype(np.float64)
    t = fmod.TRUNCATE
    refs = {
        "gaussian": ndi.gaussian_filter(v64, sigma, truncate=t),
        "log": ndi.gaussian_laplace(v64, sigma, truncate=t),
        "ggm": ndi.gaussian_gradient_magnitude(v64, sigma, truncate=t),
        "dog": ndi.gaussian_filter(v64, sigma, truncate=t)
        - ndi.gaussian_filter(v64, fmod.DOG_K * sigma, truncate=t),
    }
    for name, ref in refs.items():
        got = compute_features(volume, _one(name, sigma), spatial_ndim=3)
        assert got.shape == (1,) + volume.shape and got.dtype == np.float32
        np.testing.assert_allclose(got[0], ref, atol=_tol(ref), err_msg=name)


def _hessian_reference(v64, sigma, truncate):
    """scipy Gaussian second derivatives + numpy eigvalsh (descending), eigen axis first."""
    nd = v64.ndim
    h = np.empty(v64.shape + (nd, nd))
    for i in range(nd):
        for j in range(nd):
            order = [0] * nd
            order[i] += 1
            order[j] += 1
            h[..., i, j] = ndi.gaussian_filter(v64, sigma, order=order, truncate=truncate)
    return np.moveaxis(np.linalg.eigvalsh(h)[..., ::-1], -1, 0)


@pytest.mark.parametrize("sigma", [0.7, 1.0, 3.5])
def test_hessian_eigenvalues_match_scipy_numpy(volume, sigma):
    ref = _hessian_reference(volume.astype(np.float64), sigma, fmod.TRUNCATE)
    got = compute_features(volume, _one("hessian", sigma), spatial_ndim=3)
    assert got.shape == (3,) + volume.shape
    np.testing.assert_allclose(got, ref, atol=_tol(ref))


@pytest.mark.parametrize("sigma", [0.7, 1.6])
def test_structure_tensor_eigenvalues_match_numpy(volume, sigma):
    v64 = volume.astype(np.float64)
    t = fmod.TRUNCATE
    grads = [ndi.gaussian_filter(v64, sigma, order=tuple(int(a == ax) for a in range(3)),
                                 truncate=t) for ax in range(3)]
    tensor = np.empty(volume.shape + (3, 3))
    for i in range(3):
        for j in range(3):
            tensor[..., i, j] = ndi.gaussian_filter(grads[i] * grads[j], fmod.STE_OUTER_K * sigma,
                                                    truncate=t)
    ref = np.moveaxis(np.linalg.eigvalsh(tensor)[..., ::-1], -1, 0)
    got = compute_features(volume, _one("ste", sigma), spatial_ndim=3)
    np.testing.assert_allclose(got, ref, atol=_tol(ref))


def test_2d_mode_filters_each_slice_and_2d_images(volume):
    v64 = volume.astype(np.float64)
    got = compute_features(volume, _one("log", 1.6, "2d"), spatial_ndim=3)[0]
    ref = np.stack([ndi.gaussian_laplace(s, 1.6, truncate=fmod.TRUNCATE) for s in v64])
    np.testing.assert_allclose(got, ref, atol=_tol(ref))
    # a 2D image: Hessian eigenvalues (closed-form 2x2) against numpy eigvalsh
    img = v64[5]
    ref2 = _hessian_reference(img, 1.0, fmod.TRUNCATE)
    got2 = compute_features(img.astype(np.float32), _one("hessian", 1.0), spatial_ndim=2)
    assert got2.shape == (2,) + img.shape
    np.testing.assert_allclose(got2, ref2, atol=_tol(ref2))


def test_anisotropic_voxels_scale_sigma_and_derivatives(volume):
    v64 = volume.astype(np.float64)
    spacing = (20.0, 10.0, 10.0)  # FIB: slices twice as thick as pixels
    sig = (0.8, 1.6, 1.6)
    t = fmod.TRUNCATE
    got = compute_features(volume, _one("gaussian", 1.6), spacing, spatial_ndim=3)[0]
    ref = ndi.gaussian_filter(v64, sig, truncate=t)
    np.testing.assert_allclose(got, ref, atol=_tol(ref))
    # gradient per finest voxel edge: the z derivative per z-voxel is halved
    grads = []
    for ax in range(3):
        d = ndi.gaussian_filter(v64, sig, order=tuple(int(a == ax) for a in range(3)), truncate=t)
        grads.append(d * (0.5 if ax == 0 else 1.0))
    ref = np.sqrt(sum(g * g for g in grads))
    got = compute_features(volume, _one("ggm", 1.6), spacing, spatial_ndim=3)[0]
    np.testing.assert_allclose(got, ref, atol=_tol(ref))


def test_compiled_and_array_module_paths_agree(volume, monkeypatch):
    spec = FeatureSpec.ilastik_default(tailored=True)
    spec = FeatureSpec(tuple(f for f in spec.filters if f.sigma <= 1.6), tailored=spec.tailored)
    fast = compute_features(volume, spec, (2.0, 1.0, 1.0), spatial_ndim=3)
    monkeypatch.setattr(filterbank, "USE_COMPILED", False)
    slow = compute_features(volume, spec, (2.0, 1.0, 1.0), spatial_ndim=3)
    assert fast.shape == slow.shape == (spec.n_features(1),) + volume.shape
    for k in range(len(fast)):
        np.testing.assert_allclose(fast[k], slow[k], atol=_tol(slow[k]), err_msg=str(k))


def test_passes_cut_into_chunks_give_the_same_features_and_check_cancel(volume, monkeypatch):
    """Every filter pass runs in chunks (cancel checks between them): the features are
    bit-identical to one-chunk passes, whole and with a z range, and a callback that
    raises stops the computation inside a feature."""
    from napari_corrtomo.core import _kernels
    from napari_corrtomo.core.progress import Cancelled

    spec = FeatureSpec.ilastik_default()
    spec = FeatureSpec(tuple(f for f in spec.filters if f.sigma <= 1.6))
    whole = compute_features(volume, spec, (2.0, 1.0, 1.0), spatial_ndim=3)
    part = compute_features(volume, spec, (2.0, 1.0, 1.0), spatial_ndim=3, z_range=(5, 9))
    monkeypatch.setattr(_kernels, "CHUNK_VOXELS", 97)  # many uneven chunks along every axis
    calls = []
    chunked = compute_features(volume, spec, (2.0, 1.0, 1.0), spatial_ndim=3,
                               progress=lambda d, t: calls.append((d, t)))
    assert np.array_equal(chunked, whole)
    assert np.array_equal(compute_features(volume, spec, (2.0, 1.0, 1.0), spatial_ndim=3,
                                           z_range=(5, 9)), part)
    n = spec.n_features(1)
    assert len(calls) > 50 * n and calls[-1] == (n, n)  # checks within every feature
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)

    def stop(done, total):
        if len(seen) == 10:
            raise Cancelled()
        seen.append(done)

    seen: list[int] = []
    with pytest.raises(Cancelled):
        compute_features(volume, spec, (2.0, 1.0, 1.0), spatial_ndim=3, progress=stop)
    assert seen[-1] == 0  # stopped inside the first feature, not after it


def test_z_range_gives_the_same_slices(volume):
    spec = FeatureSpec.ilastik_default(tailored=True)
    spec = FeatureSpec(tuple(f for f in spec.filters if f.sigma <= 3.5), tailored=spec.tailored)
    full = compute_features(volume, spec, (2.0, 1.0, 1.0), spatial_ndim=3)
    for z0, z1 in ((0, 1), (11, 13), (23, 24)):
        part = compute_features(volume, spec, (2.0, 1.0, 1.0), spatial_ndim=3, z_range=(z0, z1))
        assert part.shape == (full.shape[0], z1 - z0) + volume.shape[1:]
        for k in range(len(full)):
            np.testing.assert_allclose(part[k], full[k, z0:z1], atol=_tol(full[k]), err_msg=str(k))


def test_tailored_features_follow_their_definition(volume):
    tail = TailoredFeatures(sigmas=(1.0,), offsets=(1, 3), window=2)
    spec = FeatureSpec((FilterItem("gaussian", 1.0),), tailored=tail)
    got = compute_features(volume, spec, spatial_ndim=3)
    s = ndi.gaussian_filter(volume.astype(np.float64), (0, 1.0, 1.0), truncate=fmod.TRUNCATE)
    n = len(s)

    def shift(d):
        return s[np.clip(np.arange(n) + d, 0, n - 1)]

    refs = [s - shift(-1), shift(1) - s, s - shift(-3), shift(3) - s,
            np.maximum(shift(1), shift(2)) - s, s - np.minimum(shift(-1), shift(-2))]
    assert got.shape[0] == 1 + len(refs)
    for k, ref in enumerate(refs):
        np.testing.assert_allclose(got[1 + k], ref, atol=_tol(ref), err_msg=str(k))


def test_multichannel_and_differences(volume):
    two = np.stack([volume, volume[::-1].copy()])
    spec = FeatureSpec((FilterItem("gaussian", 1.0),), channel_differences=True)
    got = compute_features(two, spec, spatial_ndim=3)
    assert got.shape == (3,) + volume.shape
    np.testing.assert_allclose(got[2], got[0] - got[1], atol=1e-5)
    assert spec.names(["SE2", "InLens"])[2].startswith("SE2-InLens: Gaussian smoothing 1")


def test_blockwise_features_are_exact_with_the_halo(volume):
    spec = FeatureSpec.ilastik_default(tailored=True)
    spec = FeatureSpec(tuple(f for f in spec.filters if f.sigma <= 1.6), tailored=spec.tailored)
    sp = (2.0, 1.0, 1.0)
    whole = compute_features(volume, spec, sp, spatial_ndim=3)
    halo = spec.halo(sp, 3)
    blocks = map_blocks(lambda b: compute_features(b, spec, sp, spatial_ndim=3), volume, halo,
                        block_shape=(12, 16, 18))
    assert np.array_equal(blocks, whole)


def test_spec_counts_halo_and_json_round_trip():
    spec = FeatureSpec.ilastik_default()
    assert spec.n_features(1, 3) == 61  # the seed's "60 standard ilastik features" + 1
    assert spec.n_features(2, 3) == 122
    assert FeatureSpec.ilastik_default(channel_differences=True).n_features(2, 3) == 183  # seed
    assert FeatureSpec.ilastik_default(mode="2d").n_features(1, 3) == 49
    # largest reach: structure tensor at 10 -> r(10) + r(5) in-plane, half along z of 2x voxels
    assert spec.halo((1, 1, 1)) == (35 + 18,) * 3
    assert spec.halo((20, 10, 10)) == (18 + 9, 53, 53)
    tail = FeatureSpec.ilastik_default(tailored=True, channel_differences=True)
    again = FeatureSpec.from_json(tail.to_json())
    assert again == tail
    assert len(again.names(["a", "b"])) == again.n_features(2)


def test_bad_specs_raise_clear_errors():
    with pytest.raises(ValueError, match="unknown filter"):
        FilterItem("sobel", 1.0)
    with pytest.raises(ValueError, match="positive"):
        FilterItem("gaussian", 0.0)
    with pytest.raises(ValueError, match="2d' or '3d"):
        FilterItem("gaussian", 1.0, "4d")
    with pytest.raises(ValueError, match="empty"):
        FeatureSpec(())
    with pytest.raises(ValueError, match="version"):
        FeatureSpec.from_dict({"version": 99, "filters": []})
    with pytest.raises(ValueError, match="offsets"):
        TailoredFeatures(offsets=(0,))


@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("compiled", [True, False])
def test_closed_form_eigenvalues_with_repeated_and_zero_eigenvalues(n, compiled):
    rng = np.random.default_rng(5)
    a = rng.standard_normal((4000, n, n))
    a = a + np.swapaxes(a, 1, 2)
    rot = np.linalg.qr(rng.standard_normal((n, n)))[0]
    special = [np.eye(n) * 2.0, np.zeros((n, n)), np.diag([1.0] * (n - 1) + [3.0]),
               np.diag([1.0] + [3.0] * (n - 1)), rot @ np.diag(np.arange(n) * 1e-3 + 5) @ rot.T]
    a[:len(special)] = special
    a = a.astype(np.float32)
    m = [[np.ascontiguousarray(a[:, i, j]) for j in range(n)] for i in range(n)]
    dest = [np.empty(len(a), np.float32) for _ in range(n)]
    filterbank._eigvalsh_sym(np, m, compiled, dest)
    ref = np.linalg.eigvalsh(a.astype(np.float64))[:, ::-1]
    scale = np.abs(ref).max(axis=1, keepdims=True) + 1e-30
    assert np.all(np.abs(np.stack(dest, 1) - ref) <= 1e-6 * scale)


def _scipy_filter(img, name, sigma, spacing, mode="3d"):
    """An independent float64 reference of one filter (scipy.ndimage + numpy eigvalsh,
    descending): per-axis sigma sigma * min(spacing) / spacing_i, derivatives per finest
    voxel edge, ilastik's inner/outer scales."""
    x = img.astype(np.float64)
    nd = x.ndim
    unit = [min(spacing) / s for s in spacing]
    active = [a for a in range(nd) if not (mode == "2d" and nd == 3 and a == 0)]

    def g(order, k=1.0, src=x):
        sig = [k * sigma * unit[a] if a in active else 0.0 for a in range(nd)]
        d = ndi.gaussian_filter(src, sig, order=order, truncate=fmod.TRUNCATE)
        return d * np.prod([unit[a] ** order[a] for a in range(nd)])

    def o(*axes):
        order = [0] * nd
        for a in axes:
            order[a] += 1
        return tuple(order)

    if name == "gaussian":
        return [g(o())]
    if name == "dog":
        return [g(o()) - g(o(), fmod.DOG_K)]
    if name == "ggm":
        return [np.sqrt(sum(g(o(a)) ** 2 for a in active))]
    if name == "log":
        return [sum(g(o(a, a)) for a in active)]
    grads = [g(o(a)) for a in active]
    m = np.empty(x.shape + (len(active),) * 2)
    for i, a in enumerate(active):
        for j, b in enumerate(active):
            m[..., i, j] = (g(o(a, b)) if name == "hessian"
                            else g(o(), fmod.STE_OUTER_K, grads[i] * grads[j]))
    ev = np.linalg.eigvalsh(m)[..., ::-1]
    return [ev[..., k] for k in range(len(active))]


@pytest.mark.parametrize("case", ["2d image", "3d", "anisotropic", "2d mode", "blockwise"])
def test_every_filter_matches_scipy_within_the_documented_tolerance(volume, case):
    img, sp, mode, sigmas = volume, (1.0, 1.0, 1.0), "3d", (0.7, 1.6, 3.5)
    if case == "2d image":
        img, sp, sigmas = volume[7], (1.0, 1.0), fmod.ILASTIK_SIGMAS
    elif case == "anisotropic":
        sp = (2.0, 1.0, 1.0)
    elif case == "2d mode":
        mode, sigmas = "2d", (1.0, 5.0)
    elif case == "blockwise":
        sp, sigmas = (2.0, 1.0, 1.0), (1.0, 1.6)
    for name in fmod.FILTERS:
        for sigma in sigmas:
            spec = _one(name, sigma, mode)
            if case == "blockwise":
                got = map_blocks(lambda b, s=spec: compute_features(b, s, sp, spatial_ndim=3),
                                 img, spec.halo(sp, 3), block_shape=(10, 12, 14))
            else:
                got = compute_features(img, spec, sp, spatial_ndim=img.ndim)
            ref = _scipy_filter(img, name, sigma, sp, mode)
            assert got.shape == (len(ref),) + img.shape
            # DoG: relative to the Gaussian it is the difference of (see REL_TOLERANCE)
            norm = _scipy_filter(img, "gaussian", sigma, sp, mode) if name == "dog" else ref
            scale = max(float(np.abs(r).max()) for r in norm)
            err = max(float(np.abs(got[k] - r).max()) for k, r in enumerate(ref))
            assert err <= fmod.REL_TOLERANCE[name] * scale, (name, sigma, err / scale)


def test_passes_split_over_threads_give_identical_features(volume, monkeypatch):
    spec = FeatureSpec.ilastik_default()
    spec = FeatureSpec(tuple(f for f in spec.filters if f.sigma <= 1.6))
    monkeypatch.setenv("CORRTOMO_THREADS", "1")
    one = compute_features(volume, spec, (2.0, 1.0, 1.0), spatial_ndim=3)
    monkeypatch.setattr(_kernels, "SPLIT_VOXELS", 0)  # split even this small volume
    monkeypatch.setenv("CORRTOMO_THREADS", "3")
    three = compute_features(volume, spec, (2.0, 1.0, 1.0), spatial_ndim=3)
    assert np.array_equal(one, three)


def test_scales_side_by_side_give_identical_features_and_progress(volume, monkeypatch):
    # 2D images under SPLIT_VOXELS run their scales in threads instead of splitting passes
    img2d = volume[3]
    spec2d = FeatureSpec.ilastik_default("2d")
    assert img2d.size < _kernels.SPLIT_VOXELS
    monkeypatch.setenv("CORRTOMO_THREADS", "1")
    one = [compute_features(img2d, spec2d, spatial_ndim=2)]
    monkeypatch.setenv("CORRTOMO_THREADS", "3")
    seen = []
    three = [compute_features(img2d, spec2d, spatial_ndim=2,
                              progress=lambda d, t: seen.append((d, t)))]
    assert np.array_equal(one[0], three[0])
    done = [d for d, _ in seen]
    assert done == sorted(done) and done[-1] == seen[-1][1] == one[0].shape[0]

    # a progress callback that raises stops the computation after the scales under way
    # have ended (none writes into recycled memory later): the next call is exact
    def cancel(done, total):
        if done > 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        compute_features(img2d, spec2d, spatial_ndim=2, progress=cancel)
    assert np.array_equal(compute_features(img2d, spec2d, spatial_ndim=2), one[0])


@pytest.mark.parametrize("z_range", [None, (5, 9)])
def test_recycled_work_arrays_never_leak_between_filters(volume, z_range, monkeypatch):
    """The passes take their work arrays from a pool and give a feature's temporaries back
    as soon as it is done (issue 21): with every array given back poisoned (NaN) at once,
    every filter of a set computed together, in any mix (DoG or the structure tensor
    before the Gaussian of their scale is cached, a scale without a Gaussian, after a
    cancelled run), still equals that filter computed alone, bit for bit; and a second
    run takes no fresh array (the first run's stack, dropped, is the second's)."""
    from napari_corrtomo.core.progress import Cancelled

    items = (FilterItem("dog", 1.0), FilterItem("ste", 1.0), FilterItem("hessian", 1.0),
             FilterItem("dog", 1.6), FilterItem("ste", 1.6), FilterItem("ggm", 1.6),
             FilterItem("log", 1.6), FilterItem("hessian", 1.6), FilterItem("gaussian", 3.5),
             FilterItem("dog", 3.5), FilterItem("ste", 0.7, "2d"), FilterItem("ggm", 0.7, "2d"),
             FilterItem("hessian", 0.7, "2d"))
    sp = (2.0, 1.0, 1.0)
    spec = FeatureSpec(items)
    alone = [compute_features(volume, FeatureSpec((item,)), sp, spatial_ndim=3,
                              z_range=z_range) for item in spec.filters]
    give, returned = filterbank._WORK.give, filterbank._WORK.returned

    def poisoned(arrays):
        for a in arrays:
            a.fill(np.nan)
        give(arrays)

    def poisoned_output(arr):  # a feature stack nobody holds any more
        arr.fill(np.nan)
        returned(arr)

    monkeypatch.setattr(filterbank._WORK, "give", poisoned)
    monkeypatch.setattr(filterbank._WORK, "returned", poisoned_output)

    def stop(done, total):
        raise Cancelled()

    with pytest.raises(Cancelled):  # leaves nothing half-written behind in the pool
        compute_features(volume, spec, sp, spatial_ndim=3, progress=stop)
    together = compute_features(volume, spec, sp, spatial_ndim=3, z_range=z_range)
    assert np.array_equal(together, np.concatenate(alone))
    del together  # its memory goes back to the pool (poisoned)
    free = {id(a) for _, a in filterbank._WORK._free.values()}
    taken = []
    take = filterbank._WORK.take
    monkeypatch.setattr(filterbank._WORK, "take",
                        lambda shape: taken.append(take(shape)) or taken[-1])
    again = compute_features(volume, spec, sp, spatial_ndim=3, z_range=z_range)
    assert np.array_equal(again, np.concatenate(alone))  # every voxel of it written
    assert again.base.__class__.__name__ == "_Lease"
    # no fresh array the second time, the stack's memory included
    assert taken and all(id(a) in free for a in taken)
