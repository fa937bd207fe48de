"""The image networks of `chainrule train --model cnn|resnet` (channels-last inputs).

* `cnn`: LeNet-style, two 3x3 convolutions (16 and 32 channels, each with ReLU, the second
  followed by 2x2 max pooling when the image is at least 8 pixels on a side; images of 16 pixels
  and more are pooled after the first too), a 64-unit hidden layer with dropout, then the
  classes.
* `resnet`: a small residual network: a 3x3 stem of 16 channels, three stages of one basic
  block each (16, 32 and 64 channels, the last two halving the size when it is at least 4),
  batch normalisation, global average pooling, then the classes.
"""

from __future__ import annotations

from typing import Any

import chainrule.nn as nn

__all__ = ["ConvNet", "SmallResNet", "build_image_model", "image_parameter_count"]


class ConvNet(nn.Module):
    """The LeNet-style CNN of `--model cnn`.

    Args:
        shape: the input's (height, width, channels).
        classes: number of outputs.
        dropout: dropout before the last layer.
    """

    def __init__(self, shape: list[int], classes: int, dropout: float = 0.1) -> None:
        super().__init__()
        h, w, c = shape
        layers: list[Any] = [nn.Conv2d(c, 16, 3, padding=1), nn.ReLU()]
        if min(h, w) >= 16:
            layers.append(nn.MaxPool2d(2, 2))
            h, w = h // 2, w // 2
        layers += [nn.Conv2d(16, 32, 3, padding=1), nn.ReLU()]
        if min(h, w) >= 8:
            layers.append(nn.MaxPool2d(2, 2))
            h, w = h // 2, w // 2
        self.features = nn.Sequential(*layers)
        head: list[Any] = [nn.Linear(h * w * 32, 64), nn.ReLU()]
        if dropout > 0:
            head.append(nn.Dropout(dropout))
        head.append(nn.Linear(64, classes))
        self.head = nn.Sequential(*head)

    def __call__(self, x: Any) -> Any:
        """Class scores for a batch (N, H, W, C)."""
        y = self.features(x)
        return self.head(y.reshape(y.shape[0], -1))


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm(cout)
        self.shortcut = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm(cout))
            if stride != 1 or cin != cout
            else None
        )

    def __call__(self, x: Any) -> Any:
        y = nn.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return nn.relu(y + (x if self.shortcut is None else self.shortcut(x)))


class SmallResNet(nn.Module):
    """The small residual network of `--model resnet`.

    Args:
        shape: the input's (height, width, channels).
        classes: number of outputs.
    """

    def __init__(self, shape: list[int], classes: int) -> None:
        super().__init__()
        h, w, c = shape
        self.stem = nn.Conv2d(c, 16, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm(16)
        blocks = []
        cin = 16
        for cout in (16, 32, 64):
            stride = 2 if cout > 16 and min(h, w) >= 4 else 1
            if stride == 2:
                h, w = (h + 1) // 2, (w + 1) // 2
            blocks.append(_Block(cin, cout, stride))
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, classes)

    def __call__(self, x: Any) -> Any:
        """Class scores for a batch (N, H, W, C)."""
        y = self.blocks(nn.relu(self.bn(self.stem(x))))
        return self.fc(y.mean(axis=(1, 2)))


def build_image_model(config: dict[str, Any]) -> Any:
    """The network of a run's `model` entry with `kind` cnn or resnet (fresh weights)."""
    shape = list(config["input_shape"])
    if config["kind"] == "cnn":
        return ConvNet(shape, config["output_dim"], config.get("dropout", 0.1))
    return SmallResNet(shape, config["output_dim"])


def image_parameter_count(config: dict[str, Any]) -> int:
    """The number of parameters of the network (built once, small by design)."""
    import numpy as np

    from chainrule.checkpoint import named_arrays

    return int(sum(np.size(a._data) for _, a in named_arrays(build_image_model(config))))
