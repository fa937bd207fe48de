"""``mx.eval`` releases the graph behind what it evaluates, as MLX's evaluation detaches the
arrays it computed (core/release.py): MLX-style loops over a ``chainrule.nn`` model (whose
parameters are ``requires_grad`` leaves, so its inference records) keep no earlier step alive."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

import chainrule.core as mx
import chainrule.nn as nn
from chainrule.core.array import ORIGINS, Node


def _live_nodes() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o) is Node and o.prim is not None)


def test_eval_detaches_the_array_and_what_it_was_computed_from() -> None:
    layer = nn.Linear(4, 3)
    h = mx.tanh(layer(mx.ones((2, 4))))
    y = h * 2.0
    assert y._node is not None and h._node.prim is not None
    mx.eval(y)
    assert y._node is None  # a constant now
    assert h._node.prim is None and h._node.args == ()  # released, value kept
    np.testing.assert_allclose(np.array(y), 2 * np.array(h))
    # the parameters are untouched: still leaves a backward pass reaches
    assert layer.weight._node is not None and layer.weight._node.owner is not None


def test_a_kv_cache_loop_keeps_no_earlier_cache_alive() -> None:
    proj = nn.Linear(8, 8)
    cache = proj(mx.ones((1, 1, 8)))
    mx.eval(cache)
    first = weakref.ref(cache._data)
    for _ in range(5):
        cache = mx.concatenate([cache, proj(mx.ones((1, 1, 8)))], axis=1)
        token = mx.argmax(cache.sum(axis=(0, 2)))  # records nothing: the token alone is evaluated
        mx.eval(token)
    gc.collect()
    assert cache.shape == (1, 6, 8)
    assert first() is None  # without the release every cache version stays in the chain
    assert not ORIGINS or all(ref() is not None for ref, _ in ORIGINS.values())


def test_a_sampling_loop_evaluating_tokens_has_bounded_graph() -> None:
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 6))
    state = model(mx.ones((1, 6)))
    mx.eval(state)
    base = _live_nodes()
    counts = []
    for step in range(12):
        state = mx.concatenate([state, model(state[-1:])], axis=0)
        tok = mx.random.categorical(state[-1], key=mx.random.key(step))
        mx.eval(tok)
        counts.append(_live_nodes() - base)
    assert max(counts) == counts[0] == 0  # nothing recorded survives an evaluated step


def test_without_eval_the_graph_is_kept_for_backward() -> None:
    layer = nn.Linear(3, 1)
    loss = (layer(mx.ones((2, 3))) ** 2).sum()
    loss.backward()  # not evaluated: the tape is intact
    assert layer.weight.grad is not None


def test_backward_after_eval_says_why() -> None:
    layer = nn.Linear(3, 1)
    loss = (layer(mx.ones((2, 3))) ** 2).sum()
    mx.eval(loss)
    with pytest.raises(RuntimeError, match=r"before mx\.eval"):
        loss.backward()


def test_eval_inside_a_transform_releases_nothing() -> None:
    def f(w):
        h = mx.sin(w) * w
        mx.eval(h)  # MLX allows eval inside grad; the gradient still flows through h
        return (h * h).sum()

    w = mx.array([0.3, -1.2, 2.0])
    g = mx.grad(f)(w)
    x = np.array([0.3, -1.2, 2.0])
    h = np.sin(x) * x
    np.testing.assert_allclose(np.array(g), 2 * h * (np.cos(x) * x + np.sin(x)), rtol=1e-5)


def test_eval_inside_a_compiled_function_leaves_its_program_intact() -> None:
    w = mx.array([1.0, 2.0])

    @mx.compile
    def f(x):
        y = x * w
        mx.eval(y)  # while tracing, nothing is released (the trace still records y's use)
        return y + 1

    for x in ([3.0, 4.0], [5.0, 6.0]):  # the trace, then a replay
        np.testing.assert_allclose(np.array(f(mx.array(x))), np.array(x) * [1.0, 2.0] + 1)


def test_async_eval_releases_too() -> None:
    layer = nn.Linear(2, 2)
    y = layer(mx.ones((1, 2)))
    mx.async_eval(y)
    assert y._node is None


def test_backward_through_an_evaluated_part_warns() -> None:
    layer = nn.Linear(3, 2)
    out = layer(mx.ones((2, 3)))
    mx.eval(mx.argmax(out, axis=1))  # evaluating the predictions releases out's graph
    with pytest.warns(RuntimeWarning, match=r"mx\.eval\(\) released"):
        (out * 2).sum().backward()
    assert layer.weight.grad is None
