"""PyTorch's normalisation, dropout, embedding, lazy and wrapper modules missing from
chainrule.nn (or whose chainrule.nn form takes other arguments), over ``F``."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

import chainrule.core as mx
import chainrule.nn as cnn
from chainrule.core.array import array

from .._random import normal_array, uniform_array
from . import _layers
from . import functional_misc as M
from ._module import Module
from .functional_pool import const

__all__ = [
    "AlphaDropout",
    "Bilinear",
    "CrossMapLRN2d",
    "DataParallel",
    "Dropout",
    "Embedding",
    "EmbeddingBag",
    "FeatureAlphaDropout",
    "LazyBatchNorm1d",
    "LazyBatchNorm2d",
    "LazyBatchNorm3d",
    "LazyConv1d",
    "LazyConv2d",
    "LazyConv3d",
    "LazyConvTranspose1d",
    "LazyConvTranspose2d",
    "LazyConvTranspose3d",
    "LazyInstanceNorm1d",
    "LazyInstanceNorm2d",
    "LazyInstanceNorm3d",
    "LazyLinear",
    "LocalResponseNorm",
    "RMSNorm",
    "SyncBatchNorm",
    "UninitializedBuffer",
    "UninitializedParameter",
    "factory_kwargs",
]


class LocalResponseNorm(Module):
    """Normalise each channel by its ``size`` neighbours' squares (see ``F``)."""

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def extra_repr(self) -> str:
        """PyTorch's text."""
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"

    def forward(self, input: array) -> array:
        """Normalise."""
        return M.local_response_norm(input, self.size, self.alpha, self.beta, self.k)


class CrossMapLRN2d(LocalResponseNorm):
    """Local response normalisation of 4-d inputs across channels (legacy form)."""

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1):
        super().__init__(size, alpha, beta, k)

    def forward(self, input: array) -> array:
        """Normalise a ``(N, C, H, W)`` input."""
        if input.ndim != 4:
            raise ValueError(
                f"CrossMapLRN2d: expected a 4D input (N, C, H, W), got shape {tuple(input.shape)}"
            )
        c = input.shape[1]
        # PyTorch's running window: channel c sums the squares of channels [c - pre + 1,
        # c + pre - 1], except that channel 0 is never dropped from it (its recurrence starts
        # dropping at c = pre + 1 with channel 1)
        pre = (self.size - 1) // 2 + 1
        counts = np.zeros((c, c))
        counts[0, : min(pre, c)] = 1
        for ch in range(1, c):
            counts[ch] = counts[ch - 1]
            if ch < c - pre + 1:
                counts[ch, ch + pre - 1] += 1
            if ch > pre:
                counts[ch, ch - pre] -= 1
        x = mx.stop_gradient(input)
        sq = mx.moveaxis(x * x, 1, -1)
        window = mx.moveaxis(mx.matmul(sq, mx.transpose(const(counts, input))), -1, 1)
        scale = window * (self.alpha / self.size) + self.k
        out = x * scale ** (-self.beta)
        # PyTorch's backward is its own formula (a symmetric window of size ``size`` starting
        # ``size - (size - 1) / 2`` channels back), not the derivative of the forward above:
        # ``L`` below has exactly that vector-Jacobian product.
        back = int(self.size - (self.size - 1) / 2)
        acc = np.zeros((c, c))
        for ch in range(c):
            lo, hi = ch - back, ch + self.size - 1 - back
            acc[ch, max(lo, 0) : min(hi, c - 1) + 1] = 1
        ratio = out / scale
        sq_all = mx.moveaxis(input * input, 1, -1)
        spread = mx.moveaxis(mx.matmul(sq_all, const(acc, input)), -1, 1)
        c2 = self.alpha * self.beta / self.size
        lin = scale ** (-self.beta) * input - c2 * ratio * spread
        return out + lin - mx.stop_gradient(lin)


class Dropout(Module):
    """Zero elements with probability ``p`` in training, scaling the rest by ``1 / (1 - p)``."""

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: dropout probability has to be between 0 and 1, got {p}")
        self.p, self.inplace = p, inplace

    def extra_repr(self) -> str:
        """PyTorch's text."""
        return f"p={self.p}, inplace={self.inplace}"

    def forward(self, input: array) -> array:
        """Drop (in training mode only)."""
        return M.dropout(input, self.p, self.training, self.inplace)


class AlphaDropout(Dropout):
    """Dropout that keeps SELU's self-normalising statistics."""

    def forward(self, input: array) -> array:
        """Drop (in training mode only)."""
        return M.alpha_dropout(input, self.p, self.training, self.inplace)


