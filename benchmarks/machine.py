"""What this machine charges for memory the job has not used before, measured in the run.

A cube job touches new memory twice: its accumulators and the page cache of the cube it
writes (0.8 GB each for 100 bins of a Jungfrau 1M). On a virtual machine whose balloon
device hands freed memory back to the host, the first touch of such memory is slow, and
writes into one file are serialized by the file system's lock on the file whatever the
number of writers. These two numbers show how much of the job's fixed cost is that.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROW_BYTES = 8 * 2**20  # one bin of a Jungfrau 1M, float64
IDLE_S = 10.0  # memory freed this long ago counts as new (a balloon device reclaims it)

_TOUCH = """
import json, sys, time
import numpy as np
n = int(sys.argv[1]) // 8
started = time.perf_counter()
a = np.ones(n)
first = time.perf_counter() - started
del a
started = time.perf_counter()
a = np.ones(n)
again = time.perf_counter() - started
print(json.dumps([first, again]))
"""

_WRITE = """
import json, os, sys, time
import numpy as np
path, part, parts, n_rows, start_at = sys.argv[1:]
part, parts, n_rows = int(part), int(parts), int(n_rows)
row = np.random.default_rng(part).random({row} // 8)
time.sleep(max(0.0, float(start_at) - time.time()))
fd = os.open(path, os.O_WRONLY)
for r in range(part, n_rows, parts):
    os.pwrite(fd, row, r * {row})
os.close(fd)
print(json.dumps(time.time() - float(start_at)))
""".replace("{row}", str(ROW_BYTES))


def touch_gb_per_s(n_bytes: int = 2**30) -> dict[str, float]:
    """Return GB/s of filling ``n_bytes`` of memory the process never had (``first``) and
    of filling the same amount again right after freeing it (``reused``)."""
    time.sleep(IDLE_S)
    out = subprocess.run(
        [sys.executable, "-c", _TOUCH, str(n_bytes)], capture_output=True, text=True, check=True
    )
    first, again = json.loads(out.stdout)
    return {"first": n_bytes / first / 1e9, "reused": n_bytes / again / 1e9}


def cube_write_seconds(workdir: Path, n_rows: int, n_writers: int) -> float:
    """Return the seconds ``n_writers`` processes take, together, to write ``n_rows`` rows
    of 8 MB (a 100-bin Jungfrau 1M cube) into one new file, each its share of the rows."""
    time.sleep(IDLE_S)
    path = workdir / "machine-write.bin"
    path.write_bytes(b"")
    start_at = time.time() + 1.0  # every writer starts its clock at the same moment
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _WRITE,
                str(path),
                str(k),
                str(n_writers),
                str(n_rows),
                str(start_at),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for k in range(n_writers)
    ]
    seconds = max(json.loads(p.communicate()[0]) for p in procs)
    path.unlink()
    return seconds
