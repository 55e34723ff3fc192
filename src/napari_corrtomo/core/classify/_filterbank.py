"""The filter bank's engine: Gaussian-derivative passes shared per scale, eigenvalues of
symmetric matrices, the FIB tailored features, on NumPy (compiled kernels) or CuPy.

:mod:`.features` holds what to compute (:class:`~.features.FeatureSpec`) and the public
:func:`~.features.compute_features`; this module how.
"""

from __future__ import annotations

import functools
import math
import os
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import _kernels
from ..backend import ndimage_for, resolve_backend, xp_for
from ._workpool import _WORK, KEEP_BYTES, _Lease

if TYPE_CHECKING:
    from .features import FeatureSpec, TailoredFeatures

#: DoG inner scale factor and structure-tensor outer (integration) scale factor (ilastik)
DOG_K = 0.66
STE_OUTER_K = 0.5
#: Gaussian window in sigmas (ilastik's window size)
TRUNCATE = 3.5

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


@functools.lru_cache(maxsize=256)
def _scaled_kernel(sigma: float, order: int, truncate: float, unit: float) -> np.ndarray:
    """``gaussian_kernel1d`` times ``unit ** order`` (derivative per finest voxel edge),
    built once per process (a pass costs well under a millisecond on a 512^2 image; building
    the kernel would add a fifth of that), read-only."""
    w = gaussian_kernel1d(sigma, order, truncate)
    w = w * unit**order if order else w
    w.flags.writeable = False
    return w


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


def output_array(eng: _Engine, shape: tuple[int, ...]) -> Any:
    """An empty float32 feature stack: recycled (see :class:`_Lease`) for compiled stacks
    within :data:`KEEP_BYTES`, else a fresh array."""
    if eng.compiled and 4 * math.prod(shape) <= KEEP_BYTES:
        return np.asarray(_Lease(_WORK.take(shape)))
    return eng.xp.empty(shape, dtype=eng.xp.float32)


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
        self.compiled = self.backend == "numpy" and USE_COMPILED

    def take(self, shape: tuple[int, ...], owned: list[Any]) -> Any:
        """A recycled float32 work array of ``shape`` (compiled passes; else None: the
        pass allocates), recorded in ``owned``."""
        if not self.compiled:
            return None
        arr = _WORK.take(shape)
        owned.append(arr)
        return arr

    @staticmethod
    def give(owned: list[Any], keep: Any = None) -> None:
        """Return the work arrays of ``owned`` (all but ``keep``) and empty ``owned``."""
        _WORK.give([a for a in owned if a is not keep])
        owned.clear()

    def correlate1d(self, arr: Any, weights: np.ndarray, axis: int, out: Any = None,
                    times: Any = None) -> Any:
        """Correlate ``arr`` (times ``times``, elementwise, when given) along ``axis``;
        into ``out`` when given."""
        if self.compiled:
            return _kernels.correlate1d(arr, weights, axis, out, times, self.threads)
        res = self._correlate1d(arr if times is None else arr * times, weights, axis)
        if out is None:
            return res
        out[...] = res
        return out

    def _correlate1d(self, arr: Any, weights: np.ndarray, axis: int) -> Any:
        xp, ndi = self.xp, self.ndi
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



