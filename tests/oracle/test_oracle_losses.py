"""Every loss in ``nn.losses`` against real MLX: each reduction (and the default), values and
gradients with respect to every float argument."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import numpy as np
import pytest

mlx_core = pytest.importorskip("mlx.core")
mlx_losses = pytest.importorskip("mlx.nn.losses")

import chainrule.core as cx  # noqa: E402
import chainrule.nn as cnn  # noqa: E402

from .bridge import to_cx, to_mlx  # noqa: E402


def _r(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _n(*shape: int, seed: int = 0) -> np.ndarray:
    return _r(seed).standard_normal(shape).astype(np.float32)


def _u(*shape: int, seed: int = 0, low: float = 0.05, high: float = 0.95) -> np.ndarray:
    return _r(seed).uniform(low, high, shape).astype(np.float32)


def _labels(n: int, k: int, seed: int = 3) -> np.ndarray:
    return _r(seed).integers(0, k, n).astype(np.int32)


def _probs(*shape: int, seed: int = 0) -> np.ndarray:
    p = np.exp(_n(*shape, seed=seed))
    return (p / p.sum(-1, keepdims=True)).astype(np.float32)


def _signs(*shape: int, seed: int = 4) -> np.ndarray:
    return np.where(_r(seed).random(shape) > 0.5, 1.0, -1.0).astype(np.float32)


# name -> list of (tag, arguments, keyword arguments)
CASES: dict[str, list[tuple[str, Callable[[], tuple], dict]]] = {
    "binary_cross_entropy": [
        ("logits", lambda: (_n(6), _u(6, seed=1)), {}),
        ("probs", lambda: (_u(4, 3), _u(4, 3, seed=1)), {"with_logits": False}),
        ("weights", lambda: (_n(5), (_u(5, seed=1) > 0.5).astype(np.float32), _u(5, seed=2)), {}),
    ],
    "cosine_similarity_loss": [
        ("", lambda: (_n(4, 5), _n(4, 5, seed=1)), {}),
        ("axis0", lambda: (_n(4, 5), _n(4, 5, seed=1)), {"axis": 0, "eps": 1e-6}),
    ],
    "cross_entropy": [
        ("labels", lambda: (_n(5, 4), _labels(5, 4)), {}),
        ("probs", lambda: (_n(5, 4), _probs(5, 4, seed=1)), {}),
        ("smooth-weights", lambda: (_n(5, 4), _labels(5, 4), _u(5, seed=2)), {"label_smoothing": 0.2}),
        ("axis0", lambda: (_n(4, 3), _labels(3, 4)), {"axis": 0}),
    ],
    "gaussian_nll_loss": [
        ("", lambda: (_n(4, 3), _n(4, 3, seed=1), _u(4, 3, seed=2)), {}),
        ("full", lambda: (_n(4, 3), _n(4, 3, seed=1), _u(4, 3, seed=2, low=1e-7)), {"full": True, "eps": 1e-3}),
    ],
    "hinge_loss": [("", lambda: (_n(6), _signs(6)), {})],
    "huber_loss": [
        ("", lambda: (_n(6) * 2, _n(6, seed=1)), {}),
        ("delta", lambda: (_n(3, 4) * 2, _n(3, 4, seed=1)), {"delta": 0.5}),
    ],
    "kl_div_loss": [
        ("", lambda: (np.log(_probs(4, 5)), np.log(_probs(4, 5, seed=1))), {}),
        ("axis0", lambda: (np.log(_probs(5, 4)).T.copy(), np.log(_probs(5, 4, seed=1)).T.copy()), {"axis": 0}),
    ],
    "l1_loss": [("", lambda: (_n(3, 4), _n(3, 4, seed=1)), {})],
    "log_cosh_loss": [("", lambda: (_n(3, 4) * 3, _n(3, 4, seed=1)), {})],
    "margin_ranking_loss": [
        ("", lambda: (_n(6), _n(6, seed=1), _signs(6)), {}),
        ("margin", lambda: (_n(6), _n(6, seed=1), _signs(6)), {"margin": 0.3}),
    ],
    "mse_loss": [("", lambda: (_n(3, 4), _n(3, 4, seed=1)), {})],
    "nll_loss": [
        ("", lambda: (np.log(_probs(5, 4)), _labels(5, 4)), {}),
        ("axis0", lambda: (np.log(_probs(5, 4)).T.copy(), _labels(5, 4)), {"axis": 0}),
    ],
    "smooth_l1_loss": [
        ("", lambda: (_n(3, 4) * 2, _n(3, 4, seed=1)), {}),
        ("beta", lambda: (_n(3, 4) * 2, _n(3, 4, seed=1)), {"beta": 0.3}),
    ],
    "triplet_loss": [
        ("", lambda: (_n(4, 5), _n(4, 5, seed=1), _n(4, 5, seed=2)), {}),
        ("p1-margin", lambda: (_n(4, 5), _n(4, 5, seed=1), _n(4, 5, seed=2)), {"p": 1, "margin": 0.5}),
        ("axis0", lambda: (_n(5, 4), _n(5, 4, seed=1), _n(5, 4, seed=2)), {"axis": 0}),
    ],
}  # fmt: skip


def _mlx_loss_names() -> list[str]:
    return sorted(
        n
        for n, v in vars(mlx_losses).items()
        if inspect.isfunction(v)
        and n.endswith("loss")
        or n in ("cross_entropy", "binary_cross_entropy")
    )


def test_every_mlx_loss_has_cases() -> None:
    """Each loss MLX exports is in chainrule.nn.losses and has a case here."""
    names = _mlx_loss_names()
    assert not [n for n in names if not hasattr(cnn.losses, n)], "chainrule.nn.losses lacks some"
    assert sorted(CASES) == names


PARAMS = [
    pytest.param(name, tag, args, kw, red, id=f"{name}-{tag or 'default'}-{red or 'noreduction'}")
    for name, cases in CASES.items()
    for tag, args, kw in cases
    for red in (None, "none", "mean", "sum")
]


@pytest.mark.parametrize("name,tag,make_args,kw,reduction", PARAMS)
def test_loss_matches_mlx(
    name: str, tag: str, make_args: Callable, kw: dict, reduction: str | None
) -> None:
    """Value, dtype, shape and the gradient of every float argument equal MLX's."""
    args = make_args()
    kw = dict(kw) if reduction is None else {**kw, "reduction": reduction}
    float_args = tuple(i for i, a in enumerate(args) if a.dtype == np.float32)
    fm, fc = getattr(mlx_losses, name), getattr(cnn.losses, name)
    want = np.array(fm(*to_mlx(args), **kw))
    got = np.array(fc(*to_cx(args), **kw))
    assert got.shape == want.shape and got.dtype == want.dtype, (
        got.shape,
        want.shape,
        got.dtype,
        want.dtype,
    )
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6)
    cot = _n(*want.shape, seed=9)

    def scalar(lib: object, f: Callable) -> Callable:
        return lambda *a: lib.sum(f(*a, **kw) * lib.array(cot))

    gm = mlx_core.grad(scalar(mlx_core, fm), argnums=float_args)(*to_mlx(args))
    gc = cx.grad(scalar(cx, fc), argnums=float_args)(*to_cx(args))
    for i, g, w in zip(float_args, gc, gm):
        np.testing.assert_allclose(
            np.array(g), np.array(w), rtol=2e-4, atol=2e-6, err_msg=f"d/d arg {i}"
        )


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_reduction_is_a_value_error_as_mlx(name: str) -> None:
    """An unknown reduction is refused by both, as a ValueError naming it."""
    args = CASES[name][0][1]()
    with pytest.raises(ValueError):
        getattr(mlx_losses, name)(*to_mlx(args), reduction="median")
    with pytest.raises(ValueError, match="median"):
        getattr(cnn.losses, name)(*to_cx(args), reduction="median")


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize(
    "name,tag,make_args,kw",
    [
        pytest.param(n, t, a, k, id=f"{n}-{t or 'default'}")
        for n, cs in CASES.items()
        for t, a, k in cs
    ],
)
def test_loss_half_precision_matches_mlx(
    name: str, tag: str, make_args: Callable, kw: dict, dtype: str
) -> None:
    """Half-precision float arguments: the same result dtype as MLX, values within half precision."""
    args = make_args()
    m_args = [
        mlx_core.array(a).astype(getattr(mlx_core, dtype))
        if a.dtype == np.float32
        else mlx_core.array(a)
        for a in args
    ]
    c_args = [
        cx.array(a).astype(getattr(cx, dtype)) if a.dtype == np.float32 else cx.array(a)
        for a in args
    ]
    for red in ("none", "mean"):
        want = getattr(mlx_losses, name)(*m_args, **kw, reduction=red)
        got = getattr(cnn.losses, name)(*c_args, **kw, reduction=red)
        assert str(got.dtype).split(".")[-1] == str(want.dtype).split(".")[-1], (
            red,
            got.dtype,
            want.dtype,
        )
        w, g = np.array(want.astype(mlx_core.float32)), np.array(got.astype(cx.float32))
        np.testing.assert_allclose(g, w, rtol=0.03, atol=0.03 * max(1.0, float(np.abs(w).max())))
