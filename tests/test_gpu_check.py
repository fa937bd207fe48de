"""tools/gpu_check.py's CPU-side parts: the steps it plans, its parsing and its table."""

from __future__ import annotations

import importlib.util
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "gpu_check.py"
_spec = importlib.util.spec_from_file_location("gpu_check", TOOL)
gc = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
_spec.loader.exec_module(gc)  # type: ignore[union-attr]


def test_dry_run_lists_every_step_on_the_gpu():
    r = subprocess.run(
        [sys.executable, str(TOOL), "--dry-run"], capture_output=True, text=True, check=True
    )
    out = r.stdout
    assert "[environment]" in out and "tests/core" in out and "tests/nn" in out
    assert "tests/optimizers" in out and "tests/train" in out and "tests/data" in out
    assert "results ->" in out and "gpu_check_results.md" in out
    args = gc.main.__globals__["argparse"].Namespace(tests_limit=180, bench_limit=120)
    steps = gc.steps(args)
    assert all(gc._env()["CHAINRULE_DEVICE"] == "gpu" for _ in steps)
    if (gc.WORK / "seed_programs").is_dir():
        assert sum(s.name.startswith("seed ") for s in steps) == 5
        assert any("conformance" in s.name for s in steps)


def test_prepare_dry_run_names_what_it_copies_and_fetches():
    if not gc.SHARED.is_dir():
        return
    r = subprocess.run(
        [sys.executable, str(TOOL), "--prepare", "--dry-run"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "seed_programs" in r.stdout and "mlx_tests" in r.stdout
    assert "ml_dtypes" in r.stdout and "--python-version 3.12" in r.stdout
    assert "scikit-learn" not in r.stdout  # only with --with-sklearn (too big to carry)


def test_summaries_and_table():
    assert gc._pytest_summary("...\n== 2 failed, 10 passed in 3.1s ==\n", 1) == (
        "2 failed, 10 passed in 3.1s"
    )
    assert gc._pytest_summary("boom", 3) == "exit code 3"
    assert gc._seed_summary("Epoch 1\nseed003 OK\n", 0) == "OK: seed003 OK"
    assert gc._seed_summary("Traceback", 1).startswith("FAILED")
    assert gc._conformance_summary("x\nconformance: 5 passed of 6\n", 0) == (
        "conformance: 5 passed of 6"
    )
    md = gc.table([("a | b", "ok", 1.2, "fine"), ("c", "timeout (9s)", 9.0, "x")], 10.2)
    assert "| step | status | seconds | summary |" in md and "| a / b | ok | 1 | fine |" in md


def test_a_run_cut_short_is_summarised_from_its_progress():
    out = "....F.s [ 50%]\n..E\n"
    assert gc._pytest_summary(out, -1) == "cut short after 10 tests: 7 passed, 1 failed, 1 errors"
