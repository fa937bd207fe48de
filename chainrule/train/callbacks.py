"""Callbacks: code that ``fit`` runs at fixed points of training.

Write your own by subclassing :class:`Callback` and overriding any hook::

    class PrintLoss(Callback):
        def on_epoch_end(self, epoch, logs):
            print(epoch, logs["loss"])

Hooks run in this order: ``on_train_begin``, then per epoch ``on_epoch_begin``,
``on_batch_begin``/``on_batch_end`` per batch, ``on_epoch_end``; finally ``on_train_end``.
Epochs and batches are numbered from 0. Before training, ``fit`` sets ``self.model``,
``self.optimizer``, ``self.history``, ``self.params`` and ``self.loader`` on every callback. Setting
``self.stop_training = True`` (in any hook) ends training after the current epoch.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterable
from typing import Any, Literal

import numpy as np

from chainrule.checkpoint import is_torch_style, named_arrays, save_checkpoint
from chainrule.core.backend import same_device, to_host
from chainrule.core.io import atomic_path, clean_stale_temporaries

__all__ = [
    "Callback",
    "CallbackList",
    "EarlyStopping",
    "ModelCheckpoint",
    "LearningRateScheduler",
    "get_lr",
    "set_lr",
]


def get_lr(optimizer: Any) -> float | None:
    """The optimizer's current learning rate as a float (the first group's, PyTorch style).

    Args:
        optimizer: An optimizer in either style.

    Returns:
        The learning rate, or ``None`` if the optimizer exposes none.
    """
    if is_torch_style(optimizer):
        lr = optimizer.param_groups[0].get("lr")
    else:
        try:
            lr = optimizer.learning_rate
        except (AttributeError, KeyError):
            return None
    if lr is None or callable(lr):
        return None
    try:
        return float(lr.item() if hasattr(lr, "item") else lr)
    except (TypeError, ValueError):
        return None


def set_lr(optimizer: Any, lr: Any) -> None:
    """Set the learning rate: every group's ``"lr"`` (PyTorch style) or ``learning_rate``.

    Args:
        optimizer: An optimizer in either style.
        lr: The new learning rate (a number or a 0-d array).
    """
    lr = float(lr.item() if hasattr(lr, "item") else lr)
    if is_torch_style(optimizer):
        for group in optimizer.param_groups:
            group["lr"] = lr
    else:
        optimizer.learning_rate = lr


def _host_copy(data: Any) -> np.ndarray:
    """A NumPy copy of a backend value (an explicit device-to-host copy for GPU data)."""
    return np.array(data) if isinstance(data, np.ndarray) else to_host(data)


class Callback:
    """Base class for callbacks; every hook does nothing by default.

    Attributes:
        model: The model being trained (set by ``fit``).
        optimizer: Its optimizer (set by ``fit``).
        history: The ``History`` being filled (set by ``fit``).
        params: ``{"epochs", "batch_size", "steps"}`` (set by ``fit``).
        loader: The training data's ``DataLoader`` (set by ``fit``).
        stop_training: Set it to ``True`` to end training after the current epoch.
    """

    model: Any = None
    optimizer: Any = None
    history: Any = None
    loader: Any = None
    params: dict[str, Any] = {}
    stop_training: bool = False

    def set_context(self, model: Any, optimizer: Any, history: Any, params: dict) -> None:
        """Called by ``fit`` before training.

        Args:
            model: The model.
            optimizer: The optimizer.
            history: The ``History`` object.
            params: Training settings.
        """
        self.model, self.optimizer, self.history, self.params = model, optimizer, history, params
        self.stop_training = False

    def on_train_begin(self, logs: dict[str, Any]) -> None:
        """Before the first epoch. ``logs`` is empty."""

    def on_train_end(self, logs: dict[str, Any]) -> None:
        """After the last epoch. ``logs`` holds the last epoch's figures."""

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any]) -> None:
        """Before epoch ``epoch`` (0-based). ``logs`` is empty."""

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        """After epoch ``epoch``: ``logs`` holds loss, metrics, ``val_*`` figures and ``lr``."""

    def on_batch_begin(self, batch: int, logs: dict[str, Any]) -> None:
        """Before training batch ``batch`` of the epoch: ``logs = {"size": n}``."""

    def on_batch_end(self, batch: int, logs: dict[str, Any]) -> None:
        """After training batch ``batch``: ``logs = {"loss": ..., "size": n}``."""


