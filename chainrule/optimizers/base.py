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

Optimizer maths is not differentiated, so ``apply_single`` works on the NumPy values. New
parameter values are fresh arrays (the parameter's handle is rebound; an array the user or a
graph holds never changes). State buffers (Adam's moments, SGD's momentum) belong to the
optimizer: they are updated in place only while nothing else holds them (``owned_buffer``, a
reference count), so state snapshots (``state_dict()``, a reference into ``optimizer.state``)
and graphs recorded earlier stay valid.

``optimizer.step`` is both things at once, as ``array.size`` is: MLX's step count (an array)
that PyTorch code can call, ``optimizer.step(closure=None)``.
"""

from __future__ import annotations

import functools
import numbers
import sys
import weakref
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from chainrule.core.array import array
from chainrule.core.extend import Node, from_value, new_array

from .. import core as mx
from ..core import backend as _backend
from ..core import dtypes
from ..core import tree as pytree
from ..core.autograd import enable_grad, no_grad
from ..core.backend import ndarray as _ndarray
from ..core.backend import xp
from ..core.compile import is_tracing, setting
from ..core.versions import replaced
from ..utils import tree_flatten

__all__ = ["Optimizer", "LearningRate", "RemovableHandle"]

LearningRate = float | array | Callable[[array], array]

_MISSING = object()
_REQUIRED = object()
# PyTorch's implementation switches: accepted for compatibility, meaningless here.
_IGNORED_FLAGS = frozenset({"foreach", "fused", "capturable", "differentiable"})


def _as_array(x) -> array:
    return x if isinstance(x, array) else mx.array(x)


def _zeros(parameter: array) -> array:
    return from_value(xp.zeros_like(parameter._data))


_getrefcount = getattr(sys, "getrefcount", None)


def _counted(state: dict, key: str):
    """``(buffer, (references to the handle, references to the buffer))`` of ``state[key]``, or
    None when it is not a plain, writable, non-view NumPy buffer in a plain handle."""
    h = state.get(key)
    if h is None or type(h) is not array:
        return None
    d = h._data
    if type(d) is not _ndarray or d.base is not None or not d.flags.writeable:
        return None
    return d, (_getrefcount(h), _getrefcount(d))  # type: ignore[misc]


def _sole_counts() -> tuple[int, int] | None:
    """What ``_counted`` counts when only a state dict holds the handle and only the handle holds
    its buffer (measured once, so the check does not depend on how the interpreter counts)."""
    if _getrefcount is None:
        return None  # an interpreter without reference counts: buffers are never reused
    probe = {"m": from_value(xp.zeros(1))}
    got = _counted(probe, "m")
    return None if got is None else got[1]


_SOLE = _sole_counts()


def owned_buffer(state: dict, key: str):
    """The backend buffer of ``state[key]`` when the optimizer may update it in place, else None.

    A state buffer (Adam's moments, SGD's momentum) is written in place only when nothing outside
    the optimizer's state dict holds it: not the user (a reference to ``optimizer.state[...]``,
    a ``state_dict()`` snapshot), not a graph, not another handle, not a view. Otherwise the
    optimizer makes a fresh buffer, so a reference the user took never changes under them.
    Values being traced by ``mx.compile`` are never written in place here (they are not plain
    NumPy arrays; the compiled program reuses its own temporaries).

    Args:
        state: one parameter's state dict.
        key: the buffer's name in it.

    Returns:
        The NumPy buffer, or None.
    """
    if _SOLE is None:
        return None
    got = _counted(state, key)
    return got[0] if got is not None and got[1] == _SOLE else None


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
        opt = self._opt
        hooks = opt.__dict__
        if hooks.get("_hooks_step_pre") or hooks.get("_hooks_step_post"):
            return opt._hooked_step(closure)
        return opt._step(closure)


class RemovableHandle:
    """What a ``register_*_hook`` returns: ``handle.remove()`` unregisters the hook."""

    _next = 0

    def __init__(self, hooks: dict) -> None:
        self.hooks = hooks
        RemovableHandle._next += 1
        self.id = RemovableHandle._next

    def remove(self) -> None:
        """Unregister the hook (a second call does nothing)."""
        self.hooks.pop(self.id, None)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()


def _positive(who: str, name: str, value) -> None:
    if not value > 0:
        raise ValueError(f"{who}: invalid {name} {value!r} (must be >0)")


def _non_negative(who: str, name: str, value) -> None:
    if not value >= 0:
        raise ValueError(f"{who}: invalid {name} {value!r} (must be >=0)")


def _unit_interval(who: str, name: str, value) -> None:
    if not 0 <= value < 1:
        raise ValueError(f"{who}: invalid {name} {value!r} (must be in [0, 1))")


def _check_lr(who: str, lr) -> None:
    """PyTorch's learning-rate check (MLX checks none: a negative rate ascends)."""
    if lr is None or callable(lr) and not isinstance(lr, array):
        return
    if not float(lr) >= 0:
        raise ValueError(f"{who}: invalid learning rate {float(lr)!r} (must be >=0)")


