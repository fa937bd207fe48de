"""Train a graph convolutional network (Kipf & Welling), as ml-explore/mlx-examples' ``gcn``.

The graph is synthetic (no download), shaped like Cora: a stochastic block model of seven
communities, sparse bag-of-words-like node features that hint at the community, and the
symmetric normalised adjacency D^-1/2 (A + I) D^-1/2. The node classes are learned from 20
labelled nodes per class. Dropout runs inside the compiled step, so ``mx.random.state`` is
one of the step's inputs and outputs, as in MLX's example.

    .venv/bin/python examples/mlx/gcn.py --steps 100
"""

import time
from argparse import ArgumentParser
from functools import partial

import numpy as np

import chainrule.core as mx
import chainrule.nn as nn
import chainrule.optimizers as optim
from chainrule.utils import tree_flatten


class GCNLayer(nn.Module):
    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias)

    def __call__(self, x, adj):
        x = self.linear(x)
        return adj @ x


class GCN(nn.Module):
    def __init__(self, x_dim, h_dim, out_dim, nb_layers=2, dropout=0.5, bias=True):
        super().__init__()
        layer_sizes = [x_dim] + [h_dim] * nb_layers + [out_dim]
        self.gcn_layers = [
            GCNLayer(in_dim, out_dim, bias)
            for in_dim, out_dim in zip(layer_sizes[:-1], layer_sizes[1:])
        ]
        self.dropout = nn.Dropout(p=dropout)

    def __call__(self, x, adj):
        for layer in self.gcn_layers[:-1]:
            x = nn.relu(layer(x, adj))
            x = self.dropout(x)
        return self.gcn_layers[-1](x, adj)


def load_data(num_nodes, num_features, num_classes, seed):
    """Features, labels and normalised adjacency of a synthetic citation-like graph."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, num_classes, size=num_nodes)
    same = y[:, None] == y[None, :]
    p = np.where(same, 0.02, 0.001)
    a = np.triu(rng.random((num_nodes, num_nodes)) < p, 1)
    a = (a | a.T).astype(np.float32) + np.eye(num_nodes, dtype=np.float32)
    d = 1.0 / np.sqrt(a.sum(axis=1))
    adj = a * d[:, None] * d[None, :]
    words = rng.random((num_classes, num_features)) < 0.05
    x = (rng.random((num_nodes, num_features)) < 0.01) | (
        words[y] & (rng.random((num_nodes, num_features)) < 0.3)
    )
    x = x.astype(np.float32)
    x = x / np.maximum(x.sum(axis=1, keepdims=True), 1.0)
    return mx.array(x), mx.array(y.astype(np.uint32)), mx.array(adj)


def train_val_test_mask(y, num_classes):
    """20 training nodes per class, then 500 validation and the rest for testing."""
    y = np.array(y)
    train = np.concatenate([np.flatnonzero(y == c)[:20] for c in range(num_classes)])
    rest = np.setdiff1d(np.arange(y.size), train)
    return mx.array(train), mx.array(rest[:500]), mx.array(rest[500:])


def loss_fn(y_hat, y, weight_decay=0.0, parameters=None):
    loss = mx.mean(nn.losses.cross_entropy(y_hat, y))
    if weight_decay != 0.0:
        assert parameters is not None, "Model parameters missing for L2 reg."
        l2_reg = sum(mx.sum(p[1] ** 2) for p in tree_flatten(parameters)).sqrt()
        return loss + weight_decay * l2_reg
    return loss


def eval_fn(x, y):
    return mx.mean(mx.argmax(x, axis=1) == y)


def forward_fn(gcn, x, adj, y, train_mask, weight_decay):
    y_hat = gcn(x, adj)
    loss = loss_fn(y_hat[train_mask], y[train_mask], weight_decay, gcn.parameters())
    return loss, y_hat


def main(args):
    mx.random.seed(args.seed)
    x, y, adj = load_data(args.nb_nodes, args.nb_features, args.nb_classes, args.seed)
    train_mask, val_mask, test_mask = train_val_test_mask(y, args.nb_classes)

    gcn = GCN(
        x_dim=x.shape[-1],
        h_dim=args.hidden_dim,
        out_dim=args.nb_classes,
        nb_layers=args.nb_layers,
        dropout=args.dropout,
        bias=args.bias,
    )
    if args.init_weights:
        gcn.load_weights(args.init_weights)
    mx.eval(gcn.parameters())
    if args.save_init:
        gcn.save_weights(args.save_init)

    optimizer = optim.Adam(learning_rate=args.lr)

    state = [gcn.state, optimizer.state, mx.random.state]

    @partial(mx.compile, inputs=state, outputs=state)
    def step():
        loss_and_grad_fn = nn.value_and_grad(gcn, forward_fn)
        (loss, y_hat), grads = loss_and_grad_fn(gcn, x, adj, y, train_mask, args.weight_decay)
        optimizer.update(gcn, grads)
        return loss, y_hat

    losses = []
    for epoch in range(args.steps):
        tic = time.time()
        loss, y_hat = step()
        mx.eval(state)
        losses.append(loss.item())

        val_loss = loss_fn(y_hat[val_mask], y[val_mask])
        val_acc = eval_fn(y_hat[val_mask], y[val_mask])
        toc = time.time()
        if epoch % 10 == 0 or epoch == args.steps - 1:
            print(
                " | ".join(
                    [
                        f"Epoch: {epoch:3d}",
                        f"Train loss: {loss.item():.3f}",
                        f"Val loss: {val_loss.item():.3f}",
                        f"Val acc: {val_acc.item():.2f}",
                        f"Time: {1e3 * (toc - tic):.3f} (ms)",
                    ]
                )
            )

    gcn.eval()
    test_y_hat = gcn(x, adj)
    test_loss = loss_fn(test_y_hat[test_mask], y[test_mask])
    test_acc = eval_fn(test_y_hat[test_mask], y[test_mask])
    print(f"Test loss: {test_loss.item():.3f}  |  Test acc: {test_acc.item():.2f}")
    print(f"first_loss {losses[0]:.6f}")
    print(f"last_loss {losses[-1]:.6f}")
    print(f"test_accuracy {test_acc.item():.6f}")
    return losses


parser = ArgumentParser()
parser.add_argument("--nb_nodes", type=int, default=1000)
parser.add_argument("--nb_features", type=int, default=500)
parser.add_argument("--hidden_dim", type=int, default=20)
parser.add_argument("--dropout", type=float, default=0.5)
parser.add_argument("--nb_layers", type=int, default=2)
parser.add_argument("--nb_classes", type=int, default=7)
parser.add_argument("--bias", type=bool, default=True)
parser.add_argument("--lr", type=float, default=0.01)
parser.add_argument("--weight_decay", type=float, default=0.0)
parser.add_argument("--steps", type=int, default=100)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--init-weights", type=str, default=None, help="Start from these weights.")
parser.add_argument("--save-init", type=str, default=None, help="Save the starting weights here.")

if __name__ == "__main__":
    main(parser.parse_args())
