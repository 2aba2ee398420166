"""A rank's pass over its events: per-(cube, bin) sums of scalar fields and detector frames.

Rows: cube ``c``'s bin ``b`` is row ``c * n_bins + b`` of every accumulator. Nothing
here knows about MPI; the job merges the partial sums.
"""

from __future__ import annotations

import mmap
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import h5py
import numpy as np

from mpicube.detectors import Calibrator
from mpicube.errors import CubeError
from mpicube.plan import Plan
from mpicube.smalldata import SmallData

READ_BLOCK_BYTES = 64 * 2**20  # read_direct buffer of a chunked or compressed dataset
MAP_BLOCK_BYTES = 128 * 2**20  # frames of a memory-mapped dataset given to the kernel at once


@dataclass(frozen=True)
class LocalEvents:
    """A rank's events (sorted event indices) and the rows each one adds to, -1 for none."""

    events: np.ndarray  # (n,) int64
    rows: np.ndarray  # (n, n_cubes) int32

    @property
    def span(self) -> tuple[int, int]:
        """Return the ``(start, stop)`` range of event indices that holds all events."""
        if not len(self.events):
            return 0, 0
        return int(self.events[0]), int(self.events[-1]) + 1


def events_in_cubes(plan: Plan) -> np.ndarray:
    """Return the sorted indices of events that fall in a bin of at least one cube."""
    return np.flatnonzero((plan.bin_index >= 0).any(axis=0))


def local_events(plan: Plan, events: np.ndarray) -> LocalEvents:
    """Return the accumulator rows of ``events``, a rank's share of :func:`events_in_cubes`."""
    index = plan.bin_index[:, events].T  # (n, n_cubes)
    offsets = np.arange(len(plan.cubes), dtype=np.int32) * plan.bins.n_bins
    rows = np.where(index >= 0, index + offsets, -1).astype(np.int32)
    return LocalEvents(events.astype(np.int64), rows)


def scalar_sums(sd: SmallData, fields: tuple[str, ...], local: LocalEvents, n_rows: int) -> dict:
    """Return ``{field: (n_rows, *columns) float64}``: NaN-skipping sums per row of the events."""
    start, stop = local.span
    hits = local.rows >= 0
    event_of_hit = np.nonzero(hits)[0]  # event position of each (event, cube) hit
    row_of_hit = local.rows[hits]
    sums = {}
    for path in fields:
        values = sd.read_float(path, start, stop)
        values = values[local.events - start] if len(local.events) else values[:0]
        shape = sd.dataset(path).shape[1:]
        columns = values.reshape(len(values), int(np.prod(shape)))
        out = np.zeros((n_rows, columns.shape[1]))
        for j in range(columns.shape[1]):
            weights = np.nan_to_num(columns[event_of_hit, j], nan=0.0, posinf=0.0, neginf=0.0)
            out[:, j] = np.bincount(row_of_hit, weights=weights, minlength=n_rows)
        sums[path] = out.reshape((n_rows, *shape))
    return sums


