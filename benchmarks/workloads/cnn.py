"""``lenet`` and ``resnet``: two convolutional training steps.

lenet  : LeNet-5 on 1x28x28, batch 64: conv 5x5 (6, padding 2) - relu - maxpool 2 -
         conv 5x5 (16) - relu - maxpool 2 - 400-120-84-10, cross entropy, SGD momentum 0.9
resnet : a small CIFAR ResNet on 3x32x32, batch 32: conv 3x3 (16) - BN - relu, then 3 stages
         of 2 basic blocks (16/32/64 channels, stride 2 into stages 2 and 3, 1x1 conv + BN
         shortcut where the shape changes), global average pool, linear 64-10, cross
         entropy, SGD lr 0.1 momentum 0.9

MLX style is channels-last (NHWC, as MLX's convolutions are), PyTorch style channels-first.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np

from . import Step, Workload, dense_flops, mlx_train, torch_train

LENET_BATCH, RESNET_BATCH = 64, 32


def images(batch: int, channels: int, size: int, nchw: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    """Eight batches of Gaussian images and random labels of 10 classes."""
    rng = np.random.default_rng(0)
    out = []
    for _ in range(8):
        x = rng.standard_normal((batch, size, size, channels)).astype(np.float32)
        if nchw:
            x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        out.append((x, rng.integers(0, 10, batch).astype(np.int64)))
    return out


def conv_flops(batch: int, convs: list[tuple[int, int, int, int]]) -> float:
    """Forward + backward FLOPs of convolutions ``(cin, cout, kernel, out_size)``.

    The first convolution's input (the images) needs no gradient.
    """
    total = 0.0
    for i, (cin, cout, k, out) in enumerate(convs):
        f = 2.0 * batch * out * out * cout * cin * k * k
        total += 2 * f + (f if i else 0.0)
    return total


LENET_FLOPS = conv_flops(LENET_BATCH, [(1, 6, 5, 28), (6, 16, 5, 10)]) + dense_flops(
    LENET_BATCH, [400, 120, 84, 10], first_needs_input_grad=True
)


def resnet_convs() -> list[tuple[int, int, int, int]]:
    """The ResNet's convolutions as ``(cin, cout, kernel, out_size)``, stem first."""
    convs = [(3, 16, 3, 32)]
    cin, size = 16, 32
    for cout in (16, 32, 64):
        for b in range(2):
            stride = 2 if (b == 0 and cout != 16) else 1
            size //= stride
            convs += [(cin, cout, 3, size), (cout, cout, 3, size)]
            if stride != 1 or cin != cout:
                convs.append((cin, cout, 1, size))
            cin = cout
    return convs


RESNET_FLOPS = conv_flops(RESNET_BATCH, resnet_convs()) + dense_flops(
    RESNET_BATCH, [64, 10], first_needs_input_grad=True
)


def lenet_mlx(lib: SimpleNamespace, compiled: bool) -> Step:
    """LeNet-5, MLX style (NHWC)."""
    mx, nn, optim = lib.mx, lib.nn, lib.optim

    class LeNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
            self.conv2 = nn.Conv2d(6, 16, 5)
            self.pool = nn.MaxPool2d(2)
            self.fc = [nn.Linear(400, 120), nn.Linear(120, 84), nn.Linear(84, 10)]

        def __call__(self, x: Any) -> Any:
            x = self.pool(nn.relu(self.conv1(x)))
            x = self.pool(nn.relu(self.conv2(x)))
            x = x.reshape(x.shape[0], -1)
            x = nn.relu(self.fc[0](x))
            x = nn.relu(self.fc[1](x))
            return self.fc[2](x)

    def loss_fn(m: Any, x: Any, y: Any) -> Any:
        return nn.losses.cross_entropy(m(x), y, reduction="mean")

    model = LeNet()
    optimizer = optim.SGD(learning_rate=0.01, momentum=0.9)
    batches = [(mx.array(x), mx.array(y)) for x, y in images(LENET_BATCH, 1, 28, False)]
    return mlx_train(lib, model, loss_fn, optimizer, batches, compiled)


