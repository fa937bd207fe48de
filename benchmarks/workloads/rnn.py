"""``lstm`` and ``gru``: a word-level language model's training step (PyTorch's
word_language_model example, as ``benchmarks/torch_sequence.py`` times it).

vocab 1000, embedding 128, 2 recurrent layers of hidden 256 (LSTM or GRU), decoder 256-1000,
sequence (bptt) 35, batch 20, cross entropy, gradient norm clipped to 0.25, SGD lr 20.
Every batch starts from a zero state in both styles (no state carried between batches).
MLX style is batch-first with one ``nn.LSTM`` / ``nn.GRU`` a layer (MLX's recurrent layers
have one layer); PyTorch style is sequence-first with one 2-layer ``nn.LSTM`` / ``nn.GRU``.
"""

from __future__ import annotations

from functools import partial
from types import SimpleNamespace
from typing import Any

import numpy as np

from . import Step, Workload, dense_flops, mlx_train, torch_train

VOCAB, EMB, HID, LAYERS, BPTT, BATCH = 1000, 128, 256, 2, 35, 20
GATES = {"lstm": 4, "gru": 3}


def streams() -> list[np.ndarray]:
    """Eight (BATCH, BPTT + 1) token windows."""
    rng = np.random.default_rng(0)
    return [rng.integers(0, VOCAB, (BATCH, BPTT + 1)).astype(np.int64) for _ in range(8)]


def rnn_flops(kind: str) -> float:
    """Forward + backward FLOPs: each layer's gate products on [input, hidden], the decoder."""
    g = GATES[kind]
    total = 0.0
    for i in range(LAYERS):
        fan_in = (EMB if i == 0 else HID) + HID
        total += 3 * 2.0 * BPTT * BATCH * fan_in * g * HID
    return total + dense_flops(BPTT * BATCH, [HID, VOCAB], first_needs_input_grad=True)


def build_mlx(kind: str, lib: SimpleNamespace, compiled: bool) -> Step:
    """The language model, MLX style."""
    mx, nn, optim = lib.mx, lib.nn, lib.optim
    cell = nn.LSTM if kind == "lstm" else nn.GRU

    class LM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = nn.Embedding(VOCAB, EMB)
            self.rnns = [cell(EMB if i == 0 else HID, HID) for i in range(LAYERS)]
            self.decoder = nn.Linear(HID, VOCAB)

        def __call__(self, x: Any) -> Any:
            x = self.embedding(x)
            for rnn in self.rnns:
                out = rnn(x)
                x = out[0] if kind == "lstm" else out
            return self.decoder(x)

    def loss_fn(m: Any, x: Any, y: Any) -> Any:
        return nn.losses.cross_entropy(m(x), y, reduction="mean")

    batches = [(mx.array(s[:, :-1]), mx.array(s[:, 1:])) for s in streams()]
    optimizer = optim.SGD(learning_rate=20.0)
    return mlx_train(lib, LM(), loss_fn, optimizer, batches, compiled, clip=0.25)


def build_torch(kind: str, torch: Any, device: str) -> Step:
    """The language model, PyTorch style."""
    nn = torch.nn
    torch.manual_seed(0)
    cell = nn.LSTM if kind == "lstm" else nn.GRU

    class LM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = nn.Embedding(VOCAB, EMB)
            self.rnn = cell(EMB, HID, LAYERS)
            self.decoder = nn.Linear(HID, VOCAB)

        def forward(self, x: Any) -> Any:
            output, _ = self.rnn(self.encoder(x))
            return self.decoder(output).view(-1, VOCAB)

    model = LM()
    batches = [
        (torch.from_numpy(s[:, :-1].T.copy()), torch.from_numpy(s[:, 1:].T.copy()).view(-1))
        for s in streams()
    ]
    optimizer = torch.optim.SGD(model.parameters(), lr=20.0)
    return torch_train(torch, model, nn.CrossEntropyLoss(), optimizer, batches, device, clip=0.25)


WORKLOADS = [
    Workload(
        kind,
        f"{kind.upper()} LM vocab 1000 emb 128 2x{HID} seq {BPTT} batch {BATCH}, clip, SGD",
        mlx=partial(build_mlx, kind),
        torch=partial(build_torch, kind),
        flops=rnn_flops(kind),
        gemm_shape=(BATCH, 2 * HID, GATES[kind] * HID),
        steps=5,
    )
    for kind in GATES
]
