"""Process groups over MPI: ``init``, ``Group``, ``is_available`` and failing fast.

MPI is reached through ``mpi4py`` (``pip install 'chainrule[distributed]'``). It is started
only when the process was launched by an MPI launcher (``mpiexec``, ``srun``), or when
``init(strict=True)`` asks for it: a plain ``python script.py`` never pays MPI's start-up
time and gets a group of one process, on which every collective is a no-op.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
import traceback
import warnings
from typing import Any, NoReturn

__all__ = ["Group", "init", "is_available", "abort", "comm_stats", "reset_comm_stats"]

# Variables that MPI launchers set in every process they start (Open MPI, PMIx launchers
# such as srun --mpi=pmix, MPICH/Intel MPI's Hydra, MVAPICH).
_LAUNCH_VARS = (
    "OMPI_COMM_WORLD_SIZE",
    "PMIX_RANK",
    "PMI_RANK",
    "PMI_SIZE",
    "MPI_LOCALNRANKS",
    "MV2_COMM_WORLD_SIZE",
)
_BACKENDS = ("any", "mpi", "ring", "nccl", "jaccl")
_INSTALL = "pip install 'chainrule[distributed]'"


class Group:
    """A group of processes that communicate (MLX's ``mx.distributed.Group``).

    Obtained from :func:`init`; ``Group()`` is the group of this process alone.

    Args:
        comm: An ``mpi4py`` communicator, or ``None`` for a group of one process.
    """

    __slots__ = ("_comm", "_rank", "_size")

    def __init__(self, comm: Any = None) -> None:
        self._comm = comm
        self._rank = 0 if comm is None else int(comm.Get_rank())
        self._size = 1 if comm is None else int(comm.Get_size())

    def rank(self) -> int:
        """This process's rank in the group (0 to ``size() - 1``)."""
        return self._rank

    def size(self) -> int:
        """The number of processes in the group."""
        return self._size

    @property
    def comm(self) -> Any:
        """The underlying ``mpi4py`` communicator (``None`` for a group of one process)."""
        return self._comm

    def split(self, color: int, key: int = -1) -> Group:
        """Split the group into subgroups (MLX's ``Group.split``; collective on this group).

        Args:
            color: Processes that pass the same color end up in the same subgroup.
            key: Orders the ranks in the subgroup (default: the rank in this group).

        Returns:
            The subgroup this process belongs to.
        """
        if self._comm is None:
            return Group()
        from .exits import waiting

        with waiting("Group.split", self):
            return Group(self._comm.Split(int(color), self._rank if key < 0 else int(key)))

    def __repr__(self) -> str:
        return f"Group(rank={self._rank}, size={self._size})"


_WORLD: Group | None = None


def _launched() -> bool:
    """True when an MPI launcher started this process."""
    env = os.environ
    return any(v in env for v in _LAUNCH_VARS)


def is_available(backend: str = "any") -> bool:
    """Whether a communication backend can be used (MLX's ``mx.distributed.is_available``).

    Only MPI (through ``mpi4py``) exists here; the check does not start MPI.

    Args:
        backend: ``"any"`` or ``"mpi"`` (MLX's ``"ring"``, ``"nccl"`` and ``"jaccl"`` are
            never available).

    Returns:
        True if ``mpi4py`` is installed and ``backend`` is ``"any"`` or ``"mpi"``.
    """
    _check_backend(backend)
    if backend not in ("any", "mpi"):
        return False
    return importlib.util.find_spec("mpi4py") is not None


def _check_backend(backend: str) -> None:
    if backend not in _BACKENDS:
        raise ValueError(
            f"init: backend must be one of {', '.join(map(repr, _BACKENDS))}, got {backend!r}"
        )


def init(strict: bool = False, backend: str = "any", *, all_gather_factory: Any = None) -> Group:
    """Start communication and return the group of all launched processes (MLX's
    ``mx.distributed.init``).

    Under ``mpiexec -n N`` (or another MPI launcher) this starts MPI through ``mpi4py`` and
    returns the group of the N processes; otherwise it returns a group of one process, so
    the same script runs anywhere. The first MPI group is kept and returned by later calls.
    When it has more than one process, any end of one process ends the whole job, so no rank
    waits forever for one that has ended: an exception that reaches the top prints its
    traceback and aborts every process (``MPI_Abort``), as do ``sys.exit(n)`` with ``n`` not
    zero and SIGTERM; a rank that ends normally waits for the others to end, and aborts the
    job if they wait for it instead (see :mod:`chainrule.distributed.exits`).

    Args:
        strict: Raise instead of returning a group of one process when MPI cannot be
            started (``mpi4py`` missing or broken); also starts MPI without a launcher.
        backend: ``"any"`` or ``"mpi"`` (the same here: MPI is the only backend). MLX's
            ``"ring"``, ``"nccl"`` and ``"jaccl"`` are not implemented.
        all_gather_factory: MLX's side channel for the ``"jaccl"`` backend: checked as MLX
            checks it (a callable, and only with ``backend="jaccl"``), otherwise unused.

    Returns:
        The :class:`Group`.

    Raises:
        ValueError: For an unknown backend name, an ``all_gather_factory`` without
            ``backend="jaccl"``, or, with several processes, a ``CHAINRULE_MPI_EXIT_TIMEOUT``
            that is not a number of seconds.
        TypeError: For an ``all_gather_factory`` that is not callable.
        RuntimeError: If ``strict`` and MPI cannot be started.
    """
    global _WORLD
    if all_gather_factory is not None:
        if not callable(all_gather_factory):
            raise TypeError(
                "init: all_gather_factory must be a callable (rank, size) -> "
                f"f(src: bytes, n_bytes: int) -> bytes, got {type(all_gather_factory).__name__}"
            )
        if backend != "jaccl":
            raise ValueError("all_gather_factory is only supported with backend='jaccl'.")
    _check_backend(backend)
    if _WORLD is not None and backend in ("any", "mpi"):
        return _WORLD
    if backend not in ("any", "mpi"):
        if strict:
            raise RuntimeError(
                f"init: the {backend!r} backend is not implemented; chainrule communicates "
                "through MPI (backend='mpi' or 'any')"
            )
        return Group()
    if not (strict or _launched()):
        return Group()
    try:
        from mpi4py import MPI
    except (ImportError, RuntimeError, OSError) as e:
        why = f"mpi4py cannot be imported ({e}); install it with: {_INSTALL}"
        if strict:
            raise RuntimeError(f"init: {why}") from None
        warnings.warn(
            f"chainrule.distributed.init: this process was started by an MPI launcher but {why}."
            " Each process runs alone (a group of size 1).",
            RuntimeWarning,
            stacklevel=2,
        )
        return Group()
    world = Group(MPI.COMM_WORLD)
    if world.size() > 1:
        from .exits import install

        install(world)
        _install_excepthook(world)
        # Ranks sharing a machine share its cores: each takes its share of BLAS threads,
        # unless the user set OMP/OPENBLAS/MKL_NUM_THREADS (docs/performance.md).
        from chainrule.core.threads import limit_for_ranks

        limit_for_ranks(local_ranks(world.size()))
    _WORLD = world
    return _WORLD


# Variables through which launchers tell a process how many ranks share its machine.
_LOCAL_SIZE_VARS = (
    "OMPI_COMM_WORLD_LOCAL_SIZE",
    "MPI_LOCALNRANKS",
    "MV2_COMM_WORLD_LOCAL_SIZE",
    "PMI_LOCAL_SIZE",
    "SLURM_NTASKS_PER_NODE",
)


def local_ranks(world_size: int, environ: Any = None) -> int:
    """How many ranks of the job run on this machine, as the launcher says.

    Args:
        world_size: The job's number of processes, the answer when no launcher variable
            says (as if every rank ran here: the safe side, fewer threads each).
        environ: The environment to read (default: ``os.environ``).

    Returns:
        The number of ranks on this machine (at least 1).
    """
    env = os.environ if environ is None else environ
    for name in _LOCAL_SIZE_VARS:
        value = env.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return max(1, int(world_size))


def _world_or(group: Group | None) -> Group:
    return init() if group is None else group


# ------------------------------------------------------------------------------ failing fast


def _abort_world(code: int, group: Group | None = None) -> NoReturn:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # a closed stream must not stop the abort
            pass
    for g in (group, _WORLD):
        if g is not None and g.size() > 1:
            g.comm.Abort(code)  # Open MPI ends every process of the job, not only g's
    raise SystemExit(code)


def abort(code: int = 1, group: Group | None = None) -> NoReturn:
    """Stop every process of the job now, with exit status ``code`` (``MPI_Abort``).

    Use it where a rank must give up while others may be waiting for it in a collective,
    e.g. after catching an error: exiting normally would leave them waiting. In a group of
    one process it raises ``SystemExit(code)``.

    Args:
        code: The exit status.
        group: The group to abort (default: :func:`init`'s).
    """
    _abort_world(int(code), group)


def report_and_abort(where: str = "", group: Group | None = None) -> NoReturn:
    """Print the exception being handled, naming this rank, then :func:`abort` with status 1.

    Args:
        where: What failed (e.g. ``"fit"``), for the message.
        group: The group to abort (default: :func:`init`'s).
    """
    g = group or _WORLD or Group()
    what = f" in {where}" if where else ""
    sys.stderr.write(
        f"chainrule.distributed: rank {g.rank()} of {g.size()} failed{what}; "
        "stopping all ranks\n" + traceback.format_exc()
    )
    _abort_world(1, group)


def _install_excepthook(world: Group) -> None:
    previous = sys.excepthook

    def excepthook(kind: type, value: BaseException, tb: Any) -> None:
        try:
            sys.stderr.write(
                f"chainrule.distributed: rank {world.rank()} of {world.size()} failed; "
                "stopping all ranks\n"
            )
            previous(kind, value, tb)
        finally:
            _abort_world(1)

    sys.excepthook = excepthook


# ------------------------------------------------------------------------- time in MPI calls


class _Stats:
    __slots__ = ("seconds", "calls", "bytes")

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0
        self.bytes = 0


STATS = _Stats()
_clock = time.perf_counter


def comm_stats() -> dict[str, float]:
    """Time spent in this process's MPI calls since the start (or the last reset).

    Returns:
        ``{"seconds": ..., "calls": ..., "bytes": ...}`` (bytes sent by this process).
    """
    return {"seconds": STATS.seconds, "calls": STATS.calls, "bytes": STATS.bytes}


def reset_comm_stats() -> None:
    """Set the figures of :func:`comm_stats` back to zero."""
    STATS.seconds, STATS.calls, STATS.bytes = 0.0, 0, 0
