"""`chainrule export`: a trained run's model as an ONNX file."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .args import HelpFormatter
from .config import read_run
from .errors import CommandError
from .rundir import writing

__all__ = ["add_parser", "run"]


def add_parser(commands: Any) -> None:
    """Add `export` and its options to the sub-command parsers.

    Args:
        commands: the object `add_subparsers` returned.
    """
    export = commands.add_parser(
        "export",
        help="write a trained run's model as an ONNX file",
        description=(
            "Rebuild the model of a run directory and write it as ONNX (runs in onnxruntime "
            "and other ONNX tools). The graph takes the raw feature columns in the run's order "
            "(input 'features', float32, any number of rows) and standardises them with the "
            "run's training statistics, as `chainrule predict` does; its output 'output' is "
            "the network's output: one score (logit) per class, or the predicted value. The "
            "features, classes and task are stored in the file's metadata. Needs "
            "pip install 'chainrule[export]'."
        ),
        formatter_class=HelpFormatter,
    )
    export.add_argument("run_dir", metavar="DIR", help="a directory written by chainrule train")
    export.add_argument("--onnx", required=True, metavar="FILE.onnx", help="the ONNX file to write")
    export.add_argument(
        "--opset", type=int, default=None, metavar="N", help="the ONNX opset (default 18)"
    )
    export.add_argument(
        "--no-scaling",
        action="store_true",
        help="leave the standardisation out: the graph takes already standardised features",
    )
    export.set_defaults(run=run)


def _check_output(path: str) -> Path:
    out = Path(path)
    if out.is_dir():
        raise CommandError(f"--onnx {out} is a directory; give a file name like model.onnx")
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise CommandError(f"--onnx {out}: the folder {folder} does not exist")
    return out


def run(args: argparse.Namespace) -> int:
    """Run `chainrule export` with parsed arguments.

    Args:
        args: the parsed arguments.

    Returns:
        0 (problems raise CommandError).
    """
    import chainrule.core as mx
    from chainrule.viz.onnx import OnnxExportError, export_onnx

    out = _check_output(args.onnx)
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise CommandError(
            "writing ONNX needs the onnx package: pip install 'chainrule[export]'"
        ) from None
    config, model, scaler = read_run(args.run_dir)
    if "input" in config:  # a run trained on images (chainrule train --model ...)
        raise CommandError(
            f"{args.run_dir}: a run trained on images; chainrule export writes runs on tables "
            "only for now"
        )
    model.eval()
    n = int(config["model"]["input_dim"])
    if args.no_scaling:
        fn = model
    else:
        mean = mx.array(np.asarray(scaler.mean, np.float32))
        std = mx.array(np.asarray(scaler.std, np.float32))

        def fn(x: Any) -> Any:
            return model((x - mean) / std)

    example = mx.zeros((2, n), dtype=mx.float32)
    metadata = {
        "chainrule.task": config["task"],
        "chainrule.features": json.dumps(config["features"]),
        "chainrule.classes": json.dumps(config.get("classes")),
        "chainrule.scaled_inside": json.dumps(not args.no_scaling),
    }
    try:
        with writing(out):
            export_onnx(
                fn,
                (example,),
                out,
                input_names=["features"],
                output_names=["output"],
                dynamic_axes={"features": {0: "rows"}, "output": {0: "rows"}},
                opset_version=args.opset,
                names_from=model,
                metadata=metadata,
            )
    except OnnxExportError as e:
        raise CommandError(str(e)) from None
    print(f"wrote {out} (input 'features': rows x {n}; output 'output')", file=sys.stderr)
    return 0
