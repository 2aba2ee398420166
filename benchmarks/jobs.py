"""Run the mpicube job under ``mpiexec`` and read its timings from the run log."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

EXPERIMENT = "xpplx1234"

CONFIG = """\
import numpy as np
def binBoundaries(run):
    return np.linspace(-2.5, 10.5, {n_bins} + 1)
filters = [['lightStatus/xray', 0.5, 1.5, 'filter1']]
laser = False
varList = ['ipm2/sum', {{'source': '{detector}', 'full': 1, 'image': 0, 'thresADU': 6.5,
                         'common_mode': 0}}]
"""


@dataclass(frozen=True)
class JobResult:
    """What one job run measured: frames summed, wall times (s) and peak RSS per rank (GB)."""

    ranks: int
    frames: int
    launch_to_end: float  # from starting mpiexec to its exit
    job: float  # run_job's own "done in" time (after imports)
    first_frames: float  # from starting mpiexec to rank 0's first calibrated frames
    phases: dict[str, float]
    peak_gb: list[float]

    @property
    def rate(self) -> float:
        """Return frames per second over the job's wall time (plan to file closed)."""
        return self.frames / self.job

    @property
    def merge_write_share(self) -> float:
        """Return the fraction of the job's wall time spent in the Reduce and the write."""
        return (self.phases["merge"] + self.phases["write"]) / self.job


def write_config(workdir: Path, detector: str, n_bins: int) -> Path:
    """Write a cube config binning on delay into ``n_bins`` bins; return its path."""
    path = workdir / f"cube_config_{detector}_{n_bins}.py"
    path.write_text(CONFIG.format(n_bins=n_bins, detector=detector))
    return path


def run_job(
    run_file: Path, config: Path, ranks: int, outdir: Path, budget_gb: float = 2.0
) -> JobResult:
    """Cube ``run_file`` on ``ranks`` ranks (no summary page), delete the cube, and return
    the timings read from the job's log; raise RuntimeError if the job fails."""
    mpiexec = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or "mpiexec"
    run = int(re.search(r"Run(\d+)", run_file.name).group(1))  # type: ignore[union-attr]
    command = [
        mpiexec, "-n", str(ranks), sys.executable, "-m", "mpicube", "run",
        "--experiment", EXPERIMENT, "--run", str(run), "--indir", str(run_file.parent),
        "--outdir", str(outdir), "--config", str(config), "--no-summary", "--force",
        "--memory-budget", str(budget_gb),
    ]  # fmt: skip
    started = time.perf_counter()
    first = float("nan")
    lines = []
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as p:
        assert p.stdout is not None
        for line in p.stdout:
            if first != first and line.startswith("first frames calibrated"):
                first = time.perf_counter() - started
            lines.append(line.rstrip("\n"))
    ended = time.perf_counter() - started
    shutil.rmtree(outdir, ignore_errors=True)
    if p.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n" + "\n".join(lines[-20:]))
    return _parse(lines, ranks, ended, first)


def _parse(lines: list[str], ranks: int, ended: float, first: float) -> JobResult:
    """Return the JobResult of a job's log lines."""
    text = "\n".join(lines)
    frames = sum(int(n) for n in re.findall(r"^  \S+: (\d+) frames to sum", text, re.M))
    phases_line = re.search(r"^time per phase: (.*)$", text, re.M)
    done = re.search(
        r"^done in ([\d.]+) s on \d+ ranks; peak memory per rank ([\d. ]+) GB", text, re.M
    )
    if phases_line is None or done is None:
        raise RuntimeError("job log without timings:\n" + text)
    phases = {
        name: float(sec) for name, sec in re.findall(r"(\w+) ([\d.]+) s", phases_line.group(1))
    }
    peaks = [float(x) for x in done.group(2).split()]
    return JobResult(ranks, frames, ended, float(done.group(1)), first, phases, peaks)
