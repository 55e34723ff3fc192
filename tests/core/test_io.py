import h5py
import mrcfile
import numpy as np
import pytest
import tifffile
import zarr

from napari_corrtomo.core import io


@pytest.fixture
def vol():
    return np.random.default_rng(0).normal(size=(6, 20, 24)).astype(np.float32)


def test_imagej_tiff_roundtrip(tmp_path, vol):
    path = io.write_tiff(tmp_path / "a.tif", vol, (0.5, 0.25, 0.2), "um")
    [v] = io.read_volumes(path)
    np.testing.assert_array_equal(v.data, vol)
    assert v.scale == pytest.approx((0.5, 0.25, 0.2))
    assert v.units == ("um",) * 3
    assert v.layer_type == "image"


def test_tiff_labels_flag_roundtrip(tmp_path):
    lab = np.zeros((4, 8, 8), np.int64)
    lab[1:3, 2:5, 2:5] = 7
    [v] = io.read_volumes(io.write_tiff(tmp_path / "l.tif", lab, (20, 10, 10), "nm", "labels"))
    assert v.layer_type == "labels"
    assert v.units == ("nm",) * 3
    np.testing.assert_array_equal(v.data, lab)


def test_fiji_style_imagej_tiff(tmp_path, vol):
    # Written the way Fiji does: unit 'micron', resolution in pixels per unit, spacing for z.
    tifffile.imwrite(tmp_path / "fiji.tif", vol, imagej=True, resolution=(1 / 0.3, 1 / 0.3),
                     metadata={"spacing": 1.2, "unit": "micron", "axes": "ZYX"})
    [v] = io.read_volumes(tmp_path / "fiji.tif")
    assert v.scale == pytest.approx((1.2, 0.3, 0.3))
    assert v.units == ("um",) * 3


def test_ome_tiff_channels_and_units(tmp_path):
    data = np.random.default_rng(1).integers(0, 255, (2, 5, 16, 16), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "s.ome.tif", data, ome=True,
                     metadata={"axes": "CZYX", "PhysicalSizeX": 8.4, "PhysicalSizeXUnit": "nm",
                               "PhysicalSizeY": 8.4, "PhysicalSizeYUnit": "nm",
                               "PhysicalSizeZ": 10.0, "PhysicalSizeZUnit": "nm"})
    vols = io.read_volumes(tmp_path / "s.ome.tif")
    assert len(vols) == 2
    for c, v in enumerate(vols):
        np.testing.assert_array_equal(v.data, data[c])
        assert v.scale == pytest.approx((10.0, 8.4, 8.4))
        assert v.units == ("nm",) * 3


def test_plain_tiff_has_pixel_units(tmp_path, vol):
    tifffile.imwrite(tmp_path / "plain.tif", vol)
    [v] = io.read_volumes(tmp_path / "plain.tif")
    assert v.units == ("pixel",) * 3 and v.scale == (1.0, 1.0, 1.0)


def test_mrc_angstrom_to_nm(tmp_path, vol):
    with mrcfile.new(tmp_path / "t.rec") as m:
        m.set_data(vol)
        m.voxel_size = (5.0, 5.0, 5.0)  # Angstrom
    [v] = io.read_volumes(tmp_path / "t.rec")
    np.testing.assert_array_equal(v.data, vol)
    assert v.scale == pytest.approx((0.5, 0.5, 0.5)) and v.units == ("nm",) * 3


def test_mrc_written_before_mrc2014_is_read_and_a_truncated_one_refused(tmp_path, vol):
    """Older software wrote MRC files without the "MAP " ID (e.g. etspy's HAADF tilt
    series): read when the header matches the data block exactly, refused otherwise."""
    with mrcfile.new(tmp_path / "new.mrc") as m:
        m.set_data(vol.astype(np.int16))
        m.voxel_size = 5.0
    raw = bytearray((tmp_path / "new.mrc").read_bytes())
    raw[208:212] = b"\x00" * 4  # no MAP ID
    (tmp_path / "old.mrc").write_bytes(bytes(raw))
    [v] = io.read_volumes(tmp_path / "old.mrc")
    np.testing.assert_array_equal(v.data, vol.astype(np.int16))
    assert v.scale == pytest.approx((0.5, 0.5, 0.5)) and v.units == ("nm",) * 3
    (tmp_path / "short.mrc").write_bytes(bytes(raw[:-10]))
    with pytest.raises(ValueError, match="short.mrc"):
        io.read_volumes(tmp_path / "short.mrc")


