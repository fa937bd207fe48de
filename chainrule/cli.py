"""The `chainrule` command: train a multi-layer perceptron on a table, then evaluate or predict.

    chainrule train --data digits
    chainrule evaluate runs/digits --data digits --split test
    chainrule predict runs/digits --data new_rows.csv --output predictions.csv
    chainrule graph two_layer.py -o two_layer.svg   # the graph of a script's loss (viz/command.py)

The command is a thin layer over the library: `chainrule.data.load` reads the data,
`chainrule.nn` builds the model, `chainrule.train.fit` / `evaluate` / `predict` run it. What is
here is the glue: splitting, standardising, the run directory and its files, and turning bad
input into one line on stderr with exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import os
import shutil
import sys
import tempfile
import textwrap
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

__all__ = ["main", "build_parser", "split_indices", "Standardizer", "CommandError"]

EXIT_BAD_INPUT = 2

ACTIVATIONS = ("relu", "gelu", "silu", "tanh", "sigmoid", "leaky_relu", "elu")
OPTIMIZERS = ("adam", "sgd", "adamw", "rmsprop")
DEFAULT_LR = {"adam": 1e-3, "adamw": 1e-3, "rmsprop": 1e-3, "sgd": 1e-2}
SPLITS = ("all", "train", "val", "test")
RUN_FILES = ("model.safetensors", "config.json", "history.json", "history.png", "metrics.json")
CONFIG_FORMAT = "chainrule.cli.run/1"


class CommandError(Exception):
    """A problem with the user's arguments or data: reported as one line, exit status 2."""


