"""``torch.<name>`` for PyTorch's elementwise, reduction, product, indexing and shape functions.

The implementations are the core's (:mod:`chainrule.core.tensor_ops_math`,
``tensor_ops_index``, ``tensor_ops_linalg``: the same functions the array's methods call);
here they get PyTorch's module-level names, with a first argument that may be Python data
(converted with PyTorch's dtype rules). ``EXPORTS`` is what ``chainrule.torch`` binds;
``INPLACE`` are the module-level in-place functions (``torch.abs_(x)`` is ``x.abs_()``), and
``NN_ALIASES`` the names ``torch`` shares with ``torch.nn.functional`` (``torch.conv2d``).

Names whose MLX meaning clashes with PyTorch's on the array (``sort``, ``split``, ``cummax``,
``flip``, ``diagonal``, ...) have PyTorch's meaning here: the ``chainrule.torch.Tensor``
subclass calls these functions for its methods.
"""

from __future__ import annotations

import builtins
import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import chainrule.core as mx
from chainrule.core import backend as _backend
from chainrule.core import tensor_functions as _tf
from chainrule.core import tensor_ops_index as I
from chainrule.core import tensor_ops_linalg as L
from chainrule.core import tensor_ops_math as M
from chainrule.core.extend import from_value
from chainrule.core.tensor_methods_more import METHODS

from ._creation import _I64, takes_tensor, tensor

array = mx.array


def _arr(x: Any) -> array:
    return x if isinstance(x, array) else tensor(x)


def _both(fn: Callable) -> Callable:
    """``fn(input, other, ...)`` with either operand given as data (PyTorch's dtype rules)."""

    @functools.wraps(fn)
    def wrapper(input: Any, other: Any, *args: Any, **kwargs: Any) -> Any:
        a = input if isinstance(input, array) else tensor(input)
        b = other
        if not isinstance(other, (array, builtins.int, builtins.float, builtins.bool, complex)):
            b = tensor(other)
        return fn(a, b, *args, **kwargs)

    return wrapper


# -- functions whose PyTorch meaning differs from MLX's on the array ----------------------------


def diag(input: Any, diagonal: int = 0) -> array:
    """The ``diagonal``-th diagonal of a matrix, or a matrix with a vector on it."""
    x = _arr(input)
    if x.ndim not in (1, 2):
        raise RuntimeError(f"diag: expected a 1-D or 2-D tensor, got shape {x.shape}")
    return mx.diag(x, diagonal)


def diagonal(input: Any, offset: int = 0, dim1: int = 0, dim2: int = 1) -> array:
    """The diagonal of ``input`` over ``dim1``/``dim2`` (moved to the last dimension)."""
    return mx.diagonal(_arr(input), offset, dim1, dim2)


def tile(input: Any, dims: Sequence[int]) -> array:
    """Repeat ``input`` ``dims`` times along each dimension (leading 1s added as needed)."""
    return mx.tile(_arr(input), tuple(dims))


def take(input: Any, index: Any) -> array:
    """Elements of the flattened input at ``index``."""
    return I.take(_arr(input), _arr(index))


def flip(input: Any, dims: Any) -> array:
    """Reverse ``input`` along ``dims``."""
    return I.flip(_arr(input), dims)


def moveaxis(input: Any, source: Any, destination: Any) -> array:
    """``movedim``."""
    return I.movedim(_arr(input), source, destination)


def logsumexp(input: Any, dim: Any, keepdim: bool = False) -> array:
    """``log(sum(exp(input)))`` over ``dim``."""
    return M.logsumexp(_arr(input), dim, keepdim)


def tril(input: Any, diagonal: int = 0) -> array:
    """The lower triangle (below diagonal ``diagonal``), zeros elsewhere."""
    return mx.tril(_arr(input), diagonal)


def triu(input: Any, diagonal: int = 0) -> array:
    """The upper triangle (above diagonal ``diagonal``), zeros elsewhere."""
    return mx.triu(_arr(input), diagonal)


