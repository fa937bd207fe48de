"""Reading tables and queries from SQL databases, read-only.

What a user types never runs as anything but a read:

- a table name is an identifier, quoted by the database's own rules (SQLAlchemy's
  ``quote_identifier`` for its dialects, standard double quotes otherwise), never SQL text;
- a query must be one ``SELECT`` / ``WITH`` / ``VALUES`` / ``TABLE`` statement: a second
  statement is refused before anything is sent, under both the standard quoting rules and
  MySQL's backslash ones;
- connections are read-only where the driver allows: SQLite files are opened with
  ``mode=ro`` (a missing file is an error, never created) and an authorizer that allows only
  reads (no ``ATTACH``, no ``PRAGMA``, no writes); PostgreSQL sessions start with
  ``default_transaction_read_only=on``, psycopg 3 sends the query as a prepared statement (the
  server accepts one statement only), and the transaction is rolled back, never committed.

URLs: ``load("sqlite:///data.db?table=NAME")`` or ``?query=SELECT ...``. Everything after
``query=`` is the SQL exactly as typed (``+``, ``&``, ``#`` and ``%`` included; nothing is
decoded), so ``query=`` must be the URL's last option. A table name is percent-decoded
(``?table=my%20table``; ``+`` stays ``+``) and may carry a schema (``?table=sales.orders``, or
``?schema=sales&table=orders`` for names containing a dot).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import unquote

from chainrule.data.sources import (
    DataError,
    Missing,
    TabularDataset,
    Task,
    _check_file,
    _require,
    _table_to_dataset,
    hide_password,
)

__all__ = ["from_sql", "split_url_options", "check_query"]

_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_BARE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
_QUERY_START = re.compile(r"^[\s(]*(select|with|values|table)\b", re.IGNORECASE)
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")
_OURS = ("table", "query", "schema")


# --------------------------------------------------------------------------------------------
# What the user asked for: one query, or one table
# --------------------------------------------------------------------------------------------


def _statements(sql: str, mysql: bool) -> list[str]:
    """Splits SQL at top-level semicolons, skipping strings, quoted names and comments.

    ``mysql=False`` follows the SQL standard and PostgreSQL (``''`` escapes, ``E'...'``
    backslash strings, nested ``/* */``, ``$tag$`` quotes); ``mysql=True`` follows MySQL
    (backslash escapes in every string, ``#`` comments, ``--`` only before a space).
    """
    out, start, i, n = [], 0, 0, len(sql)
    while i < n:
        c = sql[i]
        if c in "'\"`":
            prev = sql[i - 1] if i else ""
            before = sql[i - 2] if i > 1 else ""
            backslash = c != "`" and (
                mysql or (c == "'" and prev in "eE" and not (before.isalnum() or before == "_"))
            )
            j = i + 1
            while j < n:
                if backslash and sql[j] == "\\":
                    j += 2
                    continue
                if sql[j] == c:
                    if j + 1 < n and sql[j + 1] == c:
                        j += 2
                        continue
                    break
                j += 1
            i = j + 1
            continue
        if c == "-" and sql.startswith("--", i) and (not mysql or sql[i + 2 : i + 3].isspace()):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
            continue
        if c == "#" and mysql:
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
            continue
        if c == "/" and sql.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if sql.startswith("*/", j):
                    depth -= 1
                    j += 2
                elif not mysql and sql.startswith("/*", j):
                    depth += 1
                    j += 2
                else:
                    j += 1
            i = j
            continue
        if c == "$" and not mysql and not (i and (sql[i - 1].isalnum() or sql[i - 1] == "_")):
            m = _DOLLAR_TAG.match(sql, i)
            if m:
                end = sql.find(m.group(), m.end())
                i = n if end < 0 else end + len(m.group())
                continue
        if c == ";":
            out.append(sql[start:i])
            start = i + 1
        i += 1
    out.append(sql[start:])
    return [s for s in out if _strip_comments(s).strip()]


def _strip_comments(sql: str) -> str:
    """The text with leading whitespace and comments removed."""
    while True:
        s = sql.lstrip()
        if s.startswith("--"):
            end = s.find("\n")
            sql = "" if end < 0 else s[end + 1 :]
        elif s.startswith("/*"):
            end = s.find("*/")
            sql = "" if end < 0 else s[end + 2 :]
        else:
            return s


def check_query(sql: str) -> str:
    """Checks that ``sql`` is one read-only query and returns it without a final semicolon.

    Args:
        sql: the query text.

    Returns:
        The query, stripped.

    Raises:
        DataError: for an empty text, more than one statement, or a statement that is not
            a ``SELECT``, ``WITH``, ``VALUES`` or ``TABLE`` query.
    """
    if not isinstance(sql, str) or not sql.strip():
        raise DataError(f"the SQL query is empty: {sql!r}")
    for mysql in (False, True):
        if len(_statements(sql, mysql)) > 1:
            raise DataError(
                "only one SQL statement can be run, and only a query: found more than one "
                f"statement in {sql!r}"
            )
    q = sql.strip()
    while q.endswith(";"):
        q = q[:-1].rstrip()
    if not _QUERY_START.match(_strip_comments(q)):
        first = (_strip_comments(q).split() or ["?"])[0]
        raise DataError(
            f"only a query (SELECT, WITH, VALUES or TABLE) can be read, not {first.upper()}: "
            f"{sql!r}"
        )
    return q


def _standard_quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _table_name(table: str, schema: str | None) -> tuple[str | None, str]:
    """(schema, table) from ``table`` (``"s.t"`` splits when both parts are plain names)."""
    if not isinstance(table, str) or not table:
        raise DataError(f"a table name must be a non-empty string, got {table!r}")
    for part in (table, schema or ""):
        if "\x00" in part:
            raise DataError(f"a table name cannot contain a NUL character: {part!r}")
    if schema is None and table.count(".") == 1:
        s, t = table.split(".")
        if _PLAIN.match(s) and _PLAIN.match(t):
            return s, t
    return schema, table


# --------------------------------------------------------------------------------------------
# Read-only connections
# --------------------------------------------------------------------------------------------


def _read_only_authorizer() -> Callable[..., int]:
    allowed = {
        getattr(sqlite3, name)
        for name in ("SQLITE_SELECT", "SQLITE_READ", "SQLITE_FUNCTION", "SQLITE_RECURSIVE")
        if hasattr(sqlite3, name)
    }

    def authorize(action: int, *args: Any) -> int:
        return sqlite3.SQLITE_OK if action in allowed else sqlite3.SQLITE_DENY

    return authorize


@contextlib.contextmanager
def _sqlite_read_only(conn: sqlite3.Connection) -> Iterator[None]:
    """Allows only reads on ``conn`` while the body runs (no ATTACH, PRAGMA or writes)."""
    conn.set_authorizer(_read_only_authorizer())
    try:
        yield
    finally:
        conn.set_authorizer(None)


def _connect_sqlite_file(path: str | os.PathLike) -> sqlite3.Connection:
    # An absent file would be created empty by sqlite3; say it is missing instead.
    p = _check_file(path)
    uri = "file:" + p.resolve().as_posix().replace("%", "%25").replace("?", "%3f")
    return sqlite3.connect(uri.replace("#", "%23") + "?mode=ro", uri=True)


def _sqlite_url_path(url: str) -> str | None:
    """The file of any SQLite URL form (``sqlite:``/``sqlite+driver:``; None: in memory)."""
    rest = url.split(":", 1)[1]
    if not rest.startswith("//"):
        raise DataError(
            f"{url}: a SQLite URL looks like sqlite:///relative.db or sqlite:////abs.db"
        )
    rest = rest[2:]
    if rest == "" or rest.startswith("?"):
        return None  # sqlite:// is SQLAlchemy's in-memory database
    if not rest.startswith("/"):
        raise DataError(
            f"{url}: a SQLite URL has no host: write sqlite:///relative.db or sqlite:////abs.db"
        )
    path = rest[1:].split("?", 1)[0]
    if path.startswith("file:"):  # SQLAlchemy's `?uri=true` form: sqlite:///file:name.db
        path = path[len("file:") :]
    path = unquote(path)
    return None if path in ("", ":memory:") else path


def _is_sqlite_url(url: str) -> bool:
    scheme = url.split("://", 1)[0].lower()
    return scheme == "sqlite" or scheme.startswith("sqlite+")


def _sqlalchemy_url(url: str) -> str:
    """Picks a PostgreSQL driver that is installed: SQLAlchemy's default is psycopg2."""
    scheme, _, rest = url.partition("://")
    if scheme in ("postgresql", "postgres"):
        try:
            importlib.import_module("psycopg2")
        except ImportError:
            _require("psycopg", "reading from PostgreSQL")
            return "postgresql+psycopg://" + rest
        return "postgresql://" + rest
    return url


class _Reader:
    """One open DB-API connection, how to quote names on it, and how to run a read on it."""

    def __init__(self, conn: Any, where: str, quote: Callable[[str], str], kind: str) -> None:
        self.conn, self.where, self.quote, self.kind = conn, where, quote, kind

    def statement(self, query: str | None, table: str | None, schema: str | None) -> str:
        if table is None:
            return query  # already checked
        schema, name = _table_name(table, schema)
        quoted = self.quote(name) if schema is None else f"{self.quote(schema)}.{self.quote(name)}"
        return "SELECT * FROM " + quoted

    def fetch(self, statement: str) -> tuple[list[str], list[tuple]]:
        cursor = self.conn.cursor()
        try:
            try:
                if self.kind == "psycopg":
                    # A prepared statement: the server itself refuses a second statement.
                    cursor.execute(statement, prepare=True)
                elif self.kind == "sqlite":
                    with _sqlite_read_only(self.conn):
                        cursor.execute(statement)
                        return _result(cursor, statement, self.where)
                else:
                    cursor.execute(statement)
            except Exception as e:
                # Every driver has its own classes, all derived from a DB-API `DatabaseError`.
                if any(c.__name__ == "DatabaseError" for c in type(e).__mro__):
                    text = str(e).strip()
                    first = text.splitlines()[0] if text else type(e).__name__
                    if "not authorized" in first or "read-only" in first:
                        first += " (chainrule opens databases read-only: only queries run)"
                    raise DataError(
                        f"{self.where}: query failed: {first} (query: {statement})"
                    ) from None
                raise
            return _result(cursor, statement, self.where)
        finally:
            cursor.close()


def _result(cursor: Any, statement: str, where: str) -> tuple[list[str], list[tuple]]:
    if cursor.description is None:
        raise DataError(f"{where}: the query returned no result set: {statement}")
    columns = [d[0] for d in cursor.description]
    return columns, [tuple(r) for r in cursor.fetchall()]


def _driver_kind(conn: Any) -> str:
    module = type(conn).__module__.split(".")[0]
    if isinstance(conn, sqlite3.Connection):
        return "sqlite"
    return module


def _dialect_quote(dialect: Any) -> Callable[[str], str]:
    return dialect.identifier_preparer.quote_identifier


def _rollback(conn: Any) -> None:
    with contextlib.suppress(Exception):
        conn.rollback()


@contextlib.contextmanager
def _open(connection: Any) -> Iterator[_Reader]:
    """A read-only `_Reader` on whatever the user gave as a connection."""
    if isinstance(connection, os.PathLike) or (
        isinstance(connection, str) and "://" not in connection
    ):
        conn = _connect_sqlite_file(connection)
        try:
            yield _Reader(conn, str(connection), _standard_quote, "sqlite")
        finally:
            conn.close()
        return
    if isinstance(connection, str):
        shown = hide_password(connection)
        if _is_sqlite_url(connection):
            path = _sqlite_url_path(connection)
            conn = sqlite3.connect(":memory:") if path is None else _connect_sqlite_file(path)
            try:
                yield _Reader(conn, shown, _standard_quote, "sqlite")
            finally:
                conn.close()
            return
        sa = _require("sqlalchemy", "from_sql with a database URL")
        url = _sqlalchemy_url(connection)
        connect_args = {}
        if url.split("://", 1)[0].split("+")[0] in ("postgresql", "postgres"):
            connect_args["options"] = "-c default_transaction_read_only=on"
        try:
            engine = sa.create_engine(url, connect_args=connect_args)
        except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as e:
            raise DataError(f"{shown}: not a database URL SQLAlchemy understands: {e}") from None
        try:
            with _engine_reader(sa, engine, shown) as reader:
                yield reader
        finally:
            engine.dispose()
        return
    if hasattr(connection, "exec_driver_sql"):  # a SQLAlchemy Connection: the user's own
        raw = connection.connection.dbapi_connection
        yield _Reader(raw, "connection", _dialect_quote(connection.dialect), _driver_kind(raw))
        return
    if hasattr(connection, "connect") and hasattr(connection, "dialect"):  # an Engine
        sa = _require("sqlalchemy", "from_sql with a SQLAlchemy engine")
        shown = connection.url.render_as_string(hide_password=True)
        with _engine_reader(sa, connection, shown) as reader:
            yield reader
        return
    if hasattr(connection, "cursor"):  # a DB-API connection: the user's own
        kind = _driver_kind(connection)
        quote = (lambda n: "`" + n.replace("`", "``") + "`") if "mysql" in kind else None
        yield _Reader(connection, f"{kind} connection", quote or _standard_quote, kind)
        return
    raise TypeError(
        "connection must be a database URL (e.g. 'sqlite:///data.db', "
        "'postgresql://user@host/db'), a SQLite file path, a DB-API connection or a "
        f"SQLAlchemy engine/connection; got {type(connection).__name__}"
    )


@contextlib.contextmanager
def _engine_reader(sa: Any, engine: Any, shown: str) -> Iterator[_Reader]:
    """A connection of our own from ``engine``, read-only, rolled back at the end."""
    try:
        conn = engine.connect()
    except sa.exc.DBAPIError as e:
        reason = str(e.orig).strip().splitlines()[0] if e.orig is not None else str(e)
        raise DataError(f"{shown}: cannot connect: {reason}") from None
    with conn:
        raw = conn.connection.dbapi_connection
        kind = _driver_kind(raw)
        name = engine.dialect.name
        if name == "postgresql":
            cursor = raw.cursor()
            cursor.execute("SET TRANSACTION READ ONLY")
            cursor.close()
        elif name in ("mysql", "mariadb"):
            cursor = raw.cursor()
            cursor.execute("START TRANSACTION READ ONLY")
            cursor.close()
        try:
            yield _Reader(raw, shown, _dialect_quote(engine.dialect), kind)
        finally:
            _rollback(raw)


# --------------------------------------------------------------------------------------------
# URLs and the public function
# --------------------------------------------------------------------------------------------


def split_url_options(spec: str) -> tuple[str, dict[str, str]]:
    """Splits ``URL?table=T`` / ``URL?...&query=SQL`` into (the driver's URL, our options).

    ``query=`` takes the rest of the URL verbatim (nothing decoded, ``&``/``+``/``#``/``%``
    kept). ``table=`` and ``schema=`` are percent-decoded (``+`` is kept as ``+``). Other
    options stay in the URL for the driver.

    Args:
        spec: the URL as typed.

    Returns:
        (URL without our options, {"table"/"query"/"schema": value}).
    """
    base, sep, options = spec.partition("?")
    if not sep:
        return spec, {}
    ours: dict[str, str] = {}
    m = re.search(r"(?:^|&)query=", options)
    if m:
        ours["query"] = options[m.end() :]
        options = options[: m.start()]
    theirs = []
    for item in options.split("&") if options else []:
        key, _, value = item.partition("=")
        if key in _OURS:
            if key in ours:
                raise DataError(f"{hide_password(spec)}: ?{key}= is given twice")
            ours[key] = unquote(value)
        else:
            theirs.append(item)
    return (base + "?" + "&".join(theirs) if theirs else base), ours


def from_sql(
    query: str | None = None,
    connection: Any = None,
    target: str | int | None = -1,
    features: Sequence[str] | None = None,
    task: Task = "auto",
    *,
    table: str | None = None,
    schema: str | None = None,
    missing: Missing = "error",
) -> TabularDataset:
    """Runs a SQL query (or reads a whole table) into a dataset, read-only.

    Args:
        query: one ``SELECT`` (or ``WITH``/``VALUES``/``TABLE``) query, or a bare table name
            (letters, digits and ``_``, optionally ``schema.table``) to read entirely. A
            second statement, or anything that is not a query, is refused.
        connection: where to run it: a SQLAlchemy URL (``"postgresql://user@host:5432/db"``,
            ``"sqlite:///data.db"``), a SQLite file path, a DB-API connection (``sqlite3``,
            ``psycopg``, ...) or a SQLAlchemy engine/connection. SQLite needs nothing installed
            beyond pandas; other databases need SQLAlchemy and a driver (psycopg for
            PostgreSQL, part of ``chainrule[data]``).
        target: the target column's name or position (default -1: the last), or None.
        features: the feature columns (default: every column except the target).
        task: "classification", "regression" or "auto" (see ``from_csv``).
        table: a table to read entirely, instead of ``query``: any name (spaces, quotes and
            dots included), quoted by the database's rules.
        schema: the table's schema, with ``table``.
        missing: what to do with empty cells (NULL): "error" (default), "drop" the row, or
            fill a feature with its column's "mean" (see ``from_csv``).

    Returns:
        A ``TabularDataset``.

    Raises:
        DataError: for a refused or failed query, a missing SQLite file, an empty result, a
            missing target column, NULLs or non-numeric features (naming the column and the
            1-based result row).
    """
    pd = _require("pandas", "from_sql")
    if connection is None:
        raise TypeError("from_sql needs a connection (a database URL, file, or connection)")
    if (query is None) == (table is None):
        raise TypeError("from_sql takes either a query or table=, not both or neither")
    if query is not None and _BARE.match(query.strip()):  # a bare table name
        schema, table = _table_name(query.strip(), schema)
        query = None
    if query is not None:
        query = check_query(query)
    with _open(connection) as reader:
        statement = reader.statement(query, table, schema)
        columns, rows = reader.fetch(statement)
        shown = reader.where
    where = f"{shown} [{statement}]"
    frame = pd.DataFrame.from_records(rows, columns=columns, coerce_float=True)
    return _table_to_dataset(
        frame, target, features, task, where, lambda i: f"row {i + 1}", missing=missing
    )


def read_url(
    spec: str,
    target: str | int | None,
    features: Sequence[str] | None,
    task: Task,
    missing: Missing,
) -> TabularDataset:
    """Reads ``URL?table=...`` or ``URL?query=...`` (see the module's docstring).

    Args:
        spec: the URL with our options.
        target: the target column.
        features: the feature columns.
        task: the task.
        missing: the missing-value policy.

    Returns:
        A ``TabularDataset``.
    """
    url, options = split_url_options(spec)
    if "query" in options and "table" in options:
        raise DataError(f"{hide_password(spec)}: give ?table= or ?query=, not both")
    if options.get("query"):
        return from_sql(options["query"], url, target, features, task, missing=missing)
    if options.get("table"):
        return from_sql(
            None,
            url,
            target,
            features,
            task,
            table=options["table"],
            schema=options.get("schema") or None,
            missing=missing,
        )
    raise DataError(f"{hide_password(spec)}: say what to read with ?table=NAME or ?query=SELECT...")
