"""Measurements made inside the benchmark's own process: the floor, a straightforward
numpy pipeline and the peers (xarray, flox). Each function returns events per second.

All of them read the same synthetic run as the mpicube job; the bins of each event come
from mpicube's own plan (binning costs nothing next to the frames).
"""

from __future__ import annotations

import time
from pathlib import Path

import h5py
import numpy as np

from mpicube.detectors import make_calibrator
from mpicube.plan import Plan, make_plan
from mpicube.smalldata import SmallData

FLOOR_BLOCK_BYTES = 64 * 2**20


def load_plan(config: Path, experiment: str, run: int, path: Path) -> Plan:
    """Return mpicube's plan of the run (bins and selections)."""
    return make_plan(config, experiment, run, path)


def floor_rate(path: Path, detector: str) -> float:
    """Return events/s of reading every raw frame of a contiguous dataset from the page
    cache into one reused buffer with plain ``readinto`` (no HDF5, no computation)."""
    with h5py.File(path, "r", locking=False) as h5:
        dset = h5[f"{detector}/raw"]
        offset, n = dset.id.get_offset(), dset.shape[0]
        frame_bytes = int(np.prod(dset.shape[1:])) * dset.dtype.itemsize
    per_block = max(1, FLOOR_BLOCK_BYTES // frame_bytes)
    buffer = bytearray(per_block * frame_bytes)
    view = memoryview(buffer)
    started = time.perf_counter()
    with open(path, "rb", buffering=0) as fh:
        fh.seek(offset)
        left = n * frame_bytes
        while left:
            got = fh.readinto(view[: min(left, len(buffer))])
            left -= got
    return n / (time.perf_counter() - started)


def numpy_rate(path: Path, detector: str, plan: Plan, n_events: int, thres: float) -> float:
    """Return events/s of the notebook way: per event ``raw[i]``, gain stage from the top
    bits, ``(adc - ped[stage]) / gain[stage]``, threshold, mask, add to the bin's sum."""
    bins = plan.bin_index[0]
    events = np.flatnonzero(bins >= 0)[:n_events]
    with h5py.File(path, "r", locking=False) as h5:
        raw = h5[f"{detector}/raw"]
        cfg = h5[f"UserDataCfg/{detector}"]
        ped, gain, mask = cfg["ped"][()], cfg["gain"][()], cfg["mask"][()]
        sums = np.zeros((plan.bins.n_bins, *raw.shape[1:]))
        started = time.perf_counter()
        for i in events:
            frame = raw[i]
            code = frame >> 14
            stage = np.choose(code, [0, 1, 0, 2])
            adc = (frame & 0x3FFF).astype(np.float64)
            p = np.take_along_axis(ped, stage[np.newaxis], axis=0)[0]
            g = np.take_along_axis(gain, stage[np.newaxis], axis=0)[0]
            with np.errstate(divide="ignore", invalid="ignore"):
                value = (adc - p) / g
            value[(code == 2) | (mask == 0) | ~np.isfinite(value) | (value < thres)] = 0
            sums[bins[i]] += value
    return len(events) / (time.perf_counter() - started)


def calibrated_frames(
    path: Path, detector: str, plan: Plan, n_events: int, thres: float
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(frames, delay)``: (n, pixels) float32 calibrated frames of the first binned
    events and each event's bin variable (its bin's centre), for the peers."""
    bins = plan.bin_index[0]
    events = np.flatnonzero(bins >= 0)[:n_events]
    with SmallData(path) as sd:
        calibrator = make_calibrator(sd.detector_constants(detector), thres, 0)
        raw = sd.raw_frames(detector)
        frames = np.stack([calibrator.calibrate(raw[i]).ravel() for i in events])
    edges = plan.bins.edges
    centres = (edges[:-1] + edges[1:]) / 2
    return frames, centres[bins[events]]


def xarray_rate(frames: np.ndarray, delay: np.ndarray, edges: np.ndarray) -> float:
    """Return events/s of ``xarray`` ``groupby_bins(...).sum()`` on in-memory frames."""
    import xarray as xr

    data = xr.DataArray(frames, dims=("event", "pixel"), coords={"delay": ("event", delay)})
    started = time.perf_counter()
    with xr.set_options(use_flox=False):
        data.groupby_bins("delay", edges).sum().values  # noqa: B018  (forces the compute)
    return len(frames) / (time.perf_counter() - started)


def flox_rate(frames: np.ndarray, delay: np.ndarray, edges: np.ndarray) -> float:
    """Return events/s of ``flox.groupby_reduce`` (binned sum over events) on in-memory
    frames, given as (pixel, event) because flox reduces over the trailing axis."""
    import flox
    import pandas as pd

    started = time.perf_counter()
    flox.groupby_reduce(
        frames.T,
        delay,
        func="sum",
        expected_groups=pd.IntervalIndex.from_breaks(edges),
        isbin=True,
    )
    return len(frames) / (time.perf_counter() - started)
