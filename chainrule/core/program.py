"""The program side of ``mx.compile``: a recorded trace turned into generated Python code.

:func:`build` takes the steps a :class:`~chainrule.core.tracing._Tracer` recorded and the slots
the caller needs, removes dead steps, finds the last use of every buffer (released with
``del`` there), lets elementwise ufuncs write into an input that dies at that step (``out=``),
and generates one ``_replay`` function: one line per kernel, on plain NumPy arrays. Guards and
settings become ``if ...: raise`` lines that :mod:`chainrule.core.compile` catches.

In-place work never touches a value anyone else can see: ``out=`` goes only into *fresh*
temporaries (made by the program's own ufunc calls, written in place by ufuncs only, never
passed to a step that could return a view of them) at the step where they die; and, after every
guard and setting, into an old state buffer the call replaces, which the caller hands over
(``d<slot>=``) only when nothing but its handle holds it (reference counts, at every call).
"""

from __future__ import annotations

from typing import Any

import numpy as _np

from .tracing import _Draw, _Meth, _Ref, _Tracer

__all__ = ["GuardFailed", "SettingChanged", "Program", "build"]


class GuardFailed(Exception):
    """A guard of the replay saw a different Python value than the trace did."""


class SettingChanged(Exception):
    """A Python setting the program was traced with has changed: trace again."""


_SIMPLE = (int, float, bool, str, type(None))


class Program:
    """A traced call turned into generated Python code."""

    __slots__ = (
        "run",
        "source",
        "out_tmpl",
        "state_outs",
        "n_steps",
        "has_rng",
        "verified",
        "in_pos",
        "captured",
        "traced_shapes",
        "shapes",
        "eager_shapes",
        "donors",
        "ns",
        "gpu_run",
    )

    def __init__(self) -> None:
        self.verified = False
        self.captured = None
        self.donors: list = []  # input slots whose buffer a replay may write its result into
        self.gpu_run = None

    def on_gpu(self):
        """The replay function for GPU arrays: the same source in the namespace of
        :func:`chainrule.core.program_gpu.gpu_namespace` (built at the first GPU replay)."""
        run = self.gpu_run
        if run is None:
            from .program_gpu import gpu_namespace

            ns = gpu_namespace(self.ns)
            exec(self.source, ns)  # noqa: S102 - the program's own generated source
            run = self.gpu_run = ns["_replay"]
        return run


def build(tr: _Tracer, result_slots: list, donatable: frozenset = frozenset()) -> Program:
    """Dead-step elimination, buffer reuse and code generation.

    Args:
        tr: the finished trace.
        result_slots: the slots the caller reads from the replay's result.
        donatable: input slots holding state that the call replaces (a new value is bound to
            its handle): an elementwise step where such a slot dies, after every guard and
            setting, may write into its buffer. The replay takes the buffer as the keyword
            ``d<slot>`` (``None``: a new buffer), which the caller passes only when nothing else
            holds it (``Program.donors`` lists the slots).

    Returns:
        The program, with ``run`` the generated replay function.
    """
    steps = tr.steps
    live = set(result_slots)
    kept = []
    for st in reversed(steps):
        kind, fn, targs, tkw, outs, extra = st
        needed = kind != "call" or extra[0] or any(o in live for o in outs)
        if not needed:
            continue
        kept.append(st)
        _collect_refs(targs, live)
        _collect_refs(tkw, live)
    kept.reverse()

    # last use of each slot, to release buffers and to write results over dying temporaries
    last: dict[int, int] = {}
    for i, st in enumerate(kept):
        refs: set = set()
        _collect_refs(st[2], refs)
        _collect_refs(st[3], refs)
        for r in refs:
            last[r] = i
    final = set(result_slots)
    for s in final:
        last[s] = len(kept)
    fresh = _fresh_buffers(kept, tr)

    ns: dict = {"_GuardFailed": GuardFailed, "_SettingChanged": SettingChanged}
    names: dict = {}

    def name_of(obj, prefix: str) -> str:
        key = (prefix, id(obj))
        n = names.get(key)
        if n is None:
            n = names[key] = f"{prefix}{len(names)}"
            ns[n] = obj
        return n

    def expr(x) -> str:
        t = type(x)
        if t is _Ref:
            return f"s{x.slot}"
        if t is tuple:
            inner = ", ".join(expr(v) for v in x)
            return f"({inner},)" if x else "()"
        if t is list:
            return "[" + ", ".join(expr(v) for v in x) + "]"
        if t in (int, bool, str, type(None)):
            return repr(x)
        if t is float and x == x and x not in (float("inf"), float("-inf")):
            return repr(x)
        return name_of(x, "c")

    checks = [i for i, st in enumerate(kept) if st[0] in ("guard", "setting")]
    after_checks = checks[-1] if checks else -1
    donors: list = []
    lines = []
    has_rng = False
    for i, (kind, fn, targs, tkw, outs, extra) in enumerate(kept):
        call_args = [expr(a) for a in targs]
        for k, v in tkw.items():
            call_args.append(f"{k}={expr(v)}")
        if kind == "call" and not extra[0] and not extra[1] and len(outs) == 1 and not tkw:
            reuse = _reusable(fn, targs, outs[0], i, last, fresh, tr)
            if reuse is not None:
                call_args.append(f"out=s{reuse}")
            elif i > after_checks and donatable:
                donor = _reusable(fn, targs, outs[0], i, last, donatable, tr)
                if donor is not None and _nbytes(tr, donor) >= _DONATE_MIN_BYTES:
                    call_args.append(f"out=d{donor}")
                    donors.append(donor)
        elif kind == "call" and getattr(fn, "donates", None) and i > after_checks and donatable:
            given = _donated_arguments(fn, targs, i, last, donatable, tr)
            if given:  # the kernel's last argument, "write in place", holds when all are given
                call_args[-1] = " and ".join(f"d{d} is not None" for d in given)
                donors.extend(given)
        if type(fn) is _Draw:
            has_rng = True
        if type(fn) is _Meth:
            call = f"{call_args[0]}.{fn.name}({', '.join(call_args[1:])})"
        else:
            call = f"{name_of(fn, 'f')}({', '.join(call_args)})"
        if kind in ("guard", "setting"):
            want = expr(extra) if type(extra) in _SIMPLE else name_of(extra, "c")
            lines.append(f"    if {call} != {want}:")
            error = "_GuardFailed" if kind == "guard" else "_SettingChanged"
            lines.append(f"        raise {error}({i})")
        elif outs and any(o in last for o in outs):
            if extra[1]:
                lines.append("    " + ", ".join(f"s{o}" for o in outs) + f", = {call}")
            else:
                lines.append(f"    s{outs[0]} = {call}")
        else:
            lines.append(f"    {call}")
        dead = [r for r, at in last.items() if at == i and r not in final]
        if dead:
            lines.append("    del " + ", ".join(f"s{r}" for r in sorted(dead)))
    lines.append("    return {" + ", ".join(f"{s}: s{s}" for s in sorted(final)) + "}")
    params = [f"s{s}" for s in tr.inputs]
    if donors:
        params += ["*"] + [f"d{s}=None" for s in donors]
    lines.insert(0, "def _replay(" + ", ".join(params) + "):")
    source = "\n".join(lines)
    exec(source, ns)  # noqa: S102 - generated from the recorded steps above
    prog: Any = Program()
    prog.run = ns.pop("_replay")
    prog.ns = ns
    prog.source = source
    prog.n_steps = len(kept)
    prog.has_rng = has_rng
    prog.donors = donors
    return prog


