"""Normalisation layers, channels (features) last as in MLX."""

from __future__ import annotations

from ... import core as mx
from ...core.array import array
from ...core.extend import from_value
from ...core.ops.normalization import batch_norm_train, fusable
from ..module import Module

__all__ = ["BatchNorm", "GroupNorm", "InstanceNorm", "LayerNorm", "RMSNorm"]


def _normalize(x: array, axes, eps: float) -> array:
    if isinstance(axes, int):
        axes = (axes,)
    if tuple(axes) == tuple(range(1, x.ndim - 1)) and fusable(x, lead=1):
        # statistics per (sample, last axis): one primitive (chainrule/core/ops/normalization.py)
        return batch_norm_train(x, None, None, eps, 1)[0]
    if x.ndim == 4 and tuple(axes) == (1, 3) and fusable(x, lead=1):
        # per (sample, axis 2) over axes 1 and 3: the same primitive on the swapped view
        return mx.swapaxes(batch_norm_train(mx.swapaxes(x, 2, 3), None, None, eps, 1)[0], 2, 3)
    dtype = x.dtype
    if dtype in (mx.float16, mx.bfloat16):  # statistics in float32, as MLX's kernels keep them
        x = x.astype(mx.float32)
    mean = mx.mean(x, axis=axes, keepdims=True)
    var = mx.var(x, axis=axes, keepdims=True)
    y = (x - mean) * mx.rsqrt(var + eps)
    return y if y.dtype == dtype else y.astype(dtype)


def _check_eps(eps: float, who: str) -> None:
    # eps sits under a square root: zero gives rsqrt(0) for a constant input, a negative one NaN
    if not eps > 0.0:
        raise ValueError(f"[{who}] 'eps' must be positive but got {eps}.")


def _check_features(x: array, dims: int, who: str) -> None:
    if x.ndim == 0 or x.shape[-1] != dims:
        raise ValueError(
            f"{who}: expected an input whose last axis has {dims} features, got shape {x.shape}"
        )


class InstanceNorm(Module):
    """Normalise each sample and channel over the spatial axes (``(N, ..., C)`` inputs).

    Args:
        dims: the number of channels.
        eps: added to the variance.
        affine: learn a per-channel scale (ones) and shift (zeros).
    """

    def __init__(self, dims: int, eps: float = 1e-5, affine: bool = False) -> None:
        super().__init__()
        _check_eps(eps, "InstanceNorm")
        if affine:
            self.weight = mx.ones((dims,))
            self.bias = mx.zeros((dims,))
        self.dims = dims
        self.eps = eps

    def _extra_repr(self) -> str:
        return f"{self.dims}, eps={self.eps}, affine={'weight' in self}"

    def __call__(self, x: array) -> array:
        _check_features(x, self.dims, "InstanceNorm")
        if x.ndim < 3:
            raise ValueError(
                f"InstanceNorm: expected (N, ..., C) with a spatial axis, got {x.shape}"
            )
        x = _normalize(x, tuple(range(1, x.ndim - 1)), self.eps)
        return (self["weight"] * x + self["bias"]) if "weight" in self else x


class LayerNorm(Module):
    """Normalise over the last axis, then scale (ones) and shift (zeros).

    Args:
        dims: the size of the last axis.
        eps: added to the variance.
        affine: learn the scale (and shift).
        bias: learn the shift (with ``affine``).
    """

    def __init__(self, dims: int, eps: float = 1e-5, affine: bool = True, bias: bool = True):
        super().__init__()
        _check_eps(eps, "LayerNorm")
        if affine:
            self.weight = mx.ones((dims,))
            if bias:
                self.bias = mx.zeros((dims,))
        self.eps = eps
        self.dims = dims

    def _extra_repr(self) -> str:
        return f"{self.dims}, eps={self.eps}, affine={'weight' in self}"

    takes_tensors = True  # __call__ reads only its input's slots (nn/doors.py, light_door)

    def __call__(self, x: array) -> array:
        _check_features(x, self.dims, "LayerNorm")
        return mx.fast.layer_norm(x, self.get("weight"), self.get("bias"), self.eps)


class RMSNorm(Module):
    """``weight * x / sqrt(mean(x**2) + eps)`` over the last axis.

    Args:
        dims: the size of the last axis.
        eps: added to the mean square.
    """

    def __init__(self, dims: int, eps: float = 1e-5) -> None:
        super().__init__()
        _check_eps(eps, "RMSNorm")
        self.weight = mx.ones((dims,))
        self.eps = eps

    def _extra_repr(self) -> str:
        return f"{self['weight'].shape[0]}, eps={self.eps}"

    takes_tensors = True  # __call__ reads only its input's slots (nn/doors.py, light_door)

    def __call__(self, x: array) -> array:
        _check_features(x, self["weight"].shape[0], "RMSNorm")
        return mx.fast.rms_norm(x, self["weight"], self.eps)


