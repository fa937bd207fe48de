"""mx.compile and mx.export_function on GPU data, under the strict CuPy stand-in.

The tracer records NumPy calls on host arrays, so a call whose arguments and state are on the
GPU is traced on host copies (with the CPU as the default device while it runs) and its
program replays on the GPU arrays (``program_gpu.py``); results and state stay on the GPU and
equal the CPU's. A closure over GPU data, or arguments on both devices, run eagerly and say so
in ``last_reason``.
An export traces host copies of GPU example inputs and weights (the file is the one a CPU
export writes); an imported function called with GPU inputs returns GPU results.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from test_compile import _mlp, _mlx_step

import chainrule.core as mx
import chainrule.nn as nn
from chainrule.core import backend
from chainrule.core.strict_backend import StrictArray
from chainrule.utils import tree_flatten

C = sys.modules["chainrule.core.compile"]

# these tests choose devices themselves: the CPU is the default while each runs (conftest.py)
pytestmark = pytest.mark.usefixtures("cpu_default_device")


def _delta(before: dict) -> dict:
    return {k: C.STATS[k] - before[k] for k in C.STATS}


def _host(a) -> np.ndarray:
    return np.asarray(a)  # an explicit copy (mx.array converts itself)


def _on_gpu(*arrays) -> bool:
    return all(type(a._data) is StrictArray for a in arrays)


def _rand(*shape, seed=0):
    return mx.array(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


def _f(x, y):
    return mx.sum(mx.tanh(x * y) + 2.0 * x), mx.mean(mx.exp(-x), axis=0), (x @ y.T).max()


def test_gpu_arguments_trace_on_host_copies_and_replay_on_the_gpu():
    xs = [(_rand(3, 4, seed=s), _rand(3, 4, seed=s + 10)) for s in range(4)]
    want = [[_host(r) for r in _f(x, y)] for x, y in xs]
    with backend.use_strict_gpu():
        cf = mx.compile(_f)
        before = dict(C.STATS)
        for (x, y), w in zip(xs, want):
            got = cf(x.to(mx.gpu), y.to(mx.gpu))
            assert _on_gpu(*got)
            for g, e in zip(got, w):
                np.testing.assert_allclose(_host(g), e, rtol=1e-6)
        d = _delta(before)
        assert d["traces"] == 1 and d["verified"] == 1 and d["replays"] == 2 and d["eager"] == 0
        assert cf.last_reason is None
        (prog,) = cf.cache.values()
        assert prog.gpu_run is not None  # the GPU replay's namespace was built
        # host and GPU arguments in one call: eagerly, on the GPU library's terms
        with pytest.raises(backend.DeviceMismatchError, match="same device"):
            cf(xs[0][0].to(mx.gpu), xs[0][1])
        assert cf.last_reason == C.MIXED_REASON
    # back on the CPU the same compiled function traces (its own signature) and replays
    before = dict(C.STATS)
    for (x, y), w in zip(xs, want):
        for g, e in zip(cf(x, y), w):
            np.testing.assert_allclose(_host(g), e, rtol=1e-6)
    d = _delta(before)
    assert d["traces"] == 1 and d["verified"] == 1 and d["replays"] == 2
    assert cf.last_reason is None


def test_gpu_default_device_replays_draws_and_constants_on_the_gpu():
    """New arrays made inside the function (a random draw, an arange) are made on the host
    while tracing; the replay draws the same numbers as eager calls and copies the constant to
    the GPU once."""
    with backend.use_strict_gpu():
        mx.set_default_device(mx.gpu)
        cf = mx.compile(lambda: mx.random.normal((3,)) + mx.arange(3))
        mx.random.seed(1)
        got = [cf() for _ in range(4)]
        mx.random.seed(1)
        want = [mx.random.normal((3,)) + mx.arange(3) for _ in range(4)]
        assert _on_gpu(*got)
        for g, e in zip(got, want):
            np.testing.assert_array_equal(_host(g), _host(e))
        assert cf.last_reason is None and len(cf.cache) == 1


def test_gpu_replay_maps_numpy_only_steps():
    """Steps the GPU library lacks or has under other names: a scatter-add (``add.at``), a
    cumulative maximum (``maximum.accumulate``: explicit host copies), reductions."""
    idx = mx.array([0, 2, 2, 1])

    def f(x, v):
        y = x.at[idx].add(v)
        return mx.cummax(y, axis=0) * 2.0, mx.max(y, axis=1), mx.logsumexp(y, axis=0)

    x, v = _rand(3, 4), _rand(4, 4, seed=2)
    want = [_host(o) for o in f(x, v)]
    with backend.use_strict_gpu():
        cf = mx.compile(f)
        for _ in range(3):
            got = cf(x.to(mx.gpu), v.to(mx.gpu))
            assert _on_gpu(*got)
            for g, e in zip(got, want):
                np.testing.assert_allclose(_host(g), e, rtol=1e-6)
        assert cf.last_reason is None


def test_closure_over_gpu_data_is_not_frozen():
    """A function reading GPU arrays from a closure (no array argument): the trace sees GPU
    values it cannot record, so the signature runs eagerly from then on."""
    with backend.use_strict_gpu():
        w = _rand(4).to(mx.gpu)
        box = {"w": w}
        cf = mx.compile(lambda: (box["w"] * 2.0).sum())
        before = dict(C.STATS)
        first = cf()
        assert _on_gpu(first)
        np.testing.assert_allclose(_host(first), 2 * _host(w).sum(), rtol=1e-6)
        assert cf.last_reason == C.GPU_REASON
        box["w"] = w + 1.0  # an object updated in place: read afresh
        second = cf()
        assert _on_gpu(second)
        np.testing.assert_allclose(_host(second), 2 * (_host(w) + 1).sum(), rtol=1e-6)
        d = _delta(before)
        assert d["traces"] == 1 and d["rejected"] == 1 and d["eager"] == 1
        assert d["replays"] == 0 and d["verified"] == 0


def _loss_fn(m, x, y):
    return nn.losses.cross_entropy(m(x), y, reduction="mean")


def _batches(n: int, fixed: bool = False):
    rng = np.random.default_rng(7)
    out = [
        (rng.standard_normal((8, 20)).astype(np.float32), rng.integers(0, 5, 8)) for _ in range(n)
    ]
    return [out[0]] * n if fixed else out  # one batch: the loss must go down


def _train(
    device: str,
    opt_name: str,
    compiled: bool,
    dropout: float = 0.0,
    steps: int = 10,
    fixed: bool = False,
):
    """Losses, parameters (host copies) and whether the state stayed on ``device``."""
    if device == "gpu":
        mx.set_default_device(mx.gpu)
    model, opt = _mlp(opt_name, dropout)
    step = _mlx_step(model, opt, _loss_fn, compiled)
    losses = []
    for xb, yb in _batches(steps, fixed):
        losses.append(step(mx.array(xb), mx.array(yb)).item())
    state = [v for _, v in tree_flatten([model.state, opt.state]) if isinstance(v, mx.array)]
    kinds = {type(v._data) for v in state if v.ndim}  # (a step count may stay a host scalar)
    params = {k: _host(v) for k, v in tree_flatten(model.parameters())}
    return losses, params, kinds, step


@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_mlx_training_step_with_gpu_state(opt_name, dropout):
    want_l, want_p, cpu_kinds, _ = _train("cpu", opt_name, False, dropout)
    assert cpu_kinds == {np.ndarray}
    with backend.use_strict_gpu():
        before = dict(C.STATS)
        got_l, got_p, gpu_kinds, step = _train("gpu", opt_name, True, dropout)
        d = _delta(before)
    assert gpu_kinds == {StrictArray}
    assert step.last_reason is None  # traced on host copies, replayed on the GPU
    assert d["eager"] == 0 and d["traces"] == 2 and d["replays"] == 7  # (2 traces: new state)
    np.testing.assert_allclose(got_l, want_l, rtol=1e-5, atol=1e-6)
    for k in want_p:
        np.testing.assert_allclose(got_p[k], want_p[k], rtol=1e-4, atol=1e-5)


def test_value_and_grad_compiled_mlp_on_the_gpu_end_to_end():
    """A small MLP, nn.value_and_grad and mx.compile over model and optimizer state, with the
    GPU as the default device: the loss decreases, everything stays on the GPU, and the run
    equals the compiled CPU run."""
    cpu_l, cpu_p, _, cpu_step = _train("cpu", "adam", True, steps=30, fixed=True)
    assert cpu_step.last_reason is None
    with backend.use_strict_gpu():
        gpu_l, gpu_p, kinds, _ = _train("gpu", "adam", True, steps=30, fixed=True)
    assert kinds == {StrictArray}
    assert gpu_l[-1] < 0.5 * gpu_l[0], gpu_l
    np.testing.assert_allclose(gpu_l, cpu_l, rtol=1e-4, atol=1e-5)
    for k in cpu_p:
        np.testing.assert_allclose(gpu_p[k], cpu_p[k], rtol=1e-4, atol=1e-5)


def test_pytorch_style_step_with_gpu_state():
    """A step running its own backward pass (PyTorch style) over GPU state."""

    def run(device):
        if device == "gpu":
            mx.set_default_device(mx.gpu)
        model, opt = _mlp("sgd")
        state = [model.state, opt.state]

        def step(x, y):
            loss, g = nn.value_and_grad(model, _loss_fn)(model, x, y)
            opt.update(model, g)
            return loss, g

        cstep = mx.compile(step, inputs=state, outputs=state)
        out = []
        for xb, yb in _batches(4):
            loss, g = cstep(mx.array(xb), mx.array(yb))
            out.append((loss, [v for _, v in tree_flatten(g)]))
        return out, cstep

    want, _ = run("cpu")
    with backend.use_strict_gpu():
        got, cstep = run("gpu")
        assert cstep.last_reason is None
        for (gl, gg), (wl, wg) in zip(got, want):
            assert _on_gpu(gl, *gg)
            np.testing.assert_allclose(_host(gl), _host(wl), rtol=1e-5)
            for a, b in zip(gg, wg):
                np.testing.assert_allclose(_host(a), _host(b), rtol=1e-4, atol=1e-6)


# -- export ----------------------------------------------------------------------------------


def _model():
    mx.random.seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


def _fun(model):
    def f(x):
        return model(x).softmax(-1), mx.arange(3) * x.sum(), x[mx.array([0, 2, 2])].sum(0)

    return f


def test_export_with_gpu_inputs_and_weights_writes_the_cpu_file(tmp_path):
    x = _rand(5, 4)
    m = _model()
    want = [_host(o) for o in _fun(m)(x)]
    mx.export_function(tmp_path / "cpu.mlxfn", _fun(m), x)
    with backend.use_strict_gpu():
        # GPU inputs, weights on the CPU
        mx.export_function(tmp_path / "gpu_in.mlxfn", _fun(m), x.to(mx.gpu))
        # GPU inputs and weights, the GPU default (arange is made inside the function)
        mx.set_default_device(mx.gpu)
        mg = _model()
        assert {type(p._data) for _, p in tree_flatten(mg.parameters())} == {StrictArray}
        mx.export_function(tmp_path / "gpu.mlxfn", _fun(mg), x.to(mx.gpu))
        # the same: the GPU weights' values are the constants, read by explicit copies
        mx.export_function(tmp_path / "gpu_kw.mlxfn", lambda x: _fun(mg)(x)[0], x=x.to(mx.gpu))
    cpu = (tmp_path / "cpu.mlxfn").read_bytes()
    assert (tmp_path / "gpu_in.mlxfn").read_bytes() == cpu
    assert (tmp_path / "gpu.mlxfn").read_bytes() == cpu
    imp = mx.import_function(tmp_path / "gpu.mlxfn")
    for g, w in zip(imp(x), want):
        np.testing.assert_allclose(_host(g), w, rtol=1e-6)
    imp_kw = mx.import_function(tmp_path / "gpu_kw.mlxfn")
    np.testing.assert_allclose(_host(imp_kw(x=x)[0]), want[0], rtol=1e-6)


def test_imported_function_called_with_gpu_inputs_computes_on_the_gpu(tmp_path):
    x = _rand(5, 4)
    m = _model()
    want = [_host(o) for o in _fun(m)(x)]
    mx.export_function(tmp_path / "f.mlxfn", _fun(m), x)
    imp = mx.import_function(tmp_path / "f.mlxfn")
    with backend.use_strict_gpu():
        xg = x.to(mx.gpu)
        for _ in range(2):
            got = imp(xg)
            assert _on_gpu(*got)
            for g, w in zip(got, want):
                np.testing.assert_allclose(_host(g), w, rtol=1e-6)
        (trace,) = imp._traces
        assert trace.device != "host"  # every step ran on the GPU (the strict stand-in)
    # CPU inputs: unchanged
    for g, w in zip(imp(x), want):
        np.testing.assert_allclose(_host(g), w, rtol=1e-6)


def test_imported_numpy_only_step_runs_on_host_copies(tmp_path):
    """A step the GPU library lacks (cummax: a ufunc's accumulate) makes the trace run on host
    copies (explicit copies both ways); the results still come back on the GPU."""
    x = _rand(5, 4)

    def f(x):
        return mx.cummax(x, axis=0) * 2.0, x.exp()

    want = [_host(o) for o in f(x)]
    mx.export_function(tmp_path / "f.mlxfn", f, x)
    imp = mx.import_function(tmp_path / "f.mlxfn")
    with backend.use_strict_gpu():
        for _ in range(2):
            got = imp(x.to(mx.gpu))
            assert _on_gpu(*got)
            for g, w in zip(got, want):
                np.testing.assert_allclose(_host(g), w, rtol=1e-6)
        assert imp._traces[0].device == "host"


def test_imported_function_refuses_mixed_devices(tmp_path):
    x, y = _rand(3), _rand(3, seed=1)
    mx.export_function(tmp_path / "f.mlxfn", lambda a, b: a * b, x, y)
    imp = mx.import_function(tmp_path / "f.mlxfn")
    with backend.use_strict_gpu():
        with pytest.raises(backend.DeviceMismatchError, match="same device"):
            imp(x.to(mx.gpu), y)
