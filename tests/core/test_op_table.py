"""Tests that loop over the op table (``ops.PRIMITIVES``): compile against eager, dtypes.

The gradient checks (test_primitive_grads.py) and the vmap checks (test_vmap.py) loop over
the same table; each of the three fails when a primitive is added without its case or rule.
A primitive listed below is one a check does not apply to, with the reason.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_primitive_grads import TABLE

import chainrule.core as mx
from chainrule.core import ops

# Under CHAINRULE_DEVICE=gpu (the strict stand-in in make test, CuPy in make gpu-check) the
# arrays are on the GPU: the compile sweep then checks each primitive's GPU replay (a program
# traced on host copies, run on the GPU arrays: program_gpu.py).

# Primitives whose first gradient case mx.compile runs eagerly (the checked replay refuses).
COMPILE_RUNS_EAGERLY: dict[str, str] = {}

# Primitives whose float32 case does not give a float32 result, and why.
DTYPE_EXEMPT = {"astype": "its case casts to another width on purpose"}


def _first_case(name):
    assert name in TABLE, f"{name} has no case in test_primitive_grads.TABLE"
    _, fn, args = TABLE[name][-1]  # the last case has the largest shapes
    return fn, args


def _leaves(out):
    if isinstance(out, (list, tuple)):
        return [leaf for o in out for leaf in _leaves(o)]
    return [out]


@pytest.mark.parametrize("name", sorted(ops.PRIMITIVES))
def test_every_primitive_compiles_to_its_eager_value(name):
    fn, args = _first_case(name)
    xs = [mx.array(a, dtype=mx.float32) for a in args]
    want = _leaves(fn(*xs))
    compiled = mx.compile(fn)
    for _ in range(2):  # the first call traces and checks, the second replays
        got = _leaves(compiled(*xs))
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-6, atol=1e-6)
    if name in COMPILE_RUNS_EAGERLY:
        return
    assert compiled.last_reason is None, f"{name} runs eagerly: {compiled.last_reason}"


@pytest.mark.parametrize("name", sorted(ops.PRIMITIVES))
def test_every_primitive_keeps_float32_and_float64(name):
    if name in DTYPE_EXEMPT:
        return
    fn, args = _first_case(name)
    for dtype in (mx.float32, mx.float64):
        outs = _leaves(fn(*[mx.array(a, dtype=dtype) for a in args]))
        for out in outs:
            if mx.issubdtype(out.dtype, mx.floating):
                assert out.dtype == dtype, f"{name}: {dtype} in, {out.dtype} out"


def test_the_lists_name_primitives():
    for listed in (COMPILE_RUNS_EAGERLY, DTYPE_EXEMPT):
        assert set(listed) <= set(ops.PRIMITIVES)


def test_public_names_and_methods_come_from_the_registrations():
    assert sorted(ops.EXPORTS) == ops.__all__
    for name in ops.__all__:
        assert getattr(mx, name) is ops.EXPORTS[name]
    for name in ops.METHODS:
        assert name in ops.EXPORTS
        assert callable(getattr(mx.array, name)), name


def test_defprim_refuses_a_second_registration_of_a_name():
    with pytest.raises(ValueError, match="already registered"):
        ops.defprim("sum")


def test_primitives_know_whether_their_rules_read_the_result():
    t = ops.PRIMITIVES
    assert not t["multiply"].reads_result and not t["sum"].reads_result
    assert t["exp"].reads_result and t["divide"].reads_result  # g * ans, -g * ans / b
    reads = ops.Primitive("t1", (lambda g, ans, x: g * ans,))
    skips = ops.Primitive("t2", (lambda g, ans, x: g * x, None))

    def rule(g, ans, x):
        return (lambda: ans)() * g  # read inside a nested function

    assert reads.reads_result and not skips.reads_result
    assert ops.Primitive("t3", (rule,)).reads_result
    assert ops.Primitive("t4", (np.negative,)).reads_result  # no Python code: assumed to read
    # a rule that reads no result still differentiates (the pass hands it None)
    x = mx.array([0.5, 2.0])
    np.testing.assert_allclose(mx.grad(lambda x: (x * x).sum())(x), [1.0, 4.0])
