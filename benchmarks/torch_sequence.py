"""Training-step time of two sequence models, ``chainrule.torch`` against PyTorch (issue 17).

Workloads (float32, CPU, one thread each: ``torch.set_num_threads(1)``, and OpenBLAS /
OpenMP / MKL limited to one thread before NumPy loads, unless already set):
  lstm        : word_language_model's LSTM language model: vocab 1000, embedding 128,
                2-layer nn.LSTM hidden 256, bptt 35, batch 20, log_softmax + NLLLoss,
                clip_grad_norm_(0.25) and the example's SGD update p.data.add_(p.grad, -lr)
  transformer : one nn.TransformerEncoderLayer, d_model 128, 4 heads, dim_feedforward 512,
                dropout 0, sequence 64, batch 32 (seq-first), MSE loss, Adam

The same code builds and steps both, given the module (``chainrule.torch`` or ``torch``).
Runners are interleaved within each block (a short rest between them, as
``benchmarks/training.py`` does), and the figures are medians over blocks: milliseconds per
step, and the ratio chainrule / PyTorch taken block by block in the same run (neighbouring
measurements drift together on a shared machine), as ``../shared/bench/anchors.py`` asks.

Usage: python benchmarks/torch_sequence.py [--workload lstm|transformer|both] [--blocks 3]
       [--steps 5]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import chainrule.torch as ctorch  # noqa: E402

VOCAB, EMB, HID, LAYERS, BPTT, BATCH = 1000, 128, 256, 2, 35, 20
D, HEADS, FFN, SEQ, TBATCH = 128, 4, 512, 64, 32


def lstm_runner(torch):
    """word_language_model's training step on an LSTM language model."""
    nn = torch.nn
    torch.manual_seed(0)

    class RNNModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Embedding(VOCAB, EMB)
            self.rnn = nn.LSTM(EMB, HID, LAYERS)
            self.decoder = nn.Linear(HID, VOCAB)

        def forward(self, input, hidden):
            output, hidden = self.rnn(self.encoder(input), hidden)
            decoded = self.decoder(output).view(-1, VOCAB)
            return torch.nn.functional.log_softmax(decoded, dim=1), hidden

    model = RNNModel()
    criterion = nn.NLLLoss()
    rng = np.random.default_rng(0)
    stream = rng.integers(0, VOCAB, (BPTT * 8 + 1, BATCH))
    batches = [
        (torch.tensor(stream[i : i + BPTT]), torch.tensor(stream[i + 1 : i + 1 + BPTT]).view(-1))
        for i in range(0, BPTT * 8, BPTT)
    ]
    state = {"hidden": (torch.zeros(LAYERS, BATCH, HID), torch.zeros(LAYERS, BATCH, HID))}

    def step(k):
        data, targets = batches[k % len(batches)]
        model.zero_grad()
        hidden = tuple(h.detach() for h in state["hidden"])
        output, state["hidden"] = model(data, hidden)
        loss = criterion(output, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
        for p in model.parameters():
            p.data.add_(p.grad, alpha=-20.0)
        return loss.item()

    return step


def transformer_runner(torch):
    """One nn.TransformerEncoderLayer trained by Adam on an MSE loss."""
    nn = torch.nn
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(D, HEADS, dim_feedforward=FFN, dropout=0.0)
    optimizer = torch.optim.Adam(layer.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    data = [
        (
            torch.tensor(rng.standard_normal((SEQ, TBATCH, D)).astype(np.float32)),
            torch.tensor(rng.standard_normal((SEQ, TBATCH, D)).astype(np.float32)),
        )
        for _ in range(4)
    ]

    def step(k):
        x, y = data[k % len(data)]
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(layer(x), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


RUNNERS = {"lstm": lstm_runner, "transformer": transformer_runner}


def measure(runners, steps, blocks, warmup=2):
    """Per-block milliseconds per step of each runner (runners interleaved within a block)."""
    last = {}
    for name, step in runners.items():
        for k in range(warmup):
            last[name] = step(k)
    times = {name: [] for name in runners}
    for _ in range(blocks):
        for name, step in runners.items():
            time.sleep(0.2)  # let the previous runner's worker threads settle
            t0 = time.perf_counter()
            for k in range(steps):
                last[name] = step(k)
            times[name].append((time.perf_counter() - t0) / steps * 1e3)
    return times, last


def run(workload, steps, blocks):
    runners = {"chainrule": RUNNERS[workload](ctorch)}
    try:
        import torch

        torch.set_num_threads(1)
        runners["torch"] = RUNNERS[workload](torch)
    except ImportError:
        print("(PyTorch is not installed: chainrule's times only)")
    times, last = measure(runners, steps, blocks)
    print(f"\n{workload}: {blocks} blocks of {steps} steps, one thread")
    print(f"  {'runner':10s} {'ms/step':>9s} {'x torch':>8s} {'last loss':>10s}")
    for name, v in times.items():
        if "torch" in times:
            ratio = statistics.median(a / b for a, b in zip(v, times["torch"]))
            vs = f"{ratio:8.2f}"
        else:
            vs = "       -"
        print(f"  {name:10s} {statistics.median(v):9.2f} {vs} {last[name]:10.4f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workload", default="both", choices=["lstm", "transformer", "both"])
    p.add_argument("--blocks", type=int, default=3)
    p.add_argument("--steps", type=int, default=5)
    args = p.parse_args()
    for wl in ["lstm", "transformer"] if args.workload == "both" else [args.workload]:
        run(wl, args.steps, args.blocks)


if __name__ == "__main__":
    main()
