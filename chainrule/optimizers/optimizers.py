"""Optimizers with MLX's API and PyTorch's, on one per-parameter code path.

Each optimizer is written once, as MLX writes it: ``init_single(parameter, state)`` creates the
state of one parameter and ``apply_single(gradient, parameter, state)`` returns its new value.
The base class :class:`Optimizer` drives that pair from either front door:

* MLX style, ``Adam(learning_rate=1e-3)`` / ``Adam(1e-3)``: ``optimizer.update(model, grads)``
  maps ``apply_single`` over the gradient tree (:meth:`Optimizer.apply_gradients`) and hands the
  new arrays to ``model.update``. ``optimizer.state`` is one tree ``{"step", "learning_rate",
  <parameter tree of per-parameter dicts>}`` and the learning rate may be a schedule.
* PyTorch style, ``Adam(model.parameters(), lr=1e-3)`` or a list of parameter-group dicts:
  ``optimizer.step()`` runs ``apply_single`` for every parameter whose ``.grad`` is set and
  rebinds the parameter's handle to the new value in place (``array._set_value``), so the model,
  which holds the same handles, sees it and the parameters stay ``requires_grad`` leaves.
  ``param_groups``, ``state`` (keyed by parameter), ``zero_grad``, ``add_param_group``,
  ``state_dict`` and ``load_state_dict`` behave as in ``torch.optim``.

The style is chosen by the first argument (a learning rate or a schedule, versus parameters) and
only sets PyTorch's or MLX's defaults and positional order; where the two libraries' update
formulas genuinely differ (SGD's first momentum buffer, Adam's bias correction, Adamax,
Adafactor, Muon) the optimizer reads ``self._torch``. Hyper-parameters live in a group dict
(``self.defaults`` in MLX style, each of ``param_groups`` in PyTorch style) that ``apply_single``
reads as ``self._group``, so a scheduler's ``group["lr"] = ...`` takes effect at the next step.

Optimizer maths is not differentiated, so ``apply_single`` works on the NumPy values. Nothing is
modified in place: new parameter values and new state buffers are fresh arrays, so state
snapshots (``state_dict()``, ``optimizer.state``) and graphs recorded earlier stay valid.

``optimizer.step`` is both things at once, as ``array.size`` is: MLX's step count (an array)
that PyTorch code can call, ``optimizer.step(closure=None)``.
"""

from __future__ import annotations

import functools
import math
import numbers
import weakref
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from .. import core as mx
from ..core import tree as pytree
from ..core.array import Node, _from_value, _new, array
from ..core.autograd import enable_grad, no_grad
from ..core.backend import xp
from ..core.compile import is_tracing, setting
from ..utils import tree_flatten, tree_unflatten

__all__ = [
    "AdaDelta",
    "Adadelta",
    "Adafactor",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "Lion",
    "MultiOptimizer",
    "Muon",
    "Optimizer",
    "RMSprop",
    "SGD",
    "clip_grad_norm",
]

LearningRate = float | array | Callable[[array], array]

_MISSING = object()
_REQUIRED = object()
# PyTorch's implementation switches: accepted for compatibility, meaningless here.
_IGNORED_FLAGS = frozenset({"foreach", "fused", "capturable", "differentiable"})


def _as_array(x) -> array:
    return x if isinstance(x, array) else mx.array(x)


def _zeros(parameter: array) -> array:
    return _from_value(xp.zeros_like(parameter._data))


def _is_leaf_array(x) -> bool:
    return isinstance(x, array) and (x._node is None or x._node.prim is None)


def _tree_arrays(tree, who: str) -> list:
    """The arrays of a parameter tree (dict, Module, list, generator), deduplicated, in order."""
    if isinstance(tree, array):
        return [tree]
    if not pytree.kind(tree):
        tree = list(tree)
    out, seen = [], set()
    for path, leaf in tree_flatten(tree):
        if not isinstance(leaf, array):
            raise TypeError(
                f"{who}: parameters must be arrays, got {type(leaf).__name__} at {path!r}"
            )
        if id(leaf) not in seen:
            seen.add(id(leaf))
            out.append(leaf)
    return out


def _normalise_params(params, who: str) -> list[dict]:
    """PyTorch's ``params`` argument as a list of parameter-group dicts."""
    if isinstance(params, array):
        raise TypeError(
            f"{who}: params must be an iterable of arrays, a parameter tree or a list of "
            "parameter groups, got a single array; wrap it in a list"
        )
    if isinstance(params, (set, frozenset)):
        raise TypeError(f"{who}: params must be ordered (a list or a tree), got a set")
    if isinstance(params, dict):  # a parameter tree, e.g. model.parameters()
        return [{"params": params}]
    items = list(params)
    if not items:
        raise ValueError(f"{who}: optimizer got an empty parameter list")
    if all(isinstance(g, dict) and "params" in g for g in items):
        return [dict(g) for g in items]
    if all(isinstance(i, tuple) and len(i) == 2 and isinstance(i[0], str) for i in items):
        # named_parameters(): keep the names as PyTorch does
        return [{"params": [a for _, a in items], "param_names": [n for n, _ in items]}]
    return [{"params": items}]


def _looks_like_params(first) -> bool:
    """True when the first argument is parameters (PyTorch), not a learning rate (MLX)."""
    if first is _MISSING or first is None:
        return False
    if isinstance(first, (dict, list, tuple, set, frozenset)):
        return True
    if isinstance(first, array):  # a learning rate is one number; a bigger array is a mistake
        return first._data.size != 1
    if isinstance(first, (numbers.Number, xp.generic, xp.ndarray)) or callable(first):
        return False
    return isinstance(first, Iterable)


class _StepCount(array):
    """MLX's ``optimizer.step`` (the step count, an array) that is also PyTorch's ``step()``."""

    __slots__ = ("_opt",)

    def __call__(self, closure: Callable[[], Any] | None = None):
        return self._opt._step(closure)


def _positive(who: str, name: str, value) -> None:
    if not value > 0:
        raise ValueError(f"{who}: invalid {name} {value!r} (must be > 0)")


def _non_negative(who: str, name: str, value) -> None:
    if not value >= 0:
        raise ValueError(f"{who}: invalid {name} {value!r} (must be >= 0)")


def _unit_interval(who: str, name: str, value) -> None:
    if not 0 <= value < 1:
        raise ValueError(f"{who}: invalid {name} {value!r} (must be in [0, 1))")


def _check_lr(who: str, lr) -> None:
    if lr is None or callable(lr) and not isinstance(lr, array):
        return
    if not float(lr) >= 0:
        raise ValueError(f"{who}: invalid learning rate {float(lr)!r} (must be >= 0)")


def _check_betas(who: str, betas) -> None:
    if len(betas) != 2:
        raise ValueError(f"{who}: betas must be a pair (beta1, beta2), got {betas!r}")
    for i, b in enumerate(betas):
        _unit_interval(who, f"beta{i + 1}", b)


