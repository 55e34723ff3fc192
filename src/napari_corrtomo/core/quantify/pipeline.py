"""The quantification pipeline shared by the "Quantify" widget and ``corrtomo quantify``.

A label volume (or binary mask) with its voxel size is measured by a set of
*measures* chosen by name. Which label is which is given by
:class:`QuantifySettings`:

- ``phase``: the measured phase (e.g. pores, label 3);
- ``matrix``: the other phase of the sample (e.g. the solid, label 2), optional;
- ``outside``: labels of the surrounding medium (e.g. air 0 and resin 1).

The sample (particles) is ``phase | matrix`` when a matrix is given, else every
voxel not ``outside``; other labels a matrix leaves out of it are named in a note.

Every measure is a :class:`MeasureSpec` in :data:`MEASURES`; it writes summary
rows, tables, arrays (future layers), size distributions and curves into a
:class:`QuantifyResult`. The widget shows one checkbox per registered measure
and displays any table/curve generically, so a new measure (e.g. the transport
descriptors) is added by registering it::

    register(MeasureSpec("tortuosity", "Tortuosity factor (per axis)", _measure_tortuosity))
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._checks import SettingError, check_labels, check_spacing
from ..backend import is_lazy
from ..io import read_volumes
from ..outputs import file_stem
from ..progress import ProgressCallback, report, scaled
from ..resumable import completed, store_resumable
from ..units import normalize_unit
from .distributions import SizeDistribution
from .interface import Proxigram
from .porosity import label_counts, mid_level_boundary
from .surface import DEFAULT_SMOOTH

__all__ = [
    "ENVELOPES",
    "LENGTHS",
    "QuantifySettings",
    "QuantifyResult",
    "label_roles",
    "MeasureSpec",
    "MEASURES",
    "register",
    "quantify",
    "ResultArray",
    "Curve",
]


@dataclass
class QuantifySettings:
    """Which labels are which, and the measures' parameters.

    Lengths are in the unit of the segmentation's voxel size; ``None`` lengths take
    defaults from the voxel size.

    Parameters
    ----------
    phase
        Label value of the phase to measure (e.g. the pores).
    matrix
        Label of the other phase of the sample (e.g. the solid); needed for per-particle
        porosity, inner pores and profiles. It defines the sample: phase + matrix, any
        other label left out (a note names it). None: no matrix; the sample is every
        label not outside.
    outside
        Labels of the surrounding medium (air, resin): pores touching it are open.
    mid_level
        Move the phase/matrix boundary to the grey level half way between the two before
        measuring (needs the intensity image and the matrix label): a classifier trained
        on phase interiors leaves it anywhere in the blurred band, which biases porosity
        and pore sizes (:func:`~.porosity.mid_level_boundary`).
    within_envelopes
        Measure inside the particle envelopes only (``envelope``; needs the matrix
        label): the particle envelopes are measured first and what lies outside every
        envelope (the phase, matrix specks too small for one) becomes an outside label of
        its own (the first free value), so porosity, pore sizes and closed pores are those
        of the particles' own pores (the seed's spherical mask around a particle in its
        resin), not of the medium between particles.
    exclude_border
        With ``within_envelopes``: leave out the particles whose envelope is cut by the
        volume's border (fragments of neighbours at the edge of a field of view); their
        phase and matrix become outside too.
    particles_at
        Points ``(z, y, x)`` on the particles to measure, in the unit, from the centre of
        the first voxel (e.g. clicks on particles): the envelope measures keep the
        envelope at (or nearest) each point only, and ``within_envelopes`` measures
        inside those (the particle a nanoCT is centred on, not its neighbours). Empty:
        every particle.
    phase_names
        ``(label, name)`` pairs naming the label values (e.g. a sample's phases, or
        :func:`label_roles`' source) for the tables and notes; empty: the numbers.
    radius
        Rolling-ball radius of the inner pores; default 2 voxels (the largest voxel size).
    max_distance
        Range of the two-point correlation and lineal path; default a quarter of the
        shortest extent.
    proxigram_distance
        Half-width of the proxigram (interface sharpness of the phase against the rest of
        the sample, distances positive inside the phase; voxels nearer than this to the
        outside medium are left out); default 8 voxels (the smallest voxel size).
    bin_width
        Bin width of the size distributions and profiles; default the smallest voxel size
        (a quarter of it for the proxigram, whose distances are sub-voxel).
    split_h
        Depth of the distance maxima that split touching particles; default the largest
        voxel size.
    close_radius
        Porous particles: radius of a closing of each matrix particle alone (fills surface
        pores, never bridges two particles) before touching particles are split; their
        porosity is then everything in them that is not matrix. None: particles are
        phase and matrix together (filled), envelopes enclose face-connected matrix.
    min_volume
        Particles smaller than this volume (unit^3) are dropped.
    smooth
        Gaussian smoothing (voxels) of the surfaces before meshing (surface area,
        sphericity), with its curvature correction.
    envelope
        Particle envelopes: ``"sphere"`` (a sphere per particle, for near-spherical
        particles) or ``"rolling ball"`` (any shape; it cuts off wide surface pores).
    envelope_radius_fraction
        Rolling-ball envelopes: radius of the ball over the particle's equivalent-sphere
        radius.
    transport_axes
        Flux / path directions (0 = z) of the tortuosity factor, geodesic tortuosity and
        constrictivity; None: all three.
    depths
        Depths of the geodesic tortuosity; default 1/8, 1/4, 3/8 and 1/2 of the length
        along each axis.
    """

    phase: int = 1
    matrix: int | None = None
    outside: tuple[int, ...] = ()
    mid_level: bool = False
    within_envelopes: bool = False
    exclude_border: bool = False
    particles_at: tuple[tuple[float, float, float], ...] = ()
    phase_names: tuple[tuple[int, str], ...] = ()
    radius: float | None = None
    max_distance: float | None = None
    proxigram_distance: float | None = None
    bin_width: float | None = None
    split_h: float | None = None
    close_radius: float | None = None
    min_volume: float = 0.0
    smooth: float = DEFAULT_SMOOTH
    envelope: str = "sphere"
    envelope_radius_fraction: float = 1.5
    transport_axes: tuple[int, ...] | None = None
    depths: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        """Check the parameters before any measure runs: a bad value found inside a
        measure, minutes in, would name that function's argument, not the setting."""
        try:  # (label, name) pairs, labels as integers (the command line gives text)
            self.phase_names = tuple((int(label), str(name)) for label, name in self.phase_names)
        except (TypeError, ValueError):
            raise SettingError(f"$phase_names must be (label, name) pairs with integer labels, "
                               f"got {self.phase_names!r}", phase_names="phase_names") from None
        for name in LENGTHS:
            value = getattr(self, name)
            if value is not None and not _positive(value):
                raise SettingError(f"${name} must be a positive length in the voxel size's "
                                   f"unit, got {value!r}", **{name: name})
        if not (_positive(self.min_volume) or self.min_volume == 0):
            raise SettingError(f"$min_volume must be >= 0 (the voxel size's unit cubed), got "
                               f"{self.min_volume!r}", min_volume="min_volume")
        if not (_positive(self.smooth) or self.smooth == 0):
            raise SettingError(f"$smooth must be >= 0 voxels (0: no smoothing), got "
                               f"{self.smooth!r}", smooth="smooth")
        if self.envelope not in ENVELOPES:
            raise SettingError(f"$envelope must be {' or '.join(map(repr, ENVELOPES))}, got "
                               f"{self.envelope!r}", envelope="envelope")
        if not _positive(self.envelope_radius_fraction):
            raise SettingError(f"$envelope_radius_fraction must be positive, got "
                               f"{self.envelope_radius_fraction!r}",
                               envelope_radius_fraction="envelope_radius_fraction")
        axes = self.transport_axes
        if axes is not None and (len(axes) == 0 or any(a not in (0, 1, 2) for a in axes)):
            raise SettingError(f"$transport_axes must be volume axes 0 (z), 1 (y) or 2 (x), "
                               f"got {list(axes)}", transport_axes="transport_axes")
        depths = self.depths
        if depths is not None and (len(depths) == 0 or not all(map(_positive, depths))):
            raise SettingError(f"$depths must be positive lengths in the voxel size's unit, "
                               f"got {list(depths)}", depths="depths")
        if self.exclude_border and not self.within_envelopes:  # else ignored without a word
            raise SettingError("$exclude_border works only with $within_envelopes (it leaves "
                               "out, of the particles measured inside their envelopes, those "
                               "the border cuts); set both, or neither",
                               exclude_border="exclude_border",
                               within_envelopes="within_envelopes")


#: the length parameters of :class:`QuantifySettings` (None: a default from the voxel size)
LENGTHS = ("radius", "max_distance", "proxigram_distance", "bin_width", "split_h",
           "close_radius")
#: the particle envelopes :class:`QuantifySettings` offers
ENVELOPES = ("sphere", "rolling ball")


def _positive(value: Any) -> bool:
    """A positive finite number (not a bool)."""
    try:
        return not isinstance(value, bool) and math.isfinite(float(value)) and value > 0
    except (TypeError, ValueError):
        return False


@dataclass
class ResultArray:
    """A volume result: ``kind`` is ``"image"`` or ``"labels"``; ``features`` one row per label."""

    data: np.ndarray
    kind: str
    features: pd.DataFrame | None = None
    colormap: str | None = None
    description: str = ""
    #: for results of dask/zarr input: the resumable OME-Zarr holding it; ``data`` is then
    #: its multiscale pyramid (lazy dask arrays, finest first)
    path: Path | None = None


@dataclass
class Curve:
    """Named y-series over one x axis, for plotting."""

    x: np.ndarray
    ys: dict[str, np.ndarray]
    xlabel: str
    ylabel: str
    title: str
    #: why no y value is defined (the plot says it), "" when the curve has values
    empty: str = ""


@dataclass
class QuantifyResult:
    unit: str
    spacing: tuple[float, ...]
    rows: list[tuple[str, str, float | int, str]] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    arrays: dict[str, ResultArray] = field(default_factory=dict)
    distributions: dict[str, SizeDistribution] = field(default_factory=dict)
    curves: dict[str, Curve] = field(default_factory=dict)
    proxigram: Proxigram | None = None
    notes: list[str] = field(default_factory=list)

    def add(self, measure: str, quantity: str, value: float, unit: str) -> None:
        """A summary row. ``unit``: a length unit or its powers, ``fraction`` for a part of
        a whole, ``1`` for any other dimensionless number (sphericity, tortuosity), ``count``
        for a count, which stays a whole number (3, not 3.0)."""
        self.rows.append((measure, quantity, int(value) if unit == "count" else float(value),
                          unit))

    def summary(self) -> pd.DataFrame:
        """One row per scalar result: ``measure``, ``quantity``, ``value``, ``unit``; the
        values are objects, so counts print and save as whole numbers beside the floats."""
        frame = pd.DataFrame(self.rows, columns=["measure", "quantity", "value", "unit"])
        frame["value"] = pd.Series([row[2] for row in self.rows], dtype=object)
        return frame

    def all_tables(self) -> dict[str, pd.DataFrame]:
        """``summary`` first, then every table (names are file stems for CSV export)."""
        return {"summary": self.summary(), **self.tables}


@dataclass
class MeasureSpec:
    """A measure: ``func(data, settings, result, progress)``."""

    key: str
    title: str
    func: Callable[[MeasureData, QuantifySettings, QuantifyResult, ProgressCallback | None], None]
    needs_intensity: bool = False
    needs_matrix: bool = False
    default: bool = True
    cost: float = 1.0  # relative share of the progress bar
    #: runs on dask/zarr labels block by block (volumes larger than memory)
    lazy: bool = False


#: Registered measures, in display order.
MEASURES: dict[str, MeasureSpec] = {}


def register(spec: MeasureSpec) -> MeasureSpec:
    """Add (or replace) a measure; the widget and CLI pick it up by its key."""
    MEASURES[spec.key] = spec
    return spec


class MeasureData:
    """The inputs of one run, with masks derived once and shared between measures."""

    def __init__(self, labels: np.ndarray, spacing: tuple[float, ...], unit: str,
                 settings: QuantifySettings, intensity: np.ndarray | None,
                 store: Path | None = None, signature: dict | None = None,
                 overwrite: bool = False):
        self.labels = labels
        self.spacing = spacing
        self.unit = unit
        self.intensity = intensity
        self.settings = settings
        self.cache: dict[str, Any] = {}
        #: dask/zarr labels: results go to resumable OME-Zarr stores in ``store``
        self.lazy = is_lazy(labels)
        self.store = store
        self.signature = signature or {}
        self.overwrite = overwrite

    def counts(self) -> np.ndarray:
        """Voxels per label value (one pass, shared by the measures)."""
        if "counts" not in self.cache:
            self.cache["counts"] = label_counts(self.labels)
        return self.cache["counts"]

    def save(self, r: QuantifyResult, name: str, make: Callable[[], Any], kind: str,
             progress, **kwargs: Any) -> ResultArray:
        """Add a volume result: in memory, or (lazy input) computed chunk by chunk into a
        resumable OME-Zarr ``<store>/<name>.ome.zarr`` that is then opened lazily. A
        finished store of the same run is reused without computing anything."""
        if not self.lazy:
            arr = ResultArray(make(), kind, **kwargs)
        else:
            path = self.store / f"{file_stem(name)}.ome.zarr"
            sig = {**self.signature, "result": name}
            if not completed(path, sig):
                store_resumable(make(), path, self.spacing, self.unit, layer_type=kind,
                                name=name, signature=sig, overwrite=self.overwrite,
                                progress=progress)
            data = read_volumes(path)[0].data
            arr = ResultArray(data if isinstance(data, list) else [data], kind, path=path,
                              **kwargs)
        r.arrays[name] = arr
        return arr

    def _mask(self, key: str, make: Callable[[], np.ndarray]) -> np.ndarray:
        if key not in self.cache:
            self.cache[key] = make()
        return self.cache[key]

    @property
    def phase(self) -> np.ndarray:
        return self._mask("phase", lambda: self.labels == self.settings.phase)

    @property
    def matrix(self) -> np.ndarray | None:
        if self.settings.matrix is None:
            return None
        return self._mask("matrix", lambda: self.labels == self.settings.matrix)

    @property
    def outside(self) -> np.ndarray | None:
        if not self.settings.outside:
            return None
        return self._mask("outside", lambda: np.isin(self.labels, self.settings.outside))

    @property
    def sample(self) -> np.ndarray:
        """The sample region: phase | matrix, else not outside, else everything."""
        def make():
            if self.matrix is not None:
                return self.phase | self.matrix
            if self.outside is not None:
                return ~self.outside
            if self.lazy:
                return self.labels >= 0
            return np.ones(self.labels.shape, bool)
        return self._mask("sample", make)

    def left_out(self) -> list[int]:
        """The nonzero labels with voxels that are neither phase, matrix nor outside: with
        a matrix label the sample is phase | matrix, so every measure leaves them out."""
        s = self.settings
        if s.matrix is None:
            return []
        return [int(v) for v in np.flatnonzero(self.counts())
                if v and v not in (s.phase, s.matrix, *s.outside)]

    def require_matrix(self, what: str) -> np.ndarray:
        if self.matrix is None:
            raise SettingError(f"{what} needs $matrix (the label of the solid phase)",
                               matrix="the matrix label (matrix=)")
        has = (len(self.counts()) > self.settings.matrix
               and self.counts()[self.settings.matrix] > 0) if self.lazy else self.matrix.any()
        if not has:
            raise ValueError(f"{what}: the matrix label {self.settings.matrix} has no voxel")
        return self.matrix

    @property
    def step(self) -> float:
        return min(self.spacing)


# =========================================================================== driver


def store_signature(signature: dict, settings: QuantifySettings, spacing: Sequence[float],
                    unit: str) -> dict:
    """What identifies the result stores of a blockwise run (each store adds its result's
    name): the caller's ``signature`` (its inputs), the settings, the checked voxel size
    and the unit; a store of other ones is never reused."""
    from dataclasses import asdict

    return {**signature, "settings": asdict(settings), "spacing": [float(v) for v in spacing],
            "unit": normalize_unit(unit)}


def quantify(
    labels: Any,
    spacing: float | Sequence[float],
    unit: str = "um",
    measures: Sequence[str] | None = None,
    settings: QuantifySettings | None = None,
    intensity: Any | None = None,
    progress: ProgressCallback | None = None,
    *,
    store: str | Path | None = None,
    signature: dict | None = None,
    overwrite: bool = False,
) -> QuantifyResult:
    """Run the chosen measures on a label volume.

    Parameters
    ----------
    labels
        Integer label volume (or boolean mask: True is label 1) ``(z, y, x)``.
    spacing
        Voxel size per axis in ``unit``.
    unit
        Length unit of ``spacing`` (column names carry it).
    measures
        Keys of :data:`MEASURES` (default: every measure whose ``default`` is True
        and whose inputs are available).
    settings
        Label roles and parameters.
    intensity
        The image for the proxigram (same shape).
    progress
        ``progress(done, total)``; raise ``Cancelled`` from it to stop.
    store
        dask/zarr ``labels`` (volumes larger than memory) are measured block by block
        with the measures that support it (``MEASURES[key].lazy``); their volume
        results are written chunk by chunk to resumable OME-Zarr stores
        ``<store>/<name>.ome.zarr`` (default: a new temporary folder) and come back
        as lazy multiscale pyramids, and tables come from per-block partials. Run
        again with the same ``store`` and the finished chunks are not recomputed.
    signature
        What identifies this run's input for resuming (e.g. the input file); the
        settings, spacing and measures are added to it.
    overwrite
        Replace stores in ``store`` that hold another run's results.
    """
    settings = settings or QuantifySettings()
    lazy = is_lazy(labels)
    if lazy:
        lab = labels
        if np.dtype(lab.dtype).kind not in "iub":
            raise ValueError(f"labels must hold integer labels, got dtype {lab.dtype}")
    else:
        lab = check_labels(labels, "labels")
    if lab.ndim != 3:
        raise ValueError(f"labels must be a 3D volume (z, y, x), got {lab.ndim}D")
    sp = check_spacing(spacing, lab.ndim)
    u = normalize_unit(unit)
    img = None
    if intensity is not None:
        if tuple(intensity.shape) != tuple(lab.shape):
            raise ValueError(f"intensity {tuple(intensity.shape)} and labels {tuple(lab.shape)} "
                             "have different shapes")
        img = intensity if lazy else np.asarray(intensity)
    if settings.matrix is not None and settings.matrix == settings.phase:
        raise SettingError(f"$phase and $matrix are both {settings.phase}; give them different "
                           "labels", phase="phase", matrix="matrix")
    if settings.phase in settings.outside or (settings.matrix is not None
                                              and settings.matrix in settings.outside):
        raise SettingError("$outside must not include the phase or the matrix label",
                           outside="the outside labels")
    if settings.within_envelopes and settings.matrix is None:
        raise SettingError("$within_envelopes needs $matrix (the label of the solid phase)",
                           within_envelopes="within_envelopes=True",
                           matrix="the matrix label (matrix=)")
    if measures is None:
        measures = [k for k, s in MEASURES.items() if s.default
                    and (img is not None or not s.needs_intensity)
                    and (settings.matrix is not None or not s.needs_matrix)
                    and (s.lazy or not lazy)]
    if settings.within_envelopes and lazy:
        raise SettingError("$within_envelopes needs the volume in memory; measure without "
                           "it, or $in_memory", within_envelopes="within_envelopes=True",
                           in_memory=IN_MEMORY)
    if settings.within_envelopes or {"envelopes", "pv_porosity"} <= set(measures):
        # the envelopes first: they bound every other measure (within_envelopes) and
        # label pv_porosity's particles
        measures = ["envelopes", *(m for m in measures if m != "envelopes")]
    unknown = [m for m in measures if m not in MEASURES]
    if unknown:
        raise ValueError(f"unknown measure(s) {unknown}; choose from {list(MEASURES)}")
    if not measures:
        raise ValueError("no measure chosen")
    if settings.particles_at:
        _check_points(settings.particles_at, lab.shape, sp, u)
        if not set(measures) & ENVELOPE_MEASURES:
            keys = " or ".join(repr(m) for m in sorted(ENVELOPE_MEASURES))
            raise SettingError("$particles_at picks particles by their envelopes: also choose "
                               "$envelope_measures, or $within_envelopes",
                               particles_at="particles_at",
                               envelope_measures=f"the measure {keys}",
                               within_envelopes="within_envelopes=True")
    for m in measures:
        if MEASURES[m].needs_intensity and img is None:
            raise SettingError(f"{MEASURES[m].title} needs $intensity, the image the labels "
                               "were segmented from",
                               intensity="an intensity image (intensity=)")
    if lazy:
        eager = [m for m in measures if not MEASURES[m].lazy]
        if eager:
            able = [k for k, spec in MEASURES.items() if spec.lazy]
            raise SettingError(f"measure(s) {eager} need the whole volume in memory; for a "
                               f"dask/zarr volume choose from {able}, or $in_memory",
                               in_memory=IN_MEMORY)
    folder = None
    if lazy:
        import tempfile

        folder = Path(store) if store is not None else Path(
            tempfile.mkdtemp(prefix="corrtomo-quantify-"))
        folder.mkdir(parents=True, exist_ok=True)
        signature = store_signature(signature or {"input": getattr(lab, "name", "")},
                                    settings, sp, u)
    result = QuantifyResult(unit=u, spacing=sp)
    data = MeasureData(lab, sp, u, settings, img, folder, signature, overwrite)
    start = 0
    if settings.mid_level:
        if img is None or settings.matrix is None:
            raise SettingError("$mid_level needs $intensity and $matrix; give both or turn it "
                               "off", mid_level="mid_level=True",
                               intensity="an intensity image (intensity=)",
                               matrix="a matrix label (matrix=)")
        start = 100 if lazy else 0  # a pass over the volume, written to the store
        moved = data.save(result, "labels (mid-level boundary)",
                          lambda: mid_level_boundary(lab, img, settings.phase, settings.matrix),
                          "labels", scaled(progress, 0, start, 1000),
                          description="the labels measured: phase/matrix boundary at the mid "
                                      "grey level")
        lab = moved.data[0] if lazy else moved.data
        data = MeasureData(lab, sp, u, settings, img, folder, signature, overwrite)
    counts = data.counts() if lazy else None
    present = (counts is not None and settings.phase < len(counts) and counts[settings.phase] > 0
               ) if lazy else bool(np.any(lab == settings.phase))
    if not present:
        held = ", ".join(str(v) for v in np.flatnonzero(data.counts()))
        raise ValueError(f"the phase label {settings.phase} has no voxel in this volume "
                         f"(its labels: {held}); choose the label value of the phase to "
                         "measure")
    missing = [v for v in settings.outside if v >= len(data.counts()) or not data.counts()[v]]
    if missing:  # harmless, but most likely a typing error
        held = ", ".join(str(v) for v in np.flatnonzero(data.counts()))
        result.notes.append(f"outside label(s) {', '.join(map(str, missing))} have no voxel in "
                            f"this volume (its labels: {held})")
    left = data.left_out()
    if left:  # the sample is phase | matrix: said, not silently smaller than the volume
        result.notes.append(_left_out_note(left, data.counts(), settings))
    if lazy:
        result.notes.append(f"results of this dask/zarr volume are stored in {folder}")
    weights = np.array([MEASURES[m].cost for m in measures], dtype=float)
    edges = start + np.concatenate([[0], np.cumsum(weights)]) / weights.sum() * (1000 - start)
    report(progress, start, 1000)
    for i, m in enumerate(measures):
        sub = scaled(progress, int(edges[i]), int(edges[i + 1]), 1000)
        MEASURES[m].func(data, settings, result, sub)
        if m == "envelopes" and settings.within_envelopes:
            data, settings = _inside_envelopes(data, settings, result)
        report(progress, int(edges[i + 1]), 1000)
    return result


def _left_out_note(left: list[int], counts: np.ndarray, s: QuantifySettings) -> str:
    """The note on labels a matrix label leaves out of the sample (:meth:`MeasureData.left_out`),
    with their share of the volume and what to set instead (the matrix is one label)."""
    names = dict(s.phase_names)
    which = ", ".join(f"label {v} ({names[v] + ', ' if v in names else ''}"
                      f"{counts[v] / counts.sum():.0%} of the volume)" for v in left)
    many = len(left) > 1
    return (f"{which} {'are' if many else 'is'} neither the phase, the matrix nor outside: "
            f"{'they are' if many else 'it is'} left out of the sample, which is phase + "
            f"matrix (labels {s.phase} and {s.matrix}) for every measure (porosity = phase / "
            "(phase + matrix)). The matrix is one label: to count "
            f"{'them' if many else 'it'} in the sample, set no matrix label (the sample is "
            f"then every label not outside) or merge {'them' if many else 'it'} into label "
            f"{s.matrix} in the segmentation; if {'they are' if many else 'it is'} the "
            "surrounding medium, add " + ("them" if many else "it") + " to the outside labels")


#: words of a phase name that give its label a role (:func:`label_roles`)
ROLE_WORDS = {"phase": ("pore",), "matrix": ("solid",),
              "outside": ("air", "resin", "background", "embedding")}


def label_roles(names: dict[int, str]) -> dict[str, Any]:
    """The label roles of :class:`QuantifySettings` that a segmentation's phase names give
    (:data:`ROLE_WORDS`): the first pore label as ``phase``, a solid as ``matrix`` (else
    None), air, resin, background or embedding as ``outside``; {} when no name says pore.

    The correlative sample's ``{0: air, 1: resin, 2: solid, 3: macropore}`` gives phase 3,
    matrix 2, outside (0, 1): its label 1, the default phase, is the resin.
    """
    def having(role: str) -> list[int]:
        return [k for k, v in sorted(names.items())
                if any(word in v.lower() for word in ROLE_WORDS[role])]

    pores, solids = having("phase"), having("matrix")
    if not pores:
        return {}
    return {"phase": pores[0], "matrix": solids[0] if solids else None,
            "outside": tuple(having("outside"))}


#: the measures that make particle envelopes (``particles_at`` picks among them)
ENVELOPE_MEASURES = {"envelopes", "pv_porosity"}
#: the API's words for the ``$in_memory`` of a :class:`SettingError` about a lazy volume
#: (each front end words how its user measures a volume in memory)
IN_MEMORY = "load the volume (np.asarray) if it fits in memory"


def _check_points(points: tuple, shape: tuple[int, ...], spacing: tuple[float, ...],
                  unit: str) -> None:
    """Refuse ``particles_at`` points that are not (z, y, x) triples inside the volume."""
    pts = np.asarray(points, float)
    if pts.ndim != 2 or pts.shape[1] != 3 or not np.all(np.isfinite(pts)):
        raise SettingError(f"$particles_at must be (z, y, x) points in {unit}, got "
                           f"{points!r}", particles_at="particles_at")
    vox = pts / np.asarray(spacing)
    outside = np.any((vox < -0.5) | (vox > np.asarray(shape) - 0.5), axis=1)
    if outside.any():
        extent = ", ".join(f"{(n - 1) * d:.4g}" for n, d in zip(shape, spacing, strict=True))
        point = tuple(float(v) for v in pts[outside][0].round(4))
        raise ValueError(f"the particle point {point} {unit} lies outside the volume (0 to "
                         f"{extent} {unit} in z, y, x); place it on a particle of this volume")


def _inside_envelopes(d: MeasureData, s: QuantifySettings,
                      r: QuantifyResult) -> tuple[MeasureData, QuantifySettings]:
    """The run's data and settings with what lies outside the particle envelopes (the
    envelopes measure's result in ``r``; with ``exclude_border``, those not cut by the
    border) given a label of its own, outside: the phase, and the matrix of particles
    left out (and specks too small for an envelope)."""
    table = r.tables["particle_envelopes"]
    kept = table["label"][~table["touches_border"]] if s.exclude_border else table["label"]
    if not len(kept):
        raise SettingError("every particle envelope is cut by the volume's border; measure "
                           "without $exclude_border, or a larger region",
                           exclude_border="exclude_border=True")
    env = np.isin(np.asarray(r.arrays["particle envelopes"].data), kept.to_numpy())
    counts = d.counts()
    free = np.flatnonzero(counts[1:] == 0) + 1
    value = int(free[0]) if free.size else len(counts)
    labels = d.labels.astype(np.promote_types(d.labels.dtype, np.min_scalar_type(value)))
    labels[d.sample & ~env] = value  # the phase and the matrix (the matrix label is set)
    s = replace(s, outside=(*s.outside, value))
    left = len(table) - len(kept)
    r.notes.append(f"measured inside {len(kept)} particle envelope"
                   + ("s" if len(kept) > 1 else "")
                   + (f" ({left} cut by the border left out)" if left else "")
                   + "; what lies outside them is left out of every measure")
    return MeasureData(labels, d.spacing, d.unit, s, d.intensity, d.store, d.signature,
                       d.overwrite), s
