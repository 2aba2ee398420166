"""open_cube / open_cubes (xarray) and ``mpicube show``, against the cube files read with h5py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import mpicube
from mpicube.errors import CubeError
from mpicube.synth import write_run

EXP = "xpptest01"
CONFIG = """
import numpy as np
def binBoundaries(run):
    return np.arange({start}, 10.0, 1.0)
filters = [['ipm2/sum', 3e2, 6e4, 'filter1']]
laser = True
varList = ['ipm2/sum', 'diodeU/channels', {{'source': 'jf', 'image': True}}]
"""


def make_cubes(tmp: Path, run: int, start: float = -2.0) -> Path:
    """Write synthetic run ``run`` and cube it on one rank; return the cube directory."""
    indir, outdir = tmp / "smalldata", tmp / f"cube{run}_{start}"
    write_run(
        indir / f"{EXP}_Run{run:04d}.h5",
        n_events=120,
        scan="delay",
        detectors={"jf": "jungfrau-small"},
        seed=run,
    )
    config = tmp / f"config_{start}.py"
    config.write_text(CONFIG.format(start=start))
    command = [sys.executable, "-m", "mpicube", "run", "--experiment", EXP, "--run", str(run)]
    command += ["--indir", str(indir), "--outdir", str(outdir), "--config", str(config)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return outdir


@pytest.fixture(scope="module")
def cubes(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("analysis")
    name = "Cube_{exp}_Run{run:04d}_delay_{laser}.h5"
    one, two, shifted = make_cubes(tmp, 1), make_cubes(tmp, 2), make_cubes(tmp, 3, start=-3.0)
    return {
        "on1": one / name.format(exp=EXP, run=1, laser="on"),
        "off1": one / name.format(exp=EXP, run=1, laser="off"),
        "on2": two / name.format(exp=EXP, run=2, laser="on"),
        "shifted": shifted / name.format(exp=EXP, run=3, laser="on"),
    }


def read(path: Path) -> dict:
    """Return every dataset and attribute of a cube file."""
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: out.update({n: o[()]}) if isinstance(o, h5py.Dataset) else None)
        out["attrs"] = dict(f.attrs)
    return out


def test_open_cube_is_an_xarray_dataset_with_named_dims(cubes):
    ds = mpicube.open_cube(cubes["on1"])
    raw = read(cubes["on1"])
    edges = raw["attrs"]["bin_edges"]
    np.testing.assert_array_equal(ds["bin"].values, raw["binVar_bins"])
    np.testing.assert_array_equal(ds["bin_low"].values, edges[:-1])
    np.testing.assert_array_equal(ds["bin_high"].values, edges[1:])
    assert ds["jf_data"].dims == ("bin", "jf_row", "jf_col")
    assert ds["jf_data"].shape == raw["jf_data"].shape
    assert ds["diodeU__channels"].dims == ("bin", "diodeU__channels_dim0")
    assert ds["jf_cfg_ped"].dims == ("jf_stage", "jf_row", "jf_col")
    for name in ("nEntries", "jf_nEntries", "binVar", "ipm2__sum", "jf_data"):
        np.testing.assert_array_equal(ds[name].values, raw[name])
    assert ds.attrs["run"] == 1 and ds.attrs["laser"] == "on"
    assert ds.attrs["config_text"] == raw["attrs"]["config_text"]
    frames = raw["jf_nEntries"]
    full = frames > 0
    mean = (ds["jf_data"] / ds["jf_nEntries"]).values
    np.testing.assert_allclose(mean[full], raw["jf_data"][full] / frames[full][:, None, None])
    assert full.sum() >= 3


def test_open_cubes_sums_runs_bin_by_bin(cubes):
    total = mpicube.open_cubes([cubes["on1"], cubes["on2"]])
    a, b = read(cubes["on1"]), read(cubes["on2"])
    for name in ("nEntries", "jf_nEntries", "binVar", "ipm2__sum", "diodeU__channels", "jf_data"):
        np.testing.assert_allclose(total[name].values, a[name] + b[name], rtol=1e-12)
    assert total.attrs["runs"] == [1, 2]
    assert total.attrs["events_selected"] == (
        a["attrs"]["events_selected"] + b["attrs"]["events_selected"]
    )
    assert total.attrs["source_files"] == [str(cubes["on1"]), str(cubes["on2"])]


def test_open_cubes_refuses_cubes_that_do_not_match(cubes):
    with pytest.raises(CubeError, match="bins, not|different bin edges"):
        mpicube.open_cubes([cubes["on1"], cubes["shifted"]])
    with pytest.raises(CubeError, match="laser 'off', not 'on'"):
        mpicube.open_cubes([cubes["on1"], cubes["off1"]])
    with pytest.raises(CubeError, match="not a cube file"):
        mpicube.open_cube(cubes["on1"].parents[1] / "smalldata" / f"{EXP}_Run0001.h5")


def test_show_prints_bins_counts_datasets_and_provenance(cubes):
    env = {**os.environ, "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, "-m", "mpicube", "show", str(cubes["on1"])],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    raw = read(cubes["on1"])
    attrs = raw["attrs"]
    assert lines[0] == str(cubes["on1"])
    assert f"run 1 of {EXP}, laser on, filter filter1" in lines[1]
    assert f"{attrs['events_selected']} selected, {attrs['events_binned']} binned" in lines[3]
    edges = attrs["bin_edges"]
    n_bins = len(raw["nEntries"])
    start = lines.index(f"  {n_bins} bins, {raw['nEntries'].sum()} events in them:")
    table = [line.split() for line in lines[start + 2 : start + 2 + n_bins]]
    assert lines[start + 1].split() == ["bin", "low", "high", "nEntries", "jf_nEntries"]
    for i, cells in enumerate(table):
        assert [int(cells[0]), float(cells[1]), float(cells[2])] == [i, edges[i], edges[i + 1]]
        assert [int(cells[3]), int(cells[4])] == [raw["nEntries"][i], raw["jf_nEntries"][i]]
    for name in ("nEntries", "jf_data", "jf_cfg/ped"):
        shape, dtype = str(raw[name].shape), str(raw[name].dtype)
        assert any(
            line.split()[0] == name and line.endswith(dtype) and shape in line for line in lines
        )
    missing = subprocess.run(
        [sys.executable, "-m", "mpicube", "show", str(cubes["on1"]) + ".nope"],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 1
    assert missing.stderr.strip() == f"mpicube: error: {cubes['on1']}.nope: no such file"
