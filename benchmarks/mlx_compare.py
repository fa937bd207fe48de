"""Quantized matmul, fused attention and compiled steps: chainrule and real MLX, one run.

Each case runs the same code against ``chainrule`` and, when ``mlx.core`` imports (the
``mlx[cpu]`` wheel that ``make test`` installs where it can), against real MLX, in this
machine, each in a process of its own:

* ``quantized_matmul`` (4- and 8-bit affine, groups of 64) against ``x @ w.T`` with the
  float weight;
* ``mx.fast.scaled_dot_product_attention`` (grouped-query heads, causal) against the same
  attention written out (repeated key/value heads, ``softmax``, two ``matmul``), forward and
  forward + backward;
* a training step (an MLP, cross entropy, value_and_grad, optimizer.update; the workloads of
  ``../shared/bench/anchors.py``) compiled with ``mx.compile(inputs=state, outputs=state)``
  against the same step run eagerly.

For each framework it prints the best (minimum over repeats) milliseconds of the path and of its reference and
their ratio (``path / reference``: below 1 the fused/quantized/compiled path wins), measured
in the same run; the last column is chainrule's milliseconds over MLX's for the path.
Nothing here asserts a timing.

Usage: python benchmarks/mlx_compare.py [--repeats 7] [--small] [--no-mlx]
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import math
import subprocess
import sys
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np


def load(pkg: str) -> SimpleNamespace:
    """``core``, ``nn`` and ``optimizers`` of ``pkg`` ("chainrule" or "mlx")."""
    return SimpleNamespace(
        name=pkg,
        mx=importlib.import_module(pkg + ".core"),
        nn=importlib.import_module(pkg + ".nn"),
        optim=importlib.import_module(pkg + ".optimizers"),
    )


def timed(lib: SimpleNamespace, fn: Callable[[], Any], repeats: int) -> float:
    """Best (minimum) milliseconds of ``fn`` with its results evaluated, after one warm-up call.

    The minimum, not the median: on a shared machine other work only ever adds time.
    """
    lib.mx.eval(fn())
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        lib.mx.eval(fn())
        times.append(time.perf_counter() - t0)
    return min(times) * 1e3


def quantized_cases(lib: SimpleNamespace, small: bool, repeats: int) -> dict[str, tuple]:
    """``{case: (path ms, reference ms)}`` for quantized_matmul against the float product."""
    mx = lib.mx
    K = N = 1024 if small else 4096
    rng = np.random.default_rng(0)
    w = mx.array((rng.standard_normal((N, K)) / math.sqrt(K)).astype(np.float32))
    out = {}
    for M in (1, 32) if small else (1, 32, 256):
        x = mx.array(rng.standard_normal((M, K)).astype(np.float32))
        ref = timed(lib, lambda x=x: x @ w.T, repeats)
        for bits in (4, 8):
            wq, s, b = mx.quantize(w, group_size=64, bits=bits)
            path = timed(
                lib,
                lambda x=x, wq=wq, s=s, b=b, bits=bits: mx.quantized_matmul(
                    x, wq, s, b, transpose=True, group_size=64, bits=bits
                ),
                repeats,
            )
            out[f"quantized_matmul {bits}-bit M={M} N=K={K}"] = (path, ref)
    return out


def attention_cases(lib: SimpleNamespace, small: bool, repeats: int) -> dict[str, tuple]:
    """``{case: (path ms, reference ms)}`` for fused attention against the composite."""
    mx = lib.mx
    B, Hq, Hkv, L, D = (1, 8, 2, 128, 64) if small else (2, 32, 8, 512, 128)
    rng = np.random.default_rng(1)
    q, k, v = (
        mx.array(rng.standard_normal(s).astype(np.float32))
        for s in ((B, Hq, L, D), (B, Hkv, L, D), (B, Hkv, L, D))
    )
    scale = D**-0.5

    def fused(q: Any, k: Any, v: Any) -> Any:
        return mx.fast.scaled_dot_product_attention(q, k, v, scale=scale, mask="causal")

    def composite(q: Any, k: Any, v: Any) -> Any:
        rep = q.shape[1] // k.shape[1]
        k, v = mx.repeat(k, rep, axis=1), mx.repeat(v, rep, axis=1)
        s = (q * scale) @ mx.swapaxes(k, -1, -2)
        keep = mx.tril(mx.ones((L, L), dtype=mx.bool_))
        return mx.softmax(mx.where(keep, s, -1e30), axis=-1) @ v

    g_fused = mx.grad(lambda q, k, v: fused(q, k, v).sum(), argnums=(0, 1, 2))
    g_comp = mx.grad(lambda q, k, v: composite(q, k, v).sum(), argnums=(0, 1, 2))
    name = f"sdpa causal GQA {Hq}/{Hkv} L={L} D={D}"
    return {
        name: (timed(lib, lambda: fused(q, k, v), repeats), timed(lib, lambda: composite(q, k, v), repeats)),
        "  forward + backward": (
            timed(lib, lambda: g_fused(q, k, v), repeats),
            timed(lib, lambda: g_comp(q, k, v), repeats),
        ),
    }  # fmt: skip


def training_step(lib: SimpleNamespace, workload: str, compiled: bool) -> Callable[[int], Any]:
    """One step of ``anchors.py``'s workload ("seed" or "large") on ``lib``."""
    mx, nn, optim = lib.mx, lib.nn, lib.optim
    if workload == "seed":
        sizes, batch, opt = [784, 128, 10], 64, optim.SGD(learning_rate=0.01)
    else:
        sizes, batch, opt = [784, 512, 512, 10], 256, optim.Adam(learning_rate=1e-3)
    rng = np.random.default_rng(0)
    data = [
        (
            mx.array(rng.standard_normal((batch, sizes[0])).astype(np.float32)),
            mx.array(rng.integers(0, sizes[-1], batch).astype(np.int32)),
        )
        for _ in range(8)
    ]

    class MLP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = [nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])]

        def __call__(self, x: Any) -> Any:
            for layer in self.layers[:-1]:
                x = nn.relu(layer(x))
            return self.layers[-1](x)

    model = MLP()
    mx.eval(model.parameters())

    def loss_fn(m: Any, x: Any, y: Any) -> Any:
        return nn.losses.cross_entropy(m(x), y, reduction="mean")

    value_grad = nn.value_and_grad(model, loss_fn)

    def inner(x: Any, y: Any) -> Any:
        loss, g = value_grad(model, x, y)
        opt.update(model, g)
        return loss

    if compiled:
        state = [model.state, opt.state]
        inner = mx.compile(inner, inputs=state, outputs=state)

    def step(k: int) -> Any:
        loss = inner(*data[k % len(data)])
        mx.eval(loss, model.state, opt.state)
        return loss

    return step