class Optimizer:
    """The base of all optimizers, serving the MLX and the PyTorch calling styles.

    Subclass it MLX's way (``super().__init__()``, then ``init_single`` and ``apply_single``)
    or PyTorch's way (``super().__init__(params, defaults)``).

    Args:
        params: Parameters for PyTorch style (an iterable of arrays, a parameter tree such as
            ``model.parameters()``, or a list of parameter-group dicts); ``None`` for MLX style.
        defaults: The hyper-parameters every parameter group starts from.
        schedulers: MLX's ``{name: schedule}`` for scheduled state entries.
    """

    def __init__(
        self,
        params: Any = None,
        defaults: dict | None = None,
        *,
        schedulers: dict | None = None,
    ) -> None:
        object.__setattr__(self, "defaults", dict(defaults or {}))
        self._torch = params is not None
        self._initialized = False
        self._state: dict = {"step": _from_value(xp.asarray(0, dtype=xp.uint64))}
        self._schedulers = dict(schedulers or {})
        self._group = self.defaults  # the hyper-parameters apply_single reads
        self._t = 0  # the step count apply_single reads in MLX style
        self._steps = 0  # PyTorch-style step() calls
        self.param_groups: list[dict] = []
        self._param_state: defaultdict = defaultdict(dict)
        if params is not None:
            for group in _normalise_params(params, type(self).__name__):
                self.add_param_group(group)

    # -- hyper-parameters as attributes (MLX: optimizer.betas, optimizer.momentum = 0.5) ----------
    def __getattr__(self, name: str):
        defaults = self.__dict__.get("defaults")
        if defaults is not None and name in defaults:
            return defaults[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value) -> None:
        defaults = self.__dict__.get("defaults")
        if defaults is not None and name in defaults:
            if name == "lr" and not self.__dict__.get("_torch", True):
                self.learning_rate = value
                return
            defaults[name] = value
            for group in self.__dict__.get("param_groups", ()):
                group[name] = value
            return
        object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        if not self._torch:
            hp = ", ".join(f"{k}={v!r}" for k, v in self.defaults.items() if k != "lr")
            return f"{type(self).__name__}(learning_rate={self._lr_repr()}, {hp})"
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines.extend(f"    {k}: {v}" for k, v in group.items() if k != "params")
        return "\n".join(lines + [")"])

    def _lr_repr(self) -> str:
        lr = self._state.get("learning_rate")
        return "None" if lr is None else f"{float(lr._data):g}"

    # -- the per-parameter maths, written by subclasses -----------------------------------------
    def init_single(self, parameter: array, state: dict) -> None:
        """Create the optimizer state of one parameter in ``state`` (a dict).

        Args:
            parameter: The parameter.
            state: The parameter's (empty) state dict, filled in place.
        """
        raise NotImplementedError

    def apply_single(self, gradient: array, parameter: array, state: dict) -> array:
        """Return the updated ``parameter`` and store its new state in ``state``.

        Args:
            gradient: The parameter's gradient.
            parameter: The parameter.
            state: The parameter's state dict.

        Returns:
            The parameter's new value.
        """
        raise NotImplementedError

    def _count(self, state: dict) -> int:
        """The step count of one parameter: per parameter in PyTorch style, global in MLX's."""
        return state.get("step", self._t)

    # -- MLX style -------------------------------------------------------------------------------
    @property
    def state(self):
        """MLX style: the state tree. PyTorch style: ``{parameter: state dict}``."""
        return self._param_state if self._torch else self._state

    @state.setter
    def state(self, state) -> None:
        if self._torch:
            self._param_state = defaultdict(dict, state)
        else:
            self._initialized = False
            self._state = state

    @property
    def step(self) -> _StepCount:
        """MLX: the number of updates so far (an array). PyTorch: call it, ``step(closure)``."""
        s = _new(_StepCount)
        s._data = xp.asarray(self._steps) if self._torch else self._state["step"]._data
        s._node = None
        s._grad = None
        s._opt = self
        return s

    @property
    def learning_rate(self):
        """The learning rate: an array in MLX style, ``param_groups[0]["lr"]`` in PyTorch style.

        Setting it to a number or, in MLX style, to a schedule changes it for every group.
        """
        if self._torch:
            return self.param_groups[0]["lr"]
        return self._state["learning_rate"]

    @learning_rate.setter
    def learning_rate(self, value: LearningRate) -> None:
        if self._torch:
            _check_lr(type(self).__name__, value)
            for group in self.param_groups:
                group["lr"] = value
            return
        self._schedulers.pop("learning_rate", None)
        self._maybe_schedule("learning_rate", value)

    def _maybe_schedule(self, name: str, param: LearningRate) -> None:
        """Put ``state[name]`` on a schedule when ``param`` is callable (MLX)."""
        if callable(param) and not isinstance(param, array):
            self._schedulers[name] = param
            param = param(self._state["step"])
        value = _as_array(param)
        self._state[name] = value
        if name == "learning_rate" and "lr" in self.defaults:
            self.defaults["lr"] = float(value._data)

    def init(self, parameters: Any) -> None:
        """Create the state of every parameter of a tree now rather than at the first update.

        Args:
            parameters: A tree of parameters, such as ``model.trainable_parameters()``.
        """
        if self._torch:
            return  # PyTorch-style state is created per parameter at its first step
        self._init_tree(parameters, self._state)
        self._initialized = True

    def _init_tree(self, params, state):
        # The state mirrors the parameter tree (core/tree.py's policy) with plain dicts and
        # lists, which grow when gradients name parameters it has not seen. Recursion per
        # nesting level only; the leaves of one level are a loop.
        k = pytree.kind(params)
        if k == pytree.DICT:
            if pytree.kind(state) != pytree.DICT:
                state = {}
            for name, v in params.items():
                state[name] = self._init_tree(v, state.get(name))
            return state
        if k:
            old = state if pytree.kind(state) not in (pytree.LEAF, pytree.DICT) else ()
            return [
                self._init_tree(v, old[i] if i < len(old) else None) for i, v in enumerate(params)
            ]
        if state:
            return state
        state = {} if state is None else state
        if isinstance(params, array):
            self.init_single(params, state)
        return state

    def apply_gradients(self, gradients: Any, parameters: Any) -> Any:
        """Return the parameters updated by ``gradients`` (a tree shaped like ``gradients``).

        Args:
            gradients: A tree of gradients.
            parameters: A tree of parameters, a superset of ``gradients``.

        Returns:
            A tree shaped like ``gradients`` holding the new parameter values (new arrays; a
            ``requires_grad`` parameter gives a ``requires_grad`` result).
        """
        if self._torch:
            return self._torch_tree(gradients, parameters, in_place=False)
        if not self._initialized:
            self.init(gradients)
        state = self._state
        step = state["step"]
        for name, schedule in self._schedulers.items():
            state[name] = _as_array(schedule(step))
        # The step count stays an array (as in MLX), and so does the learning rate while
        # mx.compile traces, so that the program reads them instead of freezing constants.
        t = xp.asarray(step._data + 1)
        state["step"] = _from_value(t)
        self._t = t
        defaults = self.defaults
        if "lr" in defaults and "learning_rate" in state:
            lr = state["learning_rate"]._data
            defaults["lr"] = lr if is_tracing() else float(lr)
        for name in self._schedulers:
            if name != "learning_rate" and name in defaults:
                defaults[name] = float(state[name]._data)
        self._group = defaults
        if is_tracing():  # hyper-parameters other than the learning rate are Python numbers
            read = functools.partial(_hyper, defaults, ("params", "lr"))
            setting(read, read())
        with no_grad():
            return self._walk(gradients, parameters, state)

    def _walk(self, grads, params, state):
        """``grads`` mapped to new parameters, with ``params`` and ``state`` walked in lockstep
        (core/tree.py's policy; the result is shaped like ``grads``). A ``None`` gradient keeps
        its parameter; state missing for a parameter is created."""
        if type(grads) is array:
            return _like(self.apply_single(grads, params, state), params)
        k = pytree.kind(grads)
        if k == pytree.DICT:
            out = {}
            for name, g in grads.items():
                if name not in params:
                    raise ValueError(
                        f"{type(self).__name__}: the gradients name {name!r}, which the "
                        f"parameters do not have (they have {sorted(map(str, params))})"
                    )
                sub = state.get(name)
                if sub is None:
                    sub = state[name] = self._init_tree(params[name], None)
                out[name] = self._walk(g, params[name], sub)
            return out
        if k:
            out = []
            for i, g in enumerate(grads):
                if i >= len(state):
                    state.append(self._init_tree(params[i], None))
                out.append(self._walk(g, params[i], state[i]))
            return pytree.rebuild(grads, out)
        if grads is None:
            return params
        raise TypeError(
            f"{type(self).__name__}: a gradient must be an array (or None), not "
            f"{type(grads).__name__}"
        )

    def update(self, model: Any, gradients: Any) -> None:
        """Apply ``gradients`` to ``model``'s parameters.

        MLX style: ``model.update(self.apply_gradients(gradients, model))``. PyTorch style: the
        parameters of this optimizer found in ``model`` are updated in place, as ``step()`` does.

        Args:
            model: A module (or a tree of parameters with an ``update`` method).
            gradients: A tree of gradients, e.g. from ``nn.value_and_grad``.
        """
        if self._torch:
            self._torch_tree(gradients, model, in_place=True)
        else:
            # apply_gradients already refused names the model lacks (it reads each one)
            new = self.apply_gradients(gradients, model)
            if isinstance(model, _module_class()):
                model.update(new, strict=False)
            else:
                model.update(new)

    # -- PyTorch style ---------------------------------------------------------------------------
    def add_param_group(self, param_group: dict) -> None:
        """Add a parameter group (a dict with ``"params"`` and optional hyper-parameters).

        Args:
            param_group: The group; missing hyper-parameters come from ``defaults``.
        """
        who = type(self).__name__
        if not isinstance(param_group, dict):
            raise TypeError(f"{who}: a parameter group must be a dict, got {param_group!r}")
        group = dict(param_group)
        params = _tree_arrays(group["params"], who)
        for p in params:
            if not _is_leaf_array(p):
                raise ValueError(f"{who}: can't optimize a non-leaf array (shape {p.shape})")
            self._check_param(p)
        group["params"] = params
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        self._check_hyper(group)
        taken = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in taken for p in params):
            raise ValueError(f"{who}: some parameters appear in more than one parameter group")
        self.param_groups.append(group)

    def _check_param(self, parameter: array) -> None:
        """Refuse a parameter this optimizer cannot handle (subclasses)."""

    def _check_hyper(self, group: dict) -> None:
        """Refuse invalid hyper-parameters (subclasses)."""

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients of every parameter.

        Args:
            set_to_none: Set ``.grad`` to ``None`` (default) rather than to zeros.
        """
        for group in self.param_groups:
            for p in group["params"]:
                if p._grad is not None:
                    p._grad = None if set_to_none else _from_value(xp.zeros_like(p._data))

    def _needs_params(self, what: str) -> None:
        if not self._torch:
            raise RuntimeError(
                f"{type(self).__name__}.{what} needs the parameters: this optimizer was built "
                f"MLX-style (with a learning rate). Build it as {type(self).__name__}"
                "(model.parameters(), lr=...), or use optimizer.update(model, grads)"
            )

    def _advance(self, p: array, g: array, group: dict):
        """Run ``apply_single`` for one PyTorch-style parameter; return its new backend value."""
        self._group = group
        s = self._param_state[p]
        if not s:
            s["step"] = 0
            self.init_single(p, s)
        s["step"] += 1
        new = self.apply_single(g, p, s)._data
        return new if new.dtype == p._data.dtype else new.astype(p._data.dtype)

    def _step(self, closure: Callable[[], Any] | None = None):
        """One PyTorch-style step: update every parameter that has a ``.grad``."""
        self._needs_params("step()")
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        self._steps += 1
        advance = self._advance
        if is_tracing():
            self._note_settings()
        with no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    if p._grad is not None:
                        p._set_value(advance(p, p._grad, group))
        return loss

    def _note_settings(self) -> None:
        """Under ``mx.compile``: the hyper-parameters the traced step reads as Python numbers
        (schedulers change ``group["lr"]``) become settings the replay checks."""
        for group in self.param_groups:
            setting(functools.partial(_hyper, group), _hyper(group))

    def _torch_tree(self, gradients, parameters, in_place: bool):
        """PyTorch-style optimizer fed a gradient tree (``update`` / ``apply_gradients``).

        Parameters of the tree that are not in this optimizer's groups are left as they are.
        """
        groups = {id(p): group for group in self.param_groups for p in group["params"]}
        self._steps += 1
        if is_tracing():
            self._note_settings()

        def leaf(g, p):
            group = groups.get(id(p)) if g is not None else None
            if group is None:
                return p
            new = self._advance(p, g, group)
            if in_place:
                p._set_value(new)
                return p
            return _like(_from_value(new), p)

        with no_grad():
            return pytree.map(leaf, gradients, parameters)  # None is a leaf: fn(None, p)

    def state_dict(self) -> dict:
        """The optimizer's state, with parameters replaced by their positions (PyTorch).

        Returns:
            PyTorch style: ``{"state": {index: {...}}, "param_groups": [...]}``. MLX style:
            ``{"state": <a copy of the state tree>}``.
        """
        if not self._torch:
            return {"state": pytree.map(lambda x: x, self._state)}
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            ids = []
            for p in group["params"]:
                ids.append(index.setdefault(id(p), len(index)))
            packed["params"] = ids
            groups.append(packed)
        # state arrays are never modified in place, so shallow copies are snapshots
        state = {index[id(p)]: dict(s) for p, s in self._param_state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore a state saved by :meth:`state_dict` (parameters matched by position).

        Args:
            state_dict: The saved state.
        """
        who = type(self).__name__
        if not self._torch:
            self.state = pytree.map(lambda x: x, state_dict["state"])
            return
        saved = state_dict["param_groups"]
        if len(saved) != len(self.param_groups):
            raise ValueError(
                f"{who}: loaded state dict has {len(saved)} parameter groups, the optimizer "
                f"has {len(self.param_groups)}"
            )
        for i, (g, sg) in enumerate(zip(self.param_groups, saved)):
            if len(g["params"]) != len(sg["params"]):
                raise ValueError(
                    f"{who}: loaded parameter group {i} has {len(sg['params'])} parameters, the "
                    f"optimizer's has {len(g['params'])}"
                )
        by_index = {
            i: p
            for g, sg in zip(self.param_groups, saved)
            for i, p in zip(sg["params"], g["params"])
        }
        new_state: defaultdict = defaultdict(dict)
        for i, s in state_dict["state"].items():
            p = by_index.get(int(i))
            if p is None:
                continue
            new_state[p] = {k: _cast_state(k, v, p) for k, v in s.items()}
        self._param_state = new_state
        for g, sg in zip(self.param_groups, saved):
            params = g["params"]
            g.clear()
            g.update({k: v for k, v in sg.items() if k != "params"})
            g["params"] = params


