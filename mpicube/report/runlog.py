"""The run log: per cube what each selection row kept and where the events went, the bins,
and the wall time per phase of the job.

Shared by the job (logged on rank 0) and by ``mpicube check`` (printed).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import numpy as np

from mpicube import selection
from mpicube.binning import Bins
from mpicube.plan import CubePlan, Plan

T = TypeVar("T")


def bins_line(bins: Bins) -> str:
    """Return the one-line description of the run's bins: mode, field, sources, count, range."""
    head = f"bins: {bins.mode} on {bins.field} ({' + '.join(bins.sources)}), {bins.n_bins} bins"
    if bins.mode == "scan":
        positions = bins.edges[1:-1]
        return (
            f"{head}: one per position from {positions[0]:g} to {positions[-1]:g}, "
            f"plus one for values below {positions[0]:g}"
        )
    return f"{head} from {bins.edges[0]:g} to {bins.edges[-1]:g}"


def plan_lines(plan: Plan) -> list[str]:
    """Return the log lines of a plan: the run, the bins, then every cube (empty ones first).

    An empty selection gives the facility's ``did not select any event, quit now!`` line
    followed by its ``getFilter: Cut …`` lines, unchanged.
    """
    lines = [
        f"run {plan.run} of {plan.experiment}: {plan.n_events} events in {plan.input_path}; "
        f"config {plan.config_path}",
        bins_line(plan.bins),
    ]
    for cube in plan.empty_cubes:
        lines.append(f"{cube.file_name}: no event selected, no file written")
        lines.append(selection.NO_EVENT_LINE)
        lines.extend(selection.filter_log_lines(cube.row_counts, plan.n_events))
    for c, cube in enumerate(plan.cubes):
        lines.extend(cube_lines(plan, c, cube))
    return lines


def cube_lines(plan: Plan, index: int, cube: CubePlan) -> list[str]:
    """Return the lines of one non-empty cube: counts, then one line per row and detector."""
    counts = cube.bin_counts
    lines = [
        f"{cube.file_name}: {cube.n_selected} events selected, {counts.binned} binned, "
        f"{counts.below} below the bins, {counts.above} above, {counts.nan} NaN"
    ]
    for row in cube.row_counts:
        lines.append(
            f"  cut {row.row.describe()} keeps {row.passes} of {plan.n_events} events, "
            f"{row.cumulative} with the cuts above"
        )
    for d, request in enumerate(plan.settings.detectors):
        frames = frames_per_cube(plan, d)[index]
        lines.append(
            f"  {request.source}: {frames} frames to sum, "
            f"{counts.binned - frames} binned events without a frame"
        )
    return lines


def frames_per_cube(plan: Plan, detector: int) -> np.ndarray:
    """Return the (n_cubes,) number of binned events of each cube that have a frame of
    detector number ``detector``."""
    entries = plan.detector_entries(detector).reshape(len(plan.cubes), plan.bins.n_bins)
    return entries.sum(axis=1)


class PhaseTimer:
    """Wall time per named phase; time spent in a nested phase counts for that phase only."""

    def __init__(
        self, phases: tuple[str, ...] = (), clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self.clock = clock
        self.seconds: dict[str, float] = dict.fromkeys(phases, 0.0)
        self._inner: list[float] = []  # time spent in nested phases, per open phase

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time the enclosed block as phase ``name`` (added up if entered again); yield None."""
        self.seconds.setdefault(name, 0.0)
        start = self.clock()
        self._inner.append(0.0)
        try:
            yield
        finally:
            elapsed = self.clock() - start
            inner = self._inner.pop()
            self.seconds[name] += elapsed - inner
            if self._inner:
                self._inner[-1] += elapsed

    def timed(self, name: str, step: Callable[[], T]) -> Callable[[], T]:
        """Return ``step`` wrapped so that each call is timed as phase ``name``."""

        def run() -> T:
            with self.phase(name):
                return step()

        return run

    def line(self) -> str:
        """Return ``time per phase: plan 0.4 s, …``: declared phases first, then as seen."""
        parts = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in self.seconds.items())
        return f"time per phase: {parts}"
