"""``corrtomo demo``: the whole correlative chain headless, each quantity next to its truth.

The demo is run once (about 80 s of CPU; 1.5-3.5 min wall on the shared 2-core VM).
Tolerances are stated per quantity; they leave room above the errors measured at seed 0
(in brackets) and explain where an error is systematic rather than noise.
"""

from __future__ import annotations

import pandas as pd
import pytest

from napari_corrtomo.cli import main


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--out", str(out)]) == 0
    summary = pd.read_csv(out / "summary.csv")
    return out, summary


def _q(summary: pd.DataFrame, name: str) -> pd.Series:
    rows = summary.loc[summary["quantity"] == name]
    assert len(rows) == 1, f"{name!r} is in summary.csv {len(rows)} times"
    return rows.iloc[0]


def test_summary_has_value_truth_error_unit(demo):
    out, summary = demo
    assert list(summary.columns[:2]) == ["step", "quantity"]
    assert {"quantity", "value", "truth", "error", "unit"} <= set(summary.columns)
    with_truth = summary.dropna(subset=["truth"])
    assert (with_truth["error"] - (with_truth["value"] - with_truth["truth"])).abs().max() < 1e-9
    assert summary["unit"].notna().all()
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    particles = pd.read_csv(out / "truth_particles.csv")
    assert "esd_um" in particles.columns and len(particles) > 100
    for name in ("microCT", "nanoCT", "ET"):
        assert (out / f"{name}_segmentation.tif").exists()


