"""`chainrule train`: train a multi-layer perceptron on a table and write a run directory."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .args import (
    HelpFormatter,
    add_data_argument,
    columns,
    fraction,
    hidden_sizes,
    non_negative_int,
    positive_float,
    positive_int,
)
from .config import CONFIG_FORMAT
from .errors import CommandError
from .model import (
    ACTIVATIONS,
    DEFAULT_LR,
    OPTIMIZERS,
    build_model,
    check_model_size,
    epoch_metrics,
    report_metrics,
)
from .rundir import check_out, clean_stale, default_out, staging_dir, write_json, writing
from .tables import check_class_count, make_dataset
from .train_options import add_options

__all__ = ["add_parser", "run", "version"]


def version() -> str:
    """The installed chainrule's version."""
    try:
        from chainrule import __version__

        return __version__
    except ImportError:  # pragma: no cover
        return "unknown"


def add_parser(commands: Any) -> None:
    """Add `train` and its options to the sub-command parsers.

    Args:
        commands: the object `add_subparsers` returned.
    """
    train = commands.add_parser(
        "train",
        help="train a model and write a run directory",
        description=(
            "Load the data, split it into train/validation/test sets (stratified by class "
            "for classification), standardise the features with the training set's mean "
            "and standard deviation (images: each channel's), train a multi-layer perceptron "
            "(or, on images, --model cnn|resnet) with early stopping on the validation loss "
            "(or --metric; keeping the best epoch's weights), print the test metrics and write "
            "the run directory: model.safetensors, config.json, history.json, history.png, "
            "metrics.json, report.html and its figures. The directory appears only when "
            "everything has been written; until then a checkpoint at every epoch's end lets "
            "--resume continue an interrupted run exactly."
        ),
        formatter_class=HelpFormatter,
    )
    add_data_argument(train)
    add_options(train)
    train.add_argument(
        "--target",
        metavar="COL",
        help="the column to predict (files and databases; default: the last column)",
    )
    train.add_argument(
        "--features",
        type=columns,
        metavar="A,B,...",
        help="the input columns (default: every column except the target)",
    )
    train.add_argument(
        "--task",
        choices=("auto", "classification", "regression"),
        default="auto",
        help="auto: text labels, and whole numbers with at most 20 distinct values, are "
        "classes; other numbers are a regression target",
    )
    train.add_argument(
        "--max-classes",
        type=positive_int,
        default=None,
        metavar="N",
        help="the most classes a classification target may have (default: 100, and at most "
        "half the rows: more usually means a continuous column or an identifier)",
    )
    train.add_argument(
        "--hidden",
        type=hidden_sizes,
        default=[128, 64],
        metavar="N,N,...",
        help="hidden layer sizes, comma-separated ('none' for a linear model)",
    )
    train.add_argument("--activation", choices=ACTIVATIONS, default="relu", help="activation")
    train.add_argument(
        "--dropout", type=fraction, default=0.1, metavar="P", help="dropout after each hidden layer"
    )
    train.add_argument("--optimizer", choices=OPTIMIZERS, default="adam", help="optimizer")
    train.add_argument(
        "--lr",
        type=positive_float,
        default=None,
        metavar="LR",
        help="learning rate (default: 1e-3, or 1e-2 for sgd, which uses momentum 0.9)",
    )
    train.add_argument(
        "--batch-size", type=positive_int, default=32, metavar="N", help="batch size"
    )
    train.add_argument(
        "--epochs", type=positive_int, default=100, metavar="N", help="maximum number of epochs"
    )
    train.add_argument(
        "--val-split",
        type=fraction,
        default=0.1,
        metavar="F",
        help="fraction of rows for validation",
    )
    train.add_argument(
        "--test-split",
        type=fraction,
        default=0.2,
        metavar="F",
        help="fraction of rows for the test set",
    )
    train.add_argument(
        "--patience",
        type=non_negative_int,
        default=10,
        metavar="N",
        help="stop after this many epochs without a lower validation loss (0: never stop early)",
    )
    train.add_argument(
        "--seed",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="random seed (splits, weights, order)",
    )
    train.add_argument(
        "--out",
        metavar="DIR",
        default=None,
        help="run directory to create (default: runs/NAME, or runs/NAME-2, ... if taken)",
    )
    train.add_argument(
        "--overwrite", action="store_true", help="replace --out if it exists (after success)"
    )
    train.add_argument(
        "--no-progress", action="store_true", help="print no progress (no bar, no epoch lines)"
    )
    train.add_argument(
        "--compile",
        action="store_true",
        help="trace the training step once per batch shape and replay it (mx.compile)",
    )
    train.add_argument(
        "--tensorboard",
        metavar="DIR",
        default=None,
        help="also write TensorBoard event files of every epoch's figures to DIR "
        "(needs: pip install 'chainrule[tensorboard]')",
    )
    train.set_defaults(run=run)


