"""The benchmark suite (``make bench``, issue 20): the same programs on every runner, one run.

Runners (each (workload, runner) pair in a process of its own, a fresh interpreter):

  cr-mlx           chainrule, MLX style (``chainrule.core`` / ``nn`` / ``optimizers``,
                   ``nn.value_and_grad``, ``optimizer.update``)
  cr-mlx-compiled  the same step under ``mx.compile(inputs=state, outputs=state)``
  cr-torch         chainrule, PyTorch style (``import chainrule.torch as torch``, the source
                   that PyTorch runs)
  torch-1t         PyTorch, one thread (``torch.set_num_threads(1)``)
  torch-default    PyTorch with its default threads (the reference is torch-1t)
  jax-jit          JAX ``jit``, where JAX is importable and the workload has a JAX version
  mlx              real MLX (CPU), the MLX-style source given MLX's modules
  mlx-compiled     real MLX, the compiled step

Every runner but torch-default runs on one thread: OMP/OPENBLAS/MKL/VECLIB_NUM_THREADS=1 are
set before NumPy (or anything else) loads. Workloads: see ``benchmarks/workloads/``.

Method. For each workload, its runners' processes start together, import, build the
program and run the warm-up steps (untimed); then the timed blocks run INTERLEAVED: block 1
of every runner in turn (the others wait, idle, on a pipe; 0.2 s rest before each), then block
2, and so on. A block runs ``--steps`` steps (the workload's default) or stops early after
``--block-seconds``; its time is divided by the steps it ran. Figures are medians over the
blocks; the ratio to torch-1t (and to real MLX) is taken block by block, then the median:
neighbouring measurements drift together on a shared machine. Ratios are of times (above
1: slower than the reference), also for decoding, whose time is also given in tokens/s.

Memory (Linux): "peak MB" is the process's peak resident set (``ru_maxrss``) minus its peak
just after the imports, before the program is built: what the program, its data and its
steps added. "growth MB" is the resident set after the last block minus that after the
first block; with ``--memory-growth N``, after 2N more steps minus after N more steps (the
issue's check is N = 1000: 2,000 steps; slow).

The GEMM-bound limit: the workload's matrix-product and convolution FLOPs per step (forward
and backward, from its shapes) divided by the rate the faster of NumPy's BLAS and oneDNN's GEMM
(where installed; chainrule's float32 products use it) reaches on one thread on a product of
the workload's typical shape (measured at start-up, with 512x512x512 for reference); the
tables also give it at NumPy's BLAS rate, as issue 20 states its limit. The machine's steal time and busy share (from /proc/stat over the run) and the
load average are printed with the table.

Usage: python benchmarks/suite.py [--workloads a,b] [--runners x,y] [--blocks 3]
       [--steps N] [--block-seconds 2] [--quick] [--memory-growth [N]] [--gpu] [--out FILE]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
RUNNERS = [
    "cr-mlx",
    "cr-mlx-compiled",
    "cr-torch",
    "torch-1t",
    "torch-default",
    "jax-jit",
    "mlx",
    "mlx-compiled",
]
THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)
MARK = "@@suite "


# ----------------------------------------------------------------------------- worker side


def _emit(obj: dict) -> None:
    print(MARK + json.dumps(obj), flush=True)


def _rss_mb() -> float:
    """The process's resident set now, in MB (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _maxrss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def _build(workload: str, runner: str, device: str) -> Any:
    """Import the runner's framework, note the memory baseline, build the program."""
    from types import SimpleNamespace

    from workloads import WORKLOADS, NotApplicable

    w = WORKLOADS[workload]
    if runner in ("cr-mlx", "cr-mlx-compiled", "mlx", "mlx-compiled"):
        if w.mlx is None:
            raise NotApplicable("no MLX-style version")
        pkg = "chainrule" if runner.startswith("cr-") else "mlx"
        lib = SimpleNamespace(
            mx=importlib.import_module(pkg + ".core"),
            nn=importlib.import_module(pkg + ".nn"),
            optim=importlib.import_module(pkg + ".optimizers"),
        )
        base = _maxrss_mb()
        return base, w.mlx(lib, runner.endswith("-compiled"))
    if runner in ("cr-torch", "torch-1t", "torch-default"):
        if w.torch is None:
            raise NotApplicable("no PyTorch-style version")
        if runner == "cr-torch":
            torch = importlib.import_module("chainrule.torch")
        else:
            torch = importlib.import_module("torch")
            if runner == "torch-1t":
                torch.set_num_threads(1)
        base = _maxrss_mb()
        return base, w.torch(torch, "cuda" if device == "gpu" else "cpu")
    if runner == "jax-jit":
        if w.jax is None:
            raise NotApplicable("no JAX version written")
        importlib.import_module("jax")
        base = _maxrss_mb()
        return base, w.jax()
    raise ValueError(f"unknown runner {runner!r}")


