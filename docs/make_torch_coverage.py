"""Print how much of PyTorch's public API chainrule.torch offers (needs PyTorch installed).

Usage: ``python docs/make_torch_coverage.py``. The counting rules and the exclusion list are
those of ``tests/torch/test_coverage.py``, which this script runs.
"""

from __future__ import annotations

import runpy
from pathlib import Path


def main() -> None:
    """Print one line per namespace: present / remaining names (percent)."""
    test = Path(__file__).resolve().parent.parent / "tests" / "torch" / "test_coverage.py"
    runpy.run_path(str(test), run_name="__main__")


if __name__ == "__main__":
    main()
