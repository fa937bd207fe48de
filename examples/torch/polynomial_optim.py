"""PyTorch: optim (from "Learning PyTorch with Examples"), run by chainrule.

A third order polynomial, trained to predict y = sin(x) from -pi to pi by minimising the
squared Euclidean distance. The model is ``nn.Sequential(nn.Linear(3, 1), nn.Flatten(0, 1))``
and the ``torch.optim`` package updates the weights: RMSprop.

    .venv/bin/python examples/torch/polynomial_optim.py --steps 2000
"""

import argparse
import math

import chainrule.torch as torch

parser = argparse.ArgumentParser(description="Fit sin(x) with nn.Linear and RMSprop.")
parser.add_argument("--steps", type=int, default=2000, help="optimizer steps")
parser.add_argument("--seed", type=int, default=0, help="random seed")
parser.add_argument("--init-weights", type=str, default=None, help="start from this state_dict")
parser.add_argument("--save-init", type=str, default=None, help="save the starting state_dict")
args = parser.parse_args()
torch.manual_seed(args.seed)

# Create Tensors to hold input and outputs.
x = torch.linspace(-math.pi, math.pi, 2000)
y = torch.sin(x)

# Prepare the input tensor (x, x^2, x^3).
p = torch.tensor([1, 2, 3])
xx = x.unsqueeze(-1).pow(p)

# Use the nn package to define our model and loss function.
model = torch.nn.Sequential(torch.nn.Linear(3, 1), torch.nn.Flatten(0, 1))
if args.init_weights:
    model.load_state_dict(torch.load(args.init_weights))
if args.save_init:
    torch.save(model.state_dict(), args.save_init)
loss_fn = torch.nn.MSELoss(reduction="sum")

# Use the optim package to define an Optimizer that will update the weights of the model for
# us. Here we will use RMSprop; the first argument tells the optimizer which Tensors it should
# update.
learning_rate = 1e-3
optimizer = torch.optim.RMSprop(model.parameters(), lr=learning_rate)
losses = []
for t in range(args.steps):
    # Forward pass: compute predicted y by passing x to the model.
    y_pred = model(xx)

    # Compute and print loss.
    loss = loss_fn(y_pred, y)
    losses.append(loss.item())
    if t % 100 == 99:
        print(t, loss.item())

    # Before the backward pass, zero all of the gradients for the variables the optimizer
    # will update: gradients accumulate in .grad whenever .backward() is called.
    optimizer.zero_grad()

    # Backward pass: compute gradient of the loss with respect to model parameters
    loss.backward()

    # Calling the step function on an Optimizer makes an update to its parameters
    optimizer.step()

linear_layer = model[0]
print(
    f"Result: y = {linear_layer.bias.item()} + {linear_layer.weight[:, 0].item()} x + "
    f"{linear_layer.weight[:, 1].item()} x^2 + {linear_layer.weight[:, 2].item()} x^3"
)
print(f"bias {linear_layer.bias.item()}")
for i in range(3):
    print(f"w{i + 1} {linear_layer.weight[:, i].item()}")
print(f"first_loss {losses[0]}")
print(f"last_loss {losses[-1]}")