class GroupNorm(Module):
    """Normalise over the spatial axes and groups of channels (``(N, ..., C)`` inputs).

    Args:
        num_groups: the number of channel groups.
        dims: the number of channels.
        eps: added to the variance.
        affine: learn a per-channel scale (ones) and shift (zeros).
        pytorch_compatible: group consecutive channels as PyTorch does (channel ``c`` is in
            group ``c // (dims // num_groups)``); otherwise channel ``c`` is in group
            ``c % num_groups`` (MLX's default).
    """

    def __init__(
        self,
        num_groups: int,
        dims: int,
        eps: float = 1e-5,
        affine: bool = True,
        pytorch_compatible: bool = False,
    ) -> None:
        super().__init__()
        _check_eps(eps, "GroupNorm")
        if num_groups <= 0:
            raise ValueError(f"GroupNorm: num_groups must be a positive integer, got {num_groups}")
        if dims <= 0:
            raise ValueError(f"GroupNorm: dims must be a positive integer, got {dims}")
        if dims % num_groups:
            raise ValueError(f"GroupNorm: dims={dims} must be divisible by num_groups={num_groups}")
        if affine:
            self.bias = mx.zeros((dims,))
            self.weight = mx.ones((dims,))
        self.num_groups = num_groups
        self.dims = dims
        self.eps = eps
        self.pytorch_compatible = pytorch_compatible

    def _extra_repr(self) -> str:
        return (
            f"{self.num_groups}, {self.dims}, eps={self.eps}, affine={'weight' in self}, "
            f"pytorch_compatible={self.pytorch_compatible}"
        )

    def __call__(self, x: array) -> array:
        _check_features(x, self.dims, "GroupNorm")
        batch, *rest, dims = x.shape
        g = self.num_groups
        if self.pytorch_compatible:
            y = x.reshape(batch, -1, g, dims // g)
            y = _normalize(y, (1, 3), self.eps)
        else:
            y = x.reshape(batch, -1, g)
            y = _normalize(y, 1, self.eps)
        y = y.reshape(x.shape)
        return (self["weight"] * y + self["bias"]) if "weight" in self else y


class BatchNorm(Module):
    """Batch normalisation over all axes but the last (``NC``, ``NLC`` or ``NHWC`` inputs).

    In training mode the batch statistics normalise the input and update the running
    statistics (``running = (1 - momentum) * running + momentum * batch``); the input is
    normalised with the biased batch variance and the running variance takes the unbiased one
    (``n / (n - 1)`` times it, ``n`` the values per channel), as MLX 0.32 and PyTorch do. The
    update is not recorded for differentiation. In evaluation mode the running statistics are
    used.

    Args:
        num_features: the number of channels.
        eps: added to the variance.
        momentum: weight of the new batch in the running statistics.
        affine: learn a per-channel scale (ones) and shift (zeros).
        track_running_stats: keep running statistics (otherwise batch statistics are used
            in evaluation too).
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
    ) -> None:
        super().__init__()
        _check_eps(eps, "BatchNorm")
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = mx.ones((num_features,))
            self.bias = mx.zeros((num_features,))
        if track_running_stats:
            # Buffers: frozen now and through any later unfreeze().
            self.register_buffer("running_mean", mx.zeros((num_features,)))
            self.register_buffer("running_var", mx.ones((num_features,)))

    def _extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={'weight' in self}, track_running_stats={self.track_running_stats}"
        )

    def __call__(self, x: array) -> array:
        if not 2 <= x.ndim <= 4:
            raise ValueError(
                f"BatchNorm: expected an input with 2, 3 or 4 dimensions (channels last), got "
                f"shape {x.shape}"
            )
        _check_features(x, self.num_features, "BatchNorm")
        axes = tuple(range(x.ndim - 1))
        if self._training and x.size // max(self.num_features, 1) == 1:
            raise ValueError(
                f"BatchNorm: training needs more than one value per channel, got input shape "
                f"{x.shape}"
            )
        weight, bias = self.get("weight"), self.get("bias")
        if self._training or not self.track_running_stats:
            if fusable(x, weight, bias):
                # one primitive: the statistics, the normalisation and the affine in one
                # kernel, a closed-form VJP (chainrule/core/ops/normalization.py)
                y, m, v = batch_norm_train(x, weight, bias, self.eps)
                mean, var = from_value(m), from_value(v)
            else:
                mean = mx.mean(x, axis=axes)
                var = mx.var(x, axis=axes)
                y = None
            if self._training and self.track_running_stats:
                n = x.size // self.num_features  # values per channel
                self._update_running(mean, var * (n / (n - 1)) if n > 1 else var)
            if y is not None:
                return y
        else:
            mean, var = self["running_mean"], self["running_var"]
            if weight is not None and bias is not None and x.dtype in (mx.float32, mx.float64):
                # evaluation: two full-size operations, x * scale + shift (per-channel
                # scale and shift computed on the C statistics)
                scale = weight * mx.rsqrt(var + self.eps)
                return x * scale + (bias - mean * scale)
        x = (x - mean) * mx.rsqrt(var + self.eps)
        return (weight * x + bias) if weight is not None else x

    def _update_running(self, mean: array, var: array) -> None:
        # Plain NumPy on the values: the statistics are state, not part of any graph, and
        # the handles are rebound (never mutated) so earlier readers keep their values.
        m = self.momentum
        for key, batch in (("running_mean", mean), ("running_var", var)):
            run = self[key]
            old = run._data
            new = (1 - m) * old + m * batch._data.astype(old.dtype, copy=False)
            run._set_value(new.astype(old.dtype, copy=False))
