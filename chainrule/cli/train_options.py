"""`chainrule train`'s options beyond the table MLP: images (`--model`, `--image-size`,
`--augment`), learning-rate schedules with warm-up, weight decay, class weights, gradient
clipping, the figure early stopping watches (`--metric`), and resuming (`--resume`).

A run being trained keeps its resume state next to `--out`, in ``.<name>.resume/``: the
command's arguments (``args.json``) and an exact-resume checkpoint (``checkpoint.safetensors``)
written at the end of every epoch (weights, optimizer, random states, the loader's order, early
stopping's and the schedule's state, the history so far). `chainrule train --resume OUT`
continues from it and ends with the files an uninterrupted run would have written, bit for bit;
the folder is removed when the run is complete.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from chainrule.checkpoint import save_checkpoint
from chainrule.train.callbacks import Callback, EarlyStopping, set_lr

from .args import non_negative_int, positive_float
from .errors import CommandError
from .images import AugmentedImages, image_size

__all__ = [
    "AugmentedImages",
    "MODELS",
    "SCHEDULES",
    "METRICS",
    "add_options",
    "Schedule",
    "ResumableEarlyStopping",
    "EpochCheckpoint",
    "resume_dir",
    "resumed_args",
    "save_args",
    "balanced_weights",
    "clip_gradients",
    "decay_gradients",
    "finish_resume",
    "check_fingerprint",
    "data_fingerprint",
    "resume_state",
    "data_summary",
    "run_report",
    "monitored",
]

MODELS = ("mlp", "cnn", "resnet")
SCHEDULES = ("constant", "step", "cosine", "plateau")
METRICS = ("loss", "accuracy", "f1", "precision", "recall", "mae", "mse", "r2")
_REGRESSION = ("loss", "mae", "mse", "r2")
# Saved in args.json and restored by --resume; everything else (progress) comes from the new
# command line.
_KEEP_ON_RESUME = ("no_progress",)


def add_options(train: argparse.ArgumentParser) -> None:
    """Add the image, schedule, regularisation and resume options to `train`'s parser."""
    for action in train._actions:
        if "--data" in action.option_strings:
            action.required = False  # --resume needs no --data; run() checks it otherwise
    train.add_argument(
        "--model",
        choices=MODELS,
        default="mlp",
        help="mlp: a multi-layer perceptron (--hidden); cnn: a LeNet-style convolutional "
        "network; resnet: a small residual network (cnn and resnet take images: --data "
        "FOLDER with one sub-folder per class, a CSV of image paths and labels, or digits)",
    )
    train.add_argument(
        "--image-size",
        type=image_size,
        default=None,
        metavar="HxW",
        help="resize every image to this size, e.g. 28 or 32x24 (default: the images' own "
        "size, which must then be the same for all)",
    )
    train.add_argument(
        "--augment",
        action="store_true",
        help="augment training images: random crop (padding 1/8 of the size), horizontal "
        "flip, rotation up to 10 degrees; seeded by --seed, never applied for evaluation",
    )
    train.add_argument(
        "--lr-schedule",
        choices=SCHEDULES,
        default="constant",
        help="constant; step (x0.1 every third of the epochs); cosine (to 0 at the last "
        "epoch); plateau (x0.1 after --patience/2 epochs without improvement of --metric)",
    )
    train.add_argument(
        "--warmup",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="raise the learning rate linearly over the first N epochs",
    )
    train.add_argument(
        "--weight-decay",
        type=positive_float,
        default=None,
        metavar="W",
        help="weight decay (decoupled for adamw, an L2 term in the gradient for the others)",
    )
    train.add_argument(
        "--class-weight",
        choices=("none", "balanced"),
        default="none",
        help="balanced: weigh each class's loss by n / (classes * n_class), as scikit-learn",
    )
    train.add_argument(
        "--grad-clip",
        type=positive_float,
        default=None,
        metavar="NORM",
        help="rescale each step's gradients to this global L2 norm at most",
    )
    train.add_argument(
        "--metric",
        choices=METRICS,
        default="loss",
        help="the validation figure early stopping (and --lr-schedule plateau) watches and "
        "keeps the best epoch of",
    )
    train.add_argument(
        "--resume",
        metavar="DIR",
        default=None,
        help="continue an interrupted `chainrule train --out DIR` from its last finished "
        "epoch, exactly as if it had not stopped (the other options are the first run's)",
    )


