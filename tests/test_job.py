"""End to end: the real CLI under mpiexec at 1, 2 and 3 ranks against the numpy oracle."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from mpicube.synth import write_run
from tests import oracle

RANKS = [1, 2, 3]
EXP = "xpptest01"
DET = "jf"
MPIEXEC = str(Path(sys.executable).parent / "mpiexec")


def job_args(indir: Path, outdir: Path, config: Path) -> list[str]:
    """Return the ``mpicube run`` arguments of the test experiment's run 1."""
    return [
        "run", "--experiment", EXP, "--run", "1", "--indir", str(indir),
        "--outdir", str(outdir), "--config", str(config),
    ]  # fmt: skip


def under_mpi(ranks: int, *python_args: str) -> subprocess.CompletedProcess:
    """Run ``python *python_args`` on ``ranks`` MPI ranks; return the completed process."""
    command = [MPIEXEC, "-n", str(ranks), sys.executable, *python_args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)


def run_cube(indir: Path, outdir: Path, config: Path, ranks: int, *extra: str):
    """Run the cube job under mpiexec; return the completed process."""
    return under_mpi(ranks, "-m", "mpicube", *job_args(indir, outdir, config), *extra)


def files_soon(directory: Path, seconds: float = 10.0) -> list[Path]:
    """Return the files of ``directory`` once none is a temporary cube (or after ``seconds``)."""
    deadline = time.monotonic() + seconds
    while True:
        found = sorted(directory.iterdir())
        if time.monotonic() > deadline or not any(p.suffix == ".partial" for p in found):
            return found
        time.sleep(0.1)


def cube_dir_listing(outdir: Path) -> list[str]:
    """Return the names in the output directory besides the summary directory."""
    return [p.name for p in outdir.iterdir() if p.name != "summary"]


def compare(path: Path, expected: dict) -> None:
    """Assert a cube file holds the expected datasets: counts exact, sums to 1e-6."""
    with h5py.File(path, "r") as cube:
        for name, want in expected.items():
            got = cube[name][()]
            assert got.shape == want.shape, name
            if want.dtype.kind in "iu":
                np.testing.assert_array_equal(got, want, err_msg=name)
            else:
                scale = max(1.0, float(np.abs(want).max(initial=0.0)))
                np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9 * scale, err_msg=name)


def make_run(tmp: Path, scan: str, seed: int, n_events: int = 160) -> tuple[Path, dict]:
    """Write a small synthetic run with one damaged frame; return (indir, its arrays)."""
    indir = tmp / "smalldata"
    path = write_run(
        indir / f"{EXP}_Run0001.h5",
        n_events=n_events,
        scan=scan,
        detectors={DET: "jungfrau-small"},
        seed=seed,
    )
    with h5py.File(path, "r+") as f:
        f[f"damage/{DET}"][7] = 0
        f[f"{DET}/raw"][7] = 0
    return indir, oracle.read_run(path)


# -- scenario 1: delay scan, laser on/off, a named filter, timetool, tiles -------------

DELAY_CONFIG = """
import numpy as np
def binBoundaries(run):
    return np.arange(-3.0, 11.0, 0.5)
filters = [
    ['lightStatus/xray', 0.5, 1.5, 'filter1'],
    ['ipm2/sum', 3e2, 6e4, 'filter1'],
    ['tt/AMPL', 0.0, 10.0, 'filter1'],
    ['evr/code_41', 0.5, 1.5, 'custom'],
]
laser = True
varList = ['ipm2/sum', 'ipm3/sum', 'diodeU/channels',
           {'source': 'jf', 'thresADU': 1.0, 'common_mode': None, 'image': 0, 'full': 1}]
"""


