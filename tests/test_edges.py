"""Numbers stay right at the edges: tiny runs, extreme bin counts, all-zero and saturated
frames, every rank count, and reproducible files."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from mpicube.synth import write_run
from tests import oracle
from tests.test_job import DET, EXP, compare, run_cube


def cube_case(tmp_path, n_events, edges, change=None, thres=None):
    """Write a run (optionally changed), a config binning ipm2/sum on ``edges``; return
    (indir, config, expected datasets)."""
    indir = tmp_path / "smalldata"
    path = write_run(
        indir / f"{EXP}_Run0001.h5",
        n_events=n_events,
        n_steps=1,
        detectors={DET: "jungfrau-small"},
        seed=n_events,
    )
    if change:
        with h5py.File(path, "r+") as f:
            change(f)
    run = oracle.read_run(path)
    config = tmp_path / "cube_config_xpp.py"
    config.write_text(
        f"import numpy as np\nbinBoundaries = np.array({list(map(float, edges))!r})\n"
        f"bin_name = 'ipm2/sum'\nvarList = ['ipm2/sum', {{'source': 'jf', 'thresADU': {thres}}}]\n"
    )
    frames = oracle.calibrated_frames(run, DET, thres)
    keep = np.ones(n_events, dtype=bool)
    want = oracle.expected_cube(
        run, keep, run["ipm2/sum"], np.asarray(edges, float), ["ipm2/sum"], DET, frames
    )
    return indir, config, want


NAME = f"Cube_{EXP}_Run0001_ipm2__sum.h5"


def test_one_event(tmp_path):
    indir, config, want = cube_case(tmp_path, 1, [0.0, 1e9])
    assert run_cube(indir, tmp_path / "out", config, 2).returncode == 0
    compare(tmp_path / "out" / NAME, want)
    assert want["nEntries"].tolist() == [1]


@pytest.mark.parametrize("n_bins", [1, 10_000])
def test_one_bin_and_ten_thousand_bins(tmp_path, n_bins):
    indir, config, want = cube_case(tmp_path, 50, np.linspace(0.0, 1e5, n_bins + 1))
    result = run_cube(indir, tmp_path / "out", config, 3)
    assert result.returncode == 0, result.stderr
    compare(tmp_path / "out" / NAME, want)


def test_every_event_in_one_bin_of_many(tmp_path):
    def same_intensity(f):
        f["ipm2/sum"][:] = 1234.5

    indir, config, want = cube_case(tmp_path, 40, np.arange(0.0, 5000.0, 100.0), same_intensity)
    assert run_cube(indir, tmp_path / "out", config, 3).returncode == 0
    compare(tmp_path / "out" / NAME, want)
    assert np.count_nonzero(want["nEntries"]) == 1


@pytest.mark.parametrize("word", [0, 0xFFFF, 0x3FFF])  # zeros, saturated (invalid gain), 16383
def test_all_zero_and_saturated_frames(tmp_path, word):
    def fill(f):
        f[f"{DET}/raw"][...] = word

    indir, config, want = cube_case(tmp_path, 20, [0.0, 1e9], fill, thres=-1e9)
    assert run_cube(indir, tmp_path / "out", config, 2).returncode == 0
    compare(tmp_path / "out" / NAME, want)


@pytest.fixture(scope="module")
def four_way(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ranks")
    indir, config, want = cube_case(tmp, 90, [0.0, 300.0, 3e3, 1e4, 3e4, 1e9])
    return tmp, indir, config, want


def datasets(path):
    """Return every dataset and every attribute but the creation time of a cube."""
    out = {}
    with h5py.File(path) as f:
        f.visititems(lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else 0)
        out.update({f"@{k}": v for k, v in f.attrs.items() if k != "created"})
    return out


@pytest.mark.parametrize("ranks", [1, 2, 3, 4])
def test_every_rank_count_gives_the_same_cube(four_way, ranks):
    tmp, indir, config, want = four_way
    out = tmp / f"out{ranks}"
    assert run_cube(indir, out, config, ranks).returncode == 0
    compare(out / NAME, want)


def test_the_same_job_twice_gives_identical_files(four_way):
    tmp, indir, config, _ = four_way
    first, second = tmp / "first", tmp / "second"
    for out in (first, second):
        assert run_cube(indir, out, config, 3).returncode == 0
    a, b = datasets(first / NAME), datasets(second / NAME)
    assert a.keys() == b.keys()
    for key in a:
        if key == "@n_ranks":
            continue
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
