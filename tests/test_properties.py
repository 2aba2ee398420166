"""Property-based tests: selection and binning against plain-Python oracles on random data."""

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mpicube.binning import bin_index, count_outside
from mpicube.config import FilterRow
from mpicube.selection import Selection, apply

element = st.one_of(
    st.floats(-10, 10, allow_nan=False), st.sampled_from([np.nan, -1.0, 0.0, 1.0, 2.5])
)
values = hnp.arrays(np.float64, st.integers(0, 60), elements=element)
edges = st.lists(st.floats(-12, 12, allow_nan=False), min_size=2, max_size=12, unique=True).map(
    sorted
)


@settings(max_examples=300, deadline=None)
@given(values, edges)
def test_bin_index_matches_half_open_intervals(vals, edge_list):
    edge_array = np.array(edge_list)
    got = bin_index(vals, edge_array)
    for v, b in zip(vals, got, strict=True):
        want = next(
            (i for i in range(len(edge_list) - 1) if edge_list[i] <= v < edge_list[i + 1]), -1
        )
        assert b == want
    counts = count_outside(vals, edge_array)
    assert counts.binned == int((got >= 0).sum())
    assert counts.nan == sum(math.isnan(v) for v in vals)
    assert counts.below == sum(v < edge_list[0] for v in vals)
    assert counts.above == sum(v >= edge_list[-1] for v in vals)


rows = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),
        st.floats(-5, 5, allow_nan=False),
        st.floats(0, 5, allow_nan=False),
    ),
    max_size=4,
)


columns = st.integers(0, 40).flatmap(
    lambda n: st.tuples(*[hnp.arrays(np.float64, n, elements=element)] * 3)
)


@settings(max_examples=300, deadline=None)
@given(columns, rows)
def test_selection_is_the_and_of_strict_rows(columns, row_specs):
    n = len(columns[0])
    fields = dict(zip("abc", columns, strict=True))
    filter_rows = tuple(FilterRow(f, low, low + width + 1e-3) for f, low, width in row_specs)
    mask, counts = apply(Selection("filter1", None, filter_rows), n, fields.__getitem__)
    for e in range(n):
        want = all(r.low < fields[r.field][e] < r.high for r in filter_rows)
        assert mask[e] == want
    running = np.ones(n, dtype=bool)
    for count, row in zip(counts, filter_rows, strict=True):
        alone = np.array([row.low < v < row.high for v in fields[row.field]], dtype=bool)
        running &= alone
        assert count.passes == sum(alone) and count.cumulative == running.sum()
