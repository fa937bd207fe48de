"""Tests for chainrule.data.sources: every source against an independent reader.

References: pandas / NumPy / the csv and json modules for parsed values, scikit-learn's own
loaders for the built-in datasets, Pillow for images, the database driver for SQL. A real
PostgreSQL server is started on loopback for the PostgreSQL tests (skipped only when this
machine has no PostgreSQL server binaries).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

import chainrule.data as data
from chainrule.data import DataError, ImageFolder, TabularDataset

pd = pytest.importorskip("pandas")

ROOT = Path(__file__).resolve().parents[2]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def frame():
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "height": rng.normal(170, 10, 12).round(2),
            "weight": rng.normal(70, 5, 12).round(2),
            "smoker": [True, False] * 6,
            "species": ["dog", "cat", "emu"] * 4,
        }
    )


def check_against_frame(ds: TabularDataset, frame, target: str, features: list[str]):
    assert isinstance(ds, TabularDataset) and isinstance(ds, data.TensorDataset)
    assert ds.features == features and ds.target == target
    assert ds.X.dtype == np.float32
    np.testing.assert_allclose(ds.X, frame[features].to_numpy(dtype=np.float64), rtol=1e-6)
    labels = sorted(frame[target].unique().tolist())
    assert ds.classes == labels and ds.task == "classification" and ds.y.dtype == np.int64
    assert [ds.classes[i] for i in ds.y] == frame[target].tolist()
    assert len(ds) == len(frame)
    x0, y0 = ds[0]
    np.testing.assert_allclose(x0.numpy(), ds.X[0])
    assert y0.item() == ds.y[0]


# ------------------------------------------------------------------------------------------
# CSV
# ------------------------------------------------------------------------------------------


def test_csv_matches_pandas(tmp_path, frame):
    path = tmp_path / "animals.csv"
    frame.to_csv(path, index=False)
    ds = data.from_csv(path, target="species")
    check_against_frame(ds, frame, "species", ["height", "weight", "smoker"])
    # default target is the last column; features can be chosen and reordered
    assert data.from_csv(path).target == "species"
    ds = data.from_csv(path, target="species", features=["weight", "height"])
    check_against_frame(ds, frame, "species", ["weight", "height"])


def test_csv_target_none_gives_unlabelled_data(tmp_path, frame):
    path = tmp_path / "x.csv"
    frame[["height", "weight"]].to_csv(path, index=False)
    ds = data.from_csv(path, target=None)
    assert ds.y is None and ds.task is None and len(ds.tensors) == 1
    assert ds.features == ["height", "weight"]


@pytest.mark.parametrize(
    "values, task, expected_task",
    [
        ([0, 1, 2, 1, 0, 2], "auto", "classification"),
        ([0.5, 1.25, 2.0, 3.5, 1.0, 2.2], "auto", "regression"),
        (list(range(0, 60, 2))[:6] * 5 + list(range(100, 130)), "auto", "regression"),
        ([1.0, 3.0, 3.0, 1.0, 1.0, 3.0], "auto", "classification"),
        ([0, 1, 2, 1, 0, 2], "regression", "regression"),
        ([0.5, 1.5, 0.5, 1.5, 0.5, 1.5], "classification", "classification"),
    ],
)
def test_csv_task_detection(tmp_path, values, task, expected_task):
    path = tmp_path / "t.csv"
    pd.DataFrame({"x": np.arange(len(values)), "y": values}).to_csv(path, index=False)
    ds = data.from_csv(path, target="y", task=task)
    assert ds.task == expected_task
    if expected_task == "classification":
        assert ds.y.dtype == np.int64
        np.testing.assert_array_equal(np.asarray(ds.classes)[ds.y], values)
        assert ds.classes == sorted(set(values))
    else:
        assert ds.y.dtype == np.float32 and ds.classes is None
        np.testing.assert_allclose(ds.y, values)


def test_csv_line_numbers_count_blank_lines_and_quoted_newlines(tmp_path):
    path = write(tmp_path / "q.csv", 'note,x,y\n"two\nlines",1,0\n\nok,2,1\nfine,abc,0\n')
    with pytest.raises(DataError) as e:
        data.from_csv(path, target="y", features=["x"])
    assert str(e.value) == (
        f"{path}: column 'x' is not numeric: line 6 has 'abc' (convert it to numbers, "
        "or leave the column out by choosing the feature columns)"
    )


CSV_ERRORS = [
    # (file text, from_csv kwargs, substrings the message must contain)
    ("a,b,c\n1,2,3\n", {"target": "label"}, ["no target column 'label'", "'a', 'b', 'c'"]),
    ("a,b,c\n1,2,3\n", {"features": ["a", "z"]}, ["no feature column 'z'", "'a', 'b', 'c'"]),
    ("a,b,c\n1,2,0\n3,x7,1\n", {}, ["column 'b' is not numeric", "line 3", "'x7'"]),
    ("a,b,c\n1,2,0\n3,,1\n", {}, ["missing value in column 'b'", "line 3"]),
    ("a,b,c\n1,2,0\n3,NA,1\n", {}, ["missing value in column 'b'", "line 3"]),
    ("a,b,c\n1,2,0\n3,inf,1\n", {}, ["infinite value in column 'b'", "line 3"]),
    ("a,b,c\n1,2,0\n3,4,\n", {}, ["missing target value in column 'c'", "line 3"]),
    ("a,b,c\n1,2,0\n3,4,5,6\n", {}, ["line 3", "ragged row", "4 fields", "header has 3"]),
    ("a,b,c\n1,2,0\n3,4\n", {}, ["line 3", "ragged row", "2 fields", "header has 3"]),
    ("a,b,c\n", {}, ["empty table", "no data rows"]),
    ("", {}, ["empty file"]),
    ("\n\n", {}, ["empty file"]),
    ("a,a,c\n1,2,3\n", {}, ["appears more than once"]),
    ("a,b\n1,2\n", {"target": "a", "features": ["a", "b"]}, ["both the target and a feature"]),
    ("a\n1\n", {}, ["no feature columns"]),
    ("a,b,c\n1,2,x\n", {"task": "regression"}, ["'c' is not numeric", "line 2", "regression"]),
    ("a,b,c\n1,2,3\n", {"target": 5}, ["index 5 is out of range"]),
]


@pytest.mark.parametrize("text, kwargs, parts", CSV_ERRORS)
def test_csv_errors_name_file_row_and_column(tmp_path, text, kwargs, parts):
    path = write(tmp_path / "bad.csv", text)
    with pytest.raises(DataError) as e:
        data.from_csv(path, **kwargs)
    message = str(e.value)
    assert message.startswith(str(path)), message
    assert "\n" not in message
    for part in parts:
        assert part in message, (part, message)


def test_csv_missing_file_is_not_created(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv: no such file"):
        data.from_csv(tmp_path / "nope.csv")
    assert not (tmp_path / "nope.csv").exists()


def test_csv_not_utf8(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("a,b\n1,\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        data.from_csv(path)


# ------------------------------------------------------------------------------------------
# JSON
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["records", "lines", "lines_as_json", "columns"])
def test_json_layouts_match_pandas(tmp_path, frame, layout):
    records = json.loads(frame.to_json(orient="records"))
    if layout == "records":
        path = write(tmp_path / "a.json", json.dumps(records, indent=2))
    elif layout == "lines":
        path = write(tmp_path / "a.jsonl", "\n".join(json.dumps(r) for r in records) + "\n")
    elif layout == "lines_as_json":
        path = write(tmp_path / "a.json", "\n".join(json.dumps(r) for r in records))
    else:
        path = write(tmp_path / "a.json", json.dumps(frame.to_dict(orient="list")))
    ds = data.from_json(path, target="species")
    check_against_frame(ds, frame, "species", ["height", "weight", "smoker"])


JSON_ERRORS = [
    ("a.json", '[{"a": 1, "y": 0}, {"a": 2}]', ["record [1]", "ragged", "missing 'y'"]),
    ("a.json", '[{"a": 1, "y": 0}, {"a": 2, "y": 1, "z": 3}]', ["record [1]", "extra 'z'"]),
    ("a.json", '[{"a": 1, "y": 0}, {"a": null, "y": 1}]', ["missing value", "'a'", "record [1]"]),
    ("a.json", '[{"a": 1, "y": 0}, {"a": [1, 2], "y": 1}]', ["'a' is not numeric", "[1, 2]"]),
    ("a.json", '[{"a": 1, "y": 0}, {"a": "x", "y": 1}]', ["'a' is not numeric", "record [1]"]),
    ("a.json", '[{"a": 1, "y": 0}, 5]', ["record [1] is int", "expected an object"]),
    ("a.json", "[]", ["empty table"]),
    ("a.json", "   ", ["empty file"]),
    ("a.json", '{"a": [1, 2], "y": [0]}', ["ragged columns", "'y' has 1 values"]),
    ("a.json", '[{"a": 1, "y": 0},\n {"a": 2 "y": 1}]', ["line 2 column", "invalid JSON"]),
    ("a.json", "3", ["found a top-level int"]),
    ("a.jsonl", '{"a": 1, "y": 0}\n\n{"a": 2, "y": 1}\n{"b": 2}\n', ["line 4", "ragged"]),
    ("a.jsonl", '{"a": 1, "y": 0}\n{"a": "?", "y": 1}\n', ["'a' is not numeric", "line 2"]),
    ("a.jsonl", '{"a": 1, "y": 0}\n{"a": 1, "y": 1\n', ["line 2 column", "invalid JSON"]),
    ("a.json", '[{"a": 1, "y": 0}]', None),  # fine: control case
]


@pytest.mark.parametrize("name, text, parts", JSON_ERRORS)
def test_json_errors_name_file_and_record(tmp_path, name, text, parts):
    path = write(tmp_path / name, text)
    if parts is None:
        assert len(data.from_json(path, target="y")) == 1
        return
    with pytest.raises(DataError) as e:
        data.from_json(path, target="y")
    message = str(e.value)
    assert message.startswith(str(path)) and "\n" not in message, message
    for part in parts:
        assert part in message, (part, message)


def test_json_target_missing_lists_keys(tmp_path):
    path = write(tmp_path / "a.json", '[{"a": 1, "b": 2}]')
    with pytest.raises(DataError, match=r"no target column 'y'; available columns: 'a', 'b'"):
        data.from_json(path, target="y")


def test_json_booleans_and_mixed_labels(tmp_path):
    path = write(
        tmp_path / "a.json",
        '[{"a": true, "y": "yes"}, {"a": false, "y": 1}, {"a": true, "y": "yes"}]',
    )
    ds = data.from_json(path)
    np.testing.assert_array_equal(ds.X[:, 0], [1, 0, 1])
    assert ds.task == "classification" and [ds.classes[i] for i in ds.y] == ["yes", 1, "yes"]


# ------------------------------------------------------------------------------------------
# SQL: SQLite (built in)
# ------------------------------------------------------------------------------------------


@pytest.fixture
def sqlite_db(tmp_path, frame):
    path = tmp_path / "zoo.db"
    with sqlite3.connect(path) as conn:
        frame.to_sql("animals", conn, index=False)
        conn.execute("CREATE TABLE empty (a REAL, b INTEGER)")
        conn.execute("CREATE TABLE holes (a REAL, b INTEGER)")
        conn.executemany("INSERT INTO holes VALUES (?, ?)", [(1.0, 0), (None, 1), (2.0, 0)])
    conn.close()
    return path


def _sqlite_connections(path):
    sa = pytest.importorskip("sqlalchemy")
    return {
        "path": str(path),
        "pathlib": path,
        "url": f"sqlite:///{path}",
        "dbapi": sqlite3.connect(path),
        "engine": sa.create_engine(f"sqlite:///{path}"),
    }


@pytest.mark.parametrize("kind", ["path", "pathlib", "url", "dbapi", "engine"])
def test_sqlite_every_kind_of_connection(sqlite_db, frame, kind):
    connection = _sqlite_connections(sqlite_db)[kind]
    check = ["height", "weight", "smoker"]
    ds = data.from_sql("animals", connection, target="species")
    check_against_frame(ds, frame, "species", check)
    ds = data.from_sql(
        "SELECT weight, height, species FROM animals WHERE weight > 0", connection, target=-1
    )
    check_against_frame(ds, frame, "species", ["weight", "height"])


def test_sqlite_errors(sqlite_db, tmp_path):
    with pytest.raises(DataError, match=r"empty table: no data rows"):
        data.from_sql("empty", sqlite_db)
    with pytest.raises(DataError, match=r"missing value in column 'a' at row 2"):
        data.from_sql("holes", sqlite_db, target="b")
    with pytest.raises(DataError, match=r"query failed: no such table: nope"):
        data.from_sql("nope", sqlite_db)
    with pytest.raises(DataError, match=r"no target column 'label'; available columns: 'a', 'b'"):
        data.from_sql("SELECT * FROM holes", f"sqlite:///{sqlite_db}", target="label")
    missing = tmp_path / "absent.db"
    with pytest.raises(FileNotFoundError, match="absent.db: no such file"):
        data.from_sql("t", f"sqlite:///{missing}")
    assert not missing.exists()  # sqlite3 would have created an empty database
    with pytest.raises(TypeError, match="connection must be a database URL"):
        data.from_sql("t", 42)


def test_load_dispatches_urls_and_files(sqlite_db, tmp_path, frame):
    ds = data.load(f"sqlite:///{sqlite_db}?table=animals", target="species")
    check_against_frame(ds, frame, "species", ["height", "weight", "smoker"])
    ds = data.load(f"sqlite:///{sqlite_db}?query=SELECT height, species FROM animals")
    check_against_frame(ds, frame, "species", ["height"])
    frame.to_csv(tmp_path / "f.csv", index=False)
    check_against_frame(
        data.load(tmp_path / "f.csv"), frame, "species", ["height", "weight", "smoker"]
    )
    write(tmp_path / "f.json", frame.to_json(orient="records"))
    check_against_frame(
        data.load(str(tmp_path / "f.json")), frame, "species", ["height", "weight", "smoker"]
    )
    with pytest.raises(ValueError, match=r"\?table=NAME or \?query="):
        data.load(f"sqlite:///{sqlite_db}")
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        data.load("mnist")


# ------------------------------------------------------------------------------------------
# SQL: a real PostgreSQL server on loopback
# ------------------------------------------------------------------------------------------


def _pg_bindir() -> Path | None:
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """A throwaway PostgreSQL cluster in a temporary folder, listening on 127.0.0.1 only."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        # PostgreSQL refuses to run as root: then run its programs as the `postgres` user,
        # in a folder that user can reach.
        self.user = "postgres" if hasattr(os, "geteuid") and os.geteuid() == 0 else None
        where = "/tmp" if self.user and os.path.isdir("/tmp") else None
        self.tmp = tempfile.mkdtemp(prefix="chainrule-pg-", dir=where)
        if self.user:
            shutil.chown(self.tmp, user=self.user)
        self.port = _free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        pgdata = os.path.join(self.tmp, "data")
        self._run("initdb", "-D", pgdata, "-A", "trust", "-U", "postgres", "--no-sync")
        opts = f"-p {self.port} -k {self.tmp} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl", "-D", pgdata, "-o", opts, "-l", os.path.join(self.tmp, "log"), "-w", "start"
        )

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", os.path.join(self.tmp, "data"), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)