# --------------------------------------------------------------------------------------------
# Argument parsing
# --------------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line (argparse prints the usage too)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _HelpFormatter(argparse.HelpFormatter):
    """Shows each option's default when it has one (argparse's own formatter says "None")."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            not action.option_strings
            or "default" in text
            or default is None
            or default is False
            or default == argparse.SUPPRESS
        ):
            return text
        shown = ",".join(map(str, default)) if isinstance(default, list) else str(default)
        return f"{text} (default: {shown.replace('%', '%%')})"


def _hidden(text: str) -> list[int]:
    text = text.strip()
    if text.lower() in ("", "none", "0"):
        return []
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated layer sizes like 128,64, got {text!r}"
        ) from None
    if any(s <= 0 for s in sizes):
        raise argparse.ArgumentTypeError(f"layer sizes must be positive, got {text!r}")
    return sizes


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction like 0.2, got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text!r}")
    return value


def _columns(text: str) -> list[str]:
    names = [c.strip() for c in text.split(",") if c.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected comma-separated column names")
    return names


DATA_HELP = (
    "the data: a built-in dataset (digits, iris, wine, breast_cancer, diabetes), a CSV file "
    "(PATH.csv, header row first), a JSON file (PATH.json: an array of records, or JSON Lines "
    "PATH.jsonl), or a database table: sqlite:///FILE.db?table=T, "
    "postgresql://USER:PASSWORD@HOST:PORT/DB?table=T (or ?query=SELECT...)"
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `chainrule` command and its sub-commands.

    Returns:
        The parser; `main` runs the sub-command it selects.
    """
    parser = _Parser(
        prog="chainrule",
        description=textwrap.fill(
            "Train a neural network (a multi-layer perceptron) on tabular data, then evaluate "
            "it or predict with it. Every run is a directory holding the weights "
            "(model.safetensors), what is needed to rebuild the model and its input scaling "
            "(config.json), the training curves (history.json, history.png) and the test "
            "metrics (metrics.json).",
            88,
        ),
        epilog=(
            "examples:\n"
            "  chainrule train --data digits\n"
            "  chainrule train --data houses.csv --target price --task regression --out runs/h\n"
            "  chainrule train --data 'sqlite:///shop.db?table=orders' --target returned\n"
            "  chainrule evaluate runs/digits --data digits --split test\n"
            "  chainrule predict runs/h --data new_houses.csv --output predictions.csv\n\n"
            "Bad arguments or bad data stop the command with exit status 2 and one line on\n"
            "stderr naming the problem."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    train = commands.add_parser(
        "train",
        help="train a model and write a run directory",
        description=(
            "Load the data, split it into train/validation/test sets (stratified by class "
            "for classification), standardise the features with the training set's mean "
            "and standard deviation, train a multi-layer perceptron with early stopping on "
            "the validation loss (keeping the best epoch's weights), print the test metrics "
            "and write the run directory: model.safetensors, config.json, history.json, "
            "history.png, metrics.json. The directory appears only when everything has been "
            "written."
        ),
        formatter_class=_HelpFormatter,
    )
    train.add_argument("--data", required=True, metavar="SOURCE", help=DATA_HELP)
    train.add_argument(
        "--target",
        metavar="COL",
        help="the column to predict (files and databases; default: the last column)",
    )
    train.add_argument(
        "--features",
        type=_columns,
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
        "--hidden",
        type=_hidden,
        default=[128, 64],
        metavar="N,N,...",
        help="hidden layer sizes, comma-separated ('none' for a linear model)",
    )
    train.add_argument("--activation", choices=ACTIVATIONS, default="relu", help="activation")
    train.add_argument(
        "--dropout",
        type=_fraction,
        default=0.1,
        metavar="P",
        help="dropout after each hidden layer",
    )
    train.add_argument("--optimizer", choices=OPTIMIZERS, default="adam", help="optimizer")
    train.add_argument(
        "--lr",
        type=_positive_float,
        default=None,
        metavar="LR",
        help="learning rate (default: 1e-3, or 1e-2 for sgd, which uses momentum 0.9)",
    )
    train.add_argument(
        "--batch-size", type=_positive_int, default=32, metavar="N", help="batch size"
    )
    train.add_argument(
        "--epochs", type=_positive_int, default=100, metavar="N", help="maximum number of epochs"
    )
    train.add_argument(
        "--val-split",
        type=_fraction,
        default=0.1,
        metavar="F",
        help="fraction of rows for validation",
    )
    train.add_argument(
        "--test-split",
        type=_fraction,
        default=0.2,
        metavar="F",
        help="fraction of rows for the test set",
    )
    train.add_argument(
        "--patience",
        type=_non_negative_int,
        default=10,
        metavar="N",
        help="stop after this many epochs without a lower validation loss (0: never stop early)",
    )
    train.add_argument(
        "--seed", type=int, default=0, metavar="N", help="random seed (splits, weights, order)"
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
    train.set_defaults(run=_cmd_train)

    evaluate = commands.add_parser(
        "evaluate",
        help="compute a trained run's metrics on data",
        description=(
            "Rebuild the model of a run directory, apply its feature scaling and report its "
            "loss and metrics on the data. With --split, use the same split as training "
            "(the data must be the one trained on)."
        ),
        formatter_class=_HelpFormatter,
    )
    evaluate.add_argument("run_dir", metavar="DIR", help="a directory written by chainrule train")
    evaluate.add_argument("--data", required=True, metavar="SOURCE", help=DATA_HELP)
    evaluate.add_argument(
        "--split",
        choices=SPLITS,
        default="all",
        help="which rows to use: all of them, or the training run's train/val/test split",
    )
    evaluate.add_argument(
        "--batch-size", type=_positive_int, default=256, metavar="N", help="batch size"
    )
    evaluate.add_argument("--json", action="store_true", help="print the metrics as JSON")
    evaluate.set_defaults(run=_cmd_evaluate)

    predict = commands.add_parser(
        "predict",
        help="write a trained run's predictions to CSV",
        description=(
            "Rebuild the model of a run directory and write one row per input row: the "
            "prediction (the class label, or the value for regression) and, for "
            "classification, the probability of each class (columns prob_<class>). The "
            "data needs the run's feature columns; other columns (the target) are ignored."
        ),
        formatter_class=_HelpFormatter,
    )
    predict.add_argument("run_dir", metavar="DIR", help="a directory written by chainrule train")
    predict.add_argument("--data", required=True, metavar="SOURCE", help=DATA_HELP)
    predict.add_argument(
        "--output", default="-", metavar="FILE.csv", help="where to write (- for stdout)"
    )
    predict.add_argument(
        "--batch-size", type=_positive_int, default=256, metavar="N", help="batch size"
    )
    predict.set_defaults(run=_cmd_predict)

    graph = commands.add_parser(
        "graph",
        help="draw the computational graph of the loss a script computes",
        description=(
            "Run a Python script, then draw the graph behind its `loss` variable: one node per "
            "operation, parameters by name, the gradient norm at each node. Prints a text tree "
            "and writes an SVG (no Graphviz needed), or PNG/PDF through Graphviz's dot. "
            "See docs/autodiff.md."
        ),
        formatter_class=_HelpFormatter,
    )
    from chainrule.viz.command import add_arguments as _graph_arguments

    _graph_arguments(graph)
    graph.set_defaults(run=_cmd_graph)
    return parser


def _version() -> str:
    try:
        from chainrule import __version__

        return __version__
    except ImportError:  # pragma: no cover
        return "unknown"


# --------------------------------------------------------------------------------------------
# Splitting and standardising (pure NumPy, so they are easy to test)
# --------------------------------------------------------------------------------------------


def split_indices(
    n: int,
    val_split: float,
    test_split: float,
    seed: int,
    labels: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random train / validation / test row indices.

    With `labels` the split is stratified: each class contributes `round(count * fraction)`
    rows to the validation and test sets, so a small dataset keeps every class in each set.

    Args:
        n: number of rows.
        val_split: fraction of rows for validation, in [0, 1).
        test_split: fraction of rows for testing, in [0, 1).
        seed: seed of the NumPy generator; the same seed gives the same split.
        labels: class index of every row, or None for a plain random split.

    Returns:
        Sorted int64 index arrays (train, val, test), disjoint and covering range(n).

    Raises:
        CommandError: if the fractions leave no training rows, or a requested set is empty.
    """
    if not (0 <= val_split < 1 and 0 <= test_split < 1 and val_split + test_split < 1):
        raise CommandError(
            f"--val-split {val_split} and --test-split {test_split} must be in [0, 1) and "
            "leave rows for training (sum below 1)"
        )
    rng = np.random.default_rng(seed)
    groups = (
        [np.arange(n)]
        if labels is None
        else [np.flatnonzero(labels == c) for c in np.unique(labels)]
    )
    train, val, test = [], [], []
    for group in groups:
        group = rng.permutation(group)
        n_test = int(round(len(group) * test_split))
        n_val = int(round(len(group) * val_split))
        if n_test + n_val >= len(group):  # a class too small to share: keep it for training
            n_test = n_val = 0
        test.append(group[:n_test])
        val.append(group[n_test : n_test + n_val])
        train.append(group[n_test + n_val :])
    out = tuple(np.sort(np.concatenate(parts)).astype(np.int64) for parts in (train, val, test))
    for name, part, fraction in (("validation", out[1], val_split), ("test", out[2], test_split)):
        if fraction > 0 and len(part) == 0:
            raise CommandError(
                f"the data has only {n} rows: too few for a {name} set of {fraction:g} of them "
                f"(use more data or set --{'val' if name == 'validation' else 'test'}-split 0)"
            )
    if len(out[0]) == 0:
        raise CommandError(f"the data has only {n} rows: none left for training")
    return out  # type: ignore[return-value]


class Standardizer:
    """Feature scaling `(x - mean) / std`, fitted on the training rows only.

    Columns that are constant in the training rows get std 1 (they become 0, not NaN).

    Args:
        mean: per-column means.
        std: per-column standard deviations (zeros are replaced by 1).
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean = np.asarray(mean, dtype=np.float64)
        std = np.asarray(std, dtype=np.float64)
        self.std = np.where(std > 1e-12, std, 1.0)

    @classmethod
    def fit(cls, X: np.ndarray) -> Standardizer:
        """Means and (population) standard deviations of X's columns, like scikit-learn's
        StandardScaler.

        Args:
            X: training features, shape (n, d).

        Returns:
            The fitted scaler.
        """
        X = np.asarray(X, dtype=np.float64)
        return cls(X.mean(axis=0), X.std(axis=0))

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Scaled features as float32.

        Args:
            X: features, shape (n, d).

        Returns:
            `(X - mean) / std` as float32.
        """
        return ((np.asarray(X, dtype=np.float64) - self.mean) / self.std).astype(np.float32)

    def to_dict(self) -> dict[str, list[float]]:
        """The scaler as JSON-ready lists."""
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}


# --------------------------------------------------------------------------------------------
# Writing a run directory atomically
# --------------------------------------------------------------------------------------------


def _default_out(spec: str) -> Path:
    name = spec.split("?", 1)[0]
    if "://" in spec:
        from urllib.parse import parse_qs, urlsplit

        query = parse_qs(urlsplit(spec).query)
        name = query.get("table", [Path(urlsplit(spec).path).stem or "sql"])[0]
    else:
        name = Path(name).stem or "run"
    name = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name) or "run"
    out = Path("runs") / name
    k = 2
    while out.exists():
        out = Path("runs") / f"{name}-{k}"
        k += 1
    return out


@contextlib.contextmanager
def staging_dir(out: Path, overwrite: bool) -> Iterator[Path]:
    """A temporary directory next to `out` that becomes `out` only if the body succeeds.

    Args:
        out: the directory to create.
        overwrite: replace `out` if it already exists (only after success).

    Yields:
        The temporary directory to fill.

    Raises:
        CommandError: if `out` exists and `overwrite` is false, or is a file.
    """
    if out.exists() and not overwrite:
        raise CommandError(f"{out} already exists (choose another --out, or add --overwrite)")
    if out.exists() and not out.is_dir():
        raise CommandError(f"{out} exists and is not a directory")
    parent = out.parent if str(out.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CommandError(f"cannot create {parent}: {e.strerror}") from None
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=parent))
    try:
        yield tmp
        # mkdtemp/mkstemp make private (0700/0600) entries; a run is an ordinary directory.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        for entry in tmp.iterdir():
            if entry.is_file():
                os.chmod(entry, 0o666 & ~umask)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=parent))
            os.replace(out, old / out.name)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, allow_nan=False) + "\n", encoding="utf-8")


def _finite(value: Any) -> Any:
    """NaN/inf (JSON cannot hold them) become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# --------------------------------------------------------------------------------------------
# Model, loss and optimizer from the library
# --------------------------------------------------------------------------------------------


def build_model(config: dict[str, Any]) -> Any:
    """The MLP a run's config describes (fresh weights).

    Args:
        config: `input_dim`, `output_dim`, `hidden`, `activation`, `dropout`.

    Returns:
        A `chainrule.nn.Sequential`.
    """
    import chainrule.nn as nn

    activation = {
        "relu": nn.ReLU,
        "gelu": nn.GELU,
        "silu": nn.SiLU,
        "tanh": nn.Tanh,
        "sigmoid": nn.Sigmoid,
        "leaky_relu": nn.LeakyReLU,
        "elu": nn.ELU,
    }[config["activation"]]
    layers: list[Any] = []
    width = config["input_dim"]
    for size in config["hidden"]:
        layers += [nn.Linear(width, size), activation()]
        if config["dropout"] > 0:
            layers.append(nn.Dropout(config["dropout"]))
        width = size
    layers.append(nn.Linear(width, config["output_dim"]))
    return nn.Sequential(*layers)


def _loss_fn(task: str) -> Any:
    import chainrule.nn as nn

    return nn.CrossEntropyLoss() if task == "classification" else nn.MSELoss()


def _make_optimizer(name: str, lr: float) -> Any:
    import chainrule.optimizers as optim

    if name == "sgd":
        return optim.SGD(learning_rate=lr, momentum=0.9)
    cls = {"adam": optim.Adam, "adamw": optim.AdamW, "rmsprop": optim.RMSprop}[name]
    return cls(learning_rate=lr)


def _train_metrics(task: str) -> tuple[str, ...]:
    return ("accuracy",) if task == "classification" else ("mae",)


def _test_metrics(task: str) -> tuple[str, ...]:
    return (
        ("accuracy", "precision", "recall", "f1")
        if task == "classification"
        else (
            "mse",
            "mae",
            "r2",
        )
    )


# --------------------------------------------------------------------------------------------
# Data for the commands
# --------------------------------------------------------------------------------------------


def _load_training_data(args: argparse.Namespace) -> Any:
    from chainrule.data import BUILTIN_DATASETS, load

    if args.data in BUILTIN_DATASETS:
        if args.target is not None or args.features is not None:
            raise CommandError(
                f"--target/--features do not apply to the built-in dataset {args.data!r}"
            )
        ds = load(args.data)
        if args.task not in ("auto", ds.task):
            raise CommandError(f"the built-in dataset {args.data!r} is a {ds.task} task")
        return ds
    target: str | int = args.target if args.target is not None else -1
    return load(args.data, target=target, features=args.features, task=args.task)


def _read_run(run_dir: str) -> tuple[dict[str, Any], Any, Standardizer]:
    """config, model with its trained weights, scaler."""
    path = Path(run_dir)
    config_path = path / "config.json"
    if not path.is_dir():
        raise CommandError(f"{path}: no such run directory")
    if not config_path.is_file():
        raise CommandError(f"{path}: not a run directory (no config.json)")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CommandError(f"{config_path}: not valid JSON: {e}") from None
    if not isinstance(config, dict) or config.get("format") != CONFIG_FORMAT:
        raise CommandError(f"{config_path}: not a config.json written by chainrule train")
    weights = path / "model.safetensors"
    if not weights.is_file():
        raise CommandError(f"{path}: the weights file model.safetensors is missing")
    model = build_model(config["model"])
    model.load_weights(str(weights))
    model.eval()
    scaler = Standardizer(config["scaler"]["mean"], config["scaler"]["std"])
    return config, model, scaler


def _load_for_run(spec: str, config: dict[str, Any], with_target: bool) -> Any:
    """The data a run was trained on, in the run's column order and class numbering."""
    from chainrule.data import BUILTIN_DATASETS, from_numpy, load

    if spec in BUILTIN_DATASETS:
        ds = load(spec)
        if ds.features != config["features"]:
            raise CommandError(
                f"the built-in dataset {spec!r} does not have this run's features "
                f"({len(config['features'])} columns, starting {config['features'][:3]})"
            )
    else:
        target = config["target"] if with_target else None
        ds = load(spec, target=target, features=config["features"], task=config["task"])
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


def _label_key(label: Any) -> Any:
    # JSON turns 1.0 into 1.0 but the data may say 1; compare numbers as numbers.
    if isinstance(label, bool):
        return ("b", label)
    if isinstance(label, int | float):
        return ("n", float(label))
    return ("s", str(label))


def _dataset(X: np.ndarray, y: np.ndarray | None) -> Any:
    from chainrule.data import TensorDataset

    if y is None:
        return TensorDataset(X)
    if y.dtype.kind == "f":  # regression: a column, shaped like the network's single output
        y = y.reshape(-1, 1)
    return TensorDataset(X, y)


def _format_metrics(metrics: dict[str, Any]) -> str:
    return "  ".join(
        f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items()
    )


# --------------------------------------------------------------------------------------------
# The sub-commands
# --------------------------------------------------------------------------------------------


def _cmd_train(args: argparse.Namespace) -> int:
    import chainrule.core as mx
    import chainrule.distributed as dist
    from chainrule.train import EarlyStopping, evaluate, fit

    # Under `mpiexec -n N` every rank trains (fit is data-parallel); only rank 0 reports and
    # writes the run directory.
    world = dist.init()
    lead = world.rank() == 0

    # Fail before spending time on training: the run's files need these optional packages.
    for module, extra, purpose in (
        ("safetensors", "weights", "model.safetensors"),
        ("matplotlib", "train", "history.png"),
    ):
        if importlib.util.find_spec(module) is None:
            raise CommandError(
                f"writing {purpose} needs {module}, which is not installed: "
                f"pip install 'chainrule[{extra}]'"
            )
    out = Path(args.out) if args.out else _default_out(args.data)
    if world.size() > 1:
        out = Path(dist.broadcast(str(out)))
    if out.exists() and not args.overwrite:
        raise CommandError(f"{out} already exists (choose another --out, or add --overwrite)")
    ds = _load_training_data(args)
    if ds.X.ndim != 2:
        raise CommandError(f"{args.data}: expected a table of features, got shape {ds.X.shape}")
    if ds.task == "classification" and len(ds.classes) < 2:
        raise CommandError(
            f"{args.data}: the target {ds.target!r} has a single class ({ds.classes[0]!r}); "
            "there is nothing to learn"
        )
    labels = ds.y if ds.task == "classification" else None
    train_idx, val_idx, test_idx = split_indices(
        len(ds), args.val_split, args.test_split, args.seed, labels
    )
    scaler = Standardizer.fit(ds.X[train_idx])
    X = scaler.transform(ds.X)
    y = ds.y
    splits = {
        name: _dataset(X[idx], y[idx])
        for name, idx in (("train", train_idx), ("val", val_idx), ("test", test_idx))
        if len(idx)
    }
    output_dim = len(ds.classes) if ds.task == "classification" else 1
    model_config = {
        "input_dim": X.shape[1],
        "output_dim": output_dim,
        "hidden": args.hidden,
        "activation": args.activation,
        "dropout": args.dropout,
    }
    lr = args.lr if args.lr is not None else DEFAULT_LR[args.optimizer]
    mx.random.seed(args.seed)
    model = build_model(model_config)
    optimizer = _make_optimizer(args.optimizer, lr)
    loss_fn = _loss_fn(ds.task)
    monitor = "val_loss" if "val" in splits else "loss"
    callbacks = [EarlyStopping(monitor=monitor, patience=args.patience, restore_best=True)]
    if args.patience == 0:
        callbacks = []
    if lead:
        print(
            f"data: {ds.source}  rows {len(ds)} (train {len(train_idx)}, "
            f"val {len(val_idx)}, test {len(test_idx)})  features {X.shape[1]}  "
            + (
                f"classes {len(ds.classes)}"
                if ds.task == "classification"
                else f"regression target {ds.target!r}"
            ),
            flush=True,
        )
    history = fit(
        model,
        optimizer,
        loss_fn,
        splits["train"],
        splits.get("val"),
        epochs=args.epochs,
        batch_size=args.batch_size,
        metrics=_train_metrics(ds.task),
        callbacks=callbacks,
        progress=False if args.no_progress else True,
        seed=args.seed,
        compile=args.compile,
    )
    metrics: dict[str, Any] = {}
    for name in ("train", "val", "test"):
        if name in splits:
            result = evaluate(model, splits[name], loss_fn, _test_metrics(ds.task), batch_size=256)
            metrics[name] = {k: _finite(float(v)) for k, v in result.items()}
    epochs_run = len(history.epoch) if hasattr(history, "epoch") else None
    config = {
        "format": CONFIG_FORMAT,
        "chainrule_version": _version(),
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
            "epochs_run": epochs_run,
            "patience": args.patience,
            "seed": args.seed,
            "loss": "cross_entropy" if ds.task == "classification" else "mse",
        },
        "split": {
            "seed": args.seed,
            "rows": len(ds),
            "val_split": args.val_split,
            "test_split": args.test_split,
            "stratified": labels is not None,
            "sizes": {"train": len(train_idx), "val": len(val_idx), "test": len(test_idx)},
        },
    }
    if not lead:
        return 0
    with staging_dir(out, args.overwrite) as tmp:
        model.save_weights(str(tmp / "model.safetensors"))
        _write_json(tmp / "config.json", config)
        history.save(tmp / "history.json")
        history.plot(tmp / "history.png")
        _write_json(tmp / "metrics.json", metrics)
    report = metrics.get("test") or metrics.get("val") or metrics["train"]
    which = "test" if "test" in metrics else "val" if "val" in metrics else "train"
    print(f"{which}: {_format_metrics(report)}")
    print(f"weights: {out / 'model.safetensors'}")
    print(f"plot:    {out / 'history.png'}")
    print(f"run:     {out}  (chainrule evaluate {out} --data ...)")
    return 0


def _select_split(config: dict[str, Any], n: int, y: np.ndarray | None, split: str) -> Any:
    if split == "all":
        return slice(None)
    info = config["split"]
    if n != info["rows"]:
        raise CommandError(
            f"--split {split} needs the data the run was trained on ({info['rows']} rows); "
            f"this data has {n}"
        )
    labels = y if info["stratified"] else None
    parts = split_indices(n, info["val_split"], info["test_split"], info["seed"], labels)
    chosen = dict(zip(("train", "val", "test"), parts))[split]
    if len(chosen) == 0:
        raise CommandError(f"the run has no {split} split")
    return chosen


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from chainrule.train import evaluate

    config, model, scaler = _read_run(args.run_dir)
    ds, y = _load_for_run(args.data, config, with_target=True)
    rows = _select_split(config, len(ds), y, args.split)
    X = scaler.transform(ds.X[rows])
    result = evaluate(
        model,
        _dataset(X, y[rows]),
        _loss_fn(config["task"]),
        _test_metrics(config["task"]),
        batch_size=args.batch_size,
    )
    result = {k: _finite(float(v)) for k, v in result.items()}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.split} ({len(X)} rows): {_format_metrics(result)}")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    import chainrule.core as mx
    from chainrule.train import predict

    config, model, scaler = _read_run(args.run_dir)
    ds, _ = _load_for_run(args.data, config, with_target=False)
    X = scaler.transform(ds.X)
    outputs = predict(model, _dataset(X, None), batch_size=args.batch_size)
    pd = _pandas()
    if config["task"] == "classification":
        probs = np.asarray(mx.softmax(outputs, axis=-1).numpy(), dtype=np.float64)
        classes = config["classes"]
        table = pd.DataFrame({"prediction": [classes[i] for i in probs.argmax(axis=1)]})
        for j, c in enumerate(classes):
            table[f"prob_{c}"] = probs[:, j]
    else:
        table = pd.DataFrame({"prediction": np.asarray(outputs.numpy()).reshape(-1)})
    if args.output == "-":
        table.to_csv(sys.stdout, index=False, float_format="%.6g")
        return 0
    out = Path(args.output)
    if out.is_dir():
        raise CommandError(f"--output {out} is a directory; give a file name like out.csv")
    if not out.parent.exists():
        raise CommandError(f"--output {out}: the folder {out.parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent or ".")
    os.close(fd)
    try:
        table.to_csv(tmp, index=False, float_format="%.6g")
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    print(f"wrote {len(table)} predictions to {out}", file=sys.stderr)
    return 0


def _cmd_graph(args: argparse.Namespace) -> int:
    from chainrule.viz.command import main as graph_main

    return graph_main(args)


def _pandas() -> Any:
    try:
        import pandas as pd
    except ImportError:
        raise ImportError(
            "chainrule predict writes CSV with pandas: pip install 'chainrule[data]'"
        ) from None
    return pd


def _hide_password(url: str) -> str:
    import re

    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the `chainrule` command.

    Args:
        argv: the arguments after the program name (default: `sys.argv[1:]`).

    Returns:
        The exit status: 0 on success, 2 for bad arguments or bad data (one line on stderr).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    from chainrule.data import DataError

    try:
        return args.run(args)
    except BrokenPipeError:
        # The reader went away (`chainrule predict ... | head`): stop quietly, as Python's
        # documentation recommends, without a second error while flushing at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except (CommandError, DataError, ImportError, OSError, ValueError) as e:
        print(f"chainrule {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"chainrule {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
