"""The PyTorch training loop of the seeds, run on chainrule.torch as a user writes it."""

import numpy as np

import chainrule.torch as torch
import chainrule.torch.nn as nn
import chainrule.torch.nn.functional as F
import chainrule.torch.optim as optim
from chainrule.torch.utils.data import DataLoader, TensorDataset, random_split


class SimpleNN(nn.Module):
    def __init__(self):
        super(SimpleNN, self).__init__()  # noqa: UP008  (the seed's spelling)
        self.fc1 = nn.Linear(784, 128)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = self.fc1(x)
        x = self.relu(x)
        x = self.fc2(x)
        return x


def _train_simple(seed, num_epochs=5):
    torch.manual_seed(seed)
    inputs = torch.randn(1000, 784)
    labels = torch.randint(0, 10, (1000,))
    dataset = TensorDataset(inputs, labels)
    train_loader = DataLoader(dataset, batch_size=64, shuffle=True)
    assert len(train_loader) == 16

    model = SimpleNN()
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.SGD(model.parameters(), lr=0.01)

    history = []
    for _epoch in range(num_epochs):
        model.train()
        running_loss = 0.0
        for inputs_batch, labels_batch in train_loader:
            optimizer.zero_grad()
            outputs = model(inputs_batch)
            loss = criterion(outputs, labels_batch)
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
        history.append(running_loss / len(train_loader))

    test_loader = DataLoader(TensorDataset(inputs[:200], labels[:200]), batch_size=64)
    model.eval()
    with torch.no_grad():
        correct = 0
        total = 0
        for inputs_batch, labels_batch in test_loader:
            outputs = model(inputs_batch)
            _, predicted = torch.max(outputs, 1)
            total += labels_batch.size(0)
            correct += (predicted == labels_batch).sum().item()
    return history, correct, total, model


def test_seed_002_pytorch_loop():
    history, correct, total, _ = _train_simple(0)
    # random labels: the model can only memorise; after 5 epochs it has begun to
    assert history[-1] < history[0], history
    assert total == 200 and 0 <= correct <= 200
    assert correct / total > 0.15, correct / total


def test_the_loop_is_reproducible_under_manual_seed():
    h1, c1, _, m1 = _train_simple(3, num_epochs=1)
    h2, c2, _, m2 = _train_simple(3, num_epochs=1)
    assert h1 == h2 and c1 == c2
    np.testing.assert_array_equal(m1.fc1.weight.numpy(), m2.fc1.weight.numpy())


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, kernel_size=3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.pool = nn.MaxPool2d(2)
        self.drop = nn.Dropout(0.1)
        self.fc = nn.Linear(4 * 4 * 4, 2)

    def forward(self, x):
        x = self.pool(F.relu(self.bn(self.conv(x))))
        x = torch.flatten(x, 1)
        return self.fc(self.drop(x))


def test_cnn_loop_with_workers_scheduler_clipping_and_validation():
    torch.manual_seed(0)
    # class 1 images are bright in the top half, class 0 in the bottom half
    y = torch.randint(0, 2, (256,))
    x = torch.randn(256, 1, 8, 8) * 0.5
    top = torch.zeros(256, 1, 8, 8)
    top[:, :, :4, :] = 1.0
    x = x + torch.where(y.view(-1, 1, 1, 1) == 1, top, 1.0 - top)
    train_set, val_set = random_split(TensorDataset(x, y), [0.75, 0.25])
    train_loader = DataLoader(train_set, batch_size=32, shuffle=True, num_workers=2)
    val_loader = DataLoader(val_set, batch_size=64)

    model = SmallCNN()
    optimizer = optim.Adam(model.parameters(), lr=0.01)
    scheduler = optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    criterion = nn.CrossEntropyLoss()
    accuracies = []
    for _epoch in range(4):
        model.train()
        for xb, yb in train_loader:
            optimizer.zero_grad()
            loss = criterion(model(xb), yb)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
            optimizer.step()
        scheduler.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for xb, yb in val_loader:
                correct += (model(xb).argmax(dim=1) == yb).sum().item()
        accuracies.append(correct / len(val_set))
    assert optimizer.param_groups[0]["lr"] == 0.01 * 0.5**2
    assert accuracies[-1] > 0.9, accuracies
