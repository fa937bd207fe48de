"""mx.compile: a traced program replayed, always equal to the eager function."""

from __future__ import annotations

import os
import subprocess
import sys
from functools import partial

import numpy as np
import pytest

import chainrule.core as mx
import chainrule.nn as nn
import chainrule.optimizers as optim

# these count traces and replays on the CPU (GPU data runs eagerly: test_compile_gpu.py)
pytestmark = pytest.mark.usefixtures("cpu_default_device")

C = sys.modules["chainrule.core.compile"]


def _stats_delta(before: dict) -> dict:
    return {k: C.STATS[k] - before[k] for k in C.STATS}


def _rand(*shape, seed=0):
    return mx.array(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


def test_pure_function_replays_and_matches_eager():
    def f(x, y):
        return mx.sum(mx.tanh(x * y) + 2.0 * x), mx.mean(mx.exp(-x), axis=0)

    cf = mx.compile(f)
    before = dict(C.STATS)
    for seed in range(5):
        x, y = _rand(3, 4, seed=seed), _rand(3, 4, seed=seed + 10)
        got, want = cf(x, y), f(x, y)
        for g, w in zip(got, want):
            np.testing.assert_allclose(np.array(g), np.array(w), rtol=1e-6)
    d = _stats_delta(before)
    assert d["traces"] == 1 and d["verified"] == 1 and d["replays"] == 3
    assert cf.last_reason is None


def test_program_is_flat_numpy_without_engine_bookkeeping():
    def f(x, w):
        return mx.sum(nn.relu(x @ w) ** 2)

    cf = mx.compile(f)
    x, w = _rand(4, 3), _rand(3, 5, seed=1)
    cf(x, w)
    (prog,) = cf.cache.values()
    # forward only: matmul, relu (maximum), square, sum
    assert prog.n_steps == 4, prog.source
    assert "Node" not in prog.source


def test_new_shape_traces_again():
    cf = mx.compile(lambda x: (x * 3.0).sum(axis=0))
    before = dict(C.STATS)
    for n in (2, 3, 2, 3):
        x = _rand(n, 4, seed=n)
        np.testing.assert_allclose(np.array(cf(x)), np.array((x * 3.0).sum(axis=0)), rtol=1e-6)
    assert _stats_delta(before)["traces"] == 2


def _mlx_step(model, opt, loss_fn, compiled: bool):
    """The MLX-style training step, optionally compiled over the model's and optimizer's state."""
    lg = nn.value_and_grad(model, loss_fn)

    def step(x, y):
        loss, g = lg(model, x, y)
        opt.update(model, g)
        return loss

    if compiled:
        state = [model.state, opt.state]
        step = partial(mx.compile, inputs=state, outputs=state)(step)
    return step


def _torch_step(model, opt, loss_fn, compiled: bool):
    """The PyTorch-style training step, optionally compiled over the model's state."""

    def step(x, y):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    if compiled:
        step = partial(mx.compile, inputs=model.state, outputs=model.state)(step)
    return step


def _mlp(opt_name: str, dropout: float = 0.0):
    """The seeded 20-16-5 MLP (ReLU, optional dropout) and its optimizer ("sgd" or Adam)."""
    mx.random.seed(3)
    layers = [nn.Linear(20, 16), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(16, 5))
    model = nn.Sequential(*layers)
    opt = optim.SGD(learning_rate=0.1, momentum=0.9) if opt_name == "sgd" else optim.Adam(1e-2)
    return model, opt


def _mlp_run(compiled: bool, opt_name: str, steps: int = 12, dropout: float = 0.0):
    model, opt = _mlp(opt_name, dropout)

    def loss_fn(m, x, y):
        return nn.losses.cross_entropy(m(x), y, reduction="mean")

    step = _mlx_step(model, opt, loss_fn, compiled)
    rng = np.random.default_rng(7)
    losses = []
    for _ in range(steps):
        x = mx.array(rng.standard_normal((8, 20)).astype(np.float32))
        y = mx.array(rng.integers(0, 5, 8))
        losses.append(step(x, y).item())
    return model, losses, step


@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_training_run_equals_eager(opt_name, dropout):
    before = dict(C.STATS)
    m1, l1, step = _mlp_run(True, opt_name, dropout=dropout)
    d = _stats_delta(before)
    m2, l2, _ = _mlp_run(False, opt_name, dropout=dropout)
    np.testing.assert_allclose(l1, l2, rtol=1e-6)
    p1 = dict(nn.utils.tree_flatten(m1.parameters()))
    p2 = dict(nn.utils.tree_flatten(m2.parameters()))
    for k in p2:
        np.testing.assert_allclose(np.array(p1[k]), np.array(p2[k]), rtol=1e-6, atol=1e-7)
    # two traces (the optimizer creates its state on the first call), one checked replay,
    # then replays only
    assert step.last_reason is None
    assert d["replays"] == 12 - 3 and d["verified"] == 1 and d["eager"] == 0


def test_random_draws_advance_the_state():
    f = mx.compile(lambda x: x + mx.random.uniform(shape=x.shape))
    g = lambda x: x + mx.random.uniform(shape=x.shape)  # noqa: E731
    x = mx.zeros((3,))
    mx.random.seed(11)
    got = [np.array(f(x)) for _ in range(5)]
    mx.random.seed(11)
    want = [np.array(g(x)) for _ in range(5)]
    np.testing.assert_array_equal(np.stack(got), np.stack(want))
    assert len({tuple(v) for v in got}) == 5
    assert f.last_reason is None


def test_data_dependent_branch_stays_correct():
    def f(x):
        if mx.sum(x) > 0:
            return x * 2.0
        return x - 1.0

    cf = mx.compile(f)
    for v in (1.0, 2.0, -1.0, 3.0, -5.0):
        x = mx.full((3,), v)
        np.testing.assert_allclose(np.array(cf(x)), np.array(f(x)))


def test_labels_out_of_range_still_raise_after_compiling():
    def f(logits, y):
        return nn.losses.cross_entropy(logits, y, reduction="mean")

    cf = mx.compile(f)
    logits = _rand(4, 3)
    for _ in range(4):
        cf(logits, mx.array([0, 1, 2, 1]))
    with pytest.raises(ValueError, match="class index 7 is out of range"):
        cf(logits, mx.array([0, 1, 7, 1]))


def test_python_values_read_inside_fall_back_to_eager():
    def f(x):
        scale = float(np.array(x._data).max())  # a copy NumPy makes outside the tracer
        return x * scale

    cf = mx.compile(f)
    for seed in range(4):
        x = _rand(5, seed=seed)
        np.testing.assert_allclose(np.array(cf(x)), np.array(f(x)), rtol=1e-6)


def test_grad_of_a_compiled_function():
    f = lambda x: mx.sum(mx.sin(x) * x)  # noqa: E731
    cf = mx.compile(f)
    x = _rand(6)
    for _ in range(3):
        np.testing.assert_allclose(np.array(mx.grad(cf)(x)), np.array(mx.grad(f)(x)), rtol=1e-6)


def test_scatter_into_a_constant_is_fresh_on_every_replay():
    def f(idx, v):
        return mx.zeros((4,)).at[idx].add(v)

    cf = mx.compile(f)
    for i in range(5):
        idx = mx.array([i % 4, (i + 1) % 4])
        v = mx.array([1.0, 2.0])
        np.testing.assert_array_equal(np.array(cf(idx, v)), np.array(f(idx, v)))


def test_disable_compile_runs_eagerly():
    cf = mx.compile(lambda x: x + 1.0)
    before = dict(C.STATS)
    mx.disable_compile()
    try:
        for _ in range(3):
            cf(mx.zeros((2,)))
    finally:
        mx.enable_compile()
    assert _stats_delta(before)["traces"] == 0
    assert not cf.cache


def test_environment_switch_disables_compile():
    code = (
        "import sys, chainrule.core as mx\n"
        "C = sys.modules['chainrule.core.compile']\n"
        "f = mx.compile(lambda x: x * 2.0)\n"
        "[f(mx.ones((2,))) for _ in range(3)]\n"
        "print(C.STATS['traces'])\n"
    )
    env = dict(os.environ, MLX_DISABLE_COMPILE="1")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "0"


def test_batchnorm_running_stats_are_updated_by_the_replay():
    def run(compiled):
        mx.random.seed(0)
        model = nn.Sequential(nn.Linear(6, 4), nn.BatchNorm(4), nn.ReLU(), nn.Linear(4, 2))
        opt = optim.SGD(learning_rate=0.05)
        step = _mlx_step(model, opt, lambda m, x, y: nn.losses.mse_loss(m(x), y), compiled)
        rng = np.random.default_rng(1)
        for _ in range(8):
            step(
                mx.array(rng.standard_normal((10, 6)).astype(np.float32)),
                mx.array(rng.standard_normal((10, 2)).astype(np.float32)),
            )
        return dict(nn.utils.tree_flatten(model.state))

    s1, s2 = run(True), run(False)
    assert any("running_mean" in k for k in s2)
    for k in s2:
        np.testing.assert_allclose(np.array(s1[k]), np.array(s2[k]), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
def test_pytorch_style_step_under_compile_equals_eager(opt_name):
    """backward()/step() inside a compiled function. SGD compiles (the loss comes back
    detached, the gradients are replayed into .grad); PyTorch-style Adam keeps its step counts
    in Python, which the checked first replay notices, so it runs eagerly. Run twice in a row:
    leftovers of the first trace are constants to the second."""

    def run(compiled):
        mx.random.seed(0)
        model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
        params = model.parameters()
        opt = optim.SGD(params, lr=0.1) if opt_name == "sgd" else optim.Adam(params, lr=0.01)
        step = _torch_step(model, opt, nn.CrossEntropyLoss(), compiled)
        rng = np.random.default_rng(0)
        losses = []
        before = dict(C.STATS)
        for _ in range(7):
            x = mx.array(rng.standard_normal((5, 6)).astype(np.float32))
            losses.append(step(x, mx.array(rng.integers(0, 3, 5))).item())
        grads = [np.array(p.grad) for p in model.parameters()]
        return losses, [np.array(p) for p in model.parameters()], grads, _stats_delta(before)

    (l1, p1, g1, d), (l2, p2, g2, _) = run(True), run(False)
    np.testing.assert_allclose(l1, l2, rtol=1e-6)
    for a, b in zip(p1 + g1, p2 + g2):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-8)
    if opt_name == "sgd":
        assert d["replays"] == 4 and d["eager"] == 0
    else:
        assert d["rejected"] == 1 and d["replays"] == 0


class _Flat(nn.Module):
    def __call__(self, x):
        return x.reshape(x.shape[0], -1)


class _RopeAttention(nn.Module):
    """RMSNorm, rotary positions and softmax attention: the fast primitives under compile."""

    def __init__(self):
        super().__init__()
        self.norm = nn.RMSNorm(8)
        self.rope = nn.RoPE(4, traditional=True)
        self.proj = nn.Linear(8, 8)

    def __call__(self, x):
        h = self.rope(self.norm(x).reshape(4, 3, 2, 4).transpose(0, 2, 1, 3))
        w = mx.softmax(h @ h.transpose(0, 1, 3, 2), axis=-1)
        return self.proj((w @ h).transpose(0, 2, 1, 3).reshape(4, 3, 8))


_MODELS = {
    "rope_attention": (
        lambda: _RopeAttention(),
        lambda r: r.standard_normal((4, 3, 8)).astype(np.float32),
    ),
    "conv": (
        lambda: nn.Sequential(
            nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), _Flat(), nn.Linear(36, 3)
        ),
        lambda r: r.standard_normal((4, 8, 8, 1)).astype(np.float32),
    ),
    "layernorm_gelu": (
        lambda: nn.Sequential(nn.Linear(6, 8), nn.LayerNorm(8), nn.GELU(), nn.Linear(8, 3)),
        lambda r: r.standard_normal((4, 6)).astype(np.float32),
    ),
    "embedding": (
        lambda: nn.Sequential(nn.Embedding(10, 4), _Flat(), nn.Linear(12, 3)),
        lambda r: r.integers(0, 10, (4, 3)),
    ),
    "lstm": (lambda: nn.LSTM(4, 5), lambda r: r.standard_normal((4, 3, 4)).astype(np.float32)),
    "transformer": (
        lambda: nn.TransformerEncoderLayer(8, 2, dropout=0.1),
        lambda r: r.standard_normal((4, 3, 8)).astype(np.float32),
    ),
    "batchnorm_dropout": (
        lambda: nn.Sequential(
            nn.Linear(6, 8), nn.BatchNorm(8), nn.Dropout(0.5), nn.ReLU(), nn.Linear(8, 3)
        ),
        lambda r: r.standard_normal((4, 6)).astype(np.float32),
    ),
}