def _collect_refs(x, acc: set) -> None:
    t = type(x)
    if t is _Ref:
        acc.add(x.slot)
    elif t is tuple or t is list:
        for v in x:
            _collect_refs(v, acc)
    elif t is dict:
        for v in x.values():
            _collect_refs(v, acc)


_ELEMENTWISE_SAFE = frozenset(
    "add subtract multiply true_divide divide negative sqrt exp log tanh square maximum minimum "
    "power absolute reciprocal sign".split()
)


def _fresh_buffers(kept: list, tr: _Tracer) -> set:
    """Slots that own a buffer nobody else views: results of plain elementwise ufunc calls
    whose buffers are never passed to a step that could return a view of them."""
    fresh = set()
    viewed = set()
    for kind, fn, targs, tkw, outs, extra in kept:
        if kind != "call":
            continue
        if type(fn) is _np.ufunc and not tkw and not extra[0] and len(outs) == 1:
            fresh.add(outs[0])
        elif type(fn) is _np.ufunc and _writes_in_place(tkw, outs):
            pass  # ``np.op(a, b, out=t)``: writes into ``t``, makes no view of any operand
        else:
            refs: set = set()
            _collect_refs(targs, refs)
            _collect_refs(tkw, refs)
            ufunc_method = type(getattr(fn, "__self__", None)) is _np.ufunc
            if extra[0] or not (type(fn) is _np.ufunc or ufunc_method):
                viewed |= refs  # functions and methods may return views (reshape, transpose)
    return fresh - viewed


# Smaller state buffers are not worth the reference counting at every call: a new one of a few
# kilobytes comes from the allocator's cache and is written in L1/L2 (issue 20: on the flow
# example's 72 small moments the check cost more than it saved).
_DONATE_MIN_BYTES = 1 << 16


def _nbytes(tr: _Tracer, slot: int) -> int:
    shape, dtype, _, _ = tr.values.meta[slot]
    n = dtype.itemsize
    for d in shape:
        n *= d
    return n


def _writes_in_place(tkw: dict, outs: list) -> bool:
    """Whether a ufunc step's only keyword is ``out=`` naming the one slot it returns."""
    if len(tkw) != 1 or len(outs) != 1:
        return False
    o = tkw.get("out")
    if type(o) is tuple and len(o) == 1:
        o = o[0]
    return type(o) is _Ref and o.slot == outs[0]


def _donated_arguments(fn, targs, i, last, donatable, tr) -> list:
    """The state slots that a kernel marked ``donates`` (argument positions it may write into
    when its last argument is true: ``onednn.adam_update``'s moments) can take in place here:
    all of them donatable, dying at this step and large enough; else none."""
    if any(type(targs[j]) is not _Ref for j in fn.donates):
        return []
    slots: list[int] = [targs[j].slot for j in fn.donates]
    if any(s not in donatable or last.get(s) != i for s in slots):
        return []
    if len(set(slots)) != len(slots) or min(_nbytes(tr, s) for s in slots) < _DONATE_MIN_BYTES:
        return []
    return slots


def _reusable(fn, targs, out_slot, i, last, fresh, tr):
    """An input buffer that dies here and can take this elementwise result (``out=``)."""
    if type(fn) is not _np.ufunc or fn.__name__ not in _ELEMENTWISE_SAFE:
        return None
    out_shape, out_dtype, _, out_c = tr.values.meta[out_slot]
    if len(out_shape) == 0 or not out_c:
        return None
    for a in targs:
        if type(a) is _Ref and a.slot in fresh and last.get(a.slot) == i:
            shape, dtype, _, c_contig = tr.values.meta[a.slot]
            if shape == out_shape and dtype == out_dtype and c_contig:
                return a.slot  # released by this very step
    return None
