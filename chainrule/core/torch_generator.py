"""PyTorch's CPU random generator, draw for draw.

``torch.manual_seed(s)`` followed by ``torch.rand``, ``randn``, ``randint``, ``randperm``,
``Tensor.uniform_/normal_/random_/bernoulli_``, a layer's default initialisation or a shuffling
``DataLoader`` gives the numbers PyTorch gives on a CPU, so a PyTorch program prints what it
prints under PyTorch. The stream is MT19937 seeded as PyTorch seeds it (NumPy's ``MT19937``
with its legacy 32-bit seeding is the same engine), and each sampler transforms its 32- or
64-bit words as ATen's CPU kernels do (``DistributionsHelper.h``,
``cpu/DistributionTemplates.h``):

* uniform floats: ``(w & (2^24 - 1)) * 2^-24`` from one 32-bit word (float32, and the half
  precision dtypes, computed as float32), 53 bits of a 64-bit word (two 32-bit words, first
  one high) for float64, then ``x * (to - from) + from`` as one fused multiply-add;
* normal draws: fewer than 16 values (or another dtype's serial path) take Box-Muller pairs of
  float64 uniforms, the second value of a pair cached in the generator for the next draw, as
  ATen's ``normal_distribution<double>``; 16 or more float32 values fill the tensor with
  uniforms and turn each block of 16 into 8 Box-Muller pairs with ATen's AVX2 kernel (Cephes'
  single-precision ``log`` and ``sincos`` polynomials, whose multiply-adds the compiler fuses:
  :func:`_log_ps` and :func:`_sincos_ps` reproduce that arithmetic in NumPy float32), the last
  16 values recomputed from fresh uniforms when the size is not a multiple of 16; float64
  blocks use the C library's ``log``/``cos``/``sin`` (Python's ``math``, the same functions);
* integers in ``[low, high)``: ``w % (high - low) + low`` (a 64-bit word when the range needs
  it); ``randperm`` a Fisher-Yates pass with ``w % (n - i)``; Bernoulli ``u < p`` with a
  float64 uniform.

The default stream (``torch.default_generator``'s) is :data:`DEFAULT`; :func:`stream` picks
the one a draw takes. It lives in core because the PyTorch tensor methods do
(``tensor_methods_more``) and ``chainrule.vision``, below ``chainrule.torch``, draws
torchvision's numbers from it too; it is coupled to ``mx.random``'s global state (one seed,
one saved state).

Checked against PyTorch 2.13 in ``tests/torch/test_generator.py`` (float32 and float64 bit
for bit; float16 and bfloat16 draw the same words, their values may differ in the last place).
Two paths are not reproduced: PyTorch's float32 ``normal_`` on CPUs without AVX2 (it then
uses the C library in single precision), and ``bernoulli_``/dropout with a scalar probability
on Intel CPUs, where PyTorch draws from MKL's MCG31 stream seeded by one word of this one (on
AMD CPUs, and everywhere for a tensor of probabilities, it uses the transformation above).
"""

from __future__ import annotations

import math
import secrets
import threading
from typing import Any

import numpy as np

DEFAULT_SEED = 67280421310721
"""The seed PyTorch's default CPU generator starts from (``torch.initial_seed()`` before any
``manual_seed``)."""

_U64 = np.uint64
_MASK24 = _U64((1 << 24) - 1)
_MASK53 = _U64((1 << 53) - 1)
_F32 = np.float32
_F32_DT = np.dtype(np.float32)
_I32 = np.int32
# Uniform bits kept per floating dtype (``std::numeric_limits<T>::digits``).
_DIGITS = {
    np.dtype(np.float64): 53,
    np.dtype(np.float32): 24,
    np.dtype(np.float16): 11,
}


