"""DataLoader: sizes, order, shuffling, collation, the fast path, and background workers."""

import collections
import threading
import time

import numpy as np
import pytest

import chainrule.core as mx
from chainrule.data import (
    DataLoader,
    Dataset,
    RandomSampler,
    SequentialSampler,
    Subset,
    SubsetRandomSampler,
    TensorDataset,
    default_collate,
)


def _ds(n=10, d=3):
    x = np.arange(n * d, dtype=np.float32).reshape(n, d)
    y = np.arange(n, dtype=np.int64)
    return TensorDataset(x, y), x, y


def _labels(loader):
    return [b[1].tolist() for b in loader]


class Counting(Dataset):
    """A plain dataset (no get_batch) that counts its calls and the threads that make them."""

    def __init__(self, n, delay=0.0):
        self.n = n
        self.delay = delay
        self.calls = 0
        self.threads = set()
        self.lock = threading.Lock()

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        with self.lock:
            self.calls += 1
            self.threads.add(threading.current_thread())
        if self.delay:
            # later indices finish first, so an unordered pool would scramble the batches
            time.sleep(self.delay * ((self.n - i) % 3))
        return np.full(2, i, np.float32), i


@pytest.mark.parametrize("n", [0, 1, 9, 10, 11])
@pytest.mark.parametrize("bs", [1, 3, 10])
@pytest.mark.parametrize("drop_last", [False, True])
def test_len_matches_batches_yielded(n, bs, drop_last):
    ds, _, _ = _ds(max(n, 1))
    ds = Subset(ds, list(range(n)))
    loader = DataLoader(ds, batch_size=bs, drop_last=drop_last)
    batches = list(loader)
    assert len(loader) == len(batches) == (n // bs if drop_last else -(-n // bs))
    sizes = [len(b[1]) for b in batches]
    assert sum(sizes) == (n - n % bs if drop_last else n)
    assert all(s == bs for s in sizes[:-1])


def test_batches_are_arrays_with_shapes_and_dtypes():
    ds, x, y = _ds()
    xb, yb = next(iter(DataLoader(ds, batch_size=4)))
    assert type(xb) is mx.array and type(yb) is mx.array
    assert xb.shape == (4, 3) and xb.dtype == mx.float32
    assert yb.shape == (4,) and yb.dtype == mx.int64


@pytest.mark.parametrize("num_workers", [0, 2])
def test_shuffle_false_keeps_dataset_order(num_workers):
    ds, x, y = _ds(23)
    loader = DataLoader(ds, batch_size=5, num_workers=num_workers)
    xs = np.concatenate([b[0].numpy() for b in loader])
    np.testing.assert_array_equal(xs, x)
    assert sum(_labels(loader), []) == y.tolist()


def test_shuffle_gives_a_new_permutation_each_epoch():
    ds, _, _ = _ds(50)
    loader = DataLoader(ds, batch_size=7, shuffle=True)
    e1, e2 = sum(_labels(loader), []), sum(_labels(loader), [])
    assert sorted(e1) == sorted(e2) == list(range(50))
    assert e1 != e2 and e1 != list(range(50))


def test_shuffle_is_reproducible_under_the_global_seed():
    ds, _, _ = _ds(40)
    loader = DataLoader(ds, batch_size=8, shuffle=True)
    mx.random.seed(0)
    a = [_labels(loader), _labels(loader)]
    mx.random.seed(0)
    b = [_labels(loader), _labels(loader)]
    assert a == b
    mx.random.seed(1)
    assert _labels(loader) != a[0]


def test_shuffle_is_reproducible_under_torch_manual_seed():
    import chainrule.torch as torch

    ds, _, _ = _ds(40)
    torch.manual_seed(5)
    a = _labels(DataLoader(ds, batch_size=8, shuffle=True))
    mx.random.seed(5)  # the same global state
    b = _labels(DataLoader(ds, batch_size=8, shuffle=True))
    assert a == b


@pytest.mark.parametrize(
    "make",
    [
        lambda: {"seed": 3},
        lambda: {"generator": np.random.default_rng(3)},
        lambda: {"generator": mx.random.key(3)},
        lambda: {"generator": __import__("chainrule.torch").torch.Generator().manual_seed(3)},
    ],
    ids=["seed", "numpy", "mx-key", "torch-generator"],
)
def test_private_generators_are_reproducible_and_ignore_the_global_state(make):
    ds, _, _ = _ds(30)
    mx.random.seed(0)
    first = DataLoader(ds, batch_size=4, shuffle=True, **make())
    a = [_labels(first), _labels(first)]
    mx.random.seed(99)
    second = DataLoader(ds, batch_size=4, shuffle=True, **make())
    b = [_labels(second), _labels(second)]
    assert a == b
    assert a[0] != a[1]  # the stream advances between epochs


def test_torch_generator_reseeded_after_the_loader_is_built():
    import chainrule.torch as torch

    ds, _, _ = _ds(30)
    g = torch.Generator()
    loader = DataLoader(ds, batch_size=4, shuffle=True, generator=g)
    g.manual_seed(7)
    a = _labels(loader)
    g.manual_seed(7)
    assert _labels(loader) == a


def test_drop_last():
    ds, _, _ = _ds(10)
    assert _labels(DataLoader(ds, batch_size=4, drop_last=True)) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    shuffled = _labels(DataLoader(ds, batch_size=4, drop_last=True, shuffle=True))
    assert [len(b) for b in shuffled] == [4, 4]


def test_collate_fn_receives_the_list_of_samples():
    ds, _, y = _ds(7)
    seen = []

    def collate(samples):
        seen.append(len(samples))
        return [int(s[1].item()) for s in samples]

    out = list(DataLoader(ds, batch_size=3, collate_fn=collate))
    assert out == [[0, 1, 2], [3, 4, 5], [6]] and seen == [3, 3, 1]


def test_fast_path_fetches_whole_batches_and_matches_the_slow_path():
    ds, x, y = _ds(17)
    calls = collections.Counter()
    orig = TensorDataset.__getitem__

    class Spy(TensorDataset):
        def __getitem__(self, i):
            calls["getitem"] += 1
            return orig(self, i)

    spy = Spy(x, y)
    for shuffle in (False, True):
        mx.random.seed(4)
        fast = [(b[0].numpy(), b[1].numpy()) for b in DataLoader(spy, 5, shuffle=shuffle)]
        assert calls["getitem"] == 0
        mx.random.seed(4)
        slow = DataLoader(spy, 5, shuffle=shuffle, collate_fn=lambda s: default_collate(s))
        slow = [(b[0].numpy(), b[1].numpy()) for b in slow]
        assert calls["getitem"] == 17
        calls.clear()
        for (fx, fy), (sx, sy) in zip(fast, slow):
            np.testing.assert_array_equal(fx, sx)
            np.testing.assert_array_equal(fy, sy)
            assert fx.dtype == sx.dtype and fy.dtype == sy.dtype


def test_fast_path_through_subsets_and_for_a_plain_array():
    ds, x, y = _ds(12)
    sub = Subset(ds, [11, 0, 5, 3])
    assert _labels(DataLoader(sub, batch_size=3)) == [[11, 0, 5], [3]]
    rows = [b.numpy() for b in DataLoader(mx.array(x), batch_size=5)]
    np.testing.assert_array_equal(np.concatenate(rows), x)


def test_plain_sequences_and_python_samples():
    samples = [(np.array([i, i], np.float64), i, float(i) / 2, f"s{i}") for i in range(5)]
    xb, ib, fb, sb = next(iter(DataLoader(samples, batch_size=3)))
    assert xb.dtype == mx.float32 and xb.shape == (3, 2)  # float64 NumPy data -> float32
    assert ib.dtype == mx.int64 and ib.tolist() == [0, 1, 2]
    assert fb.dtype == mx.float32 and fb.tolist() == [0.0, 0.5, 1.0]
    assert sb == ["s0", "s1", "s2"]


def test_default_collate_structures():
    Pair = collections.namedtuple("Pair", "a b")
    batch = default_collate([{"x": Pair(mx.array([1, 2]), True), "y": [1, 2.5]}] * 2)
    assert set(batch) == {"x", "y"}
    assert isinstance(batch["x"], Pair) and batch["x"].a.shape == (2, 2)
    assert batch["x"].b.dtype == mx.bool_
    assert isinstance(batch["y"], list) and batch["y"][0].dtype == mx.int64
    assert isinstance(default_collate([(1, 2), (3, 4)]), tuple)


def test_default_collate_errors_are_clear():
    with pytest.raises(ValueError, match=r"different shapes \[\(2,\), \(3,\)\]"):
        default_collate([mx.zeros(2), mx.zeros(3)])
    with pytest.raises(ValueError, match="numbers of fields"):
        default_collate([(1, 2), (1,)])
    with pytest.raises(TypeError, match="object cannot be batched"):
        default_collate([object()])
    with pytest.raises(ValueError, match="empty"):
        default_collate([])


def test_collate_keeps_gradients():
    w = mx.array(np.ones(3, np.float32), requires_grad=True)
    batch = default_collate([w * 2, w * 3])
    batch.sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), [5, 5, 5])


