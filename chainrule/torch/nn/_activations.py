"""PyTorch's activation modules: each stores its constructor's arguments and calls ``F``.

They take PyTorch's arguments (``inplace=``, ``negative_slope=``, ``approximate=``...) and
shadow chainrule.nn's generated classes of the same names in ``chainrule.torch.nn``.
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any

import chainrule.core as mx
from chainrule.core.array import array

from . import functional_act as F
from ._module import Module

__all__ = [
    "CELU",
    "ELU",
    "GELU",
    "GLU",
    "Hardshrink",
    "Hardsigmoid",
    "Hardswish",
    "Hardtanh",
    "LeakyReLU",
    "LogSigmoid",
    "Mish",
    "PReLU",
    "RReLU",
    "ReLU",
    "ReLU6",
    "SELU",
    "SiLU",
    "Sigmoid",
    "Softmax2d",
    "Softplus",
    "Softshrink",
    "Softsign",
    "Tanh",
    "Tanhshrink",
    "Threshold",
]


class _Activation(Module):
    """Base: ``forward`` applies ``_fn`` with the stored keyword arguments."""

    _fn: Any = None
    _keys: tuple = ()

    def extra_repr(self) -> str:
        """PyTorch's text: the arguments, with ``inplace=True`` only when set."""
        parts = [f"{k}={getattr(self, k)!r}" for k in self._keys if k != "inplace"]
        if "inplace" in self._keys and self.inplace:
            parts.append("inplace=True")
        return ", ".join(parts)

    def forward(self, input: array) -> array:
        """Apply the activation."""
        return type(self)._fn(input, **{k: getattr(self, k) for k in self._keys})


class _Shrink(_Activation):
    def extra_repr(self) -> str:
        """PyTorch's text: the threshold alone."""
        return str(self.lambd)


def _simple(name: str, fn: Any, doc: str, keys: tuple = (), **defaults: Any) -> type:
    params = list(defaults.items())

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        Module.__init__(self)
        if len(args) > len(params):
            raise TypeError(f"{name}() takes at most {len(params)} arguments, got {len(args)}")
        values = dict(defaults)
        values.update(zip(defaults, args))
        for k, v in kwargs.items():
            if k not in defaults:
                raise TypeError(f"{name}.__init__() got an unexpected keyword argument {k!r}")
            values[k] = v
        for k, v in values.items():
            object.__setattr__(self, k, v)

    kind = inspect.Parameter
    __init__.__signature__ = inspect.Signature(
        [kind("self", kind.POSITIONAL_OR_KEYWORD)]
        + (
            [kind(k, kind.POSITIONAL_OR_KEYWORD, default=v) for k, v in params]
            if params
            else [kind("args", kind.VAR_POSITIONAL), kind("kwargs", kind.VAR_KEYWORD)]
        )
    )
    return type(
        name,
        (_Shrink if keys == ("lambd",) else _Activation,),
        {
            "__init__": __init__,
            "_fn": staticmethod(fn),
            "_keys": keys,
            "__doc__": doc,
            "__module__": __name__,
            "__qualname__": name,
        },
    )


ReLU = _simple("ReLU", F.relu, "``max(x, 0)``.", ("inplace",), inplace=False)
ReLU6 = _simple("ReLU6", F.relu6, "``min(max(x, 0), 6)``.", ("inplace",), inplace=False)
SELU = _simple("SELU", F.selu, "Scaled ELU.", ("inplace",), inplace=False)
SiLU = _simple("SiLU", F.silu, "``x * sigmoid(x)``.", ("inplace",), inplace=False)
Mish = _simple("Mish", F.mish, "``x * tanh(softplus(x))``.", ("inplace",), inplace=False)
Hardswish = _simple(
    "Hardswish", F.hardswish, "``x * relu6(x + 3) / 6``.", ("inplace",), inplace=False
)
Hardsigmoid = _simple(
    "Hardsigmoid", F.hardsigmoid, "``relu6(x + 3) / 6``.", ("inplace",), inplace=False
)
Sigmoid = _simple("Sigmoid", F.sigmoid, "``1 / (1 + exp(-x))``.")
Tanh = _simple("Tanh", F.tanh, "Hyperbolic tangent.")
Tanhshrink = _simple("Tanhshrink", F.tanhshrink, "``x - tanh(x)``.")
Softsign = _simple("Softsign", F.softsign, "``x / (1 + |x|)``.")
LogSigmoid = _simple("LogSigmoid", F.logsigmoid, "``log(sigmoid(x))``.")
ELU = _simple(
    "ELU",
    F.elu,
    "``x`` above 0, else ``alpha * (exp(x) - 1)``.",
    ("alpha", "inplace"),
    alpha=1.0,
    inplace=False,
)
CELU = _simple(
    "CELU",
    F.celu,
    "Continuously differentiable ELU.",
    ("alpha", "inplace"),
    alpha=1.0,
    inplace=False,
)
LeakyReLU = _simple(
    "LeakyReLU",
    F.leaky_relu,
    "``x`` above 0, else ``negative_slope * x``.",
    ("negative_slope", "inplace"),
    negative_slope=0.01,
    inplace=False,
)
Softplus = _simple(
    "Softplus",
    F.softplus,
    "``log(1 + exp(beta * x)) / beta`` (identity above ``threshold``).",
    ("beta", "threshold"),
    beta=1.0,
    threshold=20.0,
)
Softshrink = _simple(
    "Softshrink", F.softshrink, "Shrink towards 0 by ``lambd``.", ("lambd",), lambd=0.5
)
Hardshrink = _simple(
    "Hardshrink", F.hardshrink, "Zero where ``|x| <= lambd``.", ("lambd",), lambd=0.5
)
GLU = _simple("GLU", F.glu, "Gated linear unit over ``dim``.", ("dim",), dim=-1)
GELU = _simple(
    "GELU",
    F.gelu,
    "Gaussian error linear unit (``approximate='none'`` or ``'tanh'``).",
    ("approximate",),
    approximate="none",
)


