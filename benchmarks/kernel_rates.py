"""The kernel rates behind the ResNet and LSTM workloads (issue 20): GFLOP/s, one thread each.

For the products the two networks are made of, on this machine: NumPy's ``matmul`` (its BLAS),
PyTorch's ``mm`` (MKL), PyTorch's ``conv2d`` and ``nn.LSTM`` (oneDNN's kernels), and
chainrule's convolution and LSTM, forward and forward + backward: with oneDNN's kernels where
the library is installed (``chainrule.core.onednn``: the convolutions, ``chainrule.torch``'s
fused LSTM, the MLX-style LSTM's packed step products) and with the NumPy kernels (im2col +
NumPy's BLAS, one BLAS product a step). The suite's ratios for these workloads follow from
these rates. Prints a table; asserts nothing.

    OPENBLAS_NUM_THREADS=1 python benchmarks/kernel_rates.py
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))


def _best_ms(fn: Callable[[], object], reps: int = 10, rounds: int = 5) -> float:
    """The best mean time of ``reps`` calls over ``rounds`` rounds, in milliseconds."""
    fn()
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(reps):
            fn()
        best = min(best, (time.perf_counter() - t) / reps)
    return best * 1e3


def _row(what: str, flops: float, ms: float) -> str:
    return f"| {what} | {ms:.2f} | {flops / ms / 1e6:.0f} |"


def gemms(torch) -> list[str]:
    """NumPy's matmul, oneDNN's (chainrule's float32 products) and PyTorch's mm on the
    networks' product shapes."""
    from chainrule.core import onednn

    rows = []
    shapes = [(512, 512, 512), (700, 256, 1024), (20, 256, 1024), (32768, 144, 16), (2048, 576, 64)]
    for m, k, n in shapes:
        a = np.random.default_rng(0).standard_normal((m, k)).astype(np.float32)
        b = np.random.default_rng(1).standard_normal((k, n)).astype(np.float32)
        flops = 2.0 * m * k * n
        rows.append(_row(f"NumPy matmul {m}x{k}x{n}", flops, _best_ms(lambda a=a, b=b: a @ b)))
        if onednn.available():
            best = _best_ms(lambda a=a, b=b: onednn.matmul(a, b))
            rows.append(_row(f"oneDNN matmul {m}x{k}x{n}", flops, best))
        if torch is not None:
            ta, tb = torch.from_numpy(a), torch.from_numpy(b)
            rows.append(
                _row(f"PyTorch mm {m}x{k}x{n}", flops, _best_ms(lambda ta=ta, tb=tb: ta @ tb))
            )
    return rows


def convs(lib, name: str) -> list[str]:
    """3x3 same-padding convolutions of the ResNet's three stages (batch 32), forward and
    forward + backward (input and weight gradients)."""
    rows = []
    for hw, c in ((32, 16), (16, 32), (8, 64)):
        flops = 2.0 * 32 * hw * hw * c * c * 9
        x = lib.randn(32, c, hw, hw)
        w = lib.randn(c, c, 3, 3)
        fwd = _best_ms(lambda x=x, w=w: lib.nn.functional.conv2d(x, w, padding=1))
        xr = lib.randn(32, c, hw, hw, requires_grad=True)
        wr = lib.randn(c, c, 3, 3, requires_grad=True)

        def both(xr=xr, wr=wr) -> None:
            lib.nn.functional.conv2d(xr, wr, padding=1).sum().backward()

        rows.append(_row(f"{name} conv2d {c}ch {hw}x{hw} forward", flops, fwd))
        rows.append(_row(f"{name} conv2d {c}ch {hw}x{hw} fwd+bwd", 3 * flops, _best_ms(both)))
    return rows


def lstms(lib, name: str) -> list[str]:
    """The LSTM language model's two layers (emb 128, hidden 256, seq 35, batch 20)."""
    lib.manual_seed(0)
    lstm = lib.nn.LSTM(128, 256, 2)
    x = lib.randn(35, 20, 128, requires_grad=True)
    flops = sum(2.0 * 35 * 20 * (i + 256) * 1024 for i in (128, 256))

    def fwd() -> None:
        with lib.no_grad():
            lstm(x)

    def both() -> None:
        lstm(x)[0].sum().backward()

    return [
        _row(f"{name} 2-layer LSTM forward", flops, _best_ms(fwd, reps=5)),
        _row(f"{name} 2-layer LSTM fwd+bwd", 3 * flops, _best_ms(both, reps=5)),
    ]


def mlx_lstms(name: str) -> list[str]:
    """The same two layers as MLX-style ``chainrule.nn.LSTM`` (every cell state returned)."""
    import chainrule.core as mx
    import chainrule.nn as nn

    mx.random.seed(0)
    layers = [nn.LSTM(128, 256), nn.LSTM(256, 256)]
    x = mx.random.normal((20, 35, 128))
    flops = sum(2.0 * 35 * 20 * (i + 256) * 1024 for i in (128, 256))

    def run(x):
        for layer in layers:
            x = layer(x)[0]
        return x.sum()

    grad = mx.grad(run)
    return [
        _row(f"{name} 2-layer LSTM forward", flops, _best_ms(lambda: run(x), reps=5)),
        _row(f"{name} 2-layer LSTM fwd+bwd", 3 * flops, _best_ms(lambda: grad(x), reps=5)),
    ]


def main() -> None:
    """Print the table."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        torch = None
    import chainrule.torch as crt
    from chainrule.core import onednn

    print(f"oneDNN: {onednn.status()}")
    print("| kernel | ms | GFLOP/s |")
    print("|---|---:|---:|")
    rows = gemms(torch)
    if torch is not None:
        rows += convs(torch, "PyTorch") + lstms(torch, "PyTorch")
    if onednn.available():
        rows += convs(crt, "chainrule oneDNN") + lstms(crt, "chainrule.torch oneDNN")
        rows += mlx_lstms("chainrule.nn oneDNN-packed")
    with onednn.disabled():
        rows += convs(crt, "chainrule NumPy") + lstms(crt, "chainrule.torch NumPy")
        rows += mlx_lstms("chainrule.nn NumPy")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
