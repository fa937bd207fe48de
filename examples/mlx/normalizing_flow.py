"""Fit a RealNVP normalizing flow to two moons, as ml-explore/mlx-examples' ``normalizing_flow``.

The data are scikit-learn's ``make_moons`` (generated, no download), standardised. The flow
alternates masked affine coupling layers whose shift and log-scale come from small MLPs; the
loss is the negative log-likelihood. After training the program samples from the flow, and
checks that sampling (base -> data) and density evaluation (data -> base) invert each other.

    .venv/bin/python examples/mlx/normalizing_flow.py --steps 500
"""

import argparse
import math
from functools import partial

import numpy as np
from sklearn import datasets, preprocessing

import chainrule.core as mx
import chainrule.nn as nn
import chainrule.optimizers as optim


class Normal:
    def __init__(self, mu, sigma):
        self.mu = mu
        self.sigma = sigma

    def sample(self, sample_shape, key=None):
        return mx.random.normal(sample_shape, key=key) * self.sigma + self.mu

    def log_prob(self, x):
        return (
            -0.5 * math.log(2 * math.pi)
            - mx.log(self.sigma)
            - 0.5 * ((x - self.mu) / self.sigma) ** 2
        )


class AffineBijector:
    def __init__(self, shift_and_log_scale):
        self.shift_and_log_scale = shift_and_log_scale

    def forward_and_log_det(self, x):
        shift, log_scale = mx.split(self.shift_and_log_scale, 2, axis=-1)
        return x * mx.exp(log_scale) + shift, log_scale

    def inverse_and_log_det(self, y):
        shift, log_scale = mx.split(self.shift_and_log_scale, 2, axis=-1)
        return (y - shift) * mx.exp(-log_scale), -log_scale


class MaskedCoupling:
    def __init__(self, mask, conditioner, bijector):
        """Coupling layer: transforms the masked entries conditioned on the others."""
        self.mask = mask
        self.conditioner = conditioner
        self.bijector = bijector

    def apply_mask(self, x, func):
        x_masked = mx.where(self.mask, 0.0, x)
        bijector_params = self.conditioner(x_masked)
        y, log_det = func(bijector_params)
        log_det = mx.where(self.mask, log_det, 0.0)
        y = mx.where(self.mask, y, x)
        return y, mx.sum(log_det, axis=-1)

    def forward_and_log_det(self, x):
        return self.apply_mask(x, lambda params: self.bijector(params).forward_and_log_det(x))

    def inverse_and_log_det(self, y):
        return self.apply_mask(y, lambda params: self.bijector(params).inverse_and_log_det(y))


class MLP(nn.Module):
    def __init__(self, n_layers: int, d_in: int, d_hidden: int, d_out: int):
        super().__init__()
        layer_sizes = [d_in] + [d_hidden] * n_layers + [d_out]
        self.layers = [
            nn.Linear(idim, odim) for idim, odim in zip(layer_sizes[:-1], layer_sizes[1:])
        ]

    def __call__(self, x):
        for layer in self.layers[:-1]:
            x = nn.gelu(layer(x))
        return self.layers[-1](x)


class RealNVP(nn.Module):
    def __init__(self, n_transforms: int, d_params: int, d_hidden: int, n_layers: int):
        super().__init__()
        # Alternating masks, frozen: they are not parameters.
        self.mask_list = [mx.arange(d_params) % 2 == i % 2 for i in range(n_transforms)]
        self.mask_list = [mask.astype(mx.bool_) for mask in self.mask_list]
        self.freeze(keys=["mask_list"])
        self.conditioner_list = [
            MLP(n_layers, d_params, d_hidden, 2 * d_params) for _ in range(n_transforms)
        ]
        self.base_dist = Normal(mx.zeros(d_params), mx.ones(d_params))

    def inverse(self, x):
        """Flow back to the base Gaussian; return the point and the summed log-determinant."""
        log_det = mx.zeros(x.shape[0])
        for mask, conditioner in zip(self.mask_list[::-1], self.conditioner_list[::-1]):
            x, ldj = MaskedCoupling(mask, conditioner, AffineBijector).inverse_and_log_det(x)
            log_det += ldj
        return x, log_det

    def log_prob(self, x):
        z, log_det = self.inverse(x)
        return log_det + self.base_dist.log_prob(z).sum(-1)

    def sample(self, sample_shape, key=None, n_transforms=None):
        """Sample from the base Gaussian and flow towards the target distribution."""
        x = self.base_dist.sample(sample_shape, key=key)
        for mask, conditioner in zip(
            self.mask_list[:n_transforms], self.conditioner_list[:n_transforms]
        ):
            x, _ = MaskedCoupling(mask, conditioner, AffineBijector).forward_and_log_det(x)
        return x

    def __call__(self, x):
        return self.log_prob(x)