def split(tensor: Any, split_size_or_sections: Any, dim: int = 0) -> tuple[array, ...]:
    """Pieces of ``split_size_or_sections`` elements along ``dim`` (or of the listed sizes)."""
    return I.split(_arr(tensor), split_size_or_sections, dim)


def round(input: Any, *, decimals: int = 0) -> array:
    """Round half to even (to ``decimals`` decimal places); integers are returned as they are."""
    x = _arr(input)
    if x._data.dtype.kind in "biu":
        return x
    return mx.round(x, decimals)


def clone(input: Any, *, memory_format: Any = None) -> array:
    """A copy; differentiable."""
    x = _arr(input)
    return x.clone()


def detach(input: array) -> array:
    """The values without the graph."""
    return input.detach()


def result_type(tensor1: Any, tensor2: Any) -> mx.Dtype:
    """The dtype of ``tensor1 + tensor2`` under PyTorch's rules."""
    a = tensor1 if isinstance(tensor1, array) else tensor1
    b = tensor2 if isinstance(tensor2, array) else tensor2
    if not isinstance(a, array) and not isinstance(b, array):
        return (tensor(a) + tensor(b)).dtype
    with mx.no_grad():
        x = a if isinstance(a, array) else a
        y = b if isinstance(b, array) else b
        xs = mx.zeros((1,), x.dtype) if isinstance(x, array) else x
        ys = mx.zeros((1,), y.dtype) if isinstance(y, array) else y
        return mx.add(xs, ys).dtype if isinstance(xs, array) else mx.add(ys, xs).dtype


def broadcast_tensors(*tensors: Any) -> tuple[array, ...]:
    """The inputs broadcast to their common shape."""
    arrs = [_arr(t) for t in tensors]
    shape = np.broadcast_shapes(*(a.shape for a in arrs))
    return tuple(mx.broadcast_to(a, shape) for a in arrs)


def broadcast_shapes(*shapes: Any) -> tuple:
    """The shape the given shapes broadcast to."""
    norm = [(s,) if isinstance(s, (builtins.int, np.integer)) else tuple(s) for s in shapes]
    try:
        return _tf.Size(np.broadcast_shapes(*norm))
    except ValueError:
        raise RuntimeError(
            f"broadcast_shapes: shapes {norm} cannot be broadcast together"
        ) from None


def _atleast(nd: int):
    def fn(*tensors: Any) -> Any:
        if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
            return tuple(fn(t) for t in tensors[0])
        if len(tensors) != 1:
            return tuple(fn(t) for t in tensors)
        x = _arr(tensors[0])
        if x.ndim >= nd:
            return x
        if nd == 3 and x.ndim == 2:
            return mx.expand_dims(x, -1)
        if nd == 3 and x.ndim == 1:
            return mx.reshape(x, (1, -1, 1))
        return mx.reshape(x, (1,) * (nd - x.ndim) + tuple(x.shape))

    fn.__name__ = fn.__qualname__ = f"atleast_{nd}d"
    fn.__doc__ = f"The inputs with at least {nd} dimensions (NumPy's placement of new ones)."
    return fn


atleast_1d, atleast_2d, atleast_3d = _atleast(1), _atleast(2), _atleast(3)


def hstack(tensors: Sequence[Any]) -> array:
    """Concatenate along dimension 1 (0 for 1-D inputs)."""
    ts = atleast_1d(list(tensors))
    return mx.concatenate(list(ts), axis=0 if ts[0].ndim == 1 else 1)


def vstack(tensors: Sequence[Any]) -> array:
    """Concatenate along dimension 0 after ``atleast_2d``."""
    return mx.concatenate(list(atleast_2d(list(tensors))), axis=0)


row_stack = vstack


def dstack(tensors: Sequence[Any]) -> array:
    """Concatenate along dimension 2 after ``atleast_3d``."""
    return mx.concatenate(list(atleast_3d(list(tensors))), axis=2)


def column_stack(tensors: Sequence[Any]) -> array:
    """Stack 0-D/1-D inputs as columns, concatenate 2-D ones along dimension 1."""
    cols = [mx.reshape(t, (-1, 1)) if t.ndim <= 1 else t for t in (_arr(v) for v in tensors)]
    return mx.concatenate(cols, axis=1)