class CPUGenerator:
    """One MT19937 stream with PyTorch's seeding and its cached second normal sample.

    It also answers the calls ``chainrule.data`` makes of a ``numpy.random.Generator``
    (``permutation``, ``integers``, ``random``, ``bit_generator.state``), with PyTorch's
    algorithms, so a ``torch.Generator`` shuffles a ``DataLoader`` or splits a dataset as in
    PyTorch.
    """

    __slots__ = ("_bits", "_seed", "next_double")

    def __init__(self, seed: int = DEFAULT_SEED) -> None:
        self._bits = np.random.MT19937(0)
        self.manual_seed(seed)

    # -- the stream ----------------------------------------------------------------------------
    def manual_seed(self, seed: int) -> CPUGenerator:
        """Restart from ``seed`` (taken modulo 2^64; the engine uses its low 32 bits, as
        PyTorch's); the cached normal sample is dropped."""
        self._seed = int(seed) % (1 << 64)
        self._bits._legacy_seeding(self._seed & 0xFFFFFFFF)
        self.next_double: float | None = None
        return self

    def initial_seed(self) -> int:
        """The seed the stream last started from."""
        return self._seed

    def words(self, n: int = 1) -> np.ndarray:
        """``n`` 32-bit words (PyTorch's ``generator->random()``), as uint64."""
        return self._bits.random_raw(n)

    def words64(self, n: int = 1) -> np.ndarray:
        """``n`` 64-bit words, each from two 32-bit words, the first one high."""
        w = self._bits.random_raw(2 * n)
        return (w[0::2] << _U64(32)) | w[1::2]

    @property
    def state(self) -> dict:
        """The stream's state: plain Python values (the engine's 624 words as a list, its
        position, the seed and the cached normal sample), so states compare with ``==`` and
        travel as JSON."""
        st = self._bits.state["state"]
        return {
            "mt19937": [int(v) for v in st["key"]],
            "pos": int(st["pos"]),
            "seed": self._seed,
            "next_double": self.next_double,
        }

    @state.setter
    def state(self, value: dict) -> None:
        key = np.asarray(value["mt19937"], dtype=np.uint32)
        self._bits.state = {"bit_generator": "MT19937", "state": {"key": key, "pos": value["pos"]}}
        self._seed = int(value["seed"])
        nd = value["next_double"]
        self.next_double = None if nd is None else float(nd)

    @property
    def bit_generator(self) -> CPUGenerator:
        """Itself: ``.bit_generator.state`` reads and writes :attr:`state`, as on a NumPy
        generator (``DataLoader.state_dict`` uses it)."""
        return self

    # -- PyTorch's samplers --------------------------------------------------------------------
    def uniform(self, shape: tuple, dtype: Any, low: float = 0.0, high: float = 1.0) -> np.ndarray:
        """``Tensor.uniform_(low, high)`` on a new tensor of ``shape`` and ``dtype``."""
        d = np.dtype(dtype)
        n = math.prod(shape)
        if d == np.float64:
            x = (self.words64(n) & _MASK53).astype(np.float64) * 2.0**-53
            out = fma64(x, float(high) - float(low), float(low))
        else:  # float32 arithmetic (half precision too), the multiply-add fused as compiled
            lo, hi = _F32(low), _F32(high)
            out = _fma(self._fill_uniform(n, _F32), hi - lo, lo)
        return out.astype(d, copy=False).reshape(shape)

    def normal(self, shape: tuple, dtype: Any, mean: float = 0.0, std: float = 1.0) -> np.ndarray:
        """``Tensor.normal_(mean, std)`` on a new contiguous tensor of ``shape`` and ``dtype``."""
        d = np.dtype(dtype)
        n = math.prod(shape)
        if n < 16:  # (``ret * std + mean`` fused, as compiled)
            out = np.array([self._normal_double() for _ in range(n)], dtype=np.float64)
            return fma64(out, float(std), float(mean)).astype(d).reshape(shape)
        if d == np.float32:
            data = self._fill_uniform(n, np.float32)
            _normal_blocks(data, n, _avx2_block, _F32(mean), _F32(std))
            if n % 16:
                data[n - 16 :] = self._fill_uniform(16, np.float32)
                _avx2_block(data[n - 16 :].reshape(1, 16), _F32(mean), _F32(std))
            return data.reshape(shape)
        work = np.float64 if d == np.float64 else np.float32  # (half precision: computed wider)
        data = self._fill_uniform(n, d).astype(work, copy=False)
        _normal_blocks(data, n, _libm_block, work(mean), work(std))
        if n % 16:
            data[n - 16 :] = self._fill_uniform(16, d)
            _libm_block(data[n - 16 :].reshape(1, 16), work(mean), work(std))
        return data.astype(d, copy=False).reshape(shape)

    def integers(
        self, low: int, high: int | None = None, size: Any = None, dtype: Any = np.int64
    ) -> np.ndarray:
        """``Tensor.random_(low, high)`` (``torch.randint``) on a new tensor of ``size``; with
        one bound, ``[0, low)`` (NumPy's ``integers`` call)."""
        if high is None:
            low, high = 0, low
        shape = () if size is None else (size,) if isinstance(size, int) else tuple(size)
        n = math.prod(shape)
        span = int(high) - int(low)
        d = np.dtype(dtype)
        wide = span >= 1 << 32 and d in (np.dtype(np.int64), np.dtype(np.float64), _F32_DT)
        words = self.words64(n) if wide else self.words(n)
        out = (words % _U64(span)).astype(np.int64) + int(low)
        return out.astype(d).reshape(shape)

    def permutation(self, n: int) -> np.ndarray:
        """``torch.randperm(n)``: a Fisher-Yates pass, position ``i`` swapped with
        ``i + w % (n - i)``."""
        n = int(n)
        perm = np.arange(n, dtype=np.int64)
        if n > 1:
            offsets = (self.words(n - 1) % np.arange(n, 1, -1, dtype=_U64)).tolist()
            p = perm.tolist()
            for i, z in enumerate(offsets):
                j = i + z
                p[i], p[j] = p[j], p[i]
            perm = np.array(p, dtype=np.int64)
        return perm

    def bernoulli(self, p: Any, shape: tuple) -> np.ndarray:
        """``Tensor.bernoulli_(p)`` as booleans: ``u < p``, a float64 uniform per element (a
        float32 one per element for float32 probabilities, as ATen)."""
        n = math.prod(shape)
        if isinstance(p, np.ndarray) and p.dtype != np.float64:
            u = (self.words(n) & _MASK24).astype(_F32) * _F32(2.0**-24)
            return (u.reshape(shape) < p.astype(_F32)).reshape(shape)
        u = (self.words64(n) & _MASK53).astype(np.float64) * 2.0**-53
        return u.reshape(shape) < p

    def exponential(self, shape: tuple, dtype: Any, lambd: float = 1.0) -> np.ndarray:
        """``Tensor.exponential_(lambd)``: ``-1/lambd * log1p(-u)`` of float64 uniforms (the C
        library's ``log1p``, as ATen)."""
        u = self.uniform(tuple(shape), np.float64)
        out = (-1.0 / lambd) * _LOG1P(-u)
        return out.astype(np.dtype(dtype), copy=False)

    def geometric(self, shape: tuple, p: float) -> np.ndarray:
        """``Tensor.geometric_(p)``: ``ceil(log(u) / log(1 - p))`` of float64 uniforms."""
        u = self.uniform(tuple(shape), np.float64)
        return np.ceil(_LOG(u) / math.log(1.0 - p))

    def cauchy(self, shape: tuple, median: float, sigma: float) -> np.ndarray:
        """``Tensor.cauchy_(median, sigma)``: ``median + sigma * tan(pi * (u - 0.5))``."""
        u = self.uniform(tuple(shape), np.float64)
        return median + sigma * _TAN(math.pi * (u - 0.5))

    def log_normal(self, shape: tuple, mean: float, std: float) -> np.ndarray:
        """``Tensor.log_normal_(mean, std)``: ``exp`` of ATen's serial normal draws (the
        cached pairs; ``z * std + mean`` fused)."""
        n = math.prod(shape)
        z = np.array([self._normal_double() for _ in range(n)], dtype=np.float64)
        return _EXP(fma64(z, float(std), float(mean))).reshape(shape)

    def random_int64(self) -> int:
        """``torch.empty((), dtype=torch.int64).random_()``: a 64-bit word modulo 2^63."""
        return int(self.words64(1)[0] % _U64(1 << 63))

    def random_(self, shape: tuple, dtype: Any) -> np.ndarray:
        """``Tensor.random_()`` without bounds: ``[0, 2^mantissa]`` for floats, ``[0, max]``
        for integers (64-bit words for int64 and float64)."""
        d = np.dtype(dtype)
        n = math.prod(shape)
        if d == np.bool_:
            return (self.words(n) & _U64(1)).astype(bool).reshape(shape)
        if d.kind == "f":
            top = (1 << _DIGITS.get(d, 8)) + 1
            words = self.words64(n) if d == np.float64 else self.words(n)
            return (words % _U64(top)).astype(d).reshape(shape)
        words = self.words64(n) if d == np.int64 else self.words(n)
        return (words % _U64(int(np.iinfo(d).max) + 1)).astype(d).reshape(shape)

    def random(self, size: Any = None) -> np.ndarray:
        """``size`` float64 uniforms (NumPy's ``random`` call), as ``torch.rand(dtype=float64)``."""
        shape = () if size is None else (size,) if isinstance(size, int) else tuple(size)
        return self.uniform(shape, np.float64)

    # -- helpers -------------------------------------------------------------------------------
    def _fill_uniform(self, n: int, dtype: Any) -> np.ndarray:
        """``n`` uniforms in ``[0, 1)``: 53 bits of a 64-bit word for float64, else 24 bits of
        a 32-bit word as float32 (PyTorch 2.13 draws half precision as float32 too)."""
        if np.dtype(dtype) == np.float64:
            return (self.words64(n) & _MASK53).astype(np.float64) * 2.0**-53
        return (self.words(n) & _MASK24).astype(_F32) * _F32(2.0**-24)

    def _normal_double(self) -> float:
        """ATen's ``normal_distribution<double>``: one Box-Muller pair per two calls."""
        cached = self.next_double
        if cached is not None:
            self.next_double = None
            return cached
        u1, u2 = ((self.words64(2) & _MASK53).astype(np.float64) * 2.0**-53).tolist()
        r = math.sqrt(-2.0 * math.log1p(-u2))
        theta = 2.0 * math.pi * u1
        self.next_double = r * math.sin(theta)
        return r * math.cos(theta)


