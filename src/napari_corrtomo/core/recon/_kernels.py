"""Compiled CPU projectors (numba): Joseph forward projection, its exact adjoint, and
voxel-driven (interpolating) backprojection for FBP/FDK.

Two families:

``slice_*``
    Parallel beam within slices (parallel CT, ET tilt series). One in-slice geometry
    is shared by a batch of slices stored last, ``(rows, cols, n_slices)``, so each
    ray's interpolation weights are computed once and reused for every slice of
    the batch: the slices share one system matrix, applied matrix-free.
``vol_*``
    Any geometry in 3D (cone beam, laminography, and parallel beam when slices do
    not line up with detector rows).

Conventions: in-slice coordinates are (col, row) = (x, y_image) in voxel units,
relative to the slice centre; 3D vectors are (x, y, z) in voxel units relative to
the volume centre, and volumes are (z, y, x). ``step`` is the voxel size: forward
projections are line integrals in physical units.

All kernels write into preallocated outputs and are parallel over independent
output elements (gather) except :func:`vol_bp_adjoint`, which scatters into one
buffer per angle chunk.

The per-ray and per-sample geometry is written once, in :func:`device_helpers`, and
compiled twice: inlined into these CPU kernels and as CUDA device functions for the
GPU kernels of :mod:`._cuda_kernels`, so both engines run the same arithmetic (written
without ``min``/``max`` of two scalars, which numba's CUDA target rejects).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from numba import njit, prange

_OPTS = {"parallel": True, "fastmath": True, "cache": True, "nogil": True}


class Helpers(NamedTuple):
    """The device-independent projector steps, compiled for one target."""

    slice_frame: Callable
    axpy: Callable
    joseph_line: Callable
    slice_ray: Callable
    gather_bins: Callable
    adjoint_pixel: Callable
    interp_bins: Callable
    pixel_bins: Callable
    ray_sum: Callable
    ray_spread: Callable
    detector_value: Callable


def device_helpers(device: Callable, scatter_add: Callable) -> Helpers:  # noqa: C901
    """Compile the projector steps with ``device`` (``njit(inline="always")`` for the CPU,
    ``cuda.jit(device=True)`` for the GPU). ``scatter_add(flat, k, v)`` adds ``v`` to
    ``flat[k]`` (a plain add on the CPU, where each thread owns its buffer; an atomic add on
    the GPU). The helpers call each other through this closure, so each target's copies
    call their own target's copies."""

    # ------------------------------------------------------------------- slices

    @device
    def slice_frame(vol, sino):  # pragma: no cover - compiled
        """Sizes of a slice batch (ny, nx, ns) and its sinogram (na, nd, ns), and the centre
        coordinates cy, cx, cd that in-slice positions are relative to."""
        ny, nx, ns = vol.shape
        na, nd, _ = sino.shape
        return ny, nx, ns, na, nd, 0.5 * (ny - 1), 0.5 * (nx - 1), 0.5 * (nd - 1)

    @device
    def axpy(acc, w, src):  # pragma: no cover - compiled
        """acc += w * src over the slice batch (vectorised by the compiler)."""
        for s in range(acc.shape[0]):
            acc[s] += w * src[s]

    @device
    def joseph_line(vol, swap, p_run, p_cross, c_run, c_cross, slope, w, acc):  # pragma: no cover
        """Add one ray's Joseph samples to ``acc`` (ns,).

        The ray is stepped one pixel at a time along the run axis (the one it is most
        parallel to: x, or y with ``swap``) and interpolated linearly across it. ``vol``
        (ny, nx, ns) is indexed, not transposed, so its rows stay contiguous for the
        vectorised accumulation.
        """
        n_cross = vol.shape[1] if swap else vol.shape[0]
        n_run = vol.shape[0] if swap else vol.shape[1]
        for j in range(n_run):
            fi = p_cross + (j - c_run - p_run) * slope + c_cross
            i0 = int(math.floor(fi))
            if i0 < -1 or i0 >= n_cross:
                continue
            f = fi - i0
            if i0 >= 0:
                axpy(acc, np.float32((1.0 - f) * w), vol[j, i0] if swap else vol[i0, j])
            if i0 + 1 < n_cross:
                axpy(acc, np.float32(f * w), vol[j, i0 + 1] if swap else vol[i0 + 1, j])

    @device
    def slice_ray(vol, rays, centres, us, step, a, c, cy, cx, cd, acc):  # pragma: no cover
        """Add the line integral of detector bin c at angle a to ``acc`` (ns,)."""
        rx = rays[a, 0]
        ry = rays[a, 1]
        px = centres[a, 0] + (c - cd) * us[a, 0]
        py = centres[a, 1] + (c - cd) * us[a, 1]
        if abs(rx) >= abs(ry):
            joseph_line(vol, False, px, py, cx, cy, ry / rx, step / abs(rx), acc)
        else:
            joseph_line(vol, True, py, px, cy, cx, rx / ry, step / abs(ry), acc)

    @device
    def gather_bins(acc, sino_a, alpha, beta, inv, target, w):  # pragma: no cover - compiled
        """Add the detector bins whose Joseph hat reaches the pixel coordinate ``target``.

        Bin c samples the cross coordinate ``alpha + beta * c``; its weight is the hat
        ``(1 - |alpha + beta * c - target|) * w``, non-zero on a contiguous run of bins.
        """
        nd = sino_a.shape[0]
        lo = (target - 1.0 - alpha) * inv  # inv = 1 / beta
        hi = (target + 1.0 - alpha) * inv
        if lo > hi:
            lo, hi = hi, lo
        c_lo = int(math.ceil(lo))
        c_hi = int(math.floor(hi))
        for c in range(c_lo if c_lo > 0 else 0, (c_hi if c_hi < nd - 1 else nd - 1) + 1):
            wc = (1.0 - abs(alpha + beta * c - target)) * w
            if wc > 0.0:
                axpy(acc, np.float32(wc), sino_a[c])

    @device
    def adjoint_pixel(sino, rays, centres, us, step, a, i, j, cy, cx, cd, acc):  # pragma: no cover
        """Add angle a's part of the transpose of :func:`slice_fp` at pixel (i, j) to ``acc``.

        For a pixel and an angle the rays that touch it form a contiguous run of detector
        bins (the Joseph weights are hats of the distance along the non-dominant axis), so
        the transpose is a gather, no scatter.
        """
        rx = rays[a, 0]
        ry = rays[a, 1]
        dx = centres[a, 0]
        dy = centres[a, 1]
        ux = us[a, 0]
        uy = us[a, 1]
        if abs(rx) >= abs(ry):  # row coordinate of bin c on column j: alpha + beta c
            slope = ry / rx
            beta = uy - ux * slope
            if beta != 0.0:
                alpha = dy + (j - cx - dx) * slope + cy - cd * beta
                gather_bins(acc, sino[a], alpha, beta, 1.0 / beta, i, step / abs(rx))
        else:  # column coordinate of bin c on row i: alpha + beta c
            slope = rx / ry
            beta = ux - uy * slope
            if beta != 0.0:
                alpha = dx + (i - cy - dy) * slope + cx - cd * beta
                gather_bins(acc, sino[a], alpha, beta, 1.0 / beta, j, step / abs(ry))

    @device
    def pixel_bins(centres, us, a, i, cy, cd):  # pragma: no cover - compiled
        """The fractional detector bin pixel (i, j) projects onto at angle a is
        ``base + (j - cx) * dc``; returns (base, dc)."""
        ux = us[a, 0]
        uy = us[a, 1]
        inv2 = 1.0 / (ux * ux + uy * uy)
        return ((i - cy - centres[a, 1]) * uy - centres[a, 0] * ux) * inv2 + cd, ux * inv2

    @device
    def interp_bins(acc, sino_a, fc):  # pragma: no cover - compiled
        """Add ``sino_a`` (nd, ns) linearly interpolated at bin ``fc`` to ``acc`` (ns,)."""
        nd = sino_a.shape[0]
        c0 = int(math.floor(fc))
        if c0 < -1 or c0 >= nd:
            return
        f = np.float32(fc - c0)
        if c0 >= 0:
            axpy(acc, np.float32(1.0) - f, sino_a[c0])
        if c0 + 1 < nd:
            axpy(acc, f, sino_a[c0 + 1])

    # ------------------------------------------------------------------- volumes

    @device
    def axis_range(o, dr, n, lo_q, hi_q, c_m, o_m, dr_m):  # pragma: no cover - compiled
        """Narrow [lo_q, hi_q] (plane indices along the dominant axis) to the planes where the
        index coordinate ``o + t*dr + (n-1)/2`` along another axis lies in (-1, n)."""
        # coordinate(q) = A + B*q with t = (q - c_m - o_m) / dr_m
        b = dr / dr_m
        a = o + (-c_m - o_m) * b + 0.5 * (n - 1)
        if b == 0.0:
            if a <= -1.0 or a >= n:
                return 1, 0
            return lo_q, hi_q
        q1 = (-1.0 - a) / b
        q2 = (n - a) / b
        if q1 > q2:
            q1, q2 = q2, q1
        lo = int(math.floor(q1))
        hi = int(math.ceil(q2))
        return (lo if lo > lo_q else lo_q), (hi if hi < hi_q else hi_q)

    @device
    def dominant(t, m):  # pragma: no cover - compiled
        """(t[m], t[p1], t[p2]) for dominant axis m and the two others in (x, y, z) order;
        constant indices keep the tuple in registers."""
        if m == 0:
            return t[0], t[1], t[2]
        if m == 1:
            return t[1], t[0], t[2]
        return t[2], t[0], t[1]

    @device
    def march(o, d, sizes, strides, step):  # pragma: no cover - compiled
        """Joseph stepping of a ray given as (x, y, z) tuples: origin, direction, volume sizes
        and flat strides reordered to (dominant axis, other two) (see :func:`dominant`), the
        weight per plane (``step`` times the path length between planes, in voxels) and the
        planes lo..hi where the ray is inside the volume."""
        ax = abs(d[0])
        ay = abs(d[1])
        az = abs(d[2])
        m = 0 if ax >= ay and ax >= az else (1 if ay >= az else 2)
        o = dominant(o, m)
        d = dominant(d, m)
        n = dominant(sizes, m)
        norm = math.sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2])
        c_m = 0.5 * (n[0] - 1)
        lo, hi = axis_range(o[1], d[1], n[1], 0, n[0] - 1, c_m, o[0], d[0])
        lo, hi = axis_range(o[2], d[2], n[2], lo, hi, c_m, o[0], d[0])
        return o, d, n, dominant(strides, m), step * norm / abs(d[0]), lo, hi

    @device
    def bilinear(q, o, d, n, st):  # pragma: no cover - compiled
        """The four voxels around the ray's crossing of plane q, as flat indices and bilinear
        weights; a corner outside the volume gets index 0 and weight 0. Tuples as returned
        by :func:`march`."""
        t = (q - 0.5 * (n[0] - 1) - o[0]) / d[0]
        f1 = o[1] + t * d[1] + 0.5 * (n[1] - 1)
        f2 = o[2] + t * d[2] + 0.5 * (n[2] - 1)
        i1 = int(math.floor(f1))
        i2 = int(math.floor(f2))
        g1 = f1 - i1
        g2 = f2 - i2
        a0 = 0 <= i1 < n[1]
        a1 = 0 <= i1 + 1 < n[1]
        b0 = 0 <= i2 < n[2]
        b1 = 0 <= i2 + 1 < n[2]
        base = q * st[0] + i1 * st[1] + i2 * st[2]
        k00 = base if a0 and b0 else 0
        k01 = base + st[2] if a0 and b1 else 0
        k10 = base + st[1] if a1 and b0 else 0
        k11 = base + st[1] + st[2] if a1 and b1 else 0
        w00 = (1.0 - g1) * (1.0 - g2) if a0 and b0 else 0.0
        w01 = (1.0 - g1) * g2 if a0 and b1 else 0.0
        w10 = g1 * (1.0 - g2) if a1 and b0 else 0.0
        w11 = g1 * g2 if a1 and b1 else 0.0
        return k00, k01, k10, k11, w00, w01, w10, w11

    @device
    def ray(vec, cone, r, c, rc, cc):  # pragma: no cover - compiled
        """Origin and direction, (x, y, z) tuples, of the ray to detector pixel (r, c) for one
        vector row."""
        px = vec[3] + (c - cc) * vec[6] + (r - rc) * vec[9]
        py = vec[4] + (c - cc) * vec[7] + (r - rc) * vec[10]
        pz = vec[5] + (c - cc) * vec[8] + (r - rc) * vec[11]
        if cone:
            return (vec[0], vec[1], vec[2]), (px - vec[0], py - vec[1], pz - vec[2])
        return (px, py, pz), (vec[0], vec[1], vec[2])

    @device
    def ray_sum(flat, vec, cone, r, c, rc, cc, sizes, strides, step):  # pragma: no cover
        """Joseph line integral of the flat volume along the ray to detector pixel (r, c)."""
        o, d = ray(vec, cone, r, c, rc, cc)
        o, d, n, st, w, lo, hi = march(o, d, sizes, strides, step)
        acc = 0.0
        for q in range(lo, hi + 1):
            k00, k01, k10, k11, w00, w01, w10, w11 = bilinear(q, o, d, n, st)
            acc += w00 * flat[k00] + w01 * flat[k01] + w10 * flat[k10] + w11 * flat[k11]
        return acc * w

    @device
    def ray_spread(flat, value, vec, cone, r, c, rc, cc, sizes, strides, step):  # pragma: no cover
        """Add ``value`` times the Joseph weights of the ray to pixel (r, c) into ``flat``
        (the transpose of :func:`ray_sum`)."""
        o, d = ray(vec, cone, r, c, rc, cc)
        o, d, n, st, w, lo, hi = march(o, d, sizes, strides, step)
        w *= value
        for q in range(lo, hi + 1):
            k00, k01, k10, k11, w00, w01, w10, w11 = bilinear(q, o, d, n, st)
            scatter_add(flat, k00, w00 * w)
            scatter_add(flat, k01, w01 * w)
            scatter_add(flat, k10, w10 * w)
            scatter_add(flat, k11, w11 * w)

    @device
    def detector_value(proj, a, h0, h1, h2, cone, href):  # pragma: no cover - compiled
        """Projection a bilinearly interpolated where a voxel projects, FDK-weighted.

        (h0, h1, h2) = ``mats[a] @ (x, y, z, 1)``: detector column ``h1 / h0`` and row
        ``h2 / h0``; cone beams weight by ``(href / h0)**2`` (parallel beams: h0 = 1).
        Outside the detector (or behind the source) the value is 0.
        """
        _, nr, nc = proj.shape
        if cone:
            if h0 <= 0.0:
                return 0.0
            inv = 1.0 / h0
            fc = h1 * inv
            fr = h2 * inv
            wgt = href * inv
            wgt *= wgt
        else:
            fc = h1
            fr = h2
            wgt = 1.0
        c0 = int(math.floor(fc))
        r0 = int(math.floor(fr))
        if c0 < -1 or c0 >= nc or r0 < -1 or r0 >= nr:
            return 0.0
        gc = fc - c0
        gr = fr - r0
        v = 0.0
        if r0 >= 0:
            if c0 >= 0:
                v += (1.0 - gr) * (1.0 - gc) * proj[a, r0, c0]
            if c0 + 1 < nc:
                v += (1.0 - gr) * gc * proj[a, r0, c0 + 1]
        if r0 + 1 < nr:
            if c0 >= 0:
                v += gr * (1.0 - gc) * proj[a, r0 + 1, c0]
            if c0 + 1 < nc:
                v += gr * gc * proj[a, r0 + 1, c0 + 1]
        return wgt * v

    return Helpers(slice_frame, axpy, joseph_line, slice_ray, gather_bins, adjoint_pixel,
                   interp_bins, pixel_bins, ray_sum, ray_spread, detector_value)