def _no_server(reason: str) -> None:
    # CI (.ci/run) installs PostgreSQL and sets this, so there a missing server is a failure.
    if os.environ.get("CHAINRULE_REQUIRE_POSTGRES"):
        pytest.fail(f"CHAINRULE_REQUIRE_POSTGRES is set but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def postgres():
    """A fresh PostgreSQL server on loopback with the tables `animals` and `holes`."""
    try:
        import psycopg
    except ImportError:
        _no_server("psycopg is not installed (pip install 'chainrule[data]')")
    bindir = _pg_bindir()
    if bindir is None:
        _no_server("no PostgreSQL server on this machine (apt-get install postgresql)")
    server = PostgresServer(bindir)
    try:
        server.start()
    except (subprocess.CalledProcessError, OSError, subprocess.TimeoutExpired) as e:
        shutil.rmtree(server.tmp, ignore_errors=True)
        detail = (getattr(e, "stderr", b"") or b"").decode(errors="replace")[-300:]
        _no_server(f"could not start PostgreSQL from {bindir}: {e} {detail}")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                conn = psycopg.connect(server.url, autocommit=True)
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        rng = np.random.default_rng(1)
        x = rng.normal(size=(200, 3))
        label = np.where(x[:, 0] + 0.5 * x[:, 1] > 0, "up", "down")
        with conn:
            conn.execute(
                "CREATE TABLE animals (f1 double precision, f2 real, f3 numeric(12, 6), label text)"
            )
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO animals VALUES (%s, %s, %s, %s)",
                    [
                        (float(a), float(b), round(float(c), 6), str(t))
                        for (a, b, c), t in zip(x, label)
                    ],
                )
            conn.execute("CREATE TABLE holes (a integer, b integer)")
            conn.execute("INSERT INTO holes VALUES (1, 0), (NULL, 1)")
        yield {"url": server.url, "x": x, "label": label}
    finally:
        server.stop()


