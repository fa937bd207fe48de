"""``mx.check_grads``: analytic derivatives against float64 central differences."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from . import backend as _backend
from . import ops
from . import tree as pytree
from .array import _from_value, array
from .autograd import jvp, vjp
from .backend import xp

__all__ = ["check_grads"]


def _flat(x) -> xp.ndarray:
    d = x._data if isinstance(x, array) else x
    return xp.asarray(_backend.to_host(d), dtype=xp.float64).reshape(-1)  # compared on the host


def check_grads(
    fun: Callable,
    args: Sequence,
    order: int = 2,
    modes: Sequence[str] = ("fwd", "rev"),
    eps: float = 1e-6,
    rtol: float = 1e-5,
    atol: float = 1e-6,
    seed: int = 0,
) -> None:
    """Compare analytic derivatives with float64 central differences along random directions.

    Forward mode compares ``jvp`` with the difference quotient along a random tangent; reverse
    mode compares ``<u, J t>`` from the difference quotient with ``<vjp(u), t>``. Each further
    order repeats both checks on the function ``x -> vjp(f)(x, v)`` for a random ``v``.

    Args:
        fun: a function of ``args`` returning an array (or a tree of arrays, checked together).
        args: the point (arrays are converted to float64 copies).
        order: check derivatives up to this order.
        modes: ``"rev"`` checks VJPs, ``"fwd"`` checks JVPs.
        eps: finite-difference step.
        rtol: relative tolerance.
        atol: absolute tolerance.
        seed: seed of the random directions.

    Raises:
        AssertionError: naming the mode, the order and the largest error found.

    Examples:
        >>> import chainrule.core as mx
        >>> mx.check_grads(lambda x: mx.sin(x) * x, [mx.array([0.5, -1.0])])  # passes silently
        >>> @mx.custom_function
        ... def wrong(x):
        ...     return x**2
        >>> @wrong.vjp
        ... def wrong_vjp(primals, cotangent, output):
        ...     return (cotangent * primals[0],)  # should be 2 x
        >>> try:
        ...     mx.check_grads(wrong, [mx.array([1.5])], modes=("rev",))
        ... except AssertionError as e:
        ...     print("caught:", str(e).split(":")[0])  # doctest: +ELLIPSIS
        caught: ...
    """
    for m in modes:
        if m not in ("fwd", "rev"):
            raise ValueError(f"check_grads: modes must be 'fwd' or 'rev', not {m!r}")
    rng = xp.random.default_rng(seed)
    datas = [a._data if isinstance(a, array) else a for a in args]
    args = [  # float64 copies, on the arguments' device
        _from_value(d.astype(xp.float64) if _backend.is_gpu(d) else xp.array(d, dtype=xp.float64))
        for d in datas
    ]

    def fresh(xs):
        # new handles for every call: the function may rebind its arguments (``x += y``)
        return [_from_value(x._data) for x in xs]

    def numeric_dir(f, xs, ts, level):
        plus = f(*[_from_value(x._data + eps * t._data) for x, t in zip(xs, ts)])
        minus = f(*[_from_value(x._data - eps * t._data) for x, t in zip(xs, ts)])
        num = (_flat(plus) - _flat(minus)) / (2 * eps)
        if not xp.all(xp.isfinite(num)):
            raise AssertionError(
                f"check_grads: the finite differences of order {level} are not finite; the "
                "function is not finite (or not smooth) near the point"
            )
        return num

    def check(f, xs, level):
        ts = [_from_value(_backend.same_device(rng.standard_normal(x.shape), x._data)) for x in xs]
        num = numeric_dir(f, xs, ts, level)
        if "fwd" in modes:
            _, (ana,) = jvp(f, xs, ts)
            _compare(num, _flat(ana), "fwd", level)
        if "rev" in modes:
            out = f(*fresh(xs))
            u = _from_value(_backend.same_device(rng.standard_normal(out.shape), out._data))
            _, vjps = vjp(f, xs, [u])
            lhs = float(xp.dot(_flat(u), num))
            rhs = float(xp.sum([xp.dot(_flat(g), _flat(t)) for g, t in zip(vjps, ts)]))
            _compare(xp.array([lhs]), xp.array([rhs]), "rev", level)
        if level < order:
            out = f(*fresh(xs))
            v = _from_value(_backend.same_device(rng.standard_normal(out.shape), out._data))

            def dir_fun(*ys):
                _, g = vjp(f, ys, [v])
                return ops.concatenate([ops.reshape(gi, (-1,)) for gi in g])

            check(dir_fun, xs, level + 1)

    def _compare(num, ana, mode, level):
        err = xp.abs(num - ana)
        tol = atol + rtol * xp.abs(num)
        if xp.any(err > tol) or not xp.all(xp.isfinite(ana)):
            worst = int(xp.argmax(xp.where(xp.isfinite(err), err - tol, xp.inf)))
            raise AssertionError(
                f"check_grads: {mode}-mode derivative of order {level} is off: largest error "
                f"{float(err[worst]):.3g} (numeric {num[worst]:.6g}, analytic {ana[worst]:.6g})"
            )

    check(_one_output(fun), args, 1)


def _one_output(fun: Callable) -> Callable:
    """``fun`` with a tree of outputs joined into one flat array."""

    def joined(*xs):
        out = fun(*xs)
        if isinstance(out, array):
            return out
        leaves = [o for o in pytree.leaves(out) if isinstance(o, array)]
        return ops.concatenate([ops.reshape(o, (-1,)) for o in leaves])

    return joined
