"""Write one cube file: datasets, detector constants, provenance, temporary name + rename.

A cube is written as a hidden ``.<name>.<pid>.partial`` file beside its final name and
renamed only when complete, so a reader never sees half a file. An existing cube is
never replaced unless ``force`` is given, and then atomically.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
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
    derived: dict[str, tuple[tuple[int, ...], dict]] = field(default_factory=dict)
    # det_proc results: key -> (shape of one bin's result, dataset attributes)


def dataset_name(field: str) -> str:
    """Return the cube dataset name of a smalldata field: ``/`` becomes ``__``."""
    return field.replace("/", "__")


def temporary_path(path: Path) -> Path:
    """Return the hidden name a cube is written under until complete."""
    return path.with_name(f".{path.name}.{os.getpid()}.partial")


_GUARD = """
import os, sys
sys.stdin.buffer.read()  # returns when the job's process ends, however it ends
for path in sys.argv[1:]:
    try:
        os.unlink(path)
    except OSError:
        pass
"""


def guard_temporary_files(paths: list[Path]) -> subprocess.Popen:
    """Start a watcher that deletes ``paths`` once this process ends, even by a signal.

    Close the watcher's stdin (after the files are renamed) to end it normally. It runs
    in its own session, so the MPI launcher's kill of the job does not reach it.
    """
    return subprocess.Popen(
        [sys.executable, "-c", _GUARD, *map(str, paths)],
        stdin=subprocess.PIPE,
        start_new_session=True,
    )


def existing_cubes(outdir: Path, names: list[str]) -> list[Path]:
    """Return the cube files among ``names`` that already exist in ``outdir``."""
    return [outdir / name for name in names if (outdir / name).exists()]


class CubeFile:
    """One cube file being written; call :meth:`commit` when complete or :meth:`discard`."""

    def __init__(self, path: Path, force: bool):
        self.path = path
        self.force = force
        self.temp = temporary_path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # 1.8+ format: attributes may exceed 64 kB (bin edges of 10,000 bins, long configs)
            self.h5 = h5py.File(self.temp, "w", libver=("v108", "v110"))
        except OSError as exc:
            raise CubeError(f"{path.parent}: cannot write the cube there: {exc}") from exc

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Turn an I/O failure (e.g. a full disk) into a one-line CubeError naming the cube."""
        try:
            yield
        except OSError as exc:
            raise CubeError(f"{self.path}: cannot write the cube: {_reason(exc)}") from exc

    def write_bins(self, plan: Plan, cube: CubePlan, field_sums: dict, n_ranks: int) -> None:
        """Write the bins, counts, bin variable, field sums and provenance attributes."""
        with self._writing():
            self._write_bins(plan, cube, field_sums, n_ranks)
            self.h5.flush()

    def _write_bins(self, plan: Plan, cube: CubePlan, field_sums: dict, n_ranks: int) -> None:
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
        """Create ``<det>_data`` (see :meth:`bin_offsets`), ``_nEntries``, ``_cfg`` and one
        ``<det>_<key>`` per det_proc result (zero until a bin is written)."""
        n_bins = len(entries)
        with self._writing():
            _create_bin_chunks(self.h5, f"{detector.name}_data", (n_bins, *detector.shape))
            self.h5[f"{detector.name}_nEntries"] = entries
            cfg = self.h5.create_group(f"{detector.name}_cfg")
            for key, value in detector.constants.items():
                cfg[key] = value
            for key, (shape, attrs) in detector.derived.items():
                name = f"{detector.name}_{key}"
                dset = self.h5.create_dataset(
                    name, shape=(n_bins, *shape), dtype=np.float64, fillvalue=0.0
                )
                dset.attrs.update(attrs)

    def set_detector_entries(self, detector: str, entries: np.ndarray) -> None:
        """Overwrite ``<det>_nEntries`` with the frames actually summed per bin."""
        self.h5[f"{detector}_nEntries"][...] = entries

    def bin_offsets(self, detector: str) -> np.ndarray:
        """Return the byte offset in the temporary file of each bin of ``<det>_data``.

        Every bin is one uncompressed float64 chunk, allocated when the dataset is created
        and never written by HDF5, so any rank may write a bin's bytes there itself
        (:class:`mpicube.bin_writer.BinWriter`). Bins nobody writes stay holes of the file:
        they read as zeros and take no disk space.
        """
        dset = self.h5[f"{detector}_data"]
        zeros = (0,) * (dset.ndim - 1)
        return np.array(
            [dset.id.get_chunk_info_by_coord((b, *zeros)).byte_offset for b in range(len(dset))],
            dtype=np.int64,
        )

    def write_derived(self, detector: str, key: str, index: int, value: np.ndarray) -> None:
        """Write one bin's det_proc result ``<det>_<key>``."""
        with self._writing():
            self.h5[f"{detector}_{key}"][index] = value

    def commit(self) -> Path:
        """Close the file and give it its final name; return that name.

        Without ``force``, an existing file of that name is an error (checked atomically).
        """
        with self._writing():
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
        """Delete the temporary file, then close it (a failing close is of no concern then)."""
        self.temp.unlink(missing_ok=True)
        if self.h5.id.valid:
            with suppress(Exception):
                self.h5.close()


def _create_bin_chunks(h5: h5py.File, name: str, shape: tuple[int, ...]) -> None:
    """Create a float64 dataset of one chunk per bin, every chunk allocated at once and no
    fill value ever written (fill value 0 for readers); return None."""
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_chunk((1, *shape[1:]))
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
    dcpl.set_fill_value(np.zeros((), np.float64))
    space = h5py.h5s.create_simple(shape)
    h5py.h5d.create(h5.id, name.encode(), h5py.h5t.NATIVE_DOUBLE, space, dcpl=dcpl)


def _reason(exc: OSError) -> str:
    """Return the system's reason from an h5py I/O error (its message spans many lines)."""
    text = str(exc)
    match = re.search(r"error message = '([^']*)'", text)
    return match.group(1) if match else text.splitlines()[0]


def check_free_space(outdir: Path, needed_bytes: int) -> None:
    """Raise CubeError unless the file system of ``outdir`` has ``needed_bytes`` free."""
    existing = next(p for p in (outdir, *outdir.parents) if p.exists())
    free = shutil.disk_usage(existing).free
    if free < needed_bytes:
        raise CubeError(
            f"{outdir}: not enough disk space for the cubes: {needed_bytes / 2**30:.2f} GB "
            f"needed, {free / 2**30:.2f} GB free"
        )


class CubeSet:
    """The cubes of one job, opened together under temporary names and committed or
    discarded together; a watcher process deletes the temporary files if this process
    dies first (killed by the MPI launcher, a signal or the out-of-memory killer)."""

    def __init__(self, paths: list[Path], force: bool):
        self.guard = guard_temporary_files([temporary_path(p) for p in paths])
        self.files: list[CubeFile] = []
        try:
            for path in paths:
                self.files.append(CubeFile(path, force))
        except BaseException:
            self.discard()
            raise

    def commit(self) -> list[Path]:
        """Give every cube its final name; return those names."""
        written = [file.commit() for file in self.files]
        self._release_guard()
        return written

    def discard(self) -> None:
        """Delete every temporary file."""
        for file in self.files:
            file.discard()
        self._release_guard()

    def _release_guard(self) -> None:
        if self.guard.stdin and not self.guard.stdin.closed:
            self.guard.stdin.close()
            self.guard.wait()
