"""SQL sources are read-only: names are quoted, queries arrive verbatim, one query only.

The hardening issue's items 1 and 2 on SQLite (the PostgreSQL cases are in test_sources.py,
next to its server fixture).
"""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from chainrule import data
from chainrule.data import DataError
from chainrule.data.sql import check_query, split_url_options

pytest.importorskip("pandas")


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "s.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (a REAL, b REAL, s TEXT, y INTEGER)")
        conn.executemany(
            "INSERT INTO t VALUES (?, ?, ?, ?)",
            [(1.0, 10.0, "a&b", 0), (2.0, 20.0, "#1", 1), (3.0, 30.0, "x+y", 0)],
        )
        conn.execute("CREATE TABLE victim (v INTEGER)")
        conn.execute("INSERT INTO victim VALUES (7)")
        conn.execute('CREATE TABLE "my table" (x REAL, y INTEGER)')
        conn.execute('CREATE TABLE "we""ird\'s" (x REAL, y INTEGER)')
        for name in ('"my table"', '"we""ird\'s"'):
            conn.execute(f"INSERT INTO {name} VALUES (0.5, 1), (1.5, 0)")
    conn.close()
    return path


def _tables(path):
    conn = sqlite3.connect(path)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()


@pytest.mark.parametrize("scheme", ["sqlite", "sqlite+pysqlite"])
def test_table_option_is_an_identifier_never_sql(db, scheme):
    before = _tables(db)
    for table in ("DROP TABLE victim", "t; DROP TABLE victim", 'victim"; DROP TABLE victim; --'):
        with pytest.raises(DataError, match="no such table"):
            data.load(f"{scheme}:///{db}?table={table}")
    assert _tables(db) == before
    with pytest.raises(DataError, match="no such table"):
        data.from_sql(None, str(db), table="DROP TABLE victim")
    assert _tables(db) == before


@pytest.mark.parametrize("name", ["my table", "we\"ird's"])
def test_tables_with_spaces_and_quotes_can_be_read(db, name):
    ds = data.from_sql(None, db, table=name)
    np.testing.assert_allclose(ds.X[:, 0], [0.5, 1.5])
    url_name = name.replace(" ", "%20")
    ds = data.load(f"sqlite:///{db}?table={url_name}")
    assert ds.features == ["x"] and len(ds) == 2


def test_query_arrives_byte_for_byte(db):
    # `+` is not a space: the column is a+b (11, 22, 33), not `a` renamed to `b`.
    ds = data.load(f"sqlite:///{db}?query=SELECT a+b, y FROM t ORDER BY a")
    assert ds.features == ["a+b"]
    np.testing.assert_allclose(ds.X[:, 0], [11, 22, 33])
    # `&`, `#` and `%` inside the query stay where they are.
    ds = data.load(f"sqlite:///{db}?query=SELECT a, y FROM t WHERE s = 'a&b' OR s = '#1'")
    np.testing.assert_allclose(sorted(ds.X[:, 0]), [1, 2])
    ds = data.load(f"sqlite:///{db}?query=SELECT a, y FROM t WHERE s LIKE 'x%2By' OR s LIKE '%+%'")
    np.testing.assert_allclose(ds.X[:, 0], [3])


def test_url_options_are_split_without_decoding_the_query():
    url, ours = split_url_options("postgresql://u@h/db?sslmode=require&query=SELECT 1+1 & 2#x")
    assert url == "postgresql://u@h/db?sslmode=require"
    assert ours == {"query": "SELECT 1+1 & 2#x"}
    url, ours = split_url_options("sqlite:///d.db?table=a%20b+c&schema=main")
    assert url == "sqlite:///d.db" and ours == {"table": "a b+c", "schema": "main"}
    with pytest.raises(DataError, match="given twice"):
        split_url_options("sqlite:///d.db?table=a&table=b")


