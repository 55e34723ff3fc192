"""Distributed (dask.distributed LocalCluster, 2 workers) results equal in-memory ones.

Every test computes the same quantity twice on one small volume: once on NumPy arrays
in memory, once on a dask array in small chunks (so the work crosses chunk borders)
running on the cluster, which is dask's scheduler for the module
(:func:`napari_corrtomo.core.cluster.dask_client`).
"""

from __future__ import annotations

import dask.array as da
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi

from napari_corrtomo.core.backend import compute, map_blocks
from napari_corrtomo.core.classify import PixelClassifier
from napari_corrtomo.core.classify.features import FeatureSpec, FilterItem, compute_features
from napari_corrtomo.core.cluster import dask_client
from napari_corrtomo.core.connected import label
from napari_corrtomo.core.quantify import QuantifySettings, quantify
from napari_corrtomo.core.quantify.particles import fill_holes, particle_table
from napari_corrtomo.core.quantify.porosity import phase_fractions, porosity
from napari_corrtomo.core.quantify.thickness import local_thickness
from napari_corrtomo.core.synthetic import leveled_wave, paint_spheres
from napari_corrtomo.core.threshold import (
    histogram,
    otsu_segment,
    threshold_multiotsu,
    threshold_otsu,
)

SPACING = (1.5, 1.0, 1.0)


@pytest.fixture(scope="module")
def client():
    with dask_client(workers=2, processes=False) as c:  # threads share one process: no limit
        yield c


@pytest.fixture(scope="module")
def image():
    """Two-phase wave structure with noise: (30, 40, 36) float32."""
    solid = leveled_wave((30, 40, 36), SPACING, wavelength=14.0, solid_fraction=0.45, seed=3)
    rng = np.random.default_rng(0)
    return (solid * 1.0 + rng.normal(0, 0.35, solid.shape)).astype(np.float32)


@pytest.fixture(scope="module")
def spheres():
    """Labels 0 (pores, inside spheres), 1 (outside), 2 (solid spheres), spheres across
    chunk borders and touching the array border; (36, 40, 44)."""
    rng = np.random.default_rng(5)
    lab = np.ones((36, 40, 44), np.uint8)
    centers = rng.uniform((0, 0, 0), (36 * 1.5, 40, 44), size=(12, 3))
    radii = rng.uniform(3.0, 6.0, 12)
    paint_spheres(lab, centers, radii, 2, SPACING)
    paint_spheres(lab, centers + rng.normal(0, 0.5, centers.shape), radii * 0.35, 0, SPACING,
                  only=2)
    return lab


def _chunked(arr, chunks=(11, 13, 12)):
    return da.from_array(arr, chunks=chunks)


def test_the_cluster_has_two_workers(client):
    assert len(client.scheduler_info()["workers"]) == 2


def test_features_and_forest_prediction(client, image):
    spec = FeatureSpec((FilterItem("gaussian", 0.7), FilterItem("ste", 0.7),
                        FilterItem("hessian", 1.6)))
    ref = compute_features(image, spec, SPACING, spatial_ndim=3)
    lazy = compute_features(_chunked(image), spec, SPACING, spatial_ndim=3)
    assert isinstance(lazy, da.Array)
    np.testing.assert_allclose(compute(lazy), ref, rtol=1e-5, atol=1e-5)

    truth = (image > 0.5).astype(np.uint8) + 1
    scribbles = np.zeros_like(truth)
    scribbles[::7, ::5, ::5] = truth[::7, ::5, ::5]
    clf = PixelClassifier(spec, n_trees=12, seed=1).fit(image, scribbles, SPACING, "um")
    p_ref = clf.predict_proba(image)
    p_lazy = clf.predict_proba(_chunked(image))
    np.testing.assert_allclose(compute(p_lazy), p_ref, atol=1e-5)
    np.testing.assert_array_equal(compute(clf.predict(_chunked(image))), clf.predict(image))


def test_thresholds(client, image):
    from skimage import exposure, filters

    lazy = _chunked(image)
    assert threshold_otsu(lazy) == filters.threshold_otsu(image)
    np.testing.assert_array_equal(threshold_multiotsu(lazy, 3), filters.threshold_multiotsu(image))
    mask = ndi.uniform_filter(image, 3) > 0.2
    counts, centres = histogram(lazy, mask=_chunked(mask))
    ref_counts, ref_centres = exposure.histogram(image[mask])
    np.testing.assert_array_equal(counts, ref_counts)
    np.testing.assert_allclose(centres, ref_centres)
    # integers: one bin per value, as scikit-image
    ints = (image * 40).astype(np.int16)
    assert threshold_otsu(_chunked(ints)) == filters.threshold_otsu(ints)
    # the applied segmentation, lazily
    seg = otsu_segment(lazy, classes=(1, 2, 3))
    assert isinstance(seg, da.Array)
    np.testing.assert_array_equal(compute(seg), otsu_segment(image, classes=(1, 2, 3)))


