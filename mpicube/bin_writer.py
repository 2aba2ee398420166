"""Every rank writes the detector bins whose totals it holds straight into the cube files.

Rank 0 creates each cube (under its temporary name) with every bin of ``<det>_data``
allocated as one uncompressed float64 chunk that HDF5 never writes itself
(:meth:`mpicube.writer.CubeFile.bin_offsets`). :class:`BinSlots` tells every rank where
those chunks are; a rank writes a bin's bytes there with ``pwrite``. Which rank holds a
bin's total is decided by :meth:`mpicube.parallel.Parallel.merge_rows`. So the write of a
run's images is shared by the ranks, and a bin only one rank added to never travels.

This needs nothing of HDF5 but the chunk offsets: a serial h5py suffices, and readers see
an ordinary chunked dataset. Files on a shared file system must be coherent between
processes (POSIX local file systems, Lustre, GPFS); each writer closes its file
descriptors before rank 0 closes and renames the cube.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mpicube.errors import CubeError


@dataclass(frozen=True)
class BinSlots:
    """Where the bins of each detector lie in each cube's temporary file."""

    paths: tuple[Path, ...]  # temporary file of each cube
    offsets: dict[str, np.ndarray]  # detector -> (n_cubes, n_bins) int64 byte offsets
    shapes: dict[str, tuple[int, ...]]  # detector -> shape of one bin


class BinWriter:
    """Writes whole bins at their slots; use as a context manager (closes its files)."""

    def __init__(self, slots: BinSlots):
        self.slots = slots
        self._fds: dict[int, int] = {}

    def write(self, detector: str, cube: int, index: int, data: np.ndarray) -> None:
        """Write one bin's summed frames (the detector's bin shape) into cube ``cube``;
        return None. Raises CubeError naming the cube if the file cannot be written."""
        shape = self.slots.shapes[detector]
        if data.shape != shape:
            raise ValueError(f"{detector}: a bin is {shape}, got {data.shape}")
        chunk = np.ascontiguousarray(data, dtype=np.float64)
        offset = int(self.slots.offsets[detector][cube, index])
        view = memoryview(chunk).cast("B")
        try:
            fd = self._fd(cube)
            while view:
                written = os.pwrite(fd, view, offset)
                view, offset = view[written:], offset + written
        except OSError as exc:
            raise CubeError(
                f"{self.slots.paths[cube]}: cannot write {detector} bin {index}: "
                f"{exc.strerror or exc}"
            ) from exc

    def _fd(self, cube: int) -> int:
        if cube not in self._fds:
            self._fds[cube] = os.open(self.slots.paths[cube], os.O_WRONLY)
        return self._fds[cube]

    def close(self) -> None:
        """Close the files written to; return None. Raises CubeError if a close fails
        (on a network file system the data may only be sent then)."""
        fds, self._fds = self._fds, {}
        failure = None
        for cube, fd in fds.items():
            try:
                os.close(fd)
            except OSError as exc:
                failure = failure or CubeError(f"{self.slots.paths[cube]}: cannot write: {exc}")
        if failure is not None:
            raise failure

    def __enter__(self) -> BinWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
