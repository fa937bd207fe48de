"""Training-step time of the two anchor workloads, against the NumPy floor and PyTorch.

Workloads (as in ../shared/bench/anchors.py, float32, CPU):
  seed  : MLP 784-128-10, batch 64, SGD lr=0.01 (overhead-bound)
  large : MLP 784-512-512-10, batch 256, Adam lr=1e-3 (compute-bound)

Each runner is measured in the same process, interleaved, median of several blocks:
  gemm only  the step's matrix products alone (the GEMM-bound limit)
  numpy      hand-written forward/backward/optimizer (the floor for anything on NumPy)
  mlx        chainrule, MLX style: nn.value_and_grad + optimizer.update
  torchstyle chainrule, PyTorch style: zero_grad / backward / step
  compiled   chainrule, MLX style under mx.compile
  torch      PyTorch itself, when installed

Usage: python benchmarks/training.py [--workload seed|large|both] [--blocks 5] [--steps 50]
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial

import numpy as np

import chainrule.core as mx
import chainrule.nn as nn
import chainrule.optimizers as optim

WORKLOADS = {
    "seed": dict(sizes=[784, 128, 10], batch=64, opt="sgd"),
    "large": dict(sizes=[784, 512, 512, 10], batch=256, opt="adam"),
}


def make_data(sizes, batch, n_batches=16):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4096, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], 4096).astype(np.int64)
    idx = [rng.integers(0, 4096, batch) for _ in range(n_batches)]
    return [(x[i], y[i]) for i in idx]


def numpy_runner(sizes, opt, data):
    """Hand-written MLP training step in NumPy: the floor."""
    rng = np.random.default_rng(1)
    params = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        s = 1 / np.sqrt(a)
        params.append([rng.uniform(-s, s, (a, b)).astype(np.float32), np.zeros(b, np.float32)])
    m = [[np.zeros_like(p) for p in layer] for layer in params]
    v = [[np.zeros_like(p) for p in layer] for layer in params]
    t = [0]

    def step(k):
        x, y = data[k % len(data)]
        acts = [x]
        h = x
        for i, (w, b) in enumerate(params):
            h = h @ w + b
            if i < len(params) - 1:
                h = np.maximum(h, 0)
            acts.append(h)
        z = h - h.max(axis=1, keepdims=True)
        e = np.exp(z)
        p = e / e.sum(axis=1, keepdims=True)
        n = len(y)
        loss = -np.log(p[np.arange(n), y]).mean()
        g = p
        g[np.arange(n), y] -= 1
        g /= n
        grads = []
        for i in range(len(params) - 1, -1, -1):
            w, _ = params[i]
            grads.append((acts[i].T @ g, g.sum(0)))
            if i:
                g = (g @ w.T) * (acts[i] > 0)
        grads.reverse()
        t[0] += 1
        for li, (layer, gl) in enumerate(zip(params, grads)):
            for pi in range(2):
                gp = gl[pi]
                if opt == "sgd":
                    layer[pi] -= 0.01 * gp
                else:
                    mm, vv = m[li][pi], v[li][pi]
                    mm *= 0.9
                    mm += 0.1 * gp
                    vv *= 0.999
                    vv += 0.001 * gp * gp
                    mh = mm / (1 - 0.9 ** t[0])
                    vh = vv / (1 - 0.999 ** t[0])
                    layer[pi] -= 1e-3 * mh / (np.sqrt(vh) + 1e-8)
        return loss

    return step


def gemm_runner(sizes, opt, data):
    """The step's matrix products alone (forward, weight gradients, input gradients but the
    first): the GEMM-bound limit no runner on the same BLAS can beat."""
    rng = np.random.default_rng(1)
    ws = [rng.standard_normal((a, b)).astype(np.float32) for a, b in zip(sizes[:-1], sizes[1:])]

    def step(k):
        x, _ = data[k % len(data)]
        acts = [x]
        for w in ws:
            acts.append(acts[-1] @ w)
        g = acts[-1]
        for i in range(len(ws) - 1, -1, -1):
            acts[i].T @ g
            if i:
                g = g @ ws[i].T
        return g

    return step


class MLP(nn.Module):
    def __init__(self, sizes):
        super().__init__()
        self.layers = [nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])]

    def __call__(self, x):
        for layer in self.layers[:-1]:
            x = nn.relu(layer(x))
        return self.layers[-1](x)


def mlx_runner(sizes, opt, data, compiled=False):
    """chainrule in the MLX style, optionally under mx.compile."""
    model = MLP(sizes)
    o = optim.SGD(learning_rate=0.01) if opt == "sgd" else optim.Adam(learning_rate=1e-3)

    def loss_fn(m, x, y):
        return nn.losses.cross_entropy(m(x), y, reduction="mean")

    lg = nn.value_and_grad(model, loss_fn)

    def inner(x, y):
        loss, g = lg(model, x, y)
        o.update(model, g)
        return loss

    if compiled:
        state = [model.state, o.state]
        inner = partial(mx.compile, inputs=state, outputs=state)(inner)
    mdata = [(mx.array(x), mx.array(y)) for x, y in data]

    def step(k):
        loss = inner(*mdata[k % len(mdata)])
        mx.eval(loss, model.state, o.state)
        return loss

    return step


def torchstyle_runner(sizes, opt, data):
    """chainrule in the PyTorch style."""
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    model = nn.Sequential(*layers[:-1])
    params = model.parameters()
    o = optim.SGD(params, lr=0.01) if opt == "sgd" else optim.Adam(params, lr=1e-3)
    lf = nn.CrossEntropyLoss()
    mdata = [(mx.array(x), mx.array(y)) for x, y in data]

    def step(k):
        x, y = mdata[k % len(mdata)]
        o.zero_grad()
        loss = lf(model(x), y)
        loss.backward()
        o.step()
        return loss

    return step


def torch_runner(sizes, opt, data):
    """PyTorch itself."""
    import torch

    torch.manual_seed(0)
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers[:-1])
    if opt == "sgd":
        o = torch.optim.SGD(model.parameters(), lr=0.01)
    else:
        o = torch.optim.Adam(model.parameters(), lr=1e-3)
    lf = torch.nn.CrossEntropyLoss()
    tdata = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in data]

    def step(k):
        x, y = tdata[k % len(tdata)]
        o.zero_grad()
        loss = lf(model(x), y)
        loss.backward()
        o.step()
        return loss

    return step


def measure(runners, steps, blocks, warmup=10):
    """Per-block milliseconds per step of each runner (runners interleaved within a block)."""
    for step in runners.values():
        for k in range(warmup):
            step(k)
    times = {name: [] for name in runners}
    for _ in range(blocks):
        for name, step in runners.items():
            # OpenBLAS's and PyTorch's worker threads spin for a while after their last call;
            # a short rest keeps one runner's threads from stealing the next runner's cores.
            time.sleep(0.2)
            t0 = time.perf_counter()
            for k in range(steps):
                step(k)
            times[name].append((time.perf_counter() - t0) / steps * 1e3)
    return times


def ratios(times: dict, ref: str) -> dict:
    """Median over blocks of each runner's time divided by ``ref``'s in the same block: on a
    shared machine (steal time) neighbouring measurements vary together, so the ratio of
    neighbours is steadier than the ratio of two medians."""
    return {
        name: statistics.median(a / b for a, b in zip(v, times[ref])) for name, v in times.items()
    }


def run(workload, steps, blocks):
    cfg = WORKLOADS[workload]
    data = make_data(cfg["sizes"], cfg["batch"])
    runners = {
        "gemm only": gemm_runner(cfg["sizes"], cfg["opt"], data),
        "numpy": numpy_runner(cfg["sizes"], cfg["opt"], data),
        "mlx": mlx_runner(cfg["sizes"], cfg["opt"], data),
        "torchstyle": torchstyle_runner(cfg["sizes"], cfg["opt"], data),
        "compiled": mlx_runner(cfg["sizes"], cfg["opt"], data, compiled=True),
    }
    try:
        runners["torch"] = torch_runner(cfg["sizes"], cfg["opt"], data)
    except ImportError:
        pass
    times = measure(runners, steps, blocks)
    ms = {name: statistics.median(v) for name, v in times.items()}
    vs_numpy = ratios(times, "numpy")
    vs_torch = ratios(times, "torch") if "torch" in times else {}
    print(f"\n{workload}: sizes {cfg['sizes']}, batch {cfg['batch']}, {cfg['opt']}")
    print(f"  {'runner':12s} {'ms/step':>8s} {'x numpy':>8s} {'x torch':>8s}")
    for name, t in ms.items():
        vt = f"{vs_torch[name]:8.2f}" if vs_torch else "       -"
        print(f"  {name:12s} {t:8.3f} {vs_numpy[name]:8.2f} {vt}")
    return ms


def _cpu_times() -> list[int] | None:
    try:
        with open("/proc/stat") as f:
            return [int(v) for v in f.readline().split()[1:]]
    except OSError:  # not Linux
        return None


def _steal_note(before, after) -> str:
    """How much CPU time the hypervisor took from this virtual machine meanwhile."""
    if before is None or after is None or len(after) < 8:
        return ""
    d = [b - a for a, b in zip(before, after)]
    total = sum(d[:8]) or 1
    return f"steal time {100 * d[7] / total:.0f}% of the machine's CPU time during the run"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workload", default="both", choices=["seed", "large", "both"])
    p.add_argument("--blocks", type=int, default=5)
    p.add_argument("--steps", type=int, default=50)
    args = p.parse_args()
    for wl in ["seed", "large"] if args.workload == "both" else [args.workload]:
        before = _cpu_times()
        run(wl, args.steps, args.blocks)
        note = _steal_note(before, _cpu_times())
        if note:
            print(f"  ({note}; above a few percent, timings are noisy)")


if __name__ == "__main__":
    main()