@pytest.fixture(scope="module")
def delay_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("delay")
    indir, run = make_run(tmp, "delay", seed=3)
    config = tmp / "cube_config_xpp.py"
    config.write_text(DELAY_CONFIG)
    edges = np.arange(-3.0, 11.0, 0.5)
    nominal = run["scan/lxt_ttc"] * 1e12
    on_delay = nominal + run["tt/ttCorr"]
    frames = oracle.calibrated_frames(run, DET, 1.0)
    common = [("lightStatus/xray", 0.5, 1.5), ("ipm2/sum", 3e2, 6e4)]
    tt = [("tt/AMPL", 0.0, 10.0)]
    custom = [("evr/code_41", 0.5, 1.5)]
    on, off = [("lightStatus/laser", 0.5, 1.5)], [("lightStatus/laser", -0.5, 0.5)]
    cubes = {
        "delay_on": (common + tt + on, on_delay),
        "delay_off": (common + off, nominal),
        "delay_on_custom": (custom + on, on_delay),
        "delay_off_custom": (custom + off, nominal),
    }
    expected = {}
    for name, (rows, values) in cubes.items():
        keep = oracle.select(run, rows)
        expected[f"Cube_{EXP}_Run0001_{name}.h5"] = oracle.expected_cube(
            run, keep, values, edges, ["ipm2/sum", "ipm3/sum", "diodeU/channels"], DET, frames
        )
    return indir, config, expected


@pytest.mark.parametrize("ranks", RANKS)
def test_delay_scan_with_laser_and_named_filter(delay_run, tmp_path, ranks):
    indir, config, expected = delay_run
    result = run_cube(indir, tmp_path, config, ranks)
    assert result.returncode == 0, result.stderr
    assert sorted(cube_dir_listing(tmp_path)) == sorted(expected)
    for name, want in expected.items():
        compare(tmp_path / name, want)
        assert want["nEntries"].sum() > 0 and (want["nEntries"] == 0).any()  # empty bins too
        assert want[f"{DET}_nEntries"].sum() < want["nEntries"].sum() or "off" in name
    with h5py.File(tmp_path / f"Cube_{EXP}_Run0001_delay_on.h5") as cube:
        assert cube.attrs["n_ranks"] == ranks
        assert cube.attrs["bin_mode"] == "delay"
        np.testing.assert_array_equal(cube["binVar_bins"][()], np.arange(-3.0, 11.0, 0.5)[:-1])
        np.testing.assert_array_equal(cube["delay"][()], cube["binVar"][()])
        assert "jf_cfg/ped" in cube and cube["jf_cfg/ped"].shape == (3, 2, 16, 32)


# -- scenario 2: explicit field, exact edges, NaN, image, an empty selection ----------

FIELD_CONFIG = """
binBoundaries = lambda run: [0.0, 1000.0, 5000.0, 20000.0, 60000.0]
binName = lambda run: 'ipm2/sum'
filters = [['evr/code_94', 0.5, 1.5, 'never'], ['ipm2/sum', 0.0, 1e9, 'never']]
varList = ['ipm3/sum', 'ipm2/sum', {'source': 'jf', 'image': True}]
"""


@pytest.fixture(scope="module")
def field_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("field")
    indir = tmp / "smalldata"
    path = indir / f"{EXP}_Run0001.h5"
    make_run(tmp, "step", seed=5)
    with h5py.File(path, "r+") as f:
        f["ipm2/sum"][:6] = [1000.0, 5000.0, 0.0, 60000.0, np.nan, 59999.0]
        f["evr/code_94"][:] = 0
    run = oracle.read_run(path)
    config = tmp / "cube_config_xpp.py"
    config.write_text(FIELD_CONFIG)
    edges = np.array([0.0, 1000.0, 5000.0, 20000.0, 60000.0])
    keep = np.ones(len(run["event_time"]), dtype=bool)
    frames = oracle.calibrated_frames(run, DET, None)
    want = oracle.expected_cube(
        run, keep, run["ipm2/sum"], edges, ["ipm3/sum", "ipm2/sum"], DET, frames, image=True
    )
    ipm2 = run["ipm2/sum"]
    counts = {
        "passes": int(np.sum((ipm2 > 0) & (ipm2 < 1e9))),
        "above": int(np.sum(ipm2 >= 60000.0)),
        "below": int(np.sum(ipm2 < 0.0)),
    }
    return indir, config, want, counts


