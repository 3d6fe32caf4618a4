"""Bearer tokens of the HTTP API: created, listed and revoked by ``fitness-weights tokens``, hashed at rest.

A token reads ``fwt_<id>_<secret>``: ``id`` (12 hex digits) names it in listings and revocations, ``secret`` is 32
random bytes (``secrets.token_urlsafe``). The store keeps the SHA-256 of the whole token, never the token, so a
copy of the database grants nothing; the token is shown once, when it is made. With 256 random bits, a fast hash
is enough (a slow password hash protects guessable secrets; nobody guesses these), and the comparison is
``hmac.compare_digest``.

Roles, each allowing what the one before it allows:

=========  ===================================================================================================
``read``   the admin reads (``GET /train``, ``GET /train/{job_id}``, ``GET /models``, ``GET /metrics``), and
           optimize and predict when ``FITNESS_WEIGHTS_REQUIRE_TOKEN=1``
``admin``  every mutation: ``POST /train``, ``DELETE /train/{job_id}``, ``POST /models/{version}/activate``
=========  ===================================================================================================

The store is a SQLite file of its own (``HOME/tokens.sqlite``, mode 0600), in WAL mode, shared by every worker: a
token created or revoked by the CLI counts for every worker from its next request. Schema (``PRAGMA user_version``
holds :data:`SCHEMA_VERSION`): table ``tokens`` with ``token_id`` (unique), ``name``, ``role``, ``sha256``,
``created`` and ``revoked`` (``NULL`` while the token is valid).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from fitness_weights_api.storage import Database
from fitness_weights_env.errors import FieldError, FitnessWeightsError

__all__ = ["ROLES", "SCHEMA_VERSION", "TokenError", "TokenRecord", "TokenStore", "role_allows"]

SCHEMA_VERSION = 1
"""The token store's schema version, stored in ``PRAGMA user_version``."""

ROLES = ("read", "admin")
"""The roles, from least to most allowed; each allows what the ones before it allow."""

TOKEN_PREFIX = "fwt_"
MAX_NAME_CHARS = 100
MAX_TOKEN_CHARS = 200  # a token is 64 characters; anything much longer is not one

_ID_HEX_DIGITS = 12
_TOKEN_RE = re.compile(rf"{TOKEN_PREFIX}([0-9a-f]{{{_ID_HEX_DIGITS}}})_[A-Za-z0-9_\-]{{43}}")
_ID_RE = re.compile(rf"[0-9a-f]{{{_ID_HEX_DIGITS}}}")
_NAME_RE = re.compile(r"[\w .@:/+\-]*")
_TABLES = {"tokens", "sqlite_sequence"}
_SCHEMA = (
    f"""
    CREATE TABLE IF NOT EXISTS tokens (
        number INTEGER PRIMARY KEY AUTOINCREMENT,
        token_id TEXT NOT NULL UNIQUE CHECK (length(token_id) = {_ID_HEX_DIGITS}),
        name TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ({", ".join(f"'{role}'" for role in ROLES)})),
        sha256 TEXT NOT NULL CHECK (length(sha256) = 64),
        created TEXT NOT NULL,
        revoked TEXT
    )
    """,
)
_COLUMNS = "token_id, name, role, created, revoked"


class TokenError(FitnessWeightsError):
    """A failed token-store operation, or a file that is not a token store."""


@dataclass(frozen=True)
class TokenRecord:
    """A token as the store knows it (never the token itself).

    Args:
        token_id: The public id, 12 hex digits (the token's second part).
        name: What the token is for, as given at creation.
        role: One of :data:`ROLES`.
        created: When it was made, ISO 8601 in UTC.
        revoked: When it was revoked, or ``None`` while it is valid.
    """

    token_id: str
    name: str
    role: str
    created: str
    revoked: str | None


