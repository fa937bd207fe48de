"""Train a convolutional variational autoencoder, as ml-explore/mlx-examples' ``cvae`` does.

The images are scikit-learn's bundled 8x8 digits (no download), upsampled to 16x16 and kept
NHWC with one channel. The encoder samples its latent code with the reparameterisation trick
(``mx.random.normal``), the decoder upsamples by nearest neighbour and convolves, and the
loss is the summed reconstruction error plus the KL divergence to the standard normal. After
training the program samples new digits from the prior and saves the weights.

    .venv/bin/python examples/mlx/vae.py --steps 50 --save-dir /tmp/vae
"""

import argparse
import math
import time
from functools import partial
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

import chainrule.core as mx
import chainrule.nn as nn
import chainrule.optimizers as optim
from chainrule.utils import tree_flatten


def upsample_nearest(x, scale: int = 2):
    B, H, W, C = x.shape
    x = mx.broadcast_to(x[:, :, None, :, None, :], (B, H, scale, W, scale, C))
    return x.reshape(B, H * scale, W * scale, C)


class UpsamplingConv2d(nn.Module):
    """Nearest-neighbour upsampling by 2 followed by a convolution."""

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding):
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding
        )

    def __call__(self, x):
        return self.conv(upsample_nearest(x))


class Encoder(nn.Module):
    """Maps an image to a normal distribution in latent space and samples from it."""

    def __init__(self, num_latent_dims, image_shape, max_num_filters):
        super().__init__()
        num_filters_1 = max_num_filters // 4
        num_filters_2 = max_num_filters // 2
        num_filters_3 = max_num_filters
        self.conv1 = nn.Conv2d(image_shape[-1], num_filters_1, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(num_filters_1, num_filters_2, 3, stride=2, padding=1)
        self.conv3 = nn.Conv2d(num_filters_2, num_filters_3, 3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm(num_filters_1)
        self.bn2 = nn.BatchNorm(num_filters_2)
        self.bn3 = nn.BatchNorm(num_filters_3)
        output_shape = [num_filters_3] + [dimension // 8 for dimension in image_shape[:-1]]
        flattened_dim = math.prod(output_shape)
        self.proj_mu = nn.Linear(flattened_dim, num_latent_dims)
        self.proj_log_var = nn.Linear(flattened_dim, num_latent_dims)

    def __call__(self, x):
        x = nn.leaky_relu(self.bn1(self.conv1(x)))
        x = nn.leaky_relu(self.bn2(self.conv2(x)))
        x = nn.leaky_relu(self.bn3(self.conv3(x)))
        x = mx.flatten(x, 1)  # flatten all dimensions except batch
        mu = self.proj_mu(x)
        logvar = self.proj_log_var(x)
        sigma = mx.exp(logvar * 0.5)
        eps = mx.random.normal(sigma.shape)
        z = eps * sigma + mu  # the reparameterisation trick
        return z, mu, logvar


class Decoder(nn.Module):
    """A convolutional decoder: a linear map, then three upsampling convolutions."""

    def __init__(self, num_latent_dims, image_shape, max_num_filters):
        super().__init__()
        self.num_latent_dims = num_latent_dims
        num_img_channels = image_shape[-1]
        self.max_num_filters = max_num_filters
        num_filters_1 = max_num_filters
        num_filters_2 = max_num_filters // 2
        num_filters_3 = max_num_filters // 4
        self.input_shape = [dimension // 8 for dimension in image_shape[:-1]] + [num_filters_1]
        flattened_dim = math.prod(self.input_shape)
        self.lin1 = nn.Linear(num_latent_dims, flattened_dim)
        self.upconv1 = UpsamplingConv2d(num_filters_1, num_filters_2, 3, stride=1, padding=1)
        self.upconv2 = UpsamplingConv2d(num_filters_2, num_filters_3, 3, stride=1, padding=1)
        self.upconv3 = UpsamplingConv2d(num_filters_3, num_img_channels, 3, stride=1, padding=1)
        self.bn1 = nn.BatchNorm(num_filters_2)
        self.bn2 = nn.BatchNorm(num_filters_3)

    def __call__(self, z):
        x = self.lin1(z)
        x = x.reshape(-1, self.input_shape[0], self.input_shape[1], self.max_num_filters)
        x = nn.leaky_relu(self.bn1(self.upconv1(x)))
        x = nn.leaky_relu(self.bn2(self.upconv2(x)))
        return mx.sigmoid(self.upconv3(x))


class CVAE(nn.Module):
    """A convolutional variational autoencoder: an encoder and a decoder."""

    def __init__(self, num_latent_dims, input_shape, max_num_filters):
        super().__init__()
        self.num_latent_dims = num_latent_dims
        self.encoder = Encoder(num_latent_dims, input_shape, max_num_filters)
        self.decoder = Decoder(num_latent_dims, input_shape, max_num_filters)

    def __call__(self, x):
        z, mu, logvar = self.encoder(x)
        x = self.decode(z)
        return x, mu, logvar

    def encode(self, x):
        return self.encoder(x)[0]

    def decode(self, z):
        return self.decoder(z)


def loss_fn(model, X):
    X_recon, mu, logvar = model(X)
    recon_loss = nn.losses.mse_loss(X_recon, X, reduction="sum")
    kl_div = -0.5 * mx.sum(1 + logvar - mu.square() - logvar.exp())
    return recon_loss + kl_div


def digits_16x16():
    """The 8x8 digits scaled to [0, 1] and upsampled to (N, 16, 16, 1)."""
    images = (load_digits().images / 16.0).astype(np.float32)
    images = images.repeat(2, axis=1).repeat(2, axis=2)
    return images[..., None]


def batch_iterate(batch_size, images):
    perm = np.random.permutation(images.shape[0])
    for s in range(0, images.shape[0] - batch_size + 1, batch_size):
        yield {"image": images[perm[s : s + batch_size]]}


def main(args):
    np.random.seed(args.seed)
    mx.random.seed(args.seed)
    img_size = (16, 16, 1)
    images = digits_16x16()

    model = CVAE(args.latent_dims, img_size, args.max_filters)
    if args.init_weights:
        model.load_weights(args.init_weights)
    mx.eval(model.parameters())
    if args.save_init:
        model.save_weights(args.save_init)
    num_params = sum(x.size for _, x in tree_flatten(model.trainable_parameters()))
    print(f"Number of trainable params: {num_params / 1e6:0.04f} M")

    optimizer = optim.AdamW(learning_rate=args.lr)
    state = [model.state, optimizer.state, mx.random.state]

    @partial(mx.compile, inputs=state, outputs=state)
    def step(X):
        loss_and_grad_fn = nn.value_and_grad(model, loss_fn)
        loss, grads = loss_and_grad_fn(model, X)
        optimizer.update(model, grads)
        return loss

    losses = []
    model.train()
    it = 0
    tic = time.perf_counter()
    while it < args.steps:
        for batch in batch_iterate(args.batch_size, images):
            X = mx.array(batch["image"])
            loss = step(X)
            mx.eval(state)
            losses.append(loss.item() / X.shape[0])
            it += 1
            if it % 10 == 0 or it == args.steps:
                toc = time.perf_counter()
                print(f"Step {it:4d} | Loss {losses[-1]:10.2f} | Time {toc - tic:8.1f} (s)")
            if it == args.steps:
                break

    model.eval()
    z = mx.random.normal([16, model.num_latent_dims])
    samples = model.decode(z)
    mx.eval(samples)
    save_dir = Path(args.save_dir)
    save_dir.mkdir(parents=True, exist_ok=True)
    model.save_weights(str(save_dir / "weights.npz"))

    # A fresh model with the saved weights decodes the same latent codes to the same images.
    restored = CVAE(args.latent_dims, img_size, args.max_filters)
    restored.load_weights(str(save_dir / "weights.npz"))
    restored.eval()
    reload_diff = mx.abs(restored.decode(z) - samples).max()

    print("sample_shape " + "x".join(str(d) for d in samples.shape))
    print(f"sample_min {samples.min().item():.6f}")
    print(f"sample_max {samples.max().item():.6f}")
    print(f"reload_max_diff {reload_diff.item():.6g}")
    print(f"first_loss {losses[0]:.6f}")
    print(f"last_loss {losses[-1]:.6f}")
    return losses


parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, default=0, help="Random seed")
parser.add_argument("--steps", type=int, default=200, help="Training steps")
parser.add_argument("--batch-size", type=int, default=64, help="Batch size for training")
parser.add_argument("--max-filters", type=int, default=32, help="Most filters in a conv layer")
parser.add_argument("--lr", type=float, default=1e-3, help="Learning rate")
parser.add_argument("--latent-dims", type=int, default=8, help="Number of latent dimensions")
parser.add_argument("--save-dir", type=str, default="models/", help="Where to save weights")
parser.add_argument("--init-weights", type=str, default=None, help="Start from these weights.")
parser.add_argument("--save-init", type=str, default=None, help="Save the starting weights here.")

if __name__ == "__main__":
    main(parser.parse_args())
