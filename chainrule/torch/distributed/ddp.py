"""PyTorch's ``DistributedDataParallel`` over chainrule's MPI transport.

Construction broadcasts rank 0's parameters and buffers to every process. Each forward
(recording, outside :meth:`DistributedDataParallel.no_sync`) arms a reduction for the next
backward pass: a tensor hook on every parameter (``register_hook``, which runs during the
backward pass, before ``.grad`` is accumulated) collects that parameter's gradient; when the
last expected parameter has reported, still inside the pass, the accumulated gradients
(``.grad`` from ``no_sync`` steps plus this pass's) are averaged over the group, a bucket of
about ``bucket_cap_mb`` per ``MPI_Allreduce``, and written into the arrays the hooks returned,
which the pass then stores as ``.grad``. So after ``loss.backward()`` every process holds the
same averaged gradients, as with PyTorch.

With ``find_unused_parameters=True`` the forward walks its outputs' graph to find the
parameters the backward pass will reach; the others count as ready. A parameter unused on
every process keeps ``.grad`` as it was (``None``); one used on some processes gets the
average on all of them. Without it, a parameter that gets no gradient leaves the reduction
unfinished, and the next forward raises PyTorch's error.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from typing import Any

import numpy as np

from chainrule.core import backend as _backend
from chainrule.core.array import array
from chainrule.core.autograd import is_grad_enabled
from chainrule.core.extend import Node, from_value
from chainrule.distributed import broadcast as _broadcast
from chainrule.distributed.gradients import BucketReducer
from chainrule.torch.nn._module import Module
from chainrule.utils import tree_flatten

from . import c10d

__all__ = ["DistributedDataParallel"]

_UNFINISHED = (
    "Expected to have finished reduction in the prior iteration before starting a new one. "
    "This error indicates that your module has parameters that were not used in producing "
    "loss. You can enable unused parameter detection by passing the keyword argument "
    "`find_unused_parameters=True` to `torch.nn.parallel.DistributedDataParallel`, and by "
    "making sure all `forward` function outputs participate in calculating loss. "
    "Parameter indices which did not receive grad for rank {rank}: {missing}"
)


def _reachable(outputs: Any, wanted: dict[int, int]) -> set[int]:
    """The indices (values of ``wanted``, keyed by ``id`` of leaf nodes) of the leaves that
    the graph of ``outputs`` reaches."""
    stack = [
        leaf._node
        for _, leaf in tree_flatten(outputs, is_leaf=lambda x: isinstance(x, array))
        if isinstance(leaf, array) and leaf._node is not None
    ]
    seen: set[int] = set()
    found: set[int] = set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        hit = wanted.get(id(node))
        if hit is not None:
            found.add(hit)
        for a in node.args:
            if type(a) is Node and id(a) not in seen:
                stack.append(a)
    return found


class _Reducer:
    """The gradient averaging of one ``DistributedDataParallel`` (kept outside the module's
    dict of entries)."""

    def __init__(self, pg: c10d.ProcessGroup, params: list[array], bucket_bytes: int) -> None:
        self.pg = pg
        self.params = params
        self.reducer = BucketReducer(
            pg._group, [(tuple(p.shape), p._data.dtype) for p in params], bucket_bytes
        )
        self.armed = False
        self.expected: set[int] = set()
        self.pending: dict[int, array] = {}

    def arm(self, expected: set[int]) -> None:
        self.armed, self.expected = True, expected
        self.pending = {}
        if not expected:
            self.reduce()  # nothing will report: take part in the collective now

    def report(self, i: int, g: array) -> array | None:
        if not self.armed or i not in self.expected or i in self.pending:
            return None
        h = from_value(_backend.array_module(g._data).ascontiguousarray(g._data))
        self.pending[i] = h
        if len(self.pending) == len(self.expected):
            self.reduce()
        return h

    def check_finished(self) -> None:
        if self.armed and self.pending:
            missing = sorted(self.expected - set(self.pending))
            self.armed = False
            raise RuntimeError(_UNFINISHED.format(rank=self.pg.rank(), missing=missing))
        self.armed = False

    def reduce(self) -> None:
        """Average the accumulated gradients over the group (called inside the backward pass
        by the last hook expected)."""
        self.armed = False
        datas: list[np.ndarray | None] = []
        for i, p in enumerate(self.params):
            h = self.pending.get(i)
            old = None if p._grad is None else p._grad._data
            if h is None:
                datas.append(old)
            else:
                datas.append(h._data if old is None else h._data + old)
        present = np.array([d is not None for d in datas], dtype=np.float64)
        like = [p._data for p in self.params]
        reduced, counts = self.reducer(datas, factor=1.0 / self.pg.size(), extra=present, like=like)
        for i, p in enumerate(self.params):
            h = self.pending.get(i)
            if h is not None:
                h._set_value(reduced[i])  # the pass stores h as .grad ...
                p._grad = None  # ... in place of the local accumulation, now averaged in
            elif counts[i] > 0:
                p._grad = from_value(reduced[i])
        self.pending = {}


class DistributedDataParallel(Module):
    """Data parallelism over processes (PyTorch's ``nn.parallel.DistributedDataParallel``).

    Wrap the model after ``dist.init_process_group``; call it as the model; after
    ``loss.backward()`` every process's ``.grad`` is the average over the group. The model is
    ``.module``, and ``state_dict()`` names carry the ``module.`` prefix, as in PyTorch.

    Args:
        module: The model (the same architecture on every process).
        device_ids: Accepted for PyTorch code (CPU only).
        output_device: Accepted for PyTorch code.
        dim: Accepted for PyTorch code (each process gets its own batch).
        broadcast_buffers: Give every process rank 0's buffers at each forward.
        init_sync: Broadcast rank 0's parameters and buffers when wrapping.
        process_group: The group to average over (default: the default group).
        bucket_cap_mb: Bucket size of the all-reduce, in MiB (default 25, PyTorch's).
        find_unused_parameters: Find the parameters each forward leaves unused (see the
            module's docstring).
        check_reduction: Accepted for PyTorch code.
        gradient_as_bucket_view: Accepted for PyTorch code.
        static_graph: Accepted for PyTorch code.
        **kwargs: PyTorch's other options, accepted and unused.

    Raises:
        ValueError: Before ``init_process_group`` (PyTorch's message).
        TypeError: For a module that is not a chainrule module.
    """

    def __init__(
        self,
        module: Any,
        device_ids: Any = None,
        output_device: Any = None,
        dim: int = 0,
        broadcast_buffers: bool = True,
        init_sync: bool = True,
        process_group: Any = None,
        bucket_cap_mb: float | None = None,
        find_unused_parameters: bool = False,
        check_reduction: bool = False,
        gradient_as_bucket_view: bool = False,
        static_graph: bool = False,
        **kwargs: Any,
    ) -> None:
        pg = c10d._resolve(process_group)
        if pg is None:
            raise ValueError("DistributedDataParallel: this process is not in process_group")
        if not hasattr(module, "named_parameters"):
            raise TypeError(
                f"DistributedDataParallel: module must be a torch.nn.Module, got "
                f"{type(module).__name__}"
            )
        super().__init__()
        self.module = module
        self.device_ids, self.output_device, self.dim = device_ids, output_device, dim
        self.broadcast_buffers = bool(broadcast_buffers)
        self.find_unused_parameters = bool(find_unused_parameters)
        self.gradient_as_bucket_view = bool(gradient_as_bucket_view)
        self.static_graph = bool(static_graph)
        self.require_backward_grad_sync = True
        self.process_group = pg
        seen: set[int] = set()
        params = []
        for _, p in module.named_parameters():
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                params.append(p)
        mb = 25 if bucket_cap_mb is None else bucket_cap_mb
        self.bucket_bytes_cap = int(mb * 1024 * 1024)
        reducer = _Reducer(pg, params, self.bucket_bytes_cap) if pg.size() > 1 else None
        object.__setattr__(self, "_reducer", reducer)
        if pg.size() > 1:
            if init_sync:
                self._sync(list(dict(module.named_parameters()).values()))
                self._sync(self._buffers_of_module())
            ref = weakref.ref(reducer)
            for i, p in enumerate(params):
                p.register_hook(_hook(ref, i))

    def _buffers_of_module(self) -> list[array]:
        return [b for _, b in self.module.named_buffers() if isinstance(b, array)]

    def _sync(self, handles: list[array]) -> None:
        """Rank 0's (of the group) values of ``handles`` on every process, in place."""
        if not handles:
            return
        pg = self.process_group
        values = _broadcast([h._data for h in handles], root=0, group=pg._group)
        if pg.rank() != 0:
            for h, v in zip(handles, values):
                h._set_value(_backend.same_device(v, h._data))

    def forward(self, *inputs: Any, **kwargs: Any) -> Any:
        """Run the module; when recording, arm the gradient averaging of the next backward.

        Raises:
            RuntimeError: When the previous backward pass left the reduction unfinished
                (a parameter got no gradient and ``find_unused_parameters`` is off).
        """
        reducer = self._reducer
        if reducer is None:
            return self.module(*inputs, **kwargs)
        reducer.check_finished()
        if self.broadcast_buffers:
            self._sync(self._buffers_of_module())
        out = self.module(*inputs, **kwargs)
        if is_grad_enabled() and self.require_backward_grad_sync:
            every = range(len(reducer.params))
            if self.find_unused_parameters:
                wanted = {id(p._node): i for i, p in enumerate(reducer.params) if p._node}
                reducer.arm(_reachable(out, wanted))
            else:
                reducer.arm(set(every))
        return out

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Within it, backward passes accumulate local gradients without averaging; the first
        synchronised backward after it averages the accumulated ``.grad``."""
        previous = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous


def _hook(ref: weakref.ref, i: int) -> Any:
    def ddp_gradient_hook(g: array) -> array | None:
        reducer = ref()
        return None if reducer is None else reducer.report(i, g)

    return ddp_gradient_hook