def test_postgresql_from_sql_url_and_dbapi(postgres):
    psycopg = pytest.importorskip("psycopg")
    x, label = postgres["x"], postgres["label"]
    for connection in (postgres["url"], psycopg.connect(postgres["url"])):
        ds = data.from_sql("SELECT * FROM animals ORDER BY f1", connection, target="label")
        order = np.argsort(x[:, 0])
        np.testing.assert_allclose(ds.X, x[order], rtol=1e-6, atol=1e-6)
        assert ds.classes == ["down", "up"]
        assert [ds.classes[i] for i in ds.y] == label[order].tolist()
        with pytest.raises(DataError, match=r"missing value in column 'a' at row 2"):
            data.from_sql("holes", connection, target="b")
        with pytest.raises(DataError, match=r"query failed: .*nope"):
            data.from_sql("SELECT * FROM nope", connection)
    ds = data.load(postgres["url"] + "?table=animals")
    assert ds.target == "label" and len(ds) == 200
    # a literal % is not taken for a driver placeholder, through any kind of connection
    sa = pytest.importorskip("sqlalchemy")
    engine = sa.create_engine(postgres["url"].replace("postgresql://", "postgresql+psycopg://"))
    query = "SELECT f1, label FROM animals WHERE label LIKE 'u%'"
    with engine.connect() as sa_connection:
        for connection in (
            postgres["url"],
            psycopg.connect(postgres["url"]),
            engine,
            sa_connection,
        ):
            ds = data.from_sql(query, connection)
            assert ds.classes == ["up"] and len(ds) == int((label == "up").sum())
    engine.dispose()
    bad = postgres["url"].replace("postgres@", "postgres:hunter2@").rsplit(":", 1)[0] + ":1/x"
    with pytest.raises(DataError, match=r"postgres:\*\*\*@127.0.0.1:1/x: cannot connect") as e:
        data.from_sql("animals", bad)
    assert "hunter2" not in str(e.value)


