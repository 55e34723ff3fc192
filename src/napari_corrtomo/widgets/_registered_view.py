"""2D display (and painting) of registered layers napari cannot slice (Issue 16).

napari draws nothing in 2D for a layer whose affine is not axis-aligned ("Non-orthogonal
slicing"). For each such 3D image or labels layer, :class:`RegisteredViews` adds a
one-plane layer on a world-aligned grid at the layer's own resolution
(:func:`core.register.plane.view_grid`) and fills it, in a worker thread, with the layer
sampled on the plane on screen (:func:`core.register.plane.sample_plane`), cached per
plane. The registered layer keeps its full-resolution data and its exact affine; the
view follows slice changes along world axis 0 and the layer's affine, data, colormap and
contrast. Painting a labels view writes each painted pixel into the labels voxel the
view shows there (:func:`core.register.plane.plane_voxels`), through the labels layer's
own undo history, so scribbles on a registered ROI land in the ROI's voxels.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import napari
import numpy as np
from napari.layers import Image, Labels
from napari.utils.notifications import show_error

from ..core.register.plane import plane_index_matrix, plane_voxels, sample_plane, view_grid
from ._layers import CREATED_BY, full_resolution, index_to_world
from ._runner import start_job

#: metadata key on the view layer naming the registered layer it shows
META_VIEW_OF = "corrtomo_registered_view_of"
NAME = "registered view"


def is_axis_aligned(layer) -> bool:
    """Whether napari can slice ``layer`` in 2D (its index -> world matrix is diagonal)."""
    m = index_to_world(layer)[:3, :3]
    return bool(np.allclose(m, np.diag(np.diag(m))))


def is_view(layer) -> bool:
    """Whether ``layer`` is a view made here (derived: not an input, not saved)."""
    return layer.metadata.get(CREATED_BY) == NAME


class RegisteredView:
    """A one-plane layer showing ``moving`` at the world slice on screen.

    Parameters
    ----------
    viewer : napari.Viewer
    moving : Image or Labels
        The 3D layer shown; its ``affine`` places it (any rotation).
    cache_size : int
        Planes kept (a slice step back and forth costs nothing).
    """

    def __init__(self, viewer: napari.Viewer, moving, cache_size: int = 64):
        self.viewer, self.moving = viewer, moving
        self.cache_size = cache_size
        self.is_labels = isinstance(moving, Labels)
        self.order = 0 if self.is_labels else 1
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._busy = self._writing = False
        self._shown: int | None = None
        self.grid, self.shape = self._grid()
        volume = full_resolution(moving)
        self.cval = 0 if self.is_labels else float(moving.contrast_limits[0])
        blank = np.full((1, *self.shape[1:]), self.cval,
                        volume.dtype if self.is_labels else np.float32)
        meta = {CREATED_BY: NAME, META_VIEW_OF: moving.name}
        name = f"{moving.name} (2D view)"
        if self.is_labels:
            self.layer = viewer.add_labels(blank, name=name, affine=self.grid, metadata=meta,
                                           colormap=moving.colormap, opacity=moving.opacity)
            self.layer.events.paint.connect(self._on_paint)
        else:
            self.layer = viewer.add_image(
                blank, name=name, affine=self.grid, colormap=moving.colormap.name,
                contrast_limits=moving.contrast_limits, blending="additive", metadata=meta)
        self._connections = [(viewer.dims.events.current_step, self._on_step),
                             (viewer.dims.events.ndisplay, self._follow_ndisplay),
                             (moving.events.data, self._on_moving_data)]
        if self.is_labels:
            self._connections.append((moving.events.paint, self._on_moving_data))
        else:
            self._connections.append((moving.events.contrast_limits, self._follow_contrast))
        for event, slot in self._connections:
            event.connect(slot)
        self._follow_ndisplay()
        self._on_step()

    # ------------------------------------------------------------------ geometry
    def _grid(self) -> tuple[np.ndarray, tuple[int, int, int]]:
        return view_grid(index_to_world(self.moving), full_resolution(self.moving).shape)

    def _matrix(self) -> np.ndarray:
        """View grid index -> moving index."""
        return plane_index_matrix(self.grid, index_to_world(self.moving))

    def plane_index(self) -> int:
        """The view plane (index along world axis 0) at the viewer's slice."""
        z = (float(np.asarray(self.viewer.dims.point)[-3]) - self.grid[0, 3]) / self.grid[0, 0]
        return int(np.clip(np.round(z), 0, self.shape[0] - 1))

    def regrid(self) -> None:
        """Follow a new affine of the moving layer (Apply, Refine)."""
        self.grid, self.shape = self._grid()
        self.layer.data = np.full((1, *self.shape[1:]), self.cval, self.layer.data.dtype)
        self._invalidate()

    # ------------------------------------------------------------------ following
    def _follow_contrast(self, *_: Any) -> None:
        self.layer.contrast_limits = self.moving.contrast_limits

    def _follow_ndisplay(self, *_: Any) -> None:
        # one plane drawn in 3D would be a stray slab across the registered volume
        self.layer.visible = self.viewer.dims.ndisplay == 2

    def _on_moving_data(self, *_: Any) -> None:
        if not self._writing:
            self._invalidate()

    def _invalidate(self, *_: Any) -> None:
        self._cache.clear()
        self._shown = None
        self._on_step()

    def _on_step(self, *_: Any) -> None:
        k = self.plane_index()
        if k in self._cache:
            self._show(k, self._cache[k])
        elif not self._busy:
            self._start(k)
        # else: the running job's on_finished starts the plane now on screen

    # ------------------------------------------------------------------ sampling
    def _start(self, k: int) -> None:
        self._busy = True
        matrix, shape = self._matrix(), self.shape[1:]
        volume, order, cval = full_resolution(self.moving), self.order, self.cval

        def work(progress=None) -> tuple[int, np.ndarray, np.ndarray]:
            return k, matrix, sample_plane(volume, matrix, shape, k, order=order, cval=cval)

        start_job(work, viewer=self.viewer, on_result=self._on_result, on_error=self._on_error,
                  on_finished=self._on_finished)

    def _on_result(self, result: tuple[int, np.ndarray, np.ndarray]) -> None:
        k, matrix, plane = result
        if matrix.shape != (4, 4) or not np.allclose(matrix, self._matrix()) \
                or plane.shape != tuple(self.shape[1:]):
            return  # the affine changed while sampling: stale
        self._keep(k, plane)
        if k == self.plane_index():
            self._show(k, plane)

    def _keep(self, k: int, plane: np.ndarray) -> None:
        self._cache[k] = plane
        self._cache.move_to_end(k)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def _on_error(self, exc: BaseException) -> None:
        show_error(f"{self.layer.name}: {exc}")

    def _on_finished(self) -> None:
        self._busy = False
        if self.layer not in self.viewer.layers:
            return
        k = self.plane_index()
        if k not in self._cache:
            self._start(k)
        elif self._shown != k:
            self._show(k, self._cache[k])

    def _show(self, k: int, plane: np.ndarray) -> None:
        if self._shown == k:
            return
        self._shown = k
        shift = np.eye(4)
        shift[0, 3] = k
        self.layer.affine = self.grid @ shift
        # a labels view is painted in place: the cache keeps the plane as sampled
        self.layer.data = plane[None].copy() if self.is_labels else plane[None]

    def is_current(self) -> bool:
        """Whether the plane on screen is drawn (tests, benchmarks)."""
        return self._shown == self.plane_index() and not self._busy

    # ------------------------------------------------------------------ painting
    def _on_paint(self, *_: Any) -> None:
        """Write what was painted on the view into the labels voxels it shows."""
        k = self._shown
        if k is None or k not in self._cache:
            return
        painted = self.layer.data[0]
        before = self._cache[k]
        rows, cols = np.nonzero(painted != before)
        if not rows.size:
            return
        inside, voxels = plane_voxels(self._matrix(), k, (rows, cols),
                                      full_resolution(self.moving).shape)
        # pixels beyond the labels volume hold nothing: undo them on screen
        painted[rows[~inside], cols[~inside]] = before[rows[~inside], cols[~inside]]
        self._writing = True
        try:
            self.moving.data_setitem(voxels, painted[rows[inside], cols[inside]])
        finally:
            self._writing = False
        # other planes may show the voxels just written: sample them again
        self._cache.clear()
        self._keep(k, painted.copy())
        self.layer.refresh()

    # ------------------------------------------------------------------ closing
    def close(self) -> None:
        """Disconnect and remove the view layer."""
        for event, slot in self._connections:
            event.disconnect(slot)
        if self.layer in self.viewer.layers:
            self.viewer.layers.remove(self.layer)


