"""Local thickness: exact against brute force and analytic shapes, in physical units."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_corrtomo.core.progress import Cancelled
from napari_corrtomo.core.quantify import distance_ridge, local_thickness
from napari_corrtomo.core.synthetic import leveled_wave, paint_spheres


def brute_force(mask: np.ndarray, spacing) -> np.ndarray:
    """Definition, literally: 2 max{D(c) : |p - c| < D(c)} over every phase voxel c.

    Uses SciPy's EDT (independent of the ``edt`` package the implementation uses).
    """
    sp = np.asarray(spacing, float)
    d = ndi.distance_transform_edt(mask, sampling=sp)
    pts = np.argwhere(mask) * sp
    dv = d[mask]
    res = np.zeros(len(pts))
    for s in range(0, len(pts), 1500):
        dd = ((pts[s:s + 1500, None, :] - pts[None, :, :]) ** 2).sum(-1)
        res[s:s + 1500] = np.where(dd < dv[None, :] ** 2 * (1 - 1e-6), dv[None, :], 0).max(1)
    out = np.zeros(mask.shape)
    out[mask] = 2 * res
    return out


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 1.0, 1.0), (1.3, 0.7, 1.0),
                                     (0.5, 0.5, 1.5)])
def test_exact_against_brute_force(spacing):
    mask = leveled_wave((22, 26, 28), spacing, wavelength=10 * min(spacing) + 2,
                        solid_fraction=0.45, seed=3)
    got = local_thickness(mask, spacing)
    assert got.dtype == np.float32 and got.shape == mask.shape
    np.testing.assert_allclose(got, brute_force(mask, spacing), atol=1e-4)
    assert np.all(got[~mask] == 0) and np.all(got[mask] > 0)


def _lattice_radius(r2: float, weights=(1, 1, 1)) -> float:
    """Distance from the origin to the nearest lattice point with sum w x^2 > r2."""
    n = int(np.ceil(np.sqrt(r2))) + 2
    a = np.arange(-n, n + 1)
    g = np.meshgrid(a, a, a, indexing="ij")
    q = sum(w * x**2 for w, x in zip(weights, g, strict=True))
    return float(np.sqrt(q[q > r2].min()))


@pytest.mark.parametrize("t", [1, 2, 5, 8])
def test_slab_of_known_thickness(t):
    mask = np.zeros((20, 12, 13), bool)
    mask[6:6 + t] = True
    lt = local_thickness(mask, (0.25, 1.0, 1.0))  # z voxels 0.25 um
    expected = 0.25 * (t if t % 2 == 0 else t + 1)  # voxel-centre convention
    np.testing.assert_allclose(lt[mask], expected, rtol=1e-6)
    assert abs(expected - 0.25 * t) <= 0.25  # within one voxel of the true thickness


@pytest.mark.parametrize("radius", [3.0, 6.5, 10.2])
def test_sphere_and_cylinder_of_known_diameter(radius):
    n = 2 * int(radius) + 9  # odd: the centre is a voxel centre
    c = np.full(3, (n - 1) / 2)
    sphere = np.zeros((n, n, n), bool)
    paint_spheres(sphere, c[None], np.array([radius]), True, (1, 1, 1))
    lt = local_thickness(sphere, 1.0)
    d0 = _lattice_radius(radius**2)  # the centre ball touches the nearest outside voxel
    np.testing.assert_allclose(lt[sphere], 2 * d0, rtol=1e-6)  # one ball covers the sphere
    assert 2 * radius < 2 * d0 <= 2 * radius + 2

    yy, xx = np.mgrid[:n, :n] - c[1]
    disc = yy**2 + xx**2 <= radius**2
    cyl = np.broadcast_to(disc, (9, n, n)).copy()
    lt = local_thickness(cyl, (3.0, 1.0, 1.0))  # the axis is along z, 3 um voxels
    n2 = int(radius) + 3
    a = np.arange(-n2, n2 + 1)
    q = a[:, None] ** 2 + a[None, :] ** 2
    d_disc = np.sqrt(q[q > radius**2].min())
    np.testing.assert_allclose(lt[cyl], 2 * d_disc, rtol=1e-6)


def test_anisotropic_sphere_in_physical_units():
    # a sphere of radius 6 um on 2 x 1 x 1 um voxels: centre ball reaches the nearest
    # outside voxel centre in physical distance
    sp = (2.0, 1.0, 1.0)
    shape = (11, 19, 19)
    centre = np.array([5 * 2.0, 9.0, 9.0])
    m = np.zeros(shape, bool)
    paint_spheres(m, centre[None], np.array([6.0]), True, sp)
    lt = local_thickness(m, sp)
    d0 = _lattice_radius(36.0, (4, 1, 1))
    assert np.isclose(lt[5, 9, 9], 2 * d0)
    np.testing.assert_allclose(lt, brute_force(m, sp), atol=1e-4)


def test_two_dimensional_disc_and_ridge():
    yy, xx = np.mgrid[:21, :21] - 10
    disc = yy**2 + xx**2 <= 49
    lt = local_thickness(disc, 0.5)
    a = np.arange(-10, 11)
    q = a[:, None] ** 2 + a[None, :] ** 2
    np.testing.assert_allclose(lt[disc], 2 * 0.5 * np.sqrt(q[q > 49].min()), rtol=1e-6)
    centres, radii = distance_ridge(disc, 0.5)
    assert centres.shape[1] == 2 and radii[0] == radii.max()
    assert tuple(centres[0]) == (10, 10)


def test_progress_and_cancel():
    m = leveled_wave((40, 32, 32), 1.0, wavelength=14, solid_fraction=0.5, seed=0)
    calls = []
    local_thickness(m, 1.0, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1][0] == calls[-1][1] and len(calls) >= 2

    def cancel(done, total):
        if done >= 1:
            raise Cancelled()

    with pytest.raises(Cancelled):
        local_thickness(m, 1.0, progress=cancel)


@pytest.mark.parametrize("bad, spacing, message", [
    (np.arange(27).reshape(3, 3, 3) % 4, 1.0, "binary"),
    (np.zeros((5, 5, 5), bool), 1.0, "no voxel"),
    (np.ones((5, 5, 5), bool), 1.0, "unbounded"),
    (np.eye(5, dtype=bool)[None].repeat(3, 0), (1.0, 1.0), "spacing"),
    (np.eye(5, dtype=bool)[None].repeat(3, 0), (1.0, -1.0, 1.0), "positive"),
    (np.ones(5, bool), 1.0, "2D or 3D"),
])
def test_bad_input(bad, spacing, message):
    with pytest.raises(ValueError, match=message):
        local_thickness(bad, spacing)


def test_dask_input_is_exact_blockwise():
    import dask.array as da

    from napari_corrtomo.core.backend import compute

    sp = (2.0, 1.0, 1.0)
    m = leveled_wave((40, 48, 52), sp, wavelength=20, solid_fraction=0.5, seed=2)
    lazy = local_thickness(da.from_array(m, chunks=(16, 20, 24)), sp)
    assert isinstance(lazy, da.Array)
    np.testing.assert_array_equal(compute(lazy), local_thickness(m, sp))
    with pytest.raises(ValueError, match="lazy"):
        local_thickness(da.from_array(m.astype(np.uint8), chunks=16), sp)


@pytest.mark.parametrize("weights", [(1, 1, 1), (4, 1, 1), (9, 1, 4)])
def test_integer_squared_edt_matches_scipy(weights):
    from napari_corrtomo.core.quantify.thickness import _edt_sq_int

    rng = np.random.default_rng(5)
    m = rng.random((17, 23, 29)) < 0.97  # many lines without any background voxel
    m[3, 4, 5] = False
    got = _edt_sq_int(m, np.array(weights, np.int64))
    ref = ndi.distance_transform_edt(m, sampling=np.sqrt(weights)) ** 2
    np.testing.assert_array_equal(got, np.rint(ref))
