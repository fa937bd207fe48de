"""docs/ops.md is generated from the op table's registrations and must be current."""

import runpy
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.mark.usefixtures("cpu_default_device")  # (its dtype columns include bfloat16)
def test_ops_doc_lists_every_registered_operation():
    make = runpy.run_path(str(DOCS / "make_ops_list.py"))
    assert (DOCS / "ops.md").read_text() == make["render"](), (
        "docs/ops.md is out of date: run python docs/make_ops_list.py"
    )
