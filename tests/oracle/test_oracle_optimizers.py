"""Every optimizer and schedule of ``chainrule.optimizers`` against real MLX.

Each optimizer starts from the same parameters on both sides and takes the same five
gradients; after every step the parameters agree, and after the last the optimizer state
(moments, step count, learning rate) does too. Schedules are compared value by value over
their steps, alone and driving an optimizer.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

mlx_core = pytest.importorskip("mlx.core")
mlx_opt = pytest.importorskip("mlx.optimizers")
mlx_utils = pytest.importorskip("mlx.utils")

import chainrule.core as cx  # noqa: E402
import chainrule.optimizers as copt  # noqa: E402
import chainrule.utils as cutils  # noqa: E402

from .bridge import flat, to_cx, to_mlx  # noqa: E402

STEPS = 5


def _tree(seed: int) -> dict:
    r = np.random.default_rng(seed)

    def n(*s: int) -> np.ndarray:
        return r.standard_normal(s).astype(np.float32)

    return {"w": n(4, 3), "b": n(3), "block": {"m": n(6, 5), "layers": [n(2), n(3, 2)]}}


OPTIMIZERS: list[tuple[str, Callable[[Any], Any]]] = [
    ("SGD", lambda o: o.SGD(0.1)),
    ("SGD-momentum", lambda o: o.SGD(0.1, momentum=0.9, weight_decay=0.01, dampening=0.1)),
    ("SGD-nesterov", lambda o: o.SGD(0.05, momentum=0.8, nesterov=True)),
    ("RMSprop", lambda o: o.RMSprop(0.01)),
    ("RMSprop-alpha", lambda o: o.RMSprop(0.02, alpha=0.8, eps=1e-5)),
    ("Adagrad", lambda o: o.Adagrad(0.1)),
    ("AdaDelta", lambda o: o.AdaDelta(1.0)),
    ("AdaDelta-rho", lambda o: o.AdaDelta(0.5, rho=0.5, eps=1e-4)),
    ("Adam", lambda o: o.Adam(0.01)),
    ("Adam-bias-correction", lambda o: o.Adam(0.01, betas=[0.8, 0.9], bias_correction=True)),
    ("AdamW", lambda o: o.AdamW(0.01)),
    ("AdamW-bias-correction", lambda o: o.AdamW(0.02, weight_decay=0.1, bias_correction=True)),
    ("Adamax", lambda o: o.Adamax(0.01)),
    ("Lion", lambda o: o.Lion(0.01)),
    ("Lion-decay", lambda o: o.Lion(0.01, betas=[0.8, 0.9], weight_decay=0.1)),
    ("Adafactor", lambda o: o.Adafactor()),
    ("Adafactor-lr", lambda o: o.Adafactor(0.01, beta_1=0.9, weight_decay=0.01, relative_step=False, scale_parameter=False)),
    ("Adafactor-warmup", lambda o: o.Adafactor(warmup_init=True, clip_threshold=0.5)),
    ("Muon", lambda o: o.Muon(0.02)),
    ("Muon-plain", lambda o: o.Muon(0.02, momentum=0.9, weight_decay=0.0, nesterov=False, ns_steps=3)),
    ("MultiOptimizer", lambda o: o.MultiOptimizer([o.SGD(0.1, momentum=0.5), o.Adam(0.01)], [lambda path, w: w.ndim > 1])),
    ("Adam-cosine", lambda o: o.Adam(o.cosine_decay(0.1, 3, 0.01))),
    ("SGD-warmup", lambda o: o.SGD(o.join_schedules([o.linear_schedule(0.0, 0.1, 2), o.exponential_decay(0.1, 0.5)], [2]), momentum=0.9)),
]  # fmt: skip


def test_every_mlx_optimizer_is_compared() -> None:
    """Each optimizer class MLX exports is in chainrule.optimizers and has a case here."""
    names = {
        n
        for n, v in vars(mlx_opt).items()
        if inspect.isclass(v) and issubclass(v, mlx_opt.Optimizer) and n != "Optimizer"
    }
    assert not [n for n in names if not hasattr(copt, n)]
    assert names <= {c[0].split("-")[0] for c in OPTIMIZERS}


def _run(lib: Any, opt_mod: Any, utils: Any, make: Callable, convert: Callable) -> tuple:
    params = convert(_tree(0))
    opt = make(opt_mod)
    history = []
    for step in range(STEPS):
        grads = convert(_tree(100 + step))
        params = opt.apply_gradients(grads, params)
        history.append(flat(params, utils))
    state = {k: np.array(v) for k, v in utils.tree_flatten(opt.state)}
    return history, state


@pytest.mark.parametrize("name,make", OPTIMIZERS, ids=[c[0] for c in OPTIMIZERS])
def test_optimizer_steps_match_mlx(name: str, make: Callable) -> None:
    """Five steps from the same parameters and gradients: parameters after each step, then
    the whole state, equal MLX's."""
    want_hist, want_state = _run(mlx_core, mlx_opt, mlx_utils, make, to_mlx)
    got_hist, got_state = _run(cx, copt, cutils, make, to_cx)
    for step, (g, w) in enumerate(zip(got_hist, want_hist)):
        assert sorted(g) == sorted(w)
        for k in w:
            assert g[k].dtype == w[k].dtype, (step, k)
            np.testing.assert_allclose(g[k], w[k], rtol=1e-4, atol=1e-5, err_msg=f"step {step} {k}")
    assert sorted(got_state) == sorted(want_state), set(got_state) ^ set(want_state)
    for k in want_state:
        assert got_state[k].shape == want_state[k].shape, k
        np.testing.assert_allclose(got_state[k], want_state[k], rtol=1e-4, atol=1e-6, err_msg=k)


