"""Particles: separation by distance-transform watershed, and the per-particle table.

``separate_particles`` labels the connected components of a particle mask (fast,
memory-lean ``connected-components-3d``) and splits only the components that
contain more than one distance-transform maximum, each in its own bounding box,
with a marker-controlled watershed on the negated distance transform. Memory
therefore scales with the volume plus the largest cluster, not with a watershed
over the whole array.

``particle_table`` measures every label: volume, equivalent spherical diameter
``ESD = (6 V / pi)^(1/3)``, centroid, surface area (marching cubes, see
:mod:`.surface`), sphericity ``pi^(1/3) (6 V)^(2/3) / A`` (at most 1; NaN below
:data:`MIN_SHAPE_VOXELS` voxels) and, given a pore mask,
the porosity of each particle (pore voxels / particle voxels; the particle label
must cover its pores, i.e. be the filled particle envelope).
"""

from __future__ import annotations

import math
import os
from typing import Any

import numba as nb
import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from .._checks import as_mask, check_labels, check_same_shape, check_spacing
from ..backend import Block, is_lazy, reduce_blocks
from ..connected import label
from ..memory import check_memory
from ..progress import ProgressCallback, report
from ..units import normalize_unit
from ._common import padded_box
from ._unionfind import find_root
from .surface import CURVATURE_MARGIN, DEFAULT_SMOOTH, _displacement, _field, _sigma, mesh_area

__all__ = ["close_each", "separate_particles", "particle_table", "fill_holes"]


def fill_holes(mask: Any) -> np.ndarray:
    """Fill cavities (background components not connected to the array border).

    dask/zarr masks: the background is labelled out of core
    (:func:`napari_corrtomo.core.connected.label`, face connectivity as here), the
    components touching the border are found block by block, and the filled mask is
    a lazy dask array (equal to the in-memory result).
    """
    import cc3d

    if is_lazy(mask):
        return _fill_holes_lazy(mask)
    m = as_mask(mask, "mask")
    bg = cc3d.connected_components(~m, connectivity=6 if m.ndim == 3 else 4, out_dtype=np.uint32)
    border = np.zeros(int(bg.max()) + 1, bool)
    for ax in range(m.ndim):
        for end in (0, -1):
            border[np.unique(np.take(bg, end, axis=ax))] = True
    border[0] = True  # label 0 = the particles themselves
    return m | ~border[bg]


def close_each(mask: Any, radius: float, spacing: float | tuple[float, ...]) -> np.ndarray:
    """Morphological closing of each face-connected component of ``mask`` alone.

    Fills the pores that open to a particle's surface through mouths narrower than
    about ``2 radius`` (a ball of ``radius``, in the units of ``spacing``), so the
    distance map of a porous particle has one maximum again; closing components one at
    a time never bridges the gap between two particles (a closing of the whole mask
    joins every pair closer than ``2 radius``).

    Returns
    -------
    numpy.ndarray
        bool, the closed mask (the union of the closed components).
    """
    import cc3d

    m = as_mask(mask, "mask")
    sp = np.asarray(check_spacing(spacing, m.ndim), float)
    reach = [int(n) for n in np.ceil(float(radius) / sp)]
    if float(radius) <= 0 or min(reach) < 1:
        raise ValueError(f"the closing radius must be at least one voxel, got {radius}")
    grids = np.ogrid[tuple(slice(-n, n + 1) for n in reach)]
    ball = sum((g * d) ** 2 for g, d in zip(grids, sp, strict=True)) <= float(radius) ** 2
    comps = cc3d.connected_components(m, connectivity=6 if m.ndim == 3 else 4,
                                      out_dtype=np.uint32)
    out = m.copy()
    for value, box in enumerate(ndi.find_objects(comps), start=1):
        if box is None:
            continue
        closed = ndi.binary_closing(np.pad(comps[box] == value, [(n, n) for n in reach]), ball)
        src, dst = padded_box(box, reach, closed.shape, m.shape)
        out[dst] |= closed[src]
    return out