class Hardtanh(_Activation):
    """Clamp to ``[min_val, max_val]``.

    Args:
        min_val: the lower bound.
        max_val: the upper bound.
        inplace: rebind the input to the result.
        min_value: deprecated name of ``min_val``.
        max_value: deprecated name of ``max_val``.
    """

    _fn = staticmethod(F.hardtanh)
    _keys = ("min_val", "max_val", "inplace")

    def __init__(
        self,
        min_val: float = -1.0,
        max_val: float = 1.0,
        inplace: bool = False,
        min_value: float | None = None,
        max_value: float | None = None,
    ) -> None:
        super().__init__()
        if min_value is not None:
            warnings.warn(
                "keyword argument `min_value` is deprecated and rename to `min_val`",
                FutureWarning,
                stacklevel=2,
            )
            min_val = min_value
        if max_value is not None:
            warnings.warn(
                "keyword argument `max_value` is deprecated and rename to `max_val`",
                FutureWarning,
                stacklevel=2,
            )
            max_val = max_value
        if max_val <= min_val:
            raise ValueError(
                f"Hardtanh: max_val ({max_val}) must be greater than min_val ({min_val})"
            )
        self.min_val, self.max_val, self.inplace = min_val, max_val, inplace


class Threshold(_Activation):
    """``x`` where ``x > threshold``, else ``value``.

    Args:
        threshold: the cut.
        value: the replacement.
        inplace: rebind the input to the result.
    """

    _fn = staticmethod(F.threshold)
    _keys = ("threshold", "value", "inplace")

    def __init__(self, threshold: float, value: float, inplace: bool = False) -> None:
        super().__init__()
        self.threshold = threshold
        self.value = value
        self.inplace = inplace


class RReLU(Module):
    """Randomised leaky ReLU: random slopes in training, their mean in evaluation.

    Args:
        lower: the smallest slope.
        upper: the largest slope.
        inplace: rebind the input to the result.
    """

    def __init__(self, lower: float = 1.0 / 8, upper: float = 1.0 / 3, inplace: bool = False):
        super().__init__()
        self.lower = lower
        self.upper = upper
        self.inplace = inplace

    def extra_repr(self) -> str:
        """PyTorch's text."""
        return f"lower={self.lower}, upper={self.upper}" + (
            ", inplace=True" if self.inplace else ""
        )

    def forward(self, input: array) -> array:
        """Apply the activation (random only in training mode)."""
        return F.rrelu(input, self.lower, self.upper, self.training, self.inplace)


class PReLU(Module):
    """``x`` above 0, else ``weight * x``, with learned slopes (one, or one per channel).

    Args:
        num_parameters: 1, or the number of channels (dimension 1).
        init: the initial slope.
        device: accepted (CPU only).
        dtype: the weight's dtype.
    """

    def __init__(
        self, num_parameters: int = 1, init: float = 0.25, device: Any = None, dtype: Any = None
    ) -> None:
        super().__init__()
        self.num_parameters = num_parameters
        self.init = init
        self.weight = mx.full((num_parameters,), init, dtype=dtype or mx.float32)

    def extra_repr(self) -> str:
        """PyTorch's text."""
        return f"num_parameters={self.num_parameters}"

    def forward(self, input: array) -> array:
        """Apply the activation."""
        return F.prelu(input, self.weight)


class Softmax2d(Module):
    """Softmax over the channels of ``(N, C, H, W)`` or ``(C, H, W)``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, input: array) -> array:
        """Apply softmax over dimension -3."""
        if input.ndim not in (3, 4):
            raise ValueError(
                f"Softmax2d: expected input of 3 or 4 dimensions, got shape {tuple(input.shape)}"
            )
        return F.softmax(input, -3)
