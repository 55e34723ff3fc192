"""2D display (and painting) of registered layers napari cannot slice (Issue 16).

napari draws nothing in 2D for a layer whose affine is not axis-aligned ("Non-orthogonal
slicing"). For each such 3D image or labels layer, :class:`RegisteredViews` adds a 2D
layer on a world-aligned grid at the layer's own resolution
(:func:`core.register.plane.view_grid`; napari draws a 2D layer at every slice) and fills
it, in a worker thread, with the layer sampled on the plane on screen
(:func:`core.register.plane.sample_plane`), cached per plane. A slice step writes the
plane in place and refreshes that layer alone: the viewer's extent and the other layers
are left as they are, so a step costs napari no more than without the view. The
registered layer keeps its full-resolution data and its exact affine; the view follows
slice changes along world axis 0 and the layer's affine, data, colormap and contrast
(it is hidden in 3D, where napari draws the layer itself; the layer's eye ticked in 2D
shows the view). Painting a labels view writes
each painted pixel into the labels voxel the view shows there
(:func:`core.register.plane.plane_voxels`), through the labels layer's own undo
history, so scribbles on a registered ROI land in the ROI's voxels.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from typing import Any

import napari
import numpy as np
from napari.layers import Image, Labels
from napari.utils.notifications import show_error
from qtpy.QtCore import QTimer

from ..core.register.plane import plane_index_matrix, plane_voxels, sample_plane, view_grid
from ._layers import CREATED_BY, LIVE, add_unselected, full_resolution, index_to_world
from ._runner import real_viewer, start_job

#: metadata key on the view layer naming the registered layer it shows
META_VIEW_OF = "corrtomo_registered_view_of"
NAME = "registered view"
#: planes on each side of the one on screen sampled ahead (a slider step finds its plane)
PREFETCH = 2


def is_axis_aligned(layer) -> bool:
    """Whether napari can slice ``layer`` in 2D (its index -> world matrix is diagonal)."""
    m = index_to_world(layer)[:3, :3]
    return bool(np.allclose(m, np.diag(np.diag(m))))


def is_view(layer) -> bool:
    """Whether ``layer`` is a view made here (derived: not an input, not saved)."""
    return layer.metadata.get(CREATED_BY) == NAME


def is_drawing(layer) -> bool:
    """Whether ``layer`` is drawn from other layers: a registered layer's 2D view
    (:func:`is_view`) or the live training's prediction or uncertainty (:data:`LIVE`);
    never an input, never saved."""
    return is_view(layer) or bool(layer.metadata.get(LIVE))


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
        #: bumped by each :meth:`resample`: a plane sampled from the data before then is
        #: stale (the data was written in place while it was sampled) and is dropped
        self._generation = 0
        #: the plane on screen (None: the slice misses the layer, the view is blank;
        #: -1: nothing drawn yet)
        self._shown: int | None = -1
        self.grid, self.shape = self._grid()
        volume = full_resolution(moving)
        self.cval = 0 if self.is_labels else float(moving.contrast_limits[0])
        blank = self._blank(volume.dtype if self.is_labels else np.float32)
        # born with the visibility it takes below: napari redoes a layer's overlays and
        # list entry at each visibility assignment, changed or not
        common = dict(name=f"{moving.name} (2D view)", affine=self._affine_2d(),
                      visible=moving.visible and viewer.dims.ndisplay == 2,
                      units=tuple(str(u) for u in moving.units[-2:]),
                      metadata={CREATED_BY: NAME, META_VIEW_OF: moving.name})
        # the view is no layer of the user's: the layer they had selected stays selected
        if self.is_labels:
            self.layer = add_unselected(viewer, Labels(blank, colormap=moving.colormap,
                                                       opacity=moving.opacity, **common))
            self.layer.events.paint.connect(self._on_paint)
        else:
            self.layer = add_unselected(viewer, Image(
                blank, colormap=moving.colormap.name, contrast_limits=moving.contrast_limits,
                blending="additive", **common))
        self._connections = [(viewer.dims.events.ndisplay, self._follow_ndisplay),
                             (moving.events.data, self._on_moving_data),
                             (moving.events.colormap, self._follow_colormap),
                             (moving.events.visible, self._follow_eye),
                             (self.layer.events.visible, self._on_step)]
        if self.is_labels:
            self._connections.append((moving.events.paint, self._on_moving_data))
        else:
            self._connections.append((moving.events.contrast_limits, self._follow_contrast))
        for event, slot in self._connections:
            event.connect(slot)
        # before napari re-slices the layers for the new step: a cached plane written then
        # is drawn by that slicing, with no second refresh of the view
        viewer.dims.events.current_step.connect(self._on_step, position="first")
        self._connections.append((viewer.dims.events.current_step, self._on_step))
        self._shown_in = 3  # the layer itself draws until the view takes over in 2D
        self._follow_ndisplay()
        self._on_step()

    # ------------------------------------------------------------------ geometry
    def _grid(self) -> tuple[np.ndarray, tuple[int, int, int]]:
        return view_grid(index_to_world(self.moving), full_resolution(self.moving).shape)

    def _matrix(self) -> np.ndarray:
        """View grid index -> moving index."""
        return plane_index_matrix(self.grid, index_to_world(self.moving))

    def _affine_2d(self) -> np.ndarray:
        """The grid's (y, x) part: the 2D view layer's index -> world matrix."""
        return self.grid[1:, 1:]

    def _blank(self, dtype) -> np.ndarray:
        return np.full(self.shape[1:], self.cval, dtype)

    def plane_index(self) -> int | None:
        """The view plane (index along world axis 0) at the viewer's slice; None outside."""
        point = np.asarray(self.viewer.dims.point, float)
        if point.size < 3:  # the 3D layers are gone (viewer closing)
            return None
        k = int(np.round((point[-3] - self.grid[0, 3]) / self.grid[0, 0]))
        return k if 0 <= k < self.shape[0] else None

    def regrid(self) -> None:
        """Follow a new affine of the moving layer (Apply, Refine)."""
        self.grid, self.shape = self._grid()
        self.layer.data = self._blank(self.layer.data.dtype)
        self.layer.affine = self._affine_2d()
        self.resample()

    # ------------------------------------------------------------------ following
    def _follow_colormap(self, *_: Any) -> None:
        self.layer.colormap = self.moving.colormap

    def _follow_contrast(self, *_: Any) -> None:
        self.layer.contrast_limits = self.moving.contrast_limits

    def _follow_ndisplay(self, *_: Any) -> None:
        """In 2D the view draws the layer, in 3D napari does: one of the two is shown, and
        the eye the user set on one passes to the other. (napari's own 2D slice of a
        rotated layer ignores the out-of-plane rotation, and slicing it costs each step.)"""
        ndisplay = self.viewer.dims.ndisplay
        if ndisplay == self._shown_in:
            return
        before, after = (self.moving, self.layer) if ndisplay == 2 else (self.layer, self.moving)
        for layer, visible in ((after, before.visible), (before, False)):
            if layer.visible != visible:
                layer.visible = visible
        self._shown_in = ndisplay

    def _follow_eye(self, *_: Any) -> None:
        """The eye of the layer ticked in 2D (where the view draws it): the view is shown
        instead (napari's own 2D slice of the rotated layer is wrong), and the layer's eye
        goes back off, as :meth:`_follow_ndisplay` leaves it in 2D."""
        if (self.moving.visible and self._shown_in == 2 and self.viewer.dims.ndisplay == 2
                and self.layer in self.viewer.layers):
            self.layer.visible = True
            self.moving.visible = False

    def _on_moving_data(self, *_: Any) -> None:
        if not self._writing:
            self.resample()

    def resample(self, *_: Any) -> None:
        """Sample the planes again: the moving layer's data changed (a write in place and
        ``refresh()`` emit no data event: call this)."""
        self._generation += 1  # a plane being sampled now may read the old data
        self._cache.clear()
        self._shown = -1
        self._on_step()

    def _on_step(self, event: Any = None) -> None:
        k = self.plane_index()
        if k is None or k in self._cache:
            # a slice step: napari slices (and draws) the view right after this handler
            self._show(k, self._cache.get(k), refresh=event is None or
                       event.type != "current_step")
        self._sample_next()
        # while a job runs, its on_finished samples what is wanted then

    def _sample_next(self) -> None:
        """Sample the plane on screen if it is missing, else a neighbour a step may ask for."""
        k = self.plane_index()
        if self._busy or k is None or not self.layer.visible:
            return
        for j in (k, *(k + d for n in range(1, PREFETCH + 1) for d in (n, -n))):
            if 0 <= j < self.shape[0] and j not in self._cache:
                self._start(j)
                return

    # ------------------------------------------------------------------ sampling
    def _start(self, k: int) -> None:
        self._busy = True
        matrix, shape = self._matrix(), self.shape[1:]
        volume, order, cval = full_resolution(self.moving), self.order, self.cval
        generation = self._generation

        def work(progress=None) -> tuple[int, np.ndarray, np.ndarray, int]:
            return (k, matrix, sample_plane(volume, matrix, shape, k, order=order, cval=cval),
                    generation)

        start_job(work, viewer=self.viewer, on_result=self._on_result, on_error=self._on_error,
                  on_finished=self._on_finished)

    def _on_result(self, result: tuple[int, np.ndarray, np.ndarray, int]) -> None:
        k, matrix, plane, generation = result
        if self.layer not in self.viewer.layers:
            return  # closed while sampling
        if generation != self._generation:
            return  # the data was written meanwhile: on_finished samples the plane again
        if plane.shape != tuple(self.shape[1:]) or not np.allclose(matrix, self._matrix()):
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
        if self._shown != k and (k is None or k in self._cache):
            self._show(k, self._cache.get(k))
        self._sample_next()

    def _show(self, k: int | None, plane: np.ndarray | None, refresh: bool = True) -> None:
        if k in self._cache:
            self._cache.move_to_end(k)  # least recently shown planes leave the cache first
        if self._shown == k:
            return
        self._shown = k
        # in place (a labels view is painted there; the cache keeps the plane as sampled),
        # then re-slice this layer alone: its extent is unchanged, and its thumbnail is
        # left to napari's next slicing (a step), which keeps this UI-thread work small
        self.layer.data[...] = self.cval if plane is None else plane
        if refresh:
            self.layer.refresh(extent=False, highlight=False, thumbnail=False)

    def is_current(self) -> bool:
        """Whether the plane on screen is drawn (tests, benchmarks)."""
        return self._shown == self.plane_index()

    # ------------------------------------------------------------------ painting
    def _on_paint(self, *_: Any) -> None:
        """Write what was painted on the view into the labels voxels it shows."""
        k = self._shown
        if k is None or k not in self._cache:
            return
        painted = self.layer.data
        before = self._cache[k]
        rows, cols = np.nonzero(painted != before)
        if not rows.size:
            return
        inside, voxels = plane_voxels(self._matrix(), k, (rows, cols),
                                      full_resolution(self.moving).shape)
        # pixels beyond the labels volume hold nothing: undo them on screen
        painted[rows[~inside], cols[~inside]] = before[rows[~inside], cols[~inside]]
        values = painted[rows[inside], cols[inside]]
        self._writing = True
        try:
            # one undo step, and the paint event after the voxels are written (as napari's
            # own strokes): listeners (live training) read the new labels
            with self.moving.block_history():
                try:
                    self.moving.data_setitem(voxels, values)
                except IndexError:
                    # napari writes the voxels into its own 2D slice of the layer too, after
                    # the data and the undo step; for a rotated layer it can hold an empty
                    # (1, 1) slice while taking a plane of the layer for the one on screen
                    # (a stroke across that plane raised here). Nothing is drawn from that
                    # slice (the view draws the layer): go on if the voxels were written.
                    if not np.array_equal(np.asarray(self.moving.data[voxels]), values):
                        raise
        finally:
            self._writing = False
        # other planes may show the voxels just written: sample them again
        self._cache.clear()
        self._keep(k, painted.copy())
        self.layer.refresh()

    # ------------------------------------------------------------------ closing
    def close(self) -> None:
        """Disconnect, give the layer back its own drawing and remove the view layer."""
        for event, slot in self._connections:
            event.disconnect(slot)
        if self._shown_in == 2 and self.moving in self.viewer.layers:
            self.moving.visible = self.layer.visible
        if self.layer in self.viewer.layers:
            self.viewer.layers.remove(self.layer)