def test_update_on_a_module_matches_mlx() -> None:
    """``optimizer.update(model, grads)`` through a module on both sides."""
    import mlx.nn as mnn

    import chainrule.nn as cnn

    from .bridge import copy_params

    mm, cm = mnn.Linear(3, 2), cnn.Linear(3, 2)
    copy_params(mm, cm)
    om, oc = mlx_opt.Adam(0.1), copt.Adam(0.1)
    for step in range(3):
        g = {
            "weight": np.full((2, 3), 0.1 * (step + 1), np.float32),
            "bias": np.ones(2, np.float32),
        }
        om.update(mm, to_mlx(g))
        oc.update(cm, to_cx(g))
    for k, v in flat(mm.parameters(), mlx_utils).items():
        np.testing.assert_allclose(flat(cm.parameters())[k], v, rtol=1e-5, atol=1e-6)


SCHEDULES: list[tuple[str, Callable[[Any], Callable]]] = [
    ("exponential_decay", lambda o: o.exponential_decay(0.1, 0.9)),
    ("step_decay", lambda o: o.step_decay(0.1, 0.5, 3)),
    ("cosine_decay", lambda o: o.cosine_decay(0.1, 7)),
    ("cosine_decay-end", lambda o: o.cosine_decay(0.2, 5, end=0.05)),
    ("linear_schedule", lambda o: o.linear_schedule(0.0, 0.3, 6)),
    ("linear_schedule-down", lambda o: o.linear_schedule(1.0, 0.1, 4)),
    ("join_schedules", lambda o: o.join_schedules([o.linear_schedule(0.0, 0.1, 3), o.cosine_decay(0.1, 6)], [3])),
    ("join_schedules-three", lambda o: o.join_schedules([o.linear_schedule(0.0, 1.0, 2), o.step_decay(1.0, 0.5, 2), o.exponential_decay(0.25, 0.5)], [2, 6])),
]  # fmt: skip


def test_every_mlx_schedule_is_compared() -> None:
    """Each schedule MLX exports is in chainrule.optimizers and has a case here."""
    import mlx.optimizers.schedulers as ms

    names = {n for n, v in vars(ms).items() if inspect.isfunction(v) and not n.startswith("_")}
    assert not [n for n in names if not hasattr(copt, n)]
    assert names == {c[0].split("-")[0] for c in SCHEDULES}


