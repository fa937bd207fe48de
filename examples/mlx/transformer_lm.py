"""Train a decoder-only Transformer language model, as ml-explore/mlx-examples' ``transformer_lm``.

The corpus is synthetic (no download): sentences drawn from a tiny grammar, spelled out as
characters, so next-character prediction has real structure to learn. The model is a causal
``nn.TransformerEncoder`` (pre-norm) with sinusoidal positions and an additive causal mask;
training uses AdamW with a linear warm-up joined to a cosine decay
(``optim.join_schedules``), and a compiled step over the model's and the optimizer's state.

    .venv/bin/python examples/mlx/transformer_lm.py --steps 100
"""

import argparse
import math
import time
from functools import partial

import numpy as np

import chainrule.core as mx
import chainrule.nn as nn
import chainrule.optimizers as optim
from chainrule.utils import tree_flatten

SUBJECTS = ["the cat", "a dog", "my friend", "the bird"]
VERBS = ["sees", "likes", "finds", "hears"]
OBJECTS = ["the ball.", "a tree.", "the moon.", "some food."]


class TransformerLM(nn.Module):
    def __init__(self, vocab_size: int, num_layers: int, dims: int, num_heads: int, checkpoint):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, dims)
        self.pe = nn.SinusoidalPositionalEncoding(dims)
        self.transformer = nn.TransformerEncoder(
            num_layers, dims, num_heads, norm_first=True, checkpoint=checkpoint
        )
        self.out_proj = nn.Linear(dims, vocab_size)

    def __call__(self, x):
        L = x.shape[1]
        mask = nn.MultiHeadAttention.create_additive_causal_mask(L)
        x = self.embedding(x)
        x = x + self.pe(mx.arange(L))
        x = self.transformer(x, mask)
        return self.out_proj(x)


def load_dataset(num_sentences, seed):
    """A vocabulary and train/valid token arrays of a synthetic character corpus."""
    rng = np.random.default_rng(seed)
    words = [
        f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} "
        for _ in range(num_sentences)
    ]
    text = "".join(words)
    vocab = sorted(set(text))
    index = {c: i for i, c in enumerate(vocab)}
    tokens = np.array([index[c] for c in text], dtype=np.uint32)
    split = int(0.9 * tokens.size)
    return vocab, tokens[:split], tokens[split:]


def to_samples(context_size, dataset):
    window_size = context_size + 1  # include target
    samples = dataset.size // window_size
    dataset = dataset[: samples * window_size]
    return mx.array(dataset.reshape(samples, -1))


def iterate_batches(batch_size, context_size, dataset):
    inputs = to_samples(context_size, dataset)
    s = 0
    while True:
        if s == 0:
            perm = mx.array(np.random.permutation(inputs.shape[0]))
        ids = perm[s : s + batch_size]
        yield inputs[ids]
        s += batch_size
        if s >= inputs.shape[0]:
            s = 0


def main(args):
    mx.random.seed(args.seed)
    np.random.seed(args.seed)
    batch_size = args.batch_size
    context_size = args.context_size

    vocab, train, valid = load_dataset(2000, args.seed)

    model = TransformerLM(len(vocab), args.num_blocks, args.dim, args.num_heads, args.checkpoint)
    if args.init_weights:
        model.load_weights(args.init_weights)
    mx.eval(model.parameters())
    if args.save_init:
        model.save_weights(args.save_init)
    nparams = sum(x.size for k, x in tree_flatten(model.parameters()) if "embedding" not in k)
    print(f"Training a transformer with {nparams / 1024**2:.3f} M parameters")

    def loss_fn(model, inputs, reduction="mean"):
        x, y = inputs[..., :-1], inputs[..., 1:]
        logits = model(x)
        return nn.losses.cross_entropy(logits, y, reduction=reduction)

    warmup = optim.linear_schedule(0, args.learning_rate, steps=args.lr_warmup)
    cosine = optim.cosine_decay(args.learning_rate, max(args.steps - args.lr_warmup, 1))
    lr_schedule = optim.join_schedules([warmup, cosine], [args.lr_warmup])
    optimizer = optim.AdamW(learning_rate=lr_schedule, weight_decay=args.weight_decay)

    def eval_fn(dataset):
        inputs = to_samples(context_size, dataset)
        loss = 0
        for s in range(0, inputs.shape[0], batch_size):
            losses = loss_fn(model, inputs[s : s + batch_size], reduction="sum")
            loss += losses.item()
        return loss / (inputs.size - inputs.shape[0])

    state = [model.state, optimizer.state]

    @partial(mx.compile, inputs=state, outputs=state)
    def step(inputs):
        loss_and_grad_fn = nn.value_and_grad(model, loss_fn)
        loss, grads = loss_and_grad_fn(model, inputs)
        optimizer.update(model, grads)
        return loss

    train_iterator = iterate_batches(batch_size, context_size, train)
    losses = []
    tic = time.perf_counter()
    for it, inputs in zip(range(args.steps), train_iterator):
        loss = step(inputs)
        mx.eval(state)
        losses.append(loss.item())
        if (it + 1) % args.steps_per_report == 0:
            train_loss = sum(losses[-args.steps_per_report :]) / args.steps_per_report
            toc = time.perf_counter()
            print(
                f"Iter {it + 1}: Train loss {train_loss:.3f}, "
                f"Learning rate {optimizer.learning_rate.item():.2e}, "
                f"It/sec {args.steps_per_report / (toc - tic):.3f}"
            )
            tic = time.perf_counter()

    val_loss = eval_fn(valid)
    print(f"Val loss {val_loss:.3f}, Val ppl {math.exp(val_loss):.3f}")
    print(f"first_loss {losses[0]:.6f}")
    print(f"last_loss {losses[-1]:.6f}")
    print(f"val_loss {val_loss:.6f}")
    print(f"vocab_size {len(vocab)}")
    return losses


parser = argparse.ArgumentParser("Train a decoder-only Transformer LM with chainrule.")
parser.add_argument("--seed", type=int, default=42, help="Seed for the RNGs.")
parser.add_argument("--context_size", type=int, default=32, help="Context size in tokens.")
parser.add_argument("--num_blocks", type=int, default=2, help="Number of Transformer blocks.")
parser.add_argument("--dim", type=int, default=64, help="Embedding and hidden width.")
parser.add_argument("--num_heads", type=int, default=4, help="Attention heads.")
parser.add_argument("--checkpoint", action="store_true", help="Gradient checkpointing.")
parser.add_argument("--batch_size", type=int, default=16, help="Minibatch size.")
parser.add_argument("--steps", type=int, default=200, help="Iterations to train for.")
parser.add_argument("--learning_rate", type=float, default=3e-3, help="AdamW peak rate.")
parser.add_argument("--weight_decay", type=float, default=1e-5, help="AdamW weight decay.")
parser.add_argument("--lr_warmup", type=int, default=10, help="Linear warm-up iterations.")
parser.add_argument("--steps_per_report", type=int, default=10, help="Steps between reports.")
parser.add_argument("--init-weights", type=str, default=None, help="Start from these weights.")
parser.add_argument("--save-init", type=str, default=None, help="Save the starting weights here.")

if __name__ == "__main__":
    main(parser.parse_args())
