"""BLAS threads: how many threads NumPy's matrix products use (``mx.set_num_threads``).

chainrule's own names (MLX has no such API; PyTorch's ``torch.set_num_threads`` calls these).
The BLAS library that NumPy loaded (OpenBLAS, MKL, ...) is reached through ``threadpoolctl``,
imported on first use so that ``import chainrule.core`` stays cheap.

The policy (``docs/performance.md``, "BLAS threads"): a process keeps the BLAS library's own
default unless something below applies, and a thread count that the user set in the
environment (``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS``) is never
overridden by chainrule itself:

* each rank of a job of several MPI processes (``chainrule.distributed.init``) uses
  ``max(1, cores // ranks on this machine)`` threads (:func:`limit_for_ranks`);
* a ``DataLoader`` process worker (``worker_type="process"``) uses 1, as PyTorch's do.

Examples:
    >>> import chainrule.core as mx
    >>> before = mx.get_num_threads()
    >>> mx.set_num_threads(1)
    >>> mx.get_num_threads()
    1
    >>> mx.set_num_threads(before)
"""

from __future__ import annotations

import os
from typing import Any

__all__ = [
    "ENV_VARS",
    "get_num_threads",
    "set_num_threads",
    "user_thread_vars",
    "available_cores",
    "threads_per_rank",
    "limit_for_ranks",
]

ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
"""The variables through which a user sets the BLAS thread count; chainrule never overrides them."""


def _blas() -> Any:
    """threadpoolctl's controller, narrowed to the BLAS libraries loaded now."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController().select(user_api="blas")


def _check(n: Any, who: str) -> int:
    if isinstance(n, bool) or not hasattr(n, "__index__") or int(n) <= 0:
        raise ValueError(f"{who}: the number of threads must be a positive integer, got {n!r}")
    return int(n)


def set_num_threads(n: int) -> None:
    """Use ``n`` threads in the BLAS library's matrix products (every BLAS library loaded).

    Args:
        n: A positive integer.

    Raises:
        ValueError: If ``n`` is not a positive integer.
    """
    n = _check(n, "set_num_threads")
    _blas().limit(limits=n)


def get_num_threads() -> int:
    """The number of threads the BLAS library's matrix products use.

    Returns:
        The largest count among the BLAS libraries loaded (1 when threadpoolctl finds none).
    """
    counts = [int(lib.num_threads) for lib in _blas().lib_controllers]
    return max(counts, default=1)


def user_thread_vars(environ: Any = None) -> dict[str, str]:
    """The thread-count variables of :data:`ENV_VARS` that are set (and not empty).

    Args:
        environ: The environment to read (default: ``os.environ``).

    Returns:
        ``{name: value}`` for each one set.
    """
    env = os.environ if environ is None else environ
    return {name: env[name] for name in ENV_VARS if env.get(name, "").strip()}


def available_cores() -> int:
    """The cores this machine offers this process (its CPU affinity where the OS has one)."""
    machine = os.cpu_count() or 1
    affinity = getattr(os, "sched_getaffinity", None)
    if affinity is None:
        return machine
    try:
        return max(1, min(machine, len(affinity(0))))
    except OSError:
        return machine


def threads_per_rank(local_ranks: int, cores: int | None = None) -> int:
    """``max(1, cores // local_ranks)``: each rank's share of the machine's cores.

    Args:
        local_ranks: How many processes of the job run on this machine.
        cores: The machine's cores (default: ``os.cpu_count()``).

    Returns:
        The number of BLAS threads for one rank.
    """
    total = (os.cpu_count() or 1) if cores is None else int(cores)
    return max(1, total // max(1, int(local_ranks)))


def limit_for_ranks(local_ranks: int, environ: Any = None) -> int | None:
    """Limit the BLAS threads for one of ``local_ranks`` processes sharing this machine.

    Nothing is changed when the user set a variable of :data:`ENV_VARS` or when the process
    is alone on the machine. The count is also capped by this process's CPU affinity (an MPI
    launcher that binds each rank to a core leaves one thread per rank).

    Args:
        local_ranks: How many processes of the job run on this machine.
        environ: The environment to read (default: ``os.environ``).

    Returns:
        The thread count set, or ``None`` if it was left alone.
    """
    if local_ranks <= 1 or user_thread_vars(environ):
        return None
    n = min(threads_per_rank(local_ranks), available_cores())
    set_num_threads(n)
    return n