def test_batch_size_none_yields_samples():
    ds, x, _ = _ds(4)
    out = list(DataLoader(ds, batch_size=None))
    assert len(out) == 4 and len(DataLoader(ds, batch_size=None)) == 4
    np.testing.assert_array_equal(out[2][0].numpy(), x[2])


def test_samplers():
    ds, _, _ = _ds(10)
    assert _labels(DataLoader(ds, batch_size=3, sampler=[9, 1, 4, 4])) == [[9, 1, 4], [4]]
    assert list(SequentialSampler(ds)) == list(range(10))
    mx.random.seed(2)
    perm = list(RandomSampler(ds))
    assert sorted(perm) == list(range(10))
    sub = list(SubsetRandomSampler([3, 5, 7], generator=np.random.default_rng(0)))
    assert sorted(sub) == [3, 5, 7]
    draws = list(RandomSampler(ds, replacement=True, num_samples=25))
    assert len(draws) == 25 and set(draws) <= set(range(10))
    loader = DataLoader(ds, batch_size=4, sampler=SubsetRandomSampler(range(6)))
    assert len(loader) == 2 and sorted(sum(_labels(loader), [])) == list(range(6))


def test_workers_give_the_batches_of_num_workers_zero():
    ds = Counting(31, delay=0.001)
    runs = {}
    for workers in (0, 1, 3):
        mx.random.seed(11)
        loader = DataLoader(ds, batch_size=4, shuffle=True, num_workers=workers)
        runs[workers] = [[b[1].tolist() for b in loader] for _ in range(2)]
        runs[workers].append([b[0].numpy().tolist() for b in loader])
    assert runs[0][0] != runs[0][1]
    assert runs[1] == runs[0] and runs[3] == runs[0]