@njit(inline="always")
def _add(flat, k, v):  # pragma: no cover - compiled
    flat[k] += v


_CPU = device_helpers(njit(inline="always"), _add)
_slice_frame = _CPU.slice_frame
_axpy = _CPU.axpy
_slice_ray = _CPU.slice_ray
_adjoint_pixel = _CPU.adjoint_pixel
_pixel_bins = _CPU.pixel_bins
_interp_bins = _CPU.interp_bins
_ray_sum = _CPU.ray_sum
_ray_spread = _CPU.ray_spread
_detector_value = _CPU.detector_value


# =========================================================================== slices


@njit(**_OPTS)
def slice_fp(vol, rays, centres, us, step, out):  # pragma: no cover - compiled
    """Joseph forward projection of a batch of slices.

    vol (ny, nx, ns) float32; rays/centres/us (na, 2) as (x, y); out (na, nd, ns) float32
    (overwritten). Each thread accumulates one projection in a private buffer, which lets
    the compiler vectorise the loops over the batch.
    """
    ny, nx, ns, na, nd, cy, cx, cd = _slice_frame(vol, out)
    for a in prange(na):
        buf = np.zeros((nd, ns), np.float32)
        for c in range(nd):
            _slice_ray(vol, rays, centres, us, step, a, c, cy, cx, cd, buf[c])
        out[a] = buf


