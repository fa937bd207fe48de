"""Every initializer in ``nn.init`` against real MLX.

The random streams differ (MLX's threefry, NumPy's generator), so random initializers are
compared by their distributions: both sides are seeded and draw 131,072 values, and the
shares below MLX's quantiles, the Kolmogorov-Smirnov distance, the mean and the spread agree
within bounds six standard errors wide (seeded, so the comparison is deterministic). Deterministic ones (``constant``, ``identity``) are equal,
and ``orthogonal``/``sparse`` are compared by the structure MLX gives them.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pytest

mlx_core = pytest.importorskip("mlx.core")
mlx_init = pytest.importorskip("mlx.nn.init")

import chainrule.core as cx  # noqa: E402
import chainrule.nn as cnn  # noqa: E402

QUANTILES = np.array([0.001, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 0.999])

# (name, constructor kwargs, call kwargs, shape)
RANDOM_CASES = [
    ("uniform", {}, {}, (256, 512)),
    ("uniform", {"low": -3.0, "high": 0.5}, {}, (512, 256)),
    ("normal", {}, {}, (256, 512)),
    ("normal", {"mean": 2.0, "std": 0.3}, {}, (512, 256)),
    ("glorot_uniform", {}, {}, (256, 512)),
    ("glorot_uniform", {}, {"gain": 2.5}, (64, 4, 4, 32)),
    ("glorot_normal", {}, {}, (512, 256)),
    ("glorot_normal", {}, {"gain": 0.5}, (32, 3, 3, 128)),
    ("he_uniform", {}, {}, (256, 512)),
    ("he_uniform", {}, {"mode": "fan_out", "gain": 2.0}, (64, 4, 4, 32)),
    ("he_normal", {}, {}, (512, 256)),
    ("he_normal", {}, {"mode": "fan_out"}, (32, 2, 2, 1024)),
]
BOUNDED = {"uniform", "glorot_uniform", "he_uniform"}


def _names(module: Any) -> list[str]:
    return sorted(
        n for n, v in vars(module).items() if inspect.isfunction(v) and not n.startswith("_")
    )


def test_every_mlx_initializer_is_compared() -> None:
    """chainrule.nn.init has every initializer MLX has, and each has a comparison here."""
    names = set(_names(mlx_init))
    assert names <= set(_names(cnn.init)), names - set(_names(cnn.init))
    compared = {c[0] for c in RANDOM_CASES} | {"constant", "identity", "orthogonal", "sparse"}
    assert names == compared, names ^ compared


def _draw(lib: Any, init_mod: Any, name: str, kw: dict, call_kw: dict, shape: tuple) -> np.ndarray:
    lib.random.seed(11)
    out = getattr(init_mod, name)(**kw)(lib.zeros(shape), **call_kw)
    return np.array(out)


@pytest.mark.parametrize(
    "name,kw,call_kw,shape", RANDOM_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(RANDOM_CASES)]
)
def test_random_initializer_distribution_matches_mlx(
    name: str, kw: dict, call_kw: dict, shape: tuple
) -> None:
    """Same shape and dtype; quantiles, mean and standard deviation agree; same bounds."""
    want = _draw(mlx_core, mlx_init, name, kw, call_kw, shape)
    got = _draw(cx, cnn.init, name, kw, call_kw, shape)
    assert got.shape == want.shape and got.dtype == want.dtype
    scale = float(want.std())
    n = want.size
    # standard error of a sample standard deviation, twice (two independent samples), x6
    assert abs(got.std() - scale) <= 6 * np.sqrt(2) * scale / np.sqrt(2 * n)
    assert abs(got.mean() - want.mean()) <= 6 * np.sqrt(2) * scale / np.sqrt(n)
    # In probability space: the share of chainrule's draws below MLX's q-quantile is q within
    # 6 standard deviations of the two-sample difference, sqrt(2 q (1 - q) / n); and the
    # Kolmogorov-Smirnov distance is below its 1e-9 critical value, sqrt(ln(2e9) / n).
    xq = np.quantile(want, QUANTILES)
    share = (got.reshape(-1)[None, :] <= xq[:, None]).mean(axis=1)
    assert np.all(np.abs(share - QUANTILES) <= 6 * np.sqrt(2 * QUANTILES * (1 - QUANTILES) / n)), (
        share,
        QUANTILES,
    )
    both = np.sort(np.concatenate([got.reshape(-1), want.reshape(-1)]))
    ks = np.abs(
        np.searchsorted(np.sort(got.reshape(-1)), both, side="right") / n
        - np.searchsorted(np.sort(want.reshape(-1)), both, side="right") / n
    ).max()
    assert ks < np.sqrt(np.log(2e9) / n), ks
    if name in BOUNDED:  # both bounded by the same limit, and both reach close to it
        limit = max(abs(want.min()), abs(want.max())) if name != "uniform" else None
        if limit is not None:
            assert np.abs(got).max() <= limit * (1 + 1e-4)
            assert np.abs(got).max() >= limit * (1 - 1e-3)
        else:
            lo, hi = kw.get("low", 0.0), kw.get("high", 1.0)
            assert lo <= got.min() and got.max() < hi and lo <= want.min() and want.max() < hi


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize(
    "name", ["uniform", "normal", "glorot_normal", "he_uniform", "constant", "identity"]
)
def test_initializer_dtype_matches_mlx(name: str, dtype: str) -> None:
    """``dtype=`` gives the same dtype on both sides, whatever the array passed in holds."""
    args = (0.5,) if name == "constant" else ()
    m = getattr(mlx_init, name)(*args, dtype=getattr(mlx_core, dtype))(
        mlx_core.zeros((4, 4), mlx_core.float32)
    )
    c = getattr(cnn.init, name)(*args, dtype=getattr(cx, dtype))(cx.zeros((4, 4), cx.float32))
    assert str(c.dtype).split(".")[-1] == str(m.dtype).split(".")[-1]
    assert c.shape == m.shape


@pytest.mark.parametrize("shape", [(3, 3), (5, 5)])
def test_identity_and_constant_equal_mlx(shape: tuple) -> None:
    """The deterministic initializers give MLX's values exactly."""
    for name, args in (("identity", ()), ("constant", (-1.25,))):
        m = np.array(getattr(mlx_init, name)(*args)(mlx_core.zeros(shape)))
        c = np.array(getattr(cnn.init, name)(*args)(cx.zeros(shape)))
        np.testing.assert_array_equal(c, m)
        assert c.dtype == m.dtype


