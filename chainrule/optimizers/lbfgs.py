"""L-BFGS (``torch.optim.LBFGS``): a quasi-Newton method driven by a closure.

Each ``step(closure)`` runs up to ``max_iter`` iterations on the flattened parameters: the
two-loop recursion over the last ``history_size`` curvature pairs gives a direction, and either
a fixed step (``lr``; the first iteration scaled down by the gradient's L1 norm) or a line
search satisfying the strong Wolfe conditions (``line_search_fn="strong_wolfe"``, cubic
interpolation with bracketing and zoom) gives the step length. Stopping tests, state entries
(``d``, ``t``, ``old_dirs``, ``old_stps``, ``ro``, ``H_diag``, ``prev_flat_grad``,
``prev_loss``, ``n_iter``, ``func_evals``, kept with the first parameter) and the arithmetic
in the parameters' dtype are PyTorch's, so runs agree with it to rounding.

MLX has no L-BFGS: it needs a closure, so it is PyTorch style only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chainrule.core.array import array
from chainrule.core.extend import from_value

from ..core.autograd import enable_grad, no_grad
from ..core.backend import xp
from .base import Optimizer, _check_lr, _looks_like_params

__all__ = ["LBFGS"]


def _cubic_minimum(x1, f1, g1, x2, f2, g2, bounds=None):
    """The minimiser of the cubic through two points with their slopes, kept in ``bounds``
    (the midpoint of the bounds when the cubic has no real minimiser)."""
    if bounds is None:
        bounds = (x1, x2) if x1 <= x2 else (x2, x1)
    lo, hi = bounds
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    disc = d1 * d1 - g1 * g2
    if disc < 0:
        return (lo + hi) / 2.0
    d2 = xp.sqrt(disc)  # in the dtype of the slopes, as PyTorch computes it
    if x1 <= x2:
        x = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    else:
        x = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    return min(max(x, lo), hi)


def _strong_wolfe(evaluate, t, d, f, g, gtd, c1=1e-4, c2=0.9, tolerance_change=1e-9, max_ls=25):
    """A step length ``t`` along ``d`` meeting the strong Wolfe conditions.

    Returns ``(f_new, g_new, t, evaluations)``; ``evaluate(t)`` gives the loss and the flat
    gradient at ``x + t d``.
    """
    d_norm = float(xp.max(xp.abs(d)))
    f_new, g_new = evaluate(t)
    evals = 1
    gtd_new = xp.dot(g_new, d)
    t_prev, f_prev, g_prev, gtd_prev = 0, f, g, gtd
    done = False
    it = 0
    # bracket an interval containing a point that satisfies the conditions
    while it < max_ls:
        if f_new > f + c1 * t * gtd or (it > 1 and f_new >= f_prev):
            bracket, bf, bg, bgtd = (
                [t_prev, t],
                [f_prev, f_new],
                [g_prev, g_new],
                [gtd_prev, gtd_new],
            )
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket, bf, bg, bgtd = [t], [f_new], [g_new], [gtd_new]
            done = True
            break
        if gtd_new >= 0:
            bracket, bf, bg, bgtd = (
                [t_prev, t],
                [f_prev, f_new],
                [g_prev, g_new],
                [gtd_prev, gtd_new],
            )
            break
        low, high = t + 0.01 * (t - t_prev), t * 10
        t_prev, t = t, _cubic_minimum(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, (low, high))
        f_prev, g_prev, gtd_prev = f_new, g_new, gtd_new
        f_new, g_new = evaluate(t)
        evals += 1
        gtd_new = xp.dot(g_new, d)
        it += 1
    if it == max_ls:
        bracket, bf, bg, bgtd = [0, t], [f, f_new], [g, g_new], [gtd, gtd_new]
    # zoom until the point satisfies the conditions or the interval is too small
    stalled = False
    lo, hi = (0, 1) if bf[0] <= bf[-1] else (1, 0)
    while not done and it < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break
        t = _cubic_minimum(bracket[0], bf[0], bgtd[0], bracket[1], bf[1], bgtd[1])
        top, bottom = max(bracket), min(bracket)
        eps = 0.1 * (top - bottom)
        if min(top - t, t - bottom) < eps:  # too close to an end: move away from it
            if stalled or t >= top or t <= bottom:
                t = top - eps if abs(t - top) < abs(t - bottom) else bottom + eps
                stalled = False
            else:
                stalled = True
        else:
            stalled = False
        f_new, g_new = evaluate(t)
        evals += 1
        gtd_new = xp.dot(g_new, d)
        it += 1
        if f_new > f + c1 * t * gtd or f_new >= bf[lo]:
            bracket[hi], bf[hi], bg[hi], bgtd[hi] = t, f_new, g_new, gtd_new
            lo, hi = (0, 1) if bf[0] <= bf[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[hi] - bracket[lo]) >= 0:
                bracket[hi], bf[hi], bg[hi], bgtd[hi] = bracket[lo], bf[lo], bg[lo], bgtd[lo]
            bracket[lo], bf[lo], bg[lo], bgtd[lo] = t, f_new, g_new, gtd_new
    return bf[lo], bg[lo], bracket[lo], evals


def _data(value):
    """A state entry as a backend value (arrays, lists of arrays and numbers alike)."""
    if isinstance(value, array):
        return value._data
    if isinstance(value, list):
        return [_data(v) for v in value]
    return value


def _wrap(value):
    """A backend value as a state entry: arrays for NumPy values, lists kept as lists."""
    if isinstance(value, (xp.ndarray, xp.generic)):
        return from_value(xp.asarray(value))
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


class LBFGS(Optimizer):
    """L-BFGS, PyTorch style only: ``LBFGS(params, lr=1, max_iter=20, max_eval=None,
    tolerance_grad=1e-7, tolerance_change=1e-9, history_size=100, line_search_fn=None)``.

    Args:
        params: The parameters (one group only).
        lr: The step length (with ``line_search_fn``, the line search's first trial).
        max_iter: The most iterations per ``step``.
        max_eval: The most closure evaluations per ``step`` (default ``max_iter * 5 // 4``).
        tolerance_grad: Stop when the gradient's largest entry is at most this.
        tolerance_change: Stop when the loss or the step changes less than this.
        history_size: The number of curvature pairs kept.
        line_search_fn: ``None`` (fixed steps) or ``"strong_wolfe"``.
    """

    def __init__(
        self,
        params: Any,
        lr: float = 1,
        max_iter: int = 20,
        max_eval: int | None = None,
        tolerance_grad: float = 1e-7,
        tolerance_change: float = 1e-9,
        history_size: int = 100,
        line_search_fn: str | None = None,
    ) -> None:
        if not _looks_like_params(params):
            raise TypeError(
                "LBFGS: the first argument must be the parameters (LBFGS needs a closure, so "
                "it has only PyTorch's style: LBFGS(model.parameters(), lr=1))"
            )
        _check_lr("LBFGS", lr)
        if line_search_fn not in (None, "strong_wolfe"):
            raise ValueError(f"LBFGS: only 'strong_wolfe' is supported, got {line_search_fn!r}")
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        defaults = {
            "lr": lr,
            "max_iter": max_iter,
            "max_eval": max_eval,
            "tolerance_grad": tolerance_grad,
            "tolerance_change": tolerance_change,
            "history_size": history_size,
            "line_search_fn": line_search_fn,
        }
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")
        self._params = self.param_groups[0]["params"]

    def add_param_group(self, param_group: dict) -> None:
        """Add the one parameter group (LBFGS has no per-group options)."""
        if self.param_groups:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")
        super().add_param_group(param_group)

    def _flat_grad(self):
        parts = []
        for p in self._params:
            g = p._grad
            parts.append(xp.zeros(p._data.size, p._data.dtype) if g is None else g._data.ravel())
        return xp.concatenate(parts) if parts else xp.zeros(0)

    def _move(self, t, d) -> None:
        """``params += t * d`` (``d`` flat), rebinding each handle."""
        offset = 0
        for p in self._params:
            n = p._data.size
            step = (d[offset : offset + n] * t).reshape(p._data.shape)
            p._set_value((p._data + step).astype(p._data.dtype, copy=False))
            offset += n

    def _step(self, closure: Callable[[], Any] | None = None):
        """One L-BFGS step: up to ``max_iter`` iterations, ``closure`` re-evaluating the loss.

        Returns:
            The loss of the first evaluation.
        """
        if closure is None:
            raise TypeError("LBFGS.step() missing 1 required positional argument: 'closure'")
        self._steps += 1
        group = self.param_groups[0]
        lr = float(group["lr"])
        max_iter, max_eval = group["max_iter"], group["max_eval"]
        tol_grad, tol_change = group["tolerance_grad"], group["tolerance_change"]
        history = group["history_size"]

        def evaluate():
            with enable_grad():
                return closure()

        state = self._param_state[self._params[0]]
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)
        orig_loss = evaluate()
        loss = float(orig_loss)
        evals = 1
        state["func_evals"] += 1
        flat_grad = self._flat_grad()
        if xp.max(xp.abs(flat_grad)) <= tol_grad:
            return orig_loss
        d, t = _data(state.get("d")), _data(state.get("t"))
        old_dirs, old_stps = _data(state.get("old_dirs")), _data(state.get("old_stps"))
        ro, h_diag = _data(state.get("ro")), _data(state.get("H_diag"))
        prev_flat_grad, prev_loss = _data(state.get("prev_flat_grad")), state.get("prev_loss")
        al = _data(state.get("al"))
        n_iter = 0
        with no_grad():
            while n_iter < max_iter:
                n_iter += 1
                state["n_iter"] += 1
                if state["n_iter"] == 1:
                    d = -flat_grad
                    old_dirs, old_stps, ro, h_diag = [], [], [], 1
                else:
                    y = flat_grad - prev_flat_grad
                    s = d * t
                    ys = xp.dot(y, s)
                    if ys > 1e-10:  # keep the pair only when the curvature is positive
                        if len(old_dirs) == history:
                            old_dirs.pop(0)
                            old_stps.pop(0)
                            ro.pop(0)
                        old_dirs.append(y)
                        old_stps.append(s)
                        ro.append(1.0 / ys)
                        h_diag = ys / xp.dot(y, y)
                    if al is None:
                        al = [None] * history
                    q = -flat_grad
                    for i in range(len(old_dirs) - 1, -1, -1):
                        al[i] = xp.dot(old_stps[i], q) * ro[i]
                        q = q - al[i] * old_dirs[i]
                    d = r = q * h_diag
                    for i in range(len(old_dirs)):
                        be_i = xp.dot(old_dirs[i], r) * ro[i]
                        r = r + (al[i] - be_i) * old_stps[i]
                    d = r
                prev_flat_grad = flat_grad.copy()
                prev_loss = loss
                if state["n_iter"] == 1:
                    t = min(1.0, 1.0 / xp.sum(xp.abs(flat_grad))) * lr
                else:
                    t = lr
                gtd = xp.dot(flat_grad, d)
                if gtd > -tol_change:
                    break
                ls_evals = 0
                if group["line_search_fn"] is not None:
                    x0 = [p._data for p in self._params]

                    def along(step, x0=x0, d=d):
                        self._move(step, d)
                        value = float(evaluate())
                        grad = self._flat_grad()
                        for p, v in zip(self._params, x0):
                            p._set_value(v)
                        return value, grad

                    loss, flat_grad, t, ls_evals = _strong_wolfe(
                        along, t, d, loss, flat_grad, gtd, max_ls=max_eval - evals
                    )
                    self._move(t, d)
                    opt_cond = xp.max(xp.abs(flat_grad)) <= tol_grad
                else:
                    self._move(t, d)
                    opt_cond = False
                    if n_iter != max_iter:
                        loss = float(evaluate())
                        flat_grad = self._flat_grad()
                        opt_cond = xp.max(xp.abs(flat_grad)) <= tol_grad
                        ls_evals = 1
                evals += ls_evals
                state["func_evals"] += ls_evals
                if n_iter == max_iter or evals >= max_eval or opt_cond:
                    break
                if xp.max(xp.abs(d * t)) <= tol_change or abs(loss - prev_loss) < tol_change:
                    break
        state.update(
            d=_wrap(d),
            t=_wrap(t),
            old_dirs=_wrap(old_dirs),
            old_stps=_wrap(old_stps),
            ro=_wrap(ro),
            H_diag=_wrap(h_diag),
            prev_flat_grad=_wrap(prev_flat_grad),
            prev_loss=prev_loss,
        )
        if al is not None:
            state["al"] = _wrap(al)
        return orig_loss