def _normal_blocks(data: np.ndarray, n: int, block, mean, std) -> None:
    full = n - n % 16
    if full:
        block(data[:full].reshape(-1, 16), mean, std)


def fma64(a: np.ndarray, b: float, c: float) -> np.ndarray:
    """``a * b + c`` in float64 rounded once, from error-free products and sums (Dekker's
    split, Knuth's two-sum): a compiled multiply-add, without one in NumPy."""
    p = a * b
    t = a * 134217729.0  # 2^27 + 1
    ah = t - (t - a)
    al = a - ah
    tb = b * 134217729.0
    bh = tb - (tb - b)
    bl = b - bh
    err = ((ah * bh - p) + ah * bl + al * bh) + al * bl  # p + err == a * b exactly
    s = p + c
    v = s - p
    e = (p - (s - v)) + (c - v)  # s + e == p + c exactly
    return s + (e + err)


def _fma(a, b, c) -> np.ndarray:
    """``a * b + c`` rounded once to float32 (the float64 product of two float32 values is
    exact)."""
    return (np.asarray(a, np.float64) * b + np.asarray(c, np.float64)).astype(_F32)


# Cephes' single-precision constants, as the AVX2 kernel holds them.
_LOG_P = [_F32(c) for c in (7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1,
          -1.2420140846e-1, 1.4249322787e-1, -1.6668057665e-1, 2.0000714765e-1,
          -2.4999993993e-1, 3.3333331174e-1)]  # fmt: skip
