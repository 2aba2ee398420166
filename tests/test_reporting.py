"""End to end through the CLI: the run log, the summary page, the run-processor status,
config errors and ``mpicube check``, checked against numpy and a real HTTP server."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from mpicube.cli import main
from tests import oracle
from tests.http_sink import Sink
from tests.test_failures import HARNESS
from tests.test_job import DET, EXP, MPIEXEC, make_run

CONFIG = """
import numpy as np
def binBoundaries(run):
    return np.arange(-3.0, 11.0, 0.5)
filters = [
    ['lightStatus/xray', 0.5, 1.5, 'filter1'],
    ['ipm2/sum', 3e2, 6e4, 'filter1'],
    ['tt/AMPL', 0.0, 10.0, 'filter1'],
    ['evr/code_94', 0.5, 1.5, 'never'],
]
laser = True
varList = ['ipm2/sum', 'diodeU/channels', {'source': 'jf', 'thresADU': 1.0}]
hist_list = {'ipm2/sum': [0, 5e4, 70], 'ipm3/sum': None, 'tt/AMPL': [0, 0.2, 70],
             'tt/nope': None}
"""
EDGES = np.arange(-3.0, 11.0, 0.5)
FILTER1 = [("lightStatus/xray", 0.5, 1.5), ("ipm2/sum", 3e2, 6e4), ("tt/AMPL", 0.0, 10.0)]
ON, OFF = ("lightStatus/laser", 0.5, 1.5), ("lightStatus/laser", -0.5, 0.5)
N = 160


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    indir, arrays = make_run(tmp, "delay", seed=11, n_events=N)
    config = tmp / "cube_config_xpp.py"
    config.write_text(CONFIG)
    return indir, config, arrays


def mpicube(*args: str, ranks: int = 0, env: dict | None = None, harness: list | None = None):
    """Run ``mpicube ARGS`` (under mpiexec when ranks > 0); return the completed process."""
    python = [sys.executable, *(harness or ["-m", "mpicube"])]
    command = [MPIEXEC, "-n", str(ranks), *python] if ranks else python
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=180, env=full_env
    )


def job_args(indir: Path, outdir: Path, config: Path, command: str = "run") -> list[str]:
    return [command, "--experiment", EXP, "--run", "1", "--indir", str(indir),
            "--outdir", str(outdir), "--config", str(config)]  # fmt: skip


def cut_lines(arrays: dict, rows: list) -> list[str]:
    """Return the expected ``cut … keeps …`` lines of a cube, counted with numpy."""
    lines, keep = [], np.ones(N, dtype=bool)
    for field, low, high in rows:
        alone = oracle.select(arrays, [(field, low, high)])
        keep &= alone
        lines.append(
            f"  cut {low:f} < {field} < {high:f} keeps {alone.sum()} of {N} events, "
            f"{keep.sum()} with the cuts above"
        )
    return lines


def expected_counts(arrays: dict, rows: list, values: np.ndarray) -> tuple:
    """Return (selected, binned, below, above, nan, frames) of a cube, with numpy."""
    keep = oracle.select(arrays, rows)
    v = values[keep]
    index = np.array([oracle.bin_of(x, EDGES) for x in values])
    binned = keep & (index >= 0)
    frames = int((binned & (arrays[f"damage/{DET}"] == 1)).sum())
    nan = int(np.isnan(v).sum())
    below, above = int((v < EDGES[0]).sum()), int((v >= EDGES[-1]).sum())
    return int(keep.sum()), int(binned.sum()), below, above, nan, frames


def test_run_log_summary_page_and_done_status(run, tmp_path):
    indir, config, arrays = run
    with Sink() as sink:
        result = mpicube(*job_args(indir, tmp_path, config), ranks=2,
                         env={"JID_UPDATE_COUNTERS": sink.url})  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert sink.bodies == [[{"key": "<b>Cube </b>", "value": "Done"}]]
    lines = result.stdout.splitlines()

    # an empty selection: the facility's exact lines
    start = lines.index(f"Cube_{EXP}_Run0001_delay_on_never.h5: no event selected, no file written")
    laser_on = int((arrays["lightStatus/laser"] == 1).sum())
    assert lines[start + 1 : start + 4] == [
        "did not select any event, quit now!",
        f"getFilter: Cut 0.500000 < evr/code_94 < 1.500000 passes 0 events of {N}, "
        "total passes up to now: 0",
        f"getFilter: Cut 0.500000 < lightStatus/laser < 1.500000 passes {laser_on} events of "
        f"{N}, total passes up to now: 0",
    ]

    # the non-empty cubes: rows, counts, frames, from numpy
    nominal = arrays["scan/lxt_ttc"] * 1e12
    cubes = {"delay_on": ([*FILTER1, ON], nominal + arrays["tt/ttCorr"]),
             "delay_off": ([*FILTER1[:2], OFF], nominal)}  # fmt: skip
    for name, (rows, values) in cubes.items():
        sel, binned, below, above, nan, frames = expected_counts(arrays, rows, values)
        head = (
            f"Cube_{EXP}_Run0001_{name}.h5: {sel} events selected, {binned} binned, "
            f"{below} below the bins, {above} above, {nan} NaN"
        )
        at = lines.index(head)
        want = [*cut_lines(arrays, rows), f"  {DET}: {frames} frames to sum, "
                f"{binned - frames} binned events without a frame"]  # fmt: skip
        assert lines[at + 1 : at + 1 + len(want)] == want
    assert "bins: delay on delay (scan/lxt_ttc + tt/ttCorr), 27 bins from -3 to 10.5" in lines
    timing = [line for line in lines if line.startswith("time per phase:")]
    assert len(timing) == 1 and re.fullmatch(
        r"time per phase: plan [\d.]+ s, scalars [\d.]+ s, detectors [\d.]+ s, "
        r"merge [\d.]+ s, write [\d.]+ s, summary [\d.]+ s",
        timing[0],
    )
    assert "progress:" not in result.stdout  # stdout is not a terminal

    # the summary page
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"Cube_{EXP}_Run0001_delay_on.h5", f"Cube_{EXP}_Run0001_delay_off.h5", "summary"]
    )
    page = (tmp_path / "summary" / f"Cube_{EXP}_Run0001_summary.html").read_text()
    assert f"summary page: {tmp_path / 'summary'}" in result.stdout
    figures = dict(re.findall(r'<figure id="([^"]+)"><img alt="[^"]*" src="data:image/png;'
                              r'base64,([^"]+)">', page))  # fmt: skip
    assert sorted(figures) == ["bins", "field-ipm2/sum", "field-ipm3/sum", "field-tt/AMPL",
                               f"pixels-{DET}"]  # fmt: skip
    for data in figures.values():
        png = base64.b64decode(data)
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert re.search(r'id="missing-fields">[^<]*<code>tt/nope</code>', page)
    others = oracle.select(arrays, [FILTER1[0], FILTER1[2]])  # filter1 without its ipm2 row
    ipm2 = arrays["ipm2/sum"]
    outside = int(((ipm2 < 0) | (ipm2 > 5e4)).sum())
    assert (
        f"ipm2/sum: {N} events with a value, {outside} outside the plotted range [0, 50000]; "
        f"{others.sum()} events passing the 2 other cuts of filter1" in page
    )
    assert "did not select any event, quit now!" in page
    assert "http" not in page.replace("http-equiv", "")  # self-contained: nothing fetched


def test_a_failing_rank_posts_failed(run, tmp_path):
    indir, config, _ = run
    harness = [HARNESS, "mpicube.accumulate:scalar_sums", "2", "--"]
    with Sink() as sink:
        result = mpicube(*job_args(indir, tmp_path, config), ranks=3, harness=harness,
                         env={"JID_UPDATE_COUNTERS": sink.url})  # fmt: skip
    assert result.returncode != 0
    assert sink.bodies == [
        [{"key": "<b>Cube </b>", "value": "Failed: rank 2: RuntimeError: injected fault"}]
    ]
    assert list(tmp_path.iterdir()) == []


def test_a_failing_post_does_not_fail_the_job(run, tmp_path):
    indir, config, _ = run
    result = mpicube(*job_args(indir, tmp_path, config), "--no-summary",
                     env={"JID_UPDATE_COUNTERS": "http://127.0.0.1:9/"})  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "could not post the status 'Done' to http://127.0.0.1:9/" in result.stdout
    assert not (tmp_path / "summary").exists()


BAD_CONFIGS = [  # (config text, the one-line message expected after the config path)
    ("varList = ['ipm2/sum'\n", r":1: syntax error"),
    ("varList = ['ipm2/sum']\nfilter = [['ipm2/sum', 0, 1, 'filter1']]\n",
     r":2: filter: unknown name, did you mean 'filters'\?"),
    ("varList = ['ipm2/sum']\nfilters = [['ipm2/summ', 0, 1, 'filter1']]\n",
     r":2: filters: .*xpptest01_Run0001\.h5: no field 'ipm2/summ', did you mean 'ipm2/sum'\?"),
    ("varList = ['ipm2/sum', 'diodeU/chanels']\n",
     r":1: varList: .*no field 'diodeU/chanels', did you mean 'diodeU/channels'\?"),
    ("varList = ['ipm2/sum']\nbinBoundaries = lambda run: [0, 1e4]\nbinName = 'ipm3/summ'\n",
     r":3: binName: .*no field 'ipm3/summ', did you mean 'ipm3/sum'\?"),
    ("varList = ['ipm2/sum']\nlaser = 'yes'\n", r":2: laser: must be True or False"),
    ("varList = ['ipm2/sum']\nbinBoundaries = lambda run: [0, 2, 1]\n",
     r":2: binBoundaries: bin edges must be strictly increasing"),
]  # fmt: skip


@pytest.mark.parametrize("text, message", BAD_CONFIGS)
def test_config_errors_are_one_line_on_every_rank(run, tmp_path, text, message):
    indir, _, _ = run
    config = tmp_path / "cube_config_xpp.py"
    config.write_text(text)
    with Sink() as sink:
        result = mpicube(*job_args(indir, tmp_path / "out", config), ranks=2,
                         env={"JID_UPDATE_COUNTERS": sink.url})  # fmt: skip
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1, result.stderr  # one message, from rank 0 only
    assert re.fullmatch(f"mpicube: error: {re.escape(str(config))}{message}.*", errors[0])
    assert sink.bodies == [[{"key": "<b>Cube </b>", "value": "Failed: " + errors[0][16:]}]]
    assert not (tmp_path / "out").exists()


def check_output(arrays: dict) -> list[str]:
    """Return the lines ``check`` must print for the run's filter1 cubes, from numpy."""
    nominal = arrays["scan/lxt_ttc"] * 1e12
    lines = []
    for name, rows, values in [("delay_on", [*FILTER1, ON], nominal + arrays["tt/ttCorr"]),
                               ("delay_off", [*FILTER1[:2], OFF], nominal)]:  # fmt: skip
        sel, binned, below, above, nan, frames = expected_counts(arrays, rows, values)
        lines += [
            f"Cube_{EXP}_Run0001_{name}.h5: {sel} events selected, {binned} binned, "
            f"{below} below the bins, {above} above, {nan} NaN",
            *cut_lines(arrays, rows),
            f"  {DET}: {frames} frames to sum, {binned - frames} binned events without a frame",
        ]
    return lines