def _cast_state(key: str, value, parameter: array):
    """A loaded state entry, as an array of the parameter's floating dtype (PyTorch's rule)."""
    if key == "step":
        return int(value) if not isinstance(value, (list, tuple)) else value
    if isinstance(value, array) or isinstance(value, xp.ndarray):
        data = value._data if isinstance(value, array) else xp.array(value)
        if data.dtype.kind == "f":
            data = data.astype(parameter._data.dtype, copy=False)
        return _from_value(data)
    return value


def _ascent_and_decay(hp: dict, g, w):
    """PyTorch's ``maximize`` (ascend) and L2 ``weight_decay`` (added to the gradient), shared
    by the optimizers that have both."""
    if hp["maximize"]:
        g = -g
    wd = hp["weight_decay"]
    if wd:
        g = g + wd * w
    return g


def _hyper(group: dict, skip: tuple = ("params",)) -> dict:
    """A group's hyper-parameters that are Python values (not its parameters or arrays)."""
    return {k: v for k, v in group.items() if k not in skip and not isinstance(v, xp.ndarray)}


_MODULE: list = []


def _module_class() -> type:
    """``nn.Module``, imported on first use (``chainrule.nn`` imports this package)."""
    if not _MODULE:
        from ..nn.module import Module

        _MODULE.append(Module)
    return _MODULE[0]


def _like(new: array, parameter: array) -> array:
    """``new`` with the parameter's dtype, and a ``requires_grad`` leaf if the parameter was one."""
    data = new._data
    if data.dtype != parameter._data.dtype:
        data = data.astype(parameter._data.dtype)
    node = parameter._node
    if node is not None and node.prim is None and data.dtype.kind in "fc":
        out = _from_value(data)
        out._node = Node(data, None, (), None, weakref.ref(out))  # requires_grad, as it was
        return out
    return new if data is new._data else _from_value(data)


# -- the standard optimizers ---------------------------------------------------------------------


