"""Quantized layers (MLX's ``nn.QuantizedLinear``, ``nn.QuantizedEmbedding``, ``nn.QQLinear``).

Their packed weights, scales and biases are frozen (left out of ``trainable_parameters()``),
as in MLX; a linear layer's own ``bias`` stays trainable. ``nn.quantize(model)`` swaps every
leaf module that has a ``to_quantized()`` method (``Linear`` and ``Embedding``) for its
quantized twin, in place.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ... import core as mx
from ...core.array import array
from ...utils import tree_map_with_path
from ..module import Module
from .embedding import Embedding
from .linear import Linear

__all__ = ["QQLinear", "QuantizedEmbedding", "QuantizedLinear", "quantize"]

_MODE_DEFAULTS = {"affine": (64, 4), "mxfp4": (32, 4), "nvfp4": (16, 4), "mxfp8": (32, 8)}


def _defaults(mode: str, group_size: int | None, bits: int | None) -> tuple[int, int]:
    if mode not in _MODE_DEFAULTS:
        raise ValueError(
            f"Invalid quantization mode '{mode}'. Valid modes are: {', '.join(_MODE_DEFAULTS)}."
        )
    gs, b = _MODE_DEFAULTS[mode]
    return group_size or gs, bits or b


def _store(layer: Module, weight: array, group_size: int | None, bits: int | None) -> None:
    """Quantize ``weight`` into ``layer.weight``, ``layer.scales`` (and ``layer.biases``)."""
    layer.weight, layer.scales, *biases = mx.quantize(weight, group_size, bits, mode=layer.mode)
    layer.biases = biases[0] if biases else None


class QuantizedLinear(Module):
    """``Linear`` with a quantized weight: ``quantized_matmul(x, W) + bias``.

    Args:
        input_dims: the input size (a multiple of the group size).
        output_dims: the output size.
        bias: add a (trainable) bias.
        group_size: see :func:`chainrule.core.quantize` (default by mode).
        bits: see :func:`chainrule.core.quantize` (default by mode).
        mode: ``"affine"``, ``"mxfp4"``, ``"nvfp4"`` or ``"mxfp8"``.
    """

    def __init__(
        self,
        input_dims: int,
        output_dims: int,
        bias: bool = True,
        group_size: int | None = None,
        bits: int | None = None,
        mode: str = "affine",
    ) -> None:
        super().__init__()
        self.group_size, self.bits = _defaults(mode, group_size, bits)
        self.mode = mode
        scale = math.sqrt(1 / input_dims)
        w = mx.random.uniform(low=-scale, high=scale, shape=(output_dims, input_dims))
        _store(self, w, self.group_size, self.bits)
        if bias:
            self.bias = mx.zeros((output_dims,))
        self.freeze()

    def _extra_repr(self) -> str:
        out_dims, packed = self["weight"].shape
        return (
            f"input_dims={packed * 32 // self.bits}, output_dims={out_dims}, "
            f"bias={'bias' in self}, group_size={self.group_size}, bits={self.bits}, "
            f"mode={self.mode}"
        )

    def __call__(self, x: array) -> array:
        y = mx.quantized_matmul(
            x,
            self["weight"],
            scales=self["scales"],
            biases=self.get("biases"),
            transpose=True,
            group_size=self.group_size,
            bits=self.bits,
            mode=self.mode,
        )
        if "bias" in self:
            y = y + self["bias"]
        return y

    @classmethod
    def from_linear(
        cls,
        linear_layer: Module,
        group_size: int | None = None,
        bits: int | None = None,
        mode: str = "affine",
    ) -> QuantizedLinear:
        """A quantized copy of a ``Linear`` layer (its bias is shared, not copied)."""
        output_dims, input_dims = linear_layer["weight"].shape
        ql = cls(input_dims, output_dims, False, group_size, bits, mode=mode)
        _store(ql, linear_layer["weight"], ql.group_size, ql.bits)
        if "bias" in linear_layer:
            ql.bias = linear_layer["bias"]
        return ql


class QuantizedEmbedding(Module):
    """``Embedding`` with a quantized table (rows are dequantized when looked up).

    Args:
        num_embeddings: the number of ids.
        dims: the vector size (a multiple of the group size).
        group_size: see :func:`chainrule.core.quantize`.
        bits: see :func:`chainrule.core.quantize`.
        mode: the quantization mode.
    """

    def __init__(
        self,
        num_embeddings: int,
        dims: int,
        group_size: int | None = None,
        bits: int | None = None,
        mode: str = "affine",
    ) -> None:
        super().__init__()
        self.group_size, self.bits = _defaults(mode, group_size, bits)
        self.mode = mode
        w = mx.random.normal(shape=(num_embeddings, dims), scale=math.sqrt(1 / dims))
        _store(self, w, self.group_size, self.bits)
        self.num_embeddings = num_embeddings
        self.dims = dims
        self.freeze()

    def _extra_repr(self) -> str:
        return (
            f"{self.num_embeddings}, {self.dims}, group_size={self.group_size}, "
            f"bits={self.bits}, mode={self.mode}"
        )

    def __call__(self, x: array) -> array:
        biases = self.get("biases")
        return mx.dequantize(
            self["weight"][x],
            scales=self["scales"][x],
            biases=None if biases is None else biases[x],
            group_size=self.group_size,
            bits=self.bits,
            mode=self.mode,
        )

    def as_linear(self, x: array) -> array:
        """Use the table as an output projection, ``x @ W.T`` (tied weights)."""
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

    @classmethod
    def from_embedding(
        cls,
        embedding_layer: Module,
        group_size: int | None = None,
        bits: int | None = None,
        mode: str = "affine",
    ) -> QuantizedEmbedding:
        """A quantized copy of an ``Embedding`` layer."""
        num, dims = embedding_layer["weight"].shape
        ql = cls(num, dims, group_size, bits, mode=mode)
        _store(ql, embedding_layer["weight"], ql.group_size, ql.bits)
        return ql


class QQLinear(Module):
    """A bias-free linear layer whose weight *and* input are quantized (``mx.qqmm``).

    As MLX's: in training mode the weight is kept in full precision (trainable; each call
    quantizes both operands and gradients pass straight through the rounding); ``eval()``
    replaces it by its packed form and ``scales`` (``quantize()``), ``train()`` by the
    dequantized values again (``dequantize()``).

    Args:
        input_dims: the input size.
        output_dims: the output size.
        group_size: see :func:`chainrule.core.quantize`.
        bits: see :func:`chainrule.core.quantize`.
        mode: ``"nvfp4"`` (default), ``"mxfp8"`` or ``"mxfp4"``.
    """

    def __init__(
        self,
        input_dims: int,
        output_dims: int,
        group_size: int | None = None,
        bits: int | None = None,
        mode: str = "nvfp4",
    ) -> None:
        super().__init__()
        if mode == "affine":
            raise ValueError("QQLinear: mode must be 'nvfp4', 'mxfp8' or 'mxfp4'")
        self.group_size, self.bits = _defaults(mode, group_size, bits)
        self.mode = mode
        scale = math.sqrt(1 / input_dims)
        self.weight = mx.random.uniform(low=-scale, high=scale, shape=(output_dims, input_dims))

    def _extra_repr(self) -> str:
        out_dims, in_dims = self["weight"].shape
        if self["weight"].dtype == mx.uint32:  # packed (evaluation mode)
            in_dims = in_dims * 32 // self.bits
        return (
            f"input_dims={in_dims}, output_dims={out_dims}, group_size={self.group_size}, "
            f"bits={self.bits}, mode={self.mode}"
        )

    # ``Module.train`` sets ``_training`` on every module; on this layer the flag is a property
    # whose setter also switches the weight's form, as MLX's ``_set_training_mode`` does.
    @property
    def _training(self) -> bool:
        return self.__dict__.get("_qq_training", True)

    @_training.setter
    def _training(self, mode: bool) -> None:
        self.__dict__["_qq_training"] = bool(mode)
        if "weight" in self:
            if mode:
                self.dequantize()
            else:
                self.quantize()

    def quantize(self) -> None:
        """Store the weight packed (``weight`` uint32 and ``scales``), as for evaluation."""
        if not self.__dict__.get("_quantized", False):
            self.weight, self.scales = mx.quantize(
                self["weight"], self.group_size, self.bits, mode=self.mode
            )
            self.__dict__["_quantized"] = True

    def dequantize(self) -> None:
        """Store the weight in full precision again (trainable), dropping ``scales``."""
        if self.__dict__.get("_quantized", False):
            self.weight = mx.dequantize(
                self["weight"],
                scales=self["scales"],
                group_size=self.group_size,
                bits=self.bits,
                mode=self.mode,
            )
            del self["scales"]
            self.__dict__["_quantized"] = False

    def __call__(self, x: array) -> array:
        return mx.qqmm(
            x,
            self["weight"],
            scales=self.get("scales"),
            group_size=self.group_size,
            bits=self.bits,
            mode=self.mode,
        )

    @classmethod
    def from_linear(
        cls,
        linear_layer: Module,
        group_size: int | None = None,
        bits: int | None = None,
        mode: str = "nvfp4",
    ) -> QQLinear:
        """A ``QQLinear`` sharing a bias-free ``Linear`` layer's weight."""
        if linear_layer.get("bias") is not None:
            raise NotImplementedError("QQLinear does not support bias yet.")
        output_dims, input_dims = linear_layer["weight"].shape
        ql = cls(input_dims, output_dims, group_size, bits, mode=mode)
        ql.weight = linear_layer["weight"]
        ql.train(linear_layer.training)
        return ql


