"""PyTorch's ``torch.distributed`` process groups and collectives, over chainrule's MPI.

The processes are started by an MPI launcher (``mpiexec -n N python train.py``, or
``python -m chainrule.distributed -n N train.py``). Importing this module gives each process
the variables torchrun sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``)
from the launcher's own, so PyTorch scripts that read them run unchanged;
``init_process_group(backend="gloo" | "mpi", init_method="env://")`` then joins the MPI job
(``chainrule.distributed.init()``) and checks that those variables agree with it.

Collectives work in place on the tensors they are given, as PyTorch's do: ``all_reduce``
replaces the tensor's value (a handle rebound to a new value, counted by PyTorch's version
counter), ``all_gather`` fills the tensors of its list. They are not recorded for
differentiation (PyTorch's ``c10d`` operations are not either). Everything runs synchronously;
``async_op=True`` returns a finished :class:`Work`.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from chainrule.core import backend
from chainrule.core.array import array
from chainrule.core.versions import replaced
from chainrule.distributed import Group
from chainrule.distributed import init as _mpi_init
from chainrule.distributed.exits import waiting
from chainrule.distributed.group import _launched
from chainrule.distributed.ops import _unwire, _wire

__all__ = [
    "Backend",
    "GroupMember",
    "ProcessGroup",
    "ReduceOp",
    "Work",
    "all_gather",
    "all_gather_into_tensor",
    "all_gather_object",
    "all_reduce",
    "barrier",
    "broadcast",
    "broadcast_object_list",
    "destroy_process_group",
    "gather",
    "get_backend",
    "get_global_rank",
    "get_group_rank",
    "get_node_local_rank",
    "get_process_group_ranks",
    "get_rank",
    "get_world_size",
    "group",
    "init_process_group",
    "irecv",
    "is_available",
    "is_gloo_available",
    "is_initialized",
    "is_mpi_available",
    "is_nccl_available",
    "is_torchelastic_launched",
    "isend",
    "monitored_barrier",
    "new_group",
    "recv",
    "reduce",
    "reduce_scatter",
    "reduce_scatter_tensor",
    "scatter",
    "send",
]

_NOT_INITIALIZED = (
    "Default process group has not been initialized, please make sure to call init_process_group."
)


# ------------------------------------------------------------------------ the launcher's ranks


def _launcher_ranks() -> tuple[int, int, int, int] | None:
    """``(rank, world size, local rank, local world size)`` from an MPI launcher's variables
    (Open MPI, MPICH/Intel MPI's Hydra), or ``None`` outside one."""
    env = os.environ
    for rank, size, local, local_size in (
        (
            "OMPI_COMM_WORLD_RANK",
            "OMPI_COMM_WORLD_SIZE",
            "OMPI_COMM_WORLD_LOCAL_RANK",
            "OMPI_COMM_WORLD_LOCAL_SIZE",
        ),
        ("PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS"),
    ):
        if rank in env and size in env:
            r, n = int(env[rank]), int(env[size])
            return r, n, int(env.get(local, r)), int(env.get(local_size, n))
    return None


def export_launcher_ranks() -> None:
    """Set ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and ``LOCAL_WORLD_SIZE`` (torchrun's
    variables) from the MPI launcher's, where they are not set already."""
    found = _launcher_ranks()
    if found is None:
        return
    for name, value in zip(("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"), found):
        os.environ.setdefault(name, str(value))


# ----------------------------------------------------------------------------- names and types


class Backend(str):
    """A backend's name (PyTorch's ``dist.Backend``): ``Backend("GLOO") == "gloo"``.

    ``"gloo"`` and ``"mpi"`` both run on chainrule's MPI transport; ``"nccl"`` and ``"ucc"``
    are named (PyTorch code compares with them) but cannot be started.
    """

    UNDEFINED = "undefined"
    GLOO = "gloo"
    NCCL = "nccl"
    UCC = "ucc"
    MPI = "mpi"
    XCCL = "xccl"

    def __new__(cls, name: str) -> Backend:
        if not isinstance(name, str):
            raise ValueError(f"Backend constructor parameter must be string-ish, got {name!r}")
        return super().__new__(cls, name.lower())


_RUNNABLE = ("gloo", "mpi")
_KNOWN = ("gloo", "mpi", "nccl", "ucc", "xccl")


class _RedOpType(enum.Enum):
    SUM = 0
    AVG = 1
    PRODUCT = 2
    MIN = 3
    MAX = 4
    BAND = 5
    BOR = 6
    BXOR = 7
    PREMUL_SUM = 8
    UNUSED = 9

    def __repr__(self) -> str:
        return f"<RedOpType.{self.name}: {self.value}>"

    def __str__(self) -> str:
        return f"RedOpType.{self.name}"


_RedOpType.__name__ = _RedOpType.__qualname__ = "RedOpType"


class ReduceOp:
    """The reductions of ``all_reduce``, ``reduce`` and ``reduce_scatter`` (PyTorch's
    ``dist.ReduceOp``): ``SUM``, ``AVG``, ``PRODUCT``, ``MIN``, ``MAX``, ``BAND``, ``BOR``,
    ``BXOR``."""

    RedOpType = _RedOpType
    SUM = _RedOpType.SUM
    AVG = _RedOpType.AVG
    PRODUCT = _RedOpType.PRODUCT
    MIN = _RedOpType.MIN
    MAX = _RedOpType.MAX
    BAND = _RedOpType.BAND
    BOR = _RedOpType.BOR
    BXOR = _RedOpType.BXOR
    PREMUL_SUM = _RedOpType.PREMUL_SUM
    UNUSED = _RedOpType.UNUSED


class ProcessGroup:
    """A group of processes (PyTorch's ``ProcessGroup``) over a chainrule MPI group.

    Args:
        group: The chainrule group (its communicator).
        ranks: The members' ranks in the default group, in this group's rank order.
        backend: The backend's name.
    """

    def __init__(self, group: Group, ranks: Sequence[int], backend: str) -> None:
        self._group = group
        self._ranks = list(ranks)
        self._backend = Backend(backend)

    def rank(self) -> int:
        """This process's rank in the group."""
        return self._group.rank()

    def size(self) -> int:
        """The number of processes in the group."""
        return self._group.size()

    def name(self) -> str:
        """The backend's name."""
        return str(self._backend)

    def __repr__(self) -> str:
        return f"ProcessGroup(rank={self.rank()}, size={self.size()}, backend={self._backend})"


class _NonMember:
    def __repr__(self) -> str:
        return "GroupMember.NON_GROUP_MEMBER"


class GroupMember:
    """``GroupMember.WORLD`` (the default group once initialised) and
    ``GroupMember.NON_GROUP_MEMBER`` (what :func:`new_group` gives processes outside it)."""

    WORLD: ProcessGroup | None = None
    NON_GROUP_MEMBER = _NonMember()


class _GroupNamespace:
    """``dist.group.WORLD``: the default group (``None`` before ``init_process_group``)."""

    @property
    def WORLD(self) -> ProcessGroup | None:  # noqa: N802 (PyTorch's name)
        return GroupMember.WORLD


group = _GroupNamespace()


class Work:
    """The handle an ``async_op=True`` call returns (PyTorch's ``Work``); chainrule's
    collectives finish before returning, so it is already complete (point-to-point
    ``isend``/``irecv`` complete on :meth:`wait`)."""

    def __init__(self, request: Any = None, finish: Any = None) -> None:
        self._request, self._finish, self._done = request, finish, request is None

    def wait(self, timeout: Any = None) -> bool:
        """Wait for the operation to complete; returns True."""
        if not self._done:
            self._request.Wait()
            if self._finish is not None:
                self._finish()
            self._done = True
        return True

    def is_completed(self) -> bool:
        """Whether the operation has completed."""
        if not self._done and self._request.Test():
            if self._finish is not None:
                self._finish()
            self._done = True
        return self._done

    def is_success(self) -> bool:
        """Whether the operation completed successfully."""
        return self.is_completed()


class _State:
    backend: str | None = None
    world: ProcessGroup | None = None


_STATE = _State()


# --------------------------------------------------------------------------- setting up


def is_available() -> bool:
    """Whether the distributed package can be used (``mpi4py`` is installed)."""
    import chainrule.distributed as cd

    return cd.is_available()


def is_mpi_available() -> bool:
    """Whether the ``"mpi"`` backend can be used."""
    return is_available()


def is_gloo_available() -> bool:
    """Whether the ``"gloo"`` backend can be used (it runs on MPI here)."""
    return is_available()


def is_nccl_available() -> bool:
    """Always False: chainrule has no NCCL."""
    return False


def is_torchelastic_launched() -> bool:
    """Whether torchrun started this process (``TORCHELASTIC_RUN_ID`` is set)."""
    return os.environ.get("TORCHELASTIC_RUN_ID") is not None


def is_initialized() -> bool:
    """Whether the default process group has been initialised."""
    return _STATE.world is not None


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(
            f"Error initializing torch.distributed using env:// rendezvous: environment "
            f"variable {name} must be an integer, got {value!r}"
        ) from None


def init_process_group(
    backend: str | None = None,
    init_method: str | None = None,
    timeout: Any = None,
    world_size: int = -1,
    rank: int = -1,
    store: Any = None,
    group_name: str = "",
    pg_options: Any = None,
    device_id: Any = None,
) -> None:
    """Join the job's processes into the default group (PyTorch's ``init_process_group``).

    The processes must have been started by an MPI launcher (``mpiexec -n N``, or
    ``python -m chainrule.distributed -n N``); a single process needs none if ``RANK=0`` and
    ``WORLD_SIZE=1`` are set, as PyTorch's ``env://`` asks. ``rank``, ``world_size`` and the
    ``RANK``/``WORLD_SIZE`` variables, when given, must agree with the launcher's.

    Args:
        backend: ``"gloo"``, ``"mpi"`` or ``None`` (both run on MPI). ``"nccl"`` needs GPUs.
        init_method: ``None`` or ``"env://"``.
        timeout: Accepted for PyTorch code; unused.
        world_size: The number of processes (``-1``: from the launcher).
        rank: This process's rank (``-1``: from the launcher).
        store: Not supported (a rendezvous store); must be ``None``.
        group_name: Accepted for PyTorch code; unused.
        pg_options: Accepted for PyTorch code; unused.
        device_id: Accepted for PyTorch code; unused.

    Raises:
        ValueError: If the default group exists already, for an unknown backend or init
            method, or for ranks and sizes that disagree with the launcher's.
        RuntimeError: For the ``"nccl"`` backend, or several processes started without MPI.
    """
    if _STATE.world is not None:
        raise ValueError("trying to initialize the default process group twice!")
    name = Backend(backend) if backend is not None else Backend("gloo")
    if name not in _KNOWN:
        raise ValueError(
            f"init_process_group: unknown backend {backend!r}; use 'gloo' or 'mpi' "
            "(both run on chainrule's MPI transport)"
        )
    if name not in _RUNNABLE:
        raise RuntimeError(
            f"Distributed package doesn't have {name.upper()} built in: chainrule runs on "
            "CPUs over MPI; use backend='gloo' or 'mpi'"
        )
    if store is not None:
        raise ValueError("init_process_group: store= is not supported; use init_method='env://'")
    if init_method not in (None, "env://"):
        raise ValueError(
            f"init_process_group: init_method {init_method!r} is not supported; chainrule "
            "finds the processes through the MPI launcher (init_method='env://' or None)"
        )
    launched = _launched()
    env_rank, env_size = _env_int("RANK"), _env_int("WORLD_SIZE")
    if not launched:
        if env_rank is None and rank < 0:
            raise ValueError(
                "Error initializing torch.distributed using env:// rendezvous: environment "
                "variable RANK expected, but not set"
            )
        if env_size is None and world_size < 0:
            raise ValueError(
                "Error initializing torch.distributed using env:// rendezvous: environment "
                "variable WORLD_SIZE expected, but not set"
            )
        wanted = world_size if world_size >= 0 else env_size
        if wanted != 1:
            raise RuntimeError(
                f"init_process_group: WORLD_SIZE is {wanted} but this process was not started "
                "by an MPI launcher; chainrule communicates over MPI: start the processes with "
                f"`mpiexec -n {wanted} python script.py` or `python -m chainrule.distributed "
                f"-n {wanted} script.py` (not torchrun)"
            )
    world = _mpi_init(strict=launched, backend="mpi")
    r, n = world.rank(), world.size()
    for what, value in (
        ("rank", rank),
        ("RANK", env_rank),
        ("world_size", world_size),
        ("WORLD_SIZE", env_size),
    ):
        expected = r if what.lower() == "rank" else n
        if value is not None and value >= 0 and value != expected:
            raise ValueError(
                f"init_process_group: {what}={value} but the MPI launcher made this process "
                f"rank {r} of {n}; set {what} to match, or leave it to the launcher"
            )
    _STATE.backend = str(name)
    _STATE.world = ProcessGroup(world, range(n), name)
    GroupMember.WORLD = _STATE.world


def destroy_process_group(group: Any = None) -> None:
    """Forget the default group (``group=None``) or another group (PyTorch's
    ``destroy_process_group``). MPI itself stays up: ``init_process_group`` may be called
    again.

    Raises:
        AssertionError: When there is no default group (PyTorch's error).
    """
    if group is None or group is _STATE.world:
        if _STATE.world is None:
            raise AssertionError("Process group cannot be None")
        _STATE.world = None
        _STATE.backend = None
        GroupMember.WORLD = None


def _world() -> ProcessGroup:
    if _STATE.world is None:
        raise ValueError(_NOT_INITIALIZED)
    return _STATE.world


def _resolve(group: Any) -> ProcessGroup | None:
    """The group to use, or ``None`` for a process outside it."""
    if group is None:
        return _world()
    if group is GroupMember.NON_GROUP_MEMBER:
        _world()
        return None
    if not isinstance(group, ProcessGroup):
        raise TypeError(f"expected a ProcessGroup (from new_group), got {type(group).__name__}")
    return group


def get_backend(group: Any = None) -> Backend:
    """The backend's name of ``group`` (default: the default group)."""
    g = _resolve(group)
    if g is None:
        raise ValueError("Invalid process group specified")
    return g._backend


def get_rank(group: Any = None) -> int:
    """This process's rank in ``group`` (default: the default group); -1 outside it."""
    g = _resolve(group)
    return -1 if g is None else g.rank()


def get_world_size(group: Any = None) -> int:
    """The number of processes in ``group`` (default: the default group); -1 outside it."""
    g = _resolve(group)
    return -1 if g is None else g.size()


def get_process_group_ranks(group: Any) -> list[int]:
    """The default group's ranks of ``group``'s members, in ``group``'s order."""
    g = _resolve(group)
    if g is None:
        raise ValueError("Group is not registered, please create group with new_group")
    return list(g._ranks)


def get_global_rank(group: Any, group_rank: int) -> int:
    """The default group's rank of ``group``'s rank ``group_rank``."""
    ranks = get_process_group_ranks(group)
    if not 0 <= group_rank < len(ranks):
        raise ValueError(f"Group rank {group_rank} is not part of group {group}")
    return ranks[group_rank]


def get_group_rank(group: Any, global_rank: int) -> int:
    """``group``'s rank of the default group's rank ``global_rank``."""
    ranks = get_process_group_ranks(group)
    if global_rank not in ranks:
        raise ValueError(f"Global rank {global_rank} is not part of group {group}")
    return ranks.index(global_rank)


def new_group(
    ranks: Sequence[int] | None = None,
    timeout: Any = None,
    backend: str | None = None,
    pg_options: Any = None,
    use_local_synchronization: bool = False,
    group_desc: str | None = None,
    device_id: Any = None,
) -> Any:
    """A group of some of the processes (PyTorch's ``new_group``; every process of the
    default group must call it, with the same ``ranks``).

    Args:
        ranks: The default group's ranks of the members (``None``: all); the members are
            ordered by these ranks, as PyTorch sorts them.
        timeout: Accepted for PyTorch code; unused.
        backend: The new group's backend name (default: the default group's).
        pg_options: Accepted for PyTorch code; unused.
        use_local_synchronization: Accepted for PyTorch code; every process still takes part.
        group_desc: Accepted for PyTorch code; unused.
        device_id: Accepted for PyTorch code; unused.

    Returns:
        A :class:`ProcessGroup` on its members, ``GroupMember.NON_GROUP_MEMBER`` elsewhere.

    Raises:
        ValueError: For ranks outside the default group, or repeated ranks.
    """
    world = _world()
    n = world.size()
    members = list(range(n)) if ranks is None else sorted(int(r) for r in ranks)
    if len(set(members)) != len(members):
        raise ValueError(f"new_group: ranks must not repeat, got {list(ranks or [])}")
    bad = [r for r in members if not 0 <= r < n]
    if bad:
        raise ValueError(
            f"new_group: ranks {bad} are outside the default group of {n} processes "
            f"(ranks 0 to {n - 1})"
        )
    me = world.rank()
    inside = me in members
    name = backend if backend is not None else world._backend
    if n == 1:
        return ProcessGroup(Group(), members, name) if inside else GroupMember.NON_GROUP_MEMBER
    from mpi4py import MPI

    with waiting("new_group", world._group):
        comm = world._group.comm.Split(0 if inside else MPI.UNDEFINED, me)
    if not inside:
        return GroupMember.NON_GROUP_MEMBER
    return ProcessGroup(Group(comm), members, name)


# ------------------------------------------------------------------------------ collectives


def _check_tensor(t: Any, name: str = "tensor") -> array:
    if not isinstance(t, array):
        raise TypeError(
            f"Invalid function argument. Expected parameter `{name}` of type torch.Tensor but "
            f"got {type(t)} instead."
        )
    return t


def _check_list(ts: Any, name: str) -> list[array]:
    if not isinstance(ts, (list, tuple)) or not all(isinstance(t, array) for t in ts):
        raise TypeError(
            f"Invalid function argument. Expected parameter `{name}` of type List[torch.Tensor] "
            "but got something else instead."
        )
    return list(ts)


def _write(t: array, data: Any) -> None:
    """Give ``t`` the value ``data`` in place (PyTorch's in-place collectives)."""
    if not backend.is_gpu(data):
        data = np.asarray(data)
    data = data.astype(t._data.dtype, copy=False).reshape(t._data.shape)
    data = backend.same_device(data, t._data)  # received on the host: onto t's device
    replaced(t, t._node)
    t._set_value(data)


def _done(async_op: bool) -> Work | None:
    return Work() if async_op else None


def _mpi_op(op: Any) -> Any:
    from mpi4py import MPI

    table = {
        _RedOpType.SUM: MPI.SUM,
        _RedOpType.AVG: MPI.SUM,
        _RedOpType.PRODUCT: MPI.PROD,
        _RedOpType.MIN: MPI.MIN,
        _RedOpType.MAX: MPI.MAX,
        _RedOpType.BAND: MPI.BAND,
        _RedOpType.BOR: MPI.BOR,
        _RedOpType.BXOR: MPI.BXOR,
    }
    if op not in table:
        raise ValueError(f"unsupported reduction {op!r}; use a dist.ReduceOp (SUM, AVG, ...)")
    return table[op]


def _finish(data: np.ndarray, op: Any, n: int, dtype: np.dtype) -> np.ndarray:
    out = _unwire(data, dtype)
    if op is _RedOpType.AVG:
        out = out / n if dtype.kind in "fcV" else out // n
    return out


def all_reduce(
    tensor: Any, op: Any = ReduceOp.SUM, group: Any = None, async_op: bool = False
) -> Work | None:
    """Reduce ``tensor`` over the group, in place on every process (PyTorch's
    ``all_reduce``): ``SUM``, ``AVG``, ``PRODUCT``, ``MIN``, ``MAX``, ``BAND``, ``BOR``, ``BXOR``.

    Returns:
        A finished :class:`Work` with ``async_op=True``, else ``None``.
    """
    t = _check_tensor(tensor)
    g = _resolve(group)
    mop = _mpi_op(op)
    if g is None or g.size() == 1:
        return _done(async_op)
    from mpi4py import MPI

    buf = _wire(t._data, copy=True)
    with waiting("all_reduce", g._group):
        g._group.comm.Allreduce(MPI.IN_PLACE, buf.reshape(-1), op=mop)
    _write(t, _finish(buf, op, g.size(), t._data.dtype))
    return _done(async_op)


def reduce(
    tensor: Any, dst: int = 0, op: Any = ReduceOp.SUM, group: Any = None, async_op: bool = False
) -> Work | None:
    """Reduce ``tensor`` over the group into rank ``dst``'s tensor (PyTorch's ``reduce``;
    ``dst`` is a rank of the default group). The other processes' tensors are left as they are.
    """
    t = _check_tensor(tensor)
    g = _resolve(group)
    mop = _mpi_op(op)
    if g is None or g.size() == 1:
        return _done(async_op)
    root = get_group_rank(g, dst) if g is not _STATE.world else dst
    buf = _wire(t._data, copy=True)
    out = np.empty_like(buf) if g.rank() == root else None
    with waiting("reduce", g._group):
        g._group.comm.Reduce(buf, out, op=mop, root=root)
    if out is not None:
        _write(t, _finish(out, op, g.size(), t._data.dtype))
    return _done(async_op)


def broadcast(
    tensor: Any, src: int = 0, group: Any = None, async_op: bool = False, **kw: Any
) -> Work | None:
    """Give every process rank ``src``'s ``tensor``, in place (PyTorch's ``broadcast``;
    ``src`` is a rank of the default group, ``group_src=`` one of ``group``)."""
    t = _check_tensor(tensor)
    g = _resolve(group)
    if g is None or g.size() == 1:
        return _done(async_op)
    root = _root(g, src, kw.get("group_src"))
    buf = _wire(t._data, copy=True)
    with waiting("broadcast", g._group):
        g._group.comm.Bcast(buf, root=root)
    if g.rank() != root:
        _write(t, _unwire(buf, t._data.dtype))
    return _done(async_op)


def _root(g: ProcessGroup, global_rank: int | None, group_rank: int | None) -> int:
    if group_rank is not None:
        return int(group_rank)
    if g is _STATE.world:
        if not 0 <= int(global_rank) < g.size():
            raise ValueError(
                f"rank {global_rank} is outside the default group of {g.size()} processes"
            )
        return int(global_rank)
    return get_group_rank(g, int(global_rank))


def _gathered(g: ProcessGroup, t: array, what: str) -> np.ndarray:
    buf = _wire(t._data)
    out = np.empty((g.size(),) + buf.shape, dtype=buf.dtype)
    with waiting(what, g._group):
        g._group.comm.Allgather(buf, out)
    return _unwire(out, t._data.dtype)


def all_gather(
    tensor_list: Any, tensor: Any, group: Any = None, async_op: bool = False
) -> Work | None:
    """Every process's ``tensor`` into ``tensor_list`` (one per process, in rank order), in
    place on every process (PyTorch's ``all_gather``).

    Raises:
        ValueError: For a list of another length, or tensors of another shape.
    """
    outs = _check_list(tensor_list, "tensor_list")
    t = _check_tensor(tensor)
    g = _resolve(group)
    if g is None:
        return _done(async_op)
    if len(outs) != g.size():
        raise ValueError(
            f"all_gather: tensor_list has {len(outs)} tensors but the group has {g.size()} "
            "processes; give one tensor per process"
        )
    for i, o in enumerate(outs):
        if tuple(o.shape) != tuple(t.shape):
            raise ValueError(
                f"all_gather: tensor_list[{i}] has shape {tuple(o.shape)}, tensor has "
                f"{tuple(t.shape)}; they must match"
            )
    if g.size() == 1:
        _write(outs[0], t._data)
        return _done(async_op)
    for o, part in zip(outs, _gathered(g, t, "all_gather")):
        _write(o, part)
    return _done(async_op)


def all_gather_into_tensor(
    output_tensor: Any, input_tensor: Any, group: Any = None, async_op: bool = False
) -> Work | None:
    """Every process's ``input_tensor`` concatenated along the first axis (or stacked) into
    ``output_tensor``, in place (PyTorch's ``all_gather_into_tensor``)."""
    out = _check_tensor(output_tensor, "output_tensor")
    t = _check_tensor(input_tensor, "input_tensor")
    g = _resolve(group)
    if g is None:
        return _done(async_op)
    if out._data.size != t._data.size * g.size():
        raise ValueError(
            f"all_gather_into_tensor: output_tensor has {out._data.size} elements, the group "
            f"needs {g.size()} x {t._data.size}"
        )
    data = t._data[None] if g.size() == 1 else _gathered(g, t, "all_gather_into_tensor")
    _write(out, data)
    return _done(async_op)


def reduce_scatter(
    output: Any,
    input_list: Any,
    op: Any = ReduceOp.SUM,
    group: Any = None,
    async_op: bool = False,
) -> Work | None:
    """Reduce ``input_list[r]`` over the group into process ``r``'s ``output``, in place
    (PyTorch's ``reduce_scatter``).

    Raises:
        ValueError: For a list of another length, or tensors of another shape.
    """
    out = _check_tensor(output, "output")
    ins = _check_list(input_list, "input_list")
    g = _resolve(group)
    mop = _mpi_op(op)
    if g is None:
        return _done(async_op)
    if len(ins) != g.size():
        raise ValueError(
            f"reduce_scatter: input_list has {len(ins)} tensors but the group has {g.size()} "
            "processes; give one tensor per process"
        )
    for i, x in enumerate(ins):
        if tuple(x.shape) != tuple(out.shape):
            raise ValueError(
                f"reduce_scatter: input_list[{i}] has shape {tuple(x.shape)}, output has "
                f"{tuple(out.shape)}; they must match"
            )
    _scatter_reduce(g, out, np.stack([x._data for x in ins]), op, mop)
    return _done(async_op)


def reduce_scatter_tensor(
    output: Any, input: Any, op: Any = ReduceOp.SUM, group: Any = None, async_op: bool = False
) -> Work | None:
    """Reduce ``input`` over the group and give process ``r`` its ``r``-th block along the
    first axis, in ``output`` (PyTorch's ``reduce_scatter_tensor``)."""
    out = _check_tensor(output, "output")
    x = _check_tensor(input, "input")
    g = _resolve(group)
    mop = _mpi_op(op)
    if g is None:
        return _done(async_op)
    if x._data.size != out._data.size * g.size():
        raise ValueError(
            f"reduce_scatter_tensor: input has {x._data.size} elements, the group needs "
            f"{g.size()} x {out._data.size}"
        )
    _scatter_reduce(g, out, x._data.reshape((g.size(),) + tuple(out.shape)), op, mop)
    return _done(async_op)


def _scatter_reduce(g: ProcessGroup, out: array, stacked: np.ndarray, op: Any, mop: Any) -> None:
    dtype = out._data.dtype
    if g.size() == 1:
        _write(out, _finish(_wire(stacked[0], copy=True), op, 1, dtype))
        return
    buf = _wire(stacked)
    recv = np.empty(buf.shape[1:], dtype=buf.dtype)
    with waiting("reduce_scatter", g._group):
        g._group.comm.Reduce_scatter_block(buf, recv, op=mop)
    _write(out, _finish(recv, op, g.size(), dtype))


def gather(
    tensor: Any,
    gather_list: Any = None,
    dst: int = 0,
    group: Any = None,
    async_op: bool = False,
) -> Work | None:
    """Every process's ``tensor`` into rank ``dst``'s ``gather_list``, in place (PyTorch's
    ``gather``)."""
    t = _check_tensor(tensor)
    g = _resolve(group)
    if g is None:
        return _done(async_op)
    root = _root(g, dst, None)
    if g.rank() == root:
        outs = _check_list(gather_list, "gather_list")
        if len(outs) != g.size():
            raise ValueError(
                f"gather: gather_list has {len(outs)} tensors but the group has {g.size()} "
                "processes"
            )
    if g.size() == 1:
        _write(outs[0], t._data)
        return _done(async_op)
    buf = _wire(t._data)
    recv = np.empty((g.size(),) + buf.shape, dtype=buf.dtype) if g.rank() == root else None
    with waiting("gather", g._group):
        g._group.comm.Gather(buf, recv, root=root)
    if recv is not None:
        for o, part in zip(outs, _unwire(recv, t._data.dtype)):
            _write(o, part)
    return _done(async_op)


def scatter(
    tensor: Any,
    scatter_list: Any = None,
    src: int = 0,
    group: Any = None,
    async_op: bool = False,
) -> Work | None:
    """Rank ``src``'s ``scatter_list[r]`` into process ``r``'s ``tensor``, in place
    (PyTorch's ``scatter``)."""
    t = _check_tensor(tensor)
    g = _resolve(group)
    if g is None:
        return _done(async_op)
    root = _root(g, src, None)
    send_buf = None
    if g.rank() == root:
        ins = _check_list(scatter_list, "scatter_list")
        if len(ins) != g.size():
            raise ValueError(
                f"scatter: scatter_list has {len(ins)} tensors but the group has {g.size()} "
                "processes"
            )
        send_buf = _wire(np.stack([x._data for x in ins]).astype(t._data.dtype))
    if g.size() == 1:
        _write(t, _unwire(send_buf[0], t._data.dtype))
        return _done(async_op)
    recv = np.empty(_wire(t._data).shape, dtype=_wire(t._data).dtype)
    with waiting("scatter", g._group):
        g._group.comm.Scatter(send_buf, recv, root=root)
    _write(t, _unwire(recv, t._data.dtype))
    return _done(async_op)


def get_node_local_rank(fallback_rank: int | None = None) -> int:
    """This process's rank on its machine (``LOCAL_RANK``, which the launcher sets).

    Raises:
        RuntimeError: Without ``LOCAL_RANK`` and without ``fallback_rank`` (PyTorch's message).
    """
    if "LOCAL_RANK" in os.environ:
        return int(os.environ["LOCAL_RANK"])
    if fallback_rank is not None:
        return int(fallback_rank)
    raise RuntimeError(
        "LOCAL_RANK is not in the environment. Consider passing fallback_rank to allow "
        "`get_node_local_rank` to work, assuming you are not running in a multi-device context "
        "and want the code to run locally instead."
    )


def monitored_barrier(
    group: Any = None, timeout: Any = None, wait_all_ranks: bool = False
) -> Work | None:
    """:func:`barrier` (a rank that has ended is reported by chainrule's exit handling)."""
    return barrier(group)


def barrier(group: Any = None, async_op: bool = False, device_ids: Any = None) -> Work | None:
    """Wait until every process of the group has reached this call."""
    g = _resolve(group)
    if g is not None and g.size() > 1:
        with waiting("barrier", g._group):
            g._group.comm.Barrier()
    return _done(async_op)


# ---------------------------------------------------------------------------------- objects


def broadcast_object_list(object_list: list, src: int = 0, group: Any = None, **kw: Any) -> None:
    """Rank ``src``'s ``object_list`` items into every process's list, in place (pickled)."""
    g = _resolve(group)
    if g is None or g.size() == 1:
        return
    root = _root(g, src, kw.get("group_src"))
    with waiting("broadcast_object_list", g._group):
        items = g._group.comm.bcast(list(object_list) if g.rank() == root else None, root=root)
    object_list[:] = items


def all_gather_object(object_list: list, obj: Any, group: Any = None) -> None:
    """Every process's ``obj`` into ``object_list`` (one slot per process), in place."""
    g = _resolve(group)
    if g is None:
        return
    if len(object_list) != g.size():
        raise ValueError(
            f"all_gather_object: object_list has {len(object_list)} slots but the group has "
            f"{g.size()} processes"
        )
    if g.size() == 1:
        object_list[0] = obj
        return
    with waiting("all_gather_object", g._group):
        object_list[:] = g._group.comm.allgather(obj)


# ----------------------------------------------------------------------------- point to point


def _peer(g: ProcessGroup, global_rank: int | None, group_peer: int | None, who: str) -> int:
    peer = _root(g, global_rank, group_peer)
    if peer == g.rank():
        raise ValueError(f"{who}: cannot send to or receive from this process itself")
    return peer


def send(tensor: Any, dst: int | None = None, group: Any = None, tag: int = 0, **kw: Any) -> None:
    """Send ``tensor`` to rank ``dst``, which receives it with :func:`recv`."""
    t = _check_tensor(tensor)
    g = _resolve(group)
    if g is None:
        return
    peer = _peer(g, dst, kw.get("group_dst"), "send")
    with waiting("send", g._group, peer):
        g._group.comm.Send(_wire(t._data), dest=peer, tag=tag)


def recv(tensor: Any, src: int | None = None, group: Any = None, tag: int = 0, **kw: Any) -> int:
    """Receive into ``tensor``, in place, from rank ``src`` (any rank when ``None``).

    Returns:
        The sender's rank (in the default group), or -1 outside ``group``.
    """
    t = _check_tensor(tensor)
    g = _resolve(group)
    if g is None:
        return -1
    from mpi4py import MPI

    if src is None and kw.get("group_src") is None:
        source = MPI.ANY_SOURCE
    else:
        source = _peer(g, src, kw.get("group_src"), "recv")
    buf = np.empty_like(_wire(t._data))
    status = MPI.Status()
    with waiting("recv", g._group, None if source == MPI.ANY_SOURCE else source):
        g._group.comm.Recv(buf, source=source, tag=tag, status=status)
    _write(t, _unwire(buf, t._data.dtype))
    return g._ranks[status.Get_source()]


def isend(
    tensor: Any, dst: int | None = None, group: Any = None, tag: int = 0, **kw: Any
) -> Work | None:
    """Start sending ``tensor`` to rank ``dst``; ``wait()`` on the returned :class:`Work`."""
    t = _check_tensor(tensor)
    g = _resolve(group)
    if g is None:
        return None
    peer = _peer(g, dst, kw.get("group_dst"), "isend")
    buf = _wire(t._data, copy=True)
    return Work(g._group.comm.Isend(buf, dest=peer, tag=tag))


def irecv(
    tensor: Any, src: int | None = None, group: Any = None, tag: int = 0, **kw: Any
) -> Work | None:
    """Start receiving into ``tensor`` from rank ``src``; the value is written when the
    returned :class:`Work` is waited on."""
    t = _check_tensor(tensor)
    g = _resolve(group)
    if g is None:
        return None
    from mpi4py import MPI

    if src is None and kw.get("group_src") is None:
        source = MPI.ANY_SOURCE
    else:
        source = _peer(g, src, kw.get("group_src"), "irecv")
    buf = np.empty_like(_wire(t._data))
    request = g._group.comm.Irecv(buf, source=source, tag=tag)
    return Work(request, lambda: _write(t, _unwire(buf, t._data.dtype)))