class FeatureAlphaDropout(Dropout):
    """Alpha dropout of whole channels."""

    def forward(self, input: array) -> array:
        """Drop (in training mode only)."""
        return M.feature_alpha_dropout(input, self.p, self.training, self.inplace)


class Embedding(cnn.Embedding, Module):
    """A lookup table ``(num_embeddings, embedding_dim)`` with PyTorch's arguments.

    Args:
        num_embeddings: the table's rows.
        embedding_dim: the table's columns.
        padding_idx: a row that gets zeros at init and no gradient.
        max_norm: renormalise looked-up rows to at most this norm.
        norm_type: the norm for ``max_norm``.
        scale_grad_by_freq: scale gradients by the inverse frequency in the batch.
        sparse: accepted (gradients are dense).
        _weight: an initial table.
        _freeze: keep the table frozen.
        device: accepted (CPU only).
        dtype: the table's dtype.
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        max_norm: float | None = None,
        norm_type: float = 2.0,
        scale_grad_by_freq: bool = False,
        sparse: bool = False,
        _weight: array | None = None,
        _freeze: bool = False,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        Module.__init__(self)
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(
                    f"Embedding: padding_idx {padding_idx} must be within num_embeddings "
                    f"{num_embeddings}"
                )
            padding_idx %= num_embeddings
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.padding_idx, self.max_norm, self.norm_type = padding_idx, max_norm, norm_type
        self.scale_grad_by_freq, self.sparse = scale_grad_by_freq, sparse
        if _weight is None:
            w = normal_array((num_embeddings, embedding_dim), dtype=dtype)  # init.normal_
            if padding_idx is not None:
                w[padding_idx] = 0
        else:
            w = _weight
        self.weight = w
        if _freeze:
            self.freeze(keys=["weight"])

    def extra_repr(self) -> str:
        """PyTorch's text: the sizes, then the arguments that differ from the defaults."""
        bag = getattr(self, "mode", None) is not None
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None and not bag:
            s += f", padding_idx={self.padding_idx}"
        if self.max_norm is not None:
            s += f", max_norm={self.max_norm}"
        if self.norm_type != 2:
            s += f", norm_type={self.norm_type}"
        if self.scale_grad_by_freq:
            s += f", scale_grad_by_freq={self.scale_grad_by_freq}"
        if self.sparse:
            s += ", sparse=True"
        if bag:
            s += f", mode={self.mode!r}"
            if self.padding_idx is not None:
                s += f", padding_idx={self.padding_idx}"
        return s

    @classmethod
    def from_pretrained(cls, embeddings: array, freeze: bool = True, **kwargs: Any) -> Embedding:
        """An embedding whose table is ``embeddings`` (frozen unless ``freeze=False``)."""
        rows, cols = embeddings.shape
        return cls(rows, cols, _weight=embeddings, _freeze=freeze, **kwargs)

    def forward(self, input: array) -> array:
        """Look up rows."""
        return M.embedding(
            input,
            self.weight,
            self.padding_idx,
            self.max_norm,
            self.norm_type,
            self.scale_grad_by_freq,
            self.sparse,
        )


class EmbeddingBag(Embedding):
    """Sums, means or maxima of bags of embeddings (see ``F.embedding_bag``)."""

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        max_norm: float | None = None,
        norm_type: float = 2.0,
        scale_grad_by_freq: bool = False,
        mode: str = "mean",
        sparse: bool = False,
        _weight: array | None = None,
        include_last_offset: bool = False,
        padding_idx: int | None = None,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(
            num_embeddings,
            embedding_dim,
            padding_idx,
            max_norm,
            norm_type,
            scale_grad_by_freq,
            sparse,
            _weight,
            False,
            device,
            dtype,
        )
        self.mode, self.include_last_offset = mode, include_last_offset

    @classmethod
    def from_pretrained(cls, embeddings: array, freeze: bool = True, **kwargs: Any) -> Any:
        """A bag whose table is ``embeddings`` (frozen unless ``freeze=False``)."""
        rows, cols = embeddings.shape
        bag = cls(rows, cols, _weight=embeddings, **kwargs)
        if freeze:
            bag.freeze(keys=["weight"])
        return bag

    def forward(
        self, input: array, offsets: array | None = None, per_sample_weights: array | None = None
    ) -> array:
        """Reduce each bag."""
        return M.embedding_bag(
            input,
            self.weight,
            offsets,
            self.max_norm,
            self.norm_type,
            self.scale_grad_by_freq,
            self.mode,
            self.sparse,
            per_sample_weights,
            self.include_last_offset,
            self.padding_idx,
        )


