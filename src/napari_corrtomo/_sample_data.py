"""npe2 sample data: the synthetic correlative and FIB-SEM datasets, with truth layers.

Truth layers are added hidden; small truth values (transform, landmarks, true
thicknesses) ride in layer metadata under ``"truth"`` so widgets and tests can
compare against them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._reader import volume_to_layer_data
from .core import synthetic
from .core.io import Volume

LayerData = tuple[Any, dict[str, Any], str]


def _layer(volume: Volume, **extra: Any) -> LayerData:
    data, meta, kind = volume_to_layer_data(volume)
    meta.update(extra)
    return data, meta, kind


def _correlative_layers(volumes, truths) -> list[LayerData]:
    sample = synthetic.correlative_particles()
    t = sample.truth
    small = {
        "nanoct_to_microct": t.nanoct_to_microct.tolist(),
        "landmarks_microct": t.landmarks_microct.tolist(),
        "landmarks_nanoct": t.landmarks_nanoct.tolist(),
        "nanoct_macroporosity": t.nanoct_macroporosity,
        "closed_pore_fraction": t.closed_pore_fraction,
        "et_mesoporosity": t.et_mesoporosity,
        "combined_porosity": t.combined_porosity,
    }
    layers = []
    for vol in volumes(sample):
        vol.metadata["truth"] = small
        layers.append(_layer(vol, contrast_limits=_limits(vol.data)))
    for vol in truths(sample):  # the labels name their phases (the panels offer the names)
        vol.metadata["phases"] = {str(k): v for k, v in t.phases.items()}
        vol.metadata["modality"] = vol.name.split(" ")[0]  # "microCT truth": microCT
        layers.append(_layer(vol, visible=False))
    return layers


def correlative_particles() -> list[LayerData]:
    """microCT overview (1 um) and nanoCT of one particle (65 nm), with truth layers."""
    return _correlative_layers(lambda s: [s.microct, s.nanoct],
                               lambda s: [s.truth.microct_labels, s.truth.nanoct_labels])


def correlative_et() -> list[LayerData]:
    """ET of the particle's mesoporous wall (0.5 nm), with its truth layer.

    A separate sample because an 80 nm volume shares no useful view with a 160 um one.
    """
    return _correlative_layers(lambda s: [s.et], lambda s: [s.truth.et_labels])


def correlative_scans() -> list[LayerData]:
    """Raw microCT and nanoCT scans of the correlative sample (detector counts with flats
    and darks, the geometry in ``metadata["geometry"]``): reconstructed in the Reconstruct
    widget they give the overview and the particle that the correlative sample shows, in
    the same frames (hidden layers: the attenuation objects)."""
    sample = synthetic.correlative_particles()
    layers = []
    for name, s in synthetic.correlative_scans(sample, raw=True,
                                               modalities=("microCT", "nanoCT")).items():
        layers.extend(_scan_layers(f"{name} raw projections", s))
    return layers


def _scan_layers(name: str, s: synthetic.ProjectionSample) -> list[LayerData]:
    """A scan as layers: projections (raw counts, or line integrals) with the nominal
    geometry and the true misalignment in metadata, its flats and darks, the hidden
    phantom."""
    ps, unit = s.geometry.pixel_size, s.unit
    truth = {"shifts": s.true_shifts.tolist(), "voxel_size": s.voxel_size,
             "volume_shape": list(s.phantom.shape)}
    data = s.raw if s.raw is not None else s.projections
    modality = name.split(" ")[0]
    meta = {"geometry": s.geometry.to_dict(), "truth": truth, "modality": modality}
    # the projection index is shown at the detector pitch, in the volumes' length unit:
    # a non-length unit on one axis makes napari find the layers' units inconsistent (a
    # warning after every change, and no units in rendering)
    frame = ((ps, ps, ps), (unit,) * 3)
    layers = [_layer(Volume(data, *frame, name, "image", meta), contrast_limits=_limits(data))]
    if s.raw is not None:
        for ref_name, ref in (("flats", s.flats), ("darks", s.darks)):
            layers.append(_layer(Volume(ref, *frame, f"{modality} {ref_name}", "image",
                                        {"detector": ref_name, "modality": modality}),
                                 visible=False))
    layers.append(_layer(Volume(s.phantom, (s.voxel_size,) * 3, (unit,) * 3,
                                f"{modality} phantom", "image", {"modality": modality}),
                         visible=False))
    return layers


def fib_sem_stack() -> list[LayerData]:
    """Two-detector FIB-SEM stack of a three-phase electrode, with ruler marks."""
    sample = synthetic.fib_sem_stack()
    truth = {
        "thickness_nm": sample.thickness_nm.tolist(),
        "slice_z_nm": sample.slice_z_nm.tolist(),
        "ruler": vars(sample.ruler),
        "phases": {str(k): v for k, v in sample.phases.items()},
    }
    layers = []
    for vol in sample.channels:
        vol.metadata["truth"] = truth
        layers.append(_layer(vol, contrast_limits=_limits(vol.data)))
    # the labels name their phases too (the FIB and Quantify panels offer the names)
    sample.labels.metadata["phases"] = truth["phases"]
    layers.append(_layer(sample.labels, visible=False))
    return layers


def _limits(data: np.ndarray) -> tuple[float, float]:
    lo, hi = np.percentile(data[:: max(1, data.shape[0] // 16)], (0.5, 99.5))
    return float(lo), float(hi)


def tomography_projections() -> list[LayerData]:
    """Projection data for the Reconstruct widget: raw microCT counts with flats, darks,
    zingers and an off-centre rotation axis; cone-beam and laminography scans. Each
    projection layer carries its nominal geometry (JSON form) in ``metadata["geometry"]``
    and the true misalignment in ``metadata["truth"]``; the phantoms are added as hidden
    layers."""
    samples = [
        ("microCT raw projections",
         synthetic.projections("parallel", seed=0, raw=True, zingers=5e-4, center_offset=2.5)),
        ("cone-beam projections", synthetic.projections("cone", seed=1)),
        ("laminography projections", synthetic.projections("laminography", seed=2)),
    ]
    return [layer for name, s in samples for layer in _scan_layers(name, s)]


def et_tilt_series() -> list[LayerData]:
    """An unaligned 360-degree ET tilt series of a pillar (detector pixels of 0.5 nm) with
    its phantom, as :func:`tomography_projections` gives its scans: a sample of its own, as
    the nm-sized scene drawn beside the um scans left the slider thousands of steps long
    and a new reconstruction a speck."""
    return _scan_layers("ET tilt series",
                        synthetic.projections("tilt_series", seed=3, jitter_px=1.5))
