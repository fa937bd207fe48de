"""chainrule: a deep-learning framework on NumPy, in the MLX and PyTorch idioms."""

__version__ = "0.1.0"

from .checkpoint import load_checkpoint, save_checkpoint


def seed(n: int) -> None:
    """Seed every random source of a training run with one call.

    The same as ``mx.random.seed(n)``: chainrule's global generator (weight initialisation,
    dropout, ``DataLoader`` shuffling), NumPy's global generator and Python's ``random``.
    ``DataLoader`` workers derive their own seeds from these, so a script run twice with the
    same seed gives the same results.

    Args:
        n: A non-negative integer.
    """
    from .core import random

    random.seed(n)
