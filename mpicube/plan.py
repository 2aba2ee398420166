"""Rank 0's plan of a run: the cubes to write, their bins, and each event's bin per cube.

The plan is small and picklable; it is broadcast to every rank, which then needs
nothing but its own slice of events to do its share.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mpicube import binning, selection
from mpicube.config import STANDARD_FILTER, CubeConfig, RunSettings, load_config
from mpicube.errors import CubeError
from mpicube.smalldata import SmallData


@dataclass(frozen=True)
class CubePlan:
    """One cube: its selection, what the selection kept, and its per-bin counts."""

    selection: selection.Selection
    file_name: str
    row_counts: list[selection.RowCount]
    n_selected: int
    bin_counts: binning.BinCounts
    n_entries: np.ndarray  # (n_bins,) int64
    bin_sums: np.ndarray  # (n_bins,) float64: sum of the bin variable per bin

    @property
    def empty(self) -> bool:
        """Return True when the selection keeps no event (no file is written)."""
        return self.n_selected == 0


@dataclass(frozen=True)
class Plan:
    """Everything every rank needs to do its share of a run."""

    experiment: str
    run: int
    input_path: Path
    config_path: Path
    config_text: str
    n_events: int
    settings: RunSettings
    bins: binning.Bins
    cubes: list[CubePlan]  # the cubes to write (non-empty selections), in output order
    empty_cubes: list[CubePlan]  # selections that kept nothing
    bin_index: np.ndarray  # (len(cubes), N) int32: each event's bin per cube, -1 if not in it
    frames_present: np.ndarray  # (len(detectors), N) bool

    @property
    def n_rows(self) -> int:
        """Return the number of (cube, bin) rows: len(cubes) x n_bins."""
        return len(self.cubes) * self.bins.n_bins

    def detector_entries(self, index: int) -> np.ndarray:
        """Return the (n_rows,) frame counts of detector ``index`` per (cube, bin) row."""
        counts = np.zeros(self.n_rows, dtype=np.int64)
        present = self.frames_present[index]
        for c in range(len(self.cubes)):
            bins = self.bin_index[c][present]
            counts[c * self.bins.n_bins : (c + 1) * self.bins.n_bins] = np.bincount(
                bins[bins >= 0], minlength=self.bins.n_bins
            )
        return counts


def cube_file_name(
    experiment: str, run: int, axis: str, laser: str | None, filter_name: str
) -> str:
    """Return ``Cube_<exp>_Run<NNNN>_<axis>[_<on|off>][_<filter>].h5`` (contract §5)."""
    parts = [f"Cube_{experiment}_Run{run:04d}", axis]
    if laser:
        parts.append(laser)
    if filter_name != STANDARD_FILTER:
        parts.append(filter_name)
    return "_".join(parts) + ".h5"


def make_plan(config_path: Path, experiment: str, run: int, input_path: Path) -> Plan:
    """Return the plan of one run: load the config, resolve bins, apply every selection."""
    config = load_config(config_path)
    settings = config.for_run(run)
    with SmallData(input_path) as sd:
        if sd.n_events == 0:
            raise CubeError(f"{input_path}: the run has no events")
        fields = _FieldCache(sd)
        _check_fields(config, settings, sd)
        bin_values = binning.resolve_bins(
            settings.edges, settings.bin_name, sd.has, fields, sd.scan_fields()
        )
        bins = bin_values.bins
        cubes, empty, indices = [], [], []
        for sel in selection.selections(settings.filters, settings.laser):
            mask, row_counts = selection.apply(sel, sd.n_events, fields)
            values = bin_values.laser_off if sel.laser == "off" else bin_values.laser_on
            index = np.where(mask, binning.bin_index(values, bins.edges), -1).astype(np.int32)
            in_bins = index >= 0
            cube = CubePlan(
                selection=sel,
                file_name=cube_file_name(experiment, run, bins.axis, sel.laser, sel.filter_name),
                row_counts=row_counts,
                n_selected=int(mask.sum()),
                bin_counts=binning.count_outside(values[mask], bins.edges),
                n_entries=np.bincount(index[in_bins], minlength=bins.n_bins).astype(np.int64),
                bin_sums=np.bincount(
                    index[in_bins], weights=values[in_bins], minlength=bins.n_bins
                ),
            )
            if cube.empty:
                empty.append(cube)
            else:
                cubes.append(cube)
                indices.append(index)
        present = [sd.frames_present(d.source) for d in settings.detectors]
        n_events = sd.n_events
    return Plan(
        experiment=experiment,
        run=run,
        input_path=input_path,
        config_path=config_path,
        config_text=config.text,
        n_events=n_events,
        settings=settings,
        bins=bins,
        cubes=cubes,
        empty_cubes=empty,
        bin_index=np.array(indices, dtype=np.int32).reshape(len(cubes), n_events),
        frames_present=np.array(present, dtype=bool).reshape(len(present), n_events),
    )


def _check_fields(config: CubeConfig, settings: RunSettings, sd: SmallData) -> None:
    """Raise CubeError for a field the file lacks: config file and line, field, file, and
    the closest existing name. Returns None when every field exists."""
    filters = "get_filters" if "get_filters" in config.namespace else "filters"
    uses = [(filters, r.field) for r in settings.filters]
    uses += [("varList", path) for path in settings.fields]
    if settings.bin_name:
        uses.append(("binName" if "binName" in config.namespace else "bin_name", settings.bin_name))
    for name, path in uses:
        try:
            sd.dataset(path)
        except CubeError as exc:
            raise config.error(name, str(exc)) from exc


class _FieldCache:
    """Read each scalar field once: callable as ``fields(path)`` → float64 (N,)."""

    def __init__(self, sd: SmallData):
        self.sd = sd
        self.values: dict[str, np.ndarray] = {}

    def __call__(self, path: str) -> np.ndarray:
        if path not in self.values:
            self.values[path] = self.sd.read_scalar(path)
        return self.values[path]
