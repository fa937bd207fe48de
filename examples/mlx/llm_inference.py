"""Generate text with a Llama-style model and a KV cache, as in MLX's LLM inference walkthrough.

The model has random weights (no download) and a character vocabulary, so the text is
gibberish; the machinery is the real one: a prompt is processed in one pass with an additive
causal mask, each layer keeps its keys and values, and every further token is one pass over a
single position that rotates its query and key with ``mx.fast.rope`` at the right offset and
attends to the cache. Tokens are sampled with ``mx.random.categorical`` (or greedily with
``--temp 0``). ``--steps`` is the number of tokens to generate.

The program checks itself: the logits of the cached generation must equal those of one full
pass over the whole generated sequence (``cache_max_diff``).

    .venv/bin/python examples/mlx/llm_inference.py --steps 50 --prompt "hello"
"""

import argparse
import math
import time

import chainrule.core as mx
import chainrule.nn as nn

VOCAB = list(" abcdefghijklmnopqrstuvwxyz.,!?'")


class LlamaAttention(nn.Module):
    def __init__(self, dims: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dims // num_heads
        self.query_proj = nn.Linear(dims, dims, bias=False)
        self.key_proj = nn.Linear(dims, dims, bias=False)
        self.value_proj = nn.Linear(dims, dims, bias=False)
        self.out_proj = nn.Linear(dims, dims, bias=False)

    def rope(self, x, offset=0):
        return mx.fast.rope(
            x, self.head_dim, traditional=True, base=10000.0, scale=1.0, offset=offset
        )

    def __call__(self, queries, keys, values, mask=None, cache=None):
        queries = self.query_proj(queries)
        keys = self.key_proj(keys)
        values = self.value_proj(values)

        # Extract some shapes
        num_heads = self.num_heads
        B, L, D = queries.shape

        # Prepare the queries, keys and values for the attention computation
        queries = queries.reshape(B, L, num_heads, -1).transpose(0, 2, 1, 3)
        keys = keys.reshape(B, L, num_heads, -1).transpose(0, 2, 1, 3)
        values = values.reshape(B, L, num_heads, -1).transpose(0, 2, 1, 3)

        # Add RoPE to the queries and keys and combine them with the cache
        if cache is not None:
            key_cache, value_cache = cache
            queries = self.rope(queries, offset=key_cache.shape[2])
            keys = self.rope(keys, offset=key_cache.shape[2])
            keys = mx.concatenate([key_cache, keys], axis=2)
            values = mx.concatenate([value_cache, values], axis=2)
        else:
            queries = self.rope(queries)
            keys = self.rope(keys)

        # Finally perform the attention computation
        scale = math.sqrt(1 / queries.shape[-1])
        scores = (queries * scale) @ keys.transpose(0, 1, 3, 2)
        if mask is not None:
            scores = scores + mask
        scores = mx.softmax(scores, axis=-1)
        values_hat = (scores @ values).transpose(0, 2, 1, 3).reshape(B, L, -1)

        # Note that we return the keys and values to possibly be used as a cache
        return self.out_proj(values_hat), (keys, values)


class LlamaEncoderLayer(nn.Module):
    def __init__(self, dims: int, mlp_dims: int, num_heads: int):
        super().__init__()
        self.attention = LlamaAttention(dims, num_heads)
        self.norm1 = nn.RMSNorm(dims)
        self.norm2 = nn.RMSNorm(dims)
        self.linear1 = nn.Linear(dims, mlp_dims, bias=False)
        self.linear2 = nn.Linear(dims, mlp_dims, bias=False)
        self.linear3 = nn.Linear(mlp_dims, dims, bias=False)

    def __call__(self, x, mask=None, cache=None):
        y = self.norm1(x)
        y, cache = self.attention(y, y, y, mask, cache)
        x = x + y
        y = self.norm2(x)
        a = self.linear1(y)
        b = self.linear2(y)
        y = a * mx.sigmoid(a) * b
        y = self.linear3(y)
        x = x + y
        return x, cache


class Llama(nn.Module):
    def __init__(self, num_layers: int, vocab_size: int, dims: int, mlp_dims: int, num_heads: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, dims)
        self.layers = [LlamaEncoderLayer(dims, mlp_dims, num_heads) for _ in range(num_layers)]
        self.norm = nn.RMSNorm(dims)
        self.out_proj = nn.Linear(dims, vocab_size, bias=False)

    def __call__(self, x):
        mask = nn.MultiHeadAttention.create_additive_causal_mask(x.shape[1])
        mask = mask.astype(self.embedding.weight.dtype)
        x = self.embedding(x)
        for layer in self.layers:
            x, _ = layer(x, mask)
        x = self.norm(x)
        return self.out_proj(x)

    def generate(self, x, temp=1.0):
        """Yield (token, logits) pairs: the prompt in one pass, then one position at a time."""

        def sample(logits):
            if temp == 0:
                return mx.argmax(logits, axis=-1)
            return mx.random.categorical(logits * (1 / temp))

        cache = []

        # Make an additive causal mask. We will need that to process the prompt.
        mask = nn.MultiHeadAttention.create_additive_causal_mask(x.shape[1])
        mask = mask.astype(self.embedding.weight.dtype)

        # Process the prompt the same way as in __call__ but save the caches.
        x = self.embedding(x)
        for layer in self.layers:
            x, c = layer(x, mask=mask)
            cache.append(c)
        x = self.norm(x)
        # Only the last logits matter: they predict the next token.
        y = self.out_proj(x[:, -1])
        token = sample(y)
        yield token, y

        # Feed each generated token back, one position at a time.
        while True:
            x = token[:, None]
            x = self.embedding(x)
            for i in range(len(cache)):
                # Overwrite the arrays in the cache list; the old ones are then freed.
                x, cache[i] = self.layers[i](x, mask=None, cache=cache[i])
            x = self.norm(x)
            y = self.out_proj(x[:, -1])
            token = sample(y)
            yield token, y


def main(args):
    mx.random.seed(args.seed)
    model = Llama(args.num_layers, len(VOCAB), args.dims, args.mlp_dims, args.num_heads)
    if args.init_weights:
        model.load_weights(args.init_weights)
    mx.eval(model.parameters())
    if args.save_init:
        model.save_weights(args.save_init)

    prompt = mx.array([[VOCAB.index(c) for c in args.prompt.lower() if c in VOCAB]])
    print(args.prompt, end="", flush=True)

    tic = time.perf_counter()
    tokens, logits = [], []
    for token, y in model.generate(prompt, args.temp):
        tokens.append(token)
        logits.append(y)
        mx.eval(token)
        print(VOCAB[token.item()], end="", flush=True)
        if len(tokens) >= args.steps:
            break
    toc = time.perf_counter()
    print()
    print(f"[INFO] {len(tokens) / (toc - tic):.1f} tokens/s")

    # One full pass over prompt + generated tokens (all but the last, which nothing read yet)
    # must give the logits that the cached, one-token-at-a-time passes gave.
    full = mx.concatenate([prompt, mx.stack(tokens[:-1], axis=1)], axis=1)
    full_logits = model(full)[:, prompt.shape[1] - 1 :]
    cached_logits = mx.stack(logits, axis=1)
    diff = mx.abs(full_logits - cached_logits).max()
    log_probs = nn.log_softmax(cached_logits, axis=-1)
    picked = mx.take_along_axis(log_probs, mx.stack(tokens, axis=1)[..., None], axis=-1)

    argmax_agree = mx.mean(mx.argmax(cached_logits, axis=-1) == mx.stack(tokens, axis=1))

    print(f"generated_tokens {len(tokens)}")
    print(f"tokens {','.join(str(t.item()) for t in tokens)}")
    print(f"token_min {min(t.item() for t in tokens)}")
    print(f"token_max {max(t.item() for t in tokens)}")
    print(f"logits_shape {'x'.join(str(d) for d in cached_logits.shape)}")
    print(f"mean_log_prob {picked.mean().item():.6f}")
    print(f"cache_max_diff {diff.item():.6g}")
    print(f"argmax_agree {argmax_agree.item():.6f}")
    return tokens


parser = argparse.ArgumentParser("Llama-style inference with a KV cache.")
parser.add_argument("--steps", type=int, default=100, help="Tokens to generate.")
parser.add_argument("--prompt", type=str, default="in the beginning", help="The prompt.")
parser.add_argument("--temp", type=float, default=1.0, help="Sampling temperature (0: greedy).")
parser.add_argument("--num_layers", type=int, default=4)
parser.add_argument("--dims", type=int, default=64)
parser.add_argument("--mlp_dims", type=int, default=128)
parser.add_argument("--num_heads", type=int, default=4)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--init-weights", type=str, default=None, help="Start from these weights.")
parser.add_argument("--save-init", type=str, default=None, help="Save the starting weights here.")

if __name__ == "__main__":
    main(parser.parse_args())
