"""Vectorised ``vmap`` of GPU arrays, under the strict CuPy stand-in.

The vectorising tracer runs on host arrays, so a call on GPU arrays is traced on host copies
(the first example and the unmapped array arguments, which keep their nodes) and replayed on
the GPU arrays themselves (GPU arrays read from the function's closure are host constants of
the trace, and the GPU originals in the replay); arguments on both devices loop over the
examples instead (always right). Results stay on the GPU and equal the per-example loop.
"""

from __future__ import annotations

import numpy as np
import pytest

import chainrule.core as mx
from chainrule.core import backend, batching
from chainrule.core.strict_backend import StrictArray

# these tests choose devices themselves: the CPU is the default while each runs (conftest.py)
pytestmark = pytest.mark.usefixtures("cpu_default_device")

B = 5


def _rand(*shape, seed=0):
    return mx.array(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


def _loop(fun, args, in_axes):
    outs = []
    for i in range(B):
        call = [a if ax is None else mx.take(a, i, axis=ax) for a, ax in zip(args, in_axes)]
        outs.append(np.asarray(fun(*call)))
    return np.stack(outs)


def _vmapped(fun, args, in_axes):
    """``vmap(fun)`` on the GPU copies of ``args``: (result, vectorised?, reason)."""
    before = batching.STATS["vectorised"]
    got = mx.vmap(fun, in_axes=in_axes)(*[a.to(mx.gpu) for a in args])
    return got, batching.STATS["vectorised"] == before + 1, batching.LAST["reason"]


def _mlp(x, w1, w2):
    return (mx.tanh(x @ w1) @ w2).sum()


CASES = {
    "mlp_unmapped_weights": (_mlp, lambda: (_rand(B, 4), _rand(4, 6, seed=1), _rand(6, 3, seed=2)), (0, None, None)),
    "per_example_grad": (mx.grad(_mlp, argnums=1), lambda: (_rand(B, 4), _rand(4, 6, seed=1), _rand(6, 3, seed=2)), (0, None, None)),
    "in_axes_1": (lambda m: mx.softmax(m, axis=-1).max(0), lambda: (_rand(3, B, 4),), (1,)),
    "scatter_by_mapped_index": (lambda m, i, x: m.at[i].add(x), lambda: (_rand(B, 3, 4), mx.array([2, 0, 1, 1, 2]), _rand(B, 4, seed=3)), (0, 0, 0)),
    "gather_and_constant": (lambda i, w: w[i] * mx.arange(6.0), lambda: (mx.array([3, 0, 1, 1, 2]), _rand(4, 6, seed=1)), (0, None)),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(CASES))
def test_gpu_arrays_take_the_vectorised_path(name):
    fun, make, in_axes = CASES[name]
    args = make()
    want = _loop(fun, args, in_axes)
    with backend.use_strict_gpu():
        got, vectorised, reason = _vmapped(fun, args, in_axes)
        assert vectorised, reason
        assert type(got._data) is StrictArray
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-6)


def test_float64_unmapped_arguments_keep_their_precision():
    rng = np.random.default_rng(4)
    x = mx.array(rng.standard_normal((B, 4, 2)), dtype=mx.float64)
    w = mx.array(rng.standard_normal(2), dtype=mx.float64)

    def f(x, w):
        return mx.fast.layer_norm(x, w, w * 0.5, 1e-5) * w

    want = _loop(f, (x, w), (0, None))
    with backend.use_strict_gpu():
        got, vectorised, reason = _vmapped(f, (x, w), (0, None))
        assert vectorised, reason
        assert got.dtype == mx.float64
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-13, atol=1e-14)


def test_grad_through_vmap_reaches_an_unmapped_gpu_argument():
    x, w1, w2 = _rand(B, 4), _rand(4, 6, seed=1), _rand(6, 3, seed=2)

    def loss(w1, x, w2):
        return mx.vmap(_mlp, in_axes=(0, None, None))(x, w1, w2).sum()

    want = mx.grad(loss)(w1, x, w2)
    with backend.use_strict_gpu():
        before = batching.STATS["vectorised"]
        got = mx.grad(loss)(w1.to(mx.gpu), x.to(mx.gpu), w2.to(mx.gpu))
        assert batching.STATS["vectorised"] == before + 1, batching.LAST["reason"]
        assert type(got._data) is StrictArray
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-6)


def test_closure_over_gpu_data_vectorises_and_mixed_devices_loop():
    """GPU arrays the function reads from its closure hold host copies while it traces; the
    replay computes with the GPU arrays themselves. Arguments on both devices loop."""
    x, w = _rand(B, 4), _rand(4, 6, seed=1)
    want = _loop(lambda v, w: mx.tanh(v @ w).sum(), (x, w), (0, None))
    with backend.use_strict_gpu():
        wg = w.to(mx.gpu)
        got, vectorised, reason = _vmapped(lambda v: mx.tanh(v @ wg).sum(), (x,), (0,))
        assert vectorised, reason
        assert type(got._data) is StrictArray and type(wg._data) is StrictArray
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-6)
        # per-example gradients of a loss closing over a GPU weight and a GPU target
        target = _rand(6, seed=4).to(mx.gpu)
        host_target = _rand(6, seed=4)
        per_ex = mx.vmap(mx.grad(lambda v: ((mx.tanh(v @ wg) - target) ** 2).sum()))
        before = batching.STATS["vectorised"]
        got = per_ex(x.to(mx.gpu))
        assert batching.STATS["vectorised"] == before + 1, batching.LAST["reason"]
        assert type(got._data) is StrictArray
        got = np.asarray(got)
    want = mx.vmap(mx.grad(lambda v: ((mx.tanh(v @ w) - host_target) ** 2).sum()))(x)
    np.testing.assert_allclose(got, np.asarray(want), rtol=1e-5, atol=1e-6)
    with backend.use_strict_gpu():
        before = batching.STATS["fallback"]
        with pytest.raises(RuntimeError, match="same device"):  # (PyTorch's kind of error)
            mx.vmap(lambda v, w: v @ w, in_axes=(0, None))(x.to(mx.gpu), w)  # w on the host
        assert batching.STATS["fallback"] == before + 1
        assert batching.LAST["reason"] == "host and GPU arrays in one call"


def test_a_closure_array_updated_in_place_is_written_once_as_on_the_cpu():
    """A function writing into an array of its closure: the trace's write (one, as a CPU
    vmap makes it) lands on the GPU array."""
    x = _rand(B, 4)
    for gpu in (False, True):
        with backend.use_strict_gpu():
            acc = mx.zeros((4,))
            if gpu:
                acc = acc.to(mx.gpu)

            def f(v, acc=acc):
                acc[0] = acc[0] + 1.0
                return v * 2.0

            before = batching.STATS["vectorised"]
            got = mx.vmap(f)(x.to(mx.gpu) if gpu else x)
            assert batching.STATS["vectorised"] == before + 1, batching.LAST["reason"]
            assert (type(acc._data) is StrictArray) == gpu
            np.testing.assert_allclose(np.asarray(got), 2 * np.asarray(x), rtol=1e-6)
            np.testing.assert_array_equal(np.asarray(acc), [1.0, 0.0, 0.0, 0.0])
