"""chainrule.core.conv: convolutions against a direct NumPy loop, PyTorch and finite differences."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import chainrule.core as mx


def _np_conv_general(x, w, stride, lo, hi, kdil, idil, groups, flip):
    """Direct definition: dilate the input, pad, then sum over every window and tap."""
    nd = x.ndim - 2
    for ax in range(nd):
        d = idil[ax]
        if d > 1:
            n = x.shape[ax + 1]
            shape = list(x.shape)
            shape[ax + 1] = (n - 1) * d + 1
            y = np.zeros(shape)
            idx = [slice(None)] * x.ndim
            idx[ax + 1] = slice(None, None, d)
            y[tuple(idx)] = x
            x = y
    x = np.pad(x, [(0, 0)] + [(a, b) for a, b in zip(lo, hi)] + [(0, 0)])
    if flip:
        w = w[(slice(None),) + (slice(None, None, -1),) * nd]
    c_out, *kernel, cg = w.shape
    og = c_out // groups
    out_sp = [(x.shape[i + 1] - (kernel[i] - 1) * kdil[i] - 1) // stride[i] + 1 for i in range(nd)]
    out = np.zeros((x.shape[0], *out_sp, c_out))
    for pos in itertools.product(*(range(n) for n in out_sp)):
        for taps in itertools.product(*(range(k) for k in kernel)):
            src = tuple(p * s + t * d for p, s, t, d in zip(pos, stride, taps, kdil))
            v = x[(slice(None),) + src]  # (N, C_in)
            for g in range(groups):
                vin = v[:, g * cg : (g + 1) * cg]
                wk = w[(slice(g * og, (g + 1) * og),) + taps]  # (og, cg)
                out[(slice(None),) + pos + (slice(g * og, (g + 1) * og),)] += vin @ wk.T
    return out


GENERAL = [
    # (x shape, w shape, stride, padding argument, low pad, high pad, kdil, idil, groups, flip)
    ((2, 7, 4), (6, 3, 2), 2, 1, (1,), (1,), 1, 1, 2, False),
    ((1, 5, 6, 3), (2, 2, 3, 3), (1, 2), ([1, 0], [2, 1]), (1, 0), (2, 1), (2, 1), 1, 1, True),
    ((1, 4, 3), (3, 2, 3), 1, ([2], [1]), (2,), (1,), 1, 3, 1, False),
    ((1, 3, 4, 2, 2), (2, 2, 2, 1, 2), 1, 0, (0, 0, 0), (0, 0, 0), 1, (1, 2, 1), 1, False),
]


@pytest.mark.parametrize("case", GENERAL, ids=range(len(GENERAL)))
def test_conv_general_matches_direct_loop(case):
    xs, ws, stride, padding, lo, hi, kdil, idil, groups, flip = case
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    nd = len(xs) - 2

    def tup(v):
        return (v,) * nd if isinstance(v, int) else tuple(v)

    y = mx.conv_general(
        mx.array(x, dtype=mx.float64),
        mx.array(w, dtype=mx.float64),
        stride,
        padding,
        kdil,
        idil,
        groups,
        flip,
    )
    expect = _np_conv_general(x, w, tup(stride), lo, hi, tup(kdil), tup(idil), groups, flip)
    np.testing.assert_allclose(y.numpy(), expect, rtol=1e-10, atol=1e-12)


TORCH = [
    ("conv1d", (2, 9, 4), (6, 3, 2), dict(stride=2, padding=1, dilation=2, groups=2)),
    ("conv2d", (2, 6, 7, 3), (4, 3, 2, 3), dict(stride=(2, 1), padding=(1, 2), dilation=1)),
    (
        "conv3d",
        (1, 4, 3, 5, 2),
        (3, 2, 2, 3, 2),
        dict(stride=1, padding=(1, 0, 1), dilation=(1, 1, 2)),
    ),
    (
        "conv_transpose1d",
        (2, 5, 4),
        (3, 3, 4),
        dict(stride=3, padding=1, dilation=2, output_padding=1),
    ),
    (
        "conv_transpose2d",
        (1, 3, 4, 2),
        (5, 3, 2, 2),
        dict(stride=(2, 3), padding=(1, 0), output_padding=(1, 2)),
    ),
    ("conv_transpose3d", (1, 2, 3, 2, 2), (2, 2, 3, 2, 2), dict(stride=2, padding=1)),
    ("conv_transpose1d", (1, 4, 4), (4, 2, 2), dict(stride=2, groups=2)),
]


@pytest.mark.parametrize("name,xs,ws,kw", TORCH, ids=[t[0] + str(i) for i, t in enumerate(TORCH)])
def test_matches_torch(name, xs, ws, kw):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    y = getattr(mx, name)(mx.array(x, dtype=mx.float64), mx.array(w, dtype=mx.float64), **kw)
    tx = torch.tensor(np.moveaxis(x, -1, 1))
    if "transpose" in name:
        # ours: (C_out, *K, C_in / groups); PyTorch: (C_in, C_out / groups, *K)
        g = kw.get("groups", 1)
        og = ws[0] // g
        parts = [np.moveaxis(w[i * og : (i + 1) * og], -1, 0) for i in range(g)]
        tw = torch.tensor(np.concatenate(parts, axis=0))
    else:
        tw = torch.tensor(np.moveaxis(w, -1, 1))
    ty = getattr(torch.nn.functional, name)(tx, tw, **kw)
    np.testing.assert_allclose(y.numpy(), np.moveaxis(ty.numpy(), 1, -1), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name,xs,ws,kw", TORCH[:6], ids=[t[0] for t in TORCH[:6]])
def test_gradients_match_finite_differences(name, xs, ws, kw):
    rng = np.random.default_rng(2)
    fn = getattr(mx, name)
    mx.check_grads(
        lambda x, w: fn(x, w, **kw),
        [mx.array(rng.standard_normal(xs)), mx.array(rng.standard_normal(ws))],
        order=2 if name == "conv1d" else 1,
    )


def test_dtype_and_tape():
    x = mx.random.normal((1, 5, 5, 2)).astype(mx.float16)
    w = mx.random.normal((3, 3, 3, 2)).astype(mx.float16)
    assert mx.conv2d(x, w).dtype == mx.float16
    x = mx.random.normal((1, 5, 2))
    w = mx.array(np.ones((1, 2, 2), np.float32), requires_grad=True)
    mx.conv1d(x, w).sum().backward()
    expect = np.stack([x.numpy()[0, :4].sum(0), x.numpy()[0, 1:].sum(0)])[None]
    np.testing.assert_allclose(w.grad.numpy(), expect, rtol=1e-5)


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="channels"):
        mx.conv2d(mx.zeros((1, 4, 4, 3)), mx.zeros((2, 3, 3, 2)))
    with pytest.raises(ValueError, match="3 dimensions"):
        mx.conv1d(mx.zeros((4, 3)), mx.zeros((2, 3, 3)))
    with pytest.raises(ValueError, match="kernel"):
        mx.conv1d(mx.zeros((1, 2, 3)), mx.zeros((2, 3, 3)))
    with pytest.raises(ValueError, match="stride"):
        mx.conv2d(mx.zeros((1, 4, 4, 3)), mx.zeros((2, 3, 3, 3)), stride=0)
    with pytest.raises(ValueError, match="output_padding"):
        mx.conv_transpose1d(mx.zeros((1, 4, 3)), mx.zeros((2, 3, 3)), stride=2, output_padding=2)
    with pytest.raises(ValueError, match="groups"):
        mx.conv1d(mx.zeros((1, 5, 4)), mx.zeros((3, 3, 2)), groups=2)


def test_conv1d_of_a_4d_input_is_a_2d_convolution_as_mlx():
    rng = np.random.default_rng(0)
    x = mx.array(rng.standard_normal((1, 5, 5, 2)).astype(np.float32))
    w = mx.array(rng.standard_normal((2, 3, 3, 1)).astype(np.float32))
    np.testing.assert_allclose(
        np.asarray(mx.conv1d(x, w, groups=2)), np.asarray(mx.conv2d(x, w, groups=2)), rtol=1e-6
    )
    with pytest.raises(ValueError, match="input must have 3 dimensions"):
        mx.conv1d(mx.zeros((5, 2)), mx.zeros((2, 3, 2)))


@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize(("m", "n"), [(1, 1), (25, 5), (24, 4), (4, 24), (5, 25)])
def test_convolve_matches_numpy(m, n, mode):
    rng = np.random.default_rng(m * 100 + n)
    a, v = rng.random(m), rng.random(n)
    got = mx.convolve(mx.array(a, dtype=mx.float64), mx.array(v, dtype=mx.float64), mode=mode)
    np.testing.assert_allclose(np.asarray(got), np.convolve(a, v, mode=mode), rtol=1e-12)


def test_convolve_gradients_and_errors():
    rng = np.random.default_rng(1)
    a = mx.array(rng.random(7), dtype=mx.float64)
    v = mx.array(rng.random(3), dtype=mx.float64)
    for mode in ("full", "same", "valid"):
        mx.check_grads(lambda a, v, mode=mode: mx.convolve(a, v, mode=mode), [a, v], order=2)
    with pytest.raises(ValueError, match="mode"):
        mx.convolve(a, v, mode="wrap")
    with pytest.raises(ValueError, match="1-d"):
        mx.convolve(mx.zeros((2, 2)), v)
