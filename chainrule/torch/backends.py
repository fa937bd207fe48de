"""``torch.backends``: accelerator switches PyTorch code reads or sets; none is available."""

from __future__ import annotations

import types

mps = types.SimpleNamespace(is_available=lambda: False, is_built=lambda: False)
"""Apple's Metal backend for PyTorch: not available (chainrule runs on NumPy)."""

cudnn = types.SimpleNamespace(deterministic=False, benchmark=False, enabled=False)
"""cuDNN flags: settable, without effect (there is no cuDNN)."""
