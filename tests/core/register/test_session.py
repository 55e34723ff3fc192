"""RegistrationSession: a transform knows the volumes it maps (a trial applied a fit of
the nanoCT onto the microCT to another volume)."""

import numpy as np
import pandas as pd
import pytest

from napari_corrtomo.core import register as reg

VOLUMES = ("microCT", "nanoCT")


def test_a_transform_is_refused_for_other_volumes_and_keeps_its_volumes(correlative_sample,
                                                                         tmp_path):
    t = correlative_sample.truth
    session = reg.RegistrationSession("um")
    session.set_points(t.landmarks_microct, t.landmarks_nanoct)
    fit = session.fit_landmarks(VOLUMES)
    assert session.volumes == VOLUMES and session.is_for(VOLUMES)
    assert session.require_transform(VOLUMES) is fit
    assert session.require_transform() is fit  # a caller that names none
    for other in (("microCT", "microCT phantom"), ("nanoCT", "microCT")):
        assert not session.is_for(other)
        with pytest.raises(ValueError, match=f"the transform is of 'nanoCT' onto 'microCT', "
                                             f"not of '{other[1]}' onto '{other[0]}'"):
            session.require_transform(other)
    # a refinement is of the same volumes; a crash-recovery state keeps them
    session.use(reg.Transform(t.nanoct_to_microct, "similarity", "um"))
    assert session.volumes == VOLUMES
    restored = reg.RegistrationSession("um")
    restored.restore(session.state())
    assert restored.volumes == VOLUMES and not restored.is_for(("nanoCT", "microCT"))
    # a loaded transform is of the volumes it is loaded for; a failed fit keeps nothing
    session.save_transform(tmp_path / "t.json")
    session.load_transform(tmp_path / "t.json", ("a", "b"))
    assert session.volumes == ("a", "b")
    np.testing.assert_array_equal(session.require_transform(("a", "b")).matrix,
                                  t.nanoct_to_microct)
    session.active[:] = [False] * len(session.active)
    with pytest.raises(ValueError):
        session.fit_landmarks(VOLUMES)
    assert session.transform is None and session.volumes is None


@pytest.mark.parametrize("refined", [False, True])
def test_a_restored_state_keeps_the_fit_its_table_and_what_the_transform_is(
        correlative_sample, refined):
    """Through JSON (a project's panels): the leave-one-out TRE and the pairs the fit
    used come back, and a landmark fit stays a fit (a refined one stays refined)."""
    import json

    from napari_corrtomo.core.io import jsonable

    t = correlative_sample.truth
    rng = np.random.default_rng(0)
    session = reg.RegistrationSession("um")
    session.set_points(t.landmarks_microct + rng.normal(0, 0.5, t.landmarks_microct.shape),
                       t.landmarks_nanoct)
    session.set_active(1, False)
    session.fit_landmarks(VOLUMES)
    if refined:
        session.use(reg.Transform(t.nanoct_to_microct, "similarity", "um"))
    restored = reg.RegistrationSession("um")
    restored.restore(json.loads(json.dumps(jsonable(session.state()))))
    restored.set_points(session.fixed, session.moving)
    assert restored.source() == session.source() == ("refined" if refined else "fit")
    want, got = session.table(), restored.table()
    assert got["loo_tre_um"].notna().sum() == len(t.landmarks_microct) - 1  # all but pair 1
    pd.testing.assert_frame_equal(got, want)
