"""The segmentation workflow as users run it: one step sequence for the Classify widget,
``corrtomo classify`` and the demo.

channels -> one ``(C, *spatial)`` image -> features + forest (block by block) ->
class probabilities, labels (most probable class) and uncertainty.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
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
    (0: sure, 1: two classes tie); ``warnings``: what the user should know about the
    input (:func:`check_channel_intensities`), for the front end to show.
    """

    probabilities: Any
    labels: Any
    uncertainty: Any
    classes: np.ndarray
    warnings: list[str] = field(default_factory=list)

    @property
    def lazy(self) -> bool:
        return bk.is_lazy(self.probabilities)

    def computed(self, progress: ProgressCallback | None = None) -> Segmentation:
        """In memory: the probabilities computed once (block by block), the rest from them."""
        if not self.lazy:
            return self
        proba = np.asarray(bk.compute(self.probabilities, progress=progress))
        return Segmentation(proba, proba_to_labels(proba, self.classes),
                            proba_uncertainty(proba), self.classes, self.warnings)


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


#: voxels of the input whose intensities :func:`check_channel_intensities` compares
INTENSITY_SAMPLE = 50_000
#: a voxel "fits" the training when its intensities lie within this many standard
#: deviations (root mean square over the channels) of one training class's mean
FIT_SIGMAS = 2.0
#: another order of the channels is refused when its share of voxels that do not fit is
#: at most this fraction of the given order's, and smaller by at least :data:`ORDER_GAP`
#: (FIB sample, SE2 and InLens: 5-17 % in the trained order, 30-54 % swapped, any region)
ORDER_RATIO, ORDER_GAP = 0.5, 0.15
#: a channel whose voxels mostly (this share) fit no training class is warned about
#: (the FIB sample's channels: 2-10 %; scaled to 8 bit or doubled: 75-99 %)
OFF_SHARE = 0.5
#: orders tried: every permutation up to this many channels
MAX_PERMUTED = 4


def intensity_sample(image: Any, n: int = INTENSITY_SAMPLE) -> np.ndarray:
    """About ``n`` voxels ``(C, N)`` of a ``(C, *spatial)`` image, spread over it: evenly
    spaced slices (3D; a few reads of a lazy volume), every s-th row and column. Voxels
    with a non-finite value are left out (prediction refuses them with its own words)."""
    nd = image.ndim - 1
    if nd == 3:
        nz = image.shape[1]
        zs = np.unique(np.linspace(0, nz - 1, min(nz, 16)).round().astype(int)).tolist()
        image = image[:, zs]
    step = max(1, math.ceil(math.sqrt(math.prod(image.shape[1:]) / n)))
    sub = image[(slice(None),) * (image.ndim - 2) + (slice(None, None, step),) * 2]
    if bk.is_lazy(sub):
        sub = bk.compute(sub)
    values = np.asarray(bk.to_host(sub), np.float64).reshape(image.shape[0], -1)
    return values[:, np.all(np.isfinite(values), axis=0)]


def misfit(values: np.ndarray, intensities: np.ndarray) -> float:
    """Share of the voxels ``values`` (``(C, N)``) farther than :data:`FIT_SIGMAS`
    standard deviations from every training class of ``intensities`` (``(K, C, 2)``)."""
    mean, std = intensities[..., 0, None], intensities[..., 1, None]
    # a class of constant intensity still has a scale: a hundredth of the classes' spread
    floor = 0.01 * np.ptp(intensities[..., 0], axis=0)[:, None] + 1e-12
    with np.errstate(over="ignore", invalid="ignore"):
        z2 = np.mean(((values[None] - mean) / np.maximum(std, floor)) ** 2, axis=1)
    return float(np.mean(~(np.min(z2, axis=0) <= FIT_SIGMAS ** 2))) if values.size else 0.0


def check_channel_intensities(classifier: PixelClassifier, image: Any,
                              names: Sequence[str] | None = None) -> list[str]:
    """Compare the channels' intensities with those the classifier was trained on.

    The classifier keeps each class's mean and standard deviation in each channel
    (:func:`~.classifier.class_intensities`); a sample of ``image`` (``(C, *spatial)``) is
    compared with them. Raises :class:`SettingError` when another order of the channels
    fits the training clearly better than the order given (the forest would read each
    channel as another detector: 19 % of the FIB sample's voxels changed class); returns
    warnings for channels whose intensities fit no training class (another scaling, 8-bit
    against float, another detector or modality). Nothing for older classifier files,
    which do not keep the intensities.
    """
    trained = classifier.class_intensities_
    if trained is None or image.shape[0] != trained.shape[1]:
        return []
    n_ch = image.shape[0]
    names = list(names) if names is not None else [f"channel {c + 1}" for c in range(n_ch)]
    values = intensity_sample(image)
    given = misfit(values, trained)
    if 2 <= n_ch <= MAX_PERMUTED:
        fits = {p: misfit(values[list(p)], trained)
                for p in itertools.permutations(range(n_ch))}
        best = min(fits, key=fits.get)
        if fits[best] <= ORDER_RATIO * given and given - fits[best] >= ORDER_GAP:
            _refuse_order(classifier.channel_names, names, best, given, fits[best])
    return [_off_channel(classifier.channel_names[c], names[c], values[c], trained[:, c])
            for c in range(n_ch) if misfit(values[c:c + 1], trained[:, c:c + 1]) >= OFF_SHARE]


def _refuse_order(trained: Sequence[str], names: Sequence[str], order: Sequence[int],
                  given: float, best: float) -> None:
    raise SettingError(
        f"the channels given ({', '.join(names)}) do not look like the channels the classifier "
        f"was trained on ({', '.join(trained)}, in this order): {given:.0%} of their voxels fit "
        f"none of its classes' intensities, but {best:.0%} in another order, with "
        + ", ".join(f"{names[i]} as {t}" for t, i in zip(trained, order))
        + f"; $reorder in the training order: {' '.join(names[i] for i in order)}",
        reorder="pass the channels")


def _off_channel(trained: str, name: str, values: np.ndarray, intensities: np.ndarray) -> str:
    lo, hi = np.percentile(values, (1, 99)) if values.size else (np.nan, np.nan)
    means = intensities[:, 0]
    return (f"the intensities of {name} ({lo:.4g} to {hi:.4g}, 1st to 99th percentile) are far "
            f"from those the classifier was trained on for {trained} (class means "
            f"{means.min():.4g} to {means.max():.4g}): was it rescaled (8-bit against float), "
            "or is it another detector or modality? The segmentation is not to be trusted; "
            "give the data as it was for training, or train a classifier on this data")


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

    Channels whose intensities match the training's better in another order are refused
    too, and channels far off the training's intensities are named in the result's
    ``warnings`` (:func:`check_channel_intensities`).
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
    warnings = check_channel_intensities(classifier, image, names)
    proba = classifier.predict_proba(image, spacing, unit, backend=backend, budget=budget,
                                     progress=progress)
    return Segmentation(proba, proba_to_labels(proba, classifier.classes_),
                        proba_uncertainty(proba), classifier.classes_, warnings)
