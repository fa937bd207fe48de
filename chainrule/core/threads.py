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
* a ``DataLoader`` process worker (``worker_type="process"``) uses 1, as PyTorch's do;
* independent chainrule processes training at once on one machine (``fit``, the ``chainrule``
  command) share its cores: each registers in a per-user folder of the temporary directory
  while it trains (:class:`CoreShare`) and uses ``max(1, cores // processes training)``,
  rebalancing at most once a second as others start and end.

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
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = [
    "ENV_VARS",
    "get_num_threads",
    "set_num_threads",
    "user_thread_vars",
    "available_cores",
    "threads_per_rank",
    "limit_for_ranks",
    "CoreShare",
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
    """Use ``n`` threads in the BLAS library's matrix products (every BLAS library loaded)
    and in oneDNN's kernels where they are in use.

    Args:
        n: A positive integer.

    Raises:
        ValueError: If ``n`` is not a positive integer.
    """
    n = _check(n, "set_num_threads")
    _blas().limit(limits=n)
    from . import onednn  # its kernels' OpenMP threads follow (when loaded)

    onednn.set_num_threads(n)


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


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists (on Windows, where ``os.kill(pid, 0)`` would end it, the
    registry's heartbeat decides instead)."""
    if os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: it exists
        return True
    return True


class CoreShare:
    """This process's place among the chainrule processes training on this machine.

    While it is entered, the process has a file named by its pid in ``directory`` (by default
    ``<tempdir>/chainrule-cores-<user>``), and :meth:`rebalance` sets its BLAS threads to
    ``max(1, cores // processes registered)``, never above the count it had on entering. An
    entry whose process has ended (or, on Windows, that no process touched for
    ``stale_after`` seconds) is removed by whoever sees it. Nothing is changed when the user
    set a variable of :data:`ENV_VARS`; leaving restores the count found on entering.

    Args:
        directory: The registry folder (default: per user, in the temporary directory).
        cores: The cores to share (default: :func:`available_cores`).
        interval: The fewest seconds between two rebalances by :meth:`poll`.
        stale_after: Seconds after which an entry nobody touched is ignored.

    Examples:
        >>> import tempfile
        >>> with CoreShare(directory=tempfile.mkdtemp(), cores=4) as share:
        ...     share.processes()
        1
    """

    def __init__(
        self,
        directory: str | os.PathLike | None = None,
        cores: int | None = None,
        interval: float = 1.0,
        stale_after: float = 600.0,
    ) -> None:
        if directory is None:
            user = getattr(os, "getuid", lambda: os.environ.get("USERNAME", "user"))()
            directory = Path(tempfile.gettempdir()) / f"chainrule-cores-{user}"
        self.directory = Path(directory)
        self.cores = available_cores() if cores is None else max(1, int(cores))
        self.interval = float(interval)
        self.stale_after = float(stale_after)
        self.threads: int | None = None
        self._entry = self.directory / str(os.getpid())
        self._start: int | None = None
        self._next = 0.0
        self._active = False

    def __enter__(self) -> CoreShare:
        if user_thread_vars():
            return self
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._entry.touch()
        except OSError:  # a read-only or missing temporary directory: train alone
            return self
        self._active = True
        self.rebalance()
        return self

    def __exit__(self, *exc: Any) -> None:
        if not self._active:
            return
        self._active = False
        try:
            self._entry.unlink()
        except OSError:
            pass
        if self._start is not None and self.threads != self._start:
            set_num_threads(self._start)
        self.threads = None

    def processes(self) -> int:
        """How many registered processes are training now (this one included)."""
        count = 0
        now = time.time()
        try:
            entries = list(self.directory.iterdir())
        except OSError:
            return 1
        for entry in entries:
            try:
                pid = int(entry.name)
                fresh = now - entry.stat().st_mtime < self.stale_after
            except (ValueError, OSError):
                continue
            if pid == os.getpid() or (_alive(pid) and (os.name != "nt" or fresh)):
                count += 1
            elif not _alive(pid) or not fresh:
                try:
                    entry.unlink()
                except OSError:
                    pass
        return max(1, count)

    def rebalance(self) -> int | None:
        """Set this process's share of the cores now.

        Returns:
            The thread count in use, or ``None`` when this process is not registered.
        """
        if not self._active:
            return None
        if os.name == "nt":
            try:
                self._entry.touch()
            except OSError:
                pass
        if self._start is None:
            self._start = get_num_threads()
        share = max(1, self.cores // self.processes())
        n = min(self._start, share)
        if n != self.threads:
            if n != get_num_threads():
                set_num_threads(n)
            self.threads = n
        self._next = time.monotonic() + self.interval
        return n

    def poll(self) -> None:
        """:meth:`rebalance` when ``interval`` seconds have passed since the last one."""
        if self._active and time.monotonic() >= self._next:
            self.rebalance()