@pytest.mark.parametrize("name, tolerance", [
    # FSC of even/odd halves vs the resolution the object gives (Rosenthal-Henderson)
    ("microCT FSC resolution (1/2-bit, truth: FSC vs object)", dict(rel=0.15)),  # [+2 %]
    ("nanoCT FSC resolution (1/2-bit, truth: FSC vs object)", dict(rel=0.15)),  # [+2 %]
    ("ET FSC resolution (1/2-bit, truth: FSC vs object)", dict(rel=0.15)),  # [-2 %]
    # registration of the reconstructions: translation / TRE below 0.5 um (half a voxel)
    ("refined: TRE (RMS over nanoCT FOV)", dict(abs=0.5)),  # [0.18 um]
    ("refined: scale", dict(rel=0.005)),  # [+0.1 %]
    # microCT particles on the 3-class random-forest segmentation (pores are resin), solid
    # boundary at the mid grey level, pores closed particle by particle, sphere envelopes
    ("microCT particles separated", dict(rel=0.05)),  # [258 of 260]
    ("ESD mean", dict(rel=0.03)),  # [-0.4 %]
    ("ESD log-normal mode", dict(rel=0.05)),  # [+0.8 %]
    ("ESD error per particle (median abs)", dict(abs=0.5)),  # [0.12 um]
    # the mid grey level loses the thinnest solid walls between 4.5-voxel pores
    ("per-particle porosity mean", dict(rel=0.06)),  # [+4.4 %; +3.6 to +4.7 % over seeds 0-4]
    ("per-particle porosity error (RMS)", dict(abs=0.04)),  # [0.020]
    ("picked particle ESD (microCT)", dict(rel=0.06)),  # [-3 %]
    # the nanoCT's field of view is centred on a microCT envelope (inside it: 0 um)
    ("picked particle: nanoCT field-of-view centre to its microCT envelope", dict(abs=1e-9)),
    ("microCT macropore fraction (in the particle envelopes)", dict(rel=0.04)),  # [-0.8 %]
    # nanoCT: the spherical envelope is right on the true solid (+0.001) and on the
    # segmentation whose boundary lies at the mid grey level (+0.002)
    ("nanoCT particle macroporosity", dict(abs=0.015)),  # [+0.002]
    ("nanoCT macroporosity, same envelope on the true solid", dict(abs=0.01)),  # [+0.001]
    # the same particle's porosity from the grey values (partial volume): +0.005
    ("nanoCT particle macroporosity (partial volume, from grey values)", dict(abs=0.02)),
    ("closed-pore fraction of pore volume", dict(abs=0.005)),  # [+0.0002 of 0.0101]
    ("nanoCT PoSD mean (MSI, voxel-weighted; truth: MSI of true pores)", dict(rel=0.04)),
    # [-0.2 %; -4 % with the forest's boundary, -23 % with the rolling-ball envelope]
    ("nanoCT PoSD log-normal mode", dict(rel=0.04)),  # [0.0 %]
    # nanoCT and ET forests corrected live (demo.CORRECTED_FORESTS; interior strokes
    # alone: awe 2.3 % and 2.1 %, ET pore fraction -3.0 to +6.2 % over seeds 0-9)
    ("nanoCT awe", dict(abs=0.5)),  # [0.02 %]
    ("nanoCT solid fraction", dict(rel=0.02)),  # [0.0 %]
    ("ET awe", dict(abs=1.0)),  # [0.24 %]
    ("ET macropore fraction", dict(rel=0.02)),  # [+0.1 %; -0.2 to +0.3 % over seeds 0-9]
    # ET: mesopores are resolved; MSI of the segmentation vs the MSI of the true pores
    ("ET mesoporosity", dict(rel=0.02)),  # [+0.1 %]
    ("ET PoSD mean (MSI, voxel-weighted; truth: MSI of true pores)", dict(rel=0.05)),  # [-2 %]
    ("ET PoSD log-normal mode (truth: MSI of true pores)", dict(rel=0.1)),  # [-2 %]
    ("combined porosity (nanoCT macro + ET meso)", dict(rel=0.05)),  # [-0.9 %]
    # FIB-SEM, forest trained live: interior strokes and 4 rounds of correction strokes
    # (pore fraction -9 to -14 % with the interior strokes alone, awe 9.8-13.5 %)
    ("FIB pore fraction", dict(rel=0.05)),  # [-0.7 %; -2.2 to +2.4 % over seeds 0-9]
    ("FIB carbon-binder fraction", dict(rel=0.08)),  # [+1.5 %; -5.1 to +4.3 %]
    ("FIB active material fraction", dict(rel=0.02)),  # [+0.1 %; -0.1 to +0.3 %]
    ("FIB awe (held-out slices)", dict(abs=6.1)),  # [4.1 %; Osenberg et al.: 6.1 %]
])
def test_quantity_within_tolerance_of_truth(demo, name, tolerance):
    _, summary = demo
    row = _q(summary, name)
    assert row["value"] == pytest.approx(row["truth"], **tolerance), row.to_dict()


def test_et_matrix_transport_within_hashin_shtrikman_bounds(demo):
    # diffusion around insulating spherical mesopores: tau >= 1 + phi/2 and
    # D_eff/D_bulk <= 2(1-phi)/(2+phi) (bounds, exact only in the dilute limit)
    _, summary = demo
    tau = _q(summary, "ET matrix tortuosity factor (z; reference: lower bound 1 + phi/2)")
    assert tau["truth"] <= tau["value"] < 1.5 * tau["truth"]
    d_eff = _q(summary, "ET matrix D_eff / D_bulk (z; reference: upper bound 2(1-phi)/(2+phi))")
    assert 0.5 * d_eff["truth"] < d_eff["value"] <= d_eff["truth"]


