"""Ending a job of several processes together: no rank waits forever for one that ended.

MPI gives no help when one process of a job ends while others wait for it in a collective:
they wait forever (and ``mpiexec`` with them). :func:`chainrule.distributed.init` therefore
calls :func:`install` when its group has more than one process, after which every way a rank
can end ends the whole job:

* an exception that reaches the top: the ``sys.excepthook`` that ``init`` installs prints it
  and calls ``MPI_Abort``;
* ``SIGTERM``: prints ``rank R of N received SIGTERM`` and calls ``MPI_Abort`` (SIGINT raises
  ``KeyboardInterrupt``, an exception like any other);
* ``sys.exit(n)`` with ``n`` not zero, called after ``init``: the rank waits up to a second
  for every rank to end too (ranks that all fail alike, e.g. on the same bad option, end
  normally with their status), else prints ``rank R of N exited with status n`` and aborts
  the job with status ``n``;
* any other end: the script returns, ``sys.exit(0)``, or a status Python does not tell
  (``sys.exit(main())`` looks ``sys.exit`` up before ``main`` calls ``init``; ``raise
  SystemExit(n)``). The rank waits at an exit barrier on a communicator of its own; when
  every rank gets there the job ends normally. A rank still waiting there after 0.2 s tells
  the others that it has ended. A rank that waits, or comes to wait, for it in a chainrule
  collective or ``send``/``recv`` (``all_sum``, ``broadcast``, ``barrier``, ``fit``'s gradient
  averaging, ...) aborts the job at once, naming the rank that ended; ranks busy elsewhere
  (rank 0 writing files) go on and join the barrier later. If not every rank has come after
  ``CHAINRULE_MPI_EXIT_TIMEOUT`` seconds (default 30; ``inf`` waits for ever), the rank that
  ended aborts the job: the others may be waiting for it in MPI calls of their own.

Ranks learn of the others' ends through a thread that tests a pending receive every 0.1 s
(``mpi4py`` asks MPI for full thread support by default; without it, each chainrule
collective tests it as it starts).
"""

from __future__ import annotations

import atexit
import functools
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any, NoReturn

import numpy as np

from .group import Group, _abort_world

__all__ = ["TIMEOUT_VARIABLE", "DEFAULT_TIMEOUT", "exit_timeout", "install", "waiting"]

TIMEOUT_VARIABLE = "CHAINRULE_MPI_EXIT_TIMEOUT"
DEFAULT_TIMEOUT = 30.0
_FAILED_GRACE = 1.0  # a rank exiting with a non-zero status waits this long for the others
_QUIET_GRACE = 0.2  # a rank that ends otherwise tells the others after this long
_WATCH_PERIOD = 0.1
_EXIT_POLL = 0.005
_TAG = 77


def exit_timeout() -> float:
    """How long a rank that has ended waits for the others: ``CHAINRULE_MPI_EXIT_TIMEOUT``.

    Returns:
        Seconds (``math.inf`` for ``inf``); :data:`DEFAULT_TIMEOUT` when the variable is unset
        or empty.

    Raises:
        ValueError: If the variable is not a number of seconds >= 0 or ``inf``.
    """
    text = os.environ.get(TIMEOUT_VARIABLE, "").strip()
    if not text:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value >= 0:  # also refuses NaN
        raise ValueError(
            f"{TIMEOUT_VARIABLE} must be a number of seconds >= 0 or 'inf', got {text!r}"
        )
    return value


def _status_of(code: Any) -> int:
    """The process exit status Python gives ``SystemExit(code)``."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    return 1  # a message: Python prints it and exits with 1


def _say(text: str) -> None:
    try:
        sys.stderr.write(f"chainrule.distributed: {text}\n")
        sys.stderr.flush()
    except Exception:  # a closed stderr must not stop the abort
        pass


def _world_ranks(group: Group, ranks: Sequence[int]) -> list[int] | None:
    """The world ranks of ``group``'s ``ranks`` (``None`` if MPI cannot say)."""
    try:
        from mpi4py import MPI

        mine, world = group.comm.Get_group(), MPI.COMM_WORLD.Get_group()
        return list(MPI.Group.Translate_ranks(mine, list(ranks), world))
    except Exception:
        return None