def _check_betas(who: str, betas) -> None:
    if len(betas) != 2:
        raise ValueError(f"{who}: betas must be a pair (beta1, beta2), got {betas!r}")
    for i, b in enumerate(betas):
        _unit_interval(who, f"beta{i + 1}", b)


class _Names(dict):
    """State-entry names: MLX's own name (the key) unless this style renames it."""

    def __missing__(self, key: str) -> str:
        return key


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

    #: MLX's names of per-parameter state entries -> PyTorch's (``{"m": "exp_avg"}``): a
    #: PyTorch-style optimizer keeps its state under PyTorch's names, so ``state[p]`` and
    #: ``state_dict()`` read as in ``torch.optim``. ``init_single``/``apply_single`` write
    #: ``state[self._k["m"]]``.
    _torch_names: dict = {}

    def __init__(
        self,
        params: Any = None,
        defaults: dict | None = None,
        *,
        schedulers: dict | None = None,
    ) -> None:
        object.__setattr__(self, "defaults", dict(defaults or {}))
        self._torch = params is not None
        names = self._torch_names
        self._k = _Names(names if self._torch else {k: k for k in names})  # plain dict hits
        self._initialized = False
        self._state: dict = {"step": from_value(xp.asarray(0, dtype=xp.uint64))}
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
        s = new_array(_StepCount)
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
        state["step"] = from_value(t)
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
                    p._grad = None if set_to_none else from_value(xp.zeros_like(p._data))

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
        elif "step" not in s:  # PyTorch's SGD state has no step count
            s["step"] = 0
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
                        replaced(p, None)  # PyTorch's version counter sees the in-place step
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
                replaced(p, None)
                return p
            return _like(from_value(new), p)

        with no_grad():
            return pytree.map(leaf, gradients, parameters)  # None is a leaf: fn(None, p)

    # -- PyTorch's hooks ---------------------------------------------------------------------
    def _register(self, kind: str, hook: Callable, prepend: bool = False) -> RemovableHandle:
        hooks = self.__dict__.setdefault(f"_hooks_{kind}", {})
        handle = RemovableHandle(hooks)
        if prepend:  # first to run; the dict is reordered in place (handles hold it)
            rest = list(hooks.items())
            hooks.clear()
            hooks[handle.id] = hook
            hooks.update(rest)
        else:
            hooks[handle.id] = hook
        return handle

    def _run(self, kind: str) -> list:
        return list(self.__dict__.get(f"_hooks_{kind}", {}).values())

    def register_step_pre_hook(self, hook: Callable) -> RemovableHandle:
        """``hook(optimizer, args, kwargs)`` before each ``step()`` (``args`` starts with the
        optimizer, as in PyTorch); it may return new ``(args, kwargs)``.

        Args:
            hook: The hook.

        Returns:
            A handle whose ``remove()`` unregisters it.
        """
        return self._register("step_pre", hook)

    def register_step_post_hook(self, hook: Callable) -> RemovableHandle:
        """``hook(optimizer, args, kwargs)`` after each ``step()``.

        Args:
            hook: The hook.

        Returns:
            A handle whose ``remove()`` unregisters it.
        """
        return self._register("step_post", hook)

    def register_state_dict_pre_hook(
        self, hook: Callable, prepend: bool = False
    ) -> RemovableHandle:
        """``hook(optimizer)`` before ``state_dict()`` builds the state.

        Args:
            hook: The hook.
            prepend: Run it before the hooks already registered.

        Returns:
            A handle whose ``remove()`` unregisters it.
        """
        return self._register("state_dict_pre", hook, prepend)

    def register_state_dict_post_hook(
        self, hook: Callable, prepend: bool = False
    ) -> RemovableHandle:
        """``hook(optimizer, state_dict)`` after ``state_dict()``; it may return a new dict.

        Args:
            hook: The hook.
            prepend: Run it before the hooks already registered.

        Returns:
            A handle whose ``remove()`` unregisters it.
        """
        return self._register("state_dict_post", hook, prepend)

    def register_load_state_dict_pre_hook(
        self, hook: Callable, prepend: bool = False
    ) -> RemovableHandle:
        """``hook(optimizer, state_dict)`` before ``load_state_dict``; it may return a new dict.

        Args:
            hook: The hook.
            prepend: Run it before the hooks already registered.

        Returns:
            A handle whose ``remove()`` unregisters it.
        """
        return self._register("load_state_dict_pre", hook, prepend)

    def register_load_state_dict_post_hook(
        self, hook: Callable, prepend: bool = False
    ) -> RemovableHandle:
        """``hook(optimizer)`` after ``load_state_dict``.

        Args:
            hook: The hook.
            prepend: Run it before the hooks already registered.

        Returns:
            A handle whose ``remove()`` unregisters it.
        """
        return self._register("load_state_dict_post", hook, prepend)

    def _hooked_step(self, closure: Callable[[], Any] | None):
        args: tuple = (self,) if closure is None else (self, closure)  # PyTorch's: self first
        kwargs: dict = {}
        for hook in self._run("step_pre"):
            result = hook(self, args, kwargs)
            if result is not None:
                if not (isinstance(result, tuple) and len(result) == 2):
                    raise RuntimeError(
                        "hook must return None or a tuple of (new_args, new_kwargs), but got "
                        f"{result!r:.80}."
                    )
                args, kwargs = result
        out = self._step(*args[1:], **kwargs)
        for hook in self._run("step_post"):
            hook(self, args, kwargs)
        return out

    def state_dict(self) -> dict:
        """The optimizer's state, with parameters replaced by their positions (PyTorch).

        Returns:
            PyTorch style: ``{"state": {index: {...}}, "param_groups": [...]}``. MLX style:
            ``{"state": <a copy of the state tree>}``.
        """
        for hook in self._run("state_dict_pre"):
            hook(self)
        out = self._state_dict()
        for hook in self._run("state_dict_post"):
            result = hook(self, out)
            if result is not None:
                out = result
        return out

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore a state saved by :meth:`state_dict` (parameters matched by position).

        Args:
            state_dict: The saved state.
        """
        for hook in self._run("load_state_dict_pre"):
            result = hook(self, state_dict)
            if result is not None:
                state_dict = result
        self._load_state_dict(state_dict)
        for hook in self._run("load_state_dict_post"):
            hook(self)

    def _state_dict(self) -> dict:
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
        # state arrays held outside the state are never modified in place (owned_buffer), so
        # shallow copies are snapshots
        state = {}
        for p, s in self._param_state.items():
            if id(p) in index:
                state[index[id(p)]] = {
                    k: _step_tensor(v, p) if k == "step" else v for k, v in s.items()
                }
        return {"state": dict(sorted(state.items())), "param_groups": groups}

    def _load_state_dict(self, state_dict: dict) -> None:
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
            g.update({k: _copy_hyper(v) for k, v in sg.items() if k != "params"})
            for k, v in self.defaults.items():  # files from older versions lack newer keys
                g.setdefault(k, v)
            g["params"] = params


def _cast_state(key: str, value, parameter: array):
    """A loaded state entry, as an array of the parameter's floating dtype (PyTorch's rule:
    floating state follows a floating parameter's dtype; ``step`` becomes a count)."""
    if key == "step":
        if isinstance(value, (array, xp.ndarray, xp.generic, numbers.Real)):
            data = value._data if isinstance(value, array) else xp.asarray(value)
            return int(data.item()) if data.size == 1 else value
        return value
    if isinstance(value, array) or isinstance(value, xp.ndarray):
        data = value._data if isinstance(value, array) else xp.array(value)
        if dtypes.kind(data.dtype) in "fV" and dtypes.kind(parameter._data.dtype) in "fV":
            data = data.astype(parameter._data.dtype, copy=False)
        if data.ndim or not parameter._data.ndim:  # on the parameter's device, as PyTorch
            # moves it (torch.load gives CPU tensors); a 0-d entry of a larger parameter (NAdam's
            # mu_product) stays a host scalar, as a fresh one is
            data = _backend.to_kind(data, "gpu" if _backend.is_gpu(parameter._data) else "cpu")
        return from_value(data)
    return value


def _step_tensor(step, parameter: array) -> array:
    """A step count as PyTorch keeps it: a 0-d float32 tensor (float64 for float64 parameters,
    whose state chainrule keeps in float64 throughout)."""
    if isinstance(step, array):
        return step
    dtype = xp.float64 if parameter._data.dtype == xp.float64 else xp.float32
    return from_value(xp.asarray(step, dtype=dtype))


def _copy_hyper(value):
    """A loaded hyper-parameter, with lists copied (the saved dict stays the caller's)."""
    return list(value) if isinstance(value, list) else value


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
        out = from_value(data)
        out._node = Node(data, None, (), None, weakref.ref(out))  # requires_grad, as it was
        return out
    return new if data is new._data else from_value(data)
