"""More of PyTorch's ``torch.distributed``: all-to-all, batched point-to-point, object
collectives, backend queries and the error classes (see :mod:`.c10d` for the rest)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import numpy as np

from chainrule.distributed.exits import waiting
from chainrule.distributed.ops import _mpi_type, _unwire, _wire

from .c10d import (
    Work,
    _check_list,
    _check_tensor,
    _done,
    _resolve,
    _root,
    _write,
    irecv,
    is_available,
    isend,
)

__all__ = [
    "DistBackendError",
    "DistError",
    "DistNetworkError",
    "DistStoreError",
    "P2POp",
    "all_to_all",
    "all_to_all_single",
    "batch_isend_irecv",
    "default_pg_timeout",
    "gather_object",
    "get_default_backend_for_device",
    "is_backend_available",
    "is_ucc_available",
    "is_xccl_available",
    "recv_object_list",
    "scatter_object_list",
    "send_object_list",
]

default_pg_timeout = timedelta(minutes=30)
"""PyTorch's default collective timeout (accepted, unused: MPI has none)."""


class DistError(RuntimeError):
    """An error of the distributed package (PyTorch's ``DistError``)."""


class DistBackendError(DistError):
    """An error in a backend (PyTorch's ``DistBackendError``)."""


class DistNetworkError(DistError):
    """A network error (PyTorch's ``DistNetworkError``)."""


class DistStoreError(DistError):
    """A store error (PyTorch's ``DistStoreError``)."""


def is_backend_available(backend: str) -> bool:
    """Whether ``backend`` can be started here (``"gloo"`` and ``"mpi"``, over MPI)."""
    return str(backend).lower() in ("gloo", "mpi") and is_available()


def is_ucc_available() -> bool:
    """Always False: chainrule has no UCC."""
    return False


def is_xccl_available() -> bool:
    """Always False: chainrule has no XCCL."""
    return False


def get_default_backend_for_device(device: Any) -> str:
    """PyTorch's default backend for a device type: ``"gloo"`` for the CPU."""
    kind = str(getattr(device, "type", device)).split(":")[0]
    table = {"cpu": "gloo", "cuda": "nccl", "xpu": "xccl"}
    if kind not in table:
        raise ValueError(f"Default backend not registered for device : {kind}")
    return table[kind]


# ------------------------------------------------------------------------------ all to all


def _alltoallv(g: Any, send: np.ndarray, send_counts: list, recv_counts: list) -> np.ndarray:
    recv = np.empty(sum(recv_counts), dtype=send.dtype)
    sdispl = np.concatenate([[0], np.cumsum(send_counts)[:-1]]).astype(int).tolist()
    rdispl = np.concatenate([[0], np.cumsum(recv_counts)[:-1]]).astype(int).tolist()
    kind = _mpi_type(send.dtype)
    with waiting("all_to_all", g._group):
        g._group.comm.Alltoallv(
            [send, send_counts, sdispl, kind], [recv, recv_counts, rdispl, kind]
        )
    return recv


