"""``chainrule.distributed``: training on several processes and machines over MPI.

MLX's ``mx.distributed`` names, on chainrule arrays, through ``mpi4py``
(``pip install 'chainrule[distributed]'``)::

    import chainrule.distributed as dist

    group = dist.init()                    # size 1 when not launched by mpiexec
    total = dist.all_sum(mx.ones(3))       # = group.size() everywhere
    grads = dist.average_gradients(grads)  # one MPI_Allreduce per bucket of a few MB

Run a script in two processes with ``mpiexec -n 2 python train.py`` (or
``python -m chainrule.distributed -n 2 train.py``, which adds the flags a root user or a
machine with few cores needs). ``chainrule.train.fit`` trains data-parallel by itself under
``mpiexec``. See ``docs/distributed.md``.
"""

from .data_parallel import DataParallel
from .gradients import (
    average_gradients,
    average_parameter_grads,
    broadcast_parameters,
    clip_grad_norm_sharded,
)
from .group import Group, abort, comm_stats, init, is_available, reset_comm_stats
from .launch import mpiexec_command
from .ops import (
    all_gather,
    all_max,
    all_min,
    all_sum,
    barrier,
    broadcast,
    recv,
    recv_like,
    send,
    sum_scatter,
)
from .sampler import DistributedSampler

__all__ = [
    "DataParallel",
    "DistributedSampler",
    "Group",
    "abort",
    "all_gather",
    "all_max",
    "all_min",
    "all_sum",
    "average_gradients",
    "average_parameter_grads",
    "barrier",
    "broadcast",
    "broadcast_parameters",
    "clip_grad_norm_sharded",
    "comm_stats",
    "init",
    "is_available",
    "mpiexec_command",
    "recv",
    "recv_like",
    "reset_comm_stats",
    "send",
    "sum_scatter",
]
