"""Evaluation metrics computed from chainrule arrays, NumPy arrays or lists.

Every metric takes ``(y_true, y_pred)`` and returns a Python ``float``
(:func:`confusion_matrix` returns a NumPy matrix). Results agree with scikit-learn's
functions of the same name; shapes that do not line up are refused with a ``ValueError``
naming both, never broadcast.

How classification metrics read ``y_pred`` (``y_true`` holds class indices of shape ``S``):

* shape ``S + (C,)`` with ``C >= 2``: one score per class (logits or probabilities); the
  predicted class is the arg-max over the last axis;
* shape ``S + (1,)`` or ``S``, integer (or floating with only whole values): class indices;
* shape ``S + (1,)`` or ``S``, floating with fractional values: the probability of class 1;
  the class is ``y_pred > threshold`` (``threshold=0.5``). A single column of raw scores
  (values outside ``[0, 1]``) is refused unless you pass ``threshold`` yourself (``0.0`` for
  logits), because thresholding logits at 0.5 silently gives wrong answers.

``y_true`` may be floating (as BCE targets are) when all its values are whole numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np

__all__ = [
    "accuracy",
    "precision",
    "recall",
    "f1",
    "f1_score",
    "confusion_matrix",
    "mse",
    "mae",
    "r2",
    "get_metric",
    "METRICS",
]

Average = Literal["binary", "macro", "micro", "weighted"]
_AVERAGES = ("binary", "macro", "micro", "weighted")


def _numpy(x: Any, name: str, metric: str) -> np.ndarray:
    """The NumPy value of a chainrule array, a NumPy array or nested lists (no copy)."""
    data = getattr(x, "_data", None)
    if isinstance(data, np.ndarray):
        return data
    if isinstance(x, np.ndarray):
        return x
    try:
        out = np.asarray(x)
    except Exception as e:  # a ragged list, an unrelated object
        raise ValueError(f"{metric}: {name} is not array-like ({type(x).__name__})") from e
    if out.dtype.kind not in "biuf":
        raise ValueError(f"{metric}: {name} must be numeric, got dtype {out.dtype}")
    return out


def _class_indices(y: np.ndarray, name: str, metric: str) -> np.ndarray:
    """``y`` as int64 class indices; floats must hold whole numbers."""
    if y.dtype.kind in "iub":
        return y.astype(np.int64, copy=False)
    if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
        raise ValueError(
            f"{metric}: {name} must hold class indices (whole numbers); "
            f"got values such as {y[y != np.round(y)][:3].tolist()}"
        )
    return y.astype(np.int64)


def _predicted_classes(
    y_true: Any, y_pred: Any, metric: str, threshold: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """Both arguments as flat int64 class indices of equal length (see the module doc)."""
    t = _numpy(y_true, "y_true", metric)
    p = _numpy(y_pred, "y_pred", metric)
    if p.shape == t.shape + (1,) or (p.shape == t.shape and p.ndim > 0):
        p = p.reshape(t.shape)
        if p.dtype.kind == "f" and (threshold is not None or not np.all(p == np.round(p))):
            if threshold is None:
                if p.size and (p.min() < 0.0 or p.max() > 1.0):
                    raise ValueError(
                        f"{metric}: y_pred of shape {tuple(p.shape)} has one score per "
                        f"example with values outside [0, 1] (min {p.min():.4g}, max "
                        f"{p.max():.4g}); apply a sigmoid first, or pass threshold=0.0 "
                        "for logits"
                    )
                threshold = 0.5
            p = (p > threshold).astype(np.int64)
        else:
            p = _class_indices(p, "y_pred", metric)
    elif p.ndim == t.ndim + 1 and p.shape[:-1] == t.shape and p.shape[-1] >= 2:
        p = np.argmax(p, axis=-1).astype(np.int64)
    else:
        raise ValueError(
            f"{metric}: y_true of shape {tuple(t.shape)} and y_pred of shape "
            f"{tuple(p.shape)} do not match; y_pred must have y_true's shape (class indices "
            f"or probabilities) or y_true's shape plus a class axis (scores per class)"
        )
    t = _class_indices(t, "y_true", metric)
    if t.size == 0:
        raise ValueError(f"{metric}: y_true is empty")
    return t.reshape(-1), p.reshape(-1)


def accuracy(y_true: Any, y_pred: Any, threshold: float | None = None) -> float:
    """The fraction of examples whose predicted class equals the true class.

    Args:
        y_true: Class indices, shape ``S``.
        y_pred: Class indices (shape ``S``), probabilities of class 1 (shape ``S`` or
            ``S + (1,)``) or scores per class (shape ``S + (C,)``); see the module doc.
        threshold: Cut-off for a single column of probabilities; ``None`` means 0.5 and
            refuses values outside ``[0, 1]``.

    Returns:
        The accuracy in ``[0, 1]``.
    """
    t, p = _predicted_classes(y_true, y_pred, "accuracy", threshold)
    return float(np.mean(t == p))


def _check_average(average: str, metric: str) -> None:
    if average not in _AVERAGES:
        raise ValueError(f"{metric}: average must be one of {_AVERAGES}, got {average!r}")


def _per_class_counts(t: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, ...]:
    """Labels present in either argument, with true positives, predicted and true counts."""
    labels, inverse = np.unique(np.concatenate([t, p]), return_inverse=True)
    ti, pi = inverse[: t.size], inverse[t.size :]
    n = labels.size
    tp = np.bincount(ti[ti == pi], minlength=n)
    pred = np.bincount(pi, minlength=n)
    true = np.bincount(ti, minlength=n)
    return labels, tp, pred, true


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` with 0 where ``den`` is 0 (scikit-learn's ``zero_division=0``)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def _prf(
    y_true: Any,
    y_pred: Any,
    average: str,
    pos_label: int,
    metric: str,
    threshold: float | None,
) -> tuple[float, float, float]:
    """Precision, recall and F1 for one averaging mode."""
    _check_average(average, metric)
    t, p = _predicted_classes(y_true, y_pred, metric, threshold)
    labels, tp, pred, true = _per_class_counts(t, p)
    if average == "micro":
        # Single-label problems: every miss is both a false positive and a false negative.
        tp_all, n = float(tp.sum()), float(t.size)
        prec = rec = tp_all / n
        return prec, rec, prec
    if average == "binary":
        if labels.size > 2:
            raise ValueError(
                f"{metric}: average='binary' needs at most two classes, found "
                f"{labels.tolist()}; choose average='macro', 'micro' or 'weighted'"
            )
        if pos_label not in labels:
            if labels.size == 2:
                raise ValueError(
                    f"{metric}: pos_label={pos_label} is not one of the labels {labels.tolist()}"
                )
            return 0.0, 0.0, 0.0
        i = int(np.searchsorted(labels, pos_label))
        labels, tp, pred, true = labels[i : i + 1], tp[i : i + 1], pred[i : i + 1], true[i : i + 1]
    prec = _ratio(tp, pred)
    rec = _ratio(tp, true)
    f = _ratio(2 * tp, pred + true)
    if average == "weighted":
        weights = true / true.sum()
        return float(prec @ weights), float(rec @ weights), float(f @ weights)
    return float(prec.mean()), float(rec.mean()), float(f.mean())


def precision(
    y_true: Any,
    y_pred: Any,
    average: Average = "binary",
    pos_label: int = 1,
    threshold: float | None = None,
) -> float:
    """Precision ``tp / (tp + fp)``; 0 where nothing was predicted (scikit-learn's default).

    Args:
        y_true: Class indices.
        y_pred: Predictions, read as described in the module doc.
        average: ``"binary"`` (the class ``pos_label`` only; at most two classes),
            ``"macro"`` (unweighted mean over classes), ``"micro"`` (from global counts),
            ``"weighted"`` (mean weighted by each class's number of true examples). Classes
            are those that occur in either argument.
        pos_label: The positive class for ``average="binary"``.
        threshold: Cut-off for a single column of probabilities (see :func:`accuracy`).

    Returns:
        The precision in ``[0, 1]``.
    """
    return _prf(y_true, y_pred, average, pos_label, "precision", threshold)[0]


def recall(
    y_true: Any,
    y_pred: Any,
    average: Average = "binary",
    pos_label: int = 1,
    threshold: float | None = None,
) -> float:
    """Recall ``tp / (tp + fn)``; arguments as for :func:`precision`.

    Args:
        y_true: Class indices.
        y_pred: Predictions, read as described in the module doc.
        average: ``"binary"``, ``"macro"``, ``"micro"`` or ``"weighted"``.
        pos_label: The positive class for ``average="binary"``.
        threshold: Cut-off for a single column of probabilities.

    Returns:
        The recall in ``[0, 1]``.
    """
    return _prf(y_true, y_pred, average, pos_label, "recall", threshold)[1]


def f1(
    y_true: Any,
    y_pred: Any,
    average: Average = "binary",
    pos_label: int = 1,
    threshold: float | None = None,
) -> float:
    """F1 score ``2 tp / (2 tp + fp + fn)`` per class, averaged as for :func:`precision`.

    As in scikit-learn, ``"macro"`` and ``"weighted"`` average the per-class F1 scores (not
    the F1 of the averaged precision and recall).

    Args:
        y_true: Class indices.
        y_pred: Predictions, read as described in the module doc.
        average: ``"binary"``, ``"macro"``, ``"micro"`` or ``"weighted"``.
        pos_label: The positive class for ``average="binary"``.
        threshold: Cut-off for a single column of probabilities.

    Returns:
        The F1 score in ``[0, 1]``.
    """
    return _prf(y_true, y_pred, average, pos_label, "f1", threshold)[2]


f1_score = f1


def confusion_matrix(
    y_true: Any,
    y_pred: Any,
    num_classes: int | None = None,
    threshold: float | None = None,
) -> np.ndarray:
    """Counts of (true class, predicted class) pairs.

    Args:
        y_true: Class indices.
        y_pred: Predictions, read as described in the module doc.
        num_classes: Rows and columns are the classes ``0 .. num_classes - 1``; ``None``
            means the sorted classes occurring in either argument (scikit-learn's rule).
        threshold: Cut-off for a single column of probabilities.

    Returns:
        An int64 NumPy matrix ``m`` where ``m[i, j]`` counts examples of class ``i``
        predicted as class ``j``.
    """
    t, p = _predicted_classes(y_true, y_pred, "confusion_matrix", threshold)
    if num_classes is None:
        labels, inverse = np.unique(np.concatenate([t, p]), return_inverse=True)
        t, p, n = inverse[: t.size], inverse[t.size :], labels.size
    else:
        n = int(num_classes)
        bad = np.concatenate([t, p])
        bad = bad[(bad < 0) | (bad >= n)]
        if bad.size:
            raise ValueError(
                f"confusion_matrix: class {int(bad[0])} is outside 0..{n - 1} "
                f"(num_classes={num_classes})"
            )
    return np.bincount(t * n + p, minlength=n * n).reshape(n, n).astype(np.int64)


def _regression_pair(y_true: Any, y_pred: Any, metric: str) -> tuple[np.ndarray, np.ndarray]:
    t = _numpy(y_true, "y_true", metric)
    p = _numpy(y_pred, "y_pred", metric)
    if t.shape != p.shape:
        raise ValueError(
            f"{metric}: y_true of shape {tuple(t.shape)} and y_pred of shape "
            f"{tuple(p.shape)} must have the same shape (reshape one of them; they are "
            "never broadcast)"
        )
    if t.size == 0:
        raise ValueError(f"{metric}: y_true is empty")
    return t.astype(np.float64), p.astype(np.float64)


def mse(y_true: Any, y_pred: Any) -> float:
    """Mean squared error.

    Args:
        y_true: Targets.
        y_pred: Predictions, of the same shape.

    Returns:
        ``mean((y_true - y_pred) ** 2)``.
    """
    t, p = _regression_pair(y_true, y_pred, "mse")
    return float(np.mean((t - p) ** 2))


def mae(y_true: Any, y_pred: Any) -> float:
    """Mean absolute error.

    Args:
        y_true: Targets.
        y_pred: Predictions, of the same shape.

    Returns:
        ``mean(|y_true - y_pred|)``.
    """
    t, p = _regression_pair(y_true, y_pred, "mae")
    return float(np.mean(np.abs(t - p)))


def r2(y_true: Any, y_pred: Any) -> float:
    """Coefficient of determination ``1 - SS_res / SS_tot``.

    For 2-D targets the score is computed per column and averaged uniformly, as
    scikit-learn's default ``multioutput="uniform_average"``. A constant column scores 1.0
    when predicted exactly and 0.0 otherwise (scikit-learn's ``force_finite=True``).

    Args:
        y_true: Targets, shape ``(n,)`` or ``(n, k)``.
        y_pred: Predictions, of the same shape.

    Returns:
        The R^2 score (at most 1; negative for predictions worse than the mean).
    """
    t, p = _regression_pair(y_true, y_pred, "r2")
    t2 = t.reshape(t.shape[0], -1) if t.ndim else t.reshape(1, 1)
    p2 = p.reshape(t2.shape)
    ss_res = np.sum((t2 - p2) ** 2, axis=0)
    ss_tot = np.sum((t2 - t2.mean(axis=0)) ** 2, axis=0)
    scores = np.where(ss_tot > 0, 1.0 - _ratio(ss_res, ss_tot), np.where(ss_res > 0, 0.0, 1.0))
    return float(scores.mean())


METRICS: dict[str, Callable[..., float]] = {
    "accuracy": accuracy,
    "acc": accuracy,
    "precision": precision,
    "recall": recall,
    "f1": f1,
    "mse": mse,
    "mae": mae,
    "r2": r2,
}
"""Metric names accepted by :func:`get_metric`, ``fit`` and ``evaluate``."""


def _auto_average(fn: Callable[..., float], name: str) -> Callable[[Any, Any], float]:
    """A precision/recall/F1 that is binary for two classes and macro-averaged otherwise."""

    def metric(y_true: Any, y_pred: Any) -> float:
        t = _numpy(y_true, "y_true", name)
        p = _numpy(y_pred, "y_pred", name)
        multi_column = p.ndim == t.ndim + 1 and p.shape[-1] > 2
        labels = np.unique(t)
        binary = not multi_column and labels.size <= 2 and np.all(np.isin(labels, (0, 1)))
        return fn(y_true, y_pred, average="binary" if binary else "macro")

    metric.__name__ = name
    return metric


def get_metric(metric: str | Callable[..., float]) -> tuple[str, Callable[[Any, Any], float]]:
    """Resolve a metric given by name or as a function.

    Names: ``"accuracy"`` (or ``"acc"``), ``"mse"``, ``"mae"``, ``"r2"``, and
    ``"precision"``, ``"recall"``, ``"f1"`` optionally suffixed with an average
    (``"f1_macro"``, ``"precision_weighted"``, ``"recall_micro"``, ``"f1_binary"``). Without a
    suffix they use ``average="binary"`` when the true labels are 0/1 and ``"macro"``
    otherwise. A function is used as is and named after its ``__name__``; use
    ``functools.partial(accuracy, threshold=0.0)`` for a single column of logits.

    Args:
        metric: A name or a function ``fn(y_true, y_pred) -> float``.

    Returns:
        ``(name, fn)`` where ``fn(y_true, y_pred)`` returns a float.

    Raises:
        ValueError: For an unknown name.
    """
    if callable(metric):
        # functools.partial(accuracy, threshold=0.0) is named after the function it wraps.
        base = getattr(metric, "func", metric)
        return getattr(metric, "__name__", getattr(base, "__name__", type(metric).__name__)), metric
    if not isinstance(metric, str):
        raise ValueError(f"metric must be a name or a function, got {metric!r}")
    base, _, average = metric.partition("_")
    if base in ("precision", "recall", "f1") and average:
        if average not in _AVERAGES:
            raise ValueError(f"unknown metric {metric!r}: the average must be one of {_AVERAGES}")
        fn = METRICS[base]

        def averaged(y_true: Any, y_pred: Any) -> float:
            return fn(y_true, y_pred, average=average)

        averaged.__name__ = metric
        return metric, averaged
    if metric in ("precision", "recall", "f1"):
        return metric, _auto_average(METRICS[metric], metric)
    if metric not in METRICS:
        names = sorted(set(METRICS) - {"acc"})
        raise ValueError(f"unknown metric {metric!r}; known metrics: {names} (or a function)")
    return ("accuracy" if metric == "acc" else metric), METRICS[metric]


def _resolve_metrics(
    metrics: str | Callable[..., float] | Sequence[str | Callable[..., float]] | None,
) -> list[tuple[str, Callable[[Any, Any], float]]]:
    """``fit``/``evaluate``'s ``metrics`` argument as ``(name, fn)`` pairs."""
    if metrics is None:
        return []
    if isinstance(metrics, str) or callable(metrics):
        metrics = (metrics,)
    out = [get_metric(m) for m in metrics]
    names = [n for n, _ in out]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ValueError(f"metrics: the names {sorted(dup)} appear more than once")
    if "loss" in names:
        raise ValueError("metrics: 'loss' is always reported; do not list it as a metric")
    return out