class _Standard(Optimizer):
    """Argument binding shared by the built-in optimizers.

    ``Opt(learning_rate, *mlx_args, **kw)`` is MLX style; ``Opt(params, lr, *torch_args, **kw)``
    is PyTorch style. Each style has its own defaults and positional order (``_mlx_args`` /
    ``_torch_args`` after the learning rate); keywords may use either ``lr`` or
    ``learning_rate``.
    """

    _mlx_args: tuple[str, ...] = ()
    _torch_args: tuple[str, ...] = ()
    _mlx_defaults: dict = {}
    _torch_defaults: dict = {}
    _mlx_lr: Any = _REQUIRED
    _torch_lr: float = 1e-3

    def __init__(self, params_or_learning_rate: Any = _MISSING, /, *args: Any, **kwargs: Any):
        who = type(self).__name__
        first = params_or_learning_rate
        torch_style = _looks_like_params(first)
        if torch_style:
            names = ("lr",) + self._torch_args
            hp = {"lr": self._torch_lr, **self._torch_defaults}
            other = self._mlx_defaults
        else:
            names = ("lr",) + self._mlx_args
            hp = {"lr": self._mlx_lr, **self._mlx_defaults}
            other = self._torch_defaults
            if first is not _MISSING:
                args = (first,) + args
        if len(args) > len(names):
            raise TypeError(
                f"{who}() takes at most {len(names)} positional hyper-parameters "
                f"({', '.join(names)}), {len(args)} were given"
            )
        given = dict(zip(names, args))
        for key, value in kwargs.items():
            if key == "learning_rate":
                key = "lr"
            if key in _IGNORED_FLAGS:
                continue
            if key not in hp and key not in other:
                raise TypeError(f"{who}() got an unexpected keyword argument {key!r}")
            if key in given:
                raise TypeError(f"{who}() got multiple values for argument {key!r}")
            given[key] = value
        hp.update(given)
        lr = hp["lr"]
        if lr is _REQUIRED:
            raise TypeError(f"{who}() missing required argument: 'learning_rate'")
        _check_lr(who, lr)
        self._check_hyper(hp)
        if torch_style:
            if callable(lr) and not isinstance(lr, array):
                raise TypeError(
                    f"{who}: a schedule as lr needs MLX style ({who}(learning_rate=schedule)); "
                    "with parameters use chainrule.optim.lr_scheduler"
                )
            super().__init__(first, hp)
        else:
            hp["lr"] = None
            super().__init__(None, hp)
            if lr is not None:
                self._maybe_schedule("learning_rate", lr)


class SGD(_Standard):
    r"""Stochastic gradient descent with momentum (MLX ``optimizers.SGD``, ``torch.optim.SGD``).

    .. math::

        v_{t+1} = \mu v_t + (1 - \tau) g_t, \qquad w_{t+1} = w_t - \lambda v_{t+1}

    MLX style: ``SGD(learning_rate, momentum=0, weight_decay=0, dampening=0, nesterov=False)``.
    PyTorch style: ``SGD(params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
    nesterov=False, *, maximize=False)``; the momentum buffer starts at the first gradient, as in
    PyTorch (MLX starts it at zero, which differs only with dampening).

    Args:
        params_or_learning_rate: The learning rate (or a schedule), or the parameters.
        momentum: The momentum :math:`\mu`.
        weight_decay: L2 penalty added to the gradient.
        dampening: Dampening :math:`\tau` of the momentum.
        nesterov: Nesterov momentum (needs ``momentum > 0`` and no dampening).
        maximize: Ascend instead of descend (PyTorch).
    """

    _mlx_args = ("momentum", "weight_decay", "dampening", "nesterov")
    _torch_args = ("momentum", "dampening", "weight_decay", "nesterov")
    _mlx_defaults = {
        "momentum": 0.0,
        "weight_decay": 0.0,
        "dampening": 0.0,
        "nesterov": False,
        "maximize": False,
    }
    _torch_defaults = _mlx_defaults

    def _check_hyper(self, hp: dict) -> None:
        who = type(self).__name__
        _check_lr(who, hp["lr"])
        _non_negative(who, "momentum", hp["momentum"])
        _non_negative(who, "weight_decay", hp["weight_decay"])
        if hp["nesterov"] and (hp["momentum"] <= 0 or hp["dampening"] != 0):
            raise ValueError(
                f"{who}: nesterov momentum requires a momentum > 0 and zero dampening, got "
                f"momentum={hp['momentum']!r}, dampening={hp['dampening']!r}"
            )

    def init_single(self, parameter: array, state: dict) -> None:
        """MLX: a zero momentum buffer. PyTorch: none until the first step."""
        if not self._torch:
            state["v"] = _zeros(parameter)

    def apply_single(self, gradient: array, parameter: array, state: dict) -> array:
        """Return the SGD update of ``parameter``; keeps the momentum in ``state["v"]``."""
        hp = self._group
        g, w = gradient._data, parameter._data
        g = _ascent_and_decay(hp, g, w)
        mu = hp["momentum"]
        if mu:
            buf = state.get("v")
            if buf is None:
                v = g  # PyTorch starts the buffer at the first gradient (never mutated later)
            else:
                v = buf._data * mu
                damp = hp["dampening"]
                v += g if not damp else (1 - damp) * g
            state["v"] = _from_value(v)
            g = g + mu * v if hp["nesterov"] else v
        # one fresh buffer: the scaled step, then the new weights written over it
        new = g * hp["lr"]
        if isinstance(new, xp.ndarray) and new.dtype == w.dtype and new.shape == w.shape:
            return _from_value(xp.subtract(w, new, out=new))
        return _from_value(w - new)


class Adam(_Standard):
    r"""Adam (MLX ``optimizers.Adam``, ``torch.optim.Adam``).

    .. math::

        m_{t+1} = \beta_1 m_t + (1 - \beta_1) g_t, \quad
        v_{t+1} = \beta_2 v_t + (1 - \beta_2) g_t^2, \quad
        w_{t+1} = w_t - \lambda \frac{m_{t+1}}{\sqrt{v_{t+1}} + \epsilon}

    MLX style: ``Adam(learning_rate, betas=[0.9, 0.999], eps=1e-8, bias_correction=False)``.
    PyTorch style: ``Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
    amsgrad=False, *, maximize=False)``, always bias-corrected.

    Args:
        params_or_learning_rate: The learning rate (or a schedule), or the parameters.
        betas: The averaging coefficients :math:`(\beta_1, \beta_2)`.
        eps: Added to the denominator.
        bias_correction: Divide the moments by :math:`1 - \beta^t` (MLX; PyTorch always does).
        weight_decay: L2 penalty added to the gradient (PyTorch).
        amsgrad: Use the running maximum of :math:`v` (PyTorch).
        maximize: Ascend instead of descend (PyTorch).
    """

    _decoupled = False  # AdamW decays the weights directly
    _mlx_args = ("betas", "eps", "bias_correction")
    _torch_args = ("betas", "eps", "weight_decay", "amsgrad")
    _mlx_defaults = {
        "betas": [0.9, 0.999],
        "eps": 1e-8,
        "bias_correction": False,
        "weight_decay": 0.0,
        "amsgrad": False,
        "maximize": False,
    }
    _torch_defaults = {**_mlx_defaults, "betas": (0.9, 0.999), "bias_correction": True}

    def _check_hyper(self, hp: dict) -> None:
        who = type(self).__name__
        _check_lr(who, hp["lr"])
        _check_betas(who, hp["betas"])
        _positive(who, "eps", hp["eps"])
        _non_negative(who, "weight_decay", hp["weight_decay"])

    def init_single(self, parameter: array, state: dict) -> None:
        """Zero first and second moments (and their running maximum with ``amsgrad``)."""
        state["m"] = _zeros(parameter)
        state["v"] = _zeros(parameter)
        if self._group.get("amsgrad"):
            state["v_max"] = _zeros(parameter)

    def apply_single(self, gradient: array, parameter: array, state: dict) -> array:
        """Return the Adam update of ``parameter``; keeps ``m`` and ``v`` in ``state``."""
        hp = self._group
        g, w = gradient._data, parameter._data
        if hp["maximize"]:
            g = -g
        lr = hp["lr"]  # a float (PyTorch style) or a 0-d array (MLX style)
        b1, b2 = hp["betas"]
        wd = hp["weight_decay"]
        if wd:
            if self._decoupled:
                w = w * (1 - lr * wd)
            else:
                g = g + wd * w
        # fresh buffers (state arrays are never written in place); temporaries reuse ``tmp``
        tmp = g * (1 - b1)
        m = state["m"]._data * b1
        m += tmp
        xp.multiply(g, g, out=tmp)
        tmp *= 1 - b2
        v = state["v"]._data * b2
        v += tmp
        state["m"] = _from_value(m)
        state["v"] = _from_value(v)
        if hp["amsgrad"]:
            v_max = state.get("v_max")
            v = v if v_max is None else xp.maximum(v_max._data, v)
            state["v_max"] = _from_value(v)
        denom = xp.sqrt(v, out=tmp)
        if hp["bias_correction"]:
            t = self._count(state)
            denom /= (1 - b2**t) ** 0.5
            lr = lr / (1 - b1**t)
        denom += hp["eps"]
        xp.divide(m, denom, out=denom)
        denom *= lr
        return _from_value(w - denom)