class RegisteredViews:
    """Gives every 3D image/labels layer of a viewer that napari cannot slice a view.

    Follows layer events: a layer inserted or moved by a non-axis-aligned affine gets a
    :class:`RegisteredView`; reset to an axis-aligned affine or removed, it loses it.
    """

    def __init__(self, viewer: napari.Viewer):
        self.viewer = viewer
        self.views: dict[int, RegisteredView] = {}
        viewer.layers.events.inserted.connect(lambda e: self._watch(e.value))
        viewer.layers.events.removed.connect(lambda e: self._forget(e.value))
        for layer in list(viewer.layers):
            self._watch(layer)

    def _watch(self, layer) -> None:
        if isinstance(layer, (Image, Labels)) and layer.ndim == 3 and not is_view(layer):
            layer.events.affine.connect(lambda *_: self.update(layer))
            self.update(layer)

    def _forget(self, layer) -> None:
        view = self.views.pop(id(layer), None)
        if view is not None:
            view.close()
        for key, v in list(self.views.items()):
            if v.layer is layer:  # the user removed a view: stop filling it
                del self.views[key]
                v.close()

    def update(self, layer) -> None:
        """Add, regrid or drop ``layer``'s view after its affine changed."""
        view = self.views.get(id(layer))
        if layer not in self.viewer.layers or is_axis_aligned(layer):
            if view is not None:
                del self.views[id(layer)]
                view.close()
        elif view is not None:
            view.regrid()
        else:
            self.views[id(layer)] = RegisteredView(self.viewer, layer)

    def __getitem__(self, name: str) -> RegisteredView:
        """The view of the registered layer called ``name``."""
        for view in self.views.values():
            if view.moving.name == name:
                return view
        raise KeyError(name)

    def __contains__(self, name: str) -> bool:
        return any(v.moving.name == name for v in self.views.values())


_BY_VIEWER: dict[int, RegisteredViews] = {}


def registered_views(viewer: napari.Viewer) -> RegisteredViews:
    """The viewer's :class:`RegisteredViews` (created on first use; one per viewer even
    when widgets hold different proxies of it)."""
    real = getattr(viewer, "__wrapped__", viewer)
    if id(real) not in _BY_VIEWER or _BY_VIEWER[id(real)].viewer is not real:
        _BY_VIEWER[id(real)] = RegisteredViews(real)
    return _BY_VIEWER[id(real)]