@pytest.mark.parametrize(
    "query",
    [
        "SELECT 1; DROP TABLE victim",
        "SELECT * FROM t;DROP TABLE victim;",
        "COMMIT; DROP TABLE victim; SELECT * FROM t",
        # PostgreSQL E-strings: \\' is an escaped quote, so the ; after '' is outside
        "SELECT E'\\''; DROP TABLE victim; --'",
        # MySQL: --x is not a comment, # is; a backslash escapes a quote in any string
        "SELECT 1 --x; DROP TABLE victim",
        "SELECT '\\''; DROP TABLE victim; -- '",
        # MySQL does not nest comments
        "SELECT 1 /* /* */ ; DROP TABLE victim; /* */",
    ],
)
def test_a_second_statement_is_refused(db, query):
    with pytest.raises(DataError, match="only one SQL statement"):
        check_query(query)
    with pytest.raises(DataError, match="only one SQL statement"):
        data.from_sql(query, db)
    assert "victim" in _tables(db)


@pytest.mark.parametrize(
    "query",
    [
        "SELECT ';' AS s, a, y FROM t;",
        "SELECT $$it's$$ AS s",
        "SELECT 'it''s; fine'",
        "-- a comment; with a semicolon\nSELECT a FROM t",
        "/* a; b */ SELECT a FROM t",
        "WITH q AS (SELECT a, y FROM t) SELECT * FROM q",
        "(SELECT a FROM t)",
        "VALUES (1, 2)",
    ],
)
def test_one_query_passes_the_check(query):
    assert check_query(query) == query.strip().rstrip(";").rstrip()


@pytest.mark.parametrize(
    "query", ["DROP TABLE victim", "ATTACH DATABASE 'x.db' AS x", "PRAGMA writable_schema=1"]
)
def test_only_queries_are_run(db, query):
    with pytest.raises(DataError, match="only a query"):
        data.load(f"sqlite:///{db}?query={query}")
    assert "victim" in _tables(db)


def test_sqlite_connection_allows_reads_only(db, tmp_path):
    """Below the query check, SQLite's authorizer refuses ATTACH and writes on our connection."""
    from chainrule.data import sql

    attached = tmp_path / "attached.db"
    with sql._open(f"sqlite:///{db}") as reader:
        for statement in (
            f"ATTACH DATABASE '{attached}' AS x",
            "DELETE FROM victim",
            "INSERT INTO victim VALUES (1)",
        ):
            with pytest.raises(DataError, match="not authorized.*read-only"):
                reader.fetch(statement)
        assert reader.fetch("SELECT v FROM victim") == (["v"], [(7,)])
    assert not attached.exists()
    # a user's own sqlite3 connection gets the authorizer for our query only
    conn = sqlite3.connect(db)
    ds = data.from_sql("SELECT a, y FROM t", conn)
    assert len(ds) == 3
    conn.execute("INSERT INTO victim VALUES (8)")  # their connection is theirs again
    conn.rollback()
    conn.close()


@pytest.mark.parametrize(
    "form",
    [
        "sqlite:///{p}?table=t",
        "sqlite+pysqlite:///{p}?table=t",
        "sqlite:///file:{p}?uri=true&table=t",
        "sqlite:///{p}?mode=rwc&table=t",
    ],
)
def test_a_missing_sqlite_file_is_an_error_and_never_created(tmp_path, form):
    missing = tmp_path / "missing.db"
    with pytest.raises(FileNotFoundError, match="no such file"):
        data.load(form.format(p=missing))
    assert not missing.exists()
    with pytest.raises(FileNotFoundError):
        data.from_sql("t", missing)
    assert not missing.exists()


def test_in_memory_sqlite_url_reads_nothing():
    with pytest.raises(DataError, match="no such table"):
        data.load("sqlite://?table=t")


def test_table_and_query_together_or_neither(db):
    with pytest.raises(DataError, match="not both"):
        data.load(f"sqlite:///{db}?table=t&query=SELECT 1")
    with pytest.raises(TypeError, match="either a query or table="):
        data.from_sql("SELECT 1", db, table="t")
    with pytest.raises(DataError, match=r"\?table=NAME or \?query="):
        data.load(f"sqlite:///{db}?other=1")
