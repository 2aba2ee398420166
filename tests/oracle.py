"""An independent reference for cube contents: plain numpy loops over the events.

Nothing here imports mpicube; the semantics are re-derived from the contract.
"""

from __future__ import annotations

import h5py
import numpy as np


def read_run(path) -> dict:
    """Return every per-event dataset and detector constant of a smalldata file."""
    out = {}
    with h5py.File(path, "r") as f:

        def keep(name, obj):
            if isinstance(obj, h5py.Dataset):
                out[name] = obj[()]

        f.visititems(keep)
        for name in f.get("UserDataCfg", {}):
            out[f"UserDataCfg/{name}/type"] = f[f"UserDataCfg/{name}"].attrs["detector_type"]
    return out


def scalar(run: dict, path: str) -> np.ndarray:
    """Return a field as float64 (N,), columns summed."""
    values = np.asarray(run[path], dtype=np.float64)
    return values.reshape(len(values), -1).sum(axis=1)


def select(run: dict, rows: list[tuple[str, float, float]]) -> np.ndarray:
    """Return the events passing every ``low < field < high`` row, NaN failing."""
    n = len(run["event_time"])
    keep = np.ones(n, dtype=bool)
    for field, low, high in rows:
        values = scalar(run, field)
        for e in range(n):
            v = values[e]
            if not (v == v and low < v < high):
                keep[e] = False
    return keep


def bin_of(value: float, edges: np.ndarray) -> int:
    """Return the bin ``[B_i, B_(i+1))`` holding value, or -1."""
    if value != value:
        return -1
    for i in range(len(edges) - 1):
        if edges[i] <= value < edges[i + 1]:
            return i
    return -1


def calibrate(raw: np.ndarray, run: dict, det: str, thres: float | None) -> np.ndarray:
    """Return one frame calibrated by the contract's formula, in float64."""
    ped = run[f"UserDataCfg/{det}/ped"].astype(np.float64)
    gain = run[f"UserDataCfg/{det}/gain"].astype(np.float64)
    mask = run[f"UserDataCfg/{det}/mask"]
    kind = run[f"UserDataCfg/{det}/type"]
    raw = raw.astype(np.int64)
    if kind == "jungfrau":
        code, adc = raw >> 14, raw & 0x3FFF
        stage = np.select([code == 0, code == 1, code == 3], [0, 1, 2], -1)
    else:
        code, adc, stage = np.zeros_like(raw), raw, np.zeros_like(raw)
    out = np.zeros(raw.shape)
    for p in np.ndindex(raw.shape):
        s = stage[p]
        if s < 0 or not mask[p] or gain[(s, *p)] == 0:
            continue
        v = (adc[p] - ped[(s, *p)]) / gain[(s, *p)]
        out[p] = 0.0 if (thres is not None and v < thres) else v
    return out


def calibrated_frames(run: dict, det: str, thres: float | None) -> np.ndarray:
    """Return every frame of ``det`` calibrated, shape (N, *raw_shape)."""
    return np.array([calibrate(frame, run, det, thres) for frame in run[f"{det}/raw"]])


def assemble(tile: np.ndarray, run: dict, det: str) -> np.ndarray:
    """Return the image of a tile-shaped array from ix/iy, overlapping pixels summed."""
    ix, iy = run[f"UserDataCfg/{det}/ix"], run[f"UserDataCfg/{det}/iy"]
    image = np.zeros((ix.max() + 1, iy.max() + 1))
    for p in np.ndindex(tile.shape):
        image[ix[p], iy[p]] += tile[p]
    return image


def expected_cube(
    run: dict,
    keep: np.ndarray,
    values: np.ndarray,
    edges: np.ndarray,
    fields: list[str],
    det: str | None = None,
    frames: np.ndarray | None = None,
    image: bool = False,
) -> dict:
    """Return the expected datasets of one cube, summing event by event.

    ``frames`` are the calibrated frames of detector ``det`` (see :func:`calibrated_frames`).
    """
    n_bins = len(edges) - 1
    out = {"nEntries": np.zeros(n_bins, dtype=np.int64), "binVar": np.zeros(n_bins)}
    for field in fields:
        out[field.replace("/", "__")] = np.zeros((n_bins, *run[field].shape[1:]))
    if det:
        out[f"{det}_nEntries"] = np.zeros(n_bins, dtype=np.int64)
        shape = run[f"{det}/raw"].shape[1:]
        out[f"{det}_data"] = np.zeros((n_bins, *shape))
    for e in np.flatnonzero(keep):
        b = bin_of(values[e], edges)
        if b < 0:
            continue
        out["nEntries"][b] += 1
        out["binVar"][b] += values[e]
        for field in fields:
            v = np.asarray(run[field][e], dtype=np.float64)
            out[field.replace("/", "__")][b] += np.where(np.isnan(v), 0.0, v)
        if det and (f"damage/{det}" not in run or run[f"damage/{det}"][e] == 1):
            out[f"{det}_nEntries"][b] += 1
            out[f"{det}_data"][b] += frames[e]
    if det and image:
        out[f"{det}_data"] = np.array([assemble(t, run, det) for t in out[f"{det}_data"]])
    return out