def _linear_to_quantized(
    self: Linear,
    group_size: int | None = None,
    bits: int | None = None,
    mode: str = "affine",
    quantize_input: bool = False,
) -> Module:
    """The quantized twin of this layer (``QQLinear`` when ``quantize_input``).

    Args:
        group_size: see :func:`chainrule.core.quantize`.
        bits: see :func:`chainrule.core.quantize`.
        mode: the quantization mode.
        quantize_input: also quantize the inputs (``"nvfp4"`` and ``"mxfp8"`` only).

    Returns:
        A ``QuantizedLinear`` or a ``QQLinear``.
    """
    if quantize_input:
        if mode not in ("nvfp4", "mxfp8"):
            raise ValueError(
                f"Linear.to_quantized: quantize_input needs mode 'nvfp4' or 'mxfp8', got {mode!r}"
            )
        return QQLinear.from_linear(self, group_size, bits, mode=mode)
    return QuantizedLinear.from_linear(self, group_size, bits, mode=mode)


def _embedding_to_quantized(
    self: Embedding,
    group_size: int | None = None,
    bits: int | None = None,
    mode: str = "affine",
    quantize_input: bool = False,
) -> Module:
    """The quantized twin of this layer (a ``QuantizedEmbedding``).

    Args:
        group_size: see :func:`chainrule.core.quantize`.
        bits: see :func:`chainrule.core.quantize`.
        mode: the quantization mode.
        quantize_input: not supported for embeddings (raises ``ValueError``).

    Returns:
        A ``QuantizedEmbedding``.
    """
    if quantize_input:
        raise ValueError("Embedding.to_quantized: quantized inputs are not supported")
    return QuantizedEmbedding.from_embedding(self, group_size, bits, mode=mode)


