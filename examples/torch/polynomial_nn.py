"""PyTorch: nn (from "Learning PyTorch with Examples"), run by chainrule.

A third order polynomial, trained to predict y = sin(x) from -pi to pi by minimising the
squared Euclidean distance. The output is a linear function of (x, x^2, x^3), so the model is
``nn.Sequential(nn.Linear(3, 1), nn.Flatten(0, 1))`` with ``nn.MSELoss(reduction='sum')``;
the update is done by hand over ``model.parameters()``.

    .venv/bin/python examples/torch/polynomial_nn.py --steps 2000
"""

import argparse
import math

import chainrule.torch as torch

parser = argparse.ArgumentParser(description="Fit sin(x) with nn.Linear over (x, x^2, x^3).")
parser.add_argument("--steps", type=int, default=2000, help="gradient steps")
parser.add_argument("--seed", type=int, default=0, help="random seed")
parser.add_argument("--init-weights", type=str, default=None, help="start from this state_dict")
parser.add_argument("--save-init", type=str, default=None, help="save the starting state_dict")
args = parser.parse_args()
torch.manual_seed(args.seed)

# Create Tensors to hold input and outputs.
x = torch.linspace(-math.pi, math.pi, 2000)
y = torch.sin(x)

# The output y is a linear function of (x, x^2, x^3): prepare the tensor (x, x^2, x^3).
# x.unsqueeze(-1) has shape (2000, 1) and p has shape (3,): broadcasting gives (2000, 3).
p = torch.tensor([1, 2, 3])
xx = x.unsqueeze(-1).pow(p)

# nn.Sequential applies its modules in order; Flatten turns the (2000, 1) output into the
# shape of y.
model = torch.nn.Sequential(torch.nn.Linear(3, 1), torch.nn.Flatten(0, 1))
if args.init_weights:
    model.load_state_dict(torch.load(args.init_weights))
if args.save_init:
    torch.save(model.state_dict(), args.save_init)

# Mean Squared Error, summed.
loss_fn = torch.nn.MSELoss(reduction="sum")

learning_rate = 1e-6
losses = []
for t in range(args.steps):
    # Forward pass: compute predicted y by passing x to the model.
    y_pred = model(xx)

    # Compute and print loss.
    loss = loss_fn(y_pred, y)
    losses.append(loss.item())
    if t % 100 == 99:
        print(t, loss.item())

    # Zero the gradients before running the backward pass.
    model.zero_grad()

    # Backward pass: compute gradient of the loss with respect to all the learnable
    # parameters of the model.
    loss.backward()

    # Update the weights using gradient descent.
    with torch.no_grad():
        for param in model.parameters():
            param -= learning_rate * param.grad

# You can access the first layer of `model` like accessing the first item of a list
linear_layer = model[0]

print(
    f"Result: y = {linear_layer.bias.item()} + {linear_layer.weight[:, 0].item()} x + "
    f"{linear_layer.weight[:, 1].item()} x^2 + {linear_layer.weight[:, 2].item()} x^3"
)
print(f"output_shape {'x'.join(str(n) for n in y_pred.shape)}")
print(f"first_loss {losses[0]}")
print(f"last_loss {losses[-1]}")
