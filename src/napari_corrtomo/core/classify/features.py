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
import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _kernels
from .._checks import check_spacing
from ..backend import asarray, is_lazy, map_blocks, ndimage_for, resolve_backend, to_host, xp_for
from ..memory import check_memory
from ..progress import ProgressCallback, report

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
#: DoG inner scale factor and structure-tensor outer (integration) scale factor (ilastik)
DOG_K = 0.66
STE_OUTER_K = 0.5
#: Gaussian window in sigmas (ilastik's window size)
TRUNCATE = 3.5
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
            nd = spatial_ndim if f.mode == "3d" else min(spatial_ndim, 2)
            n = nd if f.name in ("ste", "hessian") else 1
            out.extend((f, k) for k in range(n))
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


# =========================================================================== kernels


def _axis_sigmas(sigma: float, spacing: tuple[float, ...], mode: str) -> tuple[float, ...]:
    """Gaussian sigma in voxels per axis; 0 where the filter does not act (2D mode: z)."""
    finest = min(spacing)
    sig = [sigma * finest / s for s in spacing]
    if mode == "2d" and len(spacing) == 3:
        sig[0] = 0.0
    return tuple(sig)


def _radius(sigma: float, truncate: float) -> int:
    return int(truncate * float(sigma) + 0.5) if sigma > 0 else 0


def gaussian_kernel1d(sigma: float, order: int, truncate: float = TRUNCATE) -> np.ndarray:
    """Sampled Gaussian (derivative) kernel, as ``scipy.ndimage.gaussian_filter1d`` builds it,
    ready for ``correlate1d`` (already reversed)."""
    radius = _radius(sigma, truncate)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    phi = np.exp(-0.5 / (sigma * sigma) * x**2)
    phi /= phi.sum()
    if order == 0:
        return phi
    # phi^(n)(x) = q(x) phi(x) with q a polynomial (scipy's recursion)
    exponent = np.arange(order + 1)
    q = np.zeros(order + 1)
    q[0] = 1
    d = np.diag(exponent[1:], 1)
    p = np.diag(np.full(order, -1.0 / (sigma * sigma)), -1)
    qd = d + p
    for _ in range(order):
        q = qd.dot(q)
    kernel = (x[:, None] ** exponent).dot(q) * phi
    return kernel[::-1].copy()


def _threads() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
        return max(1, min(cores, int(os.environ.get("CORRTOMO_THREADS", 64))))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, min(os.cpu_count() or 1, int(os.environ.get("CORRTOMO_THREADS", 64))))


_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=_threads(), thread_name_prefix="corrtomo-filter")
    return _POOL


#: Use the compiled CPU kernels (numba) for NumPy input; False forces the array-module
#: path (``scipy.ndimage`` on NumPy), which is what runs on CuPy.
USE_COMPILED = True


class _Engine:
    """Separable 1D passes on one backend.

    NumPy: the compiled multi-threaded kernel of :mod:`._kernels` (float32, fixed
    summation order), or ``scipy.ndimage`` split over threads. CuPy:
    ``cupyx.scipy.ndimage``. Both agree to float32 rounding.
    """

    def __init__(self, backend: str):
        self.backend = resolve_backend(backend)
        self.xp = xp_for(self.backend)
        self.ndi = ndimage_for(self.backend)
        self.threads = 1 if self.backend == "cupy" else _threads()
        self.compiled = self.backend == "numpy" and USE_COMPILED and _kernels.available()

    def correlate1d(self, arr: Any, weights: np.ndarray, axis: int) -> Any:
        xp, ndi = self.xp, self.ndi
        if self.compiled:
                return _kernels.correlate1d(arr, weights, axis)
        w = xp.asarray(weights, dtype=xp.float64)
        if self.threads == 1 or arr.size < 1 << 18 or arr.ndim == 1:
            return ndi.correlate1d(arr, w, axis=axis, output=xp.float32, mode="reflect")
        split = 0 if axis != 0 else 1
        n = arr.shape[split]
        out = xp.empty(arr.shape, dtype=xp.float32)
        bounds = np.linspace(0, n, min(self.threads, n) + 1).astype(int)

        def work(i: int) -> None:
            sl = [slice(None)] * arr.ndim
            sl[split] = slice(bounds[i], bounds[i + 1])
            ndi.correlate1d(arr[tuple(sl)], w, axis=axis, output=out[tuple(sl)], mode="reflect")

        list(_pool().map(work, range(len(bounds) - 1)))
        return out


