"""A failing rank ends the whole job promptly, with its reason, and leaves no cube behind."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mpicube.synth import write_run
from tests.test_job import EXP, files_soon, job_args, run_cube, under_mpi

HARNESS = str(Path(__file__).with_name("fail_on_rank.py"))
CONFIG = """
binBoundaries = lambda run: [-100.0, 0.0, 100.0]
laser = True
varList = ['ipm2/sum', {'source': 'jf'}]
"""


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fail")
    indir = tmp / "smalldata"
    write_run(indir / f"{EXP}_Run0001.h5", n_events=60, detectors={"jf": "jungfrau-small"})
    config = tmp / "cube_config_xpp.py"
    config.write_text(CONFIG)
    return indir, config


def run_with_fault(indir, outdir, config, target: str, rank: int, ranks: int = 3):
    """Run the job with ``target`` failing on ``rank``; return (process, seconds taken)."""
    started = time.monotonic()
    args = job_args(indir, outdir, config)
    result = under_mpi(ranks, HARNESS, target, str(rank), "--", *args)
    return result, time.monotonic() - started


@pytest.mark.parametrize(
    "target, rank",
    [
        ("mpicube.accumulate:accumulate_frames", 1),  # reading/accumulating, not on rank 0
        ("mpicube.accumulate:scalar_sums", 2),
        ("mpicube.writer:CubeFile.write_bin", 0),  # rank 0 fails while writing
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


def test_without_a_fault_the_same_job_makes_both_cubes(small_run, tmp_path):
    indir, config = small_run
    assert run_cube(indir, tmp_path, config, 3).returncode == 0
    assert len(list(tmp_path.glob("Cube_*.h5"))) == 2
