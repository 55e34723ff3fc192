"""ilastik-compatible pixel features (2D/3D, multichannel, anisotropic) and FIB tailored features.

The filter bank is ilastik's: Gaussian smoothing, Laplacian of Gaussian (LoG),
Gaussian gradient magnitude (GGM), difference of Gaussians (DoG),
structure-tensor eigenvalues (STE) and Hessian-of-Gaussian eigenvalues (HoGE), at
the scales 0.3, 0.7, 1.0, 1.6, 3.5, 5.0 and 10.0, each in 2D (within the (y, x)
plane, slice by slice) or 3D. Definitions follow ilastik's pixel classification:

- DoG(sigma) = G(sigma) - G(0.66 sigma);
- STE(sigma): gradient at ``sigma`` (inner scale), tensor smoothed at ``sigma / 2``
  (outer scale); eigenvalues sorted in descending order, as are HoGE's;
- Gaussian kernels are truncated at ``3.5 sigma`` (ilastik's window size) and
  borders are mirrored (``scipy.ndimage`` mode ``"reflect"``).

Anisotropic voxels (FIB-SEM!) are honoured: a scale ``sigma`` is in units of the
finest voxel edge, so along an axis with voxel size ``s_i`` the Gaussian has
``sigma * min(s) / s_i`` voxels, and derivatives are taken per finest voxel edge,
which keeps gradients and Hessians rotation-consistent in physical space.

Input channels may be complemented by all pairwise channel differences (the seed
paper's SE2 - InLens signal), and by features *tailored* to FIB-SEM tomography:
along the milling axis (z), differences of the in-plane smoothed image to preceding
and following slices, and the shine-through evolution (how much brighter the
following slices get, how much darker the preceding ones were), which separates
pores showing material behind them from the milled material itself.

All filters run through one code path for NumPy and CuPy (``xp``/``ndimage`` of
:mod:`napari_corrtomo.core.backend`); features are float32. Every feature at a voxel
depends only on inputs within :meth:`FeatureSpec.halo` voxels, so blockwise
computation with that halo reproduces whole-array results exactly.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._checks import check_spacing
from .._kernels import ticking
from ..backend import asarray, is_lazy, map_blocks, to_host
from ..memory import check_memory
from ..progress import ProgressCallback, report
from ._filterbank import (
    DOG_K,
    STE_OUTER_K,
    TRUNCATE,
    _axis_sigmas,
    _channel_features,
    _Engine,
    _radius,
    gaussian_kernel1d,
    output_array,
)

#: ilastik's scales
ILASTIK_SIGMAS = (0.3, 0.7, 1.0, 1.6, 3.5, 5.0, 10.0)
#: filter keys, in ilastik's table order, with their display names
FILTERS = {
    "gaussian": "Gaussian smoothing",
    "log": "Laplacian of Gaussian",
    "ggm": "Gaussian gradient magnitude",
    "dog": "Difference of Gaussians",
    "ste": "Structure tensor eigenvalues",
    "hessian": "Hessian of Gaussian eigenvalues",
}
MODES = ("2d", "3d")
#: Documented accuracy: the largest error of each filter against ``scipy.ndimage`` in
#: float64 with the same windows and borders, relative to the filter's largest magnitude
#: over its components -- for DoG, relative to the largest magnitude of the Gaussian it is
#: the difference of (the difference cancels leading digits: float32 rounding of the
#: operands). Tested in 2D, 3D, anisotropic and blockwise; measured values in
#: docs/benchmarks/features.md.
REL_TOLERANCE = {"gaussian": 1e-6, "log": 5e-5, "ggm": 5e-5, "dog": 2e-6, "ste": 5e-5,
                 "hessian": 5e-5}
SPEC_VERSION = 1


# =========================================================================== spec


@dataclass(frozen=True)
class FilterItem:
    """One filter at one scale; ``mode`` ``"3d"`` filters all spatial axes, ``"2d"`` only (y, x)."""

    name: str
    sigma: float
    mode: str = "3d"

    def __post_init__(self) -> None:
        if self.name not in FILTERS:
            raise ValueError(f"unknown filter {self.name!r}; choose one of {', '.join(FILTERS)}")
        if not (np.isfinite(self.sigma) and self.sigma > 0):
            raise ValueError(f"filter scale must be positive, got {self.sigma!r}")
        if self.mode not in MODES:
            raise ValueError(f"filter mode must be '2d' or '3d', got {self.mode!r}")

    def n_outputs(self, spatial_ndim: int) -> int:
        """Its components: one eigenvalue per axis it filters (STE, Hessian), else 1."""
        nd = spatial_ndim if self.mode == "3d" else min(spatial_ndim, 2)
        return nd if self.name in ("ste", "hessian") else 1


@dataclass(frozen=True)
class TailoredFeatures:
    """FIB-SEM features along the milling axis (axis 0 = z), per input channel.

    For each in-plane scale ``s`` in ``sigmas`` the channel is smoothed within the
    (y, x) plane (S = G_s * I, slice by slice) and these features are formed:

    - ``S[z] - S[z-d]`` and ``S[z+d] - S[z]`` for each ``d`` in ``offsets``
      (differences to preceding and following slices);
    - ``max(S[z+1 .. z+w]) - S[z]`` (brightening ahead: shine-through of material
      behind a pore grows as the milling approaches it) and
      ``S[z] - min(S[z-w .. z-1])`` (darkening behind), ``w = window``.

    Slices beyond the stack's ends repeat the end slice (no invented data).
    """

    sigmas: tuple[float, ...] = (0.7, 1.6)
    offsets: tuple[int, ...] = (1, 2)
    window: int = 4

    def __post_init__(self) -> None:
        object.__setattr__(self, "sigmas", tuple(float(s) for s in self.sigmas))
        object.__setattr__(self, "offsets", tuple(int(d) for d in self.offsets))
        if not self.sigmas or any(not (np.isfinite(s) and s > 0) for s in self.sigmas):
            raise ValueError(f"tailored feature scales must be positive, got {self.sigmas}")
        if not self.offsets or any(d < 1 for d in self.offsets):
            raise ValueError(f"tailored slice offsets must be >= 1, got {self.offsets}")
        if int(self.window) < 1:
            raise ValueError(f"tailored window must be >= 1 slice, got {self.window}")

    @property
    def per_scale(self) -> int:
        return 2 * len(self.offsets) + 2

    @property
    def reach_z(self) -> int:
        return max(max(self.offsets), int(self.window))


@dataclass(frozen=True)
class FeatureSpec:
    """Which features to compute: filters x scales x 2D/3D, channel differences, tailored.

    The spec is serialisable (:meth:`to_json`), goes into the classifier file, and
    tells the halo blockwise work needs (:meth:`halo`).

    Parameters
    ----------
    filters
        The filters, each at one scale, in 2D (each z slice alone) or 3D.
    channel_differences
        Add the differences between channels as extra features (two-detector FIB-SEM).
    tailored
        Features across neighbouring slices for FIB-SEM stacks, where pores show the
        material behind them (pore-back effect); None: none.
    truncate
        Gaussian kernels end at this many standard deviations.
    """

    filters: tuple[FilterItem, ...]
    channel_differences: bool = False
    tailored: TailoredFeatures | None = None
    truncate: float = TRUNCATE

    def __post_init__(self) -> None:
        items = tuple(f if isinstance(f, FilterItem) else FilterItem(*f) for f in self.filters)
        if not items:
            raise ValueError("the feature set is empty; select at least one filter and scale")
        if len(set(items)) != len(items):
            raise ValueError("the feature set lists a filter/scale/mode twice")
        # canonical order: by scale, then mode, then ilastik's filter order (filters of one
        # scale share their Gaussian derivative passes)
        order = list(FILTERS)
        items = tuple(sorted(items, key=lambda f: (f.sigma, f.mode, order.index(f.name))))
        object.__setattr__(self, "filters", items)
        if not self.truncate >= 1.0:
            raise ValueError(f"truncate must be >= 1 sigma, got {self.truncate}")

    # ------------------------------------------------------------------ constructors

    @classmethod
    def ilastik_default(cls, mode: str = "3d", channel_differences: bool = False,
                        tailored: bool | TailoredFeatures = False) -> FeatureSpec:
        """ilastik's full default table: Gaussian at every scale, the other five filters at
        every scale from 0.7 on (61 features per input channel in 3D, 49 in 2D)."""
        items = [FilterItem(name, s, mode) for name in FILTERS for s in ILASTIK_SIGMAS
                 if name == "gaussian" or s >= 0.7]
        tail = TailoredFeatures() if tailored is True else (tailored or None)
        return cls(tuple(items), channel_differences, tail)

    @classmethod
    def from_table(cls, table: dict[tuple[str, float], str | bool | None],
                   **kwargs: Any) -> FeatureSpec:
        """From a ``{(filter, sigma): "2d" | "3d" | None/False}`` table (the widget's grid)."""
        items = [FilterItem(name, float(s), "3d" if mode is True else mode)
                 for (name, s), mode in table.items() if mode]
        return cls(tuple(items), **kwargs)

    # ------------------------------------------------------------------ serialisation

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": SPEC_VERSION,
            "filters": [[f.name, f.sigma, f.mode] for f in self.filters],
            "channel_differences": bool(self.channel_differences),
            "tailored": None if self.tailored is None else {
                "sigmas": list(self.tailored.sigmas), "offsets": list(self.tailored.offsets),
                "window": int(self.tailored.window)},
            "truncate": float(self.truncate),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSpec:
        version = int(data.get("version", -1))
        if version != SPEC_VERSION:
            raise ValueError(
                f"feature spec version {version} is not supported (this version reads "
                f"{SPEC_VERSION}); retrain the classifier with this version of napari-corrtomo"
            )
        tail = data.get("tailored")
        return cls(
            tuple(FilterItem(str(n), float(s), str(m)) for n, s, m in data["filters"]),
            bool(data.get("channel_differences", False)),
            None if tail is None else TailoredFeatures(tuple(tail["sigmas"]),
                                                       tuple(tail["offsets"]), int(tail["window"])),
            float(data.get("truncate", TRUNCATE)),
        )

    @classmethod
    def from_json(cls, text: str) -> FeatureSpec:
        return cls.from_dict(json.loads(text))

    # ------------------------------------------------------------------ geometry

    def n_inputs(self, n_channels: int) -> int:
        """Input channels after adding pairwise differences."""
        return n_channels + (n_channels * (n_channels - 1) // 2 if self.channel_differences else 0)

    def input_names(self, channel_names: Sequence[str]) -> list[str]:
        names = list(channel_names)
        if self.channel_differences:
            names += [f"{a}-{b}" for i, a in enumerate(channel_names)
                      for b in channel_names[i + 1:]]
        return names

    def filter_outputs(self, spatial_ndim: int) -> list[tuple[FilterItem, int]]:
        """(filter, component) for each per-channel filter output, in feature order."""
        out = []
        for f in self.filters:
            out.extend((f, k) for k in range(f.n_outputs(spatial_ndim)))
        return out

    def features_per_input(self, spatial_ndim: int) -> int:
        n = len(self.filter_outputs(spatial_ndim))
        if self.tailored is not None and spatial_ndim == 3:
            n += self.tailored.per_scale * len(self.tailored.sigmas)
        return n

    def n_features(self, n_channels: int, spatial_ndim: int = 3) -> int:
        return self.n_inputs(n_channels) * self.features_per_input(spatial_ndim)

    def names(self, channel_names: Sequence[str] | int, spatial_ndim: int = 3) -> list[str]:
        """Readable feature names, e.g. ``"SE2: Hessian of Gaussian eigenvalues 1.6 3D [0]"``."""
        if isinstance(channel_names, int):
            channel_names = [f"ch{i}" for i in range(channel_names)]
        out = []
        for ch in self.input_names(channel_names):
            for f, k in self.filter_outputs(spatial_ndim):
                comp = f" [{k}]" if f.name in ("ste", "hessian") else ""
                out.append(f"{ch}: {FILTERS[f.name]} {f.sigma:g} {f.mode.upper()}{comp}")
            if self.tailored is not None and spatial_ndim == 3:
                for s in self.tailored.sigmas:
                    for d in self.tailored.offsets:
                        out.append(f"{ch}: z-difference to slice -{d} (in-plane {s:g})")
                        out.append(f"{ch}: z-difference to slice +{d} (in-plane {s:g})")
                    w = self.tailored.window
                    out.append(f"{ch}: brightening over next {w} slices (in-plane {s:g})")
                    out.append(f"{ch}: darkening over previous {w} slices (in-plane {s:g})")
        return out

    def halo(self, spacing: Sequence[float] | None = None,
             spatial_ndim: int = 3) -> tuple[int, ...]:
        """Voxels of context per spatial axis that make blockwise results exact."""
        sp = check_spacing(1.0 if spacing is None else spacing, spatial_ndim)
        reach = [0] * spatial_ndim
        for f in self.filters:
            sig = _axis_sigmas(f.sigma, sp, f.mode)
            for ax, s in enumerate(sig):
                r = _radius(s, self.truncate)
                if f.name == "ste":
                    r += _radius(s * STE_OUTER_K, self.truncate)
                reach[ax] = max(reach[ax], r)
        if self.tailored is not None and spatial_ndim == 3:
            reach[0] = max(reach[0], self.tailored.reach_z)
            for s in self.tailored.sigmas:
                sig = _axis_sigmas(s, sp, "2d")
                for ax in (1, 2):
                    reach[ax] = max(reach[ax], _radius(sig[ax], self.truncate))
        return tuple(reach)


# =========================================================================== compute


def compute_features(
    image: Any,
    spec: FeatureSpec,
    spacing: Sequence[float] | None = None,
    *,
    spatial_ndim: int | None = None,
    z_range: tuple[int, int] | None = None,
    backend: str = "numpy",
    progress: ProgressCallback | None = None,
    out: Any = None,
) -> Any:
    """Feature stack of an image.

    Parameters
    ----------
    image
        ``(C, *spatial)`` channels first, ``spatial`` = (z, y, x) or (y, x); with
        ``spatial_ndim`` equal to ``image.ndim`` a single channel without a channel axis.
    spec
        The features (:class:`FeatureSpec`).
    spacing
        Voxel size per spatial axis (any one unit); sets the per-axis scales.
    spatial_ndim
        2 or 3; default: ``image.ndim - 1`` (channels first).
    z_range
        ``(z0, z1)``: compute only the slices ``z0 .. z1-1`` (3D), still using the
        whole input as context, exactly as the whole computation would give them. This is
        what makes a live slice update cheap.
    backend
        ``"numpy"`` or ``"cupy"`` (``"auto"`` resolves); the result lives on that device.
    progress
        ``progress(done, F)`` after each feature of an in-memory image, and again
        (same numbers) between chunks of every compiled filter pass (a callback that
        raises stops the computation there, within tens of milliseconds).
    out
        A C-contiguous float32 array of the result's shape (on the backend's device) to
        write into: a caller computing slab after slab reuses one stack instead of
        touching fresh memory for each (on a VM, first writes to new pages cost more
        system time than the filters take).

    Returns
    -------
    float32 array ``(F, *out_spatial)`` with ``F = spec.n_features(C, spatial_ndim)``, in
    the order of :meth:`FeatureSpec.names`. For dask/zarr input a lazy dask array,
    computed block by block with the halo :meth:`FeatureSpec.halo` (exactly the
    whole-array result; see :func:`~napari_corrtomo.core.backend.map_blocks`).
    """
    if is_lazy(image):
        if out is not None:
            raise ValueError("out is for in-memory images; a lazy image gives a dask array")
        return _features_lazy(image, spec, spacing, spatial_ndim, z_range, backend)
    eng = _Engine(backend)
    xp = eng.xp
    nd = image.ndim - 1 if spatial_ndim is None else int(spatial_ndim)
    if nd not in (2, 3):
        raise ValueError(f"features need 2D or 3D images, got {nd} spatial axes")
    arr = asarray(image, eng.backend)
    if arr.ndim == nd:
        arr = arr[None]
    if arr.ndim != nd + 1:
        raise ValueError(
            f"image has {arr.ndim} axes; expected {nd} spatial axes plus one channel axis")
    sp = check_spacing(1.0 if spacing is None else spacing, nd)
    arr = arr.astype(xp.float32, copy=False)
    channels = [arr[c] for c in range(arr.shape[0])]
    if spec.channel_differences:
        n = len(channels)
        channels += [channels[i] - channels[j] for i in range(n) for j in range(i + 1, n)]
    if z_range is not None and nd != 3:
        raise ValueError("z_range needs a 3D image")
    zr = (0, arr.shape[1]) if (z_range is None or nd != 3) else (int(z_range[0]), int(z_range[1]))
    if nd == 3 and not 0 <= zr[0] < zr[1] <= arr.shape[1]:
        raise ValueError(f"z_range {z_range} is outside the {arr.shape[1]} slices")
    n_out = spec.features_per_input(nd) * len(channels)
    out_shape = arr.shape[1:] if nd != 3 else (zr[1] - zr[0],) + arr.shape[2:]
    if eng.backend == "numpy":  # with a z range every pass works on the output slices only
        check_memory("features", out_shape, n_out)
    if out is None:
        out = output_array(eng, (n_out,) + tuple(out_shape))
    elif (tuple(out.shape) != (n_out,) + tuple(out_shape) or out.dtype != xp.float32
          or not out.flags.c_contiguous):
        raise ValueError(f"out must be a C-contiguous float32 array of shape "
                         f"{(n_out,) + tuple(out_shape)}, got {out.dtype} {out.shape}")
    per = spec.features_per_input(nd)
    written = [0]
    # between chunks of every compiled pass the features done so far are reported again:
    # a cancelling callback stops a large block within tens of milliseconds
    tick = None if progress is None else lambda: report(progress, written[0], n_out)
    with ticking(tick):
        for c, ch in enumerate(channels):
            # every filter writes its components into its slots of ``out`` (no copies)
            for done in _channel_features(eng, ch, spec, sp, zr if nd == 3 else None,
                                          out[c * per:(c + 1) * per]):
                written[0] = c * per + done
                report(progress, written[0], n_out)
            if done != per:  # pragma: no cover - internal consistency
                raise RuntimeError(f"computed {done} features per channel, expected {per}")
    return out


def _features_lazy(image: Any, spec: FeatureSpec, spacing: Sequence[float] | None,
                   spatial_ndim: int | None, z_range: tuple[int, int] | None,
                   backend: str) -> Any:
    nd = image.ndim - 1 if spatial_ndim is None else int(spatial_ndim)
    if nd not in (2, 3):
        raise ValueError(f"features need 2D or 3D images, got {nd} spatial axes")
    if z_range is not None:
        raise ValueError("z_range is for in-memory images; slice the dask array instead")
    if image.ndim not in (nd, nd + 1):
        raise ValueError(
            f"image has {image.ndim} axes; expected {nd} spatial axes plus one channel axis")
    n_channels = 1 if image.ndim == nd else int(image.shape[0])
    n_out = spec.n_features(n_channels, nd)
    sp = check_spacing(1.0 if spacing is None else spacing, nd)

    def block(b: Any) -> Any:
        return compute_features(b, spec, sp, spatial_ndim=nd, backend=backend)

    return map_blocks(block, image, spec.halo(sp, nd), spatial_ndim=nd, backend=backend,
                      bytes_per_voxel=4.0 * (n_out / n_channels + 24), out_leading=(n_out,),
                      out_dtype=np.float32)


def features_to_host(features: Any) -> np.ndarray:
    """The feature stack as a NumPy array (for CuPy results)."""
    return np.asarray(to_host(features))


__all__ = [
    "DOG_K", "FILTERS", "ILASTIK_SIGMAS", "REL_TOLERANCE", "STE_OUTER_K", "TRUNCATE",
    "FeatureSpec", "FilterItem",
    "TailoredFeatures", "compute_features", "gaussian_kernel1d", "features_to_host",
]