@njit(**_OPTS)
def slice_bp_adjoint(sino, rays, centres, us, step, vol):  # pragma: no cover - compiled
    """Exact transpose of :func:`slice_fp`, as a gather over pixels (see
    ``adjoint_pixel``). vol is overwritten; each thread fills one image row in a private
    buffer."""
    ny, nx, ns, na, nd, cy, cx, cd = _slice_frame(vol, sino)
    for i in prange(ny):
        row = np.zeros((nx, ns), np.float32)
        for a in range(na):
            for j in range(nx):
                _adjoint_pixel(sino, rays, centres, us, step, a, i, j, cy, cx, cd, row[j])
        vol[i] = row


@njit(**_OPTS)
def slice_bp_interp(sino, centres, us, vol):  # pragma: no cover - compiled
    """Pixel-driven backprojection with linear interpolation on the detector (for FBP).

    Adds sum over angles of sino[a, c(x), :] with c(x) the (fractional) bin the
    pixel centre projects onto. vol is overwritten.
    """
    ny, nx, ns, na, nd, cy, cx, cd = _slice_frame(vol, sino)
    for i in prange(ny):
        row = np.zeros((nx, ns), np.float32)
        for a in range(na):
            base, dc = _pixel_bins(centres, us, a, i, cy, cd)
            for j in range(nx):
                _interp_bins(row[j], sino[a], base + (j - cx) * dc)
        vol[i] = row