def _reflect_index(idx: np.ndarray, n: int) -> np.ndarray:
    """scipy 'reflect' (half-sample symmetric) index mapping for any integer index."""
    m = np.mod(idx, 2 * n)
    return np.where(m >= n, 2 * n - 1 - m, m)


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
        ``progress(done, F)`` after each feature of an in-memory image (a callback that
        raises stops the computation there).

    Returns
    -------
    float32 array ``(F, *out_spatial)`` with ``F = spec.n_features(C, spatial_ndim)``, in
    the order of :meth:`FeatureSpec.names`. For dask/zarr input a lazy dask array,
    computed block by block with the halo :meth:`FeatureSpec.halo` (exactly the
    whole-array result; see :func:`~napari_corrtomo.core.backend.map_blocks`).
    """
    if is_lazy(image):
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
    out = xp.empty((n_out,) + tuple(out_shape), dtype=xp.float32)
    i = 0
    for ch in channels:
        for feat in _channel_features(eng, ch, spec, sp, zr if nd == 3 else None):
            out[i] = feat
            i += 1
            report(progress, i, n_out)
    if i != n_out:  # pragma: no cover - internal consistency
        raise RuntimeError(f"computed {i} features, expected {n_out}")
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


def _channel_features(eng: _Engine, img: Any, spec: FeatureSpec, sp: tuple[float, ...],
                      zr: tuple[int, int] | None):
    """Yield the features of one input channel in spec order (partial results of a scale
    are dropped as soon as the next scale starts)."""
    nd = img.ndim
    # Filters of one (sigma, mode) share Gaussian derivative passes.
    current: tuple[tuple[float, str], _ScaleDerivatives] | None = None
    for f in spec.filters:
        key = (f.sigma, f.mode if nd == 3 else "3d")
        if current is None or current[0] != key:
            current = None
            current = (key, _ScaleDerivatives(eng, img, f.sigma, key[1], sp, spec.truncate, zr))
        yield from current[1].feature(f.name)
    current = None
    if spec.tailored is not None and nd == 3:
        yield from _tailored(eng, img, spec.tailored, sp, spec.truncate, zr)


class _ScaleDerivatives:
    """All filters at one scale from shared separable Gaussian-derivative passes.

    Passes run z, then y, then x, sharing every partial result: the full filter set
    needs 19 one-dimensional passes per scale in 3D instead of 30. With a z range
    the z pass (the first) produces only the requested slices, so every later pass
    works on those slices alone.
    """

    def __init__(self, eng: _Engine, img: Any, sigma: float, mode: str, sp: tuple[float, ...],
                 truncate: float, zr: tuple[int, int] | None):
        self.eng, self.img, self.sigma, self.mode, self.sp = eng, img, sigma, mode, sp
        self.truncate = truncate
        self.nd = img.ndim
        n = img.shape[0]
        self.zr = None if (zr is None or self.nd != 3 or tuple(zr) == (0, n)) else tuple(zr)
        # z first when only some slices are wanted (every later pass is then small);
        # otherwise x first, so the most numerous last passes run along the fast axes
        self.axis_order = tuple(range(self.nd)) if self.zr is not None else tuple(
            range(self.nd))[::-1]
        self.sig = _axis_sigmas(sigma, sp, mode)
        finest = min(sp)
        self.unit = [finest / s for s in sp]  # derivative per finest voxel edge
        self.active = [ax for ax in range(self.nd) if self.sig[ax] > 0]
        self._partial: dict[tuple[int, ...], Any] = {}
        self._deriv: dict[tuple[int, ...], Any] = {}

    def derivative(self, order: tuple[int, ...]) -> Any:
        if order not in self._deriv:
            self._deriv[order] = self._compute(self.img, self.sig, order, self.zr, self._partial)
        return self._deriv[order]

    def _kernel(self, sigma: float, order: int, ax: int) -> np.ndarray:
        w = gaussian_kernel1d(sigma, order, self.truncate)
        return w * self.unit[ax] ** order if order else w

    def _compute(self, src: Any, sig: tuple[float, ...], order: tuple[int, ...],
                 zr: tuple[int, int] | None, cache: dict, base: int = 0) -> Any:
        """Separable Gaussian derivative of ``src`` (which holds global slices ``base ..``
        of a stack of ``img.shape[0]`` slices), output slices ``zr`` (global; None: all)."""
        cur = src
        prefix: tuple[int, ...] = ()
        for ax in self.axis_order:
            prefix = prefix + (order[ax],)
            if prefix in cache:
                cur = cache[prefix]
                continue
            if ax == 0 and self.nd == 3 and zr is not None:
                cur = self._zpass_range(cur, sig[0], order[0], zr, base)
            elif sig[ax] > 0:
                cur = self.eng.correlate1d(cur, self._kernel(sig[ax], order[ax], ax), ax)
            cache[prefix] = cur
        return cur

    def _zpass_range(self, src: Any, sigma_z: float, order: int, zr: tuple[int, int],
                     base: int) -> Any:
        """z pass giving only the global slices ``zr`` (mirror at the true stack ends)."""
        xp = self.eng.xp
        n = self.img.shape[0]
        z0, z1 = zr
        if sigma_z <= 0:
            return src[z0 - base:z1 - base]
        w = self._kernel(sigma_z, order, 0)
        r = len(w) // 2
        idx = _reflect_index(np.arange(z0 - r, z1 + r), n) - base
        if idx.min() < 0 or idx.max() >= src.shape[0]:
            raise ValueError("internal: z range lacks context")  # pragma: no cover
        if self.eng.compiled:
                return _kernels.correlate_first_range(src, w, z0, z1, base, n)
        w32 = xp.asarray(w, dtype=xp.float32)
        out = xp.empty((z1 - z0,) + src.shape[1:], dtype=xp.float32)
        contiguous = bool(np.all(np.diff(idx) == 1))
        for k in range(z1 - z0):
            win = idx[k:k + 2 * r + 1]
            planes = src[int(win[0]):int(win[-1]) + 1] if contiguous else src[xp.asarray(win)]
            out[k] = xp.tensordot(w32, planes, axes=(0, 0))
        return out

    def _orders(self, total: int) -> list[tuple[int, ...]]:
        """All derivative orders of degree ``total`` (1 or 2) over the active axes."""
        res = []
        for i, a in enumerate(self.active):
            if total == 1:
                o = [0] * self.nd
                o[a] = 1
                res.append(tuple(o))
            else:
                for b in self.active[i:]:
                    o = [0] * self.nd
                    o[a] += 1
                    o[b] += 1
                    res.append(tuple(o))
        return res

    def feature(self, name: str) -> list[Any]:
        xp = self.eng.xp
        zero = (0,) * self.nd
        if name == "gaussian":
            return [self.derivative(zero)]
        if name == "dog":
            inner = tuple(s * DOG_K for s in self.sig)
            return [self.derivative(zero) - self._compute(self.img, inner, zero, self.zr, {})]
        if name == "ggm":
            acc = None
            for o in self._orders(1):
                d = self.derivative(o)
                acc = d * d if acc is None else acc + d * d
            return [xp.sqrt(acc)]
        if name == "log":
            acc = None
            for ax in self.active:
                o = [0] * self.nd
                o[ax] = 2
                d = self.derivative(tuple(o))
                acc = d if acc is None else acc + d
            return [acc]
        if name == "hessian":
            mat = [[self.derivative(_add(a, b, self.nd)) for b in self.active] for a in self.active]
            return _eigvalsh_sym(xp, mat, self.eng.compiled)
        if name == "ste":
            return self._structure_tensor()
        raise ValueError(f"unknown filter {name!r}")  # pragma: no cover - spec validates

    def _structure_tensor(self) -> list[Any]:
        outer = tuple(s * STE_OUTER_K for s in self.sig)
        zero = (0,) * self.nd
        if self.zr is None:
            grads = [self.derivative(o) for o in self._orders(1)]
            base, zin = 0, None
        else:
            # the gradient is needed on every slice the outer smoothing reaches
            n = self.img.shape[0]
            r = _radius(outer[0], self.truncate)
            zin = (max(self.zr[0] - r, 0), min(self.zr[1] + r, n))
            cache: dict = {}
            grads = [self._compute(self.img, self.sig, o, zin, cache) for o in self._orders(1)]
            base = zin[0]
        k = len(grads)
        prods: dict[tuple[int, int], Any] = {}
        for i in range(k):
            for j in range(i, k):
                prods[i, j] = prods[j, i] = self._compute(grads[i] * grads[j], outer, zero,
                                                          self.zr, {}, base)
        return _eigvalsh_sym(self.eng.xp, [[prods[i, j] for j in range(k)] for i in range(k)],
                             self.eng.compiled)


def _add(a: int, b: int, nd: int) -> tuple[int, ...]:
    o = [0] * nd
    o[a] += 1
    o[b] += 1
    return tuple(o)


def _eigvalsh_sym(xp: Any, m: list[list[Any]], compiled: bool = False) -> list[Any]:
    """Eigenvalues (descending) of symmetric 2x2 or 3x3 matrices given per element.

    Closed form (Smith 1961 for 3x3, trigonometric), evaluated in float64 so the only
    error is the float32 rounding of the inputs (Weyl); float32 out; no per-voxel
    ``eigvalsh`` call. ``compiled``: the fused numba kernel (NumPy only).
    """
    n = len(m)
    if compiled and n == 3:
        return _kernels.eigvalsh3(m)
    if n == 1:
        return [m[0][0]]
    f64 = [[v.astype(xp.float64) for v in row] for row in m]  # float64 inside, float32 out
    if n == 2:
        a, b, c = f64[0][0], f64[0][1], f64[1][1]
        mean = 0.5 * (a + c)
        rad = xp.sqrt(0.25 * (a - c) ** 2 + b * b)
        return [(mean + rad).astype(xp.float32), (mean - rad).astype(xp.float32)]
    a11, a12, a13 = f64[0][0], f64[0][1], f64[0][2]
    a22, a23, a33 = f64[1][1], f64[1][2], f64[2][2]
    q = (a11 + a22 + a33) / 3.0
    b11, b22, b33 = a11 - q, a22 - q, a33 - q
    p1 = a12 * a12 + a13 * a13 + a23 * a23
    p2 = b11 * b11 + b22 * b22 + b33 * b33 + 2.0 * p1
    p = xp.sqrt(p2 / 6.0)
    safe = xp.where(p > 0, p, 1.0)
    det = (b11 * (b22 * b33 - a23 * a23) - a12 * (a12 * b33 - a23 * a13)
           + a13 * (a12 * a23 - b22 * a13))
    r = det / (2.0 * safe**3)
    r = xp.clip(r, -1.0, 1.0)
    phi = xp.arccos(r) / 3.0
    e1 = q + 2.0 * p * xp.cos(phi)
    e3 = q + 2.0 * p * xp.cos(phi + (2.0 * math.pi / 3.0))
    e2 = 3.0 * q - e1 - e3
    return [e.astype(xp.float32, copy=False) for e in (e1, e2, e3)]


def _tailored(eng: _Engine, img: Any, tail: TailoredFeatures, sp: tuple[float, ...],
              truncate: float, zr: tuple[int, int] | None) -> list[Any]:
    xp = eng.xp
    n = img.shape[0]
    z0, z1 = (0, n) if zr is None else zr
    reach = tail.reach_z
    lo, hi = max(z0 - reach, 0), min(z1 + reach, n)
    out = []
    for s in tail.sigmas:
        sig = _axis_sigmas(s, sp, "2d")
        sm = img[lo:hi]
        for ax in (1, 2):
            sm = eng.correlate1d(sm, gaussian_kernel1d(sig[ax], 0, truncate), ax)

        def at(offset: int, sm: Any = sm) -> Any:
            idx = np.clip(np.arange(z0, z1) + offset, 0, n - 1) - lo
            return sm[xp.asarray(idx)] if offset else sm[z0 - lo:z1 - lo]

        cur = at(0)
        for d in tail.offsets:
            out.append(cur - at(-d))
            out.append(at(d) - cur)
        ahead = at(1)
        behind = at(-1)
        for j in range(2, tail.window + 1):
            ahead = xp.maximum(ahead, at(j))
            behind = xp.minimum(behind, at(-j))
        out.append(ahead - cur)
        out.append(cur - behind)
    return out


def features_to_host(features: Any) -> np.ndarray:
    """The feature stack as a NumPy array (for CuPy results)."""
    return np.asarray(to_host(features))


__all__ = [
    "DOG_K", "FILTERS", "ILASTIK_SIGMAS", "STE_OUTER_K", "TRUNCATE", "FeatureSpec", "FilterItem",
    "TailoredFeatures", "compute_features", "gaussian_kernel1d", "features_to_host",
]
