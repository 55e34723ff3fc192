"""Property tests (hypothesis) over the inputs users and files can give the core.

Each property says what must hold for *every* input of its kind: a clear
``ValueError`` or a correct answer, never another exception, never a changed input.
The profile (tests/conftest.py) is derandomized so CI is reproducible, and bounded:
the whole file runs in well under a minute.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, note
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from napari_corrtomo.cli import main
from napari_corrtomo.core import io
from napari_corrtomo.core._checks import MAX_BINS, check_bins, check_spacing
from napari_corrtomo.core.quantify import (
    local_thickness,
    particle_table,
    phase_fractions,
    porosity,
    separate_particles,
)
from napari_corrtomo.core.recon import Geometry, reconstruct
from napari_corrtomo.core.register import apply_to_points, fit_landmarks
from napari_corrtomo.core.resumable import content_digest
from napari_corrtomo.core.units import convert

anything = st.one_of(st.none(), st.booleans(), st.integers(-10, 10),
                     st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=4),
                     st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=4))


@given(anything, st.integers(1, 3))
def test_spacing_is_positive_per_axis_or_refused(value, ndim):
    try:
        sp = check_spacing(value, ndim)
    except ValueError:
        return
    assert len(sp) == ndim and all(isinstance(s, float) and 0 < s < np.inf for s in sp)


@given(st.floats(0, 1e9, allow_nan=False), anything)
def test_bins_are_bounded_or_refused(extent, width):
    try:
        bw, n = check_bins(extent, width)
    except ValueError as exc:
        assert "bin" in str(exc)
        return
    assert bw > 0 and 1 <= n <= MAX_BINS and n * bw >= extent * (1 - 1e-12)


labels_arrays = hnp.arrays(
    dtype=st.sampled_from([np.uint8, np.uint16, np.int32, np.dtype(">u2")]),
    shape=hnp.array_shapes(min_dims=3, max_dims=3, min_side=1, max_side=6),
    elements=st.integers(0, 3))


@given(labels_arrays, st.booleans())
def test_porosity_counts_voxels_and_leaves_the_input_alone(labels, fortran):
    lab = np.asfortranarray(labels) if fortran else labels
    before = lab.copy()
    pore, region = lab == 3, lab >= 2
    if not region.any():
        with pytest.raises(ValueError):
            porosity(pore, region)
    else:
        assert porosity(pore, region) == pytest.approx(pore.sum() / region.sum())
    fr = phase_fractions(lab, (0.5, 1.0, 2.0), "um")
    note(str(fr))
    assert fr["fraction"].sum() == pytest.approx(1.0)
    np.testing.assert_array_equal(lab, before)
    assert lab.dtype == before.dtype


masks = hnp.arrays(dtype=np.bool_, shape=hnp.array_shapes(min_dims=3, max_dims=3, min_side=1,
                                                          max_side=7))
spacings = st.lists(st.floats(0.1, 10.0), min_size=3, max_size=3)


@given(masks, spacings)
def test_local_thickness_is_positive_inside_the_phase_and_zero_outside(mask, spacing):
    before = mask.copy()
    if not mask.any() or mask.all():  # no phase, or no boundary: refused with a message
        with pytest.raises(ValueError, match="no voxel of the phase|fills the whole array"):
            local_thickness(mask, tuple(spacing), backend="numpy")
        return
    lt = local_thickness(mask, tuple(spacing), backend="numpy")
    assert lt.shape == mask.shape
    assert np.all(lt[~mask] == 0)
    assert np.all(lt[mask] >= min(spacing) * (1 - 1e-6))  # one voxel is the thinnest a phase is
    assert np.all(lt <= 2 * np.linalg.norm(np.multiply(mask.shape, spacing)))
    np.testing.assert_array_equal(mask, before)


@given(masks, spacings)
def test_particle_volumes_add_up_to_the_phase_volume(mask, spacing):
    if not mask.any():
        with pytest.raises(ValueError, match="no voxel of the phase"):
            separate_particles(mask, tuple(spacing))
        return
    labels = separate_particles(mask, tuple(spacing))
    assert np.array_equal(labels > 0, mask)  # every phase voxel in exactly one particle
    table = particle_table(labels, tuple(spacing), unit="um", surface=False)
    assert table["voxels"].sum() == mask.sum()
    assert table["volume_um3"].sum() == pytest.approx(mask.sum() * np.prod(spacing))


@given(st.sampled_from(["parallel", "tilt_series"]), st.sampled_from(["fbp", "sirt"]),
       st.integers(1, 9), st.integers(2, 12))
def test_reconstructing_zeros_gives_zeros(kind, method, n_angles, width):
    angles = np.linspace(0, 180, n_angles, endpoint=False)
    geometry = getattr(Geometry, kind)(angles, (4, width))
    volume = reconstruct(np.zeros((n_angles, 4, width), np.float32), geometry, method=method,
                         iterations=3, backend="numpy")
    assert volume.size and np.all(volume == 0)


@given(hnp.arrays(dtype=st.sampled_from([np.uint8, np.uint16, np.float32, np.float64, np.int16]),
                  shape=hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=5)),
       st.lists(st.floats(1e-3, 1e3), min_size=3, max_size=3),
       st.sampled_from(["nm", "um", "mm"]))
# the two defects this property found: one slice came back 2D, a trailing x of 1 was lost
@example(np.arange(6, dtype=np.uint8).reshape(1, 2, 3), [1.0, 2.0, 3.0], "um")
@example(np.arange(6, dtype=np.uint16).reshape(3, 2, 1), [1.0, 2.0, 3.0], "nm")
def test_tiff_round_trip_keeps_values_voxel_size_and_unit(tmp_path_factory, data, spacing, unit):
    path = tmp_path_factory.mktemp("tif") / "v.tif"
    scale = tuple(spacing[-data.ndim:])
    io.write_tiff(path, data, scale, unit)
    [vol] = io.read_volumes(path)
    np.testing.assert_array_equal(np.asarray(vol.array), data)
    got = convert(np.asarray(vol.scale, float), vol.units[0], unit)
    np.testing.assert_allclose(got, scale, rtol=1e-6)


@given(st.binary(min_size=0, max_size=64), st.binary(min_size=1, max_size=8))
def test_content_digest_tells_contents_apart(tmp_path_factory, a, extra):
    d = tmp_path_factory.mktemp("digest")
    (d / "a").write_bytes(a)
    (d / "b").write_bytes(a + extra)
    (d / "c").write_bytes(a)
    assert content_digest(d / "a") == content_digest(d / "c") != content_digest(d / "b")


@given(st.lists(st.floats(-1.0, 1.0), min_size=4, max_size=4),
       st.lists(st.floats(-50, 50), min_size=3, max_size=3), st.floats(0.2, 5.0),
       st.integers(4, 12), st.integers(0, 2 ** 16))
def test_similarity_fit_recovers_any_exact_transform(quat, shift, scale, n, seed):
    q = np.asarray(quat)
    if np.linalg.norm(q) < 1e-3:
        q = np.array([1.0, 0, 0, 0])
    w, x, y, z = q / np.linalg.norm(q)
    rot = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                    [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                    [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
    matrix = np.eye(4)
    matrix[:3, :3], matrix[:3, 3] = scale * rot, shift
    moving = np.random.default_rng(seed).uniform(-20, 20, (n, 3))
    fixed = apply_to_points(matrix, moving)
    t = fit_landmarks(fixed, moving, "similarity", unit="um", leave_one_out=False)
    np.testing.assert_allclose(apply_to_points(t.matrix, moving), fixed, atol=1e-6 * (1 + scale))


@given(st.lists(st.sampled_from(["--phase", "--matrix", "--spacing", "--bin-width", "--radius",
                                 "--outside", "1", "2", "3", "0", "-1", "1e-9", "nan", "inf",
                                 "x", "--measures", "porosity", "nope,porosity", ""]),
                max_size=6))
def test_quantify_command_line_never_escapes_with_a_traceback(tmp_path_factory, words):
    """Any argument soup: exit 0, 1 (a message) or 2 (usage), never an uncaught exception."""
    d = tmp_path_factory.mktemp("cli")
    lab = np.ones((6, 6, 6), np.uint8)
    lab[2:4, 2:4, 2:4] = 3
    lab[:, :, :2] = 2
    path = io.write_tiff(d / "l.tif", lab, (1.0, 1.0, 1.0), "um", "labels")
    try:
        code = main(["quantify", str(path), "--out", str(d / "q"), *words])
    except SystemExit as exc:  # argparse usage error
        code = exc.code
    assert code in (0, 1, 2)