# =========================================================================== volumes


@njit(**_OPTS)
def vol_fp(vol, vecs, cone, step, out):  # pragma: no cover - compiled
    """Joseph forward projection through a volume for any vector geometry.

    vol (nz, ny, nx) float32; vecs (na, 12) float64 in voxel units relative to the
    volume centre; out (na, nr, nc) float32 (overwritten).
    """
    nz, ny, nx = vol.shape
    na, nr, nc = out.shape
    flat = vol.ravel()
    sizes = (nx, ny, nz)
    strides = (1, nx, nx * ny)
    rc = 0.5 * (nr - 1)
    cc = 0.5 * (nc - 1)
    for k in prange(na * nr):
        a = k // nr
        r = k - a * nr
        for c in range(nc):
            out[a, r, c] = _ray_sum(flat, vecs[a], cone, r, c, rc, cc, sizes, strides, step)


@njit(**_OPTS)
def vol_bp_adjoint(proj, vecs, cone, step, buffers, nz, ny, nx):  # pragma: no cover
    """Exact transpose of :func:`vol_fp`: every ray is scattered into the buffer of its angle
    chunk. buffers (n_chunks, nz*ny*nx) float32 are overwritten; the caller sums them."""
    n_chunks = buffers.shape[0]
    na, nr, nc = proj.shape
    sizes = (nx, ny, nz)
    strides = (1, nx, nx * ny)
    rc = 0.5 * (nr - 1)
    cc = 0.5 * (nc - 1)
    per = (na + n_chunks - 1) // n_chunks
    for chunk in prange(n_chunks):
        flat = buffers[chunk]
        flat[:] = 0.0
        for a in range(chunk * per, min(na, (chunk + 1) * per)):
            for r in range(nr):
                for c in range(nc):
                    value = proj[a, r, c]
                    if value != 0.0:
                        _ray_spread(flat, value, vecs[a], cone, r, c, rc, cc, sizes, strides,
                                    step)


