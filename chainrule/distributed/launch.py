"""Build ``mpiexec`` command lines with the flags this machine needs.

``python -m chainrule.distributed -n 2 train.py --epochs 5`` runs ``train.py`` in two
processes: it finds ``mpiexec`` (next to the running Python first, where the ``openmpi``
package of the ``distributed`` extra puts it, then on ``PATH``) and adds, for Open MPI,
``--allow-run-as-root`` when running as root and ``--oversubscribe`` when there are more
processes than cores. ``--dry-run`` prints the command instead of running it.
"""

from __future__ import annotations

import argparse
import functools
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence

__all__ = ["find_mpiexec", "mpiexec_command", "main"]


def find_mpiexec() -> str | None:
    """The ``mpiexec`` to use: the one installed with this Python, else the first on PATH.

    Returns:
        Its path, or ``None`` if there is none.
    """
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if os.path.isfile(here) and os.access(here, os.X_OK):
        return here
    return shutil.which("mpiexec")


@functools.cache
def _is_open_mpi(mpiexec: str) -> bool:
    try:
        out = subprocess.run(
            [mpiexec, "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    text = (out.stdout + out.stderr).lower()
    return "open mpi" in text or "open-mpi" in text or "openrte" in text or "prte" in text


def mpiexec_command(
    n: int,
    program: Sequence[str],
    hostfile: str | None = None,
    mpiexec: str | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """The command that runs ``program`` in ``n`` processes.

    Args:
        n: The number of processes.
        program: The program and its arguments; a first word ending in ``.py`` is run with
            this Python, and a command installed next to this Python (``chainrule``) is
            named by its full path.
        hostfile: A file naming the machines (Open MPI: ``host slots=N`` lines; MPICH:
            ``host:N``); ``None`` runs every process on this machine.
        mpiexec: The launcher (default: :func:`find_mpiexec`).
        extra: More launcher options, placed before the program.

    Returns:
        The command as a list of words.

    Raises:
        FileNotFoundError: If no ``mpiexec`` is found.
        ValueError: For ``n < 1`` or an empty program.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"mpiexec_command: n must be an integer >= 1, got {n!r}")
    if not program:
        raise ValueError("mpiexec_command: give a program to run")
    launcher = mpiexec or find_mpiexec()
    if launcher is None:
        raise FileNotFoundError(
            "mpiexec not found: install an MPI runtime, e.g. pip install 'chainrule[distributed]'"
        )
    cmd = [launcher, "-n", str(n)]
    if _is_open_mpi(launcher):
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-run-as-root")
        if hostfile is None and n > (os.cpu_count() or 1):
            cmd.append("--oversubscribe")
        if hostfile is not None:
            cmd += ["--hostfile", hostfile]
    elif hostfile is not None:
        cmd += ["-f", hostfile]
    cmd += list(extra)
    program = list(program)
    if program[0].endswith(".py"):
        program.insert(0, sys.executable)
    elif os.sep not in program[0]:
        # A command installed with this Python (``chainrule``) need not be on PATH.
        here = os.path.join(os.path.dirname(sys.executable), program[0])
        if os.path.isfile(here) and os.access(here, os.X_OK):
            program[0] = here
    return cmd + program


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m chainrule.distributed -n N [--hostfile F] program args...``.

    Args:
        argv: The arguments (default: ``sys.argv[1:]``).

    Returns:
        The launcher's exit status.
    """
    parser = argparse.ArgumentParser(
        prog="python -m chainrule.distributed",
        description="Run a program in N processes with mpiexec (data-parallel training).",
    )
    parser.add_argument("-n", "--np", type=int, default=2, help="number of processes")
    parser.add_argument("--hostfile", help="machines to run on (default: this one)")
    parser.add_argument("--dry-run", action="store_true", help="print the command only")
    parser.add_argument("program", nargs=argparse.REMAINDER, help="program and its arguments")
    args = parser.parse_args(argv)
    program = args.program[1:] if args.program[:1] == ["--"] else args.program
    try:
        cmd = mpiexec_command(args.np, program, hostfile=args.hostfile)
    except (FileNotFoundError, ValueError) as e:
        parser.error(str(e))
    if args.dry_run:
        print(shlex.join(cmd))
        return 0
    return subprocess.call(cmd)
