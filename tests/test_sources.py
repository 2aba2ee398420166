"""The --frames option, and LCLS-II row order / missing values without psana (hand-made file)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from mpicube.errors import CubeError
from mpicube.smalldata import SmallData
from mpicube.sources import FramesOption, parse_frames_option


def test_frames_option():
    default = Path("/data/xpp/xpplx1234/xtc")
    assert parse_frames_option("h5", default) == FramesOption()
    assert parse_frames_option("xtc2", default) == FramesOption("xtc2", default)
    assert parse_frames_option("xtc2:/x/y", default) == FramesOption("xtc2", Path("/x/y"))
    for bad in ("xtc", "h5:/x", ""):
        with pytest.raises(CubeError, match="expected h5, xtc2 or xtc2:DIR"):
            parse_frames_option(bad, default)


def test_lcls2_rows_are_read_in_time_order_with_missing_ints_as_nan(tmp_path):
    order = np.array([3, 0, 4, 1, 2])  # file row i holds event order[i]
    path = tmp_path / "x_Run0001.h5"
    with h5py.File(path, "w") as f:
        f["timestamp"] = (100 << 32) + order * 1000
        f["evr/code_41"] = np.where(order == 4, -99999, order % 2)
        f["ipm2/sum"] = order * 10.0
        f["jf/raw"] = np.arange(5 * 6, dtype=np.uint16).reshape(5, 2, 3)
    with SmallData(path) as sd:
        np.testing.assert_array_equal(sd.read("ipm2/sum"), [0, 10, 20, 30, 40])
        np.testing.assert_array_equal(sd.read("ipm2/sum", 1, 3), [10, 20])
        np.testing.assert_array_equal(sd.read_scalar("evr/code_41"), [0, 1, 0, 1, np.nan])
        np.testing.assert_array_equal(sd.read("evr/code_41")[4], -99999)  # stored value kept
        np.testing.assert_array_equal(sd.file_rows(np.array([0, 4])), [1, 2])
        assert sd.read_times().dtype == np.uint64
        assert np.all(np.diff(sd.read_times()) > 0)


@pytest.mark.parametrize("layout", ["contiguous", "bitshuffle-lz4"])
def test_frames_read_the_same_from_every_layout(tmp_path, layout, monkeypatch):
    """Contiguous frames (memory-mapped) and compressed frames sum exactly like chunked ones;
    runs longer than one kernel block and events skipped inside a run are handled."""
    from mpicube import accumulate
    from mpicube.detectors import make_calibrator
    from mpicube.sources.hdf5 import Hdf5Frames
    from mpicube.synth import write_run

    monkeypatch.setattr(accumulate, "MAP_BLOCK_BYTES", 3 * 2 * 16 * 32 * 2)  # 3 frames
    monkeypatch.setattr(accumulate, "READ_BLOCK_BYTES", 3 * 2 * 16 * 32 * 2)
    kwargs = {"n_events": 40, "detectors": {"jf": "jungfrau-small"}}
    ref = write_run(tmp_path / "ref_Run0001.h5", **kwargs)
    if layout == "contiguous":
        other = write_run(tmp_path / "x_Run0001.h5", raw_layout="contiguous", **kwargs)
    else:
        other = write_run(tmp_path / "x_Run0001.h5", compression="bitshuffle-lz4", **kwargs)
    events = np.array([0, 1, 2, 3, 5, 8, 9, 10, 11, 12, 13, 30, 39])
    rows = (events % 3).astype(np.int32)[:, None]
    rows[4] = -1
    sums = []
    for path in (ref, other):
        with SmallData(path) as sd:
            calibrator = make_calibrator(sd.detector_constants("jf"), 6.5, 0)
            acc = np.zeros((3, calibrator.n_pixels))
            counts = Hdf5Frames(sd, "jf").accumulate(calibrator, events, rows, acc)
            sums.append((acc, counts))
    with SmallData(other) as sd:
        mapped = accumulate.MappedFrames.open(sd.raw_frames("jf"))
        assert (mapped is not None) == (layout == "contiguous")
    np.testing.assert_array_equal(sums[0][0], sums[1][0])
    np.testing.assert_array_equal(sums[0][1], sums[1][1])
    assert sums[0][0].any() and sums[0][1].tolist() == [6, 3, 3]
