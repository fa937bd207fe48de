"""chainrule: a deep-learning framework on NumPy, in the MLX and PyTorch idioms."""

__version__ = "0.1.0"

from .checkpoint import load_checkpoint, save_checkpoint
