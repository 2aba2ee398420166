"""The watcher, for sites without a run processor: submit a cube job for every newly
complete smalldata file of an experiment, once.

The state file (JSON, ``{file name: job id or "failed: <reason>"}``) records every file
handled, so a file is never cubed twice, also across restarts; delete its entry to
cube it again.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path

from mpicube.cluster.complete import incomplete_reason
from mpicube.errors import CubeError

log = logging.getLogger("mpicube")


def run_files(directory: Path, experiment: str) -> dict[str, int]:
    """Return the smalldata files ``<experiment>_Run<NNNN>.h5`` in ``directory``: name -> run."""
    pattern = re.compile(rf"{re.escape(experiment)}_Run(\d{{4,}})\.h5")
    found = {}
    for path in directory.glob(f"{experiment}_Run*.h5"):
        match = pattern.fullmatch(path.name)
        if match:
            found[path.name] = int(match.group(1))
    return dict(sorted(found.items()))


def load_state(path: Path) -> dict[str, str]:
    """Return the state file's record of handled files (empty if there is no file yet)."""
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CubeError(f"watch state file {path} cannot be read: {exc}") from None


def save_state(path: Path, state: dict[str, str]) -> None:
    """Write ``state`` to ``path`` atomically (a new file renamed over the old one)."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(state, indent=1, sort_keys=True) + "\n")
    partial.replace(path)


def watch_once(
    directory: Path,
    experiment: str,
    state_path: Path,
    submit_run: Callable[[int], str],
    settle: float,
) -> dict[str, str]:
    """Submit ``submit_run(run)`` for every complete file not in the state yet; return the
    entries added (file name -> job id, or ``failed: <reason>`` if the submission failed)."""
    state = load_state(state_path)
    added = {}
    for name, run in run_files(directory, experiment).items():
        if name in state or incomplete_reason(directory / name, settle) is not None:
            continue
        try:
            added[name] = submit_run(run)
            log.info("%s: submitted Slurm job %s", name, added[name])
        except CubeError as exc:
            added[name] = f"failed: {exc}"
            log.warning("%s: %s", name, exc)
        save_state(state_path, {**state, **added})
    return added


def watch(
    directory: Path,
    experiment: str,
    state_path: Path,
    submit_run: Callable[[int], str],
    settle: float,
    interval: float,
) -> None:
    """Run :func:`watch_once` every ``interval`` seconds, forever (stop it with a signal)."""
    log.info("watching %s for %s_Run*.h5 (state in %s)", directory, experiment, state_path)
    while True:
        watch_once(directory, experiment, state_path, submit_run, settle)
        time.sleep(interval)
