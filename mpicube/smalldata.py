"""Read a run's smalldata HDF5 file: per-event fields by path, scan fields, detectors.

Every rank opens the file read-only on its own (h5py here is a serial build);
``locking=False`` lets a reader open a file another process still holds.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from mpicube.detectors.constants import DetectorConstants
from mpicube.errors import CubeError, did_you_mean

TIME_FIELDS = ("event_time", "timestamp")
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
        try:
            self.file = h5py.File(self.path, "r", locking=False)
        except OSError as exc:
            raise CubeError(f"{self.path}: cannot open as HDF5: {exc}") from exc
        self.n_events = self._count_events()
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
        """Return events ``start:stop`` of field ``path`` as a numpy array."""
        ds = self.dataset(path)
        try:
            return ds[start : self.n_events if stop is None else stop]
        except OSError as exc:
            raise CubeError(f"{self.path}: cannot read field {path!r}: {exc}") from exc

    def read_scalar(self, path: str) -> np.ndarray:
        """Return field ``path`` as float64 of shape (N,), summed across columns if 2-d+."""
        values = np.asarray(self.read(path), dtype=np.float64)
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
        """Return the constants of area detector ``name`` from ``UserDataCfg/<name>``."""
        raw = self.raw_frames(name)
        group_path = f"UserDataCfg/{name}"
        if group_path not in self.file:
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
        return DetectorConstants(
            name=name, detector_type=str(detector_type), raw_shape=tuple(raw.shape[1:]), **values
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
