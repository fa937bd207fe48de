"""The `chainrule` command's parser and entry point; each sub-command lives in its own module
(`train`, `evaluate`, `predict`, `export`, `graph`) and adds its own parser."""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Sequence

from . import evaluate, export, graph, predict, report, train
from .args import Parser
from .errors import EXIT_BAD_INPUT, CommandError, one_line
from .tables import command_wording

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `chainrule` command and its sub-commands.

    Returns:
        The parser; `main` runs the sub-command it selects.
    """
    parser = Parser(
        prog="chainrule",
        description=textwrap.fill(
            "Train a neural network (a multi-layer perceptron on tabular data, or a CNN on "
            "images), then evaluate it or predict with it. Every run is a directory holding the weights "
            "(model.safetensors), what is needed to rebuild the model and its input scaling "
            "(config.json), the training curves (history.json, history.png) and the test "
            "metrics (metrics.json) and a report page (report.html).",
            88,
        ),
        epilog=(
            "examples:\n"
            "  chainrule train --data digits\n"
            "  chainrule train --data houses.csv --target price --task regression --out runs/h\n"
            "  chainrule train --data 'sqlite:///shop.db?table=orders' --target returned\n"
            "  chainrule evaluate runs/digits --data digits --split test\n"
            "  chainrule predict runs/h --data new_houses.csv --output predictions.csv\n"
            "  chainrule train --data photos/ --model cnn --out runs/photos\n"
            "  chainrule train --resume runs/photos\n"
            "  chainrule report runs/photos\n"
            "  chainrule export runs/h --onnx h.onnx\n"
            "  chainrule graph two_layer.py -o two_layer.svg\n\n"
            "Bad arguments or bad data stop the command with exit status 2 and one line on\n"
            "stderr naming the problem."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {train.version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True
    for command in (train, evaluate, predict, export, graph, report):
        command.add_parser(commands)
    return parser


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
        message = one_line(e)
        if isinstance(e, DataError):
            message = command_wording(message)
        print(f"chainrule {args.command}: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except MemoryError:
        print(
            f"chainrule {args.command}: error: out of memory (use less data, or smaller "
            "--hidden layers or --batch-size)",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"chainrule {args.command}: interrupted", file=sys.stderr)
        return 130
