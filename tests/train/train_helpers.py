"""Shared small problems for the training tests."""

import numpy as np

import chainrule.core as mx
import chainrule.nn as nn


class MLP(nn.Module):
    """A small classifier with dropout (so training draws random numbers)."""

    def __init__(self, d_in=8, hidden=16, d_out=3, p=0.2):
        super().__init__()
        self.fc1 = nn.Linear(d_in, hidden)
        self.drop = nn.Dropout(p)
        self.fc2 = nn.Linear(hidden, d_out)

    def __call__(self, x):
        return self.fc2(self.drop(nn.relu(self.fc1(x))))


def blobs(n=240, d=8, k=3, seed=0):
    """Three well-separated Gaussian blobs: float32 features, int64 labels."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(k, d))
    y = rng.integers(0, k, size=n)
    X = centers[y] + rng.normal(size=(n, d))
    return X.astype(np.float32), y.astype(np.int64)


def make_model(seed=0, **kw):
    mx.random.seed(seed)
    return MLP(**kw)


def weights(model):
    from chainrule.checkpoint import named_arrays

    return {k: np.array(v) for k, v in named_arrays(model)}  # copies, from any device