def test_workers_fetch_in_background_threads_and_ahead_of_the_loop():
    ds = Counting(40)
    loader = DataLoader(ds, batch_size=2, num_workers=2, prefetch_factor=3)
    it = iter(loader)
    first = next(it)
    deadline = time.time() + 5
    while ds.calls < 2 * 6 and time.time() < deadline:  # the pool keeps 6 batches in flight
        time.sleep(0.005)
    assert ds.calls >= 2 * 6  # fetched before the loop asked for them
    assert threading.main_thread() not in ds.threads
    assert first[1].tolist() == [0, 1] and len(list(it)) == 19


def test_persistent_workers_keep_their_threads_across_epochs():
    for persistent in (True, False):
        ds = Counting(12)
        loader = DataLoader(ds, batch_size=2, num_workers=2, persistent_workers=persistent)
        epochs = []
        for _ in range(3):
            ds.threads.clear()
            list(loader)
            epochs.append(set(ds.threads))
        if persistent:  # one pool of two threads serves every epoch
            assert len(set.union(*epochs)) <= 2
        else:  # each epoch starts its own threads
            assert all(a.isdisjoint(b) for a in epochs for b in epochs if a is not b)


def test_leaving_an_epoch_early_then_starting_again():
    ds, _, y = _ds(30)
    for persistent in (False, True):
        loader = DataLoader(ds, batch_size=3, num_workers=2, persistent_workers=persistent)
        for i, _ in enumerate(loader):
            if i == 1:
                break
        assert sum(_labels(loader), []) == y.tolist()


