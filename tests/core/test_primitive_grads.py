"""Every differentiable primitive of the op table, checked against finite differences.

``TABLE`` maps each name in ``chainrule.core.ops.PRIMITIVES`` to cases; ``test_every_primitive_
has_cases`` fails when a primitive is added without one, so new rules are covered the day they
land. Each case runs ``mx.check_grads`` in float64, first and second order, forward and reverse.
Elementwise primitives run over the shapes scalar, (4,), (3, 4) and (1, 4), binary ones over every
pair of them (which covers broadcasting both ways).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import chainrule.core as mx
from chainrule.core.ops import PRIMITIVES

SHAPES = [(), (4,), (3, 4), (1, 4)]
_rng = np.random.default_rng(1234)


def uniform(shape, lo=-2.0, hi=2.0):
    return _rng.uniform(lo, hi, size=shape)


def away_from_zero(shape, lo=0.3, hi=2.0):
    return uniform(shape, lo, hi) * _rng.choice([-1.0, 1.0], size=shape)


def unary(fn, sample=uniform):
    return [(f"{shape}", fn, [sample(shape)]) for shape in SHAPES]


def binary(fn, sample_a=uniform, sample_b=uniform):
    return [
        (f"{sa}x{sb}", fn, [sample_a(sa), sample_b(sb)])
        for sa, sb in itertools.product(SHAPES, SHAPES)
    ]


def positive(lo, hi):
    return lambda shape: uniform(shape, lo, hi)


def reduction(fn_of_axis):
    """A reduction over several shapes, axes and keepdims."""
    cases = [("scalar", fn_of_axis(None, False), [uniform(())])]
    for shape, axis, keepdims in [
        ((4,), None, False),
        ((4,), 0, True),
        ((3, 4), None, False),
        ((3, 4), 0, False),
        ((3, 4), -1, True),
        ((1, 4), 0, False),
        ((2, 3, 4), (0, 2), False),
        ((2, 3, 4), (1, 2), True),
    ]:
        cases.append((f"{shape}-{axis}-{keepdims}", fn_of_axis(axis, keepdims), [uniform(shape)]))
    return cases


def well_conditioned(shape):
    """Matrices with a dominant diagonal (for inverses and solves)."""
    return uniform(shape, -0.5, 0.5) + 2.0 * np.eye(shape[-1])


def spd_plus_noise(shape):
    """Symmetric positive-definite matrices plus a nonsymmetric part the factor does not read."""
    a = uniform(shape, -0.5, 0.5)
    return a @ np.swapaxes(a, -1, -2) + 2.0 * np.eye(shape[-1]) + np.triu(uniform(shape), 1)


def complex_mix(x, y):
    """A real function of real inputs that goes through complex values."""
    z = (x + y * 1j) * (0.5 - 2j)
    return z


def nested_grad(x):
    # the inner grad wraps x in an identity tracer whose parent is x's own node
    return mx.grad(lambda y: (mx.sin(y) * y * x).sum())(x)


INT_IDX = mx.array([2, 0, 2, 1])  # repeats: the vjp must accumulate

TABLE: dict[str, list] = {
    # elementwise, one input
    "abs": unary(mx.abs, away_from_zero),
    "negative": unary(mx.negative),
    "square": unary(mx.square),
    "sqrt": unary(mx.sqrt, positive(0.3, 2.0)),
    "rsqrt": unary(mx.rsqrt, positive(0.3, 2.0)),
    "reciprocal": unary(mx.reciprocal, away_from_zero),
    "exp": unary(mx.exp),
    "expm1": unary(mx.expm1),
    "log": unary(mx.log, positive(0.3, 3.0)),
    "log1p": unary(mx.log1p, positive(-0.5, 2.0)),
    "sin": unary(mx.sin),
    "cos": unary(mx.cos),
    "tan": unary(mx.tan, positive(-1.2, 1.2)),
    "arcsin": unary(mx.arcsin, positive(-0.8, 0.8)),
    "arccos": unary(mx.arccos, positive(-0.8, 0.8)),
    "arctan": unary(mx.arctan),
    "sinh": unary(mx.sinh),
    "cosh": unary(mx.cosh),
    "tanh": unary(mx.tanh),
    "arcsinh": unary(mx.arcsinh),
    "arccosh": unary(mx.arccosh, positive(1.2, 3.0)),
    "arctanh": unary(mx.arctanh, positive(-0.8, 0.8)),
    "sigmoid": unary(mx.sigmoid, positive(-4.0, 4.0)),
    "erf": unary(mx.erf),
    "erfinv": unary(mx.erfinv, positive(-0.8, 0.8)),
    "degrees": unary(mx.degrees),
    "radians": unary(mx.radians),
    "nan_to_num": unary(lambda x: mx.nan_to_num(x) * x),
    "identity": unary(nested_grad),
    "astype": [
        (f"{s}-complex", lambda x: mx.real(mx.astype(x, mx.complex128)) * x, [uniform(s)])
        for s in SHAPES
    ],
    "conj": binary(lambda x, y: mx.real(mx.conj(complex_mix(x, y)) * (1 + 1j))),
    "real": binary(lambda x, y: mx.real(complex_mix(x, y)) * x),
    "imag": binary(lambda x, y: mx.imag(complex_mix(x, y)) * y),
    # elementwise, two inputs (every broadcasting pair)
    "add": binary(mx.add),
    "subtract": binary(mx.subtract),
    "multiply": binary(mx.multiply),
    "divide": binary(mx.divide, uniform, away_from_zero),
    "power": binary(mx.power, positive(0.5, 2.0), uniform),
    "maximum": binary(mx.maximum),
    "minimum": binary(mx.minimum),
    "arctan2": binary(mx.arctan2, away_from_zero, away_from_zero),
    "logaddexp": binary(mx.logaddexp),
    "remainder": binary(mx.remainder, positive(2.2, 2.8), positive(1.5, 1.8)),
    "where": binary(lambda x, y: mx.where(x > 0.3, x * y, y)),
    # reductions and scans
    "sum": reduction(lambda axis, kd: lambda x: mx.sum(x, axis=axis, keepdims=kd)),
    "prod": reduction(lambda axis, kd: lambda x: mx.prod(x, axis=axis, keepdims=kd))
    + [
        ("one-zero", lambda x: mx.prod(x, axis=-1), [np.array([[2.0, 0.0, 3.0], [1.0, 2, 3]])]),
        ("two-zeros", lambda x: mx.prod(x), [np.array([2.0, 0.0, 0.0, 1.5])]),
    ],
    "max": reduction(lambda axis, kd: lambda x: mx.max(x, axis=axis, keepdims=kd)),
    "min": reduction(lambda axis, kd: lambda x: mx.min(x, axis=axis, keepdims=kd)),
    "logsumexp": reduction(lambda axis, kd: lambda x: mx.logsumexp(x, axis=axis, keepdims=kd)),
    "cumsum": [
        (
            f"{axis}-{rev}-{inc}",
            lambda x, a=axis, r=rev, i=inc: mx.cumsum(x, a, r, i),
            [uniform((3, 4))],
        )
        for axis, rev, inc in itertools.product([None, 0, -1], [False, True], [False, True])
    ],
    "cumprod": [
        (
            f"{axis}-{rev}-{inc}",
            lambda x, a=axis, r=rev, i=inc: mx.cumprod(x, a, r, i),
            [uniform((3, 4))],
        )
        for axis, rev, inc in itertools.product([None, 0, -1], [False, True], [False, True])
    ]
    + [
        (
            f"zeros-{rev}-{inc}",
            lambda x, r=rev, i=inc: mx.cumprod(x, -1, r, i),
            [np.array([[2.0, 0.0, 3.0, 0.0, 1.5], [1.0, 2.0, 0.5, -1.0, 0.0]])],
        )
        for rev, inc in itertools.product([False, True], [False, True])
    ],
    "logcumsumexp": [
        (
            f"{axis}-{rev}",
            lambda x, a=axis, r=rev: mx.logcumsumexp(x, a, r),
            [uniform((3, 4))],
        )
        for axis, rev in itertools.product([None, 0, -1], [False, True])
    ]
    + [
        ("exclusive", lambda x: mx.logcumsumexp(x, 1, inclusive=False)[:, 1:], [uniform((3, 4))]),
        ("scalar", lambda x: mx.logcumsumexp(x), [uniform(())]),
        ("(1,4)", lambda x: mx.logcumsumexp(x, 0), [uniform((1, 4))]),
    ],
    "hadamard_transform": [
        ("(4,)", lambda x: mx.hadamard_transform(x) * x, [uniform((4,))]),
        ("(3,8)", lambda x: mx.hadamard_transform(x, scale=0.3), [uniform((3, 8))]),
        ("(1,4)", lambda x: mx.hadamard_transform(x) ** 2, [uniform((1, 4))]),
        ("scalar", lambda x: mx.hadamard_transform(x, scale=2.0) * x, [uniform(())]),
        # Sloane's order-20 matrix is not symmetric: the gradient applies its transpose
        ("(2,40)", lambda x: mx.hadamard_transform(x, scale=0.3) * x, [uniform((2, 40))]),
        ("(12,)", lambda x: mx.hadamard_transform(x) ** 2, [uniform((12,))]),
    ],
    # linear algebra
    "addmm": [
        ("(4,)+(3,5)@(5,4)", mx.addmm, [uniform((4,)), uniform((3, 5)), uniform((5, 4))]),
        (
            "scaled (3,4)+(2,3,5)@(5,4)",
            lambda c, a, b: mx.addmm(c, a, b, alpha=0.5, beta=-2.0),
            [uniform((3, 4)), uniform((2, 3, 5)), uniform((5, 4))],
        ),
    ],
    "matmul": [
        (f"{sa}@{sb}", mx.matmul, [uniform(sa), uniform(sb)])
        for sa, sb in [
            ((4,), (4,)),
            ((3, 4), (4,)),
            ((4,), (4, 2)),
            ((3, 4), (4, 2)),
            ((2, 3, 4), (4, 5)),
            ((1, 3, 4), (2, 4, 5)),
            ((2, 3, 4), (2, 4, 5)),
            ((4,), (2, 4, 5)),
        ]
    ],
    "einsum": [
        (spec, lambda *xs, s=spec: mx.einsum(s, *xs), [uniform(sh) for sh in shapes])
        for spec, shapes in [
            ("ij,jk->ik", [(3, 4), (4, 2)]),
            ("ij,ij->", [(3, 4), (3, 4)]),
            ("i,j->ij", [(3,), (4,)]),
            ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
            ("ij->ji", [(3, 4)]),
            ("ij->i", [(3, 4)]),
            ("ij,jk,k->i", [(3, 4), (4, 2), (2,)]),
            ("ii->", [(3, 3)]),
            ("iij->j", [(3, 3, 2)]),
            ("ii,i->i", [(3, 3), (3,)]),
            ("...ij,...jk->...ik", [(2, 3, 4), (4, 5)]),
            ("i...->...", [(2, 3, 4)]),
            ("ij,j->i", [(3, 4), (1,)]),
            ("ij,j->i", [(3, 1), (4,)]),
        ]
    ],
    # mx.fft (real parts of transforms of real inputs: every complex convention agrees there)
    "fft": [
        ("fft-(4,)", lambda x: mx.real(mx.fft.fft(x)), [uniform((4,))]),
        ("fft-(1,4)", lambda x: mx.real(mx.fft.fft(x)) * x, [uniform((1, 4))]),
        ("ifft-axis0", lambda x: mx.real(mx.fft.ifft(x, axis=0, norm="ortho")), [uniform((3, 4))]),
        ("fftn-s", lambda x: mx.real(mx.fft.fftn(x, s=(4, 3))) ** 2, [uniform((3, 4))]),
        ("rfft-even", lambda x: mx.real(mx.fft.rfft(x)) * x[:, :3], [uniform((3, 4))]),
        ("rfft-odd", lambda x: mx.real(mx.fft.rfft(x, n=5)), [uniform((3, 4))]),
        ("rfft2", lambda x: mx.real(mx.fft.rfft2(x, norm="forward")), [uniform((3, 5))]),
        ("irfft", lambda x: mx.fft.irfft(x), [uniform((3, 4))]),
        ("irfft-odd", lambda x: mx.fft.irfft(x, n=7), [uniform((3, 4))]),
        ("irfftn", lambda x: mx.fft.irfftn(x, axes=(0, 1)), [uniform((3, 4))]),
    ],
    # mx.linalg (well-conditioned matrices; the symmetric ones read one triangle only)
    "linalg_inv": [
        ("(3,3)", mx.linalg.inv, [well_conditioned((3, 3))]),
        ("tri", lambda x: mx.linalg.tri_inv(x, upper=True), [well_conditioned((3, 3))]),
        ("(2,3,3)", mx.linalg.inv, [well_conditioned((2, 3, 3))]),
    ],
    "linalg_solve": [
        (f"{sa}-{sb}", mx.linalg.solve, [well_conditioned(sa), uniform(sb)])
        for sa, sb in [((3, 3), (3,)), ((3, 3), (3, 2)), ((2, 3, 3), (3,)), ((3, 3), (2, 3, 1))]
    ]
    + [
        (
            "triangular",
            lambda a, b: mx.linalg.solve_triangular(a, b, upper=False),
            [well_conditioned((3, 3)), uniform((3, 2))],
        )
    ],
    "linalg_cholesky": [
        ("of x x^T", lambda x: mx.linalg.cholesky(x @ x.T + 2 * mx.eye(3)), [uniform((3, 3))]),
        ("upper", lambda x: mx.linalg.cholesky(x, upper=True), [spd_plus_noise((3, 3)).T]),
        ("inv", lambda x: mx.linalg.cholesky_inv(mx.linalg.cholesky(x)), [spd_plus_noise((3, 3))]),
        ("(2,3,3)", mx.linalg.cholesky, [spd_plus_noise((2, 3, 3))]),
    ],
    "linalg_eigvalsh": [
        ("L", mx.linalg.eigvalsh, [uniform((3, 3))]),
        ("U", lambda x: mx.linalg.eigvalsh(x, UPLO="U"), [uniform((3, 3))]),
        ("(2,3,3)", lambda x: mx.linalg.eigh(x)[0], [uniform((2, 3, 3))]),
    ],
    "linalg_eigh": [
        ("L", lambda x: mx.linalg.eigh(x)[1] ** 2, [uniform((3, 3))]),
        ("U", lambda x: mx.linalg.eigh(x, UPLO="U")[1] ** 2, [uniform((3, 3))]),
        ("(2,3,3)", lambda x: mx.linalg.eigh(x)[1] ** 2, [uniform((2, 3, 3))]),
    ],
    "linalg_det": [
        ("(3,3)", mx.linalg.det, [uniform((3, 3))]),
        ("(2,3,3)", mx.linalg.det, [uniform((2, 3, 3))]),
    ],
    "linalg_logabsdet": [
        ("(3,3)", lambda x: mx.linalg.slogdet(x)[1], [uniform((3, 3))]),
        ("(2,3,3)", lambda x: mx.linalg.slogdet(x)[1], [well_conditioned((2, 3, 3))]),
    ],
    # shapes and selection
    "reshape": [
        ("flat", lambda x: mx.reshape(x, (-1,)) * mx.arange(12), [uniform((3, 4))]),
        ("3d", lambda x: mx.reshape(x, (2, 2, 3)), [uniform((3, 4))]),
        ("scalar", lambda x: mx.reshape(x, (1, 1)), [uniform(())]),
    ],
    "transpose": [
        ("2d", lambda x: mx.transpose(x), [uniform((3, 4))]),
        ("3d", lambda x: mx.transpose(x, (1, 2, 0)), [uniform((2, 3, 4))]),
        ("swap", lambda x: mx.swapaxes(x, 0, -1), [uniform((2, 3, 4))]),
    ],
    "contiguous": [
        ("of a transpose", lambda x: mx.contiguous(mx.transpose(x)) * x.T, [uniform((3, 4))]),
    ],
    "broadcast_to": [
        (
            f"{s}",
            lambda x: mx.broadcast_to(x, (2, 3, 4)) * mx.arange(24).reshape(2, 3, 4),
            [uniform(s)],
        )
        for s in [(), (4,), (3, 1), (1, 3, 4)]
    ],
    "concatenate": [
        (
            "axis0",
            lambda x, y: mx.concatenate([x, y, x], axis=0),
            [uniform((2, 4)), uniform((3, 4))],
        ),
        ("axis1", lambda x, y: mx.concatenate([x, y], axis=1), [uniform((3, 2)), uniform((3, 4))]),
        ("none", lambda x, y: mx.concatenate([x, y], axis=None), [uniform((2, 2)), uniform((3,))]),
        ("stack", lambda x, y: mx.stack([x, y], axis=1), [uniform((3, 4)), uniform((3, 4))]),
    ],
    "as_strided": [
        ("windows", lambda x: mx.as_strided(x, (3, 3), (1, 1)) ** 2, [uniform((5,))]),
        (
            "reversed",
            lambda x: mx.as_strided(x, (12,), (-1,), 11) * x.reshape(-1),
            [uniform((3, 4))],
        ),
        ("overlap", lambda x: mx.as_strided(x, (2, 3), (1, 1), 0), [uniform((1, 4))]),
    ],
    "pad": [
        ("1d", lambda x: mx.pad(x, (1, 2)), [uniform((4,))]),
        ("2d", lambda x: mx.pad(x, [(0, 1), (2, 0)], constant_values=3.0), [uniform((3, 4))]),
        ("edge", lambda x: mx.pad(x, 2, mode="edge"), [uniform((3, 4))]),
        ("reflect", lambda x: mx.pad(x, [(5, 2), (1, 3)], mode="reflect"), [uniform((3, 4))]),
        ("symmetric", lambda x: mx.pad(x, 3, mode="symmetric") ** 2, [uniform((3, 4))]),
    ],
    "getitem": [
        ("int", lambda x: x[1], [uniform((3, 4))]),
        ("slice", lambda x: x[:, 1:3], [uniform((3, 4))]),
        ("step", lambda x: x[::-2, None, ...], [uniform((3, 4))]),
        ("mask", lambda x: x[x > 0], [uniform((3, 4))]),
        ("int-array", lambda x: x[INT_IDX], [uniform((4, 2))]),
        ("pair", lambda x: x[INT_IDX, mx.array([0, 1, 0, 0])], [uniform((3, 2))]),
        ("take", lambda x: mx.take(x, INT_IDX, axis=1), [uniform((2, 3))]),
        ("take_along", lambda x: mx.take_along_axis(x, mx.argsort(x, 1), 1), [uniform((3, 4))]),
        ("sort", lambda x: mx.sort(x, axis=0), [uniform((3, 4))]),
    ],
    "index_update": [
        ("int", lambda x, v: _setitem(x, 1, v), [uniform((3, 4)), uniform((4,))]),
        (
            "slice-bcast",
            lambda x, v: _setitem(x, (slice(None), 2), v),
            [uniform((3, 4)), uniform(())],
        ),
        (
            "int-array",
            lambda x, v: _setitem(x, mx.array([2, 0]), v),
            [uniform((3, 4)), uniform((2, 4))],
        ),
        ("mask", lambda x, v: _setitem(x, x > 0.5, v), [uniform((3, 4)), uniform(())]),
        (
            "slice_update",
            lambda x, v: mx.slice_update(x, v, mx.array([1]), [1]),
            [uniform((3, 4)), uniform((3, 2))],
        ),
        (
            "put_along",
            lambda x, v: mx.put_along_axis(x, mx.array([[1], [0], [3]]), v, 1),
            [uniform((3, 4)), uniform((3, 1))],
        ),
    ],
    "masked_scatter": [
        (
            "rows",
            lambda x, v: _setitem(x, mx.array([[True, False, True, True], [False] * 4]), v),
            [uniform((2, 4)), uniform((4,))],
        ),
        ("fill", lambda x, v: _setitem(x, x > 0.3, v), [uniform((3, 4)), uniform(())]),
        (
            "row-blocks",
            lambda x, v: _setitem(x, mx.array([True, False, True]), v),
            [uniform((3, 4)), uniform((2, 4))],
        ),
        ("(1,4)", lambda x, v: _setitem(x, x < 0, v), [uniform((1, 4)), uniform((4,))]),
    ],
    "scatter_add": [
        ("repeat", lambda x, v: x.at[INT_IDX].add(v), [uniform((3, 2)), uniform((4, 2))]),
        ("bcast", lambda x, v: x.at[INT_IDX].add(v), [uniform((3, 2)), uniform(())]),
        ("slice", lambda x, v: x.at[1:].subtract(v * v), [uniform((3,)), uniform((2,))]),
        ("pair", lambda x, v: x.at[INT_IDX, 1].add(v), [uniform((3, 2)), uniform((4,))]),
    ],
}


def _windows(kernel, stride, dilation=None):
    from chainrule.core.extend import sliding_windows

    return lambda x: sliding_windows(x, kernel, stride, dilation) ** 2


def _conv_input(spatial, stride, lo, hi, kdil, idil, groups, flip):
    from chainrule.core.conv import conv_input_prim

    params = (spatial, stride, lo, hi, kdil, idil, groups, flip)
    return lambda g, w: conv_input_prim(g, w, *params) ** 2


def _pool(kind, kernel, stride, dilation, first=None):
    from chainrule.core.pooling import pool_max, pool_sum

    if kind == "max":
        return lambda x: pool_max(x, kernel, stride, dilation, first) ** 2
    return lambda x: pool_sum(x, kernel, stride, dilation) ** 2


# convolution (one primitive: every stride, padding, dilation, group and flip; 1-3 d) and the
# window primitives of pooling (overlapping and disjoint windows)
TABLE.update(
    {
        "conv": [
            ("1d", lambda x, w: mx.conv1d(x, w) ** 2, [uniform((2, 6, 2)), uniform((3, 3, 2))]),
            (
                "2d-stride-pad",
                lambda x, w: mx.conv2d(x, w, stride=2, padding=1),
                [uniform((2, 5, 5, 2)), uniform((3, 3, 3, 2))],
            ),
            (
                "2d-groups-dilation",
                lambda x, w: mx.conv2d(x, w, dilation=(2, 1), groups=2) * x[:, :1, :1, :1],
                [uniform((1, 5, 4, 4)), uniform((4, 2, 2, 2))],
            ),
            (
                "general-asym-idil-flip",
                lambda x, w: mx.conv_general(
                    x,
                    w,
                    stride=(2, 1),
                    padding=([1, -1], [2, 0]),
                    kernel_dilation=(1, 2),
                    input_dilation=(2, 1),
                    flip=True,
                ),
                [uniform((1, 3, 6, 2)), uniform((2, 2, 2, 2))],
            ),
            (
                "3d",
                lambda x, w: mx.conv3d(x, w, stride=(1, 2, 1), padding=(0, 1, 0)),
                [uniform((1, 3, 3, 3, 1)), uniform((2, 2, 2, 2, 1))],
            ),
            (
                "transpose2d",
                lambda x, w: mx.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1),
                [uniform((1, 3, 3, 2)), uniform((2, 3, 3, 2))],
            ),
        ],
        "conv_weight": [
            (
                "stride-groups",
                lambda x, g: (
                    mx.grad(
                        lambda w: (mx.conv2d(x, w, stride=(2, 1), padding=1, groups=2) * g).sum()
                    )(mx.ones((4, 2, 3, 2), dtype=x.dtype))
                    ** 2
                ),
                [uniform((2, 5, 4, 4)), uniform((2, 3, 4, 4))],
            ),
            (
                "transpose1d",
                lambda x, g: (
                    mx.grad(lambda w: (mx.conv_transpose1d(x, w, stride=2) * g).sum())(
                        mx.ones((2, 3, 2), dtype=x.dtype)
                    )
                    * x[0, 0, 0]
                ),
                [uniform((1, 3, 2)), uniform((1, 7, 2))],
            ),
        ],
        "conv_input": [
            (
                "stride-groups-flip",
                _conv_input((5, 4), (2, 1), (1, 0), (0, 1), (1, 2), (1, 1), 2, True),
                [uniform((2, 2, 3, 4)), uniform((4, 3, 2, 1))],
            ),
            (
                "input-dilation",
                _conv_input((4,), (1,), (1,), (2,), (1,), (2,), 1, False),
                [uniform((1, 9, 3)), uniform((3, 2, 2))],
            ),
        ],
        "pool_max": [
            (
                "first-overlapping",
                _pool("max", (3, 2), (2, 1), (1, 2), True),
                [uniform((2, 7, 5, 2))],
            ),
            (
                "shared-disjoint",
                _pool("max", (2, 2), (2, 2), (1, 1), False),
                [uniform((1, 4, 6, 3))],
            ),
            ("1d", _pool("max", (3,), (1,), (1,), True), [uniform((2, 6, 2))]),
        ],
        "pool_sum": [
            ("overlapping", _pool("sum", (2, 3), (1, 2), (2, 1)), [uniform((2, 5, 7, 2))]),
            ("3d", _pool("sum", (2, 2, 2), (2, 2, 2), (1, 1, 1)), [uniform((1, 4, 4, 4, 1))]),
        ],
        "sliding_windows": [
            ("overlapping", _windows((3, 2), (1, 2), (1, 2)), [uniform((2, 5, 6, 2))]),
            ("disjoint", _windows((2, 2), (2, 3)), [uniform((1, 5, 6, 2))]),
            ("1d", _windows((2,), (1,)), [uniform((2, 5, 3))]),
        ],
        "window_sum": [
            ("of-windows", lambda x: mx.sin(_windows((2, 2), (1, 1))(x)), [uniform((1, 4, 4, 1))]),
        ],
    }
)

# Python scalars on either side are constants of the graph (kept as scalars by the engine)
SCALAR_CASES = {
    "add": [lambda x: 1.5 + x, lambda x: x + 2],
    "subtract": [lambda x: 1.5 - x, lambda x: x - 2],
    "multiply": [lambda x: 1.5 * x, lambda x: x * 3],
    "divide": [lambda x: 1.5 / (x * x + 1), lambda x: x / 4],
    "power": [lambda x: 2.0**x, lambda x: (x * x + 1) ** 1.5, lambda x: x**3, lambda x: 3**x],
    "maximum": [lambda x: mx.maximum(0.3, x), lambda x: mx.maximum(x, -0.2)],
    "minimum": [lambda x: mx.minimum(0.3, x), lambda x: mx.minimum(x, -0.2)],
    "arctan2": [lambda x: mx.arctan2(1.5, x), lambda x: mx.arctan2(x, -2.0)],
    "logaddexp": [lambda x: mx.logaddexp(0.5, x), lambda x: mx.logaddexp(x, 1)],
    "remainder": [
        lambda x: mx.remainder(x * 0.1 + 2.5, 1.7),
        lambda x: mx.remainder(4.1, x * 0.1 + 1.6),
    ],
    "where": [lambda x: mx.where(x > 0.3, x, 2.0), lambda x: mx.where(x > 0.3, -1, x * x)],
}
for _name, _fns in SCALAR_CASES.items():
    TABLE[_name] = TABLE[_name] + [
        (f"scalar{i}", fn, [uniform((3, 4))]) for i, fn in enumerate(_fns)
    ]


def _bn(eps, *, weight=True, bias=True, lead=0):
    from chainrule.core.ops.normalization import batch_norm_train

    def fn(x, *wb):
        w = wb[0] if weight else None
        b = wb[-1] if bias else None
        return batch_norm_train(x, w, b, eps, lead)[0] ** 2

    return fn


# training-mode batch norm (one primitive: statistics over every axis but the last)
TABLE["batch_norm_train"] = [
    ("plain-2d", _bn(1e-3, weight=False, bias=False), [uniform((5, 3))]),
    ("weight-only-3d", _bn(1e-2, bias=False), [uniform((2, 3, 4)), uniform((4,))]),
    ("bias-only", _bn(1e-3, weight=False), [uniform((6, 2)), uniform((2,))]),
    ("per-sample", _bn(1e-3, weight=False, bias=False, lead=1), [uniform((2, 3, 2, 2))]),
    ("affine-4d", _bn(1e-3), [uniform((2, 3, 2, 3)), uniform((3,)), uniform((3,))]),
]


def _bias_add(y, b):
    from chainrule.core.ops.normalization import bias_add

    return bias_add(y, b) ** 2


# a per-channel bias over the last axis (convolution layers)
TABLE["bias_add"] = [
    ("rows", _bias_add, [uniform((5, 3)), uniform((3,))]),
    ("4d", _bias_add, [uniform((2, 3, 2, 4)), uniform((4,))]),
]


def _rope(traditional, dims, offset=3):
    def fn(x):
        y = mx.fast.rope(x, dims, traditional=traditional, base=100.0, scale=0.7, offset=offset)
        return y * x

    return fn


# mx.fast.rope with constant angles: one primitive (its rule rotates by minus the angles)
TABLE["rope"] = [
    ("traditional-3d", _rope(True, 4), [uniform((2, 3, 4))]),
    ("halves-partial-4d", _rope(False, 4, 1), [uniform((2, 2, 3, 6))]),
    ("offsets-per-example", _rope(True, 2, mx.array([0, 5])), [uniform((2, 1, 3, 4))]),
    ("5d", _rope(False, 2), [uniform((1, 2, 2, 3, 2))]),
]


def _rms(eps):
    return lambda x, w: mx.fast.rms_norm(x, w, eps) * x


def _ln(eps):
    return lambda x, w, b: mx.fast.layer_norm(x, w, b, eps) * x


# mx.fast.layer_norm with a weight and a bias: one primitive
TABLE["layer_norm"] = [
    ("rows", _ln(1e-5), [uniform((3, 4)), uniform((4,)), uniform((4,))]),
    ("3d-large-eps", _ln(0.5), [uniform((2, 3, 4)), uniform((4,)), uniform((4,))]),
    ("vector", _ln(1e-3), [uniform((4,)), uniform((4,)), uniform((4,))]),
]


# mx.fast.rms_norm with a weight: one primitive
TABLE["rms_norm"] = [
    ("rows", _rms(1e-5), [uniform((3, 4)), uniform((4,))]),
    ("3d-large-eps", _rms(0.5), [uniform((2, 3, 4)), uniform((4,))]),
    ("vector", _rms(1e-3), [uniform((4,)), uniform((4,))]),
]


# softmax over float values: one primitive (its rule is s * (g - sum(g s)))
TABLE["softmax"] = [
    ("last-axis", lambda x: mx.softmax(x, axis=-1) * x, [uniform((3, 4))]),
    ("all-axes", lambda x: mx.softmax(x) * x, [uniform((3, 4))]),
    ("two-axes-3d", lambda x: mx.softmax(x, axis=(0, 2)) * x, [uniform((2, 3, 4))]),
    ("vector", lambda x: mx.softmax(x, axis=0) ** 2, [uniform((4,))]),
]

# log_softmax over float values: one primitive (its rule is g - softmax * sum(g)); the PyTorch
# form (NaN rows for +inf) is the same primitive with mlx_inf=False
TABLE["log_softmax"] = [
    ("last-axis", lambda x: mx.log_softmax(x, axis=-1) * x, [uniform((3, 4))]),
    ("all-axes", lambda x: mx.log_softmax(x) * x, [uniform((3, 4))]),
    ("two-axes-3d", lambda x: mx.log_softmax(x, axis=(0, 2)) * x, [uniform((2, 3, 4))]),
    ("vector", lambda x: mx.log_softmax(x, axis=0) ** 2, [uniform((4,))]),
]


def _setitem(x, idx, v):
    y = x * 1.0
    y[idx] = v
    return y * x


CASES = [
    pytest.param(fn, args, id=f"{name}-{label}")
    for name, cases in TABLE.items()
    for label, fn, args in cases
]


def test_every_primitive_has_cases():
    missing = sorted(set(PRIMITIVES) - set(TABLE))
    assert not missing, f"primitives without gradient checks: {missing}; add them to TABLE"
    unknown = sorted(set(TABLE) - set(PRIMITIVES))
    assert not unknown, f"TABLE names that are not primitives: {unknown}"


@pytest.mark.parametrize("fn,args", CASES)
def test_primitive_gradients(fn, args):
    mx.check_grads(fn, [mx.array(a, dtype=mx.float64) for a in args], order=2)


def test_astype_between_float_widths():
    # float32 rounding limits the finite differences, hence the large step and loose tolerance
    fn = lambda x: mx.astype(x, mx.float32) * mx.array([1.0, -2.0, 0.5])  # noqa: E731
    mx.check_grads(fn, [mx.array([0.3, 1.2, -0.7])], order=1, eps=1e-2, rtol=1e-3, atol=1e-3)
    g = mx.grad(lambda x: mx.astype(x, mx.float16).sum())(mx.array([1.0, 2.0]))
    assert g.dtype == mx.float32
    assert np.array_equal(g.numpy(), [1.0, 1.0])


@pytest.mark.parametrize("exponent", [2, 2.0, 3, 0.5])
def test_power_by_a_python_number(exponent):
    # the square's rule takes a shortcut (g * 2 * x, one op fewer): same values, any order
    x = mx.array([0.3, 1.7, 2.5], dtype=mx.float64)
    mx.check_grads(lambda v: v**exponent, [x], order=2)
    g = mx.grad(lambda v: (v**exponent).sum())(x)
    xs = np.array([0.3, 1.7, 2.5])
    np.testing.assert_allclose(g.numpy(), exponent * xs ** (exponent - 1), rtol=1e-12)