def role_allows(role: str, needed: str) -> bool:
    """Whether a token of ``role`` may do what needs ``needed``."""
    return ROLES.index(role) >= ROLES.index(needed)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class TokenStore:
    """The tokens of one service folder, in the SQLite file ``path`` (created, mode 0600, if missing).

    Safe to share between threads and processes. :meth:`verify`, which every guarded request calls, reads
    through a connection that each thread keeps open (a few microseconds).

    Raises:
        TokenError: The file is not a token store, has a newer schema, or cannot be created.
    """

    database: Database

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).absolute()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))  # owner-only from the first byte
        except OSError as err:
            raise TokenError(f"token store {str(self.path)!r}: {err.strerror}") from None
        self.database = Database(self.path, TokenError, "token store")
        self.database.initialize(SCHEMA_VERSION, _TABLES, _create_schema)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    def create(self, role: str, name: str = "") -> tuple[TokenRecord, str]:
        """Make a new token of ``role``; the record and the token (shown once: the store keeps only its hash).

        Raises:
            FieldError: ``role`` is not one of :data:`ROLES`, or ``name`` is too long or has odd characters.
        """
        if role not in ROLES:
            raise FieldError("role", f"must be one of {list(ROLES)}", role)
        if not isinstance(name, str) or len(name) > MAX_NAME_CHARS or not _NAME_RE.fullmatch(name):
            raise FieldError("name", f"must be at most {MAX_NAME_CHARS} letters, digits, spaces or '.@:/+-_'", name)
        while True:
            token_id = secrets.token_hex(_ID_HEX_DIGITS // 2)
            token = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
            record = TokenRecord(token_id, name, role, _now(), None)
            try:
                with self.database.connect() as conn:
                    conn.execute(
                        "INSERT INTO tokens (token_id, name, role, sha256, created) VALUES (?, ?, ?, ?, ?)",
                        (token_id, name, role, _digest(token), record.created),
                    )
            except TokenError as err:
                if isinstance(err.__cause__, sqlite3.IntegrityError):  # an id taken already: draw another
                    continue
                raise
            return record, token

    def list(self) -> list[TokenRecord]:
        """Every token, valid and revoked, oldest first."""
        with self.database.connect() as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM tokens ORDER BY number").fetchall()
        return [TokenRecord(*row) for row in rows]

    def revoke(self, token_id: str) -> TokenRecord:
        """Revoke a token by its id: from now on every worker refuses it. Revoking twice keeps the first time.

        Raises:
            FieldError: ``token_id`` is not 12 hex digits, or no token has it.
        """
        if not isinstance(token_id, str) or not _ID_RE.fullmatch(token_id):
            raise FieldError("token_id", f"must be {_ID_HEX_DIGITS} lowercase hex digits (see 'tokens list')")
        with self.database.connect() as conn:
            conn.execute("UPDATE tokens SET revoked = ? WHERE token_id = ? AND revoked IS NULL", (_now(), token_id))
            row = conn.execute(f"SELECT {_COLUMNS} FROM tokens WHERE token_id = ?", (token_id,)).fetchone()
        if row is None:
            raise FieldError("token_id", "no token has this id (see 'tokens list')")
        return TokenRecord(*row)

    def verify(self, token: str) -> TokenRecord | None:
        """The record of a valid (known, not revoked) token; ``None`` for anything else."""
        match = _TOKEN_RE.fullmatch(token) if isinstance(token, str) and len(token) <= MAX_TOKEN_CHARS else None
        if match is None:
            return None
        row = self.database.read(f"SELECT {_COLUMNS}, sha256 FROM tokens WHERE token_id = ?", (match[1],))
        if row is None or not hmac.compare_digest(row[5], _digest(token)) or row[4] is not None:
            return None
        return TokenRecord(*row[:5])

    def has_valid(self, role: str) -> bool:
        """Whether some valid token allows ``role``."""
        allowed = ROLES[ROLES.index(role) :]
        marks = ", ".join("?" for _ in allowed)
        sql = f"SELECT 1 FROM tokens WHERE revoked IS NULL AND role IN ({marks}) LIMIT 1"
        return self.database.read(sql, allowed) is not None


def _create_schema(conn: sqlite3.Connection, schema: int) -> None:
    if schema == 0:
        for statement in _SCHEMA:
            conn.execute(statement)
