"""The training sampler: each epoch's order is a function of (seed, epoch), shared out between processes."""

import pytest

from pipeline.dataset import EpochSampler


def keys(sampler: EpochSampler, epoch: int) -> list[tuple[int, int]]:
    sampler.set_epoch(epoch)
    return list(sampler)


def test_order_depends_on_seed_and_epoch_only():
    data = range(20)
    a, b = EpochSampler(data, seed=3), EpochSampler(data, seed=3)
    assert keys(a, 1) == keys(b, 1)
    assert keys(a, 4) == keys(EpochSampler(data, seed=3), 4)  # no state carried from earlier epochs
    assert [i for i, _ in keys(a, 1)] != [i for i, _ in keys(a, 2)]
    assert [i for i, _ in keys(a, 1)] != [i for i, _ in keys(EpochSampler(data, seed=4), 1)]
    assert sorted(i for i, _ in keys(a, 1)) == list(range(20))
    assert {e for _, e in keys(a, 7)} == {7}


@pytest.mark.parametrize("size", [12, 13])
def test_processes_share_an_epoch_out_between_them(size):
    shares = [keys(EpochSampler(range(size), seed=1, rank=r, world_size=3), 2) for r in range(3)]
    indices = [[i for i, _ in share] for share in shares]
    assert len({len(s) for s in indices}) == 1  # as many steps in every process
    assert set().union(*indices) == set(range(size))
    if size % 3 == 0:
        assert sum(len(s) for s in indices) == size  # disjoint