class AdamW(Adam):
    r"""Adam with decoupled weight decay (MLX ``optimizers.AdamW``, ``torch.optim.AdamW``).

    The weights shrink by :math:`1 - \lambda \cdot \text{weight\_decay}` before the Adam step.

    MLX style: ``AdamW(learning_rate, betas=[0.9, 0.999], eps=1e-8, weight_decay=0.01,
    bias_correction=False)``. PyTorch style: ``AdamW(params, lr=1e-3, betas=(0.9, 0.999),
    eps=1e-8, weight_decay=1e-2, amsgrad=False, *, maximize=False)``.

    Args:
        params_or_learning_rate: The learning rate (or a schedule), or the parameters.
        betas: The averaging coefficients.
        eps: Added to the denominator.
        weight_decay: The decoupled weight decay.
        bias_correction: Divide the moments by :math:`1 - \beta^t` (MLX; PyTorch always does).
        amsgrad: Use the running maximum of :math:`v` (PyTorch).
        maximize: Ascend instead of descend (PyTorch).
    """

    _decoupled = True
    _mlx_args = ("betas", "eps", "weight_decay", "bias_correction")
    _mlx_defaults = {**Adam._mlx_defaults, "weight_decay": 0.01}
    _torch_defaults = {**Adam._torch_defaults, "weight_decay": 0.01}


