"""Per-operation Python overhead of the eager path.

Times a 20-operation function (forward, and forward + backward) in chainrule against the
same NumPy calls written by hand (the backward pass hand-derived), on small arrays where
NumPy's own work is tiny, and prints the overhead per operation in microseconds.
Measured in one run, interleaved, median of several blocks.

Usage: python benchmarks/overhead.py [--size 16] [--blocks 7] [--reps 300]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import chainrule.core as mx

N_OPS = 20


def cr_forward(x, w):
    """Twenty chainrule operations: 5 rounds of (mul, add, tanh, mul)."""
    h = x
    for _ in range(5):
        h = h * w
        h = h + 0.5
        h = mx.tanh(h)
        h = h * h
    return h


def np_forward(x, w):
    """The same twenty operations in NumPy, keeping what the backward pass needs."""
    saved = []
    h = x
    for _ in range(5):
        a = h * w
        b = a + 0.5
        t = np.tanh(b)
        h = t * t
        saved.append((a, t))
    return h, saved


def np_forward_backward(x, w):
    """Forward, then the hand-derived backward of ``sum(cr_forward(x, w))`` w.r.t. ``x``."""
    xs = [x]
    h = x
    saved = []
    for _ in range(5):
        a = h * w
        b = a + 0.5
        t = np.tanh(b)
        h = t * t
        saved.append((xs[-1], t))
        xs.append(h)
    g = np.ones_like(h)
    for _, t in reversed(saved):
        g = g * 2 * t  # d(t*t)
        g = g * (1 - t * t)  # d tanh
        g = g * w  # d(h*w) w.r.t. h
    return h.sum(), g


def cr_forward_backward(x, w):
    """Forward and backward in chainrule through ``mx.value_and_grad``."""
    return mx.value_and_grad(lambda v: mx.sum(cr_forward(v, w)))(x)


def cr_tape(x_np, w):
    """Forward and backward in the PyTorch style."""
    x = mx.array(x_np, requires_grad=True)
    mx.sum(cr_forward(x, w)).backward()
    return x.grad


def timeit(fn, reps):
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=16, help="arrays are size x size float32")
    p.add_argument("--blocks", type=int, default=7)
    p.add_argument("--reps", type=int, default=300)
    args = p.parse_args()

    rng = np.random.default_rng(0)
    x_np = rng.standard_normal((args.size, args.size)).astype(np.float32)
    w_np = rng.standard_normal((args.size, args.size)).astype(np.float32) * 0.5
    x, w = mx.array(x_np), mx.array(w_np)

    # correctness first: the two backward passes agree
    _, g_cr = cr_forward_backward(x, w)
    _, g_np = np_forward_backward(x_np, w_np)
    assert np.allclose(g_cr.numpy(), g_np, rtol=1e-4, atol=1e-5)

    cases = {
        "numpy forward": lambda: np_forward(x_np, w_np),
        "chainrule forward (constants)": lambda: cr_forward(x, w),
        "numpy forward+backward": lambda: np_forward_backward(x_np, w_np),
        "chainrule value_and_grad": lambda: cr_forward_backward(x, w),
        "chainrule tape backward()": lambda: cr_tape(x_np, w),
    }
    times = {k: [] for k in cases}
    for _ in range(args.blocks):  # interleaved blocks
        for k, fn in cases.items():
            times[k].append(timeit(fn, args.reps))
    med = {k: statistics.median(v) * 1e6 for k, v in times.items()}

    print(f"arrays {args.size}x{args.size} float32, {N_OPS} ops, median of {args.blocks} blocks")
    for k, v in med.items():
        print(f"  {k:32s} {v:8.1f} us")
    fwd = (med["chainrule forward (constants)"] - med["numpy forward"]) / N_OPS
    fb = (med["chainrule value_and_grad"] - med["numpy forward+backward"]) / N_OPS
    tape = (med["chainrule tape backward()"] - med["numpy forward+backward"]) / N_OPS
    print(f"overhead per op, forward only (nothing recorded): {fwd:5.2f} us")
    print(f"overhead per op, forward + backward (value_and_grad): {fb:5.2f} us")
    print(f"overhead per op, forward + backward (tape backward()): {tape:5.2f} us")


if __name__ == "__main__":
    main()