def _quiet_non_orthogonal_slicing() -> None:
    """Ignore napari's "Non-orthogonal slicing is being requested" warning (a popup).

    With registered views, napari's 2D slice of a rotated layer is never what is drawn (the
    layer is hidden in 2D, its view shown), but at a switch from 3D to 2D napari's own
    callbacks slice the visible layers before any plugin's can hide them, and it warns of a
    problem the user does not have. Only that warning, only from napari's slicing module.
    """
    warnings.filterwarnings("ignore", message="Non-orthogonal slicing is being requested",
                            category=UserWarning, module=r"napari\.layers\.utils\._slice_input")


class RegisteredViews:
    """Gives every 3D image/labels layer of a viewer that napari cannot slice a view.

    Follows layer events: a layer inserted or moved by a non-axis-aligned affine gets a
    :class:`RegisteredView`; reset to an axis-aligned affine or removed, it loses it.
    """

    def __init__(self, viewer: napari.Viewer):
        _quiet_non_orthogonal_slicing()
        self.viewer = viewer
        self.views: dict[int, RegisteredView] = {}
        #: layers inserted whose view is made in an event-loop turn of its own, one per
        #: turn (a 0 ms QTimer: QTimer.singleShot(0) runs in the turn that posted it)
        self._pending: dict[int, Any] = {}
        self._turn = QTimer(singleShot=True, interval=0)
        self._turn.timeout.connect(self._settle_next)
        #: while set, waiting views are made by :meth:`settle` only (a project load gives
        #: them turns of their own after its scene update of the layer)
        self.held = False
        viewer.layers.events.inserted.connect(lambda e: self._watch(e.value, later=True))
        viewer.layers.events.removed.connect(lambda e: self._forget(e.value))
        for layer in list(viewer.layers):
            self._watch(layer)

    def _watch(self, layer, later: bool = False) -> None:
        if isinstance(layer, (Image, Labels)) and layer.ndim == 3 and not is_view(layer):
            layer.events.affine.connect(lambda *_: self.update(layer))
            if not later:
                self.update(layer)
                return
            # a view is a second napari add (40-60 ms of UI thread on a 2-core VM): made in
            # the same turn, the add that inserted the layer pauses the UI twice as long
            # (a project load adds its layers one per turn)
            self._pending[id(layer)] = layer
            if not self.held:
                self._turn.start()

    def _settle_next(self) -> None:
        if self._pending:
            self.update(next(iter(self._pending.values())))
        if self._pending and not self.held:
            self._turn.start()

    def _forget(self, layer) -> None:
        self._pending.pop(id(layer), None)
        view = self.views.pop(id(layer), None)
        if view is not None:
            view.close()
        for key, v in list(self.views.items()):
            if v.layer is layer:  # the user removed a view: stop filling it
                del self.views[key]
                v.close()

    def update(self, layer) -> None:
        """Add, regrid or drop ``layer``'s view after its affine changed."""
        self._pending.pop(id(layer), None)
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
        self.settle()
        for view in self.views.values():
            if view.moving.name == name:
                return view
        raise KeyError(name)

    def __contains__(self, name: str) -> bool:
        self.settle()
        return any(v.moving.name == name for v in self.views.values())

    def settle(self) -> None:
        """Make the views still waiting for their turn now (a caller asks for one, or
        schedules the turns itself: a project load)."""
        for layer in list(self._pending.values()):
            self.update(layer)


_BY_VIEWER: dict[int, RegisteredViews] = {}


def registered_views(viewer: napari.Viewer) -> RegisteredViews:
    """The viewer's :class:`RegisteredViews` (created on first use; one per viewer even
    when widgets hold different proxies of it)."""
    real = real_viewer(viewer)
    if id(real) not in _BY_VIEWER or _BY_VIEWER[id(real)].viewer is not real:
        _BY_VIEWER[id(real)] = RegisteredViews(real)
    return _BY_VIEWER[id(real)]
