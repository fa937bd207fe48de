"""mx.compile and mx.export_function on GPU data, under the strict CuPy stand-in.

The tracer records NumPy calls on host arrays, so a call whose arguments and state are on the
GPU is traced on host copies (with the CPU as the default device while it runs) and its
program replays on the GPU arrays (``program_gpu.py``); results and state stay on the GPU and
equal the CPU's. GPU arrays the function reads from its closure or globals hold host copies
while it traces (constants of the program, as MLX keeps what a closure holds); arguments on
both devices run eagerly and say so in ``last_reason``.
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


def test_closure_over_gpu_data_is_traced_with_the_cpu_semantics():
    """A function reading GPU arrays from its closure (a dict here, no array argument): the
    arrays hold host copies while it traces, the program keeps their values as constants and
    replays on the GPU; as on the CPU, the closure's values are those of the trace ("closures
    are not updated", MLX), and the closure itself keeps its GPU arrays."""
    with backend.use_strict_gpu():
        w = _rand(4).to(mx.gpu)
        box = {"w": w}
        cf = mx.compile(lambda: (box["w"] * 2.0).sum())
        before = dict(C.STATS)
        got = [cf() for _ in range(2)]
        assert _on_gpu(*got, w) and cf.last_reason is None
        box["w"] = w + 1.0  # not seen by the program (MLX's rule, as on the CPU)
        got.append(cf())
        assert _on_gpu(got[-1], box["w"])
        for g in got:
            np.testing.assert_allclose(_host(g), 2 * _host(w).sum(), rtol=1e-6)
        d = _delta(before)
        assert d["traces"] == 1 and d["verified"] == 1 and d["replays"] == 1 and d["eager"] == 0


def test_training_step_reading_a_global_gpu_array_compiles():
    """A loss that reads a GPU array from the globals (a class-weight vector made on the GPU)
    inside a compiled MLX-style step: traced once, replayed on the GPU, equal to the CPU run."""

    def run(device):
        global _CLASS_WEIGHTS
        if device == "gpu":
            mx.set_default_device(mx.gpu)
        _CLASS_WEIGHTS = mx.array([1.0, 2.0, 0.5, 1.0, 3.0])
        model, opt = _mlp("adam")
        state = [model.state, opt.state]

        def loss_fn(m, x, y):
            losses = nn.losses.cross_entropy(m(x), y)
            return (losses * _CLASS_WEIGHTS[y]).mean()

        def step(x, y):
            loss, g = nn.value_and_grad(model, loss_fn)(model, x, y)
            opt.update(model, g)
            return loss

        cstep = mx.compile(step, inputs=state, outputs=state)
        losses = [cstep(mx.array(xb), mx.array(yb)) for xb, yb in _batches(5)]
        return losses, cstep

    want, _ = run("cpu")
    with backend.use_strict_gpu():
        before = dict(C.STATS)
        got, cstep = run("gpu")
        d = _delta(before)
        assert (
            cstep.last_reason is None and d["eager"] == 0 and d["replays"] == 2
        )  # (+2 traces, 1 check)
        assert _on_gpu(*got, _CLASS_WEIGHTS)
        np.testing.assert_allclose([_host(g) for g in got], [_host(w) for w in want], rtol=1e-5)


def test_closure_module_without_state_and_in_place_closure_update():
    """A model reached through the closure (no ``inputs``: its weights are constants of the
    program, as MLX's compile keeps them) replays on the GPU; a function that writes into a GPU
    array of its closure runs eagerly, and its writes land on the GPU array."""
    x = _rand(6, 4)
    want = _host(_model()(x))
    with backend.use_strict_gpu():
        mx.set_default_device(mx.gpu)
        m = _model()  # made on the GPU
        m.freeze()  # not trained: nothing records (a graph would keep the call eager)
        cf = mx.compile(lambda v: m(v))
        for _ in range(3):
            got = cf(x.to(mx.gpu))
            assert _on_gpu(got) and cf.last_reason is None
            np.testing.assert_allclose(_host(got), want, rtol=1e-5, atol=1e-6)
        assert all(_on_gpu(v) for _, v in tree_flatten(m.parameters()))
        count = mx.zeros((1,)).to(mx.gpu)

        def counted(v):
            count[0] = count[0] + 1.0
            return v * 2.0

        cg = mx.compile(counted)
        for _ in range(3):
            assert _on_gpu(cg(x.to(mx.gpu)))
        assert "replaced a GPU array" in cg.last_reason
        assert _on_gpu(count) and _host(count)[0] == 3.0


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


# -- the GPU replay writes new state into old buffers nobody else holds -----------------------


def _gpu_adam_run(steps: int, hold=None):
    """A compiled Adam step on the GPU with small buffers donated; ``hold(opt)`` (after the
    fourth step) returns something that keeps a state value. Yields each step's first-moment
    buffer address and what ``hold`` returned."""
    import chainrule.core.program as P

    saved = P._DONATE_MIN_BYTES
    P._DONATE_MIN_BYTES = 0
    try:
        mx.set_default_device(mx.gpu)
        model, opt = _mlp("adam")
        step = _mlx_step(model, opt, _loss_fn, True)
        addresses, held = [], None
        for i, (xb, yb) in enumerate(_batches(steps)):
            step(mx.array(xb), mx.array(yb))
            m = opt.state["layers"][0]["weight"]["m"]
            addresses.append(m._data._a.__array_interface__["data"][0])
            if i == 3 and hold is not None:
                held = hold(opt)
        return addresses, held, step, model, opt
    finally:
        P._DONATE_MIN_BYTES = saved


def test_gpu_replay_writes_state_into_buffers_nobody_else_holds():
    with backend.use_strict_gpu():
        addresses, _, step, model, opt = _gpu_adam_run(7)
        assert step.last_reason is None
        assert len(set(addresses[4:])) == 1  # replays: the moment's buffer takes the new values
        assert all(_on_gpu(v) for _, v in tree_flatten([model.parameters(), opt.state]) if v.ndim)
    # and the run equals the CPU's (the donated writes are the same arithmetic)
    want = _train("cpu", "adam", True, steps=7)[1]
    with backend.use_strict_gpu():
        got = _train("gpu", "adam", True, steps=7)[1]
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("how", ["view", "handle_copy"])
def test_gpu_state_value_someone_holds_is_never_written(how):
    def hold(opt):
        m = opt.state["layers"][0]["weight"]["m"]
        kept = m[:2] if how == "view" else mx.array(m)  # a view of its buffer, another handle
        return kept, _host(kept)

    with backend.use_strict_gpu():
        addresses, (kept, value), step, _, _ = _gpu_adam_run(8, hold)
        assert step.last_reason is None
        np.testing.assert_array_equal(_host(kept), value)
