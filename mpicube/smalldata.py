"""Read a run's smalldata HDF5 file: per-event fields by path, scan fields, detectors.

Every rank opens the file read-only on its own (h5py here is a serial build). A file
that another process still holds open for writing is refused rather than read half-way.

Two layouts are read (contract §1). LCLS-I files carry ``event_time``. LCLS-II files,
written by psana's ``psana.smalldata.SmallData``, carry ``timestamp`` instead and differ
in two ways this reader hides: rows written under MPI are in arrival order, so events
are presented sorted by ``timestamp`` (event index ``i`` is the i-th event in time); and
a key missing from an event after it first appeared is stored as -99999 in integer
datasets (NaN in float ones), so in such files an integer -99999 reads as NaN wherever
values are read as numbers (:meth:`SmallData.read_float`): it fails every filter and is
skipped by the sums. psana writes 0 for the events before a key first appears; that is
indistinguishable from a real 0 and is read as 0.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from mpicube.detectors.constants import DetectorConstants
from mpicube.errors import CubeError, did_you_mean

TIME_FIELDS = ("event_time", "timestamp")
LCLS2_TIME_FIELD = "timestamp"
LCLS2_MISSING_INT = -99999  # psana.smalldata's fill value for a missing integer
CONSTANT_NAMES = ("ped", "gain", "rms", "mask", "ix", "iy", "x", "y")


def run_file_name(experiment: str, run: int) -> str:
    """Return the smalldata file name of a run: ``<exp>_Run<NNNN>.h5``."""
    return f"{experiment}_Run{run:04d}.h5"


class SmallData:
    """An open smalldata file; use as a context manager or call :meth:`close`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            raise CubeError(f"{self.path}: smalldata file not found")
        try:  # a writer still holding the file holds its lock (where locks are supported)
            self.file = h5py.File(self.path, "r", locking="best-effort")
        except OSError as exc:
            if "unable to lock file" in str(exc):
                raise CubeError(
                    f"{self.path}: still being written (another process holds it open for "
                    "writing): run again when the run's smalldata file is complete"
                ) from exc
            raise CubeError(f"{self.path}: cannot open as HDF5: {exc}") from exc
        self.n_events = self._count_events()
        self.time_field = next(name for name in TIME_FIELDS if name in self.file)
        self.lcls2 = self.time_field == LCLS2_TIME_FIELD
        self._order = self._time_order() if self.lcls2 else None
        self._fields: list[str] | None = None

    def __enter__(self) -> SmallData:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file."""
        self.file.close()

    def _count_events(self) -> int:
        for name in TIME_FIELDS:
            if name in self.file:
                return int(self.file[name].shape[0])
        raise CubeError(
            f"{self.path}: no 'event_time' or 'timestamp' dataset: not a smalldata file"
        )

    def _time_order(self) -> np.ndarray | None:
        """Return the file rows in timestamp order, or None when they are in order already."""
        times = self.file[LCLS2_TIME_FIELD][()]
        if len(times) < 2 or bool(np.all(times[1:] >= times[:-1])):
            return None
        return np.argsort(times, kind="stable")

    def file_rows(self, events: np.ndarray) -> np.ndarray:
        """Return the file rows of event indices ``events`` (the same unless rows are unsorted)."""
        return np.asarray(events, dtype=np.int64) if self._order is None else self._order[events]

    def field_names(self) -> list[str]:
        """Return the paths of every per-event dataset (first axis of length N)."""
        if self._fields is None:
            names: list[str] = []

            def visit(name: str, obj: h5py.HLObject) -> None:
                if (
                    isinstance(obj, h5py.Dataset)
                    and obj.ndim >= 1
                    and not name.startswith("UserDataCfg/")
                ):
                    names.append(name)

            self.file.visititems(visit)
            self._fields = sorted(names)
        return self._fields

    def has(self, path: str) -> bool:
        """Return True if a per-event field ``path`` exists."""
        return path in self.file and isinstance(self.file[path], h5py.Dataset)

    def dataset(self, path: str) -> h5py.Dataset:
        """Return the per-event dataset at ``path``; CubeError if missing or of wrong length."""
        if not self.has(path):
            hint = did_you_mean(path, self.field_names())
            raise CubeError(f"{self.path}: no field {path!r}{hint}")
        ds = self.file[path]
        if ds.ndim == 0 or ds.shape[0] != self.n_events:
            length = ds.shape[0] if ds.ndim else 0
            raise CubeError(
                f"{self.path}: field {path!r} has {length} events, the run has {self.n_events}"
            )
        return ds

    def read(self, path: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Return events ``start:stop`` (in time order) of field ``path`` as stored."""
        ds = self.dataset(path)
        stop = self.n_events if stop is None else stop
        try:
            if self._order is None:
                return ds[start:stop]
            rows = self._order[start:stop]
            if not len(rows):
                return ds[0:0]
            first = int(rows.min())
            return ds[first : int(rows.max()) + 1][rows - first]
        except OSError as exc:
            raise CubeError(f"{self.path}: cannot read field {path!r}: {exc}") from exc

    def read_float(self, path: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Return events ``start:stop`` of field ``path`` as float64, missing values as NaN.

        Missing: -99999 in an integer field of an LCLS-II (psana SmallData) file.
        """
        stored = self.read(path, start, stop)
        values = np.asarray(stored, dtype=np.float64)
        if self.lcls2 and stored.dtype.kind == "i":
            values[stored == LCLS2_MISSING_INT] = np.nan
        return values

    def read_times(self) -> np.ndarray:
        """Return every event's time (``seconds << 32 | nanoseconds``) as uint64, in order."""
        return np.asarray(self.read(self.time_field)).astype(np.uint64)

    def read_scalar(self, path: str) -> np.ndarray:
        """Return field ``path`` as float64 of shape (N,), summed across columns if 2-d+."""
        values = self.read_float(path)
        if values.ndim > 1:
            values = values.reshape(self.n_events, -1).sum(axis=1)
        return values

    def scan_fields(self) -> list[str]:
        """Return the ``scan/*`` fields of shape (N,)."""
        return [
            name
            for name in self.field_names()
            if name.startswith("scan/") and self.file[name].shape == (self.n_events,)
        ]

    def detector_constants(self, name: str) -> DetectorConstants:
        """Return the constants of area detector ``name`` from ``UserDataCfg/<name>``.

        The raw frame shape is that of ``<name>/raw``, or, when the frames come from
        elsewhere (XTC2) and the file has none, that of the pedestals less their gain axis.
        """
        group_path = f"UserDataCfg/{name}"
        if group_path not in self.file:
            self.raw_frames(name)  # no frames either: name the detectors that exist
            raise CubeError(f"{self.path}: detector {name!r} has frames but no {group_path}")
        group = self.file[group_path]
        values = {key: group[key][()] for key in CONSTANT_NAMES if key in group}
        for key in ("ped", "gain"):
            if key not in values:
                raise CubeError(f"{self.path}: {group_path} has no {key!r}")
        detector_type = group.attrs.get("detector_type")
        if isinstance(detector_type, bytes):
            detector_type = detector_type.decode()
        if not detector_type:
            raise CubeError(f"{self.path}: {group_path} has no 'detector_type' attribute")
        has_frames = self.has(f"{name}/raw")
        raw_shape = self.raw_frames(name).shape[1:] if has_frames else values["ped"].shape[1:]
        return DetectorConstants(
            name=name, detector_type=str(detector_type), raw_shape=tuple(raw_shape), **values
        )

    def raw_frames(self, name: str) -> h5py.Dataset:
        """Return the ``<name>/raw`` dataset of area detector ``name``."""
        path = f"{name}/raw"
        if not self.has(path):
            detectors = [p[: -len("/raw")] for p in self.field_names() if p.endswith("/raw")]
            raise CubeError(
                f"{self.path}: no area detector {name!r}{did_you_mean(name, detectors)}"
            )
        return self.dataset(path)

    def frames_present(self, name: str) -> np.ndarray:
        """Return a bool (N,) array: True where detector ``name`` delivered its frame."""
        path = f"damage/{name}"
        if not self.has(path):
            return np.ones(self.n_events, dtype=bool)
        return np.asarray(self.read(path)) > 0