@pytest.mark.parametrize("persistent", [False, True])
def test_two_live_iterators_of_one_loader(persistent):
    ds, _, y = _ds(20)
    loader = DataLoader(ds, batch_size=3, num_workers=2, persistent_workers=persistent)
    pairs = [(a[1].tolist(), b[1].tolist()) for a, b in zip(loader, loader)]
    assert len(pairs) == 7 and all(a == b for a, b in pairs)
    assert sum((a for a, _ in pairs), []) == y.tolist()


def test_worker_errors_reach_the_loop():
    class Broken(Dataset):
        def __len__(self):
            return 6

        def __getitem__(self, i):
            if i == 4:
                raise KeyError(f"sample {i} is missing")
            return i

    with pytest.raises(KeyError, match="sample 4 is missing"):
        list(DataLoader(Broken(), batch_size=2, num_workers=2))


def test_worker_init_fn_runs_in_each_worker():
    ids = []
    loader = DataLoader(_ds(20)[0], batch_size=1, num_workers=3, worker_init_fn=ids.append)
    assert len(list(loader)) == 20
    assert sorted(ids) == list(range(len(ids))) and 1 <= len(ids) <= 3


@pytest.mark.parametrize(
    "kwargs, error, pattern",
    [
        ({"batch_size": 0}, ValueError, "batch_size should be a positive integer, not 0"),
        ({"batch_size": 2.5}, ValueError, "batch_size"),
        ({"num_workers": -1}, ValueError, "num_workers should be an integer >= 0, not -1"),
        ({"persistent_workers": True}, ValueError, "persistent_workers=True needs num_workers"),
        ({"prefetch_factor": 2}, ValueError, "prefetch_factor"),
        ({"num_workers": 1, "prefetch_factor": 0}, ValueError, "prefetch_factor"),
        ({"shuffle": True, "sampler": [0, 1]}, ValueError, "exclusive with shuffle"),
        ({"seed": 1, "generator": np.random.default_rng(1)}, ValueError, "not both"),
        ({"generator": 7}, TypeError, "generator must be"),
        ({"batch_size": None, "drop_last": True}, ValueError, "drop_last"),
    ],
)
def test_bad_arguments_are_refused_clearly(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        DataLoader(_ds()[0], **kwargs)


def test_dataset_without_len_is_refused():
    with pytest.raises(TypeError, match="__getitem__ and __len__.*int"):
        DataLoader(5)


def test_matches_pytorch_loader_without_shuffling():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).normal(size=(11, 2)).astype(np.float32)
    y = np.arange(11)
    ours = list(DataLoader(TensorDataset(x, y), batch_size=4, drop_last=False))
    ref_ds = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    theirs = list(torch.utils.data.DataLoader(ref_ds, batch_size=4))
    assert len(ours) == len(theirs)
    for (ox, oy), (tx, ty) in zip(ours, theirs):
        np.testing.assert_array_equal(ox.numpy(), tx.numpy())
        np.testing.assert_array_equal(oy.numpy(), ty.numpy())
        assert str(oy.dtype) == str(ty.dtype).replace("torch.", "")
