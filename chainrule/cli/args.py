"""Argument parsing for the `chainrule` command: the parser class, the option types that check
values as they are read (so argparse's message names the option), and shared options."""

from __future__ import annotations

import argparse
import math
from typing import NoReturn

from .errors import EXIT_BAD_INPUT

__all__ = [
    "Parser",
    "HelpFormatter",
    "DATA_HELP",
    "MISSING_CHOICES",
    "add_data_argument",
    "add_missing_argument",
    "hidden_sizes",
    "positive_int",
    "non_negative_int",
    "positive_float",
    "fraction",
    "columns",
    "MAX_LAYER_SIZE",
]

# A layer wider than this cannot be meant for a table (a 10^7-wide layer is already 40 MB per
# input column); the whole model's size is checked once the data's width is known.
MAX_LAYER_SIZE = 10_000_000

MISSING_CHOICES = ("error", "drop", "mean")

DATA_HELP = (
    "the data: a built-in dataset (digits, iris, wine, breast_cancer, diabetes), a CSV file "
    "(PATH.csv, header row first), a JSON file (PATH.json: an array of records, or JSON Lines "
    "PATH.jsonl), or a database table: sqlite:///FILE.db?table=T, "
    "postgresql://USER:PASSWORD@HOST:PORT/DB?table=T (or ?query=SELECT...)"
)


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line (argparse prints the usage too)."""

    def error(self, message: str) -> NoReturn:
        """Print `message` on one line and exit with status 2."""
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class HelpFormatter(argparse.HelpFormatter):
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


def _whole(text: str, expected: str) -> int:
    try:
        return int(text)
    except ValueError:  # not a number, or more digits than Python converts
        shown = text if len(text) <= 40 else text[:20] + "..."
        raise argparse.ArgumentTypeError(f"expected {expected}, got {shown!r}") from None


def hidden_sizes(text: str) -> list[int]:
    """`--hidden`: comma-separated positive layer sizes; 'none' (or 0) for a linear model."""
    text = text.strip()
    if text.lower() in ("", "none", "0"):
        return []
    sizes = [_whole(part, "comma-separated layer sizes like 128,64") for part in text.split(",")]
    if any(s <= 0 for s in sizes):
        raise argparse.ArgumentTypeError(f"layer sizes must be positive, got {text!r}")
    too_big = [s for s in sizes if s > MAX_LAYER_SIZE]
    if too_big:
        raise argparse.ArgumentTypeError(
            f"a layer of {too_big[0]:,} units is too large (at most {MAX_LAYER_SIZE:,})"
        )
    return sizes


def positive_int(text: str) -> int:
    """A whole number >= 1."""
    value = _whole(text, "a whole number")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """A whole number >= 0 (`--seed -1` is reported as `argument --seed: must be 0 or more`)."""
    value = _whole(text, "a whole number")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def fraction(text: str) -> float:
    """A number in [0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction like 0.2, got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text!r}")
    return value


def columns(text: str) -> list[str]:
    """Comma-separated column names."""
    names = [c.strip() for c in text.split(",") if c.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected comma-separated column names")
    return names


def add_data_argument(parser: argparse.ArgumentParser) -> None:
    """`--data SOURCE` and `--missing` (every sub-command that reads a table)."""
    parser.add_argument("--data", required=True, metavar="SOURCE", help=DATA_HELP)
    add_missing_argument(parser)


def add_missing_argument(parser: argparse.ArgumentParser) -> None:
    """`--missing error|drop|mean`: what an empty cell (or SQL NULL) in a feature does."""
    parser.add_argument(
        "--missing",
        choices=MISSING_CHOICES,
        default="error",
        help="what a missing feature value does: error (stop and name the cell), drop (leave "
        "out its row), mean (fill in the column's mean)",
    )
