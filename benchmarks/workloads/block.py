"""``block`` and ``encoder``: one transformer layer trained by Adam on an MSE loss.

block   : a pre-norm block written out: LayerNorm - multi-head attention - residual -
          LayerNorm - MLP 128-512-128 with gelu - residual; d 128, 4 heads, sequence 64,
          batch 32
encoder : the library's ``TransformerEncoderLayer`` (post-norm, relu, feed-forward 512,
          dropout 0), the same shapes

Both batch-first, (32, 64, 128); the target is a fixed Gaussian tensor.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np

from . import Step, Workload, mlx_train, torch_train

D, HEADS, FFN, SEQ, BATCH = 128, 4, 512, 64, 32


def tensors() -> list[tuple[np.ndarray, np.ndarray]]:
    """Four (input, target) pairs of shape (BATCH, SEQ, D)."""
    rng = np.random.default_rng(0)
    shape = (BATCH, SEQ, D)
    return [
        (
            rng.standard_normal(shape).astype(np.float32),
            rng.standard_normal(shape).astype(np.float32),
        )
        for _ in range(4)
    ]


def layer_flops(qkv_input_grad: bool) -> float:
    """Forward + backward FLOPs of one layer: projections, QK^T, AV and the MLP.

    The backward pass costs twice the forward pass, except the q/k/v projections' input
    gradient when their input is the (gradient-free) data, as in ``encoder``.
    """
    tokens = BATCH * SEQ
    qkv = 3 * 2.0 * tokens * D * D
    rest = 2.0 * tokens * D * D + 2 * 2.0 * tokens * SEQ * D + 2 * 2.0 * tokens * D * FFN
    return 3 * rest + (3 if qkv_input_grad else 2) * qkv


def block_mlx(lib: SimpleNamespace, compiled: bool) -> Step:
    """The pre-norm block, MLX style."""
    mx, nn, optim = lib.mx, lib.nn, lib.optim

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ln1 = nn.LayerNorm(D)
            self.attn = nn.MultiHeadAttention(D, HEADS, bias=True)
            self.ln2 = nn.LayerNorm(D)
            self.fc1 = nn.Linear(D, FFN)
            self.fc2 = nn.Linear(FFN, D)

        def __call__(self, x: Any) -> Any:
            y = self.ln1(x)
            x = x + self.attn(y, y, y)
            return x + self.fc2(nn.gelu(self.fc1(self.ln2(x))))

    def loss_fn(m: Any, x: Any, y: Any) -> Any:
        return nn.losses.mse_loss(m(x), y, reduction="mean")

    batches = [(mx.array(x), mx.array(y)) for x, y in tensors()]
    return mlx_train(lib, Block(), loss_fn, optim.Adam(learning_rate=1e-3), batches, compiled)


def block_torch(torch: Any, device: str) -> Step:
    """The pre-norm block, PyTorch style."""
    nn = torch.nn
    torch.manual_seed(0)

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ln1 = nn.LayerNorm(D)
            self.attn = nn.MultiheadAttention(D, HEADS, batch_first=True)
            self.ln2 = nn.LayerNorm(D)
            self.fc1 = nn.Linear(D, FFN)
            self.fc2 = nn.Linear(FFN, D)

        def forward(self, x: Any) -> Any:
            y = self.ln1(x)
            x = x + self.attn(y, y, y, need_weights=False)[0]
            return x + self.fc2(torch.nn.functional.gelu(self.fc1(self.ln2(x))))

    model = Block()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in tensors()]
    return torch_train(torch, model, nn.MSELoss(), optimizer, batches, device)


def encoder_mlx(lib: SimpleNamespace, compiled: bool) -> Step:
    """``nn.TransformerEncoderLayer``, MLX style (post-norm, as PyTorch's default)."""
    mx, nn, optim = lib.mx, lib.nn, lib.optim
    model = nn.TransformerEncoderLayer(D, HEADS, mlp_dims=FFN, dropout=0.0, norm_first=False)

    def loss_fn(m: Any, x: Any, y: Any) -> Any:
        return nn.losses.mse_loss(m(x, None), y, reduction="mean")

    batches = [(mx.array(x), mx.array(y)) for x, y in tensors()]
    return mlx_train(lib, model, loss_fn, optim.Adam(learning_rate=1e-3), batches, compiled)


def encoder_torch(torch: Any, device: str) -> Step:
    """``nn.TransformerEncoderLayer``, PyTorch style."""
    nn = torch.nn
    torch.manual_seed(0)
    model = nn.TransformerEncoderLayer(D, HEADS, dim_feedforward=FFN, dropout=0.0, batch_first=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in tensors()]
    return torch_train(torch, model, nn.MSELoss(), optimizer, batches, device)


WORKLOADS = [
    Workload(
        "block",
        "pre-norm transformer block d128 h4 seq64 batch32, Adam",
        mlx=block_mlx,
        torch=block_torch,
        flops=layer_flops(True),
        gemm_shape=(BATCH * SEQ, D, FFN),
        steps=10,
    ),
    Workload(
        "encoder",
        "nn.TransformerEncoderLayer d128 h4 ff512 seq64 batch32, Adam",
        mlx=encoder_mlx,
        torch=encoder_torch,
        flops=layer_flops(False),
        gemm_shape=(BATCH * SEQ, D, FFN),
        steps=10,
    ),
]