def all_to_all_single(
    output: Any,
    input: Any,
    output_split_sizes: Sequence[int] | None = None,
    input_split_sizes: Sequence[int] | None = None,
    group: Any = None,
    async_op: bool = False,
) -> Work | None:
    """Send block ``j`` of ``input`` (along the first axis) to rank ``j`` and put the block
    from rank ``i`` at block ``i`` of ``output``, in place (PyTorch's ``all_to_all_single``).

    Raises:
        ValueError: For split sizes that do not fit the tensors or the group.
    """
    out = _check_tensor(output, "output")
    x = _check_tensor(input, "input")
    g = _resolve(group)
    if g is None:
        return _done(async_op)
    n = g.size()
    row_in = int(np.prod(x.shape[1:], dtype=np.int64)) if x._data.ndim else 1
    row_out = int(np.prod(out.shape[1:], dtype=np.int64)) if out._data.ndim else 1

    def splits(sizes: Any, total: int, what: str) -> list[int]:
        if sizes is None:
            if total % n:
                raise ValueError(
                    f"all_to_all_single: the first axis of {what} ({total}) must divide by the "
                    f"group's size {n}, or give {what}_split_sizes"
                )
            return [total // n] * n
        sizes = [int(s) for s in sizes]
        if len(sizes) != n or sum(sizes) != total:
            raise ValueError(
                f"all_to_all_single: {what}_split_sizes {sizes} must have {n} entries summing "
                f"to {total}"
            )
        return sizes

    send_rows = splits(input_split_sizes, x.shape[0] if x._data.ndim else 1, "input")
    recv_rows = splits(output_split_sizes, out.shape[0] if out._data.ndim else 1, "output")
    send = _wire(x._data).reshape(-1)
    if n == 1:
        _write(out, _unwire(send, x._data.dtype))
        return _done(async_op)
    got = _alltoallv(g, send, [r * row_in for r in send_rows], [r * row_out for r in recv_rows])
    _write(out, _unwire(got, x._data.dtype))
    return _done(async_op)


def all_to_all(
    output_tensor_list: Any, input_tensor_list: Any, group: Any = None, async_op: bool = False
) -> Work | None:
    """Send ``input_tensor_list[j]`` to rank ``j`` and receive rank ``i``'s into
    ``output_tensor_list[i]``, in place (PyTorch's ``all_to_all``)."""
    outs = _check_list(output_tensor_list, "output_tensor_list")
    ins = _check_list(input_tensor_list, "input_tensor_list")
    g = _resolve(group)
    if g is None:
        return _done(async_op)
    n = g.size()
    if len(outs) != n or len(ins) != n:
        raise ValueError(
            f"all_to_all: give one tensor per process ({n}) in each list, got {len(outs)} "
            f"outputs and {len(ins)} inputs"
        )
    dtype = ins[0]._data.dtype
    send = np.concatenate([_wire(t._data.astype(dtype)).reshape(-1) for t in ins])
    if n == 1:
        _write(outs[0], _unwire(send, dtype))
        return _done(async_op)
    got = _alltoallv(g, send, [t._data.size for t in ins], [t._data.size for t in outs])
    got = _unwire(got, dtype)
    o = 0
    for t in outs:
        _write(t, got[o : o + t._data.size])
        o += t._data.size
    return _done(async_op)


# ------------------------------------------------------------------- batched point to point


class P2POp:
    """One ``isend`` or ``irecv`` for :func:`batch_isend_irecv` (PyTorch's ``P2POp``).

    Args:
        op: ``dist.isend`` or ``dist.irecv``.
        tensor: The tensor sent or received into.
        peer: The other rank (in the default group).
        group: The group (default: the default group).
        tag: The message tag.
        group_peer: The other rank in ``group``.
    """

    def __init__(
        self,
        op: Any,
        tensor: Any,
        peer: int | None = None,
        group: Any = None,
        tag: int = 0,
        group_peer: int | None = None,
    ) -> None:
        if op not in (isend, irecv):
            raise ValueError(
                "Invalid ``op``. Expected ``op`` to be of type ``torch.distributed.isend`` or "
                "``torch.distributed.irecv``."
            )
        self.op, self.tensor, self.peer, self.group = op, tensor, peer, group
        self.tag, self.group_peer = tag, group_peer


def batch_isend_irecv(p2p_op_list: list) -> list:
    """Start every operation of ``p2p_op_list``; ``wait()`` on each returned :class:`Work`."""
    if not p2p_op_list or not all(isinstance(p, P2POp) for p in p2p_op_list):
        raise ValueError("Invalid ``p2p_op_list``. Each op is expected to be of type P2POp.")
    works = []
    for p in p2p_op_list:
        kw = {}
        if p.group_peer is not None:
            kw = {("group_dst" if p.op is isend else "group_src"): p.group_peer}
        works.append(p.op(p.tensor, p.peer, p.group, p.tag, **kw))
    return works


# --------------------------------------------------------------------------- objects


def gather_object(
    obj: Any, object_gather_list: list | None = None, dst: int = 0, group: Any = None
) -> None:
    """Every process's ``obj`` into rank ``dst``'s ``object_gather_list``, in place."""
    g = _resolve(group)
    if g is None:
        return
    root = _root(g, dst, None)
    if g.rank() == root and (object_gather_list is None or len(object_gather_list) != g.size()):
        raise ValueError(
            f"gather_object: object_gather_list must have {g.size()} slots on the destination"
        )
    if g.size() == 1:
        object_gather_list[0] = obj
        return
    with waiting("gather_object", g._group):
        items = g._group.comm.gather(obj, root=root)
    if g.rank() == root:
        object_gather_list[:] = items


def scatter_object_list(
    scatter_object_output_list: list,
    scatter_object_input_list: list | None = None,
    src: int = 0,
    group: Any = None,
) -> None:
    """Rank ``src``'s ``scatter_object_input_list[r]`` into process ``r``'s
    ``scatter_object_output_list[0]``, in place."""
    g = _resolve(group)
    if g is None:
        return
    root = _root(g, src, None)
    if g.rank() == root and (
        scatter_object_input_list is None or len(scatter_object_input_list) != g.size()
    ):
        raise ValueError(
            f"scatter_object_list: scatter_object_input_list must have {g.size()} items on src"
        )
    if g.size() == 1:
        scatter_object_output_list[0] = scatter_object_input_list[0]
        return
    with waiting("scatter_object_list", g._group):
        item = g._group.comm.scatter(
            list(scatter_object_input_list) if g.rank() == root else None, root=root
        )
    scatter_object_output_list[0] = item


def send_object_list(
    object_list: list, dst: int | None = None, group: Any = None, **kw: Any
) -> None:
    """Send ``object_list``'s items to rank ``dst`` (pickled)."""
    g = _resolve(group)
    if g is None:
        return
    peer = _root(g, dst, kw.get("group_dst"))
    with waiting("send_object_list", g._group, peer):
        g._group.comm.send(list(object_list), dest=peer, tag=1)


def recv_object_list(
    object_list: list, src: int | None = None, group: Any = None, **kw: Any
) -> int:
    """Receive into ``object_list``, in place, from rank ``src`` (any rank when ``None``).

    Returns:
        The sender's rank (in the default group), or -1 outside ``group``.
    """
    g = _resolve(group)
    if g is None:
        return -1
    from mpi4py import MPI

    source = (
        MPI.ANY_SOURCE
        if src is None and kw.get("group_src") is None
        else _root(g, src, kw.get("group_src"))
    )
    status = MPI.Status()
    with waiting("recv_object_list", g._group, None if source == MPI.ANY_SOURCE else source):
        items = g._group.comm.recv(source=source, tag=1, status=status)
    object_list[: len(items)] = items
    return g._ranks[status.Get_source()]
