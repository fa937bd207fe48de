"""Affine layers: ``Identity``, ``Linear`` and ``Bilinear`` (MLX layouts)."""

from __future__ import annotations

import math
from typing import Any

from ... import core as mx
from ...core.array import array
from ..module import Module

__all__ = ["Identity", "Linear", "Bilinear"]


class Identity(Module):
    """Returns its input unchanged; any constructor arguments are ignored."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def __call__(self, x: array) -> array:
        return x


def _dims(value, alias, name: str, alias_name: str, who: str) -> int:
    if value is not None and alias is not None and value != alias:
        raise ValueError(f"{who}: got both {name}={value} and {alias_name}={alias}")
    value = value if value is not None else alias
    if value is None:
        raise TypeError(f"{who}: missing {name} (PyTorch: {alias_name})")
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{who}: {name} must be a non-negative int, got {value!r}")
    return value


class Linear(Module):
    """``y = x @ W.T + b`` with ``W`` of shape ``(output_dims, input_dims)``.

    Accepts MLX's ``Linear(input_dims, output_dims, bias=True)`` and PyTorch's keywords
    ``in_features`` / ``out_features`` (same order). Weight and bias are drawn from
    ``U(-1/sqrt(input_dims), 1/sqrt(input_dims))``, as both libraries do.

    Args:
        input_dims: size of each input's last axis (``in_features``).
        output_dims: size of each output's last axis (``out_features``).
        bias: learn an additive bias.
        dtype: dtype of the parameters (default float32).
    """

    def __init__(
        self,
        input_dims: int | None = None,
        output_dims: int | None = None,
        bias: bool = True,
        *,
        in_features: int | None = None,
        out_features: int | None = None,
        device: Any = None,
        dtype: mx.Dtype | None = None,
    ) -> None:
        super().__init__()
        input_dims = _dims(input_dims, in_features, "input_dims", "in_features", "Linear")
        output_dims = _dims(output_dims, out_features, "output_dims", "out_features", "Linear")
        dtype = dtype or mx.float32
        scale = math.sqrt(1.0 / input_dims) if input_dims else 0.0
        self.weight = mx.random.uniform(-scale, scale, (output_dims, input_dims), dtype=dtype)
        if bias:
            self.bias = mx.random.uniform(-scale, scale, (output_dims,), dtype=dtype)

    @property
    def input_dims(self) -> int:
        """Size of the input's last axis."""
        return self["weight"].shape[1]

    @property
    def output_dims(self) -> int:
        """Size of the output's last axis."""
        return self["weight"].shape[0]

    in_features = input_dims
    out_features = output_dims

    def _extra_repr(self) -> str:
        return (
            f"input_dims={self.input_dims}, output_dims={self.output_dims}, bias={'bias' in self}"
        )

    takes_tensors = True  # __call__ reads only its input's slots (nn/doors.py, light_door)

    def __call__(self, x: array) -> array:
        if "bias" in self:
            return mx.addmm(self["bias"], x, self["weight"].T)
        return x @ self["weight"].T


class Bilinear(Module):
    """``y[o] = sum_ij x1[i] W[o, j, i] x2[j] + b[o]``, ``W`` of shape ``(output_dims, input2_dims, input1_dims)``.

    The weight's layout is MLX's (PyTorch's ``nn.Bilinear`` stores ``(out, in1, in2)``: its
    weight is this one with the last two axes swapped).

    Args:
        input1_dims: size of the first input's last axis (PyTorch: ``in1_features``).
        input2_dims: size of the second input's last axis (``in2_features``).
        output_dims: size of the output's last axis (``out_features``).
        bias: learn an additive bias.
    """

    def __init__(
        self,
        input1_dims: int | None = None,
        input2_dims: int | None = None,
        output_dims: int | None = None,
        bias: bool = True,
        *,
        in1_features: int | None = None,
        in2_features: int | None = None,
        out_features: int | None = None,
    ) -> None:
        super().__init__()
        input1_dims = _dims(input1_dims, in1_features, "input1_dims", "in1_features", "Bilinear")
        input2_dims = _dims(input2_dims, in2_features, "input2_dims", "in2_features", "Bilinear")
        output_dims = _dims(output_dims, out_features, "output_dims", "out_features", "Bilinear")
        scale = math.sqrt(1.0 / input1_dims) if input1_dims else 0.0
        self.weight = mx.random.uniform(-scale, scale, (output_dims, input2_dims, input1_dims))
        if bias:
            self.bias = mx.random.uniform(-scale, scale, (output_dims,))

    def _extra_repr(self) -> str:
        o, i2, i1 = self["weight"].shape
        return f"input1_dims={i1}, input2_dims={i2}, output_dims={o}, bias={'bias' in self}"

    def __call__(self, x1: array, x2: array) -> array:
        w = self["weight"]
        o, i2, i1 = w.shape
        if x1.shape[-1] != i1 or x2.shape[-1] != i2 or x1.shape[:-1] != x2.shape[:-1]:
            raise ValueError(
                f"Bilinear: inputs of shapes {x1.shape} and {x2.shape} do not fit a weight of "
                f"shape {w.shape} (expected (..., {i1}) and (..., {i2}) with equal batch axes)"
            )
        lead = x1.shape[:-1]
        y = mx.einsum("mi,oji,mj->mo", x1.reshape(-1, i1), w, x2.reshape(-1, i2))
        y = y.reshape(*lead, o)
        if "bias" in self:
            y = y + self["bias"]
        return y
