"""The MPI steps. Tests marked ``mpi`` run under ``mpiexec -n 3 … pytest --with-mpi``."""

import numpy as np
import pytest

from mpicube import parallel
from mpicube.errors import CubeError
from mpicube.parallel import Parallel


class FakeComm:
    def __init__(self, rank, size):
        self.rank, self.size = rank, size

    def Get_rank(self):
        return self.rank

    def Get_size(self):
        return self.size


@pytest.mark.parametrize("n_items, size", [(10, 3), (2, 4), (0, 2), (7, 1)])
def test_shares_are_contiguous_and_cover_everything(n_items, size):
    shares = [Parallel(FakeComm(r, size)).share(n_items) for r in range(size)]
    assert shares[0][0] == 0 and shares[-1][1] == n_items
    assert all(a[1] == b[0] for a, b in zip(shares, shares[1:], strict=False))
    lengths = [stop - start for start, stop in shares]
    assert max(lengths) - min(lengths) <= 1


@pytest.mark.mpi(min_size=2)
def test_reduce_sum_in_slices_matches_the_total(monkeypatch):
    monkeypatch.setattr(parallel, "REDUCE_CHUNK_BYTES", 8 * 7)  # 7 doubles: many odd slices
    par = Parallel()
    buffer = np.arange(100, dtype=np.float64).reshape(4, 25) * (par.rank + 1)
    par.reduce_sum(buffer)
    if par.is_root:
        factor = par.size * (par.size + 1) / 2
        np.testing.assert_array_equal(buffer, np.arange(100).reshape(4, 25) * factor)


@pytest.mark.mpi(min_size=2)
def test_a_failure_on_one_rank_reaches_every_rank():
    par = Parallel()

    def step():
        if par.rank == 1:
            raise CubeError("bad frame in file x")
        return par.rank

    with pytest.raises(CubeError, match="bad frame in file x"):
        par.everywhere(step)


@pytest.mark.mpi(min_size=2)
def test_an_unexpected_error_names_its_rank():
    par = Parallel()

    def step():
        if par.rank == par.size - 1:
            raise ValueError("boom")

    with pytest.raises(CubeError, match=f"rank {par.size - 1}: ValueError: boom"):
        par.everywhere(step)


@pytest.mark.mpi(min_size=2)
def test_from_root_broadcasts_the_result_and_root_errors():
    par = Parallel()
    assert par.from_root(lambda: {"plan": 42}) == {"plan": 42}
    with pytest.raises(CubeError, match="no such config"):
        par.from_root(lambda: (_ for _ in ()).throw(CubeError("no such config")))


@pytest.mark.mpi(min_size=2)
def test_merge_rows_sums_each_row_on_one_of_its_adders():
    par = Parallel()
    n_rows, n_pix = 6, 1000
    # who adds to each row: nobody, rank 0 only, the last rank only, every rank,
    # every rank but 0, rank 1 only
    adders = [set(), {0}, {par.size - 1}, set(range(par.size)), set(range(1, par.size)), {1}]
    expected = np.zeros((n_rows, n_pix))
    mine = np.zeros((n_rows, n_pix))
    for rank in range(par.size):
        values = np.random.default_rng(rank).normal(size=(n_rows, n_pix))
        for row, who in enumerate(adders):
            if rank in who:
                expected[row] += values[row]
                if rank == par.rank:
                    mine[row] = values[row]
    touched = np.array([par.rank in who for who in adders])
    holders = par.merge_rows(mine, touched)
    expected_holders = [
        sorted(who)[row % len(who)] if who else -1 for row, who in enumerate(adders)
    ]
    assert holders.tolist() == expected_holders
    held = holders == par.rank
    np.testing.assert_allclose(mine[held], expected[held], rtol=1e-12)
