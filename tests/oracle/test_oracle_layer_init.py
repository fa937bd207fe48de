"""Freshly built layers against real MLX: every parameter's shape, dtype and initial
distribution (the default initialisers), without copying any weight across."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

mlx_core = pytest.importorskip("mlx.core")
mlx_nn = pytest.importorskip("mlx.nn")
mlx_utils = pytest.importorskip("mlx.utils")

import chainrule.core as cx  # noqa: E402
import chainrule.nn as cnn  # noqa: E402

from .bridge import flat  # noqa: E402

# layers big enough for their parameters' spread to be measured (>= 4096 values each)
BUILDERS: list[tuple[str, Callable[[Any], Any]]] = [
    ("Linear", lambda nn: nn.Linear(96, 128)),
    ("Bilinear", lambda nn: nn.Bilinear(24, 16, 32)),
    ("Conv1d", lambda nn: nn.Conv1d(32, 64, 5)),
    ("Conv2d", lambda nn: nn.Conv2d(16, 32, 3, groups=2)),
    ("Conv1d-groups", lambda nn: nn.Conv1d(32, 64, 5, groups=4)),
    ("Conv3d", lambda nn: nn.Conv3d(8, 16, 3)),
    ("ConvTranspose1d", lambda nn: nn.ConvTranspose1d(32, 64, 5)),
    ("ConvTranspose2d", lambda nn: nn.ConvTranspose2d(16, 32, 3)),
    ("ConvTranspose3d", lambda nn: nn.ConvTranspose3d(8, 16, 3)),
    ("Embedding", lambda nn: nn.Embedding(512, 64)),
    ("RNN", lambda nn: nn.RNN(64, 96)),
    ("GRU", lambda nn: nn.GRU(64, 96)),
    ("LSTM", lambda nn: nn.LSTM(64, 96)),
    ("MultiHeadAttention", lambda nn: nn.MultiHeadAttention(64, 4, bias=True)),
    ("LayerNorm", lambda nn: nn.LayerNorm(64)),
    ("RMSNorm", lambda nn: nn.RMSNorm(64)),
    ("GroupNorm", lambda nn: nn.GroupNorm(4, 64)),
    ("InstanceNorm", lambda nn: nn.InstanceNorm(64, affine=True)),
    ("BatchNorm", lambda nn: nn.BatchNorm(64)),
    ("PReLU", lambda nn: nn.PReLU(8)),
    ("TransformerEncoderLayer", lambda nn: nn.TransformerEncoderLayer(64, 4)),
    ("AllToShardedLinear", lambda nn: nn.AllToShardedLinear(96, 128)),
    ("ShardedToAllLinear", lambda nn: nn.ShardedToAllLinear(96, 128)),
]


@pytest.mark.parametrize("name,build", BUILDERS, ids=[b[0] for b in BUILDERS])
def test_fresh_parameters_are_distributed_as_mlx(name: str, build: Callable) -> None:
    """Same keys, shapes and dtypes; constant parameters equal; random ones with the same
    bounds (uniform initialisers) or spread (normal ones)."""
    mlx_core.random.seed(1)
    cx.random.seed(1)
    want = flat(build(mlx_nn).parameters(), mlx_utils)
    got = flat(build(cnn).parameters())
    assert sorted(got) == sorted(want)
    for k, w in want.items():
        g = got[k]
        assert g.shape == w.shape and g.dtype == w.dtype, (k, g.shape, w.shape, g.dtype, w.dtype)
        if np.all(w == w.flat[0]):  # a constant initialiser (ones, zeros, a fill value)
            np.testing.assert_array_equal(g, w, err_msg=k)
            continue
        n = w.size
        # the spread: both standard deviations agree within 6 standard errors (sd / sqrt(2n))
        assert abs(g.std() - w.std()) <= 6 * w.std() / np.sqrt(2 * n) * np.sqrt(2), (
            k,
            g.std(),
            w.std(),
        )
        assert abs(g.mean() - w.mean()) <= 6 * w.std() / np.sqrt(n) * np.sqrt(2), (
            k,
            g.mean(),
            w.mean(),
        )
        # a uniform initialiser: the same bound. The largest |value| of n draws lies within
        # bound * 30 / n of the bound but for a chance of exp(-30), so the two maxima do too.
        kurt = ((w - w.mean()) ** 4).mean() / w.var() ** 2
        if kurt < 2.2:  # uniform (1.8), not normal (3)
            bound = np.abs(w).max()
            assert abs(np.abs(g).max() - bound) <= bound * 30 / n, (k, np.abs(g).max(), bound)
