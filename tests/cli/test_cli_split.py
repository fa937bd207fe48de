"""`chainrule.data.split_indices` and `Standardizer`: the command's splitting and scaling, now in
the data layer (chainrule/data/split.py)."""

from __future__ import annotations

import numpy as np
import pytest

from chainrule import cli
from chainrule.data import Standardizer, split_indices


def test_the_command_no_longer_holds_them():
    assert not hasattr(cli, "split_indices") and not hasattr(cli, "Standardizer")


@pytest.mark.parametrize("stratified", [False, True])
def test_split_indices_partition_and_stratify(stratified):
    labels = np.repeat([0, 1, 2], [50, 30, 20])
    parts = split_indices(100, 0.2, 0.1, seed=3, labels=labels if stratified else None)
    train, val, test = parts
    joined = np.concatenate(parts)
    assert sorted(joined.tolist()) == list(range(100))  # disjoint and complete
    assert len(val) == 20 and len(test) == 10 and len(train) == 70
    if stratified:
        for c, n in ((0, 50), (1, 30), (2, 20)):
            assert (labels[val] == c).sum() == round(n * 0.2)
            assert (labels[test] == c).sum() == round(n * 0.1)
    again = split_indices(100, 0.2, 0.1, seed=3, labels=labels if stratified else None)
    for a, b in zip(parts, again):
        np.testing.assert_array_equal(a, b)
    other = split_indices(100, 0.2, 0.1, seed=4, labels=labels if stratified else None)
    assert not np.array_equal(parts[2], other[2])


def test_split_indices_refuses_tiny_data():
    with pytest.raises(ValueError, match="only 3 rows: too few for a test set"):
        split_indices(3, 0.0, 0.1, seed=0)
    train, val, test = split_indices(3, 0.0, 0.0, seed=0)
    assert len(train) == 3 and len(val) == len(test) == 0


def test_standardizer_matches_scikit_learn():
    preprocessing = pytest.importorskip("sklearn.preprocessing")
    rng = np.random.default_rng(0)
    X = rng.normal(3, 2, size=(40, 4))
    X[:, 2] = 7.0  # constant: scaled to 0, not NaN
    scaler = Standardizer.fit(X[:30])
    reference = preprocessing.StandardScaler().fit(X[:30])
    np.testing.assert_allclose(scaler.transform(X), reference.transform(X), rtol=1e-5, atol=1e-6)
    assert scaler.transform(X).dtype == np.float32
    again = Standardizer(**scaler.to_dict())
    np.testing.assert_array_equal(again.transform(X), scaler.transform(X))


def test_split_indices_refuses_fractions_that_leave_no_training_rows():
    with pytest.raises(ValueError, match="sum below 1"):
        split_indices(10, 0.6, 0.5, seed=0)
