"""``torch.func``: PyTorch's function transforms over chainrule's one engine.

``grad``, ``grad_and_value``, ``vjp``, ``jvp`` and ``vmap`` are the core transforms
(``mx.value_and_grad``, ``mx.vjp``, ``mx.jvp``, ``mx.vmap``) with PyTorch's signatures and
result structures (``argnums`` given as a tuple gives a tuple, ``has_aux`` returns the
auxiliary output beside the result); ``jacrev``/``jacfwd`` stack one VJP per output element
or one JVP per input element, so they compose with the other transforms (``hessian`` is
``jacfwd(jacrev(f))``); ``functional_call`` runs a module with some of its parameters and
buffers replaced for one call.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import chainrule.core as mx
from chainrule.core import backend
from chainrule.core.extend import array, from_value
from chainrule.utils import tree_flatten

from ._tensor_class import tensors

__all__ = [
    "grad",
    "grad_and_value",
    "vjp",
    "jvp",
    "vmap",
    "jacrev",
    "jacfwd",
    "hessian",
    "functional_call",
    "stack_module_state",
]


def _argnums(argnums: int | tuple, nargs: int, who: str) -> tuple[bool, tuple]:
    single = isinstance(argnums, int) and not isinstance(argnums, bool)
    nums = (argnums,) if single else argnums
    if not isinstance(nums, tuple) or not nums:
        raise RuntimeError(
            f"{who}: argnums must be an int or a non-empty tuple of ints, got {argnums!r}"
        )
    out = []
    for n in nums:
        if isinstance(n, bool) or not isinstance(n, int):
            raise RuntimeError(f"{who}: argnums must be ints, got {n!r}")
        if not -nargs <= n < nargs:
            raise RuntimeError(
                f"{who}: Got argnum={n}, but only {nargs} positional inputs were given"
            )
        out.append(n % nargs)
    if len(set(out)) != len(out):
        raise RuntimeError(f"{who}: argnums {argnums!r} contains duplicates")
    return single, tuple(out)


def _split_aux(out: Any, has_aux: bool, who: str) -> tuple[Any, Any]:
    if not has_aux:
        return out, None
    if not isinstance(out, tuple) or len(out) != 2:
        raise RuntimeError(
            f"{who}(f)(*args): output of function f should be a tuple: (output, aux) "
            "if has_aux is True"
        )
    return out


def grad_and_value(func: Callable, argnums: int | tuple = 0, has_aux: bool = False) -> Callable:
    """``torch.func.grad_and_value``: a function returning ``(gradient, value)`` (with
    ``has_aux``, ``(gradient, (value, aux))``).

    Args:
        func: returns a scalar tensor (or ``(scalar, aux)`` with ``has_aux``).
        argnums: the positional argument(s) to differentiate; a tuple gives a tuple.
        has_aux: ``func`` also returns an auxiliary object, passed through undifferentiated.

    Returns:
        The transformed function.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        single, nums = _argnums(argnums, len(args), "grad_and_value")
        box: list = [None]

        def inner(*a: Any) -> Any:
            value, aux = _split_aux(func(*a, **kwargs), has_aux, "grad_and_value")
            if not isinstance(value, array):
                raise RuntimeError(
                    "grad_and_value(f)(*args): Expected f(*args) to return a Tensor, got "
                    f"{type(value).__name__}"
                )
            if value._data.size != 1:
                raise RuntimeError(
                    "grad_and_value(f)(*args): Expected f(*args) to return a scalar Tensor, got "
                    f"tensor with {value.ndim} dims. Maybe you wanted to use the vjp or jacrev "
                    "APIs instead?"
                )
            box[0] = aux
            return value.reshape(())

        vg = mx.value_and_grad(inner, argnums=list(nums))
        value, grads = vg(*args)
        if not single and len(nums) == 1:
            grads = (grads,)
        elif not single:
            grads = tuple(grads)
        value = value.reshape(()) if value.ndim else value
        return tensors(grads), (tensors((value, box[0])) if has_aux else tensors(value))

    return wrapper