class SyncBatchNorm(Module):
    """Batch normalisation over any ``(N, C, *)`` input; one process, so plain batch norm.

    Args:
        num_features: ``C``.
        eps: added to the variance.
        momentum: the running estimates' update rate.
        affine: learn a scale and a shift.
        track_running_stats: keep running estimates.
        process_group: accepted (a single process).
        device: accepted (CPU only).
        dtype: the parameters' dtype.
        bias: learn the shift (with ``affine``).
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        process_group: Any = None,
        device: Any = None,
        dtype: Any = None,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__()
        dt = dtype or mx.float32
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = mx.ones((num_features,), dtype=dt)
            if bias:
                self.bias = mx.zeros((num_features,), dtype=dt)
        if track_running_stats:
            self.register_buffer("running_mean", mx.zeros((num_features,), dtype=dt))
            self.register_buffer("running_var", mx.ones((num_features,), dtype=dt))
            self.register_buffer("num_batches_tracked", mx.array(0, dtype=mx.int64))

    def extra_repr(self) -> str:
        """PyTorch's text."""
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, bias={'bias' in self}, "
            f"track_running_stats={self.track_running_stats}"
        )

    def forward(self, input: array) -> array:
        """Normalise (batch statistics in training or without running estimates)."""
        if input.ndim < 2 or input.shape[1] != self.num_features:
            raise ValueError(
                f"SyncBatchNorm: expected an input (N, {self.num_features}, *), got shape "
                f"{tuple(input.shape)}"
            )
        use_batch = self.training or not self.track_running_stats
        rm = self.get("running_mean") if self.track_running_stats else None
        rv = self.get("running_var") if self.track_running_stats else None
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            count = self["num_batches_tracked"]
            count._set_value(count._data + 1)
            if self.momentum is None:  # a cumulative moving average
                momentum = 1.0 / float(count.item())
        return M.batch_norm(
            input, rm, rv, self.get("weight"), self.get("bias"), use_batch, momentum, self.eps
        )

    @classmethod
    def convert_sync_batchnorm(cls, module: Any, process_group: Any = None) -> Any:
        """Return ``module`` unchanged (one process: batch norm is already synchronised)."""
        return module


class DataParallel(Module):
    """Single-device wrapper: ``DataParallel(m)(x) == m(x)``; the model is ``.module``."""

    def __init__(
        self, module: Any, device_ids: Any = None, output_device: Any = None, dim: int = 0
    ) -> None:
        super().__init__()
        self.module = module
        self.device_ids, self.output_device, self.dim = device_ids, output_device, dim

    def forward(self, *inputs: Any, **kwargs: Any) -> Any:
        """Run the wrapped module."""
        return self.module(*inputs, **kwargs)


class UninitializedParameter:
    """Placeholder type of a lazy module's parameters before their first call."""

    cls_to_become = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


class UninitializedBuffer(UninitializedParameter):
    """Placeholder type of a lazy module's buffers before their first call."""