class Adamax(_Standard):
    r"""Adamax, Adam with the infinity norm (MLX ``optimizers.Adamax``, ``torch.optim.Adamax``).

    MLX: :math:`v = \max(\beta_2 v, |g|)`, :math:`w \mathrel{-}= \lambda m / (v + \epsilon)`.
    PyTorch: :math:`u = \max(\beta_2 u, |g| + \epsilon)`,
    :math:`w \mathrel{-}= \lambda / (1 - \beta_1^t) \cdot m / u`.

    MLX style: ``Adamax(learning_rate, betas=[0.9, 0.999], eps=1e-8)``. PyTorch style:
    ``Adamax(params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, *,
    maximize=False)``.

    Args:
        params_or_learning_rate: The learning rate (or a schedule), or the parameters.
        betas: The averaging coefficients.
        eps: Stabilising term.
        weight_decay: L2 penalty added to the gradient.
        maximize: Ascend instead of descend (PyTorch).
    """

    _mlx_args = ("betas", "eps")
    _torch_args = ("betas", "eps", "weight_decay")
    _mlx_defaults = {"betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.0, "maximize": False}
    _torch_defaults = {**_mlx_defaults, "betas": (0.9, 0.999)}
    _torch_lr = 2e-3

    _check_hyper = Adam._check_hyper

    def init_single(self, parameter: array, state: dict) -> None:
        """Zero first moment and infinity norm."""
        state["m"] = _zeros(parameter)
        state["v"] = _zeros(parameter)

    def apply_single(self, gradient: array, parameter: array, state: dict) -> array:
        """Return the Adamax update of ``parameter``; keeps ``m`` and ``v`` in ``state``."""
        hp = self._group
        g, w = gradient._data, parameter._data
        g = _ascent_and_decay(hp, g, w)
        lr = hp["lr"]  # a float (PyTorch style) or a 0-d array (MLX style)
        b1, b2 = hp["betas"]
        eps = hp["eps"]
        m = state["m"]._data * b1
        m += (1 - b1) * g
        state["m"] = _from_value(m)
        if self._torch:
            u = xp.maximum(state["v"]._data * b2, xp.abs(g) + eps)
            state["v"] = _from_value(u)
            return _from_value(w - (lr / (1 - b1 ** self._count(state))) * (m / u))
        v = xp.maximum(state["v"]._data * b2, xp.abs(g))
        state["v"] = _from_value(v)
        return _from_value(w - lr * (m / (v + eps)))


class RMSprop(_Standard):
    r"""RMSprop (MLX ``optimizers.RMSprop``, ``torch.optim.RMSprop``).

    .. math::

        v_{t+1} = \alpha v_t + (1 - \alpha) g_t^2, \qquad
        w_{t+1} = w_t - \lambda \frac{g_t}{\sqrt{v_{t+1}} + \epsilon}

    MLX style: ``RMSprop(learning_rate, alpha=0.99, eps=1e-8)``. PyTorch style:
    ``RMSprop(params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
    centered=False, *, maximize=False)``.

    Args:
        params_or_learning_rate: The learning rate (or a schedule), or the parameters.
        alpha: The smoothing constant.
        eps: Added to the denominator.
        weight_decay: L2 penalty added to the gradient.
        momentum: Momentum of the scaled step.
        centered: Normalise by the estimated variance instead of the second moment.
        maximize: Ascend instead of descend (PyTorch).
    """

    _mlx_args = ("alpha", "eps")
    _torch_args = ("alpha", "eps", "weight_decay", "momentum", "centered")
    _mlx_defaults = {
        "alpha": 0.99,
        "eps": 1e-8,
        "weight_decay": 0.0,
        "momentum": 0.0,
        "centered": False,
        "maximize": False,
    }
    _torch_defaults = _mlx_defaults
    _torch_lr = 1e-2

    def _check_hyper(self, hp: dict) -> None:
        who = type(self).__name__
        _check_lr(who, hp["lr"])
        _non_negative(who, "alpha", hp["alpha"])
        _positive(who, "eps", hp["eps"])
        _non_negative(who, "momentum", hp["momentum"])
        _non_negative(who, "weight_decay", hp["weight_decay"])

    def init_single(self, parameter: array, state: dict) -> None:
        """Zero second moment (plus momentum and mean-gradient buffers when used)."""
        state["v"] = _zeros(parameter)

    def apply_single(self, gradient: array, parameter: array, state: dict) -> array:
        """Return the RMSprop update of ``parameter``; keeps ``v`` in ``state``."""
        hp = self._group
        g, w = gradient._data, parameter._data
        g = _ascent_and_decay(hp, g, w)
        a = hp["alpha"]
        v = state["v"]._data * a
        v += (1 - a) * (g * g)
        state["v"] = _from_value(v)
        if hp["centered"]:
            g_avg = state.get("g_avg")
            g_avg = (1 - a) * g if g_avg is None else g_avg._data * a + (1 - a) * g
            state["g_avg"] = _from_value(g_avg)
            avg = xp.sqrt(v - g_avg * g_avg)
        else:
            avg = xp.sqrt(v)
        avg += hp["eps"]
        lr = float(hp["lr"])
        mu = hp["momentum"]
        if mu > 0:
            buf = state.get("buf")
            step = g / avg
            if buf is not None:
                step += buf._data * mu
            state["buf"] = _from_value(step)
            return _from_value(w - lr * step)
        return _from_value(w - lr * (g / avg))


class Adagrad(_Standard):
    r"""Adagrad (MLX ``optimizers.Adagrad``, ``torch.optim.Adagrad``).

    .. math::

        v_{t+1} = v_t + g_t^2, \qquad
        w_{t+1} = w_t - \frac{\lambda}{1 + (t - 1) \cdot \text{lr\_decay}}
                  \frac{g_t}{\sqrt{v_{t+1}} + \epsilon}

    MLX style: ``Adagrad(learning_rate, eps=1e-8)``. PyTorch style: ``Adagrad(params, lr=1e-2,
    lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10, *, maximize=False)``.

    Args:
        params_or_learning_rate: The learning rate (or a schedule), or the parameters.
        eps: Added to the denominator.
        lr_decay: Learning-rate decay per step.
        weight_decay: L2 penalty added to the gradient.
        initial_accumulator_value: Starting value of :math:`v`.
        maximize: Ascend instead of descend (PyTorch).
    """

    _mlx_args = ("eps",)
    _torch_args = ("lr_decay", "weight_decay", "initial_accumulator_value", "eps")
    _mlx_defaults = {
        "eps": 1e-8,
        "lr_decay": 0.0,
        "weight_decay": 0.0,
        "initial_accumulator_value": 0.0,
        "maximize": False,
    }
    _torch_defaults = {**_mlx_defaults, "eps": 1e-10}
    _torch_lr = 1e-2

    def _check_hyper(self, hp: dict) -> None:
        who = type(self).__name__
        _check_lr(who, hp["lr"])
        _positive(who, "eps", hp["eps"])
        _non_negative(who, "lr_decay", hp["lr_decay"])
        _non_negative(who, "weight_decay", hp["weight_decay"])
        _non_negative(who, "initial_accumulator_value", hp["initial_accumulator_value"])

    def init_single(self, parameter: array, state: dict) -> None:
        """The accumulator :math:`v`, filled with ``initial_accumulator_value``."""
        state["v"] = _from_value(
            xp.full_like(parameter._data, self._group["initial_accumulator_value"])
        )

    def apply_single(self, gradient: array, parameter: array, state: dict) -> array:
        """Return the Adagrad update of ``parameter``; keeps ``v`` in ``state``."""
        hp = self._group
        g, w = gradient._data, parameter._data
        g = _ascent_and_decay(hp, g, w)
        lr = float(hp["lr"])
        if hp["lr_decay"]:
            lr = lr / (1 + (self._count(state) - 1) * hp["lr_decay"])
        v = state["v"]._data + g * g
        state["v"] = _from_value(v)
        denom = xp.sqrt(v)
        denom += hp["eps"]
        return _from_value(w - lr * (g / denom))


class AdaDelta(_Standard):
    r"""AdaDelta (MLX ``optimizers.AdaDelta``, ``torch.optim.Adadelta``).

    .. math::

        v_{t+1} = \rho v_t + (1 - \rho) g_t^2, \quad
        \Delta_{t+1} = \frac{\sqrt{u_t + \epsilon}}{\sqrt{v_{t+1} + \epsilon}} g_t, \quad
        u_{t+1} = \rho u_t + (1 - \rho) \Delta_{t+1}^2, \quad
        w_{t+1} = w_t - \lambda \Delta_{t+1}

    MLX style: ``AdaDelta(learning_rate, rho=0.9, eps=1e-6)``. PyTorch style:
    ``Adadelta(params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, *, maximize=False)``.

    Args:
        params_or_learning_rate: The learning rate (or a schedule), or the parameters.
        rho: The averaging coefficient, in ``[0, 1]``.
        eps: Added inside the square roots.
        weight_decay: L2 penalty added to the gradient.
        maximize: Ascend instead of descend (PyTorch).
    """

    _mlx_args = ("rho", "eps")
    _torch_args = ("rho", "eps", "weight_decay")
    _mlx_defaults = {"rho": 0.9, "eps": 1e-6, "weight_decay": 0.0, "maximize": False}
    _torch_defaults = _mlx_defaults
    _torch_lr = 1.0

    def _check_hyper(self, hp: dict) -> None:
        who = type(self).__name__
        _check_lr(who, hp["lr"])
        if not 0 <= hp["rho"] <= 1:
            raise ValueError(f"{who}: invalid rho {hp['rho']!r} (must be in [0, 1])")
        _positive(who, "eps", hp["eps"])
        _non_negative(who, "weight_decay", hp["weight_decay"])

    def init_single(self, parameter: array, state: dict) -> None:
        """Zero running averages of squared gradients ``v`` and squared updates ``u``."""
        state["v"] = _zeros(parameter)
        state["u"] = _zeros(parameter)

    def apply_single(self, gradient: array, parameter: array, state: dict) -> array:
        """Return the AdaDelta update of ``parameter``; keeps ``v`` and ``u`` in ``state``."""
        hp = self._group
        g, w = gradient._data, parameter._data
        g = _ascent_and_decay(hp, g, w)
        rho, eps = hp["rho"], hp["eps"]
        u = state["u"]._data
        v = state["v"]._data * rho
        v += (1 - rho) * (g * g)
        d = xp.sqrt(u + eps)
        d /= xp.sqrt(v + eps)
        d *= g
        u = u * rho
        u += (1 - rho) * (d * d)
        state["v"] = _from_value(v)
        state["u"] = _from_value(u)
        return _from_value(w - float(hp["lr"]) * d)


Adadelta = AdaDelta  # PyTorch's spelling


class Lion(_Standard):
    r"""Lion, the sign of an interpolated momentum (MLX ``optimizers.Lion``).

    .. math::

        c = \beta_1 m_t + (1 - \beta_1) g_t, \quad
        m_{t+1} = \beta_2 m_t + (1 - \beta_2) g_t, \quad
        w_{t+1} = w_t - \eta (\text{sign}(c) + \lambda w_t)

    MLX style: ``Lion(learning_rate, betas=[0.9, 0.99], weight_decay=0.0)``. PyTorch style
    (PyTorch has no Lion; the usual third-party defaults): ``Lion(params, lr=1e-4,
    betas=(0.9, 0.99), weight_decay=0.0, *, maximize=False)``.

    Args:
        params_or_learning_rate: The learning rate (or a schedule), or the parameters.
        betas: The interpolation and momentum coefficients.
        weight_decay: The decoupled weight decay :math:`\lambda`.
        maximize: Ascend instead of descend.
    """

    _mlx_args = ("betas", "weight_decay")
    _torch_args = ("betas", "weight_decay")
    _mlx_defaults = {"betas": [0.9, 0.99], "weight_decay": 0.0, "maximize": False}
    _torch_defaults = {**_mlx_defaults, "betas": (0.9, 0.99)}
    _torch_lr = 1e-4

    def _check_hyper(self, hp: dict) -> None:
        who = type(self).__name__
        _check_lr(who, hp["lr"])
        _check_betas(who, hp["betas"])
        _non_negative(who, "weight_decay", hp["weight_decay"])

    def init_single(self, parameter: array, state: dict) -> None:
        """Zero momentum ``m``."""
        state["m"] = _zeros(parameter)

    def apply_single(self, gradient: array, parameter: array, state: dict) -> array:
        """Return the Lion update of ``parameter``; keeps ``m`` in ``state``."""
        hp = self._group
        g, w = gradient._data, parameter._data
        if hp["maximize"]:
            g = -g
        lr = hp["lr"]  # a float (PyTorch style) or a 0-d array (MLX style)
        b1, b2 = hp["betas"]
        m = state["m"]._data
        c = m * b1 + (1 - b1) * g
        new_m = m * b2
        new_m += (1 - b2) * g
        state["m"] = _from_value(new_m)
        if hp["weight_decay"] > 0:
            w = w * (1 - lr * hp["weight_decay"])
        return _from_value(w - lr * xp.sign(c))


class Adafactor(_Standard):
    r"""Adafactor: factored second moments, sublinear memory (MLX ``optimizers.Adafactor``,
    ``torch.optim.Adafactor``).

    The two libraries implement different variants of the paper, so each style runs its own:

    * MLX style: ``Adafactor(learning_rate=None, eps=(1e-30, 1e-3), clip_threshold=1.0,
      decay_rate=-0.8, beta_1=None, weight_decay=0.0, scale_parameter=True,
      relative_step=True, warmup_init=False)``.
    * PyTorch style: ``Adafactor(params, lr=1e-2, beta2_decay=-0.8, eps=(None, 1e-3), d=1.0,
      weight_decay=0.0, *, maximize=False)``.

    Args:
        params_or_learning_rate: The learning rate (or a schedule), or the parameters.
        eps: ``(eps1, eps2)``: regulariser of the squared gradient and floor of the parameter
            scale (PyTorch: ``eps1=None`` means the dtype's machine epsilon).
        clip_threshold: Clip the unscaled update at this RMS (MLX).
        decay_rate: Exponent of the second-moment decay (MLX).
        beta_1: First-moment coefficient, ``None`` for none (MLX).
        weight_decay: Weight decay.
        scale_parameter: Scale the step by the parameter's RMS (MLX).
        relative_step: Ignore ``learning_rate`` and use a relative step size (MLX).
        warmup_init: Warm the relative step up with the step count (MLX).
        beta2_decay: Exponent of the second-moment decay (PyTorch).
        d: Clipping threshold of the update's RMS (PyTorch).
        maximize: Ascend instead of descend (PyTorch).
    """

    _mlx_args = (
        "eps",
        "clip_threshold",
        "decay_rate",
        "beta_1",
        "weight_decay",
        "scale_parameter",
        "relative_step",
        "warmup_init",
    )
    _torch_args = ("beta2_decay", "eps", "d", "weight_decay")
    _mlx_defaults = {
        "eps": (1e-30, 1e-3),
        "clip_threshold": 1.0,
        "decay_rate": -0.8,
        "beta_1": None,
        "weight_decay": 0.0,
        "scale_parameter": True,
        "relative_step": True,
        "warmup_init": False,
        "maximize": False,
    }
    _torch_defaults = {
        "beta2_decay": -0.8,
        "eps": (None, 1e-3),
        "d": 1.0,
        "weight_decay": 0.0,
        "maximize": False,
    }
    _mlx_lr = None
    _torch_lr = 1e-2

    def _check_hyper(self, hp: dict) -> None:
        who = type(self).__name__
        _check_lr(who, hp["lr"])
        eps = hp["eps"]
        if len(eps) != 2:
            raise ValueError(f"{who}: eps must be a pair (eps1, eps2), got {eps!r}")
        if eps[0] is not None:
            _positive(who, "eps[0]", eps[0])
        _positive(who, "eps[1]", eps[1])
        _non_negative(who, "weight_decay", hp["weight_decay"])
        if "beta2_decay" in hp and not hp["beta2_decay"] <= 0:
            raise ValueError(f"{who}: invalid beta2_decay {hp['beta2_decay']!r} (must be <= 0)")
        if "d" in hp and not hp["d"] >= 1:
            raise ValueError(f"{who}: invalid clipping threshold d {hp['d']!r} (must be >= 1)")
        if "clip_threshold" in hp:
            _positive(who, "clip_threshold", hp["clip_threshold"])
        if hp.get("beta_1") is not None:
            _unit_interval(who, "beta_1", hp["beta_1"])

    def init_single(self, parameter: array, state: dict) -> None:
        """Row and column second moments for matrices, a full one for vectors."""
        d = parameter._data
        if self._torch:
            if d.ndim > 1:
                state["row_var"] = _from_value(xp.zeros(d.shape[:-1] + (1,), d.dtype))
                state["col_var"] = _from_value(xp.zeros(d.shape[:-2] + (1, d.shape[-1]), d.dtype))
            else:
                state["variance"] = _zeros(parameter)
            return
        if d.ndim >= 2:
            state["exp_avg_sq_row"] = _from_value(xp.zeros(d.shape[:-1], d.dtype))
            state["exp_avg_sq_col"] = _from_value(xp.zeros(d.shape[:-2] + d.shape[-1:], d.dtype))
        else:
            state["exp_avg_sq"] = _zeros(parameter)
        if self._group.get("beta_1") is not None:
            state["exp_avg"] = _zeros(parameter)

    def apply_single(self, gradient: array, parameter: array, state: dict) -> array:
        """Return the Adafactor update of ``parameter`` (MLX's or PyTorch's variant)."""
        hp = self._group
        g, w = gradient._data, parameter._data
        if hp["maximize"]:
            g = -g
        t = int(self._count(state))  # a NumPy integer would make the float32 state float64
        if self._torch:
            return _from_value(self._torch_update(hp, g, w, t, state))
        eps1, eps2 = hp["eps"]
        rms_w = math.sqrt(float(xp.mean(w * w))) if w.size else 0.0
        if hp["relative_step"]:
            min_step = 1e-6 * t if hp["warmup_init"] else 1e-2
            rel = min(min_step, 1 / math.sqrt(t))
        else:
            rel = float(hp["lr"])
        lr = rel * (max(eps2, rms_w) if hp["scale_parameter"] else 1.0)
        beta2 = 1.0 - t ** hp["decay_rate"]
        upd = g * g + eps1
        if g.ndim >= 2:
            row = state["exp_avg_sq_row"]._data * beta2 + (1 - beta2) * xp.mean(upd, axis=-1)
            col = state["exp_avg_sq_col"]._data * beta2 + (1 - beta2) * xp.mean(upd, axis=-2)
            state["exp_avg_sq_row"] = _from_value(row)
            state["exp_avg_sq_col"] = _from_value(col)
            r = 1 / xp.sqrt(row / xp.mean(row, axis=-1, keepdims=True))
            c = 1 / xp.sqrt(col)
            upd = r[..., :, None] * c[..., None, :] * g
        else:
            v = state["exp_avg_sq"]._data * beta2 + (1 - beta2) * upd
            state["exp_avg_sq"] = _from_value(v)
            upd = g / xp.sqrt(v)
        rms_u = math.sqrt(float(xp.mean(upd * upd))) if upd.size else 0.0
        upd = upd * (lr / max(1.0, rms_u / hp["clip_threshold"]))
        if hp["beta_1"] is not None:
            b = hp["beta_1"]
            upd = state["exp_avg"]._data * b + (1 - b) * upd
            state["exp_avg"] = _from_value(upd)
        if hp["weight_decay"]:
            w = w - w * (hp["weight_decay"] * lr)
        return _from_value(w - upd)

    @staticmethod
    def _torch_update(hp: dict, g, w, t: int, state: dict):
        eps1, eps2 = hp["eps"]
        if eps1 is None:
            eps1 = float(xp.finfo(w.dtype).eps)
        lr = float(hp["lr"])
        one_minus_beta2 = t ** hp["beta2_decay"]
        rho = min(lr, 1 / math.sqrt(t))
        alpha = max(eps2, float(xp.linalg.norm(w)) / math.sqrt(w.size)) * rho
        if hp["weight_decay"]:
            w = w * (1 - lr * hp["weight_decay"])
        g2 = g * g
        if g.ndim > 1:
            row = state["row_var"]._data
            col = state["col_var"]._data
            row = row + one_minus_beta2 * (xp.mean(g2, axis=-1, keepdims=True) - row)
            col = col + one_minus_beta2 * (xp.mean(g2, axis=-2, keepdims=True) - col)
            state["row_var"] = _from_value(row)
            state["col_var"] = _from_value(col)
            var = row @ col
            var /= xp.maximum(xp.mean(row, axis=-2, keepdims=True), eps1)
        else:
            var = state["variance"]._data
            var = var + one_minus_beta2 * (g2 - var)
            state["variance"] = _from_value(var)
        upd = g / xp.sqrt(xp.maximum(var, eps1 * eps1))
        denom = max(1.0, float(xp.linalg.norm(upd)) / (math.sqrt(upd.size) * hp["d"]))
        return w - (alpha / denom) * upd


def _newton_schulz(x, coefficients, steps: int, eps: float, clamp: bool):
    """Approximately orthogonalise a matrix (``U V^T`` of its SVD) by a quintic iteration."""
    a, b, c = coefficients
    dtype = x.dtype
    x = x.astype(xp.promote_types(dtype, xp.float32))
    norm = float(xp.linalg.norm(x))
    x = x / (max(norm, eps) if clamp else norm + eps)
    transposed = x.shape[0] > x.shape[1]
    if transposed:
        x = x.T
    for _ in range(steps):
        gram = x @ x.T
        poly = b * gram + c * (gram @ gram)
        x = a * x + poly @ x
    if transposed:
        x = x.T
    return x.astype(dtype, copy=False)


class Muon(_Standard):
    r"""Muon: momentum whose update is orthogonalised by Newton-Schulz iterations
    (MLX ``optimizers.Muon``, ``torch.optim.Muon``).

    For parameters of two or more dimensions (flattened to ``(shape[0], -1)``) the momentum
    update is replaced by an approximation of its nearest orthogonal matrix and the step is
    scaled by :math:`\sqrt{\max(1, A / B)}`; smaller parameters take the plain momentum step.

    MLX style: ``Muon(learning_rate, momentum=0.95, weight_decay=0.01, nesterov=True,
    ns_steps=5)``, weight decay added to the gradient. PyTorch style: ``Muon(params, lr=1e-3,
    weight_decay=0.1, momentum=0.95, nesterov=True, ns_coefficients=(3.4445, -4.775, 2.0315),
    eps=1e-7, ns_steps=5, adjust_lr_fn=None)``, 2-D parameters only, decoupled weight decay.

    Args:
        params_or_learning_rate: The learning rate (or a schedule), or the parameters.
        momentum: The momentum coefficient.
        weight_decay: The weight decay.
        nesterov: Nesterov momentum.
        ns_steps: The number of Newton-Schulz iterations.
        ns_coefficients: The coefficients of the quintic iteration.
        eps: Stabiliser of the normalisation before the iteration.
        adjust_lr_fn: ``None`` / ``"original"`` (:math:`\sqrt{\max(1, A/B)}`) or
            ``"match_rms_adamw"`` (:math:`0.2 \sqrt{\max(A, B)}`).
    """

    _mlx_args = ("momentum", "weight_decay", "nesterov", "ns_steps")
    _torch_args = (
        "weight_decay",
        "momentum",
        "nesterov",
        "ns_coefficients",
        "eps",
        "ns_steps",
        "adjust_lr_fn",
    )
    _mlx_defaults = {
        "momentum": 0.95,
        "weight_decay": 0.01,
        "nesterov": True,
        "ns_steps": 5,
        "ns_coefficients": (3.4445, -4.7750, 2.0315),
        "eps": 1e-7,
        "adjust_lr_fn": None,
    }
    _torch_defaults = {**_mlx_defaults, "weight_decay": 0.1}

    def _check_hyper(self, hp: dict) -> None:
        who = type(self).__name__
        _check_lr(who, hp["lr"])
        _non_negative(who, "momentum", hp["momentum"])
        _non_negative(who, "weight_decay", hp["weight_decay"])
        _positive(who, "eps", hp["eps"])
        if len(hp["ns_coefficients"]) != 3:
            raise ValueError(
                f"{who}: ns_coefficients must be three numbers, got {hp['ns_coefficients']!r}"
            )
        if hp["adjust_lr_fn"] not in (None, "original", "match_rms_adamw"):
            raise ValueError(f"{who}: unknown adjust_lr_fn {hp['adjust_lr_fn']!r}")

    def _check_param(self, parameter: array) -> None:
        if parameter.ndim != 2:
            raise ValueError(
                f"Muon: PyTorch-style Muon only takes 2-D parameters, got shape "
                f"{parameter.shape}; optimise the others with AdamW"
            )

    def init_single(self, parameter: array, state: dict) -> None:
        """Zero momentum buffer ``v``."""
        state["v"] = _zeros(parameter)

    def apply_single(self, gradient: array, parameter: array, state: dict) -> array:
        """Return the Muon update of ``parameter``; keeps the momentum in ``state["v"]``."""
        hp = self._group
        g, w = gradient._data, parameter._data
        lr = float(hp["lr"])
        mu, wd = hp["momentum"], hp["weight_decay"]
        if wd and not self._torch:
            g = g + wd * w
        v = state["v"]._data * mu
        v += (1 - mu) * g
        state["v"] = _from_value(v)
        upd = (1 - mu) * g + mu * v if hp["nesterov"] else v
        scale = 1.0
        if upd.ndim >= 2:
            shape = upd.shape
            mat = _newton_schulz(
                upd.reshape(shape[0], -1),
                hp["ns_coefficients"],
                hp["ns_steps"],
                hp["eps"],
                self._torch,
            )
            rows, cols = mat.shape
            upd = mat.reshape(shape)
            if hp["adjust_lr_fn"] == "match_rms_adamw":
                scale = 0.2 * math.sqrt(max(rows, cols))
            else:
                scale = math.sqrt(max(1.0, rows / cols))
        if wd and self._torch:
            w = w * (1 - lr * wd)
        return _from_value(w - (lr * scale) * upd)


# -- combining optimizers ------------------------------------------------------------------------


class MultiOptimizer(Optimizer):
    """Several optimizers, each for the parameters its filter selects (MLX).

    Args:
        optimizers: The optimizers; the last one takes every parameter no filter claimed.
        filters: ``len(optimizers) - 1`` predicates ``filter(path, gradient) -> bool``.
    """

    def __init__(self, optimizers: list[Optimizer], filters: list[Callable] = ()) -> None:
        super().__init__()
        if len(filters) != len(optimizers) - 1:
            raise ValueError(
                f"MultiOptimizer: {len(optimizers)} optimizers need {len(optimizers) - 1} "
                f"filters, got {len(filters)}"
            )
        self.optimizers = list(optimizers)
        self.filters = list(filters) + [lambda *args, **kwargs: True]
        self._torch = any(o._torch for o in self.optimizers)

    def _split(self, gradients):
        if len(self.optimizers) == 1:
            return [gradients]
        parts: list[list] = [[] for _ in self.optimizers]
        for path, g in tree_flatten(gradients):
            for i, keep in enumerate(self.filters):
                if keep(path, g):
                    parts[i].append((path, g))
                    break
        return [tree_unflatten(p) for p in parts]

    def init(self, parameters: Any) -> None:
        """Initialise each optimizer with its share of ``parameters``."""
        for o, p in zip(self.optimizers, self._split(parameters)):
            o.init(p)

    def apply_gradients(self, gradients: Any, parameters: Any) -> Any:
        """Apply each optimizer to its share of ``gradients`` and merge the results."""
        tree: Any = {}
        for o, g in zip(self.optimizers, self._split(gradients)):
            tree = pytree.merge(tree, o.apply_gradients(g, parameters))
        return tree

    def update(self, model: Any, gradients: Any) -> None:
        """Apply ``gradients`` to ``model`` through each optimizer."""
        model.update(self.apply_gradients(gradients, model))

    @property
    def state(self) -> dict:
        """``{"states": [state of each optimizer]}``."""
        return {"states": [o.state for o in self.optimizers]}

    @state.setter
    def state(self, state: dict) -> None:
        if "states" not in state or len(state["states"]) != len(self.optimizers):
            raise ValueError(
                f"MultiOptimizer: expected {{'states': [...]}} with {len(self.optimizers)} states"
            )
        for o, s in zip(self.optimizers, state["states"]):
            o.state = s

    @property
    def learning_rate(self):
        """The first optimizer's learning rate; setting it sets every optimizer's."""
        return self.optimizers[0].learning_rate

    @learning_rate.setter
    def learning_rate(self, value: LearningRate) -> None:
        for o in self.optimizers:
            o.learning_rate = value

    @property
    def param_groups(self) -> list[dict]:
        """The parameter groups of every PyTorch-style optimizer, in order."""
        return [g for o in self.optimizers for g in o.param_groups]

    @param_groups.setter
    def param_groups(self, value) -> None:
        pass  # the groups belong to the wrapped optimizers

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients of every wrapped optimizer's parameters."""
        for o in self.optimizers:
            o.zero_grad(set_to_none)

    def _step(self, closure: Callable[[], Any] | None = None):
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for o in self.optimizers:
            o._step(None)
        return loss


def clip_grad_norm(grads: Any, max_norm: float) -> tuple[Any, array]:
    """Rescale a gradient tree so that its global L2 norm is at most ``max_norm`` (MLX).

    Args:
        grads: A tree of gradients.
        max_norm: The largest allowed global norm.

    Returns:
        ``(clipped_grads, total_norm)``: the rescaled tree and the norm before clipping.
    """
    leaves = pytree.leaves(grads)
    norm_squared: Any = 0.0
    for g in leaves:
        norm_squared = norm_squared + mx.sum(mx.square(g))
    total_norm = mx.sqrt(_as_array(norm_squared))
    normalizer = max_norm / (total_norm + 1e-6)
    keep = total_norm < max_norm

    def clipper(g):
        return mx.where(keep, g, g * normalizer)

    return pytree.map(clipper, grads), total_norm
