import numpy as np

from mpicube.config import FilterRow
from mpicube.selection import (
    LASER_OFF,
    LASER_ON,
    Selection,
    apply,
    filter_log_lines,
    row_passes,
    selections,
)


def test_row_bounds_are_strict_and_nan_fails():
    values = np.array([0.5, 0.6, 1.5, 1.4, np.nan, -np.inf, np.inf])
    passes = row_passes(FilterRow("f", 0.5, 1.5), values)
    assert passes.tolist() == [False, True, False, True, False, False, False]


def test_rows_of_a_name_are_anded_and_names_are_separate_selections():
    rows = (
        FilterRow("a", 0, 10),
        FilterRow("b", 0, 10),
        FilterRow("c", 0.5, 1.5, "custom"),
    )
    found = selections(rows, laser=False)
    assert [s.filter_name for s in found] == ["filter1", "custom"]
    assert found[0].rows == rows[:2]
    assert found[1].rows == rows[2:]
    fields = {"a": np.array([1.0, 5, 20, 3]), "b": np.array([1.0, 50, 2, 3])}
    mask, counts = apply(found[0], 4, fields.__getitem__)
    assert mask.tolist() == [True, False, False, True]
    assert [(c.passes, c.cumulative) for c in counts] == [(3, 3), (3, 2)]


def test_filter1_exists_without_rows():
    found = selections((FilterRow("c", 0, 1, "custom"),), laser=False)
    assert found[0] == Selection("filter1", None, ())


def test_laser_off_drops_laser_timetool_and_encoder_rows():
    rows = (
        FilterRow("ipm2/sum", 1, 2),
        FilterRow("tt/AMPL", 0.01, 1),
        FilterRow("enc/lasDelay", -5, 5),
        FilterRow("lightStatus/laser", 0.5, 1.5),
    )
    on, off = selections(rows, laser=True)
    assert on.laser == "on" and on.rows == (*rows, LASER_ON)
    assert off.laser == "off" and off.rows == (rows[0], LASER_OFF)
    laser = np.array([1.0, 0, -1, 1])
    assert apply(Selection("x", "on", (LASER_ON,)), 4, lambda _: laser)[0].tolist() == [
        True,
        False,
        False,
        True,
    ]
    assert apply(Selection("x", "off", (LASER_OFF,)), 4, lambda _: laser)[0].tolist() == [
        False,
        True,
        False,
        False,
    ]


def test_log_lines_have_the_facility_format():
    sel = Selection("filter1", None, (FilterRow("evr/code_94", 0.5, 1.5), FilterRow("x", 0, 2)))
    fields = {"evr/code_94": np.zeros(5), "x": np.ones(5)}
    _, counts = apply(sel, 5, fields.__getitem__)
    assert filter_log_lines(counts, 5) == [
        "getFilter: Cut 0.500000 < evr/code_94 < 1.500000 passes 0 events of 5, "
        "total passes up to now: 0",
        "getFilter: Cut 0.000000 < x < 2.000000 passes 5 events of 5, total passes up to now: 0",
    ]
