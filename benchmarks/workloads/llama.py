"""``llama``: greedy autoregressive decoding of a small Llama-style model with a KV cache.

4 layers, d 256, 8 heads, RMSNorm, rotary embeddings (interleaved pairs, base 10000), SwiGLU
MLP 256-512-256, no biases, vocab 1000, random weights, batch 1. One step is one
generation: a 32-token prompt in one pass (additive causal mask), then 63 more passes of
one position each, every layer attending to its cache: 64 new tokens; the suite reports
tokens per second. The model follows ``examples/mlx/llm_inference.py`` (MLX's LLM
inference walkthrough), written here against the modules passed in, so that the same
source runs on chainrule and on real MLX; the PyTorch version computes the same thing.
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import numpy as np

from . import NotApplicable, Step, Workload

LAYERS, DIMS, HEADS, MLP, VOCAB, PROMPT, NEW = 4, 256, 8, 512, 1000, 32, 64


def prompt() -> np.ndarray:
    """The (1, PROMPT) prompt tokens."""
    return np.random.default_rng(0).integers(0, VOCAB, (1, PROMPT)).astype(np.int32)


def build_mlx(lib: SimpleNamespace, compiled: bool) -> Step:
    """Decoding, MLX style (``mx.fast.rope``, caches as lists of arrays)."""
    if compiled:
        raise NotApplicable("decoding is not compiled (the cache grows each token)")
    mx, nn = lib.mx, lib.nn

    class Attention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.q_proj = nn.Linear(DIMS, DIMS, bias=False)
            self.k_proj = nn.Linear(DIMS, DIMS, bias=False)
            self.v_proj = nn.Linear(DIMS, DIMS, bias=False)
            self.o_proj = nn.Linear(DIMS, DIMS, bias=False)

        def __call__(self, x: Any, mask: Any, cache: Any) -> Any:
            B, L, _ = x.shape
            q, k, v = (
                p(x).reshape(B, L, HEADS, -1).transpose(0, 2, 1, 3)
                for p in (self.q_proj, self.k_proj, self.v_proj)
            )
            offset = 0 if cache is None else cache[0].shape[2]
            q = mx.fast.rope(q, DIMS // HEADS, traditional=True, base=1e4, scale=1.0, offset=offset)
            k = mx.fast.rope(k, DIMS // HEADS, traditional=True, base=1e4, scale=1.0, offset=offset)
            if cache is not None:
                k = mx.concatenate([cache[0], k], axis=2)
                v = mx.concatenate([cache[1], v], axis=2)
            scores = (q * (1 / math.sqrt(DIMS // HEADS))) @ k.transpose(0, 1, 3, 2)
            if mask is not None:
                scores = scores + mask
            out = mx.softmax(scores, axis=-1) @ v
            return self.o_proj(out.transpose(0, 2, 1, 3).reshape(B, L, -1)), (k, v)

    class Layer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attention = Attention()
            self.norm1 = nn.RMSNorm(DIMS)
            self.norm2 = nn.RMSNorm(DIMS)
            self.gate = nn.Linear(DIMS, MLP, bias=False)
            self.up = nn.Linear(DIMS, MLP, bias=False)
            self.down = nn.Linear(MLP, DIMS, bias=False)

        def __call__(self, x: Any, mask: Any, cache: Any) -> Any:
            y, cache = self.attention(self.norm1(x), mask, cache)
            x = x + y
            y = self.norm2(x)
            a = self.gate(y)
            return x + self.down(a * mx.sigmoid(a) * self.up(y)), cache

    class Llama(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = nn.Embedding(VOCAB, DIMS)
            self.layers = [Layer() for _ in range(LAYERS)]
            self.norm = nn.RMSNorm(DIMS)
            self.out_proj = nn.Linear(DIMS, VOCAB, bias=False)

        def generate(self, tokens: Any, n: int) -> Any:
            mask = nn.MultiHeadAttention.create_additive_causal_mask(tokens.shape[1])
            mask = mask.astype(self.embedding.weight.dtype)
            caches: list[Any] = [None] * LAYERS
            x = self.embedding(tokens)
            for _ in range(n):
                for i, layer in enumerate(self.layers):
                    x, caches[i] = layer(x, mask, caches[i])
                token = mx.argmax(self.out_proj(self.norm(x[:, -1])), axis=-1)
                mx.eval(token)
                x, mask = self.embedding(token[:, None]), None
            return token

    mx.random.seed(0)
    model = Llama()
    mx.eval(model.parameters())
    tokens = mx.array(prompt())
    return (lambda k: model.generate(tokens, NEW)), (lambda t: float(t.item()))


def build_torch(torch: Any, device: str) -> Step:
    """Decoding, PyTorch style (rotary embeddings written out, ``torch.no_grad``)."""
    nn = torch.nn
    torch.manual_seed(0)
    hd = DIMS // HEADS

    def rope(x: Any, offset: int) -> Any:
        L = x.shape[2]
        pos = torch.arange(offset, offset + L, device=device).float()
        freqs = torch.exp(torch.arange(0, hd, 2, device=device).float() * (-math.log(1e4) / hd))
        angles = pos[:, None] * freqs[None, :]
        cos, sin = torch.cos(angles), torch.sin(angles)
        pairs = x.reshape(*x.shape[:-1], hd // 2, 2)
        x1, x2 = pairs[..., 0], pairs[..., 1]
        return torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).reshape(x.shape)

    class Attention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.q_proj = nn.Linear(DIMS, DIMS, bias=False)
            self.k_proj = nn.Linear(DIMS, DIMS, bias=False)
            self.v_proj = nn.Linear(DIMS, DIMS, bias=False)
            self.o_proj = nn.Linear(DIMS, DIMS, bias=False)

        def forward(self, x: Any, mask: Any, cache: Any) -> Any:
            B, L, _ = x.shape
            q, k, v = (
                p(x).reshape(B, L, HEADS, hd).transpose(1, 2)
                for p in (self.q_proj, self.k_proj, self.v_proj)
            )
            offset = 0 if cache is None else cache[0].shape[2]
            q, k = rope(q, offset), rope(k, offset)
            if cache is not None:
                k = torch.cat([cache[0], k], dim=2)
                v = torch.cat([cache[1], v], dim=2)
            scores = (q * (1 / math.sqrt(hd))) @ k.transpose(-1, -2)
            if mask is not None:
                scores = scores + mask
            out = torch.softmax(scores, dim=-1) @ v
            return self.o_proj(out.transpose(1, 2).reshape(B, L, DIMS)), (k, v)

    class Layer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attention = Attention()
            self.norm1 = nn.RMSNorm(DIMS, eps=1e-5)
            self.norm2 = nn.RMSNorm(DIMS, eps=1e-5)
            self.gate = nn.Linear(DIMS, MLP, bias=False)
            self.up = nn.Linear(DIMS, MLP, bias=False)
            self.down = nn.Linear(MLP, DIMS, bias=False)

        def forward(self, x: Any, mask: Any, cache: Any) -> Any:
            y, cache = self.attention(self.norm1(x), mask, cache)
            x = x + y
            y = self.norm2(x)
            a = self.gate(y)
            return x + self.down(a * torch.sigmoid(a) * self.up(y)), cache

    class Llama(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = nn.Embedding(VOCAB, DIMS)
            self.layers = nn.ModuleList([Layer() for _ in range(LAYERS)])
            self.norm = nn.RMSNorm(DIMS, eps=1e-5)
            self.out_proj = nn.Linear(DIMS, VOCAB, bias=False)

        def generate(self, tokens: Any, n: int) -> Any:
            L = tokens.shape[1]
            mask = torch.triu(torch.full((L, L), float("-inf"), device=device), diagonal=1)
            caches: list[Any] = [None] * LAYERS
            with torch.no_grad():
                x = self.embedding(tokens)
                for _ in range(n):
                    for i, layer in enumerate(self.layers):
                        x, caches[i] = layer(x, mask, caches[i])
                    token = torch.argmax(self.out_proj(self.norm(x[:, -1])), dim=-1)
                    x, mask = self.embedding(token[:, None]), None
            return token

    model = Llama().to(device)
    tokens = torch.from_numpy(prompt().astype(np.int64)).to(device)
    return (lambda k: model.generate(tokens, NEW)), (lambda t: float(t.item()))


WORKLOADS = [
    Workload(
        "llama",
        f"Llama-style decode, {LAYERS} layers d{DIMS} h{HEADS}, KV cache, "
        f"{PROMPT}-token prompt + {NEW} tokens, greedy",
        mlx=build_mlx,
        torch=build_torch,
        steps=3,
        unit="tok/s",
        tokens=NEW,
    )
]