def worker(workload: str, runner: str, device: str, warmup: int) -> None:
    """One (workload, runner) process: build, warm up, then run the blocks the driver asks for.

    Commands on stdin: ``block STEPS SECONDS``, ``grow N``, ``quit``; answers are JSON lines
    on stdout after :data:`MARK`.
    """
    import traceback

    sys.path.insert(0, HERE)
    try:
        base, (step, sync) = _build(workload, runner, device)
        k = 0
        for _ in range(warmup):
            sync(step(k))
            k += 1
    except Exception as e:  # reported as the cell's reason
        from workloads import NotApplicable

        if not isinstance(e, NotApplicable):
            traceback.print_exc()
        reason = str(e) if isinstance(e, NotApplicable) else f"{type(e).__name__}: {e}"
        _emit({"error": reason.splitlines()[0][:200] if reason else type(e).__name__})
        return
    _emit({"ready": True, "rss": _rss_mb()})
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        if cmd[0] == "block":
            steps, seconds = int(cmd[1]), float(cmd[2])
            done, t0 = 0, time.perf_counter()
            out = None
            while done < steps:
                out = step(k)
                k += 1
                done += 1
                if time.perf_counter() - t0 > seconds:
                    break
            value = sync(out)
            ms = (time.perf_counter() - t0) * 1e3 / done
            _emit({"ms": ms, "steps": done, "rss": _rss_mb(), "value": value})
        elif cmd[0] == "grow":
            n = int(cmd[1])
            rss = []
            for _ in range(2):
                for _ in range(n):
                    out = step(k)
                    k += 1
                sync(out)
                rss.append(_rss_mb())
            _emit({"growth": rss[1] - rss[0], "steps": 2 * n})
        elif cmd[0] == "quit":
            _emit({"peak": _maxrss_mb() - base, "rss": _rss_mb()})
            return


# ----------------------------------------------------------------------------- driver side


@dataclass
class Cell:
    """What one (workload, runner) pair measured, or why it did not run."""

    runner: str
    reason: str = ""
    ms: list[float] = field(default_factory=list)
    rss: list[float] = field(default_factory=list)
    peak: float | None = None
    growth: float | None = None
    growth_steps: int = 0
    steps: list[int] = field(default_factory=list)


class Proc:
    """A worker process and its pipes."""

    def __init__(self, workload: str, runner: str, args: argparse.Namespace) -> None:
        env = dict(os.environ)
        if runner != "torch-default":
            for var in THREAD_VARS:
                env[var] = "1"
        if args.gpu and runner.startswith("cr-"):
            env["CHAINRULE_DEVICE"] = "gpu"
        self.err = tempfile.TemporaryFile(mode="w+")
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", workload, runner]
        cmd += ["--warmup", str(args.warmup), "--device", "gpu" if args.gpu else "cpu"]
        self.p = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err, text=True, env=env
        )
        self.buf = b""

    def ask(self, command: str | None = None, timeout: float = 900.0) -> dict:
        """Send ``command`` (if any) and return the next answer.

        The answer is ``{"error": ...}`` if the worker died or gave none within ``timeout``
        seconds (it is then killed).
        """
        import select

        assert self.p.stdin is not None and self.p.stdout is not None
        fd = self.p.stdout.fileno()
        try:
            if command is not None:
                self.p.stdin.write(command + "\n")
                self.p.stdin.flush()
            deadline = time.monotonic() + timeout
            while True:
                while b"\n" in self.buf:
                    line, self.buf = self.buf.split(b"\n", 1)
                    text = line.decode(errors="replace")
                    if text.startswith(MARK):
                        return json.loads(text[len(MARK) :])
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([fd], [], [], left)[0]:
                    self.p.kill()
                    return {"error": f"no answer within {timeout:.0f} s (killed)"}
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                self.buf += chunk
        except (BrokenPipeError, OSError):
            pass
        self.p.wait()
        self.err.seek(0)
        tail = [ln for ln in self.err.read().splitlines() if ln.strip()]
        return {"error": f"worker exited ({self.p.returncode}): {tail[-1][:200] if tail else ''}"}

    def close(self) -> None:
        """Make sure the process is gone."""
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        self.err.close()


