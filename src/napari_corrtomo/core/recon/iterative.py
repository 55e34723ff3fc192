"""SIRT and CGLS on any pair of projector / transpose callables.

SIRT (the seeds use 100 iterations for nanoCT, 50 for ET) updates
``x <- x + C A^T R (b - A x)`` with ``R = 1 / (A 1)`` and ``C = 1 / (A^T 1)``
(ASTRA's definition); an optional ``min_value`` clamps after every iteration
(e.g. 0 for non-negative attenuation). CGLS is conjugate gradients on the normal
equations (unconstrained least squares). Both report ``progress(done, total)``
after every iteration; raising :class:`~..progress.Cancelled` from it stops them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..progress import ProgressCallback, report

Operator = Callable[[np.ndarray], np.ndarray]


def _inverse(a: np.ndarray, eps: float) -> np.ndarray:
    out = np.zeros_like(a)
    np.divide(1.0, a, out=out, where=a > eps)
    return out


def sirt(forward: Operator, adjoint: Operator, data: np.ndarray, x_shape: tuple[int, ...],
         iterations: int, min_value: float | None = None,
         progress: ProgressCallback | None = None, done: int = 0, total: int | None = None,
         x0: np.ndarray | None = None) -> np.ndarray:
    """SIRT for ``forward(x) ~ data``; ``done``/``total`` place the iterations inside a larger
    progress count (e.g. several slice batches)."""
    total = iterations if total is None else total
    b = np.asarray(data, np.float32)
    ones_x = np.ones(x_shape, np.float32)
    row = forward(ones_x)
    eps_r = 1e-6 * float(row.max()) if row.size else 0.0
    r_inv = _inverse(row, eps_r)
    col = adjoint(np.ones_like(b))
    eps_c = 1e-6 * float(col.max()) if col.size else 0.0
    c_inv = _inverse(col, eps_c)
    x = np.zeros(x_shape, np.float32) if x0 is None else np.array(x0, np.float32)
    for it in range(iterations):
        resid = b - forward(x)
        resid *= r_inv
        x += c_inv * adjoint(resid)
        if min_value is not None:
            np.maximum(x, np.float32(min_value), out=x)
        report(progress, done + it + 1, total)
    return x


def cgls(forward: Operator, adjoint: Operator, data: np.ndarray, x_shape: tuple[int, ...],
         iterations: int, progress: ProgressCallback | None = None, done: int = 0,
         total: int | None = None) -> np.ndarray:
    """CGLS for ``min ||forward(x) - data||``; needs ``adjoint`` to be the exact transpose."""
    total = iterations if total is None else total
    b = np.asarray(data, np.float32)
    x = np.zeros(x_shape, np.float32)
    r = b.copy()
    s = adjoint(r)
    p = s.copy()
    gamma = float(np.vdot(s, s))
    for it in range(iterations):
        if gamma == 0.0:
            report(progress, done + it + 1, total)
            continue
        q = forward(p)
        qq = float(np.vdot(q, q))
        if qq == 0.0:
            report(progress, done + it + 1, total)
            continue
        alpha = np.float32(gamma / qq)
        x += alpha * p
        r -= alpha * q
        s = adjoint(r)
        gamma_new = float(np.vdot(s, s))
        p *= np.float32(gamma_new / gamma)
        p += s
        gamma = gamma_new
        report(progress, done + it + 1, total)
    return x
