"""Core ops against real MLX where chainrule once differed (values and dtypes)."""

from __future__ import annotations

import numpy as np
import pytest

mlx_core = pytest.importorskip("mlx.core")

import chainrule.core as cx  # noqa: E402


@pytest.mark.parametrize("n", [1, 16, 12, 20, 28, 24, 40, 56, 112, 28 * 64])
@pytest.mark.parametrize("dtype", ["float32", "float16", "int32"])
@pytest.mark.parametrize("scale", [None, 0.34])
def test_hadamard_transform_matches_mlx(n: int, dtype: str, scale: float | None) -> None:
    """Lengths m * 2^k (m in 1, 12, 20, 28) transform as MLX's: Sloane's matrix of order m
    times Sylvester's, on a strided view, integers as float32."""
    x = np.random.default_rng(n).standard_normal((6, n)).astype(dtype)
    kw = {} if scale is None else {"scale": scale}
    want = mlx_core.hadamard_transform(mlx_core.array(x)[::2], **kw)
    got = cx.hadamard_transform(cx.array(x)[::2], **kw)
    assert str(got.dtype).split(".")[-1] == str(want.dtype).split(".")[-1]
    tol = 1e-5 if dtype != "float16" else 2e-3
    np.testing.assert_allclose(np.array(got), np.array(want), rtol=tol, atol=tol * 8)


@pytest.mark.parametrize("n", [16, 12, 20, 56])
def test_hadamard_transform_bfloat16_matches_mlx(n: int) -> None:
    """bfloat16 in, bfloat16 out, within bfloat16's rounding of MLX's."""
    x = np.random.default_rng(n).standard_normal((3, n)).astype(np.float32)
    want = mlx_core.hadamard_transform(mlx_core.array(x).astype(mlx_core.bfloat16), scale=0.34)
    got = cx.hadamard_transform(cx.array(x).astype(cx.bfloat16), scale=0.34)
    assert got.dtype == cx.bfloat16
    np.testing.assert_allclose(
        np.array(got.astype(cx.float32)), np.array(want.astype(mlx_core.float32)), atol=0.05
    )


@pytest.mark.parametrize("n", [36, 240, 13, 6])
def test_hadamard_transform_refuses_other_lengths(n: int) -> None:
    """Lengths that are not m * 2^k are a ValueError naming the length (MLX: m in 1, 12,
    20, 28 only)."""
    with pytest.raises(ValueError, match=f"length {n}"):
        cx.hadamard_transform(cx.ones((2, n)))
