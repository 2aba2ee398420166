"""Write one cube file: datasets, detector constants, provenance, temporary name + rename.

A cube is written as a hidden ``.<name>.<pid>.partial`` file beside its final name and
renamed only when complete, so a reader never sees half a file. An existing cube is
never replaced unless ``force`` is given, and then atomically.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import h5py
import numpy as np

from mpicube import __version__
from mpicube.errors import CubeError
from mpicube.plan import CubePlan, Plan


@dataclass(frozen=True)
class DetectorOutput:
    """How one area detector appears in a cube: data shape and constants for ``<det>_cfg``."""

    name: str
    shape: tuple[int, ...]  # assembled image shape, or the raw tile shape
    constants: dict[str, np.ndarray]


def dataset_name(field: str) -> str:
    """Return the cube dataset name of a smalldata field: ``/`` becomes ``__``."""
    return field.replace("/", "__")


def existing_cubes(outdir: Path, names: list[str]) -> list[Path]:
    """Return the cube files among ``names`` that already exist in ``outdir``."""
    return [outdir / name for name in names if (outdir / name).exists()]


class CubeFile:
    """One cube file being written; call :meth:`commit` when complete or :meth:`discard`."""

    def __init__(self, path: Path, force: bool):
        self.path = path
        self.force = force
        self.temp = path.with_name(f".{path.name}.{os.getpid()}.partial")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.h5 = h5py.File(self.temp, "w")
        except OSError as exc:
            raise CubeError(f"{path.parent}: cannot write the cube there: {exc}") from exc

    def write_bins(self, plan: Plan, cube: CubePlan, field_sums: dict, n_ranks: int) -> None:
        """Write the bins, counts, bin variable, field sums and provenance attributes."""
        bins = plan.bins
        h5 = self.h5
        h5["binVar_bins"] = bins.labels
        h5["nEntries"] = cube.n_entries
        h5["binVar"] = cube.bin_sums
        for path, sums in field_sums.items():
            h5[dataset_name(path)] = sums
        if bins.dataset_name not in h5:
            h5[bins.dataset_name] = cube.bin_sums
        counts = cube.bin_counts
        sel = cube.selection
        h5.attrs.update(
            {
                "experiment": plan.experiment,
                "run": plan.run,
                "input_file": str(plan.input_path),
                "config_file": str(plan.config_path),
                "config_text": plan.config_text,
                "filter_name": sel.filter_name,
                "filters": json.dumps([asdict(r) for r in sel.rows]),
                "laser": sel.laser or "none",
                "bin_mode": bins.mode,
                "bin_field": bins.field,
                "bin_sources": list(bins.sources),
                "bin_edges": bins.edges,
                "events_in_run": plan.n_events,
                "events_selected": cube.n_selected,
                "events_binned": counts.binned,
                "events_below_bins": counts.below,
                "events_above_bins": counts.above,
                "events_nan_bin_value": counts.nan,
                "mpicube_version": __version__,
                "n_ranks": n_ranks,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
        )

    def add_detector(self, detector: DetectorOutput, entries: np.ndarray) -> None:
        """Create ``<det>_data`` (zero until a bin is written), ``_nEntries`` and ``_cfg``."""
        n_bins = len(entries)
        self.h5.create_dataset(
            f"{detector.name}_data",
            shape=(n_bins, *detector.shape),
            dtype=np.float64,
            chunks=(1, *detector.shape),
            fillvalue=0.0,
        )
        self.h5[f"{detector.name}_nEntries"] = entries
        cfg = self.h5.create_group(f"{detector.name}_cfg")
        for key, value in detector.constants.items():
            cfg[key] = value

    def set_detector_entries(self, detector: str, entries: np.ndarray) -> None:
        """Overwrite ``<det>_nEntries`` with the frames actually summed per bin."""
        self.h5[f"{detector}_nEntries"][...] = entries

    def write_bin(self, detector: str, index: int, data: np.ndarray) -> None:
        """Write the summed frames of one bin of ``detector``."""
        self.h5[f"{detector}_data"][index] = data

    def commit(self) -> Path:
        """Close the file and give it its final name; return that name.

        Without ``force``, an existing file of that name is an error (checked atomically).
        """
        self.h5.close()
        try:
            if self.force:
                os.replace(self.temp, self.path)
            else:
                os.link(self.temp, self.path)  # fails if the cube appeared meanwhile
                os.unlink(self.temp)
        except FileExistsError as exc:
            self.discard()
            raise CubeError(f"{self.path} exists already (use --force to replace it)") from exc
        return self.path

    def discard(self) -> None:
        """Close and delete the temporary file."""
        if self.h5.id.valid:
            self.h5.close()
        self.temp.unlink(missing_ok=True)
