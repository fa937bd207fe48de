"""Training-step time of four sequence models in three styles, one run (issue 20).

Workloads (float32, CPU, one thread: ``torch.set_num_threads(1)``, and OpenBLAS / OpenMP /
MKL limited to one thread before NumPy loads, unless already set):
  block   : one pre-norm transformer block (LayerNorm, self-attention, LayerNorm, GELU MLP
            4x), d 128, 4 heads, sequence 64, batch 32, MSE loss, Adam
  encoder : ``nn.TransformerEncoderLayer`` (post-norm, ReLU, feed-forward 512, dropout 0),
            same sizes, MSE loss, Adam
  lstm    : word_language_model's LSTM language model: vocab 1000, embedding 128, 2-layer
            LSTM hidden 256, bptt 35, batch 20, cross entropy, SGD (lr 20)
  gru     : the same language model with one GRU layer, hidden 256

Frameworks (``FRAMEWORKS``): ``torch`` (PyTorch), ``ctorch`` (``chainrule.torch``, the same
code as ``torch``), ``mlx`` (``chainrule`` in the MLX style: ``chainrule.core``/``nn``/
``optimizers``), ``mlx-compiled`` (the same step under ``mx.compile(inputs=state,
outputs=state)``) and, with ``--real-mlx``, ``real-mlx`` / ``real-mlx-compiled`` (the same
MLX-style code on ``mlx`` itself).

Builders (importable): ``build_transformer_block(framework)``, ``build_encoder_layer``,
``build_lstm_lm``, ``build_gru``; each returns ``step(k) -> float`` (one training step on
batch ``k``, returning the loss). Runners are interleaved within each block with a short
rest between them; the figures are medians over blocks: milliseconds per step, and the
ratio to PyTorch taken block by block in the same run (neighbouring measurements drift
together on a shared machine).

``--examples`` instead times ``examples/mlx/llm_inference.py`` (tokens/s of KV-cache decoding)
and ``examples/mlx/normalizing_flow.py`` against real MLX: the same source with its imports
switched, each run a fresh one-thread process, interleaved (``compare_examples``).

Usage: python benchmarks/sequence_models.py [--workload block|encoder|lstm|gru|all]
       [--frameworks torch,ctorch,mlx,mlx-compiled] [--real-mlx] [--blocks 3] [--steps 5]
       python benchmarks/sequence_models.py --examples [--blocks 3]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import importlib  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from functools import partial  # noqa: E402
from types import SimpleNamespace  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

VOCAB, EMB, HID, BPTT, BATCH = 1000, 128, 256, 35, 20
D, HEADS, FFN, SEQ, TBATCH = 128, 4, 512, 64, 32
FRAMEWORKS = ("torch", "ctorch", "mlx", "mlx-compiled", "real-mlx", "real-mlx-compiled")

Step = Callable[[int], float]


# -- the libraries ------------------------------------------------------------------------------


def _torch_lib(framework: str) -> Any:
    if framework == "torch":
        import torch

        torch.set_num_threads(1)
        return torch
    import chainrule.torch as ctorch

    return ctorch


def _mlx_lib(framework: str) -> SimpleNamespace:
    pkg = "mlx" if framework.startswith("real-mlx") else "chainrule"
    lib = SimpleNamespace(
        mx=importlib.import_module(pkg + ".core"),
        nn=importlib.import_module(pkg + ".nn"),
        optim=importlib.import_module(pkg + ".optimizers"),
    )
    if pkg == "mlx":
        lib.mx.set_default_device(lib.mx.cpu)
    return lib


def _seq_data(n: int = 4) -> list:
    rng = np.random.default_rng(0)
    return [
        (
            rng.standard_normal((TBATCH, SEQ, D)).astype(np.float32),
            rng.standard_normal((TBATCH, SEQ, D)).astype(np.float32),
        )
        for _ in range(n)
    ]


def _token_data(n: int = 8) -> list:
    rng = np.random.default_rng(0)
    stream = rng.integers(0, VOCAB, (BPTT * n + 1, BATCH))
    return [(stream[i : i + BPTT], stream[i + 1 : i + 1 + BPTT]) for i in range(0, BPTT * n, BPTT)]


# -- PyTorch style (torch and chainrule.torch run the same code) ------------------------------


def _torch_block(torch: Any, encoder: bool) -> Step:
    nn, F = torch.nn, torch.nn.functional
    torch.manual_seed(0)
    if encoder:
        model = nn.TransformerEncoderLayer(D, HEADS, FFN, dropout=0.0, batch_first=True)
    else:

        class Block(nn.Module):
            def __init__(self):
                super().__init__()
                self.ln1, self.ln2 = nn.LayerNorm(D), nn.LayerNorm(D)
                self.attn = nn.MultiheadAttention(D, HEADS, dropout=0.0, batch_first=True)
                self.fc1, self.fc2 = nn.Linear(D, 4 * D), nn.Linear(4 * D, D)

            def forward(self, x):
                h = self.ln1(x)
                x = x + self.attn(h, h, h, need_weights=False)[0]
                return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))

        model = Block()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    data = [(torch.tensor(x), torch.tensor(y)) for x, y in _seq_data()]

    def step(k: int) -> float:
        x, y = data[k % len(data)]
        optimizer.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def _torch_lm(torch: Any, cell: str) -> Step:
    nn = torch.nn
    torch.manual_seed(0)
    layers = 2 if cell == "lstm" else 1

    class LM(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Embedding(VOCAB, EMB)
            self.rnn = (nn.LSTM if cell == "lstm" else nn.GRU)(EMB, HID, layers)
            self.decoder = nn.Linear(HID, VOCAB)

        def forward(self, x, hidden):
            out, hidden = self.rnn(self.encoder(x), hidden)
            return self.decoder(out).view(-1, VOCAB), hidden

    model = LM()
    criterion = nn.CrossEntropyLoss()
    data = [(torch.tensor(x), torch.tensor(y).view(-1)) for x, y in _token_data()]
    zeros = torch.zeros(layers, BATCH, HID)
    state = {"hidden": (zeros, zeros.clone()) if cell == "lstm" else zeros}

    def detach(h: Any) -> Any:
        return tuple(v.detach() for v in h) if isinstance(h, tuple) else h.detach()

    def step(k: int) -> float:
        x, y = data[k % len(data)]
        model.zero_grad()
        out, state["hidden"] = model(x, detach(state["hidden"]))
        loss = criterion(out, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(p.grad, alpha=-20.0)
        return loss.item()

    return step


# -- MLX style (chainrule and real MLX run the same code) -------------------------------------


def _mlx_step(lib: SimpleNamespace, model: Any, loss_fn: Callable, optimizer: Any, compiled: bool):
    mx, nn = lib.mx, lib.nn
    loss_and_grad = nn.value_and_grad(model, loss_fn)

    def inner(*batch):
        loss, grads = loss_and_grad(model, *batch)
        optimizer.update(model, grads)
        return loss

    if compiled:
        state = [model.state, optimizer.state]
        inner = partial(mx.compile, inputs=state, outputs=state)(inner)
    return inner


def _mlx_block(framework: str, encoder: bool) -> Step:
    lib = _mlx_lib(framework)
    mx, nn, optim = lib.mx, lib.nn, lib.optim
    mx.random.seed(0)
    if encoder:
        model = nn.TransformerEncoderLayer(D, HEADS, FFN, dropout=0.0, norm_first=False)
        mask = None

        def forward(x):
            return model(x, mask)

    else:

        class Block(nn.Module):
            def __init__(self):
                super().__init__()
                self.ln1, self.ln2 = nn.LayerNorm(D), nn.LayerNorm(D)
                self.attn = nn.MultiHeadAttention(D, HEADS, bias=True)
                self.fc1, self.fc2 = nn.Linear(D, 4 * D), nn.Linear(4 * D, D)

            def __call__(self, x):
                h = self.ln1(x)
                x = x + self.attn(h, h, h)
                return x + self.fc2(nn.gelu(self.fc1(self.ln2(x))))

        model = Block()

        def forward(x):
            return model(x)

    optimizer = optim.Adam(learning_rate=1e-3)

    def loss_fn(m, x, y):
        return nn.losses.mse_loss(forward(x), y)

    inner = _mlx_step(lib, model, loss_fn, optimizer, framework.endswith("compiled"))
    data = [(mx.array(x), mx.array(y)) for x, y in _seq_data()]

    def step(k: int) -> float:
        loss = inner(*data[k % len(data)])
        mx.eval(loss, model.parameters(), optimizer.state)
        return loss.item()

    return step


def _mlx_lm(framework: str, cell: str) -> Step:
    lib = _mlx_lib(framework)
    mx, nn, optim = lib.mx, lib.nn, lib.optim
    mx.random.seed(0)

    class LM(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Embedding(VOCAB, EMB)
            if cell == "lstm":
                self.rnns = [nn.LSTM(EMB, HID), nn.LSTM(HID, HID)]
            else:
                self.rnns = [nn.GRU(EMB, HID)]
            self.decoder = nn.Linear(HID, VOCAB)

        def __call__(self, x):
            h = self.encoder(x)
            for rnn in self.rnns:
                h = rnn(h)[0] if cell == "lstm" else rnn(h)
            return self.decoder(h)

    model = LM()
    optimizer = optim.SGD(learning_rate=20.0)

    def loss_fn(m, x, y):
        return nn.losses.cross_entropy(model(x), y, reduction="mean")

    inner = _mlx_step(lib, model, loss_fn, optimizer, framework.endswith("compiled"))
    # MLX's recurrent layers are batch first: (N, L) tokens
    data = [(mx.array(x.T.copy()), mx.array(y.T.copy())) for x, y in _token_data()]

    def step(k: int) -> float:
        loss = inner(*data[k % len(data)])
        mx.eval(loss, model.parameters(), optimizer.state)
        return loss.item()

    return step


# -- the builders ---------------------------------------------------------------------------------


def _check(framework: str) -> None:
    if framework not in FRAMEWORKS:
        raise ValueError(f"framework must be one of {FRAMEWORKS}, got {framework!r}")


def build_transformer_block(framework: str) -> Step:
    """One pre-norm transformer block (d 128, 4 heads, GELU MLP 4x; seq 64, batch 32, Adam)."""
    _check(framework)
    if framework in ("torch", "ctorch"):
        return _torch_block(_torch_lib(framework), encoder=False)
    return _mlx_block(framework, encoder=False)


def build_encoder_layer(framework: str) -> Step:
    """``nn.TransformerEncoderLayer`` (d 128, 4 heads, feed-forward 512; seq 64, batch 32)."""
    _check(framework)
    if framework in ("torch", "ctorch"):
        return _torch_block(_torch_lib(framework), encoder=True)
    return _mlx_block(framework, encoder=True)


def build_lstm_lm(framework: str) -> Step:
    """The 2-layer LSTM language model (vocab 1000, emb 128, hidden 256, bptt 35, batch 20)."""
    _check(framework)
    if framework in ("torch", "ctorch"):
        return _torch_lm(_torch_lib(framework), "lstm")
    return _mlx_lm(framework, "lstm")


def build_gru(framework: str) -> Step:
    """A 1-layer GRU language model (vocab 1000, emb 128, hidden 256, bptt 35, batch 20)."""
    _check(framework)
    if framework in ("torch", "ctorch"):
        return _torch_lm(_torch_lib(framework), "gru")
    return _mlx_lm(framework, "gru")


BUILDERS = {
    "block": build_transformer_block,
    "encoder": build_encoder_layer,
    "lstm": build_lstm_lm,
    "gru": build_gru,
}


# -- measuring ----------------------------------------------------------------------------------


def measure(runners: dict, steps: int, blocks: int, warmup: int = 2) -> tuple[dict, dict]:
    """Per-block milliseconds per step of each runner (runners interleaved within a block)."""
    last: dict = {}
    for name, step in runners.items():
        for k in range(warmup):
            last[name] = step(k)
    times: dict = {name: [] for name in runners}
    for _ in range(blocks):
        for name, step in runners.items():
            time.sleep(0.2)  # let the previous runner's worker threads settle
            t0 = time.perf_counter()
            for k in range(steps):
                last[name] = step(k)
            times[name].append((time.perf_counter() - t0) / steps * 1e3)
    return times, last


def run(workload: str, frameworks: list, steps: int, blocks: int) -> dict:
    """Build and time ``workload`` in each framework; print and return the medians."""
    runners = {}
    for fw in frameworks:
        try:
            runners[fw] = BUILDERS[workload](fw)
        except ImportError as e:
            print(f"({fw} skipped: {e})")
    times, last = measure(runners, steps, blocks)
    print(f"\n{workload}: {blocks} blocks of {steps} steps, one thread")
    print(f"  {'framework':18s} {'ms/step':>9s} {'x torch':>8s} {'last loss':>10s}")
    result = {}
    for name, v in times.items():
        ratio = (
            statistics.median(a / b for a, b in zip(v, times["torch"]))
            if "torch" in times
            else math.nan
        )
        result[name] = (statistics.median(v), ratio)
        print(f"  {name:18s} {statistics.median(v):9.2f} {ratio:8.2f} {last[name]:10.4f}")
    return result


# -- MLX examples against real MLX ------------------------------------------------------------

EXAMPLES = {
    "llm_inference": ["--steps", "200", "--temp", "0"],
    "normalizing_flow": ["--steps", "300"],
}


def _as_real_mlx(source: str) -> str:
    """An example's source with its chainrule imports turned into MLX's (on the CPU)."""
    return (
        source.replace(
            "import chainrule.core as mx", "import mlx.core as mx\nmx.set_default_device(mx.cpu)"
        )
        .replace("import chainrule.nn as nn", "import mlx.nn as nn")
        .replace("import chainrule.optimizers as optim", "import mlx.optimizers as optim")
    )


def run_example(name: str, framework: str, rounds: int = 3) -> dict:
    """Run ``examples/mlx/<name>.py`` (``framework``: "chainrule" or "mlx") ``rounds`` times,
    each in a fresh one-thread process; returns the median wall and CPU seconds of a run
    (imports included) and, for the decoding example, its median tokens/s."""
    import re
    import resource
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    path = root / "examples" / "mlx" / f"{name}.py"
    if framework == "mlx":
        tmp = Path(tempfile.mkdtemp()) / path.name
        tmp.write_text(_as_real_mlx(path.read_text()))
        path = tmp
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    walls, cpus, rates = [], [], []
    for _ in range(rounds):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        out = subprocess.run(
            [sys.executable, str(path), *EXAMPLES[name]],
            capture_output=True, text=True, env=env, cwd=root, check=True,
        ).stdout  # fmt: skip
        walls.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        found = re.search(r"([0-9.]+) tokens/s", out)
        if found:
            rates.append(float(found.group(1)))
    got = {"wall_s": statistics.median(walls), "cpu_s": statistics.median(cpus)}
    if rates:
        got["tokens_per_s"] = statistics.median(rates)
    return got


def compare_examples(rounds: int = 3) -> None:
    """Print chainrule's and real MLX's times for the MLX examples, interleaved."""
    for name in EXAMPLES:
        res: dict = {"chainrule": [], "mlx": []}
        for _ in range(rounds):
            for fw in res:
                try:
                    res[fw].append(run_example(name, fw, 1))
                except Exception as e:  # real MLX missing or failing: chainrule's figures only
                    print(f"({name} under {fw} failed: {str(e).splitlines()[0]})")
        print(f"\n{name}: {rounds} interleaved runs each, one thread, medians")
        for fw, runs in res.items():
            if not runs:
                continue
            line = "  ".join(f"{k} {statistics.median(r[k] for r in runs):.2f}" for k in runs[0])
            print(f"  {fw:10s} {line}")


def main() -> None:
    """Command line: see the module's docstring."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workload", default="all", choices=[*BUILDERS, "all"])
    p.add_argument("--frameworks", default="torch,ctorch,mlx,mlx-compiled")
    p.add_argument("--real-mlx", action="store_true", help="also real MLX, eager and compiled")
    p.add_argument("--blocks", type=int, default=3)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument(
        "--examples", action="store_true", help="time examples/mlx against real MLX instead"
    )
    args = p.parse_args()
    if args.examples:
        compare_examples(args.blocks)
        return
    frameworks = args.frameworks.split(",")
    if args.real_mlx:
        frameworks += ["real-mlx", "real-mlx-compiled"]
    for wl in list(BUILDERS) if args.workload == "all" else [args.workload]:
        run(wl, frameworks, args.steps, args.blocks)


if __name__ == "__main__":
    main()