@pytest.mark.parametrize("seed", [0, 2])
def test_quantify_step_on_the_truth_labels_is_within_5_percent(correlative_sample, seed,
                                                             tmp_path):
    """The quantify chain alone (segmentation = the truth labels; microCT and nanoCT pores
    painted as resin, as the classifier sees them): every porosity and pore/particle size
    within 5 %
    of its truth, so what remains in the demo is the segmentation's error (issue 18).
    Measured at seed 0: per-particle porosity +0.1 %, nanoCT macroporosity +0.9 % (the
    rolling-ball envelope gave -11 %), nanoCT PoSD mean -2.1 % and mode -2.7 % (were -23 %
    and -33 %), combined porosity +0.4 %. Seed 2: a second sample, its target particle
    touching a larger one (what the classified demo then merged is in
    docs/benchmarks/demo_seeds.md)."""
    import numpy as np

    from napari_corrtomo.core.synthetic import PORE, RESIN, correlative_particles
    from napari_corrtomo.demo import DemoContext, reconstruct_correlative, step_quantify

    sample = correlative_sample if seed == 0 else correlative_particles(seed=seed)
    t = sample.truth
    micro, nano = np.asarray(t.microct_labels.data), np.asarray(t.nanoct_labels.data)
    segs = {"microCT": np.where(micro == PORE, RESIN, micro),
            "nanoCT": np.where(nano == PORE, RESIN, nano), "ET": np.asarray(t.et_labels.data)}
    ctx = DemoContext(out=tmp_path, seed=seed,
                      data={"correlative": sample, "segmentation": segs})
    # the images the demo classifies (its boundaries move to their mid grey level)
    reconstruct_correlative(ctx)
    step_quantify(ctx)
    got = {q.name: q for q in ctx.quantities}
    for name in ("per-particle porosity mean",
                 "microCT macropore fraction (in the particle envelopes)",
                 "nanoCT particle macroporosity",
                 "nanoCT particle macroporosity (partial volume, from grey values)",
                 "nanoCT PoSD mean (MSI, voxel-weighted; truth: MSI of true pores)",
                 "nanoCT PoSD log-normal mode", "ESD mean", "ESD log-normal mode",
                 "picked particle ESD (microCT)",
                 "ET mesoporosity", "combined porosity (nanoCT macro + ET meso)"):
        q = got[name]
        assert q.measured == pytest.approx(q.truth, rel=0.05), (name, q.measured, q.truth)
    # the MSI of the true mesopores against the spheres' analytic volume-weighted diameter
    # (overlapping spheres cut by the faces: 0.0 and -1.8 % on seeds 0 and 2)
    assert got["ET PoSD mean (MSI, voxel-weighted; truth: MSI of true pores)"].truth == \
        pytest.approx(got["ET mesopore spheres' volume-weighted diameter (analytic)"].measured,
                      rel=0.05)
    # interface widths against 1.349 x the PSF sigma the images were rendered with: nanoCT
    # -0.9 to -1.7 % over seeds 0-4 (-11 % before sub-voxel distances); the microCT's
    # 2.25-voxel pores are barely edges: +4.9 to +7.5 %
    for name, rel in (("nanoCT proxigram dx (x75 - x25)", 0.05),
                      ("microCT proxigram dx (x75 - x25)", 0.1)):
        q = got[name]
        assert q.measured == pytest.approx(q.truth, rel=rel), (name, q.measured, q.truth)


def test_a_subset_of_steps_runs_alone_and_unknown_steps_are_named(tmp_path, monkeypatch):
    from napari_corrtomo import demo as demo_module

    ran = []

    def step(name):
        def run(ctx):
            ran.append(name)
            ctx.quantity(f"{name} value", 1.0, 1.0, "um")
        return run

    monkeypatch.setattr(demo_module, "STEPS", [(n, step(n)) for n in ("a", "b", "c")])
    with pytest.raises(ValueError, match=r"unknown demo steps \['x'\]"):
        demo_module.run_demo(tmp_path / "x", steps=["a", "x"])
    report = demo_module.run_demo(tmp_path / "r", steps=["c", "a"])
    assert ran == ["a", "c"]  # in the demo's order, not the caller's
    assert set(report.timings) == {"a", "c"}
    assert list(pd.read_csv(tmp_path / "r" / "summary.csv")["quantity"]) == ["a value",
                                                                            "c value"]