def row_blocks(active_rows: np.ndarray, bytes_per_row: int, budget_bytes: int) -> list[np.ndarray]:
    """Return ``active_rows`` cut into consecutive blocks whose accumulators fit the budget."""
    per_block = max(1, budget_bytes // max(1, bytes_per_row))
    return [active_rows[i : i + per_block] for i in range(0, len(active_rows), per_block)]


def block_rows(rows: np.ndarray, block: np.ndarray, n_rows: int) -> np.ndarray:
    """Return ``rows`` renumbered to positions within ``block`` (-1 for rows outside it)."""
    lookup = np.full(n_rows + 1, -1, dtype=np.int32)  # slot n_rows maps row -1 to -1
    lookup[block] = np.arange(len(block), dtype=np.int32)
    return lookup[np.where(rows >= 0, rows, n_rows)]


def accumulate_frames(
    frames: h5py.Dataset,
    calibrator: Calibrator,
    events: np.ndarray,
    rows: np.ndarray,
    acc: np.ndarray,
    on_frames: Callable[[int], None] | None = None,
) -> int:
    """Add the calibrated frames of ``events`` into ``acc`` at ``rows``; return frames added.

    ``events`` are sorted event indices and ``rows`` their (n, n_cubes) accumulator rows
    (-1: skip). Frames are taken in runs of consecutive events: straight from a memory map
    of the file when the dataset is contiguous and uncompressed (no copy), else read into
    one reused buffer. ``on_frames(n)`` is called after each run with the frames it added.
    """
    wanted = (rows >= 0).any(axis=1)
    events, rows = events[wanted], rows[wanted]
    mapped = MappedFrames.open(frames)
    if mapped is None:
        reader: MappedFrames | BufferedFrames = BufferedFrames(frames)
    else:
        reader = mapped
    for first, last, part in _runs(events, reader.window):
        n = last - first + 1
        span_rows = np.full((n, rows.shape[1]), -1, dtype=np.int32)
        span_rows[events[part] - first] = rows[part]
        calibrator.accumulate(reader.frames(first, last + 1), span_rows, acc)
        reader.done(first, last + 1)
        if on_frames is not None:
            on_frames(part.stop - part.start)
    return len(events)


class BufferedFrames:
    """Frames read with ``read_direct`` into one reused buffer of ``READ_BLOCK_BYTES``."""

    def __init__(self, frames: h5py.Dataset):
        self.dataset = frames
        self.window = _frames_in(frames, READ_BLOCK_BYTES)
        self.buffer = np.empty((self.window, *frames.shape[1:]), dtype=frames.dtype)

    def frames(self, start: int, stop: int) -> np.ndarray:
        """Return frames ``start:stop`` (at most ``window``), valid until the next call."""
        n = stop - start
        try:
            self.dataset.read_direct(self.buffer, np.s_[start:stop], np.s_[0:n])
        except OSError as exc:
            raise CubeError(
                f"{self.dataset.file.filename}: cannot read {self.dataset.name} "
                f"events {start}-{stop - 1}: {exc}"
            ) from exc
        return self.buffer[:n]

    def done(self, start: int, stop: int) -> None:
        """Nothing to release: the buffer is reused. Returns None."""


class MappedFrames:
    """Frames of a contiguous, uncompressed dataset seen through a read-only memory map.

    The kernel reads the page cache directly (no copy). Pages of frames already used are
    unmapped from the process after each run (``MADV_DONTNEED``; they stay in the page
    cache), so a rank's resident memory does not grow with the frames it has read. The map
    is closed when the object and its views are gone.
    """

    def __init__(self, frames: h5py.Dataset, offset: int):
        self.window = _frames_in(frames, MAP_BLOCK_BYTES)
        self.frame_bytes = int(np.prod(frames.shape[1:])) * frames.dtype.itemsize
        start = offset - offset % mmap.ALLOCATIONGRANULARITY
        self.skip = offset - start
        length = self.skip + frames.shape[0] * self.frame_bytes
        with open(frames.file.filename, "rb") as fh:
            self.map = mmap.mmap(fh.fileno(), length, access=mmap.ACCESS_READ, offset=start)
        self.array = np.frombuffer(self.map, frames.dtype, frames.size, self.skip).reshape(
            frames.shape
        )

    @classmethod
    def open(cls, frames: h5py.Dataset) -> MappedFrames | None:
        """Return the mapped frames, or None if the dataset cannot be mapped as it is
        (chunked, compressed, external, not in the file's native layout)."""
        if frames.chunks is not None or frames.external or not frames.dtype.isnative:
            return None
        if frames.file.driver != "sec2" or frames.size == 0:
            return None
        offset = frames.id.get_offset()
        if offset is None:  # no storage allocated yet
            return None
        try:
            return cls(frames, offset)
        except (OSError, ValueError):
            return None

    def frames(self, start: int, stop: int) -> np.ndarray:
        """Return frames ``start:stop`` as a view of the file's pages."""
        return self.array[start:stop]

    def done(self, start: int, stop: int) -> None:
        """Unmap the whole pages of frames ``start:stop`` from the process; return None."""
        page = mmap.PAGESIZE
        first = self.skip + start * self.frame_bytes
        last = self.skip + stop * self.frame_bytes
        first += -first % page
        last -= last % page
        if last > first:
            self.map.madvise(mmap.MADV_DONTNEED, first, last - first)


def _frames_in(frames: h5py.Dataset, block_bytes: int) -> int:
    """Return how many frames of ``frames`` fit in ``block_bytes`` (at least 1)."""
    frame_bytes = int(np.prod(frames.shape[1:])) * frames.dtype.itemsize
    return max(1, block_bytes // max(1, frame_bytes))


def _runs(events: np.ndarray, window: int) -> Iterator[tuple[int, int, slice]]:
    """Yield ``(first, last, part)``: spans of at most ``window`` consecutive event indices.

    ``part`` selects the events inside ``[first, last]``; each span starts at a wanted
    event, so long gaps between wanted events are never read.
    """
    pos = 0
    while pos < len(events):
        first = int(events[pos])
        end = int(np.searchsorted(events, first + window, side="left"))
        yield first, int(events[end - 1]), slice(pos, end)
        pos = end