@pytest.mark.parametrize("connectivity", [1, 3])
def test_labels_across_chunk_borders(client, connectivity):
    field = ndi.gaussian_filter(np.random.default_rng(1).random((30, 40, 36)), 1.5)
    mask = field > np.quantile(field, 0.7)
    ref, n_ref = ndi.label(mask, ndi.generate_binary_structure(3, connectivity))
    lazy, n = label(_chunked(mask, 7), connectivity=connectivity)
    out = compute(lazy)
    assert n == n_ref > 5
    pairs = np.unique(np.column_stack([out[mask], ref[mask]]), axis=0)
    assert len(pairs) == n  # a one-to-one correspondence of components
    assert not out[~mask].any()


def test_particle_table(client, spheres):
    lab, _ = ndi.label(spheres != 1)  # spheres with their inner pores
    pore = spheres == 0
    ref = particle_table(lab, SPACING, pore=pore, unit="um")
    out = particle_table(_chunked(lab), SPACING, pore=_chunked(pore), unit="um")
    assert len(ref) > 5
    exact = ["label", "voxels", "volume_um3", "esd_um", "porosity", "touches_border"]
    pd.testing.assert_frame_equal(out[exact], ref[exact])
    for c in ("z_um", "y_um", "x_um"):
        np.testing.assert_allclose(out[c], ref[c], rtol=1e-12)
    np.testing.assert_allclose(out["surface_um2"], ref["surface_um2"], rtol=1e-5)
    np.testing.assert_allclose(out["sphericity"], ref["sphericity"], rtol=1e-5)
    assert ref["touches_border"].any() and not ref["touches_border"].all()


def test_fill_holes(client, spheres):
    solid = spheres == 2
    out = fill_holes(_chunked(solid))
    np.testing.assert_array_equal(compute(out), fill_holes(solid))


def test_local_thickness(client, spheres):
    mask = spheres == 1
    ref = local_thickness(mask, SPACING)
    out = local_thickness(_chunked(mask), SPACING)
    assert isinstance(out, da.Array)
    np.testing.assert_array_equal(compute(out), ref)


def test_porosity_and_phase_fractions(client, spheres):
    lazy = _chunked(spheres)
    assert porosity(_chunked(spheres == 0)) == porosity(spheres == 0)
    assert porosity(lazy == 0, lazy > 0) == porosity(spheres == 0, spheres > 0)
    pd.testing.assert_frame_equal(phase_fractions(lazy, SPACING), phase_fractions(spheres, SPACING))


def test_quantify_pipeline(client, spheres, tmp_path):
    """The blockwise pipeline (results stored as resumable OME-Zarr) against in memory."""
    settings = QuantifySettings(phase=0, matrix=2, outside=(1,))
    measures = ["porosity", "thickness", "closed_pores"]
    ref = quantify(spheres, SPACING, "um", measures=measures, settings=settings)
    out = quantify(_chunked(spheres, (18, 20, 22)), SPACING, "um", measures=measures,
                   settings=settings, store=tmp_path / "q")
    a, b = ref.summary(), out.summary()
    assert list(a["quantity"]) == list(b["quantity"])
    # counts and fractions exactly; the log-normal fit of the size distribution (from value
    # counts instead of the voxel values) converges to the same optimum within ~1e-9
    np.testing.assert_allclose(b["value"].astype(float), a["value"].astype(float), rtol=1e-7)
    exact = ~a["quantity"].str.contains("log-normal")
    assert exact.sum() >= 8
    np.testing.assert_allclose(b["value"][exact].astype(float), a["value"][exact].astype(float),
                               rtol=1e-12)
    thick = out.arrays["phase local thickness"]
    assert thick.path.exists() and isinstance(thick.data[0], da.Array)
    np.testing.assert_array_equal(np.asarray(thick.data[0]),
                                  ref.arrays["phase local thickness"].data)


def test_small_chunks_are_rechunked_for_the_halo(client, image):
    halo = 5

    def smooth(b):
        return ndi.gaussian_filter(b, 1.2, truncate=4.0)

    img = image[:16, :20, :20]
    tiny = _chunked(img, 4)  # chunks smaller than the halo
    lazy = map_blocks(smooth, tiny, halo)
    assert all(min(c[:-1]) >= 2 * halo for c in lazy.chunks)  # merged (the last: the rest)
    assert max(len(c) for c in lazy.chunks) < max(len(c) for c in tiny.chunks)
    np.testing.assert_array_equal(compute(lazy), smooth(img))
    spec = FeatureSpec((FilterItem("gaussian", 1.6), FilterItem("hessian", 1.0)))
    np.testing.assert_allclose(compute(compute_features(tiny, spec, SPACING, spatial_ndim=3)),
                               compute_features(img, spec, SPACING, spatial_ndim=3),
                               rtol=1e-5, atol=1e-5)

