"""Bad input: a clear one-line error naming the file, field or config line, a non-zero exit
on every rank, no traceback wall, and nothing written."""

from __future__ import annotations

import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

from mpicube.synth import write_run
from tests.test_job import EXP, MPIEXEC, files_soon, job_args

GOOD_CONFIG = """
binBoundaries = [-100.0, 0.0, 100.0]
filters = [['ipm2/sum', 0.0, 1e9, 'filter1']]
varList = ['ipm2/sum', {'source': 'jf', 'image': True}]
"""


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    path = tmp_path_factory.mktemp("pristine") / f"{EXP}_Run0001.h5"
    return write_run(path, n_events=40, detectors={"jf": "jungfrau-small"}, n_steps=4)


@pytest.fixture
def case(tmp_path, pristine):
    indir = tmp_path / "smalldata"
    indir.mkdir()
    run = indir / pristine.name
    shutil.copy(pristine, run)
    config = tmp_path / "cube_config_xpp.py"
    config.write_text(GOOD_CONFIG)
    return indir, run, config, tmp_path / "cube"


def run_job(indir, outdir, config, ranks=2, file_size_limit=None):
    """Run the job; with ``file_size_limit``, writing past that many bytes fails (EFBIG),
    as on a full disk (the limit is set after MPI started, so MPI's own files are spared)."""
    limit = ""
    if file_size_limit:
        limit = (
            "import resource, signal; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
            f"resource.setrlimit(resource.RLIMIT_FSIZE, ({file_size_limit}, {file_size_limit})); "
        )
    code = f"from mpi4py import MPI; {limit}from mpicube.cli import main; raise SystemExit(main())"
    command = [MPIEXEC, "-n", str(ranks), sys.executable, "-c", code]
    return subprocess.run(
        [*command, *job_args(indir, outdir, config)], capture_output=True, text=True, timeout=120
    )


def edit(run, change):
    with h5py.File(run, "r+") as f:
        change(f)


def delete(path):
    return lambda f: f.__delitem__(path)


def replace(path, data):
    def change(f):
        del f[path]
        f[path] = data

    return change


BAD_INPUTS = {
    "missing smalldata file": (lambda c: c[1].unlink(), "smalldata file not found"),
    "corrupt HDF5": (lambda c: c[1].write_bytes(b"\x89HDF junk" * 100), "cannot open as HDF5"),
    "truncated HDF5": (
        lambda c: c[1].write_bytes(c[1].read_bytes()[: c[1].stat().st_size // 2]),
        "xpptest01_Run0001.h5",
    ),
    "field shorter than the run": (
        lambda c: edit(c[1], replace("ipm2/sum", np.ones(30))),
        "field 'ipm2/sum' has 30 events, the run has 40",
    ),
    "frames but no constants": (
        lambda c: edit(c[1], delete("UserDataCfg/jf")),
        "detector 'jf' has frames but no UserDataCfg/jf",
    ),
    "constants of the wrong shape": (
        lambda c: edit(c[1], replace("UserDataCfg/jf/ped", np.zeros((3, 2, 16, 31), "f4"))),
        "jf",
    ),
    "geometry with negative indices": (
        lambda c: edit(c[1], replace("UserDataCfg/jf/ix", -np.ones((2, 16, 32), "i4"))),
        "jf",
    ),
    "geometry far out of range": (
        lambda c: edit(c[1], replace("UserDataCfg/jf/iy", np.full((2, 16, 32), 10**6, "i4"))),
        "jf: geometry out of range",
    ),
    "filter on a missing field": (
        lambda c: c[2].write_text(GOOD_CONFIG.replace("'ipm2/sum', 0.0", "'ipm2/summ', 0.0")),
        "no field 'ipm2/summ', did you mean 'ipm2/sum'?",
    ),
    "non-monotonic bin edges": (
        lambda c: c[2].write_text(GOOD_CONFIG.replace("-100.0, 0.0", "0.0, -100.0")),
        "cube_config_xpp.py:2: binBoundaries: bin edges must be strictly increasing",
    ),
    "NaN bin edge": (
        lambda c: c[2].write_text(GOOD_CONFIG.replace("-100.0, 0.0", "float('nan'), 0.0")),
        "cube_config_xpp.py:2: binBoundaries: bin edges must be finite",
    ),
    "bin field all NaN": (
        lambda c: edit(c[1], replace("scan/lxt_ttc", np.full(40, np.nan))),
        "bin variable delay (scan/lxt_ttc + tt/ttCorr) is NaN for every event",
    ),
    "zero events": (
        lambda c: h5py.File(c[1], "w").create_dataset("event_time", (0,), "u8").file.close(),
        "the run has no events",
    ),
    "binBoundaries raises": (
        lambda c: c[2].write_text(
            "varList = ['ipm2/sum']\ndef binBoundaries(run):\n    raise ValueError('no')\n"
        ),
        "cube_config_xpp.py:3: binBoundaries(1) failed: ValueError: no",
    ),
    "output directory not writable": (
        lambda c: c[3].write_text("a file where the output directory should be"),
        "cannot write the cube there",
    ),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_is_one_clear_line_and_writes_nothing(case, name):
    spoil, message = BAD_INPUTS[name]
    spoil(case)
    indir, _, config, outdir = case
    before = sorted(outdir.iterdir()) if outdir.is_dir() else None
    result = run_job(indir, outdir, config)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("mpicube: error:")]
    assert len(errors) == 1, result.stderr  # said once (by rank 0), not once per rank
    assert message in errors[0]
    assert "Traceback" not in result.stderr
    after = sorted(outdir.iterdir()) if outdir.is_dir() else None
    assert after == before


def test_a_full_disk_during_the_write_leaves_nothing(case):
    indir, _, config, outdir = case
    result = run_job(indir, outdir, config, file_size_limit=40_000)
    assert result.returncode != 0
    # HDF5 may crash on a failed write; either way the watcher removes the partial cube
    assert "cannot write" in result.stderr or "File too large" in result.stderr
    assert files_soon(outdir) == []


@pytest.fixture
def small_disk(tmp_path):
    """Return a 64 kB file system (tmpfs), unmounted afterwards; skip where mount is refused."""
    mount_point = tmp_path / "small_disk"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount_point)])
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=True)


def test_a_disk_too_small_for_the_cubes_is_refused_before_writing(case, small_disk):
    indir, _, config, _ = case
    result = run_job(indir, small_disk / "cube", config)
    assert result.returncode != 0
    assert "not enough disk space for the cubes" in result.stderr
    assert list(small_disk.iterdir()) in ([], [small_disk / "cube"])


def test_a_smalldata_file_still_being_written_is_refused(case):
    indir, run, config, outdir = case
    writer = subprocess.Popen(
        [sys.executable, "-c", f"import h5py, sys; f = h5py.File({str(run)!r}, 'a'); "
         "print('open', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert writer.stdout.readline() == "open\n"
        result = run_job(indir, outdir, config)
    finally:
        writer.communicate("")
    assert result.returncode != 0
    assert "still being written" in result.stderr and str(run) in result.stderr
    assert not outdir.exists()
    assert run_job(indir, outdir, config).returncode == 0  # complete now: it cubes
