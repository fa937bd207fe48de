"""Moving values between real MLX and chainrule, and comparing them.

Both sides speak NumPy (``np.asarray`` of either array), so every value crosses through a
NumPy copy: parameters go from an MLX module to a chainrule module with ``tree_flatten`` on
one side and ``update(tree_unflatten(...))`` on the other.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import chainrule.core as cx
import chainrule.utils as cutils

F32 = {"rtol": 2e-4, "atol": 2e-5}


def np_value(a: Any) -> np.ndarray:
    """A NumPy copy of one array; MLX's bfloat16 (no buffer format NumPy reads) goes through
    float32 to ``ml_dtypes.bfloat16``, exactly."""
    if str(getattr(a, "dtype", "")).endswith("bfloat16") and not isinstance(a, cx.array):
        import ml_dtypes
        import mlx.core as mx

        return np.array(a.astype(mx.float32)).astype(ml_dtypes.bfloat16)
    return np.array(a)


def to_numpy(value: Any) -> Any:
    """A NumPy copy of an MLX or chainrule array; trees (lists, tuples, dicts) mapped through."""
    if isinstance(value, dict):
        return {k: to_numpy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_numpy(v) for v in value)
    if value is None or isinstance(value, (int, float, bool, str)):
        return value
    return np_value(value)


def to_mlx(value: Any) -> Any:
    """``value`` (NumPy or a tree of it) as real MLX arrays."""
    import mlx.core as mx

    if isinstance(value, dict):
        return {k: to_mlx(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_mlx(v) for v in value)
    if value is None or isinstance(value, (int, float, bool, str)):
        return value
    return mx.array(np.asarray(value))


def to_cx(value: Any) -> Any:
    """``value`` (NumPy or a tree of it) as chainrule arrays."""
    if isinstance(value, dict):
        return {k: to_cx(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_cx(v) for v in value)
    if value is None or isinstance(value, (int, float, bool, str)):
        return value
    return cx.array(np.asarray(value))


def flat(tree: Any, utils: Any = cutils) -> dict[str, np.ndarray]:
    """``{dotted.key: numpy value}`` of a parameter tree (either side's ``tree_flatten``)."""
    return {k: np_value(v) for k, v in utils.tree_flatten(tree)}


def copy_params(mlx_module: Any, cx_module: Any) -> None:
    """Give ``cx_module`` the MLX module's parameters (same keys and shapes are asserted)."""
    import mlx.utils as mutils

    src = flat(mlx_module.parameters(), mutils)
    dst = flat(cx_module.parameters())
    assert sorted(src) == sorted(dst), f"parameter keys differ: mlx {sorted(src)} cx {sorted(dst)}"
    for k in src:
        assert src[k].shape == dst[k].shape, f"{k}: mlx {src[k].shape} cx {dst[k].shape}"
        assert src[k].dtype == dst[k].dtype, f"{k}: mlx {src[k].dtype} cx {dst[k].dtype}"
    cx_module.update(cutils.tree_unflatten([(k, cx.array(v)) for k, v in src.items()]))


def assert_trees_close(got: Any, want: Any, what: str, **tol: float) -> None:
    """Two trees (chainrule, MLX) hold the same keys, shapes, dtypes and values."""
    import mlx.utils as mutils

    tol = {**F32, **tol}
    if isinstance(got, (dict, list, tuple)) and not isinstance(got, cx.array):
        g = flat(got)
        w = flat(want, mutils)
    else:
        g, w = {"": np_value(got)}, {"": np_value(want)}
    assert sorted(g) == sorted(w), f"{what}: keys differ: cx {sorted(g)} mlx {sorted(w)}"
    for k in w:
        assert g[k].shape == w[k].shape, f"{what}[{k}]: cx {g[k].shape} mlx {w[k].shape}"
        assert g[k].dtype == w[k].dtype, f"{what}[{k}]: cx {g[k].dtype} mlx {w[k].dtype}"
        np.testing.assert_allclose(g[k], w[k], err_msg=f"{what}[{k}]", **tol)