def test_hdf5_dataset_choice_and_frames(tmp_path, vol):
    path = tmp_path / "d.h5"
    with h5py.File(path, "w") as f:
        a = f.create_dataset("/entry/data", data=vol)
        a.attrs["element_size_um"] = (2.0, 1.0, 1.0)
        b = f.create_dataset("/seg", data=(vol > 0).astype(np.uint8))
        b.attrs["voxel_size"] = 65.0
        b.attrs["units"] = "nm"
        b.attrs["layer_type"] = "labels"
        f.create_dataset("/scalar", data=np.arange(3))
    assert io.hdf5_datasets(path) == ["/entry/data", "/seg"]
    both = io.read_volumes(path)
    assert [v.layer_type for v in both] == ["image", "labels"]
    [one] = io.read_volumes(path, dataset="/entry/data")
    assert one.scale == (2.0, 1.0, 1.0) and one.units == ("um",) * 3
    [seg] = io.read_volumes(f"{path}:/seg")
    assert seg.scale == (65.0, 65.0, 65.0) and seg.units == ("nm",) * 3
    with pytest.raises(ValueError, match="no dataset '/nope'"):
        io.read_volumes(path, dataset="/nope")


def test_ome_zarr_roundtrip_is_lazy_multiscale(tmp_path):
    import dask.array as da

    data = np.random.default_rng(2).normal(size=(40, 70, 90)).astype(np.float32)
    io.write_ome_zarr(tmp_path / "v.ome.zarr", data, (1.0, 0.5, 0.5), "um", min_level_size=16)
    [v] = io.read_volumes(tmp_path / "v.ome.zarr")
    assert isinstance(v.data, list) and all(isinstance(d, da.Array) for d in v.data)
    assert [d.shape for d in v.data] == [(40, 70, 90), (20, 35, 45)]
    np.testing.assert_array_equal(v.data[0].compute(), data)
    np.testing.assert_allclose(v.data[1].compute(), data[:40, :70, :90].reshape(20, 2, 35, 2, 45, 2)
                               .mean(axis=(1, 3, 5)), rtol=1e-5)
    assert v.scale == (1.0, 0.5, 0.5) and v.units == ("um",) * 3


def test_ome_zarr_labels_subsampled_not_averaged(tmp_path):
    lab = np.zeros((32, 32, 32), np.uint8)
    lab[::2, ::2, ::2] = 3
    io.write_ome_zarr(tmp_path / "l.ome.zarr", lab, (1, 1, 1), "nm", layer_type="labels",
                      min_level_size=8)
    [v] = io.read_volumes(tmp_path / "l.ome.zarr")
    assert v.layer_type == "labels"
    assert set(np.unique(v.data[1].compute())) == {3}  # a mean would give 0.375


def test_plain_zarr_array_with_attrs(tmp_path):
    z = zarr.open_array(str(tmp_path / "p.zarr"), mode="w", shape=(4, 5, 6), dtype="f4")
    z[:] = 1.5
    z.attrs.update({"scale": [3.0, 2.0, 2.0], "units": "nm"})
    [v] = io.read_volumes(tmp_path / "p.zarr")
    assert v.scale == (3.0, 2.0, 2.0) and v.units == ("nm",) * 3
    assert float(v.data.sum().compute()) == pytest.approx(1.5 * 120)


@pytest.mark.parametrize("name,content", [
    ("bad.tif", b"II*\x00garbage that is not a tiff"),
    ("bad.mrc", b"\x00" * 100),
    ("bad.h5", b"not hdf5 at all"),
])
def test_corrupt_files_raise_value_error(tmp_path, name, content):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ValueError, match=name):
        io.read_volumes(tmp_path / name)


def test_unsupported_and_missing(tmp_path):
    (tmp_path / "x.docx").write_bytes(b"hi")
    with pytest.raises(ValueError, match="unsupported file type"):
        io.read_volumes(tmp_path / "x.docx")
    with pytest.raises(ValueError, match="no such file"):
        io.read_volumes(tmp_path / "missing.tif")
    assert not io.can_read(tmp_path / "x.docx")


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "t.csv"
    io.write_table(target, {"a_um": [1, 2]})
    before = target.read_text()

    class Boom:
        pass

    with pytest.raises(ValueError):  # pandas refuses the object
        io.write_table(target, Boom())
    assert target.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]  # no temp file left behind


def test_atomic_directory_replace(tmp_path):
    data = np.ones((8, 8, 8), np.float32)
    io.write_ome_zarr(tmp_path / "d.ome.zarr", data, 1, "um")
    io.write_ome_zarr(tmp_path / "d.ome.zarr", 2 * data, 1, "um")
    [v] = io.read_volumes(tmp_path / "d.ome.zarr")
    assert float(v.array.compute().mean()) == 2.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.ome.zarr"]


def test_wide_labels_and_float64_keep_their_values(tmp_path):
    big = np.zeros((3, 6, 6), np.uint32)
    big[1, 2, 2] = 70_000  # beyond uint16: written as OME-TIFF, values exact
    [v] = io.read_volumes(io.write_tiff(tmp_path / "big.tif", big, (2, 1, 1), "um", "labels"))
    np.testing.assert_array_equal(v.data, big)
    assert v.scale == (2.0, 1.0, 1.0) and v.units == ("um",) * 3
    f64 = np.random.default_rng(0).normal(size=(2, 4, 4))
    [w] = io.read_volumes(io.write_tiff(tmp_path / "f.tif", f64, (1, 1, 1), "nm"))
    np.testing.assert_array_equal(w.data, f64)


