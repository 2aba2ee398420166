from pathlib import Path

import numpy as np
import pytest

from mpicube.config import DetectorRequest, FilterRow, load_config
from mpicube.errors import CubeError

XPP = Path(__file__).parents[1] / "producers" / "cube_config_xpp.py"


def write(tmp_path, text, name="cube_config_test.py"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_seed_xpp_config_loads():
    settings = load_config(XPP).for_run(7)
    np.testing.assert_array_equal(settings.edges, np.arange(-5.0, 50.0, 0.2))
    assert settings.bin_name is None
    assert settings.filters == (
        FilterRow("lightStatus/xray", 0.5, 1.5),
        FilterRow("ipm2/sum", 3e2, 6e4),
        FilterRow("evr/code_41", 0.5, 1.5, "custom"),
    )
    assert settings.laser is True
    assert settings.fields == ("ipm2/sum", "ipm3/sum", "diodeU/channels")
    assert settings.detectors == (
        DetectorRequest("jungfrau1M", image=False, thres_adu=6.5, common_mode=0, full=True),
    )
    assert settings.hist_list["tt/AMPL"] == [0.0, 0.2, 70.0]
    assert settings.save_tiff is False


def test_run_functions_and_plain_names(tmp_path):
    path = write(
        tmp_path,
        "def binBoundaries(run):\n    return [0, 1, 2] if run == 3 else None\n"
        "bin_name = 'ipm2/sum'\n"
        "def get_filters(run):\n    return [['ipm2/sum', 0, run, 'filter1']]\n"
        "varList = ['ipm2/sum']\n",
    )
    config = load_config(path)
    three = config.for_run(3)
    assert three.edges.tolist() == [0.0, 1.0, 2.0] and three.bin_name == "ipm2/sum"
    assert three.filters == (FilterRow("ipm2/sum", 0.0, 3.0),)
    assert config.for_run(4).edges is None


@pytest.mark.parametrize(
    "text, message",
    [
        ("varList = ['a'\n", r":1: syntax error"),
        ("x = 1\nvarList = [undefined_name]\n", r":2: loading the config failed: NameError"),
        ("varList = ['a']\nfilter = [['a', 0, 1, 'filter1']]\n", r":2: filter: .*'filters'"),
        ("varList = ['a']\nfilters = [['a', 1, 0, 'filter1']]\n", r":2: filters: .*low must"),
        ("varList = ['a']\nfilters = [['a', 'x', 1]]\n", r":2: filters: row 0"),
        ("varList = ['a']\nlaser = 'yes'\n", r":2: laser: must be True or False"),
        ("varList = [{'source': 'j', 'commonMode': 0}]\n", r":1: varList: .*'common_mode'"),
        ("varList = [{'source': 'j', 'thresADU': 'high'}]\n", r":1: varList: j: thresADU"),
        ("varList = [{'source': 'j', 'det_proc': {'x': 1}}]\n", r":1: varList: j: det_proc 'x' "),
        (
            "d = {'source': 'j',\n     'det_proc': {'a': {'func': 'azimuth'}}}\nvarList = [d]\n",
            r":2: varList: j: det_proc 'a': unknown function 'azimuth'",
        ),
        (
            "varList = [{'source': 'j', 'det_proc': {'azav': {'distance': -1}}}]\n",
            r":1: varList: j: det_proc 'azav': distance must be a positive number",
        ),
        (
            "varList = [{'source': 'j', 'det_proc': {'azav': {'nbins': 5}}}]\n",
            r"azav needs 'distance'",
        ),
        (
            "varList = [{'source': 'j', 'det_proc': {'r': {'func': 'roi_sum', 'roj': 1}}}]\n",
            r"roi_sum has no argument 'roj'",
        ),
        (
            "varList = [{'source': 'j', 'det_proc': {'p': {'func': 'projection'}}}]\n",
            r"projection needs 'axis'",
        ),
        ("varList = [{'source': 'j', 'common_mode': 3}]\n", r":1: varList: j: common_mode 3 is"),
        ("varList = [{'source': 'j', 'thresRms': 'x'}]\n", r"thresRms must be a number"),
        ("varList = [{'image': 1}]\n", r"needs 'source'"),
        ("varList = ['a', 3]\n", r"neither a field path nor a dict"),
        ("filters = []\n", r"varList: is missing"),
        ("varList = ['a']\nbinBoundaries = [0, 2, 1]\n", r":2: binBoundaries: .*increasing"),
        ("varList = ['a']\nbinBoundaries = [0, float('nan')]\n", r"binBoundaries: .*finite"),
        ("varList = ['a']\nhist_list = {'a': [0, 1]}\n", r":2: hist_list"),
    ],
)
def test_bad_configs_name_the_file_and_line(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(CubeError, match=message) as info:
        load_config(path).for_run(1)
    assert str(info.value).startswith(str(path))
    assert "\n" not in str(info.value)


def test_a_failing_run_function_names_its_line(tmp_path):
    path = write(tmp_path, "varList = ['a']\ndef binBoundaries(run):\n    return 1 / 0\n")
    with pytest.raises(CubeError, match=r":3: binBoundaries\(5\) failed: ZeroDivisionError"):
        load_config(path).for_run(5)


def test_missing_config_file(tmp_path):
    with pytest.raises(CubeError, match="cannot read the config file"):
        load_config(tmp_path / "nope.py")
