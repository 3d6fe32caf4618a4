"""Model registry: versioned model files in a directory, their records and the active version in SQLite.

Several API worker processes share one registry: training jobs register models
(:meth:`~ModelRegistry.register`), an operator makes one active (:meth:`~ModelRegistry.activate`), and every
worker polls :meth:`~ModelRegistry.active_token` on each request and reloads its model when the token changes
(the hot switch). Models load only from the registry directory, by version id (:meth:`~ModelRegistry.load`), never
from a path given in a request::

    registry = ModelRegistry("runs/registry")
    version = registry.register("runs/job-7/model.zip", training_config={"preset": "cpu"}, evaluation_score=0.81)
    registry.activate(version.version)
    served = registry.load(registry.active().version)  # served.policy answers optimize and predict

**Nothing is unpickled.** Registration converts the SB3 archive into the safe format of
:mod:`fitness_weights_api.model_format` (safetensors weights and a JSON manifest; the archive's pickles are never
loaded), checks it (the manifest's policy is allow-listed, its spaces are the env id's, and a dry run in a child
process bounded in time and memory builds the policy, optimizes and predicts; :mod:`.model_check`), and stores that
form only. :meth:`~ModelRegistry.load` reads the file once, checks its SHA-256 and size against the record (a
mismatch refuses the version), and builds the policy from those bytes. Versions registered by an older release as
SB3 archives (``format`` ``sb3-zip``) are listed but never loaded or activated: register their files again.

Layout and schema (``PRAGMA user_version`` holds :data:`SCHEMA_VERSION`):

================================  =====================================================================
``root/models/v<n>.safetensors``  the model file of version ``v<n>``, written once, never changed
``root/models/.partial-*``        a registration in progress (or abandoned by a killed process)
``root/registry.sqlite``          the database (the default ``database_url``), in WAL mode
table ``versions``                one row per version: ``number`` (``INTEGER PRIMARY KEY
                                  AUTOINCREMENT``, so a number is never reused), ``created``,
                                  ``training_config`` and ``metadata`` (JSON text),
                                  ``evaluation_score``, ``sha256``, ``size_bytes``, ``format``
                                  (``safetensors-1``; ``sb3-zip`` for versions of schema 1)
table ``active``                exactly one row (``id = 1``): ``number`` of the active version (NULL
                                before the first activation, a foreign key into ``versions``) and
                                ``generation``, the change counter bumped by every activation
==============================  =====================================================================

How nothing is lost or half-written:

* **Registration.** The converted and checked model is written to a temporary file in ``root/models``
  (hashed, fsynced). Then, in one ``BEGIN IMMEDIATE`` transaction, the
  version number is allocated and the row inserted, the temporary file is renamed to ``v<n>.zip``
  (``os.replace``, atomic) and the directory fsynced, and the transaction commits. Any error before the
  commit removes the file while the write lock is still held and rolls back: no row, no file.
* **Concurrency.** The write lock of ``BEGIN IMMEDIATE`` serializes registrations and activations of all
  processes (waiting up to :data:`.sqlite.BUSY_TIMEOUT_S`); readers never wait (WAL). Every operation opens its own
  connection, so one instance may be used from several threads and processes.
* **Activation** is one ``UPDATE`` of the single ``active`` row, so there is never more than one active
  version, and the foreign key makes an unknown one impossible.
* **Crashes.** A process killed mid-registration leaves its rolled-back transaction (invisible) and at
  most one file that no row names: its temporary file, or, if it died between the rename and the commit,
  ``v<n>.safetensors`` with ``n`` the next number to allocate (the next registration would replace it anyway).
  Readers never list such files. :class:`ModelRegistry` construction and every
  :meth:`~ModelRegistry.register` remove them under the write lock (a temporary file only when no live
  process holds its ``flock``; on platforms without ``fcntl`` abandoned temporary files are left in place
  and ignored).

The SQLite file must be on a local file system (WAL needs shared memory between the processes).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import numbers
import os
import re
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from fitness_weights_api.storage import PARTIAL_PREFIX, URL_PREFIX, Database, database_path, fsync_dir
from fitness_weights_env.errors import FieldError, FitnessWeightsError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: abandoned temporary files are ignored, not removed
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "SCHEMA_VERSION",
    "ModelRegistry",
    "ModelVersion",
    "RegistryError",
    "UnknownVersionError",
]

SCHEMA_VERSION = 2
"""The database schema version, stored in ``PRAGMA user_version`` (1: before the ``format`` column)."""

FORMAT = "safetensors-1"
"""The ``format`` of the versions this registry writes: :mod:`.model_format`'s file."""
LEGACY_FORMAT = "sb3-zip"
"""The ``format`` of versions of schema 1: SB3 archives, never loaded (they can run code)."""
_SUFFIXES = {FORMAT: ".safetensors", LEGACY_FORMAT: ".zip"}

