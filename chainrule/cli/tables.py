"""Reading the data for the sub-commands: the training table, and a run's table in the run's
column order and class numbering; with the command's wording in data errors."""

from __future__ import annotations

import argparse
import inspect
import re
from typing import Any

import numpy as np

from .errors import CommandError

__all__ = [
    "load_table",
    "load_training_data",
    "load_for_run",
    "check_class_count",
    "make_dataset",
    "command_wording",
    "DEFAULT_MAX_CLASSES",
]

# A classification target with more distinct values than this (or than half the rows) is
# almost surely a continuous column or an identifier; --max-classes raises the limit.
DEFAULT_MAX_CLASSES = 100

_PYTHON_FEATURES = re.compile(r"features=\[([^\]]*)\]")


def command_wording(message: str) -> str:
    """A data-layer message with its Python hints in the command's terms.

    `features=['a', 'b']` (or `features=[...]`) becomes `--features a,b` (`--features
    A,B,...`); "choosing the feature columns" gets the option's name.

    Args:
        message: the message of a `chainrule.data.DataError`.

    Returns:
        The message for the command line.
    """

    def flag(m: re.Match[str]) -> str:
        names = [n.strip().strip("'\"") for n in m.group(1).split(",") if n.strip()]
        if not names or names == ["..."]:
            return "--features A,B,..."
        return "--features " + ",".join(names)

    message = _PYTHON_FEATURES.sub(flag, message)
    if "--features" not in message:
        message = message.replace(
            "choosing the feature columns", "choosing the feature columns with --features A,B,..."
        )
    return message


def load_table(spec: str, missing: str, **options: Any) -> Any:
    """`chainrule.data.load(spec, ..., missing=missing)`.

    Args:
        spec: the `--data` argument.
        missing: `--missing`: "error", "drop" or "mean".
        **options: `target`, `features`, `task` for files and databases.

    Returns:
        The `TabularDataset`.

    Raises:
        CommandError: if `--missing` asks for something this version of the data layer
            cannot do.
    """
    from chainrule.data import load

    if "missing" in inspect.signature(load).parameters:
        options["missing"] = missing
    elif missing != "error":
        raise CommandError(f"--missing {missing} needs a newer chainrule.data.load")
    return load(spec, **options)


def load_training_data(args: argparse.Namespace) -> Any:
    """The table `chainrule train --data ...` names, with its checks.

    Args:
        args: the parsed `train` arguments.

    Returns:
        The `TabularDataset`.

    Raises:
        CommandError: for options that do not fit the data.
    """
    from chainrule.data import BUILTIN_DATASETS

    if args.data in BUILTIN_DATASETS:
        if args.target is not None or args.features is not None:
            raise CommandError(
                f"--target/--features do not apply to the built-in dataset {args.data!r}"
            )
        ds = load_table(args.data, args.missing)
        if args.task not in ("auto", ds.task):
            raise CommandError(f"the built-in dataset {args.data!r} is a {ds.task} task")
        return ds
    target: str | int = args.target if args.target is not None else -1
    return load_table(
        args.data, args.missing, target=target, features=args.features, task=args.task
    )


def check_class_count(ds: Any, spec: str, max_classes: int | None) -> None:
    """Refuse a classification target that looks continuous (or like an identifier).

    Without `max_classes`, more than `DEFAULT_MAX_CLASSES` classes, or more classes than half
    the rows, is refused; with it, more than `max_classes`.

    Args:
        ds: the loaded table.
        spec: the `--data` argument, for the message.
        max_classes: `--max-classes`, or None.

    Raises:
        CommandError: naming the count and how to go on.
    """
    if ds.task != "classification":
        return
    n_classes, rows = len(ds.classes), len(ds)
    if max_classes is not None:
        too_many = n_classes > max_classes
        limit = f"--max-classes {max_classes}"
    else:
        too_many = n_classes > DEFAULT_MAX_CLASSES or n_classes > rows / 2
        limit = f"at most {DEFAULT_MAX_CLASSES}, and at most half the rows"
    if too_many:
        hint = (
            "is it a continuous value? use --task regression"
            if ds.classes and all(isinstance(c, int | float) for c in ds.classes)
            else "is it an identifier? choose another --target"
        )
        raise CommandError(
            f"{spec}: the target {ds.target!r} has {n_classes} distinct classes in {rows} rows "
            f"({limit}); {hint}, or allow them with --max-classes {n_classes}"
        )


def _label_key(label: Any) -> Any:
    # JSON turns 1.0 into 1.0 but the data may say 1; compare numbers as numbers.
    if isinstance(label, bool):
        return ("b", label)
    if isinstance(label, int | float):
        return ("n", float(label))
    return ("s", str(label))


def load_for_run(
    spec: str, config: dict[str, Any], with_target: bool, missing: str
) -> tuple[Any, np.ndarray | None]:
    """The data a run is applied to, in the run's column order and class numbering.

    Args:
        spec: the `--data` argument.
        config: the run's checked config.
        with_target: read the target too (evaluate), or only the features (predict).
        missing: `--missing`.

    Returns:
        (dataset, targets in the run's numbering, or None without the target).

    Raises:
        CommandError: if the data does not fit the run.
    """
    from chainrule.data import BUILTIN_DATASETS, from_numpy

    if "input" in config:  # an image run
        from .images import load_for_image_run

        return load_for_image_run(spec, config, with_target)
    if spec in BUILTIN_DATASETS:
        ds = load_table(spec, missing)
        if ds.features != config["features"]:
            raise CommandError(
                f"the built-in dataset {spec!r} does not have this run's features "
                f"({len(config['features'])} columns, starting {config['features'][:3]})"
            )
    else:
        target = config["target"] if with_target else None
        ds = load_table(
            spec, missing, target=target, features=config["features"], task=config["task"]
        )
    if not with_target:
        return ds, None
    if ds.task != config["task"]:
        raise CommandError(f"{spec}: the target is {ds.task}, but this run does {config['task']}")
    if config["task"] == "regression":
        return ds, ds.y
    trained = {_label_key(c): i for i, c in enumerate(config["classes"])}
    mapping = np.empty(len(ds.classes), dtype=np.int64)
    for j, label in enumerate(ds.classes):
        if _label_key(label) not in trained:
            row = int(np.flatnonzero(ds.y == j)[0])
            raise CommandError(
                f"{spec}: class {label!r} (data row {row + 1}) was not among the classes "
                f"seen in training: {config['classes']}"
            )
        mapping[j] = trained[_label_key(label)]
    y = mapping[ds.y]
    return from_numpy(ds.X, y, features=ds.features, target=ds.target), y


def make_dataset(X: np.ndarray, y: np.ndarray | None) -> Any:
    """A `TensorDataset` of features (and targets, a column for regression)."""
    from chainrule.data import TensorDataset

    if y is None:
        return TensorDataset(X)
    if y.dtype.kind == "f":  # regression: a column, shaped like the network's single output
        y = y.reshape(-1, 1)
    return TensorDataset(X, y)