_LOG_Q1, _LOG_Q2 = _F32(-2.12194440e-4), _F32(0.693359375)
_SQRTHF = _F32(0.707106781186547524)
_MIN_NORM = np.array(0x00800000, _I32).view(_F32)
_HALF_BITS = np.array(0.5, _F32).view(_I32)
_DP = [_F32(-0.78515625), _F32(-2.4187564849853515625e-4), _F32(-3.77489497744594108e-8)]
_COS_P = [_F32(2.443315711809948e-005), _F32(-1.388731625493765e-003), _F32(4.166664568298827e-002)]
_SIN_P = [_F32(-1.9515295891e-4), _F32(8.3321608736e-3), _F32(-1.6666654611e-1)]
_FOPI = _F32(1.27323954473516)
_TWO_PI = _F32(2.0 * math.pi)


def _log_ps(x: np.ndarray) -> np.ndarray:
    """The AVX2 kernel's single-precision ``log`` (positive inputs)."""
    x = np.maximum(x, _MIN_NORM)
    bits = x.view(_I32)
    e = ((bits.view(np.uint32) >> 23).astype(_I32) - 0x7F).astype(_F32) + _F32(1)
    x = ((bits & ~_I32(0x7F800000)) | _HALF_BITS).view(_F32)
    small = x < _SQRTHF
    x = (x - _F32(1)) + np.where(small, x, _F32(0))
    e = e - small.astype(_F32)
    z = x * x
    y = np.full_like(x, _LOG_P[0])
    for c in _LOG_P[1:]:
        y = _fma(y, x, c)
    y = _fma(y * x, z, e * _LOG_Q1)
    y = y - z * _F32(0.5)
    return (x + y) + e * _LOG_Q2


