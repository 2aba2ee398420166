"""On a real Slurm: the run-end producer submits the project's sbatch template for a
synthetic run; the job makes the cubes and POSTs Done, or fails fast and POSTs Failed.

Needs a running cluster (``slurm/ci/start_slurm.sh`` starts one on localhost, as
``.ci/run`` does); skipped, saying why, when none answers.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests import oracle
from tests.http_sink import Sink
from tests.test_failures import CONFIG, EDGES, HARNESS
from tests.test_job import DET, EXP, compare, make_run

PRODUCER = str(Path(__file__).parents[1] / "producers" / "submit_cube.py")
JOB_SECONDS = 180.0  # the longest a job may take here (its time limit is 5 minutes)


def slurm_missing() -> str | None:
    """Return why no Slurm cluster can take jobs here, or None if one can."""
    if shutil.which("sbatch") is None:
        return "no Slurm here (sbatch not found); slurm/ci/start_slurm.sh starts one"
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"scontrol ping failed: {exc}"
    if ping.returncode != 0 or "UP" not in ping.stdout:
        said = (ping.stdout.strip() or ping.stderr.strip() or "no answer").splitlines()[0]
        return f"no Slurm controller answers ({said}); slurm/ci/start_slurm.sh starts one"
    return None


MISSING = slurm_missing()
pytestmark = [pytest.mark.slurm, pytest.mark.skipif(MISSING is not None, reason=str(MISSING))]


def default_partition() -> str:
    """Return the cluster's default partition (the one ``sinfo`` marks with ``*``)."""
    names = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True).stdout
    return next(n.rstrip("*") for n in names.split() if n.endswith("*"))


def wait_for_job(job_id: str, timeout: float = JOB_SECONDS) -> dict[str, str]:
    """Poll ``squeue`` until the job has left the queue; return its ``scontrol`` fields."""
    deadline = time.monotonic() + timeout
    while subprocess.run(["squeue", "-h", "-j", job_id], capture_output=True, text=True).stdout:
        if time.monotonic() > deadline:
            subprocess.run(["scancel", job_id])
            pytest.fail(f"Slurm job {job_id} still queued or running after {timeout:g} s")
        time.sleep(0.5)
    show = subprocess.run(
        ["scontrol", "show", "job", job_id, "-o"], capture_output=True, text=True, check=True
    )
    return dict(word.split("=", 1) for word in show.stdout.split() if "=" in word)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("slurm")
    indir, arrays = make_run(tmp, "delay", seed=5, n_events=60)
    config = tmp / "cube_config_xpp.py"
    config.write_text(CONFIG)
    return indir, config, arrays


def submit(indir: Path, outdir: Path, config: Path, url: str, *extra: str) -> str:
    """Run the producer as the run processor would, for run 1; return the printed job id."""
    env = {
        **os.environ,
        "EXPERIMENT": EXP,
        "RUN_NUM": "1",
        "ARP_JOB_ID": "arp-77",
        "JID_UPDATE_COUNTERS": url,
    }
    args = ["--indir", str(indir), "--outdir", str(outdir), "--config", str(config),
            "--partition", default_partition(), "--ntasks", "2", "--time", "5",
            "--settle", "0.5", *extra]  # fmt: skip
    result = subprocess.run(
        [sys.executable, PRODUCER, *args], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    job_id = result.stdout.strip()
    assert job_id.isdigit(), result.stdout
    return job_id


def status(value: str) -> list[dict]:
    return [{"key": "<b>Cube </b>", "value": value}]


@pytest.mark.parametrize("launcher", ["mpiexec", "srun"])
def test_the_job_makes_the_cubes_and_posts_done(small_run, tmp_path, launcher):
    indir, config, arrays = small_run
    outdir = tmp_path / "cube"
    with Sink() as sink:
        job_id = submit(indir, outdir, config, sink.url, "--launcher", launcher)
        job = wait_for_job(job_id)
    assert (job["JobState"], job["ExitCode"]) == ("COMPLETED", "0:0")
    assert sink.bodies == [status(f"Submitted: Slurm job {job_id}"), status("Done")]

    log = (outdir / "logs" / f"cube_{EXP}_Run0001_{job_id}.log").read_text()
    assert f"mpicube: Slurm job {job_id}, experiment {EXP} run 1, ARP job arp-77, 2 ranks" in log
    assert "done in" in log and "on 2 ranks" in log
    assert log.rstrip().splitlines()[-1].startswith("mpicube: exit code 0,")

    frames = oracle.calibrated_frames(arrays, DET, None)
    nominal = arrays["scan/lxt_ttc"] * 1e12
    cubes = {
        "delay_on": ([("lightStatus/laser", 0.5, 1.5)], nominal + arrays["tt/ttCorr"]),
        "delay_off": ([("lightStatus/laser", -0.5, 0.5)], nominal),
    }
    assert sorted(p.name for p in outdir.glob("Cube_*.h5")) == sorted(
        f"Cube_{EXP}_Run0001_{name}.h5" for name in cubes
    )
    for name, (rows, values) in cubes.items():
        keep = oracle.select(arrays, rows)
        want = oracle.expected_cube(
            arrays, keep, values, np.array(EDGES), ["ipm2/sum"], DET, frames
        )
        assert want["nEntries"].sum() > 0
        compare(outdir / f"Cube_{EXP}_Run0001_{name}.h5", want)


@pytest.mark.parametrize(
    "launcher, target",
    [
        ("mpiexec", "mpicube.accumulate:accumulate_frames"),  # agreed: every rank exits 1
        ("srun", "mpicube.parallel:Parallel.reduce_sum"),  # inside a collective: MPI Abort
    ],
)
def test_a_failing_rank_ends_the_job_and_posts_failed(small_run, tmp_path, launcher, target):
    indir, config, _ = small_run
    outdir = tmp_path / "cube"
    program = f"{HARNESS} {target} 1 --"
    started = time.monotonic()
    with Sink() as sink:
        job_id = submit(indir, outdir, config, sink.url, "--launcher", launcher,
                        "--program", program)  # fmt: skip
        job = wait_for_job(job_id)
    seconds = time.monotonic() - started
    assert job["JobState"] == "FAILED" and job["ExitCode"] != "0:0", job
    assert seconds < 60  # ended by the failure, not by the 5-minute time limit
    assert sink.bodies == [
        status(f"Submitted: Slurm job {job_id}"),
        status("Failed: rank 1: RuntimeError: injected fault"),
    ]
    log = (outdir / "logs" / f"cube_{EXP}_Run0001_{job_id}.log").read_text()
    assert "RuntimeError: injected fault" in log
    assert not list(outdir.glob("Cube_*"))