@njit(**_OPTS)
def vol_bp_interp(proj, mats, cone, h0_ref, vol):  # pragma: no cover - compiled
    """Voxel-driven backprojection with bilinear detector interpolation (FBP/FDK).

    mats (na, 3, 4): for a voxel at (x, y, z) (voxel units, volume centre at 0)
    ``h = mats[a] @ (x, y, z, 1)`` gives the detector column ``h[1]/h[0]`` and row
    ``h[2]/h[0]`` (pixel indices). For cone beams each value is weighted by
    ``(h0_ref[a] / h[0])**2`` (the FDK distance weight); for parallel beams ``h[0] = 1``.
    vol (nz, ny, nx) float32 is added to (not cleared).
    """
    nz, ny, nx = vol.shape
    na = proj.shape[0]
    cz = 0.5 * (nz - 1)
    cy = 0.5 * (ny - 1)
    cx = 0.5 * (nx - 1)
    for k in prange(nz):
        z = k - cz
        for a in range(na):
            m = mats[a]
            href = h0_ref[a]
            for jy in range(ny):
                y = jy - cy
                b0 = m[0, 1] * y + m[0, 2] * z + m[0, 3] - m[0, 0] * cx
                b1 = m[1, 1] * y + m[1, 2] * z + m[1, 3] - m[1, 0] * cx
                b2 = m[2, 1] * y + m[2, 2] * z + m[2, 3] - m[2, 0] * cx
                for ix in range(nx):
                    vol[k, jy, ix] += _detector_value(proj, a, b0 + m[0, 0] * ix,
                                                      b1 + m[1, 0] * ix, b2 + m[2, 0] * ix,
                                                      cone, href)


