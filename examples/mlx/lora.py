"""Fine-tune a quantized Llama-style model with LoRA adapters (QLoRA), as mlx-examples' ``lora``.

The base model is a tiny Llama (RMSNorm, RoPE, grouped-query attention through
``mx.fast.scaled_dot_product_attention``, SwiGLU MLP) with random weights; no download. It is
quantized with ``nn.quantize`` and frozen, and LoRA adapters are put on the query and value
projections of its last layers. Training data are synthetic token sequences (each sequence
counts upward from a random start), padded to a batch and masked by length, as MLX's example
batches text. The adapters alone are saved with ``mx.save_safetensors`` and loaded back.

    .venv/bin/python examples/mlx/lora.py --steps 50
"""

import argparse
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import chainrule.core as mx
import chainrule.nn as nn
import chainrule.optimizers as optim
from chainrule.utils import tree_flatten


@dataclass
class ModelArgs:
    hidden_size: int = 64
    num_hidden_layers: int = 2
    intermediate_size: int = 128
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    rms_norm_eps: float = 1e-5
    vocab_size: int = 64
    rope_theta: float = 10000
    rope_traditional: bool = False


class LoRALinear(nn.Module):
    @staticmethod
    def from_linear(linear: nn.Linear, rank: int = 8):
        output_dims, input_dims = linear.weight.shape
        if isinstance(linear, nn.QuantizedLinear):
            input_dims *= 32 // linear.bits
        lora_lin = LoRALinear(input_dims, output_dims, rank)
        lora_lin.linear = linear
        return lora_lin

    def __init__(
        self,
        input_dims: int,
        output_dims: int,
        lora_rank: int = 8,
        bias: bool = False,
        scale: float = 20.0,
    ):
        super().__init__()
        self.linear = nn.Linear(input_dims, output_dims, bias=bias)
        self.scale = scale
        scale = 1 / math.sqrt(input_dims)
        self.lora_a = mx.random.uniform(low=-scale, high=scale, shape=(input_dims, lora_rank))
        self.lora_b = mx.zeros(shape=(lora_rank, output_dims))

    def __call__(self, x):
        dtype = self.linear.weight.dtype
        if isinstance(self.linear, nn.QuantizedLinear):
            dtype = self.linear.scales.dtype
        y = self.linear(x.astype(dtype))
        z = (x @ self.lora_a) @ self.lora_b
        return y + self.scale * z