def grad(func: Callable, argnums: int | tuple = 0, has_aux: bool = False) -> Callable:
    """``torch.func.grad``: a function returning the gradient of scalar ``func`` (with
    ``has_aux``, ``(gradient, aux)``).

    Args:
        func: returns a scalar tensor (or ``(scalar, aux)`` with ``has_aux``).
        argnums: the positional argument(s) to differentiate; a tuple gives a tuple.
        has_aux: ``func`` also returns an auxiliary object.

    Returns:
        The transformed function.
    """
    gv = grad_and_value(func, argnums, has_aux)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        g, value = gv(*args, **kwargs)
        return (g, value[1]) if has_aux else g

    return wrapper


def vjp(func: Callable, *primals: Any, has_aux: bool = False) -> tuple:
    """``torch.func.vjp``: ``(output, vjp_fn)`` (and ``aux`` with ``has_aux``); ``vjp_fn(ct)``
    returns a tuple with one cotangent per primal.

    Args:
        func: a function of tensors returning a tensor or a tuple of tensors.
        *primals: the point.
        has_aux: ``func`` returns ``(output, aux)``.

    Returns:
        ``(output, vjp_fn)`` or ``(output, vjp_fn, aux)``.
    """
    box: list = [None]

    def inner(*a: Any) -> Any:
        out, aux = _split_aux(func(*a), has_aux, "vjp")
        box[0] = aux
        return list(out) if isinstance(out, (tuple, list)) else out

    with mx.no_grad():
        output = inner(*primals)
    output = tuple(output) if isinstance(output, list) else output
    aux = box[0]

    def vjp_fn(cotangents: Any, *more: Any) -> tuple:
        cts = (cotangents, *more) if more else cotangents
        cts = list(cts) if isinstance(output, tuple) else [cts]
        _, grads = mx.vjp(inner, list(primals), cts)
        return tensors(tuple(grads))

    output = tensors(output)
    return (output, vjp_fn, aux) if has_aux else (output, vjp_fn)


def jvp(
    func: Callable,
    primals: Sequence,
    tangents: Sequence,
    *,
    strict: bool = False,
    has_aux: bool = False,
) -> tuple:
    """``torch.func.jvp``: ``(output, jvp_out)`` (and ``aux`` with ``has_aux``).

    Args:
        func: a function of tensors returning a tensor or a tuple of tensors.
        primals: a tuple of tensors.
        tangents: a tuple of tangents shaped like ``primals``.
        strict: accepted for PyTorch code.
        has_aux: ``func`` returns ``(output, aux)``.

    Returns:
        ``(output, jvp_out)`` or ``(output, jvp_out, aux)``.
    """
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise RuntimeError(
            "jvp(f, primals, tangents): Expected primals and tangents to be tuples. E.g. "
            "jvp(f, (x,), (t,))"
        )
    if len(primals) != len(tangents):
        raise RuntimeError(
            f"jvp(f, primals, tangents): Expected primals and tangents to have the same "
            f"length (got {len(primals)} and {len(tangents)})"
        )
    box: list = [None]
    multi: list = [False]

    def inner(*a: Any) -> Any:
        out, aux = _split_aux(func(*a), has_aux, "jvp")
        box[0] = aux
        multi[0] = isinstance(out, (tuple, list))
        return list(out) if multi[0] else out

    outs, ts = mx.jvp(inner, list(primals), list(tangents))
    if multi[0]:
        res = (tuple(outs), tuple(ts))
    else:
        res = (outs[0], ts[0])
    res = tensors(res)
    return (*res, box[0]) if has_aux else res