def meshgrid(*tensors: Any, indexing: str | None = None) -> tuple[array, ...]:
    """Coordinate grids (``indexing="ij"`` by default, as PyTorch)."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    return tuple(mx.meshgrid(*[_arr(t) for t in tensors], indexing=indexing or "ij"))


def unravel_index(indices: Any, shape: Any) -> tuple[array, ...]:
    """The coordinates of flat ``indices`` in an array of ``shape`` (int64)."""
    idx = _arr(indices)._data
    shp = (shape,) if isinstance(shape, (builtins.int, np.integer)) else tuple(shape)
    n = builtins.int(np.prod(shp))
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise RuntimeError(f"unravel_index: index out of bounds for a tensor of shape {shp}")
    coords = np.unravel_index(idx % builtins.max(n, 1), shp)
    return tuple(from_value(c.astype(_I64)) for c in coords)


def gradient(input: Any, *, spacing: Any = 1, dim: Any = None, edge_order: int = 1) -> tuple:
    """Second-order central differences inside, one-sided at the edges, per dimension."""
    x = _arr(input)
    dims = range(x.ndim) if dim is None else ([dim] if isinstance(dim, builtins.int) else dim)
    dims = [_tf.one_dim(x, d, "gradient") for d in dims]
    sp = spacing if isinstance(spacing, (list, tuple)) else [spacing] * len(dims)
    out = []
    for d, h in zip(dims, sp):
        h = h.item() if isinstance(h, array) else h
        n = x.shape[d]
        if n < edge_order + 1:
            raise RuntimeError(
                f"gradient: each dimension needs at least {edge_order + 1} "
                f"points, dimension {d} has {n}"
            )
        fx = x if x._data.dtype.kind in "fc" else mx.astype(x, mx.float32)
        inner = (_sl(fx, d, 2, n) - _sl(fx, d, 0, n - 2)) / (2 * h)
        if edge_order == 1:
            first = (_sl(fx, d, 1, 2) - _sl(fx, d, 0, 1)) / h
            last = (_sl(fx, d, n - 1, n) - _sl(fx, d, n - 2, n - 1)) / h
        else:
            first = (-1.5 * _sl(fx, d, 0, 1) + 2 * _sl(fx, d, 1, 2) - 0.5 * _sl(fx, d, 2, 3)) / h
            last = (
                0.5 * _sl(fx, d, n - 3, n - 2)
                - 2 * _sl(fx, d, n - 2, n - 1)
                + 1.5 * _sl(fx, d, n - 1, n)
            ) / h
        out.append(mx.concatenate([first, inner, last], axis=d))
    return tuple(out)


def _sl(x: array, d: int, a: int, b: int) -> array:
    key = [builtins.slice(None)] * x.ndim
    key[d] = builtins.slice(a, b)
    return x[tuple(key)]


def threshold(input: Any, threshold: float, value: float) -> array:
    """``input`` where it exceeds ``threshold``, else ``value``."""
    x = _arr(input)
    return mx.where(x > threshold, x, mx.array(value, dtype=x.dtype))


def rsub(input: Any, other: Any, *, alpha: Any = 1) -> array:
    """``other - alpha * input``."""
    return M.rsub(_arr(input), other, alpha=alpha)


def polygamma(n: int, input: Any) -> array:
    """The ``n``-th derivative of ``digamma``."""
    return M.polygamma(n, _arr(input))


def isin(elements: Any, test_elements: Any, *, assume_unique: bool = False, invert: bool = False):
    """Whether each element of ``elements`` is in ``test_elements``."""
    return M.isin(elements, test_elements, assume_unique=assume_unique, invert=invert)


def searchsorted(sorted_sequence: Any, input: Any, **kwargs: Any) -> array:
    """Insertion points in the last dimension of ``sorted_sequence`` (int64)."""
    return I.searchsorted(_arr(sorted_sequence), input, **kwargs)


def bucketize(input: Any, boundaries: Any, **kwargs: Any) -> array:
    """The bucket of each value among 1-D ``boundaries`` (int64)."""
    return I.bucketize(input, _arr(boundaries), **kwargs)


def complex(real: Any, imag: Any) -> array:
    """``real + 1j * imag``."""
    return I.complex(_arr(real), _arr(imag))


def polar(abs: Any, angle: Any) -> array:
    """``abs * exp(1j * angle)``."""
    return I.polar(_arr(abs), _arr(angle))


def block_diag(*tensors: Any) -> array:
    """A block-diagonal matrix of the inputs."""
    return I.block_diag(*[_arr(t) for t in tensors])


def cartesian_prod(*tensors: Any) -> array:
    """Every combination of one element of each 1-D input."""
    return I.cartesian_prod(*[_arr(t) for t in tensors])


def chain_matmul(*matrices: Any) -> array:
    """The product of the matrices, left to right."""
    return L.chain_matmul(*[_arr(m) for m in matrices])


def lu_unpack(LU_data: Any, LU_pivots: Any, unpack_data: bool = True, unpack_pivots: bool = True):
    """``(P, L, U)`` from ``torch.lu``'s packed factors and 1-based pivots."""
    lu_ = _arr(LU_data)
    n = lu_.shape[-1]
    low = mx.tril(lu_, -1) + mx.eye(n, dtype=lu_.dtype, stream=_tf.stream_of(lu_))
    up = mx.triu(lu_)
    piv = _backend.to_host(_arr(LU_pivots)._data) - 1  # explicit copy: a Python loop reads it
    perm = np.broadcast_to(np.arange(n), piv.shape[:-1] + (n,)).copy()
    for pos in np.ndindex(*piv.shape[:-1]):
        for i, j in enumerate(piv[pos]):
            perm[pos + (i,)], perm[pos + (j,)] = perm[pos + (j,)], perm[pos + (i,)]
    p = np.zeros(perm.shape + (n,), lu_._data.dtype)
    np.put_along_axis(p, perm[..., None], 1, axis=-1)
    pm = from_value(_backend.same_device(np.swapaxes(p, -1, -2).copy(), lu_._data))
    return pm, low, up


