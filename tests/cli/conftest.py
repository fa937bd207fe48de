"""Fixtures of the `chainrule` command's tests."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def files(tmp_path):
    """Small CSV/JSON files, good and bad, in a temporary folder."""
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 3))
    frame = pd.DataFrame(x, columns=["a", "b", "c"])
    frame["label"] = np.where(x[:, 0] - x[:, 1] > 0, "yes", "no")
    frame.to_csv(tmp_path / "good.csv", index=False)
    (tmp_path / "ragged.csv").write_text("a,b,label\n1,2,x\n3,4,5,y\n")
    (tmp_path / "text.csv").write_text("a,b,label\n1,2,x\n3,oops,y\n")
    (tmp_path / "nan.csv").write_text("a,b,label\n1,2,x\n3,,y\n")
    (tmp_path / "empty.csv").write_text("a,b,label\n")
    (tmp_path / "one.csv").write_text("a,b,label\n1,2,x\n3,4,x\n")
    (tmp_path / "few.csv").write_text("a,b,label\n1,2,x\n3,4,x\n5,6,y\n7,8,y\n")
    (tmp_path / "bad.json").write_text('[{"a": 1, "label": 0}, {"a": 2}]')
    (tmp_path / "notes.txt.md").write_text("hello")
    return tmp_path
