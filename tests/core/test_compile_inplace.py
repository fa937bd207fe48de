"""mx.compile's in-place work: temporaries written over with ``out=``, never a value handed out.

The generated replay writes elementwise results into buffers it owns (temporaries that die at
that step), including the temporaries the optimizers themselves write with ``out=``. These
tests pin that such reuse never changes a value someone else holds: results kept from one step
are unchanged after the next ones, no two results share memory, and every step equals the eager
step bit for bit.
"""

from __future__ import annotations

import itertools
import sys
from functools import partial

import numpy as np
import pytest
from test_compile import _mlx_step

import chainrule.core as mx
import chainrule.nn as nn
import chainrule.optimizers as optim
from chainrule.utils import tree_flatten

# these count traces and replays on the CPU (GPU replays and their donated buffers:
# test_compile_gpu.py)
pytestmark = pytest.mark.usefixtures("cpu_default_device")

C = sys.modules["chainrule.core.compile"]
P = sys.modules["chainrule.core.program"]


@pytest.fixture(autouse=True)
def _donate_small_buffers_too(monkeypatch):
    """These tests use small models: let the replay write into state buffers of any size."""
    monkeypatch.setattr(P, "_DONATE_MIN_BYTES", 0)


class _MLP(nn.Module):
    def __init__(self, sizes: list[int]) -> None:
        super().__init__()
        self.layers = [nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])]

    def __call__(self, x):
        for layer in self.layers[:-1]:
            x = nn.relu(layer(x))
        return self.layers[-1](x)


def _setup(opt_name: str, compiled: bool):
    mx.random.seed(0)
    model = _MLP([12, 16, 16, 5])
    mx.eval(model.parameters())
    opt = {
        "adam": lambda: optim.Adam(learning_rate=1e-2),
        "adamw": lambda: optim.AdamW(learning_rate=1e-2),
        "sgd": lambda: optim.SGD(learning_rate=0.1, momentum=0.9),
    }[opt_name]()

    def loss_fn(m, x, y):
        return nn.losses.cross_entropy(m(x), y, reduction="mean")

    return model, opt, _mlx_step(model, opt, loss_fn, compiled)


def _batches(n: int):
    rng = np.random.default_rng(1)
    return [
        (
            mx.array(rng.standard_normal((8, 12)).astype(np.float32)),
            mx.array(rng.integers(0, 5, 8)),
        )
        for _ in range(n)
    ]


def _state_arrays(model, opt) -> list:
    return [a for _, a in tree_flatten([model.parameters(), opt.state]) if isinstance(a, mx.array)]


@pytest.mark.parametrize("opt_name", ["adam", "adamw", "sgd"])
def test_compiled_training_equals_eager_bit_for_bit(opt_name):
    batches = _batches(6)
    runs = []
    for compiled in (False, True):
        model, opt, step = _setup(opt_name, compiled)
        losses = [np.array(step(x, y)) for x, y in batches]
        runs.append((losses, [np.array(a) for a in _state_arrays(model, opt)]))
    (l_eager, s_eager), (l_comp, s_comp) = runs
    for a, b in zip(l_eager, l_comp):
        assert a.tobytes() == b.tobytes()
    assert len(s_eager) == len(s_comp)
    for a, b in zip(s_eager, s_comp):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("opt_name", ["adam", "sgd"])
def test_values_held_from_earlier_steps_never_change(opt_name):
    model, opt, step = _setup(opt_name, compiled=True)
    before = dict(C.STATS)
    held = []  # (the array, a copy of its value) for every result and state value of each step
    for x, y in _batches(6):  # trace, trace again (the state is made), check, replays
        loss = step(x, y)
        values = [loss] + [mx.array(a) for a in _state_arrays(model, opt)]
        values += [a for a in _state_arrays(model, opt)]  # the handles' current values too
        held.append([(np.asarray(v), np.array(v)) for v in values])
        for got, want in itertools.chain.from_iterable(held[:-1]):
            if got.ndim:  # (a handle rebound later shows its new value: compare views taken then)
                assert got.tobytes() == want.tobytes()
    assert C.STATS["replays"] - before["replays"] >= 3  # the replays, not eager calls, ran


def test_results_of_one_replay_share_no_memory():
    model, opt, step = _setup("adam", compiled=True)
    batches = _batches(4)
    for x, y in batches:
        loss = step(x, y)
    arrays = [np.asarray(a) for a in [loss, *_state_arrays(model, opt)]]
    arrays += [np.asarray(x) for x, _ in batches]
    for a, b in itertools.combinations(arrays, 2):
        assert not np.shares_memory(a, b)


def test_optimizer_temporaries_are_written_in_place():
    model, opt, step = _setup("adam", compiled=True)
    for x, y in _batches(3):
        step(x, y)
    (prog,) = step.cache.values()
    # Adam's last operation, ``parameter - update``, goes into the update's own temporary
    in_place = [ln for ln in prog.source.splitlines() if "out=s" in ln]
    assert len(in_place) >= len(model.parameters()["layers"]) * 2, prog.source