# The layers that can be quantized carry MLX's `to_quantized()`; it is defined here, next to the
# quantized layers it builds, and installed on the two classes.
Linear.to_quantized = _linear_to_quantized
Embedding.to_quantized = _embedding_to_quantized


def quantize(
    model: Module,
    group_size: int | None = None,
    bits: int | None = None,
    *,
    mode: str = "affine",
    quantize_input: bool = False,
    class_predicate: Callable[[str, Module], bool | dict] | None = None,
) -> None:
    """Quantize the leaf modules of ``model`` in place (MLX's ``nn.quantize``).

    Args:
        model: the model.
        group_size: see :func:`chainrule.core.quantize`.
        bits: see :func:`chainrule.core.quantize`.
        mode: the quantization mode.
        quantize_input: quantize the inputs too (``Linear`` layers, nvfp4/mxfp8 only).
        class_predicate: ``(path, module) -> bool | dict``: whether to quantize a module, or
            the keyword arguments for its ``to_quantized()``. Default: every leaf module that
            has ``to_quantized()``.
    """
    predicate = class_predicate or (lambda _, m: hasattr(m, "to_quantized"))

    def swap(path: str, m: Any) -> Any:
        choice = predicate(path, m)
        if not choice:
            return m
        if not hasattr(m, "to_quantized"):
            raise ValueError(f"Unable to quantize model of type {type(m)}")
        if isinstance(choice, bool):
            kwargs: dict = {"group_size": group_size, "bits": bits, "mode": mode}
            if quantize_input:
                kwargs["quantize_input"] = True
            return m.to_quantized(**kwargs)
        if isinstance(choice, dict):
            kwargs = dict(choice)
            if "quantize_input" in kwargs and not kwargs["quantize_input"]:
                kwargs.pop("quantize_input")
            return m.to_quantized(**kwargs)
        raise ValueError(
            "class_predicate must return a bool or a dict of parameters for to_quantized"
        )

    leaves = tree_map_with_path(swap, model.leaf_modules(), is_leaf=Module.is_module)
    model.update_modules(leaves)
