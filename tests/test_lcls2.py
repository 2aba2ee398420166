"""LCLS-II inputs written by psana itself: a SmallData file, and frames from an XTC2 run.

The smalldata file is written by ``psana.smalldata.SmallData`` under MPI (rows in arrival
order, -99999 and NaN fills for missing keys); the XTC2 run by ``psana.dgramedit`` and
psana's ``smdwriter``. Cubes made from them are checked against the numpy oracle
computed from the original synthetic arrays, with the missing values as NaN.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from mpicube.synth import write_run
from tests import oracle
from tests.test_job import EXP, MPIEXEC, compare, cube_dir_listing, run_cube

pytestmark = pytest.mark.skipif(  # psana itself runs in subprocesses only
    importlib.util.find_spec("psana") is None,
    reason="psana is not installed (pip install 'mpicube[psana]')",
)

HERE = Path(__file__).parent / "lcls2"
DET = "jf"
DROPPED = 10  # an event whose frame the XTC2 run lacks although damage/jf says delivered
CONFIG = """
import numpy as np
def binBoundaries(run):
    return np.arange(-3.0, 11.0, 0.5)
filters = [
    ['lightStatus/xray', 0.5, 1.5, 'filter1'],
    ['ipm2/sum', 3e2, 6e4, 'filter1'],
    ['evr/code_41', 0.5, 1.5, 'filter1'],
]
laser = True
varList = ['ipm2/sum', 'ipm3/sum', 'evr/code_94', 'diodeU/channels',
           {'source': 'jf', 'thresADU': 1.0}]
"""
FIELDS = ["ipm2/sum", "ipm3/sum", "evr/code_94", "diodeU/channels"]


def psana_env() -> dict:
    """Return the environment for psana's writers: psana's own MPI mode."""
    env = {k: v for k, v in os.environ.items() if k != "PS_PARALLEL"}
    return {**env, "PYTHONUNBUFFERED": "1"}


def expected_cubes(run: dict, xtc_frames: bool) -> dict:
    """Return the oracle's cubes of CONFIG; with ``xtc_frames``, event DROPPED has no frame."""
    n = len(run["event_time"])
    events = np.arange(n)
    run = dict(run)
    for key in ("evr/code_41", "evr/code_94"):
        run[key] = np.where(events % 11 == 4, np.nan, run[key].astype(np.float64))
    run["ipm3/sum"] = np.where(events % 13 == 6, np.nan, run["ipm3/sum"])
    if xtc_frames:
        run[f"damage/{DET}"] = np.where(events == DROPPED, 0, run[f"damage/{DET}"])
    edges = np.arange(-3.0, 11.0, 0.5)
    nominal = run["scan/lxt_ttc"] * 1e12
    frames = oracle.calibrated_frames(run, DET, 1.0)
    common = [("lightStatus/xray", 0.5, 1.5), ("ipm2/sum", 3e2, 6e4), ("evr/code_41", 0.5, 1.5)]
    cubes = {
        "delay_on": (common + [("lightStatus/laser", 0.5, 1.5)], nominal + run["tt/ttCorr"]),
        "delay_off": (common + [("lightStatus/laser", -0.5, 0.5)], nominal),
    }
    return {
        f"Cube_{EXP}_Run0001_{name}.h5": oracle.expected_cube(
            run, oracle.select(run, rows), values, edges, FIELDS, DET, frames
        )
        for name, (rows, values) in cubes.items()
    }