def test_a_temporary_returned_after_in_place_writes_is_not_reused():
    """A temporary the program wrote with ``out=`` and then returned stays the caller's."""

    def f(x):
        t = x * 2.0
        u = mx.exp(t)  # may be written into t's buffer (t dies here)
        return u, u + 1.0

    cf = mx.compile(f)
    xs = [mx.array(np.full((4, 3), float(i), np.float32)) for i in range(4)]
    outs = [cf(x) for x in xs]
    for (u, v), x in zip(outs, xs):
        want_u, want_v = f(x)
        assert np.array(u).tobytes() == np.array(want_u).tobytes()
        assert np.array(v).tobytes() == np.array(want_v).tobytes()
        assert not np.shares_memory(np.asarray(u), np.asarray(v))
        assert not np.shares_memory(np.asarray(u), np.asarray(x))


def _m_of_first_weight(opt):
    return opt.state["layers"][0]["weight"]["m"]


def _address(a) -> int:
    return a._data.__array_interface__["data"][0]  # without taking a reference to the buffer


def test_state_buffers_nobody_else_holds_take_the_new_values():
    model, opt, step = _setup("adam", compiled=True)
    batches = _batches(8)
    for x, y in batches[:4]:
        step(x, y)
    before = _address(_m_of_first_weight(opt))
    step(*batches[4])
    assert _address(_m_of_first_weight(opt)) == before  # Adam's moment updated in its buffer


@pytest.mark.parametrize("how", ["view", "array", "handle"])
def test_a_state_value_someone_holds_is_never_written(how):
    model, opt, step = _setup("adam", compiled=True)
    batches = _batches(8)
    for x, y in batches[:4]:
        step(x, y)
    m = _m_of_first_weight(opt)
    held = {"view": lambda: np.asarray(m), "array": lambda: mx.array(m), "handle": lambda: m}[how]()
    value = np.array(held)
    view = np.asarray(held)
    step(*batches[4])
    step(*batches[5])
    if how != "handle":  # (the handle itself is rebound to the new value, as every replay does)
        assert np.array(held).tobytes() == value.tobytes()
    assert view.tobytes() == value.tobytes()
    assert not np.shares_memory(view, np.asarray(_m_of_first_weight(opt)))


def test_only_state_buffers_worth_it_are_written_in_place(monkeypatch):
    monkeypatch.setattr(P, "_DONATE_MIN_BYTES", 1 << 16)
    state = {"small": mx.zeros((100,)), "big": mx.zeros((1 << 14,))}  # 400 B and 64 KiB

    def f(x):
        state["small"] = state["small"] * 0.5 + x[:100]
        state["big"] = state["big"] * 0.5 + x
        return x[0]

    cf = partial(mx.compile, inputs=state, outputs=state)(f)
    for i in range(4):
        cf(mx.full((1 << 14,), float(i)))
    (prog,) = cf.cache.values()
    assert len(prog.donors) == 1, prog.source
    before = {k: _address(v) for k, v in state.items()}
    cf(mx.full((1 << 14,), 5.0))
    assert _address(state["big"]) == before["big"]
    assert _address(state["small"]) != before["small"]


def test_a_function_updating_its_state_reuses_only_unheld_buffers():
    state = {"w": mx.array(np.arange(6, dtype=np.float32))}

    def f(x):
        state["w"] = state["w"] * 0.5 + x
        return mx.sum(state["w"])

    cf = partial(mx.compile, inputs=state, outputs=state)(f)
    xs = [mx.array(np.full(6, float(i), np.float32)) for i in range(8)]
    want = np.arange(6, dtype=np.float32)
    for i, x in enumerate(xs):
        before = _address(state["w"])
        held = np.asarray(state["w"]) if i % 2 else None  # every other step, someone holds it
        copy = np.array(state["w"])
        total = cf(x)
        want = want * np.float32(0.5) + np.float32(i)
        assert np.array(state["w"]).tobytes() == want.tobytes()
        assert float(total) == float(want.sum())
        if held is not None:
            assert held.tobytes() == copy.tobytes()
            assert _address(state["w"]) != before
        elif i >= 3:  # a verified replay: the unheld old buffer takes the new value
            assert _address(state["w"]) == before
        del held


def test_an_error_after_the_state_was_written_is_raised_not_retried():
    """A replay that wrote into old state buffers cannot fall back to an eager call on them."""
    state = {"w": mx.zeros((1 << 14,))}

    def f(x):
        state["w"] = state["w"] * 0.5 + x
        return mx.sum(mx.exp(state["w"] * 100.0))

    cf = partial(mx.compile, inputs=state, outputs=state)(f)
    with np.errstate(over="raise"):
        for _ in range(4):
            cf(mx.zeros((1 << 14,)))
        (prog,) = cf.cache.values()
        assert prog.donors
        with pytest.raises(FloatingPointError):
            cf(mx.full((1 << 14,), 100.0))
    assert cf.cache[next(iter(cf.cache))] is C._EAGER
    assert "FloatingPointError" in cf.last_reason