def available(runner: str, workload: Any) -> str:
    """The reason ``runner`` cannot run ``workload`` here, or "" if it can be tried."""
    if runner in ("mlx", "mlx-compiled") and importlib.util.find_spec("mlx") is None:
        return "mlx not installed"
    if runner in ("torch-1t", "torch-default") and importlib.util.find_spec("torch") is None:
        return "torch not installed"
    if runner == "jax-jit":
        if importlib.util.find_spec("jax") is None:
            return "jax not installed"
        if workload.jax is None:
            return "no JAX version written"
    if runner.startswith(("cr-mlx", "mlx")) and workload.mlx is None:
        return "no MLX-style version"
    return ""


def run_workload(name: str, runners: list[str], args: argparse.Namespace) -> dict[str, Cell]:
    """Start the runners of workload ``name``, run the interleaved blocks, collect the cells."""
    from workloads import WORKLOADS

    w = WORKLOADS[name]
    steps = args.steps or w.steps
    cells = {r: Cell(r) for r in runners}
    procs: dict[str, Proc] = {}
    for r in runners:
        cells[r].reason = available(r, w)
        if not cells[r].reason:
            procs[r] = Proc(name, r, args)
    try:
        for r, p in list(procs.items()):
            answer = p.ask()
            if "error" in answer:
                cells[r].reason = answer["error"]
                p.close()
                del procs[r]
        for _ in range(args.blocks):
            for r, p in list(procs.items()):
                time.sleep(0.2)  # let the previous runner's threads settle
                answer = p.ask(f"block {steps} {args.block_seconds}")
                if "error" in answer:
                    cells[r].reason = answer["error"]
                    p.close()
                    del procs[r]
                    continue
                cells[r].ms.append(answer["ms"])
                cells[r].rss.append(answer["rss"])
                cells[r].steps.append(answer["steps"])
        if args.memory_growth:
            for r, p in procs.items():
                answer = p.ask(f"grow {args.memory_growth}", timeout=7200.0)
                if "growth" in answer:
                    cells[r].growth, cells[r].growth_steps = answer["growth"], answer["steps"]
        for r, p in procs.items():
            answer = p.ask("quit")
            cells[r].peak = answer.get("peak")
            if cells[r].growth is None and len(cells[r].rss) > 1:
                cells[r].growth = cells[r].rss[-1] - cells[r].rss[0]
                cells[r].growth_steps = sum(cells[r].steps[1:])
    finally:
        for p in procs.values():
            p.close()
    for c in cells.values():
        if not c.ms and not c.reason:
            c.reason = "no measurement"
    return cells


def ratio(cells: dict[str, Cell], runner: str, ref: str) -> float | None:
    """Median over blocks of runner's time / ref's time in the same block."""
    a, b = cells.get(runner), cells.get(ref)
    if a is None or b is None or not a.ms or not b.ms:
        return None
    return statistics.median(x / y for x, y in zip(a.ms, b.ms))


def mlx_ref(runner: str) -> str:
    """The real-MLX runner that ``runner`` is compared with (compiled with compiled)."""
    return "mlx-compiled" if runner.endswith("compiled") else "mlx"


def gemm_rates(shapes: list[tuple[int, int, int]], quick: bool) -> dict[str, float]:
    """Single-thread float32 GEMM GFLOP/s on ``shapes`` (M, K, N), in a subprocess."""
    env = dict(os.environ)
    for var in THREAD_VARS:
        env[var] = "1"
    spec = ";".join(f"{m},{k},{n}" for m, k, n in shapes)
    cmd = [sys.executable, os.path.abspath(__file__), "--gemm", spec]
    if quick:
        cmd.append("--quick")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False).stdout
    for line in out.splitlines():
        if line.startswith(MARK):
            return json.loads(line[len(MARK) :])
    return {}