@njit(**_OPTS)
def vol_bp_interp_axial(proj, mats, h0_ref, vol):  # pragma: no cover - compiled
    """:func:`vol_bp_interp` for geometries whose detector columns and distance weights do not
    depend on z (circular CT about the z axis: ``mats[:, 0:2, 2] == 0``).

    Along a z column of voxels the detector column, its interpolation weights and the FDK
    weight are fixed and the row moves linearly, so they are computed once per column
    instead of once per voxel. vol (nz, ny, nx) float32 is added to.
    """
    nz, ny, nx = vol.shape
    na, nr, nc = proj.shape
    cz = 0.5 * (nz - 1)
    cy = 0.5 * (ny - 1)
    cx = 0.5 * (nx - 1)
    for jy in prange(ny):
        y = jy - cy
        buf = np.zeros((nx, nz), np.float32)
        for a in range(na):
            m = mats[a]
            href = h0_ref[a]
            b0 = m[0, 1] * y + m[0, 3] - m[0, 0] * cx
            b1 = m[1, 1] * y + m[1, 3] - m[1, 0] * cx
            b2 = m[2, 1] * y + m[2, 3] - m[2, 0] * cx - m[2, 2] * cz
            for ix in range(nx):
                h0 = b0 + m[0, 0] * ix
                if h0 <= 0.0:
                    continue
                inv = 1.0 / h0
                fc = (b1 + m[1, 0] * ix) * inv
                c0 = int(math.floor(fc))
                if c0 < -1 or c0 >= nc:
                    continue
                gc = fc - c0
                w = href * inv
                w *= w
                wl = np.float32(w * (1.0 - gc)) if c0 >= 0 else np.float32(0.0)
                wr = np.float32(w * gc) if c0 + 1 < nc else np.float32(0.0)
                cl = max(c0, 0)
                cr = min(c0 + 1, nc - 1)
                fr0 = (b2 + m[2, 0] * ix) * inv
                dfr = m[2, 2] * inv
                acc = buf[ix]
                for k in range(nz):
                    fr = fr0 + dfr * k
                    r0 = int(math.floor(fr))
                    if r0 < -1 or r0 >= nr:
                        continue
                    gr = np.float32(fr - r0)
                    v = np.float32(0.0)
                    if r0 >= 0:
                        v += (np.float32(1.0) - gr) * (wl * proj[a, r0, cl] + wr * proj[a, r0, cr])
                    if r0 + 1 < nr:
                        v += gr * (wl * proj[a, r0 + 1, cl] + wr * proj[a, r0 + 1, cr])
                    acc[k] += v
        for k in range(nz):
            for ix in range(nx):
                vol[k, jy, ix] += buf[ix, k]
