#!/usr/bin/env python3
"""``make gpu-check``: chainrule on an NVIDIA GPU through CuPy, in one prepared run.

Two halves, because the GPU machine reaches no package registry (Python 3.12 with CuPy,
PyTorch and NumPy, no venv; run with ``PYTHONPATH=.``):

* here, with network: ``python3 tools/gpu_check.py --prepare`` copies ``../shared/seed_programs``
  and ``../shared/mlx_tests`` into ``.gpu_check/`` (git-ignored) and unpacks there the pure
  Python and Python 3.12 wheels chainrule and the tests need beyond NumPy (ml_dtypes,
  threadpoolctl, pytest and its plugins; with ``--with-sklearn`` also scikit-learn and SciPy
  for seed 001, 140 MiB more than the 64 MiB a run may carry), so the folder can be carried
  to the GPU machine; a seed needing scikit-learn where it is missing is reported skipped;
* there: ``PYTHONPATH=. python3 tools/gpu_check.py`` (or ``make gpu-check``) runs, with
  ``CHAINRULE_DEVICE=gpu``, the core, nn, optimizers, train and data test suites, the five
  seed programs, MLX's conformance files test_ops/test_autograd/test_nn on the GPU, and
  ``benchmarks/suite.py --gpu`` against PyTorch CUDA when the suite exists, each under its
  own time limit (all together under 8 minutes), and writes ``gpu_check_results.md`` with a
  table.

``--dry-run`` prints the steps (commands, environments, limits) without running them.
Standard library only.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time
import zipfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
WORK = ROOT / ".gpu_check"
SITE = WORK / "site"
RESULTS = ROOT / "gpu_check_results.md"

# what chainrule imports beyond NumPy, and what the test suites need; pure Python except
# ml_dtypes (a Python 3.12 manylinux wheel is fetched for the GPU machine)
WHEELS = ["ml_dtypes", "threadpoolctl", "pytest", "pluggy", "iniconfig", "packaging"]
SKLEARN = ["scikit-learn", "scipy", "joblib"]
MLX_FILES = ["test_ops.py", "test_autograd.py", "test_nn.py"]


class Step:
    """One command of the check: its name, argv, extra environment and time limit."""

    def __init__(self, name: str, argv: list[str], limit: int, env: dict | None = None,
                 cwd: pathlib.Path = ROOT, parse=None, needs: str = "") -> None:  # fmt: skip
        self.name, self.argv, self.limit, self.env, self.cwd = name, argv, limit, env or {}, cwd
        self.parse = parse or _pytest_summary
        self.needs = needs  # a module the step cannot run without (skipped when missing)

    def describe(self) -> str:
        """The step as a shell line (for ``--dry-run``)."""
        env = " ".join(f"{k}={v}" for k, v in self.env.items())
        return f"[{self.name}] limit {self.limit}s: {env} {' '.join(self.argv)} (in {self.cwd})"


def _pytest_summary(out: str, rc: int) -> str:
    """The last pytest summary line (``3 failed, 120 passed in 9.1s``); for a run cut short,
    the outcomes its progress lines show; else the return code."""
    for line in reversed(out.splitlines()):
        if re.search(r"\d+ (passed|failed|error)", line):
            return line.strip("= ").strip()
    marks = "".join(m.group(1) for m in re.finditer(r"^([.FEsxX]+)(?: +\[ *\d+%\])?$", out, re.M))
    if marks:
        return (
            f"cut short after {len(marks)} tests: {marks.count('.')} passed, "
            f"{marks.count('F')} failed, {marks.count('E')} errors"
        )
    return f"exit code {rc}"


def _seed_summary(out: str, rc: int) -> str:
    oks = re.findall(r"seed\d+ OK", out)
    return ("OK" if rc == 0 and oks else f"FAILED (exit code {rc})") + (
        f": {oks[-1]}" if oks else ""
    )


def _conformance_summary(out: str, rc: int) -> str:
    m = re.search(r"conformance: .*", out)
    return m.group(0) if m else f"exit code {rc}"


MISSING = WORK / "missing"


def link_missing() -> list[str]:
    """Link into ``.gpu_check/missing/`` the carried packages this Python cannot import by
    itself (the machine's own installs win over the carried ones); their names."""
    shutil.rmtree(MISSING, ignore_errors=True)
    if not SITE.is_dir():
        return []
    MISSING.mkdir(parents=True)
    names = sorted(
        {p.name.removesuffix(".py") for p in SITE.iterdir()
         if not p.name.endswith((".dist-info", ".libs", ".data")) and p.name != "__pycache__"}
    )  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    linked = []
    for name in names:
        probe = [sys.executable, "-c", f"import {name}"]
        if subprocess.run(probe, env=env, capture_output=True, check=False).returncode == 0:
            continue
        for p in SITE.iterdir():  # the package (or module) and the files that go with it
            if p.name in (name, f"{name}.py") or p.name.startswith((f"{name}-", f"{name}.libs")):
                (MISSING / p.name).symlink_to(p)
        linked.append(name)
    return linked


def _env() -> dict:
    """The environment every step runs in: chainrule from this checkout, the GPU default."""
    path = [str(ROOT)]
    if MISSING.is_dir():
        path.append(str(MISSING))  # only what the machine lacks
    old = os.environ.get("PYTHONPATH")
    if old:
        path.insert(1, old)
    return {"PYTHONPATH": os.pathsep.join(path), "CHAINRULE_DEVICE": "gpu"}


def steps(args: argparse.Namespace) -> list[Step]:
    """Every step of the check, in order."""
    py = sys.executable
    seeds = WORK / "seed_programs"
    mlx = WORK / "mlx_tests"
    pytest = [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
              "-o", "timeout=0", "--no-header"]  # fmt: skip
    out: list[Step] = [
        Step(
            "environment",
            [
                py,
                "-c",
                "import chainrule.core as mx, cupy; print('cupy', cupy.__version__); "
                "print(mx.default_device(), mx.device_info(mx.gpu))",
            ],
            60,
            parse=lambda o, rc: (
                o.strip().replace("\n", "; ")[:300] if rc == 0 else f"FAILED: {o[-300:]}"
            ),
        ),  # fmt: skip
        Step("tests/core on the GPU", pytest + ["tests/core"], args.tests_limit),
        Step("tests/nn on the GPU", pytest + ["tests/nn"], args.tests_limit // 2),
        Step(
            "tests/optimizers, tests/train, tests/data on the GPU",
            pytest + ["tests/optimizers", "tests/train", "tests/data"],
            args.tests_limit // 2,
        ),
    ]
    for seed in sorted(seeds.glob("seed*.py")):
        needs = "sklearn" if "sklearn" in seed.read_text() else ""
        out.append(
            Step(f"seed {seed.stem}", [py, str(seed)], 90, cwd=seeds, parse=_seed_summary,
                 needs=needs)
        )  # fmt: skip
    if (mlx / "conformance.py").is_file():
        out.append(
            Step(
                "MLX conformance (test_ops, test_autograd, test_nn) on mx.gpu",
                [py, str(mlx / "conformance.py"), str(mlx), "chainrule", "--python", py,
                 "--pythonpath", str(ROOT), "--pythonpath", str(MISSING), "-j", "4",
                 "--env", "DEVICE=gpu", "--env", "CHAINRULE_DEVICE=gpu", "--list-failures",
                 "--files", *MLX_FILES],
                180,
                parse=_conformance_summary,
            )
        )  # fmt: skip
    if (ROOT / "benchmarks" / "suite.py").is_file():
        out.append(
            Step(
                "benchmarks/suite.py --gpu (against PyTorch CUDA)",
                [py, "benchmarks/suite.py", "--gpu", "--blocks", "2",
                 "--out", str(WORK / "bench_gpu.md")],
                args.bench_limit,
                parse=lambda o, rc: f"exit code {rc}; table in .gpu_check/bench_gpu.md",
            )
        )  # fmt: skip
    # last, in what the budget leaves: chainrule.torch's tests with CUDA as the default device
    out.append(Step("tests/torch on the GPU", pytest + ["tests/torch"], args.tests_limit // 2))
    return out


def run(step: Step) -> tuple[str, float, str]:
    """Run one step under its limit: (status, seconds, summary); the output goes to a log."""
    env = dict(os.environ, **_env(), **step.env)
    if step.needs:
        probe = [sys.executable, "-c", f"import {step.needs}"]
        if subprocess.run(probe, env=env, capture_output=True, check=False).returncode:
            return "skipped", 0.0, f"{step.needs} is not importable (prepare --with-sklearn)"
    start = time.monotonic()
    log = WORK / "logs" / (re.sub(r"[^A-Za-z0-9]+", "_", step.name).strip("_") + ".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        p = subprocess.run(step.argv, cwd=step.cwd, env=env, capture_output=True, text=True,
                           timeout=step.limit, check=False)  # fmt: skip
        text, rc = p.stdout + p.stderr, p.returncode
        status = "ok" if rc == 0 else "failed"
    except subprocess.TimeoutExpired as e:
        text = _text(e.stdout) + _text(e.stderr)
        rc, status = -1, f"timeout ({step.limit}s)"
    log.write_text(text)
    return status, time.monotonic() - start, step.parse(text, rc)


def _text(b) -> str:
    return b.decode(errors="replace") if isinstance(b, bytes) else (b or "")


def prepare(with_sklearn: bool, dry: bool) -> None:
    """Copy the shared inputs into ``.gpu_check/`` and unpack the wheels the GPU machine lacks."""
    plan = [
        (SHARED / "seed_programs", WORK / "seed_programs"),
        (SHARED / "mlx_tests", WORK / "mlx_tests"),
    ]
    for src, dst in plan:
        if not src.is_dir():
            raise SystemExit(f"gpu_check --prepare: {src} is missing")
        print(f"copy {src} -> {dst}")
        if not dry:
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
    names = WHEELS + (SKLEARN if with_sklearn else [])
    wheels = WORK / "wheels"
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--python-version", "3.12", "--platform", "manylinux2014_x86_64",
           "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux_2_28_x86_64",
           "-d", str(wheels), *names]  # fmt: skip
    print(" ".join(cmd))
    if dry:
        return
    subprocess.run(cmd, check=True)
    shutil.rmtree(SITE, ignore_errors=True)
    SITE.mkdir(parents=True)
    for whl in sorted(wheels.glob("*.whl")):
        with zipfile.ZipFile(whl) as z:
            z.extractall(SITE)
    size = sum(f.stat().st_size for f in WORK.rglob("*") if f.is_file() and "wheels" not in f.parts)
    shutil.rmtree(wheels)
    print(f"prepared {WORK} ({size / 2**20:.1f} MiB): carry it to the GPU machine")


def table(rows: list[tuple[str, str, float, str]], total: float) -> str:
    """The results as a markdown table."""
    lines = [
        "# gpu-check results",
        "",
        f"`PYTHONPATH=. python3 tools/gpu_check.py` on {os.uname().nodename}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; total {total:.0f} s. "
        "Logs in `.gpu_check/logs/`.",
        "",
        "| step | status | seconds | summary |",
        "|---|---|---|---|",
    ]
    for name, status, secs, summary in rows:
        cells = [name, status, f"{secs:.0f}", summary]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and prepare, list or run the check."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prepare", action="store_true", help="copy inputs and wheels to .gpu_check/")
    p.add_argument("--with-sklearn", action="store_true", help="--prepare: add scikit-learn")
    p.add_argument("--dry-run", action="store_true", help="print the steps, run nothing")
    p.add_argument("--tests-limit", type=int, default=180, help="seconds for tests/core")
    p.add_argument("--bench-limit", type=int, default=120, help="seconds for the benchmarks")
    p.add_argument("--out", default=str(RESULTS), help="the results table (markdown)")
    p.add_argument("--budget", type=int, default=450, help="seconds for all steps together")
    p.add_argument("--only", nargs="+", help="run the steps whose names contain these words")
    args = p.parse_args(argv)
    if args.prepare:
        prepare(args.with_sklearn, args.dry_run)
        return 0
    todo = [s for s in steps(args) if not args.only or any(o in s.name for o in args.only)]
    if args.dry_run:
        for s in todo:
            print(s.describe())
        print(f"limits total {sum(s.limit for s in todo)} s; results -> {args.out}")
        return 0
    if not (WORK / "seed_programs").is_dir():
        print("gpu_check: .gpu_check/ is not prepared (run tools/gpu_check.py --prepare where "
              "../shared exists, and carry .gpu_check)", file=sys.stderr)  # fmt: skip
    rows = []
    start = time.monotonic()
    print("carried packages used:", ", ".join(link_missing()) or "none", flush=True)
    for s in todo:
        left = args.budget - (time.monotonic() - start)
        if left < 20:
            rows.append((s.name, "skipped", 0.0, f"the {args.budget}s budget is spent"))
            continue
        s.limit = int(min(s.limit, left))
        status, secs, summary = run(s)
        print(f"{s.name}: {status} in {secs:.0f}s: {summary}", flush=True)
        rows.append((s.name, status, secs, summary))
    report = table(rows, time.monotonic() - start)
    pathlib.Path(args.out).write_text(report)
    print(report)
    return 0 if all(r[1] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