def matrix_rank(input: Any, tol: float | None = None, symmetric: bool = False) -> array:
    """Removed from PyTorch (raises as PyTorch does): use ``torch.linalg.matrix_rank``."""
    raise RuntimeError(
        "matrix_rank: this function was deprecated since version 1.9 and is now removed; "
        "use torch.linalg.matrix_rank"
    )


def _sl_step(x: array, dim: int, start: Any, end: Any, step: int) -> array:
    key = [builtins.slice(None)] * x.ndim
    key[_tf.one_dim(x, dim, "slice_copy")] = builtins.slice(start, end, step)
    return x[tuple(key)]


_UNARY = {
    "log2": mx.log2,
    "log10": mx.log10,
    "reciprocal": mx.reciprocal,
    "conj": mx.conj,
    "conj_physical": lambda x: mx.conj(x) if x._data.dtype.kind == "c" else x,
    "resolve_conj": lambda x: x,
    "resolve_neg": lambda x: x,
    "real": mx.real,
    "imag": mx.imag,
    "hardshrink": lambda x, lambd=0.5: mx.where(mx.abs(x) > lambd, x, mx.zeros_like(x)),
    # reductions
    "prod": M.prod,
    "cumsum": M.cumsum,
    "cumprod": M.cumprod,
    "logcumsumexp": M.logcumsumexp,
    "cummax": M.cummax,
    "cummin": M.cummin,
    "std_mean": M.std_mean,
    "var_mean": M.var_mean,
    "all": M.all,
    "any": M.any,
    "trace": M.trace,
    # matrices
    "vander": L.vander,
    "trapezoid": L.trapezoid,
    "trapz": L.trapz,
    "cumulative_trapezoid": L.cumulative_trapezoid,
    # indexing and shapes
    "masked_fill": I.masked_fill,
    "view_as_real": I.view_as_real,
    "view_as_complex": I.view_as_complex,
    "combinations": I.combinations,
    "broadcast_to": lambda x, size: mx.broadcast_to(x, tuple(size)),
    "is_complex": lambda x: x._data.dtype.kind == "c",
    "is_signed": lambda x: x._data.dtype.kind in "ifcV",
    "is_conj": lambda x: False,
    "is_neg": lambda x: False,
    "is_inference": lambda x: False,
    "is_nonzero": lambda x: x.is_nonzero(),
    "is_same_size": lambda x, y: x.shape == y.shape,
}
# The names whose function is the tensor method's own (one implementation, in core).
_UNARY.update(
    (_n, METHODS[_n])
    for _n in """
    absolute acos arccos acosh arccosh asin arcsin asinh arcsinh atan arctan atanh arctanh
    cosh sinh tan trunc fix frac erfc erfinv exp2 expm1 sinc sgn signbit positive deg2rad
    rad2deg lgamma digamma i0 logit angle nan_to_num isneginf isposinf isreal bitwise_not
    mvlgamma frexp amax amin aminmax median nanmedian mode kthvalue quantile nanquantile
    nansum nanmean count_nonzero norm renorm diff histc histogram hash_tensor stft istft
    bincount det logdet slogdet inverse pinverse cholesky cholesky_inverse qr svd
    matrix_exp matrix_power adjoint cov corrcoef gather scatter scatter_add scatter_reduce
    index_select index_add index_copy index_fill index_put index_reduce masked_select
    masked_scatter put take_along_dim narrow narrow_copy select select_scatter
    slice_scatter diagonal_scatter chunk unsafe_chunk split_with_sizes unsafe_split
    unsafe_split_with_sizes tensor_split hsplit vsplit dsplit unbind movedim fliplr flipud
    roll rot90 repeat_interleave unflatten ravel nonzero nonzero_static argwhere unique
    unique_consecutive msort diag_embed diagflat
""".split()
)

