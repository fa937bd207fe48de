"""PyTorch: Custom nn Modules (from "Learning PyTorch with Examples"), run by chainrule.

A third order polynomial, trained to predict y = sin(x) from -pi to pi by minimising the
squared Euclidean distance. The model is a subclass of ``torch.nn.Module`` holding its four
coefficients as ``nn.Parameter``s, trained with SGD.

    .venv/bin/python examples/torch/polynomial_module.py --steps 2000
"""

import argparse
import math

import chainrule.torch as torch


class Polynomial3(torch.nn.Module):
    def __init__(self):
        """Instantiate four parameters and assign them as member parameters."""
        super().__init__()
        self.a = torch.nn.Parameter(torch.randn(()))
        self.b = torch.nn.Parameter(torch.randn(()))
        self.c = torch.nn.Parameter(torch.randn(()))
        self.d = torch.nn.Parameter(torch.randn(()))

    def forward(self, x):
        """Accept a Tensor of input data and return a Tensor of output data."""
        return self.a + self.b * x + self.c * x**2 + self.d * x**3

    def string(self):
        """Like any class in Python, a Module can define its own methods."""
        return (
            f"y = {self.a.item()} + {self.b.item()} x + {self.c.item()} x^2 + {self.d.item()} x^3"
        )


parser = argparse.ArgumentParser(description="Fit sin(x) with a custom Module.")
parser.add_argument("--steps", type=int, default=2000, help="optimizer steps")
parser.add_argument("--seed", type=int, default=0, help="random seed")
parser.add_argument("--init-weights", type=str, default=None, help="start from this state_dict")
parser.add_argument("--save-init", type=str, default=None, help="save the starting state_dict")
args = parser.parse_args()
torch.manual_seed(args.seed)

# Create Tensors to hold input and outputs.
x = torch.linspace(-math.pi, math.pi, 2000)
y = torch.sin(x)

# Construct our model by instantiating the class defined above
model = Polynomial3()
if args.init_weights:
    model.load_state_dict(torch.load(args.init_weights))
if args.save_init:
    torch.save(model.state_dict(), args.save_init)

# Construct our loss function and an Optimizer. The call to model.parameters() in the SGD
# constructor will contain the learnable parameters (defined with torch.nn.Parameter) which
# are members of the model.
criterion = torch.nn.MSELoss(reduction="sum")
optimizer = torch.optim.SGD(model.parameters(), lr=1e-6)
losses = []
for t in range(args.steps):
    # Forward pass: Compute predicted y by passing x to the model
    y_pred = model(x)

    # Compute and print loss
    loss = criterion(y_pred, y)
    losses.append(loss.item())
    if t % 100 == 99:
        print(t, loss.item())

    # Zero gradients, perform a backward pass, and update the weights.
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()

print(f"Result: {model.string()}")
print(f"num_parameters {len(list(model.parameters()))}")
print(f"first_loss {losses[0]}")
print(f"last_loss {losses[-1]}")
