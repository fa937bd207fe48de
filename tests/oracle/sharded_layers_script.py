"""Run under mpiexec by test_sharded_layers_mpi.py: sharded layers equal the unsharded ones.

Every rank builds the same full layers (same seed), cuts its shards with ``shard_linear`` and
checks the sharded two-layer network against the full one: outputs, the gradient with respect
to the input (summed over the group by ``sum_gradients``) and each weight's gradient (this
rank's slice of the full gradient). Prints ``all_sum_vjp <d/dx of all_sum(x).sum()>`` and
``ok <rank>``.
"""

import numpy as np

import chainrule.core as mx
import chainrule.nn as nn
from chainrule.nn.layers.distributed import shard_linear

group = mx.distributed.init()
n, r = group.size(), group.rank()
mx.random.seed(0)
x = mx.random.normal((3, 128))
cot = mx.random.normal((3, 16))


def check(l1, l2, tol):
    s1, s2 = shard_linear(l1, "all-to-sharded"), shard_linear(l2, "sharded-to-all")

    def full(x):
        return (l2(nn.relu(l1(x))) * cot).sum()

    def sharded(x):
        return (s2(nn.relu(s1(x))) * cot).sum()

    np.testing.assert_allclose(np.array(sharded(x)), np.array(full(x)), rtol=tol, atol=tol)
    gx_full, gx_sharded = mx.grad(full)(x), mx.grad(sharded)(x)
    np.testing.assert_allclose(np.array(gx_sharded), np.array(gx_full), rtol=tol, atol=tol)
    return s1, s2, sharded, full


# dense layers: the weights' gradients are this rank's slices of the full ones
l1, l2 = nn.Linear(128, 64), nn.Linear(64, 16)
s1, s2, sharded, full = check(l1, l2, 1e-4)
assert s1.weight.shape == (64 // n, 128) and s2.weight.shape == (16, 64 // n)
_, g_sharded = nn.value_and_grad(s1, lambda x: sharded(x))(x)
_, g_full = nn.value_and_grad(l1, lambda x: full(x))(x)
rows = slice(r * 64 // n, (r + 1) * 64 // n)
np.testing.assert_allclose(
    np.array(g_sharded["weight"]), np.array(g_full["weight"])[rows], rtol=1e-4, atol=1e-5
)
np.testing.assert_allclose(
    np.array(g_sharded["bias"]), np.array(g_full["bias"])[rows], rtol=1e-4, atol=1e-5
)

# quantized layers (groups of 32 never straddle a shard's edge)
q1 = nn.QuantizedLinear.from_linear(l1, group_size=32, bits=8)
q2 = nn.QuantizedLinear.from_linear(nn.Linear(64, 16), group_size=32, bits=8)
qs1, qs2, _, _ = check(q1, q2, 1e-4)
assert type(qs1).__name__ == "QuantizedAllToShardedLinear"
assert type(qs2).__name__ == "QuantizedShardedToAllLinear"
# mx.distributed.all_sum's own VJP: MLX's AllReduce::vjp passes the cotangent through (every
# process holds the same output and its whole cotangent); reported, not asserted, here
g = mx.grad(lambda v: mx.distributed.all_sum(v, group=group).sum())(mx.ones((2,)))
print(f"all_sum_vjp {float(np.array(g)[0])}", flush=True)
print(f"ok {r}", flush=True)