class CallbackList:
    """Runs a hook on every callback in order (used by ``fit``).

    Args:
        callbacks: The callbacks.
    """

    def __init__(self, callbacks: Iterable[Callback]) -> None:
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(
                    f"callbacks: {cb!r} is not a chainrule.train.Callback; subclass Callback "
                    "and override its hooks"
                )

    def set_context(self, model: Any, optimizer: Any, history: Any, params: dict) -> None:
        """Give every callback the training context."""
        for cb in self.callbacks:
            cb.set_context(model, optimizer, history, params)

    def call(self, hook: str, *args: Any) -> None:
        """Run ``hook(*args)`` on every callback."""
        for cb in self.callbacks:
            getattr(cb, hook)(*args)

    @property
    def stop_training(self) -> bool:
        """True when some callback asked to stop."""
        return any(cb.stop_training for cb in self.callbacks)


_MAX_PREFIXES = ("acc", "accuracy", "precision", "recall", "f1", "r2", "auc")


def _resolve_mode(mode: str, monitor: str, who: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{who}: mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    name = monitor[4:] if monitor.startswith("val_") else monitor
    return "max" if name.startswith(_MAX_PREFIXES) else "min"


def _monitored(logs: dict[str, Any], monitor: str, who: str) -> float:
    if monitor not in logs:
        hint = "; pass val_data to fit" if monitor.startswith("val_") else ""
        raise ValueError(
            f"{who}: monitor {monitor!r} is not among the logged values {sorted(logs)}{hint}"
        )
    return float(logs[monitor])


class _Monitor:
    """Tracks the best value of a logged quantity."""

    def __init__(self, monitor: str, mode: str, min_delta: float, who: str) -> None:
        self.monitor = monitor
        self.mode = _resolve_mode(mode, monitor, who)
        self.min_delta = abs(float(min_delta))
        self.who = who
        self.best = np.inf if self.mode == "min" else -np.inf

    def improved(self, logs: dict[str, Any]) -> bool:
        value = _monitored(logs, self.monitor, self.who)
        if np.isnan(value):
            return False
        if self.mode == "min":
            better = value < self.best - self.min_delta
        else:
            better = value > self.best + self.min_delta
        if better:
            self.best = value
        return better


class EarlyStopping(Callback):
    """Stop training when a monitored figure has stopped improving.

    Args:
        monitor: The logged figure to watch (``"val_loss"``, ``"val_accuracy"``, ``"loss"``...).
        patience: Stop after this many epochs in a row without improvement (Keras's rule;
            ``0`` stops at the first epoch that does not improve).
        min_delta: The smallest change that counts as an improvement.
        mode: ``"min"``, ``"max"``, or ``"auto"`` (``"max"`` for accuracy, precision, recall,
            F1 and R^2, ``"min"`` otherwise).
        restore_best: At the end of training, put back the weights of the best epoch (if the
            last epoch was not the best), and record that epoch in the history's
            ``params["kept_epoch"]`` (``History.plot`` marks it).
        verbose: Print a line when training stops early (``early stopping at epoch 20: no
            val_loss improvement for 5 epochs; keeping epoch 15's weights (val_loss
            0.1234)``), or when training ends with an earlier epoch's weights put back.

    Attributes:
        best: The best value seen.
        best_epoch: The epoch (0-based) that produced it, or ``None``.
        stopped_epoch: The epoch after which training was stopped, or ``None``.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 5,
        min_delta: float = 0.0,
        mode: Literal["auto", "min", "max"] = "auto",
        restore_best: bool = True,
        verbose: bool = False,
    ) -> None:
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"EarlyStopping: patience must be an integer >= 0, got {patience!r}")
        self.monitor = monitor
        self.patience = patience
        self.min_delta = min_delta
        self.mode = _resolve_mode(mode, monitor, "EarlyStopping")
        self.restore_best = restore_best
        self.verbose = verbose
        self._reset()

    def _reset(self) -> None:
        self._tracker = _Monitor(self.monitor, self.mode, self.min_delta, "EarlyStopping")
        self.best = self._tracker.best
        self.best_epoch: int | None = None
        self.stopped_epoch: int | None = None
        self.wait = 0
        self._best_weights: dict[str, np.ndarray] | None = None
        self._last_epoch: int | None = None

    def on_train_begin(self, logs: dict[str, Any]) -> None:
        self._reset()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        self._last_epoch = epoch
        if self._tracker.improved(logs):
            self.best, self.best_epoch, self.wait = self._tracker.best, epoch, 0
            if self.restore_best:
                # Copies by name: an MLX-style update may put new handles in the model, and
                # nothing done to the live arrays may reach the snapshot.
                # (host copies, also of a GPU model's weights: checkpoints store them as NumPy)
                self._best_weights = {n: _host_copy(a._data) for n, a in named_arrays(self.model)}
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.stop_training = True

    def _kept(self) -> str:
        """Which weights training ends with, for the messages."""
        if self.best_epoch is None:
            return f"no epoch had a finite {self.monitor}; keeping the last weights"
        figure = f"({self.monitor} {self.best:.4f})"
        if self.restore_best:
            return f"keeping epoch {self.best_epoch + 1}'s weights {figure}"
        return f"the best was epoch {self.best_epoch + 1} {figure}; keeping the last weights"

    def on_train_end(self, logs: dict[str, Any]) -> None:
        # Said here, after the last epoch's progress line, not in on_epoch_end before it.
        if self.verbose and self.stopped_epoch is not None:
            epochs = "epoch" if self.wait == 1 else "epochs"
            print(
                f"early stopping at epoch {self.stopped_epoch + 1}: no {self.monitor} "
                f"improvement for {self.wait} {epochs}; {self._kept()}",
                flush=True,
            )
        if not (self.restore_best and self._best_weights):
            return
        if self.history is not None and hasattr(self.history, "params"):
            self.history.params["kept_epoch"] = self.best_epoch
        if self.best_epoch != self._last_epoch:
            for name, handle in named_arrays(self.model):
                handle._set_value(same_device(self._best_weights[name], handle._data))
            if self.verbose and self.stopped_epoch is None:
                print(f"end of training: {self._kept()}", flush=True)


class ModelCheckpoint(Callback):
    """Save the model (and optimizer) at the end of epochs, atomically.

    Args:
        path: The file to write. It may contain ``str.format`` fields filled with the epoch
            (1-based, the number of finished epochs) and the logged figures, e.g.
            ``"ckpt-{epoch:03d}-{val_loss:.3f}.safetensors"``.
        monitor: The figure that decides which epoch is best.
        save_best_only: Save only when ``monitor`` improves (otherwise every epoch).
        mode: ``"min"``, ``"max"`` or ``"auto"`` (as for :class:`EarlyStopping`).
        save_weights_only: Write only the weights with ``model.save_weights`` (readable by
            ``model.load_weights``); otherwise a full checkpoint with
            :func:`chainrule.save_checkpoint` (weights, optimizer, scheduler, epoch, random
            states, the training ``DataLoader``'s state) that ``load_checkpoint`` resumes from.
        scheduler: A learning-rate scheduler to store in full checkpoints.
        verbose: Print a line for each save.

    Attributes:
        best: The best value of ``monitor`` seen.
        saved: The paths written, in order.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        monitor: str = "val_loss",
        save_best_only: bool = True,
        mode: Literal["auto", "min", "max"] = "auto",
        save_weights_only: bool = False,
        scheduler: Any = None,
        verbose: bool = False,
    ) -> None:
        self.path = os.fspath(path)
        self.monitor = monitor
        self.save_best_only = save_best_only
        self.mode = _resolve_mode(mode, monitor, "ModelCheckpoint")
        self.save_weights_only = save_weights_only
        self.scheduler = scheduler
        self.verbose = verbose
        self.saved: list[str] = []
        self._tracker = _Monitor(monitor, self.mode, 0.0, "ModelCheckpoint")
        self.best = self._tracker.best

    def on_train_begin(self, logs: dict[str, Any]) -> None:
        self._tracker = _Monitor(self.monitor, self.mode, 0.0, "ModelCheckpoint")
        self.best = self._tracker.best
        # A save killed half-way leaves a hidden temporary next to the checkpoints; a dead
        # process's temporaries are removed here (finished checkpoints are never touched).
        directory = os.path.dirname(self.path)
        if "{" not in directory:
            clean_stale_temporaries(directory or ".")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        if self.save_best_only:
            if not self._tracker.improved(logs):
                return
            self.best = self._tracker.best
        try:
            path = self.path.format(epoch=epoch + 1, **logs)
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(
                f"ModelCheckpoint: cannot fill the path {self.path!r} from epoch and "
                f"{sorted(logs)}: {e}"
            ) from None
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        if self.save_weights_only:
            with atomic_path(path) as tmp:
                self.model.save_weights(tmp)
        else:
            loader = self.loader if hasattr(self.loader, "state_dict") else None
            save_checkpoint(
                path,
                self.model,
                self.optimizer,
                self.scheduler,
                epoch=epoch + 1,
                extra=None,
                loader=loader,
            )
        self.saved.append(path)
        if self.verbose:
            print(f"Epoch {epoch + 1}: saved {path}")


def _takes_metric(step: Callable[..., Any]) -> bool:
    """True if ``step`` needs a value (``ReduceLROnPlateau.step(metrics)``)."""
    try:
        sig = inspect.signature(step)
    except (TypeError, ValueError):
        return False
    for p in sig.parameters.values():
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty:
            return True
    return False


class LearningRateScheduler(Callback):
    """Change the learning rate once per epoch.

    ``scheduler`` is either

    * a PyTorch-style scheduler object (``lr_scheduler.StepLR(optimizer, ...)``): its
      ``step()`` is called at the end of every epoch (``step(value_of_monitor)`` for
      schedulers such as ``ReduceLROnPlateau`` whose ``step`` requires a value); or
    * a function of the epoch (0-based) returning the learning rate, e.g. an MLX schedule
      ``optim.step_decay(0.1, 0.5, 10)`` or ``lambda epoch: 0.1 * 0.9 ** epoch``: it is
      called at the beginning of every epoch and the result is written to the optimizer
      (``param_groups[i]["lr"]`` or ``optimizer.learning_rate``).

    Args:
        scheduler: The scheduler object or function.
        monitor: The figure passed to ``step`` for schedulers that need one.
        verbose: Print the learning rate when it changes.
    """

    def __init__(self, scheduler: Any, monitor: str = "val_loss", verbose: bool = False) -> None:
        step = getattr(scheduler, "step", None)
        if not callable(step) and not callable(scheduler):
            raise TypeError(
                "LearningRateScheduler: scheduler must have a step() method or be a function "
                f"of the epoch, got {type(scheduler).__name__}"
            )
        self.scheduler = scheduler
        self.monitor = monitor
        self.verbose = verbose
        self._is_object = callable(step)
        self._needs_metric = self._is_object and _takes_metric(step)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any]) -> None:
        if self._is_object:
            return
        old = get_lr(self.optimizer)
        set_lr(self.optimizer, self.scheduler(epoch))
        new = get_lr(self.optimizer)
        if self.verbose and new != old:
            print(f"Epoch {epoch + 1}: learning rate {new:.6g}")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        if not self._is_object:
            return
        old = get_lr(self.optimizer)
        if self._needs_metric:
            self.scheduler.step(_monitored(logs, self.monitor, "LearningRateScheduler"))
        else:
            self.scheduler.step()
        new = get_lr(self.optimizer)
        if self.verbose and new != old:
            print(f"Epoch {epoch + 2}: learning rate {new:.6g}")