class _Watch:
    """This process's view of the ends of the job's processes (made by :func:`install`)."""

    def __init__(self, world: Group, timeout: float) -> None:
        from mpi4py import MPI

        self.mpi = MPI
        self.rank, self.size = world.rank(), world.size()
        self.timeout = timeout
        self.comm = world.comm.Dup()  # exit messages never meet the program's
        self.status: int | None = None  # given to sys.exit after init, if it was called
        self.departed: dict[int, int] = {}  # world rank -> its exit status (-1: unknown)
        self.waiting: tuple[str, Group, int | None] | None = None
        self.finished = False
        self._buf = np.zeros(2, dtype=np.int64)
        self._request = self.comm.Irecv(self._buf, source=MPI.ANY_SOURCE, tag=_TAG)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if MPI.Query_thread() == MPI.THREAD_MULTIPLE:
            self._thread = threading.Thread(
                target=self._watch, name="chainrule.distributed exit watch", daemon=True
            )
            self._thread.start()
        # MPI_Finalize deletes COMM_SELF's attributes first: stop before MPI does, should the
        # program finalize MPI itself.
        keyval = MPI.Comm.Create_keyval(delete_fn=lambda *_: self._shut())
        MPI.COMM_SELF.Set_attr(keyval, None)

    # -- the others' ends ----------------------------------------------------------------------
    def _poll(self) -> None:
        """Record the ends that other ranks have announced."""
        while self._request and self._request.Test():
            rank, status = (int(v) for v in self._buf)
            self.departed[rank] = status
            self._request = self.comm.Irecv(self._buf, source=self.mpi.ANY_SOURCE, tag=_TAG)

    def _watch(self) -> None:
        while not self._stop.wait(_WATCH_PERIOD):
            self._poll()
            current = self.waiting
            if current is not None and self.departed:
                self.check(*current)

    def check(self, what: str, group: Group, peer: int | None = None) -> None:
        """Abort the job if a rank that this one waits for has ended.

        Args:
            what: The operation this process waits in, for the message.
            group: Its group.
            peer: The rank of ``group`` waited for (``send``, ``recv``); ``None``: all.
        """
        if self._thread is None:
            self._poll()
        departed = dict(self.departed)
        if not departed:
            return
        if peer is None and group.size() == self.size:
            awaited: list[int] | None = None  # the world: everyone
        else:
            awaited = _world_ranks(group, range(group.size()) if peer is None else [peer])
        for rank in sorted(departed):
            if awaited is None or rank in awaited:
                status = departed[rank]
                how = f" (exit status {status})" if status >= 0 else ""
                _say(
                    f"rank {rank} of {self.size} ended{how} while rank {self.rank} waits for "
                    f"it in {what}; stopping all ranks"
                )
                self.finished = True
                _abort_world(status if status > 0 else 1)

    # -- this rank's end -----------------------------------------------------------------------
    def _shut(self) -> None:
        """Stop the watching thread and the pending receive (idempotent)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        request, self._request = self._request, self.mpi.REQUEST_NULL
        if request and not self.mpi.Is_finalized():
            request.Cancel()
            request.Wait()

    def _all_end(self, limit: float, tell: bool) -> bool:
        """Wait at most ``limit`` seconds at the exit barrier; True if every rank came.

        With ``tell``, the others are told of this rank's end once it has waited a moment.
        """
        barrier = self.comm.Ibarrier()
        start = time.monotonic()
        told: list[Any] = []
        while not barrier.Test():
            waited = time.monotonic() - start
            if tell and not told and waited >= min(_QUIET_GRACE, limit):
                status = -1 if self.status is None else self.status
                note = np.array([self.rank, status], dtype=np.int64)
                told = [
                    self.comm.Isend(note, r, tag=_TAG) for r in range(self.size) if r != self.rank
                ]
            if waited >= limit:
                return False
            time.sleep(_EXIT_POLL)
        self.mpi.Request.Waitall(told)
        return True

    def at_exit(self) -> None:
        """Python is ending this rank: end the job with the others, or abort it."""
        if self.finished:
            return
        self.finished = True
        self._shut()
        if self.mpi.Is_finalized():
            return
        who = f"rank {self.rank} of {self.size}"
        try:
            if self.status:
                if self._all_end(min(_FAILED_GRACE, self.timeout), tell=False):
                    return
                _say(f"{who} exited with status {self.status}; stopping all ranks")
                _abort_world(self.status)
            if self._all_end(self.timeout, tell=True):
                return
        except Exception as e:  # an MPI error while waiting
            _say(f"{who} could not wait for the other ranks at its end ({e}); stopping all ranks")
            _abort_world(self.status or 1)
        except KeyboardInterrupt:
            _say(f"{who} was interrupted while waiting for the other ranks; stopping all ranks")
            _abort_world(130)
        how = "" if self.status is None else f" (exit status {self.status})"
        _say(
            f"{who} ended{how}, but not every rank ended within {self.timeout:g} s (they may "
            f"be waiting for it); stopping all ranks. {TIMEOUT_VARIABLE} sets this time"
        )
        _abort_world(1)

    def on_signal(self, signum: int, frame: Any) -> None:
        """SIGTERM: say so and abort the job; once this rank is ending, just die of it."""
        if self.finished:  # the launcher is stopping the job that this rank is ending
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.finished = True
        _say(
            f"rank {self.rank} of {self.size} received {signal.Signals(signum).name}; "
            "stopping all ranks"
        )
        _abort_world(128 + signum)


_WATCH: _Watch | None = None


def install(world: Group) -> None:
    """Make any end of one of ``world``'s processes end the whole job (see the module).

    Installs an ``atexit`` hook, a ``sys.exit`` that records the status it is given, a
    SIGTERM handler (when SIGTERM has its default action and this is the main thread) and
    the thread that watches for the other ranks' ends. Called once by
    :func:`chainrule.distributed.init` for a group of more than one process.

    Args:
        world: The group of all the job's processes.

    Raises:
        ValueError: If ``CHAINRULE_MPI_EXIT_TIMEOUT`` is not a number of seconds.
    """
    global _WATCH
    if _WATCH is not None:
        return
    watch = _WATCH = _Watch(world, exit_timeout())
    atexit.register(watch.at_exit)

    previous_exit = sys.exit

    @functools.wraps(previous_exit)
    def recording_exit(status: Any = None) -> NoReturn:
        if threading.current_thread() is threading.main_thread():
            watch.status = _status_of(status)
        previous_exit(status)

    sys.exit = recording_exit
    if (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    ):
        signal.signal(signal.SIGTERM, watch.on_signal)


class waiting:
    """``with waiting("all_sum", group):`` around a blocking MPI call of chainrule.

    Marks this process as waiting for ``group`` (or for its rank ``peer`` alone), so that it
    aborts the job, instead of waiting forever, when a rank it waits for has ended or ends
    meanwhile. Does nothing before :func:`install`.

    Args:
        what: The operation, for the message.
        group: The group it waits for.
        peer: The one rank of ``group`` it waits for (``send``, ``recv``).
    """

    __slots__ = ("what", "group", "peer", "previous")

    def __init__(self, what: str, group: Group, peer: int | None = None) -> None:
        self.what, self.group, self.peer = what, group, peer
        self.previous: tuple[str, Group, int | None] | None = None

    def __enter__(self) -> None:
        watch = _WATCH
        if watch is not None:
            self.previous = watch.waiting
            watch.waiting = (self.what, self.group, self.peer)
            watch.check(self.what, self.group, self.peer)

    def __exit__(self, *exc: Any) -> None:
        watch = _WATCH
        if watch is not None:
            watch.waiting = self.previous
