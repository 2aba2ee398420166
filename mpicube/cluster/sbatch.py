"""The sbatch script of a cube job: fill the template, submit it, return the job id.

The template (``slurm/cube.sbatch`` in the source tree) is bash with ``@{name}`` fields.
Values that go on ``#SBATCH`` lines must be single words; values in the bash body are
shell-quoted here.
"""

from __future__ import annotations

import re
import shlex
import shutil
import string
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from mpicube.errors import CubeError

DEFAULT_TEMPLATE = Path(__file__).parents[2] / "slurm" / "cube.sbatch"
LAUNCHERS = ("auto", "mpiexec", "mpirun", "srun")
SBATCH_TIMEOUT_SECONDS = 60.0


class _Fields(string.Template):
    """``@{name}`` fields only, so that bash's own ``$`` and ``${…}`` stay as they are."""

    delimiter = "@"
    pattern = r"@(?:\{(?P<braced>[a-z_]+)\}|(?P<escaped>@(?=\{))|(?P<named>(?!))|(?P<invalid>(?!)))"


@dataclass
class BatchJob:
    """What a cube job's sbatch script needs; ``cube_args`` are ``mpicube run`` options."""

    experiment: str
    run: int
    cube_args: list[str]
    log_dir: Path
    partition: str
    account: str
    ntasks: int = 64
    nodes: str = "1-4"
    time: str = "02:00:00"
    launcher: str = "auto"
    python: str = sys.executable
    program: list[str] = field(default_factory=lambda: ["-m", "mpicube"])
    status_url: str = ""
    arp_job_id: str = ""

    def log_path(self) -> Path:
        """Return the job's log file: ``<log_dir>/cube_<exp>_Run<NNNN>_<jobid>.log``."""
        return self.log_dir / f"cube_{self.experiment}_Run{self.run:04d}_%j.log"


def launch_command(launcher: str, python: str) -> str:
    """Return the MPI launch words of ``launcher`` for a job using ``python``.

    ``auto`` is the ``mpiexec`` beside ``python`` when there is one (the ``mpich`` wheel's:
    mpi4py then uses that MPI, so its launcher must start the ranks), else the site's
    ``mpirun``. ``srun`` starts the ranks through Slurm's PMI-2.
    """
    beside = Path(python).parent / "mpiexec"
    if launcher == "auto":
        launcher = "mpiexec" if beside.exists() else "mpirun"
    if launcher == "srun":
        return "srun --mpi=pmi2"
    if launcher == "mpiexec":
        program = str(beside) if beside.exists() else "mpiexec"
        return f'{shlex.quote(program)} -n "${{SLURM_NTASKS}}"'
    if launcher == "mpirun":
        return 'mpirun -n "${SLURM_NTASKS}"'
    raise CubeError(f"unknown launcher {launcher!r}: use one of {', '.join(LAUNCHERS)}")


def render(template: str, job: BatchJob) -> str:
    """Return the sbatch script: ``template`` with every ``@{name}`` field of ``job`` filled."""
    directives = {
        "partition": job.partition,
        "account": job.account,
        "ntasks": str(job.ntasks),
        "nodes": job.nodes,
        "time": job.time,
        "log": str(job.log_path()),
        "experiment": job.experiment,
        "run": str(job.run),
    }
    for name, value in directives.items():
        if not re.fullmatch(r"[\w.,:/%+=@-]+", value):
            raise CubeError(f"sbatch {name} {value!r} must be one word without spaces or quotes")
    body = {
        "status_url": shlex.quote(job.status_url),
        "arp_job_id": shlex.quote(job.arp_job_id),
        "launch": launch_command(job.launcher, job.python),
        "python": shlex.quote(job.python),
        "program": shlex.join(job.program),
        "cube_args": shlex.join(job.cube_args),
    }
    try:
        return _Fields(template).substitute({**directives, **body})
    except KeyError as exc:
        raise CubeError(f"sbatch template: unknown field @{{{exc.args[0]}}}") from None


def submit(script: Path, sbatch: str = "sbatch") -> str:
    """Submit ``script`` with ``sbatch --parsable``; return the job id."""
    if shutil.which(sbatch) is None:
        raise CubeError(f"cannot submit the job: {sbatch} not found (is Slurm installed?)")
    try:
        result = subprocess.run(
            [sbatch, "--parsable", str(script)],
            capture_output=True,
            text=True,
            timeout=SBATCH_TIMEOUT_SECONDS,
        )
    except subprocess.TimeoutExpired:
        raise CubeError(f"sbatch did not answer in {SBATCH_TIMEOUT_SECONDS:g} s") from None
    if result.returncode != 0:
        message = result.stderr.strip().splitlines() or [f"exit code {result.returncode}"]
        raise CubeError(f"sbatch failed: {message[-1]}")
    job_id = result.stdout.strip().split(";")[0]
    if not job_id.isdigit():
        raise CubeError(f"sbatch printed no job id: {result.stdout.strip()!r}")
    return job_id
