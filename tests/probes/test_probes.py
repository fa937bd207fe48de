"""The project's probe list: what a hostile or careless user tries, and what must happen.

Each probe is a call and its required outcome: a clean, named error (exception type and a
fragment of the message) or a safe success. The hardening issue's twelve items have tests of
their own next to the code they exercise; these are the probes tried beyond them. The count
of probes and of those that hold is reported by ``test_probe_count`` (run with ``-s``).
"""

from __future__ import annotations

import os
import sqlite3
import zipfile

import numpy as np
import pytest

import chainrule.core as mx
import chainrule.nn as nn
import chainrule.optimizers as optim
from chainrule import data
from chainrule.data import DataError

pytest.importorskip("pandas")


@pytest.fixture
def d(tmp_path):
    db = tmp_path / "s.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (a REAL, y INTEGER)")
    conn.execute("INSERT INTO t VALUES (1, 0), (2, 1)")
    conn.commit()
    conn.close()
    return tmp_path


def _write(path, content):
    mode = "wb" if isinstance(content, bytes) else "w"
    with open(path, mode) as f:
        f.write(content)
    return path


def _npz_with_object_array(path):
    np.savez(path, w=np.array([{"x": 1}], dtype=object))
    return path


def _npz_with_pickle_member(path):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("w.npy", b"\x80\x04K\x01.")  # a pickle, not an .npy file
    return path


# name -> (function of the fixture folder, expected exception (None: must succeed), fragment)
PROBES = {
    # SQL beyond the cases
    "sql: load_extension in a query": (
        lambda d: data.from_sql("SELECT load_extension('x') AS a, 1 AS y", d / "s.db"),
        DataError,
        "not authorized",
    ),
    "sql: NUL byte in a table name": (
        lambda d: data.from_sql(None, d / "s.db", table="t\x00; DROP TABLE t"),
        DataError,
        "NUL",
    ),
    "sql: 100,000-character table name": (
        lambda d: data.from_sql(None, d / "s.db", table="x" * 100_000),
        DataError,
        "no such table",
    ),
    "sql: a query that is only a comment": (
        lambda d: data.from_sql("-- nothing", d / "s.db"),
        DataError,
        "only a query",
    ),
    "sql: a recursive CTE (a legitimate query) runs": (
        lambda d: data.from_sql(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5) "
            "SELECT x, x % 2 AS y FROM c",
            d / "s.db",
        ),
        None,
        "",
    ),
    "sql: a folder given as the database": (
        lambda d: data.from_sql("t", d),
        DataError,
        "is a directory",
    ),
    "sql: a URL with a host for SQLite": (
        lambda d: data.load(f"sqlite://host/{d / 's.db'}?table=t"),
        DataError,
        "no host",
    ),
    "sql: query= given twice keeps the rest verbatim": (
        lambda d: data.load(f"sqlite:///{d / 's.db'}?query=SELECT a, y FROM t&query=x"),
        DataError,
        "query failed",
    ),
    # files that are not what their names say
    "json: nested 100,000 deep": (
        lambda d: data.from_json(_write(d / "deep.json", "[" * 100_000 + "]" * 100_000)),
        DataError,
        "nested too deeply",
    ),
    "json: NaN literal in a feature": (
        lambda d: data.from_json(_write(d / "n.json", '[{"a": NaN, "y": 1}]')),
        DataError,
        "missing value in column 'a'",
    ),
    "json: a top-level number": (
        lambda d: data.from_json(_write(d / "s.json", "3")),
        DataError,
        "top-level int",
    ),
    "csv: random bytes": (
        lambda d: data.from_csv(_write(d / "bin.csv", bytes(range(256)) * 8)),
        DataError,
        "not UTF-8",
    ),
    "csv: 'Infinity' written as text": (
        lambda d: data.from_csv(_write(d / "inf.csv", "a,y\nInfinity,0\n1,1\n")),
        DataError,
        "infinite value in column 'a' at line 2",
    ),
    "csv: a header and no rows": (
        lambda d: data.from_csv(_write(d / "h.csv", "a,y\n")),
        DataError,
        "no data rows",
    ),
    "csv: a byte-order mark is not part of the first name": (
        lambda d: (
            data.from_csv(_write(d / "bom.csv", "\ufeffa,y\n1,0\n".encode())).features == ["a"]
            or (_ for _ in ()).throw(AssertionError("BOM kept"))
        ),
        None,
        "",
    ),
    "images: a file instead of a folder": (
        lambda d: data.ImageFolder(_write(d / "x.csv", "a\n")),
        DataError,
        "needs a folder",
    ),
    "images: a missing folder": (
        lambda d: data.ImageFolder(d / "nope"),
        FileNotFoundError,
        "no such folder",
    ),
    # weights files a user hands us
    "weights: an .npz holding an object array": (
        lambda d: nn.Linear(1, 1).load_weights(str(_npz_with_object_array(d / "o.npz"))),
        ValueError,
        "o.npz",
    ),
    "weights: an .npz member that is a pickle": (
        lambda d: nn.Linear(1, 1).load_weights(str(_npz_with_pickle_member(d / "p.npz"))),
        ValueError,
        "p.npz",
    ),
    "weights: a folder named model.safetensors": (
        lambda d: (
            os.mkdir(d / "m.safetensors"),
            nn.Linear(1, 1).load_weights(str(d / "m.safetensors")),
        ),
        (ValueError, IsADirectoryError),
        "m.safetensors",
    ),
    "weights: an empty .safetensors file": (
        lambda d: nn.Linear(1, 1).load_weights(str(_write(d / "e.safetensors", b""))),
        ValueError,
        "e.safetensors",
    ),
    # arguments
    "loader: batch_size=0": (
        lambda d: data.DataLoader(data.TensorDataset(mx.zeros((4, 2))), batch_size=0),
        ValueError,
        "batch_size",
    ),
    "optimizer: a NaN learning rate (PyTorch style)": (
        lambda d: optim.Adam([mx.zeros(2)], lr=float("nan")),
        ValueError,
        "learning rate nan",
    ),
    "loss: predictions and targets of different shapes": (
        lambda d: nn.losses.mse_loss(mx.zeros((4, 1)), mx.zeros((4,))),
        ValueError,
        "shape",
    ),
    "data: missing= with an unknown policy": (
        lambda d: data.load(str(_write(d / "m.csv", "a,y\n1,0\n")), missing="zero"),
        ValueError,
        "missing must be",
    ),
}

RESULTS: dict[str, bool] = {}


@pytest.mark.parametrize("name", list(PROBES))
def test_probe(name, d):
    fn, expected, fragment = PROBES[name]
    RESULTS[name] = False
    if expected is None:
        fn(d)
    else:
        with pytest.raises(expected) as e:
            fn(d)
        assert fragment in str(e.value), str(e.value)
        assert "\n" not in str(e.value).strip() or isinstance(e.value, FileNotFoundError)
    RESULTS[name] = True


def test_probe_count():
    """Prints tried / held (meaningful after the probes above ran in the same session)."""
    held = sum(RESULTS.values())
    print(f"\nprobes: tried {len(PROBES)}, held {held} of the {len(RESULTS)} run here")
    assert held == len(RESULTS)
