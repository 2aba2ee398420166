"""Write a synthetic run's Jungfrau frames as an LCLS-II XTC2 run, with psana.dgramedit.

Usage: python write_xtc2.py SRC.h5 XTC_DIR EXPERIMENT RUN DETECTOR [DROP_EVENT ...]

Writes ``XTC_DIR/<exp>-r<NNNN>-s000-c000.xtc2`` (Configure, BeginRun, BeginStep,
Enable, one L1Accept per event at its ``event_time``, Disable, EndStep, EndRun) with one
``jungfrau`` segment per tile of ``<det>/raw``, then its small-data index
``XTC_DIR/smalldata/….smd.xtc2`` with psana's bundled ``smdwriter``. Events whose
``damage/<det>`` is 0, and the DROP_EVENT indices, carry no detector data.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import psana
from psana.dgramedit import AlgDef, DetectorDef, DgramEdit
from psana.psexp import TransitionId

BUFSIZE = 8 * 2**20
SMDWRITER = Path(psana.__file__).parents[1] / "bin" / "smdwriter"


class Writer:
    """Saves dgrams to an open file through one reused buffer."""

    def __init__(self, path: Path):
        self.file = open(path, "wb")  # noqa: SIM115 (closed in close())
        self.buffer = bytearray(BUFSIZE)

    def put(self, dgram: DgramEdit) -> None:
        dgram.save(memoryview(self.buffer))
        self.file.write(self.buffer[: dgram.size])

    def transition(self, config: DgramEdit, tid: int, ts: int) -> None:
        self.put(DgramEdit(transition_id=tid, config_dgramedit=config, ts=ts, bufsize=BUFSIZE))

    def close(self) -> None:
        self.file.close()


def main() -> None:
    src, xtc_dir, exp, run, det = sys.argv[1:6]
    drop = {int(e) for e in sys.argv[6:]}
    run_number = int(run)
    xtc_dir = Path(xtc_dir)
    (xtc_dir / "smalldata").mkdir(parents=True, exist_ok=True)
    name = f"{exp}-r{run_number:04d}-s000-c000"
    with h5py.File(src, "r") as f:
        times = f["event_time"][()]
        present = f[f"damage/{det}"][()] > 0
        raw = f[f"{det}/raw"]
        config = DgramEdit(transition_id=TransitionId.Configure, ts=1, bufsize=BUFSIZE)
        segments = [
            config.Detector(
                DetectorDef(det, "jungfrau", "synthetic-jungfrau"),
                AlgDef("raw", 0, 2, 0),
                {"raw": (np.uint16, 2)},
                nodeId=1,
                namesId=s,
                segment=s,
            )
            for s in range(raw.shape[1])
        ]
        runinfo = config.Detector(
            DetectorDef("runinfo", "runinfo", ""),
            AlgDef("runinfo", 0, 0, 1),
            {"expt": (str, 1), "runnum": (np.uint32, 0)},
            nodeId=1,
            namesId=len(segments),
        )
        out = Writer(xtc_dir / f"{name}.xtc2")
        out.put(config)
        begin_run = DgramEdit(
            transition_id=TransitionId.BeginRun, config_dgramedit=config, ts=2, bufsize=BUFSIZE
        )
        runinfo.runinfo.expt = exp
        runinfo.runinfo.runnum = run_number
        begin_run.adddata(runinfo.runinfo)
        out.put(begin_run)
        out.transition(config, TransitionId.BeginStep, 3)
        out.transition(config, TransitionId.Enable, 4)
        for e, ts in enumerate(times):
            event = DgramEdit(
                transition_id=TransitionId.L1Accept,
                config_dgramedit=config,
                ts=int(ts),
                bufsize=BUFSIZE,
            )
            if present[e] and e not in drop:
                frame = raw[e]
                for s, segment in enumerate(segments):
                    segment.raw.raw = frame[s]
                    event.adddata(segment.raw)
            out.put(event)
        last = int(times[-1])
        for i, tid in enumerate((TransitionId.Disable, TransitionId.EndStep, TransitionId.EndRun)):
            out.transition(config, tid, last + 1 + i)
        out.close()
    smd = xtc_dir / "smalldata" / f"{name}.smd.xtc2"
    subprocess.run(
        [str(SMDWRITER), "-f", str(xtc_dir / f"{name}.xtc2"), "-o", str(smd)],
        check=True,
        capture_output=True,
    )


if __name__ == "__main__":
    main()
