"""Bins written by any process at the offsets rank 0 got from HDF5."""

import os

import h5py
import numpy as np
import pytest

from mpicube.bin_writer import BinSlots, BinWriter
from mpicube.errors import CubeError
from mpicube.writer import CubeFile, DetectorOutput


def _cubes(tmp_path, n_cubes=2, n_bins=3, shape=(64, 128)):
    cubes = [CubeFile(tmp_path / f"Cube_{c}.h5", force=False) for c in range(n_cubes)]
    for cube in cubes:
        cube.add_detector(DetectorOutput("jf", shape, {}), np.ones(n_bins, dtype=np.int64))
    slots = BinSlots(
        tuple(cube.temp for cube in cubes),
        {"jf": np.stack([cube.bin_offsets("jf") for cube in cubes])},
        {"jf": shape},
    )
    return cubes, slots


def test_bins_written_at_their_slots_read_back_and_unwritten_bins_are_zero(tmp_path):
    cubes, slots = _cubes(tmp_path)
    rng = np.random.default_rng(0)
    first, last = rng.normal(size=(2, 64, 128))
    with BinWriter(slots) as writer:
        writer.write("jf", 0, 0, first)
        writer.write("jf", 1, 2, last.astype(np.float32))  # converted to float64
    for cube in cubes:
        cube.commit()
    with h5py.File(tmp_path / "Cube_0.h5") as f:
        np.testing.assert_array_equal(f["jf_data"][()], [first, np.zeros((64, 128))] + [0 * first])
        assert f["jf_data"].fillvalue == 0.0
    with h5py.File(tmp_path / "Cube_1.h5") as f:
        expected = last.astype(np.float32).astype(np.float64)
        np.testing.assert_array_equal(f["jf_data"][2], expected)
        assert not f["jf_data"][:2].any()


def test_bins_nobody_writes_take_no_disk_space(tmp_path):
    cubes, _ = _cubes(tmp_path, n_cubes=1, n_bins=50, shape=(512, 1024))  # 50 x 4 MB
    path = cubes[0].commit()
    assert os.stat(path).st_blocks * 512 < 2**20


def test_a_bin_of_the_wrong_shape_is_refused(tmp_path):
    _, slots = _cubes(tmp_path)
    with BinWriter(slots) as writer, pytest.raises(ValueError, match=r"a bin is \(64, 128\)"):
        writer.write("jf", 0, 0, np.zeros((128, 64)))


def test_a_cube_that_cannot_be_written_is_a_one_line_error_naming_it(tmp_path):
    cubes, slots = _cubes(tmp_path)
    cubes[1].discard()
    with BinWriter(slots) as writer, pytest.raises(CubeError, match=r"Cube_1\.h5.*bin 2"):
        writer.write("jf", 1, 2, np.zeros((64, 128)))
