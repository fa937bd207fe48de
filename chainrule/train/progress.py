"""Per-epoch progress display for ``fit``: a tqdm bar, one line per epoch, or nothing.

By default (``progress=True``) a terminal or a Jupyter notebook gets one bar per epoch that
updates in place (``tqdm.auto``: a widget in a notebook), redrawn at most four times a second
however fast the batches are, then replaced by the epoch's summary line; a file or a pipe (a
log, ``nohup``, CI) gets only the summary lines, one per epoch, without carriage returns or
escape codes.

tqdm is an optional extra (``pip install 'chainrule[train]'``); it is imported only when a
bar is actually drawn.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, TextIO

__all__ = ["EpochProgress", "resolve_mode", "format_logs", "format_duration"]

_MODES = (True, False, None, "bar", "epoch")
# Seconds between two redraws of a bar: at most a few a second, so fast loops stay fast and
# notebooks are not flooded with updates.
MIN_INTERVAL = 0.25


def in_notebook() -> bool:
    """True inside a Jupyter (IPython kernel) session, where stdout is not a terminal."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
        return shell is not None and "IPKernelApp" in shell.config
    except Exception:  # an unusual IPython: treat as a plain console
        return False


def resolve_mode(progress: Any, stream: TextIO | None = None) -> str | None:
    """What to display for ``fit``'s ``progress`` argument.

    ``True`` draws a bar when the output stream is a terminal or a notebook, and prints one
    plain line per epoch otherwise (a file or a pipe: logs stay clean); ``"bar"`` always draws
    a bar; ``"epoch"`` prints one line per epoch; ``False``/``None`` print nothing.

    Args:
        progress: The user's setting.
        stream: The output stream (``sys.stdout`` by default).

    Returns:
        ``"bar"``, ``"epoch"`` or ``None``.
    """
    if not (progress is True or progress is False or progress is None or progress in _MODES[3:]):
        raise ValueError(f"progress must be True, False, 'bar' or 'epoch', got {progress!r}")
    if progress is True:
        stream = sys.stdout if stream is None else stream
        isatty = getattr(stream, "isatty", None)
        try:
            tty = isatty is not None and isatty()
        except ValueError:  # a closed stream
            return None
        return "bar" if tty or in_notebook() else "epoch"
    return progress or None


def _terminal_width(stream: TextIO) -> int | None:
    """The width of the terminal behind ``stream``; ``None`` if it is not a real one."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return None


def _tqdm() -> Any:
    try:
        import tqdm as package  # noqa: F401  (named in the error below if missing)
        from tqdm.auto import tqdm as bar
    except ImportError:
        raise ImportError(
            "progress bars need tqdm, which is part of the 'train' extra: "
            "pip install 'chainrule[train]' (or pass progress=False)"
        ) from None
    return bar


def format_logs(logs: dict[str, Any]) -> str:
    """``loss 0.1234 - accuracy 0.9500 - ...`` for the numbers in ``logs``."""
    parts = []
    for k, v in logs.items():
        if isinstance(v, float):
            parts.append(f"{k} {v:.4g}" if k == "lr" else f"{k} {v:.4f}")
        elif isinstance(v, int) and not isinstance(v, bool):
            parts.append(f"{k} {v}")
    return " - ".join(parts)


def format_duration(seconds: float) -> str:
    """An epoch's duration, readable at every scale: ``18ms``, ``2.4s``, ``3m07s``.

    (A fixed ``{:.1f}s`` showed ``0.0s`` for every epoch of a small table: those take a few
    milliseconds.)

    Args:
        seconds: The duration.

    Returns:
        Milliseconds below one second, seconds with one decimal below a minute, else minutes
        and seconds.
    """
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes}m{rest:02d}s"


class EpochProgress:
    """The display for one epoch.

    Args:
        mode: ``"bar"``, ``"epoch"`` or ``None`` (from :func:`resolve_mode`).
        epoch: The 0-based epoch number.
        epochs: The total number of epochs.
        total: The number of batches, if known.
        stream: Where to write (``sys.stdout`` by default).
    """

    def __init__(
        self,
        mode: str | None,
        epoch: int,
        epochs: int,
        total: int | None,
        stream: TextIO | None = None,
    ) -> None:
        self.mode = mode
        self.stream = sys.stdout if stream is None else stream
        self.label = f"Epoch {epoch + 1}/{epochs}"
        self.start = time.perf_counter()
        self.bar = None
        if mode == "bar":
            # a terminal that reports no width (some containers) would get an empty bar
            narrow = _terminal_width(self.stream) == 0
            self.bar = _tqdm()(
                total=total,
                desc=self.label,
                unit="batch",
                file=self.stream,
                leave=False,  # replaced by the epoch's summary line, which is never truncated
                dynamic_ncols=not narrow,
                ncols=80 if narrow else None,
                nrows=24 if narrow else None,
                mininterval=MIN_INTERVAL,
            )

    def update(self, loss: float) -> None:
        """Advance by one batch, showing the running mean loss.

        Args:
            loss: The mean training loss so far in this epoch.
        """
        if self.bar is not None:
            self.bar.set_postfix_str(f"loss {loss:.4f}", refresh=False)
            self.bar.update(1)

    def close(self, logs: dict[str, Any]) -> None:
        """Finish the epoch: remove the bar and print one line with the epoch's figures.

        Args:
            logs: The epoch's figures (loss, metrics, validation figures, lr); empty when the
                epoch stopped with an exception, and then no line is printed.
        """
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif self.mode != "epoch":
            return
        figures = format_logs(logs)
        if not figures:  # the epoch did not finish (an exception): nothing to summarise
            return
        duration = format_duration(time.perf_counter() - self.start)
        print(f"{self.label} - {figures} - {duration}", file=self.stream, flush=True)