class Attention(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        dim = args.hidden_size
        self.n_heads = n_heads = args.num_attention_heads
        self.n_kv_heads = n_kv_heads = args.num_key_value_heads
        head_dim = args.hidden_size // n_heads
        self.scale = head_dim**-0.5
        self.q_proj = nn.Linear(dim, n_heads * head_dim, bias=False)
        self.k_proj = nn.Linear(dim, n_kv_heads * head_dim, bias=False)
        self.v_proj = nn.Linear(dim, n_kv_heads * head_dim, bias=False)
        self.o_proj = nn.Linear(n_heads * head_dim, dim, bias=False)
        self.rope = nn.RoPE(head_dim, traditional=args.rope_traditional, base=args.rope_theta)

    def __call__(self, x, mask=None, cache=None):
        B, L, D = x.shape
        queries, keys, values = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        queries = queries.reshape(B, L, self.n_heads, -1).transpose(0, 2, 1, 3)
        keys = keys.reshape(B, L, self.n_kv_heads, -1).transpose(0, 2, 1, 3)
        values = values.reshape(B, L, self.n_kv_heads, -1).transpose(0, 2, 1, 3)
        if cache is not None:
            key_cache, value_cache = cache
            queries = self.rope(queries, offset=key_cache.shape[2])
            keys = self.rope(keys, offset=key_cache.shape[2])
            keys = mx.concatenate([key_cache, keys], axis=2)
            values = mx.concatenate([value_cache, values], axis=2)
        else:
            queries = self.rope(queries)
            keys = self.rope(keys)
        output = mx.fast.scaled_dot_product_attention(
            queries, keys, values, scale=self.scale, mask=mask
        )
        output = output.transpose(0, 2, 1, 3).reshape(B, L, -1)
        return self.o_proj(output), (keys, values)


class MLP(nn.Module):
    def __init__(self, dim, hidden_dim):
        super().__init__()
        self.gate_proj = nn.Linear(dim, hidden_dim, bias=False)
        self.down_proj = nn.Linear(hidden_dim, dim, bias=False)
        self.up_proj = nn.Linear(dim, hidden_dim, bias=False)

    def __call__(self, x):
        return self.down_proj(nn.silu(self.gate_proj(x)) * self.up_proj(x))


class TransformerBlock(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.self_attn = Attention(args)
        self.mlp = MLP(args.hidden_size, args.intermediate_size)
        self.input_layernorm = nn.RMSNorm(args.hidden_size, eps=args.rms_norm_eps)
        self.post_attention_layernorm = nn.RMSNorm(args.hidden_size, eps=args.rms_norm_eps)

    def __call__(self, x, mask=None, cache=None):
        r, cache = self.self_attn(self.input_layernorm(x), mask, cache)
        h = x + r
        r = self.mlp(self.post_attention_layernorm(h))
        return h + r, cache


class LlamaModel(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.embed_tokens = nn.Embedding(args.vocab_size, args.hidden_size)
        self.layers = [TransformerBlock(args=args) for _ in range(args.num_hidden_layers)]
        self.norm = nn.RMSNorm(args.hidden_size, eps=args.rms_norm_eps)

    def __call__(self, inputs, cache=None):
        h = self.embed_tokens(inputs)
        mask = None
        if h.shape[1] > 1:
            mask = nn.MultiHeadAttention.create_additive_causal_mask(h.shape[1])
            mask = mask.astype(h.dtype)
        if cache is None:
            cache = [None] * len(self.layers)
        for e, layer in enumerate(self.layers):
            h, cache[e] = layer(h, mask, cache[e])
        return self.norm(h), cache


class Model(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.model = LlamaModel(args)
        self.lm_head = nn.Linear(args.hidden_size, args.vocab_size, bias=False)

    def __call__(self, inputs, cache=None):
        out, cache = self.model(inputs, cache)
        return self.lm_head(out), cache


def loss(model, inputs, targets, lengths):
    logits, _ = model(inputs)
    logits = logits.astype(mx.float32)
    length_mask = mx.arange(inputs.shape[1])[None, :] < lengths[:, None]
    ce = nn.losses.cross_entropy(logits, targets) * length_mask
    ntoks = length_mask.sum()
    ce = ce.sum() / ntoks
    return ce, ntoks


def iterate_batches(vocab_size, batch_size, rng):
    """Batches of counting sequences of random lengths, padded with zeros."""
    while True:
        lengths = rng.integers(8, 24, size=batch_size)
        batch_arr = np.zeros((batch_size, lengths.max()), np.int32)
        for j, n in enumerate(lengths):
            start = rng.integers(1, vocab_size)
            batch_arr[j, :n] = (start + np.arange(n)) % (vocab_size - 1) + 1
        batch = mx.array(batch_arr)
        yield batch[:, :-1], batch[:, 1:], mx.array(lengths - 1)


def main(args):
    np.random.seed(args.seed)
    mx.random.seed(args.seed)
    margs = ModelArgs()
    model = Model(margs)
    nn.quantize(model, group_size=32, bits=4)
    mx.eval(model.parameters())

    # Freeze all layers other than LoRA linears.
    model.freeze()
    for layer in model.model.layers[len(model.model.layers) - args.lora_layers :]:
        layer.self_attn.q_proj = LoRALinear.from_linear(layer.self_attn.q_proj)
        layer.self_attn.v_proj = LoRALinear.from_linear(layer.self_attn.v_proj)
    if args.init_weights:
        model.load_weights(args.init_weights)
    mx.eval(model.parameters())
    if args.save_init:
        model.save_weights(args.save_init)

    p = sum(v.size for _, v in tree_flatten(model.parameters())) / 10**6
    print(f"Total parameters {p:.3f}M")
    p = sum(v.size for _, v in tree_flatten(model.trainable_parameters())) / 10**6
    print(f"Trainable parameters {p:.3f}M")
    trainable = [k for k, _ in tree_flatten(model.trainable_parameters())]
    frozen_before = {k: mx.array(v) for k, v in tree_flatten(model.parameters())}

    optimizer = optim.Adam(learning_rate=args.learning_rate)
    loss_value_and_grad = nn.value_and_grad(model, loss)

    batches = iterate_batches(margs.vocab_size, args.batch_size, np.random.default_rng(args.seed))
    losses = []
    tic = time.perf_counter()
    for it, batch in zip(range(args.steps), batches):
        (lvalue, toks), grad = loss_value_and_grad(model, *batch)
        optimizer.update(model, grad)
        mx.eval(model.parameters(), optimizer.state, lvalue)
        losses.append(lvalue.item())
        if (it + 1) % 10 == 0 or it + 1 == args.steps:
            toc = time.perf_counter()
            print(
                f"Iter {it + 1}: Train loss {losses[-1]:.3f}, "
                f"It/sec {(it + 1) / (toc - tic):.3f}, Tokens {toks.item()}"
            )

    # Only the adapters changed.
    changed = [
        k
        for k, v in tree_flatten(model.parameters())
        if k in frozen_before and not mx.array_equal(v, frozen_before[k]).item()
    ]
    # Save the adapters alone, then load them into a freshly adapted copy of the model.
    adapter_file = Path(args.adapter_file)
    mx.save_safetensors(str(adapter_file), dict(tree_flatten(model.trainable_parameters())))
    probe = next(batches)[0]
    logits, _ = model(probe)
    for layer in model.model.layers:
        for name in ("q_proj", "v_proj"):
            proj = getattr(layer.self_attn, name)
            if isinstance(proj, LoRALinear):
                proj.lora_b = mx.zeros_like(proj.lora_b)
    model.load_weights(str(adapter_file), strict=False)
    reloaded, _ = model(probe)

    quantized = sum(isinstance(m, nn.QuantizedLinear) for _, m in model.named_modules())
    print(f"quantized_linears {quantized}")
    print(f"trainable_tensors {len(trainable)}")
    print(f"lora_tensors {sum(k.endswith(('lora_a', 'lora_b')) for k in trainable)}")
    print(f"frozen_changed {sum(not k.endswith(('lora_a', 'lora_b')) for k in changed)}")
    print(f"adapter_tensors {len(mx.load(str(adapter_file)))}")
    print(f"reload_max_diff {mx.abs(logits - reloaded).max().item():.6g}")
    print(f"first_loss {losses[0]:.6f}")
    print(f"last_loss {losses[-1]:.6f}")
    return losses


parser = argparse.ArgumentParser(description="LoRA or QLoRA finetuning.")
parser.add_argument("--lora-layers", type=int, default=2, help="Number of layers to fine-tune")
parser.add_argument("--batch-size", type=int, default=8, help="Minibatch size.")
parser.add_argument("--steps", type=int, default=100, help="Iterations to train for.")
parser.add_argument("--learning-rate", type=float, default=1e-3, help="Adam learning rate.")
parser.add_argument(
    "--adapter-file",
    type=str,
    default="adapters.safetensors",
    help="Save path for the trained adapter weights.",
)
parser.add_argument("--seed", type=int, default=0, help="The PRNG seed")
parser.add_argument("--init-weights", type=str, default=None, help="Start from these weights.")
parser.add_argument("--save-init", type=str, default=None, help="Save the starting weights here.")

if __name__ == "__main__":
    main(parser.parse_args())