_BINARY = {
    "tensordot": L.tensordot,
    "cdist": L.cdist,
}
# The names whose function is the tensor method's own (one implementation, in core).
_BINARY.update(
    (_n, METHODS[_n])
    for _n in """
    subtract multiply divide true_divide floor_divide fmod remainder float_power atan2
    arctan2 copysign hypot logaddexp logaddexp2 xlogy ldexp lerp nextafter igamma igammac
    gcd lcm heaviside fmax fmin bitwise_and bitwise_or bitwise_xor bitwise_left_shift
    bitwise_right_shift logical_xor greater greater_equal less less_equal not_equal
    isclose addcmul addcdiv clamp_min clamp_max dist addmm addmv addr addbmm baddbmm dot
    vdot inner ger mv kron cross cholesky_solve triangular_solve
""".split()
)

# The copies that PyTorch offers next to its view functions: values are never shared here.
_COPIES = {
    "alias_copy": lambda x: x * 1 if x._node is not None else from_value(x._data.copy()),
    "detach_copy": lambda x: from_value(x._data.copy()),
    "t_copy": _tf.t,
    "view_copy": lambda x, *shape: x.view(*shape),
    "expand_copy": lambda x, size, *, implicit=False: x.expand(*size),
    "permute_copy": lambda x, dims: mx.transpose(x, tuple(dims)),
    "diagonal_copy": lambda x, offset=0, dim1=0, dim2=1: mx.diagonal(x, offset, dim1, dim2),
    "select_copy": I.select,
    "slice_copy": lambda x, dim=0, start=None, end=None, step=1: _sl_step(x, dim, start, end, step),
    "split_copy": I.split,
    "split_with_sizes_copy": I.split_with_sizes,
    "squeeze_copy": _tf.squeeze,
    "transpose_copy": lambda x, dim0, dim1: mx.swapaxes(x, dim0, dim1),
    "unbind_copy": I.unbind,
    "unfold_copy": I.unfold,
    "unsqueeze_copy": lambda x, dim: mx.expand_dims(x, int(dim)),
    "view_as_real_copy": I.view_as_real,
    "view_as_complex_copy": I.view_as_complex,
}

EXPORTS: dict[str, Callable] = {}
for _name, _fn in _UNARY.items():
    EXPORTS[_name] = takes_tensor(_fn)
for _name, _fn in _BINARY.items():
    EXPORTS[_name] = _both(_fn)
