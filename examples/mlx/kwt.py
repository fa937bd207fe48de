"""Train a Keyword Transformer (KWT), as ml-explore/mlx-examples' ``speechcommands`` does.

The inputs are synthetic log-Mel spectrograms of the Speech Commands shape (no download):
98 frames of 40 frequency bins. Each keyword is a ridge of energy sweeping across frequency
along its own path, shifted in time and buried in noise. KWT cuts each frame into one patch
(``patch_res = (1, 40)``), prepends a class token and classifies with a small Transformer.
Training uses SGD with momentum and a compiled step over the model's and optimizer's state.

    .venv/bin/python examples/mlx/kwt.py --steps 50
"""

import argparse
import time
from functools import partial

import numpy as np

import chainrule.core as mx
import chainrule.nn as nn
import chainrule.optimizers as optim
from chainrule.utils import tree_flatten


class FeedForward(nn.Sequential):
    def __init__(self, dim, hidden_dim, dropout=0.0):
        super().__init__(
            nn.Linear(dim, hidden_dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, dim),
            nn.Dropout(dropout),
        )


class Attention(nn.Module):
    def __init__(self, dim, heads, dropout=0.0):
        super().__init__()
        self.heads = heads
        self.scale = dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.out = nn.Sequential(nn.Linear(dim, dim), nn.Dropout(dropout))

    def __call__(self, x):
        b, n, _, h = *x.shape, self.heads
        qkv = self.qkv(x)
        qkv = qkv.reshape(b, n, 3, h, -1).transpose(2, 0, 3, 1, 4)
        q, k, v = qkv
        attn = (q @ k.transpose(0, 1, 3, 2)) * self.scale
        attn = mx.softmax(attn, axis=-1)
        x = (attn @ v).transpose(0, 2, 1, 3).reshape(b, n, -1)
        return self.out(x)


class Block(nn.Module):
    def __init__(self, dim, heads, mlp_dim, dropout=0.0):
        super().__init__()
        self.attn = Attention(dim, heads, dropout=dropout)
        self.norm1 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim, mlp_dim, dropout=dropout)
        self.norm2 = nn.LayerNorm(dim)

    def __call__(self, x):
        x = self.norm1(self.attn(x)) + x
        x = self.norm2(self.ff(x)) + x
        return x


class Transformer(nn.Module):
    def __init__(self, dim, depth, heads, mlp_dim, dropout=0.0):
        super().__init__()
        self.layers = [Block(dim, heads, mlp_dim, dropout=dropout) for _ in range(depth)]

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


class KWT(nn.Module):
    """The Keyword Transformer (Berg et al. 2021): a ViT over rectangular time patches."""

    def __init__(
        self,
        input_res,
        patch_res,
        num_classes,
        dim,
        depth,
        heads,
        mlp_dim,
        pool="mean",
        in_channels=1,
        dropout=0.0,
        emb_dropout=0.0,
    ):
        super().__init__()
        self.num_patches = int((input_res[0] / patch_res[0]) * (input_res[1] / patch_res[1]))
        self.dim = dim
        self.patch_embedding = nn.Conv2d(in_channels, dim, kernel_size=patch_res, stride=patch_res)
        self.pos_embedding = mx.random.truncated_normal(-0.01, 0.01, (self.num_patches + 1, dim))
        self.cls_token = mx.random.truncated_normal(-0.01, 0.01, (dim,))
        self.dropout = nn.Dropout(emb_dropout)
        self.transformer = Transformer(dim, depth, heads, mlp_dim, dropout)
        self.pool = pool
        self.mlp_head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, num_classes))

    def num_params(self):
        return sum(x.size for _, x in tree_flatten(self.parameters()))

    def __call__(self, x):
        if x.ndim != 4:
            x = mx.expand_dims(x, axis=-1)
        x = self.patch_embedding(x)
        x = x.reshape(x.shape[0], -1, self.dim)
        assert x.shape[1] == self.num_patches
        cls_tokens = mx.broadcast_to(self.cls_token, (x.shape[0], 1, self.dim))
        x = mx.concatenate((cls_tokens, x), axis=1)
        x = x + self.pos_embedding
        x = self.dropout(x)
        x = self.transformer(x)
        x = x.mean(axis=1) if self.pool == "mean" else x[:, 0]
        return self.mlp_head(x)