DEFAULT_MAX_MODEL_BYTES = 64 << 20
DEFAULT_CHECK_TIMEOUT_S = 120.0
DEFAULT_CHECK_MEMORY_MB = 4096

_VERSION_RE = re.compile(r"v([1-9][0-9]*)")
_MODEL_FILE_RE = re.compile(r"v([1-9][0-9]*)\.safetensors")
_TEMP_FILE_RE = re.compile(re.escape(PARTIAL_PREFIX) + r"[0-9a-f]{32}\.safetensors")
_MAX_NUMBER = 2**63 - 1  # SQLite's largest integer
_LISTED_VERSIONS = 10  # known versions named by UnknownVersionError
_COPY_CHUNK = 1 << 20

_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS versions (
        number INTEGER PRIMARY KEY AUTOINCREMENT,
        created TEXT NOT NULL,
        training_config TEXT NOT NULL,
        evaluation_score REAL,
        metadata TEXT NOT NULL,
        sha256 TEXT NOT NULL CHECK (length(sha256) = 64),
        size_bytes INTEGER NOT NULL CHECK (size_bytes >= 0),
        format TEXT NOT NULL DEFAULT 'sb3-zip'
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS active (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        number INTEGER REFERENCES versions (number),
        generation INTEGER NOT NULL CHECK (generation >= 0)
    )
    """,
    "INSERT OR IGNORE INTO active (id, number, generation) VALUES (1, NULL, 0)",
)
_ACTIVATE = "UPDATE active SET number = ?, generation = generation + 1 WHERE id = 1 AND number IS NOT ?"
_MIGRATE_1_TO_2 = "ALTER TABLE versions ADD COLUMN format TEXT NOT NULL DEFAULT 'sb3-zip'"
_TABLES = {"versions", "active", "sqlite_sequence"}
_SELECT_VERSIONS = (
    "SELECT v.number, v.created, v.training_config, v.evaluation_score, v.metadata, v.sha256, v.size_bytes, "
    "v.format, v.number IS a.number FROM versions AS v LEFT JOIN active AS a ON a.id = 1"
)


class RegistryError(FitnessWeightsError):
    """A failed registry operation, or a registry that cannot work (damaged, another store's file)."""


class UnknownVersionError(RegistryError, KeyError):
    """A well-formed version id that the registry does not hold; the message lists known versions.

    Attributes:
        known: The known versions, as the message lists them (without the unknown id: what the HTTP API says).
    """

    def __init__(self, message: str, known: str = "") -> None:
        super().__init__(message)
        self.known = known

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ModelRefusedError(RegistryError):
    """A model file that the registry will not take or load; ``field`` names what is wrong.

    Attributes:
        field: What is at fault (``policy_kwargs``, ``weights``, ``dry_run``, ``sha256``, ...).
        reason: The message without the file's path (what the HTTP API says).
    """

    def __init__(self, message: str, field: str, reason: str) -> None:
        super().__init__(message)
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class ModelVersion:
    """One registered model.

    Args:
        version: The id, ``"v1"``, ``"v2"``, ...: allocated by the registry in increasing order, never reused.
        created: When it was registered, ISO 8601 in UTC.
        training_config: The training configuration (JSON object).
        evaluation_score: The evaluation score, or ``None`` if the model was not evaluated.
        metadata: Free-form JSON object (job id, policy name, ...).
        sha256: Hex SHA-256 of the stored model file.
        size_bytes: Size of the stored model file.
        format: How it is stored: :data:`FORMAT`, or :data:`LEGACY_FORMAT` (never loaded).
        active: Whether it was the active version when this record was read.
    """

    version: str
    created: str
    training_config: dict[str, Any]
    evaluation_score: float | None
    metadata: dict[str, Any]
    sha256: str
    size_bytes: int
    format: str
    active: bool


class ModelRegistry:
    """Versioned models in ``root/models`` with their records and the active version in SQLite.

    Safe to share between threads and processes: open one instance per process on the same ``root`` (and
    ``database_url``). See the module docstring for the layout, the schema and the crash guarantees.

    Args:
        root: The registry directory; model files go to ``root/models``. Created if missing.
        database_url: ``"sqlite:///<path>"``, a path relative to the working directory, or
            ``"sqlite:////<absolute path>"`` (SQLAlchemy's form). Defaults to ``root/registry.sqlite``.
        max_model_bytes: Largest model to register or load: the file, and an archive's entries uncompressed.
        check_timeout_s: Time limit of a registration's dry run, in seconds.
        check_memory_mb: Address-space limit of the dry run's process, in MiB.

    Attributes:
        root: The registry directory (absolute).
        models_dir: ``root/models``.
        database_url: The database URL in use.
        database_path: The SQLite file (absolute).

    Raises:
        FieldError: An invalid argument, or an unsupported ``database_url`` (``field`` names it).
        RegistryError: A ``root`` that cannot be created, a database that
            is not a model registry or has a newer schema, or a database that cannot use WAL mode.
    """

    root: Path
    models_dir: Path
    database_url: str
    database_path: Path
    database: Database
    max_model_bytes: int
    check_timeout_s: float
    check_memory_mb: int

    def __init__(
        self,
        root: str | os.PathLike[str],
        database_url: str | None = None,
        *,
        max_model_bytes: int = DEFAULT_MAX_MODEL_BYTES,
        check_timeout_s: float = DEFAULT_CHECK_TIMEOUT_S,
        check_memory_mb: int = DEFAULT_CHECK_MEMORY_MB,
    ) -> None:
        if not isinstance(root, (str, os.PathLike)) or not os.fspath(root):
            raise FieldError("root", "must be a directory path", root)
        for name, value in (("max_model_bytes", max_model_bytes), ("check_memory_mb", check_memory_mb)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise FieldError(name, "must be an integer of at least 1", value)
        if isinstance(check_timeout_s, bool) or not isinstance(check_timeout_s, numbers.Real) or check_timeout_s <= 0:
            raise FieldError("check_timeout_s", "must be a number of seconds above 0", check_timeout_s)
        self.max_model_bytes = max_model_bytes
        self.check_timeout_s = float(check_timeout_s)
        self.check_memory_mb = check_memory_mb
        self.root = Path(root).absolute()
        self.models_dir = self.root / "models"
        self.database_url = f"{URL_PREFIX}{self.root / 'registry.sqlite'}" if database_url is None else database_url
        self.database_path = database_path(self.database_url)
        for name, directory in (("root", self.models_dir), ("database_url", self.database_path.parent)):
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise RegistryError(f"{name}: cannot create directory {str(directory)!r}: {err}") from err
        pragmas = ("PRAGMA foreign_keys = ON", "PRAGMA synchronous = FULL")
        self.database = Database(
            self.database_path, RegistryError, "registry database", self.database_url, "model registry", pragmas
        )
        self.database.initialize(SCHEMA_VERSION, _TABLES, self._setup, required="versions")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r}, database_url={self.database_url!r})"

    def register(
        self,
        model_file: str | os.PathLike[str],
        *,
        training_config: dict[str, Any],
        evaluation_score: float | None = None,
        metadata: dict[str, Any] | None = None,
        activate: bool = False,
        env_id: str = "FitnessWeights-v0",
    ) -> ModelVersion:
        """Convert, check and store a model as a new version (see the module docstring).

        Either the version is registered completely (row and file) or, on any error, nothing remains.

        Args:
            model_file: A model saved by SB3's ``save`` (a zip archive; converted without unpickling anything),
                or a file in the registry's own format (:mod:`.model_format`).
            training_config: The training configuration, a JSON-serializable dict.
            evaluation_score: The evaluation score, finite, or ``None``.
            metadata: Free-form JSON-serializable dict (job id, ...); ``policy`` and ``env_id`` are added.
            activate: Also make the new version the active one, in the same transaction.
            env_id: The environment the model acts in, one of :data:`.model_format.ENV_IDS` (its spaces are this
                env's; it runs the model's optimize and predict). An SB3 archive does not say; a file in the
                registry's format, an ``env_id`` in ``training_config`` or in ``metadata`` that says another is
                refused.

        Returns:
            The new version's record.

        Raises:
            ModelRefusedError: The model is refused: not an SB3 model, a needed field only pickled, weights that
                do not build an allowed policy for ``env_id``'s spaces, or a failed dry run (``field`` names it).
            FieldError: An invalid argument (``field`` names it): an unknown ``env_id``, or one that the
                training config or the metadata contradict.
            RegistryError: A failed database operation.
        """
        config_json, config = _to_json("training_config", training_config)
        _, described = _to_json("metadata", {} if metadata is None else metadata)  # refused before the conversion
        _check_env_id(env_id, config, described)
        score = _check_score(evaluation_score)
        if not isinstance(activate, bool):
            raise FieldError("activate", "must be a bool", activate)
        source_path = _check_model_file(model_file)
        content, policy = self._converted(source_path, config, env_id)
        metadata_json, metadata_value = _to_json("metadata", {"policy": policy, "env_id": env_id, **(metadata or {})})
        with self._temp_file() as (temp_path, temp):
            sha256, size_bytes = _write(content, temp)
            with self.database.connect() as conn:
                conn.execute("BEGIN IMMEDIATE")
                final_path: Path | None = None
                committing = False
                try:
                    self._sweep(conn)
                    created = datetime.now(timezone.utc).isoformat(timespec="microseconds")
                    cursor = conn.execute(
                        "INSERT INTO versions (created, training_config, evaluation_score, metadata, sha256, "
                        "size_bytes, format) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (created, config_json, score, metadata_json, sha256, size_bytes, FORMAT),
                    )
                    number = cursor.lastrowid
                    assert number is not None
                    if activate:
                        conn.execute(_ACTIVATE, (number, number))
                    final_path = self.models_dir / f"v{number}{_SUFFIXES[FORMAT]}"
                    # Unlocking is safe now: sweeps run under the write lock. (Windows renames closed files only.)
                    temp.close()
                    os.replace(temp_path, final_path)
                    fsync_dir(self.models_dir)
                    committing = True
                    conn.execute("COMMIT")
                except BaseException:
                    # Remove the renamed file only while the write lock is still held: once it is released,
                    # another process may allocate the same number and put its own file there. If a failed
                    # COMMIT already released it, the next register or construction removes the file.
                    if final_path is not None and (not committing or conn.in_transaction):
                        with contextlib.suppress(FileNotFoundError):
                            final_path.unlink()
                    with contextlib.suppress(sqlite3.Error):
                        conn.rollback()
                    raise
        return ModelVersion(f"v{number}", created, config, score, metadata_value, sha256, size_bytes, FORMAT, activate)

    def _converted(self, source: Path, training_config: dict[str, Any], env_id: str) -> tuple[bytes, str]:
        """The model file in the registry's format, checked by the dry run, and its policy's name."""
        from fitness_weights_api.model_check import ModelCheckError, shared_checker
        from fitness_weights_api.model_format import ModelFormatError, file_bytes, model_from_bytes

        try:
            try:
                data = file_bytes(source, self.max_model_bytes)
            except OSError as err:
                raise FieldError("model_file", f"cannot be read: {err.strerror}", str(source)) from None
            model = model_from_bytes(
                data, max_bytes=self.max_model_bytes, env_id=env_id, training_config=training_config
            )
            content = model.to_bytes()
            checker = shared_checker(self.check_timeout_s, self.check_memory_mb, self.max_model_bytes + (1 << 20))
            checker.check(content)
        except (ModelFormatError, ModelCheckError) as err:
            reason = str(err)
            raise ModelRefusedError(f"model_file {str(source)!r} is refused: {reason}", err.field, reason) from None
        return content, model.policy

    def load(self, version: str, device: str = "cpu", inference: str = "torch") -> Any:
        """Build the policy of ``version`` from its file (read once, its SHA-256 and size checked first).

        Args:
            version: The version id (``v3``).
            device: The torch device of the policy.
            inference: ``"onnx"``: its exported graphs answer in ONNX Runtime, checked against the policy at every
                load (:func:`~fitness_weights_api.model_format.load_policy`); ``"torch"``: the policy does.

        Returns:
            A :class:`~fitness_weights_api.model_format.ServedModel` (``.policy``, ``.manifest``).

        Raises:
            ModelRefusedError: The version is in the legacy format (``format``), its file does not match its
                record (``sha256``), or it does not build (the field is named).
            FieldError: ``version`` is not a version id, or ``inference`` is not ``"onnx"`` or ``"torch"``.
            RegistryError: Its file is missing (the registry is damaged).
            UnknownVersionError: ``version`` is not registered.
        """
        from fitness_weights_api.model_format import ModelFormatError, load_policy, read_model

        data = self._verified_bytes(self.get(version))
        try:
            return load_policy(read_model(data, max(self.max_model_bytes, len(data))), device, inference)
        except ModelFormatError as err:
            raise ModelRefusedError(f"version {version} is refused: {err}", err.field, str(err)) from None

    def _verified_bytes(self, record: ModelVersion) -> bytes:
        """The model file of ``record``, read once, refused unless its format, size and SHA-256 are the record's."""
        self._check_format(record)
        file = self._check_file(record)
        try:
            data = file.read_bytes()
        except OSError as err:
            raise RegistryError(f"the model file of version {record.version} cannot be read: {err.strerror}") from None
        if len(data) != record.size_bytes or hashlib.sha256(data).hexdigest() != record.sha256:
            reason = "sha256: the model file does not match the hash it was registered with (it was changed)"
            raise ModelRefusedError(f"version {record.version} is refused: {reason}", "sha256", reason)
        return data

    def _check_format(self, record: ModelVersion) -> None:
        if record.format != FORMAT:
            reason = (
                f"format: {record.version} is stored as an SB3 archive ({record.format}), which can run code when "
                "loaded; register its model file again (fitness-weights models register FILE)"
            )
            raise ModelRefusedError(f"version {record.version} is refused: {reason}", "format", reason)

    def versions(self) -> list[ModelVersion]:
        """All registered versions, oldest first."""
        with self.database.connect() as conn:
            rows = conn.execute(f"{_SELECT_VERSIONS} ORDER BY v.number").fetchall()
        return [_to_version(row) for row in rows]

    def get(self, version: str) -> ModelVersion:
        """The record of ``version``.

        Raises:
            FieldError: ``version`` is not a version id (``"v<n>"``, ``n >= 1``).
            UnknownVersionError: ``version`` is not registered; the message lists known versions.
        """
        number = _parse_version(version)
        with self.database.connect() as conn:
            return _to_version(self._lookup(conn, number, version))

    def active(self) -> ModelVersion | None:
        """The active version, or ``None`` before the first activation."""
        with self.database.connect() as conn:
            row = conn.execute(f"{_SELECT_VERSIONS} WHERE v.number = a.number").fetchone()
        return None if row is None else _to_version(row)

    def activate(self, version: str) -> ModelVersion:
        """Make ``version`` the active version, atomically, for every process using the registry.

        An activation that changes the active version increments the change counter of :meth:`active_token`;
        activating the version already active is a no-op (no worker reloads).

        Returns:
            The record of the now active version.

        Raises:
            ModelRefusedError: The version is in the legacy format, which is never loaded (``format``), or its file
                does not match its SHA-256 (``sha256``).
            FieldError: ``version`` is not a version id.
            RegistryError: Its model file is missing (the registry is
                damaged); the active version is unchanged.
            UnknownVersionError: ``version`` is not registered; the active version is unchanged.
        """
        number = _parse_version(version)
        with self.database.transaction() as conn:
            record = _to_version(self._lookup(conn, number, version))
            if not record.active:  # activating the active version changes nothing
                self._verified_bytes(record)
            conn.execute(_ACTIVATE, (number, number))
        return replace(record, active=True)

    def path(self, version: str) -> Path:
        """The model file of ``version``, ``root/models/<version>.safetensors`` (load it with :meth:`load`).

        Raises:
            FieldError: ``version`` is not a version id.
            RegistryError: Its file is missing or has the wrong size
                (the registry is damaged).
            UnknownVersionError: ``version`` is not registered.
        """
        return self._check_file(self.get(version))

    def active_token(self) -> tuple[str | None, int]:
        """``(active version or None, activation counter)``, one indexed read: cheap enough for every request.

        A worker keeps the token of the model it loaded and reloads when the token differs. Each thread keeps
        its connection for it open, since opening one costs several times the read (benchmarks/RESULTS.md,
        "Measurements behind design choices in the code").
        """
        row = self.database.read("SELECT number, generation FROM active WHERE id = 1")
        assert row is not None  # the schema's one row
        number, generation = row
        return (None if number is None else f"v{number}", generation)

    # -- internals ------------------------------------------------------------------------------------------

    def _setup(self, conn: sqlite3.Connection, schema: int) -> None:
        """Create or upgrade the schema and remove what crashed registrations left (under the write lock)."""
        if schema == 0:
            for statement in _SCHEMA:
                conn.execute(statement)
        elif schema == 1:  # its versions are SB3 archives: kept and listed, never loaded
            conn.execute(_MIGRATE_1_TO_2)
        self._sweep(conn)

    def _sweep(self, conn: sqlite3.Connection) -> None:
        """Remove files of crashed registrations; the caller holds the write lock (``BEGIN IMMEDIATE``).

        Only the lock holder renames a file to ``v<n>.zip``, ``n`` being the next number (one above the last
        committed allocation), so such a file was left by a process that died before its commit; files of
        other numbers are never touched. A temporary file is abandoned when no process holds its ``flock``
        (the kernel releases it when its owner dies).
        """
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'versions'").fetchone()
        next_number = 1 if row is None else row[0] + 1
        for entry in os.scandir(self.models_dir):
            match = _MODEL_FILE_RE.fullmatch(entry.name)
            if match is not None and int(match[1]) == next_number:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
            elif _TEMP_FILE_RE.fullmatch(entry.name):
                _remove_if_abandoned(entry.path)

    @contextlib.contextmanager
    def _temp_file(self) -> Iterator[tuple[Path, IO[bytes]]]:
        """A new temporary file in ``models_dir``, flocked while open, removed on exit unless renamed."""
        while True:
            temp_path = self.models_dir / f"{PARTIAL_PREFIX}{uuid.uuid4().hex}{_SUFFIXES[FORMAT]}"
            fd = os.open(temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            if fcntl is None:
                break
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_nlink > 0:
                break
            os.close(fd)  # a sweep removed it between its creation and the lock: take a new name
        temp = os.fdopen(fd, "wb")
        try:
            yield temp_path, temp
        finally:
            try:
                with contextlib.suppress(FileNotFoundError):
                    temp_path.unlink()  # gone already when it was renamed to v<n>.zip
            finally:
                temp.close()

    def _lookup(self, conn: sqlite3.Connection, number: int, version: str) -> tuple[Any, ...]:
        row = None
        if number <= _MAX_NUMBER:
            row = conn.execute(f"{_SELECT_VERSIONS} WHERE v.number = ?", (number,)).fetchone()
        if row is None:
            (count,) = conn.execute("SELECT count(*) FROM versions").fetchone()
            latest = conn.execute("SELECT number FROM versions ORDER BY number DESC LIMIT ?", (_LISTED_VERSIONS,))
            known = ", ".join(f"v{n}" for (n,) in reversed(latest.fetchall()))
            if count == 0:
                known = "the registry holds no versions"
            elif count <= _LISTED_VERSIONS:
                known = f"known versions: {known}"
            else:
                known = f"{count} known versions, the latest: {known}"
            raise UnknownVersionError(f"unknown version {version!r}; {known}", known)
        return row

    def _check_file(self, record: ModelVersion) -> Path:
        file = self.models_dir / f"{record.version}{_SUFFIXES.get(record.format, '.zip')}"
        try:
            size = file.stat().st_size
        except FileNotFoundError:
            raise RegistryError(
                f"the registry is damaged: the model file {str(file)!r} of version {record.version} is missing"
            ) from None
        if size != record.size_bytes:
            raise RegistryError(
                f"the registry is damaged: the model file {str(file)!r} of version {record.version} has "
                f"{size} bytes, {record.size_bytes} were registered"
            )
        return file


def _parse_version(version: Any) -> int:
    match = _VERSION_RE.fullmatch(version) if isinstance(version, str) else None
    if match is None:
        raise FieldError("version", "must be a version id such as 'v1' ('v' and a number from 1)", version)
    return int(match[1])


def _to_json(name: str, value: Any) -> tuple[str, dict[str, Any]]:
    """``value`` as JSON text and as read back from it (what the registry returns later)."""
    if not isinstance(value, dict):
        raise FieldError(name, f"must be a dict, got {type(value).__name__}")
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as err:
        raise FieldError(name, f"is not JSON-serializable: {err}") from None
    return text, json.loads(text)


def _check_env_id(env_id: Any, training_config: dict[str, Any], metadata: dict[str, Any]) -> None:
    """``env_id`` is an env the registry serves, and the one ``training_config`` and ``metadata`` name, if they do."""
    from fitness_weights_api.model_format import ENV_IDS

    if not isinstance(env_id, str) or env_id not in ENV_IDS:
        raise FieldError("env_id", f"must be one of {list(ENV_IDS)}", env_id)
    for name, described in (("training_config", training_config), ("metadata", metadata)):
        named = described.get("env_id")
        if named is not None and named != env_id:
            other = named if named in ENV_IDS else "another env"  # never quote an unknown value in the reason
            raise FieldError("env_id", f"differs from {name}.env_id: the model was made for {other}", env_id)


def _check_score(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise FieldError("evaluation_score", "must be a finite number or None", value)
    return float(value)


def _check_model_file(model_file: Any) -> Path:
    if not isinstance(model_file, (str, os.PathLike)) or not os.fspath(model_file):
        raise FieldError("model_file", "must be a file path", model_file)
    path = Path(model_file)
    if not path.exists():
        raise FieldError("model_file", "does not exist", str(path))
    if not path.is_file():
        raise FieldError("model_file", "is not a regular file", str(path))
    return path


def _write(content: bytes, target: IO[bytes]) -> tuple[str, int]:
    """Write, flush and fsync; return the SHA-256 and size of what was written."""
    target.write(content)
    target.flush()
    os.fsync(target.fileno())
    return hashlib.sha256(content).hexdigest(), len(content)


def _remove_if_abandoned(path: str) -> None:
    """Remove a temporary file unless a live process holds its ``flock``."""
    if fcntl is None:
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    finally:
        os.close(fd)


def _to_version(row: tuple[Any, ...]) -> ModelVersion:
    number, created, config, score, metadata, sha256, size_bytes, model_format, active = row
    return ModelVersion(
        version=f"v{number}",
        created=created,
        training_config=json.loads(config),
        evaluation_score=score,
        metadata=json.loads(metadata),
        sha256=sha256,
        size_bytes=size_bytes,
        format=model_format,
        active=bool(active),
    )