@pytest.mark.parametrize("name", sorted(_MODELS))
def test_common_models_compile_and_equal_eager(name):
    make, data = _MODELS[name]

    def run(compiled):
        mx.random.seed(0)
        model = make()
        opt = optim.AdamW(learning_rate=1e-2)

        def loss_fn(m, x, y):
            out = m(x)
            out = out[0] if isinstance(out, tuple) else out
            if out.ndim == 2:
                return nn.losses.cross_entropy(out, y, reduction="mean")
            return (out**2).mean()

        step = _mlx_step(model, opt, loss_fn, compiled)
        r = np.random.default_rng(1)
        before = dict(C.STATS)
        losses = [step(mx.array(data(r)), mx.array(r.integers(0, 3, 4))).item() for _ in range(7)]
        return losses, _stats_delta(before), step

    (l1, d, step), (l2, _, _) = run(True), run(False)
    np.testing.assert_allclose(l1, l2, rtol=1e-5)
    assert step.last_reason is None
    assert d["replays"] == 4 and d["eager"] == 0


def test_a_compiled_forward_keeps_its_graph_for_backward_outside():
    mx.random.seed(0)
    model = nn.Linear(3, 2)
    fwd = partial(mx.compile, inputs=model.state, outputs=model.state)(lambda x: model(x).sum())
    for i in range(4):
        model.zero_grad()
        loss = fwd(mx.ones((2, 3)) * float(i))
        loss.backward()  # the graph is there: the function runs eagerly
        np.testing.assert_allclose(np.array(model.bias.grad), [2.0, 2.0])
    assert "graph" in fwd.last_reason