def gemm_worker(spec: str, quick: bool) -> None:
    """Time ``A @ B`` for each ``M,K,N`` of ``spec`` with NumPy's BLAS and, where installed,
    oneDNN's GEMM (which chainrule's float32 products use: ``chainrule.core.onednn``); print
    the best GFLOP/s of each (the faster library's)."""
    import numpy as np

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from chainrule.core import onednn

    products = [("numpy", lambda a, b: a @ b)]
    if onednn.available():
        products.append(("onednn", onednn.matmul))
    rates: dict = {}
    rng = np.random.default_rng(0)
    for item in spec.split(";"):
        m, k, n = map(int, item.split(","))
        a = rng.standard_normal((m, k)).astype(np.float32)
        b = rng.standard_normal((k, n)).astype(np.float32)
        for name, product in products:
            if product(a, b) is None:  # (oneDNN: a product too small for it)
                continue
            best, t_end = float("inf"), time.perf_counter() + (0.05 if quick else 0.5)
            while time.perf_counter() < t_end:
                t0 = time.perf_counter()
                product(a, b)
                best = min(best, time.perf_counter() - t0)
            rate = 2.0 * m * k * n / best / 1e9
            rates[f"{item}:{name}"] = rate
            if rate > rates.get(item, 0.0):
                rates[item] = rate
                rates[f"{item}:by"] = name
    try:
        from threadpoolctl import threadpool_info

        info = [f"{d.get('internal_api')} {d.get('version')}" for d in threadpool_info()]
        rates["blas"] = ", ".join(i for i in info if i)  # type: ignore[assignment]
    except Exception:
        pass
    _emit(rates)


def cpu_times() -> list[int]:
    """The machine's aggregate CPU counters from /proc/stat (empty if unreadable)."""
    try:
        with open("/proc/stat") as f:
            return [int(v) for v in f.readline().split()[1:9]]
    except OSError:
        return []


