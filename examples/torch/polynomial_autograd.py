"""PyTorch: Tensors and autograd (from "Learning PyTorch with Examples"), run by chainrule.

A third order polynomial, trained to predict y = sin(x) from -pi to pi by minimising the
squared Euclidean distance. The forward pass is computed with tensor operations and autograd
computes the gradients (``loss.backward()``); the update is done by hand under
``torch.no_grad()``.

    .venv/bin/python examples/torch/polynomial_autograd.py --steps 2000
"""

import argparse
import math

import chainrule.torch as torch

parser = argparse.ArgumentParser(description="Fit sin(x) with a cubic, gradients by autograd.")
parser.add_argument("--steps", type=int, default=2000, help="gradient steps")
parser.add_argument("--seed", type=int, default=0, help="random seed")
args = parser.parse_args()
torch.manual_seed(args.seed)

dtype = torch.float
device = torch.device("cpu")

# Create Tensors to hold input and outputs.
# By default, requires_grad=False, which indicates that we do not need to
# compute gradients with respect to these Tensors during the backward pass.
x = torch.linspace(-math.pi, math.pi, 2000, dtype=dtype, device=device)
y = torch.sin(x)

# Create random Tensors for weights. For a third order polynomial, we need
# 4 weights: y = a + b x + c x^2 + d x^3
# Setting requires_grad=True indicates that we want to compute gradients with
# respect to these Tensors during the backward pass.
a = torch.randn((), dtype=dtype, device=device, requires_grad=True)
b = torch.randn((), dtype=dtype, device=device, requires_grad=True)
c = torch.randn((), dtype=dtype, device=device, requires_grad=True)
d = torch.randn((), dtype=dtype, device=device, requires_grad=True)

learning_rate = 1e-6
losses = []
for t in range(args.steps):
    # Forward pass: compute predicted y using operations on Tensors.
    y_pred = a + b * x + c * x**2 + d * x**3

    # Compute and print loss using operations on Tensors.
    # Now loss is a Tensor of shape (); loss.item() gets the scalar value held in the loss.
    loss = (y_pred - y).pow(2).sum()
    losses.append(loss.item())
    if t % 100 == 99:
        print(t, loss.item())

    # Use autograd to compute the backward pass. This call will compute the
    # gradient of loss with respect to all Tensors with requires_grad=True.
    # After this call a.grad, b.grad. c.grad and d.grad will be Tensors holding
    # the gradient of the loss with respect to a, b, c, d respectively.
    loss.backward()

    # Manually update weights using gradient descent. Wrap in torch.no_grad()
    # because weights have requires_grad=True, but we don't need to track this
    # in autograd.
    with torch.no_grad():
        a -= learning_rate * a.grad
        b -= learning_rate * b.grad
        c -= learning_rate * c.grad
        d -= learning_rate * d.grad

        # Manually zero the gradients after updating weights
        a.grad = None
        b.grad = None
        c.grad = None
        d.grad = None

print(f"Result: y = {a.item()} + {b.item()} x + {c.item()} x^2 + {d.item()} x^3")
print(f"first_loss {losses[0]}")
print(f"last_loss {losses[-1]}")