def kwt_tiny(**kwargs):
    return KWT([98, 40], [1, 40], 12, dim=32, depth=2, heads=2, mlp_dim=64, **kwargs)


def synthetic_speechcommands(num, num_classes, seed):
    """(num, 98, 40) float32 spectrograms, normalised, and their keyword labels."""
    rng = np.random.default_rng(seed)
    paths = np.random.default_rng(99).uniform(2, 37, size=(num_classes, 4))
    frames = np.arange(98)
    bins = np.arange(40)
    labels = rng.integers(0, num_classes, size=num)
    audio = rng.normal(0, 1, size=(num, 98, 40)).astype(np.float32)
    for i, k in enumerate(labels):
        shift = rng.integers(-10, 10)
        centre = np.interp(frames, [0, 32, 64, 97], paths[k])
        ridge = np.exp(-0.5 * ((bins[None, :] - centre[:, None]) / 1.5) ** 2)
        audio[i] += 3.0 * np.roll(ridge, shift, axis=0)
    audio = (audio - audio.mean(axis=(1, 2), keepdims=True)) / audio.std(axis=(1, 2), keepdims=True)
    return audio, labels.astype(np.uint32)


def batch_iterate(batch_size, audio, labels):
    perm = np.random.permutation(labels.size)
    for s in range(0, labels.size - batch_size + 1, batch_size):
        ids = perm[s : s + batch_size]
        yield {"audio": audio[ids], "label": labels[ids]}


def eval_fn(model, x, y):
    return mx.mean(mx.argmax(model(x), axis=1) == y)


def main(args):
    mx.random.seed(args.seed)
    np.random.seed(args.seed)
    model = kwt_tiny(emb_dropout=args.emb_dropout)
    if args.init_weights:
        model.load_weights(args.init_weights)
    mx.eval(model.parameters())
    if args.save_init:
        model.save_weights(args.save_init)
    print(f"Number of params: {model.num_params() / 1e6:0.04f} M")
    optimizer = optim.SGD(learning_rate=args.lr, momentum=0.9, weight_decay=1e-4)

    audio, labels = synthetic_speechcommands(1024, 12, args.seed)
    val_audio, val_labels = synthetic_speechcommands(256, 12, args.seed + 1)

    def train_step(model, x, y):
        output = model(x)
        loss = mx.mean(nn.losses.cross_entropy(output, y))
        acc = mx.mean(mx.argmax(output, axis=1) == y)
        return loss, acc

    state = [model.state, optimizer.state, mx.random.state]

    @partial(mx.compile, inputs=state, outputs=state)
    def step(x, y):
        (loss, acc), grads = nn.value_and_grad(model, train_step)(model, x, y)
        optimizer.update(model, grads)
        return loss, acc

    losses = []
    it = 0
    model.train(True)
    while it < args.steps:
        for batch in batch_iterate(args.batch_size, audio, labels):
            x = mx.array(batch["audio"])
            y = mx.array(batch["label"])
            tic = time.perf_counter()
            loss, acc = step(x, y)
            mx.eval(state)
            toc = time.perf_counter()
            losses.append(loss.item())
            it += 1
            if it % 10 == 0 or it == args.steps:
                print(
                    f"Step {it:03d} | Train loss {loss.item():.3f} | "
                    f"Train acc {acc.item():.3f} | "
                    f"Throughput: {x.shape[0] / (toc - tic):.2f} samples/second"
                )
            if it == args.steps:
                break

    model.train(False)
    val_acc = eval_fn(model, mx.array(val_audio), mx.array(val_labels))
    print(f"Val acc {val_acc.item():.3f}")
    print(f"first_loss {losses[0]:.6f}")
    print(f"last_loss {losses[-1]:.6f}")
    print(f"val_accuracy {val_acc.item():.6f}")
    return losses


parser = argparse.ArgumentParser(add_help=True)
parser.add_argument("--batch_size", type=int, default=32, help="batch size")
parser.add_argument("--steps", type=int, default=100, help="training steps")
parser.add_argument("--lr", type=float, default=3e-2, help="learning rate")
parser.add_argument("--emb_dropout", type=float, default=0.1, help="embedding dropout")
parser.add_argument("--seed", type=int, default=0, help="random seed")
parser.add_argument("--init-weights", type=str, default=None, help="Start from these weights.")
parser.add_argument("--save-init", type=str, default=None, help="Save the starting weights here.")

if __name__ == "__main__":
    main(parser.parse_args())