# ----------------------------------------------------------------------------- the schedule


class Schedule(Callback):
    """The learning rate of `--lr-schedule` and `--warmup`, set at the start of each epoch.

    Args:
        kind: constant, step, cosine or plateau.
        lr: the base learning rate.
        epochs: the number of epochs.
        warmup: epochs of linear warm-up (epoch e < warmup uses lr * (e + 1) / (warmup + 1)).
        monitor: the logged figure plateau watches.
        patience: plateau's epochs without improvement before dividing by 10.
    """

    def __init__(
        self, kind: str, lr: float, epochs: int, warmup: int, monitor: str, patience: int
    ) -> None:
        self.kind, self.lr, self.epochs, self.warmup = kind, lr, epochs, warmup
        self.monitor, self.patience = monitor, max(1, patience)
        self.mode = "max" if monitored(monitor) == "max" else "min"
        self.factor, self.best, self.wait = 1.0, None, 0

    def rate(self, epoch: int) -> float:
        """The learning rate of epoch `epoch` (0-based)."""
        lr = self.lr * self.factor
        if epoch < self.warmup:
            return lr * (epoch + 1) / (self.warmup + 1)
        if self.kind == "step":
            return lr * 0.1 ** ((epoch - self.warmup) // max(1, (self.epochs - self.warmup) // 3))
        if self.kind == "cosine":
            span = max(1, self.epochs - self.warmup)
            return lr * 0.5 * (1 + math.cos(math.pi * (epoch - self.warmup) / span))
        return lr

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any]) -> None:
        """Set the optimizer's learning rate for this epoch."""
        set_lr(self.optimizer, self.rate(epoch))

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        """Plateau: divide by 10 after `patience` epochs without improvement."""
        if self.kind != "plateau" or self.monitor not in logs:
            return
        value = float(logs[self.monitor])
        better = self.best is None or (
            value > self.best if self.mode == "max" else value < self.best
        )
        if better:
            self.best, self.wait = value, 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.factor *= 0.1
            self.wait = 0

    def state_dict(self) -> dict[str, Any]:
        """What resuming needs."""
        return {"factor": self.factor, "best": self.best, "wait": self.wait}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict()`."""
        self.factor, self.best, self.wait = state["factor"], state["best"], state["wait"]


def monitored(monitor: str) -> str:
    """ "max" for figures that grow when the model improves, else "min"."""
    name = monitor.removeprefix("val_")
    return "max" if name in ("accuracy", "f1", "precision", "recall", "r2") else "min"


# ------------------------------------------------------------------------ early stopping


class ResumableEarlyStopping(EarlyStopping):
    """`EarlyStopping` whose state (best figure and weights, waiting count) a checkpoint holds."""

    _loaded: dict[str, Any] | None = None

    def on_train_begin(self, logs: dict[str, Any]) -> None:
        """Start afresh, or from the loaded state."""
        super().on_train_begin(logs)
        state = self._loaded
        if state is None:
            return
        self.best = self._tracker.best = state["best"] if state["best"] is not None else self.best
        self.best_epoch, self.wait = state["best_epoch"], state["wait"]
        self.stopped_epoch = state.get("stopped_epoch")
        weights = state.get("weights")
        self._best_weights = (
            {k: np.array(v) for k, v in weights.items()} if isinstance(weights, dict) else None
        )

    def state_dict(self) -> dict[str, Any]:
        """What resuming needs (the best epoch's weights included)."""
        best = float(self._tracker.best)
        return {
            "best": best if math.isfinite(best) else None,
            "best_epoch": self.best_epoch,
            "wait": self.wait,
            "stopped_epoch": self.stopped_epoch,
            "weights": self._best_weights,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict()` when training begins."""
        self._loaded = state

    def had_stopped(self) -> bool:
        """True when the loaded state is that of a run early stopping had already ended (it
        was interrupted while writing its files): no epoch is left to train."""
        return self._loaded is not None and self._loaded.get("stopped_epoch") is not None


# ---------------------------------------------------------------------------- checkpoints


class EpochCheckpoint(Callback):
    """Writes the exact-resume checkpoint at the end of every epoch (runs last), and one of the
    starting state when a fresh run begins, so that a run stopped at any moment can continue.

    Args:
        path: the checkpoint file.
        prior: the history of epochs before this process's (a resumed run), as a dict.
        parts: objects with `state_dict()` stored with it, by name.
    """

    def __init__(self, path: Path, prior: dict[str, Any], parts: dict[str, Any]) -> None:
        self.path, self.prior, self.parts = path, prior, parts

    def on_train_begin(self, logs: dict[str, Any]) -> None:
        """A fresh run: save the starting state (after fit's seeding), epoch 0."""
        if self.prior["epoch"]:
            return
        extra = {
            "history": {"epoch": [], "history": {}},
            "parts": {name: part.state_dict() for name, part in self.parts.items()},
        }
        loader = self.loader if hasattr(self.loader, "state_dict") else None
        save_checkpoint(self.path, self.model, self.optimizer, epoch=0, extra=extra, loader=loader)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        """Save everything needed to continue after epoch `epoch`."""
        history = {
            "epoch": self.prior["epoch"] + list(self.history.epoch) + [epoch],
            "history": _merge_logs(self.prior["history"], self.history.history, logs),
        }
        extra = {
            "history": history,
            "parts": {name: part.state_dict() for name, part in self.parts.items()},
        }
        loader = self.loader if hasattr(self.loader, "state_dict") else None
        save_checkpoint(
            self.path, self.model, self.optimizer, epoch=epoch + 1, extra=extra, loader=loader
        )


def _merge_logs(
    prior: dict[str, list[float]], current: dict[str, list[float]], logs: dict[str, Any]
) -> dict[str, list[Any]]:
    merged: dict[str, list[Any]] = {}
    keys = list(dict.fromkeys([*prior, *current, *logs]))
    n_prior = len(next(iter(prior.values()))) if prior else 0
    n_current = len(next(iter(current.values()))) if current else 0
    for k in keys:
        values = list(prior.get(k, [None] * n_prior)) + list(current.get(k, [None] * n_current))
        value = logs.get(k)
        values.append(float(value) if value is not None else None)
        merged[k] = [None if v is None or not math.isfinite(v) else v for v in values]
    return merged


def resume_dir(out: Path) -> Path:
    """The hidden folder of a run's resume state: ``.<name>.resume`` next to `out`."""
    parent = out.parent if str(out.parent) else Path(".")
    return parent / f".{out.name}.resume"


def data_fingerprint(ds: Any) -> str:
    """A SHA-256 of the data's features and targets (a resumed run must see the same data)."""
    import hashlib

    digest = hashlib.sha256(np.ascontiguousarray(ds.X).tobytes())
    if ds.y is not None:
        digest.update(np.ascontiguousarray(ds.y).tobytes())
    return digest.hexdigest()


def check_fingerprint(args: argparse.Namespace, ds: Any) -> None:
    """On --resume, refuse data that changed since the run started.

    Raises:
        CommandError: naming the data and the fix.
    """
    saved = getattr(args, "_fingerprint", None)
    if args.resume is not None and saved is not None and saved != data_fingerprint(ds):
        raise CommandError(
            f"--resume {args.resume}: the data {args.data} changed since the run started, so "
            "it cannot continue exactly; train a new run on the new data"
        )


def save_args(folder: Path, args: argparse.Namespace, ds: Any = None) -> None:
    """Write the command's arguments (and the data's fingerprint) to `folder/args.json`."""
    from chainrule.core.io import write_bytes

    folder.mkdir(parents=True, exist_ok=True)
    values = {k: v for k, v in vars(args).items() if k not in ("run", "resume")}
    values["out"] = str(args.out)
    if ds is not None:
        values["_fingerprint"] = data_fingerprint(ds)
    text = json.dumps(values, indent=2, default=list) + "\n"
    write_bytes(folder / "args.json", text.encode("utf-8"))


def resumed_args(args: argparse.Namespace) -> tuple[argparse.Namespace, Path]:
    """The first run's arguments for `--resume DIR`, and its checkpoint.

    Raises:
        CommandError: if DIR has no resume state (never started, or already finished).
    """
    out = Path(args.resume)
    folder = resume_dir(out)
    ckpt = folder / "checkpoint.safetensors"
    if not (folder / "args.json").is_file():
        if (out / "config.json").is_file():
            raise CommandError(
                f"--resume {out}: that run finished; nothing to resume (train a new one with --out)"
            )
        raise CommandError(
            f"--resume {out}: no interrupted run there (no {folder.name} folder next to it); "
            "give the --out of a `chainrule train` that was stopped"
        )
    try:
        saved = json.loads((folder / "args.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CommandError(f"{folder / 'args.json'}: cannot read it ({e})") from None
    for key in _KEEP_ON_RESUME:
        saved[key] = getattr(args, key)
    if saved.get("image_size") is not None:
        saved["image_size"] = tuple(saved["image_size"])
    new = argparse.Namespace(**{**vars(args), **saved})
    new.resume = args.resume
    return new, ckpt


def finish_resume(out: Path) -> None:
    """Remove a finished run's resume state."""
    shutil.rmtree(resume_dir(out), ignore_errors=True)


# --------------------------------------------------------------------- loss and optimizer


def balanced_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """scikit-learn's "balanced" class weights: n / (classes * count of each class)."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    return (len(y) / (n_classes * np.maximum(counts, 1))).astype(np.float32)


def clip_gradients(optimizer: Any, max_norm: float) -> None:
    """Make an MLX-style optimizer rescale each step's gradients to a global norm of at most
    `max_norm` (`optimizers.clip_grad_norm`) before its update."""
    from chainrule.optimizers import clip_grad_norm

    update = optimizer.update

    def clipped_update(model: Any, grads: Any) -> Any:
        return update(model, clip_grad_norm(grads, max_norm)[0])

    optimizer.update = clipped_update


def decay_gradients(optimizer: Any, weight_decay: float) -> None:
    """Make an MLX-style optimizer without its own weight decay (Adam, RMSprop) add
    `weight_decay * parameter` to each gradient before its update (an L2 penalty, as PyTorch's
    `weight_decay=` for these optimizers)."""
    from chainrule.utils import tree_map

    update = optimizer.update

    def decayed_update(model: Any, grads: Any) -> Any:
        params = model.trainable_parameters()
        return update(model, tree_map(lambda g, p: g + weight_decay * p, grads, params))

    optimizer.update = decayed_update


# ------------------------------------------------------------------------- the run's parts


def training_data(args: argparse.Namespace) -> Any:
    """The data of `chainrule train`: images (`ImageData`) or a table (`TabularDataset`).

    Raises:
        CommandError: for options that do not fit the data.
    """
    from .images import image_kind, load_images
    from .tables import load_training_data

    kind = image_kind(args.data, args.model)
    if kind is None:
        if args.model != "mlp":
            raise CommandError(
                f"--model {args.model} takes images: give --data a folder with one sub-folder "
                "per class, a CSV of image paths and labels, or digits"
            )
        if args.image_size is not None or args.augment:
            raise CommandError(
                f"--image-size and --augment apply to images; {args.data} is a table"
            )
        return load_training_data(args)
    if args.task == "regression":
        raise CommandError(f"{args.data}: images are classified; --task regression needs a table")
    if kind == "file":
        raise CommandError(
            f"--data {args.data} is one image; training needs a folder with one sub-folder "
            "per class"
        )
    data = load_images(args.data, args.model, args.image_size, target=args.target)
    if data.y is None:
        raise CommandError(
            f"--data {args.data}: the images have no classes; put each class's images in its "
            "own sub-folder"
        )
    return data


def is_images(ds: Any) -> bool:
    """True for image data (`ImageData`)."""
    from .images import ImageData

    return isinstance(ds, ImageData)


def model_config(args: argparse.Namespace, ds: Any, output_dim: int) -> dict[str, Any]:
    """The `model` entry of config.json: an MLP (on features or flattened pixels) or an image
    network."""
    if args.model in ("cnn", "resnet"):
        return {
            "kind": args.model,
            "input_shape": list(ds.X.shape[1:]),
            "output_dim": output_dim,
            "dropout": args.dropout,
        }
    config = {
        "input_dim": int(np.prod(ds.X.shape[1:])),
        "output_dim": output_dim,
        "hidden": args.hidden,
        "activation": args.activation,
        "dropout": args.dropout,
    }
    if is_images(ds):
        config["kind"] = "mlp"
    return config


def make_loss(args: argparse.Namespace, task: str, y_train: np.ndarray, n_classes: int) -> Any:
    """The loss: cross-entropy (weighted with --class-weight balanced) or mean squared error."""
    import chainrule.core as mx
    import chainrule.nn as nn

    from .model import loss_fn

    if args.class_weight == "balanced":
        if task != "classification":
            raise CommandError("--class-weight balanced applies to classification only")
        return nn.CrossEntropyLoss(weight=mx.array(balanced_weights(y_train, n_classes)))
    return loss_fn(task)


def make_optimizer(args: argparse.Namespace, lr: float) -> Any:
    """The optimizer with --weight-decay and --grad-clip."""
    import chainrule.optimizers as optim

    from .model import make_optimizer as plain

    wd = args.weight_decay
    if wd is not None and args.optimizer == "adamw":
        optimizer = optim.AdamW(learning_rate=lr, weight_decay=wd)
    elif wd is not None and args.optimizer == "sgd":
        optimizer = optim.SGD(learning_rate=lr, momentum=0.9, weight_decay=wd)
    else:
        optimizer = plain(args.optimizer, lr)
        if wd is not None:
            decay_gradients(optimizer, wd)
    if args.grad_clip is not None:
        clip_gradients(optimizer, args.grad_clip)
    return optimizer


def check_metric(args: argparse.Namespace, task: str) -> None:
    """Refuse a --metric that does not suit the task."""
    if task == "regression" and args.metric not in _REGRESSION:
        raise CommandError(
            f"--metric {args.metric} is a classification figure; for regression use one of "
            f"{', '.join(_REGRESSION)}"
        )
    if task == "classification" and args.metric in ("mae", "mse", "r2"):
        raise CommandError(
            f"--metric {args.metric} is a regression figure; for classification use loss, "
            "accuracy, f1, precision or recall"
        )


def combined_history(prior: dict[str, Any], history: Any) -> Any:
    """The history of a resumed run: the saved epochs, then this process's."""
    from chainrule.train import History

    n = len(prior["epoch"])
    keys = list(dict.fromkeys([*prior["history"], *history.history]))
    merged = {
        k: [math.nan if v is None else v for v in prior["history"].get(k, [None] * n)]
        + list(history.history.get(k, [math.nan] * len(history.epoch)))
        for k in keys
    }
    return History(merged, prior["epoch"] + list(history.epoch), history.params)


def epoch_metric_names(base: tuple[str, ...], metric: str) -> tuple[str, ...]:
    """The metrics logged every epoch: the task's, plus the one --metric watches."""
    if metric == "loss" or metric in base:
        return base
    return (*base, metric)


def say_interrupted(out: Path) -> None:
    """The line printed on Ctrl-C: where the last checkpoint is and how to continue."""
    import sys

    ckpt = resume_dir(out) / "checkpoint.safetensors"
    if ckpt.is_file():
        print(
            f"chainrule train: stopped; the checkpoint of the last finished epoch (or of the "
            f"start) is kept in {ckpt.parent}; continue with: chainrule train --resume {out}",
            file=sys.stderr,
            flush=True,
        )


def add_run_config(config: dict[str, Any], args: argparse.Namespace, ds: Any, scaler: Any) -> None:
    """Add the image input and the training options of this module to a run's config."""
    from .report import command_line

    config["command"] = command_line(args)
    config["training"].update(
        {
            "model": args.model,
            "lr_schedule": args.lr_schedule,
            "warmup": args.warmup,
            "weight_decay": args.weight_decay,
            "class_weight": args.class_weight,
            "grad_clip": args.grad_clip,
            "metric": args.metric,
            "augment": args.augment,
        }
    )
    if is_images(ds):
        config["input"] = {
            "kind": "image",
            "shape": list(ds.X.shape[1:]),
            "mode": ds.mode,
            "image_size": list(args.image_size) if args.image_size else None,
            **scaler.to_dict(),
        }


def data_summary(ds: Any, config: dict[str, Any]) -> list[list[Any]]:
    """The report's data summary: (name, value) rows."""
    sizes = config["split"]["sizes"]
    rows: list[list[Any]] = [
        ["data", config["data"]],
        ["task", ds.task],
        ["rows", len(ds)],
        ["train / val / test", f"{sizes['train']} / {sizes['val']} / {sizes['test']}"],
    ]
    if is_images(ds):
        h, w, c = ds.X.shape[1:]
        rows.append(["images", f"{h}x{w}, {'grey' if c == 1 else 'RGB'}"])
    else:
        shown = ", ".join(ds.features[:12]) + (", ..." if len(ds.features) > 12 else "")
        rows.append(["features", f"{len(ds.features)}: {shown}"])
        rows.append(["target", ds.target])
    if ds.task == "classification":
        counts = np.bincount(np.asarray(ds.y), minlength=len(ds.classes))
        rows.append(
            ["classes", ", ".join(f"{c} ({n})" for c, n in zip(ds.classes, counts.tolist()))]
        )
    else:
        y = np.asarray(ds.y, dtype=np.float64)
        rows.append(["target range", f"{y.min():.4g} to {y.max():.4g} (mean {y.mean():.4g})"])
    return rows


def run_report(
    folder: Path,
    config: dict[str, Any],
    metrics: dict[str, Any],
    history: Any,
    model: Any,
    X: np.ndarray,
    y: np.ndarray,
    parts: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    """Write report.html and its figures for the test split (else val, else train), and put
    the per-class numbers into `metrics` (`per_class`)."""
    from chainrule.train import predict

    from .report import write_report
    from .tables import make_dataset

    rows = next((p for p in reversed(parts) if len(p)), parts[0])
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        outputs = np.asarray(predict(model, make_dataset(X[rows], None), batch_size=256).numpy())
    per_class = write_report(
        folder, config, metrics, history, model, outputs, np.asarray(y)[rows], config["summary"]
    )
    if per_class:
        metrics["per_class"] = per_class


@contextlib.contextmanager
def resume_state(out: Path, fresh: bool) -> Iterator[None]:
    """Remove a fresh run's resume state if it fails for any reason but an interruption
    (Ctrl-C keeps it, so that `--resume` can continue)."""
    try:
        yield
    except KeyboardInterrupt:
        raise
    except BaseException:
        if fresh:
            finish_resume(out)
        raise
