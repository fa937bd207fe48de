"""Train / validation / test row indices and feature standardisation, in plain NumPy.

    from chainrule.data import Standardizer, split_indices

    train, val, test = split_indices(len(y), val_split=0.1, test_split=0.2, seed=0, labels=y)
    scaler = Standardizer.fit(X[train])
    X_scaled = scaler.transform(X)

The `chainrule` command splits and scales tables with these, and stores the split settings and
the scaler's mean and std in a run's config.json so `chainrule evaluate` can repeat them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["split_indices", "Standardizer"]


def split_indices(
    n: int,
    val_split: float,
    test_split: float,
    seed: int,
    labels: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random train / validation / test row indices.

    With `labels` the split is stratified: each class contributes `round(count * fraction)`
    rows to the validation and test sets, so a small dataset keeps every class in each set.

    Args:
        n: number of rows.
        val_split: fraction of rows for validation, in [0, 1).
        test_split: fraction of rows for testing, in [0, 1).
        seed: seed of the NumPy generator; the same seed gives the same split.
        labels: class index of every row, or None for a plain random split.

    Returns:
        Sorted int64 index arrays (train, val, test), disjoint and covering range(n).

    Raises:
        ValueError: if the fractions leave no training rows, or a requested set is empty.
    """
    if not (0 <= val_split < 1 and 0 <= test_split < 1 and val_split + test_split < 1):
        raise ValueError(
            f"val_split {val_split} and test_split {test_split} must be in [0, 1) and "
            "leave rows for training (sum below 1)"
        )
    rng = np.random.default_rng(seed)
    groups = (
        [np.arange(n)]
        if labels is None
        else [np.flatnonzero(labels == c) for c in np.unique(labels)]
    )
    train, val, test = [], [], []
    for group in groups:
        group = rng.permutation(group)
        n_test = int(round(len(group) * test_split))
        n_val = int(round(len(group) * val_split))
        if n_test + n_val >= len(group):  # a class too small to share: keep it for training
            n_test = n_val = 0
        test.append(group[:n_test])
        val.append(group[n_test : n_test + n_val])
        train.append(group[n_test + n_val :])
    out = tuple(np.sort(np.concatenate(parts)).astype(np.int64) for parts in (train, val, test))
    for name, part, fraction, arg in (
        ("validation", out[1], val_split, "val_split"),
        ("test", out[2], test_split, "test_split"),
    ):
        if fraction > 0 and len(part) == 0:
            raise ValueError(
                f"the data has only {n} rows: too few for a {name} set of {fraction:g} of them "
                f"(use more data or set {arg} 0)"
            )
    if len(out[0]) == 0:
        raise ValueError(f"the data has only {n} rows: none left for training")
    return out  # type: ignore[return-value]


class Standardizer:
    """Feature scaling `(x - mean) / std`, fitted on the training rows only.

    Columns that are constant in the training rows get std 1 (they become 0, not NaN).

    Args:
        mean: per-column means.
        std: per-column standard deviations (zeros are replaced by 1).
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean = np.asarray(mean, dtype=np.float64)
        std = np.asarray(std, dtype=np.float64)
        self.std = np.where(std > 1e-12, std, 1.0)

    @classmethod
    def fit(cls, X: np.ndarray) -> Standardizer:
        """Means and (population) standard deviations of X's columns, like scikit-learn's
        StandardScaler.

        Args:
            X: training features, shape (n, d).

        Returns:
            The fitted scaler.
        """
        X = np.asarray(X, dtype=np.float64)
        return cls(X.mean(axis=0), X.std(axis=0))

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Scaled features as float32.

        Args:
            X: features, shape (n, d).

        Returns:
            `(X - mean) / std` as float32.
        """
        return ((np.asarray(X, dtype=np.float64) - self.mean) / self.std).astype(np.float32)

    def to_dict(self) -> dict[str, list[float]]:
        """The scaler as JSON-ready lists."""
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}
