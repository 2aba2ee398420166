"""Run ``mpicube`` with a fault injected on one rank:
``fail_on_rank.py TARGET RANK [KIND] -- ARGS``.

TARGET is ``module:function`` or ``module:Class.method`` (e.g.
``mpicube.accumulate:accumulate_frames``); on rank RANK, calling it instead
- ``error`` (default): raises ``RuntimeError("injected fault")``;
- ``memory``: raises ``MemoryError`` after trying to allocate far more than the machine has;
- ``kill``: kills the rank's own process with SIGKILL (as the out-of-memory killer does).
"""

import importlib
import os
import signal
import sys

import numpy as np
from mpi4py import MPI

from mpicube.cli import main


def fault(kind: str) -> None:
    if kind == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if kind == "memory":
        np.ones(2**50, dtype=np.uint8)  # 1 PiB: MemoryError
    raise RuntimeError("injected fault")


def inject(target: str, rank: int, kind: str) -> None:
    module_name, _, attr = target.partition(":")
    owner_name, _, method = attr.partition(".")
    module = importlib.import_module(module_name)
    owner = getattr(module, owner_name) if method else module
    name = method or attr
    original = getattr(owner, name)

    def failing(*args, **kwargs):
        if MPI.COMM_WORLD.Get_rank() == rank:
            fault(kind)
        return original(*args, **kwargs)

    setattr(owner, name, failing)


if __name__ == "__main__":
    separator = sys.argv.index("--")
    target, rank, *kind = sys.argv[1:separator]
    inject(target, int(rank), kind[0] if kind else "error")
    sys.exit(main(sys.argv[separator + 1 :]))
