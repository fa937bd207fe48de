"""PyTorch: Control Flow + Weight Sharing (from "Learning PyTorch with Examples").

A strange model shows off dynamic graphs: a polynomial of order three to five that on each
forward pass picks at random how many orders to use, reusing the same weight ``e`` for the
fourth and fifth orders. Ordinary Python control flow builds a new graph every pass.

    .venv/bin/python examples/torch/dynamic_net.py --steps 2000
"""

import argparse
import math
import random

import chainrule.torch as torch


class DynamicNet(torch.nn.Module):
    def __init__(self):
        """Instantiate five parameters and assign them as members."""
        super().__init__()
        self.a = torch.nn.Parameter(torch.randn(()))
        self.b = torch.nn.Parameter(torch.randn(()))
        self.c = torch.nn.Parameter(torch.randn(()))
        self.d = torch.nn.Parameter(torch.randn(()))
        self.e = torch.nn.Parameter(torch.randn(()))

    def forward(self, x):
        """Pick 4 or 5 orders at random and reuse ``e`` for the fourth and fifth."""
        y = self.a + self.b * x + self.c * x**2 + self.d * x**3
        for exp in range(4, random.randint(4, 6)):
            y = y + self.e * x**exp
        return y

    def string(self):
        """Like any class in Python, a Module can define its own methods."""
        return (
            f"y = {self.a.item()} + {self.b.item()} x + {self.c.item()} x^2 + "
            f"{self.d.item()} x^3 + {self.e.item()} x^4 ? + {self.e.item()} x^5 ?"
        )


parser = argparse.ArgumentParser(description="Fit sin(x) with a dynamic, weight-sharing net.")
parser.add_argument("--steps", type=int, default=2000, help="optimizer steps")
parser.add_argument("--seed", type=int, default=0, help="random seed")
parser.add_argument("--init-weights", type=str, default=None, help="start from this state_dict")
parser.add_argument("--save-init", type=str, default=None, help="save the starting state_dict")
args = parser.parse_args()
torch.manual_seed(args.seed)
random.seed(args.seed)

# Create Tensors to hold input and outputs.
x = torch.linspace(-math.pi, math.pi, 2000)
y = torch.sin(x)

# Construct our model by instantiating the class defined above
model = DynamicNet()
if args.init_weights:
    model.load_state_dict(torch.load(args.init_weights))
if args.save_init:
    torch.save(model.state_dict(), args.save_init)

# Training this strange model with vanilla stochastic gradient descent is tough, so we use
# momentum.
criterion = torch.nn.MSELoss(reduction="sum")
optimizer = torch.optim.SGD(model.parameters(), lr=1e-8, momentum=0.9)
losses = []
for t in range(args.steps):
    # Forward pass: Compute predicted y by passing x to the model
    y_pred = model(x)

    # Compute and print loss
    loss = criterion(y_pred, y)
    losses.append(loss.item())
    if t % 200 == 199:
        print(t, loss.item())

    # Zero gradients, perform a backward pass, and update the weights.
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()

print(f"Result: {model.string()}")
print(f"first_loss {losses[0]}")
print(f"last_loss {losses[-1]}")