def get_moons_dataset(n_samples=100_000, noise=0.06, seed=0):
    """Two moons with the given noise level, standardised."""
    x, _ = datasets.make_moons(n_samples=n_samples, noise=noise, random_state=seed)
    return preprocessing.StandardScaler().fit_transform(x).astype(np.float32)


def main(args):
    np.random.seed(args.seed)
    mx.random.seed(args.seed)
    x = get_moons_dataset(n_samples=10_000, noise=args.noise, seed=args.seed)

    model = RealNVP(args.n_transforms, args.d_params, args.d_hidden, args.n_layers)
    if args.init_weights:
        model.load_weights(args.init_weights)
    mx.eval(model.parameters())
    if args.save_init:
        model.save_weights(args.save_init)

    def loss_fn(model, x):
        return -mx.mean(model(x))

    optimizer = optim.Adam(learning_rate=args.learning_rate)
    state = [model.state, optimizer.state]

    @partial(mx.compile, inputs=state, outputs=state)
    def step(x):
        loss_and_grad_fn = nn.value_and_grad(model, loss_fn)
        loss, grads = loss_and_grad_fn(model, x)
        optimizer.update(model, grads)
        return loss

    losses = []
    for it in range(args.steps):
        idx = np.random.choice(x.shape[0], replace=False, size=args.n_batch)
        loss = step(mx.array(x[idx]))
        mx.eval(state)
        losses.append(loss.item())
        if (it + 1) % 50 == 0 or it + 1 == args.steps:
            print(f"Step {it + 1}: negative log-likelihood {losses[-1]:.4f}")

    # Sample through the flow; flowing the samples back must recover the base draws.
    key = mx.random.key(args.seed)
    z = model.base_dist.sample((1000, 2), key=key)
    samples = model.sample((1000, 2), key=key)
    z_back, _ = model.inverse(samples)
    print(f"inverse_max_err {mx.abs(z_back - z).max().item():.6g}")
    print("sample_shape " + "x".join(str(d) for d in samples.shape))
    print(f"first_loss {losses[0]:.6f}")
    print(f"last_loss {losses[-1]:.6f}")
    return losses


parser = argparse.ArgumentParser("RealNVP on two moons with chainrule.")
parser.add_argument("--steps", type=int, default=500, help="Training steps.")
parser.add_argument("--n_batch", type=int, default=64, help="Batch size.")
parser.add_argument("--n_transforms", type=int, default=6, help="Coupling layers.")
parser.add_argument("--d_params", type=int, default=2, help="Data dimension.")
parser.add_argument("--d_hidden", type=int, default=64, help="Conditioner width.")
parser.add_argument("--n_layers", type=int, default=2, help="Conditioner hidden layers.")
parser.add_argument("--learning_rate", type=float, default=3e-4, help="Adam learning rate.")
parser.add_argument("--noise", type=float, default=0.06, help="Noise of the moons.")
parser.add_argument("--seed", type=int, default=0, help="Random seed.")
parser.add_argument("--init-weights", type=str, default=None, help="Start from these weights.")
parser.add_argument("--save-init", type=str, default=None, help="Save the starting weights here.")

if __name__ == "__main__":
    main(parser.parse_args())
