"""chainrule: a deep-learning framework on NumPy, in the MLX and PyTorch idioms.

``chainrule.save_checkpoint`` and ``chainrule.load_checkpoint`` are loaded on first use, so
``import chainrule.core`` loads nothing above the core (see chainrule/core/lazy.py).
"""

__version__ = "0.1.0"


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


def __getattr__(name: str):
    # The lazy aliases are listed in chainrule/core/lazy.py; importing it loads the core, which
    # every use of chainrule needs anyway, and then serves the name from now on.
    from .core import lazy

    lazy.attach(__name__, globals())
    return globals()["__getattr__"](name)
