"""``torch.nn.utils``: gradient clipping over ``model.parameters()`` (chainrule.nn's own)."""

from __future__ import annotations

from chainrule.nn.utils import clip_grad_norm_, clip_grad_value_

__all__ = ["clip_grad_norm_", "clip_grad_value_"]
