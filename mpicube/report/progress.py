"""A progress line for long jobs, printed by rank 0 on a terminal a few times per minute.

Design: rank 0 counts the detector frames it has calibrated itself and multiplies by the
number of ranks. Every rank has a near-equal contiguous share of the events, so this is a
fair estimate of the frames done across all ranks, and it needs no communication at all
(nothing that could deadlock or slow the job). The line says it is an estimate.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

INTERVAL_SECONDS = 15.0


class Progress:
    """Call with the number of frames just calibrated; prints at most every ``interval`` s.

    Silent when ``stream`` is None or not a terminal. ``on_first`` is called once, when the
    first frames are done (the job logs its start-up time there).
    """

    def __init__(
        self,
        n_ranks: int,
        stream: TextIO | None,
        interval: float = INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        on_first: Callable[[], None] | None = None,
    ) -> None:
        self.n_ranks = n_ranks
        self.on_first = on_first
        self.stream = stream if stream is not None and stream.isatty() else None
        self.interval = interval
        self.clock = clock
        self.started = clock()
        self.last_print = self.started
        self.done = 0  # frames calibrated by this rank

    def __call__(self, n_frames: int) -> None:
        """Count ``n_frames`` more frames done, print the line if it is time; return None."""
        if self.on_first is not None and n_frames > 0:
            self.on_first()
            self.on_first = None
        self.done += n_frames
        if self.stream is None:
            return
        now = self.clock()
        if now - self.last_print < self.interval:
            return
        self.last_print = now
        print(self.line(now), file=self.stream, flush=True)

    def line(self, now: float) -> str:
        """Return the progress line at time ``now``: estimated frames done and their rate."""
        total = self.done * self.n_ranks
        elapsed = max(now - self.started, 1e-9)
        return (
            f"progress: ~{total:,} detector frames done on {self.n_ranks} ranks "
            f"(rank 0's {self.done:,} x {self.n_ranks}), ~{total / elapsed:,.0f} frames/s, "
            f"{elapsed:.0f} s"
        )