def test_jsonable_keeps_what_strict_json_holds():
    """Project and transform metadata go through one conversion: strict JSON comes out
    (no NaN tokens, no crash on objects), small arrays survive as lists."""
    import json

    from napari_corrtomo.core.io import jsonable

    value = {1: np.float32(0.5), "nan": float("nan"), "arr": np.array([[1, 2], [3, np.inf]]),
             "big": np.zeros(5000), "obj": object(), "t": (np.int64(3), "s", None, True),
             "nested": [{"x": np.bool_(False)}]}
    out = jsonable(value)
    assert out == {"1": 0.5, "nan": None, "arr": [[1.0, 2.0], [3.0, None]],
                   "t": [3, "s", None, True], "nested": [{"x": False}]}
    assert json.loads(json.dumps(out, allow_nan=False)) == out


@pytest.mark.parametrize("dtype, value", [
    (np.uint8, 200), (np.int8, -3), (np.uint16, 60_000), (np.int16, -3), (np.int16, 300),
    (np.uint32, 70_000), (np.int32, -70_000), (np.int64, 5), (np.uint64, 2**31 + 5),
    (bool, True)])
def test_tiff_keeps_labels_of_every_integer_type(tmp_path, dtype, value):
    """uint32 beyond 16 bit and negative int16 once came back as images (OME-TIFF kept
    no layer type); every integer type now keeps it, and its values."""
    lab = np.zeros((3, 5, 6), dtype)
    lab[1, 2, 3] = value
    [v] = io.read_volumes(io.write_tiff(tmp_path / "l.tif", lab, (2, 1, 1), "um", "labels"))
    assert v.layer_type == "labels"
    np.testing.assert_array_equal(v.array, lab)
    assert v.scale == (2.0, 1.0, 1.0) and v.units == ("um",) * 3


def test_tiff_refuses_labels_beyond_32_bit(tmp_path):
    lab = np.full((2, 3, 3), 2**33, np.int64)
    with pytest.raises(ValueError, match="write it as .ome.zarr"):
        io.write_tiff(tmp_path / "l.tif", lab, 1, "um", "labels")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("name, data", [
    ("imagej.tif", np.ones((3, 4, 5), np.float32)),
    ("ome.tif", np.ones((3, 4, 5), np.float64)),  # float64: OME-TIFF
    ("v.ome.zarr", np.ones((3, 4, 5), np.float32))])
def test_value_unit_roundtrip(tmp_path, name, data):
    """The unit of the values (a reconstruction's 1/um) rides with the file; a file
    written without one has none."""
    volume = io.Volume(data, (1, 1, 1), ("nm",) * 3, "v", value_unit="1/nm")
    [v] = io.read_volumes(io.write_volume(tmp_path / name, volume))
    assert v.value_unit == "1/nm" and v.units == ("nm",) * 3
    [w] = io.read_volumes(io.write_volume(tmp_path / f"w{name}", io.Volume(data, 1, "nm", "w")))
    assert w.value_unit is None


def test_ome_zarr_axis_units_are_ngff_names(tmp_path):
    """NGFF 0.4 spells axis units as UDUNITS-2 names; files written with the short
    spelling ('um') still open; axes of unknown size carry no unit."""
    import json

    io.write_ome_zarr(tmp_path / "v.ome.zarr", np.zeros((4, 4, 4), np.uint8), 1, "um")
    attrs = json.loads((tmp_path / "v.ome.zarr" / ".zattrs").read_text())
    assert [a["unit"] for a in attrs["multiscales"][0]["axes"]] == ["micrometer"] * 3
    assert io.read_volumes(tmp_path / "v.ome.zarr")[0].units == ("um",) * 3
    for axis in attrs["multiscales"][0]["axes"]:
        axis["unit"] = "um"  # as written before
    (tmp_path / "v.ome.zarr" / ".zattrs").write_text(json.dumps(attrs))
    assert io.read_volumes(tmp_path / "v.ome.zarr")[0].units == ("um",) * 3
    io.write_ome_zarr(tmp_path / "p.ome.zarr", np.zeros((4, 4, 4), np.uint8), 1, "pixel")
    attrs = json.loads((tmp_path / "p.ome.zarr" / ".zattrs").read_text())
    assert all("unit" not in a for a in attrs["multiscales"][0]["axes"])
    assert io.read_volumes(tmp_path / "p.ome.zarr")[0].units == ("pixel",) * 3


def test_reader_gives_the_value_unit_in_the_layer_metadata(tmp_path):
    from napari_corrtomo._reader import read_layers
    from napari_corrtomo._writer import write_image

    path = io.write_tiff(tmp_path / "r.tif", np.ones((2, 3, 3), np.float32), 1, "um",
                         value_unit="1/um")
    [(data, meta, kind)] = read_layers(str(path))
    assert meta["metadata"]["value_unit"] == "1/um" and kind == "image"
    # a layer saved again keeps it
    [again] = write_image(str(tmp_path / "again.ome.zarr"), data, meta)
    assert io.read_volumes(again)[0].value_unit == "1/um"