def machine() -> str:
    """CPU model, core count, Python and the frameworks' versions."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = []
    for pkg in ("chainrule", "numpy", "torch", "mlx", "jax"):
        try:
            versions.append(f"{pkg} {importlib.metadata.version(pkg)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    return f"{model}, {os.cpu_count()} cores; Python {platform.python_version()}; " + ", ".join(
        versions
    )


def fmt(v: float | None, digits: int = 2) -> str:
    """A number, or "-" for none."""
    return "-" if v is None else f"{v:.{digits}f}"


def limit_ms(name: str, rates: dict, library: str = "") -> tuple[float, float] | None:
    """``(limit ms, GFLOP/s used)`` of workload ``name``: its GEMM FLOPs over the GEMM rate.

    The rate is the higher of the workload-shaped product's and the 512x512x512 product's
    (a limit is a lower bound on the time: the optimistic rate), of the faster library, or of
    ``library`` ("numpy": NumPy's BLAS, the rate issue 20 states its limit at; "onednn").
    """
    from workloads import WORKLOADS

    w = WORKLOADS[name]
    if not w.flops or not w.gemm_shape:
        return None
    tail = f":{library}" if library else ""
    shape = ",".join(map(str, w.gemm_shape))
    rate = max(rates.get(shape + tail) or 0, rates.get("512,512,512" + tail) or 0)
    return (w.flops / (rate * 1e9) * 1e3, rate) if rate else None


def peak_ratio(cells: dict[str, Cell], runner: str) -> float | None:
    """Peak memory of ``runner`` over torch-1t's on the same workload."""
    a, b = cells.get(runner), cells.get("torch-1t")
    if a is None or b is None or a.peak is None or not b.peak:
        return None
    return a.peak / b.peak


def median_ms(cells: dict[str, Cell], runner: str) -> float | None:
    """The runner's median milliseconds a step, if it ran."""
    c = cells.get(runner)
    return statistics.median(c.ms) if c is not None and c.ms else None


def check(value: float | None, bound: float) -> str:
    """``value`` and whether it meets ``value <= bound`` (as printed, to two decimals)."""
    if value is None:
        return "-"
    return f"{value:.2f} {'ok' if round(value, 2) <= bound else 'MISSED'}"


def targets(results: dict[str, dict[str, Cell]], rates: dict) -> list[str]:
    """Issue 20's "done when" lines, as measured in this run."""
    lines = [
        "Issue 20 targets in this run (time ratios; `ok` where met):",
        "",
        "| workload | cr-mlx / torch-1t <= 1.2 | cr-torch / torch-1t <= 1.2 | "
        "cr-compiled / torch-1t <= 0.9 | vs real MLX <= 1.0 | "
        "compiled / limit <= 1.1 (fastest GEMM; NumPy's BLAS) | "
        "peak / torch-1t <= 1.3 (worst cr) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, cells in results.items():
        mlx_check = "-"
        if name in ("llama", "flow"):
            worst = [
                v
                for v in (
                    ratio(cells, "cr-mlx", "mlx"),
                    ratio(cells, "cr-mlx-compiled", "mlx-compiled"),
                )
                if v is not None
            ]
            mlx_check = check(max(worst), 1.0) if worst else "-"
        lim = "-"
        if name == "large":
            got = median_ms(cells, "cr-mlx-compiled")
            bound, stated = limit_ms(name, rates), limit_ms(name, rates, "numpy")
            if got is not None and bound and stated:
                lim = f"{check(got / bound[0], 1.1)}; {check(got / stated[0], 1.1)}"
        peaks = [peak_ratio(cells, r) for r in ("cr-mlx", "cr-mlx-compiled", "cr-torch")]
        peaks = [v for v in peaks if v is not None]
        lines.append(
            f"| {name} | {check(ratio(cells, 'cr-mlx', 'torch-1t'), 1.2)} | "
            f"{check(ratio(cells, 'cr-torch', 'torch-1t'), 1.2)} | "
            f"{check(ratio(cells, 'cr-mlx-compiled', 'torch-1t'), 0.9)} | {mlx_check} | {lim} | "
            f"{check(max(peaks), 1.3) if peaks else '-'} |"
        )
    return lines


def tables(results: dict[str, dict[str, Cell]], rates: dict, args: argparse.Namespace) -> str:
    """The markdown tables: times and memory per (workload, runner), the limits, the targets."""
    from workloads import WORKLOADS

    growth_head = f"growth MB ({args.memory_growth}->{2 * args.memory_growth} steps)"
    if not args.memory_growth:
        growth_head = "growth MB (block 1->last)"
    lines = [
        f"| workload | runner | median | x torch-1t | x mlx | peak MB | peak x torch-1t | "
        f"{growth_head} | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, cells in results.items():
        w = WORKLOADS[name]
        for r, c in cells.items():
            if not c.ms:
                lines.append(f"| {name} | {r} | n/a | - | - | - | - | - | {c.reason} |")
                continue
            if w.unit == "tok/s":
                value = f"{statistics.median(w.tokens / (m / 1e3) for m in c.ms):.1f} tok/s"
            else:
                value = f"{statistics.median(c.ms):.3f} ms"
            note = f"{len(c.ms)} blocks of {min(c.steps)}-{max(c.steps)} steps"
            lines.append(
                f"| {name} | {r} | {value} | {fmt(ratio(cells, r, 'torch-1t'))} | "
                f"{fmt(ratio(cells, r, mlx_ref(r)))} | {fmt(c.peak, 1)} | "
                f"{fmt(peak_ratio(cells, r))} | {fmt(c.growth, 1)} | {note} |"
            )
    limit_rows = []
    for name, cells in results.items():
        w = WORKLOADS[name]
        lim = limit_ms(name, rates)
        if lim is None or w.flops is None or w.gemm_shape is None:
            continue
        shape = ",".join(map(str, w.gemm_shape))
        row = [name, f"{w.flops / 1e9:.3f}", shape.replace(",", "x")]
        row += [f"{fmt(rates.get(shape), 1)} / {fmt(rates.get('512,512,512'), 1)}"]
        stated = limit_ms(name, rates, "numpy")
        row.append(f"{lim[0]:.3f} / {fmt(stated[0] if stated else None, 3)}")
        for r in ("cr-mlx-compiled", "cr-mlx", "cr-torch", "torch-1t"):
            got = median_ms(cells, r)
            row.append(fmt(got / lim[0]) if got is not None else "-")
        limit_rows.append("| " + " | ".join(row) + " |")
    if limit_rows:
        lines += [
            "",
            "GEMM-bound limit (one thread): the step's matrix-product/convolution FLOPs "
            "(forward + backward) over the single-thread GEMM rate (the faster of NumPy's BLAS "
            "and oneDNN's), the higher of the workload-shaped product's and the 512x512x512 "
            "product's. The second limit is at NumPy's BLAS rate, as issue 20 states it; the "
            "ratios are to the first.",
            "",
            "| workload | GFLOP/step | typical MxKxN | GEMM GFLOP/s (shape / 512^3) | "
            "limit ms (fastest / NumPy's BLAS) | "
            "cr-compiled / limit | cr-mlx / limit | cr-torch / limit | torch-1t / limit |",
            "|---|---|---|---|---|---|---|---|---|",
        ] + limit_rows
    if "torch-1t" in next(iter(results.values()), {}):
        lines += [""] + targets(results, rates)
    return "\n".join(lines)


def main() -> None:
    """Parse the arguments; run as the driver (default), a worker, or the GEMM timer."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workloads", default="all", help="comma-separated names, or all")
    p.add_argument("--runners", default="all", help="comma-separated runners, or all")
    p.add_argument("--blocks", type=int, default=3)
    p.add_argument("--steps", type=int, default=0, help="steps a block (0: each workload's own)")
    p.add_argument("--block-seconds", type=float, default=2.0, help="a block stops after this")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="1 block, 2 steps, 1 warm-up: smoke test")
    p.add_argument("--memory-growth", type=int, nargs="?", const=1000, default=0, metavar="N")
    p.add_argument("--gpu", action="store_true", help="CHAINRULE_DEVICE=gpu, torch on cuda")
    p.add_argument("--out", help="also write the report (markdown) here")
    p.add_argument("--worker", nargs=2, metavar=("WORKLOAD", "RUNNER"), help=argparse.SUPPRESS)
    p.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    p.add_argument("--gemm", help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.worker:
        worker(args.worker[0], args.worker[1], args.device, args.warmup)
        return
    if args.gemm:
        gemm_worker(args.gemm, args.quick)
        return

    sys.path.insert(0, HERE)
    from workloads import ORDER, WORKLOADS

    if args.quick:
        args.blocks, args.steps, args.warmup, args.block_seconds = 1, 2, 1, 0.5
    names = ORDER if args.workloads == "all" else args.workloads.split(",")
    runners = RUNNERS if args.runners == "all" else args.runners.split(",")
    for n in names:
        if n not in WORKLOADS:
            p.error(f"unknown workload {n!r} (known: {', '.join(ORDER)})")
    for r in runners:
        if r not in RUNNERS:
            p.error(f"unknown runner {r!r} (known: {', '.join(RUNNERS)})")

    t_start = time.time()
    load0 = os.getloadavg()
    shapes = [(512, 512, 512)] + [WORKLOADS[n].gemm_shape for n in names]
    rates = gemm_rates(list(dict.fromkeys(s for s in shapes if s)), args.quick)
    stat0 = cpu_times()
    results = {}
    for n in names:
        print(f"[{time.strftime('%H:%M:%S')}] {n}: {WORKLOADS[n].description}", flush=True)
        results[n] = run_workload(n, runners, args)
    stat1 = cpu_times()
    load1 = os.getloadavg()

    header = [
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(t_start))}, "
        f"{time.time() - t_start:.0f} s; {machine()}",
        f"GEMM one thread: {fmt(rates.get('512,512,512'), 1)} GFLOP/s on 512x512x512 by "
        f"{rates.get('512,512,512:by', '?')} (BLAS: {rates.get('blas', '?')})",
        f"device: {'gpu (CHAINRULE_DEVICE=gpu, torch cuda)' if args.gpu else 'cpu'}; "
        f"blocks {args.blocks}, block cap {args.block_seconds} s, warm-up {args.warmup} steps",
    ]
    if stat0 and stat1:
        d = [b - a for a, b in zip(stat0, stat1)]
        total = sum(d) or 1
        busy = 100 * (total - d[3] - d[4]) / total
        header.append(
            f"steal {100 * d[7] / total:.1f}% of CPU time during the run; machine busy "
            f"{busy:.0f}% (this suite runs one thread at a time); load average "
            f"{load0[0]:.2f} at start, {load1[0]:.2f} at end"
        )
    report = "\n".join(header) + "\n\n" + tables(results, rates, args) + "\n"
    if args.out:
        with open(args.out, "w") as f:
            f.write(report)
    print()
    print(report)


if __name__ == "__main__":
    main()