def separate_particles(
    mask: Any,
    spacing: float | tuple[float, ...],
    h: float | None = None,
    min_volume: float = 0.0,
    connectivity: int = 6,
    progress: ProgressCallback | None = None,
) -> np.ndarray:
    """Split touching particles with a distance-transform watershed.

    Parameters
    ----------
    mask
        Boolean mask of the particles (filled envelopes work best: fill open pores
        first, e.g. ``solid | pore``, or :func:`fill_holes` for closed cavities).
    spacing
        Voxel size per axis.
    h
        Minimum depth of a distance-transform maximum to seed its own particle, in the
        units of ``spacing`` (h-maxima). Two particles are split when the neck between
        them is at least ``h`` thinner than the smaller particle's inscribed radius.
        Default: the largest voxel size.
    min_volume
        Particles smaller than this volume (units of ``spacing`` cubed) are dropped.
    connectivity
        Connectivity of the initial components (6, 18 or 26).
    progress
        ``progress(done, total)`` over the components that need splitting.

    Returns
    -------
    numpy.ndarray
        int32 labels ``1..N`` (0 = background), numbered component by component in
        raster order of the components' first voxels (the pieces of a split component
        get consecutive numbers).
    """
    import cc3d
    from skimage.segmentation import watershed

    check_memory("particle separation", np.shape(mask))
    m = as_mask(mask, "mask")
    if m.ndim != 3:
        raise ValueError(f"separate_particles needs a 3D mask, got {m.ndim}D")
    sp = check_spacing(spacing, m.ndim)
    if connectivity not in (6, 18, 26):
        raise ValueError(f"connectivity must be 6, 18 or 26, got {connectivity}")
    h = max(sp) if h is None else float(h)
    if not np.isfinite(h) or h <= 0:
        raise ValueError(f"h must be a positive length, got {h}")
    # The component image (uint32) becomes the output in place: a split component keeps
    # its id for its first piece, extra pieces get ids above n; one in-place relabel at
    # the end numbers everything 1..N. Memory: the mask, this image and one box.
    comp, n = cc3d.connected_components(m, connectivity=connectivity, return_N=True,
                                        out_dtype=np.uint32)
    boxes = cc3d.statistics(comp)["bounding_boxes"]
    # The watershed works on one component's box at a time: the largest one sets the peak.
    check_memory("particle separation", m.shape, work_voxels=max(
        (math.prod(b.stop - b.start for b in box) for box in boxes[1:]), default=0))
    extra: dict[int, list[int]] = {}
    next_id = n + 1
    report(progress, 0, max(n, 1))
    for i in range(1, n + 1):
        box = boxes[i]
        sl = tuple(slice(max(b.start - 1, 0), min(b.stop + 1, s))
                   for b, s in zip(box, m.shape, strict=True))
        view = comp[sl]
        region = view == i
        dist = _crop_edt(region, sp)
        order = np.argsort(-dist.ravel(), kind="stable")
        order = order[: np.count_nonzero(region)]  # background (0) sorts last
        peaks = _h_maxima_peaks(dist, order, h)
        report(progress, i - 1, n)  # a cancel check: one sample-wide component's watershed
        if len(peaks) > 1:
            markers = np.zeros(region.shape, np.int32)
            markers.ravel()[peaks] = np.arange(1, len(peaks) + 1, dtype=np.int32)
            ws = watershed(-dist, markers, mask=region)
            ids = np.concatenate([[0, i], np.arange(next_id, next_id + len(peaks) - 1)])
            view[region] = ids[ws[region]].astype(np.uint32)
            extra[i] = list(range(next_id, next_id + len(peaks) - 1))
            next_id += len(peaks) - 1
        report(progress, i, n)
    keep = np.ones(next_id, bool)
    keep[0] = False
    if min_volume > 0:
        counts = np.bincount(comp.ravel(), minlength=next_id)
        keep &= counts * float(np.prod(sp)) >= float(min_volume)
    lut = np.zeros(next_id, np.uint32)
    label = 0
    for i in range(1, n + 1):
        for j in [i, *extra.get(i, [])]:
            if keep[j]:
                label += 1
                lut[j] = label
    step = max(1, (1 << 22) // max(1, m[0].size))  # relabel in 16 MB slabs
    for z0 in range(0, m.shape[0], step):
        comp[z0:z0 + step] = lut[comp[z0:z0 + step]]
    return comp.view(np.int32)


def particle_table(
    labels: Any,
    spacing: float | tuple[float, ...],
    pore: Any | None = None,
    unit: str = "um",
    surface: bool = True,
    smooth: float = DEFAULT_SMOOTH,
    progress: ProgressCallback | None = None,
) -> pd.DataFrame:
    """One row per label: size, shape and porosity in physical units.

    Parameters
    ----------
    labels
        Integer labels (0 = background), e.g. from :func:`separate_particles`.
    spacing
        Voxel size per axis.
    pore
        Optional boolean pore mask; adds ``porosity`` = pore voxels / label voxels.
        The labels must then be the filled particles (solid and pores).
    unit
        Unit of ``spacing`` for the column names.
    surface
        Measure the surface area (marching cubes) and sphericity (3D only); NaN for a
        particle smaller than the smoothing (its smoothed indicator never reaches 0.5).
    smooth
        Gaussian smoothing before meshing, see :mod:`.surface`.

    Returns
    -------
    pandas.DataFrame
        ``label``, ``voxels``, ``volume_<u>3``, ``esd_<u>``, ``z_<u>``, ``y_<u>``,
        ``x_<u>`` (centroid; 2D: no ``z``), ``surface_<u>2``, ``sphericity``,
        ``porosity``, ``touches_border``.

    Notes
    -----
    dask/zarr ``labels`` (and ``pore``) are measured block by block: every block
    returns per-label partial statistics (voxel and pore counts, coordinate sums,
    border contact, and the surface area of the marching-cubes cells it owns,
    meshed from the label's smoothed indicator with a halo that covers the
    smoothing), and the partials are merged by label. ``label``, ``voxels``,
    ``volume``, ``esd``, ``porosity`` and ``touches_border`` are then equal to the
    in-memory table, the centroids too (exact coordinate sums). ``surface`` and
    ``sphericity`` agree to ~1e-7 (relative): every marching-cubes cell is meshed
    exactly once, from the same field values, but scikit-image returns the vertices
    in float32 relative to the meshed box, whose origin differs.
    """
    if is_lazy(labels) or (pore is not None and is_lazy(pore)):
        return _particle_table_lazy(labels, spacing, pore, unit, surface, smooth, progress)
    lab = check_labels(labels)
    sp = check_spacing(spacing, lab.ndim)
    u = normalize_unit(unit)
    if pore is not None:
        p = as_mask(pore, "pore", require_phase=False)
        check_same_shape(lab, p, "labels", "pore")
    import cc3d

    lab32 = _as_uint32(lab)
    stats = cc3d.statistics(lab32)
    counts = np.asarray(stats["voxel_counts"], dtype=np.int64)
    ids = np.flatnonzero(counts)
    ids = ids[ids > 0]
    if len(ids) == 0:
        raise ValueError("labels contain no particle (all 0)")
    voxel = float(np.prod(sp))
    volume = counts[ids] * voxel
    frame: dict[str, Any] = {"label": ids, "voxels": counts[ids], f"volume_{u}3": volume}
    if lab.ndim == 3:
        frame[f"esd_{u}"] = np.cbrt(6.0 * volume / math.pi)
    else:
        frame[f"ecd_{u}"] = np.sqrt(4.0 * volume / math.pi)  # equivalent circle diameter
    centroids = np.asarray(stats["centroids"], dtype=float)[ids]
    for ax, (name, s) in enumerate(zip("zyx"[-lab.ndim:], sp, strict=True)):
        frame[f"{name}_{u}"] = centroids[:, ax] * s
    if pore is not None:
        frame["porosity"] = np.bincount(lab32[p], minlength=len(counts))[ids] / counts[ids]
    boxes = stats["bounding_boxes"]
    border = np.zeros(len(ids), bool)
    area = np.full(len(ids), np.nan)
    sigma = _sigma(smooth, sp)
    pad = int(math.ceil(4 * max(sigma))) + 2
    for j, i in enumerate(ids):
        sl = boxes[i]
        border[j] = any(s.start == 0 or s.stop == n for s, n in zip(sl, lab.shape, strict=True))
        if surface and lab.ndim == 3:
            field = _field(np.pad(lab32[sl] == i, pad), sigma)
            area[j] = mesh_area(field, sp, displacement=_displacement(field, sigma, sp))
        report(progress, j + 1, len(ids))
    if surface and lab.ndim == 3:
        _add_surface(frame, volume, area, u, counts[ids])
    frame["touches_border"] = border
    return pd.DataFrame(frame)


#: the fewest voxels whose shape is measured: a smaller particle's smoothed mesh is a blob
#: a few voxels across whose area says nothing about its shape (a 16-voxel particle had a
#: sphericity of 2.41, a 35-voxel ball 1.10); its sphericity is NaN
MIN_SHAPE_VOXELS = 100


def _add_surface(frame: dict[str, Any], volume: np.ndarray, area: np.ndarray, u: str,
                 voxels: np.ndarray | None = None) -> None:
    """``surface_<u>2`` and ``sphericity`` ``pi^(1/3) (6 V)^(2/3) / A``; NaN for a particle
    with no surface at the smoothing (its smoothed indicator stays below 0.5: a few
    voxels), whose area and shape are not measured (an area of 0 gave a sphericity of inf).

    The sphericity is also NaN for a particle of fewer than :data:`MIN_SHAPE_VOXELS`
    voxels (too small to mesh meaningfully), and at most 1: the curvature-corrected
    mesh of a near-spherical particle can come out a fraction of a percent smaller than
    the sphere of its volume (a ball of 900 voxels: 1.002), which is not a shape more
    spherical than a sphere.
    """
    area = np.where(area > 0, area, np.nan)
    frame[f"surface_{u}2"] = area
    sphericity = np.minimum(math.pi ** (1 / 3) * (6 * volume) ** (2 / 3) / area, 1.0)
    if voxels is not None:
        sphericity = np.where(np.asarray(voxels) >= MIN_SHAPE_VOXELS, sphericity, np.nan)
    frame["sphericity"] = sphericity


def _crop_edt(region: np.ndarray, sp: tuple[float, ...]) -> np.ndarray:
    """EDT of a component in its box; the box edge counts as outside (padded)."""
    import edt

    padded = np.pad(region, 1)
    threads = 1 if padded.size < (1 << 21) else 0
    d = edt.edt(padded, anisotropy=sp, black_border=False,
                parallel=threads or max(1, os.cpu_count() or 1))
    return np.ascontiguousarray(d[1:-1, 1:-1, 1:-1])


@nb.njit(cache=True, nogil=True)  # the UI thread runs meanwhile
def _h_maxima_peaks(dist, order, h):
    """Peak voxels (flat indices) of the maxima of ``dist`` whose dynamic is >= h.

    Union-find over the voxels in decreasing order (a max-tree of the 26-connected
    upper level sets): when two components meet at level ``d``, the one with the lower
    peak ends; its dynamic is ``peak - d``. Maxima that never end (one per connected
    region) are kept too. Equivalent to h-maxima markers (one voxel per maximum).
    """
    nz, ny, nx = dist.shape
    flat = dist.ravel()
    n = flat.size
    parent = np.full(n, -1, np.int64)
    peak = np.zeros(n, np.float64)
    peak_at = np.zeros(n, np.int64)
    out = []
    for k in range(order.shape[0]):
        p = order[k]
        parent[p] = p
        peak[p] = flat[p]
        peak_at[p] = p
        z = p // (ny * nx)
        y = (p // nx) % ny
        x = p % nx
        for dz in range(-1, 2):
            zz = z + dz
            if zz < 0 or zz >= nz:
                continue
            for dy in range(-1, 2):
                yy = y + dy
                if yy < 0 or yy >= ny:
                    continue
                for dx in range(-1, 2):
                    xx = x + dx
                    if xx < 0 or xx >= nx or (dz == 0 and dy == 0 and dx == 0):
                        continue
                    q = (zz * ny + yy) * nx + xx
                    if parent[q] < 0:
                        continue
                    rq = find_root(parent, q)
                    rp = find_root(parent, p)
                    if rq == rp:
                        continue
                    if peak[rq] > peak[rp]:
                        rq, rp = rp, rq
                    if peak[rq] - flat[p] >= h:
                        out.append(peak_at[rq])
                    parent[rq] = rp
    for k in range(order.shape[0]):
        p = order[k]
        if find_root(parent, p) == p:
            out.append(peak_at[p])
    return np.array(out, dtype=np.int64)


def _as_uint32(lab: np.ndarray) -> np.ndarray:
    if lab.dtype == np.uint32:
        return np.ascontiguousarray(lab)
    if lab.dtype == np.int32:
        return np.ascontiguousarray(lab).view(np.uint32)
    if lab.size and int(lab.max()) >= 2**32:
        raise ValueError("more than 2^32 labels are not supported")
    return lab.astype(np.uint32)


# =========================================================================== blockwise


def _fill_holes_lazy(mask: Any) -> Any:
    m = as_mask(mask, "mask", allow_lazy=True)
    bg, n = label(~m, connectivity=1)
    if n == 0:
        return m
    shape = tuple(m.shape)
    border = np.zeros(n + 1, bool)
    border[reduce_blocks(lambda b, blk: _border_of(b, blk, shape), bg,
                         combine=lambda parts: np.unique(np.concatenate(parts)))] = True
    border[0] = True  # label 0 = the mask itself

    def fill(mb, bb):
        return mb | ~border[bb]

    return m.map_blocks(fill, bg, dtype=bool)


def _border_of(block: np.ndarray, blk: Block, shape: tuple[int, ...]) -> np.ndarray:
    """Labels of ``block`` (the chunk ``blk.inner``) on the outer faces of the whole array."""
    found = [np.zeros(0, np.int64)]
    for ax, (sl, n) in enumerate(zip(blk.inner, shape, strict=True)):
        if sl.start == 0:
            found.append(np.unique(np.take(block, 0, axis=ax)).astype(np.int64))
        if sl.stop == n:
            found.append(np.unique(np.take(block, -1, axis=ax)).astype(np.int64))
    return np.unique(np.concatenate(found))


def _particle_table_lazy(labels: Any, spacing: Any, pore: Any, unit: str, surface: bool,
                         smooth: float, progress: ProgressCallback | None) -> pd.DataFrame:
    """:func:`particle_table` from per-block partial statistics merged by label."""
    from scipy import ndimage as ndi

    if np.dtype(labels.dtype).kind not in "iub":
        raise ValueError(f"labels must hold integers, got dtype {labels.dtype}; cast them first")
    sp = check_spacing(spacing, labels.ndim)
    u = normalize_unit(unit)
    shape = tuple(int(n) for n in labels.shape)
    ndim = len(shape)
    if pore is not None:
        check_same_shape(labels, pore, "labels", "pore")
        if np.dtype(pore.dtype) != bool:
            pore = pore.astype(bool) if np.dtype(pore.dtype).kind in "iu" else pore
            if np.dtype(pore.dtype) != bool:
                raise ValueError("pore must be a boolean mask (e.g. labels == phase)")
    mesh = bool(surface) and ndim == 3
    sigma = _sigma(smooth, sp)
    pad = int(math.ceil(4 * max(sigma))) + 2
    # scipy's kernel radius, plus the voxels the curvature correction reads
    radius = tuple(int(4.0 * s + 0.5) + CURVATURE_MARGIN if s > 0 else 0 for s in sigma)
    halo = max(radius) + 1 if mesh else 0

    def partial(*args):
        lab_o = np.asarray(args[0])
        blk: Block = args[-1]
        if lab_o.size and lab_o.min() < 0:
            raise ValueError("labels hold negative values; labels must be >= 0")
        lab = lab_o[blk.crop]
        ids, inv = np.unique(lab.ravel(), return_inverse=True)
        counts = np.bincount(inv, minlength=len(ids)).astype(np.int64)
        sums = np.empty((ndim, len(ids)), np.float64)
        for ax in range(ndim):
            coord = np.arange(blk.inner[ax].start, blk.inner[ax].stop, dtype=np.float64)
            shp = [1] * ndim
            shp[ax] = -1
            sums[ax] = np.bincount(inv, weights=np.broadcast_to(coord.reshape(shp),
                                                                lab.shape).ravel(),
                                   minlength=len(ids))
        pores = None
        if pore is not None:
            pb = np.asarray(args[1])[blk.crop].ravel()
            pores = np.bincount(inv[pb], minlength=len(ids)).astype(np.int64)
        border = _border_of(lab, blk, shape)
        area_ids, areas = (_block_areas(lab_o, blk, shape, sp, sigma, radius, pad, ndi) if mesh
                           else (np.zeros(0, np.int64), np.zeros(0)))
        keep = ids != 0
        return (ids[keep].astype(np.int64), counts[keep], sums[:, keep],
                None if pores is None else pores[keep], border, area_ids, areas)

    def combine(parts):
        ids = np.concatenate([p[0] for p in parts])
        uniq, inv = np.unique(ids, return_inverse=True)
        counts = np.bincount(inv, weights=np.concatenate([p[1] for p in parts]),
                             minlength=len(uniq)).astype(np.int64)
        sums = np.stack([np.bincount(inv, weights=np.concatenate([p[2][ax] for p in parts]),
                                     minlength=len(uniq)) for ax in range(ndim)])
        pores = None
        if pore is not None:
            pores = np.bincount(inv, weights=np.concatenate([p[3] for p in parts]),
                                minlength=len(uniq)).astype(np.int64)
        border = np.isin(uniq, np.concatenate([p[4] for p in parts]))
        area = np.zeros(len(uniq))
        a_ids = np.concatenate([p[5] for p in parts])
        if a_ids.size:
            np.add.at(area, np.searchsorted(uniq, a_ids), np.concatenate([p[6] for p in parts]))
        return uniq, counts, sums, pores, border, area

    arrays = (labels,) if pore is None else (labels, pore)
    ids, counts, sums, pores, border, area = reduce_blocks(partial, *arrays, combine=combine,
                                                           halo=halo, progress=progress)
    if len(ids) == 0:
        raise ValueError("labels contain no particle (all 0)")
    voxel = float(np.prod(sp))
    volume = counts * voxel
    frame: dict[str, Any] = {"label": ids, "voxels": counts, f"volume_{u}3": volume}
    if ndim == 3:
        frame[f"esd_{u}"] = np.cbrt(6.0 * volume / math.pi)
    else:
        frame[f"ecd_{u}"] = np.sqrt(4.0 * volume / math.pi)
    for ax, (name, s) in enumerate(zip("zyx"[-ndim:], sp, strict=True)):
        frame[f"{name}_{u}"] = sums[ax] / counts * s
    if pores is not None:
        frame["porosity"] = pores / counts
    if mesh:
        _add_surface(frame, volume, area, u, counts)
    frame["touches_border"] = border
    return pd.DataFrame(frame)


def _block_areas(lab_o: np.ndarray, blk: Block, shape: tuple[int, ...], sp: tuple[float, ...],
                 sigma: tuple[float, ...], radius: tuple[int, ...], pad: int,
                 ndi: Any) -> tuple[np.ndarray, np.ndarray]:
    """Surface area per label of the marching-cubes cells this block owns.

    A cell is named by its lowest voxel corner. The block owns the cells whose corner
    lies in its chunk; the first/last chunk along an axis also owns the cells up to
    ``pad`` voxels beyond the array, which the in-memory table meshes too (it pads each
    particle's box with ``pad`` zeros). Every owned cell is meshed from the particle's
    smoothed indicator with the field values of the whole array (zero outside it).
    """
    lo = [sl.start if sl.start > 0 else -pad for sl in blk.inner]
    hi = [sl.stop if sl.stop < n else n - 1 + pad for sl, n in zip(blk.inner, shape, strict=True)]
    ids_o, inv_o = np.unique(lab_o.ravel(), return_inverse=True)
    shift = 0 if ids_o[0] == 0 else 1
    local = (inv_o + shift).reshape(lab_o.shape)
    boxes = ndi.find_objects(local)
    out_ids, out_area = [], []
    for k, box in enumerate(boxes):
        if box is None:
            continue
        gid = int(ids_o[k + 1 - shift])
        if gid == 0:
            continue
        m0, m1 = [], []
        for ax in range(3):
            b0 = box[ax].start + blk.outer[ax].start
            b1 = box[ax].stop + blk.outer[ax].start
            m0.append(max(b0 - radius[ax] - 1, lo[ax]))
            m1.append(min(b1 + radius[ax], hi[ax]))
        if any(a >= b for a, b in zip(m0, m1, strict=True)):
            continue
        # indicator on the voxels [m0 - r, m1 + 1 + r), zero outside the array
        src = [slice(m0[ax] - radius[ax], m1[ax] + 1 + radius[ax]) for ax in range(3)]
        ind = np.zeros(tuple(s.stop - s.start for s in src), np.float32)
        take, put = [], []
        for ax, s in enumerate(src):
            a, b = max(s.start, 0), min(s.stop, shape[ax])
            take.append(slice(a - blk.outer[ax].start, b - blk.outer[ax].start))
            put.append(slice(a - s.start, b - s.start))
        if any(t.start >= t.stop for t in take):
            continue
        ind[tuple(put)] = lab_o[tuple(take)] == gid
        field = _field(ind, sigma)
        disp = _displacement(field, sigma, sp)
        cut = tuple(slice(radius[ax], radius[ax] + m1[ax] - m0[ax] + 1) for ax in range(3))
        out_ids.append(gid)
        out_area.append(mesh_area(np.ascontiguousarray(field[cut]), sp,
                                  displacement=None if disp is None else disp[(slice(None),) + cut]))
    return np.asarray(out_ids, np.int64), np.asarray(out_area, float)