def _pg_tables(url):
    psycopg = pytest.importorskip("psycopg")
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {r[0] for r in rows}


def test_postgresql_names_are_quoted_and_sessions_read_only(postgres):
    """Hardening item 1 on a real server: nothing a URL says runs as anything but a read."""
    psycopg = pytest.importorskip("psycopg")
    url = postgres["url"]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS victim (v integer)")
        conn.execute('CREATE TABLE IF NOT EXISTS "odd ""name" (x real, y integer)')
        conn.execute('INSERT INTO "odd ""name" VALUES (1, 0), (2, 1)')
    before = _pg_tables(url)
    assert "victim" in before
    with pytest.raises(DataError, match="does not exist"):
        data.load(url + "?table=COMMIT; DROP TABLE victim; SELECT * FROM animals")
    with pytest.raises(DataError, match="only one SQL statement"):
        data.load(url + "?query=COMMIT; DROP TABLE victim; SELECT * FROM animals")
    with pytest.raises(DataError, match="only one SQL statement"):
        data.load(url + "?query=SELECT E'\\''; DROP TABLE victim; --'")
    # a data-modifying CTE is a query, but the session is read-only
    with pytest.raises(DataError, match="read-only transaction"):
        data.load(url + "?query=WITH d AS (DELETE FROM animals RETURNING *) SELECT * FROM d")
    assert _pg_tables(url) == before
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM animals").fetchone()[0] == 200
    ds = data.load(url + '?table=odd "name')
    np.testing.assert_allclose(sorted(ds.X[:, 0]), [1, 2])
    ds = data.load(url + "?schema=public&table=odd%20%22name")
    assert len(ds) == 2
    ds = data.load(url + "?query=SELECT f1+f2 AS s, label FROM animals WHERE label <> 'a&b'")
    x = postgres["x"]
    np.testing.assert_allclose(sorted(ds.X[:, 0]), sorted(x[:, 0] + x[:, 1]), atol=1e-5)


