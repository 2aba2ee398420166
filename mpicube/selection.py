"""Filter rows → boolean event masks, laser on/off variants, and the ``getFilter`` log lines."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mpicube.config import STANDARD_FILTER, FilterRow

LASER_FIELD = "lightStatus/laser"
LASER_ON = FilterRow(LASER_FIELD, 0.5, 1.5)
LASER_OFF = FilterRow(LASER_FIELD, -0.5, 0.5)
NO_EVENT_LINE = "did not select any event, quit now!"


@dataclass(frozen=True)
class Selection:
    """The rows one cube selects with: a filter name, a laser state and its cuts."""

    filter_name: str
    laser: str | None  # "on", "off", or None when the config has laser = False
    rows: tuple[FilterRow, ...]


@dataclass(frozen=True)
class RowCount:
    """How many events one row passes alone, and how many pass it and every row before."""

    row: FilterRow
    passes: int
    cumulative: int


def laser_independent(row: FilterRow) -> bool:
    """Return True unless the row cuts on the laser, the timetool or the laser encoder."""
    return not (row.field == LASER_FIELD or row.field.startswith(("tt/", "enc/lasDelay")))


def selections(filters: tuple[FilterRow, ...], laser: bool) -> list[Selection]:
    """Return the selections of a run: one per filter name (``filter1`` first), x laser on/off.

    Each name selects with its own rows only. With ``laser``, ``on`` adds
    ``lightStatus/laser == 1``; ``off`` drops the laser, ``tt/*`` and
    ``enc/lasDelay`` rows and adds ``lightStatus/laser == 0``.
    """
    names = [STANDARD_FILTER] + [r.name for r in filters if r.name != STANDARD_FILTER]
    result = []
    for name in dict.fromkeys(names):
        rows = tuple(r for r in filters if r.name == name)
        if not laser:
            result.append(Selection(name, None, rows))
            continue
        result.append(Selection(name, "on", (*rows, LASER_ON)))
        off_rows = tuple(r for r in rows if laser_independent(r))
        result.append(Selection(name, "off", (*off_rows, LASER_OFF)))
    return result


def row_passes(row: FilterRow, values: np.ndarray) -> np.ndarray:
    """Return the bool mask of events with ``low < value < high`` (NaN never passes)."""
    with np.errstate(invalid="ignore"):
        return (values > row.low) & (values < row.high)


def apply(
    selection: Selection, n_events: int, field: Callable[[str], np.ndarray]
) -> tuple[np.ndarray, list[RowCount]]:
    """Return the AND of the selection's rows over ``n_events`` events, and per-row counts.

    ``field(path)`` returns the float64 (N,) values of a field (columns summed).
    """
    mask = np.ones(n_events, dtype=bool)
    counts = []
    for row in selection.rows:
        passes = row_passes(row, field(row.field))
        mask &= passes
        counts.append(RowCount(row, int(passes.sum()), int(mask.sum())))
    return mask, counts


def filter_log_lines(counts: list[RowCount], n_events: int) -> list[str]:
    """Return one ``getFilter: Cut …`` line per row, in the facility's format."""
    return [
        f"getFilter: Cut {c.row.describe()} passes {c.passes} events of {n_events}, "
        f"total passes up to now: {c.cumulative}"
        for c in counts
    ]
