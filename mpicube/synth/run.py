"""Entry point of the synthetic run generator: one smalldata HDF5 file per call."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from mpicube.detectors.constants import DetectorConstants
from mpicube.synth.detectors import DETECTOR_MODELS, FrameSynth, make_constants
from mpicube.synth.devices import SCANS, Events, device_rng, make_events

RAW_LAYOUTS = ("chunked", "contiguous")
COMPRESSIONS = (None, "bitshuffle-lz4")
BLOCK_BYTES = 64 * 2**20  # frames are generated and written at most this many bytes at a time
MAX_BLOCK_FRAMES = 32
RESERVED_NAMES = {
    "event_time", "fiducials", "lightStatus", "evr", "ipm2", "ipm3", "diodeU",
    "scan", "enc", "epics", "tt", "damage", "UserDataCfg",
}  # fmt: skip


def _check_arguments(
    n_events: int,
    scan: str,
    detectors: dict[str, str],
    seed: int,
    n_steps: int,
    raw_layout: str,
    compression: str | None,
) -> None:
    """Raise ValueError on an argument ``write_run`` cannot honour; returns None otherwise."""
    if n_events < 1:
        raise ValueError(f"n_events must be at least 1, got {n_events}")
    if scan not in SCANS:
        raise ValueError(f"scan must be one of {SCANS}, got {scan!r}")
    if not 1 <= n_steps <= n_events:
        raise ValueError(f"n_steps must be between 1 and n_events ({n_events}), got {n_steps}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    if raw_layout not in RAW_LAYOUTS:
        raise ValueError(f"raw_layout must be one of {RAW_LAYOUTS}, got {raw_layout!r}")
    if compression not in COMPRESSIONS:
        raise ValueError(f"compression must be one of {COMPRESSIONS}, got {compression!r}")
    if compression is not None and raw_layout != "chunked":
        raise ValueError("compressed frames need raw_layout='chunked'")
    for name, model in detectors.items():
        if model not in DETECTOR_MODELS:
            raise ValueError(f"unknown detector model {model!r}, known: {sorted(DETECTOR_MODELS)}")
        if name in RESERVED_NAMES or "/" in name or not name:
            raise ValueError(f"detector name {name!r} clashes with the smalldata layout")


def write_run(
    path: str | Path,
    *,
    n_events: int = 1000,
    scan: str = "delay",
    detectors: dict[str, str] | None = None,
    seed: int = 0,
    n_steps: int = 20,
    raw_layout: str = "chunked",
    compression: str | None = None,
) -> Path:
    """Write a synthetic smalldata file of one run (contract §1) and return its path.

    ``detectors`` maps a detector name to a model of ``DETECTOR_MODELS`` (None: one
    ``jungfrau1M`` named ``jungfrau1M``; ``{}``: no area detector). Everything is
    deterministic in ``seed``. ``raw_layout`` stores ``<det>/raw`` one chunk per frame or
    contiguous; ``compression="bitshuffle-lz4"`` compresses the chunks (hdf5plugin). The file
    is written under a temporary name and renamed.
    """
    detectors = {"jungfrau1M": "jungfrau1M"} if detectors is None else dict(detectors)
    _check_arguments(n_events, scan, detectors, seed, n_steps, raw_layout, compression)
    events = make_events(n_events, scan, n_steps, list(detectors), seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    with h5py.File(partial, "w") as h5:
        h5.attrs["synthetic"] = True
        h5.attrs["seed"] = seed
        h5.attrs["scan"] = scan
        for field, values in events.fields.items():
            h5.create_dataset(field, data=values)
        for name, model in detectors.items():
            constants = make_constants(name, DETECTOR_MODELS[model], device_rng(seed, name))
            _write_constants(h5, constants)
            frames = FrameSynth(constants, device_rng(seed, f"{name}/frames"))
            _write_frames(h5, name, frames, events, raw_layout, compression)
    os.replace(partial, path)
    return path


def _write_constants(h5: h5py.File, constants: DetectorConstants) -> None:
    """Write ``UserDataCfg/<det>`` with its ``detector_type`` attribute; returns None."""
    group = h5.create_group(f"UserDataCfg/{constants.name}")
    group.attrs["detector_type"] = constants.detector_type
    for key in ("ped", "gain", "rms", "mask", "ix", "iy", "x", "y"):
        group.create_dataset(key, data=getattr(constants, key))


def _write_frames(
    h5: h5py.File,
    name: str,
    frames: FrameSynth,
    events: Events,
    raw_layout: str,
    compression: str | None,
) -> None:
    """Write ``<det>/raw`` block by block, zero frames where ``damage/<det>`` is 0; returns None."""
    shape = frames.constants.raw_shape
    n = events.n_events
    chunks = (1, *shape) if raw_layout == "chunked" else None
    filters = {}
    if compression == "bitshuffle-lz4":
        import hdf5plugin

        filters = dict(hdf5plugin.Bitshuffle(cname="lz4"))
    dset = h5.create_dataset(
        f"{name}/raw", shape=(n, *shape), dtype=np.uint16, chunks=chunks, **filters
    )
    block_len = max(1, min(MAX_BLOCK_FRAMES, BLOCK_BYTES // (2 * frames.n_pixels), n))
    block = np.empty((block_len, frames.n_pixels), dtype=np.uint16)
    delivered = events.fields[f"damage/{name}"]
    for start in range(0, n, block_len):
        stop = min(start + block_len, n)
        for row, event in enumerate(range(start, stop)):
            if delivered[event]:
                frames.fill(block[row], events.intensity[event], events.peak_factor[event])
            else:
                block[row] = 0
        dset[start:stop] = block[: stop - start].reshape(stop - start, *shape)
