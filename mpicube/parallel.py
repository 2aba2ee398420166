"""Everything MPI: the communicator, shares of work, error agreement, chunked Reduce, abort.

A failing rank never hangs the job: expected failures are agreed on at the next
collective step (every rank raises the same CubeError and exits cleanly), and
anything that escapes calls ``MPI.Abort`` through :func:`abort_on_error`.
"""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Callable
from typing import TypeVar

import numpy as np
from mpi4py import MPI

from mpicube.errors import CubeError

T = TypeVar("T")
REDUCE_CHUNK_BYTES = 16 * 2**20
ROW_TAG = 7  # every row: MPI keeps the order of messages between two ranks
WAIT_POLL_S = 0.001  # how often a rank waiting for the others checks whether they arrived


class Parallel:
    """A communicator and the collective steps the job is built from."""

    def __init__(self, comm: MPI.Comm | None = None):
        self.comm = comm if comm is not None else MPI.COMM_WORLD
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()

    @property
    def is_root(self) -> bool:
        """Return True on rank 0."""
        return self.rank == 0

    def everywhere(self, step: Callable[[], T]) -> T:
        """Run ``step`` on every rank and return its result once all ranks succeeded.

        If any rank fails, every rank raises the same CubeError (the first failing
        rank's reason); unexpected exceptions print their traceback on their rank.
        """
        result, error = None, None
        try:
            result = step()
        except CubeError as exc:
            error = str(exc)
        except Exception as exc:
            traceback.print_exc()
            sys.stderr.flush()
            error = f"rank {self.rank}: {type(exc).__name__}: {exc}"
        self._wait_for_all()
        errors = self.comm.allgather(error)
        first = next((e for e in errors if e), None)
        if first is not None:
            raise CubeError(first)
        return result  # type: ignore[return-value]

    def _wait_for_all(self) -> None:
        """Return once every rank has reached this point, sleeping while waiting.

        MPI's own collectives spin: a rank waiting for rank 0's write would keep busy a
        core that the writing rank needs when a node runs more ranks than cores.
        """
        if self.size == 1:
            return
        request = self.comm.Ibarrier()
        while not request.Test():
            time.sleep(WAIT_POLL_S)

    def on_root(self, step: Callable[[], T]) -> T | None:
        """Run ``step`` on rank 0 only (others wait); return its result on rank 0, else None."""
        return self.everywhere(step if self.is_root else _nothing)

    def from_root(self, step: Callable[[], T]) -> T:
        """Run ``step`` on rank 0 and return its result, broadcast, on every rank."""
        return self.comm.bcast(self.on_root(step), root=0)

    def gather(self, value: T) -> list[T] | None:
        """Return every rank's ``value`` in rank order on rank 0, None elsewhere."""
        return self.comm.gather(value, root=0)

    def share(self, n_items: int) -> tuple[int, int]:
        """Return this rank's ``(start, stop)`` of ``n_items`` split into near-equal parts."""
        base, extra = divmod(n_items, self.size)
        start = self.rank * base + min(self.rank, extra)
        return start, start + base + (self.rank < extra)

    def reduce_sum(self, buffer: np.ndarray) -> None:
        """Sum ``buffer`` over all ranks into rank 0's buffer, in place, in 16 MB slices.

        ``buffer`` must be C-contiguous float64 or int64 and of the same shape everywhere.
        Slicing avoids count overflow and big temporary buffers on every MPI.
        """
        if self.size == 1:
            return
        flat = buffer.reshape(-1)
        step = max(1, REDUCE_CHUNK_BYTES // flat.itemsize)
        for start in range(0, flat.size, step):
            part = flat[start : start + step]
            if self.is_root:
                self.comm.Reduce(MPI.IN_PLACE, part, op=MPI.SUM, root=0)
            else:
                self.comm.Reduce(part, None, op=MPI.SUM, root=0)

    def merge_rows(self, rows: np.ndarray, touched: np.ndarray) -> np.ndarray:
        """Sum each accumulator row over the ranks that added to it, on one of them, in
        place in ``rows`` (R, P); return (R,) the rank that holds each row's total.

        ``touched`` (R,) bool says which rows this rank added to (the others must be zero).
        A row's holder is one of its adders, taken in turn by row number (-1: no adder); the
        other adders send it their row, point to point. A rank's share of a scan covers a
        few bins, so most rows have one adder and never travel, and no rank receives the
        whole cube as in a Reduce to rank 0.
        """
        touched = np.asarray(touched, dtype=bool)
        if self.size == 1:
            return np.where(touched, 0, -1)
        everyone = np.empty((self.size, len(touched)), dtype=np.uint8)
        self.comm.Allgather(touched.astype(np.uint8), everyone)
        holders = np.full(len(touched), -1)
        sends, receives = [], []
        for row in np.flatnonzero(everyone.any(axis=0)):
            adders = np.flatnonzero(everyone[:, row])
            holder = int(adders[row % len(adders)])
            holders[row] = holder
            if holder == self.rank:
                receives.extend((row, int(a)) for a in adders if a != holder)
            elif touched[row]:
                sends.append(self.comm.Isend(rows[row], dest=holder, tag=ROW_TAG))
        scratch = np.empty(rows.shape[1:], rows.dtype) if receives else None
        for row, sender in receives:  # rows ascending per sender, as they were sent
            self.comm.Recv(scratch, source=sender, tag=ROW_TAG)
            rows[row] += scratch
        MPI.Request.Waitall(sends)
        return holders


def _nothing() -> None:
    return None


def abort_on_error(
    step: Callable[[], T], before_abort: Callable[[BaseException], None] | None = None
) -> T:
    """Return ``step()``; an exception other than CubeError prints its traceback, calls
    ``before_abort`` and, with several ranks, aborts the whole job (other ranks may be
    waiting in a collective step).

    A wrapper rather than ``sys.excepthook``: h5py reports errors in its destructors
    through the hook, and those must not abort the job.
    """
    try:
        return step()
    except CubeError:
        raise
    except Exception as exc:
        traceback.print_exc()
        sys.stderr.flush()
        if before_abort is not None:
            before_abort(exc)
        if MPI.COMM_WORLD.Get_size() > 1:
            MPI.COMM_WORLD.Abort(1)
        raise