@pytest.mark.parametrize("name,make", SCHEDULES, ids=[c[0] for c in SCHEDULES])
def test_schedule_values_match_mlx(name: str, make: Callable) -> None:
    """Values at steps 0..12 (past every boundary and end), given as ints and as arrays."""
    sm, sc = make(mlx_opt), make(copt)
    for step in range(13):
        for m_arg, c_arg in ((mlx_core.array(step), cx.array(step)), (step, step)):
            w, g = sm(m_arg), sc(c_arg)
            assert isinstance(g, (int, float)) == isinstance(w, (int, float)), (step, g, w)
            assert np.array(g).dtype == np.array(w).dtype, (step, g, w)
            np.testing.assert_allclose(
                np.array(g), np.array(w), rtol=1e-6, atol=1e-8, err_msg=f"{step}"
            )


@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_grad_norm_matches_mlx(max_norm: float) -> None:
    """Clipped gradients and the total norm equal MLX's, below and above the limit."""
    gm, nm = mlx_opt.clip_grad_norm(to_mlx(_tree(3)), max_norm)
    gc, nc = copt.clip_grad_norm(to_cx(_tree(3)), max_norm)
    np.testing.assert_allclose(np.array(nc), np.array(nm), rtol=1e-6)
    for k, v in flat(gm, mlx_utils).items():
        np.testing.assert_allclose(flat(gc)[k], v, rtol=1e-6, atol=1e-7)


# bfloat16: chainrule's optimizers compute on raw NumPy values, where a bfloat16 array times a
# Python float gives float32, so the state (and some parameters) turn float32; MLX keeps
# bfloat16. chainrule/optimizers/* belongs to another part of the project: reported there.
_BF16_STATE = pytest.mark.xfail(
    strict=True,
    reason="optimizer state of bfloat16 parameters becomes float32 (MLX keeps bfloat16): "
    "chainrule/optimizers/optimizers.py computes on raw NumPy bfloat16 values",
)
# SGD's and Adam's state is updated in place or renewed in its own dtype (issue 20): kept.
_BF16_KEPT = (
    "SGD", "Adagrad", "SGD-momentum", "SGD-nesterov", "SGD-warmup", "Adam",
    "Adam-bias-correction", "Adam-cosine", "AdamW", "AdamW-bias-correction", "MultiOptimizer",
)  # fmt: skip
HALF_PARAMS = [
    pytest.param(name, make, dtype, id=f"{name}-{dtype}", marks=(
        _BF16_STATE if dtype == "bfloat16" and name not in _BF16_KEPT else ()
    ))
    for dtype in ("float16", "bfloat16")
    for name, make in OPTIMIZERS
]  # fmt: skip


@pytest.mark.parametrize("name,make,dtype", HALF_PARAMS)
def test_optimizer_half_precision_matches_mlx(name: str, make: Callable, dtype: str) -> None:
    """Half-precision parameters and gradients: after three steps the parameters and state
    have MLX's dtypes, and values within half precision."""

    def run(lib: Any, opt_mod: Any, utils: Any) -> tuple:
        half = getattr(lib, dtype)
        params = utils.tree_map(lambda a: lib.array(a).astype(half), _tree(0))
        opt = make(opt_mod)
        for step in range(3):
            grads = utils.tree_map(lambda a: lib.array(a).astype(half), _tree(100 + step))
            params = opt.apply_gradients(grads, params)
        p = {k: v for k, v in utils.tree_flatten(params)}
        s = {k: v for k, v in utils.tree_flatten(opt.state)}
        return p, s

    pm, sm = run(mlx_core, mlx_opt, mlx_utils)
    pc, sc = run(cx, copt, cutils)
    assert sorted(pc) == sorted(pm) and sorted(sc) == sorted(sm)
    for got, want in ((pc, pm), (sc, sm)):
        for k in want:
            w, g = want[k], got[k]
            assert str(g.dtype).split(".")[-1] == str(w.dtype).split(".")[-1], (k, g.dtype, w.dtype)
            wv, gv = np.array(w.astype(mlx_core.float32)), np.array(g.astype(cx.float32))
            np.testing.assert_allclose(
                gv, wv, rtol=0.05, atol=0.02 * max(1.0, float(np.abs(wv).max())), err_msg=k
            )
