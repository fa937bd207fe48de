"""``fit``, ``evaluate`` and ``predict``: the training loop, for models and optimizers of
either style, and the ``History`` it returns.

``fit`` drives an MLX-style optimizer (built without parameters) with
``nn.value_and_grad`` and ``optimizer.update(model, grads)``, and a PyTorch-style one (built
on ``model.parameters()``) with ``zero_grad()``, ``loss.backward()`` and ``step()``. Data may
be a ``Dataset``, a ``DataLoader`` or a tuple ``(X, y)`` of arrays (chainrule or NumPy).

A NaN or infinite loss (checked every step: it is already a number) or parameter (checked once
per epoch, and when the loss goes bad, to name the first one) stops ``fit`` with a
:class:`NonFiniteError` naming the epoch and step, unless ``on_nonfinite`` says otherwise.
"""

from __future__ import annotations

import io
import json
import math
import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

import numpy as np

import chainrule.core as mx
from chainrule.checkpoint import is_torch_style, named_arrays
from chainrule.core.io import atomic_write
from chainrule.core.threads import CoreShare

from .callbacks import Callback, CallbackList, get_lr
from .metrics import _resolve_metrics
from .progress import EpochProgress, resolve_mode

__all__ = ["fit", "evaluate", "predict", "History", "NonFiniteError"]

MetricSpec = str | Callable[..., float]

_HISTORY_FORMAT = "chainrule.history"


# ------------------------------------------------------------------------------- History


def _json_number(v: float) -> float | None:
    # JSON has no NaN or infinity; null stands for them and reads back as NaN.
    return v if math.isfinite(v) else None


