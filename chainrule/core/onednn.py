"""oneDNN's kernels for float32 arrays on the CPU (optional; ``docs/performance.md``, "Session 11").

NumPy's BLAS (OpenBLAS here) multiplies at 92-132 GFLOP/s on one core and runs a convolution as
im2col and a GEMM (63-108); oneDNN, the library behind PyTorch's CPU convolutions and LSTM, runs
the same products at 165-275 and the convolutions at 155-262 with its AVX-512/AVX2 kernels.
When its shared library is installed (``pip install onednn-cpu-gomp``: the ``fast`` extra,
Linux x86-64), chainrule calls its C API through ``ctypes`` for float32 host arrays:

* the three kernels of ``conv.py`` (a convolution, its input gradient, its weight gradient):
  :func:`conv_forward`, :func:`conv_backward_data`, :func:`conv_backward_weights`, for 1-3
  spatial axes without input dilation (:func:`takes`);
* matrix products of at least :data:`GEMM_MIN_WORK` multiply-adds, matrices or stacks
  (:func:`matmul`, called by ``ops/products.py``);
* a whole LSTM layer forward and backward (:func:`lstm_layer`, called by
  ``chainrule.nn.layers.recurrent.lstm_sequence`` for ``chainrule.torch``'s LSTM);
* a recurrence's step product with its weight packed once (:func:`packed_matmul`);
* Adam's update of a large parameter in three fused passes (:func:`adam_update`, called by
  ``chainrule/optimizers/fused_cpu.py``; the one entry point that may write into its inputs,
  the moments, and only when told the caller owns them).

Everything else (float64, half precision, the GPU, small products) keeps the NumPy kernels,
and so does everything when the library is absent. The primitives and their rules stay
chainrule's: only the kernels' arithmetic moves.

The library is loaded with ``chainrule.core`` (as PyTorch loads its kernel libraries at import).
``CHAINRULE_ONEDNN=0`` in the environment, or :func:`disabled`, keeps the NumPy kernels;
``CHAINRULE_ONEDNN_LIBRARY`` names the library file when it is not in the interpreter's
``lib`` folder. :func:`status` says whether the library is in use, and if not, why.

Each shape's primitives are made once (a cache of the last 256, destroyed when dropped); a
weight is reordered into oneDNN's blocked layout at each call (it changes every step); inputs
are read in place (channels-last, or any positive strides for products) and outputs are new
NumPy arrays. GNU OpenMP's threads follow ``mx.set_num_threads``; a forked child keeps one.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterator

from .backend import ndarray, xp
from .tracing import kernel

__all__ = ["available", "status", "disabled", "takes", "conv_forward", "conv_backward_data"]
__all__ += [
    "conv_backward_weights",
    "set_num_threads",
    "packed_matmul",
    "Packed",
    "lstm_layer",
    "matmul",
    "GEMM_MIN_WORK",
    "adam_update",
    "adam_serves",
    "ADAM_MIN_SIZE",
]

# oneDNN 3.x's C API values (dnnl_types.h; ABI-stable within major version 3)
_F32 = 3
_TAG_ANY = 1
_FORWARD_TRAINING = 64
_CONV_DIRECT = 1
_ARG_SRC, _ARG_DST, _ARG_WEIGHTS = 1, 17, 33
_ARG_DIFF_SRC, _ARG_DIFF_DST, _ARG_DIFF_WEIGHTS = 129, 145, 161
_QUERY_IMPL_INFO = 8
_QUERY_WEIGHTS_MD, _QUERY_DIFF_WEIGHTS_MD = 131, 132
_SRC_0, _SRC_1 = 1, 2
_ATTR_SCALES, _POST_OP_BASE = 4096, 32768  # DNNL_ARG_ATTR_MULTIPLE_POST_OP(i): base * (i + 1)
_BINARY_ADD, _BINARY_MUL = 0x1FFF0, 0x1FFF1
_ELTWISE_SQRT, _ELTWISE_LINEAR, _ELTWISE_POW = 0x25, 0x26, 0x30
_MEMORY_ALLOCATE = ctypes.c_void_p(-1 & (2**64 - 1))  # DNNL_MEMORY_ALLOCATE: the library owns it
_Dims = ctypes.c_int64 * 12
_F32_TYPE = xp.dtype(xp.float32)


class _ExecArg(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_int), ("memory", ctypes.c_void_p)]


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_int), ("minor", ctypes.c_int), ("patch", ctypes.c_int)]


def _destroy(lib, owner) -> None:
    """Destroy what ``owner`` made (its ``owned`` list, newest first). The owners' ``__del__``
    bind this function as a default argument: at interpreter exit the module's names may be
    gone before the last owner is."""
    api = getattr(lib, "lib", None)
    if api is None:
        return
    for name, handle in reversed(getattr(owner, "owned", ())):
        if handle:
            getattr(api, name)(handle)
    owner.owned = []


_CACHE: OrderedDict = OrderedDict()
_CACHE_SIZE = 256
_CACHE_LOCK = threading.Lock()


def _cached(key: tuple, make):
    """The cache's entry for ``key`` (the most recent ``_CACHE_SIZE`` kept), made by
    ``make(lib)`` on a miss; ``None`` (also remembered) where oneDNN refuses the shape."""
    with _CACHE_LOCK:
        found = _CACHE.get(key, False)
        if found is not False:
            _CACHE.move_to_end(key)
            return found
    lib = _load()
    if lib is None:
        return None
    try:
        found = make(lib)
    except RuntimeError:
        found = None
    with _CACHE_LOCK:
        _CACHE[key] = found
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return found


class _Library:
    """The loaded library with its CPU engine and stream."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        lib.dnnl_version.restype = ctypes.POINTER(_Version)
        lib.dnnl_primitive_desc_query_md.restype = ctypes.c_void_p
        lib.dnnl_primitive_desc_query_md.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        lib.dnnl_memory_desc_get_size.restype = ctypes.c_size_t
        lib.dnnl_memory_desc_get_size.argtypes = [ctypes.c_void_p]
        lib.dnnl_memory_set_data_handle.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        lib.dnnl_primitive_execute.argtypes = [
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.c_int,
            ctypes.c_void_p,
        ]
        lib.dnnl_stream_wait.argtypes = [ctypes.c_void_p]
        v = lib.dnnl_version().contents
        self.version = (v.major, v.minor, v.patch)
        if v.major != 3:
            raise OSError(f"oneDNN {v.major}.{v.minor}.{v.patch} found; chainrule needs 3.x")
        self.lib = lib
        self.engine = ctypes.c_void_p()
        self.check(lib.dnnl_engine_create(ctypes.byref(self.engine), 1, 0), "engine_create")
        self.stream = ctypes.c_void_p()
        self.check(lib.dnnl_stream_create(ctypes.byref(self.stream), self.engine, 1), "stream")

    @staticmethod
    def check(code: int, what: str) -> None:
        if code != 0:
            raise RuntimeError(f"oneDNN: dnnl_{what} failed (status {code})")

    def md(self, owned: list, dims, strides=None) -> ctypes.c_void_p:
        """A float32 memory descriptor: dense with ``strides`` (in elements), or any layout
        (each maker adds what it made to ``owned``, which its owner destroys)."""
        md = ctypes.c_void_p()
        if strides is None:
            code = self.lib.dnnl_memory_desc_create_with_tag(
                ctypes.byref(md), len(dims), _Dims(*dims), _F32, _TAG_ANY
            )
        else:
            code = self.lib.dnnl_memory_desc_create_with_strides(
                ctypes.byref(md), len(dims), _Dims(*dims), _F32, _Dims(*strides)
            )
        self.check(code, "memory_desc_create")
        owned.append(("dnnl_memory_desc_destroy", md))
        return md

    def memory(self, owned: list, md, handle=None) -> ctypes.c_void_p:
        mem = ctypes.c_void_p()
        self.check(
            self.lib.dnnl_memory_create(ctypes.byref(mem), md, self.engine, handle), "memory"
        )
        owned.append(("dnnl_memory_destroy", mem))
        return mem

    def primitive(self, owned: list, pd) -> ctypes.c_void_p:
        prim = ctypes.c_void_p()
        self.check(self.lib.dnnl_primitive_create(ctypes.byref(prim), pd), "primitive_create")
        owned.append(("dnnl_primitive_destroy", prim))
        return prim

    def md_copy(self, owned: list, md) -> ctypes.c_void_p:
        """A copy of a descriptor that a primitive descriptor owns."""
        copy = ctypes.c_void_p()
        code = self.lib.dnnl_memory_desc_clone(ctypes.byref(copy), ctypes.c_void_p(md))
        self.check(code, "memory_desc_clone")
        owned.append(("dnnl_memory_desc_destroy", copy))
        return copy

    def impl(self, pd) -> str:
        name = ctypes.c_char_p()
        self.lib.dnnl_primitive_desc_query(pd, _QUERY_IMPL_INFO, 0, ctypes.byref(name))
        return (name.value or b"").decode()

    def reorder(self, owned: list, src_md, dst_md) -> ctypes.c_void_p:
        pd = ctypes.c_void_p()
        code = self.lib.dnnl_reorder_primitive_desc_create(
            ctypes.byref(pd), src_md, self.engine, dst_md, self.engine, None
        )
        self.check(code, "reorder_primitive_desc_create")
        try:
            return self.primitive(owned, pd)
        finally:
            self.lib.dnnl_primitive_desc_destroy(pd)  # the primitive keeps its own copy