class _Lazy(Module):
    """Builds ``_target(features, *args, **kwargs)`` on the first call and becomes it."""

    _target: Any = None
    _features_axis: int = 1

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        object.__setattr__(self, "_lazy_args", (args, kwargs))

    def has_uninitialized_params(self) -> bool:
        """True until the first call."""
        return True

    def extra_repr(self) -> str:
        """PyTorch's text: the concrete module's with 0 input features."""
        target = type(self)._target
        args, kwargs = self._lazy_args
        # groups follows out_channels, kernel_size, stride, padding and dilation (or
        # output_padding); a convolution needs in_channels divisible by it
        conv = target.__name__.startswith("Conv")
        groups = kwargs.get("groups", args[5] if conv and len(args) > 5 else 1)
        saved = mx.random.get_state()  # printing must not move the random stream
        try:
            real = target(groups if isinstance(groups, int) and groups > 0 else 1, *args, **kwargs)
        finally:
            mx.random.set_state(saved)
        if "_torch_args" in real.__dict__:  # convolutions
            object.__setattr__(real, "_torch_args", {**real._torch_args, "in": 0})
        if hasattr(real, "num_features"):  # norms
            object.__setattr__(real, "num_features", 0)
        text = real.extra_repr()
        return text.replace("in_features=1,", "in_features=0,", 1)

    def initialize_parameters(self, input: array) -> None:
        """Infer the input features from ``input`` and become the concrete module."""
        axis = self._features_axis
        if axis == 1 and input.ndim == self._unbatched_ndim():
            axis = 0
        self._become(input.shape[axis])

    def load_state_dict(self, state_dict: Any, strict: bool = True, **kwargs: Any) -> Any:
        """Materialise from the shapes in ``state_dict`` (as PyTorch's lazy modules), then load."""
        features = self._features_from_state(state_dict)
        if features is None:
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: the state holds no weight or running "
                f"statistics to infer the input features from (keys {sorted(state_dict)})"
            )
        self._become(features)
        return self.load_state_dict(state_dict, strict, **kwargs)

    def _features_from_state(self, state: Any) -> int | None:
        target = type(self)._target.__name__
        shape = lambda k: tuple(state[k].shape) if k in state else None  # noqa: E731
        if target == "Linear":
            w = shape("weight")
            return None if w is None else w[1]
        if target.startswith("ConvTranspose"):
            w = shape("weight")
            return None if w is None else w[0]
        if target.startswith("Conv"):
            w = shape("weight")
            groups = self._lazy_args[1].get("groups", 1)
            return None if w is None else w[1] * groups
        for key in ("running_mean", "weight", "bias"):
            if shape(key) is not None:
                return shape(key)[0]
        return None

    def _become(self, features: int) -> None:
        target = type(self)._target
        args, kwargs = self._lazy_args
        real = target(features, *args, **kwargs)
        training = self.training
        object.__setattr__(self, "__class__", target)
        self.__dict__.update(real.__dict__)
        dict.update(self, real)
        if not training:
            self.eval()

    def _unbatched_ndim(self) -> int:
        return -1

    def forward(self, input: array, *rest: Any) -> Any:
        """Materialise on the first call, then run the concrete module."""
        self.initialize_parameters(input)
        return self(input, *rest)


def _lazy(name: str, target: type, axis: int, unbatched: int, doc: str) -> type:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _Lazy.__init__(self, *args, **kwargs)

    # the target's arguments less the inferred first one
    sig = inspect.signature(target.__init__)
    params = list(sig.parameters.values())
    __init__.__signature__ = sig.replace(parameters=[params[0]] + params[2:])
    return type(
        name,
        (_Lazy,),
        {
            "__init__": __init__,
            "_target": target,
            "_features_axis": axis,
            "_unbatched_ndim": lambda self: unbatched,
            "cls_to_become": target,
            "__doc__": doc,
            "__module__": __name__,
            "__qualname__": name,
        },
    )


_DOC = "``{0}`` whose input features are read from the first input (``{1}``)."
LazyLinear = _lazy(
    "LazyLinear",
    getattr(_layers, "Linear", cnn.Linear),
    -1,
    -1,
    _DOC.format("Linear", "in_features"),
)
LazyConv1d = _lazy("LazyConv1d", _layers.Conv1d, 1, 2, _DOC.format("Conv1d", "in_channels"))
LazyConv2d = _lazy("LazyConv2d", _layers.Conv2d, 1, 3, _DOC.format("Conv2d", "in_channels"))
LazyConv3d = _lazy("LazyConv3d", _layers.Conv3d, 1, 4, _DOC.format("Conv3d", "in_channels"))
LazyConvTranspose1d = _lazy(
    "LazyConvTranspose1d",
    _layers.ConvTranspose1d,
    1,
    2,
    _DOC.format("ConvTranspose1d", "in_channels"),
)
LazyConvTranspose2d = _lazy(
    "LazyConvTranspose2d",
    _layers.ConvTranspose2d,
    1,
    3,
    _DOC.format("ConvTranspose2d", "in_channels"),
)
LazyConvTranspose3d = _lazy(
    "LazyConvTranspose3d",
    _layers.ConvTranspose3d,
    1,
    4,
    _DOC.format("ConvTranspose3d", "in_channels"),
)
LazyBatchNorm1d = _lazy(
    "LazyBatchNorm1d", _layers.BatchNorm1d, 1, -1, _DOC.format("BatchNorm1d", "num_features")
)
LazyBatchNorm2d = _lazy(
    "LazyBatchNorm2d", _layers.BatchNorm2d, 1, -1, _DOC.format("BatchNorm2d", "num_features")
)
LazyBatchNorm3d = _lazy(
    "LazyBatchNorm3d", _layers.BatchNorm3d, 1, -1, _DOC.format("BatchNorm3d", "num_features")
)


