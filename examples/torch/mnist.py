"""A small CNN on MNIST-shaped images (pytorch/examples' ``mnist``), run by chainrule.

The images are synthetic (no download): 1x28x28, normalised as MNIST is, ten classes, each
a noisy stroke pattern of its own. The network, the training and test loops, Adadelta with a
``StepLR`` schedule and the saved ``state_dict`` are those of PyTorch's example.
``--steps`` limits the training batches of each epoch.

    .venv/bin/python examples/torch/mnist.py --steps 20 --epochs 2 --save-model
"""

import argparse
import os
import tempfile

import numpy as np

import chainrule.torch as torch
import chainrule.torch.nn as nn
import chainrule.torch.nn.functional as F
import chainrule.torch.optim as optim
from chainrule.torch.utils.data import DataLoader, TensorDataset


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = self.conv1(x)
        x = F.relu(x)
        x = self.conv2(x)
        x = F.relu(x)
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = self.fc1(x)
        x = F.relu(x)
        x = self.dropout2(x)
        x = self.fc2(x)
        output = F.log_softmax(x, dim=1)
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
                f"Train Epoch: {epoch} [{batch_idx * len(data)}/{len(train_loader.dataset)} "
                f"({100.0 * batch_idx / len(train_loader):.0f}%)]\tLoss: {loss.item():.6f}"
            )
        if batch_idx + 1 >= args.steps:
            break


def test(model, device, test_loader):
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
        f"\nTest set: Average loss: {test_loss:.4f}, Accuracy: {correct}/"
        f"{len(test_loader.dataset)} ({100.0 * correct / len(test_loader.dataset):.0f}%)\n"
    )
    return test_loss, correct / len(test_loader.dataset)


def main():
    # Training settings
    parser = argparse.ArgumentParser(description="PyTorch MNIST Example")
    parser.add_argument("--batch-size", type=int, default=64, help="training batch size")
    parser.add_argument("--test-batch-size", type=int, default=1000, help="test batch size")
    parser.add_argument("--epochs", type=int, default=1, help="number of epochs to train")
    parser.add_argument("--steps", type=int, default=50, help="most training batches an epoch")
    parser.add_argument("--lr", type=float, default=1.0, help="learning rate (default: 1.0)")
    parser.add_argument("--gamma", type=float, default=0.7, help="learning rate step gamma")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    parser.add_argument("--log-interval", type=int, default=10, help="batches between logs")
    parser.add_argument("--save-model", action="store_true", help="save the trained model")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    device = torch.device("cpu")

    train_kwargs = {"batch_size": args.batch_size, "shuffle": True}
    test_kwargs = {"batch_size": args.test_batch_size}
    dataset1 = TensorDataset(*synthetic_mnist(1024, args.seed))
    dataset2 = TensorDataset(*synthetic_mnist(256, args.seed + 1))
    train_loader = DataLoader(dataset1, **train_kwargs)
    test_loader = DataLoader(dataset2, **test_kwargs)

    model = Net().to(device)
    optimizer = optim.Adadelta(model.parameters(), lr=args.lr)

    scheduler = optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=args.gamma)
    losses = []
    for epoch in range(1, args.epochs + 1):
        train(args, model, device, train_loader, optimizer, epoch, losses)
        test_loss, accuracy = test(model, device, test_loader)
        scheduler.step()

    print(f"first_loss {losses[0]}")
    print(f"last_loss {losses[-1]}")
    print(f"test_loss {test_loss}")
    print(f"test_accuracy {accuracy}")
    print(f"final_lr {optimizer.param_groups[0]['lr']}")

    if args.save_model:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "mnist_cnn.pt")
            torch.save(model.state_dict(), path)
            restored = Net()
            restored.load_state_dict(torch.load(path))
            restored.eval()
            model.eval()
            with torch.no_grad():
                data, _ = next(iter(test_loader))
                diff = (restored(data) - model(data)).abs().max().item()
        print(f"reload_max_diff {diff}")


if __name__ == "__main__":
    main()