def test_keyword_arrays_structured_results_and_nesting():
    inner = mx.compile(lambda a, scale=1.0: mx.exp(a) * scale)

    def f(x, *, w, scale=2.0):
        return {"y": inner(x @ w, scale=scale), "n": 3, "pair": (x.sum(), w.mean())}

    cf = mx.compile(f)
    for seed in range(4):
        x, w = _rand(2, 3, seed=seed), _rand(3, 4, seed=seed + 5)
        got, want = cf(x, w=w), f(x, w=w)
        assert got["n"] == 3 and set(got) == {"y", "n", "pair"}
        np.testing.assert_allclose(np.array(got["y"]), np.array(want["y"]), rtol=1e-6)
        for a, b in zip(got["pair"], want["pair"]):
            np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-6)
    assert cf.last_reason is None
    # a Python argument is part of the signature: a new value traces again
    assert len(cf.cache) == 1
    np.testing.assert_allclose(
        np.array(cf(x, w=w, scale=3.0)["y"]), np.array(f(x, w=w, scale=3.0)["y"]), rtol=1e-6
    )
    assert len(cf.cache) == 2


def test_compiled_method_and_state_given_as_inputs_only():
    class Counter(nn.Module):
        def __init__(self):
            super().__init__()
            self.total = mx.zeros((2,))

        @mx.compile
        def peek(self, x):
            return self.total + x

    c = Counter()
    for i in range(4):
        np.testing.assert_allclose(np.array(c.peek(mx.full((2,), float(i)))), [i, i])

    acc = {"v": mx.zeros((3,))}
    add = partial(mx.compile, inputs=acc, outputs=acc)(lambda x: acc.update(v=acc["v"] + x))
    for _ in range(5):
        add(mx.ones((3,)))
    np.testing.assert_allclose(np.array(acc["v"]), [5.0, 5.0, 5.0])


