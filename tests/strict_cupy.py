"""A strict CuPy stand-in for tests: the subset of ``cupy`` / ``cupyx.scipy.ndimage`` /
``cupyx.scipy.sparse`` the core uses, backed by NumPy/SciPy, whose arrays refuse implicit host conversion
as CuPy's do (``np.asarray(gpu_array)`` and mixing with NumPy arrays raise
``TypeError``; only ``.get()`` and ``cupy.asnumpy`` copy to the host), so host/device
mix-ups in a CuPy code path fail on a machine without a GPU.
"""

from __future__ import annotations

import operator
import sys
import types

import numpy as np
import scipy.ndimage as _ndi
import scipy.sparse as _sparse

from napari_corrtomo.core import backend


class ndarray:  # noqa: N801 - CuPy's name
    """Device array stand-in: wraps a NumPy array and never hands it out implicitly."""

    __array_priority__ = 1000
    __module__ = "cupy._core.core"  # where CuPy's ndarray lives (backend.is_cupy_array)

    def __init__(self, a: np.ndarray):
        self._a = a

    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. "
                        "Please use `.get()` to construct a NumPy array explicitly.")

    def get(self) -> np.ndarray:
        return self._a.copy()

    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    T = property(lambda self: ndarray(self._a.T))

    def __len__(self):
        return len(self._a)

    def __getitem__(self, key):
        return _wrap(self._a[_unwrap(key)])

    def __setitem__(self, key, value):
        self._a[_unwrap(key)] = _unwrap(value)

    def __getattr__(self, name):  # methods: astype, copy, sum, max, ...
        if name.startswith("__"):  # never __array_interface__ & co: they leak host data
            raise AttributeError(name)
        attr = getattr(self._a, name)
        if not callable(attr):
            return _wrap(attr)
        return lambda *a, **k: _wrap(attr(*_unwrap(a), **_unwrap(k)))

    def __bool__(self):
        return bool(self._a)

    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)


def _binary(op, reflected=False):
    def method(self, other):
        other = _unwrap(other)
        return _wrap(op(other, self._a) if reflected else op(self._a, other))
    return method


for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "and", "or", "xor",
              "lt", "le", "gt", "ge", "eq", "ne", "matmul"):
    _op = getattr(operator, _name + "_" if _name in ("and", "or") else _name)
    setattr(ndarray, f"__{_name}__", _binary(_op))
    setattr(ndarray, f"__r{_name}__", _binary(_op, reflected=True))
    if hasattr(operator, "i" + _name):  # in place on the wrapped data
        setattr(ndarray, f"__i{_name}__", _binary(getattr(operator, "i" + _name)))
ndarray.__neg__ = lambda self: ndarray(-self._a)
ndarray.__invert__ = lambda self: ndarray(~self._a)
ndarray.__abs__ = lambda self: ndarray(abs(self._a))


def _unwrap(obj):
    """Device arrays -> their NumPy data; a host NumPy array here is a mix-up, as in CuPy."""
    if isinstance(obj, ndarray):
        return obj._a
    if isinstance(obj, np.ndarray):
        raise TypeError(f"Unsupported type {type(obj)}: a host array met a device array")
    if isinstance(obj, (tuple, list)):
        return type(obj)(_unwrap(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _unwrap(v) for k, v in obj.items()}
    return obj


def _wrap(obj):
    if isinstance(obj, np.ndarray):
        return ndarray(obj)
    if isinstance(obj, tuple):
        return tuple(_wrap(o) for o in obj)
    return obj


def asarray(a, dtype=None):
    """Host -> device copy (explicit, as in CuPy)."""
    if isinstance(a, ndarray):
        return ndarray(a._a.astype(dtype, copy=False) if dtype is not None else a._a)
    return ndarray(np.array(a, dtype=dtype))


def asnumpy(a):
    return a.get() if isinstance(a, ndarray) else np.asarray(a)


class csr_matrix:  # noqa: N801 - CuPy's name
    """Device sparse matrix stand-in: built from a host SciPy matrix (a copy to the
    device, as ``cupyx.scipy.sparse.csr_matrix(m)``); products only with device arrays."""

    def __init__(self, m):
        self._m = m._m if isinstance(m, csr_matrix) else _sparse.csr_matrix(m)

    shape = property(lambda self: self._m.shape)
    dtype = property(lambda self: self._m.dtype)
    T = property(lambda self: csr_matrix(self._m.T))

    def __matmul__(self, other):
        if not isinstance(other, ndarray):
            raise TypeError(f"Unsupported type {type(other)}: a device matrix needs a device "
                            "array")
        return ndarray(np.asarray(self._m @ other._a))


def _module(name: str, funcs: types.ModuleType, overrides: dict) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__dict__.update(overrides)

    def getattr_(attr):
        value = getattr(funcs, attr)
        if not callable(value) or isinstance(value, type):
            return value  # dtypes (float32, int32), constants
        return lambda *a, **k: _wrap(value(*_unwrap(a), **_unwrap(k)))

    mod.__getattr__ = getattr_
    return mod


def make(devices: int = 1) -> dict[str, types.ModuleType]:
    """``sys.modules`` entries for ``cupy`` and ``cupyx.scipy.ndimage`` / ``.sparse``; ``devices=0``
    makes the device query raise as CuPy's does on a machine without a GPU."""

    class CUDARuntimeError(RuntimeError):
        pass

    def get_device_count():
        if devices == 0:
            raise CUDARuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")
        return devices

    runtime = types.SimpleNamespace(getDeviceCount=get_device_count,
                                    memGetInfo=lambda: (8 << 30, 16 << 30),
                                    getDeviceProperties=lambda i: {"name": b"stand-in"},
                                    CUDARuntimeError=CUDARuntimeError)
    cupy = _module("cupy", np, {"ndarray": ndarray, "asarray": asarray, "asnumpy": asnumpy,
                                "cuda": types.SimpleNamespace(runtime=runtime)})
    ndimage = _module("cupyx.scipy.ndimage", _ndi, {})
    sparse = types.ModuleType("cupyx.scipy.sparse")
    sparse.csr_matrix = csr_matrix
    scipy_ = types.ModuleType("cupyx.scipy")
    scipy_.ndimage = ndimage
    scipy_.sparse = sparse
    cupyx = types.ModuleType("cupyx")
    cupyx.scipy = scipy_
    return {"cupy": cupy, "cupyx": cupyx, "cupyx.scipy": scipy_, "cupyx.scipy.ndimage": ndimage,
            "cupyx.scipy.sparse": sparse}


def install(monkeypatch, devices: int = 1) -> types.ModuleType:
    """Put the stand-in in ``sys.modules`` for one test (the backend's device query
    sees it; clear ``backend.cupy_available``'s cache after); returns ``cupy``."""
    for name, mod in make(devices).items():
        monkeypatch.setitem(sys.modules, name, mod)
    monkeypatch.delenv(backend.ENV_BACKEND, raising=False)
    backend.cupy_available.cache_clear()
    return sys.modules["cupy"]
