"""``torch.distributed``: PyTorch's process groups and collectives on chainrule's MPI transport.

Start the processes with an MPI launcher (``mpiexec -n 2 python train.py``, or
``python -m chainrule.distributed -n 2 train.py``); importing this package sets torchrun's
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and ``LOCAL_WORLD_SIZE`` from the launcher's
variables (where unset), so PyTorch scripts run with only their imports changed::

    import chainrule.torch.distributed as dist
    from chainrule.torch.nn.parallel import DistributedDataParallel as DDP

    dist.init_process_group("gloo")          # or "mpi"; init_method="env://"
    model = DDP(model)                       # gradients averaged during backward
    dist.all_reduce(t, op=dist.ReduceOp.AVG) # in place

See ``docs/distributed.md``.
"""

from __future__ import annotations

from .c10d import (
    Backend,
    GroupMember,
    ProcessGroup,
    ReduceOp,
    Work,
    all_gather,
    all_gather_into_tensor,
    all_gather_object,
    all_reduce,
    barrier,
    broadcast,
    broadcast_object_list,
    destroy_process_group,
    export_launcher_ranks,
    gather,
    get_backend,
    get_global_rank,
    get_group_rank,
    get_node_local_rank,
    get_process_group_ranks,
    get_rank,
    get_world_size,
    group,
    init_process_group,
    irecv,
    is_available,
    is_gloo_available,
    is_initialized,
    is_mpi_available,
    is_nccl_available,
    is_torchelastic_launched,
    isend,
    monitored_barrier,
    new_group,
    recv,
    reduce,
    reduce_scatter,
    reduce_scatter_tensor,
    scatter,
    send,
)
from .c10d_more import (
    DistBackendError,
    DistError,
    DistNetworkError,
    DistStoreError,
    P2POp,
    all_to_all,
    all_to_all_single,
    batch_isend_irecv,
    default_pg_timeout,
    gather_object,
    get_default_backend_for_device,
    is_backend_available,
    is_ucc_available,
    is_xccl_available,
    recv_object_list,
    scatter_object_list,
    send_object_list,
)

export_launcher_ranks()

__all__ = [
    "Backend",
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
