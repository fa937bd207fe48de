"""Linear regression of a random polynomial (pytorch/examples' ``regression``), run by chainrule.

A degree-4 polynomial with random coefficients is fitted by one ``nn.Linear`` layer over the
features (x, x^2, x^3, x^4), from fresh random batches, with the smooth L1 loss and a plain
gradient step written as ``param.data.add_(-0.1 * param.grad)``. Training stops when the loss
falls below 1e-3, or after ``--steps`` batches.

    .venv/bin/python examples/torch/regression.py --steps 1000
"""

import argparse
from itertools import count

import chainrule.torch as torch
import chainrule.torch.nn.functional as F

parser = argparse.ArgumentParser(description="Fit a random polynomial with nn.Linear.")
parser.add_argument("--steps", type=int, default=1000, help="the most batches to train on")
parser.add_argument("--seed", type=int, default=1, help="random seed")
args = parser.parse_args()
torch.manual_seed(args.seed)

POLY_DEGREE = 4
W_target = torch.randn(POLY_DEGREE, 1) * 5
b_target = torch.randn(1) * 5


def make_features(x):
    """Builds features i.e. a matrix with columns [x, x^2, x^3, x^4]."""
    x = x.unsqueeze(1)
    return torch.cat([x**i for i in range(1, POLY_DEGREE + 1)], 1)


def f(x):
    """Approximated function."""
    return x.mm(W_target) + b_target.item()


def poly_desc(W, b):
    """Creates a string description of a polynomial."""
    result = "y = "
    for i, w in enumerate(W):
        result += f"{w:+.2f} x^{i + 1} "
    result += f"{b[0]:+.2f}"
    return result


def get_batch(batch_size=32):
    """Builds a batch i.e. (x, f(x)) pair."""
    random = torch.randn(batch_size)
    x = make_features(random)
    y = f(x)
    return x, y


# Define model
fc = torch.nn.Linear(W_target.size(0), 1)

losses = []
for batch_idx in count(1):
    # Get data
    batch_x, batch_y = get_batch()

    # Reset gradients
    fc.zero_grad()

    # Forward pass
    output = F.smooth_l1_loss(fc(batch_x), batch_y)
    loss = output.item()
    losses.append(loss)

    # Backward pass
    output.backward()

    # Apply gradients
    for param in fc.parameters():
        param.data.add_(-0.1 * param.grad)

    # Stop criterion
    if loss < 1e-3 or batch_idx >= args.steps:
        break

print(f"Loss: {loss:.6f} after {batch_idx} batches")
print("==> Learned function:\t" + poly_desc(fc.weight.view(-1), fc.bias))
print("==> Actual function:\t" + poly_desc(W_target.view(-1), b_target))
error = (fc.weight.view(-1) - W_target.view(-1)).abs().max().item()
print(f"first_loss {losses[0]}")
print(f"last_loss {losses[-1]}")
print(f"max_weight_error {error}")
