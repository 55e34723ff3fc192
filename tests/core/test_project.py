import json

import numpy as np
import pandas as pd
import pytest

from napari_corrtomo.core.classify import PixelClassifier
from napari_corrtomo.core.classify.features import FeatureSpec, FilterItem
from napari_corrtomo.core.project import (
    ProjectLayer,
    describe,
    field_of_view,
    load_project,
    read_panels,
    save_project,
)


def _layers():
    rng = np.random.default_rng(0)
    affine = np.eye(4)
    affine[:3, :3] = 1.015 * np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]])
    affine[:3, 3] = [10.0, 20.0, 30.0]
    return [
        ProjectLayer("microCT", "image", rng.random((8, 9, 10)).astype(np.float32),
                     (1.0, 1.0, 1.0), ("um",) * 3, metadata={"modality": "microCT"},
                     display={"colormap": "gray", "contrast_limits": [0.0, 1.0]}),
        ProjectLayer("nanoCT", "image", rng.random((6, 6, 6)).astype(np.float32),
                     (0.065,) * 3, ("um",) * 3, affine=affine, metadata={"modality": "nanoCT"}),
        ProjectLayer("seg", "labels", rng.integers(0, 4, (8, 9, 10)).astype(np.uint8),
                     (1.0, 1.0, 1.0), ("um",) * 3,
                     tables={"particles": pd.DataFrame({"esd_um": [12.5, 20.0]})}),
        ProjectLayer("landmarks", "points", rng.random((5, 3)) * 8, (1.0, 1.0, 1.0), ("um",) * 3),
        ProjectLayer("roi", "shapes", [np.array([[2, 1, 1], [2, 1, 5], [2, 6, 5], [2, 6, 1.0]])],
                     (1.0, 1.0, 1.0), ("um",) * 3, shape_types=["rectangle"]),
    ]


def test_project_roundtrip(tmp_path):
    layers = _layers()
    save_project(tmp_path / "proj", layers)
    back = load_project(tmp_path / "proj")
    assert [b.name for b in back] == [a.name for a in layers]
    for a, b in zip(layers, back):
        assert b.layer_type == a.layer_type and b.scale == a.scale and b.units == a.units
        if a.layer_type == "shapes":
            np.testing.assert_allclose(b.data[0], a.data[0])
            assert b.shape_types == ["rectangle"]
        else:
            np.testing.assert_allclose(np.asarray(b.data), np.asarray(a.data))
        if a.affine is not None:
            np.testing.assert_allclose(b.affine, a.affine)
    pd.testing.assert_frame_equal(back[2].tables["particles"], layers[2].tables["particles"])
    assert back[0].display["colormap"] == "gray"
    assert back[1].metadata["modality"] == "nanoCT"


def test_metadata_keeps_only_json(tmp_path):
    layer = ProjectLayer("v", "image", np.zeros((2, 2, 2)), (1, 1, 1), ("nm",) * 3,
                         metadata={"ok": 1, "obj": object(), "arr": np.arange(3)})
    save_project(tmp_path / "p", [layer])
    [back] = load_project(tmp_path / "p")
    assert back.metadata == {"ok": 1, "arr": [0, 1, 2]}


def test_failed_save_keeps_previous_project(tmp_path):
    save_project(tmp_path / "p", _layers()[:1])
    before = (tmp_path / "p" / "project.json").read_text()
    with pytest.raises(ValueError, match="unique"):
        save_project(tmp_path / "p", _layers()[:1] * 2)
    assert (tmp_path / "p" / "project.json").read_text() == before


def test_bad_project_folders(tmp_path):
    with pytest.raises(ValueError, match="no project.json"):
        load_project(tmp_path)
    save_project(tmp_path / "p", _layers()[:1])
    manifest = json.loads((tmp_path / "p" / "project.json").read_text())
    manifest["version"] = 99
    (tmp_path / "p" / "project.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="newer napari-corrtomo"):
        load_project(tmp_path / "p")
    with pytest.raises(ValueError, match="stores image"):
        ProjectLayer("x", "vectors", None, (1,), ("um",))


def test_field_of_view_and_describe():
    corners = field_of_view((11, 21, 31), (0.5, 1.0, 2.0))  # whole voxels: 5.5 x 21 x 62
    np.testing.assert_allclose(corners.max(0), [5.25, 20.5, 61.0])
    np.testing.assert_allclose(corners.min(0), [-0.25, -0.5, -1.0])
    table = describe(_layers())
    assert list(table["layer"]) == ["microCT", "nanoCT", "seg"]
    assert list(table["registered"]) == [False, True, False]
    # nanoCT: 6 voxels * 0.065 um * 1.015 along each (rotated) axis, with its unit
    extent = table.loc[1, "fov_extent"]
    assert extent.endswith(" um")
    np.testing.assert_allclose([float(v) for v in extent.removesuffix(" um").split(" x ")],
                               6 * 0.065 * 1.015, rtol=5e-4)


def test_docks_state_classifier_and_styles_round_trip(tmp_path):
    """A project holds the docks' state (Register's pairs and transform, Classify's
    classifier) and each point's and shape's colours, not only the layers."""
    rng = np.random.default_rng(1)
    labels = np.zeros((4, 12, 12), np.uint8)
    labels[1, 2:5, 2:5], labels[2, 7:10, 7:10] = 1, 2
    img = rng.normal(size=labels.shape).astype(np.float32) + labels
    clf = PixelClassifier(FeatureSpec((FilterItem("gaussian", 1.0, "3d"),)), n_trees=3, seed=0)
    clf.fit(img, labels, (1.0, 1.0, 1.0), "um", ["img"])
    layers = _layers()
    style = {"face_color": [[1.0, 0.0, 1.0, 1.0]] * 5, "current_face_color": "lime"}
    layers[3].style = style
    panels = {"register": {"active": [True, False, True], "model": "rigid"},
              "classify": {"n_trees": 3, "classifier": True}}
    save_project(tmp_path / "proj", layers, panels=panels, classifier=clf)
    assert load_project(tmp_path / "proj")[3].style == style
    back, back_clf = read_panels(tmp_path / "proj")
    assert back == panels
    np.testing.assert_array_equal(back_clf.predict_slice(img, 1), clf.predict_slice(img, 1))
    save_project(tmp_path / "bare", _layers())
    assert read_panels(tmp_path / "bare") == ({}, None)