def test_a_scheduler_changing_the_learning_rate_retraces():
    """PyTorch-style learning rates are Python numbers in param_groups: the program checks the
    setting it was traced with, and traces again when StepLR changes it."""

    def run(compiled):
        mx.random.seed(0)
        model = nn.Linear(4, 2)
        opt = optim.SGD(model.parameters(), lr=0.5)
        sched = optim.lr_scheduler.StepLR(opt, step_size=4, gamma=0.1)
        step = _torch_step(model, opt, nn.MSELoss(), compiled)
        rng = np.random.default_rng(0)
        before = dict(C.STATS)
        for _ in range(12):
            x = mx.array(rng.standard_normal((3, 4)).astype(np.float32))
            step(x, mx.array(rng.standard_normal((3, 2)).astype(np.float32)))
            sched.step()
        return [np.array(p) for p in model.parameters()], _stats_delta(before)

    (p1, d), (p2, _) = run(True), run(False)
    for a, b in zip(p1, p2):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    assert d["replays"] > 0 and d["traces"] >= 3  # traced again after each change


def test_changing_an_mlx_hyper_parameter_traces_again():
    """MLX-style momentum is a Python number in the optimizer: changed between steps, the
    compiled step notices and follows, as the eager one does."""

    def run(compiled):
        mx.random.seed(0)
        model = nn.Linear(4, 2)
        opt = optim.SGD(learning_rate=0.1, momentum=0.9)
        step = _mlx_step(model, opt, lambda m, x, y: nn.losses.mse_loss(m(x), y), compiled)
        rng = np.random.default_rng(0)
        for i in range(10):
            if i == 6:
                opt.momentum = 0.0
            x = mx.array(rng.standard_normal((3, 4)).astype(np.float32))
            step(x, mx.array(rng.standard_normal((3, 2)).astype(np.float32)))
        return [np.array(p) for p in model.parameters()]

    for a, b in zip(run(True), run(False)):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_trace_side_stands_without_the_program_side():
    """``core/tracing.py`` (Traced, kernel) imports only NumPy and the standard library, so the op
    table can use it without the program machinery; compile.py re-exports both names."""
    import ast
    from pathlib import Path

    source = Path(C.__file__).with_name("tracing.py").read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add("." * node.level + (node.module or ""))
    # `from . import random` is the one package import (lazily, inside a draw)
    assert imported <= {
        "__future__",
        "functools",
        "operator",
        "threading",
        "weakref",
        "collections.abc",
        "typing",
        "numpy",
        ".",
    }, imported
    trace = sys.modules["chainrule.core.tracing"]
    from chainrule.core.compile import Traced, kernel

    assert Traced is trace.Traced and kernel is trace.kernel
    assert mx.trace is not trace  # the submodule does not shadow the mx.trace op
    np.testing.assert_allclose(np.array(mx.trace(mx.eye(3))), 3.0)


