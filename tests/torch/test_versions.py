"""PyTorch's version counter: a backward pass that needs a value replaced in place raises.

Each case runs on chainrule.torch and, when installed, on real PyTorch: the same gradients or
the same refusal. MLX-style arrays rebind in place and never raise (DESIGN.md, invariant 1).
"""

from __future__ import annotations

import numpy as np
import pytest

import chainrule.core as mx
import chainrule.torch as torch
from chainrule.core.versions import version


def _saved_operand_replaced(lib, x):  # multiply saved y for the other operand
    y = x * 2
    z = y * y
    y.add_(1)
    return z


def _linear_consumer(lib, x):  # add reads no value: fine
    y = x * 2
    z = y + 1
    y.add_(1)
    return z


def _saved_result_replaced(lib, x):  # exp saved its own result
    y = x.exp()
    y.add_(1)
    return y


def _constant_product(lib, x):  # y * 3 needs 3, not y
    y = x * 2
    z = y * 3
    y.mul_(2)
    return z


def _setitem_after_log(lib, x):  # log read y; y[0] = 5 replaced it
    y = x * 2
    z = y.log()
    y[0] = 5.0
    return z


def _changed_before_use(lib, x):  # changed before anything saved it: fine
    y = x * 2
    y.add_(1)
    return y * y


def _in_place_reads_its_own_input(lib, x):  # log_ needs its input: PyTorch keeps it
    y = x * 2
    y.log_()
    return y


def _composite_in_place(lib, x):  # elu_ is several chainrule nodes reading y
    y = x * 2 - 3
    lib.nn.functional.elu_(y)
    return y * y


CASES = {
    "in-place reads its own input": (_in_place_reads_its_own_input, False),
    "composite in place": (_composite_in_place, False),
    "saved operand replaced": (_saved_operand_replaced, True),
    "linear consumer": (_linear_consumer, False),
    "saved result replaced": (_saved_result_replaced, True),
    "constant product": (_constant_product, False),
    "setitem after log": (_setitem_after_log, True),
    "changed before use": (_changed_before_use, False),
}


def _run(lib, build):
    x = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
    out = build(lib, x)
    try:
        out.sum().backward()
    except RuntimeError as e:
        return "error", str(e)
    return "ok", x.grad.numpy()


@pytest.mark.parametrize("name", list(CASES))
def test_backward_through_a_replaced_value(name):
    build, refused = CASES[name]
    kind, detail = _run(torch, build)
    assert kind == ("error" if refused else "ok"), detail
    if refused:
        assert "modified by an inplace operation" in detail and "is at version 1" in detail
    torch_ref = pytest.importorskip("torch")
    ref_kind, ref_detail = _run(torch_ref, build)
    assert kind == ref_kind
    if kind == "ok":
        np.testing.assert_allclose(detail, ref_detail, rtol=1e-6)
    else:
        assert "modified by an inplace operation" in ref_detail


def test_version_counts_in_place_changes():
    x = torch.zeros(3)
    assert version(x) == 0
    x.add_(1)
    x[0] = 2.0
    assert version(x) == 2
    torch_ref = pytest.importorskip("torch")
    r = torch_ref.zeros(3)
    r.add_(1)
    r[0] = 2.0
    assert r._version == 2


def test_mlx_arrays_rebind_and_never_raise():
    def f(x):
        y = x * 2
        z = y * y
        y[0] = 5.0  # MLX: y is a new value; z keeps the old one
        return z.sum()

    g = mx.grad(f)(mx.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(g.tolist(), [8.0, 16.0, 24.0])