def split_rows(
    n: int, val_split: float, test_split: float, seed: int, labels: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`chainrule.data.split_indices`, with its complaints in terms of the command's options.

    Raises:
        CommandError: if the fractions do not fit the data.
    """
    from chainrule.data import split_indices

    if val_split + test_split >= 1:
        raise CommandError(
            f"--val-split {val_split} and --test-split {test_split} must leave rows for "
            "training (sum below 1)"
        )
    try:
        return split_indices(n, val_split, test_split, seed, labels)
    except ValueError as e:
        message = str(e).replace("val_split", "--val-split").replace("test_split", "--test-split")
        raise CommandError(message) from None


def _check_packages() -> None:
    # Fail before spending time on training: history.png needs matplotlib (model.safetensors
    # is written by chainrule.nn itself).
    if importlib.util.find_spec("matplotlib") is None:
        raise CommandError(
            "writing history.png needs matplotlib, which is not installed: "
            "pip install 'chainrule[train]'"
        )


def _finite(value: Any) -> Any:
    """NaN/inf (JSON cannot hold them) become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _hide_password(url: str) -> str:
    import re

    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def format_metrics(metrics: dict[str, Any]) -> str:
    """`loss 0.1234  accuracy 0.9500 ...` for a metrics dict."""
    return "  ".join(
        f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items()
    )


def run(args: argparse.Namespace) -> int:
    """Run `chainrule train` with parsed arguments.

    Args:
        args: the parsed arguments.

    Returns:
        0 (problems raise CommandError or a data error).
    """
    import chainrule.core as mx
    import chainrule.distributed as dist
    from chainrule import load_checkpoint
    from chainrule.data import DataLoader, Standardizer
    from chainrule.train import NonFiniteError, evaluate, fit

    from . import train_options as opts
    from .images import ImageScaler

    # Under `mpiexec -n N` every rank trains (fit is data-parallel); only rank 0 reports and
    # writes the run directory.
    world = dist.init()
    lead = world.rank() == 0

    checkpoint = None
    if args.resume is not None:
        args, checkpoint = opts.resumed_args(args)
    elif args.data is None:
        raise CommandError(
            "the following arguments are required: --data (or --resume DIR to continue a "
            "stopped run); see chainrule train --help"
        )
    _check_packages()
    out = Path(args.out) if args.out else default_out(args.data)
    if world.size() > 1:
        out = Path(dist.broadcast(str(out)))
    if lead:
        # What a killed run left next to --out: an interrupted --overwrite is put back, dead
        # processes' hidden directories and temporaries are removed.
        for note in clean_stale(out.parent if str(out.parent) else Path(".")):
            print(f"chainrule: {note}", file=sys.stderr)
    check_out(out, args.overwrite)
    ds = opts.training_data(args)
    opts.check_fingerprint(args, ds)
    images = opts.is_images(ds)
    opts.check_metric(args, ds.task)
    if ds.X.ndim != 2 and not images:
        raise CommandError(f"{args.data}: expected a table of features, got shape {ds.X.shape}")
    if ds.task == "classification" and len(ds.classes) < 2:
        raise CommandError(
            f"{args.data}: the target {ds.target!r} has a single class ({ds.classes[0]!r}); "
            "there is nothing to learn"
        )
    check_class_count(ds, args.data, args.max_classes)
    labels = ds.y if ds.task == "classification" else None
    train_idx, val_idx, test_idx = split_rows(
        len(ds), args.val_split, args.test_split, args.seed, labels
    )
    output_dim = len(ds.classes) if ds.task == "classification" else 1
    model_config = opts.model_config(args, ds, output_dim)
    if args.model == "mlp":
        check_model_size(
            model_config["input_dim"], args.hidden, output_dim, f"--hidden {_hidden_text(args)}"
        )
    if images:
        scaler = ImageScaler.fit(ds.X[train_idx], flatten=args.model == "mlp")
    else:
        scaler = Standardizer.fit(ds.X[train_idx])
    X = scaler.transform(ds.X)
    y = ds.y
    splits = {
        name: make_dataset(X[idx], y[idx])
        for name, idx in (("train", train_idx), ("val", val_idx), ("test", test_idx))
        if len(idx)
    }
    lr = args.lr if args.lr is not None else DEFAULT_LR[args.optimizer]
    mx.random.seed(args.seed)
    model = build_model(model_config)
    optimizer = opts.make_optimizer(args, lr)
    loss = opts.make_loss(args, ds.task, y[train_idx], output_dim)
    monitor = ("val_" if "val" in splits else "") + args.metric
    stopper = opts.ResumableEarlyStopping(monitor=monitor, patience=args.patience, verbose=lead)
    schedule = opts.Schedule(
        args.lr_schedule, lr, args.epochs, args.warmup, monitor, max(1, args.patience // 2)
    )
    callbacks = [schedule] + ([stopper] if args.patience > 0 else [])
    if args.tensorboard is not None and lead:
        callbacks.append(_tensorboard(args.tensorboard))
    if lead:
        print(
            f"data: {ds.source}  rows {len(ds)} (train {len(train_idx)}, "
            f"val {len(val_idx)}, test {len(test_idx)})  "
            + (f"images {'x'.join(map(str, ds.X.shape[1:]))}  " if images else "")
            + f"features {int(np.prod(X.shape[1:]))}  "
            + (
                f"classes {len(ds.classes)}"
                if ds.task == "classification"
                else f"regression target {ds.target!r}"
            ),
            flush=True,
        )
    # The staging directory is made before training, so an --out that cannot be written is
    # reported now, not after the training time is spent.
    staging = staging_dir(out, args.overwrite) if lead else contextlib.nullcontext(None)
    train_data = splits["train"]
    if args.augment:  # training batches only: evaluation sees the images as they are
        train_data = opts.AugmentedImages(X[train_idx], y[train_idx])
    if world.size() == 1:  # an explicit loader, so that its state can be saved and restored
        train_data = DataLoader(train_data, batch_size=args.batch_size, shuffle=True)
    prior: dict[str, Any] = {"epoch": [], "history": {}}
    first_epoch = 0
    if checkpoint is not None:
        state = load_checkpoint(checkpoint, model, optimizer, loader=train_data)
        first_epoch, prior = state["epoch"], state["extra"]["history"]
        stopper.load_state_dict(state["extra"]["parts"]["stopper"])
        schedule.load_state_dict(state["extra"]["parts"]["schedule"])
        if lead:
            print(f"resuming {out} after epoch {first_epoch}", flush=True)
    with staging as tmp, opts.resume_state(out, lead and checkpoint is None):
        if lead:  # after the staging directory: an unwritable --out is reported as such
            folder = opts.resume_dir(out)
            if checkpoint is None:
                with writing(Path(f"{out} (its resume state {folder / 'args.json'})")):
                    opts.save_args(folder, args, ds)
            parts = {"stopper": stopper, "schedule": schedule}
            callbacks.append(opts.EpochCheckpoint(folder / "checkpoint.safetensors", prior, parts))
        # Overflow warnings from NumPy would print before the one-line report of a
        # divergence; fit checks the loss and parameters itself.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            try:
                history = fit(
                    model,
                    optimizer,
                    loss,
                    train_data,
                    splits.get("val"),
                    epochs=first_epoch if stopper.had_stopped() else args.epochs,
                    batch_size=args.batch_size,
                    metrics=opts.epoch_metric_names(epoch_metrics(ds.task), args.metric),
                    callbacks=callbacks,
                    progress=False if args.no_progress else True,
                    seed=args.seed if checkpoint is None else None,
                    initial_epoch=first_epoch,
                    compile=args.compile,
                )
                history = opts.combined_history(prior, history)
            except KeyboardInterrupt:
                if lead:
                    opts.say_interrupted(out)
                raise
            except NonFiniteError as e:
                problem = e.problem.removeprefix("fit: ")
                raise CommandError(
                    f"training diverged: {problem} (try a lower --lr, or check the data for "
                    "extreme values)"
                ) from None
            metrics: dict[str, Any] = {}
            for name in ("train", "val", "test"):
                if name in splits:
                    result = evaluate(
                        model, splits[name], loss, report_metrics(ds.task), batch_size=256
                    )
                    metrics[name] = {k: _finite(float(v)) for k, v in result.items()}
        config = _run_config(args, ds, model_config, scaler, lr, history, labels)
        opts.add_run_config(config, args, ds, scaler)
        config["split"]["sizes"] = {
            "train": len(train_idx),
            "val": len(val_idx),
            "test": len(test_idx),
        }
        config["summary"] = opts.data_summary(ds, config)
        if tmp is not None:
            with writing(out / "model.safetensors"):
                model.save_weights(str(tmp / "model.safetensors"))
            with writing(out / "config.json"):
                write_json(tmp / "config.json", config)
            with writing(out / "history.json"):
                history.save(tmp / "history.json")
            with writing(out / "history.png"):
                history.plot(tmp / "history.png")
            with writing(out / "report.html"):
                parts = (train_idx, val_idx, test_idx)
                opts.run_report(tmp, config, metrics, history, model, X, y, parts)
            with writing(out / "metrics.json"):
                write_json(tmp / "metrics.json", metrics)
    if not lead:
        return 0
    opts.finish_resume(out)
    report = metrics.get("test") or metrics.get("val") or metrics["train"]
    which = "test" if "test" in metrics else "val" if "val" in metrics else "train"
    print(f"{which}: {format_metrics(report)}")
    print(f"weights: {out / 'model.safetensors'}")
    print(f"plot:    {out / 'history.png'}")
    print(f"report:  {out / 'report.html'}")
    print(f"run:     {out}  (chainrule evaluate {out} --data ...)")
    return 0


def _tensorboard(folder: str) -> Any:
    """The TensorBoard callback of --tensorboard DIR, checked before training starts."""
    from chainrule.train import TensorBoard

    path = Path(folder)
    if path.exists() and not path.is_dir():
        raise CommandError(f"--tensorboard {folder} is a file; give a folder for the event files")
    try:
        return TensorBoard(path)
    except ImportError:
        raise CommandError(
            "--tensorboard needs the tensorboard package: pip install 'chainrule[tensorboard]'"
        ) from None


def _hidden_text(args: argparse.Namespace) -> str:
    return ",".join(map(str, args.hidden)) or "none"


def _run_config(
    args: argparse.Namespace,
    ds: Any,
    model_config: dict[str, Any],
    scaler: Any,
    lr: float,
    history: Any,
    labels: np.ndarray | None,
) -> dict[str, Any]:
    return {
        "format": CONFIG_FORMAT,
        "chainrule_version": version(),
        "data": _hide_password(args.data),
        "task": ds.task,
        "target": ds.target,
        "features": ds.features,
        "classes": ds.classes,
        "model": model_config,
        "scaler": scaler.to_dict(),
        "training": {
            "optimizer": args.optimizer,
            "lr": lr,
            "batch_size": args.batch_size,
            "epochs": args.epochs,
            "epochs_run": len(history.epoch),
            "patience": args.patience,
            "seed": args.seed,
            "loss": "cross_entropy" if ds.task == "classification" else "mse",
            "missing": args.missing,
        },
        "split": {
            "seed": args.seed,
            "rows": len(ds),
            "val_split": args.val_split,
            "test_split": args.test_split,
            "stratified": labels is not None,
        },
    }