def vmap(
    func: Callable,
    in_dims: int | tuple | None = 0,
    out_dims: int | tuple = 0,
    randomness: str = "error",
    *,
    chunk_size: int | None = None,
) -> Callable:
    """``torch.func.vmap``: map ``func`` over a batch dimension (``mx.vmap`` with PyTorch's
    argument names).

    Args:
        func: a function of tensors.
        in_dims: the batch dimension of each input (``None`` for unbatched), or one for all.
        out_dims: the batch dimension of each output.
        randomness: accepted for PyTorch code (``"error"``, ``"different"``, ``"same"``).
        chunk_size: accepted for PyTorch code.

    Returns:
        The batched function.
    """
    if randomness not in ("error", "different", "same"):
        raise RuntimeError(
            f"Only allowed values for randomness are 'error', 'different', or 'same'. Got "
            f"{randomness}"
        )
    mapped = mx.vmap(func, in_axes=in_dims, out_axes=out_dims)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if kwargs:
            return mx.vmap(functools.partial(func, **kwargs), in_axes=in_dims, out_axes=out_dims)(
                *args
            )
        out = mapped(*args)
        return tensors(tuple(out) if isinstance(out, list) else out)

    return wrapper


def _basis(x: array):
    n = x._data.size
    eye = backend.array_module(x._data).eye(n, dtype=x._data.dtype)
    for i in range(n):
        yield from_value(eye[i].reshape(x._data.shape))


def jacrev(
    func: Callable,
    argnums: int | tuple = 0,
    *,
    has_aux: bool = False,
    chunk_size: int | None = None,
    _preallocate_and_copy: bool = False,
) -> Callable:
    """``torch.func.jacrev``: the Jacobian by reverse mode, ``out.shape + input.shape`` per
    differentiated input (a tuple for tuple ``argnums``)."""

    @functools.wraps(func)
    def wrapper(*args: Any) -> Any:
        single, nums = _argnums(argnums, len(args), "jacrev")
        box: list = [None]

        def part(*sel: Any) -> Any:
            full = list(args)
            for n, v in zip(nums, sel):
                full[n] = v
            out, aux = _split_aux(func(*full), has_aux, "jacrev")
            box[0] = aux
            return out

        sel = [args[n] for n in nums]
        out = part(*sel)
        multi = isinstance(out, (tuple, list))
        outs = list(out) if multi else [out]
        table = []
        for k, o in enumerate(outs):
            rows: list[list] = [[] for _ in nums]
            for e in _basis(o):
                cts = [e if j == k else mx.zeros_like(q) for j, q in enumerate(outs)]

                def f(*s: Any) -> Any:
                    r = part(*s)
                    return list(r) if multi else r

                _, gs = mx.vjp(f, sel, cts)
                for i, g in enumerate(gs):
                    rows[i].append(g)
            blocks = tuple(
                mx.stack(rows[i]).reshape(o.shape + sel[i].shape) for i in range(len(nums))
            )
            table.append(blocks[0] if single else blocks)
        res = tensors(tuple(table) if multi else table[0])
        return (res, box[0]) if has_aux else res

    return wrapper


def jacfwd(
    func: Callable,
    argnums: int | tuple = 0,
    has_aux: bool = False,
    *,
    randomness: str = "error",
) -> Callable:
    """``torch.func.jacfwd``: the Jacobian by forward mode (one JVP per input element)."""

    @functools.wraps(func)
    def wrapper(*args: Any) -> Any:
        single, nums = _argnums(argnums, len(args), "jacfwd")
        box: list = [None]
        multi: list = [False]

        def part(*sel: Any) -> Any:
            full = list(args)
            for n, v in zip(nums, sel):
                full[n] = v
            out, aux = _split_aux(func(*full), has_aux, "jacfwd")
            box[0] = aux
            multi[0] = isinstance(out, (tuple, list))
            return list(out) if multi[0] else out

        sel = [args[n] for n in nums]
        cols: list = []  # per input: list of output-tangent lists
        outs = None
        for i, x in enumerate(sel):
            per = []
            for e in _basis(x):
                ts = [e if j == i else mx.zeros_like(s) for j, s in enumerate(sel)]
                outs, t = mx.jvp(part, sel, ts)
                per.append(t)
            cols.append(per)
        table = []
        for k, o in enumerate(outs):
            blocks = []
            for i, x in enumerate(sel):
                stacked = mx.stack([t[k] for t in cols[i]], axis=-1)
                blocks.append(stacked.reshape(o.shape + x.shape))
            table.append(blocks[0] if single else tuple(blocks))
        res = tensors(tuple(table) if multi[0] else table[0])
        return (res, box[0]) if has_aux else res

    return wrapper


