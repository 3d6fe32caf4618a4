"""Storage shared by the model registry, the job database and the token store: SQLite files and atomic files.

Each store is a SQLite file shared by several processes (API workers, job processes, the CLI):

* **WAL mode**, so readers never wait for the writer, and a **busy timeout** for writers;
* **one connection per operation** (:meth:`Database.connect`), and a kept read connection per thread for the
  reads that run on every request (:meth:`Database.reader`);
* **explicit transactions**: :meth:`Database.transaction` takes ``BEGIN IMMEDIATE``, the write lock of every
  process, and commits or rolls back;
* **a schema version** in ``PRAGMA user_version``; :meth:`Database.initialize` refuses a newer one and a file
  that holds another store's tables, and creates or upgrades the schema under the write lock;
* ``sqlite:///`` URLs as in SQLAlchemy (``sqlite:///relative.db``, ``sqlite:////absolute/path.db``).

Files that must appear whole or not at all (models, checkpoints, reports) are written by
:func:`write_atomically`: a temporary file beside the target, fsynced, renamed over it, and the folder fsynced.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from fitness_weights_env.errors import FieldError

__all__ = [
    "BUSY_TIMEOUT_S",
    "PARTIAL_PREFIX",
    "URL_PREFIX",
    "Database",
    "database_path",
    "fsync_dir",
    "write_atomically",
]

BUSY_TIMEOUT_S = 30.0
"""How long a writer waits for another process's write lock."""

URL_PREFIX = "sqlite:///"

PARTIAL_PREFIX = ".partial-"
"""Prefix of a file that :func:`write_atomically` is writing (renamed to its name when complete)."""


def database_path(database_url: Any) -> Path:
    """The absolute file path of a ``sqlite:///`` URL.

    Raises:
        FieldError: Not a ``sqlite:///`` URL, or an in-memory database or a query string (``database_url``).
    """
    if not isinstance(database_url, str) or not database_url.startswith(URL_PREFIX):
        reason = "use 'sqlite:///<path relative to the working directory>' or 'sqlite:////<absolute path>'"
        raise FieldError("database_url", reason, database_url)
    path = database_url[len(URL_PREFIX) :]
    if not path or path == ":memory:" or "?" in path or "\x00" in path:
        reason = "must name a database file (no in-memory database, no query string): it is shared by processes"
        raise FieldError("database_url", reason, database_url)
    return Path(path).absolute()


class Database:
    """One SQLite file, shared by processes; its errors become ``error``.

    Args:
        path: The SQLite file.
        error: The exception class SQLite errors become (``error("<label> '<path>': <message>")``).
        label: What the file is, in messages (``"registry database"``).
        name: How the file was named by the user (its URL), in messages about its content.
        kind: What a file of this store is, in the message refusing another store's file (``label`` by default).
        pragmas: Run on every new connection (``"PRAGMA synchronous = FULL"`` by default).
    """

    def __init__(
        self,
        path: Path,
        error: type[Exception],
        label: str,
        name: str | None = None,
        kind: str | None = None,
        pragmas: tuple[str, ...] = ("PRAGMA synchronous = FULL",),
    ) -> None:
        self.path = path
        self.error = error
        self.label = label
        self.name = str(path) if name is None else name
        self.kind = label if kind is None else kind
        self.pragmas = pragmas
        self._readers = threading.local()

    @contextlib.contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A new connection in autocommit mode (transactions are explicit), closed on exit."""
        try:
            conn = _connect(self.path)
            try:
                for pragma in self.pragmas:
                    conn.execute(pragma)
                yield conn
            finally:
                conn.close()
        except sqlite3.Error as err:
            raise self.error(f"{self.label} {str(self.path)!r}: {err}") from err

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A connection inside ``BEGIN IMMEDIATE`` (the write lock of every process): committed, or rolled back."""
        with self.connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.rollback()
                raise

    def read(self, sql: str, parameters: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
        """The first row of ``sql``, read on this thread's kept connection (:meth:`reader`), or ``None``.

        Each read is its own transaction (autocommit), so it sees the latest commit. A failed read drops the
        connection, and the next read opens a new one.
        """
        try:
            return self.reader().execute(sql, parameters).fetchone()
        except sqlite3.Error as err:
            self._readers.connection = None
            raise self.error(f"{self.label} {str(self.path)!r}: {err}") from err

    def reader(self) -> sqlite3.Connection:
        """This thread's kept read connection: opening one costs more than a small indexed read."""
        conn = getattr(self._readers, "connection", None)
        if conn is None:
            conn = _connect(self.path)
            self._readers.connection = conn
        return conn

    def initialize(
        self,
        schema_version: int,
        tables: set[str],
        setup: Callable[[sqlite3.Connection, int], None],
        required: str | None = None,
    ) -> None:
        """Check the file, switch it to WAL, and run ``setup(conn, schema)`` under the write lock.

        ``setup`` gets the schema version found (0 for a new file): it creates or upgrades the tables (and may do
        other work that needs the write lock); then ``user_version`` is set to ``schema_version``.

        Args:
            schema_version: This code's schema version.
            tables: Every table the store may hold (``sqlite_sequence`` included where it uses AUTOINCREMENT).
            setup: Creates or upgrades the schema, inside the transaction.
            required: A table that a file of a known schema must hold.

        Raises:
            error: A newer schema, a file holding other tables, a file that cannot use WAL mode, or a failed
                SQLite operation.
        """
        with self.connect() as conn:
            self._check_schema(conn, schema_version, tables, required)  # before WAL: leave a foreign file alone
            mode = _set_wal(conn)
            if mode.lower() != "wal":
                raise self.error(
                    f"{self.name!r}: SQLite cannot use WAL mode there (journal_mode {mode!r}); use a file on a "
                    "local file system"
                )
        with self.transaction() as conn:
            schema = self._check_schema(conn, schema_version, tables, required)  # another process may have won
            setup(conn, schema)
            if schema != schema_version:
                conn.execute(f"PRAGMA user_version = {schema_version}")

    def _check_schema(
        self, conn: sqlite3.Connection, schema_version: int, tables: set[str], required: str | None
    ) -> int:
        (schema,) = conn.execute("PRAGMA user_version").fetchone()
        if schema > schema_version:
            raise self.error(
                f"{self.name!r}: schema version {schema} is newer than this code's ({schema_version}); upgrade "
                "fitness_weights_api"
            )
        found = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if found - tables or (schema > 0 and required is not None and required not in found):
            raise self.error(f"{self.name!r} is not a {self.kind}: it holds the tables {sorted(found)}")
        return schema


def _connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode that waits up to the busy timeout for locks."""
    return sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)


def _set_wal(conn: sqlite3.Connection) -> str:
    """Switch to WAL and return the journal mode; a database another process is creating may refuse at once."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            return conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def fsync_dir(directory: Path) -> None:
    """Make a rename or a new file in ``directory`` durable (POSIX; a no-op elsewhere)."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, write: Callable[[Path], Any]) -> None:
    """Make ``path`` by ``write(temporary path)``: whole or not at all, even if the process dies.

    The temporary file (``.partial-<random><suffix>`` beside ``path``) is fsynced and renamed to ``path``
    (``os.replace``, atomic), then the folder is fsynced. On any error the temporary file is removed and
    ``path`` is as it was.
    """
    temp = path.parent / f"{PARTIAL_PREFIX}{uuid.uuid4().hex}{path.suffix}"
    try:
        write(temp)
        with open(temp, "rb") as file:
            os.fsync(file.fileno())
        os.replace(temp, path)
        fsync_dir(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
