"""``nn.BatchNorm`` on the fused ``batch_norm_train`` primitive against the composite formula.

The primitive (chainrule/core/ops/normalization.py) computes the statistics, the normalisation
and the affine in one kernel and differentiates by a closed form; these tests pin its values,
gradients (first order from the kernel, second order from the recorded form), running
statistics, the layouts and dtypes it leaves to the composite, ``vmap`` and ``mx.compile``.
"""

from __future__ import annotations

import numpy as np
import pytest

import chainrule.core as mx
import chainrule.nn as nn
from chainrule.core.ops.normalization import batch_norm_train

RNG = np.random.default_rng(7)


def _reference(x, w, b, eps):
    axes = tuple(range(x.ndim - 1))
    mean = mx.mean(x, axis=axes)
    var = mx.var(x, axis=axes)
    y = (x - mean) * mx.rsqrt(var + eps)
    if w is not None:
        y = y * w
    if b is not None:
        y = y + b
    return y


def _data(*shape, dtype=np.float64, offset=0.0):
    value = (RNG.standard_normal(shape) * 1.5 + offset).astype(dtype)
    return mx.array(value, dtype=mx.float64) if dtype == np.float64 else mx.array(value)


@pytest.mark.parametrize("shape", [(7, 3), (2, 5, 4), (3, 4, 5, 16), (2, 3, 3, 5)])
@pytest.mark.parametrize("affine", ["both", "weight", "bias", "none"])
def test_values_and_gradients_match_the_composite(shape, affine):
    c = shape[-1]
    x = _data(*shape, offset=2.0)
    w = _data(c) if affine in ("both", "weight") else None
    b = _data(c) if affine in ("both", "bias") else None
    cot = _data(*shape)

    def loss(f):
        return lambda x, *wb: (f(x, *wb) * cot).sum()

    def wrap(f):
        def call(x, *wb):
            it = iter(wb)
            ww = next(it) if w is not None else None
            bb = next(it) if b is not None else None
            return f(x, ww, bb)

        return call

    fused = wrap(lambda x, w, b: batch_norm_train(x, w, b, 1e-5)[0])
    ref = wrap(lambda x, w, b: _reference(x, w, b, 1e-5))
    args = [x] + [v for v in (w, b) if v is not None]
    np.testing.assert_allclose(np.asarray(fused(*args)), np.asarray(ref(*args)), atol=1e-10)
    argnums = tuple(range(len(args)))
    got = mx.grad(loss(fused), argnums)(*args)
    want = mx.grad(loss(ref), argnums)(*args)
    for g1, g2 in zip(got, want, strict=True):
        np.testing.assert_allclose(np.asarray(g1), np.asarray(g2), rtol=1e-9, atol=1e-10)


def test_second_order_and_jvp_match_the_composite():
    x, w, b = _data(4, 3, 2), _data(2), _data(2)

    def inner(f):
        return lambda x, w, b: (f(x, w, b) ** 3).sum()

    fused = inner(lambda x, w, b: batch_norm_train(x, w, b, 1e-3)[0])
    ref = inner(lambda x, w, b: _reference(x, w, b, 1e-3))
    for f_argnum in (0, 1):

        def gsum(f, a=f_argnum):
            return lambda x, w, b: (mx.grad(f, a)(x, w, b) ** 2).sum()

        got = mx.grad(gsum(fused), (0, 1, 2))(x, w, b)
        want = mx.grad(gsum(ref), (0, 1, 2))(x, w, b)
        for g1, g2 in zip(got, want, strict=True):
            np.testing.assert_allclose(np.asarray(g1), np.asarray(g2), rtol=1e-8, atol=1e-9)
    t = _data(4, 3, 2)
    _, jf = mx.jvp(lambda x: batch_norm_train(x, w, b, 1e-3)[0], (x,), (t,))
    _, jr = mx.jvp(lambda x: _reference(x, w, b, 1e-3), (x,), (t,))
    np.testing.assert_allclose(np.asarray(jf[0]), np.asarray(jr[0]), rtol=1e-8, atol=1e-9)