_STATE: dict = {"lib": None, "why": "not loaded yet", "tried": False}
_ENABLED = [os.environ.get("CHAINRULE_ONEDNN", "1").strip() not in ("0", "false", "no", "off")]
_LOAD_LOCK = threading.Lock()


def _candidates() -> list[str]:
    named = os.environ.get("CHAINRULE_ONEDNN_LIBRARY", "").strip()
    if named:
        return [named]
    import site

    bases = (sys.prefix, sys.base_prefix, site.getuserbase())
    folders = dict.fromkeys(os.path.join(p, "lib") for p in bases)
    return [os.path.join(f, name) for f in folders for name in ("libdnnl.so.3", "libdnnl.so")]


def _load() -> _Library | None:
    with _LOAD_LOCK:
        if _STATE["tried"]:
            return _STATE["lib"]
        _STATE["tried"] = True
        if not sys.platform.startswith("linux"):
            _STATE["why"] = "the onednn-cpu-gomp wheel is for Linux only"
            return None
        reasons = []
        for path in _candidates():
            if not os.path.exists(path):
                continue
            try:
                _STATE["lib"] = _Library(ctypes.CDLL(path))
                _STATE["why"] = f"in use: {path}"
                if hasattr(os, "register_at_fork"):
                    os.register_at_fork(after_in_child=_after_fork)
                if _STATE.get("threads"):
                    set_num_threads(_STATE["threads"])
                return _STATE["lib"]
            except (OSError, RuntimeError, AttributeError) as err:
                reasons.append(f"{path}: {err}")
        _STATE["why"] = (
            "; ".join(reasons)
            if reasons
            else "libdnnl.so.3 not found (pip install onednn-cpu-gomp, or set "
            "CHAINRULE_ONEDNN_LIBRARY)"
        )
        return None


def available() -> bool:
    """Whether convolutions use oneDNN now (library loaded and not disabled)."""
    return _ENABLED[0] and _load() is not None


def status() -> str:
    """A line saying whether oneDNN's kernels are in use and, if not, why."""
    if not _ENABLED[0]:
        return "disabled (CHAINRULE_ONEDNN=0 or onednn.disabled())"
    _load()
    return str(_STATE["why"])


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Use the NumPy kernels inside the block (tests compare the two)."""
    before = _ENABLED[0]
    _ENABLED[0] = False
    try:
        yield
    finally:
        _ENABLED[0] = before


def set_num_threads(n: int) -> None:
    """Use ``n`` OpenMP threads in oneDNN's kernels (``mx.set_num_threads`` calls this; a
    count set before the library loads is applied when it loads). In a process forked from
    one that had loaded the library the count stays 1 (:func:`_after_fork`)."""
    _STATE["threads"] = 1 if _STATE.get("forked") else int(n)
    if _STATE["lib"] is None:
        return
    try:
        ctypes.CDLL("libgomp.so.1").omp_set_num_threads(_STATE["threads"])
    except (OSError, AttributeError):
        pass


def _after_fork() -> None:
    """In a forked child: one OpenMP thread from now on. GNU OpenMP's thread pool does not
    survive ``fork`` (the child's first parallel region waits forever for the parent's
    threads); with one thread it is never used. PyTorch's DataLoader workers run on one
    thread for the same reason, and so do chainrule's."""
    _STATE["forked"] = True
    set_num_threads(1)


# -- convolutions ----------------------------------------------------------------------------------


def _dense(shape: tuple, order: tuple) -> list:
    """Element strides of a C-contiguous array of ``shape``, listed in ``order``'s axis order."""
    strides, step = [0] * len(shape), 1
    for ax in range(len(shape) - 1, -1, -1):
        strides[ax] = step
        step *= shape[ax]
    return [strides[ax] for ax in order]


