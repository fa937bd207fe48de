"""``chainrule.torch``: PyTorch's names and meanings over chainrule's one engine.

``import chainrule.torch as torch`` gives what PyTorch programs use (``torch.tensor``,
``torch.randn``, ``torch.max(x, 1)``, ``torch.no_grad()``, ``torch.save``...) with PyTorch's
signatures, defaults and dtypes (Python ints become int64, index results are int64).
Everything it makes is a ``torch.Tensor``: a thin subclass of chainrule's array whose methods
have PyTorch's meanings where MLX's differ (``x.transpose(0, 1)`` swaps two dimensions;
docs/torch_differences.md lists them). Submodules: ``nn`` (PyTorch's layouts and module state,
with ``nn.functional``), ``optim`` (the shared optimizers, with ``lr_scheduler``), ``autograd``,
``func``, ``distributions``, ``amp``, ``utils.data``, ``cuda``, ``backends``, ``accelerator``.

This module only binds names: it shadows the builtins ``max``, ``sum``, ``float``, ``int``
and ``bool``, as ``torch`` does, so the code lives in its private modules (and, for what the
array's own methods share, ``chainrule.core.tensor_functions``). Every public function bound
here is wrapped as a "door" at the end (``_tensor_class.install_doors``).

Examples:
    >>> import chainrule.torch as torch
    >>> x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    >>> (x**2).sum().backward()
    >>> x.grad
    tensor([2., 4., 6.])
    >>> torch.tensor([1, 2]).dtype == torch.int64  # Python ints become int64
    True
    >>> torch.arange(6).reshape(2, 3).transpose(0, 1).shape
    torch.Size([3, 2])
    >>> torch.max(torch.tensor([[1.0, 5.0], [7.0, 2.0]]), 1)
    max(values=tensor([5., 7.]), indices=tensor([1, 0]))
    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Linear(2, 1)
    >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.02)
    >>> x, y = torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([[1.0], [2.0]])
    >>> for _ in range(200):
    ...     optimizer.zero_grad()
    ...     loss = torch.nn.functional.mse_loss(model(x), y)
    ...     loss.backward()
    ...     optimizer.step()
    >>> loss.item() < 0.05
    True
"""

from __future__ import annotations

import builtins as _builtins
import functools as _functools
import importlib as _importlib
import threading as _threading

import chainrule.core as _mx
from chainrule.core.tensor_functions import device

from . import _tensor_class
from ._creation import (
    arange,
    as_tensor,
    empty,
    empty_like,
    eye,
    from_numpy,
    full,
    full_like,
    get_default_device,
    get_default_dtype,
    is_tensor,
    linspace,
    ones,
    ones_like,
    set_default_device,
    set_default_dtype,
    tensor,
    zeros,
    zeros_like,
)
from ._format import set_printoptions
from ._math import (
    add,
    allclose,
    argmax,
    argmin,
    argsort,
    clamp,
    clip,
    div,
    equal,
    is_floating_point,
    log_softmax,
    max,
    mean,
    min,
    numel,
    relu,
    softmax,
    sort,
    std,
    sub,
    sum,
    topk,
    var,
    where,
)
from ._random import (
    Generator,
    default_generator,
    manual_seed,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    randperm,
)
from ._shapes import (
    cat,
    concat,
    concatenate,
    flatten,
    permute,
    reshape,
    squeeze,
    stack,
    swapaxes,
    swapdims,
    t,
    transpose,
    unsqueeze,
)
from ._tensor_class import Tensor
from .amp import autocast, get_autocast_dtype, is_autocast_enabled
from .func import vmap
from .serialization import load, save

# Autograd switches: the engine's own.
no_grad = _mx.no_grad
enable_grad = _mx.enable_grad
set_grad_enabled = _mx.set_grad_enabled
is_grad_enabled = _mx.is_grad_enabled


class _Inference(_threading.local):
    on = False


_INFERENCE = _Inference()


class inference_mode(_mx.no_grad):
    """``no_grad`` under PyTorch's other name (``mode=False`` records as usual); inside it
    ``is_inference_mode_enabled()`` is true."""

    _mode = True  # (used bare, ``@inference_mode``, the instance is never initialised)

    def __init__(self, mode: _builtins.bool = True) -> None:
        self._flag = not mode
        self._mode = _builtins.bool(mode)

    def __enter__(self):
        self._prev_mode = _INFERENCE.on
        _INFERENCE.on = self._mode
        return super().__enter__()

    def __exit__(self, *exc) -> None:
        super().__exit__(*exc)
        _INFERENCE.on = self._prev_mode

    def __call__(self, fn):
        mode = self._mode

        @_functools.wraps(fn)
        def wrapped(*args, **kwargs):
            with inference_mode(mode):  # a region of its own for each call (re-entrant)
                return fn(*args, **kwargs)

        return wrapped