def test_check_prints_the_plan_without_reading_frames(run, tmp_path, capsys, monkeypatch):
    indir, config, arrays = run
    read, read_direct = h5py.Dataset.__getitem__, h5py.Dataset.read_direct

    def no_frames(method):
        def guarded(self, *args, **kwargs):
            assert not self.name.endswith("/raw"), f"check read frames of {self.name}"
            return method(self, *args, **kwargs)

        return guarded

    monkeypatch.setattr(h5py.Dataset, "__getitem__", no_frames(read))
    monkeypatch.setattr(h5py.Dataset, "read_direct", no_frames(read_direct))
    code = main([*job_args(indir, tmp_path, config, "check"), "--ranks", "4"])
    out = capsys.readouterr().out
    assert code == 0, out
    lines = out.splitlines()
    want = check_output(arrays)
    at = lines.index(want[0])
    assert lines[at : at + len(want)] == want
    assert "did not select any event, quit now!" in lines
    assert lines[lines.index(f"files that would be written to {tmp_path}:") + 1 :][:3] == [
        f"  Cube_{EXP}_Run0001_delay_on.h5 (new)",
        f"  Cube_{EXP}_Run0001_delay_off.h5 (new)",
        f"  {tmp_path / 'summary' / f'Cube_{EXP}_Run0001_summary.html'}",
    ]
    assert any(line.startswith("estimate for 4 ranks (--ranks): ~") for line in lines)
    assert re.search(r"memory per rank: ~[\d.]+ GB \(process 0\.200, ", out)
    assert re.search(r"time: ~\d+ s \(start-up 5\.0, calibration", out)
    assert "hist_list fields not in the smalldata file (noted on the summary page): tt/nope" in out
    assert lines[-1] == "check: OK, the job would write 2 cube(s)"
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_check_under_mpiexec_prints_once_and_flags_existing_cubes(run, tmp_path):
    indir, config, _ = run
    (tmp_path / f"Cube_{EXP}_Run0001_delay_on.h5").write_text("")
    result = mpicube(*job_args(indir, tmp_path, config, "check"), ranks=2)
    assert result.returncode == 1, result.stderr
    assert result.stdout.count("mpicube check:") == 1
    assert f"  Cube_{EXP}_Run0001_delay_on.h5 (EXISTS: the job would fail)" in result.stdout
    assert "estimate for 2 ranks" in result.stdout
    assert result.stdout.splitlines()[-1] == (
        "check: the job would FAIL: 1 cube(s) exist already: use --force to replace them"
    )