def test_postgresql_through_chainrule_train(postgres, tmp_path):
    """The issue's end-to-end check, here because it needs this module's server fixture."""
    out = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "chainrule.cli",
            "train",
            "--data",
            postgres["url"] + "?table=animals",
            "--target",
            "label",
            "--epochs",
            "30",
            "--hidden",
            "16",
            "--out",
            str(out),
            "--seed",
            "0",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.85, metrics
    assert (out / "model.safetensors").exists()


# ------------------------------------------------------------------------------------------
# NumPy arrays and built-in datasets
# ------------------------------------------------------------------------------------------


def test_from_numpy():
    X = np.arange(12, dtype=np.float64).reshape(4, 3)
    ds = data.from_numpy(X, np.array([0, 2, 2, 0]))
    assert ds.X.dtype == np.float32 and ds.y.dtype == np.int64
    assert ds.classes == [0, 1, 2] and ds.task == "classification"  # labels kept as given
    assert ds.features == ["x0", "x1", "x2"]
    ds = data.from_numpy(X, np.array(["b", "a", "b", "c"]))
    np.testing.assert_array_equal(ds.y, [1, 0, 1, 2])
    assert ds.classes == ["a", "b", "c"]
    ds = data.from_numpy(X, np.array([0.5, 1.0, 2.0, 3.0]))
    assert ds.task == "regression" and ds.y.dtype == np.float32
    images = np.zeros((5, 8, 8, 3))
    assert data.from_numpy(images, np.arange(5)).X.shape == (5, 8, 8, 3)


