"""Frames from the smalldata file itself: the ``<det>/raw`` dataset (the default source).

``hdf5plugin`` is imported first so that compressed frames (bitshuffle-LZ4 and the other
filters it registers) can be read; uncompressed contiguous frames are memory-mapped by
:func:`~mpicube.accumulate.accumulate_frames`.
"""

from __future__ import annotations

from collections.abc import Callable

import hdf5plugin  # noqa: F401  (registers the HDF5 compression filters before any read)
import numpy as np

from mpicube.accumulate import accumulate_frames
from mpicube.detectors import Calibrator
from mpicube.smalldata import SmallData


class Hdf5Frames:
    """The ``<det>/raw`` frames of a smalldata file, read in runs of consecutive rows."""

    def __init__(self, sd: SmallData, detector: str):
        self.sd = sd
        self.frames = sd.raw_frames(detector)

    def accumulate(
        self,
        calibrator: Calibrator,
        events: np.ndarray,
        rows: np.ndarray,
        acc: np.ndarray,
        on_frames: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Add the calibrated frames of ``events`` at ``rows``; return frames added per row.

        Rows of a file whose events are not in time order are visited in file order, so
        reads stay runs of consecutive rows.
        """
        file_rows = self.sd.file_rows(events)
        if len(file_rows) > 1 and bool(np.any(file_rows[1:] < file_rows[:-1])):
            order = np.argsort(file_rows, kind="stable")
            file_rows, rows = file_rows[order], rows[order]
        accumulate_frames(self.frames, calibrator, file_rows, rows, acc, on_frames)
        return np.bincount(rows[rows >= 0], minlength=len(acc)).astype(np.int64)
