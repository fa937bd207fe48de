"""``torch.return_types``: the named tuples PyTorch's functions return (``values, indices``...).

Each is the class the function itself returns here, so ``isinstance(torch.sort(x),
torch.return_types.sort)`` holds and fields read as in PyTorch (``out.values``).
"""

from __future__ import annotations

from chainrule.core import tensor_functions as _tf
from chainrule.core import tensor_ops_linalg as _L
from chainrule.core import tensor_ops_math as _M

from . import _math

max = _tf.MaxResult
min = _tf.MinResult
sort = _math.SortResult
topk = _math.TopkResult
aminmax = _M.AminmaxResult
cummax = _M.CummaxResult
cummin = _M.CumminResult
median = _M.MedianResult
nanmedian = _M.NanmedianResult
mode = _M.ModeResult
kthvalue = _M.KthvalueResult
frexp = _M.FrexpResult
slogdet = _L.SlogdetResult
qr = _L.QRResult
svd = _L.SVDResult
triangular_solve = _L.TriangularSolveResult

__all__ = [
    "aminmax",
    "cummax",
    "cummin",
    "frexp",
    "kthvalue",
    "max",
    "median",
    "min",
    "mode",
    "nanmedian",
    "qr",
    "slogdet",
    "sort",
    "svd",
    "topk",
    "triangular_solve",
]