@pytest.mark.usefixtures(
    "cpu_default_device"
)  # the kernel's raw statistics read as NumPy: on the CPU under make gpu-check
def test_statistics_returned_are_the_batch_mean_and_biased_variance():
    x = _data(6, 5, 3, dtype=np.float32, offset=-1.0)
    _, mean, var = batch_norm_train(x, None, None, 1e-5)
    xn = np.asarray(x).reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(mean, xn.mean(0), rtol=1e-5)
    np.testing.assert_allclose(var, xn.var(0), rtol=1e-4)


def test_vmap_keeps_each_examples_statistics_and_grad_of_vmap_works():
    x, w, b = _data(3, 4, 5, 2), _data(2), _data(3, 2)

    def f(x, b):
        return batch_norm_train(x, w, b, 1e-5)[0]

    got = mx.vmap(f)(x, b)
    want = np.stack([np.asarray(f(x[i], b[i])) for i in range(3)])
    np.testing.assert_allclose(np.asarray(got), want, atol=1e-10)
    g = mx.grad(lambda x: (mx.vmap(f)(x, b) ** 2).sum())(x)
    g_loop = mx.grad(lambda x: sum((f(x[i], b[i]) ** 2).sum() for i in range(3)))(x)
    np.testing.assert_allclose(np.asarray(g), np.asarray(g_loop), atol=1e-9)
    per_example = mx.vmap(mx.grad(lambda x, b: (f(x, b) ** 3).sum()))(x, b)
    loop = [np.asarray(mx.grad(lambda x, b: (f(x, b) ** 3).sum())(x[i], b[i])) for i in range(3)]
    np.testing.assert_allclose(np.asarray(per_example), np.stack(loop), atol=1e-9)


def _model():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(5, 4)
            self.bn = nn.BatchNorm(4)

        def __call__(self, x):
            return self.bn(self.lin(x))

    return Net()


def test_training_step_under_compile_matches_eager():
    mx.random.seed(0)
    eager, comp = _model(), _model()
    comp.update(eager.parameters())
    x = _data(8, 3, 5, dtype=np.float32)

    def make(model):
        lg = nn.value_and_grad(model, lambda m, x: (m(x) ** 2).mean())

        def step(x):
            loss, g = lg(model, x)
            return loss, g

        return step

    step_c = mx.compile(make(comp), inputs=[comp.state], outputs=[comp.state])
    step_e = make(eager)
    for _ in range(3):
        le, ge = step_e(x)
        lc, gc = step_c(x)
        np.testing.assert_allclose(np.asarray(lc), np.asarray(le), rtol=1e-5)
        for k in ("weight", "bias"):
            np.testing.assert_allclose(
                np.asarray(gc["bn"][k]), np.asarray(ge["bn"][k]), rtol=1e-4, atol=1e-6
            )
        for k in ("running_mean", "running_var"):
            np.testing.assert_allclose(
                np.asarray(comp.bn[k]), np.asarray(eager.bn[k]), rtol=1e-5, atol=1e-7
            )


def test_layer_running_statistics_eval_and_options():
    x = _data(10, 4, 3, dtype=np.float32, offset=3.0)
    xn = np.asarray(x).reshape(-1, 3).astype(np.float64)
    bn = nn.BatchNorm(3, momentum=0.3)
    y = bn(x)
    np.testing.assert_allclose(np.asarray(bn.running_mean), 0.3 * xn.mean(0), rtol=1e-5)
    want_var = 0.7 + 0.3 * xn.var(0, ddof=1)  # the running variance is the unbiased one
    np.testing.assert_allclose(np.asarray(bn.running_var), want_var, rtol=1e-5)
    np.testing.assert_allclose(
        np.asarray(y).reshape(-1, 3), (xn - xn.mean(0)) / np.sqrt(xn.var(0) + 1e-5), atol=1e-4
    )
    bn.eval()
    rm, rv = np.asarray(bn.running_mean), np.asarray(bn.running_var)
    np.testing.assert_allclose(
        np.asarray(bn(x)), (np.asarray(x) - rm) / np.sqrt(rv + 1e-5), rtol=1e-5, atol=1e-5
    )
    # without running statistics the batch's are used in evaluation too
    free = nn.BatchNorm(3, affine=False, track_running_stats=False)
    free.eval()
    np.testing.assert_allclose(
        np.asarray(free(x)).reshape(-1, 3), (xn - xn.mean(0)) / np.sqrt(xn.var(0) + 1e-5), atol=1e-4
    )


