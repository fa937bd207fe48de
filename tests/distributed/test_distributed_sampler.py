"""DistributedSampler: PyTorch's shares, for every rank, without MPI."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule.core as mx
from chainrule.data import DataLoader, TensorDataset
from chainrule.distributed import DistributedSampler

CASES = [(n, k, drop) for n in (0, 1, 5, 10, 11, 12, 13) for k in (1, 2, 3, 4) for drop in (0, 1)]


def shares(n, k, drop, shuffle=True, seed=0, epoch=0):
    out = []
    for r in range(k):
        s = DistributedSampler(
            range(n), num_replicas=k, rank=r, shuffle=shuffle, seed=seed, drop_last=bool(drop)
        )
        s.set_epoch(epoch)
        out.append(list(s))
        assert len(out[-1]) == len(s)
    return out


@pytest.mark.parametrize("n,k,drop", CASES)
def test_shares_are_equal_disjoint_and_cover(n, k, drop):
    parts = shares(n, k, drop)
    sizes = {len(p) for p in parts}
    assert len(sizes) == 1, "every rank must take the same number of samples"
    everything = [i for p in parts for i in p]
    if drop:
        assert len(everything) == (n // k) * k
        assert len(set(everything)) == len(everything)  # disjoint, nothing repeated
    else:
        assert len(everything) == -(-n // k) * k
        assert set(everything) == set(range(n))  # every sample, padding repeats a few
        assert len(everything) - len(set(everything)) == len(everything) - n


@pytest.mark.parametrize("n,k,drop", CASES)
def test_matches_pytorch_without_shuffling(n, k, drop):
    torch = pytest.importorskip("torch")
    from torch.utils.data import DistributedSampler as TorchSampler

    if n == 0:
        pytest.skip("PyTorch's sampler divides by the dataset length when padding")
    for r in range(k):
        ours = DistributedSampler(range(n), k, r, shuffle=False, drop_last=bool(drop))
        theirs = TorchSampler(list(range(n)), k, r, shuffle=False, drop_last=bool(drop))
        assert list(ours) == list(theirs)
        assert len(ours) == len(theirs)
        assert ours.total_size == theirs.total_size
    del torch


def test_shuffling_follows_seed_and_epoch():
    first = shares(40, 2, 0, seed=3, epoch=0)
    assert first == shares(40, 2, 0, seed=3, epoch=0)  # every rank computes the same order
    assert first != shares(40, 2, 0, seed=3, epoch=1)  # reshuffled per epoch
    assert first != shares(40, 2, 0, seed=4, epoch=0)
    assert shares(40, 2, 0, shuffle=False) == [list(range(0, 40, 2)), list(range(1, 40, 2))]


def test_defaults_come_from_init():
    s = DistributedSampler(range(7))  # no launcher: a group of one process
    assert (s.num_replicas, s.rank, s.shuffle, s.seed, s.drop_last) == (1, 0, True, 0, False)
    assert sorted(s) == list(range(7))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(num_replicas=2, rank=2), r"rank must be in \[0, 2\)"),
        (dict(num_replicas=0, rank=0), "num_replicas must be an integer >= 1"),
        (dict(num_replicas=2, rank=-1), "rank must be an integer >= 0"),
        (dict(num_replicas=2.0, rank=0), "num_replicas must be an integer"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DistributedSampler(range(4), **kwargs)
    with pytest.raises(TypeError, match="must define __len__"):
        DistributedSampler(iter(range(4)), 1, 0)


def test_in_a_dataloader():
    X = np.arange(22, dtype=np.float32).reshape(11, 2)
    ds = TensorDataset(X, np.arange(11))
    seen = []
    for r in range(2):
        s = DistributedSampler(ds, num_replicas=2, rank=r, seed=1)
        loader = DataLoader(ds, batch_size=4, sampler=s)
        assert len(loader) == 2
        batches = list(loader)
        assert [b[0].shape for b in batches] == [(4, 2), (2, 2)]
        for xb, yb in batches:
            np.testing.assert_array_equal(xb, X[np.asarray(yb)])
            assert isinstance(xb, mx.array)
            seen += yb.tolist()
    assert set(seen) == set(range(11)) and len(seen) == 12
    with pytest.raises(ValueError, match="exclusive"):
        DataLoader(ds, sampler=DistributedSampler(ds, 2, 0), shuffle=True)
