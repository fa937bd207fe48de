"""``mx.compile``: trace a function once per input signature, then replay a flat program.

How it works (docs/performance.md has the measurements):

* **Tracing.** The first call for a given signature (the shapes and dtypes of the array
  arguments and of the ``inputs=`` state, and the values of everything else) runs the function
  eagerly, with every backend value replaced by a ``Traced`` view: an ``ndarray`` subclass that
  records each NumPy call made on it (ufuncs through ``__array_ufunc__``, NumPy functions through
  ``__array_function__``, and every ``ndarray`` method) as one step of a program. The engine,
  the modules and the optimizers run unchanged, so the recorded program holds exactly the
  kernels of a forward pass, its backward pass and the optimizer's update, and none of the
  Python bookkeeping around them (graph nodes, tree walks, argument checks).
* **Random draws** from the global generator are recorded as draws, so a replay draws fresh
  numbers and advances the random state as an eager call would.
* **Python values read from arrays** (``bool(x)``, ``float(x)``, ``x.item()``: a data-dependent
  branch, a check of labels) become *guards*: the replay recomputes the value and, if it
  differs from the traced one, the call runs eagerly and the signature stops being compiled.
* **Replay** is generated Python code: one line per kernel, on plain NumPy arrays, with dead
  steps removed, each buffer released after its last use, and elementwise results written into
  a temporary that dies at that step (``out=``) instead of a new allocation. A checked program
  also writes the new state into the old state buffers (64 KiB and up) that nothing but their
  handle holds (an optimizer's moments), as the eager optimizers do; a buffer anyone else holds
  (an array, a view, a graph, an argument) is never written.
* **A safety net.** The first replay of a signature is checked against an eager call on the
  same inputs (with the random state restored in between); any difference, any value the
  tracer could not follow, or any error turns compilation off for that signature, and the
  function then simply runs eagerly (except an error raised by a replay that was handed old
  state buffers to write into: no eager call can run on them, so the error is raised, as an
  eager in-place update's would be). Results therefore always equal the eager ones, with
  MLX's one exception: a closure holding only data (arrays, constants, lists, tuples and dicts
  of them) keeps the values the trace saw ("closures are not updated"), and the check then
  runs the eager call on those values.
* **Shapeless** (``shapeless=True``): signatures keep each array's number of dimensions and
  dtype, not its shape; each new shape's first replay is checked the same way, a shape the
  program cannot take runs eagerly, and a reshape to a size traced from other shapes raises
  ``ValueError`` as in MLX. Arguments other than trees of arrays and constants raise
  ``ValueError`` (MLX's rule).

``disable_compile()`` (or the ``MLX_DISABLE_COMPILE`` / ``CHAINRULE_DISABLE_COMPILE``
environment variables) makes every compiled function run eagerly.

The recording side (``Traced``, ``kernel``, guards, draws) is ``tracing.py``; turning a recorded
trace into code is ``program.py``; this module keys signatures, traces, replays and checks.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable
from typing import Any

import numpy as _np

from . import backend as _backend
from . import tree as pytree
from .array import STATE, Node, _from_value, array
from .gpu_closure import closure_on_host, reaches_gpu, replaced
from .program import GuardFailed, SettingChanged, build
from .tracing import (
    _LOCAL,
    Traced,
    _ndarray,
    _ndview,
    _patch_numpy,
    _plain,
    _RecordingRNG,
    _resolve_view,
    _Tracer,
    is_tracing,
    kernel,
    setting,
)

# Traced, kernel, is_tracing and setting live in tracing.py and are re-exported here.
__all__ = [
    "compile",
    "disable_compile",
    "enable_compile",
    "Traced",
    "is_tracing",
    "kernel",
    "setting",
    "STATS",
]

_DISABLED = [
    os.environ.get("CHAINRULE_DISABLE_COMPILE", os.environ.get("MLX_DISABLE_COMPILE", ""))
    not in ("", "0")
]

# Counters for tests and benchmarks: how calls were served.
STATS = {"traces": 0, "replays": 0, "eager": 0, "verified": 0, "rejected": 0}

# -- trees (the policy is chainrule/core/tree.py) ----------------------------------------------


def _signature(tree, arrays: list, key: list) -> None:
    """Collect the arrays of ``tree`` in tree order and append its signature to ``key``
    (``tree.signature``: structure, shapes, dtypes, which arrays have a ``.grad``, constants)."""
    key.append(pytree.signature(tree, arrays))


def _map_arrays(fn, tree, copies: dict | None = None):
    """``tree`` with each array leaf mapped by ``fn``; containers keep their types (a module
    passed as an argument stays a module: a copy, noted in ``copies``)."""
    return pytree.map_keeping_types(lambda x: fn(x) if isinstance(x, array) else x, tree, copies)


def _originals(tree, copies: dict):
    """``tree`` with the copies made by :func:`_map_arrays` replaced by their originals (a
    function that returns the module it was given returns the caller's module)."""
    hit = copies.get(id(tree))
    if hit is not None:
        return hit
    k = pytree.kind(tree)
    if k == pytree.DICT:
        return (
            {key: _originals(v, copies) for key, v in tree.items()} if type(tree) is dict else tree
        )
    if k:
        return pytree.rebuild(tree, [_originals(v, copies) for v in tree])
    return tree


class _Out:
    __slots__ = ("where", "cls")

    def __init__(self, where, cls=array) -> None:
        self.where = where  # ("slot", i) or ("const", value)
        self.cls = cls  # the result's class (a chainrule.torch.Tensor stays one)


def _fill(tmpl, values) -> Any:
    """The result tree of a call: the template's markers filled with fresh arrays."""
    spec, leaves = tmpl
    filled = []
    for o in leaves:
        if type(o) is _Out:
            kind, w = o.where
            v = values[w] if kind == "slot" else w
            o = _as_class(_from_value(v if type(v) is _ndarray else _backend.as_array(v)), o.cls)
        filled.append(o)
    return pytree.unflatten(spec, filled)


# -- compile ----------------------------------------------------------------------------------


_EAGER = object()

GPU_REASON = "GPU data the trace cannot follow: the call runs eagerly on the GPU"
"""``last_reason`` of a call that ran eagerly because of GPU data the tracer cannot follow (an
array moved to the GPU inside the function, GPU data a closure holds past the walk's budgets):
the tracer records NumPy calls on host arrays, so a call on GPU data is traced on host copies
of its arguments and state, and the GPU arrays it reads from its closure or globals hold host
copies meanwhile (``gpu_closure.py``); values it finds on the GPU anyway are no host
constants, and the eager call computes on the GPU and is always right."""

MIXED_REASON = "host and GPU arrays in one call: it runs eagerly"
"""``last_reason`` of a call whose arguments and state lie on both devices."""


def _device(arg_arrays: list, state_in: list, state_out: list) -> str | None:
    """Where a call's arrays (arguments, state and their ``.grad``) are: ``None`` when all are
    on the host and the CPU is the default device (one type test per array), ``"gpu"`` when
    every one is on the GPU (a program traced on host copies then replays on them; 0-d host
    values such as an optimizer's step count mix with either), and ``"mixed"`` otherwise (it
    runs eagerly)."""
    gpu_default = _backend.DEFAULT_XP[0] is not _backend.xp
    host = gpu = 0
    for group in (
        (arg_arrays, state_in) if state_out is state_in else (arg_arrays, state_in, state_out)
    ):
        for h in group:
            d = h._data
            if type(d) is _ndarray:
                host += d.ndim > 0  # a 0-d host value (a step count) mixes with either
            elif _backend.is_gpu(d):
                gpu += 1
            g = h._grad
            if g is not None:
                if type(g._data) is _ndarray:
                    host += g._data.ndim > 0
                elif _backend.is_gpu(g._data):
                    gpu += 1
    if not gpu and not gpu_default:
        return None
    if host:
        return "mixed"
    return "gpu"


def _holds_gpu(x, depth: int = 0) -> bool:
    """Whether a recorded value (a step's argument, a constant result) holds GPU data."""
    t = type(x)
    if t is _ndarray or t is Traced or depth > 32:
        return False
    if t is tuple or t is list:
        return any(_holds_gpu(v, depth + 1) for v in x)
    if t is dict:
        return any(_holds_gpu(v, depth + 1) for v in x.values())
    if t is _Out:
        return x.where[0] == "const" and _holds_gpu(x.where[1], depth + 1)
    return _backend.is_gpu(x)


class _Fingerprint:
    """What the first replay's check keeps of a result: all of a small array; of a large one,
    every 17th element and its float64 sum, which together catch a difference in a single
    element (the sum, to 1e-8 of the sum of magnitudes) or in any row (the samples)."""

    __slots__ = ("full", "sample", "total", "scale", "shape", "dtype")
    full: Any

    def __init__(self, v) -> None:
        a = _backend.to_host(v)
        self.shape, self.dtype = a.shape, a.dtype
        if a.size <= 4096 or a.dtype.kind not in "fc":
            self.full, self.sample = a, None
        else:
            self.full = None
            flat = a.reshape(-1)
            self.sample = flat[::17].copy()
            self.total = complex(flat.sum(dtype=_np.complex128 if a.dtype.kind == "c" else None))
            self.scale = float(_np.abs(flat).sum(dtype=_np.float64))

    def matches(self, b) -> bool:
        b = _backend.to_host(b)
        if b.shape != self.shape or b.dtype != self.dtype:
            return False
        if self.full is not None:
            return _same(self.full, b)
        flat = b.reshape(-1)
        if not _same(self.sample, flat[::17]):
            return False
        total = complex(flat.sum(dtype=_np.complex128 if b.dtype.kind == "c" else None))
        return abs(total - self.total) <= 1e-8 * self.scale or (
            total != total and self.total != self.total
        )


def _same(a, b) -> bool:
    if type(a) is _Fingerprint:
        return a.matches(b)
    a = _backend.to_host(a)
    b = _backend.to_host(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind in "fc":
        return bool(_np.allclose(a, b, rtol=1e-6, atol=0.0, equal_nan=True))
    return bool(_np.array_equal(a, b))


class _Compiled:
    """The function ``mx.compile`` returns."""

    def __init__(self, fun: Callable, inputs, outputs, shapeless: bool = False) -> None:
        self.fun = fun
        self.inputs = inputs
        self.outputs = outputs
        self.shapeless = shapeless
        self.cache: dict = {}
        self.last_reason: str | None = None  # why the latest signature runs eagerly
        self._closure_gpu: bool | None = None  # no array argument: GPU data in the closure?
        functools.update_wrapper(self, fun)

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self
        return functools.partial(self, obj)

    def __call__(self, *args, **kwargs):
        if _DISABLED[0] or _LOCAL.tr is not None or STATE.depth:
            return self.fun(*args, **kwargs)
        arg_arrays: list = []
        key: list = []
        _signature((args, kwargs), arg_arrays, key)
        for a in arg_arrays:
            if a._node is not None:  # being differentiated from outside: stay eager
                STATS["eager"] += 1
                return self.fun(*args, **kwargs)
        state_in: list = []
        n = len(key)
        _signature(self.inputs, state_in, key)
        key.append("|")
        if self.outputs is self.inputs:  # the usual ``inputs=state, outputs=state``
            state_out = state_in
            key += key[n:-1]
        else:
            state_out = []
            _signature(self.outputs, state_out, key)
        gpu = False
        if _backend.GPU[0] is not None:
            where = _device(arg_arrays, state_in, state_out)
            if where == "mixed":
                STATS["eager"] += 1
                self.last_reason = MIXED_REASON
                return self.fun(*args, **kwargs)
            if where is None and not (arg_arrays or state_in or state_out):
                # no array to tell the device: GPU data in the closure decides (once)
                if self._closure_gpu is None:
                    self._closure_gpu = reaches_gpu(self.fun)
                where = "gpu" if self._closure_gpu else None
            if where == "gpu":
                gpu = True
                key.insert(0, "gpu")  # its own program: traced on host copies, replayed there
        try:
            k = concrete = tuple(key)
            if self.shapeless:
                k = _ranks(k)
            entry = self.cache.get(k)
        except TypeError:
            STATS["eager"] += 1
            return self.fun(*args, **kwargs)
        if entry is None:
            if gpu:
                return self._trace_gpu(k, args, kwargs, arg_arrays, state_in, state_out, concrete)
            return self._trace(k, args, kwargs, arg_arrays, state_in, state_out, concrete)
        if entry is _EAGER:
            STATS["eager"] += 1
            return self.fun(*args, **kwargs)
        if self.shapeless and concrete in entry.eager_shapes:
            STATS["eager"] += 1
            return self.fun(*args, **kwargs)
        return self._replay(k, entry, args, kwargs, arg_arrays, state_in, state_out, concrete, gpu)

    # -- tracing --------------------------------------------------------------------------------
    def _trace_gpu(self, k, args, kwargs, arg_arrays, state_in, state_out, concrete):
        """Trace a call on GPU data: on host copies of its arguments and state, with the CPU
        as the default device (so what the function makes is traced too); what the caller
        then sees (the results, the state and its gradients) goes back to the GPU."""
        from . import devices as _devices
        from . import random as _random

        was_gpu = {id(h) for h in state_in + state_out if _backend.is_gpu(h._data)}
        # the state as it was: a trace that fails on GPU data it cannot follow (an array moved
        # to the GPU inside the function) leaves it so, and the call runs eagerly on the GPU
        before = [(h, h._data, h._node, h._grad) for h in _unique(state_in + state_out)]
        rng_state = _random._G.rng.bit_generator.state
        failed = None
        try:
            with _devices.host_default():
                result = self._trace(
                    k, args, kwargs, arg_arrays, state_in, state_out, concrete, host_copies=True
                )
        except (TypeError, RuntimeError, ValueError) as e:  # (DeviceMismatchError is both)
            failed = e
        finally:
            post_in: list = []
            post_out: list = []
            _signature(self.inputs, post_in, [])
            _signature(self.outputs, post_out, [])
            for h in _unique(state_in + state_out + post_in + post_out):
                _to_gpu_handle(h, id(h) in was_gpu)
        if failed is not None:
            for h, d, node, g in before:
                h._data, h._node, h._grad = d, node, g
            _random._G.rng.bit_generator.state = rng_state
            self.cache[k] = _EAGER
            STATS["rejected"] += 1
            self.last_reason = f"{GPU_REASON} ({type(failed).__name__}: {failed})"
            return self.fun(*args, **kwargs)
        prog = self.cache.get(k)
        if prog is not None and prog is not _EAGER:  # constants the caller sees: on the GPU
            for o in prog.out_tmpl[1]:
                if type(o) is _Out:
                    o.where = _const_on_gpu(o.where)
            prog.state_outs = [  # (a 0-d state value, a step count, stays where it was made)
                (pos, _const_on_gpu(d, False), _const_on_gpu(g, False))
                for pos, d, g in prog.state_outs
            ]
        return _map_arrays(_gpu_copy, result)

    def _trace(self, k, args, kwargs, arg_arrays, state_in, state_out, concrete, host_copies=False):
        from . import random as _random

        _check_arguments(args, kwargs)
        STATS["traces"] += 1
        # MLX keeps what a closure held when the function was traced ("closures are not
        # updated"): the program holds those values as constants, and the checked first
        # replay compares it with an eager call on the same closure (see _verify)
        captured = (
            None if self.inputs is not None or self.outputs is not None else _captured(self.fun)
        )
        tr = _Tracer()
        # (handle, grad, input slot): not the value or its node, which the trace must not keep
        # alive once the function has replaced it (the eager call would have freed it)
        saved = {id(h): [h, h._grad, None] for h in _unique(state_in + state_out)}
        arg_map: dict[int, array] = {}
        value = _backend.to_host if host_copies else _same_value
        for a in arg_arrays:
            if id(a) not in arg_map:
                # (a chainrule.torch.Tensor keeps PyTorch's meanings inside the trace)
                arg_map[id(a)] = _as_class(_from_value(self._input(tr, value(a._data))), type(a))
        copies: dict = {}
        try:
            t_args = _map_arrays(lambda a: arg_map[id(a)], args, copies)
            t_kwargs = _map_arrays(lambda a: arg_map[id(a)], kwargs, copies)
        except Exception as e:  # a dict subclass that cannot be copied
            self.cache[k] = _EAGER
            STATS["rejected"] += 1
            self.last_reason = f"the arguments cannot be rebuilt: {type(e).__name__}: {e}"
            return self.fun(*args, **kwargs)
        for h in _unique(state_in):
            old = h._node
            if old is not None and old.prim is not None:
                tr.fail("an input of the state is the result of a recorded operation")
            t = self._input(tr, value(h._data))
            saved[id(h)][2] = t._slot
            h._data = t
            if old is not None:
                h._node = Node(t, None, (), None, old.owner)
            if h._grad is not None:
                h._grad = _from_value(self._input(tr, value(h._grad._data)))
        rng_real = _random._G.rng
        tr.rng = _RecordingRNG(rng_real)
        _random._G.rng = tr.rng
        # GPU arrays the function reads from its closure or globals: host constants of the trace
        outside = closure_on_host(self.fun, {}) if host_copies else contextlib.nullcontext()
        try:
            with outside as pairs:
                _LOCAL.tr = tr
                _patch_numpy(True)
                result = self.fun(*t_args, **t_kwargs)
                changed = replaced(pairs)
        except BaseException:
            _random._G.rng = rng_real
            for entry in saved.values():  # as an eager call leaves them, but plain values
                _unwrap(entry[0], tr)
            raise
        finally:
            _LOCAL.tr = None
            _patch_numpy(False)
        for h in changed:  # updated in place by the function: it runs eagerly, on the GPU
            tr.fail("the function replaced a GPU array outside its arguments and state")
            _unwrap(h, tr)
            _to_gpu_handle(h, True)
        if _random._G.rng is tr.rng:
            _random._G.rng = rng_real
        else:
            tr.fail("the global random generator was replaced (seeded) inside the function")

        def where(d):
            if type(d) is Traced:
                if d._tr is tr and d._slot is not None:
                    return ("slot", d._slot)
                tr.fail("a result is a traced value the tracer did not follow")
                return ("const", _ndview(d, _ndarray))
            if type(d) is _ndarray and d.base is not None:
                slot = _resolve_view(tr, d)  # np.asarray(traced)
                if slot is not None:
                    return ("slot", slot)
            return ("const", d)

        # A result that carries a graph may be differentiated by the caller, which a replay
        # could not serve; unless the function ran its own backward pass (a PyTorch-style step:
        # some state array has a new .grad), in which case its results are returned detached.
        stepped = any(h._grad is not entry[1] for entry in saved.values() for h in entry[:1])

        graphs = []

        def graph_check(x):
            if x._node is not None and x._node.prim is not None and not stepped:
                tr.fail("a result carries a recorded graph (it is differentiated outside)")
                graphs.append(x)
            return x

        res_leaves, res_spec = pytree.flatten(result)
        for x in res_leaves:
            if isinstance(x, array):
                graph_check(x)
        # a replay rebuilds dict nodes as plain dicts: a module among the results (returned as
        # the object itself, as eagerly) keeps the function eager
        own = any(isinstance(s, type) and s is not dict and issubclass(s, dict) for s in res_spec)
        if own:
            tr.fail("a result holds a dict subclass (a module), which a replay cannot return")
        out_tmpl = (
            res_spec,
            [_Out(where(x._data), type(x)) if isinstance(x, array) else x for x in res_leaves],
        )
        post: list = []
        post_key: list = []
        _signature(self.outputs, post, post_key)
        if _backend.GPU[0] is not None and tr.failed is None and _traced_gpu(tr, out_tmpl, post):
            tr.fail(GPU_REASON)  # GPU data the trace met: its values are no host constants
        structure_changed = post_key != list(concrete[concrete.index("|") + 1 :])
        plan = []
        for pos, h in enumerate(post):
            graph_check(h)
            before = saved.get(id(h))
            d_where = where(h._data)
            if before is not None and d_where == ("slot", before[2]):
                d_where = None  # unchanged
            g_where = None if h._grad is None else where(h._grad._data)
            if before is not None and before[1] is h._grad:
                g_where = None
            plan.append((pos, d_where, g_where))

        # Back to plain values everywhere the caller can see. A result with a graph keeps it, as
        # the eager call's would (the traced values inside it compute plainly from now on).
        if graphs:
            result = _map_arrays(
                lambda x: _as_class(_from_value(_plain(x._data), x._node), type(x)), result
            )
        elif not own:
            result = _fill(out_tmpl, tr.values)
        elif copies:
            result = _originals(result, copies)
        for h in _unique(post):
            _unwrap(h, tr)
        if self.inputs is not None and self.outputs is not self.inputs:
            # arrays the function put into an input-only state (a new step count): plain
            # values, as the eager call leaves them, never a traced value that outlives the trace
            post_in: list = []
            _signature(self.inputs, post_in, [])
            for h in _unique(post_in):
                _unwrap(h, tr)
        for h, g, _ in saved.values():
            gd = None if h._grad is None else h._grad._data
            _unwrap(h, tr)
            if type(gd) is Traced and gd._tr is tr and gd._slot in tr.inputs:
                h._grad = g  # a gradient nobody replaced: the same array as before

        if tr.failed is None and not structure_changed:
            slots = _slots_in(out_tmpl)
            for _, dw, gw in plan:
                slots += [w[1] for w in (dw, gw) if w is not None and w[0] == "slot"]
            # state the call replaces (inputs=outputs): its old buffers may take new values
            rebound = {}
            if self.outputs is self.inputs:
                for pos, dw, _ in plan:
                    slot = saved[id(state_in[pos])][2] if dw is not None else None
                    if slot is not None:
                        rebound.setdefault(slot, pos)
            prog = build(tr, slots, frozenset(rebound))
            prog.donors = [(rebound[slot], slot) for slot in prog.donors]
            # values that escaped (an optimizer's cached step) keep the tracer alive: drop what
            # it holds so that they do not also keep the previous state alive
            tr.keep.clear()
            tr.by_id.clear()
            tr.steps.clear()
            prog.out_tmpl = out_tmpl
            prog.state_outs = plan
            firsts = {}
            for i, h in enumerate(state_in):
                firsts.setdefault(id(h), i)
            prog.in_pos = sorted(firsts.values())
            prog.captured = captured
            if self.shapeless:
                prog.traced_shapes = concrete
                prog.shapes = set()
                prog.eager_shapes = set()
            self.cache[k] = prog
        elif not structure_changed:
            self.cache[k] = _EAGER
            STATS["rejected"] += 1
        self.last_reason = tr.failed
        return result

    @staticmethod
    def _input(tr: _Tracer, d):
        t = tr.new(d)
        tr.inputs.append(t._slot)  # type: ignore[arg-type]  # set by new()
        return t

    # -- replaying ------------------------------------------------------------------------------
    def _replay(self, k, prog, args, kwargs, arg_arrays, state_in, state_out, concrete, gpu):
        from . import random as _random

        donated = (
            _donations(prog, state_in, arg_arrays)
            if prog.donors and prog.verified and (not self.shapeless or concrete in prog.shapes)
            else None
        )
        inputs = [a._data for a in _unique(arg_arrays)] if len(arg_arrays) > 1 else []
        if len(arg_arrays) == 1:
            inputs.append(arg_arrays[0]._data)
        for i in prog.in_pos:  # first occurrences in the state, fixed by the signature
            h = state_in[i]
            inputs.append(h._data)
            if h._grad is not None:
                inputs.append(h._grad._data)
        rng_state = _random._G.rng.bit_generator.state if prog.has_rng else None
        try:
            run = prog.on_gpu() if gpu else prog.run
            values = run(*inputs, **donated) if donated else run(*inputs)
            del inputs  # the previous state can go as soon as nothing else holds it
        except SettingChanged:
            if rng_state is not None:
                _random._G.rng.bit_generator.state = rng_state
            del self.cache[k]  # a learning rate a scheduler changed: the next call traces anew
            STATS["eager"] += 1
            return self.fun(*args, **kwargs)
        except Exception as e:
            if rng_state is not None:
                _random._G.rng.bit_generator.state = rng_state
            STATS["rejected"] += 1
            self.last_reason = f"replay failed: {type(e).__name__}: {e}"
            if donated and not isinstance(e, GuardFailed):
                # it may have written into the state's old buffers: no eager call can run on
                # them, so the error is the caller's (as an eager in-place update's would be)
                self.cache[k] = _EAGER
                raise
            if self.shapeless and concrete != prog.traced_shapes:
                if isinstance(e, ValueError) and _failed_reshape(prog, e):
                    # as MLX: a reshape to a size computed from the traced shapes that these
                    # shapes cannot take is an error; any other failure runs these eagerly
                    raise ValueError(
                        "[compile] the shapeless program traced for other shapes cannot take"
                        f" these inputs: {e}"
                    ) from e
                prog.eager_shapes.add(concrete)
            else:
                self.cache[k] = _EAGER
            return self.fun(*args, **kwargs)
        if not prog.verified or (self.shapeless and concrete not in prog.shapes):
            # keep fingerprints, not the results, while the eager call runs: checking must not
            # hold a second copy of the model and optimizer state
            prints = {slot: _Fingerprint(v) for slot, v in values.items()}
            del values
            return self._verify(k, prog, prints, rng_state, args, kwargs, state_out, concrete)
        STATS["replays"] += 1
        return self._apply(prog, values, state_out)

    @staticmethod
    def _apply(prog, values, state_out):
        for pos, d_where, g_where in prog.state_outs:
            h = state_out[pos]
            if d_where is not None:
                kind, w = d_where
                v = values[w] if kind == "slot" else w
                if type(v) is not _ndarray:
                    v = _backend.as_array(v)
                old = h._node
                h._data = v
                if old is not None:
                    h._node = Node(v, None, (), None, old.owner)
            if g_where is not None:
                kind, w = g_where
                h._grad = _from_value(values[w] if kind == "slot" else w)
        return _fill(prog.out_tmpl, values)

    def _verify(self, k, prog, values, rng_state, args, kwargs, state_out, concrete):
        from . import random as _random

        if rng_state is not None:
            _random._G.rng.bit_generator.state = rng_state
        # a closure that changed since the trace: the replay keeps the traced values (MLX's
        # semantics), so the eager call it is checked against runs on them too
        now = None
        if prog.captured is not None and not _unchanged(prog.captured):
            now = _recapture(prog.captured)
            _put(prog.captured)
        try:
            expected = self.fun(*args, **kwargs)
        finally:
            if now is not None:
                _put(now)
        problem = None if _matches(prog.out_tmpl, values, expected) else "the result"
        post: list = []
        _signature(self.outputs, post, [])
        if problem is None and len(post) != len(state_out):
            problem = "the number of state arrays"
        for pos, d_where, g_where in prog.state_outs if problem is None else ():
            h = post[pos]
            for w, now in ((d_where, h._data), (g_where, h._grad)):
                if w is None:
                    continue
                if isinstance(now, array):
                    now = now._data
                if now is None or not _same(values[w[1]] if w[0] == "slot" else w[1], now):
                    problem = f"state array {pos} (shape {_np.shape(now)})"
                    break
            if problem is not None:
                break
        if problem is None:
            prog.verified = True
            if self.shapeless:
                prog.shapes.add(concrete)
            STATS["verified"] += 1
            return expected
        if self.shapeless and concrete != prog.traced_shapes:
            prog.eager_shapes.add(concrete)  # other shapes keep the program
        else:
            self.cache[k] = _EAGER
        STATS["rejected"] += 1
        self.last_reason = f"the replay did not match an eager call: {problem} differs"
        # (after a changed closure, this call's eager result saw the traced closure, as MLX's
        # would; the next calls run eagerly on the current one)
        return expected


def _same_value(d):
    return d


def _as_class(new: array, cls: type) -> array:
    """``new`` with class ``cls`` (a chainrule.torch.Tensor stays one)."""
    if cls is not array:
        new.__class__ = cls
    return new


def _gpu_copy(x: array) -> array:
    """An array the caller sees after a GPU call's trace, on the GPU (a host result of the
    trace copied there; a GPU value as it is)."""
    d = x._data
    if type(d) is not _ndarray:
        return x
    return _as_class(_from_value(_backend.to_gpu(d)), type(x))


def _const_on_gpu(where, zero_d: bool = True):
    """A template's ``("const", host value)`` with the value on the GPU (``zero_d=False``: a
    0-d value stays on the host, as :func:`_to_gpu_handle` leaves a state's step count)."""
    if where is None or where[0] != "const" or not isinstance(where[1], (_ndarray, _np.generic)):
        return where
    v = _np.asarray(where[1])
    return ("const", _backend.to_gpu(v)) if zero_d or v.ndim else where


def _to_gpu_handle(h: array, was_gpu: bool) -> None:
    """A state handle the trace left holding host values, back on the GPU (its value, and
    its ``.grad``); a leaf's node follows its value. A 0-d value stays on the host unless it
    was on the GPU before the call (an optimizer keeps its step count there: it mixes with
    either device)."""
    d = h._data
    if type(d) is _ndarray and (d.ndim or was_gpu):
        v = _backend.to_gpu(d)
        h._data = v
        old = h._node
        if old is not None and old.prim is None:
            h._node = Node(v, None, (), None, old.owner)
    g = h._grad
    if g is not None and type(g._data) is _ndarray:
        h._grad = _from_value(_backend.to_gpu(g._data))


_getrefcount = getattr(sys, "getrefcount", None)


def _buffer_counts(h: array):
    """``(buffer, references to it, references to the handle's node)`` for a handle holding a
    plain, writable NumPy array that is no view (or a GPU array the GPU library says owns its
    memory alone), else None."""
    d = h._data
    if type(d) is not _ndarray:
        g = _backend.GPU[0]
        if g is None or g.unshared is None or not _backend.is_gpu(d) or not g.unshared(d):
            return None
    elif d.base is not None or not d.flags.writeable:
        return None
    node = h._node
    return d, _getrefcount(d), 0 if node is None else _getrefcount(node)  # type: ignore[misc]


def _sole_counts() -> dict | None:
    """What :func:`_buffer_counts` counts when only the handle holds its buffer (and its leaf
    node), with and without a node: measured, so that it does not depend on the interpreter."""
    if _getrefcount is None:
        return None  # no reference counts: never write into the state
    plain = _from_value(_np.zeros(1))
    leaf = _from_value(_np.zeros(1))
    leaf._node = Node(leaf._data, None, (), None, None)
    got = [_buffer_counts(plain), _buffer_counts(leaf)]
    return {False: got[0][1:], True: got[1][1:]} if got[0] and got[1] else None  # type: ignore[index]


_SOLE = _sole_counts()


def _donations(prog, state_in: list, arg_arrays: list) -> dict:
    """The old state buffers a replay may write into (``d<slot>=buffer``): those held by
    nothing but their handle, which the replay binds to a new value (so no array anyone
    holds, no graph, no view and no argument sees the write). DESIGN.md invariant 1: a value
    once handed out never changes; an unreferenced buffer is no value anyone can see."""
    out: dict = {}
    if _SOLE is None:
        return out
    for pos, slot in prog.donors:
        h = state_in[pos]
        got = _buffer_counts(h)
        if got is None or got[1:] != _SOLE[h._node is not None]:
            continue
        d = got[0]
        if all(a._data is not d for a in arg_arrays):
            out[f"d{slot}"] = d
    return out


def _matches(tmpl, values, expected) -> bool:
    """Whether an eager call's result ``expected`` equals the replayed one (``tmpl``, ``values``)."""
    spec, leaves = tmpl
    got, got_spec = pytree.flatten(expected)
    if got_spec != spec:
        return False
    for o, e in zip(leaves, got):
        if type(o) is _Out:
            if not isinstance(e, array):
                return False
            kind, w = o.where
            if not _same(values[w] if kind == "slot" else w, e._data):
                return False
            continue
        try:
            if not bool(o == e):
                return False
        except Exception:
            return False
    return True


def _failed_reshape(prog, e: BaseException) -> bool:
    """Whether the replay failed in a reshape with an inferred (-1) dimension."""
    tb = e.__traceback__
    while tb is not None and tb.tb_next is not None:
        if tb.tb_frame.f_code.co_filename == "<string>":
            break
        tb = tb.tb_next
    if tb is None or tb.tb_frame.f_code.co_filename != "<string>":
        return False
    lines = prog.source.splitlines()
    line = lines[tb.tb_lineno - 1] if 0 < tb.tb_lineno <= len(lines) else ""
    return ".reshape(" in line and "-1" in line


def _ranks(key: tuple) -> tuple:
    """A signature with each array's shape replaced by its number of dimensions (``shapeless``)."""
    return tuple(
        tuple(
            (len(e[0]), e[1], e[2])
            if type(e) is tuple and len(e) == 3 and isinstance(e[1], _np.dtype)
            else e
            for e in part
        )
        if type(part) is tuple
        else part
        for part in key
    )


_CONSTANTS = (bool, int, float, complex, str, _np.generic)


def _check_arguments(args, kwargs) -> None:
    """MLX's rule: arguments are trees (lists, tuples, dicts) of arrays and constants."""
    for leaf in pytree.flatten((args, kwargs))[0]:
        if leaf is not None and not isinstance(leaf, array) and not isinstance(leaf, _CONSTANTS):
            raise ValueError(
                "[compile] Function arguments must be trees of arrays or constants (floats,"
                f" ints, strings, or None), but received type {type(leaf).__name__}."
            )


_CAPTURE_LIMIT = 10_000  # closures larger than this are not kept (changes then run eagerly)
_DATA = (bool, int, float, complex, str, _np.generic, _np.ndarray, type(None))


def _captured(fun) -> list | None:
    """What ``fun``'s closure holds, ``[(cell, value, contents)]`` (:func:`_contents`), when it
    holds only data (arrays, constants, and lists, tuples and dicts of them), which a call
    cannot change behind the closure's back; otherwise None (objects, modules, functions)."""
    while True:
        if isinstance(fun, functools.partial):
            fun = fun.func
        elif hasattr(fun, "__func__"):
            fun = fun.__func__
        else:
            break
    budget = [_CAPTURE_LIMIT]
    out = []
    for cell in getattr(fun, "__closure__", None) or ():
        try:
            v = cell.cell_contents
        except ValueError:  # not bound yet
            continue
        out.append((cell, v, _contents(v, budget)))
    return None if budget[0] < 0 else out


def _contents(v, budget: list):
    """What a value of a closure holds that may change in place: an array's value, the items
    of a list or dict (recursively), the items' contents of a tuple. Anything that is not
    data spends the whole budget."""
    budget[0] -= 1
    t = type(v)
    if isinstance(v, array):
        return v._data
    if budget[0] < 0:
        return None
    if t is dict:
        return [(key, x, _contents(x, budget)) for key, x in v.items()]
    if t is list or t is tuple:
        return [(None, x, _contents(x, budget)) for x in v]
    if not isinstance(v, _DATA):
        budget[0] = -1
    return None


def _unchanged(captured: list) -> bool:
    return all(c.cell_contents is v and _same_contents(v, w) for c, v, w in captured)


def _same_contents(v, w) -> bool:
    t = type(v)
    if isinstance(v, array):
        return v._data is w
    if t is dict:
        return len(v) == len(w) and all(
            v.get(key, w) is x and _same_contents(x, sub) for key, x, sub in w
        )
    if t is list or t is tuple:
        return len(v) == len(w) and all(
            a is x and _same_contents(x, sub) for a, (_, x, sub) in zip(v, w)
        )
    return True


def _recapture(captured: list) -> list:
    budget = [_CAPTURE_LIMIT * 10]
    return [(c, c.cell_contents, _contents(c.cell_contents, budget)) for c, _, _ in captured]


def _put(captured: list) -> None:
    """Give a closure the values :func:`_captured` noted."""
    for cell, v, w in captured:
        cell.cell_contents = v
        _put_contents(v, w)


def _put_contents(v, w) -> None:
    t = type(v)
    if isinstance(v, array):
        v._data = w
        return
    if t is dict:
        v.clear()
        v.update((key, x) for key, x, _ in w)
    elif t is list:
        v[:] = [x for _, x, _ in w]
    elif t is not tuple:
        return
    for _, x, sub in w:
        _put_contents(x, sub)


def _traced_gpu(tr: _Tracer, out_tmpl, post: list) -> bool:
    """Whether a trace read GPU data the tracer could not follow (made on the GPU inside it):
    as a constant result, a state value, or an argument of a recorded step."""
    if any(_holds_gpu(o) for o in out_tmpl[1]):
        return True
    for h in post:
        if _holds_gpu(h._data) or (h._grad is not None and _holds_gpu(h._grad._data)):
            return True
    return any(_holds_gpu(st[2]) or _holds_gpu(st[3]) for st in tr.steps)


def _slots_in(tmpl) -> list:
    return [o.where[1] for o in tmpl[1] if type(o) is _Out and o.where[0] == "slot"]


def _unique(handles: list) -> list:
    seen = set()
    out = []
    for h in handles:
        if id(h) not in seen:
            seen.add(id(h))
            out.append(h)
    return out


def _unwrap(h: array, tr: _Tracer) -> None:
    """Give a handle its plain value back after tracing."""
    d = h._data
    if type(d) is Traced:
        v = d._plain if (d._tr is tr and d._slot is not None) else _ndview(d, _ndarray)
        old = h._node
        h._data = v
        if old is not None:
            h._node = Node(v, None, (), None, old.owner) if old.prim is None else None
    g = h._grad
    if g is not None and type(g._data) is Traced:
        gd = g._data
        h._grad = _from_value(
            gd._plain if (gd._tr is tr and gd._slot is not None) else _ndview(gd, _ndarray)
        )


def compile(
    fun: Callable, inputs: Any = None, outputs: Any = None, shapeless: bool = False
) -> Callable:
    """Return a compiled version of ``fun`` (MLX's ``mx.compile``).

    The first call for each signature traces ``fun``; later calls replay the traced program
    (module docstring). Results equal those of ``fun``.

    Args:
        fun: the function to compile. Its arguments are trees of arrays and constants.
        inputs: trees of arrays the function reads implicitly (e.g. ``[model.state,
            optimizer.state]``).
        outputs: trees of arrays the function updates implicitly (usually the same trees).
        shapeless: as in MLX, a new shape (same number of dimensions and dtypes) replays the
            program traced for other shapes instead of tracing again; a program that cannot
            take the new shapes raises ``ValueError``. Each new shape's first replay is checked
            against an eager call (and runs eagerly from then on if they differ).

    Returns:
        A callable with ``fun``'s signature and results.

    Examples:
        >>> import chainrule.core as mx
        >>> def step(x, y):
        ...     return mx.value_and_grad(lambda x: ((x - y) ** 2).sum())(x)
        >>> fast = mx.compile(step)  # traced on the first call, replayed after
        >>> x, y = mx.array([1.0, 2.0]), mx.array([0.0, 4.0])
        >>> fast(x, y)
        (array(5, dtype=float32), array([2, -4], dtype=float32))
        >>> fast(x + 1, y)
        (array(5, dtype=float32), array([4, -2], dtype=float32))
    """
    if isinstance(fun, _Compiled):
        return fun
    return _Compiled(fun, inputs, outputs, shapeless)


def disable_compile() -> None:
    """Run compiled functions eagerly (for debugging)."""
    _DISABLED[0] = True


def enable_compile() -> None:
    """Undo ``disable_compile``."""
    _DISABLED[0] = False