for _name, _fn in _COPIES.items():
    EXPORTS[_name] = takes_tensor(_fn)
for _fn in (
    diag,
    diagonal,
    tile,
    take,
    flip,
    moveaxis,
    logsumexp,
    tril,
    triu,
    split,
    round,
    clone,
    detach,
    result_type,
    broadcast_tensors,
    broadcast_shapes,
    atleast_1d,
    atleast_2d,
    atleast_3d,
    hstack,
    vstack,
    row_stack,
    dstack,
    column_stack,
    meshgrid,
    unravel_index,
    gradient,
    threshold,
    rsub,
    polygamma,
    isin,
    searchsorted,
    bucketize,
    complex,
    polar,
    block_diag,
    cartesian_prod,
    chain_matmul,
    lu_unpack,
    matrix_rank,
):
    EXPORTS[_fn.__name__] = _fn
EXPORTS["row_stack"] = row_stack
EXPORTS["swapaxes"] = EXPORTS["swapdims"] = lambda input, axis0, axis1: mx.swapaxes(
    _arr(input), axis0, axis1
)
EXPORTS["cdist"] = _both(L.cdist)
for _name in ("lstsq", "eig", "symeig", "solve"):
    EXPORTS[_name] = getattr(mx.array, _name)
for _fn in EXPORTS.values():
    if getattr(_fn, "__doc__", None) is None:
        try:
            _fn.__doc__ = "PyTorch's function of this name over chainrule arrays."
        except AttributeError:
            pass


def _inplace_fn(name: str) -> Callable:
    def fn(input: array, *args: Any, **kwargs: Any) -> array:
        return getattr(input, name)(*args, **kwargs)

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"``input.{name}(...)``: in place, returns ``input``."
    # Not wrapped by the tensor doors: the method must rebind the caller's own handle (the
    # method itself goes through the tensor class's in-place door).
    fn.__wrapped_door__ = True
    return fn


INPLACE = {
    name + "_": _inplace_fn(name + "_")
    for name in """abs acos acosh arccos arccosh arcsin arcsinh arctan arctanh asin asinh atan
    atanh ceil clamp clamp_max clamp_min clip cos cosh deg2rad erf erfc exp exp2 expm1 fix
    floor frac lcm gcd ldexp log log10 log1p log2 logit nan_to_num neg negative rad2deg
    reciprocal relu round rsqrt sigmoid sin sinc sinh sqrt square tan tanh trunc xlogy
    fill zero detach index_put addmv""".split()
}
INPLACE["fill_"] = _inplace_fn("fill_")
INPLACE["zero_"] = _inplace_fn("zero_")
INPLACE["detach_"] = _inplace_fn("detach_")
INPLACE["i0_"] = _inplace_fn("i0_")


def fill(input: array, value: Any) -> array:
    """A copy of ``input`` with every element ``value``."""
    return mx.full(input.shape, value.item() if isinstance(value, array) else value, input.dtype)


EXPORTS["fill"] = fill

LAZY_ALIASES = {"vmap": ("func", "vmap")}
"""``torch.<name>`` that is another submodule's function (resolved on first use)."""

NN_ALIASES = """conv1d conv2d conv3d conv_transpose1d conv_transpose2d conv_transpose3d
conv_tbc dropout alpha_dropout feature_alpha_dropout celu selu prelu rrelu hardshrink
pixel_shuffle pixel_unshuffle channel_shuffle native_channel_shuffle cosine_similarity
pairwise_distance pdist embedding embedding_bag bilinear layer_norm group_norm
instance_norm batch_norm rms_norm max_pool1d max_pool2d max_pool3d avg_pool1d
adaptive_avg_pool1d adaptive_max_pool1d max_pool1d_with_indices cosine_embedding_loss
hinge_embedding_loss margin_ranking_loss triplet_margin_loss poisson_nll_loss ctc_loss
kl_div binary_cross_entropy_with_logits celu_ selu_ rrelu_ threshold_ dropout_
alpha_dropout_ feature_alpha_dropout_""".split()
"""``torch.<name>`` that are ``torch.nn.functional.<name>`` (resolved on first use)."""
