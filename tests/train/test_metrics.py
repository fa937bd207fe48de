"""chainrule.train.metrics against scikit-learn, on random data."""

import numpy as np
import pytest

import chainrule.core as mx
from chainrule.train import metrics as M

skm = pytest.importorskip("sklearn.metrics")

AVERAGES = ("binary", "macro", "micro", "weighted")
PRF = {
    "precision": (M.precision, skm.precision_score),
    "recall": (M.recall, skm.recall_score),
    "f1": (M.f1, skm.f1_score),
}


def _labels(rng, n, k):
    return rng.integers(0, k, size=n)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("as_framework", [False, True])
def test_accuracy_from_indices_logits_and_probabilities(seed, as_framework):
    rng = np.random.default_rng(seed)
    n, k = 57, 4
    y = _labels(rng, n, k)
    logits = rng.standard_normal((n, k)).astype(np.float32)
    wrap = mx.array if as_framework else (lambda a: a)
    expected = skm.accuracy_score(y, logits.argmax(-1))
    assert M.accuracy(wrap(y), wrap(logits)) == pytest.approx(expected)
    assert M.accuracy(wrap(y), wrap(logits.argmax(-1))) == pytest.approx(expected)
    # one column of probabilities, with targets shaped (n,) or (n, 1)
    yb = _labels(rng, n, 2)
    p = rng.uniform(size=(n, 1)).astype(np.float32)
    expected = skm.accuracy_score(yb, (p[:, 0] > 0.5).astype(int))
    assert M.accuracy(wrap(yb), wrap(p)) == pytest.approx(expected)
    assert M.accuracy(wrap(yb.reshape(-1, 1).astype(np.float32)), wrap(p)) == pytest.approx(
        expected
    )
    assert M.accuracy(wrap(yb), wrap(p[:, 0])) == pytest.approx(expected)


def test_accuracy_single_column_of_logits_needs_a_threshold():
    y = np.array([0, 1, 1, 0])
    z = np.array([[-2.0], [3.0], [0.5], [-0.1]], dtype=np.float32)
    with pytest.raises(ValueError, match="threshold=0.0"):
        M.accuracy(y, z)
    assert M.accuracy(y, z, threshold=0.0) == 1.0


@pytest.mark.parametrize("name", sorted(PRF))
@pytest.mark.parametrize("average", AVERAGES)
@pytest.mark.parametrize("seed", range(6))
def test_precision_recall_f1_match_sklearn(name, average, seed):
    ours, theirs = PRF[name]
    rng = np.random.default_rng(seed)
    k = 2 if average == "binary" else int(rng.integers(3, 6))
    n = int(rng.integers(5, 80))
    y = _labels(rng, n, k)
    pred = _labels(rng, n, k)
    if seed == 5:  # a class that is never predicted, and one that never occurs
        pred[pred == 0] = 1
        y[y == k - 1] = 0
    kwargs = {"zero_division": 0}
    expected = theirs(y, pred, average=average, **kwargs)
    assert ours(y, pred, average=average) == pytest.approx(expected, abs=1e-12)
    assert ours(mx.array(y), mx.array(pred), average=average) == pytest.approx(expected)
    # from scores per class
    scores = rng.standard_normal((n, k))
    scores[np.arange(n), pred] += 10.0
    assert ours(y, mx.array(scores), average=average) == pytest.approx(expected)


@pytest.mark.parametrize("name", sorted(PRF))
def test_pos_label_and_binary_errors(name):
    ours, theirs = PRF[name]
    rng = np.random.default_rng(3)
    y, pred = _labels(rng, 40, 2), _labels(rng, 40, 2)
    assert ours(y, pred, pos_label=0) == pytest.approx(
        theirs(y, pred, pos_label=0, zero_division=0)
    )
    with pytest.raises(ValueError, match="binary"):
        ours(_labels(rng, 40, 3) + np.arange(40) % 3 * 0, np.arange(40) % 3)
    with pytest.raises(ValueError, match="average must be"):
        ours(y, pred, average="samples")
    with pytest.raises(ValueError, match="pos_label"):
        ours(y, pred, pos_label=7)


@pytest.mark.parametrize("seed", range(4))
def test_confusion_matrix_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    y, pred = _labels(rng, 60, 5), _labels(rng, 60, 5)
    np.testing.assert_array_equal(M.confusion_matrix(y, pred), skm.confusion_matrix(y, pred))
    np.testing.assert_array_equal(
        M.confusion_matrix(mx.array(y), mx.array(pred), num_classes=7),
        skm.confusion_matrix(y, pred, labels=range(7)),
    )
    with pytest.raises(ValueError, match="outside"):
        M.confusion_matrix(y, pred, num_classes=3)


@pytest.mark.parametrize("shape", [(50,), (50, 1), (50, 3)])
@pytest.mark.parametrize("seed", range(3))
def test_regression_metrics_match_sklearn(shape, seed):
    rng = np.random.default_rng(seed)
    y = rng.standard_normal(shape).astype(np.float32)
    p = (y + 0.5 * rng.standard_normal(shape)).astype(np.float32)
    for ours, theirs in (
        (M.mse, skm.mean_squared_error),
        (M.mae, skm.mean_absolute_error),
        (M.r2, skm.r2_score),
    ):
        expected = theirs(y, p)
        assert ours(mx.array(y), mx.array(p)) == pytest.approx(expected, rel=1e-6)
        assert ours(y, p) == pytest.approx(expected, rel=1e-6)


def test_r2_constant_target_follows_sklearn():
    y = np.ones(5)
    assert M.r2(y, y) == skm.r2_score(y, y) == 1.0
    assert M.r2(y, y + 1) == skm.r2_score(y, y + 1) == 0.0


@pytest.mark.parametrize(
    "fn", [M.accuracy, M.precision, M.recall, M.f1, M.confusion_matrix, M.mse, M.mae, M.r2]
)
def test_mismatched_shapes_are_refused_naming_both(fn):
    y = np.zeros(6, dtype=np.int64)
    pred = np.zeros(5, dtype=np.int64)
    with pytest.raises(ValueError) as e:
        fn(y, pred)
    assert "(6,)" in str(e.value) and "(5,)" in str(e.value)


def test_regression_metrics_never_broadcast():
    with pytest.raises(ValueError, match=r"\(4,\).*\(4, 1\)"):
        M.mse(np.zeros(4), np.zeros((4, 1)))


def test_non_integer_targets_are_refused_for_classification():
    with pytest.raises(ValueError, match="class indices"):
        M.accuracy(np.array([0.5, 1.0]), np.array([0, 1]))


def test_get_metric_names():
    rng = np.random.default_rng(0)
    y, pred = _labels(rng, 30, 3), _labels(rng, 30, 3)
    name, fn = M.get_metric("f1_weighted")
    assert name == "f1_weighted"
    assert fn(y, pred) == pytest.approx(skm.f1_score(y, pred, average="weighted"))
    # plain "precision" is binary for 0/1 labels, macro otherwise
    _, fn = M.get_metric("precision")
    assert fn(y, pred) == pytest.approx(skm.precision_score(y, pred, average="macro"))
    yb, pb = _labels(rng, 30, 2), _labels(rng, 30, 2)
    assert fn(yb, pb) == pytest.approx(skm.precision_score(yb, pb))
    assert M.get_metric("acc")[0] == "accuracy"
    with pytest.raises(ValueError, match="unknown metric"):
        M.get_metric("accuracyy")
    with pytest.raises(ValueError, match="average"):
        M.get_metric("f1_samples")
