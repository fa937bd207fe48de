"""Train a small ResNet on CIFAR-10-shaped images, as ml-explore/mlx-examples' ``cifar`` does.

The images are synthetic (no download): 32x32 RGB, NHWC, ten classes, each class a coloured
stripe pattern with noise, so a ResNet can learn them in a few steps. Training batches are
augmented as MLX's example augments CIFAR (random horizontal flip, 4-pixel zero padding and a
random 32x32 crop, per-channel normalisation). The step is compiled over the model's and the
optimizer's state and averages gradients across a distributed group (a no-op on one process).

    .venv/bin/python examples/mlx/cifar_resnet.py --steps 50
"""

import argparse
import time
from functools import partial

import numpy as np

import chainrule.core as mx
import chainrule.nn as nn
import chainrule.optimizers as optim
from chainrule.utils import tree_flatten

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32).reshape((1, 1, 3))
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32).reshape((1, 1, 3))


class ShortcutA(nn.Module):
    def __init__(self, dims):
        super().__init__()
        self.dims = dims

    def __call__(self, x):
        return mx.pad(
            x[:, ::2, ::2, :],
            pad_width=[(0, 0), (0, 0), (0, 0), (self.dims // 4, self.dims // 4)],
        )


class Block(nn.Module):
    """Two 3x3 convolutions with batch norm and a skip connection (type-A shortcut)."""

    def __init__(self, in_dims, dims, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_dims, dims, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm(dims)
        self.conv2 = nn.Conv2d(dims, dims, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm(dims)
        self.shortcut = ShortcutA(dims) if stride != 1 else None

    def __call__(self, x):
        out = nn.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.shortcut is None:
            out += x
        else:
            out += self.shortcut(x)
        return nn.relu(out)


class ResNet(nn.Module):
    """A CIFAR ResNet (He et al. 2015): three stages of 16, 32 and 64 channels."""

    def __init__(self, num_blocks, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm(16)
        self.layer1 = self._make_layer(16, 16, num_blocks[0], stride=1)
        self.layer2 = self._make_layer(16, 32, num_blocks[1], stride=2)
        self.layer3 = self._make_layer(32, 64, num_blocks[2], stride=2)
        self.linear = nn.Linear(64, num_classes)

    def _make_layer(self, in_dims, dims, num_blocks, stride):
        layers = []
        strides = [stride] + [1] * (num_blocks - 1)
        for s in strides:
            layers.append(Block(in_dims, dims, s))
            in_dims = dims
        return nn.Sequential(*layers)

    def num_params(self):
        return sum(x.size for _, x in tree_flatten(self.parameters()))

    def __call__(self, x):
        x = nn.relu(self.bn1(self.conv1(x)))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = mx.mean(x, axis=[1, 2]).reshape(x.shape[0], -1)
        return self.linear(x)


def resnet8(**kwargs):
    return ResNet([1, 1, 1], **kwargs)


def resnet20(**kwargs):
    return ResNet([3, 3, 3], **kwargs)


def synthetic_cifar10(num, seed):
    """``num`` uint8 images (N, 32, 32, 3) and labels: class k is a stripe pattern of colour k."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, size=num)
    colours = np.random.default_rng(1234).uniform(0, 255, size=(10, 3))
    rows = np.arange(32)
    images = np.empty((num, 32, 32, 3), dtype=np.float32)
    for i, k in enumerate(labels):
        stripes = ((rows // (2 + k % 5)) % 2).astype(np.float32)
        pattern = stripes[:, None] if k < 5 else stripes[None, :]
        images[i] = pattern[..., None] * colours[k] + rng.normal(0, 40, size=(32, 32, 3))
    return np.clip(images, 0, 255).astype(np.uint8), labels.astype(np.uint32)


def normalize(x):
    x = x.astype(mx.float32) / 255.0
    return (x - mx.array(MEAN)) / mx.array(STD)


def augment(x):
    """Random horizontal flip, pad by 4 and crop back to 32x32 (one random offset per batch)."""
    B = x.shape[0]
    flip = mx.random.bernoulli(0.5, (B, 1, 1, 1))
    x = mx.where(flip, x[:, :, ::-1, :], x)
    x = mx.pad(x, [(0, 0), (4, 4), (4, 4), (0, 0)])
    i, j = (int(v) for v in mx.random.randint(0, 9, (2,)).tolist())
    return x[:, i : i + 32, j : j + 32, :]


def batch_iterate(batch_size, images, labels):
    perm = np.random.permutation(labels.size)
    for s in range(0, labels.size - batch_size + 1, batch_size):
        ids = perm[s : s + batch_size]
        yield {"image": images[ids], "label": labels[ids]}


def eval_fn(model, inp, tgt):
    return mx.mean(mx.argmax(model(inp), axis=1) == tgt)


def main(args):
    mx.random.seed(args.seed)
    np.random.seed(args.seed)
    world = mx.distributed.init()

    model = globals()[args.arch]()
    if args.init_weights:
        model.load_weights(args.init_weights)
    mx.eval(model.parameters())
    if args.save_init:
        model.save_weights(args.save_init)
    print(f"Number of params: {model.num_params() / 1e6:0.04f} M")
    optimizer = optim.Adam(learning_rate=args.lr)

    train_images, train_labels = synthetic_cifar10(args.num_train, args.seed)
    test_images, test_labels = synthetic_cifar10(256, args.seed + 1)

    def train_step(model, inp, tgt):
        output = model(inp)
        loss = mx.mean(nn.losses.cross_entropy(output, tgt))
        acc = mx.mean(mx.argmax(output, axis=1) == tgt)
        return loss, acc

    state = [model.state, optimizer.state]

    @partial(mx.compile, inputs=state, outputs=state)
    def step(inp, tgt):
        train_step_fn = nn.value_and_grad(model, train_step)
        (loss, acc), grads = train_step_fn(model, inp, tgt)
        grads = nn.utils.average_gradients(grads)
        optimizer.update(model, grads)
        return loss, acc

    losses = []
    it = 0
    model.train()
    while it < args.steps:
        for batch in batch_iterate(args.batch_size, train_images, train_labels):
            x = augment(normalize(mx.array(batch["image"])))
            y = mx.array(batch["label"])
            tic = time.perf_counter()
            loss, acc = step(x, y)
            mx.eval(loss, acc, state)
            toc = time.perf_counter()
            losses.append(loss.item())
            it += 1
            if world.rank() == 0 and (it % 10 == 0 or it == args.steps):
                print(
                    f"Step {it:03d} | Train loss {loss.item():.3f} | "
                    f"Train acc {acc.item():.3f} | "
                    f"Throughput: {x.shape[0] / (toc - tic):.2f} images/second"
                )
            if it == args.steps:
                break

    model.eval()
    test_acc = eval_fn(model, normalize(mx.array(test_images)), mx.array(test_labels))
    print(f"first_loss {losses[0]:.6f}")
    print(f"last_loss {losses[-1]:.6f}")
    print(f"test_accuracy {test_acc.item():.6f}")
    return losses


parser = argparse.ArgumentParser(add_help=True)
parser.add_argument("--arch", type=str, default="resnet8", choices=["resnet8", "resnet20"])
parser.add_argument("--steps", type=int, default=100, help="training steps")
parser.add_argument("--batch_size", type=int, default=32, help="batch size")
parser.add_argument("--num_train", type=int, default=512, help="synthetic training images")
parser.add_argument("--lr", type=float, default=1e-3, help="learning rate")
parser.add_argument("--seed", type=int, default=0, help="random seed")
parser.add_argument("--init-weights", type=str, default=None, help="Start from these weights.")
parser.add_argument("--save-init", type=str, default=None, help="Save the starting weights here.")

if __name__ == "__main__":
    main(parser.parse_args())
