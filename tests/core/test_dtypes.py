"""Data types: names, sizes, limits, categories and complex parts."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule.core as mx

SIZES = {
    "bool_": 1,
    "int8": 1,
    "int16": 2,
    "int32": 4,
    "int64": 8,
    "uint8": 1,
    "uint16": 2,
    "uint32": 4,
    "uint64": 8,
    "float16": 2,
    "float32": 4,
    "float64": 8,
    "complex64": 8,
}


@pytest.mark.parametrize("name,size", SIZES.items())
def test_every_dtype_has_its_size_and_makes_arrays(name, size):
    dt = getattr(mx, name)
    assert dt.size == size
    a = mx.zeros((2,), dtype=dt)
    assert a.dtype == dt
    assert a.itemsize == size
    assert str(dt) == name.rstrip("_")
    assert mx.array([1, 0], dtype=dt).astype(mx.float32).tolist() == [1.0, 0.0]


def test_finfo_and_iinfo():
    f32 = mx.finfo(mx.float32)
    assert f32.eps == pytest.approx(np.finfo(np.float32).eps)
    assert f32.max == pytest.approx(np.finfo(np.float32).max)
    assert f32.min == -f32.max
    assert f32.dtype == mx.float32
    assert mx.finfo(mx.float16).eps == pytest.approx(2**-10)
    assert mx.finfo(mx.float64).bits == 64
    i8 = mx.iinfo(mx.int8)
    assert (i8.min, i8.max) == (-128, 127)
    assert mx.iinfo(mx.uint32).max == 2**32 - 1
    assert mx.iinfo(mx.int32).dtype == mx.int32


def test_issubdtype_categories():
    assert mx.issubdtype(mx.float32, mx.floating)
    assert mx.issubdtype(mx.float16, mx.inexact)
    assert mx.issubdtype(mx.int8, mx.signedinteger)
    assert mx.issubdtype(mx.uint8, mx.unsignedinteger)
    assert mx.issubdtype(mx.int32, mx.integer)
    assert not mx.issubdtype(mx.int32, mx.floating)
    assert mx.issubdtype(mx.complex64, mx.complexfloating)
    assert mx.issubdtype(mx.floating, mx.number)
    assert mx.issubdtype(mx.float32, mx.float32)
    assert not mx.issubdtype(mx.float32, mx.float16)


def test_real_imag_conj():
    z = mx.array([1 + 2j, -3 - 4j])
    assert z.dtype == mx.complex64
    assert mx.real(z).tolist() == [1.0, -3.0] and mx.real(z).dtype == mx.float32
    assert mx.imag(z).tolist() == [2.0, -4.0]
    assert mx.conj(z).tolist() == [1 - 2j, -3 + 4j]
    assert z.real.tolist() == [1.0, -3.0] and z.imag.tolist() == [2.0, -4.0]
    assert mx.abs(z).tolist() == pytest.approx([5**0.5, 5.0])
    assert mx.astype(z, mx.float32).tolist() == [1.0, -3.0]  # the real part
    x = mx.array([1.0, 2.0])
    assert mx.real(x).tolist() == [1.0, 2.0] and mx.imag(x).tolist() == [0.0, 0.0]
    assert (x * 1j).dtype == mx.complex64


def test_gradient_through_complex_values():
    # f(x, y) = |(x + iy)|^2 = x^2 + y^2
    def f(x, y):
        z = x + y * 1j
        return (mx.real(z * mx.conj(z))).sum()

    gx, gy = mx.grad(f, argnums=(0, 1))(mx.array([1.0, 2.0]), mx.array([3.0, -1.0]))
    assert gx.tolist() == [2.0, 4.0] and gy.tolist() == [6.0, -2.0]
