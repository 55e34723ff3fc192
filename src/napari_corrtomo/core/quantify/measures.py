"""The measures of the quantification pipeline, each registered as a :class:`~.pipeline.MeasureSpec`.

A measure is ``func(data, settings, result, progress)``: it reads the masks that
:class:`~.pipeline.MeasureData` derives once per run and writes summary rows,
tables, result volumes, size distributions and curves into the
:class:`~.pipeline.QuantifyResult`. Measures marked ``lazy`` also run block by block
on dask/zarr labels.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from .._checks import SettingError
from ..backend import reduce_blocks
from ..connected import label
from ..progress import report, scaled
from ._common import edt_distance
from .correlation import lineal_path, two_point_correlation
from .distributions import SizeDistribution, size_distribution, value_counts
from .envelope import labels_at, particle_envelopes, spherical_envelopes
from .interface import proxigram
from .particles import (
    _border_of,
    close_each,
    fill_holes,
    particle_table,
    separate_particles,
)
from .pathways import constrictivity, geodesic_tortuosity, intrusion_curve
from .pipeline import (
    IN_MEMORY,
    Curve,
    MeasureData,
    MeasureSpec,
    QuantifyResult,
    QuantifySettings,
    ResultArray,
    register,
)
from .porosity import (
    closed_pores,
    inner_pores,
    label_counts,
    partial_volume_porosity,
    phase_fractions,
    phase_levels,
    volume_fraction_profile,
)
from .surface import surface_area
from .thickness import local_thickness
from .transport import tortuosity_factor

#: a phase (porosity) or one particle filling more than this fraction of the sample (of
#: the volume) is most likely a wrong label choice, and a note says so
WHOLE_FIELD = 0.7


def _measure_porosity(d: MeasureData, s: QuantifySettings, r: QuantifyResult, progress) -> None:
    table = phase_fractions(d.labels, d.spacing, d.unit, names=dict(s.phase_names))
    r.tables["phase_fractions"] = table
    # the phase lies inside the sample (the outside labels exclude it), so both counts
    # come from the label counts: one pass, in memory or block by block
    counts = dict(zip(table["label"].to_numpy().tolist(), table["voxels"].to_numpy().tolist(),
                      strict=True))
    n_phase = int(counts.get(s.phase, 0))
    if s.matrix is not None:
        n_sample = n_phase + int(counts.get(s.matrix, 0))
    else:
        n_sample = int(sum(n for v, n in counts.items() if v not in s.outside))
    voxel = float(np.prod(d.spacing))
    r.add("porosity", "porosity (phase / sample)", n_phase / n_sample, "fraction")
    n_left = sum(int(counts.get(v, 0)) for v in d.left_out())
    if n_phase / n_sample > WHOLE_FIELD and n_phase / (n_sample + n_left) <= WHOLE_FIELD:
        # the labels left out of the sample make the phase fill it, not a wrong phase label
        r.notes.append(f"the porosity {n_phase / n_sample:.0%} is of phase + matrix only; "
                       f"with the labels left out of the sample (see their note) it would be "
                       f"{n_phase / (n_sample + n_left):.0%}")
    elif n_phase / n_sample > WHOLE_FIELD:
        name = dict(s.phase_names).get(s.phase)
        r.notes.append(f"the phase (label {s.phase}{f', {name}' if name else ''}) fills "
                       f"{n_phase / n_sample:.0%} of the "
                       "sample: is it the pores? choose the pore label as the phase label "
                       "and the solid's as the matrix label")
    r.add("porosity", "phase volume", n_phase * voxel, f"{d.unit}^3")
    r.add("porosity", "sample volume", n_sample * voxel, f"{d.unit}^3")


def _thickness(d: MeasureData, mask: np.ndarray, name: str, r: QuantifyResult, progress,
               s: QuantifySettings) -> None:
    bw = s.bin_width or d.step
    if d.lazy:
        arr = d.save(r, f"{name} local thickness", lambda: local_thickness(mask, d.spacing),
                     "image", scaled(progress, 0, 90, 100), colormap="turbo",
                     description=f"local thickness (diameter, {d.unit})")
        # the map holds few distinct values (lattice ball diameters): their counts give
        # exactly the distribution of lt[mask]
        values, counts = value_counts(arr.data[0], mask, progress=scaled(progress, 90, 100, 100))
        dist = size_distribution(values, weights=counts, bin_width=bw, unit=d.unit)
    else:
        lt = local_thickness(mask, d.spacing, progress=progress)
        r.arrays[f"{name} local thickness"] = ResultArray(
            lt, "image", colormap="turbo", description=f"local thickness (diameter, {d.unit})")
        dist = size_distribution(lt[mask], bin_width=bw, unit=d.unit)
    _add_distribution(r, f"{name} size distribution", dist)
    r.tables[f"{name}_size_distribution"] = dist.table()
    for k, v in dist.summary().items():
        if k.startswith(("mean", "std", "median", "fit_mode", "fit_mean")):
            r.add("local_thickness", f"{name} {k.rsplit('_', 1)[0].replace('_', ' ')}", v, d.unit)


def _add_distribution(r: QuantifyResult, key: str, dist: SizeDistribution) -> None:
    """``dist`` as ``r.distributions[key]``, its notes (a log-normal fit skipped or poor)
    saying which distribution they are about."""
    r.distributions[key] = dist
    r.notes.extend(f"{key}: {note}" for note in dist.notes)


def _measure_thickness(d, s, r, progress) -> None:
    _thickness(d, d.phase, "phase", r, progress, s)


def _measure_matrix_thickness(d, s, r, progress) -> None:
    _thickness(d, d.require_matrix("Matrix local thickness"), "matrix", r, progress, s)


def _measure_particles(d, s, r, progress) -> None:
    if d.lazy and s.close_radius is not None:
        raise SettingError("$close_radius needs the volume in memory; measure without it, "
                           "or $in_memory", close_radius="close_radius", in_memory=IN_MEMORY)
    if d.lazy:
        _particles_lazy(d, s, r, progress)
        return
    labels = _separated(d, s, scaled(progress, 0, 60, 100))
    if s.close_radius is not None:
        pore = ~d.matrix  # the closed particle: its pores whatever they were labelled
    else:
        pore = d.phase if s.matrix is not None else None
    table = particle_table(labels, d.spacing, pore=pore, unit=d.unit, smooth=s.smooth,
                           progress=scaled(progress, 60, 100, 100))
    esd = f"esd_{d.unit}"
    r.tables["particles"] = table
    features = table.set_index("label")
    r.arrays["particles"] = ResultArray(labels, "labels", features=table,
                                        description="separated particles")
    lut = np.zeros(int(labels.max()) + 1, np.float32)
    lut[features.index.to_numpy()] = features[esd].to_numpy()
    r.arrays["particle ESD"] = ResultArray(lut[labels], "image", colormap="viridis",
                                           description=f"ESD per particle ({d.unit})")
    if "porosity" in table:
        lut[:] = 0
        lut[features.index.to_numpy()] = features["porosity"].to_numpy()
        r.arrays["particle porosity"] = ResultArray(lut[labels], "image", colormap="magma",
                                                    description="porosity per particle")
    _particle_rows(d, table, r)


def _measure_closed(d, s, r, progress) -> None:
    if d.lazy:
        _closed_lazy(d, s, r, progress)
        return
    closed = closed_pores(d.phase, outside=d.outside)
    n_closed = np.count_nonzero(closed)
    r.arrays["closed pores"] = ResultArray(closed, "labels", description="closed pores")
    r.add("closed_pores", "closed pores", int(closed.max()), "count")
    r.add("closed_pores", "closed fraction of phase volume",
          n_closed / np.count_nonzero(d.phase), "fraction")
    if closed.max() > 0:
        t = particle_table(closed, d.spacing, unit=d.unit, surface=False)
        r.tables["closed_pores"] = t
        r.arrays["closed pores"].features = t
        r.add("closed_pores", "closed pore ESD mean", float(t[f"esd_{d.unit}"].mean()), d.unit)


def _inner(d: MeasureData, s: QuantifySettings) -> np.ndarray:
    if "inner" not in d.cache:
        radius = s.radius or 2 * max(d.spacing)
        d.cache["inner"] = inner_pores(d.require_matrix("Inner pores (rolling ball)"), radius, d.spacing)
        d.cache["inner_radius"] = radius
    return d.cache["inner"]


def _measure_inner(d, s, r, progress) -> None:
    inner = _inner(d, s)
    solid = d.matrix
    r.arrays["inner pores"] = ResultArray(inner.astype(np.uint8), "labels",
                                          description="inner pores (rolling ball)")
    particle = solid | inner
    r.add("inner_pores", "rolling-ball radius", d.cache["inner_radius"], d.unit)
    r.add("inner_pores", "inner pore volume", np.count_nonzero(inner) * float(np.prod(d.spacing)),
          f"{d.unit}^3")
    r.add("inner_pores", "matrix volume fraction in particle",
          np.count_nonzero(solid) / max(np.count_nonzero(particle), 1), "fraction")


def _separated(d: MeasureData, s: QuantifySettings, progress) -> np.ndarray:
    """Touching particles split by the distance-transform watershed (shared by the
    particles and envelopes measures): of phase | matrix with its cavities filled, or,
    with ``close_radius``, of the matrix closed particle by particle and filled."""
    if "particles" not in d.cache:
        if s.close_radius is not None:
            solid = d.require_matrix("Pore closing (close_radius)")
            sample = fill_holes(close_each(solid, s.close_radius, d.spacing))
        else:
            sample = fill_holes(d.sample)
        labels = separate_particles(sample, d.spacing, h=s.split_h, min_volume=s.min_volume,
                                    progress=progress)
        if labels.max() == 0:
            raise ValueError("no particle left after separation; lower the minimum volume")
        d.cache["particles"] = labels
    return d.cache["particles"]


def _particle_components(d: MeasureData, s: QuantifySettings, solid: np.ndarray) -> np.ndarray:
    """Face-connected components of ``solid``, specks below ``min_volume`` (and below 27
    voxels) removed."""
    import cc3d

    comps = cc3d.connected_components(solid, connectivity=6, out_dtype=np.uint32)
    voxel = float(np.prod(d.spacing))
    sizes = np.bincount(comps.ravel())
    small = np.flatnonzero(sizes * voxel < max(s.min_volume, 27 * voxel))
    comps[np.isin(comps, small[small > 0])] = 0  # specks of fewer than 27 voxels
    if not comps.any():
        raise ValueError("no matrix particle of at least 27 voxels to envelope")
    return comps


def _envelopes(d: MeasureData, s: QuantifySettings, solid: np.ndarray, comps: np.ndarray,
               progress) -> np.ndarray:
    """The envelopes of ``s.envelope`` kind (one of ENVELOPES: QuantifySettings checked it)."""
    if s.envelope == "sphere":
        return spherical_envelopes(solid, comps, d.spacing, progress=progress)
    return particle_envelopes(solid, comps, d.spacing, s.envelope_radius_fraction,
                              progress=progress)


def _picked(env: np.ndarray, d: MeasureData, s: QuantifySettings,
            r: QuantifyResult) -> np.ndarray:
    """``env`` with ``s.particles_at``: the envelopes at (or nearest) the points only, and
    a note for each point outside every envelope (a click that missed its particle)."""
    if not s.particles_at:
        return env
    if not env.any():
        raise ValueError("no particle envelope to pick at the points: the matrix label has "
                         "no particle here")
    points = np.asarray(s.particles_at, float)
    voxels = points / np.asarray(d.spacing)
    picked, dist = labels_at(env, voxels, d.spacing)
    for point, env_label, gap in zip(points, picked, dist, strict=True):
        said = (f"the particle point {tuple(float(v) for v in point.round(4))} {d.unit} lies "
                "outside every envelope")
        # the envelopes and partial-volume measures both resolve each point (numbering
        # their envelopes differently): one note per point, the first measure's
        if gap > 0 and not any(note.startswith(said) for note in r.notes):
            r.notes.append(f"{said}: measured the nearest, envelope {env_label}, "
                           f"{gap:.3g} {d.unit} away")
    env[~np.isin(env, picked)] = 0
    return env


def _measure_envelopes(d, s, r, progress) -> None:
    """Each solid particle (matrix component) with the pores it encloses: a sphere
    (:func:`~napari_corrtomo.core.quantify.envelope.spherical_envelopes`) or a ball rolling
    around it alone (:func:`~napari_corrtomo.core.quantify.envelope.particle_envelopes`)."""
    solid = d.require_matrix("Particle envelopes and their porosity")
    if s.close_radius is not None:  # the separated particles, one envelope each
        comps = _separated(d, s, scaled(progress, 0, 30, 100))
    else:
        comps = _particle_components(d, s, solid)
    env = _picked(_envelopes(d, s, solid, comps, scaled(progress, 30, 80, 100)), d, s, r)
    pore = (env > 0) & ~solid
    table = particle_table(env, d.spacing, pore=pore, unit=d.unit, surface=False)
    r.tables["particle_envelopes"] = table
    r.arrays["particle envelopes"] = ResultArray(env, "labels", features=table,
                                                 description=f"particle envelopes ({s.envelope})")
    largest = table.loc[table[f"volume_{d.unit}3"].idxmax()]
    r.add("envelopes", "particles enveloped", len(table), "count")
    r.add("envelopes", "of them cut by the border", int(table["touches_border"].sum()), "count")
    r.add("envelopes", "porosity of all envelopes",
          np.count_nonzero(pore) / np.count_nonzero(env), "fraction")
    r.add("envelopes", "largest particle porosity", float(largest["porosity"]), "fraction")
    r.add("envelopes", "largest particle ESD", float(largest[f"esd_{d.unit}"]), d.unit)
    report(progress, 100, 100)


#: voxels the particles grow by before the mid-level split finds their solid (a
#: classifier trained on phase interiors may place the boundary inside the solid)
PV_GROW = 2


def _measure_pv_porosity(d, s, r, progress) -> None:
    """Partial-volume porosity of each particle envelope from the grey values
    (:func:`~napari_corrtomo.core.quantify.porosity.partial_volume_porosity`): phase levels
    from the interiors, envelopes around the solid split at the mid grey level, the
    matrix volume by linear unmixing."""
    matrix = d.require_matrix("Envelope porosity from grey values")
    img = np.asarray(d.intensity, np.float32)
    levels = phase_levels(img, d.phase, matrix)
    mid = 0.5 * (levels.pore + levels.matrix)
    above = img >= mid if levels.matrix > levels.pore else img < mid
    comps = ndi.grey_dilation(_particle_components(d, s, matrix), size=(2 * PV_GROW + 1,) * 3)
    solid = above & (comps > 0)
    if d.outside is not None:
        solid &= ~d.outside
    env = _picked(_envelopes(d, s, solid, comps, scaled(progress, 0, 70, 100)), d, s, r)
    if "particle envelopes" in r.arrays:  # the envelopes measure ran first (quantify)
        env = _labelled_as(env, np.asarray(r.arrays["particle envelopes"].data))
    table = partial_volume_porosity(img, env, levels)
    counted = particle_table(env, d.spacing, pore=(env > 0) & d.phase, unit=d.unit, surface=False)
    table.insert(2, "porosity_argmax", counted.set_index("label").loc[table["label"],
                                                                      "porosity"].to_numpy())
    r.tables["pv_porosity"] = table
    r.arrays["partial-volume envelopes"] = ResultArray(
        env, "labels", features=table, description=f"partial-volume envelopes ({s.envelope})")
    largest = table.loc[table["voxels"].idxmax()]
    r.add("pv_porosity", "pore grey level", levels.pore, "grey")
    r.add("pv_porosity", "matrix grey level", levels.matrix, "grey")
    r.add("pv_porosity", "noise (std)", levels.noise, "grey")
    r.add("pv_porosity", "largest particle porosity (partial volume)",
          float(largest["porosity_pv"]), "fraction")
    r.add("pv_porosity", "largest particle porosity 95 % low", float(largest["porosity_pv_low"]),
          "fraction")
    r.add("pv_porosity", "largest particle porosity 95 % high",
          float(largest["porosity_pv_high"]), "fraction")
    r.add("pv_porosity", "largest particle porosity (voxel count, same envelope)",
          float(largest["porosity_argmax"]), "fraction")
    report(progress, 100, 100)


def _labelled_as(env: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """``env`` with each envelope given the label of the ``ref`` envelope (the envelopes
    measure's) it overlaps most, so a particle has one label in every table: the grey-value
    envelopes are numbered anew (on the volume within_envelopes relabels; from matrix
    components where the envelopes measure splits closed particles). An envelope that
    overlaps none, or whose ``ref`` envelope another overlaps more, takes a label above
    ``ref``'s."""
    both = (env > 0) & (ref > 0)
    base = int(ref.max()) + 1
    pairs, counts = np.unique(env[both].astype(np.int64) * base + ref[both], return_counts=True)
    lut = np.zeros(int(env.max()) + 1, np.int64)
    taken: set[int] = set()
    for pair in pairs[np.argsort(-counts, kind="stable")]:
        own, other = divmod(int(pair), base)
        if not lut[own] and other not in taken:
            lut[own] = other
            taken.add(other)
    ids = np.unique(env)
    alone = ids[(ids > 0) & (lut[ids] == 0)]
    lut[alone] = base + np.arange(len(alone))
    return lut.astype(np.min_scalar_type(int(lut.max())))[env]


def _measure_profile(d, s, r, progress) -> None:
    solid = d.require_matrix("Volume fraction vs distance to boundary")
    region = solid | _inner(d, s)
    bw = s.bin_width or d.step
    t = volume_fraction_profile(solid, region, d.spacing, bin_width=bw, unit=d.unit)
    r.tables["volume_fraction_profile"] = t
    x = 0.5 * (t[f"distance_lo_{d.unit}"] + t[f"distance_hi_{d.unit}"]).to_numpy()
    r.curves["volume fraction vs distance"] = Curve(
        x, {"in shell": t["volume_fraction"].to_numpy(),
            "cumulative": t["cumulative_volume_fraction"].to_numpy()},
        f"distance to particle boundary ({d.unit})", "matrix volume fraction",
        "Volume fraction vs distance to the boundary")


def _measure_surface(d, s, r, progress) -> None:
    area = surface_area(d.phase, d.spacing, smooth=s.smooth, progress=progress)
    voxel = float(np.prod(d.spacing))
    r.add("surface", "phase surface area", area, f"{d.unit}^2")
    r.add("surface", "specific surface (per sample volume)",
          area / (np.count_nonzero(d.sample) * voxel), f"1/{d.unit}")
    r.add("surface", "specific surface (per phase volume)",
          area / (np.count_nonzero(d.phase) * voxel), f"1/{d.unit}")


def _in_sample(d: MeasureData) -> tuple[tuple[slice, ...], np.ndarray, np.ndarray | None]:
    """The sample's bounding box, the phase in it and the sample in it (None where the
    sample fills the box). The correlation and transport measures run there: the outside
    medium (air around a particle, a band without data) is neither phase nor matrix, no
    transport face lies in it, and their phase fraction is the porosity measure's."""
    if "in_sample" not in d.cache:
        box = ndi.find_objects(d.sample.view(np.uint8))[0]
        sample = d.sample[box]
        d.cache["in_sample"] = (box, d.phase[box], None if sample.all() else sample)
    return d.cache["in_sample"]


def _measure_correlation(d, s, r, progress) -> None:
    _, phase, sample = _in_sample(d)
    extent = min((n - 1) * sp for n, sp in zip(phase.shape, d.spacing, strict=True))
    dmax = s.max_distance or 0.25 * extent
    dist, s2 = two_point_correlation(phase, d.spacing, dmax, sample=sample)
    report(progress, 1, 4)
    lengths, lp = lineal_path(phase, d.spacing, dmax, sample=sample)
    report(progress, 2, 4)
    u = d.unit
    table = pd.DataFrame({f"distance_{u}": dist, "s2": s2, "lineal_path": lp})
    axes = {}
    for ax, name in enumerate("zyx"):
        if (phase.shape[ax] - 1) * d.spacing[ax] >= dmax:
            xa, ya = two_point_correlation(phase, d.spacing, dmax, axis=ax, sample=sample)
            _, la = lineal_path(phase, d.spacing, dmax, axis=ax, sample=sample)
            table[f"s2_{name}"] = np.interp(dist, xa, ya)
            table[f"lineal_path_{name}"] = np.interp(dist, xa, la)
            axes[name] = (xa, ya, la)
    report(progress, 4, 4)
    r.tables["correlation"] = table
    r.curves["two-point correlation"] = Curve(
        dist, {"S2 (all directions)": s2, **{f"S2 {k}": np.interp(dist, v[0], v[1])
                                             for k, v in axes.items()}},
        f"r ({u})", "S2(r)", "Two-point correlation")
    r.curves["lineal path"] = Curve(
        dist, {"L (all directions)": lp, **{f"L {k}": np.interp(dist, v[0], v[2])
                                           for k, v in axes.items()}},
        f"r ({u})", "L(r)", "Lineal path")
    r.add("correlation", "S2(0) = volume fraction (phase / sample)", s2[0], "fraction")


def _measure_proxigram(d, s, r, progress) -> None:
    """The interface of the chosen phase against the rest of the sample (the matrix),
    distances positive inside the phase. Voxels within the profile's half-width of what
    is not sample (the outside medium) are left out: a phase boundary against the outside
    would enter the profile, and one without contrast (pores filled with the resin
    around the particle) would narrow it."""
    dmax = s.proxigram_distance or 8 * d.step
    region = None
    if s.matrix is not None or s.outside:
        region = edt_distance(d.sample, d.spacing) > dmax
        if not (region & d.phase).any() or not (region & ~d.phase).any():
            raise SettingError(f"no voxel of the phase or of the rest of the sample lies "
                               f"farther than $proxigram_distance ({dmax:g} {d.unit}) from "
                               "the outside medium; lower it",
                               proxigram_distance="proxigram_distance")
    p = proxigram(d.intensity, d.phase, d.spacing, dmax, bin_width=s.bin_width,
                  region=region, unit=d.unit)
    r.proxigram = p
    r.tables["proxigram"] = p.table()
    r.curves["proxigram"] = Curve(p.distance, {"normalized intensity": p.normalized},
                                  f"distance to the interface, + inside the phase ({d.unit})",
                                  "normalized intensity", "Proxigram")
    u = d.unit
    for name, value, unit in (("x25", p.x25, u), ("x75", p.x75, u), ("dx", p.dx, u),
                              ("slope", p.slope, f"1/{u}")):
        r.add("proxigram", name, value, unit)
    if np.isfinite(p.dy):
        r.add("proxigram", "dy", p.dy, "1")
    else:  # a row without a value said nothing
        r.notes.append(f"proxigram dy (the plateaus' contrast) needs profile points on both "
                       f"sides farther than half the profile's reach ({dmax / 2:g} {u}) from "
                       "the interface; raise proxigram distance for it")



# --------------------------------------------------------------------------- transport

_AXIS_NAMES = "zyx"


def _transport_axes(d: MeasureData, s: QuantifySettings) -> tuple[int, ...]:
    """The flux directions (QuantifySettings checked them when it was made)."""
    return tuple(range(3)) if s.transport_axes is None else tuple(s.transport_axes)


def _measure_tortuosity(d, s, r, progress) -> None:
    axes = _transport_axes(d, s)
    box, phase, sample = _in_sample(d)
    rows = []
    for i, ax in enumerate(axes):
        name = _AXIS_NAMES[ax]
        res = tortuosity_factor(phase, d.spacing, ax, return_field=True, sample=sample,
                                progress=scaled(progress, i, i + 1, len(axes)))
        field = np.full(d.labels.shape, np.nan, np.float32)
        field[box] = res.field
        rows.append(res.as_row(d.unit))
        r.add("tortuosity", f"tortuosity factor {name}", res.tau, "1")
        r.add("tortuosity", f"D_eff / D_bulk {name}", res.d_eff_ratio, "1")
        r.add("tortuosity", f"percolating fraction of the phase {name}",
              res.percolating_fraction, "fraction")
        r.arrays[f"concentration {name}"] = ResultArray(
            field, "image", colormap="viridis",
            description=f"steady-state concentration, flux along {name} (NaN off the "
                        "conducting phase)")
        if not np.isfinite(res.tau):
            r.notes.append(f"no path of the phase connects the two {name} faces: "
                           f"tortuosity factor {name} = inf")
        elif not res.converged:
            r.notes.append(f"tortuosity factor {name}: not converged in {res.iterations} "
                           "iterations")
    table = pd.DataFrame(rows)
    table.insert(1, "axis_name", [_AXIS_NAMES[a] for a in table["axis"]])
    r.tables["tortuosity"] = table


def _default_depths(d: MeasureData, s: QuantifySettings, ax: int) -> list[float]:
    if s.depths is not None:
        return list(s.depths)
    n, step = _in_sample(d)[1].shape[ax], d.spacing[ax]
    return sorted({max(1, round(f * (n - 1))) * step for f in (1 / 8, 1 / 4, 3 / 8, 1 / 2)})


def _measure_geodesic(d, s, r, progress) -> None:
    axes = _transport_axes(d, s)
    phase = _in_sample(d)[1]
    tables = []
    for i, ax in enumerate(axes):
        name = _AXIS_NAMES[ax]
        geo = geodesic_tortuosity(phase, d.spacing, _default_depths(d, s, ax), ax,
                                  progress=scaled(progress, i, i + 1, len(axes)), unit=d.unit)
        t = geo.table(d.unit)
        t.insert(2, "axis_name", name)
        tables.append(t)
        for depth, mean in zip(geo.depths, t["mean"], strict=True):
            r.add("geodesic_tortuosity", f"geodesic tortuosity {name} at {depth:.4g} {d.unit}",
                  mean, "1")
        empty = ("" if geo.reached_fraction.any() else
                 "no path through the phase from the inlet face reaches any of the depths")
        if empty:
            r.notes.append(f"geodesic tortuosity {name}: {empty}")
        r.curves[f"geodesic tortuosity vs depth {name}"] = Curve(
            np.asarray(geo.depths, float),
            {"mean": t["mean"].to_numpy(), "5th percentile": t["p05"].to_numpy(),
             "95th percentile": t["p95"].to_numpy()},
            f"depth along {name} ({d.unit})", "geodesic tortuosity",
            f"Geodesic tortuosity vs depth ({name})", empty)
    r.tables["geodesic_tortuosity"] = pd.concat(tables, ignore_index=True)


def _measure_constrictivity(d, s, r, progress) -> None:
    axes = _transport_axes(d, s)
    rows, curves = [], []
    ys: dict[str, np.ndarray] = {}
    x = None
    u = d.unit
    phase = _in_sample(d)[1]
    for i, ax in enumerate(axes):
        name = _AXIS_NAMES[ax]
        sub = scaled(progress, i, i + 1, len(axes))
        curve = intrusion_curve(phase, d.spacing, None, ax, unit=u,
                                progress=scaled(sub, 0, 1, 2))
        beta = constrictivity(phase, d.spacing, ax, progress=scaled(sub, 1, 2, 2))
        curves.append(curve.assign(axis=ax, axis_name=name))
        rows.append({"axis_name": name, **beta.as_row(u)})
        r.add("constrictivity", f"constrictivity {name}", beta.beta, "1")
        r.add("constrictivity", f"r_min (MIP-PSD median) {name}", beta.r_min, u)
        r.add("constrictivity", f"r_max (c-PSD median) {name}", beta.r_max, u)
        if x is None:
            x = curve[f"radius_{u}"].to_numpy()
            ys["covered (c-PSD)"] = curve["covered_fraction"].to_numpy()
        if np.array_equal(x, curve[f"radius_{u}"].to_numpy()):
            ys[f"intruded from {name}"] = curve["intruded_fraction"].to_numpy()
    r.tables["constrictivity"] = pd.DataFrame(rows)
    r.tables["intrusion"] = pd.concat(curves, ignore_index=True)
    r.curves["intrusion curve"] = Curve(x, ys, f"sphere radius ({u})", "fraction of the phase",
                                        "Sphere intrusion (MIP-PSD) and coverage (c-PSD)")


# =========================================================================== blockwise
# Measures of dask/zarr volumes (larger than memory): labelling out of core, tables from
# per-block partials, volume results stored chunk by chunk (MeasureData.save).


def _particles_lazy(d: MeasureData, s: QuantifySettings, r: QuantifyResult, progress) -> None:
    def make_labels():
        lab, n = label(fill_holes(d.sample), connectivity=1)  # face neighbours, as cc3d's 6
        if s.min_volume > 0 and n:
            counts = label_counts(lab)
            keep = counts * float(np.prod(d.spacing)) >= float(s.min_volume)
            keep[0] = False
            lut = np.zeros(len(counts), lab.dtype)
            lut[keep] = np.arange(1, int(keep.sum()) + 1)
            lab = lab.map_blocks(lambda b: lut[b], dtype=lab.dtype)
        return lab

    arr = d.save(r, "particles", make_labels, "labels", scaled(progress, 0, 40, 100),
                 description="particles (connected components)")
    labels = arr.data[0]
    table = particle_table(labels, d.spacing, pore=d.phase if s.matrix is not None else None,
                           unit=d.unit, smooth=s.smooth, progress=scaled(progress, 40, 85, 100))
    r.notes.append("particles of a dask/zarr volume are its filled, face-connected components: "
                   "touching particles are not split (the watershed separation needs whole "
                   "volumes in memory)")
    arr.features = table
    r.tables["particles"] = table
    esd = f"esd_{d.unit}"
    ids = table["label"].to_numpy()
    lut = np.zeros(int(ids.max()) + 1, np.float32)
    lut[ids] = table[esd].to_numpy()
    d.save(r, "particle ESD", lambda: labels.map_blocks(lambda b: lut[b], dtype=np.float32),
           "image", scaled(progress, 85, 95, 100), colormap="viridis",
           description=f"ESD per particle ({d.unit})")
    if "porosity" in table:
        plut = np.zeros(int(ids.max()) + 1, np.float32)
        plut[ids] = table["porosity"].to_numpy()
        d.save(r, "particle porosity", lambda: labels.map_blocks(lambda b: plut[b],
                                                                 dtype=np.float32),
               "image", scaled(progress, 95, 100, 100), colormap="magma",
               description="porosity per particle")
    _particle_rows(d, table, r)


def _particle_rows(d: MeasureData, table: pd.DataFrame, r: QuantifyResult) -> None:
    esd = f"esd_{d.unit}"
    dist = size_distribution(table[esd], unit=d.unit)
    _add_distribution(r, "particle size distribution", dist)
    r.tables["particle_size_distribution"] = dist.table()
    r.add("particles", "particle count", len(table), "count")
    r.add("particles", "ESD mean", dist.mean, d.unit)
    r.add("particles", "ESD std", dist.std, d.unit)
    if dist.accepted_fit is not None:
        r.add("particles", "ESD log-normal mode", dist.fit.mode, d.unit)
    volume = float(np.prod(d.labels.shape)) * float(np.prod(d.spacing))
    largest = float(table[f"volume_{d.unit}3"].max()) / volume
    if largest > WHOLE_FIELD:
        r.notes.append(f"one particle fills {largest:.0%} of the volume: the embedding medium "
                       "is probably measured as part of the particles; give its labels (e.g. "
                       "air, resin) as outside labels, or the solid's as the matrix label")
    sphericity = table["sphericity"].to_numpy(dtype=float)
    sphericity = sphericity[np.isfinite(sphericity)]  # particles too small for a shape: NaN
    r.add("particles", "sphericity mean", float(sphericity.mean()) if sphericity.size
          else float("nan"), "1")
    if "porosity" in table:
        pd_ = size_distribution(table["porosity"], bin_width=0.025, fit=False, unit="fraction")
        r.distributions["particle porosity distribution"] = pd_
        r.add("particles", "porosity mean", pd_.mean, "fraction")
        r.add("particles", "porosity std", pd_.std, "fraction")


def _closed_lazy(d: MeasureData, s: QuantifySettings, r: QuantifyResult, progress) -> None:
    """Closed pores out of core: pore components (joined with the outside medium) that
    touch neither the array border nor the outside, as :func:`.closed_pores` (6-connected)."""
    def make():
        pore, outside = d.phase, d.outside
        joined = pore if outside is None else pore | outside
        lab, n = label(joined, connectivity=1)
        shape = tuple(lab.shape)
        is_open = np.zeros(n + 1, bool)
        is_open[0] = True
        merge = lambda parts: np.unique(np.concatenate(parts))  # noqa: E731
        is_open[reduce_blocks(lambda b, blk: _border_of(b, blk, shape), lab,
                              combine=merge)] = True
        if outside is not None:
            is_open[reduce_blocks(lambda b, o, blk: np.unique(b[o]).astype(np.int64), lab,
                                  outside, combine=merge)] = True
        closed = pore.map_blocks(lambda p, b: p & ~is_open[b], lab, dtype=bool)
        return label(closed, connectivity=1)[0]

    arr = d.save(r, "closed pores", make, "labels", scaled(progress, 0, 80, 100),
                 description="closed pores")
    n_phase = int(d.counts()[s.phase])
    try:
        t = particle_table(arr.data[0], d.spacing, unit=d.unit, surface=False,
                           progress=scaled(progress, 80, 100, 100))
    except ValueError:  # no closed pore at all
        t = None
    n = 0 if t is None else len(t)
    r.add("closed_pores", "closed pores", n, "count")
    r.add("closed_pores", "closed fraction of phase volume",
          (0 if t is None else int(t["voxels"].sum())) / n_phase, "fraction")
    if t is not None:
        r.tables["closed_pores"] = t
        arr.features = t
        r.add("closed_pores", "closed pore ESD mean", float(t[f"esd_{d.unit}"].mean()), d.unit)


for _spec in (
    MeasureSpec("porosity", "Porosity and phase fractions", _measure_porosity, cost=0.2,
                lazy=True),
    MeasureSpec("thickness", "Local thickness / pore size distribution", _measure_thickness,
                cost=3.0, lazy=True),
    MeasureSpec("matrix_thickness", "Matrix local thickness", _measure_matrix_thickness,
                needs_matrix=True, default=False, cost=3.0, lazy=True),
    MeasureSpec("particles", "Particles: separation, ESD, sphericity, porosity",
                _measure_particles, cost=2.0, lazy=True),
    MeasureSpec("closed_pores", "Closed pores", _measure_closed, cost=0.5, lazy=True),
    MeasureSpec("inner_pores", "Inner pores (rolling ball)", _measure_inner, needs_matrix=True,
                default=False, cost=1.0),
    MeasureSpec("envelopes", "Particle envelopes and their porosity",
                _measure_envelopes, needs_matrix=True, default=False, cost=1.5),
    MeasureSpec("pv_porosity", "Envelope porosity from grey values",
                _measure_pv_porosity, needs_intensity=True, needs_matrix=True, default=False,
                cost=1.5),
    MeasureSpec("profile", "Volume fraction vs distance to boundary", _measure_profile,
                needs_matrix=True, default=False, cost=1.0),
    MeasureSpec("surface", "Surface area and specific surface", _measure_surface, cost=1.0),
    MeasureSpec("correlation", "Two-point correlation and lineal path", _measure_correlation,
                default=False, cost=2.0),
    MeasureSpec("proxigram", "Proxigram (interface sharpness)", _measure_proxigram,
                needs_intensity=True, cost=1.0),
    MeasureSpec("tortuosity", "Tortuosity factor (diffusion, per axis)", _measure_tortuosity,
                default=False, cost=2.0),
    MeasureSpec("geodesic_tortuosity", "Geodesic tortuosity vs depth (per axis)",
                _measure_geodesic, default=False, cost=2.0),
    MeasureSpec("constrictivity", "Constrictivity, sphere intrusion (per axis)",
                _measure_constrictivity, default=False, cost=2.0),
):
    register(_spec)