def test_namedtuple_arguments_are_containers_not_constants():
    """Namedtuples follow the one tree policy: their arrays are inputs of the program (one trace
    for every call), and a namedtuple result comes back as one."""
    from collections import namedtuple

    Batch = namedtuple("Batch", "x y")
    cf = mx.compile(lambda b: Batch(b.x * b.y, mx.sum(b.y)))
    before = dict(C.STATS)
    for seed in range(4):
        b = Batch(_rand(3, seed=seed), _rand(3, seed=seed + 5))
        got = cf(b)
        assert type(got) is Batch
        np.testing.assert_allclose(np.array(got.x), np.array(b.x * b.y), rtol=1e-6)
        np.testing.assert_allclose(np.array(got.y), np.array(mx.sum(b.y)), rtol=1e-6)
    d = _stats_delta(before)
    assert d["traces"] == 1 and d["replays"] == 2, (d, cf.last_reason)


def test_list_and_tuple_arguments_have_different_signatures():
    cf = mx.compile(lambda t: [v * 2 for v in t] if type(t) is list else tuple(v * 3 for v in t))
    x = _rand(2)
    before = dict(C.STATS)
    for _ in range(3):
        assert type(cf([x])) is list and type(cf((x,))) is tuple
        np.testing.assert_allclose(np.array(cf((x,))[0]), np.array(x * 3), rtol=1e-6)
    d = _stats_delta(before)
    assert d["traces"] == 2 and d["rejected"] == 0 and d["eager"] == 0, d


def test_an_input_only_state_changed_inside_keeps_plain_values():
    """The optimizer replaces its step count inside the call; the state holds no traced value.

    (MLX's test_update_lr_compiled: a compiled step with ``inputs=optimizer.state`` only, then
    a new learning rate, which the replay reads from the state.)
    """
    import chainrule.optimizers as optim

    params = {"w": mx.ones((5, 5))}
    grads = {"w": mx.ones((5, 5))}
    opt = optim.SGD(-1.0)
    update = mx.compile(lambda g: opt.apply_gradients(g, params), inputs=opt.state)
    np.testing.assert_allclose(update(grads)["w"].numpy(), 2.0)
    assert type(opt.state["step"]._data) is np.ndarray
    opt.learning_rate = -2.0
    np.testing.assert_allclose(update(grads)["w"].numpy(), 3.0)


# -- MLX's rules for arguments, closures and shapeless programs (issue 16) ---------------------


def test_arguments_other_than_trees_of_arrays_and_constants_raise():
    class Holder:
        value = 1

    f = mx.compile(lambda x, y: x + y.value)
    with pytest.raises(ValueError, match="trees of arrays or constants"):
        f(mx.array(0.0), Holder())
    with pytest.raises(ValueError, match="trees of arrays or constants"):
        f(mx.array(0.0), y=Holder())
    g = mx.compile(lambda x, t: x + t["a"][0] + (0 if t["b"] is None else 1) + len(t["c"]))
    assert g(mx.array(1.0), {"a": [2.0], "b": None, "c": "xy"}).item() == 5.0


