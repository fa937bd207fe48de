"""Launching the scripts of ``scripts/`` under ``mpiexec`` for the multi-process tests."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chainrule.distributed.launch import find_mpiexec, mpiexec_command

SCRIPTS = Path(__file__).resolve().parent / "scripts"
TIME_LIMIT = 120  # seconds for one mpiexec run (a hung job is killed and the test fails)


def _skip_reason() -> str | None:
    if importlib.util.find_spec("mpi4py") is None:
        return "mpi4py is not installed (pip install 'chainrule[distributed]')"
    if find_mpiexec() is None:
        return "no mpiexec found next to Python or on PATH (pip install 'chainrule[distributed]')"
    return None


SKIP_REASON = _skip_reason()
# In CI the MPI tests must run: fail instead of skipping when MPI is missing.
if SKIP_REASON and os.environ.get("CHAINRULE_REQUIRE_MPI"):
    raise RuntimeError(f"CHAINRULE_REQUIRE_MPI is set but {SKIP_REASON}")
requires_mpi = pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")


class Run:
    """The outcome of one mpiexec run."""

    def __init__(self, returncode: int, stdout: str, stderr: str, seconds: float) -> None:
        self.returncode, self.stdout, self.stderr, self.seconds = (
            returncode,
            stdout,
            stderr,
            seconds,
        )

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_mpi(script: str, *args: str, n: int = 2, timeout: float = TIME_LIMIT, env=None) -> Run:
    """Run ``scripts/<script>`` in ``n`` processes on this machine and wait (at most
    ``timeout`` seconds, after which the whole job is killed and the test fails). ``env``:
    more environment variables."""
    program = [str(SCRIPTS / script), *map(str, args)]
    return run_mpi_program(program, n=n, timeout=timeout, env=env)


def run_mpi_program(
    program: list[str], n: int = 2, timeout: float = TIME_LIMIT, cwd=None, env=None
) -> Run:
    """Run ``program`` (a ``.py`` file, or a command installed with this Python) in ``n``
    processes, as :func:`run_mpi` does, in the folder ``cwd``."""
    return _run(mpiexec_command(n, program), timeout, cwd, env)


def run_mpi_programs(programs: list[list[str]], timeout: float = TIME_LIMIT, cwd=None) -> Run:
    """Run one process of each program (rank ``i`` runs ``programs[i]``: Open MPI's
    ``mpiexec -n 1 A : -n 1 B``), as :func:`run_mpi` does."""
    # The launcher and its flags for all the processes, then a "-n 1 program" per rank, each
    # program as mpiexec_command writes it (a path is left as it is: "/" stands for none).
    head = mpiexec_command(len(programs), ["/"])[:-1]
    assert head[1:3] == ["-n", str(len(programs))], head
    cmd = [head[0], *head[3:]]
    skip = len(mpiexec_command(1, ["/"])) - 1
    for i, program in enumerate(programs):
        cmd += ([":"] if i else []) + ["-n", "1", *mpiexec_command(1, program)[skip:]]
    return _run(cmd, timeout, cwd, None)


def _run(cmd: list[str], timeout: float, cwd, extra_env) -> Run:
    env = dict(os.environ)
    # One BLAS thread per process (2 cores here), and MPI's TCP transport (if used at all on
    # one machine) kept on the loopback interface.
    env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", OMPI_MCA_btl_tcp_if_include="lo")
    env.update(extra_env or {})
    env.pop("PYTEST_CURRENT_TEST", None)
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(
            f"{' '.join(cmd)} did not finish within {timeout} s\nstdout:\n{out}\nstderr:\n{err}"
        )
    return Run(proc.returncode, out, err, time.perf_counter() - start)


def load_script(name: str):
    """Import ``scripts/<name>.py`` as a module (to reuse its problem in this process)."""
    spec = importlib.util.spec_from_file_location(f"_mpi_script_{name}", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
