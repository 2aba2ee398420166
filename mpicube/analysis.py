"""Cubes in a notebook: open a cube file as an ``xarray.Dataset``, or sum several runs' cubes.

Layout of the Dataset (contract §5 file → xarray):

- dimension ``bin``; coordinates ``bin`` (left edge, ``binVar_bins``: NaN for the outlier
  bin of unique-position scans), ``bin_low`` and ``bin_high`` (the edges of each bin);
- every per-bin dataset is a variable over ``bin``: ``nEntries``, ``binVar``, the field
  sums (``ipm2__sum``…), ``<det>_data`` and ``<det>_nEntries``. Detector frames have named
  dimensions: ``<det>_row``, ``<det>_col`` (and ``<det>_segment`` for raw tiles), so
  ``ds.jf_data / ds.jf_nEntries`` is the mean frame per bin;
- the detector constants of ``<det>_cfg/`` are variables ``<det>_cfg_<key>`` (no ``bin``);
- the file's attributes (config text, filters, edges, event counts, code version…) are
  the Dataset's ``attrs``, plus ``source_files``.

Everything is read into memory: a cube holds sums per bin, not events.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import h5py
import numpy as np
import xarray as xr

from mpicube.errors import CubeError

BIN = "bin"
EVENT_COUNT_ATTRS = (
    "events_in_run",
    "events_selected",
    "events_binned",
    "events_below_bins",
    "events_above_bins",
    "events_nan_bin_value",
)
MUST_MATCH_ATTRS = ("bin_mode", "bin_field", "laser", "filter_name")


def open_cube(path: str | Path) -> xr.Dataset:
    """Return the cube file at ``path`` as an ``xarray.Dataset`` (layout: module docstring)."""
    path = Path(path)
    try:
        with h5py.File(path, "r", locking=False) as h5:
            return _dataset(h5, path)
    except OSError as exc:
        raise CubeError(f"{path}: cannot open as a cube: {exc}") from exc


def open_cubes(paths: Iterable[str | Path]) -> xr.Dataset:
    """Return the bin-by-bin sum of matching cubes (e.g. one per run) as one Dataset.

    Cubes match when they have the same bin edges, bin mode and field, laser state,
    filter name and variables of the same shapes; otherwise CubeError says what differs.
    Per-bin variables and the event-count attributes are summed; ``attrs["runs"]`` lists
    the runs; detector constants and other attributes are the first cube's.
    """
    cubes = [open_cube(p) for p in paths]
    if not cubes:
        raise CubeError("open_cubes: no cube given")
    total = cubes[0].copy(deep=True)
    for cube in cubes[1:]:
        _check_match(total, cube)
        for name, var in cube.data_vars.items():
            if BIN in var.dims:
                total[name] = total[name] + var
    total.attrs["runs"] = [int(c.attrs.get("run", -1)) for c in cubes]
    total.attrs["source_files"] = [f for c in cubes for f in c.attrs["source_files"]]
    for key in EVENT_COUNT_ATTRS:
        if all(key in c.attrs for c in cubes):
            total.attrs[key] = int(sum(int(c.attrs[key]) for c in cubes))
    return total


def _dataset(h5: h5py.File, path: Path) -> xr.Dataset:
    """Return the Dataset of an open cube file."""
    if "binVar_bins" not in h5 or "nEntries" not in h5:
        raise CubeError(f"{path}: not a cube file (no binVar_bins or nEntries)")
    labels = h5["binVar_bins"][()]
    n_bins = len(labels)
    attrs = {key: _attr(value) for key, value in h5.attrs.items()}
    attrs["source_files"] = [str(path)]
    edges = np.asarray(attrs.get("bin_edges", np.full(n_bins + 1, np.nan)), dtype=np.float64)
    coords = {BIN: labels, "bin_low": (BIN, edges[:-1]), "bin_high": (BIN, edges[1:])}
    frame_dims = _frame_dims(h5, n_bins)
    variables = {}
    for name, obj in h5.items():
        if isinstance(obj, h5py.Group):
            detector = name.removesuffix("_cfg")
            for key, constant in obj.items():
                value = constant[()]
                dims = _constant_dims(detector, key, value.shape, frame_dims.get(detector))
                variables[f"{name}_{key}"] = (dims, value)
        elif name != "binVar_bins":
            value = obj[()]
            if value.ndim and value.shape[0] == n_bins:
                detector = name.removesuffix("_data")
                frame = frame_dims.get(detector) if name.endswith("_data") else None
                dims = (BIN, *(frame[0] if frame else _generic_dims(name, value.shape[1:])))
            else:
                dims = _generic_dims(name, value.shape)
            variables[name] = (dims, value)
    return xr.Dataset(variables, coords=coords, attrs=attrs)


def _frame_dims(h5: h5py.File, n_bins: int) -> dict[str, tuple[tuple[str, ...], tuple]]:
    """Return ``{det: (frame dimension names, frame shape)}`` of every ``<det>_data``."""
    frames = {}
    for name, obj in h5.items():
        if name.endswith("_data") and isinstance(obj, h5py.Dataset) and obj.shape[0] == n_bins:
            det = name.removesuffix("_data")
            shape = obj.shape[1:]
            named = ("segment", "row", "col")[-len(shape) :] if 0 < len(shape) <= 3 else ()
            dims = tuple(f"{det}_{n}" for n in named) or _generic_dims(name, shape)
            frames[det] = (dims, shape)
    return frames


def _constant_dims(
    detector: str, key: str, shape: tuple[int, ...], frame: tuple[tuple[str, ...], tuple] | None
) -> tuple[str, ...]:
    """Return the dims of a detector constant: the frame's, after a gain-stage axis if any.

    Constants not shaped like the frames (``ix``/``iy`` of an assembled image) get
    generic names.
    """
    if frame is not None:
        dims, frame_shape = frame
        leading = len(shape) - len(frame_shape)
        if leading in (0, 1) and shape[leading:] == frame_shape:
            return (f"{detector}_stage",) * leading + dims
    return _generic_dims(f"{detector}_cfg_{key}", shape)


def _generic_dims(name: str, shape: tuple[int, ...]) -> tuple[str, ...]:
    """Return ``<name>_dim<i>`` names for an array without a known layout."""
    return tuple(f"{name}_dim{i}" for i in range(len(shape)))


def _attr(value: object) -> object:
    """Return an HDF5 attribute as a plain Python value (str, int, float, list)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        return [_attr(v) for v in value.tolist()] if value.dtype == object else value
    if isinstance(value, np.generic):
        return value.item()
    return value


