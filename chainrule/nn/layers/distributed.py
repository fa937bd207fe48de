"""MLX's tensor-parallel linear layers: each process of a group holds a shard of the weight.

``AllToShardedLinear`` takes the full input and gives each process its slice of the output
(its gradient with respect to the input is summed over the group); ``ShardedToAllLinear``
takes each process's slice of the input and sums the partial products over the group, so
every process ends with the full output. The quantized forms hold a quantized shard
(frozen, as ``QuantizedLinear``). ``shard_linear`` and ``shard_inplace`` cut existing layers.
``fully_shard`` (``FullyShardedModule``) keeps only a shard of every parameter on each process
and gathers them around each call (MLX's FSDP).

The process group comes from ``chainrule.distributed`` (``mx.distributed``), a higher layer,
imported inside the functions that need it (``chainrule/core/lazy.py`` lists each name, and
this module serves them as attributes on first use); a
single process is a group of one, where the layers are the plain linear maps.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from ... import core as mx
from ...core import lazy as _lazy
from ...core.array import array
from ...utils import tree_flatten, tree_map_with_path, tree_unflatten
from ..module import Module
from .linear import Linear
from .quantized import _defaults, _store

__all__ = [
    "AllToShardedLinear",
    "FullyShardedModule",
    "QuantizedAllToShardedLinear",
    "QuantizedShardedToAllLinear",
    "ShardedToAllLinear",
    "fully_shard",
    "shard_inplace",
    "shard_linear",
    "sum_gradients",
]


def _group(group: Any) -> Any:
    """``group``, or the global group of ``mx.distributed.init()``."""
    if group is not None:
        return group
    from chainrule.distributed import init

    return init()


@lru_cache
def sum_gradients(group: Any) -> Callable[[array], array]:
    """The identity whose gradient is summed over ``group`` (identity for a group of one).

    Args:
        group: a ``mx.distributed`` group.

    Returns:
        ``f(x) -> x``; the VJP of ``f`` is ``all_sum`` of the cotangent.
    """
    if group.size() == 1:
        return lambda x: x
    from chainrule.distributed import all_sum

    @mx.custom_function
    def f(x: array) -> array:
        return x

    @f.vjp
    def f_vjp(x: array, dx: array, _: Any) -> array:
        return all_sum(dx, group=group)

    return f


def _all_sum(x: array, group: Any) -> array:
    """``mx.distributed.all_sum(x, group=group)`` (its VJP passes the cotangent through)."""
    from chainrule.distributed import all_sum

    return all_sum(x, group=group)


def _split(weight: array, segments: int | list, axis: int) -> list:
    """``mx.split`` that also takes fractional segment boundaries (``[0.25, 0.5]``)."""
    if isinstance(segments, int) or isinstance(segments[0], int):
        return mx.split(weight, segments, axis=axis)
    n = weight.shape[axis]
    return mx.split(weight, [int(s * n) for s in segments], axis=axis)


def _shard(parameters: dict, predicate: Callable, group: Any = None) -> dict:
    """``parameters`` with each array cut to this process's shard, as ``predicate`` says.

    ``predicate(path, weight)`` gives ``None`` (keep whole), an axis, or ``(axis, segments)``
    when the weight is several matrices side by side (a fused QKV has 3 segments): each
    segment is split across the group and this rank's pieces are joined again.
    """
    group = _group(group)
    n, r = group.size(), group.rank()

    def shard_fn(path: str, weight: Any) -> Any:
        if not isinstance(weight, array):
            return weight
        s = predicate(path, weight)
        if s is None:
            return weight
        if isinstance(s, int):
            axis, segments = s, 1
        elif isinstance(s, tuple):
            axis, segments = s
        else:
            raise ValueError(
                "shard: the sharding function should return int or tuple[int, list], "
                f"got {type(s).__name__} for {path!r}"
            )
        # unrecorded: the shard is a parameter of its own (a leaf), not a function of the
        # unsharded layer's weight that a backward pass would reach through
        with mx.no_grad():
            parts = [_split(part, n, axis)[r] for part in _split(weight, segments, axis)]
            return mx.contiguous(mx.concatenate(parts, axis=axis))

    return tree_map_with_path(shard_fn, parameters)


def _all_to_sharded(segments: int | list) -> Callable:
    """Shard the output axis (weights' rows, biases)."""

    def fn(path: str, weight: array) -> tuple:
        if path.endswith("bias"):
            return -1, segments
        return max(weight.ndim - 2, 0), segments

    return fn


def _sharded_to_all(segments: int | list) -> Callable:
    """Shard the input axis (weights' columns); biases stay whole."""

    def fn(path: str, weight: array) -> tuple | None:
        if path.endswith("bias"):
            return None
        return -1, segments

    return fn


def _check_sharding(sharding: Any) -> None:
    if sharding not in ("all-to-sharded", "sharded-to-all"):
        raise ValueError(
            f"Sharding type sharding={sharding!r} not supported, choose one of "
            "'all-to-sharded' or 'sharded-to-all'"
        )


def shard_inplace(
    module: Module,
    sharding: str | Callable,
    *,
    segments: int | list = 1,
    group: Any = None,
) -> None:
    """Replace ``module``'s parameters with this process's shards (the module is unchanged).

    Args:
        module: the module whose parameters are cut.
        sharding: ``"all-to-sharded"``, ``"sharded-to-all"`` or a function
            ``(path, weight) -> axis | (axis, segments) | None``.
        segments: the segments of each weight when ``sharding`` is a string.
        group: the group (default: the global one).
    """
    if isinstance(sharding, str):
        _check_sharding(sharding)
        sharding = (
            _all_to_sharded(segments) if sharding == "all-to-sharded" else _sharded_to_all(segments)
        )
    module.update(_shard(module.parameters(), sharding, group))


def shard_linear(
    module: Module, sharding: str, *, segments: int | list = 1, group: Any = None
) -> Module:
    """A new sharded layer from a ``Linear`` or ``QuantizedLinear`` (which is left as it is).

    Args:
        module: the layer to cut.
        sharding: ``"all-to-sharded"`` or ``"sharded-to-all"``.
        segments: the segments of the weight (3 for a fused QKV).
        group: the group (default: the global one).

    Returns:
        An ``AllToShardedLinear``, ``ShardedToAllLinear`` or their quantized forms.
    """
    _check_sharding(sharding)
    dense = isinstance(module, Linear)
    make = {
        ("all-to-sharded", True): AllToShardedLinear.from_linear,
        ("all-to-sharded", False): QuantizedAllToShardedLinear.from_quantized_linear,
        ("sharded-to-all", True): ShardedToAllLinear.from_linear,
        ("sharded-to-all", False): QuantizedShardedToAllLinear.from_quantized_linear,
    }[sharding, dense]
    return make(module, segments=segments, group=group)


def _check_divisible(size: int, n: int, what: str, who: str) -> None:
    if size % n != 0:
        raise ValueError(f"{who}: cannot shard the {what} of size {size} across {n} devices.")


class AllToShardedLinear(Module):
    """The full input in, this process's slice of the output out.

    Args:
        input_dims: the input size.
        output_dims: the full output size (divisible by the group's size).
        bias: learn a bias (sharded like the output).
        group: the group (default: the global one).
    """

    def __init__(
        self, input_dims: int, output_dims: int, bias: bool = True, group: Any = None
    ) -> None:
        super().__init__()
        scale = math.sqrt(1.0 / input_dims)
        self.group = _group(group)
        n = self.group.size()
        _check_divisible(output_dims, n, "output", "AllToShardedLinear")
        self.weight = mx.random.uniform(-scale, scale, (output_dims // n, input_dims))
        if bias:
            self.bias = mx.random.uniform(-scale, scale, (output_dims // n,))

    def _extra_repr(self) -> str:
        out_dims, in_dims = self["weight"].shape
        out_dims *= self.group.size()
        return f"input_dims={in_dims}, output_dims={out_dims}, bias={'bias' in self}"

    def __call__(self, x: array) -> array:
        x = sum_gradients(self.group)(x)
        if "bias" in self:
            return mx.addmm(self["bias"], x, self["weight"].T)
        return x @ self["weight"].T

    @classmethod
    def from_linear(
        cls, linear_layer: Module, *, segments: int | list = 1, group: Any = None
    ) -> AllToShardedLinear:
        """This process's shard of ``linear_layer`` (a ``Linear``)."""
        group = _group(group)
        output_dims, input_dims = linear_layer["weight"].shape
        layer = cls(input_dims, output_dims, "bias" in linear_layer, group)
        layer.update(_shard(linear_layer.parameters(), _all_to_sharded(segments), group))
        return layer


class ShardedToAllLinear(Module):
    """This process's slice of the input in, the full output (summed over the group) out.

    Args:
        input_dims: the full input size (divisible by the group's size).
        output_dims: the output size.
        bias: learn a bias (whole on every process).
        group: the group (default: the global one).
    """

    def __init__(
        self, input_dims: int, output_dims: int, bias: bool = True, group: Any = None
    ) -> None:
        super().__init__()
        scale = math.sqrt(1.0 / input_dims)
        self.group = _group(group)
        n = self.group.size()
        _check_divisible(input_dims, n, "input", "ShardedToAllLinear")
        self.weight = mx.random.uniform(-scale, scale, (output_dims, input_dims // n))
        if bias:
            self.bias = mx.random.uniform(-scale, scale, (output_dims,))

    def _extra_repr(self) -> str:
        out_dims, in_dims = self["weight"].shape
        in_dims *= self.group.size()
        return f"input_dims={in_dims}, output_dims={out_dims}, bias={'bias' in self}"

    def __call__(self, x: array) -> array:
        x = _all_sum(x @ self["weight"].T, self.group)
        if "bias" in self:
            x = x + self["bias"]
        return x

    @classmethod
    def from_linear(
        cls, linear_layer: Module, *, segments: int | list = 1, group: Any = None
    ) -> ShardedToAllLinear:
        """This process's shard of ``linear_layer`` (a ``Linear``)."""
        group = _group(group)
        output_dims, input_dims = linear_layer["weight"].shape
        layer = cls(input_dims, output_dims, "bias" in linear_layer, group)
        layer.update(_shard(linear_layer.parameters(), _sharded_to_all(segments), group))
        return layer


class _QuantizedSharded(Module):
    """The quantized shard's storage, freezing and description (shared by both forms)."""

    def _setup(
        self,
        shape: tuple,
        input_dims: int,
        group_size: int | None,
        bits: int | None,
        mode: str,
    ) -> None:
        self.group_size, self.bits = _defaults(mode, group_size, bits)
        self.mode = mode
        scale = math.sqrt(1.0 / input_dims)
        _store(self, mx.random.uniform(-scale, scale, shape), self.group_size, self.bits)

    def unfreeze(self, *args: Any, **kwargs: Any) -> Module:
        """Unfreeze what this layer contains; its quantized parameters stay frozen."""
        super().unfreeze(*args, **kwargs)
        return self.freeze(recurse=False)

    def _qmatmul(self, x: array) -> array:
        return mx.quantized_matmul(
            x,
            self["weight"],
            scales=self["scales"],
            biases=self.get("biases"),
            transpose=True,
            group_size=self.group_size,
            bits=self.bits,
            mode=self.mode,
        )

    def _describe(self, out_factor: int, in_factor: int) -> str:
        out_dims, packed = self["weight"].shape
        in_dims = packed * 32 // self.bits * in_factor
        return (
            f"input_dims={in_dims}, output_dims={out_dims * out_factor}, bias={'bias' in self}, "
            f"group_size={self.group_size}, bits={self.bits}, mode={self.mode}"
        )

    @classmethod
    def _from(cls, ql: Module, predicate: Callable, group: Any) -> Module:
        group = _group(group)
        output_dims, packed = ql["weight"].shape
        input_dims = packed * 32 // ql.bits
        layer = cls(
            input_dims,
            output_dims,
            "bias" in ql,
            group_size=ql.group_size,
            bits=ql.bits,
            mode=getattr(ql, "mode", "affine"),
            group=group,
        )
        layer.update(_shard(ql.parameters(), predicate, group))
        return layer


class QuantizedAllToShardedLinear(_QuantizedSharded):
    """:class:`AllToShardedLinear` with a quantized (frozen) weight shard.

    Args:
        input_dims: the input size.
        output_dims: the full output size (divisible by the group's size).
        bias: add a bias (sharded like the output).
        group_size: see :func:`chainrule.core.quantize` (default 64).
        bits: see :func:`chainrule.core.quantize` (default 4).
        mode: the quantization mode.
        group: the group (default: the global one).
    """

    def __init__(
        self,
        input_dims: int,
        output_dims: int,
        bias: bool = True,
        group_size: int = 64,
        bits: int = 4,
        mode: str = "affine",
        group: Any = None,
    ) -> None:
        super().__init__()
        self.group = _group(group)
        n = self.group.size()
        _check_divisible(output_dims, n, "output", "QuantizedAllToShardedLinear")
        self._setup((output_dims // n, input_dims), input_dims, group_size, bits, mode)
        if bias:
            self.bias = mx.zeros((output_dims // n,))
        self.freeze()

    def _extra_repr(self) -> str:
        return self._describe(self.group.size(), 1)

    def __call__(self, x: array) -> array:
        x = self._qmatmul(sum_gradients(self.group)(x))
        if "bias" in self:
            x = x + self["bias"]
        return x

    @classmethod
    def from_quantized_linear(
        cls, quantized_linear_layer: Module, *, segments: int | list = 1, group: Any = None
    ) -> QuantizedAllToShardedLinear:
        """This process's shard of a ``QuantizedLinear``."""
        return cls._from(quantized_linear_layer, _all_to_sharded(segments), group)


class QuantizedShardedToAllLinear(_QuantizedSharded):
    """:class:`ShardedToAllLinear` with a quantized (frozen) weight shard.

    Args:
        input_dims: the full input size (divisible by the group's size).
        output_dims: the output size.
        bias: add a bias (whole on every process).
        group_size: see :func:`chainrule.core.quantize` (default 64).
        bits: see :func:`chainrule.core.quantize` (default 4).
        mode: the quantization mode.
        group: the group (default: the global one).
    """

    def __init__(
        self,
        input_dims: int,
        output_dims: int,
        bias: bool = True,
        group_size: int = 64,
        bits: int = 4,
        mode: str = "affine",
        group: Any = None,
    ) -> None:
        super().__init__()
        self.group = _group(group)
        n = self.group.size()
        _check_divisible(input_dims, n, "input", "QuantizedShardedToAllLinear")
        self._setup((output_dims, input_dims // n), input_dims, group_size, bits, mode)
        if bias:
            self.bias = mx.zeros((output_dims,))
        self.freeze()

    def _extra_repr(self) -> str:
        return self._describe(1, self.group.size())

    def __call__(self, x: array) -> array:
        x = _all_sum(self._qmatmul(x), self.group)
        if "bias" in self:
            x = x + self["bias"]
        return x

    @classmethod
    def from_quantized_linear(
        cls, quantized_linear_layer: Module, *, segments: int | list = 1, group: Any = None
    ) -> QuantizedShardedToAllLinear:
        """This process's shard of a ``QuantizedLinear``."""
        return cls._from(quantized_linear_layer, _sharded_to_all(segments), group)


# ----------------------------------------------------------------- fully sharded parameters


def _make_gather_fn(group: Any, full_shapes: list, shard_sizes: list, compute_dtype: Any):
    """A ``custom_function`` from the shards to the full parameters: ``all_gather`` forward,
    the mean of every process's cotangents, cut to this shard (``sum_scatter / N``), backward."""
    from chainrule.distributed import all_gather, sum_scatter

    n = group.size()
    bounds = [0]
    for size in shard_sizes:
        bounds.append(bounds[-1] + size)
    cuts = bounds[1:-1]
    shard_shapes = [(shape[0] // n,) + tuple(shape[1:]) for shape in full_shapes]

    def cast(x: array, dtype: Any) -> array:
        return x if dtype is None or x.dtype == dtype else x.astype(dtype)

    @mx.custom_function
    def gather(shards: list) -> list:
        flat = mx.concatenate([cast(s.reshape(1, -1), compute_dtype) for s in shards], axis=1)
        full = all_gather(flat, group=group)
        parts = mx.split(full, cuts, axis=1)
        return [p.reshape(shape) for p, shape in zip(parts, full_shapes)]

    @gather.vjp
    def gather_vjp(shards: list, cotangents: list, _: Any) -> list:
        local = mx.concatenate([c.reshape(n, -1) for c in cotangents], axis=1)
        mine = sum_scatter(local, group=group) / n
        parts = mx.split(mine, cuts, axis=1)
        return [cast(p.reshape(shape), s.dtype) for p, shape, s in zip(parts, shard_shapes, shards)]

    return gather


def _maybe_shard(m: Module, k: str, v: Any) -> bool:
    if isinstance(v, FullyShardedModule):
        return False
    return Module.valid_parameter_filter(m, k, v)


class FullyShardedModule(Module):
    """A module whose parameters are sharded over a group along their first axis (MLX's
    ``nn.FullyShardedModule``; build it with :func:`fully_shard`).

    Each call gathers the full parameters (``all_gather``) and runs the module with them; the
    backward pass gives each process the mean over the group of the gradients, cut to its own
    shard (``sum_scatter``), so each process stores and updates only its shard.

    Args:
        module: The module to shard (its parameters are replaced by this process's shards).
        group: The group (default: the global one).
        compute_dtype: Cast the gathered parameters to this dtype for the call.

    Raises:
        ValueError: For a scalar parameter, or a first axis the group's size does not divide.
    """

    def __init__(self, module: Module, group: Any = None, compute_dtype: Any = None) -> None:
        super().__init__()
        group = _group(group)
        n = group.size()
        shard_params = module.filter_and_map(_maybe_shard)
        flat = tree_flatten(shard_params)
        for path, a in flat:
            if a.ndim == 0:
                raise ValueError(f"Cannot shard parameter '{path}' because it is a scalar.")
            if a.shape[0] % n != 0:
                raise ValueError(
                    f"Cannot shard parameter '{path}' with shape {a.shape} across {n} devices: "
                    f"axis 0 must be divisible by {n}."
                )
        object.__setattr__(self, "_paths", [k for k, _ in flat])
        full_shapes = [tuple(a.shape) for _, a in flat]
        shard_sizes = [a.size // n for _, a in flat]
        module.update(_shard(shard_params, lambda p, w: 0, group))
        self.module = module
        gather = _make_gather_fn(group, full_shapes, shard_sizes, compute_dtype)
        object.__setattr__(self, "_gather_fn", gather)

    def _extra_repr(self) -> str:
        return f"num_sharded_params={len(self._paths)}"

    def _gathered_call(self, fn: Callable, *args: Any, **kwargs: Any) -> Any:
        shard_tree = self["module"].filter_and_map(_maybe_shard)
        shards = [a for _, a in tree_flatten(shard_tree)]
        fulls = self._gather_fn(shards)
        self["module"].update(tree_unflatten(list(zip(self._paths, fulls))))
        try:
            return fn(*args, **kwargs)
        finally:
            self["module"].update(shard_tree)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._gathered_call(self["module"], *args, **kwargs)

    def as_linear(self, *args: Any, **kwargs: Any) -> Any:
        """The wrapped module's ``as_linear`` (an ``Embedding``'s) with the full parameters."""
        return self._gathered_call(self["module"].as_linear, *args, **kwargs)


def fully_shard(module: Module, *, group: Any = None, compute_dtype: Any = None) -> Module:
    """Wrap ``module`` in a :class:`FullyShardedModule` (MLX's ``nn.fully_shard``).

    Args:
        module: The module to wrap.
        group: The group (default: the global one).
        compute_dtype: Cast the gathered parameters to this dtype for each call.

    Returns:
        The wrapped module; ``module`` itself in a group of one process, when it is already
        wrapped, or when it has no parameters to shard.
    """
    group = _group(group)
    if group.size() == 1 or isinstance(module, FullyShardedModule):
        return module
    wrapped = FullyShardedModule(module, group=group, compute_dtype=compute_dtype)
    return wrapped if wrapped._paths else module


# mx.distributed's init, all_sum, all_gather and sum_scatter, served on first use
# (chainrule/core/lazy.py)
_lazy.attach(__name__, globals())
