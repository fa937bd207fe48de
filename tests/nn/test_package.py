"""What `import chainrule.nn` offers and what it does not import eagerly."""

from __future__ import annotations

import subprocess
import sys

import pytest

import chainrule.nn as nn


def test_exports():
    for name in (
        "Module",
        "Linear",
        "value_and_grad",
        "init",
        "losses",
        "utils",
        "relu",
        "ReLU",
        "MSELoss",
        "mse_loss",
        "clip_grad_norm_",
        "Parameter",
    ):
        assert hasattr(nn, name), name


def test_optimizers_are_loaded_lazily():
    code = (
        "import sys, chainrule.nn as nn\n"
        "assert 'chainrule.optimizers' not in sys.modules, 'imported eagerly'\n"
        "import chainrule.optimizers as o\n"
        "assert nn.optim is o\n"
        "import chainrule.optimizers.lr_scheduler as s\n"
        "assert nn.lr_scheduler is s\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if "No module named 'chainrule.optimizers" in done.stderr:
        pytest.skip("chainrule.optimizers is not available")
    assert done.returncode == 0, done.stderr


def test_unknown_attribute():
    with pytest.raises(AttributeError, match="nonsense"):
        nn.nonsense  # noqa: B018