def _channel_features(eng: _Engine, img: Any, spec: FeatureSpec, sp: tuple[float, ...],
                      zr: tuple[int, int] | None, dest: Any):
    """Write the features of one input channel into ``dest`` (``(F_channel, *out_spatial)``)
    in spec order; yield the number written so far after each filter (partial results of a
    scale are dropped as soon as the next scale starts)."""
    nd = img.ndim
    # Filters of one (sigma, mode) share Gaussian derivative passes: one group per scale.
    groups: list[tuple[tuple[float, str], list]] = []
    done = 0
    for f in spec.filters:
        key = (f.sigma, f.mode if nd == 3 else "3d")
        n = f.n_outputs(nd)
        if not groups or groups[-1][0] != key:
            groups.append((key, []))
        groups[-1][1].append((f, dest[done:done + n]))
        done += n

    def scale(key: tuple[float, str], items: list):
        """The filters of one scale into their slots; yields the count after each."""
        derivs = _ScaleDerivatives(eng, img, key[0], key[1], sp, spec.truncate, zr)
        try:
            for f, slots in items:
                derivs.feature(f.name, list(slots))
                yield len(slots)
        finally:
            derivs.release()

    done = 0
    try:
        if nd == 2 and eng.compiled and eng.threads > 1 and img.size < _kernels.SPLIT_VOXELS:
            # Small 2D images (a slice): a pass is too short to split over threads, so the
            # scales run side by side instead (each writes its own slots of ``dest``), with
            # the caller's cancel checks between the chunks of their passes. Not in 3D: the
            # work arrays two scales hold at once vary with their timing, and a volume's
            # next call should find every one it needs in the pool.
            tick = _kernels.current_tick()

            def run(g: tuple) -> int:
                with _kernels.ticking(tick):
                    return sum(scale(*g))

            futures = [_pool().submit(run, g) for g in groups]
            try:
                for fut in futures:
                    done += fut.result()
                    yield done
            finally:
                for fut in futures:
                    fut.cancel()
                wait(futures)
        else:
            for g in groups:
                for n in scale(*g):
                    done += n
                    yield done
    finally:
        _WORK.trim()
    if spec.tailored is not None and nd == 3:
        for feat in _tailored(eng, img, spec.tailored, sp, spec.truncate, zr):
            dest[done] = feat
            done += 1
        yield done


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
        self._owned: list[Any] = []  # work arrays taken from the pool (see release)

    def release(self) -> None:
        """Give this scale's work arrays back to the pool (the scale is done)."""
        self._partial.clear()
        self._deriv.clear()
        self.eng.give(self._owned)

    def derivative(self, order: tuple[int, ...], out: Any = None) -> Any:
        """The Gaussian derivative ``order`` (cached), written into ``out`` too when given."""
        if order not in self._deriv:
            self._deriv[order] = self._compute(self.img, self.sig, order, self.zr, self._partial,
                                               out=out)
        elif out is not None:
            out[...] = self._deriv[order]
        return self._deriv[order]

    def _kernel(self, sigma: float, order: int, ax: int) -> np.ndarray:
        return _scaled_kernel(sigma, order, self.truncate, self.unit[ax])

    def _compute(self, src: Any, sig: tuple[float, ...], order: tuple[int, ...],
                 zr: tuple[int, int] | None, cache: dict, base: int = 0, out: Any = None,
                 times: Any = None) -> Any:
        """Separable Gaussian derivative of ``src`` (times ``times``, elementwise, when
        given; ``src`` holds global slices ``base ..`` of a stack of ``img.shape[0]``
        slices), output slices ``zr`` (global; None: all), written into ``out`` when given
        (the last pass writes there directly)."""
        ranged = self.nd == 3 and zr is not None
        works = [ax for ax in self.axis_order if (ax == 0 and ranged) or sig[ax] > 0]
        if times is not None and (not works or works[0] != self.axis_order[0]
                                  or (ranged and works[0] == 0)):
            src, times = src * times, None  # the first pass cannot form the product itself
        cur = src
        prefix: tuple[int, ...] = ()
        for ax in self.axis_order:
            prefix = prefix + (order[ax],)
            if prefix in cache:
                cur = cache[prefix]
                continue
            dst = out if ax == works[-1] else None
            if ax == 0 and ranged:
                cur = self._zpass_range(cur, sig[0], order[0], zr, base, dst)
            elif sig[ax] > 0:
                if dst is None:
                    dst = self.eng.take(cur.shape, self._owned)
                cur = self.eng.correlate1d(cur, self._kernel(sig[ax], order[ax], ax), ax, dst,
                                           times)
                times = None
            cache[prefix] = cur
        if out is not None and cur is not out:
            out[...] = cur
            cur = out
        return cur

    def _zpass_range(self, src: Any, sigma_z: float, order: int, zr: tuple[int, int],
                     base: int, out: Any = None) -> Any:
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
            if out is None:
                out = self.eng.take((z1 - z0,) + src.shape[1:], self._owned)
            return _kernels.correlate_first_range(src, w, z0, z1, base, n, out)
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

    def feature(self, name: str, dest: list[Any]) -> None:
        """Write filter ``name`` at this scale into ``dest`` (one array per component)."""
        xp = self.eng.xp
        zero = (0,) * self.nd
        if name == "gaussian":
            self.derivative(zero, dest[0])
        elif name == "dog":
            inner = tuple(s * DOG_K for s in self.sig)
            smooth = self.derivative(zero)  # (scale cache: taken before the mark)
            mark = len(self._owned)
            xp.subtract(smooth, self._compute(self.img, inner, zero, self.zr, {}), out=dest[0])
            self._give_since(mark)
        elif name == "ggm":
            grads = [self.derivative(o) for o in self._orders(1)]
            if self.eng.compiled:
                _kernels.magnitude(grads, dest[0], self.eng.threads)
            else:
                xp.sqrt(sum(d * d for d in grads), out=dest[0])
        elif name == "log":
            parts = []
            for ax in self.active:
                o = [0] * self.nd
                o[ax] = 2
                parts.append(self.derivative(tuple(o)))
            xp.add(parts[0], parts[1], out=dest[0])  # 2 or 3 active axes
            for d in parts[2:]:
                xp.add(dest[0], d, out=dest[0])
        elif name == "hessian":
            mat = [[self.derivative(_add(a, b, self.nd)) for b in self.active] for a in self.active]
            _eigvalsh_sym(xp, mat, self.eng.compiled, dest, self.eng.threads)
        elif name == "ste":
            self._structure_tensor(dest)
        else:  # pragma: no cover - spec validates
            raise ValueError(f"unknown filter {name!r}")

    def _give_since(self, mark: int, keep: Any = None) -> None:
        """Give back the work arrays taken since ``len(self._owned)`` was ``mark`` (a
        feature's temporaries, none of them in the scale's caches), except ``keep``."""
        temps = self._owned[mark:]
        del self._owned[mark:]
        if keep is not None and any(a is keep for a in temps):
            self._owned.append(keep)
        self.eng.give(temps, keep)

    def _structure_tensor(self, dest: list[Any]) -> None:
        outer = tuple(s * STE_OUTER_K for s in self.sig)
        zero = (0,) * self.nd
        if self.zr is None:
            grads = [self.derivative(o) for o in self._orders(1)]  # (scale cache)
            base, zin = 0, None
            start = len(self._owned)
        else:
            start = len(self._owned)
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
            for j in range(i, k):  # the first smoothing pass forms the product g_i g_j itself
                mark = len(self._owned)
                prods[i, j] = prods[j, i] = self._compute(grads[i], outer, zero, self.zr, {},
                                                          base, times=grads[j])
                self._give_since(mark, keep=prods[i, j])
        _eigvalsh_sym(self.eng.xp, [[prods[i, j] for j in range(k)] for i in range(k)],
                      self.eng.compiled, dest, self.eng.threads)
        del prods, grads
        self._give_since(start)


def _add(a: int, b: int, nd: int) -> tuple[int, ...]:
    o = [0] * nd
    o[a] += 1
    o[b] += 1
    return tuple(o)


def _eigvalsh_sym(xp: Any, m: list[list[Any]], compiled: bool, dest: list[Any],
                  threads: int = 1) -> None:
    """Eigenvalues (descending) of symmetric 1x1, 2x2 or 3x3 matrices given per element,
    written into ``dest``.

    Closed form (Smith 1961 for 3x3, trigonometric), evaluated in float64 so the only
    error is the float32 rounding of the inputs (Weyl); float32 out; no per-voxel
    ``eigvalsh`` call. ``compiled``: the fused numba kernels (NumPy only).
    """
    if compiled and len(m) > 1:
        _kernels.eigvalsh(m, dest, threads)
    else:
        for d, e in zip(dest, _eigvalsh_closed_form(xp, m)):
            d[...] = e


def _eigvalsh_closed_form(xp: Any, m: list[list[Any]]) -> list[Any]:
    n = len(m)
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