def is_inference_mode_enabled() -> _builtins.bool:
    """Whether the calling thread is inside ``inference_mode()`` (PyTorch's function)."""
    return _INFERENCE.on


# Elementwise operations and products: MLX's functions have PyTorch's names and arguments.
abs = _mx.abs
exp = _mx.exp
log = _mx.log
log1p = _mx.log1p
sqrt = _mx.sqrt
rsqrt = _mx.rsqrt
square = _mx.square
sin = _mx.sin
cos = _mx.cos
tanh = _mx.tanh
sigmoid = _mx.sigmoid
erf = _mx.erf
floor = _mx.floor
ceil = _mx.ceil
round = _mx.round
sign = _mx.sign
neg = negative = _mx.negative
pow = _mx.power
mul = multiply = _mx.multiply
maximum = _mx.maximum
minimum = _mx.minimum
eq = _mx.equal
ne = _mx.not_equal
gt = _mx.greater
ge = _mx.greater_equal
lt = _mx.less
le = _mx.less_equal
logical_and = _mx.logical_and
logical_or = _mx.logical_or
logical_not = _mx.logical_not
isnan = _mx.isnan
isinf = _mx.isinf
isfinite = _mx.isfinite
matmul = _mx.matmul
mm = _mx.matmul
bmm = _mx.matmul
outer = _mx.outer
einsum = _mx.einsum
logsumexp = _mx.logsumexp
tril = _mx.tril
triu = _mx.triu

# dtypes, with PyTorch's aliases (torch.float is float32, torch.long is int64).
float32 = float = _mx.float32
float64 = double = _mx.float64
float16 = half = _mx.float16
bfloat16 = _mx.bfloat16
int64 = long = _mx.int64
int32 = int = _mx.int32
int16 = short = _mx.int16
int8 = _mx.int8
uint8 = _mx.uint8
bool = _mx.bool_
complex64 = cfloat = _mx.complex64
complex128 = cdouble = _mx.complex128
dtype = _mx.Dtype

# PyTorch's breadth (elementwise, reductions, products, indexing, shapes; chainrule/torch/_ops.py
# and the core modules it binds): these replace the plain MLX bindings above where PyTorch's
# arguments differ (tril's diagonal=, logsumexp's dim=, round's integers...).
from . import _ops as _ops  # noqa: E402

globals().update(_ops.EXPORTS)
globals().update(_ops.INPLACE)
from chainrule.core.tensor_functions import Size, layout, strided  # noqa: E402

from . import _more as _more  # noqa: E402
from . import _more_creation as _more_creation  # noqa: E402
from . import return_types  # noqa: E402

globals().update(_more.EXPORTS)
globals().update({_n: getattr(_more_creation, _n) for _n in _more_creation.__all__})
finfo = _mx.finfo
iinfo = _mx.iinfo
uint16 = _mx.uint16
uint32 = _mx.uint32
uint64 = _mx.uint64

_SUBMODULES = (
    "nn",
    "optim",
    "utils",
    "cuda",
    "backends",
    "autograd",
    "func",
    "distributions",
    "amp",
    "accelerator",
    "linalg",
    "special",
    "onnx",
    "distributed",
)


# Every public function above returns tensors (and hands its implementation plain arrays):
# keep this the last binding of the module (chainrule/torch/_tensor_class.py, "the doors").
_tensor_class.install_doors(globals())


def __getattr__(name: str):
    # torch.nn, torch.optim and torch.utils import other chainrule packages; load them on
    # first use so that `import chainrule.torch` stays cheap and import cycles cannot form.
    if name in _SUBMODULES:
        return _importlib.import_module(f"{__name__}.{name}")
    if name in _ops.LAZY_ALIASES:
        module, attr = _ops.LAZY_ALIASES[name]
        return getattr(_importlib.import_module(f"{__name__}.{module}"), attr)
    if name in _ops.NN_ALIASES:
        # torch.conv2d, torch.dropout, ...: torch.nn.functional's function of the same name.
        functional = _importlib.import_module(f"{__name__}.nn.functional")
        if hasattr(functional, name):
            return getattr(functional, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