class History:
    """Per-epoch figures of a training run.

    Attributes:
        history: ``{"loss": [...], "val_loss": [...], "accuracy": [...], "lr": [...], ...}``,
            one value per finished epoch (``nan`` where a figure was missing that epoch).
        epoch: The 0-based numbers of the finished epochs.
        params: Training settings (``epochs``, ``batch_size``, ``steps``).

    Args:
        history: Initial figures.
        epoch: Initial epoch numbers.
        params: Training settings.
    """

    def __init__(
        self,
        history: dict[str, list[float]] | None = None,
        epoch: list[int] | None = None,
        params: dict[str, Any] | None = None,
    ) -> None:
        self.history: dict[str, list[float]] = {k: list(v) for k, v in (history or {}).items()}
        self.epoch: list[int] = list(epoch or [])
        self.params: dict[str, Any] = dict(params or {})
        # False on the ranks other than 0 of a data-parallel fit: one process writes files.
        self._writes = True

    def record(self, epoch: int, logs: dict[str, Any]) -> None:
        """Append one epoch's figures (keys seen for the first time are back-filled with NaN).

        Args:
            epoch: The epoch number.
            logs: Its figures; non-numeric entries are ignored.
        """
        n = len(self.epoch)
        self.epoch.append(int(epoch))
        for k, v in logs.items():
            if isinstance(v, (int, float, np.number)) and not isinstance(v, bool):
                self.history.setdefault(k, [math.nan] * n).append(float(v))
        for values in self.history.values():
            if len(values) == n:
                values.append(math.nan)

    def __getitem__(self, key: str) -> list[float]:
        return self.history[key]

    def __contains__(self, key: str) -> bool:
        return key in self.history

    def __len__(self) -> int:
        return len(self.epoch)

    def __repr__(self) -> str:
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN and infinities become ``None``)."""
        return {
            "format": _HISTORY_FORMAT,
            "version": 1,
            "epoch": list(self.epoch),
            "history": {k: [_json_number(v) for v in vs] for k, vs in self.history.items()},
            "params": self.params,
        }

    def save(self, path: str | os.PathLike) -> None:
        """Write the history to a JSON file, atomically.

        In a data-parallel ``fit`` (several processes), only rank 0 writes; the other ranks'
        histories (identical) do nothing here.

        Args:
            path: The destination (``history.json``).
        """
        if not self._writes:
            return
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False, default=str)
        atomic_write(path, lambda f: f.write(text.encode("utf-8")))

    @classmethod
    def load(cls, path: str | os.PathLike) -> History:
        """Read a history written by :meth:`save`.

        Args:
            path: The JSON file.

        Returns:
            The history.

        Raises:
            ValueError: If the file is not a saved history.
        """
        path = os.fspath(path)
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: not a chainrule history file (not JSON: {e})") from None
        if not isinstance(data, dict) or data.get("format") != _HISTORY_FORMAT:
            raise ValueError(f"{path}: not a chainrule history file (no 'format' entry)")
        try:
            epoch = [int(e) for e in data["epoch"]]
            history = {
                str(k): [math.nan if v is None else float(v) for v in vs]
                for k, vs in data["history"].items()
            }
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ValueError(f"{path}: malformed chainrule history file: {e}") from None
        for k, vs in history.items():
            if len(vs) != len(epoch):
                raise ValueError(f"{path}: {k!r} has {len(vs)} values for {len(epoch)} epochs")
        return cls(history, epoch, data.get("params") or {})

    def plot(
        self,
        path: str | os.PathLike,
        keys: Sequence[str] | None = None,
        title: str | None = None,
        mark_epoch: int | None = None,
    ) -> str:
        """Draw the loss and metric curves to an image file (PNG by default).

        One panel per figure: the training curve and, where logged, its ``val_`` curve;
        ``lr`` gets its own panel (log scale) when it changes. The epoch whose weights were
        kept (``EarlyStopping(restore_best=True)`` records it as ``params["kept_epoch"]``) is
        marked with a dotted vertical line in every panel. Uses matplotlib's Agg canvas
        directly, so no window is ever opened and pyplot's global state is untouched. In a
        data-parallel ``fit`` (several processes), only rank 0 draws and writes the file.

        Args:
            path: The image file; the format follows its extension (``.png``, ``.svg``, ...).
            keys: The figures to draw (without ``val_``); default: ``loss``, then every
                metric, then ``lr``.
            title: A title for the whole figure.
            mark_epoch: The 0-based epoch to mark (default: ``params["kept_epoch"]``, if any).

        Returns:
            ``path`` as a string.

        Raises:
            ImportError: If matplotlib is not installed (``pip install 'chainrule[train]'``).
            ValueError: If there is nothing to plot or a key is unknown.
        """
        if not self._writes:
            return os.fspath(path)
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
            from matplotlib.ticker import MaxNLocator
        except ImportError:
            raise ImportError(
                "History.plot needs matplotlib, which is part of the 'train' extra: "
                "pip install 'chainrule[train]'"
            ) from None
        path = os.fspath(path)
        if not self.epoch:
            raise ValueError("History.plot: the history is empty (no finished epoch)")
        if keys is None:
            base = [k for k in self.history if not k.startswith("val_") and k != "lr"]
            base += [k[4:] for k in self.history if k.startswith("val_") and k[4:] not in base]
            keys = sorted(base, key=lambda k: k != "loss")
            lr = self.history.get("lr")
            if lr is not None and len({v for v in lr if not math.isnan(v)}) > 1:
                keys.append("lr")
        for k in keys:
            if k not in self.history and f"val_{k}" not in self.history:
                raise ValueError(f"History.plot: no figure {k!r}; known: {list(self.history)}")
        if not keys:
            raise ValueError("History.plot: nothing to plot")

        if mark_epoch is None:
            mark_epoch = self.params.get("kept_epoch")
        if mark_epoch is not None and int(mark_epoch) not in self.epoch:
            mark_epoch = None  # not an epoch of this history (e.g. a resumed run's earlier part)
        fig = Figure(figsize=(4.5 * len(keys), 3.6), layout="constrained")
        FigureCanvasAgg(fig)
        x = [e + 1 for e in self.epoch]
        for i, k in enumerate(keys):
            ax = fig.add_subplot(1, len(keys), i + 1)
            for name, style in ((k, "-"), (f"val_{k}", "--")):
                if name in self.history and name != "val_lr":
                    ax.plot(x, self.history[name], style, marker="o", markersize=3, label=name)
            if mark_epoch is not None:
                ax.axvline(
                    int(mark_epoch) + 1,
                    color="grey",
                    linestyle=":",
                    label=f"kept: epoch {int(mark_epoch) + 1}",
                )
            if k == "lr":
                ax.set_yscale("log")
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_title(k)
            ax.grid(True, alpha=0.3)
            ax.legend()
        if title:
            fig.suptitle(title)
        ext = os.path.splitext(path)[1].lstrip(".").lower() or "png"
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, dpi=100)
        atomic_write(path, lambda f: f.write(buf.getvalue()))
        return path


# ----------------------------------------------------------------------------------- data


def _is_array(x: Any) -> bool:
    return type(x) is mx.array or isinstance(x, np.ndarray)


def _loader(data: Any, batch_size: int, shuffle: bool, who: str, arg: str) -> Iterable:
    """An iterable of batches (re-iterable: one pass per epoch)."""
    from chainrule.data import DataLoader, TensorDataset

    if isinstance(data, (str, bytes, os.PathLike, dict)):
        raise TypeError(
            f"{who}: {arg} must be a Dataset, a DataLoader or a tuple (X, y) of arrays, got "
            f"{type(data).__name__} (read files with chainrule.data.from_csv / from_json)"
        )
    # A tuple (X, y) may hold nested lists; a list only counts as [X, y] when it holds arrays
    # (otherwise it is a list of samples, which the DataLoader takes as a dataset).
    is_pair = isinstance(data, tuple) or (
        isinstance(data, list) and all(_is_array(a) for a in data)
    )
    if is_pair and len(data) in (1, 2):
        if not all(_is_array(a) or isinstance(a, list) for a in data):
            kinds = [type(a).__name__ for a in data]
            raise TypeError(f"{who}: {arg} must be (X, y) arrays, got a tuple of {kinds}")
        try:
            data = TensorDataset(*data)
        except ValueError as e:
            raise ValueError(f"{who}: {arg}: {e}") from None
    elif _is_array(data):
        data = TensorDataset(data)
    if hasattr(data, "__getitem__") and hasattr(data, "__len__"):
        if len(data) == 0:
            raise ValueError(f"{who}: {arg} is empty")
        return DataLoader(data, batch_size=batch_size, shuffle=shuffle)
    if hasattr(data, "__iter__") and not hasattr(data, "__next__"):
        return data  # a DataLoader (or any re-iterable source of batches): used as is
    raise TypeError(
        f"{who}: {arg} must be a Dataset, a DataLoader or a tuple (X, y) of arrays, "
        f"got {type(data).__name__}"
    )


def _split_batch(batch: Any, who: str, need_target: bool) -> tuple[Any, Any]:
    if isinstance(batch, (tuple, list)):
        if len(batch) >= 2:
            return batch[0], batch[1]
        if len(batch) == 1 and not need_target:
            return batch[0], None
    elif not need_target:
        return batch, None
    raise ValueError(
        f"{who}: each batch must be (inputs, targets); got "
        f"{type(batch).__name__} of length {len(batch) if hasattr(batch, '__len__') else '?'}"
    )


def _n(x: Any) -> int:
    shape = getattr(x, "shape", None)
    return int(shape[0]) if shape else 1


def _value(x: Any) -> np.ndarray:
    data = getattr(x, "_data", None)
    return data if isinstance(data, np.ndarray) else np.asarray(x)


def _scalar_loss(loss: Any, who: str) -> Any:
    """Losses with ``reduction="none"`` (MLX's default) are averaged over the batch."""
    if getattr(loss, "ndim", 0):
        return mx.mean(loss)
    if not hasattr(loss, "ndim"):
        raise TypeError(f"{who}: loss_fn must return an array, got {type(loss).__name__}")
    return loss


def _compute_metrics(
    metric_fns: list[tuple[str, Callable[..., float]]],
    targets: list[np.ndarray],
    outputs: list[np.ndarray],
    prefix: str,
    who: str,
) -> dict[str, float]:
    if not metric_fns:
        return {}
    y = np.concatenate(targets) if len(targets) > 1 else targets[0]
    out = np.concatenate(outputs) if len(outputs) > 1 else outputs[0]
    logs = {}
    for name, fn in metric_fns:
        try:
            logs[prefix + name] = float(fn(y, out))
        except ValueError as e:
            raise ValueError(
                f"{who}: metric {name!r} failed on outputs of shape {out.shape} and targets "
                f"of shape {y.shape}: {e} (choose metrics suited to the task, e.g. "
                "metrics=('mse',) for regression, or metrics=())"
            ) from None
    return logs


def _run_eval(
    model: Any,
    loader: Iterable,
    loss_fn: Callable[..., Any] | None,
    metric_fns: list[tuple[str, Callable[..., float]]],
    prefix: str,
    who: str,
    dp: Any = None,
) -> dict[str, float]:
    """Loss and metrics over a whole data source, in eval mode without recording.

    With ``dp`` (a ``chainrule.distributed.DataParallel``), each rank evaluates its share and
    the sums and outputs are combined, so every rank returns the figures of the whole source.
    """
    total, count = 0.0, 0
    targets, outputs = [], []
    batches = loader if dp is None else dp.eval_batches(loader)
    with mx.no_grad():
        for batch in batches:
            x, y = _split_batch(batch, who, need_target=True)
            out = model(x)
            n = _n(x)
            if loss_fn is not None:
                total += float(_scalar_loss(loss_fn(out, y), who).item()) * n
            count += n
            if metric_fns:
                outputs.append(_value(out))
                targets.append(_value(y))
    if dp is not None:
        total, count = dp.sum([total, count])
        count = int(round(count))
        if metric_fns:
            targets, outputs = dp.gather(targets), dp.gather(outputs)
    if count == 0:
        raise ValueError(f"{who}: the data produced no batches")
    logs = {} if loss_fn is None else {prefix + "loss": total / count}
    logs.update(_compute_metrics(metric_fns, targets, outputs, prefix, who))
    return logs


class _Mode:
    """Put a model in train or eval mode, and back to its previous mode afterwards."""

    def __init__(self, model: Any, training: bool) -> None:
        self.model, self.training = model, training

    def __enter__(self) -> None:
        self.was = getattr(self.model, "training", True)
        self.model.train(self.training)

    def __exit__(self, *exc: Any) -> None:
        self.model.train(self.was)


def _check_int(value: Any, name: str, low: int, who: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{who}: {name} must be an integer >= {low}, got {value!r}")
    return int(value)


# ------------------------------------------------------------------------------- the loop


class NonFiniteError(ArithmeticError):
    """Training produced a NaN or infinite loss or parameter (``fit(on_nonfinite="raise")``).

    Attributes:
        epoch: The epoch it happened in, 1-based as in the progress lines.
        step: The step (batch) of that epoch, 1-based.
        parameter: The dotted name of the first non-finite parameter, or ``None`` if every
            parameter was still finite.
        loss: The step's loss (NaN or infinite), or ``None`` if the loss was finite.
        problem: The message without the advice that ends it (for a caller with its own).
    """

    ADVICE = (
        "lower the learning rate, check the data for extreme values, or pass "
        "on_nonfinite='warn' or 'ignore' to go on"
    )

    def __init__(
        self, problem: str, epoch: int, step: int, parameter: str | None, loss: float | None
    ) -> None:
        super().__init__(f"{problem} ({self.ADVICE})")
        self.problem = problem
        self.epoch, self.step, self.parameter, self.loss = epoch, step, parameter, loss


NonFinitePolicy = Literal["raise", "warn", "ignore"]


class _NonFiniteGuard:
    """The checks of ``fit(on_nonfinite=...)``: the loss each step, the parameters per epoch."""

    def __init__(self, policy: str, model: Any, epochs: int, steps: int | None) -> None:
        if policy not in ("raise", "warn", "ignore"):
            raise ValueError(
                f"fit: on_nonfinite must be 'raise', 'warn' or 'ignore', got {policy!r}"
            )
        self.policy, self.model, self.epochs, self.steps = policy, model, epochs, steps
        self.active = policy != "ignore"  # a warning is given once, then checks stop

    def _first_bad_parameter(self) -> str | None:
        try:
            arrays = named_arrays(self.model)
        except TypeError:  # a model that lists no named arrays: nothing to name
            return None
        for name, handle in arrays:
            x = handle if isinstance(handle, mx.array) else mx.array(handle)
            # through chainrule's ops: a parameter on the GPU is checked there, not copied
            if mx.issubdtype(x.dtype, mx.inexact) and not mx.all(mx.isfinite(x)).item():
                return name
        return None

    def _where(self, epoch: int, step: int) -> str:
        of_steps = f"/{self.steps}" if self.steps else ""
        return f"epoch {epoch + 1}/{self.epochs}, step {step + 1}{of_steps}"

    def _report(self, problem: str, epoch: int, step: int, name: str | None, loss: Any) -> None:
        error = NonFiniteError(problem, epoch + 1, step + 1, name, loss)
        if self.policy == "raise":
            raise error
        self.active = False
        warnings.warn(str(error), RuntimeWarning, stacklevel=4)

    def check_loss(self, value: float, epoch: int, step: int) -> None:
        """After a step: stop (or warn) if its loss is NaN or infinite."""
        if not self.active or math.isfinite(value):
            return
        name = self._first_bad_parameter()
        found = (
            f"the first non-finite parameter is {name!r}"
            if name is not None
            else "the parameters are still finite"
        )
        self._report(
            f"fit: the loss is {value} at {self._where(epoch, step)}; {found}",
            epoch,
            step,
            name,
            value,
        )

    def check_parameters(self, epoch: int, last_step: int) -> None:
        """After an epoch's steps: stop (or warn) if a parameter is NaN or infinite."""
        if not self.active:
            return
        name = self._first_bad_parameter()
        if name is not None:
            self._report(
                f"fit: parameter {name!r} is non-finite after {self._where(epoch, last_step)} "
                "(the losses were finite)",
                epoch,
                last_step,
                name,
                None,
            )


def _step_fn(
    model: Any, optimizer: Any, loss_fn: Callable[..., Any], compiled: bool = False
) -> Callable[..., Any]:
    """One optimisation step ``step(x, y) -> (loss, outputs)`` in the optimizer's style,
    traced and replayed by ``mx.compile`` when ``compiled``."""
    if compiled:
        step = _step_fn(model, optimizer, loss_fn)
        state = [model.state] if is_torch_style(optimizer) else [model.state, optimizer.state]
        return mx.compile(step, inputs=state, outputs=state)
    if is_torch_style(optimizer):

        def torch_step(x: Any, y: Any) -> tuple[Any, Any]:
            optimizer.zero_grad()
            out = model(x)
            loss = _scalar_loss(loss_fn(out, y), "fit")
            loss.backward()
            optimizer.step()
            return loss, out

        return torch_step

    import chainrule.nn as nn

    box: list[Any] = [None]

    def loss_of(m: Any, x: Any, y: Any) -> Any:
        out = m(x)
        box[0] = out  # the outputs are kept for the training metrics
        return _scalar_loss(loss_fn(out, y), "fit")

    value_and_grad = nn.value_and_grad(model, loss_of)

    def mlx_step(x: Any, y: Any) -> tuple[Any, Any]:
        loss, grads = value_and_grad(model, x, y)
        optimizer.update(model, grads)
        out, box[0] = box[0], None
        if isinstance(out, mx.array):
            out = mx.stop_gradient(out)  # for the metrics: no graph to keep alive
        return loss, out

    return mlx_step


def fit(
    model: Any,
    optimizer: Any,
    loss_fn: Callable[..., Any],
    train_data: Any,
    val_data: Any = None,
    epochs: int = 10,
    batch_size: int = 32,
    metrics: MetricSpec | Sequence[MetricSpec] | None = ("accuracy",),
    callbacks: Iterable[Callback] = (),
    progress: bool | str = True,
    shuffle: bool = True,
    seed: int | None = None,
    initial_epoch: int = 0,
    distributed: Any = None,
    compile: bool = False,
    on_nonfinite: NonFinitePolicy = "raise",
) -> History:
    """Train ``model`` and return the per-epoch figures.

    Each epoch runs over ``train_data`` in train mode (``model.train()``), then evaluates
    ``val_data`` in eval mode without recording a graph. The logged figures are ``loss``
    (mean over examples), each metric (over the whole epoch's training outputs, computed
    before each batch's update), ``val_loss`` and ``val_<metric>``, and ``lr``.

    For exact resumption, save a checkpoint after some epochs (``ModelCheckpoint`` or
    ``save_checkpoint``), restore it into fresh objects with ``load_checkpoint`` and call
    ``fit(..., epochs=total, initial_epoch=saved_epoch)`` without ``seed``: shuffling and
    dropout draw from the global random state, which the checkpoint restores.

    Launched in N processes (``mpiexec -n N python train.py``), ``fit`` trains data-parallel
    (see ``docs/distributed.md``): rank 0's parameters are sent to every rank first; each
    global batch of ``batch_size`` examples (the batches one process would draw) is split
    into N parts, one per rank; the gradients are averaged over the global batch every step
    before the optimizer's update, so every rank keeps the same parameters and the result is
    one process's training up to rounding. Losses, metrics and validation figures are those
    of all ranks' data. Only rank 0 shows progress and runs ``ModelCheckpoint`` (and any
    callback with ``rank_zero_only = True``); the returned ``History`` writes files only on
    rank 0. An exception on any rank prints its traceback and stops every rank
    (``MPI_Abort``), since the others would wait for it forever.

    Args:
        model: A ``chainrule.nn.Module`` mapping a batch of inputs to outputs.
        optimizer: MLX style (``optim.Adam(learning_rate=...)``, driven with
            ``nn.value_and_grad`` and ``optimizer.update``) or PyTorch style
            (``optim.Adam(model.parameters(), lr=...)``, driven with ``zero_grad``,
            ``backward`` and ``step``).
        loss_fn: ``loss_fn(outputs, targets)``: a PyTorch-style loss object (``nn.MSELoss()``)
            or an MLX loss function (``nn.losses.cross_entropy``); a non-scalar result
            (``reduction="none"``) is averaged.
        train_data: A ``Dataset``, a ``DataLoader`` (used with its own batch size and order)
            or a tuple ``(X, y)`` of arrays.
        val_data: Validation data in the same forms, or ``None``.
        epochs: The epoch to stop at (the number of epochs when ``initial_epoch=0``).
        batch_size: Examples per batch (not used for a ``DataLoader``).
        metrics: Metric names or functions (see ``chainrule.train.metrics.get_metric``).
        callbacks: ``Callback`` objects (``EarlyStopping``, ``ModelCheckpoint``, ...).
        progress: ``True``: in a terminal or a notebook, a bar per epoch that updates in
            place (at most four redraws a second) and then leaves the epoch's summary line;
            in a file or a pipe, only the summary lines, without control characters;
            ``"bar"``: always a bar; ``"epoch"``: one line per epoch; ``False``: nothing.
        shuffle: Shuffle the training data every epoch (not used for a ``DataLoader``).
        seed: If given, ``mx.random.seed(seed)`` first, so initialisation-independent
            randomness (shuffling, dropout) is reproducible.
        initial_epoch: The first epoch's number, to continue a run.
        distributed: ``None``: data-parallel when ``chainrule.distributed.init()`` finds
            several processes; ``True``: the same, but MPI must start
            (``init(strict=True)``); ``False``: this process alone, even under ``mpiexec``;
            a ``chainrule.distributed.Group``: data-parallel over that group.
        compile: Run the training step through ``mx.compile``: traced once per batch shape,
            then replayed as flat NumPy code (faster on small models; results equal the
            eager ones, see ``docs/performance.md``). Ignored when training data-parallel.
        on_nonfinite: What a NaN or infinite loss (checked every step) or parameter (checked
            every epoch) does: ``"raise"`` a :class:`NonFiniteError` naming the epoch, the step
            and the first non-finite parameter; ``"warn"`` once (a ``RuntimeWarning``) and go
            on; ``"ignore"`` it.

    Returns:
        A :class:`History`.

    Raises:
        ValueError: For bad settings, empty data, mismatched lengths, or metrics that do not
            suit the outputs.
        NonFiniteError: With ``on_nonfinite="raise"``, when the loss or a parameter becomes
            NaN or infinite (training stops there; the model keeps its non-finite values).
    """
    who = "fit"
    epochs = _check_int(epochs, "epochs", 0, who)
    batch_size = _check_int(batch_size, "batch_size", 1, who)
    initial_epoch = _check_int(initial_epoch, "initial_epoch", 0, who)
    if initial_epoch > epochs:
        raise ValueError(f"fit: initial_epoch ({initial_epoch}) is after epochs ({epochs})")
    if not callable(loss_fn):
        raise TypeError(f"fit: loss_fn must be callable, got {type(loss_fn).__name__}")
    mode = resolve_mode(progress)
    metric_fns = _resolve_metrics(metrics)
    train = _loader(train_data, batch_size, shuffle, who, "train_data")
    val = None if val_data is None else _loader(val_data, batch_size, False, who, "val_data")
    if seed is not None:
        mx.random.seed(seed)

    dp = _data_parallel(distributed, model)
    if dp is not None and dp.rank != 0:
        mode = None

    try:
        steps: int | None = len(train)  # type: ignore[arg-type]
    except TypeError:
        steps = None
    history = History(params={"epochs": epochs, "batch_size": batch_size, "steps": steps})
    guard = _NonFiniteGuard(on_nonfinite, model, epochs, steps)
    cbs = CallbackList(callbacks)
    if dp is not None:
        history._writes = dp.rank == 0
        if dp.rank != 0:
            cbs.callbacks = [cb for cb in cbs.callbacks if not _rank_zero_only(cb)]
        step = dp.step_fn(optimizer, loss_fn, _fit_loss, is_torch_style(optimizer))
    else:
        step = _step_fn(model, optimizer, loss_fn, compile)
    cbs.set_context(model, optimizer, history, history.params)
    for cb in cbs.callbacks:
        cb.loader = train
    was_training = getattr(model, "training", True)
    set_epoch = getattr(getattr(train, "sampler", None), "set_epoch", None)

    logs: dict[str, Any] = {}
    cores = CoreShare().__enter__()  # chainrule processes training at once share the cores
    try:
        if dp is not None:
            dp.start()
        cbs.call("on_train_begin", {})
        for epoch in range(initial_epoch, epochs):
            model.train()
            if set_epoch is not None:
                set_epoch(epoch)
            cbs.call("on_epoch_begin", epoch, {})
            bar = EpochProgress(mode, epoch, epochs, steps)
            logs = {}
            total, count = 0.0, 0
            targets, outputs = [], []
            batches = ((b, None) for b in train) if dp is None else dp.train_batches(train)
            try:
                for b, (batch, size) in enumerate(batches):
                    if batch is None:  # this rank has no examples in this step's batch
                        x = y = None
                    else:
                        x, y = _split_batch(batch, who, need_target=True)
                    if size is None:
                        size = _n(x)
                    cbs.call("on_batch_begin", b, {"size": size})
                    cores.poll()
                    if dp is None:
                        loss, out = step(x, y)
                        value, n = float(loss.item()), size
                    else:
                        value, out, n = step(x, y)
                    guard.check_loss(value, epoch, b)
                    total += value * n
                    count += n
                    if metric_fns and out is not None:
                        outputs.append(_value(out))
                        targets.append(_value(y))
                    if count:
                        bar.update(total / count)
                    cbs.call("on_batch_end", b, {"loss": value, "size": n})
                if count == 0:
                    raise ValueError("fit: train_data produced no batches")
                guard.check_parameters(epoch, b)
                logs = {"loss": total / count}
                if dp is not None and metric_fns:
                    targets, outputs = dp.gather(targets), dp.gather(outputs)
                logs.update(_compute_metrics(metric_fns, targets, outputs, "", who))
                if dp is not None:
                    dp.sync_buffers()
                if val is not None:
                    with _Mode(model, False):
                        logs.update(_run_eval(model, val, loss_fn, metric_fns, "val_", who, dp))
                lr = get_lr(optimizer)
                if lr is not None:
                    logs["lr"] = lr
                cbs.call("on_epoch_end", epoch, logs)
                history.record(epoch, logs)
            finally:
                bar.close(logs)
            stop = cbs.stop_training
            if dp is not None:
                stop = dp.any(stop)  # a rank-0-only callback may ask to stop: all ranks stop
            if stop:
                break
        cbs.call("on_train_end", logs)
    except BaseException:
        if dp is not None:
            dp.fail("fit")
        raise
    finally:
        cores.__exit__(None, None, None)
        model.train(was_training)
    return history


def _fit_loss(loss: Any) -> Any:
    return _scalar_loss(loss, "fit")


def _rank_zero_only(callback: Callback) -> bool:
    """Callbacks that write files run on rank 0 only (``rank_zero_only`` overrides)."""
    flag = getattr(callback, "rank_zero_only", None)
    if flag is not None:
        return bool(flag)
    from .callbacks import ModelCheckpoint

    return isinstance(callback, ModelCheckpoint)


def _data_parallel(distributed: Any, model: Any) -> Any:
    """A ``chainrule.distributed.DataParallel`` when training spans several processes."""
    if distributed is False:
        return None
    from chainrule.distributed import DataParallel, Group, init

    if isinstance(distributed, Group):
        group = distributed
    elif distributed is None or distributed is True:
        group = init(strict=distributed is True)
    else:
        raise TypeError(
            "fit: distributed must be None, True, False or a chainrule.distributed.Group, got "
            f"{type(distributed).__name__}"
        )
    return DataParallel(group, model) if group.size() > 1 else None


def evaluate(
    model: Any,
    data: Any,
    loss_fn: Callable[..., Any] | None = None,
    metrics: MetricSpec | Sequence[MetricSpec] | None = ("accuracy",),
    batch_size: int = 32,
) -> dict[str, float]:
    """The loss and metrics of ``model`` on ``data``, in eval mode without recording.

    Args:
        model: The model.
        data: A ``Dataset``, a ``DataLoader`` or a tuple ``(X, y)``.
        loss_fn: ``loss_fn(outputs, targets)``, or ``None`` to report metrics only.
        metrics: Metric names or functions.
        batch_size: Examples per batch (not used for a ``DataLoader``).

    Returns:
        ``{"loss": ..., "accuracy": ..., ...}`` (means over all examples).
    """
    batch_size = _check_int(batch_size, "batch_size", 1, "evaluate")
    metric_fns = _resolve_metrics(metrics)
    loader = _loader(data, batch_size, False, "evaluate", "data")
    with _Mode(model, False):
        return _run_eval(model, loader, loss_fn, metric_fns, "", "evaluate")


def predict(model: Any, data: Any, batch_size: int = 32) -> mx.array:
    """The model's outputs for every example of ``data``, in eval mode without recording.

    Args:
        model: The model.
        data: Inputs ``X`` (an array), a tuple ``(X,)`` or ``(X, y)``, a ``Dataset`` or a
            ``DataLoader`` (targets, if present, are ignored).
        batch_size: Examples per batch (not used for a ``DataLoader``).

    Returns:
        The outputs of all batches, concatenated along the first axis.
    """
    batch_size = _check_int(batch_size, "batch_size", 1, "predict")
    loader = _loader(data, batch_size, False, "predict", "data")
    outs = []
    with _Mode(model, False), mx.no_grad():
        for batch in loader:
            x, _ = _split_batch(batch, "predict", need_target=False)
            outs.append(model(x))
    if not outs:
        raise ValueError("predict: the data produced no batches")
    return outs[0] if len(outs) == 1 else mx.concatenate(outs, axis=0)
