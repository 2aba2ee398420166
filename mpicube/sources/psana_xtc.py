"""Frames from a run's XTC2 files through psana (LCLS-II), offline, each rank its own share.

Every rank runs its own serial psana reader (``PS_PARALLEL=none``: mpicube shares the
events out itself, psana's smd0/eb/bd rank layout is not used) on the ``exp=``/``dir=``
layout (``<dir>/<exp>-r<NNNN>-s<SSS>-c000.xtc2`` and ``<dir>/smalldata/…smd.xtc2``),
given only the timestamps of its own events: psana scans the run's small index files
and reads the big data of those events only. Calibration constants are never loaded
from psana (``skip_calib_load="all"``): mpicube calibrates with its own.

psana asks the facility's web service for a run's file list before looking on disk; that
request fails offline, so the reader here replaces that one look-up by psana's own
on-disk discovery (the files present under ``dir`` are the run).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from mpicube.detectors import Calibrator
from mpicube.errors import CubeError

FRAMES_PER_BLOCK = 64  # frames calibrated per kernel call


class XtcFrames:
    """The frames of one detector in a run's XTC2 files, found by event timestamp."""

    def __init__(self, xtc_dir: Path, experiment: str, run: int, detector: str, times: np.ndarray):
        self.xtc_dir = Path(xtc_dir)
        self.experiment = experiment
        self.run = run
        self.detector = detector
        self.times = times  # (N,) uint64, by event index
        pattern = f"{experiment}-r{run:04d}-s*.smd.xtc2"
        if not any((self.xtc_dir / "smalldata").glob(pattern)):
            raise CubeError(f"{self.xtc_dir}/smalldata: no {pattern}: no XTC2 run {run} there")
        _reader_class()  # fail early, on every rank, if psana is missing

    def accumulate(
        self,
        calibrator: Calibrator,
        events: np.ndarray,
        rows: np.ndarray,
        acc: np.ndarray,
        on_frames: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Add the calibrated frames of ``events`` at ``rows``; return frames added per row.

        Events without this detector's data in the XTC2 add nothing (and are not counted).
        """
        counts = np.zeros(len(acc), dtype=np.int64)
        wanted = (rows >= 0).any(axis=1)
        events, rows = events[wanted], rows[wanted]
        if not len(events):
            return counts  # an empty timestamps= list would make psana read every event
        times = self.times[events]
        position = {int(t): i for i, t in enumerate(times)}
        frames = np.empty((FRAMES_PER_BLOCK, *calibrator.raw_shape), dtype=np.uint16)
        frame_rows = np.empty((FRAMES_PER_BLOCK, rows.shape[1]), dtype=np.int32)
        n = 0
        for timestamp, raw in self._raw_frames(times):
            i = position.get(timestamp)
            if i is None or raw is None:
                continue
            frames[n] = self._shaped(raw, calibrator.raw_shape)
            frame_rows[n] = rows[i]
            n += 1
            if n == FRAMES_PER_BLOCK:
                calibrator.accumulate(frames, frame_rows, acc)
                if on_frames is not None:
                    on_frames(n)
                n = 0
            hit = rows[i][rows[i] >= 0]
            np.add.at(counts, hit, 1)
        calibrator.accumulate(frames[:n], frame_rows[:n], acc)
        return counts

    def _raw_frames(self, times: np.ndarray) -> Iterator[tuple[int, np.ndarray | None]]:
        """Yield ``(timestamp, raw frame or None)`` of the events at ``times``, via psana."""
        try:
            source = _reader_class()(
                exp=self.experiment,
                run=self.run,
                dir=str(self.xtc_dir),
                timestamps=np.sort(times),
                detectors=[self.detector],
                skip_calib_load="all",
                log_level=logging.WARNING,
            )
            run = next(source.runs(), None)
            if run is None:
                raise CubeError(f"{self.xtc_dir}: psana finds no run {self.run} there")
            names = list(run.detnames)
            if self.detector not in names:
                raise CubeError(
                    f"{self.xtc_dir}: run {self.run} has no detector {self.detector!r} in its "
                    f"XTC2 (it has {', '.join(names) or 'none'})"
                )
            det = run.Detector(self.detector)
            for evt in run.events():
                yield int(evt.timestamp), det.raw.raw(evt, copy=False)
        except (OSError, AssertionError) as exc:
            raise CubeError(f"{self.xtc_dir}: psana cannot read run {self.run}: {exc}") from exc

    def _shaped(self, raw: np.ndarray, raw_shape: tuple[int, ...]) -> np.ndarray:
        """Return ``raw`` in the calibration constants' shape; CubeError if it cannot be."""
        if raw.size != int(np.prod(raw_shape)):
            raise CubeError(
                f"{self.xtc_dir}: XTC2 frames of {self.detector!r} have shape {raw.shape}, "
                f"its UserDataCfg constants shape {raw_shape}"
            )
        return raw.reshape(raw_shape)


@functools.cache
def _reader_class() -> type:
    """Return psana's serial reader with the web-service file look-up replaced by the disk's."""
    os.environ["PS_PARALLEL"] = "none"  # read before psana's first import
    try:
        from psana.psexp import tools
        from psana.psexp.serial_ds import SerialDataSource
    except ImportError as exc:
        raise CubeError(
            f"--frames xtc2 needs psana, which cannot be imported ({exc}): "
            "pip install 'mpicube[psana]'"
        ) from exc
    if tools.mode != "none":
        raise CubeError("psana was imported in MPI mode before mpicube: set PS_PARALLEL=none")

    class OfflineDataSource(SerialDataSource):
        """psana's serial reader that takes a run's files from disk, never from the web."""

        def _get_file_info_from_db(self, runnum: int) -> dict:
            return {}

    return OfflineDataSource
