"""Is a smalldata file complete? Wait, bounded, until it is.

A file is complete when it opens read-only with HDF5 file locking (a writer holds a
lock, and a SWMR writer marks the file as open for writing, so either makes the open
fail) and it has not been modified for ``settle`` seconds (for file systems where
locking is disabled, e.g. ``HDF5_USE_FILE_LOCKING=FALSE``, or a writer that closes
and reopens the file).
"""

from __future__ import annotations

import time
from pathlib import Path

import h5py

from mpicube.errors import CubeError


def incomplete_reason(path: Path, settle: float) -> str | None:
    """Return why ``path`` is not complete yet, or None if it is complete."""
    try:
        modified = path.stat().st_mtime
    except FileNotFoundError:
        return "does not exist"
    try:
        with h5py.File(path, "r", locking=True):
            pass
    except OSError as exc:
        return f"cannot be opened ({str(exc).splitlines()[0]})"
    age = time.time() - modified
    if age < settle:
        return f"was modified {age:.1f} s ago (waiting until {settle:g} s)"
    return None


def wait_until_complete(
    path: Path, timeout: float, settle: float = 10.0, poll: float = 1.0
) -> float:
    """Wait until ``path`` is complete; return the seconds waited.

    Raises CubeError naming the last reason when it is still incomplete after ``timeout``.
    """
    started = time.monotonic()
    while True:
        reason = incomplete_reason(path, settle)
        waited = time.monotonic() - started
        if reason is None:
            return waited
        if waited >= timeout:
            raise CubeError(f"smalldata file {path} not complete after {timeout:g} s: {reason}")
        time.sleep(min(poll, max(0.0, timeout - waited)))