def hessian(func: Callable, argnums: int | tuple = 0) -> Callable:
    """``torch.func.hessian``: ``jacfwd(jacrev(func, argnums), argnums)``."""
    return jacfwd(jacrev(func, argnums), argnums)


def functional_call(
    module: Any,
    parameter_and_buffer_dicts: dict | Sequence[dict],
    args: Any = None,
    kwargs: dict | None = None,
    *,
    tie_weights: bool = True,
    strict: bool = False,
) -> Any:
    """``torch.func.functional_call``: call ``module`` with some parameters and buffers
    replaced (by dotted name, as ``named_parameters`` spells them) for this call only.

    Args:
        module: a ``chainrule.nn.Module``.
        parameter_and_buffer_dicts: ``{name: tensor}``, or a sequence of such dicts.
        args: the positional argument, or a tuple of them.
        kwargs: keyword arguments.
        tie_weights: accepted for PyTorch code.
        strict: every parameter and buffer must be given.

    Returns:
        What ``module`` returns.

    Raises:
        ValueError: a name given twice, or a name the module does not have.
        RuntimeError: with ``strict``, names missing.
    """
    dicts = (
        [parameter_and_buffer_dicts]
        if isinstance(parameter_and_buffer_dicts, dict)
        else list(parameter_and_buffer_dicts)
    )
    merged: dict = {}
    for d in dicts:
        for k, v in d.items():
            if k in merged:
                raise ValueError(
                    f"functional_call: {k!r} appeared in multiple dictionaries; behavior of "
                    "functional call is ambiguous"
                )
            merged[k] = v
    own = dict(tree_flatten(module.parameters()))
    unknown = sorted(set(merged) - set(own))
    if unknown:
        raise ValueError(
            f"functional_call: unexpected key(s) {unknown}; the module has {sorted(own)}"
        )
    if strict:
        missing = sorted(set(own) - set(merged))
        if missing:
            raise RuntimeError(f"functional_call: missing key(s) {missing}")
    if args is None:
        args = ()
    elif not isinstance(args, tuple):
        args = (args,)
    saved = {k: own[k] for k in merged}
    for k, v in merged.items():
        _put(module, k, v)
    try:
        return module(*args, **(kwargs or {}))
    finally:
        for k, v in saved.items():
            _put(module, k, v)


def _put(module: Any, name: str, value: Any) -> None:
    """Set the entry ``name`` (dotted, list items by number) without any of the module's own
    assignment logic (which would make a given tensor a ``requires_grad`` leaf)."""
    *path, last = name.split(".")
    obj = module
    for part in path:
        obj = obj[int(part)] if isinstance(obj, list) else obj[part]
    if isinstance(obj, list):
        obj[int(last)] = value
    else:
        dict.__setitem__(obj, last, value)


def stack_module_state(models: Sequence[Any]) -> tuple[dict, dict]:
    """``torch.func.stack_module_state``: the parameters and buffers of same-shaped models,
    stacked along a new first dimension (for ``vmap`` over ``functional_call``); the stacked
    parameters are new leaves that require grad, as in PyTorch.

    Raises:
        RuntimeError: for no models, or models with different parameter names.
    """
    models = list(models)
    if not models:
        raise RuntimeError("stack_module_state: Expected at least one model, got 0.")
    names = [k for k, _ in models[0].named_parameters()]
    bnames = (
        [k for k, _ in models[0].named_buffers()] if hasattr(models[0], "named_buffers") else []
    )
    for m in models[1:]:
        if [k for k, _ in m.named_parameters()] != names:
            raise RuntimeError(
                "stack_module_state: Expected all models to have the same parameters"
            )
    params = {}
    for k in names:
        stacked = mx.stack([dict(m.named_parameters())[k] for m in models])
        params[k] = from_value(stacked._data).requires_grad_()
    buffers = {}
    for k in bnames:
        buffers[k] = from_value(mx.stack([dict(m.named_buffers())[k] for m in models])._data)
    return tensors(params), tensors(buffers)
