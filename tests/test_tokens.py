"""The API's token store on a real SQLite file, and the `fitness-weights tokens` command."""

import os
import sqlite3
import stat
import subprocess
import sys

import pytest

from fitness_weights_api.cli import main
from fitness_weights_api.tokens import TokenError, TokenStore, role_allows
from fitness_weights_env.errors import FieldError


def secret_of(token: str) -> str:
    """The random part of ``fwt_<12 hex>_<43 urlsafe characters>`` (which may itself hold ``_``)."""
    assert token.startswith("fwt_") and token[16] == "_" and len(token) == 60
    return token[17:]


@pytest.fixture
def store(tmp_path) -> TokenStore:
    return TokenStore(tmp_path / "tokens.sqlite")


def test_a_token_verifies_until_it_is_revoked(store, tmp_path):
    record, token = store.create("admin", "ops")
    assert token.startswith(f"fwt_{record.token_id}_") and len(token) == 4 + 12 + 1 + 43
    assert store.verify(token) == record and record.role == "admin" and record.revoked is None
    other = TokenStore(tmp_path / "tokens.sqlite")  # another process's view: the same file
    assert other.verify(token) == record
    assert store.revoke(record.token_id).revoked is not None
    assert store.verify(token) is None and other.verify(token) is None
    first = store.list()[0].revoked
    assert store.revoke(record.token_id).revoked == first  # revoking again keeps the first time


def test_only_hashes_are_stored_and_the_file_is_owner_only(store, tmp_path):
    _, token = store.create("read")
    secret = secret_of(token)
    raw = b"".join(path.read_bytes() for path in tmp_path.iterdir() if path.name.startswith("tokens.sqlite"))
    assert secret.encode() not in raw and token.encode() not in raw
    assert stat.S_IMODE(os.stat(tmp_path / "tokens.sqlite").st_mode) == 0o600
    with sqlite3.connect(tmp_path / "tokens.sqlite") as conn:
        (digest,) = conn.execute("SELECT sha256 FROM tokens").fetchone()
    assert len(digest) == 64 and digest not in token


@pytest.mark.parametrize(
    "candidate",
    [
        "",
        "fwt_",
        "Bearer x",
        "fwt_000000000000_" + "A" * 43,  # well formed, unknown
        "x" * 10_000,
        None,
        42,
    ],
)
def test_anything_but_a_valid_token_is_refused(store, candidate):
    _, token = store.create("admin")
    assert store.verify(candidate) is None
    assert store.verify(token[:-1] + ("A" if token[-1] != "A" else "B")) is None  # one character off
    assert store.verify(token) is not None


def test_roles_and_bad_arguments(store):
    assert role_allows("admin", "read") and role_allows("read", "read") and not role_allows("read", "admin")
    assert not store.has_valid("read")
    store.create("read")
    assert store.has_valid("read") and not store.has_valid("admin")
    cases = [
        (lambda: store.create("root"), "role", "must be one of"),
        (lambda: store.create("read", "x" * 101), "name", "must be at most 100"),
        (lambda: store.create("read", "<script>"), "name", "must be at most 100"),
        (lambda: store.revoke("../../etc"), "token_id", "must be 12 lowercase hex digits"),
        (lambda: store.revoke("0" * 12), "token_id", "no token has this id"),
    ]
    for call, field, reason in cases:
        with pytest.raises(FieldError, match=rf"^{field}: {reason}") as raised:
            call()
        assert raised.value.field == field and raised.value.reason.startswith(reason)
        assert not isinstance(raised.value, TokenError)
    assert [record.role for record in store.list()] == ["read"]  # nothing was created


def test_a_file_that_is_not_a_token_store_is_refused(tmp_path):
    with sqlite3.connect(tmp_path / "app.sqlite") as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
    with pytest.raises(TokenError, match=r"not a token store.*\['users'\]"):
        TokenStore(tmp_path / "app.sqlite")


def test_the_command_prints_the_token_alone_on_the_last_line_once(tmp_path, capsys):
    home = tmp_path / "home"
    command = [sys.executable, "-m", "fitness_weights_api.cli", "--home", str(home), "tokens", "create"]
    done = subprocess.run([*command, "--role", "admin", "--name", "ci"], capture_output=True, text=True, check=True)
    token = done.stdout.splitlines()[-1]
    assert done.stdout == token + "\n"  # scripts take the last line: standard output holds the token alone
    assert "shown once" in done.stderr and token not in done.stderr
    store = TokenStore(home / "tokens.sqlite")
    record = store.verify(token)
    assert record is not None and (record.role, record.name) == ("admin", "ci")

    assert main(["--home", str(home), "tokens", "list"]) == 0
    listing = capsys.readouterr().out
    assert record.token_id in listing and secret_of(token) not in listing
    assert main(["--home", str(home), "tokens", "revoke", record.token_id]) == 0
    assert store.verify(token) is None
    assert main(["--home", str(home), "tokens", "revoke", "nothex"]) == 2
    assert "error: token_id: must be 12 lowercase hex digits" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--home", str(home), "tokens", "create", "--role", "root"])