@pytest.mark.parametrize("ranks", RANKS)
def test_field_bins_exact_edges_nan_image_and_empty_selection(field_run, tmp_path, ranks):
    indir, config, want, counts = field_run
    result = run_cube(indir, tmp_path, config, ranks)
    assert result.returncode == 0, result.stderr
    name = f"Cube_{EXP}_Run0001_ipm2__sum.h5"
    assert cube_dir_listing(tmp_path) == [name]
    compare(tmp_path / name, want)
    lines = result.stdout.splitlines()
    start = lines.index("did not select any event, quit now!")
    assert lines[start + 1].startswith(
        "getFilter: Cut 0.500000 < evr/code_94 < 1.500000 passes 0 events of 160, "
        "total passes up to now: 0"
    )
    assert lines[start + 2] == (
        "getFilter: Cut 0.000000 < ipm2/sum < 1000000000.000000 "
        f"passes {counts['passes']} events of 160, total passes up to now: 0"
    )
    with h5py.File(tmp_path / name) as cube:
        assert cube.attrs["events_below_bins"] == counts["below"]
        assert cube.attrs["events_above_bins"] == counts["above"] >= 1
        assert cube.attrs["events_nan_bin_value"] == 1
        assert cube["jf_data"].shape[1:] == cube["jf_cfg/mask"].shape


# -- scenario 3: unique scan positions, no laser split --------------------------------

SCAN_CONFIG = """
filters = [['ipm2/sum', 3e2, 6e4, 'filter1']]
varList = ['ipm2/sum', {'source': 'jf', 'thresADU': 0.5}]
"""


@pytest.fixture(scope="module")
def scan_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("scan")
    indir, run = make_run(tmp, "step", seed=7)
    config = tmp / "cube_config_xpp.py"
    config.write_text(SCAN_CONFIG)
    positions = np.unique(run["scan/gon_y"])
    edges = np.concatenate(([-np.inf], positions, [np.inf]))
    keep = oracle.select(run, [("ipm2/sum", 3e2, 6e4)])
    frames = oracle.calibrated_frames(run, DET, 0.5)
    want = oracle.expected_cube(run, keep, run["scan/gon_y"], edges, ["ipm2/sum"], DET, frames)
    return indir, config, want, positions


@pytest.mark.parametrize("ranks", RANKS)
def test_unique_scan_positions(scan_run, tmp_path, ranks):
    indir, config, want, positions = scan_run
    result = run_cube(indir, tmp_path, config, ranks)
    assert result.returncode == 0, result.stderr
    name = f"Cube_{EXP}_Run0001_gon_y.h5"
    compare(tmp_path / name, want)
    with h5py.File(tmp_path / name) as cube:
        labels = cube["binVar_bins"][()]
        assert np.isnan(labels[0]) and labels[1:].tolist() == positions.tolist()
        np.testing.assert_array_equal(cube["scan__gon_y"][()], cube["binVar"][()])


def test_existing_cube_is_kept_unless_forced(scan_run, tmp_path):
    indir, config, _, _ = scan_run
    assert run_cube(indir, tmp_path, config, 2).returncode == 0
    cube = tmp_path / f"Cube_{EXP}_Run0001_gon_y.h5"
    before = cube.stat().st_mtime_ns
    again = run_cube(indir, tmp_path, config, 2)
    assert again.returncode != 0
    assert "exists already (use --force" in again.stderr
    assert cube.stat().st_mtime_ns == before
    assert run_cube(indir, tmp_path, config, 2, "--force").returncode == 0
    assert cube.stat().st_mtime_ns != before
    assert cube_dir_listing(tmp_path) == [cube.name]


def test_more_ranks_than_events(tmp_path):
    indir = tmp_path / "smalldata"
    path = write_run(
        indir / f"{EXP}_Run0001.h5", n_events=2, n_steps=1, detectors={DET: "jungfrau-small"}
    )
    run = oracle.read_run(path)
    config = tmp_path / "cube_config_xpp.py"
    config.write_text(
        "binBoundaries = [0.0, 1e9]\nbinName = 'ipm2/sum'\nvarList = [{'source': 'jf'}]\n"
    )
    result = run_cube(indir, tmp_path / "out", config, 4)
    assert result.returncode == 0, result.stderr
    keep = np.ones(2, dtype=bool)
    frames = oracle.calibrated_frames(run, DET, None)
    edges = np.array([0.0, 1e9])
    want = oracle.expected_cube(run, keep, run["ipm2/sum"], edges, [], DET, frames)
    compare(tmp_path / "out" / f"Cube_{EXP}_Run0001_ipm2__sum.h5", want)
