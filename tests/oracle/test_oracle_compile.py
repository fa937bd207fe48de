"""Compiled training steps against real MLX: ``mx.compile(step, inputs=state,
outputs=state)`` on both sides, from the same weights and batches, gives the same losses and
parameters step after step (and equals chainrule's eager step)."""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import pytest

mlx_core = pytest.importorskip("mlx.core")
mlx_nn = pytest.importorskip("mlx.nn")
mlx_opt = pytest.importorskip("mlx.optimizers")
mlx_utils = pytest.importorskip("mlx.utils")

import chainrule.core as cx  # noqa: E402
import chainrule.nn as cnn  # noqa: E402
import chainrule.optimizers as copt  # noqa: E402
from chainrule.core.compile import STATS  # noqa: E402

from .bridge import copy_params, flat  # noqa: E402


def _mlp(nn: Any) -> Any:
    return nn.Sequential(nn.Linear(6, 16), nn.GELU(), nn.LayerNorm(16), nn.Linear(16, 3))


def _batches() -> list:
    r = np.random.default_rng(0)
    return [
        (r.standard_normal((8, 6)).astype(np.float32), r.integers(0, 3, 8).astype(np.int32))
        for _ in range(4)
    ]


def _train(mx: Any, nn: Any, optim: Any, model: Any, compiled: bool, make_opt: Any) -> list:
    """Eight steps; for chainrule's compiled step, also checks it replayed a program."""
    opt = make_opt(optim)

    def loss_fn(m: Any, x: Any, y: Any) -> Any:
        return nn.losses.cross_entropy(m(x), y, reduction="mean")

    value_grad = nn.value_and_grad(model, loss_fn)

    def step(x: Any, y: Any) -> Any:
        loss, g = value_grad(model, x, y)
        opt.update(model, g)
        return loss

    if compiled:
        state = [model.state, opt.state]
        step = partial(mx.compile, inputs=state, outputs=state)(step)
    losses = []
    for x, y in _batches() * 2:
        loss = step(mx.array(x), mx.array(y))
        mx.eval(loss, model.state, opt.state)
        losses.append(float(np.array(loss)))
    if compiled and mx is cx:
        assert step.last_reason is None, step.last_reason  # not fallen back to eager
    return losses


@pytest.mark.host_only  # asserts the traced (compiled) path, which is the CPU's for now
@pytest.mark.parametrize(
    "make_opt",
    [lambda o: o.SGD(0.1, momentum=0.9), lambda o: o.Adam(0.01), lambda o: o.AdamW(0.01)],
    ids=["SGD-momentum", "Adam", "AdamW"],
)
def test_compiled_step_matches_mlx(make_opt: Any) -> None:
    """Eight compiled steps: losses and final parameters equal MLX's compiled steps and
    chainrule's eager ones."""
    mlx_core.random.seed(0)
    m_model = _mlp(mlx_nn)
    c_model, c_eager = _mlp(cnn), _mlp(cnn)
    copy_params(m_model, c_model)
    copy_params(m_model, c_eager)
    want = _train(mlx_core, mlx_nn, mlx_opt, m_model, True, make_opt)
    replays = STATS["replays"]
    got = _train(cx, cnn, copt, c_model, True, make_opt)
    assert STATS["replays"] > replays  # the steps after the first ran the compiled program
    eager = _train(cx, cnn, copt, c_eager, False, make_opt)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got, eager, rtol=1e-6, atol=1e-7)
    for k, v in flat(m_model.parameters(), mlx_utils).items():
        np.testing.assert_allclose(
            flat(c_model.parameters())[k], v, rtol=1e-4, atol=1e-5, err_msg=k
        )
