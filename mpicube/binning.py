"""Bin modes (explicit field, delay scan with timetool, unique scan positions) and bin indices.

Edges ``B_0 < … < B_n`` make n bins ``[B_i, B_(i+1))``; a value below ``B_0``, at or
above ``B_n`` or NaN falls in no bin (index -1) and is counted as such.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mpicube.errors import CubeError

NOMINAL_DELAY_FIELDS = (  # (field, factor to ps), in order of preference
    ("scan/lxt_ttc", 1e12),
    ("scan/lxt", 1e12),
    ("enc/lasDelay", 1.0),
    ("epics/lxt_ttc", 1e12),
    ("epics/lxt", 1e12),
)
TIMETOOL_FIELDS = ("tt/ttCorr", "tt/FLTPOS_PS")
MAX_SCAN_POSITIONS = 10_000


@dataclass(frozen=True)
class Bins:
    """The bins of a run, shared by all its cubes."""

    mode: str  # "field", "delay" or "scan"
    field: str  # the field binned on, or "delay"
    edges: np.ndarray  # (n_bins + 1,)
    labels: np.ndarray  # (n_bins,): left edge of each bin, NaN for the scan-mode outlier bin
    sources: tuple[str, ...]  # the fields the bin variable was computed from

    @property
    def n_bins(self) -> int:
        """Return the number of bins."""
        return len(self.labels)

    @property
    def axis(self) -> str:
        """Return the bin axis as it appears in the cube file name."""
        if self.mode == "scan" and self.field.startswith("scan/"):
            return self.field[len("scan/") :].replace("/", "__")
        return self.field.replace("/", "__")

    @property
    def dataset_name(self) -> str:
        """Return the name of the cube dataset that holds the bin variable's sums."""
        return self.field.replace("/", "__")


@dataclass(frozen=True)
class BinValues:
    """The bin variable per event: with the laser (timetool-corrected) and without it."""

    bins: Bins
    laser_on: np.ndarray
    laser_off: np.ndarray


@dataclass(frozen=True)
class BinCounts:
    """How many selected events fell in the bins, below, at/above the top edge, or were NaN."""

    binned: int
    below: int
    above: int
    nan: int


Reader = Callable[[str], np.ndarray]


def resolve_bins(
    edges: np.ndarray | None,
    bin_name: str | None,
    has_field: Callable[[str], bool],
    read: Reader,
    scan_fields: list[str],
) -> BinValues:
    """Return the run's bins and bin variable per event, choosing the mode as contract §4 says.

    ``read(path)`` returns a field as float64 (N,); ``has_field(path)`` tells if it exists.
    """
    if edges is not None and bin_name:
        values = _not_all_nan(bin_name, read(bin_name))
        bins = Bins("field", bin_name, edges, edges[:-1].copy(), (bin_name,))
        return BinValues(bins, values, values)
    if edges is not None:
        return _delay_bins(edges, has_field, read)
    name = bin_name or _varying_scan_field(scan_fields, read)
    values = read(name)
    return BinValues(_unique_position_bins(name, values), values, values)


def _delay_bins(edges: np.ndarray, has_field: Callable[[str], bool], read: Reader) -> BinValues:
    nominal_field = next((f for f, _ in NOMINAL_DELAY_FIELDS if has_field(f)), None)
    if nominal_field is None:
        names = ", ".join(f for f, _ in NOMINAL_DELAY_FIELDS)
        raise CubeError(
            "bins are given without binName, so this would be a delay scan, but this run is "
            f"not a delay scan: none of {names} exists (set binName to bin on another field)"
        )
    nominal = read(nominal_field) * dict(NOMINAL_DELAY_FIELDS)[nominal_field]
    correction_field = next((f for f in TIMETOOL_FIELDS if _usable(has_field, read, f)), None)
    correction = read(correction_field) if correction_field else 0.0
    sources = (nominal_field,) + ((correction_field,) if correction_field else ())
    bins = Bins("delay", "delay", edges, edges[:-1].copy(), sources)
    delay = _not_all_nan(f"delay ({' + '.join(sources)})", nominal + correction)
    return BinValues(bins, delay, nominal)


def _usable(has_field: Callable[[str], bool], read: Reader, name: str) -> bool:
    """Return True if timetool field ``name`` exists and is not constant (nor all NaN)."""
    if not has_field(name):
        return False
    values = read(name)
    finite = values[np.isfinite(values)]
    return finite.size > 0 and finite.min() != finite.max()


def _varying_scan_field(scan_fields: list[str], read: Reader) -> str:
    varying = [name for name in scan_fields if np.unique(_finite(read(name))).size > 1]
    if not varying:
        raise CubeError(
            "no bins are given and no scan/* field varies in this run: "
            "give binBoundaries (and binName) in the config"
        )
    if len(varying) > 1:
        raise CubeError(
            f"no bins are given and several scan fields vary ({', '.join(varying)}): "
            "set binName in the config to choose one"
        )
    return varying[0]


def _unique_position_bins(name: str, values: np.ndarray) -> Bins:
    positions = np.unique(_finite(values))
    if positions.size == 0:
        raise CubeError(f"bin field {name!r} has no finite value in this run")
    if positions.size > MAX_SCAN_POSITIONS:
        raise CubeError(
            f"bin field {name!r} takes {positions.size} distinct values: not a step scan; "
            "give binBoundaries in the config"
        )
    edges = np.concatenate(([-np.inf], positions, [np.inf]))
    labels = np.concatenate(([np.nan], positions))
    return Bins("scan", name, edges, labels, (name,))


def _not_all_nan(name: str, values: np.ndarray) -> np.ndarray:
    """Return ``values``; CubeError if the bin variable is NaN for every event."""
    if len(values) and np.isnan(values).all():
        raise CubeError(f"bin variable {name} is NaN for every event of the run")
    return values


def _finite(values: np.ndarray) -> np.ndarray:
    return values[np.isfinite(values)]


def bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Return the int32 bin of each value (bins ``[B_i, B_(i+1))``), -1 outside or NaN."""
    index = np.searchsorted(edges, values, side="right").astype(np.int32) - 1
    index[(index >= len(edges) - 1) | np.isnan(values)] = -1
    return index


def count_outside(values: np.ndarray, edges: np.ndarray) -> BinCounts:
    """Return how many of ``values`` are binned, below ``B_0``, at/above ``B_n``, or NaN."""
    nan = int(np.isnan(values).sum())
    with np.errstate(invalid="ignore"):
        below = int((values < edges[0]).sum())
        above = int((values >= edges[-1]).sum())
    return BinCounts(len(values) - nan - below - above, below, above, nan)
