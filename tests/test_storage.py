"""The storage module the registry, the job database and the token store share."""

from __future__ import annotations

import sqlite3

import pytest

from fitness_weights_api.storage import PARTIAL_PREFIX, Database, database_path, write_atomically
from fitness_weights_env.errors import FieldError


class StoreError(Exception):
    pass


def _setup(conn: sqlite3.Connection, schema: int) -> None:
    if schema == 0:
        conn.execute("CREATE TABLE items (name TEXT)")


def make_database(path) -> Database:
    database = Database(path, StoreError, "item store", name=f"sqlite:///{path}")
    database.initialize(1, {"items"}, _setup, required="items")
    return database


def test_transactions_commit_or_roll_back_whole(tmp_path):
    database = make_database(tmp_path / "items.sqlite")
    with database.transaction() as conn:
        conn.execute("INSERT INTO items VALUES ('kept')")
    with pytest.raises(ZeroDivisionError), database.transaction() as conn:
        conn.execute("INSERT INTO items VALUES ('lost')")
        _ = 1 / 0
    with database.connect() as conn:
        assert conn.execute("SELECT name FROM items").fetchall() == [("kept",)]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert database.read("SELECT count(*) FROM items") == (1,)
    make_database(tmp_path / "items.sqlite")  # opening it again keeps it


def test_foreign_newer_and_broken_files_are_refused(tmp_path):
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
    with pytest.raises(StoreError, match=r"is not a item store: it holds the tables \['users'\]"):
        make_database(other)
    newer = tmp_path / "newer.sqlite"
    with sqlite3.connect(newer) as conn:
        conn.execute("PRAGMA user_version = 7")
    with pytest.raises(StoreError, match=r"schema version 7 is newer than this code's \(1\)"):
        make_database(newer)
    database = make_database(tmp_path / "items.sqlite")
    with pytest.raises(StoreError, match=r"^item store '.*items.sqlite': no such table: missing"):
        database.read("SELECT * FROM missing")
    assert database.read("SELECT count(*) FROM items") == (0,)  # a fresh reader after the failure


@pytest.mark.parametrize("url", ["postgresql://x/y", "sqlite:///:memory:", "sqlite:///a.db?mode=ro", "", None])
def test_database_urls_are_sqlite_files(url):
    with pytest.raises(FieldError) as raised:
        database_path(url)
    assert raised.value.field == "database_url"


def test_atomic_writes_are_whole_or_absent(tmp_path):
    target = tmp_path / "model.zip"
    write_atomically(target, lambda temp: temp.write_bytes(b"first"))
    assert target.read_bytes() == b"first"

    def fails(temp):
        temp.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(target, fails)
    assert target.read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["model.zip"]  # no .partial- file left
    assert not any(p.name.startswith(PARTIAL_PREFIX) for p in tmp_path.iterdir())
