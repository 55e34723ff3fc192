"""Geodesic tortuosity, intrusion curves and constrictivity against independent implementations."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import ndimage as ndi
from scipy import sparse
from scipy.sparse import csgraph

from napari_corrtomo.core.quantify import pathways as tr

# --------------------------------------------------------------------------- geodesic tortuosity


def graph_geodesic(mask, spacing, sources):
    """Independent 26-neighbour shortest paths (scipy.sparse.csgraph.dijkstra) from the
    voxels where the boolean array ``sources`` is True."""
    idx = -np.ones(mask.shape, int)
    idx[mask] = np.arange(mask.sum())
    rows, cols, wts = [], [], []
    for off in itertools.product((-1, 0, 1), repeat=mask.ndim):
        if not any(off):
            continue
        length = math.sqrt(sum((o * s) ** 2 for o, s in zip(off, spacing, strict=True)))
        src = tuple(slice(max(0, -o), n - max(0, o)) for o, n in zip(off, mask.shape, strict=True))
        dst = tuple(slice(max(0, o), n - max(0, -o)) for o, n in zip(off, mask.shape, strict=True))
        ok = mask[src] & mask[dst]
        rows.append(idx[src][ok])
        cols.append(idx[dst][ok])
        wts.append(np.full(ok.sum(), length))
    n = int(mask.sum())
    graph = sparse.csr_matrix((np.concatenate(wts), (np.concatenate(rows), np.concatenate(cols))),
                              shape=(n, n))
    dist = csgraph.dijkstra(graph, indices=idx[sources & mask], min_only=True)
    out = np.full(mask.shape, np.inf)
    out[mask] = dist
    return out


def test_straight_channels_have_geodesic_tortuosity_one():
    mask = np.zeros((20, 9, 9), bool)
    mask[:, 2:4, 2:4] = True
    mask[:, 6, 1:8] = True
    for reference in ("inlet", "depth"):
        geo = tr.geodesic_tortuosity(mask, (0.5, 1, 1), [1.0, 2.5, 9.5], reference=reference)
        np.testing.assert_allclose(geo.depths, [1.0, 2.5, 9.5])
        for vals in geo.values:
            assert vals.size == 11
            np.testing.assert_allclose(vals, 1.0)
        assert np.all(geo.reached_fraction == 1.0)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (1.0, 2.0, 1.0)])
def test_tilted_channel_follows_the_face_diagonal(spacing):
    mask = np.zeros((12, 16, 3), bool)
    for z in range(12):
        mask[z, z + 2, 1] = True  # 45 degrees in voxels: one step in z and in y
    geo = tr.geodesic_tortuosity(mask, spacing, [4 * spacing[0], 11 * spacing[0]])
    expected = math.hypot(spacing[0], spacing[1]) / spacing[0]
    for vals in geo.values:
        np.testing.assert_allclose(vals, expected)


def test_serpentine_channel_has_its_known_path_length():
    mask = np.zeros((13, 8), bool)
    mask[0:5, 0] = True  # down 4
    mask[4, 0:7] = True  # across 6
    mask[4:13, 6] = True  # down 8
    # 26/8-neighbour paths cut each corner with one diagonal step: 3 + sqrt2 + 4 + sqrt2 + 7
    length = 14 + 2 * math.sqrt(2)
    geo = tr.geodesic_tortuosity(mask, 1.0, [12.0])
    np.testing.assert_allclose(geo.values[0], [length / 12])
    back = tr.geodesic_tortuosity(mask, 1.0, [12.0], reference="depth")
    np.testing.assert_allclose(back.values[0], [length / 12])
    table = geo.table("um")
    assert table.loc[0, "depth_um"] == 12.0 and table.loc[0, "n_paths"] == 1
    assert table.loc[0, "mean"] == pytest.approx(length / 12)


@pytest.mark.parametrize("spacing,inlet", [((1.0, 1.0, 1.0), "low"), ((0.6, 1.0, 1.4), "high")])
def test_geodesic_matches_independent_dijkstra(spacing, inlet, random_structure):
    mask = random_structure((16, 14, 15), 0.55, seed=11)
    depths_idx = [3, 9]
    geo = tr.geodesic_tortuosity(mask, spacing, [k * spacing[0] for k in depths_idx],
                                 inlet=inlet)
    back = tr.geodesic_tortuosity(mask, spacing, [k * spacing[0] for k in depths_idx],
                                  inlet=inlet, reference="depth")
    m = mask if inlet == "low" else mask[::-1]
    first = np.zeros(m.shape, bool)
    first[0] = True
    from_inlet = graph_geodesic(m, spacing, first)
    for i, k in enumerate(depths_idx):
        last = np.zeros(m.shape, bool)
        last[k] = True
        to_target = graph_geodesic(m, spacing, last)  # over the whole volume, deeper too
        expected = to_target[0][m[0]]
        expected = expected[np.isfinite(expected)] / (k * spacing[0])
        np.testing.assert_allclose(np.sort(geo.values[i]), np.sort(expected), rtol=1e-9)
        exp_back = from_inlet[k][m[k]]
        exp_back = exp_back[np.isfinite(exp_back)] / (k * spacing[0])
        np.testing.assert_allclose(np.sort(back.values[i]), np.sort(exp_back), rtol=1e-9)
        assert np.all(geo.values[i] >= 1.0 - 1e-12)


def test_geodesic_bad_depths_and_unreachable():
    mask = np.zeros((10, 6, 6), bool)
    mask[:4, 1:3, 1:3] = True  # stops at depth 3
    mask[6:, 1:3, 1:3] = True
    geo = tr.geodesic_tortuosity(mask, 1.0, [2.0, 7.0])
    assert geo.values[0].size == 4 and geo.values[1].size == 0
    np.testing.assert_allclose(geo.reached_fraction, [1.0, 0.0])
    assert np.isnan(geo.table().loc[1, "mean"])
    with pytest.raises(ValueError, match="do not fit"):
        tr.geodesic_tortuosity(mask, 1.0, [0.2])
    with pytest.raises(ValueError, match="do not fit"):
        tr.geodesic_tortuosity(mask, 1.0, [10.0])
    with pytest.raises(ValueError, match="positive"):
        tr.geodesic_tortuosity(mask, 1.0, [-1.0])
    with pytest.raises(ValueError, match="empty"):
        tr.geodesic_tortuosity(mask, 1.0, [])
    with pytest.raises(ValueError, match="reference"):
        tr.geodesic_tortuosity(mask, 1.0, [2.0], reference="outlet")


# --------------------------------------------------------------------------- intrusion / beta


def ball(radius, spacing):
    half = [int(radius // s) for s in spacing]
    grids = np.ogrid[tuple(slice(-h, h + 1) for h in half)]
    return sum((g * s) ** 2 for g, s in zip(grids, spacing, strict=True)) <= radius**2


def cylinder_stack(shape, sections):
    """Coaxial cylinders along z: [(z0, z1, radius), ...]."""
    z, y, x = np.ogrid[tuple(slice(0, n) for n in shape)]
    cy, cx = (shape[1] - 1) / 2, (shape[2] - 1) / 2
    rho2 = ((y - cy) ** 2 + (x - cx) ** 2)[0]
    mask = np.zeros(shape, bool)
    for z0, z1, r in sections:
        mask[z0:z1] |= np.broadcast_to(rho2 <= r**2, shape[1:])
    return mask


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (1.5, 1.0, 0.75)])
def test_intrusion_curve_matches_morphology(spacing, random_structure):
    mask = random_structure((18, 20, 22), 0.6, sigma=2.0, seed=2)
    radii = [0.0, 0.8, 1.6, 2.4]
    curve = tr.intrusion_curve(mask, spacing, radii, axis=1, unit="nm")
    assert list(curve.columns) == ["radius_nm", "intruded_fraction", "covered_fraction"]
    moved = np.moveaxis(mask, 1, 0)
    samp = (spacing[1], spacing[0], spacing[2])
    for i, r in enumerate(radii):
        se = ball(r, samp)
        # a closed ball of radius r fits where no solid voxel lies within r (outside = pore)
        centres = ndi.binary_erosion(moved, se, border_value=1)
        covered = ndi.binary_dilation(centres, se) & moved
        assert curve.loc[i, "covered_fraction"] == pytest.approx(covered.sum() / moved.sum())
        lab, _ = ndi.label(centres)
        entry = np.isin(lab, np.setdiff1d(np.unique(lab[0]), [0]))
        intruded = ndi.binary_dilation(entry, se) & moved
        assert curve.loc[i, "intruded_fraction"] == pytest.approx(intruded.sum() / moved.sum())
    assert np.all(curve["intruded_fraction"] <= curve["covered_fraction"] + 1e-12)


def test_straight_cylinder_has_constrictivity_one():
    mask = cylinder_stack((30, 21, 21), [(0, 30, 6)])
    res = tr.constrictivity(mask, 1.0)
    assert res.beta == pytest.approx(1.0)
    assert 5.0 <= res.r_max <= 7.0
    curve = tr.intrusion_curve(mask, 1.0, [0.0, 3.0, 5.0, 8.0])
    np.testing.assert_allclose(curve["intruded_fraction"], curve["covered_fraction"])
    assert curve["intruded_fraction"].iloc[0] == 1.0 and curve["intruded_fraction"].iloc[-1] == 0


@pytest.mark.parametrize("spacing", [1.0, 0.25])
def test_bottleneck_gives_known_constrictivity(spacing):
    # A narrow throat (radius 3 voxels) at the inlet in front of a wide body (radius 9):
    # spheres wider than the throat cannot enter, so r_min ~ 3 and r_max ~ 9 voxels.
    mask = cylinder_stack((40, 23, 23), [(0, 6, 3), (6, 40, 9)])
    res = tr.constrictivity(mask, spacing)
    assert 2.5 * spacing <= res.r_min <= 4.0 * spacing
    assert 8.0 * spacing <= res.r_max <= 10.0 * spacing
    assert res.beta == pytest.approx((res.r_min / res.r_max) ** 2)
    assert 0.06 < res.beta < 0.25
    # intruding from the other side the body is reached by big spheres: beta near 1
    other = tr.constrictivity(mask, spacing, inlet="high")
    assert other.beta > 0.8
    row = res.as_row("um")
    assert row["constrictivity"] == res.beta and row["r_min_um"] == res.r_min


def test_intrusion_progress_and_bad_radii():
    mask = cylinder_stack((10, 11, 11), [(0, 10, 3)])
    calls = []
    tr.intrusion_curve(mask, 1.0, [0, 1, 2], progress=lambda d, t: calls.append((d, t)))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    with pytest.raises(ValueError, match=">= 0"):
        tr.intrusion_curve(mask, 1.0, [-1.0])
    with pytest.raises(ValueError, match="inlet"):
        tr.intrusion_curve(mask, 1.0, [1.0], inlet="top")
    with pytest.raises(ValueError, match="resolution"):
        tr.constrictivity(mask, 1.0, resolution=0)