def _sincos_ps(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The AVX2 kernel's single-precision ``sin`` and ``cos`` (non-negative inputs)."""
    j = ((x * _FOPI).astype(_I32) + 1) & ~_I32(1)
    y = j.astype(_F32)
    flip_sin = (j & 4) != 0
    use_sin_poly = (j & 2) == 0
    flip_cos = (~(j - 2) & 4) != 0
    for dp in _DP:
        x = x + y * dp
    z = x * x
    yc = _fma(_fma(np.full_like(x, _COS_P[0]), z, _COS_P[1]), z, _COS_P[2])
    yc = _fma(yc * z, z, -(z * _F32(0.5))) + _F32(1)
    ys = _fma(_fma(np.full_like(x, _SIN_P[0]), z, _SIN_P[1]), z, _SIN_P[2])
    ys = _fma(ys * z, x, x)
    s = np.where(use_sin_poly, ys, yc)
    c = np.where(use_sin_poly, yc, ys)
    return np.where(flip_sin, -s, s), np.where(flip_cos, -c, c)


def _avx2_block(blocks: np.ndarray, mean, std) -> None:
    """ATen's ``normal_fill_16_AVX2`` on rows of 16 float32 uniforms, in place."""
    u1 = _F32(1) - blocks[:, :8]
    radius = np.sqrt(_F32(-2) * _log_ps(u1))
    s, c = _sincos_ps(_TWO_PI * blocks[:, 8:])
    blocks[:, :8] = _fma(radius * c, std, mean)
    blocks[:, 8:] = _fma(radius * s, std, mean)


def _libm(fn: Any) -> Any:
    """The C library's ``fn`` elementwise over an array, as float64 (Python's ``math`` calls
    it: NumPy's own functions may round differently in the last place)."""
    ufunc = np.frompyfunc(fn, 1, 1)
    return lambda x: np.asarray(ufunc(x), dtype=np.float64)


_LOG = _libm(math.log)
_LOG1P = _libm(math.log1p)
_COS = _libm(math.cos)
_SIN = _libm(math.sin)
_TAN = _libm(math.tan)
_EXP = _libm(math.exp)


def _libm_block(blocks: np.ndarray, mean, std) -> None:
    """ATen's scalar ``normal_fill_16`` on rows of 16 uniforms, in place (the C library's
    ``log``, ``cos`` and ``sin``: Python's ``math`` calls them)."""
    u1 = 1 - blocks[:, :8].astype(np.float64)
    radius = np.sqrt(-2 * _LOG(u1))
    theta = 2.0 * math.pi * blocks[:, 8:].astype(np.float64)
    # (``radius * cos * std + mean`` with the last multiply-add fused, as compiled)
    blocks[:, :8] = fma64(radius * _COS(theta), float(std), float(mean))
    blocks[:, 8:] = fma64(radius * _SIN(theta), float(std), float(mean))


DEFAULT = CPUGenerator(secrets.randbits(63))
"""The stream of PyTorch's default generator (seeded from fresh entropy at import, as
PyTorch's; ``torch.manual_seed`` reseeds it)."""

_THREAD = threading.local()  # a DataLoader worker thread's own stream (see use_thread_stream)


def stream(generator: Any = None) -> CPUGenerator:
    """The stream a PyTorch draw takes: ``generator``'s (a ``chainrule.torch.Generator``, or a
    stream itself), else the worker thread's own, else :data:`DEFAULT`.

    Raises:
        TypeError: for anything else as ``generator``.
    """
    if generator is not None:
        rng = generator if isinstance(generator, CPUGenerator) else getattr(generator, "rng", None)
        if not isinstance(rng, CPUGenerator):
            raise TypeError(
                f"expected a chainrule.torch.Generator as generator=, not {type(generator).__name__}"
            )
        return rng
    own = getattr(_THREAD, "rng", None)
    return DEFAULT if own is None else own


def use_thread_stream(rng: Any) -> None:
    """Give this thread its own stream, seeded from ``rng`` (a ``numpy.random.Generator``;
    ``None``: the default again): ``DataLoader`` worker threads draw reproducibly whichever
    thread fetches a batch."""
    _THREAD.rng = None if rng is None else CPUGenerator(int(rng.integers(0, 2**63)))


def _couple() -> None:
    """One seed for both generators: ``mx.random.seed`` reseeds :data:`DEFAULT`,
    ``mx.random.get_state``/``set_state`` (what checkpoints save) carry it, and a ``DataLoader``
    worker thread gets a stream of its own (``use_thread_generator``)."""
    from . import random as _random

    _random.couple(
        "chainrule.torch",
        DEFAULT.manual_seed,
        lambda: DEFAULT.state,
        lambda st: setattr(DEFAULT, "state", st),
        use_thread_stream,
    )


_couple()
