"""The segmentation workflow as users run it: one step sequence for the Classify widget,
``corrtomo classify`` and the demo.

channels -> one ``(C, *spatial)`` image -> features + forest (block by block) ->
class probabilities, labels (most probable class) and uncertainty.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np

from .. import backend as bk
from .._errors import SettingError
from ..progress import ProgressCallback
from .classifier import PixelClassifier, proba_to_labels, proba_uncertainty


@dataclass
class Segmentation:
    """What a classifier makes of an image; lazy (dask) arrays for lazy input.

    ``probabilities`` ``(K, *spatial)`` float32 in the order of ``classes``; ``labels``
    ``spatial`` (values of ``classes``); ``uncertainty`` ``spatial`` in [0, 1]
    (0: sure, 1: two classes tie).
    """

    probabilities: Any
    labels: Any
    uncertainty: Any
    classes: np.ndarray

    @property
    def lazy(self) -> bool:
        return bk.is_lazy(self.probabilities)

    def computed(self, progress: ProgressCallback | None = None) -> Segmentation:
        """In memory: the probabilities computed once (block by block), the rest from them."""
        if not self.lazy:
            return self
        proba = np.asarray(bk.compute(self.probabilities, progress=progress))
        return Segmentation(proba, proba_to_labels(proba, self.classes),
                            proba_uncertainty(proba), self.classes)


def stack_channels(channels: Sequence[Any], lazy: bool | None = None) -> Any:
    """Channel volumes of one shape -> ``(C, *spatial)``.

    Parameters
    ----------
    channels
        Arrays of one spatial shape, e.g. the detectors of a FIB-SEM stack.
    lazy
        Stack as a dask array (block-by-block work); default: when any channel is lazy.
        In-memory channels are then cut into 128-voxel chunks.
    """
    if not channels:
        raise ValueError("no channel given: choose at least one image")
    shapes = {tuple(c.shape) for c in channels}
    if len(shapes) != 1:
        raise ValueError(f"the channel volumes differ in shape: {sorted(shapes)}")
    if lazy is None:
        lazy = any(bk.is_lazy(c) for c in channels)
    if not lazy:
        return np.stack([np.asarray(c) for c in channels])
    return da.stack([c if bk.is_lazy(c) else da.from_array(np.asarray(c), chunks=128)
                     for c in channels])


def _named_channel(trained: Sequence[str], name: str) -> int | None:
    """The trained channel whose name ``name`` contains (case-insensitive), when one does
    unambiguously (of several, the longest when it contains the others: SE2 over SE)."""
    text = name.lower()
    hits = [i for i, t in enumerate(trained) if t and t.lower() in text]
    if not hits:
        return None
    best = max(hits, key=lambda i: len(trained[i]))
    if all(trained[i].lower() in trained[best].lower() for i in hits):
        return best
    return None


def check_channel_order(trained: Sequence[str], given: Sequence[str]) -> None:
    """Refuse channels given in another order than the classifier was trained with.

    ``given`` names the channels passed (file or layer names); when each contains a
    different one of the ``trained`` channel names (``FIB-SEM_InLens.tif`` holds
    ``InLens``) and together they name the trained channels in another order, the
    classifier would read each channel as another detector and segment without a word
    of warning (36.7 % of a phase instead of 4.8 %). Names that say nothing about the
    channels (``ch0``, ``image.tif``) pass.
    """
    trained, given = list(trained), list(given)
    if len(trained) != len(given) or len(trained) < 2:
        return
    found = [_named_channel(trained, g) for g in given]
    if None in found or sorted(found) != list(range(len(trained))):
        return
    if found == list(range(len(trained))):
        return
    by_trained = [given[found.index(i)] for i in range(len(trained))]
    raise SettingError(
        f"the classifier was trained on the channels {', '.join(trained)}, in this order, "
        "but the channels given look like "
        + ", ".join(f"{trained[i]} ({g})" for g, i in zip(given, found))
        + f"; $reorder in the training order: {' '.join(by_trained)}",
        reorder="pass the channels")


def segment(classifier: PixelClassifier, channels: Sequence[Any],
            spacing: Sequence[float] | None = None, unit: str | None = None, *,
            lazy: bool | None = None, backend: str = "auto", budget: int | str | None = None,
            progress: ProgressCallback | None = None,
            names: Sequence[str] | None = None) -> Segmentation:
    """Segment channel volumes with a trained classifier.

    Parameters
    ----------
    classifier
        A fitted :class:`PixelClassifier`; its channels in the same order.
    channels
        The channel volumes (see :func:`stack_channels`).
    spacing, unit
        Voxel size of the channels; None: the classifier's training voxel size.
    lazy
        Work block by block and return lazy arrays (see :func:`stack_channels`).
    backend, budget
        Where features and the forest run, and the memory each block may use.
    progress
        ``progress(done, total)`` (in-memory input); raise ``Cancelled`` to stop.
    names
        Optional names of the channels (file or layer names): channels whose names
        contain the classifier's channel names in another order are refused
        (:func:`check_channel_order`).
    """
    if not classifier.fitted:
        raise ValueError("the classifier is not trained yet: train it or load a trained one")
    if names is not None:
        check_channel_order(classifier.channel_names, names)
    nd = classifier.spatial_ndim
    for c in channels:  # else two 2D channels stack into one 3D volume, "1 channel"
        if getattr(c, "ndim", nd) != nd:
            raise ValueError(f"the images are {c.ndim}D but this classifier was trained on "
                             f"{nd}D {'volumes (z, y, x)' if nd == 3 else 'images (y, x)'}; "
                             f"classify {nd}D data or train a classifier on {c.ndim}D images")
    image = stack_channels(channels, lazy)
    proba = classifier.predict_proba(image, spacing, unit, backend=backend, budget=budget,
                                     progress=progress)
    return Segmentation(proba, proba_to_labels(proba, classifier.classes_),
                        proba_uncertainty(proba), classifier.classes_)