@pytest.mark.parametrize(
    "X, y, match",
    [
        ([[1.0, np.nan], [2.0, 3.0]], [0, 1], r"NaN in X at row 0, index \(1,\)"),
        ([[1.0, 2.0], [2.0, np.inf]], [0, 1], r"infinite value in X at row 1"),
        ([[1.0], [2.0]], [0, 1, 1], r"y must have shape \(2,\)"),
        ([[1.0], [2.0]], [0, -1], r"labels must be >= 0; y\[1\] = -1"),
        ([[1.0], [2.0]], [0.0, np.nan], r"y\[1\] is nan"),
        (np.zeros((0, 3)), None, r"at least one example"),
    ],
)
def test_from_numpy_errors(X, y, match):
    with pytest.raises(DataError, match=match):
        data.from_numpy(np.asarray(X), None if y is None else np.asarray(y))


@pytest.mark.parametrize("name", data.BUILTIN_DATASETS)
def test_builtin_datasets_match_scikit_learn(name):
    datasets = pytest.importorskip("sklearn.datasets")
    bunch = getattr(datasets, f"load_{name}")()
    ds = data.load(name)
    np.testing.assert_allclose(ds.X, bunch.data.astype(np.float32))
    assert ds.features == [str(f) for f in bunch.feature_names]
    if name == "diabetes":
        assert ds.task == "regression" and ds.y.dtype == np.float32
        np.testing.assert_allclose(ds.y, bunch.target)
    else:
        assert ds.task == "classification" and ds.y.dtype == np.int64
        np.testing.assert_array_equal(ds.y, bunch.target)
        assert ds.classes == [str(c) for c in bunch.target_names]


