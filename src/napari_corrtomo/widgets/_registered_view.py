"""2D display of a registered layer napari cannot slice (Issue 16).

napari draws nothing in 2D for a layer whose affine is not axis-aligned ("Non-orthogonal
slicing"). :class:`RegisteredView` adds a one-plane image layer in the reference's grid
and fills it, in a worker thread, with the moving data sampled on the reference plane on
screen (:func:`core.register.plane.sample_plane`), cached per plane. The moving layer
keeps its full-resolution data and its exact affine; the view follows slice changes
along the reference's first axis and the moving layer's affine, colormap and contrast.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import napari
import numpy as np
from napari.utils.notifications import show_error

from ..core.register.plane import plane_index_matrix, sample_plane
from ._layers import CREATED_BY, full_resolution, index_to_world
from ._runner import start_job

#: metadata key on the view layer naming the moving layer it shows
META_VIEW_OF = "corrtomo_registered_view_of"
NAME = "registered view"


def is_axis_aligned(layer) -> bool:
    """Whether napari can slice ``layer`` in 2D (its index -> world matrix is diagonal)."""
    m = index_to_world(layer)[:3, :3]
    return bool(np.allclose(m, np.diag(np.diag(m))))


class RegisteredView:
    """A reference-grid plane layer showing ``moving`` at the reference slice on screen.

    Parameters
    ----------
    viewer : napari.Viewer
    reference : Image
        The 3D layer whose grid (axis-aligned) the plane follows.
    moving : Image
        The 3D layer shown; its ``affine`` places it on the reference.
    cache_size : int
        Planes kept (a slice step back and forth costs nothing).
    """

    def __init__(self, viewer: napari.Viewer, reference, moving, cache_size: int = 64):
        self.viewer, self.reference, self.moving = viewer, reference, moving
        self.cache_size = cache_size
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._busy = False
        self._shown: int | None = None
        ny, nx = full_resolution(reference).shape[1:]
        self.cval = float(moving.contrast_limits[0])
        self.layer = viewer.add_image(
            np.full((1, ny, nx), self.cval, np.float32), name=f"{moving.name} (2D view)",
            affine=index_to_world(reference), colormap=moving.colormap.name,
            contrast_limits=moving.contrast_limits, blending="additive",
            metadata={CREATED_BY: NAME, META_VIEW_OF: moving.name})
        viewer.dims.events.current_step.connect(self._on_step)
        moving.events.affine.connect(self._invalidate)
        moving.events.contrast_limits.connect(self._follow_contrast)
        self._on_step()

    def plane_index(self) -> int:
        """The reference plane (index along its first axis) at the viewer's slice."""
        z = self.reference.world_to_data(np.asarray(self.viewer.dims.point)[-3:])[0]
        return int(np.clip(np.round(z), 0, full_resolution(self.reference).shape[0] - 1))

    def _follow_contrast(self, *_: Any) -> None:
        self.layer.contrast_limits = self.moving.contrast_limits

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

    def _start(self, k: int) -> None:
        self._busy = True
        matrix = plane_index_matrix(index_to_world(self.reference), index_to_world(self.moving))
        volume, shape, cval = full_resolution(self.moving), self.layer.data.shape[1:], self.cval

        def work(progress=None) -> tuple[int, np.ndarray, np.ndarray]:
            return k, matrix, sample_plane(volume, matrix, shape, k, order=1, cval=cval)

        start_job(work, viewer=self.viewer, on_result=self._on_result, on_error=self._on_error,
                  on_finished=self._on_finished)

    def _on_result(self, result: tuple[int, np.ndarray, np.ndarray]) -> None:
        k, matrix, plane = result
        current = plane_index_matrix(index_to_world(self.reference), index_to_world(self.moving))
        if not np.allclose(matrix, current):
            return  # the affine changed while sampling: stale
        self._cache[k] = plane
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        if k == self.plane_index():
            self._show(k, plane)

    def _on_error(self, exc: BaseException) -> None:
        show_error(f"{self.layer.name}: {exc}")

    def _on_finished(self) -> None:
        self._busy = False
        if self.layer not in self.viewer.layers:
            return
        k = self.plane_index()
        if k not in self._cache:
            self._start(k)

    def _show(self, k: int, plane: np.ndarray) -> None:
        if self._shown == k:
            return
        self._shown = k
        self.layer.affine = index_to_world(self.reference) @ _shift_z(k)
        self.layer.data = plane[None]

    def is_current(self) -> bool:
        """Whether the plane on screen is drawn (tests, benchmarks)."""
        return self._shown == self.plane_index() and not self._busy


def _shift_z(k: int) -> np.ndarray:
    m = np.eye(4)
    m[0, 3] = k
    return m
