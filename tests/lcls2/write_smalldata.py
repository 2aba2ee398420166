"""Rewrite a synthetic LCLS-I smalldata file as psana's own SmallData writer would write it.

Usage: mpiexec -n 3 python write_smalldata.py SRC.h5 OUT.h5 [--no-frames]

Rank 0 is the SmallData server, the others are clients that take turns over blocks of
five events, so rows land in arrival order. ``event_time`` becomes ``timestamp``; every
event whose index is 4 mod 11 lacks the ``evr`` group and every event 6 mod 13 lacks
``ipm3`` (psana fills -99999 and NaN). ``UserDataCfg`` is copied afterwards (the
facility's smalldata producer adds it the same way, outside SmallData).
"""

from __future__ import annotations

import sys

import h5py
import numpy as np
from mpi4py import MPI
from psana.smalldata import SmallData

MISSING_EVR = 4, 11  # events e with e % 11 == 4 have no evr/*
MISSING_IPM3 = 6, 13  # events e with e % 13 == 6 have no ipm3/sum
BLOCK = 5


def event_dict(f: h5py.File, e: int, frames: bool) -> dict:
    """Return the nested dict SmallData.event gets for event ``e`` of the source file."""
    ints = ["lightStatus/xray", "lightStatus/laser", "evr/code_41", "evr/code_94", "damage/jf"]
    floats = ["ipm2/sum", "ipm3/sum", "scan/lxt_ttc", "tt/ttCorr", "tt/AMPL", "enc/lasDelay"]
    flat = {k: int(f[k][e]) for k in ints} | {k: float(f[k][e]) for k in floats}
    flat["diodeU/channels"] = f["diodeU/channels"][e]
    if frames:
        flat["jf/raw"] = f["jf/raw"][e]
    if e % MISSING_EVR[1] == MISSING_EVR[0]:
        flat = {k: v for k, v in flat.items() if not k.startswith("evr/")}
    if e % MISSING_IPM3[1] == MISSING_IPM3[0]:
        del flat["ipm3/sum"]
    nested: dict = {}
    for key, value in flat.items():
        group, name = key.split("/")
        nested.setdefault(group, {})[name] = value
    return nested


def main() -> None:
    src, out = sys.argv[1], sys.argv[2]
    frames = "--no-frames" not in sys.argv
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    if size > 1:
        group = comm.Get_group()
        sd = SmallData(server_group=group.Incl([0]), client_group=group.Excl([0]))
    else:
        sd = SmallData(server_group=None, client_group=None)
    sd.setup_parms(filename=out, batch_size=4, cache_size=4)
    with h5py.File(src, "r") as f:
        times = f["event_time"][()]
        for e in range(len(times)):
            if size > 1 and (rank == 0 or (e // BLOCK) % (size - 1) != rank - 1):
                continue
            sd.event(int(times[e]), event_dict(f, e, frames))
    sd.done()
    comm.Barrier()
    if rank == 0:
        with h5py.File(src, "r") as f, h5py.File(out, "r+") as g:
            f.copy("UserDataCfg", g)
        assert not np.all(np.diff(h5py.File(out, "r")["timestamp"][()]) > 0) or size == 1


if __name__ == "__main__":
    main()
