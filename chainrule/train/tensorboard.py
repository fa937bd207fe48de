"""TensorBoard event files: ``SummaryWriter`` (PyTorch's API) and the ``TensorBoard`` callback.

The events are written by the ``tensorboard`` package's own writer
(``tensorboard.summary.writer.event_file_writer.EventFileWriter``) with its protocol buffers,
so TensorBoard and its ``EventAccumulator`` read them. ``pip install 'chainrule[tensorboard]'``.

One class serves both front doors: ``chainrule.torch.utils.tensorboard.SummaryWriter`` *is*
:class:`SummaryWriter`, with PyTorch's signatures and defaults (``log_dir`` is
``runs/<Mon DD_HH-MM-SS>_<host><comment>``; ``add_scalars`` writes one sub-directory per
entry; ``add_hparams`` one run directory holding the hparams summaries and the metrics).

An event file is a log that TensorBoard reads while it grows, so it is appended to in place
(flushed every ``flush_secs`` and on ``flush()``/``close()``); it is the one kind of file
chainrule writes outside the atomic writer of ``chainrule/core/io.py``, because a file
replaced at each flush could not be followed by a running TensorBoard.
"""

from __future__ import annotations

import io
import os
import socket
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np

from chainrule.core.array import array
from chainrule.core.extend import Node

from .callbacks import Callback

__all__ = ["SummaryWriter", "TensorBoard", "default_log_dir"]

_INSTALL = "writing TensorBoard event files needs the tensorboard package: pip install 'chainrule[tensorboard]'"


def _tb():
    """The tensorboard modules this file uses (imported on first use: an optional extra)."""
    try:
        from tensorboard.compat.proto import (
            attr_value_pb2,
            event_pb2,
            graph_pb2,
            node_def_pb2,
            summary_pb2,
            tensor_pb2,
            tensor_shape_pb2,
            versions_pb2,
        )
        from tensorboard.plugins.hparams import api_pb2
        from tensorboard.plugins.hparams import plugin_data_pb2 as hparams_data
        from tensorboard.plugins.text import plugin_data_pb2 as text_data
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
    except ImportError:
        raise ImportError(_INSTALL) from None
    return {
        "attr": attr_value_pb2,
        "event": event_pb2,
        "graph": graph_pb2,
        "node": node_def_pb2,
        "summary": summary_pb2,
        "tensor": tensor_pb2,
        "shape": tensor_shape_pb2,
        "versions": versions_pb2,
        "api": api_pb2,
        "hparams": hparams_data,
        "text": text_data,
        "EventFileWriter": EventFileWriter,
    }


def default_log_dir(comment: str = "") -> str:
    """PyTorch's default run folder: ``runs/<Mon DD_HH-MM-SS>_<hostname><comment>``.

    Args:
        comment: appended to the folder's name.

    Returns:
        The path (not created).
    """
    now = datetime.now().strftime("%b%d_%H-%M-%S")
    return os.path.join("runs", f"{now}_{socket.gethostname()}{comment}")


def _numpy(value: Any, who: str) -> np.ndarray:
    if isinstance(value, array):
        return np.asarray(value.numpy() if hasattr(value, "numpy") else value)
    if hasattr(value, "detach") and hasattr(value, "cpu") and hasattr(value, "numpy"):
        return np.asarray(value.detach().cpu().numpy())  # a real torch tensor
    try:
        return np.asarray(value)
    except Exception:  # noqa: BLE001 - named below
        raise TypeError(f"{who}: cannot read a {type(value).__name__} as numbers") from None


def _scalar(value: Any, who: str) -> float:
    v = _numpy(value, who)
    if v.size != 1:
        raise ValueError(f"{who}: expected one number, got an array of shape {v.shape}")
    if v.dtype.kind not in "biuf":
        raise TypeError(f"{who}: expected a real number, got dtype {v.dtype}")
    return float(v.reshape(()))


def _tag(tag: Any, who: str) -> str:
    if not isinstance(tag, str) or not tag:
        raise TypeError(f"{who}: tag must be a non-empty string, got {tag!r}")
    return tag


def _step(step: Any, who: str) -> int | None:
    if step is None:
        return None
    if isinstance(step, array) or isinstance(step, np.ndarray):
        step = _scalar(step, who)
    if isinstance(step, float) and step.is_integer():
        step = int(step)
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)):
        raise TypeError(f"{who}: global_step must be an int, got {step!r}")
    return int(step)


