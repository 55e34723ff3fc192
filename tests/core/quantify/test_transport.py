"""Transport descriptors against analytic answers and independent implementations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage as ndi
from scipy import sparse
from scipy.sparse.linalg import spsolve

from napari_corrtomo.core.progress import Cancelled
from napari_corrtomo.core.quantify import pathways
from napari_corrtomo.core.quantify import transport as tr

# --------------------------------------------------------------------------- independent solver


def dense_tau(mask, spacing, axis):
    """Tortuosity factor by an independent finite-volume build (Python loops) and a direct solve.

    Cell-centred scheme: conductance area/length between face neighbours of the phase,
    Dirichlet c=1 / c=0 half a voxel outside the two faces normal to ``axis``.
    Non-percolating clusters are dropped (their equations are singular or flux-free).
    """
    mask = np.asarray(mask, bool)
    labels, _ = ndi.label(mask)
    lo = set(np.unique(np.take(labels, 0, axis=axis))) - {0}
    hi = set(np.unique(np.take(labels, -1, axis=axis))) - {0}
    keep = np.isin(labels, sorted(lo & hi))
    if not keep.any():
        return math.inf
    voxels = [tuple(v) for v in np.argwhere(keep)]
    number = {v: i for i, v in enumerate(voxels)}
    cell = float(np.prod(spacing))
    a = sparse.lil_matrix((len(voxels), len(voxels)))
    b = np.zeros(len(voxels))
    for v, i in number.items():
        for ax in range(mask.ndim):
            g = cell / spacing[ax] ** 2
            for step in (-1, 1):
                w = list(v)
                w[ax] += step
                w = tuple(w)
                if w in number:
                    a[i, i] += g
                    a[i, number[w]] -= g
                elif ax == axis and w[ax] in (-1, mask.shape[ax]):
                    a[i, i] += 2 * g
                    b[i] += 2 * g * (1.0 if w[ax] == -1 else 0.0)
    c = spsolve(a.tocsr(), b)
    g_face = 2 * cell / spacing[axis] ** 2
    inlet = [number[v] for v in voxels if v[axis] == 0]
    flow = g_face * np.sum(1.0 - c[inlet])
    length = mask.shape[axis] * spacing[axis]
    extent = [n * s for n, s in zip(mask.shape, spacing, strict=True)]
    area = np.prod([e for i, e in enumerate(extent) if i != axis])
    return mask.mean() / (flow * length / area)


# --------------------------------------------------------------------------- tortuosity factor


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.5, 2.0, 1.25)])
def test_straight_channels_have_tau_one_and_do_not_conduct_sideways(spacing):
    mask = np.zeros((12, 20, 20), bool)
    mask[:, 2:5, 3:6] = True
    mask[:, 10:12, 12:17] = True
    res = tr.tortuosity_factor(mask, spacing, axis=0, return_field=True)
    assert res.tau == pytest.approx(1.0, rel=1e-6)
    assert res.porosity == pytest.approx(mask.mean())
    assert res.d_eff_ratio == pytest.approx(mask.mean(), rel=1e-6)
    assert res.percolating_fraction == 1.0 and res.converged
    # the concentration falls linearly from 1 at the inlet face to 0 at the outlet face
    z = np.arange(12)
    expected = np.broadcast_to((1 - (z + 0.5) / 12)[:, None, None], mask.shape)
    np.testing.assert_allclose(res.field[mask], expected[mask], atol=1e-5)
    assert np.isnan(res.field[~mask]).all()
    for axis in (1, 2):  # channels never span y or x
        side = tr.tortuosity_factor(mask, spacing, axis=axis)
        assert side.tau == math.inf and side.d_eff_ratio == 0.0 and side.flux == 0.0


def test_full_phase_and_parallel_slabs_have_tau_one():
    assert tr.tortuosity_factor(np.ones((6, 7, 8), bool), 0.3, axis=2).tau == pytest.approx(1.0)
    slabs = np.zeros((10, 16, 9), bool)
    slabs[:, ::3, :] = True  # layers parallel to z and x (resistances in parallel)
    for axis in (0, 2):
        assert tr.tortuosity_factor(slabs, (1, 2, 3), axis=axis).tau == pytest.approx(1.0)
    # the same layers in series along y: every path is cut -> no percolation, no crash
    res = tr.tortuosity_factor(slabs, (1, 2, 3), axis=1)
    assert res.tau == math.inf and res.percolating_fraction == 0.0


@pytest.mark.parametrize("spacing", [(1.0, 1.0), (0.7, 1.9)])
def test_serpentine_channel_is_a_resistor_chain(spacing):
    # A one-voxel-wide serpentine in 2D: the discrete problem is exactly a series of
    # conductances, so D_eff (and tau) follow from summing resistances.
    mask = np.zeros((9, 7), bool)
    path = [(0, 1), (1, 1), (2, 1), (2, 2), (2, 3), (2, 4), (2, 5), (3, 5), (4, 5), (5, 5),
            (5, 4), (5, 3), (6, 3), (7, 3), (8, 3)]
    for p in path:
        mask[p] = True
    sz, sx = spacing
    g = {0: sx / sz, 1: sz / sx}  # face "area" / centre distance in 2D
    resistance = 2 * (1 / (2 * g[0]))  # two half-voxel links to the Dirichlet faces
    for p, q in zip(path[:-1], path[1:], strict=True):
        resistance += 1 / g[0 if p[0] != q[0] else 1]
    flow = 1.0 / resistance
    d_eff = flow * (9 * sz) / (7 * sx)
    res = tr.tortuosity_factor(mask, spacing, axis=0)
    assert res.d_eff_ratio == pytest.approx(d_eff, rel=1e-6)
    assert res.tau == pytest.approx(mask.mean() / d_eff, rel=1e-6)
    # face flows are first order in the single-precision field (documented: ~1e-4)
    assert res.flux_in == pytest.approx(flow, rel=1e-4)
    assert res.flux_out == pytest.approx(flow, rel=1e-4)


def test_isolated_pores_count_in_porosity_but_do_not_conduct():
    mask = np.zeros((10, 10, 10), bool)
    mask[:, 4:6, 4:6] = True
    alone = tr.tortuosity_factor(mask, 1.0)
    mask[3:6, 0:2, 0:2] = True  # closed pore, not connected to either face
    mask[0:4, 8:10, 8:10] = True  # dead end touching the inlet only
    res = tr.tortuosity_factor(mask, 1.0)
    assert res.d_eff_ratio == pytest.approx(alone.d_eff_ratio, rel=1e-6)
    assert res.tau == pytest.approx(mask.mean() / alone.d_eff_ratio, rel=1e-6)
    assert res.percolating_fraction == pytest.approx(40 / mask.sum())


def test_a_sample_leaves_the_outside_out_of_porosity_and_d_eff(random_structure):
    """Voxels off ``sample`` (a band without data beside the structure) conduct nothing and
    are not counted: eps and D_eff are the sample's (the structure's own, measured alone);
    tau does not depend on them."""
    inner = random_structure((16, 14, 15), 0.45, seed=2)
    mask = np.zeros((16, 20, 15), bool)
    mask[:, 6:] = inner
    sample = np.zeros(mask.shape, bool)
    sample[:, 6:] = True
    for axis in (0, 2):
        alone = tr.tortuosity_factor(inner, (1.0, 0.5, 2.0), axis)
        res = tr.tortuosity_factor(mask, (1.0, 0.5, 2.0), axis, sample=sample)
        assert res.porosity == pytest.approx(inner.mean())
        assert res.d_eff_ratio == pytest.approx(alone.d_eff_ratio, rel=1e-6)
        assert res.tau == pytest.approx(alone.tau, rel=1e-6)
        without = tr.tortuosity_factor(mask, (1.0, 0.5, 2.0), axis)
        assert without.tau == pytest.approx(alone.tau, rel=1e-6)
        assert without.porosity == pytest.approx(inner.mean() * 14 / 20)
    with pytest.raises(ValueError, match="the phase has voxels off the sample"):
        tr.tortuosity_factor(mask, 1.0, 0, sample=~sample)


@pytest.mark.parametrize(
    "shape,porosity,spacing,axis",
    [((22, 20, 21), 0.45, (1.0, 1.0, 1.0), 0),  # > coarse size: exercises the multigrid
     ((20, 22, 18), 0.35, (0.5, 1.0, 1.5), 1),
     ((14, 30, 12), 0.6, (2.0, 1.0, 1.0), 2),
     ((40, 50), 0.55, (1.0, 3.0), 0)],
)
def test_matches_independent_direct_solve(shape, porosity, spacing, axis, random_structure):
    mask = random_structure(shape, porosity, seed=sum(shape))
    expected = dense_tau(mask, spacing, axis)
    assert math.isfinite(expected)
    res = tr.tortuosity_factor(mask, spacing, axis, tol=1e-9)
    assert res.converged
    assert res.tau == pytest.approx(expected, rel=1e-6)
    # face flows are first order in the (single-precision) field's error, the energy second
    assert abs(res.flux_in - res.flux_out) < 1e-3 * res.flux
    default = tr.tortuosity_factor(mask, spacing, axis)  # default tolerance: well within 1e-4
    assert default.tau == pytest.approx(expected, rel=1e-4)


def test_physical_invariances(random_structure):
    mask = random_structure((18, 20, 22), 0.5, seed=3)
    spacing = (0.4, 0.9, 1.3)
    ref = tr.tortuosity_factor(mask, spacing, axis=1, tol=1e-9)
    scaled_res = tr.tortuosity_factor(mask, tuple(10 * s for s in spacing), axis=1, tol=1e-9)
    assert scaled_res.tau == pytest.approx(ref.tau, rel=1e-6)  # tau is dimensionless
    assert scaled_res.flux == pytest.approx(10 * ref.flux, rel=1e-6)  # flow ~ area / length
    moved = np.transpose(mask, (1, 2, 0))  # the old axis 1 becomes axis 0
    res = tr.tortuosity_factor(moved, (0.9, 1.3, 0.4), axis=0, tol=1e-9)
    assert res.tau == pytest.approx(ref.tau, rel=1e-6)
    flipped = tr.tortuosity_factor(mask[:, ::-1], spacing, axis=1, tol=1e-9)
    assert flipped.tau == pytest.approx(ref.tau, rel=1e-6)  # direction does not matter


def test_anisotropic_voxels_change_tau_like_stretching_the_structure(random_structure):
    # Voxels twice as long in z are the same as the structure repeated twice along z.
    base = random_structure((10, 24, 24), 0.5, seed=7)
    stretched = np.repeat(base, 2, axis=0)
    for axis in (0, 1, 2):  # along the long voxel edge and across it
        a = tr.tortuosity_factor(base, (2.0, 1.0, 1.0), axis=axis, tol=1e-9)
        b = tr.tortuosity_factor(stretched, (1.0, 1.0, 1.0), axis=axis, tol=1e-9)
        # not identical (the discretisation differs) but the same medium: close
        assert a.tau == pytest.approx(b.tau, rel=0.05)
        c = tr.tortuosity_factor(base, 1.0, axis=axis, tol=1e-9)
        assert abs(a.tau - b.tau) < abs(c.tau - b.tau)


def test_table_progress_and_cancel(random_structure):
    mask = random_structure((16, 16, 16), 0.5, seed=1)
    calls = []
    table = tr.tortuosity_table(mask, (1, 1, 2), unit="um",
                                progress=lambda d, t: calls.append((d, t)))
    assert list(table.columns) == ["axis", "tortuosity_factor", "porosity", "percolating_fraction",
                                   "d_eff_ratio", "flux_um", "flux_imbalance", "iterations",
                                   "converged"]
    assert table["axis"].tolist() == [0, 1, 2] and table["converged"].all()
    assert calls[-1][0] == calls[-1][1] and all(d <= t for d, t in calls)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)

    def cancel(done, total):
        if done > 5:
            raise Cancelled

    with pytest.raises(Cancelled):
        tr.tortuosity_factor(mask, 1.0, progress=cancel)


@pytest.mark.parametrize(
    "mask,spacing,axis,match",
    [(np.full((5, 5, 5), 2), 1.0, 0, "binary"),
     (np.zeros((5, 5, 5), bool), 1.0, 0, "no voxel of the phase"),
     (np.ones((5, 5, 5)), (1.0, 1.0), 0, "spacing has 2 values"),
     (np.ones((5, 5, 5)), (1.0, -1.0, 1.0), 0, "positive"),
     (np.ones((5, 5, 5)), 1.0, 3, "out of range"),
     (np.ones((5, 5, 5)), 1.0, 1.5, "integer"),
     (np.ones((2, 5, 5, 5)), 1.0, 0, "must be 2D or 3D"),
     (np.where(np.eye(5, dtype=bool), np.nan, 1.0), 1.0, 0, "NaN")],
)
def test_bad_input_raises_clear_errors(mask, spacing, axis, match):
    with pytest.raises(ValueError, match=match):
        tr.tortuosity_factor(mask, spacing, axis)
    if axis != 1.5:
        with pytest.raises(ValueError, match=match):
            pathways.geodesic_tortuosity(mask, spacing, [1.0], axis if axis != 3 else 3)
        with pytest.raises(ValueError, match=match):
            pathways.constrictivity(mask, spacing, axis)


def test_labels_need_a_phase_selection():
    labels = np.random.default_rng(0).integers(0, 3, (8, 8, 8))
    with pytest.raises(ValueError, match=r"choose the phase .* labels == \d"):
        tr.tortuosity_factor(labels, 1.0)
    assert math.isfinite(tr.tortuosity_factor(labels > 0, 1.0).tau)


# --------------------------------------------------------------------------- Quantify pipeline

TRANSPORT_MEASURES = ["tortuosity", "geodesic_tortuosity", "constrictivity"]


def channels_and_wall():
    """Label 1: a straight channel along z and a wall spanning z and x; label 2 elsewhere."""
    labels = np.full((16, 12, 12), 2, np.uint8)
    labels[:, 3:6, 3:6] = 1
    labels[:, 8:10, :] = 1
    return labels


def test_pipeline_registers_transport_measures_with_analytic_results():
    from napari_corrtomo.core.quantify import MEASURES, QuantifySettings, quantify

    assert set(TRANSPORT_MEASURES) <= set(MEASURES)
    labels = channels_and_wall()
    spacing = (0.5, 0.25, 0.25)
    res = quantify(labels, spacing, "um", measures=TRANSPORT_MEASURES,
                   settings=QuantifySettings(phase=1))
    tau = res.tables["tortuosity"].set_index("axis_name")
    eps = np.mean(labels == 1)
    assert tau.loc["z", "tortuosity_factor"] == pytest.approx(1.0, abs=1e-4)
    assert tau.loc["y", "tortuosity_factor"] == np.inf  # nothing spans y: reported, no crash
    # only the wall spans x: D_eff / D_bulk is its cross-section fraction (2 of 12 rows)
    assert tau.loc["x", "tortuosity_factor"] == pytest.approx(eps / (2 / 12), rel=1e-4)
    assert "flux_um" in tau.columns
    summary = res.summary().set_index("quantity")["value"]
    assert summary["tortuosity factor z"] == pytest.approx(1.0, abs=1e-4)
    assert any("tortuosity factor y = inf" in n for n in res.notes)
    # the concentration field falls linearly along the straight channel (c=1 / 0 half a voxel out)
    field = res.arrays["concentration z"].data
    expect = 1.0 - (np.arange(16) + 0.5) / 16
    np.testing.assert_allclose(field[:, 4, 4], expect, atol=1e-4)
    assert np.isnan(field[labels != 1]).all()
    geo = res.tables["geodesic_tortuosity"]
    z = geo[geo["axis_name"] == "z"]
    # default depths: 1/8 ... 1/2 of the length, whole slices of 0.5 um
    assert z["depth_um"].tolist() == [1.0, 2.0, 3.0, 4.0]
    np.testing.assert_allclose(z["mean"], 1.0)
    np.testing.assert_allclose(geo.loc[geo["axis_name"] == "x", "mean"], 1.0)
    assert (geo.loc[geo["axis_name"] == "y", "n_paths"] == 0).all()
    beta = res.tables["constrictivity"].set_index("axis_name")["constrictivity"]
    assert beta["z"] == pytest.approx(1.0) and beta["y"] == 0.0
    assert {"geodesic tortuosity vs depth z", "intrusion curve"} <= set(res.curves)


def test_pipeline_transport_axis_choice_depths_and_anisotropy(random_structure):
    from napari_corrtomo.core.quantify import QuantifySettings, quantify

    rng_mask = random_structure((20, 18, 18), 0.55, seed=3)
    labels = np.where(rng_mask, 3, 1).astype(np.uint8)
    spacing = (2.0, 1.0, 1.0)
    res = quantify(labels, spacing, "nm", measures=["tortuosity", "geodesic_tortuosity"],
                   settings=QuantifySettings(phase=3, transport_axes=(2,), depths=(4.0, 8.0)))
    tau = res.tables["tortuosity"]
    assert tau["axis"].tolist() == [2]
    expected = tr.tortuosity_factor(rng_mask, spacing, 2).tau
    assert tau["tortuosity_factor"].item() == pytest.approx(expected, rel=1e-6)
    assert tau["tortuosity_factor"].item() == pytest.approx(dense_tau(rng_mask, spacing, 2),
                                                           rel=1e-4)
    geo = res.tables["geodesic_tortuosity"]
    assert geo["depth_nm"].tolist() == [4.0, 8.0] and set(geo["axis"]) == {2}
    direct = pathways.geodesic_tortuosity(rng_mask, spacing, (4.0, 8.0), 2)
    np.testing.assert_allclose(geo["mean"], [v.mean() for v in direct.values])


@pytest.mark.parametrize("settings, match", [
    # refused when the settings are made, before any measure
    ({"transport_axes": (3,)}, r"transport_axes must be volume axes .* got \[3\]"),
    ({"transport_axes": ()}, r"transport_axes must be volume axes .* got \[\]"),
    ({"depths": (100.0,)}, "do not fit"),
])
def test_pipeline_transport_bad_settings(settings, match):
    from napari_corrtomo.core.quantify import QuantifySettings, quantify

    labels = channels_and_wall()
    with pytest.raises(ValueError, match=match):
        quantify(labels, 1.0, "um", measures=["tortuosity", "geodesic_tortuosity"],
                 settings=QuantifySettings(phase=1, **settings))


def test_a_depth_that_does_not_fit_names_its_unit():
    """"depths must lie between 0.5 and 79.5" gave no unit."""
    from napari_corrtomo.core.quantify import QuantifySettings, quantify

    labels = channels_and_wall()
    with pytest.raises(ValueError, match=r"depths 100 um do not fit along axis 0: with a voxel "
                                         r"of 1 um .* depths must lie between 1 and \d+ um "):
        quantify(labels, 1.0, "um", measures=["geodesic_tortuosity"],
                 settings=QuantifySettings(phase=1, depths=(100.0,)))