class _Conv:
    """One convolution shape's oneDNN descriptors, made on first use of each direction."""

    __slots__ = (
        "lib",
        "args",
        "x_md",
        "y_md",
        "w_md",
        "fwd_pd",
        "kinds",
        "lock",
        "out",
        "gw",
        "w_dims",
        "owned",
    )

    def __init__(self, lib: _Library, x_shape, w_shape, stride, lo, hi, kdil, groups) -> None:
        nd = len(x_shape) - 2
        c_out, kernel, cg = w_shape[0], tuple(w_shape[1:-1]), w_shape[-1]
        out = tuple(
            (n + a + b - (k - 1) * d - 1) // s + 1
            for n, a, b, k, d, s in zip(x_shape[1:-1], lo, hi, kernel, kdil, stride)
        )
        self.lib, self.lock = lib, threading.Lock()
        self.owned: list = []
        self.kinds: dict[str, tuple] = {}
        self.out = (x_shape[0],) + out + (c_out,)
        chans_last = (0, nd + 1) + tuple(range(1, nd + 1))  # logical N, C, spatial
        self.x_md = lib.md(
            self.owned,
            (x_shape[0], x_shape[-1]) + tuple(x_shape[1:-1]),
            _dense(x_shape, chans_last),
        )
        self.y_md = lib.md(self.owned, (self.out[0], c_out) + out, _dense(self.out, chans_last))
        if groups == 1:  # (O, *K, I) read as O, I, *K
            w_dims = (c_out, cg) + kernel
            w_strides = _dense(w_shape, chans_last)
        else:  # (G * O/G, *K, I/G) read as G, O/G, I/G, *K
            w5 = (groups, c_out // groups) + kernel + (cg,)
            w_dims = (groups, c_out // groups, cg) + kernel
            w_strides = _dense(w5, (0, 1, nd + 2) + tuple(range(2, nd + 2)))
        self.w_md = lib.md(self.owned, w_dims, w_strides)
        self.w_dims = w_dims
        self.gw = tuple(w_shape)
        w_any = lib.md(self.owned, w_dims)
        self.args = (
            _Dims(*stride),
            _Dims(*(d - 1 for d in kdil)),
            _Dims(*lo),
            _Dims(*hi),
        )
        self.fwd_pd = ctypes.c_void_p()
        self.owned.append(("dnnl_primitive_desc_destroy", self.fwd_pd))
        lib.check(
            lib.lib.dnnl_convolution_forward_primitive_desc_create(
                ctypes.byref(self.fwd_pd),
                lib.engine,
                _FORWARD_TRAINING,
                _CONV_DIRECT,
                self.x_md,
                w_any,
                None,
                self.y_md,
                *self.args,
                None,
            ),
            "convolution_forward_primitive_desc_create",
        )
        if lib.impl(self.fwd_pd).startswith("ref"):
            raise RuntimeError("oneDNN offers only its reference kernel for this convolution")

    def _weights_in(self, pd, query: int, user_md, to_user: bool) -> tuple:
        """A library-owned memory in ``pd``'s weight layout and the reorder to or from ours."""
        lib = self.lib
        md = ctypes.c_void_p(lib.lib.dnnl_primitive_desc_query_md(pd, query, 0))
        mem = lib.memory(self.owned, md, _MEMORY_ALLOCATE)
        owned = self.owned
        reorder = lib.reorder(owned, md, user_md) if to_user else lib.reorder(owned, user_md, md)
        return mem, reorder

    def _kind(self, kind: str) -> tuple:
        found = self.kinds.get(kind)
        if found is not None:
            return found
        lib, api = self.lib, self.lib.lib
        if kind == "fwd":
            pd = self.fwd_pd
        else:
            pd = ctypes.c_void_p()
            w_any = lib.md(self.owned, self.w_dims)
            make = (
                api.dnnl_convolution_backward_data_primitive_desc_create
                if kind == "data"
                else api.dnnl_convolution_backward_weights_primitive_desc_create
            )
            descs = (
                (self.x_md, w_any, self.y_md)
                if kind == "data"
                else (self.x_md, w_any, None, self.y_md)
            )
            code = make(
                ctypes.byref(pd), lib.engine, _CONV_DIRECT, *descs, *self.args, self.fwd_pd, None
            )
            lib.check(code, f"convolution_backward_{kind}_primitive_desc_create")
            self.owned.append(("dnnl_primitive_desc_destroy", pd))
        query = _QUERY_DIFF_WEIGHTS_MD if kind == "weights" else _QUERY_WEIGHTS_MD
        wmem, reorder = self._weights_in(pd, query, self.w_md, kind == "weights")
        own = self.owned
        found = (lib.primitive(own, pd), wmem, reorder)
        found += (
            lib.memory(own, self.x_md),
            lib.memory(own, self.y_md),
            lib.memory(own, self.w_md),
        )
        self.kinds[kind] = found
        return found

    def __del__(self, _destroy=_destroy) -> None:
        _destroy(getattr(self, "lib", None), self)

    def _with_weight(self, kind: str, w, x_arg: tuple, y_arg: tuple) -> None:
        """Run direction ``kind`` with weight ``w`` (reordered into its layout first) on the
        input-side and output-side arrays given as ``(argument, array)``."""
        api = self.lib.lib
        with self.lock:
            prim, wmem, reorder, xmem, ymem, umem = self._kind(kind)
            api.dnnl_memory_set_data_handle(umem, w.ctypes.data)
            _run(self.lib, reorder, [(_ARG_SRC, umem), (_ARG_DST, wmem)])
            api.dnnl_memory_set_data_handle(xmem, x_arg[1].ctypes.data)
            api.dnnl_memory_set_data_handle(ymem, y_arg[1].ctypes.data)
            _run(self.lib, prim, [(x_arg[0], xmem), (_ARG_WEIGHTS, wmem), (y_arg[0], ymem)])

    def forward(self, x, w):
        y = xp.empty(self.out, _F32_TYPE)
        self._with_weight("fwd", w, (_ARG_SRC, x), (_ARG_DST, y))
        return y

    def backward_data(self, g, w, x_shape):
        gx = xp.empty(x_shape, _F32_TYPE)
        self._with_weight("data", w, (_ARG_DIFF_SRC, gx), (_ARG_DIFF_DST, g))
        return gx

    def backward_weights(self, x, g):
        gw = xp.empty(self.gw, _F32_TYPE)
        api = self.lib.lib
        with self.lock:
            prim, wmem, reorder, xmem, ymem, umem = self._kind("weights")
            api.dnnl_memory_set_data_handle(xmem, x.ctypes.data)
            api.dnnl_memory_set_data_handle(ymem, g.ctypes.data)
            args = [(_ARG_SRC, xmem), (_ARG_DIFF_DST, ymem), (_ARG_DIFF_WEIGHTS, wmem)]
            _run(self.lib, prim, args)
            api.dnnl_memory_set_data_handle(umem, gw.ctypes.data)
            _run(self.lib, reorder, [(_ARG_SRC, wmem), (_ARG_DST, umem)])
        return gw


# -- the LSTM layer --------------------------------------------------------------------------------

_QUERY_EXEC_ARG_MD, _QUERY_WORKSPACE_MD = 255, 135
_BACKWARD, _OVERWRITE_DIFF_WEIGHTS = 128, 0x1
_ARG_SRC_ITER, _ARG_SRC_ITER_C, _ARG_DST_ITER, _ARG_DST_ITER_C = 2, 3, 18, 19
_ARG_WEIGHTS_ITER, _ARG_BIAS, _ARG_WORKSPACE = 34, 41, 64
_ARG_DIFF_SRC_ITER, _ARG_DIFF_SRC_ITER_C, _ARG_DIFF_DST_ITER, _ARG_DIFF_DST_ITER_C = (
    130,
    131,
    146,
    147,
)
_ARG_DIFF_WEIGHTS_ITER, _ARG_DIFF_BIAS = 162, 169
_U8_TYPE = xp.dtype(xp.uint8)


class _LSTM:
    """One LSTM layer shape's oneDNN primitives: ``T`` steps of ``N`` rows, ``D`` inputs,
    ``H`` hidden units, one direction (left to right, or right to left for a reversed pass).

    The user's tensors are PyTorch's: ``x`` ``(T, N, D)``, ``w_ih`` ``(4H, D)``, ``w_hh``
    ``(4H, H)`` (gates ``i, f, g, o``, oneDNN's order too), one bias ``(4H,)`` and states
    ``(N, H)``; every one C-contiguous. The weights are reordered into oneDNN's layouts at each
    call (they change at every training step)."""

    __slots__ = (
        "lib",
        "owned",
        "lock",
        "shape",
        "fwd_pd",
        "fwd",
        "bwd",
        "md",
        "ws_size",
        "direction",
    )

    def __init__(self, lib: _Library, T: int, N: int, D: int, H: int, reverse: bool) -> None:
        self.lib, self.lock = lib, threading.Lock()
        self.owned: list = []
        self.shape = (T, N, D, H)
        self.bwd: dict | None = None
        own, G = self.owned, 4 * H
        md = {
            "x": lib.md(own, (T, N, D), (N * D, D, 1)),
            "y": lib.md(own, (T, N, H), (N * H, H, 1)),
            "state": lib.md(own, (1, 1, N, H), (N * H, N * H, H, 1)),
            # (4H, D) read as layers, directions, input, gates, output
            "w_ih": lib.md(own, (1, 1, D, 4, H), (G * D, G * D, 1, H * D, D)),
            "w_hh": lib.md(own, (1, 1, H, 4, H), (G * H, G * H, 1, H * H, H)),
            "bias": lib.md(own, (1, 1, 4, H), (G, G, H, 1)),
        }
        self.md = md
        direction = 2 if reverse else 1
        w_any = (lib.md(own, (1, 1, D, 4, H)), lib.md(own, (1, 1, H, 4, H)))
        descs: tuple = (md["x"], md["state"], md["state"], *w_any, None, None, md["bias"])
        descs += (md["y"], md["state"], md["state"])
        self.fwd_pd = ctypes.c_void_p()
        own.append(("dnnl_primitive_desc_destroy", self.fwd_pd))
        lib.check(
            lib.lib.dnnl_lstm_forward_primitive_desc_create(
                ctypes.byref(self.fwd_pd),
                lib.engine,
                _FORWARD_TRAINING,
                direction,
                *descs,
                0,
                None,
            ),
            "lstm_forward_primitive_desc_create",
        )
        # (oneDNN 3.2 names its RNN driver "ref" for float32 although its products are its
        # packed GEMMs: measured at PyTorch's rates, docs/performance.md)
        ws = ctypes.c_void_p(
            lib.lib.dnnl_primitive_desc_query_md(self.fwd_pd, _QUERY_WORKSPACE_MD, 0)
        )
        self.ws_size = lib.lib.dnnl_memory_desc_get_size(ws)
        self.fwd = self._made(self.fwd_pd, ws, backward=False)
        self.direction = direction

    def _made(self, pd, ws, backward: bool) -> dict:
        """The primitive, its weight reorders and a memory object for each argument."""
        lib, own, md = self.lib, self.owned, self.md
        api = lib.lib

        def arg_md(arg: int):
            return ctypes.c_void_p(api.dnnl_primitive_desc_query_md(pd, _QUERY_EXEC_ARG_MD, arg))

        mems, reorders = {}, []
        for arg, user in ((_ARG_WEIGHTS, md["w_ih"]), (_ARG_WEIGHTS_ITER, md["w_hh"])):
            inner = arg_md(arg)
            mems[arg] = lib.memory(own, inner, _MEMORY_ALLOCATE)
            user_mem = lib.memory(own, user)
            reorders.append((lib.reorder(own, user, inner), user_mem, mems[arg]))
        plain = [(_ARG_SRC, "x"), (_ARG_SRC_ITER, "state"), (_ARG_SRC_ITER_C, "state")]
        plain += [(_ARG_BIAS, "bias"), (_ARG_DST, "y"), (_ARG_DST_ITER, "state")]
        plain += [(_ARG_DST_ITER_C, "state")]
        outs = []
        if backward:
            plain += [(_ARG_DIFF_SRC, "x"), (_ARG_DIFF_SRC_ITER, "state")]
            plain += [(_ARG_DIFF_SRC_ITER_C, "state"), (_ARG_DIFF_BIAS, "bias")]
            plain += [(_ARG_DIFF_DST, "y"), (_ARG_DIFF_DST_ITER, "state")]
            plain += [(_ARG_DIFF_DST_ITER_C, "state")]
            for arg, user in (
                (_ARG_DIFF_WEIGHTS, md["w_ih"]),
                (_ARG_DIFF_WEIGHTS_ITER, md["w_hh"]),
            ):
                inner = arg_md(arg)
                mems[arg] = lib.memory(own, inner, _MEMORY_ALLOCATE)
                user_mem = lib.memory(own, user)
                outs.append((lib.reorder(own, inner, user), mems[arg], user_mem))
        for arg, name in plain:
            mems[arg] = lib.memory(own, md[name])
        mems[_ARG_WORKSPACE] = lib.memory(own, ws)
        args = (_ExecArg * len(mems))(*[_ExecArg(k, m) for k, m in mems.items()])
        return {
            "prim": lib.primitive(own, pd),
            "mems": mems,
            "args": args,
            "in": reorders,
            "out": outs,
        }

    def _execute(self, made: dict, handles: dict, weights: tuple, grads: tuple = ()) -> None:
        lib = self.lib
        api = lib.lib
        for (reorder, user_mem, inner), w in zip(made["in"], weights):
            api.dnnl_memory_set_data_handle(user_mem, w.ctypes.data)
            _run(lib, reorder, [(_ARG_SRC, user_mem), (_ARG_DST, inner)])
        for arg, a in handles.items():
            api.dnnl_memory_set_data_handle(made["mems"][arg], a.ctypes.data)
        n = len(made["mems"])
        lib.check(api.dnnl_primitive_execute(made["prim"], lib.stream, n, made["args"]), "execute")
        lib.check(api.dnnl_stream_wait(lib.stream), "stream_wait")
        for (reorder, inner, user_mem), g in zip(made["out"], grads):
            api.dnnl_memory_set_data_handle(user_mem, g.ctypes.data)
            _run(lib, reorder, [(_ARG_SRC, inner), (_ARG_DST, user_mem)])

    def forward(self, x, w_ih, w_hh, bias, h0, c0) -> tuple:
        """``(T + 1, N, H)``: every hidden state, then the last cell state; and the workspace
        the backward pass needs."""
        T, N, _, H = self.shape
        y = xp.empty((T + 1, N, H), _F32_TYPE)
        ws = xp.empty(self.ws_size, _U8_TYPE)
        h_last = xp.empty((N, H), _F32_TYPE)
        handles = {_ARG_SRC: x, _ARG_SRC_ITER: h0, _ARG_SRC_ITER_C: c0, _ARG_BIAS: bias}
        handles.update({_ARG_DST: y, _ARG_DST_ITER: h_last, _ARG_DST_ITER_C: y[T]})
        handles[_ARG_WORKSPACE] = ws
        with self.lock:
            self._execute(self.fwd, handles, (w_ih, w_hh))
        return y, ws

    def backward(self, x, w_ih, w_hh, bias, h0, c0, y, ws, gy) -> tuple:
        """The cotangents of ``x``, ``w_ih``, ``w_hh``, ``bias``, ``h0`` and ``c0`` given
        ``gy`` (``(T + 1, N, H)``: every hidden state's, then the last cell state's)."""
        T, N, D, H = self.shape
        with self.lock:
            if self.bwd is None:
                self.bwd = self._backward_made()
            gx = xp.empty((T, N, D), _F32_TYPE)
            g_ih = xp.empty((4 * H, D), _F32_TYPE)
            g_hh = xp.empty((4 * H, H), _F32_TYPE)
            g_b = xp.empty((4 * H,), _F32_TYPE)
            gh0, gc0 = xp.empty((N, H), _F32_TYPE), xp.empty((N, H), _F32_TYPE)
            zero = xp.zeros((N, H), _F32_TYPE)
            handles = {_ARG_SRC: x, _ARG_SRC_ITER: h0, _ARG_SRC_ITER_C: c0, _ARG_BIAS: bias}
            h_last = y[0] if self.direction == 2 else y[T - 1]  # right to left ends at 0
            handles.update({_ARG_DST: y, _ARG_DST_ITER: h_last, _ARG_DST_ITER_C: y[T]})
            handles.update({_ARG_WORKSPACE: ws, _ARG_DIFF_DST: gy, _ARG_DIFF_DST_ITER: zero})
            handles.update({_ARG_DIFF_DST_ITER_C: gy[T], _ARG_DIFF_SRC: gx})
            handles.update({_ARG_DIFF_SRC_ITER: gh0, _ARG_DIFF_SRC_ITER_C: gc0})
            handles[_ARG_DIFF_BIAS] = g_b
            self._execute(self.bwd, handles, (w_ih, w_hh), (g_ih, g_hh))
        return gx, g_ih, g_hh, g_b, gh0, gc0

    def _backward_made(self) -> dict:
        lib, own, md = self.lib, self.owned, self.md
        T, N, D, H = self.shape
        w_any = (lib.md(own, (1, 1, D, 4, H)), lib.md(own, (1, 1, H, 4, H)))
        dw_any = (lib.md(own, (1, 1, D, 4, H)), lib.md(own, (1, 1, H, 4, H)))
        s = md["state"]
        descs: tuple = (md["x"], s, s, *w_any, None, None, md["bias"], md["y"], s, s)
        descs += (md["x"], s, s, *dw_any, None, None, md["bias"], md["y"], s, s)
        pd = ctypes.c_void_p()
        lib.check(
            lib.lib.dnnl_lstm_backward_primitive_desc_create(
                ctypes.byref(pd),
                lib.engine,
                _BACKWARD,
                self.direction,
                *descs,
                _OVERWRITE_DIFF_WEIGHTS,
                self.fwd_pd,
                None,
            ),
            "lstm_backward_primitive_desc_create",
        )
        try:
            ws = ctypes.c_void_p(lib.lib.dnnl_primitive_desc_query_md(pd, _QUERY_WORKSPACE_MD, 0))
            return self._made(pd, ws, backward=True)
        finally:
            lib.lib.dnnl_primitive_desc_destroy(pd)

    def __del__(self, _destroy=_destroy) -> None:
        _destroy(getattr(self, "lib", None), self)


def lstm_layer(T: int, N: int, D: int, H: int, reverse: bool) -> _LSTM | None:
    """The cached oneDNN LSTM of this shape (``None`` where oneDNN does not serve it)."""
    if not _ENABLED[0]:
        return None
    return _cached(("lstm", T, N, D, H, reverse), lambda lib: _LSTM(lib, T, N, D, H, reverse))


# -- a matrix product with its right operand packed once --------------------------------------------


class _Matmul:
    """One ``(M, K) @ (K, N)`` product's primitive (the right operand's layout chosen by oneDNN)."""

    __slots__ = ("lib", "owned", "prim", "packed_md", "a_md", "c_md")

    def __init__(self, lib: _Library, m: int, k: int, n: int) -> None:
        self.lib = lib
        self.owned: list = []
        own = self.owned
        self.a_md = lib.md(own, (m, k), (k, 1))
        self.c_md = lib.md(own, (m, n), (n, 1))
        pd = ctypes.c_void_p()
        code = lib.lib.dnnl_matmul_primitive_desc_create(
            ctypes.byref(pd), lib.engine, self.a_md, lib.md(own, (k, n)), None, self.c_md, None
        )
        lib.check(code, "matmul_primitive_desc_create")
        try:
            if lib.impl(pd).startswith("ref"):
                raise RuntimeError("oneDNN offers only its reference kernel for this product")
            md = lib.lib.dnnl_primitive_desc_query_md(pd, _QUERY_WEIGHTS_MD, 0)
            self.packed_md = lib.md_copy(own, md)
            self.prim = lib.primitive(own, pd)
        finally:
            lib.lib.dnnl_primitive_desc_destroy(pd)

    def __del__(self, _destroy=_destroy) -> None:
        _destroy(getattr(self, "lib", None), self)


class Packed:
    """``a @ b`` for many ``a`` of one shape, ``b`` packed once (:func:`packed_matmul`)."""

    __slots__ = ("mm", "owned", "args", "a_mem", "c_mem")

    def __init__(self, mm: _Matmul, b) -> None:
        lib, self.mm = mm.lib, mm
        self.owned: list = []
        own = self.owned
        b_md = lib.md(own, b.shape, [s // b.itemsize for s in b.strides])
        b_mem = lib.memory(own, b_md, ctypes.c_void_p(b.ctypes.data))
        packed = lib.memory(own, mm.packed_md, _MEMORY_ALLOCATE)
        reorder = lib.reorder(own, b_md, mm.packed_md)
        _run(lib, reorder, [(_ARG_SRC, b_mem), (_ARG_DST, packed)])
        self.a_mem = lib.memory(own, mm.a_md)
        self.c_mem = lib.memory(own, mm.c_md)
        args = [(_ARG_SRC, self.a_mem), (_ARG_WEIGHTS, packed), (_ARG_DST, self.c_mem)]
        self.args = (_ExecArg * 3)(*[_ExecArg(k, m) for k, m in args])

    def __call__(self, a, out) -> None:
        """Write ``a @ b`` into ``out`` (both C-contiguous float32)."""
        lib = self.mm.lib
        api = lib.lib
        api.dnnl_memory_set_data_handle(self.a_mem, a.ctypes.data)
        api.dnnl_memory_set_data_handle(self.c_mem, out.ctypes.data)
        lib.check(api.dnnl_primitive_execute(self.mm.prim, lib.stream, 3, self.args), "execute")
        lib.check(api.dnnl_stream_wait(lib.stream), "stream_wait")

    def __del__(self, _destroy=_destroy) -> None:
        _destroy(getattr(getattr(self, "mm", None), "lib", None), self)


class _Gemm:
    """One product ``a @ b`` of fixed shapes and strides: matrices, or stacks of them with
    NumPy's broadcasting of the leading axes (either operand may be a transposed view), written
    into a new C-contiguous array."""

    __slots__ = ("lib", "owned", "lock", "prim", "mems", "args", "out")

    def __init__(self, lib: _Library, a_shape, a_strides, b_shape, b_strides, out) -> None:
        self.lib, self.lock, self.out = lib, threading.Lock(), out
        self.owned: list = []
        own = self.owned
        a_md = lib.md(own, a_shape, a_strides)
        b_md = lib.md(own, b_shape, b_strides)
        c_md = lib.md(own, out, _dense(out, tuple(range(len(out)))))
        pd = ctypes.c_void_p()
        code = lib.lib.dnnl_matmul_primitive_desc_create(
            ctypes.byref(pd), lib.engine, a_md, b_md, None, c_md, None
        )
        lib.check(code, "matmul_primitive_desc_create")
        try:
            if lib.impl(pd).startswith("ref"):
                raise RuntimeError("oneDNN offers only its reference kernel for this product")
            self.prim = lib.primitive(own, pd)
        finally:
            lib.lib.dnnl_primitive_desc_destroy(pd)
        self.mems = (lib.memory(own, a_md), lib.memory(own, b_md), lib.memory(own, c_md))
        args = zip((_ARG_SRC, _ARG_WEIGHTS, _ARG_DST), self.mems)
        self.args = (_ExecArg * 3)(*[_ExecArg(k, m) for k, m in args])

    def __call__(self, a, b):
        lib = self.lib
        api = lib.lib
        out = xp.empty(self.out, _F32_TYPE)
        a_mem, b_mem, c_mem = self.mems
        with self.lock:
            api.dnnl_memory_set_data_handle(a_mem, a.ctypes.data)
            api.dnnl_memory_set_data_handle(b_mem, b.ctypes.data)
            api.dnnl_memory_set_data_handle(c_mem, out.ctypes.data)
            lib.check(api.dnnl_primitive_execute(self.prim, lib.stream, 3, self.args), "execute")
            lib.check(api.dnnl_stream_wait(lib.stream), "stream_wait")
        return out

    def __del__(self, _destroy=_destroy) -> None:
        _destroy(getattr(self, "lib", None), self)


GEMM_MIN_WORK = 1 << 19
"""Multiply-adds below which a product stays in NumPy's BLAS (measured as ``a.size *
N``: ``M * K * N`` times ``a``'s matrices, a lower bound of the work; ``ops/products.py``
checks the same before calling :func:`matmul`): oneDNN's call costs a few microseconds of Python and ctypes (break-even measured
near 32x128x128, docs/performance.md)."""


def _gemm_for(a, b) -> _Gemm | None:
    """The cached primitive for ``a @ b`` (``None``: oneDNN does not serve this product)."""
    return _cached(
        ("gemm", a.shape, a.strides, b.shape, b.strides), lambda lib: _new_gemm(lib, a, b)
    )


def _new_gemm(lib: _Library, a, b) -> _Gemm | None:
    nd = max(a.ndim, b.ndim)
    a_shape, b_shape = (1,) * (nd - a.ndim) + a.shape, (1,) * (nd - b.ndim) + b.shape
    batch = []
    for p, q in zip(a_shape[:-2], b_shape[:-2]):
        if p != q and 1 not in (p, q):
            return None  # (stacks that do not broadcast: NumPy says why)
        batch.append(max(p, q))
    strides = a.strides + b.strides
    if nd > 12 or min(strides, default=1) <= 0 or any(s % 4 for s in strides):
        return None
    # (an added axis of size 1 gets a stride past the data: oneDNN refuses 0)
    a_str = [a.size] * (nd - a.ndim) + [s // 4 for s in a.strides]
    b_str = [b.size] * (nd - b.ndim) + [s // 4 for s in b.strides]
    out = tuple(batch) + (a_shape[-2], b_shape[-1])
    return _Gemm(lib, a_shape, a_str, b_shape, b_str, out)


def matmul(a, b):
    """``a @ b`` of float32 host matrices, or stacks of them (NumPy's ``matmul`` broadcasting
    of the leading axes), in oneDNN's GEMM (its AVX-512 kernels run ~1.8x NumPy's BLAS here,
    and a stack is one call instead of one BLAS call per matrix); ``None`` where it does not
    serve: other types, vectors, mismatched shapes, products under :data:`GEMM_MIN_WORK`,
    strides that are not positive whole elements."""
    if (
        not _ENABLED[0]
        or type(a) is not ndarray
        or type(b) is not ndarray
        or a.ndim < 2
        or b.ndim < 2
        or a.dtype != _F32_TYPE
        or b.dtype != _F32_TYPE
        or a.shape[-1] != b.shape[-2]
    ):
        return None
    if a.size * b.shape[-1] < GEMM_MIN_WORK:
        return None  # (a lower bound of the work, exact unless ``b`` has more matrices)
    gemm = _gemm_for(a, b)
    return None if gemm is None else gemm(a, b)


def packed_matmul(b, rows: int) -> Packed | None:
    """``b`` (a float32 ``(K, N)`` host matrix, any strides) packed in oneDNN's layout for
    products ``a @ b`` with ``(rows, K)`` C-contiguous ``a`` (a recurrence's step: the weight
    is packed once per sequence instead of by the BLAS in every step's call); ``None`` where
    oneDNN does not serve (the caller keeps ``xp.matmul``)."""
    if not _ENABLED[0] or type(b) is not ndarray or b.dtype != _F32_TYPE or b.ndim != 2:
        return None
    if any(s <= 0 or s % b.itemsize for s in b.strides):
        return None
    k, n = b.shape
    mm = _cached(("matmul", rows, k, n), lambda lib: _Matmul(lib, rows, k, n))
    return None if mm is None else Packed(mm, b)


class _Adam:
    """Adam's update of a float32 vector of ``n`` elements in three oneDNN passes (NumPy's
    update in place makes twelve), each one JIT-compiled loop over its operands:

    * ``m = b1 m + (1 - b1) g``: a binary add, both operands scaled;
    * ``v = b2 v + (1 - b2) g g``: a binary multiply, then the sum post-op onto ``v``;
    * ``w' = w - lr m / (sqrt(c v) + eps)``: ``c v + 0`` (a binary add of a broadcast zero),
      then post-ops: square root, ``+ eps``, reciprocal, times ``m``, times ``-lr``, plus ``w``.

    ``b1``, ``c`` (PyTorch's bias correction ``1 / (1 - b2^t)``, else 1) and ``lr`` are read at
    each call; ``b2`` (the sum post-op's scale) and ``eps`` are fixed per primitive.
    """

    __slots__ = ("lib", "owned", "lock", "prims", "mems", "scalars", "args")

    def __init__(self, lib: _Library, n: int, b2: float, eps: float) -> None:
        self.lib, self.lock = lib, threading.Lock()
        self.owned: list = []
        own = self.owned
        vec, one = lib.md(own, (n,), (1,)), lib.md(own, (1,), (1,))
        mul, add = ("binary", _BINARY_MUL, vec), ("binary", _BINARY_ADD, vec)
        step: list = [("eltwise", _ELTWISE_SQRT, 0.0, 0.0), ("eltwise", _ELTWISE_LINEAR, 1.0, eps)]
        step += [("eltwise", _ELTWISE_POW, 1.0, -1.0), mul, ("binary", _BINARY_MUL, one), add]
        self.prims = (
            self._binary(_BINARY_ADD, vec, vec, (_SRC_0, _SRC_1), []),
            self._binary(_BINARY_MUL, vec, vec, (_SRC_0,), [("sum", b2)]),
            self._binary(_BINARY_ADD, vec, one, (_SRC_0,), step),
        )
        # b1, 1 - b1, 1 - b2, c, -lr, 0: one buffer, a one-element memory on each entry
        self.scalars = xp.zeros(6, _F32_TYPE)
        base = self.scalars.ctypes.data
        b1, b1c, b2c, c, lr, zero = (
            lib.memory(own, one, ctypes.c_void_p(base + 4 * i)) for i in range(6)
        )
        w, g, m, m_out, v, out = (lib.memory(own, vec) for _ in range(6))
        self.mems = (w, g, m, m_out, v, out)
        scale = _ATTR_SCALES
        post = [_POST_OP_BASE * (i + 1) | _SRC_1 for i in (3, 4, 5)]
        runs = [
            [(_SRC_0, m), (_SRC_1, g), (_ARG_DST, m_out), (scale | _SRC_0, b1)],
            [(_SRC_0, g), (_SRC_1, g), (_ARG_DST, v), (scale | _SRC_0, b2c)],
            [(_SRC_0, v), (_SRC_1, zero), (_ARG_DST, out), (scale | _SRC_0, c)],
        ]
        runs[0].append((scale | _SRC_1, b1c))
        runs[2] += [(post[0], m_out), (post[1], lr), (post[2], w)]
        self.args = [(_ExecArg * len(r))(*[_ExecArg(k, mem) for k, mem in r]) for r in runs]

    def _binary(self, alg: int, src0, src1, scaled: tuple, posts: list):
        lib, api = self.lib, self.lib.lib
        attr, po, pd = ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_void_p()
        lib.check(api.dnnl_primitive_attr_create(ctypes.byref(attr)), "primitive_attr_create")
        try:
            lib.check(api.dnnl_post_ops_create(ctypes.byref(po)), "post_ops_create")
            for kind, *p in posts:
                if kind == "sum":
                    code = api.dnnl_post_ops_append_sum(po, ctypes.c_float(p[0]), 0, 0)
                elif kind == "eltwise":
                    alpha, beta = ctypes.c_float(p[1]), ctypes.c_float(p[2])
                    code = api.dnnl_post_ops_append_eltwise(po, p[0], alpha, beta)
                else:
                    code = api.dnnl_post_ops_append_binary(po, p[0], p[1])
                lib.check(code, "post_ops_append")
            lib.check(api.dnnl_primitive_attr_set_post_ops(attr, po), "attr_set_post_ops")
            for arg in scaled:
                lib.check(api.dnnl_primitive_attr_set_scales_mask(attr, arg, 0), "scales_mask")
            code = api.dnnl_binary_primitive_desc_create(
                ctypes.byref(pd), lib.engine, alg, src0, src1, src0, attr
            )
            lib.check(code, "binary_primitive_desc_create")
            if lib.impl(pd).startswith("ref"):
                raise RuntimeError("oneDNN offers only its reference kernel for Adam's passes")
            return lib.primitive(self.owned, pd)
        finally:
            for name, handle in (
                ("primitive_desc", pd),
                ("post_ops", po),
                ("primitive_attr", attr),
            ):
                if handle:
                    getattr(api, f"dnnl_{name}_destroy")(handle)

    def __call__(self, w, g, m, v, m_out, out, b1: float, b2: float, c: float, lr: float):
        lib = self.lib
        api = lib.lib
        with self.lock:
            self.scalars[:] = (b1, 1.0 - b1, 1.0 - b2, c, -lr, 0.0)
            for mem, a in zip(self.mems, (w, g, m, m_out, v, out)):
                api.dnnl_memory_set_data_handle(mem, a.ctypes.data)
            for prim, args in zip(self.prims, self.args):
                lib.check(api.dnnl_primitive_execute(prim, lib.stream, len(args), args), "execute")
            lib.check(api.dnnl_stream_wait(lib.stream), "stream_wait")

    def __del__(self, _destroy=_destroy) -> None:
        _destroy(getattr(self, "lib", None), self)


ADAM_MIN_SIZE = 1 << 15
"""Elements below which Adam's update stays in NumPy (three oneDNN calls cost ~20 us of
Python and ctypes: even with NumPy near 16K elements, 2.7x faster at 400K; performance.md)."""


def adam_serves(w) -> bool:
    """Whether :func:`adam_update` takes a parameter like ``w`` (its type, dtype and size: a
    float32 host array of at least :data:`ADAM_MIN_SIZE` elements, the library loaded)."""
    return (
        _ENABLED[0]
        and isinstance(w, ndarray)
        and w.dtype == _F32_TYPE
        and w.size >= ADAM_MIN_SIZE
        and _load() is not None
    )


def _adam_update(w, g, m, v, b1, b2, eps, c, lr, in_place) -> tuple | None:
    """One Adam step of a float32 host parameter in oneDNN's fused passes (see ``_Adam``).

    Args:
        w: the parameter; g: its gradient; m, v: the moments (all of one shape).
        b1, b2, eps: Adam's coefficients; c: the second moment's bias correction
            ``1 / (1 - b2^t)`` (1 for none); lr: the step size (bias-corrected).
        in_place: write the new moments into ``m`` and ``v`` (the caller owns them); else
            into new arrays.

    Returns:
        ``(w_new, m_new, v_new)``, ``w_new`` always a new array; ``None`` where oneDNN does
        not serve (the caller's NumPy update runs instead).
    """
    n = w.size
    arrays = [xp.ascontiguousarray(a, _F32_TYPE) for a in (w, g, m, v)]
    if any(a.shape != w.shape for a in arrays) or (
        in_place and (arrays[2] is not m or arrays[3] is not v)
    ):
        return None  # (moments to update in place must be contiguous float32 themselves)
    adam = _cached(("adam", n, float(b2), float(eps)), lambda lib: _Adam(lib, n, b2, eps))
    if adam is None:
        return None
    w, g, m, v = arrays
    m_out = m if in_place else xp.empty_like(m)
    if not in_place:
        v = v.copy()  # the sum post-op accumulates into its destination
    out = xp.empty_like(w)
    adam(w, g, m, v, m_out, out, float(b1), float(b2), float(c), float(lr))
    return out, m_out, v


_adam_update.donates = (2, 3)  # type: ignore[attr-defined]  # see core/program.py
adam_update = kernel(_adam_update)  # one opaque step under mx.compile: there ``in_place`` is
# false (new moments), unless the replay is given the old ones to reuse (``donates``)


def _run(lib: _Library, prim, args: list) -> None:
    api = lib.lib
    array = (_ExecArg * len(args))(*[_ExecArg(k, m) for k, m in args])
    lib.check(api.dnnl_primitive_execute(prim, lib.stream, len(args), array), "execute")
    lib.check(api.dnnl_stream_wait(lib.stream), "stream_wait")


def _conv(x_shape, w_shape, stride, lo, hi, kdil, groups) -> _Conv | None:
    """The cached descriptors of one convolution shape (``None``: oneDNN does not serve it)."""
    key = (x_shape, w_shape, stride, lo, hi, kdil, groups)
    return _cached(key, lambda lib: _Conv(lib, x_shape, w_shape, stride, lo, hi, kdil, groups))


def takes(arrays: tuple, lo: tuple, hi: tuple, idil: tuple) -> bool:
    """Whether oneDNN takes a convolution of these arrays: float32 host arrays, 1-3 spatial
    axes, no input dilation, no negative padding, and the library loaded and enabled."""
    if not _ENABLED[0]:
        return False
    for a in arrays:
        if not isinstance(a, ndarray) or a.dtype != _F32_TYPE:
            return False
    if not (1 <= len(lo) <= 3 and min(lo + hi) >= 0 and max(idil) == 1):
        return False
    return _STATE["lib"] is not None or _load() is not None


def _c(a):
    return a if a.flags.c_contiguous else xp.ascontiguousarray(a)


def conv_forward(x, w, stride, lo, hi, kdil, idil, groups):
    """``conv.py``'s convolution by oneDNN, or ``None`` where it does not apply."""
    if not takes((x, w), lo, hi, idil):
        return None
    conv = _conv(x.shape, w.shape, stride, lo, hi, kdil, groups)
    if conv is None:
        return None
    return conv.forward(_c(x), _c(w))


def conv_backward_data(g, w, spatial, stride, lo, hi, kdil, idil, groups):
    """``conv.py``'s input gradient by oneDNN, or ``None`` where it does not apply."""
    if not takes((g, w), lo, hi, idil):
        return None
    x_shape = (g.shape[0],) + tuple(spatial) + (w.shape[-1] * groups,)
    conv = _conv(x_shape, w.shape, stride, lo, hi, kdil, groups)
    if conv is None or conv.out != g.shape:
        return None
    return conv.backward_data(_c(g), _c(w), x_shape)


def conv_backward_weights(x, g, kernel, stride, lo, hi, kdil, idil, groups):
    """``conv.py``'s weight gradient by oneDNN, or ``None`` where it does not apply."""
    if not takes((x, g), lo, hi, idil):
        return None
    w_shape = (g.shape[-1],) + tuple(kernel) + (x.shape[-1] // groups,)
    conv = _conv(x.shape, w_shape, stride, lo, hi, kdil, groups)
    if conv is None or conv.out != g.shape:
        return None
    return conv.backward_weights(_c(x), _c(g))


# Loaded with chainrule.core, as PyTorch loads its kernel libraries at import: the library's
# fixed cost (~17 MB resident, ~10 ms; measured in docs/performance.md) is paid once, up front,
# not inside the first training step that multiplies. CHAINRULE_ONEDNN=0 skips it.
if _ENABLED[0]:
    _load()
