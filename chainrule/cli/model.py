"""The model, loss, optimizer and metrics of a `chainrule` run, from the library."""

from __future__ import annotations

from typing import Any

from .errors import CommandError

__all__ = [
    "ACTIVATIONS",
    "OPTIMIZERS",
    "DEFAULT_LR",
    "MAX_PARAMETERS",
    "build_model",
    "parameter_count",
    "check_model_size",
    "loss_fn",
    "make_optimizer",
    "epoch_metrics",
    "report_metrics",
]

ACTIVATIONS = ("relu", "gelu", "silu", "tanh", "sigmoid", "leaky_relu", "elu")
OPTIMIZERS = ("adam", "sgd", "adamw", "rmsprop")
DEFAULT_LR = {"adam": 1e-3, "adamw": 1e-3, "rmsprop": 1e-3, "sgd": 1e-2}
# An MLP on a table: 100 million float32 parameters are 400 MB, 1.6 GB with Adam's state and
# the gradients. Anything larger is a typo in --hidden (or a corrupt config.json).
MAX_PARAMETERS = 100_000_000


def parameter_count(input_dim: int, hidden: list[int], output_dim: int) -> int:
    """The number of weights and biases of the MLP `input_dim -> hidden... -> output_dim`.

    Args:
        input_dim: number of input features.
        hidden: hidden layer sizes.
        output_dim: number of outputs.

    Returns:
        The parameter count (a Python int: no overflow).
    """
    widths = [int(input_dim), *map(int, hidden), int(output_dim)]
    return sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))


def check_model_size(input_dim: int, hidden: list[int], output_dim: int, source: str) -> None:
    """Refuse, before anything is allocated, a model above `MAX_PARAMETERS`.

    Args:
        input_dim: number of input features.
        hidden: hidden layer sizes.
        output_dim: number of outputs.
        source: what to blame in the message (`--hidden 100000`, or a config.json path).

    Raises:
        CommandError: if the model is too large.
    """
    count = parameter_count(input_dim, hidden, output_dim)
    if count > MAX_PARAMETERS:
        raise CommandError(
            f"{source}: the model would have {count:,} parameters "
            f"({input_dim} inputs, layers {','.join(map(str, hidden)) or 'none'}, "
            f"{output_dim} outputs), more than the limit of {MAX_PARAMETERS:,}; "
            "use smaller hidden layers"
        )


def build_model(config: dict[str, Any]) -> Any:
    """The MLP a run's config describes (fresh weights).

    Args:
        config: `input_dim`, `output_dim`, `hidden`, `activation`, `dropout`; or, for an
            image network, `kind` ("cnn" or "resnet"), `input_shape`, `output_dim`, `dropout`.

    Returns:
        A `chainrule.nn.Sequential` (a `chainrule.nn.Module` for an image network).
    """
    import chainrule.nn as nn

    if config.get("kind", "mlp") != "mlp":
        from .image_models import build_image_model

        return build_image_model(config)
    activation = {
        "relu": nn.ReLU,
        "gelu": nn.GELU,
        "silu": nn.SiLU,
        "tanh": nn.Tanh,
        "sigmoid": nn.Sigmoid,
        "leaky_relu": nn.LeakyReLU,
        "elu": nn.ELU,
    }[config["activation"]]
    layers: list[Any] = []
    width = config["input_dim"]
    for size in config["hidden"]:
        layers += [nn.Linear(width, size), activation()]
        if config["dropout"] > 0:
            layers.append(nn.Dropout(config["dropout"]))
        width = size
    layers.append(nn.Linear(width, config["output_dim"]))
    return nn.Sequential(*layers)


def loss_fn(task: str) -> Any:
    """Cross-entropy for classification, mean squared error for regression."""
    import chainrule.nn as nn

    return nn.CrossEntropyLoss() if task == "classification" else nn.MSELoss()


def make_optimizer(name: str, lr: float) -> Any:
    """An MLX-style optimizer by name (`sgd` uses momentum 0.9)."""
    import chainrule.optimizers as optim

    if name == "sgd":
        return optim.SGD(learning_rate=lr, momentum=0.9)
    cls = {"adam": optim.Adam, "adamw": optim.AdamW, "rmsprop": optim.RMSprop}[name]
    return cls(learning_rate=lr)


def epoch_metrics(task: str) -> tuple[str, ...]:
    """The metrics shown every epoch."""
    return ("accuracy",) if task == "classification" else ("mae",)


def report_metrics(task: str) -> tuple[str, ...]:
    """The metrics of metrics.json and `chainrule evaluate`."""
    if task == "classification":
        return ("accuracy", "precision", "recall", "f1")
    return ("mse", "mae", "r2")
