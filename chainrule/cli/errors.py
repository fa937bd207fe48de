"""How the `chainrule` command reports a user's mistake: one line on stderr, exit status 2."""

from __future__ import annotations

__all__ = ["CommandError", "EXIT_BAD_INPUT", "one_line"]

EXIT_BAD_INPUT = 2


class CommandError(Exception):
    """A problem with the user's arguments or data: reported as one line, exit status 2."""


def one_line(error: BaseException) -> str:
    """An exception's message on one line (its type name when the message is empty).

    Args:
        error: the exception.

    Returns:
        The message with every run of whitespace (newlines included) made one space.
    """
    return " ".join(str(error).split()) or type(error).__name__
