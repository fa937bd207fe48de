"""PyTorch: Defining new autograd Functions (from "Learning PyTorch with Examples").

A third order polynomial, trained to predict y = sin(x) from -pi to pi by minimising the
squared Euclidean distance. The polynomial is written y = a + b P3(c + d x), where
P3(x) = (5x^3 - 3x) / 2 is the Legendre polynomial of degree three, computed by a custom
``torch.autograd.Function`` whose backward is written by hand: P3'(x) = 3 (5x^2 - 1) / 2.

    .venv/bin/python examples/torch/polynomial_custom_function.py --steps 2000
"""

import argparse
import math

import chainrule.torch as torch


class LegendrePolynomial3(torch.autograd.Function):
    """The Legendre polynomial of degree three, with a hand-written backward pass."""

    @staticmethod
    def forward(ctx, input):
        """Save the input for the backward pass and return P3(input)."""
        ctx.save_for_backward(input)
        return 0.5 * (5 * input**3 - 3 * input)

    @staticmethod
    def backward(ctx, grad_output):
        """Return the gradient of the loss with respect to the input."""
        (input,) = ctx.saved_tensors
        return grad_output * 1.5 * (5 * input**2 - 1)


parser = argparse.ArgumentParser(description="Fit sin(x) with a + b P3(c + d x).")
parser.add_argument("--steps", type=int, default=2000, help="gradient steps")
parser.add_argument("--seed", type=int, default=0, help="random seed")
args = parser.parse_args()
torch.manual_seed(args.seed)

dtype = torch.float
device = torch.device("cpu")

# Create Tensors to hold input and outputs.
x = torch.linspace(-math.pi, math.pi, 2000, device=device, dtype=dtype)
y = torch.sin(x)

# Weights for y = a + b * P3(c + d * x), initialised not too far from the result so that the
# fit converges.
a = torch.full((), 0.0, device=device, dtype=dtype, requires_grad=True)
b = torch.full((), -1.0, device=device, dtype=dtype, requires_grad=True)
c = torch.full((), 0.0, device=device, dtype=dtype, requires_grad=True)
d = torch.full((), 0.3, device=device, dtype=dtype, requires_grad=True)

learning_rate = 5e-6
losses = []
for t in range(args.steps):
    # To apply our Function, we use Function.apply method. We alias this as 'P3'.
    P3 = LegendrePolynomial3.apply

    # Forward pass: compute predicted y using operations; we compute
    # P3 using our custom autograd operation.
    y_pred = a + b * P3(c + d * x)

    # Compute and print loss
    loss = (y_pred - y).pow(2).sum()
    losses.append(loss.item())
    if t % 100 == 99:
        print(t, loss.item())

    # Use autograd to compute the backward pass.
    loss.backward()

    # Update weights using gradient descent
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

print(f"Result: y = {a.item()} + {b.item()} * P3({c.item()} + {d.item()} x)")
print(f"first_loss {losses[0]}")
print(f"last_loss {losses[-1]}")
print(f"a {a.item()}")
print(f"b {b.item()}")
print(f"c {c.item()}")
print(f"d {d.item()}")
