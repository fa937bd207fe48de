"""PyTorch: Tensors (from "Learning PyTorch with Examples"), run by chainrule.

A third order polynomial, trained to predict y = sin(x) from -pi to pi by minimising the
squared Euclidean distance. The forward pass, the loss and the backward pass are all computed
by hand on tensors; nothing uses autograd.

    .venv/bin/python examples/torch/polynomial_tensor.py --steps 2000
"""

import argparse
import math

import chainrule.torch as torch

parser = argparse.ArgumentParser(description="Fit sin(x) with a cubic, gradients by hand.")
parser.add_argument("--steps", type=int, default=2000, help="gradient steps")
parser.add_argument("--seed", type=int, default=0, help="random seed")
args = parser.parse_args()
torch.manual_seed(args.seed)

dtype = torch.float
device = torch.device("cpu")

# Create random input and output data
x = torch.linspace(-math.pi, math.pi, 2000, device=device, dtype=dtype)
y = torch.sin(x)

# Randomly initialize weights
a = torch.randn((), device=device, dtype=dtype)
b = torch.randn((), device=device, dtype=dtype)
c = torch.randn((), device=device, dtype=dtype)
d = torch.randn((), device=device, dtype=dtype)

learning_rate = 1e-6
losses = []
for t in range(args.steps):
    # Forward pass: compute predicted y
    y_pred = a + b * x + c * x**2 + d * x**3

    # Compute and print loss
    loss = (y_pred - y).pow(2).sum().item()
    losses.append(loss)
    if t % 100 == 99:
        print(t, loss)

    # Backprop to compute gradients of a, b, c, d with respect to loss
    grad_y_pred = 2.0 * (y_pred - y)
    grad_a = grad_y_pred.sum()
    grad_b = (grad_y_pred * x).sum()
    grad_c = (grad_y_pred * x**2).sum()
    grad_d = (grad_y_pred * x**3).sum()

    # Update weights using gradient descent
    a -= learning_rate * grad_a
    b -= learning_rate * grad_b
    c -= learning_rate * grad_c
    d -= learning_rate * grad_d

print(f"Result: y = {a.item()} + {b.item()} x + {c.item()} x^2 + {d.item()} x^3")
print(f"first_loss {losses[0]}")
print(f"last_loss {losses[-1]}")
