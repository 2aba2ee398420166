"""Run ``mpicube`` with a fault injected on one rank: ``fail_on_rank.py TARGET RANK -- ARGS``.

TARGET is ``module:function`` (e.g. ``mpicube.accumulate:accumulate_frames``); on rank
RANK that function raises ``RuntimeError("injected fault")`` instead of running.
"""

import importlib
import sys

from mpi4py import MPI

from mpicube.cli import main


def inject(target: str, rank: int) -> None:
    module_name, _, attr = target.partition(":")
    owner_name, _, method = attr.partition(".")
    module = importlib.import_module(module_name)
    owner = getattr(module, owner_name) if method else module
    name = method or attr
    original = getattr(owner, name)

    def failing(*args, **kwargs):
        if MPI.COMM_WORLD.Get_rank() == rank:
            raise RuntimeError("injected fault")
        return original(*args, **kwargs)

    setattr(owner, name, failing)


if __name__ == "__main__":
    target, rank, separator, *args = sys.argv[1:]
    assert separator == "--"
    inject(target, int(rank))
    sys.exit(main(args))
