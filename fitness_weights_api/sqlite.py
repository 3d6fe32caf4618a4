"""SQLite conventions shared by the model registry and the job database.

Both are files shared by several processes: WAL mode (readers never wait), a busy timeout for writers,
one connection per operation, and ``sqlite:///`` URLs as in SQLAlchemy (``sqlite:///relative.db``,
``sqlite:////absolute/path.db``).
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["BUSY_TIMEOUT_S", "URL_PREFIX", "connect", "connection", "database_path", "schema_and_tables", "set_wal"]

BUSY_TIMEOUT_S = 30.0
"""How long a writer waits for another process's write lock."""

URL_PREFIX = "sqlite:///"


def database_path(database_url: Any) -> Path:
    """The absolute file path of a ``sqlite:///`` URL.

    Raises:
        ValueError: Not a ``sqlite:///`` URL, or an in-memory database or a query string (named
            ``database_url``).
    """
    if not isinstance(database_url, str) or not database_url.startswith(URL_PREFIX):
        raise ValueError(
            f"database_url {database_url!r} is not supported: use 'sqlite:///<path relative to the working "
            "directory>' or 'sqlite:////<absolute path>'"
        )
    path = database_url[len(URL_PREFIX) :]
    if not path or path == ":memory:" or "?" in path or "\x00" in path:
        raise ValueError(
            f"database_url {database_url!r} must name a database file (no in-memory database, no query string): "
            "the database is shared between processes"
        )
    return Path(path).absolute()


def set_wal(conn: sqlite3.Connection) -> str:
    """Switch to WAL and return the journal mode; a database another process is creating may refuse at once."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            return conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def schema_and_tables(
    conn: sqlite3.Connection, version: int, database_url: Any, error: type[Exception]
) -> tuple[int, set[str]]:
    """The database's schema version and table names; a version newer than ``version`` raises ``error``."""
    (schema,) = conn.execute("PRAGMA user_version").fetchone()
    if schema > version:
        raise error(
            f"database_url {database_url!r}: schema version {schema} is newer than this code's "
            f"({version}); upgrade fitness_weights_api"
        )
    tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return schema, tables


def connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit) that waits up to the busy timeout for locks."""
    return sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)


@contextlib.contextmanager
def connection(path: Path, error: type[Exception], label: str, *pragmas: str) -> Iterator[sqlite3.Connection]:
    """A new :func:`connect` connection with ``pragmas`` run on it, closed on exit.

    SQLite errors become ``error("<label> '<path>': <message>")``.
    """
    try:
        conn = connect(path)
        try:
            for pragma in pragmas:
                conn.execute(pragma)
            yield conn
        finally:
            conn.close()
    except sqlite3.Error as err:
        raise error(f"{label} {str(path)!r}: {err}") from err
