"""`chainrule predict`: a trained run's predictions as CSV."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .args import HelpFormatter, add_data_argument, positive_int
from .config import read_run
from .errors import CommandError
from .rundir import writing
from .tables import load_for_run, make_dataset

__all__ = ["add_parser", "run"]


def add_parser(commands: Any) -> None:
    """Add `predict` and its options to the sub-command parsers.

    Args:
        commands: the object `add_subparsers` returned.
    """
    predict = commands.add_parser(
        "predict",
        help="write a trained run's predictions to CSV",
        description=(
            "Rebuild the model of a run directory and write one row per input row: the "
            "prediction (the class label, or the value for regression) and, for "
            "classification, the probability of each class (columns prob_<class>). The "
            "data needs the run's feature columns; other columns (the target) are ignored. "
            "A run trained on images takes a folder, a CSV of image paths or image files "
            "(chainrule predict RUN a.png b.png), resizes them to its size and writes the "
            "path first."
        ),
        formatter_class=HelpFormatter,
    )
    predict.add_argument("run_dir", metavar="DIR", help="a directory written by chainrule train")
    add_data_argument(predict)
    for action in predict._actions:
        if "--data" in action.option_strings:
            action.required = False  # image runs also take image files one by one
    predict.add_argument(
        "images",
        nargs="*",
        metavar="IMAGE",
        help="image files to classify (a run trained on images), instead of --data",
    )
    predict.add_argument(
        "--output", default="-", metavar="FILE.csv", help="where to write (- for stdout)"
    )
    predict.add_argument(
        "--batch-size", type=positive_int, default=256, metavar="N", help="batch size"
    )
    predict.set_defaults(run=run)


def _pandas() -> Any:
    try:
        import pandas as pd
    except ImportError:
        raise ImportError(
            "chainrule predict writes CSV with pandas: pip install 'chainrule[data]'"
        ) from None
    return pd


def _check_output(output: str) -> Path | None:
    """The --output file, checked before any work (None for stdout)."""
    if output == "-":
        return None
    out = Path(output)
    if out.is_dir():
        raise CommandError(f"--output {out} is a directory; give a file name like out.csv")
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise CommandError(f"--output {out}: the folder {folder} does not exist")
    return out


def run(args: argparse.Namespace) -> int:
    """Run `chainrule predict` with parsed arguments.

    Args:
        args: the parsed arguments.

    Returns:
        0 (problems raise CommandError or a data error).
    """
    import chainrule.core as mx
    from chainrule.core.io import atomic_path
    from chainrule.train import predict

    out = _check_output(args.output)
    pd = _pandas()
    config, model, scaler = read_run(args.run_dir)
    if "input" in config:  # an image run: --data FOLDER|LIST.csv|IMAGE, or image files
        from .images import load_for_image_run

        if (args.data is None) == (not args.images):
            raise CommandError("give either --data (a folder or a CSV list) or image files")
        ds, _ = load_for_image_run(args.data, config, False, files=args.images)
    else:
        if args.images or args.data is None:
            raise CommandError("--data is required; image files are for runs trained on images")
        ds, _ = load_for_run(args.data, config, with_target=False, missing=args.missing)
    X = scaler.transform(ds.X)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        outputs = predict(model, make_dataset(X, None), batch_size=args.batch_size)
    if config["task"] == "classification":
        probs = np.asarray(mx.softmax(outputs, axis=-1).numpy(), dtype=np.float64)
        classes = config["classes"]
        table = pd.DataFrame({"prediction": [classes[i] for i in probs.argmax(axis=1)]})
        if "input" in config:
            table.insert(0, "path", ds.paths)
        for j, c in enumerate(classes):
            table[f"prob_{c}"] = probs[:, j]
    else:
        table = pd.DataFrame({"prediction": np.asarray(outputs.numpy()).reshape(-1)})
    if out is None:
        table.to_csv(sys.stdout, index=False, float_format="%.6g")
        return 0
    with writing(out), atomic_path(out) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    print(f"wrote {len(table)} predictions to {out}", file=sys.stderr)
    return 0