def test_identity_refuses_what_mlx_refuses() -> None:
    """A non-square or non-2-D array is a ValueError on both sides."""
    for shape in ((2, 3), (2, 2, 2)):
        with pytest.raises(ValueError):
            mlx_init.identity()(mlx_core.zeros(shape))
        with pytest.raises(ValueError):
            cnn.init.identity()(cx.zeros(shape))


@pytest.mark.parametrize("shape,gain", [((6, 4), 1.0), ((4, 6), 2.0), ((5, 5), 0.5)])
def test_orthogonal_structure_matches_mlx(shape: tuple, gain: float) -> None:
    """Rows or columns orthonormal times ``gain``, as MLX's."""
    for lib, init in ((mlx_core, mlx_init), (cx, cnn.init)):
        lib.random.seed(2)
        w = np.array(init.orthogonal(gain=gain)(lib.zeros(shape))).astype(np.float64)
        assert w.shape == shape and w.dtype == np.float64
        gram = w @ w.T if shape[0] <= shape[1] else w.T @ w
        np.testing.assert_allclose(gram, gain**2 * np.eye(min(shape)), atol=1e-5)


@pytest.mark.parametrize("sparsity", [0.0, 0.25, 0.5, 0.9])
def test_sparse_structure_matches_mlx(sparsity: float) -> None:
    """The same number of zeros in each row; the non-zeros from the same normal."""
    counts, spreads = [], []
    for lib, init in ((mlx_core, mlx_init), (cx, cnn.init)):
        lib.random.seed(4)
        w = np.array(init.sparse(sparsity, mean=0.0, std=0.7)(lib.zeros((2000, 40))))
        counts.append((w == 0).sum(axis=1))
        spreads.append(w[w != 0].std())
    np.testing.assert_array_equal(counts[1], counts[0])
    if sparsity < 0.9:
        assert abs(spreads[1] - spreads[0]) < 0.02
