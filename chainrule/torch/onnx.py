"""``torch.onnx``: ``export`` and ``is_in_onnx_export``, over ``chainrule.viz.onnx``.

``export(model, args, f, input_names=..., output_names=..., dynamic_axes=..., opset_version=...)``
runs the model once in eval mode (``training=TrainingMode.EVAL``, PyTorch's default) and writes
the ONNX graph of the operations it recorded. Needs ``pip install 'chainrule[export]'``.
"""

from __future__ import annotations

import enum
import io
import os
from collections.abc import Mapping, Sequence
from typing import Any

from chainrule.viz.onnx import DEFAULT_OPSET, OnnxExportError, export_onnx, is_in_onnx_export

__all__ = ["export", "is_in_onnx_export", "TrainingMode", "OnnxExportError", "DEFAULT_OPSET"]


class TrainingMode(enum.IntEnum):
    """The mode the model runs in while exported (PyTorch's ``torch.onnx.TrainingMode``)."""

    EVAL = 0
    PRESERVE = 1
    TRAINING = 2


def export(
    model: Any,
    args: Any = (),
    f: str | os.PathLike | io.IOBase | None = None,
    *,
    kwargs: Mapping[str, Any] | None = None,
    verbose: bool | None = None,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    opset_version: int | None = None,
    dynamic_axes: Mapping[str, Any] | None = None,
    training: TrainingMode = TrainingMode.EVAL,
    export_params: bool = True,
    do_constant_folding: bool = True,
    dynamo: bool = True,
    **ignored: Any,
) -> None:
    """Export ``model(*args)`` to the ONNX file ``f`` (PyTorch's ``torch.onnx.export``).

    Args:
        model: a module or function of tensors.
        args: a tensor or a tuple of tensors (a trailing dict is keyword arguments).
        f: the file path or binary file object to write.
        kwargs: keyword arguments of the model (fixed at their example values).
        verbose: print the ONNX graph.
        input_names: names of the graph inputs.
        output_names: names of the graph outputs.
        opset_version: the ONNX opset (default 18).
        dynamic_axes: ``{name: {axis: label}}`` or ``{name: [axes]}``.
        training: ``TrainingMode.EVAL`` (default), ``PRESERVE`` or ``TRAINING``.
        export_params: must be True (the weights are always stored).
        do_constant_folding: accepted (constants are not folded further).
        dynamo: accepted (there is one exporter).
        **ignored: PyTorch's other options (``external_data``, ``optimize``...), accepted.

    Returns:
        None; the file is written (atomically, for a path).
    """
    if f is None:
        raise OnnxExportError(
            "torch.onnx.export: f (a file path or a binary file) is required here"
        )
    if not export_params:
        raise OnnxExportError(
            "torch.onnx.export: export_params=False is not supported (weights are always stored)"
        )
    if not isinstance(args, tuple):
        args = (args,)
    if args and isinstance(args[-1], dict):
        kwargs = {**args[-1], **(kwargs or {})}
        args = args[:-1]
    fn = model
    if kwargs or any(isinstance(a, (tuple, list)) for a in args):
        # nested inputs ((x, (h0, c0)) for an LSTM) become flat graph inputs, as PyTorch's
        # exporter flattens them; the model is called with the original structure
        extra = dict(kwargs or {})
        spec = [len(a) if isinstance(a, (tuple, list)) else None for a in args]
        kinds = [type(a) for a in args]
        args = tuple(v for a in args for v in (a if isinstance(a, (tuple, list)) else (a,)))

        def fn(*a: Any) -> Any:
            it = iter(a)
            rebuilt = [
                next(it) if n is None else kind(next(it) for _ in range(n))
                for n, kind in zip(spec, kinds)
            ]
            return model(*rebuilt, **extra)

        for attr in ("state_dict", "named_parameters", "train", "training"):
            if hasattr(model, attr):
                setattr(fn, attr, getattr(model, attr))
    if training == TrainingMode.PRESERVE:
        mode = bool(getattr(model, "training", False))
    else:
        mode = training == TrainingMode.TRAINING
    proto = export_onnx(
        fn,
        args,
        f,
        input_names=input_names,
        output_names=output_names,
        dynamic_axes=dynamic_axes,
        opset_version=opset_version,
        training=mode,
    )
    if verbose:
        import onnx

        print(onnx.helper.printable_graph(proto.graph))