def test_half_precision_keeps_the_composite_path():
    x = _data(6, 4, dtype=np.float16)
    bn = nn.BatchNorm(4)
    y = bn(x)
    np.testing.assert_array_equal(
        np.asarray(y), np.asarray(_reference(x, bn.weight, bn.bias, 1e-5))
    )
    xn = np.asarray(x).astype(np.float64)
    np.testing.assert_allclose(
        np.asarray(y).astype(np.float64),
        (xn - xn.mean(0)) / np.sqrt(xn.var(0) + 1e-5),
        atol=2e-2,
    )


def test_matches_real_mlx():
    mlx_core = pytest.importorskip("mlx.core")
    mlx_nn = pytest.importorskip("mlx.nn")
    xn = (RNG.standard_normal((4, 3, 3, 5)) * 2 + 1).astype(np.float32)
    ours, theirs = nn.BatchNorm(5, momentum=0.2), mlx_nn.BatchNorm(5, momentum=0.2)
    wn = RNG.uniform(0.5, 1.5, 5).astype(np.float32)
    ours.weight = mx.array(wn)
    theirs.weight = mlx_core.array(wn)
    cot = RNG.standard_normal(xn.shape).astype(np.float32)

    def lo(m, x):
        return (m(x) * mx.array(cot)).sum()

    def lt(m, x):
        return (m(x) * mlx_core.array(cot)).sum()

    l1, g1 = nn.value_and_grad(ours, lo)(ours, mx.array(xn))
    l2, g2 = mlx_nn.value_and_grad(theirs, lt)(theirs, mlx_core.array(xn))
    np.testing.assert_allclose(float(l1), float(l2), rtol=1e-4, atol=1e-4)
    for k in ("weight", "bias"):
        np.testing.assert_allclose(np.asarray(g1[k]), np.array(g2[k]), rtol=1e-4, atol=1e-4)
    for k in ("running_mean", "running_var"):
        np.testing.assert_allclose(np.asarray(ours[k]), np.array(theirs[k]), rtol=1e-5)


def _composite_norm(x, axes, eps):
    mean = mx.mean(x, axis=axes, keepdims=True)
    var = mx.var(x, axis=axes, keepdims=True)
    return (x - mean) * mx.rsqrt(var + eps)


