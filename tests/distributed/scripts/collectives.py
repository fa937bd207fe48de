"""Every collective checked against NumPy on 2 processes; prints 'rank R ok' when all pass.

Usage: mpiexec -n 2 python collectives.py
A failed assertion reaches the excepthook that init() installs, which aborts the job.
"""

from __future__ import annotations

import numpy as np

import chainrule.core as mx
import chainrule.distributed as dist
import chainrule.nn as nn
from chainrule.checkpoint import named_arrays
from chainrule.core.backend import to_host


def close(a, b, tol=1e-6):
    a = to_host(a._data) if hasattr(a, "_data") else np.asarray(a)
    np.testing.assert_allclose(a, np.asarray(b), rtol=tol, atol=tol)


def main() -> None:
    world = dist.init()
    r, n = world.rank(), world.size()
    assert n == 2, f"run with 2 processes, got {n}"
    assert dist.init() is world  # kept and returned again
    assert dist.is_available()

    # all_sum / all_max / all_min: values and dtypes, for several dtypes and shapes
    for dtype in (mx.float32, mx.float64, mx.int32, mx.float16):
        local = np.arange(6).reshape(2, 3) + 10 * r
        out = dist.all_sum(mx.array(local, dtype=dtype))
        assert out.dtype == dtype, (dtype, out.dtype)
        close(out, (np.arange(6).reshape(2, 3) * 2 + 10).astype(np.float64))
    close(dist.all_sum(mx.array(float(r + 1))), 3.0)  # 0-d
    close(dist.all_max(mx.array([r, -r])), [1, 0])
    close(dist.all_min(mx.array([r, -r])), [0, -1])

    # all_gather: rank order, unequal first axes, 0-d inputs, dtype errors on every rank
    close(dist.all_gather(mx.array([[r, r]])), [[0, 0], [1, 1]])
    rows = mx.array(np.full((r + 1, 2), r, dtype=np.float32))
    close(dist.all_gather(rows), [[0, 0], [1, 1], [1, 1]])
    close(dist.all_gather(mx.array(float(r))), [0.0, 1.0])
    try:
        dist.all_gather(mx.zeros((1, 2 + r)))
    except ValueError as e:
        assert "trailing shape" in str(e)
    else:
        raise AssertionError("all_gather of different trailing shapes must fail")

    # MLX's rules: all_sum's VJP passes this rank's cotangent through, its JVP sums the
    # tangents of every rank.
    x = mx.array([1.0, 2.0, 3.0]) * (r + 1)
    w = mx.array([1.0, -1.0, 2.0]) * (r + 1)
    g = mx.grad(lambda x: (dist.all_sum(x) * w).sum())(x)
    close(g, np.array([1.0, -1.0, 2.0]) * (r + 1))
    t = mx.array([0.5, 0.25, 1.0]) * (r + 1)
    _, jv = mx.jvp(lambda x: dist.all_sum(x), [x], [t])
    close(jv[0], np.array([0.5, 0.25, 1.0]) * 3)
    g2 = mx.grad(lambda x: (dist.all_sum(x) ** 2).sum())(x)
    close(g2, 2 * np.array([1.0, 2.0, 3.0]) * 3)
    # all_max of complex numbers (chainrule's own ordering, as x.max(0)), sum_scatter
    zc = mx.array([1 + 2j, 3 - 1j]) * (r + 1)
    close(dist.all_max(zc), (mx.stack([zc / (r + 1), zc * 2 / (r + 1)]).max(0)))
    close(dist.sum_scatter(mx.array([[1.0], [2.0]]) * (r + 1)), [[3.0]] if r == 0 else [[6.0]])
    # all_gather's VJP keeps this rank's rows of the cotangent
    W = mx.array(np.arange(12, dtype=np.float32).reshape(3, 4))
    xr = mx.ones((r + 1, 4))
    gg = mx.grad(lambda x: (dist.all_gather(x) * W).sum())(xr)
    close(gg, to_host(W._data)[[0]] if r == 0 else to_host(W._data)[1:3])

    # broadcast: arrays of several dtypes, NumPy arrays and plain values; placeholders
    tree = {
        "a": mx.array([1.0, 2.0]) + r,
        "b": [mx.array([[1, 2]], dtype=mx.int32) * (r + 1), np.full(3, r, np.float64)],
        "c": ("hello" if r == 0 else None, 7 + r),
    }
    out = dist.broadcast(tree)
    close(out["a"], [1.0, 2.0])
    assert out["a"].dtype == mx.float32 and out["b"][0].dtype == mx.int32
    close(out["b"][0], [[1, 2]])
    assert isinstance(out["b"][1], np.ndarray)
    close(out["b"][1], [0, 0, 0])
    assert out["c"] == ("hello", 7), out["c"]
    seed = dist.broadcast(None if r else 1234)
    assert seed == 1234
    order = dist.broadcast(None if r else np.arange(5))
    assert isinstance(order, np.ndarray) and order.tolist() == [0, 1, 2, 3, 4]
    from_one = dist.broadcast(mx.array([float(r)]), root=1)
    close(from_one, [1.0])

    dist.barrier()

    # send / recv between the two ranks
    if r == 0:
        dist.send(mx.array([1.0, 2.0, 3.0]), 1)
        back = dist.recv((2,), mx.int32, 1)
        close(back, [4, 5])
    else:
        got = dist.recv_like(mx.zeros((3,)), 0)
        close(got, [1.0, 2.0, 3.0])
        dist.send(mx.array([4, 5], dtype=mx.int32), 0)

    # average_gradients: one Allreduce per bucket, dtypes kept, non-arrays kept
    grads = {
        "layers": [{"w": mx.ones((25, 10)) * (r + 1), "b": mx.ones((10,)) * r} for _ in range(4)],
        "h": mx.ones((3,), dtype=mx.float64) * (2 * r),
        "none": None,
    }
    before = dist.comm_stats()["calls"]
    avg = dist.average_gradients(grads, all_reduce_size=2 * 260 * 4)
    calls = dist.comm_stats()["calls"] - before
    assert calls == 3, f"expected 2 float32 buckets + 1 float64 bucket, got {calls}"
    for layer in avg["layers"]:
        close(layer["w"], np.full((25, 10), 1.5))
        close(layer["b"], np.full(10, 0.5))
        assert layer["w"].dtype == mx.float32
    close(avg["h"], np.ones(3))
    assert avg["h"].dtype == mx.float64 and avg["none"] is None
    before = dist.comm_stats()["calls"]
    dist.average_gradients(grads, bucket_bytes=1 << 30)
    assert dist.comm_stats()["calls"] - before == 2  # one bucket per dtype
    half = dist.average_gradients(
        {"x": mx.array([1.0, 3.0]) * (r + 1)}, communication_type=mx.float16
    )
    close(half["x"], [1.5, 4.5])

    # PyTorch style: average the .grad of parameters; None everywhere stays None
    p1, p2, p3 = (mx.array([0.0, 0.0], requires_grad=True) for _ in range(3))
    p1.grad = mx.array([2.0, 4.0]) * (r + 1)
    p2.grad = mx.array([2.0, 2.0]) if r == 0 else None
    dist.average_parameter_grads([p1, p2, p3])
    close(p1.grad, [3.0, 6.0])
    close(p2.grad, [1.0, 1.0])
    assert p3.grad is None

    # broadcast_parameters writes rank 0's values into the model's own arrays
    mx.random.seed(r)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm(4))
    handles = [a for _, a in named_arrays(model)]
    dist.broadcast_parameters(model)
    assert all(a is b for a, b in zip(handles, (a for _, a in named_arrays(model))))
    flat = np.concatenate([to_host(a._data).ravel() for a in handles])
    close(dist.all_sum(mx.array(flat)), 2 * flat)

    # Group.split: two groups of one process each
    sub = world.split(color=r)
    assert sub.size() == 1 and sub.rank() == 0
    close(dist.all_sum(mx.array([1.0]), group=sub), [1.0])

    print(f"rank {r} ok", flush=True)


if __name__ == "__main__":
    main()
