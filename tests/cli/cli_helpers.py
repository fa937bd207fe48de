"""Shared helpers of the `chainrule` command's tests."""

from __future__ import annotations

from pathlib import Path

from chainrule import cli

ROOT = Path(__file__).resolve().parents[2]
FAST = ["--epochs", "40", "--hidden", "32", "--no-progress", "--seed", "0"]
QUICK = ["--epochs", "2", "--hidden", "8", "--no-progress"]


def run(argv, capsys):
    """(exit status, stdout, stderr) of `chainrule ARGV` run in-process."""
    try:
        status = cli.main([str(a) for a in argv])
    except SystemExit as e:  # argparse exits on its own for --help and bad arguments
        status = e.code
    out, err = capsys.readouterr()
    return status, out, err


def leftovers(folder: Path) -> list[str]:
    """Hidden staging / set-aside directories and journals left in `folder`."""
    return sorted(
        p.name
        for p in folder.iterdir()
        if ".partial" in p.name or ".old" in p.name or ".overwrite" in p.name
    )


def one_error_line(status, err, *parts):
    """Assert exit status 2 and one stderr line (no traceback) holding every part."""
    assert status == 2, (status, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for part in parts:
        assert part in lines[0], (part, lines[0])
    return lines[0]