def test_closure_values_are_those_of_the_trace():
    """MLX: "closures are not updated". The first replay is still checked, against an eager
    call that sees the closure as the trace saw it."""
    y = 1.0
    d = {"a": mx.array(1.0)}

    def fun(x):
        return x + y + d["a"]

    f = mx.compile(fun)
    before = dict(C.STATS)
    assert f(mx.array(0.0)).item() == 2.0
    y = 5.0
    d["a"] = mx.array([4.0, 5.0])
    assert f(mx.array(1.0)).item() == 3.0  # traced y and d["a"]; verified
    assert f(mx.array(2.0)).item() == 4.0
    delta = _stats_delta(before)
    assert delta["traces"] == 1 and delta["verified"] == 1 and delta["rejected"] == 0
    assert y == 5.0 and d["a"].shape == (2,)  # the closure itself is left as the caller set it


def test_closure_holding_an_object_still_runs_eagerly_when_it_changes():
    class Box:
        v = 1.0

    box = Box()
    f = mx.compile(lambda x: x + box.v)
    assert f(mx.array(0.0)).item() == 1.0
    box.v = 3.0
    assert f(mx.array(0.0)).item() == 3.0  # not data: the checked replay notices, eagerly
    assert f(mx.array(1.0)).item() == 4.0


def test_a_wrong_replay_is_rejected_even_when_the_closure_changed():
    """A program that does not follow its argument (a Python value read from it is a guard
    that fails here) runs eagerly: the answer is right for the argument."""
    z = 1.0

    def fun(x):
        return x * 2 + z if x.item() > 0 else x - z

    f = mx.compile(fun)
    assert f(mx.array(1.0)).item() == 3.0
    z = 10.0
    assert f(mx.array(-1.0)).item() == -11.0


def test_shapeless_replays_new_shapes_without_tracing():
    y = 1

    def fun(x):
        return x * x.sum(-1, keepdims=True) + y

    f = mx.compile(fun, shapeless=True)
    before = dict(C.STATS)
    a = mx.array([[1, 2], [3, 4], [5, 6]])
    assert np.array_equal(np.array(f(a)), np.array(fun(a)))
    y = 2  # the traced value stays, as in MLX
    b = mx.array([[1, 2, 3]])
    assert np.array_equal(np.array(f(b)), np.array(b * b.sum(-1, keepdims=True) + 1))
    assert _stats_delta(before)["traces"] == 1
    f(mx.array([1, 2]))  # a new number of dimensions traces again
    f(mx.array([[1.0, 2.0]]))  # and so does a new dtype
    assert _stats_delta(before)["traces"] == 3


def test_shapeless_never_returns_a_shape_frozen_into_the_program():
    """Shapes baked into the program (a constant made from x.shape) cannot silently apply to
    other shapes: those shapes run eagerly, others keep the program."""

    def fun(x):
        return x + mx.ones(x.shape) * x.shape[0]

    f = mx.compile(fun, shapeless=True)
    for n in (2, 3, 2, 3, 4):
        x = mx.arange(n).astype(mx.float32)
        assert np.array_equal(np.array(f(x)), np.array(fun(x)))


def test_shapeless_reshape_to_a_traced_size_raises_as_in_mlx():
    f = mx.compile(lambda x: x.reshape(x.shape[0] * x.shape[1], -1), shapeless=True)
    assert f(mx.zeros((2, 3, 4))).shape == (6, 4)
    assert f(mx.zeros((2, 3, 8))).shape == (6, 8)
    with pytest.raises(ValueError):
        f(mx.zeros((5, 5, 5)))


def test_shapeless_gradient_of_a_broadcasting_matmul():
    def loss(args):
        return (args[0] @ args[1]).sum()

    g = mx.compile(mx.grad(loss), shapeless=True)
    for a, b in (((2, 1, 4, 2), (3, 2, 5)), ((3, 1, 4, 2), (2, 2, 5))):
        args = (mx.ones(a), mx.ones(b))
        out, want = g(args), mx.grad(loss)(args)
        for o, w in zip(out, want):
            assert o.shape == w.shape and np.allclose(np.array(o), np.array(w))
