"""torch.utils.data: the worker API under PyTorch's names."""

from __future__ import annotations

import numpy as np

import chainrule.data
import chainrule.torch as torch
from chainrule.torch.utils.data import DataLoader, Dataset, get_worker_info


class _Ids(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        info = get_worker_info()
        return np.array(
            [i, -1 if info is None else info.id, -1 if info is None else info.num_workers]
        )


def test_get_worker_info_is_the_loaders_own():
    assert torch.utils.data.get_worker_info is chainrule.data.get_worker_info
    assert get_worker_info() is None  # not in a worker
    rows = np.concatenate([np.asarray(b) for b in DataLoader(_Ids(), batch_size=2, num_workers=2)])
    assert sorted(rows[:, 0].tolist()) == list(range(8))
    assert set(rows[:, 1].tolist()) <= {0, 1} and set(rows[:, 2].tolist()) == {2}
    rows = np.concatenate([np.asarray(b) for b in DataLoader(_Ids(), batch_size=4)])
    assert set(rows[:, 1].tolist()) == {-1}


# -- issue 15: the rest of torch.utils.data, against PyTorch ------------------------------------

torch_ref = None


def _ref():
    import pytest

    return pytest.importorskip("torch")


def _rows(batches):
    return [np.asarray(b).tolist() for b in batches]


def _stream(lib_data, n):
    class Stream(lib_data.IterableDataset):
        def __iter__(self):
            for i in range(n):
                yield np.array([i, i * i], dtype=np.float32)

        def __len__(self):
            return n

    return Stream()


def test_iterable_dataset_batches_like_pytorch():
    tref = _ref()
    import chainrule.torch.utils.data as ours

    for bs, drop in [(3, False), (3, True), (None, False)]:
        a = _rows(ours.DataLoader(_stream(ours, 7), batch_size=bs, drop_last=drop))
        b = _rows(
            tref.utils.data.DataLoader(_stream(tref.utils.data, 7), batch_size=bs, drop_last=drop)
        )
        assert a == b
        assert len(ours.DataLoader(_stream(ours, 7), batch_size=bs, drop_last=drop)) == len(
            tref.utils.data.DataLoader(_stream(tref.utils.data, 7), batch_size=bs, drop_last=drop)
        )
    import pytest

    with pytest.raises(ValueError, match="shuffle"):
        ours.DataLoader(_stream(ours, 3), shuffle=True)


def test_chain_and_stack_datasets_match_pytorch():
    tref = _ref()
    import chainrule.torch.utils.data as ours

    a = list(ours.ChainDataset([_stream(ours, 2), _stream(ours, 3)]))
    b = list(
        tref.utils.data.ChainDataset([_stream(tref.utils.data, 2), _stream(tref.utils.data, 3)])
    )
    assert [x.tolist() for x in a] == [x.tolist() for x in b]
    assert [x.tolist() for x in (_stream(ours, 1) + _stream(ours, 2))] == [
        x.tolist() for x in (_stream(tref.utils.data, 1) + _stream(tref.utils.data, 2))
    ]
    s = ours.StackDataset([1, 2, 3], ["a", "b", "c"])
    t = tref.utils.data.StackDataset([1, 2, 3], ["a", "b", "c"])
    assert [s[i] for i in range(3)] == [t[i] for i in range(3)] and len(s) == len(t)
    s = ours.StackDataset(x=[1, 2], y=[3, 4])
    assert s[1] == tref.utils.data.StackDataset(x=[1, 2], y=[3, 4])[1]
    import pytest

    with pytest.raises(ValueError):
        ours.StackDataset([1, 2], [1])


def test_distributed_sampler_deals_like_pytorch():
    tref = _ref()
    import chainrule.torch.utils.data as ours

    data = list(range(11))
    for replicas in (1, 3, 4):
        for drop in (False, True):
            for rank in range(replicas):
                a = ours.DistributedSampler(data, replicas, rank, shuffle=False, drop_last=drop)
                b = tref.utils.data.DistributedSampler(
                    data, replicas, rank, shuffle=False, drop_last=drop
                )
                assert list(a) == list(b) and len(a) == len(b)
    # Shuffled: every replica gets a disjoint share of one permutation of the same epoch.
    shares = [list(ours.DistributedSampler(data, 4, r, seed=3, drop_last=True)) for r in range(4)]
    flat = sum(shares, [])
    assert len(flat) == len(set(flat)) == 8
    s = ours.DistributedSampler(data, 2, 0)
    first = list(s)
    s.set_epoch(1)
    assert list(s) != first and sorted(list(s) + list(ours.DistributedSampler(data, 2, 1)))


def test_weighted_random_sampler():
    import pytest

    import chainrule.torch as ct
    import chainrule.torch.utils.data as ours

    ct.manual_seed(0)
    draws = list(ours.WeightedRandomSampler([0.0, 1.0, 3.0], 4000))
    counts = np.bincount(draws, minlength=3)
    assert counts[0] == 0 and abs(counts[2] / counts[1] - 3) < 0.4
    ct.manual_seed(0)
    assert list(ours.WeightedRandomSampler([0.0, 1.0, 3.0], 4000)) == draws
    picked = list(ours.WeightedRandomSampler([1, 1, 1, 0], 3, replacement=False))
    assert sorted(picked) == [0, 1, 2]
    with pytest.raises(ValueError):
        ours.WeightedRandomSampler([1.0], 0)
    with pytest.raises(RuntimeError):
        ours.WeightedRandomSampler([1, 0], 2, replacement=False)


def test_default_convert_matches_pytorch():
    tref = _ref()
    import collections

    import chainrule.torch.utils.data as ours

    Point = collections.namedtuple("Point", "x y")
    sample = {"a": np.arange(3), "b": (np.float64(2.5), "s"), "c": Point(np.ones(2), 3)}
    a, b = ours.default_convert(sample), tref.utils.data.default_convert(sample)
    assert np.asarray(a["a"]).tolist() == b["a"].tolist() and str(a["a"].dtype) == "int64"
    assert type(a["b"]) is type(b["b"]) is list and a["b"][1] == "s"
    assert float(a["b"][0]) == float(b["b"][0])
    assert type(a["c"]).__name__ == "Point" and a["c"].y == 3


def test_datapipes_match_pytorch():
    tref = _ref()
    from torch.utils.data.datapipes.iter import IterableWrapper as RefWrapper

    import chainrule.torch.utils.data as ours
    from chainrule.torch.utils.data.datapipes.iter import IterableWrapper

    def pipeline(wrapper):
        dp = wrapper(range(10)).map(lambda v: v * 3).filter(lambda v: v % 2 == 0)
        return (
            [list(b) for b in dp.batch(2)],
            list(dp.concat(wrapper([7]))),
            list(wrapper(range(3)).zip(wrapper("abc"))),
        )

    assert pipeline(IterableWrapper) == pipeline(RefWrapper)
    assert isinstance(IterableWrapper([1]), ours.IterableDataset)
    assert list(IterableWrapper("ab").enumerate()) == [(0, "a"), (1, "b")]
    assert list(IterableWrapper(range(5)).header(2)) == [0, 1]
    assert ours.DataChunk([1, 2]).as_str() == tref.utils.data.DataChunk([1, 2]).as_str()
    # shuffle keeps the items; graph settings reach it
    dp = IterableWrapper(range(20)).shuffle()
    ours.graph_settings.apply_shuffle_settings(dp, shuffle=False)
    assert list(dp) == list(range(20))
    ours.graph_settings.apply_shuffle_settings(dp, shuffle=True)
    assert sorted(dp) == list(range(20))
    graph = ours.graph.traverse_dps(IterableWrapper([1]).map(str))
    ((top, sources),) = graph.values()
    assert type(top).__name__ == "Mapper" and len(sources) == 1
    shard = IterableWrapper(range(10)).sharding_filter()
    ours.graph_settings.apply_sharding(shard, 3, 1)
    assert list(shard) == [1, 4, 7]


from chainrule.torch.utils.data import IterDataPipe as _IterDataPipe  # noqa: E402


def test_datapipe_decorators():

    import pytest

    import chainrule.torch.utils.data as ours

    @ours.functional_datapipe("double_it_cr")
    class Double(ours.IterDataPipe):
        def __init__(self, dp):
            self.dp = dp

        def __iter__(self):
            for v in self.dp:
                yield 2 * v

    from chainrule.torch.utils.data.datapipes.iter import IterableWrapper

    assert list(IterableWrapper([1, 2]).double_it_cr()) == [2, 4]

    class Ints(ours.IterDataPipe[int]):
        def __init__(self, items):
            self.items = items

        @ours.runtime_validation
        def __iter__(self):
            yield from self.items

    assert list(Ints([1, 2])) == [1, 2]
    with pytest.raises(RuntimeError, match="Expected an instance"):
        list(Ints([1, "x"]))
    with ours.runtime_validation_disabled():
        assert list(Ints([1, "x"])) == [1, "x"]

    @ours.non_deterministic
    class Random(ours.IterDataPipe):
        def __iter__(self):
            yield 1

    Random()
    with ours.guaranteed_datapipes_determinism(), pytest.raises(TypeError):
        Random()

    @ours.argument_validation
    def takes(dp: _IterDataPipe):
        return dp

    takes(IterableWrapper([1]))
    with pytest.raises(TypeError, match="Expected argument 'dp'"):
        takes([1])
