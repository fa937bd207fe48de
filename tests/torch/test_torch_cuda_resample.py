"""``F.interpolate`` (anti-aliased too), ``affine_grid`` and ``fold`` on CUDA tensors, run
against the strict CuPy stand-in.

The interpolation matrices, ``affine_grid``'s base coordinates and ``fold``'s target indices are
built on the host from Python values and put once on the input's device; with the GPU backed by
``StrictArray``s (which refuse implicit conversion to NumPy and host arrays mixed in, as CuPy's
do) every result and input gradient must stay on the GPU and equal the CPU's.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pytest

import chainrule.torch as torch
import chainrule.torch.nn.functional as F
from chainrule.core import backend
from chainrule.core.strict_backend import StrictArray

# these tests choose devices themselves: the CPU is the default while each runs (conftest.py)
pytestmark = pytest.mark.usefixtures("cpu_default_device")

RNG = np.random.default_rng(0)


def _run(fn: Callable, inputs: list, device: str) -> list:
    """``fn`` on tensors of ``inputs`` made on ``device``: the output and the gradients of a
    weighted sum of it with respect to every input, each as ``(on_gpu, host values)``."""
    xs = [torch.tensor(v, device=device, requires_grad=True) for v in inputs]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # deprecated spellings, align_corners
        y = fn(*xs)
    weights = torch.tensor(RNG.standard_normal(tuple(y.shape)), dtype=y.dtype, device=device)
    (y * weights).sum().backward()
    return [
        (type(t._data) is StrictArray, t.detach().cpu().numpy()) for t in [y, *[x.grad for x in xs]]
    ]


def _compare(fn: Callable, *inputs: np.ndarray) -> None:
    state = RNG.bit_generator.state
    want = _run(fn, list(inputs), "cpu")
    RNG.bit_generator.state = state  # the same weights on both devices
    with backend.use_strict_gpu():
        got = _run(fn, list(inputs), "cuda")
    assert all(on_gpu for on_gpu, _ in got), "a result or gradient left the GPU"
    assert not any(on_gpu for on_gpu, _ in want)
    for (_, g), (_, w) in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6)


IMAGE = RNG.standard_normal((2, 3, 9, 7)).astype(np.float32)


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
@pytest.mark.parametrize(
    "size,align", [((4, 3), False), ((4, 3), True), ((13, 5), False), ((9, 14), None)]
)
def test_antialiased_interpolate(mode, size, align):
    _compare(
        lambda x: F.interpolate(x, size=size, mode=mode, align_corners=align, antialias=True),
        IMAGE,
    )


def test_antialiased_interpolate_with_a_scale_factor_in_float64():
    _compare(
        lambda x: F.interpolate(x, scale_factor=0.4, mode="bilinear", antialias=True),
        IMAGE.astype(np.float64),
    )


@pytest.mark.parametrize(
    "mode,shape,kwargs",
    [
        ("nearest", (2, 3, 9, 7), {"size": (4, 14)}),
        ("nearest", (2, 3, 5), {"scale_factor": 2}),
        ("nearest-exact", (2, 3, 9, 7), {"size": (5, 3)}),
        ("linear", (2, 3, 9), {"size": 4, "align_corners": True}),
        ("bilinear", (2, 3, 9, 7), {"size": (12, 5), "align_corners": False}),
        ("bicubic", (2, 3, 9, 7), {"scale_factor": (0.5, 1.5), "align_corners": False}),
        ("trilinear", (1, 2, 4, 5, 6), {"size": (3, 7, 6), "align_corners": False}),
        ("area", (2, 3, 9, 7), {"size": (4, 3)}),
    ],
)
def test_interpolate_modes(mode, shape, kwargs):
    x = RNG.standard_normal(shape).astype(np.float32)
    _compare(lambda x: F.interpolate(x, mode=mode, **kwargs), x)


def test_deprecated_upsampling_spellings():
    _compare(lambda x: F.upsample_bilinear(x, size=(4, 9)), IMAGE)
    _compare(lambda x: F.upsample_nearest(x, scale_factor=2), IMAGE)
    _compare(lambda x: F.upsample(x, size=(3, 3), mode="bicubic", align_corners=True), IMAGE)


def test_nn_upsample_module():
    up = torch.nn.Upsample(scale_factor=0.5, mode="bilinear", align_corners=False)
    _compare(up, IMAGE)


def test_affine_grid_and_grid_sample():
    theta = RNG.standard_normal((2, 2, 3)).astype(np.float32) * 0.5

    def fn(x, t):
        grid = F.affine_grid(t, (2, 3, 4, 5), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", align_corners=False)

    _compare(fn, IMAGE, theta)


def test_fold_of_unfold():
    _compare(lambda x: F.fold(F.unfold(x, 3, padding=1), (9, 7), 3, padding=1), IMAGE)


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: F.adaptive_avg_pool2d(x, (4, 3)),
        lambda x: F.adaptive_max_pool2d(x, (2, 5)),
        lambda x: F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False),
    ],
    ids=["adaptive-avg", "adaptive-max", "avg-divisor"],
)
def test_pooling_constants_are_made_on_the_device(fn):
    # the pooling helpers' host-made tables (resampling matrices, divisors) are moved once
    _compare(fn, IMAGE)