_TF_BUCKETS = None


def _tf_bucket_edges() -> np.ndarray:
    """TensorFlow's histogram bucket limits (PyTorch's ``bins='tensorflow'``)."""
    global _TF_BUCKETS
    if _TF_BUCKETS is None:
        v, pos = 1e-12, []
        while v < 1e20:
            pos.append(v)
            v *= 1.1
        _TF_BUCKETS = np.array([-x for x in reversed(pos)] + [0.0] + pos, dtype=np.float64)
    return _TF_BUCKETS


def _histogram(values: np.ndarray, bins: Any, max_bins: int | None, proto: Any) -> Any:
    values = values.astype(np.float64).reshape(-1)
    if values.size == 0:
        raise ValueError("add_histogram: the values are empty")
    if not np.isfinite(values).all():
        raise ValueError("add_histogram: the values hold NaN or infinity")
    if isinstance(bins, str) and bins == "tensorflow":
        edges = _tf_bucket_edges()
        # the buckets that hold the values, with one empty bucket on each side (as TF does)
        lo = max(int(np.searchsorted(edges, values.min(), side="right")) - 2, 0)
        hi = min(int(np.searchsorted(edges, values.max(), side="left")) + 2, len(edges))
        bins = edges[lo:hi]
        if len(bins) < 2:
            bins = np.array([values.min() - 0.5, values.max() + 0.5])
    counts, limits = np.histogram(values, bins=bins)
    if max_bins is not None and len(counts) > max_bins:
        factor = -(-len(counts) // max_bins)
        pad = (-len(counts)) % factor
        counts = np.pad(counts, (0, pad)).reshape(-1, factor).sum(axis=1)
        limits = np.concatenate([limits[:-1:factor], limits[-1:]])
        limits = limits if len(limits) == len(counts) + 1 else np.append(limits, limits[-1])
    nonzero = np.nonzero(counts)[0]
    start, end = (nonzero[0], nonzero[-1] + 1) if nonzero.size else (0, len(counts))
    start, end = max(start - 1, 0), min(end + 1, len(counts))
    return proto.HistogramProto(
        min=float(values.min()),
        max=float(values.max()),
        num=int(values.size),
        sum=float(values.sum()),
        sum_squares=float(np.dot(values, values)),
        bucket_limit=[float(x) for x in limits[start + 1 : end + 1]],
        bucket=[float(c) for c in counts[start:end]],
    )


def _image_hwc(img: np.ndarray, dataformats: str) -> np.ndarray:
    """An image in ``dataformats`` (``CHW``, ``HWC``, ``HW``, ``NCHW``...) as HWC uint8."""
    fmt = dataformats.upper()
    if sorted(fmt) != sorted(set(fmt)) or not set(fmt) <= set("NCHW") or not {"H", "W"} <= set(fmt):
        raise ValueError(
            f"add_image: dataformats {dataformats!r} must be letters of NCHW with H and W"
        )
    if img.ndim != len(fmt):
        raise ValueError(
            f"add_image: an image of shape {img.shape} does not match dataformats {dataformats!r}"
        )
    if "N" in fmt:  # a batch: a grid of images, as PyTorch's make_grid-like layout
        img = np.moveaxis(img, fmt.index("N"), 0)
        fmt = fmt.replace("N", "")
        n = img.shape[0]
        per = [_image_hwc(im, fmt) for im in img]
        cols = int(np.ceil(np.sqrt(n)))
        rows = -(-n // cols)
        h, w, c = per[0].shape
        grid = np.zeros((rows * h, cols * w, c), np.uint8)
        for i, im in enumerate(per):
            r, k = divmod(i, cols)
            grid[r * h : (r + 1) * h, k * w : (k + 1) * w] = im
        return grid
    if "C" not in fmt:
        img, fmt = img[None], "C" + fmt
    img = np.transpose(img, [fmt.index(a) for a in "HWC"])
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    if img.shape[2] not in (3, 4):
        raise ValueError(f"add_image: {img.shape[2]} channels (1, 3 or 4 can be shown)")
    if img.dtype != np.uint8:
        # scaled by 255 and truncated, as PyTorch does
        img = np.clip(img.astype(np.float64) * 255.0, 0, 255).astype(np.uint8)
    return img


class SummaryWriter:
    """Writes TensorBoard event files (``torch.utils.tensorboard.SummaryWriter``'s API).

    Args:
        log_dir: the run folder (default ``runs/<Mon DD_HH-MM-SS>_<hostname><comment>``).
        comment: appended to the default folder's name (ignored when ``log_dir`` is given).
        purge_step: steps at or after this one in earlier files of the folder are hidden by
            TensorBoard (a restarted run).
        max_queue: events held before they are written.
        flush_secs: seconds between automatic flushes.
        filename_suffix: appended to every event file's name.
    """

    def __init__(
        self,
        log_dir: str | os.PathLike | None = None,
        comment: str = "",
        purge_step: int | None = None,
        max_queue: int = 10,
        flush_secs: int = 120,
        filename_suffix: str = "",
    ) -> None:
        self._pb = _tb()
        self.log_dir = os.fspath(log_dir) if log_dir is not None else default_log_dir(comment)
        if os.path.exists(self.log_dir) and not os.path.isdir(self.log_dir):
            raise NotADirectoryError(f"SummaryWriter: log_dir {self.log_dir} is a file")
        self.purge_step = purge_step
        self.max_queue, self.flush_secs, self.filename_suffix = (
            max_queue,
            flush_secs,
            filename_suffix,
        )
        self._writers: dict[str, Any] = {}
        self._writer = self._open(self.log_dir)
        if purge_step is not None:
            self._event(
                self._pb["event"].Event(
                    step=_step(purge_step, "SummaryWriter"),
                    session_log=self._pb["event"].SessionLog(
                        status=self._pb["event"].SessionLog.START
                    ),
                )
            )

    def _open(self, folder: str) -> Any:
        writer = self._writers.get(folder)
        if writer is None:
            writer = self._pb["EventFileWriter"](
                folder, self.max_queue, self.flush_secs, self.filename_suffix
            )
            self._writers[folder] = writer
        return writer

    def get_logdir(self) -> str:
        """The folder the event files are written to."""
        return self.log_dir

    # -- writing events ------------------------------------------------------------------------
    def _event(
        self, event: Any, step: int | None = None, walltime: float | None = None, writer=None
    ):
        if self._writer is None:
            raise RuntimeError("SummaryWriter: the writer is closed")
        event.wall_time = time.time() if walltime is None else float(walltime)
        if step is not None:
            event.step = step
        (writer or self._writer).add_event(event)

    def _summary(self, value: Any, step: Any, walltime: Any, who: str, writer=None) -> None:
        summary = self._pb["summary"].Summary(value=[value])
        self._event(self._pb["event"].Event(summary=summary), _step(step, who), walltime, writer)

    def add_scalar(
        self,
        tag: str,
        scalar_value: Any,
        global_step: int | None = None,
        walltime: float | None = None,
        new_style: bool = False,
        double_precision: bool = False,
    ) -> None:
        """Log one number (a float, an int or a one-element array) under ``tag``."""
        who = "add_scalar"
        tag = _tag(tag, who)
        v = _scalar(scalar_value, who)
        S = self._pb["summary"].Summary
        if not new_style:
            value = S.Value(tag=tag, simple_value=v)
        else:
            meta = self._pb["summary"].SummaryMetadata(
                plugin_data=self._pb["summary"].SummaryMetadata.PluginData(plugin_name="scalars")
            )
            dtype = "DT_DOUBLE" if double_precision else "DT_FLOAT"
            tensor = self._pb["tensor"].TensorProto(
                dtype=dtype,
                tensor_shape=self._pb["shape"].TensorShapeProto(),
                **({"double_val": [v]} if double_precision else {"float_val": [v]}),
            )
            value = S.Value(tag=tag, tensor=tensor, metadata=meta)
        self._summary(value, global_step, walltime, who)

    def add_scalars(
        self,
        main_tag: str,
        tag_scalar_dict: Mapping[str, Any],
        global_step: int | None = None,
        walltime: float | None = None,
    ) -> None:
        """Log several numbers on one chart: each key goes to ``log_dir/<main_tag>_<key>``."""
        who = "add_scalars"
        main_tag = _tag(main_tag, who)
        if not isinstance(tag_scalar_dict, Mapping):
            raise TypeError(f"{who}: tag_scalar_dict must be a dict of numbers")
        walltime = time.time() if walltime is None else walltime
        for key, value in tag_scalar_dict.items():
            folder = os.path.join(self.log_dir, f"{main_tag}_{_tag(key, who)}".replace("/", "_"))
            v = self._pb["summary"].Summary.Value(tag=main_tag, simple_value=_scalar(value, who))
            self._summary(v, global_step, walltime, who, self._open(folder))

    def add_histogram(
        self,
        tag: str,
        values: Any,
        global_step: int | None = None,
        bins: Any = "tensorflow",
        walltime: float | None = None,
        max_bins: int | None = None,
    ) -> None:
        """Log the distribution of ``values`` (``bins`` as NumPy's, or ``'tensorflow'``)."""
        who = "add_histogram"
        hist = _histogram(_numpy(values, who), bins, max_bins, self._pb["summary"])
        value = self._pb["summary"].Summary.Value(tag=_tag(tag, who), histo=hist)
        self._summary(value, global_step, walltime, who)

    def add_image(
        self,
        tag: str,
        img_tensor: Any,
        global_step: int | None = None,
        walltime: float | None = None,
        dataformats: str = "CHW",
    ) -> None:
        """Log an image: floats in [0, 1] or uint8 in [0, 255], laid out as ``dataformats``."""
        who = "add_image"
        tag = _tag(tag, who)
        try:
            from PIL import Image
        except ImportError:
            raise ImportError(f"{who}: encoding PNG needs Pillow: pip install pillow") from None
        hwc = _image_hwc(_numpy(img_tensor, who), dataformats)
        buf = io.BytesIO()
        Image.fromarray(hwc).save(buf, format="PNG")
        image = self._pb["summary"].Summary.Image(
            height=hwc.shape[0],
            width=hwc.shape[1],
            colorspace=hwc.shape[2],
            encoded_image_string=buf.getvalue(),
        )
        self._summary(
            self._pb["summary"].Summary.Value(tag=tag, image=image), global_step, walltime, who
        )

    def add_images(
        self,
        tag: str,
        img_tensor: Any,
        global_step: int | None = None,
        walltime: float | None = None,
        dataformats: str = "NCHW",
    ) -> None:
        """Log a batch of images as one grid."""
        self.add_image(tag, img_tensor, global_step, walltime, dataformats)

    def add_text(
        self,
        tag: str,
        text_string: str,
        global_step: int | None = None,
        walltime: float | None = None,
    ) -> None:
        """Log a (Markdown) text under ``<tag>/text_summary``, as PyTorch does."""
        who = "add_text"
        tag = _tag(tag, who)
        if not isinstance(text_string, str):
            raise TypeError(f"{who}: text_string must be a str, got {type(text_string).__name__}")
        pb = self._pb
        meta = pb["summary"].SummaryMetadata(
            plugin_data=pb["summary"].SummaryMetadata.PluginData(
                plugin_name="text", content=pb["text"].TextPluginData(version=0).SerializeToString()
            )
        )
        tensor = pb["tensor"].TensorProto(
            dtype="DT_STRING",
            string_val=[text_string.encode("utf-8")],
            tensor_shape=pb["shape"].TensorShapeProto(
                dim=[pb["shape"].TensorShapeProto.Dim(size=1)]
            ),
        )
        value = pb["summary"].Summary.Value(tag=tag + "/text_summary", metadata=meta, tensor=tensor)
        self._summary(value, global_step, walltime, who)

    def add_graph(
        self,
        model: Any,
        input_to_model: Any = None,
        verbose: bool = False,
        use_strict_trace: bool = True,
    ) -> None:
        """Log the graph of ``model(*input_to_model)``: one node per recorded operation.

        Args:
            model: a module (or any callable) of chainrule arrays.
            input_to_model: an array or a tuple of arrays.
            verbose: print the graph's nodes.
            use_strict_trace: accepted for PyTorch's signature.
        """
        if input_to_model is None:
            raise ValueError("add_graph: input_to_model is needed to run the model once")
        graph_def = _graph_def(self._pb, model, input_to_model)
        if verbose:
            print(graph_def)
        event = self._pb["event"].Event(graph_def=graph_def.SerializeToString())
        self._event(event)

    def add_hparams(
        self,
        hparam_dict: Mapping[str, Any],
        metric_dict: Mapping[str, Any],
        hparam_domain_discrete: Mapping[str, list] | None = None,
        run_name: str | None = None,
        global_step: int | None = None,
    ) -> None:
        """Log one trial's hyper-parameters and metrics (a run folder ``log_dir/<run_name>``).

        Args:
            hparam_dict: name -> bool, str, int, float (or a one-element array).
            metric_dict: name -> number; also logged as scalars in the run folder.
            hparam_domain_discrete: name -> every value that hyper-parameter may take.
            run_name: the run folder's name (default: the current time in seconds).
            global_step: the step of the metric scalars.
        """
        who = "add_hparams"
        if not isinstance(hparam_dict, Mapping) or not isinstance(metric_dict, Mapping):
            raise TypeError(f"{who}: hparam_dict and metric_dict must be dicts")
        pb = self._pb
        api, data = pb["api"], pb["hparams"]
        infos, values = [], {}
        domains = dict(hparam_domain_discrete or {})
        for name, v in hparam_dict.items():
            _tag(name, who)
            if isinstance(v, array) or isinstance(v, np.ndarray):
                v = _scalar(v, who)
            info = api.HParamInfo(name=name)
            if isinstance(v, bool):
                values[name] = _pb_value(bool_value=v)
                info.type = api.DATA_TYPE_BOOL
            elif isinstance(v, (int, float, np.integer, np.floating)):
                values[name] = _pb_value(number_value=float(v))
                info.type = api.DATA_TYPE_FLOAT64
            elif isinstance(v, str):
                values[name] = _pb_value(string_value=v)
                info.type = api.DATA_TYPE_STRING
            else:
                raise ValueError(
                    f"{who}: hyper-parameter {name!r} is a {type(v).__name__}; use bool, str, "
                    "int or float"
                )
            if name in domains:
                listed = domains.pop(name)
                kind = {bool: "bool_value", str: "string_value"}.get(type(v), "number_value")
                info.domain_discrete.extend(
                    [_pb_value(**{kind: float(d) if kind == "number_value" else d}) for d in listed]
                )
            infos.append(info)
        if domains:
            raise ValueError(
                f"{who}: hparam_domain_discrete names unknown hyper-parameters {sorted(domains)}"
            )
        metrics = [api.MetricInfo(name=api.MetricName(tag=_tag(k, who))) for k in metric_dict]
        experiment = api.Experiment(hparam_infos=infos, metric_infos=metrics)
        start = data.SessionStartInfo(group_name="", start_time_secs=time.time())
        for name, value in values.items():
            start.hparams[name].CopyFrom(value)
        end = data.SessionEndInfo(status=api.STATUS_SUCCESS)
        folder = os.path.join(self.log_dir, run_name or str(time.time()))
        writer = self._open(folder)
        for tag, field, content in (
            ("_hparams_/experiment", "experiment", experiment),
            ("_hparams_/session_start_info", "session_start_info", start),
            ("_hparams_/session_end_info", "session_end_info", end),
        ):
            plugin = data.HParamsPluginData(version=0, **{field: content})
            meta = pb["summary"].SummaryMetadata(
                plugin_data=pb["summary"].SummaryMetadata.PluginData(
                    plugin_name="hparams", content=plugin.SerializeToString()
                )
            )
            value = pb["summary"].Summary.Value(tag=tag, metadata=meta)
            self._summary(value, None, None, who, writer)
        for key, value in metric_dict.items():
            v = pb["summary"].Summary.Value(tag=key, simple_value=_scalar(value, who))
            self._summary(v, global_step, None, who, writer)

    # -- the end -------------------------------------------------------------------------------
    def flush(self) -> None:
        """Write every pending event to disk."""
        for writer in self._writers.values():
            writer.flush()

    def close(self) -> None:
        """Flush and close every event file; the writer accepts no more events."""
        for writer in self._writers.values():
            writer.flush()
            writer.close()
        self._writers.clear()
        self._writer = None

    def __enter__(self) -> SummaryWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _pb_value(**kwargs: Any) -> Any:
    from google.protobuf import struct_pb2

    return struct_pb2.Value(**kwargs)


def _graph_def(pb: dict, model: Any, inputs: Any) -> Any:
    """A GraphDef of the operations ``model(*inputs)`` records (parameters named)."""
    from chainrule.core import enable_grad

    args = inputs if isinstance(inputs, (tuple, list)) else (inputs,)
    traced = []
    for i, a in enumerate(args):
        if not isinstance(a, array):
            raise TypeError(f"add_graph: input {i} is a {type(a).__name__}, not a chainrule array")
        traced.append(a.detach().clone().requires_grad_(True))
    with enable_grad():
        out = model(*traced)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    roots = [o._node for o in outs if isinstance(o, array) and o._node is not None]
    if not roots:
        raise ValueError("add_graph: the model's output does not depend on its input")
    names: dict[int, str] = {}
    if hasattr(model, "named_parameters"):
        for name, p in model.named_parameters():
            names[id(p)] = name
    for i, x in enumerate(traced):
        names[id(x)] = f"input_{i}"
    order: list[Node] = []
    seen: set[int] = set()
    stack = [(r, False) for r in reversed(roots)]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        stack.extend(
            (a, False) for a in reversed(node.args) if type(a) is Node and id(a) not in seen
        )
    label: dict[int, str] = {}
    nodes = []
    count: dict[str, int] = {}
    for node in order:
        if node.prim is None:
            owner = node.owner() if node.owner is not None else None
            name = names.get(id(owner), "parameter").replace(".", "/")
            op = "IO Node" if name.startswith("input_") else "Parameter"
        else:
            op = node.prim.name
            count[op] = count.get(op, 0) + 1
            name = f"{op}_{count[op]}"
        label[id(node)] = name
        shape = pb["shape"].TensorShapeProto(
            dim=[pb["shape"].TensorShapeProto.Dim(size=int(d)) for d in np.shape(node.value)]
        )
        attr = {
            "_output_shapes": pb["attr"].AttrValue(
                list=pb["attr"].AttrValue.ListValue(shape=[shape])
            ),
            "dtype": pb["attr"].AttrValue(s=str(getattr(node.value, "dtype", "")).encode()),
        }
        ins = [label[id(a)] for a in node.args if type(a) is Node]
        nodes.append(pb["node"].NodeDef(name=name, op=op, input=ins, attr=attr))
    for i, r in enumerate(roots):
        nodes.append(pb["node"].NodeDef(name=f"output_{i}", op="IO Node", input=[label[id(r)]]))
    return pb["graph"].GraphDef(node=nodes, versions=pb["versions"].VersionDef(producer=22))


class TensorBoard(Callback):
    """A ``fit`` callback that logs every epoch's figures (loss, metrics, ``val_*``, ``lr``).

    Each figure ``name`` becomes the scalar ``epoch/<name>`` at step ``epoch``; with
    ``log_every_n_steps`` the batch losses are logged as ``batch/loss`` by global step too,
    and with ``histograms=True`` every parameter's distribution at each epoch's end.

    Args:
        log_dir: the run folder (default as :class:`SummaryWriter`'s).
        log_every_n_steps: log the batch loss every this many steps (0: never).
        histograms: log parameter histograms each epoch.
    """

    rank_zero_only = True

    def __init__(
        self,
        log_dir: str | os.PathLike | None = None,
        log_every_n_steps: int = 0,
        histograms: bool = False,
    ) -> None:
        if (
            isinstance(log_every_n_steps, bool)
            or not isinstance(log_every_n_steps, int)
            or log_every_n_steps < 0
        ):
            raise ValueError(
                f"TensorBoard: log_every_n_steps must be an int >= 0, got {log_every_n_steps!r}"
            )
        _tb()  # fail now, not after the first epoch, when tensorboard is missing
        self.log_dir = os.fspath(log_dir) if log_dir is not None else None
        self.log_every_n_steps = log_every_n_steps
        self.histograms = histograms
        self.writer: SummaryWriter | None = None
        self._global_step = 0
        self._epoch = 0

    def on_train_begin(self, logs: dict[str, Any]) -> None:
        self.writer = SummaryWriter(self.log_dir)
        self.log_dir = self.writer.log_dir
        self._global_step = 0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any]) -> None:
        self._epoch = epoch

    def on_batch_end(self, batch: int, logs: dict[str, Any]) -> None:
        self._global_step += 1
        n = self.log_every_n_steps
        if n and self.writer is not None and self._global_step % n == 0 and "loss" in logs:
            self.writer.add_scalar("batch/loss", logs["loss"], self._global_step)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        if self.writer is None:
            return
        for name, value in logs.items():
            try:
                v = _scalar(value, "TensorBoard")
            except (TypeError, ValueError):
                continue  # not one number (a confusion matrix): not a scalar chart
            self.writer.add_scalar(f"epoch/{name}", v, epoch)
        if self.histograms and hasattr(self.model, "named_parameters"):
            for name, p in self.model.named_parameters():
                self.writer.add_histogram(name, p, epoch)
        self.writer.flush()

    def on_train_end(self, logs: dict[str, Any]) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
