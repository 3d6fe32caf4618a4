"""The job database: the jobs' states and progress in SQLite, shared by the manager and the job processes.

:class:`~fitness_weights_api.jobs.JobManager` (the API workers, the CLI) and each job's own process
(:mod:`fitness_weights_api.train_job`) read and write the same file; this module holds its schema, the
:class:`Job` records and the job process's writes. The state machine and the crash guarantees are described in
:mod:`fitness_weights_api.jobs`.

Layout and schema (``PRAGMA user_version`` holds :data:`SCHEMA_VERSION`):

=====================================  ===============================================================
``root/jobs.sqlite``                   the database (the default ``database_url``), WAL mode; its own
                                       file, not the registry's (each refuses a file with other tables)
table ``jobs``                         one row per job, in submission order (``number``)
tables ``job_metrics``, ``job_params``,  each job's logged metrics, requested parameter changes and log lines
``job_log``                            (schema 2; :mod:`fitness_weights_api.job_live`)
``root/jobs/<job_id>/job.log``         the job process's stdout and stderr (tracebacks go here)
``root/jobs/<job_id>/lock``            ``flock``-ed by the job process for its whole life
``root/jobs/<job_id>/checkpoint.zip``  the last checkpoint (SB3 zip), replaced atomically: saved at the end of
                                       the first rollout, then after every ``checkpoint_rollouts`` rollouts
                                       or ``checkpoint_seconds`` seconds since the last one
``root/jobs/<job_id>/model.zip``       the final model, written atomically before it is registered
=====================================  ===============================================================
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fitness_weights_api.job_config import JobConfig
from fitness_weights_api.storage import Database
from fitness_weights_env.errors import FieldError, FitnessWeightsError

__all__ = [
    "CANCELLED",
    "CHECKPOINT_FILE",
    "FAILED",
    "FINAL_STATES",
    "JOB_COLUMNS",
    "JOB_STATES",
    "LOCK_FILE",
    "LOG_FILE",
    "MODEL_FILE",
    "QUEUED",
    "RUNNING",
    "SCHEMA_VERSION",
    "SUCCEEDED",
    "Job",
    "JobCancelled",
    "JobDatabase",
    "JobError",
    "JobLostError",
    "QueueFullError",
    "UnknownJobError",
    "job_from_row",
    "public_error",
    "redact_paths",
    "utc_now",
]

SCHEMA_VERSION = 2
"""The job database schema version, stored in ``PRAGMA user_version`` (2 adds the live tables to 1's ``jobs``)."""

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
JOB_STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)
"""Every job state, in lifecycle order."""
FINAL_STATES = frozenset({SUCCEEDED, FAILED, CANCELLED})
"""The states nothing changes."""

LOG_FILE = "job.log"
LOCK_FILE = "lock"
CHECKPOINT_FILE = "checkpoint.zip"
MODEL_FILE = "model.zip"
MAX_ERROR_CHARS = 2000

MEMORY_SETTING = "FITNESS_WEIGHTS_JOB_MEMORY_MB"
"""The service setting of a job's memory limit (``JobManager(memory_mb=...)``), named in out-of-memory errors."""

