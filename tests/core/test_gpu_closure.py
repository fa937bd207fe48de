"""``core/gpu_closure.py``: the GPU arrays a function reads from outside its arguments (closure,
defaults, globals, a bound method's object, a ``functools.partial``), swapped for host copies
while a trace runs and put back after, under the strict CuPy stand-in."""

from __future__ import annotations

import functools

import numpy as np
import pytest

import chainrule.core as mx
from chainrule.core import backend, gpu_closure
from chainrule.core.strict_backend import StrictArray

# these tests choose devices themselves: the CPU is the default while each runs (conftest.py)
pytestmark = pytest.mark.usefixtures("cpu_default_device")

_GLOBAL: dict = {}


class _Holder:
    def __init__(self, w) -> None:
        self.w = w

    def apply(self, x):
        return x * self.w


def test_every_way_a_function_reaches_gpu_arrays():
    with backend.use_strict_gpu():
        a, b, c, d, e = (mx.array(np.full(3, float(i), np.float32)).to(mx.gpu) for i in range(5))
        _GLOBAL["g"] = c

        def f(x, scale=b):
            return (x + a) * scale + _GLOBAL["g"] + (lambda: e)()

        found = {id(v) for v in gpu_closure._reachable_gpu_arrays(f)}
        assert {id(a), id(b), id(c), id(e)} <= found
        method = _Holder(d).apply
        assert id(d) in {id(v) for v in gpu_closure._reachable_gpu_arrays(method)}
        part = functools.partial(lambda x, w: x * w, w=d)
        assert id(d) in {id(v) for v in gpu_closure._reachable_gpu_arrays(part)}

        originals: dict = {}
        with gpu_closure.closure_on_host(f, originals) as pairs:
            assert all(type(v._data) is np.ndarray for v in (a, b, c, e))
            assert {id(copy) for _, copy in pairs} == set(originals)
            got = f(mx.ones(3))  # computes on the host copies
        assert all(type(v._data) is StrictArray for v in (a, b, c, e))  # put back
        np.testing.assert_allclose(np.asarray(got), (1 + 0) * 1 + 2 + 4)
    _GLOBAL.clear()


def test_budgets_and_replaced_arrays(monkeypatch):
    with backend.use_strict_gpu():
        w = mx.array(np.ones(4, np.float32)).to(mx.gpu)
        many = [[i] for i in range(50)]  # fifty objects to visit

        def f():
            return w, many

        monkeypatch.setattr(gpu_closure, "_OBJECT_BUDGET", 10)  # past it: nothing is swapped
        assert gpu_closure._reachable_gpu_arrays(f) is None
        monkeypatch.setattr(gpu_closure, "_OBJECT_BUDGET", 20_000)
        monkeypatch.setattr(gpu_closure, "_BYTES_BUDGET", 8)  # 16 bytes of GPU data: too many
        with gpu_closure.closure_on_host(f, {}) as pairs:
            assert pairs is None and type(w._data) is StrictArray
        monkeypatch.setattr(gpu_closure, "_BYTES_BUDGET", 1 << 28)
        with gpu_closure.closure_on_host(f, {}) as pairs:
            w[0] = 5.0  # an update made while tracing is kept
            assert gpu_closure.replaced(pairs) == [w]
        assert type(w._data) is np.ndarray  # (the caller moves it: compile and vmap do)
        gpu_closure.back_to_gpu(w)
        assert type(w._data) is StrictArray and float(np.asarray(w)[0]) == 5.0
