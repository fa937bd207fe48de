"""`chainrule evaluate`: a trained run's loss and metrics on data."""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np

from .args import HelpFormatter, add_data_argument, positive_int
from .config import check_split_info, read_run
from .errors import CommandError
from .model import loss_fn, report_metrics
from .tables import load_for_run, make_dataset
from .train import format_metrics, split_rows

__all__ = ["add_parser", "run", "SPLITS"]

SPLITS = ("all", "train", "val", "test")


def add_parser(commands: Any) -> None:
    """Add `evaluate` and its options to the sub-command parsers.

    Args:
        commands: the object `add_subparsers` returned.
    """
    evaluate = commands.add_parser(
        "evaluate",
        help="compute a trained run's metrics on data",
        description=(
            "Rebuild the model of a run directory, apply its feature scaling and report its "
            "loss and metrics on the data. With --split, use the same split as training "
            "(the data must be the one trained on)."
        ),
        formatter_class=HelpFormatter,
    )
    evaluate.add_argument("run_dir", metavar="DIR", help="a directory written by chainrule train")
    add_data_argument(evaluate)
    evaluate.add_argument(
        "--split",
        choices=SPLITS,
        default="all",
        help="which rows to use: all of them, or the training run's train/val/test split",
    )
    evaluate.add_argument(
        "--batch-size", type=positive_int, default=256, metavar="N", help="batch size"
    )
    evaluate.add_argument("--json", action="store_true", help="print the metrics as JSON")
    evaluate.set_defaults(run=run)


def _select_split(
    config: dict[str, Any], run_dir: str, n: int, y: np.ndarray | None, split: str
) -> Any:
    if split == "all":
        return slice(None)
    info = check_split_info(config, run_dir)
    if n != info["rows"]:
        raise CommandError(
            f"--split {split} needs the data the run was trained on ({info['rows']} rows); "
            f"this data has {n}"
        )
    labels = y if info["stratified"] else None
    parts = split_rows(n, info["val_split"], info["test_split"], info["seed"], labels)
    chosen = dict(zip(("train", "val", "test"), parts))[split]
    if len(chosen) == 0:
        raise CommandError(f"the run has no {split} split")
    return chosen


def _finite(value: float) -> float | None:
    return value if np.isfinite(value) else None


def run(args: argparse.Namespace) -> int:
    """Run `chainrule evaluate` with parsed arguments.

    Args:
        args: the parsed arguments.

    Returns:
        0 (problems raise CommandError or a data error).
    """
    from chainrule.train import evaluate

    config, model, scaler = read_run(args.run_dir)
    ds, y = load_for_run(args.data, config, with_target=True, missing=args.missing)
    rows = _select_split(config, args.run_dir, len(ds), y, args.split)
    X = scaler.transform(ds.X[rows])
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        result = evaluate(
            model,
            make_dataset(X, y[rows]),
            loss_fn(config["task"]),
            report_metrics(config["task"]),
            batch_size=args.batch_size,
        )
    figures = {k: _finite(float(v)) for k, v in result.items()}
    if args.json:
        print(json.dumps(figures))
    else:
        print(f"{args.split} ({len(X)} rows): {format_metrics(figures)}")
    return 0