# An absolute POSIX path in a message: a "/" not preceded by a word character, a dot or another path character.
_ABSOLUTE_PATH_RE = re.compile(r"(?<![\w.~/\\-])/[^\s'\"`,;:()\[\]{}<>]*")
_TABLES = {"jobs", "sqlite_sequence", "job_metrics", "job_params", "job_log"}
_SCHEMA = (
    f"""
    CREATE TABLE IF NOT EXISTS jobs (
        number INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id TEXT NOT NULL UNIQUE CHECK (length(job_id) = 32),
        state TEXT NOT NULL CHECK (state IN ({", ".join(f"'{state}'" for state in JOB_STATES)})),
        config TEXT NOT NULL,
        created TEXT NOT NULL,
        started TEXT,
        finished TEXT,
        timesteps_done INTEGER NOT NULL DEFAULT 0,
        total_timesteps INTEGER NOT NULL,
        last_mean_reward REAL,
        checkpoint TEXT,
        model_version TEXT,
        error TEXT,
        pid INTEGER,
        cancel_requested INTEGER NOT NULL DEFAULT 0
    )
    """,
    "CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, number)",
)
_LIVE_SCHEMA = (  # schema 2: what the dashboard follows (fitness_weights_api.job_live)
    """
    CREATE TABLE IF NOT EXISTS job_metrics (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id TEXT NOT NULL REFERENCES jobs (job_id),
        step INTEGER NOT NULL,
        recorded TEXT NOT NULL,
        metrics TEXT NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS job_metrics_by_job ON job_metrics (job_id, seq)",
    """
    CREATE TABLE IF NOT EXISTS job_params (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id TEXT NOT NULL REFERENCES jobs (job_id),
        name TEXT NOT NULL,
        value TEXT NOT NULL,
        requested_by TEXT NOT NULL,
        requested TEXT NOT NULL,
        applied TEXT,
        timestep INTEGER,
        previous TEXT,
        error TEXT
    )
    """,
    "CREATE INDEX IF NOT EXISTS job_params_by_job ON job_params (job_id, seq)",
    """
    CREATE TABLE IF NOT EXISTS job_log (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id TEXT NOT NULL REFERENCES jobs (job_id),
        recorded TEXT NOT NULL,
        level TEXT NOT NULL,
        text TEXT NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS job_log_by_job ON job_log (job_id, seq)",
)
JOB_COLUMNS = (  # the columns job_from_row reads, in order
    "job_id, state, config, created, started, finished, timesteps_done, total_timesteps, last_mean_reward, "
    "checkpoint, model_version, error, pid, cancel_requested"
)


class JobError(FitnessWeightsError):
    """A failed job-database operation, a full queue, or a job manager that cannot work here."""


class QueueFullError(JobError):
    """``max_queued`` jobs are waiting already: try again later."""


class UnknownJobError(JobError, KeyError):
    """A well-formed job id that the job database does not hold."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class JobLostError(JobError):
    """The job process's row is no longer running under its pid (its claim was rolled back, or it was settled)."""


class JobCancelled(BaseException):  # like KeyboardInterrupt: not an error, and not caught as one
    """Raised inside the job process when its job is cancelled (``SIGTERM`` or the ``cancel_requested`` flag)."""


@dataclass(frozen=True)
class Job:
    """A training job as recorded in the job database (a snapshot: read it again for news).

    Args:
        job_id: The id, 32 lowercase hex digits (random, URL-safe).
        state: One of :data:`JOB_STATES`.
        config: What it trains.
        created: When it was submitted, ISO 8601 in UTC.
        started: When its process was started, or ``None`` while queued (and if cancelled while queued).
        finished: When it reached its final state, or ``None``.
        timesteps_done: Environment steps trained so far (updated after every rollout).
        total_timesteps: The steps it trains for (``config.timesteps``).
        last_mean_reward: Mean return of the last episodes (SB3's ``ep_info_buffer``), ``None`` until known.
        checkpoint: The path of its last checkpoint (an SB3 zip), ``None`` before the first one.
        model_version: The registry version of its model once succeeded, else ``None``.
        error: Why it failed (``"<ExceptionType>: <message>"`` or how its process ended), else ``None``. It names
            no absolute path (only their last component) and no process id.
        pid: Its process id (also its process group id) once started, else ``None``.
        cancel_requested: Whether a cancel was requested while it ran.
    """

    job_id: str
    state: str
    config: JobConfig
    created: str
    started: str | None
    finished: str | None
    timesteps_done: int
    total_timesteps: int
    last_mean_reward: float | None
    checkpoint: str | None
    model_version: str | None
    error: str | None
    pid: int | None
    cancel_requested: bool

    def to_dict(self) -> dict[str, Any]:
        """The job as a JSON-ready dict (``config`` as a dict)."""
        data = {field.name: getattr(self, field.name) for field in fields(self)}
        data["config"] = self.config.to_dict()
        return data


class JobDatabase(Database):
    """The job database: its schema, and the writes of the job process (used by :mod:`.train_job`).

    Args:
        path: The SQLite file.
        database_url: The URL it came from (named in errors).
    """

    def __init__(self, path: Path, database_url: str) -> None:
        super().__init__(path, JobError, "job database", database_url)
        self.database_url = database_url

    def initialize(self) -> None:  # type: ignore[override]  # the job database's own schema
        """Switch to WAL and create the schema if missing; refuse a database that is not a job database."""
        super().initialize(SCHEMA_VERSION, _TABLES, _create_schema, required="jobs")

    # -- the job process's writes ---------------------------------------------------------------------------

    def claimed_config(self, job_id: str, pid: int) -> JobConfig:
        """The config of the job that process ``pid`` was started for, after the starter's commit.

        Raises:
            JobLostError: The job is not running under ``pid`` (the start was rolled back).
            JobCancelled: A cancel was requested already.
        """
        with self.transaction() as conn:  # waits for the manager's claiming transaction to end
            row = conn.execute(
                "SELECT state, pid, config, cancel_requested FROM jobs WHERE job_id = ?", (job_id,)
            ).fetchone()
        if row is None or row[0] != RUNNING or row[1] != pid:
            found = "no such job" if row is None else f"state {row[0]}, pid {row[1]}"
            raise JobLostError(f"job {job_id} is not running under pid {pid} ({found})")
        if row[3]:
            raise JobCancelled("cancel requested")
        return JobConfig.from_dict(json.loads(row[2]))

    def record_progress(
        self, job_id: str, pid: int, timesteps: int, mean_reward: float | None, checkpoint: str | None
    ) -> bool:
        """Record progress (and a new checkpoint); return whether a cancel was requested.

        Raises:
            JobLostError: The job is no longer running under ``pid``.
        """
        with self.transaction() as conn:
            row = conn.execute("SELECT state, pid, cancel_requested FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            if row is None or row[0] != RUNNING or row[1] != pid:
                raise JobLostError(f"job {job_id} is no longer running under pid {pid}")
            conn.execute(
                "UPDATE jobs SET timesteps_done = ?, last_mean_reward = COALESCE(?, last_mean_reward), "
                "checkpoint = COALESCE(?, checkpoint) WHERE job_id = ?",
                (timesteps, mean_reward, checkpoint, job_id),
            )
        return bool(row[2])

    def finish(
        self,
        job_id: str,
        pid: int,
        state: str,
        *,
        model_version: str | None = None,
        error: str | None = None,
        timesteps: int | None = None,
    ) -> bool:
        """Record the final ``state`` of the job running under ``pid``; ``False`` if it was not running so."""
        if state not in FINAL_STATES:
            raise FieldError("state", f"must be one of {sorted(FINAL_STATES)}", state)
        with self.transaction() as conn:
            cursor = conn.execute(
                "UPDATE jobs SET state = ?, finished = ?, model_version = ?, error = ?, "
                "timesteps_done = COALESCE(?, timesteps_done) WHERE job_id = ? AND state = ? AND pid = ?",
                (state, utc_now(), model_version, public_error(error), timesteps, job_id, RUNNING, pid),
            )
        return cursor.rowcount == 1


def _create_schema(conn: sqlite3.Connection, schema: int) -> None:
    if schema == 0:
        for statement in _SCHEMA:
            conn.execute(statement)
    if schema < 2:  # a new file, or schema 1's jobs alone: the live tables join them
        for statement in _LIVE_SCHEMA:
            conn.execute(statement)


def utc_now() -> str:
    """The time now, ISO 8601 in UTC, to the microsecond (how the job database records times)."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def redact_paths(message: str) -> str:
    """``message`` with every absolute path cut to its last component (``'/srv/a/b.zip'`` -> ``'b.zip'``)."""

    def last_component(match: re.Match[str]) -> str:
        parts = [part for part in match.group().split("/") if part]
        return parts[-1] if parts else match.group()

    return _ABSOLUTE_PATH_RE.sub(last_component, message)


def public_error(message: str | None) -> str | None:
    """A job error as recorded (and shown by the API): absolute paths redacted, at most ``MAX_ERROR_CHARS``."""
    if message is None:
        return None
    message = redact_paths(message)
    if len(message) <= MAX_ERROR_CHARS:
        return message
    return message[: MAX_ERROR_CHARS - 3] + "..."


def job_from_row(row: tuple[Any, ...]) -> Job:
    """The :class:`Job` of a row of :data:`JOB_COLUMNS`."""
    (job_id, state, config, created, started, finished, done, total, reward, checkpoint, version, error, pid,
     cancel) = row  # fmt: skip
    return Job(
        job_id=job_id,
        state=state,
        config=JobConfig.from_dict(json.loads(config)),
        created=created,
        started=started,
        finished=finished,
        timesteps_done=done,
        total_timesteps=total,
        last_mean_reward=reward,
        checkpoint=checkpoint,
        model_version=version,
        error=error,
        pid=pid,
        cancel_requested=bool(cancel),
    )