def _tracked_instance_norm(base: type, nd: int) -> type:
    """``base`` (an ``InstanceNorm{nd}d``) with the lazy instance norms' defaults: PyTorch's
    ``LazyInstanceNorm*d`` default to ``affine=True, track_running_stats=True``."""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: Any = None,
        dtype: Any = None,
        *,
        bias: bool = True,
    ) -> None:
        base.__init__(
            self, num_features, eps, momentum, affine, track_running_stats, device, dtype, bias=bias
        )

    return type(
        base.__name__,
        (base,),
        {
            "__init__": __init__,
            "__doc__": base.__doc__,
            "__module__": base.__module__,
            "__qualname__": base.__name__,
        },
    )


LazyInstanceNorm1d = _lazy(
    "LazyInstanceNorm1d",
    _tracked_instance_norm(_layers.InstanceNorm1d, 1),
    1,
    2,
    _DOC.format("InstanceNorm1d", "num_features"),
)
LazyInstanceNorm2d = _lazy(
    "LazyInstanceNorm2d",
    _tracked_instance_norm(_layers.InstanceNorm2d, 2),
    1,
    3,
    _DOC.format("InstanceNorm2d", "num_features"),
)
LazyInstanceNorm3d = _lazy(
    "LazyInstanceNorm3d",
    _tracked_instance_norm(_layers.InstanceNorm3d, 3),
    1,
    4,
    _DOC.format("InstanceNorm3d", "num_features"),
)


def factory_kwargs(kwargs: dict | None) -> dict:
    """The ``device`` / ``dtype`` / ``memory_format`` keywords of ``kwargs`` as one dict.

    Args:
        kwargs: keyword arguments, possibly with a nested ``factory_kwargs`` dict.

    Returns:
        The factory keywords.
    """
    if kwargs is None:
        return {}
    simple = {"device", "dtype", "memory_format"}
    unexpected = set(kwargs) - simple - {"factory_kwargs"}
    if unexpected:
        raise TypeError(f"factory_kwargs: unexpected kwargs {unexpected}")
    out = dict(kwargs.get("factory_kwargs", {}))
    for k in simple & set(kwargs):
        if k in out:
            raise TypeError(
                f"factory_kwargs: {k} specified twice, in **kwargs and in factory_kwargs"
            )
        out[k] = kwargs[k]
    return out


class Bilinear(cnn.Bilinear, Module):
    """``y = x1 @ weight[k] @ x2 + bias[k]`` with PyTorch's arguments and initialisation.

    Args:
        in1_features: the first input's last dimension.
        in2_features: the second input's last dimension.
        out_features: the output's last dimension.
        bias: learn a bias.
        device: accepted (CPU only).
        dtype: the parameters' dtype.
    """

    def __init__(
        self,
        in1_features: int,
        in2_features: int,
        out_features: int,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        Module.__init__(self)
        self.in1_features, self.in2_features = in1_features, in2_features
        self.out_features = out_features
        bound = 1.0 / in1_features**0.5
        dt = dtype or mx.float32
        shape = (out_features, in1_features, in2_features)
        self.weight = uniform_array(shape, -bound, bound, dt)  # PyTorch's draws, in order
        if bias:
            self.bias = uniform_array((out_features,), -bound, bound, dt)

    def extra_repr(self) -> str:
        """PyTorch's text."""
        return (
            f"in1_features={self.in1_features}, in2_features={self.in2_features}, "
            f"out_features={self.out_features}, bias={'bias' in self}"
        )

    def forward(self, input1: array, input2: array) -> array:
        """The bilinear map."""
        return M.bilinear(input1, input2, self.weight, self.get("bias"))


class RMSNorm(cnn.RMSNorm, Module):
    """Divide by the root mean square over the trailing ``normalized_shape`` dimensions.

    Args:
        normalized_shape: the trailing shape.
        eps: added to the mean square (default: the dtype's machine epsilon).
        elementwise_affine: learn a scale of shape ``normalized_shape``.
        device: accepted (CPU only).
        dtype: the scale's dtype.
    """

    def __init__(
        self,
        normalized_shape: Any,
        eps: float | None = None,
        elementwise_affine: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        Module.__init__(self)
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else normalized_shape
        self.normalized_shape = tuple(int(v) for v in shape)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        if elementwise_affine:
            self.weight = mx.ones(self.normalized_shape, dtype=dtype or mx.float32)

    def extra_repr(self) -> str:
        """PyTorch's text."""
        return (
            f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
        )

    takes_tensors = True  # forward hands its input to F.rms_norm, itself a door (nn/doors.py)

    def forward(self, input: array) -> array:
        """Normalise."""
        return M.rms_norm(input, self.normalized_shape, self.get("weight"), self.eps)