@pytest.fixture(scope="module")
def lcls2_run(tmp_path_factory):
    """Write the synthetic run, its psana SmallData file and its XTC2 run."""
    tmp = tmp_path_factory.mktemp("lcls2")
    source = write_run(
        tmp / "source.h5", n_events=90, scan="delay", detectors={DET: "jungfrau-small"}, seed=11
    )
    indir = tmp / "smalldata"
    indir.mkdir()
    smalldata = indir / f"{EXP}_Run0001.h5"
    write = [sys.executable, str(HERE / "write_smalldata.py"), str(source), str(smalldata)]
    done = subprocess.run(
        [MPIEXEC, "-n", "3", *write], capture_output=True, text=True, env=psana_env(), timeout=120
    )
    assert done.returncode == 0, done.stderr
    xtc = tmp / "xtc"
    write = [sys.executable, str(HERE / "write_xtc2.py"), str(source), str(xtc), EXP, "1", DET]
    done = subprocess.run(
        [*write, str(DROPPED)], capture_output=True, text=True, env=psana_env(), timeout=120
    )
    assert done.returncode == 0, done.stderr
    config = tmp / "cube_config_xpp.py"
    config.write_text(CONFIG)
    return indir, xtc, config, oracle.read_run(source)


def test_psana_smalldata_file_has_the_lcls2_layout(lcls2_run):
    indir, _, _, run = lcls2_run
    with h5py.File(indir / f"{EXP}_Run0001.h5", "r") as f:
        times = f["timestamp"][()]
        assert "event_time" not in f and f["timestamp"].is_virtual  # joined from the parts
        assert np.any(np.diff(times) < 0)  # arrival order, not time order
        np.testing.assert_array_equal(np.sort(times).astype(np.uint64), run["event_time"])
        order = np.argsort(times)
        code = f["evr/code_41"][()][order]
        assert f["evr/code_41"].dtype == np.int64
        assert np.all((code == -99999) == (np.arange(90) % 11 == 4))
        assert np.isnan(f["ipm3/sum"][()][order][6])


@pytest.mark.parametrize("ranks", [1, 3])
def test_cube_of_a_psana_smalldata_file(lcls2_run, tmp_path, ranks):
    indir, _, config, run = lcls2_run
    result = run_cube(indir, tmp_path, config, ranks)
    assert result.returncode == 0, result.stderr
    expected = expected_cubes(run, xtc_frames=False)
    assert sorted(cube_dir_listing(tmp_path)) == sorted(expected)
    for name, want in expected.items():
        compare(tmp_path / name, want)
        assert want["nEntries"].sum() >= 5


@pytest.mark.parametrize("ranks", [1, 3])
def test_frames_from_xtc2_through_psana(lcls2_run, tmp_path, ranks):
    indir, xtc, config, run = lcls2_run
    result = run_cube(indir, tmp_path, config, ranks, "--frames", f"xtc2:{xtc}")
    assert result.returncode == 0, result.stderr
    expected = expected_cubes(run, xtc_frames=True)
    for name, want in expected.items():
        compare(tmp_path / name, want)
    assert f"{DET}: 1 selected events had no frame in the frame source" in result.stdout


def test_each_rank_reads_only_its_events_from_xtc2(lcls2_run):
    indir, xtc, _, _ = lcls2_run
    script = f"""
import numpy as np
from mpicube.smalldata import SmallData
from mpicube.sources.psana_xtc import XtcFrames
sd = SmallData({str(indir / f"{EXP}_Run0001.h5")!r})
times = sd.read_times()
frames = XtcFrames({str(xtc)!r}, {EXP!r}, 1, {DET!r}, times)
share = times[[3, 4, 5, 40, 88]]
print(sorted(t for t, _ in frames._raw_frames(share)) == sorted(int(t) for t in share))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "True"


def test_xtc2_frames_without_psana_fail_with_one_line(lcls2_run, tmp_path):
    indir, xtc, config, _ = lcls2_run
    fake = tmp_path / "nopsana" / "psana"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named psana')\n")
    env = {**os.environ, "PYTHONPATH": str(fake.parent)}
    command = [sys.executable, "-m", "mpicube", "run", "--experiment", EXP, "--run", "1"]
    command += ["--indir", str(indir), "--outdir", str(tmp_path / "out"), "--config", str(config)]
    done = subprocess.run(
        [*command, "--frames", f"xtc2:{xtc}"], capture_output=True, text=True, env=env
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "mpicube: error: --frames xtc2 needs psana, which cannot be imported "
        "(No module named psana): pip install 'mpicube[psana]'"
    ]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
