"""Train an MLP on handwritten digits, written as ml-explore/mlx-examples' ``mnist`` is.

The data are scikit-learn's bundled 8x8 digits (no download), flattened to 64 features and
scaled to [0, 1]. The training step is compiled with the model's and the optimizer's
state as its inputs and outputs, as in MLX's examples.

    .venv/bin/python examples/mlx/mnist_mlp.py --steps 50
"""

import argparse
import time
from functools import partial

import numpy as np
from sklearn.datasets import load_digits

import chainrule.core as mx
import chainrule.nn as nn
import chainrule.optimizers as optim


class MLP(nn.Module):
    """A simple MLP."""

    def __init__(self, num_layers: int, input_dim: int, hidden_dim: int, output_dim: int):
        super().__init__()
        layer_sizes = [input_dim] + [hidden_dim] * num_layers + [output_dim]
        self.layers = [
            nn.Linear(idim, odim) for idim, odim in zip(layer_sizes[:-1], layer_sizes[1:])
        ]

    def __call__(self, x):
        for layer in self.layers[:-1]:
            x = nn.relu(layer(x))
        return self.layers[-1](x)


def loss_fn(model, X, y):
    return nn.losses.cross_entropy(model(X), y, reduction="mean")


def batch_iterate(batch_size, X, y):
    perm = mx.array(np.random.permutation(y.size))
    for s in range(0, y.size, batch_size):
        ids = perm[s : s + batch_size]
        yield X[ids], y[ids]


def digits():
    """The 8x8 digits as (train_x, train_y, test_x, test_y), 1,500 train and 297 test."""
    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target.astype(np.uint32)
    return x[:1500], y[:1500], x[1500:], y[1500:]


def main(args):
    np.random.seed(args.seed)
    mx.random.seed(args.seed)

    train_images, train_labels, test_images, test_labels = map(mx.array, digits())

    model = MLP(args.num_layers, train_images.shape[-1], args.hidden_dim, 10)
    if args.init_weights:
        model.load_weights(args.init_weights)
    mx.eval(model.parameters())
    if args.save_init:
        model.save_weights(args.save_init)

    if args.optimizer == "sgd":
        optimizer = optim.SGD(learning_rate=args.lr, momentum=0.9)
    else:
        optimizer = optim.Adam(learning_rate=args.lr)
    loss_and_grad_fn = nn.value_and_grad(model, loss_fn)

    state = [model.state, optimizer.state]

    @partial(mx.compile, inputs=state, outputs=state)
    def step(X, y):
        loss, grads = loss_and_grad_fn(model, X, y)
        optimizer.update(model, grads)
        return loss

    @partial(mx.compile, inputs=model.state)
    def eval_fn(X, y):
        return mx.mean(mx.argmax(model(X), axis=1) == y)

    losses = []
    it = 0
    tic = time.perf_counter()
    while it < args.steps:
        for X, y in batch_iterate(args.batch_size, train_images, train_labels):
            loss = step(X, y)
            mx.eval(state)
            losses.append(loss.item())
            it += 1
            if it % 10 == 0 or it == args.steps:
                accuracy = eval_fn(test_images, test_labels)
                toc = time.perf_counter()
                print(
                    f"Step {it}: Train loss {loss.item():.3f}, "
                    f"Test accuracy {accuracy.item():.3f}, Time {toc - tic:.3f} (s)"
                )
            if it == args.steps:
                break

    print(f"first_loss {losses[0]:.6f}")
    print(f"last_loss {losses[-1]:.6f}")
    print(f"test_accuracy {eval_fn(test_images, test_labels).item():.6f}")
    return losses


parser = argparse.ArgumentParser("Train a simple MLP on the 8x8 digits with chainrule.")
parser.add_argument("--steps", type=int, default=200, help="Training steps.")
parser.add_argument("--batch_size", type=int, default=128, help="Minibatch size.")
parser.add_argument("--num_layers", type=int, default=2, help="Hidden layers.")
parser.add_argument("--hidden_dim", type=int, default=32, help="Hidden width.")
parser.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd")
parser.add_argument("--lr", type=float, default=1e-1, help="Learning rate.")
parser.add_argument("--seed", type=int, default=0, help="Random seed.")
parser.add_argument("--init-weights", type=str, default=None, help="Start from these weights.")
parser.add_argument("--save-init", type=str, default=None, help="Save the starting weights here.")

if __name__ == "__main__":
    main(parser.parse_args())