def test_tabular_dataset_feeds_the_dataloader():
    ds = data.load("iris")
    batches = list(data.DataLoader(ds, batch_size=64, shuffle=False))
    assert [len(xb) for xb, _ in batches] == [64, 64, 22]
    np.testing.assert_array_equal(np.concatenate([xb.numpy() for xb, _ in batches]), ds.X)
    np.testing.assert_array_equal(np.concatenate([yb.numpy() for _, yb in batches]), ds.y)


# ------------------------------------------------------------------------------------------
# Images
# ------------------------------------------------------------------------------------------


@pytest.fixture
def image_root(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(0)
    root = tmp_path / "pets"
    pixels = {}
    for cls, n in (("dog", 2), ("cat", 3)):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            a = rng.integers(0, 256, size=(4, 6, 3), dtype=np.uint8)
            path = root / cls / f"{i}.png"
            Image.fromarray(a).save(path)
            pixels[str(path)] = a
    (root / "cat" / "notes.txt").write_text("not an image")
    Image.fromarray(rng.integers(0, 256, size=(4, 6), dtype=np.uint8)).save(root / "dog" / "g.png")
    pixels[str(root / "dog" / "g.png")] = None
    return root, pixels


def test_image_folder_reads_pixels_with_pillow(image_root):
    Image = pytest.importorskip("PIL.Image")
    root, pixels = image_root
    ds = ImageFolder(root)
    assert ds.classes == ["cat", "dog"] and ds.class_to_idx == {"cat": 0, "dog": 1}
    assert len(ds) == 6 and ds.targets == [0, 0, 0, 1, 1, 1]
    for i, (path, label) in enumerate(ds.samples):
        image, target = ds[i]
        assert target == label and image.dtype == np.float32 and image.shape == (4, 6, 3)
        reference = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) / 255
        np.testing.assert_allclose(image, reference, rtol=1e-6)
        assert 0.0 <= image.min() and image.max() <= 1.0
        if pixels[path] is not None:
            np.testing.assert_allclose(image * 255, pixels[path], atol=1e-3)
    grey = ImageFolder(root, mode="L", transform=lambda a: a.reshape(-1))
    assert grey[0][0].shape == (24,)
    xb, yb = next(iter(data.DataLoader(ds, batch_size=4)))
    assert xb.shape == (4, 4, 6, 3) and yb.tolist() == [0, 0, 0, 1]
    np.testing.assert_allclose(xb.numpy()[1], ds[1][0])


def test_image_folder_errors(tmp_path, image_root):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        ImageFolder(tmp_path / "missing")
    (tmp_path / "flat").mkdir()
    with pytest.raises(DataError, match="no class folders"):
        ImageFolder(tmp_path / "flat")
    root, _ = image_root
    (root / "emu").mkdir()
    with pytest.raises(DataError, match=r"emu: class folder 'emu' holds no images"):
        ImageFolder(root)
    (root / "emu" / "broken.png").write_bytes(b"not a png")
    ds = ImageFolder(root)
    index = ds.samples.index((str(root / "emu" / "broken.png"), 2))
    with pytest.raises(DataError, match=r"broken.png: cannot read the image"):
        ds[index]


# ------------------------------------------------------------------------------------------
# Missing optional packages
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "module, call",
    [
        ("pandas", lambda p: data.from_csv(p / "a.csv")),
        ("pandas", lambda p: data.from_json(p / "a.json")),
        ("PIL.Image", lambda p: ImageFolder(p)),
        ("sklearn.datasets", lambda p: data.load("iris")),
        ("sqlalchemy", lambda p: data.from_sql("t", "mysql://u@localhost/db")),
    ],
)
def test_missing_extra_says_what_to_install(tmp_path, monkeypatch, module, call):
    write(tmp_path / "a.csv", "a,b\n1,2\n")
    write(tmp_path / "a.json", '[{"a": 1, "b": 2}]')
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ImportError, match=r"pip install 'chainrule\[data\]'"):
        call(tmp_path)
