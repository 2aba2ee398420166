"""A failing rank ends the whole job promptly, with its reason, and leaves no cube behind."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest

from mpicube.synth import write_run
from tests.test_job import EXP, MPIEXEC, files_soon, job_args, run_cube, under_mpi

HARNESS = str(Path(__file__).with_name("fail_on_rank.py"))
EDGES = [-3.0 + 0.5 * i for i in range(29)]  # delay bins fine enough that ranks hold bins alone
CONFIG = f"""
binBoundaries = lambda run: {EDGES}
laser = True
varList = ['ipm2/sum', {{'source': 'jf'}}]
"""


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fail")
    indir = tmp / "smalldata"
    write_run(indir / f"{EXP}_Run0001.h5", n_events=60, detectors={"jf": "jungfrau-small"})
    config = tmp / "cube_config_xpp.py"
    config.write_text(CONFIG)
    return indir, config


def run_with_fault(indir, outdir, config, target: str, rank: int, kind: str = "error"):
    """Run the job on 3 ranks with ``target`` failing on ``rank`` as ``kind`` says;
    return (process, seconds taken)."""
    started = time.monotonic()
    args = job_args(indir, outdir, config)
    result = under_mpi(3, HARNESS, target, str(rank), kind, "--", *args)
    return result, time.monotonic() - started


@pytest.mark.parametrize(
    "target, rank",
    [
        ("mpicube.accumulate:accumulate_frames", 1),  # reading/accumulating, not on rank 0
        ("mpicube.accumulate:scalar_sums", 2),
        ("mpicube.bin_writer:BinWriter.write", 0),  # rank 0 fails while writing a bin
        ("mpicube.bin_writer:BinWriter.write", 1),  # so does another rank
        ("mpicube.writer:CubeFile.commit", 0),
    ],
)
def test_a_failing_rank_fails_the_job_and_leaves_nothing(small_run, tmp_path, target, rank):
    indir, config = small_run
    result, seconds = run_with_fault(indir, tmp_path, config, target, rank)
    assert result.returncode != 0
    assert "RuntimeError: injected fault" in result.stderr  # the traceback of the failing rank
    assert f"mpicube: error: rank {rank}: RuntimeError: injected fault" in result.stderr
    assert seconds < 60
    assert list(tmp_path.iterdir()) == []  # no cube, no hidden partial file


def test_a_failure_inside_a_collective_step_aborts_the_job(small_run, tmp_path):
    indir, config = small_run
    result, seconds = run_with_fault(
        indir, tmp_path, config, "mpicube.parallel:Parallel.reduce_sum", 1
    )
    assert result.returncode != 0
    assert "RuntimeError: injected fault" in result.stderr
    assert seconds < 60
    assert files_soon(tmp_path) == []  # rank 0 was killed: its watcher removed the partials


@pytest.mark.parametrize("rank", [0, 2])
def test_a_rank_killed_by_a_signal_ends_the_job_and_leaves_nothing(small_run, tmp_path, rank):
    indir, config = small_run
    target = "mpicube.bin_writer:BinWriter.write" if rank == 0 else "mpicube.accumulate:scalar_sums"
    result, seconds = run_with_fault(indir, tmp_path, config, target, rank, "kill")
    assert result.returncode != 0
    assert "signal 9" in result.stdout + result.stderr  # the launcher names the signal
    assert seconds < 60
    assert files_soon(tmp_path) == []


def test_a_rank_out_of_memory_fails_the_job_with_the_reason(small_run, tmp_path):
    indir, config = small_run
    target = "mpicube.accumulate:accumulate_frames"
    result, seconds = run_with_fault(indir, tmp_path, config, target, 1, "memory")
    assert result.returncode != 0
    assert "mpicube: error: rank 1: MemoryError" in result.stderr
    assert seconds < 60
    assert files_soon(tmp_path) == []


def test_without_a_fault_the_same_job_makes_both_cubes(small_run, tmp_path):
    indir, config = small_run
    assert run_cube(indir, tmp_path, config, 3).returncode == 0
    assert len(list(tmp_path.glob("Cube_*.h5"))) == 2


@pytest.mark.parametrize("force", [False, True])
def test_two_jobs_on_the_same_run_do_not_corrupt_the_cubes(small_run, tmp_path, force):
    indir, config = small_run
    extra = ["--force"] if force else []
    command = [MPIEXEC, "-n", "2", sys.executable, "-m", "mpicube"]
    command += [*job_args(indir, tmp_path, config), "--no-summary", *extra]
    jobs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)]
    jobs.append(
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    )
    outcomes = [(job.wait(timeout=120), job.communicate()[1]) for job in jobs]
    codes = sorted(code for code, _ in outcomes)
    if force:
        assert codes == [0, 0]
    else:  # one wins; the other fails, saying why, and leaves the winner's cubes alone
        assert codes[0] == 0 and codes[1] != 0
        assert any("exists already (use --force" in err for _, err in outcomes)
    assert sorted(p.name for p in files_soon(tmp_path)) == sorted(
        f"Cube_{EXP}_Run0001_delay_{state}.h5" for state in ("on", "off")
    )
    for cube in tmp_path.iterdir():
        with h5py.File(cube) as f:  # complete and readable, counts consistent
            assert f["nEntries"][()].sum() == f.attrs["events_binned"]
            assert f["jf_nEntries"][()].sum() <= f["nEntries"][()].sum()
