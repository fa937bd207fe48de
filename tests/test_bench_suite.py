"""``benchmarks/suite.py`` (``make bench``) runs and prints a well-formed table.

Only the shape of the report is checked (every requested runner has a cell: a number or
"n/a" with a reason), never a timing.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SUITE = Path(__file__).resolve().parents[1] / "benchmarks" / "suite.py"
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


def table_rows(report: str) -> dict[tuple[str, str], list[str]]:
    """The main table's rows, keyed by (workload, runner)."""
    rows = {}
    for line in report.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 9 and cells[1] in RUNNERS:
            rows[(cells[0], cells[1])] = cells
    return rows


def test_quick_suite_prints_every_cell(tmp_path: Path) -> None:
    out = tmp_path / "bench.md"
    proc = subprocess.run(
        [sys.executable, str(SUITE), "--quick", "--workloads", "seed,polyfit", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = out.read_text()
    assert report in proc.stdout
    assert "| workload | runner | median | x torch-1t |" in report
    assert re.search(r"steal [\d.]+% of CPU time", report)
    assert "load average" in report
    rows = table_rows(report)
    for workload in ("seed", "polyfit"):
        for runner in RUNNERS:
            cells = rows[(workload, runner)]
            if cells[2] == "n/a":
                assert cells[8], f"{workload}/{runner}: n/a without a reason"
            else:
                assert re.fullmatch(r"[\d.]+ ms", cells[2]), cells
                assert re.fullmatch(r"[\d.]+|-", cells[3]), cells
    # The chainrule runners must run these two workloads (a failure is a bug to report).
    for runner in ("cr-mlx", "cr-mlx-compiled", "cr-torch"):
        assert rows[("seed", runner)][2] != "n/a", rows[("seed", runner)]
    # The GEMM-bound limit table lists seed (polyfit is not GEMM-bound), with the limit at the
    # fastest library's rate and at NumPy's BLAS rate (issue 20's), the second never lower.
    limits = re.search(
        r"^\| seed \| [\d.]+ \| 64x784x128 \| [^|]+ \| ([\d.]+) / ([\d.]+) \|", report, re.M
    )
    assert limits, report
    assert float(limits[2]) >= float(limits[1])
    assert "Issue 20 targets in this run" in report


def test_unknown_workload_is_an_error() -> None:
    proc = subprocess.run(
        [sys.executable, str(SUITE), "--workloads", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode != 0
    assert "unknown workload" in proc.stderr