def step_cases(lib: SimpleNamespace, small: bool, repeats: int) -> dict[str, tuple]:
    """``{case: (compiled ms, eager ms)}`` per training step, the best of blocks of steps."""
    out = {}
    steps = 5 if small else 20
    for workload in ("seed",) if small else ("seed", "large"):
        ms = []
        for compiled in (True, False):
            step = training_step(lib, workload, compiled)
            for k in range(3):  # warm up (the compiled step traces on its first call)
                step(k)
            blocks = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                for k in range(steps):
                    step(k)
                blocks.append((time.perf_counter() - t0) / steps)
            ms.append(min(blocks) * 1e3)
        out[f"compiled training step ({workload})"] = tuple(ms)
    return out


def run_one(pkg: str, small: bool, repeats: int) -> dict[str, tuple]:
    """Every case on ``pkg`` in this process."""
    lib = load(pkg)
    res: dict[str, tuple] = {}
    for cases in (quantized_cases, attention_cases, step_cases):
        res.update(cases(lib, small, repeats))
    return res


def main(argv: list[str] | None = None) -> dict[str, dict[str, tuple]]:
    """Run every case on chainrule (and MLX when it imports); print and return the table.

    Each framework runs in a process of its own (as ``anchors.py`` does), so one's BLAS
    threads never compete with the other's.
    """
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--small", action="store_true", help="smaller shapes (a quick check)")
    ap.add_argument("--no-mlx", action="store_true", help="chainrule only")
    ap.add_argument("--only", choices=("chainrule", "mlx"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.only:  # the child process: print the results as JSON
        print(json.dumps(run_one(args.only, args.small, args.repeats)))
        return {}
    results: dict[str, dict[str, tuple]] = {}
    pkgs = (
        ["chainrule"]
        if args.no_mlx or importlib.util.find_spec("mlx") is None
        else ["chainrule", "mlx"]
    )
    for pkg in pkgs:
        cmd = [sys.executable, __file__, "--only", pkg, "--repeats", str(args.repeats)]
        done = subprocess.run(
            cmd + (["--small"] if args.small else []), capture_output=True, text=True
        )
        if done.returncode != 0:
            print(f"{pkg}: failed ({done.stderr.strip().splitlines()[-1:]}); left out")
            continue
        results[pkg] = json.loads(done.stdout.strip().splitlines()[-1])
    if "mlx" not in pkgs:
        print("mlx.core is not installed here: chainrule only")
    head = f"{'case':<40} {'cr ms':>8} {'cr ref':>8} {'cr ratio':>8}"
    if "mlx" in results:
        head += f" {'mlx ms':>8} {'mlx ref':>8} {'mlx ratio':>9} {'cr/mlx':>7}"
    print(head + "   (ratio = path / reference; reference: float matmul, composite, eager step)")
    for case, (path, ref) in results.get("chainrule", {}).items():
        line = f"{case:<40} {path:8.2f} {ref:8.2f} {path / ref:8.2f}"
        if "mlx" in results:
            mpath, mref = results["mlx"][case]
            line += f" {mpath:8.2f} {mref:8.2f} {mpath / mref:9.2f} {path / mpath:7.2f}"
        print(line)
    return results


if __name__ == "__main__":
    main()
