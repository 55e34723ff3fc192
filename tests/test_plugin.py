"""The npe2 contributions in a real napari viewer: manifest, readers, writers, samples, widgets."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from npe2 import PluginManager

from napari_corrtomo.core import io

PLUGIN = "napari-corrtomo"


def _manifest():
    return PluginManager.instance().get_manifest(PLUGIN)


def test_npe2_validate_passes():
    npe2 = Path(sys.executable).with_name("npe2")
    result = subprocess.run([str(npe2), "validate", "napari_corrtomo", "--imports"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in result.stdout


def test_manifest_is_shipped_inside_the_package():
    import napari_corrtomo

    shipped = Path(napari_corrtomo.__file__).with_name("napari.yaml")
    assert shipped.read_text() == (Path(__file__).parents[1] / "napari.yaml").read_text()


def test_every_declared_widget_instantiates(make_napari_viewer):
    """Every dock opens on the sample data and follows layer events without reading a
    private napari attribute (through the plugin's viewer proxy each read raises a
    deprecation warning: a yellow notification for the user)."""
    import warnings

    viewer = make_napari_viewer()
    widgets = _manifest().contributions.widgets or []
    assert widgets, "the manifest declares no dock widgets"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for contribution in widgets:
            dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN,
                                                                contribution.display_name)
            assert widget is not None and dock.isVisible() is not None
        viewer.open_sample(PLUGIN, "correlative_particles")
        viewer.layers.remove("nanoCT truth")
    assert [str(w.message) for w in caught if "Private attribute" in str(w.message)] == []


def _written_files(tmp_path):
    data = np.random.default_rng(0).normal(size=(5, 12, 14)).astype(np.float32)
    paths = {}
    paths["tif"] = io.write_tiff(tmp_path / "a.tif", data, (2.0, 0.5, 0.5), "um")
    paths["zarr"] = io.write_ome_zarr(tmp_path / "b.ome.zarr", data, (20.0, 10.0, 10.0), "nm")
    import h5py
    import mrcfile

    with mrcfile.new(tmp_path / "c.mrc") as m:
        m.set_data(data)
        m.voxel_size = 4.0
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f.create_dataset("vol", data=data).attrs["element_size_um"] = (0.13, 0.065, 0.065)
    expected = {
        "tif": ((2.0, 0.5, 0.5), "um"),
        "zarr": ((20.0, 10.0, 10.0), "nm"),
        "mrc": ((0.4, 0.4, 0.4), "nm"),
        "h5": ((0.13, 0.065, 0.065), "um"),
    }
    paths["mrc"] = tmp_path / "c.mrc"
    paths["h5"] = tmp_path / "d.h5"
    return data, paths, expected


def test_every_reader_sets_scale_and_units(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    data, paths, expected = _written_files(tmp_path)
    for key, path in paths.items():
        [layer] = viewer.open(str(path), plugin=PLUGIN)
        scale, unit = expected[key]
        np.testing.assert_allclose(layer.scale, scale, err_msg=key)
        assert [str(u) for u in layer.units] == [
            {"um": "micrometer", "nm": "nanometer"}[unit]] * 3, key
        np.testing.assert_allclose(np.asarray(layer.data[0] if layer.multiscale else layer.data),
                                   data, err_msg=key)


def test_corrupt_and_unsupported_files_add_nothing(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"II*\x00 this is not a TIFF")
    with pytest.raises(ValueError, match="broken.tif"):
        viewer.open(str(bad), plugin=PLUGIN)
    other = tmp_path / "notes.docx"
    other.write_bytes(b"text")
    with pytest.raises(ValueError, match="No compatible readers"):
        viewer.open(str(other), plugin=PLUGIN)
    assert len(viewer.layers) == 0


def test_writers_roundtrip_scale_units(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    img = viewer.add_image(np.random.default_rng(0).random((4, 8, 8)).astype(np.float32),
                           scale=(20.0, 10.0, 10.0), units=("nm", "nm", "nm"), name="img")
    lab = viewer.add_labels(np.arange(256, dtype=np.uint8).reshape(4, 8, 8),
                            scale=(1.0, 0.5, 0.5), units=("um",) * 3, name="lab")
    for layer, name in ((img, "img.tif"), (img, "img.ome.zarr"), (lab, "lab.tif"),
                        (lab, "lab.ome.zarr")):
        layer.save(str(tmp_path / name), plugin=PLUGIN)
        [v] = io.read_volumes(tmp_path / name)
        assert v.scale == tuple(layer.scale), name
        assert v.layer_type == layer._type_string, name
        np.testing.assert_array_equal(np.asarray(v.array), layer.data)


def test_sample_data_layers_carry_physical_frames(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "correlative_particles")
    frames = {layer.name: (tuple(layer.scale), str(layer.units[0])) for layer in viewer.layers}
    assert frames["microCT"] == ((1.0, 1.0, 1.0), "micrometer")
    assert frames["nanoCT"] == ((0.065,) * 3, "micrometer")
    assert "ET" not in frames
    assert viewer.layers["nanoCT truth"].visible is False
    assert viewer.layers["nanoCT truth"].metadata["phases"]["3"] == "macropore"
    assert viewer.layers["microCT truth"].metadata["modality"] == "microCT"
    viewer.open_sample(PLUGIN, "correlative_et")
    assert (tuple(viewer.layers["ET"].scale), str(viewer.layers["ET"].units[0])) == (
        (0.5,) * 3, "nanometer")
    viewer.open_sample(PLUGIN, "fib_sem_stack")
    se2 = viewer.layers["FIB-SEM SE2"]
    assert tuple(se2.scale) == (20.0, 10.0, 10.0)
    assert len(se2.metadata["truth"]["thickness_nm"]) == se2.data.shape[0]
    phases = viewer.layers["FIB-SEM truth"].metadata["phases"]  # the labels name them too
    assert phases == se2.metadata["truth"]["phases"] and "pore" in phases.values()


def test_projection_samples_keep_one_length_unit_each(make_napari_viewer):
    """The ET tilt series (nm) is a sample of its own: drawn beside the um scans it made
    the first slider 716,000 steps long and a new reconstruction a speck."""
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "tomography_projections")
    assert {str(u) for layer in viewer.layers for u in layer.units} == {"micrometer"}
    assert "ET tilt series" not in viewer.layers
    assert viewer.dims.nsteps[0] <= 1000, viewer.dims.nsteps
    viewer.layers.clear()
    viewer.open_sample(PLUGIN, "et_tilt_series")
    assert [layer.name for layer in viewer.layers] == ["ET tilt series", "ET phantom"]
    assert {str(u) for layer in viewer.layers for u in layer.units} == {"nanometer"}
