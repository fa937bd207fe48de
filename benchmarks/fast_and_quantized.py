"""mx.fast and quantized products against the unfused / unquantized paths, in one run.

Measured (median of repeats, milliseconds, float32, CPU):

* ``quantized_matmul`` of a ``(M, K)`` input with a 4-bit (and 8-bit) ``(N, K)`` weight,
  against ``x @ w.T`` with the float weight; the memory the weight takes is printed too.
* ``mx.fast.scaled_dot_product_attention`` (grouped-query heads, causal mask) against the
  same attention written with primitives and the key/value heads repeated
  (``mx.repeat`` + ``softmax`` + two ``matmul``), forward and forward+backward.
* ``mx.fast.rms_norm`` / ``layer_norm`` / ``rope`` against the layers' formulas written out.

A ratio above 1 means the fast/quantized path is slower. On the CPU the quantized product
unpacks its weight on every call (NumPy has no low-bit matrix product), so it trades time
for a 4-8x smaller weight; attention wins by not materialising repeated key/value heads.

Usage: python benchmarks/fast_and_quantized.py [--repeats 7] [--small]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import chainrule.core as mx


def _time(fn, repeats: int) -> float:
    mx.eval(fn())  # warm up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        mx.eval(fn())
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def _row(name: str, fast_ms: float, ref_ms: float, note: str = "") -> None:
    print(f"{name:<44} {fast_ms:9.2f} {ref_ms:9.2f} {fast_ms / ref_ms:7.2f}  {note}")


def _ref_attention(q, k, v, scale):
    rep = q.shape[1] // k.shape[1]
    k, v = mx.repeat(k, rep, axis=1), mx.repeat(v, rep, axis=1)
    s = (q * scale) @ mx.swapaxes(k, -1, -2)
    L, S = s.shape[-2:]
    keep = mx.tril(mx.ones((L, S), dtype=mx.bool_), k=S - L)
    s = mx.where(keep, s, -1e30)
    return mx.softmax(s, axis=-1) @ v


def _ref_rope(x, dims, base, offset):
    T, half = x.shape[-2], dims // 2
    pos = mx.arange(offset, offset + T, dtype=mx.float32)
    inv = mx.exp(-mx.arange(half, dtype=mx.float32) * (math.log(base) / half))
    th = pos[:, None] * inv
    c, s = mx.cos(th), mx.sin(th)
    x1, x2 = x[..., :half], x[..., half:dims]
    return mx.concatenate([x1 * c - x2 * s, x1 * s + x2 * c, x[..., dims:]], axis=-1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--small", action="store_true", help="smaller shapes (a quick check)")
    args = ap.parse_args()
    r = args.repeats
    mx.random.seed(0)
    print(f"{'case':<44} {'fast ms':>9} {'ref ms':>9} {'ratio':>7}")

    # -- quantized matmul --------------------------------------------------------------------
    K, N = (1024, 1024) if args.small else (4096, 4096)
    w = mx.random.normal((N, K)) / math.sqrt(K)
    for M in (1, 32, 256):
        x = mx.random.normal((M, K))
        ref = _time(lambda x=x: x @ w.T, r)
        for bits in (4, 8):
            wq, s, b = mx.quantize(w, 64, bits)
            fast = _time(
                lambda x=x, wq=wq, s=s, b=b, bits=bits: mx.quantized_matmul(
                    x, wq, s, b, True, 64, bits
                ),
                r,
            )
            size = (wq.nbytes + s.nbytes + b.nbytes) / w.nbytes
            _row(f"quantized_matmul {bits}-bit M={M} N=K={K}", fast, ref, f"weight {size:.2f}x")

    # -- attention ---------------------------------------------------------------------------
    B, Hq, Hkv, L, D = (1, 8, 2, 128, 64) if args.small else (2, 32, 8, 512, 128)
    q = mx.random.normal((B, Hq, L, D))
    k = mx.random.normal((B, Hkv, L, D))
    v = mx.random.normal((B, Hkv, L, D))
    scale = D**-0.5

    def sdpa(q, k, v):
        return mx.fast.scaled_dot_product_attention(q, k, v, scale=scale, mask="causal")

    def ref(q, k, v):
        return _ref_attention(q, k, v, scale)

    _row(
        f"sdpa causal GQA {Hq}/{Hkv} L={L} D={D}",
        _time(lambda: sdpa(q, k, v), r),
        _time(lambda: ref(q, k, v), r),
    )
    g_fast = mx.grad(lambda q, k, v: sdpa(q, k, v).sum(), argnums=(0, 1, 2))
    g_ref = mx.grad(lambda q, k, v: ref(q, k, v).sum(), argnums=(0, 1, 2))
    _row(
        "  forward + backward", _time(lambda: g_fast(q, k, v), r), _time(lambda: g_ref(q, k, v), r)
    )

    # -- norms and RoPE ----------------------------------------------------------------------
    x = mx.random.normal((8, 512, 1024) if not args.small else (4, 128, 256))
    d = x.shape[-1]
    wt, bs = mx.ones((d,)), mx.zeros((d,))
    _row(
        "rms_norm",
        _time(lambda: mx.fast.rms_norm(x, wt, 1e-5), r),
        _time(lambda: wt * (x * mx.rsqrt(mx.mean(x * x, -1, keepdims=True) + 1e-5)), r),
    )
    _row(
        "layer_norm",
        _time(lambda: mx.fast.layer_norm(x, wt, bs, 1e-5), r),
        _time(
            lambda: (
                (x - x.mean(-1, keepdims=True)) * mx.rsqrt(x.var(-1, keepdims=True) + 1e-5) * wt
                + bs
            ),
            r,
        ),
    )
    xr = mx.reshape(x, (x.shape[0], 8, x.shape[1], -1))
    _row(
        "rope",
        _time(
            lambda: mx.fast.rope(
                xr, xr.shape[-1], traditional=False, base=10000.0, scale=1.0, offset=3
            ),
            r,
        ),
        _time(lambda: _ref_rope(xr, xr.shape[-1], 10000.0, 3), r),
    )


if __name__ == "__main__":
    main()
