"""An LSTM over the rows of MNIST-shaped images (pytorch/examples' ``mnist_rnn``), by chainrule.

The images are synthetic (no download): 1x28x28, normalised as MNIST is, ten classes, each a
noisy stroke pattern of its own. The network reads an image as a sequence of its 28 rows
(``nn.LSTM(28, 64, batch_first=True)``), takes the last output through ``nn.BatchNorm1d``,
``nn.Dropout2d`` and two linear layers to ``F.log_softmax``; training is the example's:
``F.nll_loss``, Adadelta and ``StepLR``. ``--steps`` limits the training batches of each epoch.
The batches come in an order drawn by NumPy (``shuffle=False`` on a pre-shuffled set), so that
runs by other frameworks see the same ones; ``--dropout`` sets both dropout rates (the
example's 0.25 and 0.5 by default) and ``--dropout-layer Dropout`` replaces the example's
``nn.Dropout2d``, which PyTorch applies to these (N, 64) activations elementwise with a
deprecation warning, by ``nn.Dropout``, as that warning advises.

    .venv/bin/python examples/torch/mnist_rnn.py --steps 20 --epochs 2
"""

import argparse

import numpy as np
from chainrule.torch.optim.lr_scheduler import StepLR

import chainrule.torch as torch
import chainrule.torch.nn as nn
import chainrule.torch.nn.functional as F
import chainrule.torch.optim as optim
from chainrule.torch.utils.data import DataLoader, TensorDataset


class Net(nn.Module):
    def __init__(self, dropout=None, dropout_layer="Dropout2d"):
        super().__init__()
        self.rnn = nn.LSTM(input_size=28, hidden_size=64, batch_first=True)
        self.batchnorm = nn.BatchNorm1d(64)
        Dropout = getattr(nn, dropout_layer)
        self.dropout1 = Dropout(0.25 if dropout is None else dropout)
        self.dropout2 = Dropout(0.5 if dropout is None else dropout)
        self.fc1 = nn.Linear(64, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, input):
        # Shape of input is (batch_size, 1, 28, 28); the RNN reads (batch_size, 28, 28)
        # (batch_first=True).
        input = input.reshape(-1, 28, 28)
        output, hidden = self.rnn(input)

        # Get the last output of the RNN
        output = output[:, -1, :]
        output = self.batchnorm(output)
        output = self.dropout1(output)
        output = self.fc1(output)
        output = F.relu(output)
        output = self.dropout2(output)
        output = self.fc2(output)
        output = F.log_softmax(output, dim=1)
        return output


def synthetic_mnist(num, seed):
    """``num`` images (N, 1, 28, 28), normalised with MNIST's mean and std, and labels."""
    rng = np.random.default_rng(seed)
    templates = np.random.default_rng(7).random((10, 28, 28)) < 0.15
    labels = rng.integers(0, 10, size=num)
    images = templates[labels] * rng.uniform(0.6, 1.0, size=(num, 1, 1))
    images = np.clip(images + rng.normal(0, 0.2, size=images.shape), 0, 1)
    images = (images - 0.1307) / 0.3081
    return torch.tensor(images[:, None].astype(np.float32)), torch.tensor(labels)


def train(args, model, device, train_loader, optimizer, epoch, losses):
    model.train()
    for batch_idx, (data, target) in enumerate(train_loader):
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        output = model(data)
        loss = F.nll_loss(output, target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if batch_idx % args.log_interval == 0:
            print(
                f"Train Epoch: {epoch} [{batch_idx * len(data)}/{len(train_loader.dataset)} ({100.0 * batch_idx / len(train_loader):.0f}%)]\tLoss: {loss.item():.6f}"
            )
        if batch_idx + 1 >= args.steps:
            break


def test(args, model, device, test_loader):
    model.eval()
    test_loss = 0
    correct = 0
    with torch.no_grad():
        for data, target in test_loader:
            data, target = data.to(device), target.to(device)
            output = model(data)
            test_loss += F.nll_loss(output, target, reduction="sum").item()  # sum up batch loss
            pred = output.argmax(dim=1, keepdim=True)  # get the index of the max log-probability
            correct += pred.eq(target.view_as(pred)).sum().item()

    test_loss /= len(test_loader.dataset)

    print(
        f"\nTest set: Average loss: {test_loss:.4f}, Accuracy: {correct}/{len(test_loader.dataset)} ({100.0 * correct / len(test_loader.dataset):.0f}%)\n"
    )
    return test_loss, correct / len(test_loader.dataset)


def main():
    # Training settings
    parser = argparse.ArgumentParser(description="PyTorch MNIST Example using RNN")
    parser.add_argument("--batch-size", type=int, default=64, help="training batch size")
    parser.add_argument("--test-batch-size", type=int, default=1000, help="test batch size")
    parser.add_argument("--epochs", type=int, default=1, help="number of epochs to train")
    parser.add_argument("--steps", type=int, default=50, help="most training batches an epoch")
    parser.add_argument("--lr", type=float, default=0.1, help="learning rate (default: 0.1)")
    parser.add_argument("--gamma", type=float, default=0.7, help="learning rate step gamma")
    parser.add_argument("--dropout", type=float, default=None, help="both dropout rates")
    parser.add_argument(
        "--dropout-layer",
        default="Dropout2d",
        choices=["Dropout2d", "Dropout"],
        help="the example's Dropout2d (which PyTorch applies elementwise to (N, C) input, "
        "with a deprecation warning) or Dropout",
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    parser.add_argument("--log-interval", type=int, default=10, help="batches between logs")
    parser.add_argument("--save-model", action="store_true", help="save the trained model")
    parser.add_argument("--save-init", type=str, default="", help="write the initial state_dict")
    parser.add_argument("--init-weights", type=str, default="", help="start from this state_dict")
    args = parser.parse_args()

    device = torch.device("cpu")
    torch.manual_seed(args.seed)

    train_loader = DataLoader(
        TensorDataset(*synthetic_mnist(1024, args.seed)), batch_size=args.batch_size
    )
    test_loader = DataLoader(
        TensorDataset(*synthetic_mnist(256, args.seed + 1)), batch_size=args.test_batch_size
    )

    model = Net(args.dropout, args.dropout_layer).to(device)
    if args.save_init:
        torch.save(model.state_dict(), args.save_init)
    if args.init_weights:
        model.load_state_dict(torch.load(args.init_weights))
    optimizer = optim.Adadelta(model.parameters(), lr=args.lr)

    scheduler = StepLR(optimizer, step_size=1, gamma=args.gamma)
    losses = []
    for epoch in range(1, args.epochs + 1):
        train(args, model, device, train_loader, optimizer, epoch, losses)
        test_loss, accuracy = test(args, model, device, test_loader)
        scheduler.step()

    if args.save_model:
        torch.save(model.state_dict(), "mnist_rnn.pt")

    for k, value in enumerate(losses):
        print(f"loss_{k:03d} {value}")
    print(f"first_loss {losses[0]}")
    print(f"last_loss {losses[-1]}")
    print(f"test_loss {test_loss}")
    print(f"test_accuracy {accuracy}")
    print(f"final_lr {optimizer.param_groups[0]['lr']}")
    print(f"running_mean_norm {model.batchnorm.running_mean.norm().item()}")


if __name__ == "__main__":
    main()