def lenet_torch(torch: Any, device: str) -> Step:
    """LeNet-5, PyTorch style (NCHW)."""
    nn = torch.nn
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(400, 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, 10),
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    batches = [
        (torch.from_numpy(x), torch.from_numpy(y)) for x, y in images(LENET_BATCH, 1, 28, True)
    ]
    return torch_train(torch, model, nn.CrossEntropyLoss(), optimizer, batches, device)


def resnet_mlx(lib: SimpleNamespace, compiled: bool) -> Step:
    """The small ResNet, MLX style (NHWC)."""
    mx, nn, optim = lib.mx, lib.nn, lib.optim

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
            self.bn1 = nn.BatchNorm(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm(cout)
            self.shortcut = []
            if stride != 1 or cin != cout:
                self.shortcut = [nn.Conv2d(cin, cout, 1, stride=stride, bias=False)]
                self.shortcut.append(nn.BatchNorm(cout))

        def __call__(self, x: Any) -> Any:
            out = nn.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            for layer in self.shortcut:
                x = layer(x)
            return nn.relu(out + x)

    class ResNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 16, 3, padding=1, bias=False)
            self.bn = nn.BatchNorm(16)
            self.blocks = []
            cin = 16
            for cout in (16, 32, 64):
                for b in range(2):
                    stride = 2 if (b == 0 and cout != 16) else 1
                    self.blocks.append(Block(cin, cout, stride))
                    cin = cout
            self.fc = nn.Linear(64, 10)

        def __call__(self, x: Any) -> Any:
            x = nn.relu(self.bn(self.conv(x)))
            for block in self.blocks:
                x = block(x)
            return self.fc(x.mean(axis=(1, 2)))

    def loss_fn(m: Any, x: Any, y: Any) -> Any:
        return nn.losses.cross_entropy(m(x), y, reduction="mean")

    model = ResNet()
    optimizer = optim.SGD(learning_rate=0.1, momentum=0.9)
    batches = [(mx.array(x), mx.array(y)) for x, y in images(RESNET_BATCH, 3, 32, False)]
    return mlx_train(lib, model, loss_fn, optimizer, batches, compiled)


def resnet_torch(torch: Any, device: str) -> Step:
    """The small ResNet, PyTorch style (NCHW)."""
    nn = torch.nn
    F = torch.nn.functional
    torch.manual_seed(0)

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.shortcut = nn.Sequential()
            if stride != 1 or cin != cout:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
                )

        def forward(self, x: Any) -> Any:
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return F.relu(out + self.shortcut(x))

    class ResNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 16, 3, padding=1, bias=False)
            self.bn = nn.BatchNorm2d(16)
            blocks = []
            cin = 16
            for cout in (16, 32, 64):
                for b in range(2):
                    stride = 2 if (b == 0 and cout != 16) else 1
                    blocks.append(Block(cin, cout, stride))
                    cin = cout
            self.blocks = nn.Sequential(*blocks)
            self.fc = nn.Linear(64, 10)

        def forward(self, x: Any) -> Any:
            x = self.blocks(F.relu(self.bn(self.conv(x))))
            return self.fc(x.mean(dim=(2, 3)))

    model = ResNet()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    batches = [
        (torch.from_numpy(x), torch.from_numpy(y)) for x, y in images(RESNET_BATCH, 3, 32, True)
    ]
    return torch_train(torch, model, nn.CrossEntropyLoss(), optimizer, batches, device)


WORKLOADS = [
    Workload(
        "lenet",
        "LeNet-5, 1x28x28, batch 64, SGD momentum",
        mlx=lenet_mlx,
        torch=lenet_torch,
        flops=LENET_FLOPS,
        gemm_shape=(LENET_BATCH * 100, 150, 16),
        steps=20,
    ),
    Workload(
        "resnet",
        "ResNet 3x2 basic blocks 16/32/64, BN, 3x32x32, batch 32, SGD momentum",
        mlx=resnet_mlx,
        torch=resnet_torch,
        flops=RESNET_FLOPS,
        gemm_shape=(RESNET_BATCH * 32 * 32, 144, 16),
        steps=5,
    ),
]
