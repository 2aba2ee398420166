import numpy as np
import pytest

from mpicube.binning import bin_index, count_outside, resolve_bins
from mpicube.errors import CubeError


def resolver(fields):
    def resolve(edges, name):
        scans = sorted(f for f in fields if f.startswith("scan/"))
        return resolve_bins(edges, name, fields.__contains__, fields.__getitem__, scans)

    return resolve


def test_bins_include_left_edge_and_exclude_top_edge_and_nan():
    edges = np.array([0.0, 1.0, 2.0])
    values = np.array([-0.1, 0.0, 0.5, 1.0, 1.9999, 2.0, 3.0, np.nan])
    assert bin_index(values, edges).tolist() == [-1, 0, 0, 1, 1, -1, -1, -1]
    counts = count_outside(values, edges)
    assert (counts.binned, counts.below, counts.above, counts.nan) == (4, 1, 2, 1)


def test_three_edges_are_two_bins_never_start_stop_step():
    values = resolver({"x": np.array([0.5, 5.0])})(np.array([0.0, 1.0, 10.0]), "x")
    assert values.bins.n_bins == 2
    assert bin_index(values.laser_on, values.bins.edges).tolist() == [0, 1]


def test_field_mode_bins_on_the_named_field():
    fields = {"ipm2/sum": np.array([1.0, 2.0, 3.0])}
    values = resolver(fields)(np.array([0.0, 2.0, 4.0]), "ipm2/sum")
    assert values.bins.mode == "field" and values.bins.n_bins == 2
    assert values.bins.axis == "ipm2__sum"
    assert values.bins.labels.tolist() == [0.0, 2.0]
    np.testing.assert_array_equal(values.laser_on, fields["ipm2/sum"])


def test_delay_mode_adds_timetool_to_nominal_in_ps():
    fields = {
        "scan/lxt_ttc": np.array([1e-12, 1e-12, 2e-12]),
        "tt/ttCorr": np.array([0.1, -0.2, 0.3]),
        "tt/FLTPOS_PS": np.array([9.0, 9.0, 9.0]),
    }
    values = resolver(fields)(np.array([0.0, 1.0, 2.0, 3.0]), None)
    assert values.bins.mode == "delay" and values.bins.axis == "delay"
    np.testing.assert_allclose(values.laser_on, [1.1, 0.8, 2.3])
    np.testing.assert_allclose(values.laser_off, [1.0, 1.0, 2.0])
    assert values.bins.sources == ("scan/lxt_ttc", "tt/ttCorr")


def test_delay_mode_falls_back_to_encoder_and_fltpos_when_ttcorr_is_constant():
    fields = {
        "enc/lasDelay": np.array([1.0, 2.0]),
        "tt/ttCorr": np.array([0.0, 0.0]),
        "tt/FLTPOS_PS": np.array([0.5, -0.5]),
    }
    values = resolver(fields)(np.array([0.0, 5.0]), None)
    np.testing.assert_allclose(values.laser_on, [1.5, 1.5])
    assert values.bins.sources == ("enc/lasDelay", "tt/FLTPOS_PS")


def test_delay_mode_without_nominal_delay_says_not_a_delay_scan():
    with pytest.raises(CubeError, match="not a delay scan"):
        resolver({"ipm2/sum": np.ones(3)})(np.array([0.0, 1.0]), None)


def test_scan_mode_bins_on_unique_positions_with_outlier_bin():
    fields = {"scan/gon_y": np.array([2.0, 1.0, 1.0, 3.0, np.nan]), "scan/fixed": np.ones(5)}
    values = resolver(fields)(None, None)
    bins = values.bins
    assert bins.mode == "scan" and bins.axis == "gon_y" and bins.dataset_name == "scan__gon_y"
    assert np.isnan(bins.labels[0]) and bins.labels[1:].tolist() == [1.0, 2.0, 3.0]
    assert bin_index(np.array([0.5, 1.0, 2.5, 3.0, 99.0]), bins.edges).tolist() == [0, 1, 2, 3, 3]


def test_scan_mode_needs_exactly_one_varying_scan_field():
    with pytest.raises(CubeError, match="no scan/\\* field varies"):
        resolver({"scan/a": np.ones(3)})(None, None)
    with pytest.raises(CubeError, match="several scan fields vary"):
        resolver({"scan/a": np.arange(3.0), "scan/b": np.arange(3.0)})(None, None)