def _check_match(first: xr.Dataset, other: xr.Dataset) -> None:
    """Raise CubeError naming what differs between two cubes that should be summed."""
    where = f"{other.attrs['source_files'][0]} does not match {first.attrs['source_files'][0]}"
    a, b = first[BIN].size, other[BIN].size
    if a != b:
        raise CubeError(f"{where}: {b} bins, not {a}")
    edges_a = np.concatenate([first["bin_low"].values, first["bin_high"].values])
    edges_b = np.concatenate([other["bin_low"].values, other["bin_high"].values])
    if not np.array_equal(edges_a, edges_b, equal_nan=True):
        raise CubeError(f"{where}: different bin edges")
    for key in MUST_MATCH_ATTRS:
        if first.attrs.get(key) != other.attrs.get(key):
            raise CubeError(
                f"{where}: {key} {other.attrs.get(key)!r}, not {first.attrs.get(key)!r}"
            )
    binned = {n for n, v in first.data_vars.items() if BIN in v.dims}
    other_binned = {n for n, v in other.data_vars.items() if BIN in v.dims}
    if binned != other_binned:
        raise CubeError(f"{where}: datasets differ ({', '.join(sorted(binned ^ other_binned))})")
    for name in binned:
        if first[name].shape != other[name].shape:
            raise CubeError(
                f"{where}: {name} has shape {other[name].shape}, not {first[name].shape}"
            )
