"""Datasets: TensorDataset, Subset, ConcatDataset and random_split (PyTorch's semantics)."""

import numpy as np
import pytest

import chainrule.core as mx
from chainrule.data import ConcatDataset, Dataset, Subset, TensorDataset, random_split


def _xy(n=10, d=3):
    x = np.arange(n * d, dtype=np.float32).reshape(n, d)
    y = np.arange(n, dtype=np.int64) % 4
    return x, y


def test_tensor_dataset_items_are_tuples_of_rows():
    x, y = _xy()
    ds = TensorDataset(mx.array(x), mx.array(y))
    assert len(ds) == 10
    for i in (0, 3, 9, -1):
        xi, yi = ds[i]
        np.testing.assert_array_equal(xi.numpy(), x[i])
        assert yi.item() == y[i]
        assert xi.dtype == mx.float32 and yi.dtype == mx.int64
    (only,) = TensorDataset(mx.array(x))[2]
    np.testing.assert_array_equal(only.numpy(), x[2])


def test_tensor_dataset_converts_like_mx_array():
    x, y = _xy()
    ds = TensorDataset(x.astype(np.float64), y, [1.0] * 10)
    assert [t.dtype for t in ds.tensors] == [mx.float32, mx.int64, mx.float32]


@pytest.mark.parametrize(
    "arrays, needles",
    [
        ((np.zeros((10, 3)), np.zeros(9)), ["[10, 9]", "(10, 3)", "(9,)"]),
        ((np.zeros(4), np.zeros(4), np.zeros((5, 2))), ["[4, 4, 5]", "argument 2", "(5, 2)"]),
    ],
)
def test_tensor_dataset_refuses_different_lengths_naming_them(arrays, needles):
    with pytest.raises(ValueError, match="same length") as info:
        TensorDataset(*arrays)
    for n in needles:
        assert n in str(info.value)


def test_tensor_dataset_refuses_nothing_and_scalars():
    with pytest.raises(ValueError, match="at least one"):
        TensorDataset()
    with pytest.raises(ValueError, match="0-d"):
        TensorDataset(mx.array(1.0))


def test_get_batch_equals_stacked_samples():
    x, y = _xy()
    ds = TensorDataset(x, y)
    for idx in (np.array([3, 1, 7]), slice(2, 6), np.array([], dtype=np.int64)):
        bx, by = ds.get_batch(idx)
        rows = np.arange(10)[idx]
        np.testing.assert_array_equal(bx.numpy(), x[rows])
        np.testing.assert_array_equal(by.numpy(), y[rows])


def test_get_batch_keeps_gradients_flowing():
    w = mx.array(np.ones((4, 2), np.float32), requires_grad=True)
    ds = TensorDataset(w)
    (b,) = ds.get_batch(np.array([0, 0, 3]))
    b.sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [[2, 2], [0, 0], [0, 0], [1, 1]])


def test_subset_and_nested_subset():
    x, y = _xy()
    ds = TensorDataset(x, y)
    sub = Subset(ds, [9, 2, 4, 6])
    assert len(sub) == 4
    np.testing.assert_array_equal(sub[1][0].numpy(), x[2])
    assert [s[1].item() for s in sub[[0, 3]]] == [y[9], y[6]]
    inner = Subset(sub, [3, 0])
    assert inner[0][1].item() == y[6]
    bx, by = inner.get_batch(np.array([1, 0]))
    np.testing.assert_array_equal(by.numpy(), y[[9, 6]])
    np.testing.assert_array_equal(bx.numpy(), x[[9, 6]])


def test_subset_of_plain_dataset_has_no_get_batch():
    class Squares(Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return i * i

    sub = Subset(Squares(), [4, 1])
    assert not hasattr(sub, "get_batch")
    assert [sub[0], sub[1]] == [16, 1]


def test_dataset_base_requires_subclass_methods():
    with pytest.raises(NotImplementedError):
        len(Dataset())
    with pytest.raises(NotImplementedError):
        Dataset()[0]


def test_concat_dataset():
    a = TensorDataset(np.arange(3))
    b = TensorDataset(np.arange(10, 15))
    cat = a + b
    assert isinstance(cat, ConcatDataset) and len(cat) == 8
    assert [cat[i][0].item() for i in range(8)] == [0, 1, 2, 10, 11, 12, 13, 14]
    assert cat[-1][0].item() == 14
    with pytest.raises(IndexError):
        cat[8]


def _check_partition(parts, n):
    seen = np.concatenate([np.asarray(p.indices, dtype=np.int64) for p in parts])
    assert sorted(seen.tolist()) == list(range(n))


@pytest.mark.parametrize(
    "n, lengths, sizes",
    [
        (10, [7, 3], [7, 3]),
        (10, [0.8, 0.2], [8, 2]),
        (10, [0.3, 0.3, 0.4], [3, 3, 4]),
        (11, [0.5, 0.5], [6, 5]),
        (7, [0.33, 0.33, 0.34], [3, 2, 2]),
        (5, [5, 0], [5, 0]),
    ],
)
def test_random_split_sizes_and_disjointness(n, lengths, sizes):
    ds = TensorDataset(np.arange(n))
    parts = random_split(ds, lengths)
    assert [len(p) for p in parts] == sizes
    assert all(isinstance(p, Subset) for p in parts)
    _check_partition(parts, n)


def test_random_split_sizes_match_pytorch():
    torch = pytest.importorskip("torch")
    for n, lengths in [
        (10, [0.8, 0.2]),
        (11, [0.5, 0.5]),
        (7, [0.33, 0.33, 0.34]),
        (100, [0.1] * 10),
    ]:
        ours = [len(p) for p in random_split(TensorDataset(np.arange(n)), lengths)]
        theirs = [len(p) for p in torch.utils.data.random_split(range(n), lengths)]
        assert ours == theirs, (n, lengths)


def test_random_split_is_reproducible():
    ds = TensorDataset(np.arange(50))
    mx.random.seed(3)
    a = [p.indices for p in random_split(ds, [25, 25])]
    mx.random.seed(3)
    b = [p.indices for p in random_split(ds, [25, 25])]
    assert a == b
    c = [p.indices for p in random_split(ds, [25, 25], generator=np.random.default_rng(0))]
    d = [p.indices for p in random_split(ds, [25, 25], generator=np.random.default_rng(0))]
    assert c == d
    assert c[0] != list(range(25))  # actually shuffled


def test_random_split_refuses_bad_lengths():
    ds = TensorDataset(np.arange(10))
    with pytest.raises(ValueError, match="sum to 9.*10 samples"):
        random_split(ds, [5, 4])
    with pytest.raises(ValueError, match="fractions summing to 1.*sum to 0.9"):
        random_split(ds, [0.5, 0.4])
    with pytest.raises(ValueError, match="not a count"):
        random_split(ds, [12, -2])
    with pytest.raises(TypeError, match="generator must be"):
        random_split(ds, [5, 5], generator="abc")


def test_random_split_warns_about_empty_fraction():
    with pytest.warns(UserWarning) as record:
        parts = random_split(TensorDataset(np.arange(2)), [0.9, 0.05, 0.05])
    messages = [str(w.message) for w in record]
    assert any("index 1 is 0" in m for m in messages) and any("index 2 is 0" in m for m in messages)
    assert [len(p) for p in parts] == [2, 0, 0]  # floors [1, 0, 0], remainder to the first
