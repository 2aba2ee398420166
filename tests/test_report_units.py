"""Units of the reporting: phase timer, progress line, status POST, summary field choice."""

from __future__ import annotations

import io
import logging
import socket
from dataclasses import replace

import numpy as np

from mpicube.accumulate import accumulate_frames
from mpicube.config import FilterRow, RunSettings
from mpicube.detectors import make_calibrator
from mpicube.report import status
from mpicube.report.histograms import field_histogram, hist_fields
from mpicube.report.progress import Progress
from mpicube.report.runlog import PhaseTimer
from mpicube.smalldata import SmallData
from mpicube.synth import write_run
from tests.http_sink import Sink


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_phase_timer_counts_nested_time_once():
    clock = Clock()
    timer = PhaseTimer(("plan", "scalars", "write"), clock=clock)
    with timer.phase("scalars"):
        clock.now += 2.0
        with timer.phase("write"):
            clock.now += 0.5
    timer.timed("write", lambda: setattr(clock, "now", clock.now + 0.25))()
    assert timer.seconds == {"plan": 0.0, "scalars": 2.0, "write": 0.75}
    assert timer.line() == "time per phase: plan 0.00 s, scalars 2.00 s, write 0.75 s"


def test_progress_prints_an_estimate_at_most_every_interval_on_a_terminal():
    clock, out = Clock(), Terminal()
    progress = Progress(4, out, interval=15.0, clock=clock)
    clock.now += 10.0
    progress(100)
    assert out.getvalue() == ""  # too early
    clock.now += 10.0
    progress(50)
    assert out.getvalue() == (
        "progress: ~600 detector frames done on 4 ranks (rank 0's 150 x 4), ~30 frames/s, 20 s\n"
    )
    clock.now += 1.0
    progress(50)
    assert out.getvalue().count("\n") == 1


def test_progress_is_quiet_when_not_a_terminal():
    clock, out = Clock(), io.StringIO()
    progress = Progress(2, out, interval=0.0, clock=clock)
    clock.now += 60.0
    progress(1000)
    assert out.getvalue() == "" and progress.done == 1000


def test_failed_value_is_one_escaped_line():
    assert status.failed_value("a < b\nsecond line") == "Failed: a &lt; b"
    long = status.failed_value("x" * 1000)
    assert len(long) == len("Failed: ") + status.MAX_REASON_CHARS and long.endswith("...")


def test_post_status_sends_the_json_list():
    with Sink() as sink:
        assert status.post_status("Done", sink.url) is True
    assert sink.bodies == [[{"key": "<b>Cube </b>", "value": "Done"}]]


def test_a_failing_post_is_logged_not_raised(caplog):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with caplog.at_level(logging.WARNING, logger="mpicube"):
        assert status.post_status("Done", f"http://127.0.0.1:{port}/") is False
    assert "could not post the status 'Done'" in caplog.text


def test_post_status_does_nothing_without_the_variable(monkeypatch):
    monkeypatch.delenv(status.ENV_URL, raising=False)
    assert status.post_status("Done") is False


def test_field_histogram_overlay_is_the_other_cuts_of_the_selection():
    rng = np.random.default_rng(1)
    fields = {"a": rng.normal(size=500), "b": rng.normal(size=500), "c": rng.normal(size=500)}
    fields["a"][:5] = np.nan
    rows = (
        FilterRow("a", -1.0, 1.0),
        FilterRow("b", 0.0, 2.0),
        FilterRow("c", -0.5, 9.0, "other"),
    )
    settings = RunSettings(None, None, rows, False, (), (), {}, False)
    hist = field_histogram("a", [-3.0, 3.0, 12], fields["a"], settings, fields.__getitem__)
    other = (fields["b"] > 0.0) & (fields["b"] < 2.0)  # filter1 without its row on "a"
    assert hist.n_overlay == other.sum()
    want = np.histogram(fields["a"][other & np.isfinite(fields["a"])], np.linspace(-3, 3, 13))[0]
    np.testing.assert_array_equal(hist.overlay, want)
    assert hist.cuts == (rows[0],) and hist.n_finite == 495
    assert hist.overlay_label == "passing the 1 other cut of filter1"
    free = field_histogram("c", None, fields["c"], settings, fields.__getitem__)
    assert free.cuts == (rows[2],) and free.overlay is None  # "other" has no other cut


def test_without_hist_list_the_ipm_and_timetool_fields_are_shown(tmp_path):
    path = write_run(tmp_path / "x_Run0001.h5", n_events=20, detectors={})
    settings = RunSettings(None, None, (), False, (), (), {"ipm2/sum": None}, False)
    with SmallData(path) as sd:
        default = hist_fields(replace(settings, hist_list={}), sd)
        given = hist_fields(replace(settings, hist_list={"ipm2/sum": None, "no/such": None}), sd)
    assert default == (
        ["ipm2/sum", "ipm3/sum", "tt/AMPL", "tt/FLTPOS", "tt/FLTPOSFWHM", "tt/FLTPOS_PS",
         "tt/ttCorr"],
        [],
    )  # fmt: skip
    assert given == (["ipm2/sum"], ["no/such"])


def test_accumulate_frames_reports_every_frame_it_adds(tmp_path):
    path = write_run(tmp_path / "x_Run0001.h5", n_events=50, detectors={"jf": "jungfrau-small"})
    with SmallData(path) as sd:
        calibrator = make_calibrator(sd.detector_constants("jf"), None, None)
        events = np.array([1, 2, 3, 10, 30, 31, 49])
        rows = np.array([[0], [-1], [1], [0], [2], [1], [0]], dtype=np.int32)
        acc = np.zeros((3, calibrator.n_pixels))
        calls: list[int] = []
        added = accumulate_frames(sd.raw_frames("jf"), calibrator, events, rows, acc, calls.append)
    assert added == 6 and sum(calls) == 6 and all(calls)
