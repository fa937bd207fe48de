"""The layers of ``chainrule.nn``, one module per family."""

from .activations import *
from .containers import *
from .convolution import *
from .distributed import *
from .dropout import *
from .embedding import *
from .linear import *
from .normalization import *
from .pooling import *
from .positional_encoding import *
from .quantized import *
from .recurrent import *
from .transformer import *
from .upsample import *
