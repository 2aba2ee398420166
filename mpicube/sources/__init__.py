"""Where a detector's raw frames come from: the smalldata file (default) or XTC2 via psana.

A frame source adds the calibrated frames of a rank's events into accumulator rows and
says how many frames each row received; the job sums those counts into ``<det>_nEntries``,
so an event whose frame a source lacks counts in ``nEntries`` but not in the detector's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from mpicube.detectors import Calibrator
from mpicube.errors import CubeError
from mpicube.smalldata import SmallData

KINDS = ("h5", "xtc2")


class FrameSource(Protocol):
    """The frames of one area detector, by event index of the smalldata file."""

    def accumulate(
        self,
        calibrator: Calibrator,
        events: np.ndarray,
        rows: np.ndarray,
        acc: np.ndarray,
        on_frames: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Add the calibrated frames of ``events`` into ``acc`` at ``rows``.

        ``events``: sorted event indices; ``rows``: their (n, n_cubes) rows of ``acc``
        (-1: skip); ``on_frames(n)`` is told of progress now and then. Return the
        (len(acc),) int64 number of frames added to each row.
        """
        ...


@dataclass(frozen=True)
class FramesOption:
    """Where the job takes detector frames from: ``h5`` (``<det>/raw``) or ``xtc2`` in a dir."""

    kind: str = "h5"
    xtc_dir: Path | None = None


def parse_frames_option(text: str, default_xtc_dir: Path) -> FramesOption:
    """Return the option of ``h5``, ``xtc2`` (``default_xtc_dir``) or ``xtc2:DIR``."""
    kind, _, where = text.partition(":")
    if kind not in KINDS or (kind == "h5" and where):
        raise CubeError(f"--frames {text!r}: expected h5, xtc2 or xtc2:DIR")
    if kind == "h5":
        return FramesOption()
    return FramesOption("xtc2", Path(where) if where else default_xtc_dir)


def open_frame_source(
    option: FramesOption, sd: SmallData, detector: str, experiment: str, run: int
) -> FrameSource:
    """Return the frame source of ``detector`` for this rank, as ``option`` asks."""
    if option.kind == "h5":
        from mpicube.sources.hdf5 import Hdf5Frames

        return Hdf5Frames(sd, detector)
    from mpicube.sources.psana_xtc import XtcFrames

    assert option.xtc_dir is not None
    return XtcFrames(option.xtc_dir, experiment, run, detector, sd.read_times())
