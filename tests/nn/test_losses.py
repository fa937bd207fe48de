"""Every loss of chainrule.nn.losses: NumPy references, gradients, PyTorch, and input checks.

Two tables drive the tests: ``FUNCTIONS`` (MLX's functional losses) and ``MODULES`` (the
PyTorch-named loss classes). ``test_every_loss_is_in_a_table`` fails when a loss is added to
``losses.__all__`` without a row.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest

import chainrule.core as mx
import chainrule.nn as nn
from chainrule.nn import losses, losses_torch

# -- NumPy references (float64) -------------------------------------------------------------------


def _softplus(x):
    return np.logaddexp(0.0, x)


def _lse(x, axis):
    m = np.max(x, axis=axis, keepdims=True)
    return np.squeeze(np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m, axis)


def _reduce(loss, reduction):
    return {"none": loss, "mean": np.mean(loss), "sum": np.sum(loss)}[reduction]


def _take(x, t, axis):
    return np.squeeze(np.take_along_axis(x, np.expand_dims(t, axis), axis), axis)


def _ce_ref(x, t, axis=-1, label_smoothing=0.0, weights=None):
    score = np.sum(x * t, axis=axis) if t.ndim == x.ndim else _take(x, t, axis)
    loss = _lse(x, axis) - (1 - label_smoothing) * score
    loss = loss - label_smoothing * np.mean(x, axis=axis)
    return loss if weights is None else loss * weights


def _bce_prob_ref(p, y):
    log_p = np.maximum(np.log(np.maximum(p, 1e-300)), -100)
    log_q = np.maximum(np.log(np.maximum(1 - p, 1e-300)), -100)
    return -(y * log_p + (1 - y) * log_q)


def _smooth_l1_ref(p, t, beta=1.0):
    d = np.abs(p - t)
    return np.where(d < beta, 0.5 * d**2 / beta, d - 0.5 * beta)


def _huber_ref(p, t, delta=1.0):
    d = np.abs(p - t)
    return np.where(d <= delta, 0.5 * d**2, delta * (d - 0.5 * delta))


def _triplet_ref(a, p, n, axis=-1, margin=1.0, eps=1e-6):
    dp = np.sqrt(np.sum((a - p) ** 2, axis=axis) + eps)
    dn = np.sqrt(np.sum((a - n) ** 2, axis=axis) + eps)
    return np.maximum(dp - dn + margin, 0)


def _cosine_ref(x1, x2, axis=1, eps=1e-8):
    n = np.linalg.norm(x1, axis=axis) * np.linalg.norm(x2, axis=axis)
    return np.sum(x1 * x2, axis=axis) / np.maximum(n, eps)


def _gaussian_ref(x, t, v, full=False, eps=1e-6):
    v = np.maximum(v, eps)
    loss = 0.5 * (np.log(v) + (t - x) ** 2 / v)
    return loss + 0.5 * math.log(2 * math.pi) if full else loss


# -- inputs ------------------------------------------------------------------------------------


def _normal(*shape):
    return lambda rng: rng.standard_normal(shape)


def _labels(n, c):
    return lambda rng: rng.integers(0, c, size=n)


def _probs(*shape):
    def make(rng):
        e = np.exp(rng.standard_normal(shape))
        return e / e.sum(-1, keepdims=True)

    return make


def _log_probs(*shape):
    return lambda rng: np.log(_probs(*shape)(rng))


def _binary(*shape):
    return lambda rng: rng.integers(0, 2, size=shape).astype(np.float64)


def _signs(*shape):
    return lambda rng: rng.choice([-1.0, 1.0], size=shape)


def _uniform(*shape, lo=0.05, hi=0.95):
    return lambda rng: rng.uniform(lo, hi, size=shape)


# -- the functional table ----------------------------------------------------------------------


@dataclass
class Fn:
    id: str
    fn: Callable
    args: list  # makers of NumPy arguments
    ref: Callable  # (*np_args, **kwargs) -> unreduced loss
    default: str  # MLX's default reduction
    diff: tuple = (0,)  # arguments to differentiate
    kwargs: dict = field(default_factory=dict)
    torch_ref: Callable | None = None  # (torch, *tensors, **kwargs) -> unreduced loss


FUNCTIONS = [
    Fn(
        "mse_loss",
        losses.mse_loss,
        [_normal(4, 3), _normal(4, 3)],
        lambda p, t: (p - t) ** 2,
        "mean",
        (0, 1),
        torch_ref=lambda T, p, t: T.nn.functional.mse_loss(p, t, reduction="none"),
    ),
    Fn(
        "l1_loss",
        losses.l1_loss,
        [_normal(4, 3), _normal(4, 3)],
        lambda p, t: np.abs(p - t),
        "mean",
        (0, 1),
        torch_ref=lambda T, p, t: T.nn.functional.l1_loss(p, t, reduction="none"),
    ),
    Fn(
        "binary_cross_entropy",
        losses.binary_cross_entropy,
        [_normal(6), _binary(6)],
        lambda x, y: _softplus(x) - x * y,
        "mean",
        torch_ref=lambda T, x, y: T.nn.functional.binary_cross_entropy_with_logits(
            x, y, reduction="none"
        ),
    ),
    Fn(
        "binary_cross_entropy_probs",
        losses.binary_cross_entropy,
        [_uniform(6), _binary(6)],
        lambda p, y, with_logits: _bce_prob_ref(p, y),
        "mean",
        kwargs={"with_logits": False},
        torch_ref=lambda T, p, y, with_logits: T.nn.functional.binary_cross_entropy(
            p, y, reduction="none"
        ),
    ),
    Fn(
        "binary_cross_entropy_weights",
        losses.binary_cross_entropy,
        [_normal(2, 3), _binary(2, 3), _uniform(2, 3)],
        lambda x, y, w: (_softplus(x) - x * y) * w,
        "mean",
        (0, 2),
    ),
    Fn(
        "cross_entropy",
        losses.cross_entropy,
        [_normal(5, 4), _labels(5, 4)],
        _ce_ref,
        "none",
        torch_ref=lambda T, x, t: T.nn.functional.cross_entropy(x, t, reduction="none"),
    ),
    Fn(
        "cross_entropy_probs",
        losses.cross_entropy,
        [_normal(5, 4), _probs(5, 4)],
        _ce_ref,
        "none",
        (0,),  # the targets: first order only, see the test below
        torch_ref=lambda T, x, t: T.nn.functional.cross_entropy(x, t, reduction="none"),
    ),
    Fn(
        "cross_entropy_smoothing",
        losses.cross_entropy,
        [_normal(5, 4), _labels(5, 4)],
        _ce_ref,
        "none",
        kwargs={"label_smoothing": 0.2},
        torch_ref=lambda T, x, t, label_smoothing: T.nn.functional.cross_entropy(
            x, t, reduction="none", label_smoothing=label_smoothing
        ),
    ),
    Fn(
        "cross_entropy_axis0_weights",
        losses.cross_entropy,
        [_normal(4, 5), _labels(5, 4), _uniform(5)],
        lambda x, t, w, axis: _ce_ref(x, t, axis=axis, weights=w),
        "none",
        (0, 2),
        kwargs={"axis": 0},
    ),
    Fn(
        "cross_entropy_3d",
        losses.cross_entropy,
        [_normal(2, 3, 4), _labels((2, 3), 4)],
        _ce_ref,
        "none",
    ),
    Fn(
        "nll_loss",
        losses.nll_loss,
        [_log_probs(5, 4), _labels(5, 4)],
        lambda x, t: -_take(x, t, -1),
        "none",
        torch_ref=lambda T, x, t: T.nn.functional.nll_loss(x, t, reduction="none"),
    ),
    Fn(
        "gaussian_nll_loss",
        losses.gaussian_nll_loss,
        [_normal(4, 2), _normal(4, 2), _uniform(4, 2, lo=0.2, hi=2.0)],
        _gaussian_ref,
        "mean",
        (0, 1, 2),
        torch_ref=lambda T, x, t, v: T.nn.functional.gaussian_nll_loss(x, t, v, reduction="none"),
    ),
    Fn(
        "gaussian_nll_loss_full",
        losses.gaussian_nll_loss,
        [_normal(4, 2), _normal(4, 2), _uniform(4, 2, lo=0.2, hi=2.0)],
        _gaussian_ref,
        "mean",
        (0, 2),
        kwargs={"full": True},
        torch_ref=lambda T, x, t, v, full: T.nn.functional.gaussian_nll_loss(
            x, t, v, full=full, reduction="none"
        ),
    ),
    Fn(
        "kl_div_loss",
        losses.kl_div_loss,
        [_log_probs(3, 5), _log_probs(3, 5)],
        lambda x, t: np.sum(np.exp(t) * (t - x), axis=-1),
        "none",
        (0, 1),
        torch_ref=lambda T, x, t: T.nn.functional.kl_div(
            x, t, reduction="none", log_target=True
        ).sum(-1),
    ),
    Fn(
        "smooth_l1_loss",
        losses.smooth_l1_loss,
        [_normal(4, 3), _normal(4, 3)],
        _smooth_l1_ref,
        "mean",
        (0, 1),
        kwargs={"beta": 0.7},
        torch_ref=lambda T, p, t, beta: T.nn.functional.smooth_l1_loss(
            p, t, beta=beta, reduction="none"
        ),
    ),
    Fn(
        "triplet_loss",
        losses.triplet_loss,
        [_normal(4, 3), _normal(4, 3), _normal(4, 3)],
        _triplet_ref,
        "none",
        (0, 1, 2),
        kwargs={"margin": 2.0},
    ),
    Fn(
        "hinge_loss",
        losses.hinge_loss,
        [_normal(6), _signs(6)],
        lambda x, y: np.maximum(1 - x * y, 0),
        "none",
    ),
    Fn(
        "huber_loss",
        losses.huber_loss,
        [_normal(4, 3), _normal(4, 3)],
        _huber_ref,
        "none",
        (0, 1),
        kwargs={"delta": 0.8},
        torch_ref=lambda T, p, t, delta: T.nn.functional.huber_loss(
            p, t, delta=delta, reduction="none"
        ),
    ),
    Fn(
        "log_cosh_loss",
        losses.log_cosh_loss,
        [_normal(4, 3), _normal(4, 3)],
        lambda x, t: np.log(np.cosh(x - t)),
        "none",
        (0, 1),
    ),
    Fn(
        "cosine_similarity_loss",
        losses.cosine_similarity_loss,
        [_normal(4, 3), _normal(4, 3)],
        _cosine_ref,
        "none",
        (0, 1),
        torch_ref=lambda T, a, b: T.nn.functional.cosine_similarity(a, b, dim=1),
    ),
    Fn(
        "margin_ranking_loss",
        losses.margin_ranking_loss,
        [_normal(6), _normal(6), _signs(6)],
        lambda a, b, y, margin: np.maximum(0, -y * (a - b) + margin),
        "none",
        (0, 1),
        kwargs={"margin": 0.1},
        torch_ref=lambda T, a, b, y, margin: T.nn.functional.margin_ranking_loss(
            a, b, y, margin=margin, reduction="none"
        ),
    ),
]


def _np_args(case: Fn | Mod, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    return [make(rng) for make in case.args]


def _mx_args(np_args: list) -> list:
    return [mx.array(a, dtype=mx.float64) if a.dtype.kind == "f" else mx.array(a) for a in np_args]


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("case", FUNCTIONS, ids=lambda c: c.id)
def test_function_matches_numpy(case: Fn, reduction: str):
    a = _np_args(case)
    out = case.fn(*_mx_args(a), **case.kwargs, reduction=reduction)
    expect = _reduce(case.ref(*a, **case.kwargs), reduction)
    assert out.dtype == mx.float64
    assert out.shape == np.shape(expect)
    np.testing.assert_allclose(out.numpy(), expect, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", FUNCTIONS, ids=lambda c: c.id)
def test_function_default_reduction_is_mlx(case: Fn):
    assert inspect.signature(case.fn).parameters["reduction"].default == case.default
    a = _np_args(case, seed=1)
    out = case.fn(*_mx_args(a), **case.kwargs)
    np.testing.assert_allclose(out.numpy(), _reduce(case.ref(*a, **case.kwargs), case.default))


@pytest.mark.parametrize("case", FUNCTIONS, ids=lambda c: c.id)
def test_function_gradients(case: Fn):
    a = _mx_args(_np_args(case, seed=2))

    def f(*diff):
        args = list(a)
        for i, d in zip(case.diff, diff):
            args[i] = d
        return case.fn(*args, **case.kwargs, reduction="sum")

    mx.check_grads(f, [a[i] for i in case.diff], order=2, modes=("rev",))


def test_cross_entropy_gradient_with_respect_to_probability_targets():
    # As MLX, the logits are shifted by their maximum under stop_gradient, so derivatives
    # off the probability simplex (what finite differences of the targets probe at second
    # order) see the shift as a constant; the first order is the exact -(logits - max).
    rng = np.random.default_rng(5)
    logits = mx.array(rng.standard_normal((5, 4)))
    targets = mx.array(rng.dirichlet(np.ones(4), size=5))
    mx.check_grads(lambda t: losses.cross_entropy(logits, t, reduction="sum"), [targets], order=1)
    g = mx.grad(lambda t: losses.cross_entropy(logits, t, reduction="sum"))(targets)
    lg = logits.numpy()
    np.testing.assert_allclose(g.numpy(), -(lg - lg.max(axis=1, keepdims=True)), rtol=1e-6)


def test_cross_entropy_is_exact_for_large_shared_offsets():
    base = mx.array([[2.0, -1.0]])
    want = losses.cross_entropy(base, mx.array([0])).item()
    for offset in (1e4, 1e6, 1e20):
        got = losses.cross_entropy(base + offset, mx.array([0])).item()
        np.testing.assert_allclose(got, want if offset < 1e20 else np.log(2.0), atol=1e-5)


@pytest.mark.parametrize("case", FUNCTIONS, ids=lambda c: c.id)
def test_function_float32_in_float32_out(case: Fn):
    a = _np_args(case, seed=3)
    args = [mx.array(x) for x in a]  # float64 NumPy data become float32, as in MLX
    out = case.fn(*args, **case.kwargs, reduction="mean")
    assert out.dtype == mx.float32
    np.testing.assert_allclose(out.item(), np.mean(case.ref(*a, **case.kwargs)), rtol=1e-5)


@pytest.mark.parametrize("case", [c for c in FUNCTIONS if c.torch_ref], ids=lambda c: c.id)
def test_function_matches_torch(case: Fn):
    torch = pytest.importorskip("torch")
    a = _np_args(case, seed=4)
    expect = case.torch_ref(torch, *[torch.from_numpy(x) for x in a], **case.kwargs)
    out = case.fn(*_mx_args(a), **case.kwargs, reduction="none")
    np.testing.assert_allclose(out.numpy(), expect.numpy(), rtol=1e-10, atol=1e-12)


# -- the module table --------------------------------------------------------------------------


@dataclass
class Mod:
    id: str
    make: Callable  # (module namespace, **kw) -> loss object; torch.nn or chainrule.nn.losses
    args: list  # makers of (input, target)
    kwargs: dict = field(default_factory=dict)
    ref: Callable | None = None  # (*np_args) -> unreduced loss, for the default options
    tensors: dict = field(default_factory=dict)  # constructor arrays (weights), as NumPy


MODULES = [
    Mod(
        "MSELoss",
        lambda ns, **k: ns.MSELoss(**k),
        [_normal(4, 3), _normal(4, 3)],
        ref=lambda p, t: (p - t) ** 2,
    ),
    Mod(
        "L1Loss",
        lambda ns, **k: ns.L1Loss(**k),
        [_normal(4, 3), _normal(4, 3)],
        ref=lambda p, t: np.abs(p - t),
    ),
    Mod(
        "BCELoss",
        lambda ns, **k: ns.BCELoss(**k),
        [_uniform(4, 2), _binary(4, 2)],
        ref=_bce_prob_ref,
    ),
    Mod(
        "BCELoss_weight",
        lambda ns, **k: ns.BCELoss(**k),
        [_uniform(4, 2), _binary(4, 2)],
        tensors={"weight": np.array([0.3, 2.0])},
    ),
    Mod(
        "BCEWithLogitsLoss",
        lambda ns, **k: ns.BCEWithLogitsLoss(**k),
        [_normal(4, 3), _binary(4, 3)],
        ref=lambda x, y: _softplus(x) - x * y,
    ),
    Mod(
        "BCEWithLogitsLoss_pos_weight",
        lambda ns, **k: ns.BCEWithLogitsLoss(**k),
        [_normal(4, 3), _binary(4, 3)],
        tensors={"pos_weight": np.array([0.5, 1.0, 3.0]), "weight": np.array([1.0, 0.2, 2.0])},
    ),
    Mod(
        "CrossEntropyLoss",
        lambda ns, **k: ns.CrossEntropyLoss(**k),
        [_normal(6, 4), _labels(6, 4)],
        ref=_ce_ref,
    ),
    Mod(
        "CrossEntropyLoss_weight_ignore_smoothing",
        lambda ns, **k: ns.CrossEntropyLoss(**k),
        [_normal(6, 4), lambda rng: np.array([0, 3, -100, 1, 3, 2])],
        kwargs={"label_smoothing": 0.1},
        tensors={"weight": np.array([0.2, 1.0, 3.0, 0.5])},
    ),
    Mod(
        "CrossEntropyLoss_ignore_index_1",
        lambda ns, **k: ns.CrossEntropyLoss(**k),
        [_normal(6, 4), lambda rng: np.array([0, 1, 1, 2, 3, 1])],
        kwargs={"ignore_index": 1},
    ),
    Mod(
        "CrossEntropyLoss_spatial",
        lambda ns, **k: ns.CrossEntropyLoss(**k),
        [_normal(2, 4, 3), _labels((2, 3), 4)],
        kwargs={"label_smoothing": 0.3},
        tensors={"weight": np.array([0.2, 1.0, 3.0, 0.5])},
    ),
    Mod(
        "CrossEntropyLoss_probs",
        lambda ns, **k: ns.CrossEntropyLoss(**k),
        [_normal(5, 4), _probs(5, 4)],
        kwargs={"label_smoothing": 0.2},
        tensors={"weight": np.array([0.2, 1.0, 3.0, 0.5])},
    ),
    Mod(
        "CrossEntropyLoss_single",
        lambda ns, **k: ns.CrossEntropyLoss(**k),
        [_normal(4), lambda rng: np.array(2)],
    ),
    Mod(
        "NLLLoss",
        lambda ns, **k: ns.NLLLoss(**k),
        [_log_probs(6, 4), _labels(6, 4)],
        ref=lambda x, t: -_take(x, t, -1),
    ),
    Mod(
        "NLLLoss_weight_ignore",
        lambda ns, **k: ns.NLLLoss(**k),
        [_log_probs(6, 4), lambda rng: np.array([0, 3, -100, 1, 3, 2])],
        tensors={"weight": np.array([0.2, 1.0, 3.0, 0.5])},
    ),
    Mod(
        "SmoothL1Loss",
        lambda ns, **k: ns.SmoothL1Loss(**k),
        [_normal(4, 3), _normal(4, 3)],
        kwargs={"beta": 0.6},
    ),
    Mod(
        "SmoothL1Loss_beta0",
        lambda ns, **k: ns.SmoothL1Loss(**k),
        [_normal(4, 3), _normal(4, 3)],
        kwargs={"beta": 0.0},
    ),
    Mod(
        "HuberLoss",
        lambda ns, **k: ns.HuberLoss(**k),
        [_normal(4, 3), _normal(4, 3)],
        kwargs={"delta": 0.5},
    ),
    Mod(
        "KLDivLoss",
        lambda ns, **k: ns.KLDivLoss(**k),
        [_log_probs(3, 5), _probs(3, 5)],
        ref=lambda x, t: t * (np.log(t) - x),
    ),
    Mod(
        "KLDivLoss_log_target",
        lambda ns, **k: ns.KLDivLoss(**k),
        [_log_probs(3, 5), _log_probs(3, 5)],
        kwargs={"log_target": True},
    ),
]


def _build(case: Mod, ns, to_array, reduction: str):
    extra = {k: to_array(v) for k, v in case.tensors.items()}
    return case.make(ns, **case.kwargs, **extra, reduction=reduction)


def _reductions(case: Mod):
    return ["none", "mean", "sum"] + (["batchmean"] if case.id.startswith("KLDiv") else [])


MODULE_REDUCTIONS = [(c, r) for c in MODULES for r in _reductions(c)]


def test_every_loss_is_in_a_table():
    functions = {c.fn.__name__ for c in FUNCTIONS}
    modules = {c.id.split("_")[0] for c in MODULES}
    public = set(losses.__all__)
    assert {n for n in public if n[0].islower()} == functions
    assert {n for n in public if n[0].isupper()} == modules
    assert set(losses_torch.__all__) == modules


def test_mlx_functions_and_pytorch_classes_live_apart_and_are_found_where_they_were():
    import chainrule.torch.nn as tnn

    for name in losses_torch.__all__:
        cls = getattr(losses_torch, name)
        assert cls.__module__ == "chainrule.nn.losses_torch"
        assert getattr(nn, name) is cls and getattr(losses, name) is cls
        assert getattr(tnn, name) is cls
        assert issubclass(cls, nn.Module)
    for name in (n for n in losses.__all__ if n[0].islower()):
        fn = getattr(losses, name)
        assert fn.__module__ == "chainrule.nn.losses", name
        assert getattr(nn, name) is fn
        assert not hasattr(losses_torch, name), name


@pytest.mark.parametrize("case", MODULES, ids=lambda c: c.id)
def test_module_defaults_are_pytorch(case: Mod):
    loss = case.make(losses)
    assert loss.reduction == "mean"
    assert isinstance(loss, nn.Module)
    if case.ref is not None:
        a = _np_args(case, seed=5)
        out = loss(*_mx_args(a))
        np.testing.assert_allclose(out.item(), np.mean(case.ref(*a)), rtol=1e-10)


@pytest.mark.parametrize(
    ("case", "reduction"), MODULE_REDUCTIONS, ids=[f"{c.id}-{r}" for c, r in MODULE_REDUCTIONS]
)
@pytest.mark.filterwarnings("ignore:reduction.*mean.*divides:UserWarning")
def test_module_matches_torch(case: Mod, reduction: str):
    torch = pytest.importorskip("torch")
    a = _np_args(case, seed=6)
    ours = _build(case, losses, lambda v: mx.array(v, dtype=mx.float64), reduction)
    theirs = _build(case, torch.nn, torch.from_numpy, reduction)

    x = mx.array(a[0], dtype=mx.float64, requires_grad=True)
    tx = torch.tensor(a[0], requires_grad=True)
    target = _mx_args(a[1:])[0]
    ttarget = torch.from_numpy(a[1])
    out = ours(x, target)
    expect = theirs(tx, ttarget)
    np.testing.assert_allclose(out.numpy(), expect.detach().numpy(), rtol=1e-10, atol=1e-12)

    seed = np.random.default_rng(7).standard_normal(np.shape(expect.detach().numpy()))
    out.backward(mx.array(seed, dtype=mx.float64))
    expect.backward(torch.from_numpy(seed))
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("case", MODULES, ids=lambda c: c.id)
def test_module_gradients(case: Mod):
    a = _np_args(case, seed=8)
    loss = _build(case, losses, lambda v: mx.array(v, dtype=mx.float64), "sum")
    target = _mx_args(a[1:])[0]
    mx.check_grads(lambda x: loss(x, target), [mx.array(a[0], dtype=mx.float64)], order=1)


def test_module_weighted_mean_is_pytorch_semantics():
    x = mx.array([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0], [1.0, -2.0, 3.0]], dtype=mx.float64)
    t = mx.array([0, 2, -100])
    w = np.array([0.5, 1.0, 4.0])
    out = losses.CrossEntropyLoss(weight=mx.array(w, dtype=mx.float64))(x, t).item()
    xs = x.numpy()
    nll0 = _lse(xs[0], 0) - xs[0, 0]  # class 0, weight 0.5
    nll1 = _lse(xs[1], 0) - xs[1, 2]  # class 2, weight 4.0; the third row is ignored
    assert out == pytest.approx((w[0] * nll0 + w[2] * nll1) / (w[0] + w[2]), rel=1e-12)


# -- input checks ---------------------------------------------------------------------------------

PAIRWISE = [
    losses.mse_loss,
    losses.l1_loss,
    losses.binary_cross_entropy,
    losses.smooth_l1_loss,
    losses.huber_loss,
    losses.hinge_loss,
    losses.log_cosh_loss,
    losses.kl_div_loss,
    losses.MSELoss(),
    losses.L1Loss(),
    losses.BCELoss(),
    losses.BCEWithLogitsLoss(),
    losses.SmoothL1Loss(),
    losses.HuberLoss(),
    losses.KLDivLoss(),
]


@pytest.mark.parametrize("fn", PAIRWISE, ids=lambda f: getattr(f, "__name__", type(f).__name__))
def test_mismatched_shapes_are_refused_naming_both(fn):
    predictions = mx.array(np.full((4, 1), 0.5))
    targets = mx.array(np.array([0, 1, 0, 1]))
    with pytest.raises(ValueError) as info:
        fn(predictions, targets)
    assert "(4, 1)" in str(info.value) and "(4,)" in str(info.value)


def test_other_multi_argument_losses_refuse_mismatched_shapes():
    a, b = mx.zeros((3, 2)), mx.zeros((3,))
    with pytest.raises(ValueError, match=r"\(3, 2\).*\(3,\)"):
        losses.margin_ranking_loss(a, a, b)
    with pytest.raises(ValueError, match=r"\(3, 2\).*\(3,\)"):
        losses.gaussian_nll_loss(a, a, b)
    with pytest.raises(ValueError, match=r"\(3, 2\).*\(3,\)"):
        losses.triplet_loss(a, a, b)
    with pytest.raises(ValueError, match=r"\(3, 2\).*\(3,\)"):
        losses.cosine_similarity_loss(a, b)
    with pytest.raises(ValueError, match="weights"):
        losses.binary_cross_entropy(a, a, weights=mx.ones((3,)))
    with pytest.raises(ValueError, match="weights"):
        losses.cross_entropy(a, mx.array([0, 1, 1]), weights=mx.ones((2,)))


def test_bce_refuses_values_outside_unit_interval():
    scores = mx.array([[2.5], [-1.0]])
    with pytest.raises(ValueError, match="BCEWithLogitsLoss"):
        losses.BCELoss()(scores, mx.array([[1.0], [0.0]]))
    with pytest.raises(ValueError, match="with_logits"):
        losses.binary_cross_entropy(scores, mx.array([[1.0], [0.0]]), with_logits=False)
    with pytest.raises(ValueError, match="probabilities"):
        losses.BCELoss()(mx.array([0.5, float("nan")]), mx.array([1.0, 0.0]))
    # wrong shape and raw scores at once: both mistakes are named
    with pytest.raises(ValueError) as info:
        losses.BCELoss()(mx.array(np.full((4, 1), 3.0)), mx.array([0, 1, 0, 1]))
    msg = str(info.value)
    assert "(4, 1)" in msg and "(4,)" in msg and "BCEWithLogitsLoss" in msg


def test_bce_accepts_integer_targets():
    p = mx.array([[0.7], [0.2]], requires_grad=True)
    y = mx.array([[1], [0]])
    out = losses.BCELoss()(p, y)
    assert out.dtype == mx.float32
    assert out.item() == pytest.approx(-(np.log(0.7) + np.log(0.8)) / 2, rel=1e-6)
    out.backward()
    np.testing.assert_allclose(p.grad.numpy(), [[-1 / 0.7 / 2], [1 / 0.8 / 2]], rtol=1e-5)


def test_bce_probabilities_at_zero_and_one_are_clamped_with_finite_gradients():
    p = mx.array([0.0, 1.0, 0.0, 1.0], dtype=mx.float64, requires_grad=True)
    y = mx.array([0.0, 1.0, 1.0, 0.0], dtype=mx.float64)
    out = losses.BCELoss(reduction="none")(p, y)
    np.testing.assert_allclose(out.numpy(), [0, 0, 100, 100], atol=1e-9)
    out.sum().backward()
    assert np.isfinite(p.grad.numpy()).all()


@pytest.mark.parametrize(
    "call",
    [
        lambda x, t: losses.cross_entropy(x, t),
        lambda x, t: losses.nll_loss(x, t),
        lambda x, t: losses.CrossEntropyLoss()(x, t),
        lambda x, t: losses.NLLLoss()(x, t),
    ],
    ids=["cross_entropy", "nll_loss", "CrossEntropyLoss", "NLLLoss"],
)
def test_class_indices_are_checked(call):
    x = mx.zeros((3, 4))
    with pytest.raises(ValueError, match="out of range"):
        call(x, mx.array([0, 4, 1]))
    with pytest.raises(ValueError, match="out of range"):
        call(x, mx.array([0, -1, 1]))
    with pytest.raises(ValueError, match="integers"):
        call(x, mx.array([0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match=r"\(2,\)"):
        call(x, mx.array([0, 1]))


def test_class_weight_must_match_classes():
    with pytest.raises(ValueError, match=r"\(4,\)"):
        losses.CrossEntropyLoss(weight=mx.ones((3,)))(mx.zeros((2, 4)), mx.array([0, 1]))


@pytest.mark.parametrize(
    "call",
    [
        lambda x, t: losses.binary_cross_entropy(x, t),
        lambda x, t: losses.BCEWithLogitsLoss()(x, t),
        lambda x, t: losses.BCEWithLogitsLoss(pos_weight=mx.array([2.0, 0.5, 1.0, 3.0]))(x, t),
        lambda x, t: losses.cross_entropy(x, mx.array([0, 1, 2, 3]), label_smoothing=0.1),
        lambda x, t: losses.CrossEntropyLoss(label_smoothing=0.1)(x, mx.array([0, 1, 2, 3])),
        lambda x, t: losses.CrossEntropyLoss()(x, mx.softmax(x * 1e-4, axis=1)),
    ],
    ids=["bce", "BCEWithLogits", "BCEWithLogits_pos", "cross_entropy", "CE", "CE_probs"],
)
def test_extreme_logits_give_finite_losses_and_gradients(call):
    x = mx.array([[1e4, -1e4, 0.0, 5.0], [-1e4, 1e4, 1e4, -3.0]] * 2, requires_grad=True)
    t = mx.array([[1.0, 0.0, 1.0, 0.0], [1.0, 1.0, 0.0, 1.0]] * 2)
    out = call(x, t)
    assert np.isfinite(out.numpy()).all()
    out.sum().backward()
    assert np.isfinite(x.grad.numpy()).all()


def test_invalid_options_are_refused():
    with pytest.raises(ValueError, match="'avg'"):
        losses.mse_loss(mx.zeros(2), mx.zeros(2), reduction="avg")
    with pytest.raises(ValueError, match="'batchmean'"):
        losses.MSELoss(reduction="batchmean")
    with pytest.raises(ValueError, match="1.5"):
        losses.cross_entropy(mx.zeros((2, 3)), mx.array([0, 1]), label_smoothing=1.5)
    with pytest.raises(ValueError, match="-1"):
        losses.SmoothL1Loss(beta=-1)
    with pytest.raises(ValueError, match="0"):
        losses.HuberLoss(delta=0)


def test_legacy_reduction_flags():
    assert losses.MSELoss(reduce=False).reduction == "none"
    assert losses.MSELoss(size_average=False).reduction == "sum"
    assert losses.MSELoss(size_average=True, reduce=True).reduction == "mean"


def test_float16_losses_stay_float16():
    p = mx.array(np.array([0.25, 0.5]), dtype=mx.float16)
    t = mx.array(np.array([0.0, 1.0]), dtype=mx.float16)
    for out in (losses.mse_loss(p, t), losses.BCELoss()(p, t), losses.BCEWithLogitsLoss()(p, t)):
        assert out.dtype == mx.float16
        assert np.isfinite(out.item())


@pytest.mark.parametrize("p", [1, 2, 3])
def test_triplet_loss_uses_the_p_norm(p):
    rng = np.random.default_rng(p)
    a, pos, neg = (rng.standard_normal((4, 3)) for _ in range(3))

    def norm(d):
        return (np.sum(np.abs(d) ** p, axis=-1) + 1e-6) ** (1.0 / p)

    want = np.maximum(norm(a - pos) - norm(a - neg) + 1.0, 0)
    got = losses.triplet_loss(mx.array(a), mx.array(pos), mx.array(neg), p=p)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5)
    torch = pytest.importorskip("torch")
    t = [torch.tensor(x) for x in (a, pos, neg)]
    ref = torch.nn.functional.triplet_margin_loss(*t, p=p, reduction="none").numpy()
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-4, atol=1e-5)
