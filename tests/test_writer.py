import h5py
import pytest

from mpicube.errors import CubeError
from mpicube.plan import cube_file_name
from mpicube.writer import CubeFile


@pytest.mark.parametrize(
    "laser, name, expected",
    [
        (None, "filter1", "Cube_xpp1_Run0007_delay.h5"),
        ("on", "filter1", "Cube_xpp1_Run0007_delay_on.h5"),
        ("off", "custom", "Cube_xpp1_Run0007_delay_off_custom.h5"),
        (None, "custom", "Cube_xpp1_Run0007_delay_custom.h5"),
    ],
)
def test_cube_file_names(laser, name, expected):
    assert cube_file_name("xpp1", 7, "delay", laser, name) == expected


def test_a_cube_is_invisible_until_committed(tmp_path):
    final = tmp_path / "Cube_a.h5"
    cube = CubeFile(final, force=False)
    cube.h5["nEntries"] = [1, 2]
    assert not final.exists() and cube.temp.exists() and cube.temp.name.startswith(".")
    assert cube.commit() == final
    assert not cube.temp.exists()
    with h5py.File(final) as f:
        assert f["nEntries"][()].tolist() == [1, 2]


def test_commit_never_replaces_a_cube_unless_forced(tmp_path):
    final = tmp_path / "Cube_a.h5"
    final.write_bytes(b"precious")
    cube = CubeFile(final, force=False)
    with pytest.raises(CubeError, match="exists already"):
        cube.commit()
    assert final.read_bytes() == b"precious"
    assert list(tmp_path.iterdir()) == [final]
    forced = CubeFile(final, force=True)
    forced.h5["x"] = 1
    forced.commit()
    with h5py.File(final) as f:
        assert f["x"][()] == 1


def test_discard_leaves_nothing(tmp_path):
    cube = CubeFile(tmp_path / "Cube_a.h5", force=False)
    cube.discard()
    assert list(tmp_path.iterdir()) == []


def test_unwritable_output_directory_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(CubeError, match="cannot write the cube there"):
        CubeFile(blocker / "sub" / "Cube_a.h5", force=False)
