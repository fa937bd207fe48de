"""``program_gpu.gpu_namespace``: a compiled program's host namespace as the GPU replay's, each
mapping checked on the strict CuPy stand-in against NumPy on the host (the GPU library lacks
most ufunc methods; constants, draws and array constructors must land on the GPU)."""

from __future__ import annotations

import numpy as np
import pytest

from chainrule.core import backend
from chainrule.core.program_gpu import gpu_namespace
from chainrule.core.strict_backend import StrictArray, namespace
from chainrule.core.tracing import _ORIGINAL, _Draw

# these tests choose devices themselves: the CPU is the default while each runs (conftest.py)
pytestmark = pytest.mark.usefixtures("cpu_default_device")

X = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)


@pytest.fixture
def gpu():
    with backend.use_strict_gpu():
        yield


def _host(v):
    assert type(v) is StrictArray, type(v)
    return v.get()


def _mapped(fn):
    return gpu_namespace({"f": fn})["f"]


@pytest.mark.parametrize("ufunc", [np.add, np.multiply, np.maximum, np.minimum])
@pytest.mark.parametrize("kwargs", [{}, {"axis": 1, "keepdims": True}, {"axis": (0, 1)}])
def test_reduce_as_the_gpu_librarys_function(gpu, ufunc, kwargs):
    got = _mapped(ufunc.reduce)(namespace.asarray(X), **kwargs)
    np.testing.assert_allclose(_host(got), ufunc.reduce(X, **kwargs), rtol=1e-6)


def test_reduce_of_booleans_with_out_and_the_host_fallback(gpu):
    b = X > 0
    for ufunc in (np.logical_and, np.logical_or):
        got = _mapped(ufunc.reduce)(namespace.asarray(b), 1)
        np.testing.assert_array_equal(_host(got), ufunc.reduce(b, 1))
    out = namespace.zeros(4, np.float32)
    assert _mapped(np.add.reduce)(namespace.asarray(X), 0, None, out) is out
    np.testing.assert_allclose(_host(out), X.sum(0), rtol=1e-6)
    # a ufunc without a GPU function (and initial=): explicit host copies, the result back
    got = _mapped(np.hypot.reduce)(namespace.asarray(X), 1)
    np.testing.assert_allclose(_host(got), np.hypot.reduce(X, 1), rtol=1e-6)
    out = namespace.zeros(3, np.float32)
    _mapped(np.maximum.reduce)(namespace.asarray(X), 1, None, out, False, initial=0.5)
    np.testing.assert_allclose(_host(out), np.maximum.reduce(X, 1, initial=0.5))


@pytest.mark.parametrize("ufunc", [np.add, np.multiply, np.maximum])
def test_accumulate(gpu, ufunc):
    got = _mapped(ufunc.accumulate)(namespace.asarray(X), 1)
    np.testing.assert_allclose(_host(got), ufunc.accumulate(X, 1), rtol=1e-6)


@pytest.mark.parametrize("ufunc", [np.add, np.maximum, np.negative])
def test_at_writes_into_the_gpu_array(gpu, ufunc):
    idx = np.array([0, 2, 2])
    a, want = namespace.asarray(X.copy()), X.copy()
    if ufunc is np.negative:
        _mapped(ufunc.at)(a, (namespace.asarray(idx),))
        ufunc.at(want, idx)
    else:
        v = np.ones((3, 4), np.float32)
        _mapped(ufunc.at)(a, (namespace.asarray(idx),), namespace.asarray(v))
        ufunc.at(want, idx, v)
    np.testing.assert_allclose(_host(a), want)


def test_other_methods_constructors_draws_and_constants(gpu):
    ns = gpu_namespace(
        {
            "outer": np.multiply.outer,
            "asarray": _ORIGINAL["asarray"],
            "array": _ORIGINAL["array"],
            "draw": _Draw("standard_normal"),
            "c": X,
            "n": 3,
        }
    )
    g = namespace.asarray(X[0])
    np.testing.assert_allclose(_host(ns["outer"](g, g)), np.multiply.outer(X[0], X[0]))
    np.testing.assert_array_equal(_host(ns["asarray"](g)), X[0])  # a GPU value stays there
    np.testing.assert_allclose(_host(ns["array"]([g, g])), np.stack([X[0], X[0]]))
    np.testing.assert_allclose(_host(ns["asarray"]([1.0, 2.0])), [1.0, 2.0])
    assert _host(ns["draw"]((2, 3))).shape == (2, 3)
    np.testing.assert_array_equal(_host(ns["c"]), X)
    assert ns["n"] == 3