@pytest.mark.parametrize(
    "make,axes_of",
    [
        (lambda: nn.InstanceNorm(6, affine=True), None),
        (lambda: nn.GroupNorm(3, 6), 1),
        (lambda: nn.GroupNorm(2, 6, pytorch_compatible=True), (1, 3)),
    ],
    ids=["instance", "group", "group-pytorch"],
)
def test_instance_and_group_norm_match_the_composite(make, axes_of):
    """InstanceNorm and GroupNorm take the primitive with per-sample statistics (``lead=1``)."""
    layer = make()
    layer.weight = _data(6, dtype=np.float32)
    layer.bias = _data(6, dtype=np.float32)
    x = _data(3, 4, 5, 6, dtype=np.float32, offset=1.0)
    cot = _data(3, 4, 5, 6, dtype=np.float32)

    def reference(x):
        if axes_of is None:
            y = _composite_norm(x, (1, 2), 1e-5)
        elif axes_of == 1:
            y = _composite_norm(x.reshape(3, -1, 3), 1, 1e-5).reshape(x.shape)
        else:
            y = _composite_norm(x.reshape(3, -1, 2, 3), (1, 3), 1e-5).reshape(x.shape)
        return layer.weight * y + layer.bias

    np.testing.assert_allclose(np.asarray(layer(x)), np.asarray(reference(x)), atol=2e-5)
    got = mx.grad(lambda x: (layer(x) * cot).sum())(x)
    want = mx.grad(lambda x: (reference(x) * cot).sum())(x)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=5e-5)
    x64 = x.astype(mx.float64)
    layer.update({k: v.astype(mx.float64) for k, v in layer.parameters().items()})
    h = mx.grad(lambda x: (mx.grad(lambda x: (layer(x) ** 3).sum())(x) ** 2).sum())(x64)
    h_ref = mx.grad(lambda x: (mx.grad(lambda x: (reference(x) ** 3).sum())(x) ** 2).sum())(x64)
    np.testing.assert_allclose(np.asarray(h), np.asarray(h_ref), rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("lead", [0, 1])
def test_vmap_without_affine_adds_a_kept_axis(lead):
    x = _data(3, 2, 4, 5)

    def f(x):
        return batch_norm_train(x, None, None, 1e-5, lead)[0]

    want = np.stack([np.asarray(f(x[i])) for i in range(3)])
    np.testing.assert_allclose(np.asarray(mx.vmap(f)(x)), want, atol=1e-10)
    g = mx.vmap(mx.grad(lambda x: (f(x) ** 3).sum()))(x)
    loop = [np.asarray(mx.grad(lambda x: (f(x) ** 3).sum())(x[i])) for i in range(3)]
    np.testing.assert_allclose(np.asarray(g), np.stack(loop), atol=1e-9)


def test_strided_inputs_and_broadcast_cotangents():
    """Views (a transposed or strided ``x``) and a broadcast cotangent (``y.sum()``)."""
    base = _data(6, 5, 8)
    w, b = _data(3), _data(3)
    for x in (mx.swapaxes(base[:, :, :3], 0, 1), base[:, ::2, 1::3], base[::2, 1:, 2:5]):
        for loss in (lambda y: y.sum(), lambda y: (y * y).sum()):

            def fused(x, w, b, loss=loss):
                return loss(batch_norm_train(x, w, b, 1e-5)[0])

            def ref(x, w, b, loss=loss):
                return loss(_reference(x, w, b, 1e-5))

            got = mx.grad(fused, (0, 1, 2))(x, w, b)
            want = mx.grad(ref, (0, 1, 2))(x, w, b)
            for g1, g2 in zip(got, want, strict=True):
                np.testing.assert_allclose(np.asarray(g1), np.asarray(g2), atol=1e-9)


@pytest.mark.parametrize(
    "make",
    [
        lambda: nn.BatchNorm(6),
        lambda: nn.InstanceNorm(6, affine=True),
        lambda: nn.GroupNorm(3, 6),
        lambda: nn.GroupNorm(2, 6, pytorch_compatible=True),
    ],
    ids=["batch", "instance", "group", "group-pytorch"],
)
def test_the_kernels_run_on_the_strict_gpu_backend(make):
    """The kernels reach the array library only through the backend (CuPy's refusals)."""
    from chainrule.core import backend

    xn = (RNG.standard_normal((4, 3, 5, 6)) + 2.0).astype(np.float32)

    def step():
        layer = make()
        x = mx.array(xn)
        value, gx = mx.value_and_grad(lambda x: (layer(x) ** 2).sum())(x)
        assert backend.is_gpu(gx._data) == (mx.default_device() == mx.gpu)
        return np.asarray(value), np.asarray(gx)

    want = step()
    with backend.use_strict_gpu():
        mx.set_default_device(mx.gpu)
        got = step()
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
