"""Would a fusing library earn its place under ``mx.compile``? (issue 20)

Times Adam's update of one ``large`` weight (784 x 512, float32) three ways and checks that each
gives NumPy's bits: the twelve NumPy passes the compiled program makes (temporaries and the old
moments written in place), numexpr (three expressions), and one Numba loop. Each library is used
only if importable; the resident memory its import and first compilation add is printed too.
Caches are flushed before every call, as in a training step.

Usage: python benchmarks/fused_elementwise.py [--reps 30]
(install the libraries elsewhere and put them on PYTHONPATH to try them: they are no
dependency of chainrule)
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("NUMEXPR_NUM_THREADS", "1")

import numpy as np  # noqa: E402

F32 = np.float32
# the constants as the optimizer computes them (1 - beta), NumPy's weak Python scalars
C1, B1, C2, B2, EPS = 1 - 0.9, 0.9, 1 - 0.999, 0.999, 1e-8


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def numpy_passes(p, g, m, v, lr):
    """The compiled program's passes (Adam, MLX style, no bias correction)."""
    t = np.multiply(g, C1)
    m2 = np.multiply(m, B1, out=m)
    m2 += t
    np.multiply(g, g, out=t)
    t *= C2
    v2 = np.multiply(v, B2, out=v)
    v2 += t
    np.sqrt(v2, out=t)
    t += EPS
    np.divide(m2, t, out=t)
    t *= lr
    return np.subtract(p, t, out=t), m2, v2


def make_numexpr():
    import numexpr as ne

    ne.set_num_threads(1)
    k = {"c1": F32(C1), "b1": F32(B1), "c2": F32(C2), "b2": F32(B2), "eps": F32(EPS)}

    def run(p, g, m, v, lr):
        m2 = ne.evaluate("m * b1 + g * c1", local_dict={"m": m, "g": g, **k})
        v2 = ne.evaluate("v * b2 + (g * g) * c2", local_dict={"v": v, "g": g, **k})
        d = {"p": p, "m2": m2, "v2": v2, "lr": lr, **k}
        return ne.evaluate("p - (m2 / (sqrt(v2) + eps)) * lr", local_dict=d), m2, v2

    return run


def make_numba():
    import numba

    @numba.njit(error_model="numpy", nogil=True)
    def loop(p, g, m, v, lr, c1, b1, c2, b2, eps, out):
        for i in range(p.shape[0]):
            gi = g[i]
            mi = m[i] * b1 + gi * c1
            vi = v[i] * b2 + (gi * gi) * c2
            m[i] = mi
            v[i] = vi
            out[i] = p[i] - (mi / (np.sqrt(vi) + eps)) * lr

    consts = [F32(c) for c in (C1, B1, C2, B2, EPS)]

    def run(p, g, m, v, lr):
        out = np.empty_like(p)
        loop(p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1), lr[()], *consts,
             out.reshape(-1))  # fmt: skip
        return out, m, v

    return run


def main() -> None:
    """Time the three ways and print their cost against the NumPy passes."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=30)
    reps = ap.parse_args().reps
    rng = np.random.default_rng(0)
    shape = (512, 784)
    p, g = (rng.standard_normal(shape).astype(F32) for _ in range(2))
    m = (rng.standard_normal(shape) * 0.01).astype(F32)
    v = (np.abs(rng.standard_normal(shape)) * 1e-3).astype(F32)
    lr = np.array(1e-3, F32)
    flush = np.ones(8 << 20, F32)  # 32 MB: larger than the last-level cache here
    want = numpy_passes(p, g, m.copy(), v.copy(), lr)
    ways = {"numpy passes (the compiled program)": numpy_passes}
    for name, make in (("numexpr", make_numexpr), ("numba", make_numba)):
        before = _rss_mb()
        try:
            run = make()
            run(p, g, m.copy(), v.copy(), lr)  # compiles (numba)
        except ImportError:
            print(f"{name}: not importable")
            continue
        print(f"{name}: import and first call add {_rss_mb() - before:.0f} MB resident")
        ways[name] = run
    base = None
    for name, run in ways.items():
        got = run(p, g, m.copy(), v.copy(), lr)
        same = all(a.tobytes() == b.tobytes() for a, b in zip(got, want))
        times = []
        for _ in range(reps):
            mm, vv = m.copy(), v.copy()
            flush.sum()
            t0 = time.perf_counter()
            run(p, g, mm, vv, lr)
            times.append(time.perf_counter() - t0)
        t = float(np.median(times)) * 1e6
        base = base or t
        print(f"{name:38s} {t:8.1f} us  x{t / base:.2f}  bits equal to NumPy's: {same}")


if __name__ == "__main__":
    main()
