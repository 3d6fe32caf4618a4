"""What a running job shows and takes while it trains: its metrics, parameter changes and log, in the job database.

Every record is a row of the job database (schema 2, :mod:`fitness_weights_api.job_store`), so any API worker of
``serve --workers N`` serves any job's records, and a reader that comes late reads the history from the start.
Each table has a ``seq`` that only grows: a follower asks for the rows after the last one it has.

* ``job_metrics``: one row per logger dump of the job (:class:`sb3_ext.metrics_writer.MetricsWriter`), its step
  and the scalars TensorBoard gets, as JSON (a NaN or infinite value as ``null``).
* ``job_params``: one row per requested change, with who asked and when; the job process applies the pending ones
  at its next rollout boundary (:class:`sb3_ext.live_params.LiveParams`) and records when (``applied``, the
  ``timestep``, the ``previous`` value) or why not (``error``). A request is validated before it is stored: an
  invalid one is refused, naming the field, and stores nothing.
* ``job_log``: the job process's log lines, with a level (``info``, ``warning``, ``error``).

Bounds: :data:`MAX_PENDING` pending changes per job, :data:`MAX_METRICS` keys per dump (each key at most
:data:`MAX_KEY_CHARS`), log lines cut to :data:`MAX_LOG_CHARS` and at most :data:`MAX_LOG_LINES` stored per job,
reads of at most :data:`MAX_READ` rows.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any

from fitness_weights_api.job_store import FINAL_STATES, JobDatabase, JobError, UnknownJobError, utc_now
from fitness_weights_env.errors import FieldError, check_int

__all__ = [
    "LOG_LEVELS",
    "MAX_LOG_CHARS",
    "MAX_LOG_LINES",
    "MAX_METRICS",
    "MAX_PENDING",
    "MAX_READ",
    "LiveRecords",
    "LogLine",
    "MetricsRow",
    "ParamRefusedError",
    "ParamRequest",
]

MAX_PENDING = 100
"""Changes a job may have waiting for its next rollout boundary."""
MAX_METRICS = 500
"""Keys kept of one dump."""
MAX_KEY_CHARS = 200
MAX_LOG_CHARS = 2000
"""A log line's length; longer ones are cut."""
MAX_LOG_LINES = 20_000
"""Log lines stored per job; later ones are dropped (the job's log file keeps everything)."""
MAX_READ = 10_000
"""Rows returned by one read."""
LOG_LEVELS = ("info", "warning", "error")


class ParamRefusedError(JobError):
    """A change the job cannot take: it has ended, or too many are waiting already."""


@dataclass(frozen=True)
class MetricsRow:
    """One dump: its ``seq``, the job's ``step`` (timesteps), when it was recorded, and ``{key: value or None}``."""

    seq: int
    step: int
    recorded: str
    metrics: dict[str, float | None]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


@dataclass(frozen=True)
class ParamRequest:
    """A requested change and what became of it (``applied`` and ``error`` both ``None`` while pending)."""

    seq: int
    job_id: str
    name: str
    value: Any
    requested_by: str
    requested: str
    applied: str | None
    timestep: int | None
    previous: Any
    error: str | None

    @property
    def pending(self) -> bool:
        """Whether the job has not taken it yet."""
        return self.applied is None and self.error is None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


@dataclass(frozen=True)
class LogLine:
    """One log line of a job."""

    seq: int
    recorded: str
    level: str
    text: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def _json_number(value: float) -> float | None:
    return value if math.isfinite(value) else None


_PARAM_COLUMNS = "seq, job_id, name, value, requested_by, requested, applied, timestep, previous, error"


def _request(row: tuple[Any, ...]) -> ParamRequest:
    seq, job_id, name, value, by, requested, applied, timestep, previous, error = row
    return ParamRequest(
        seq, job_id, name, json.loads(value), by, requested, applied, timestep,
        None if previous is None else json.loads(previous), error,
    )  # fmt: skip


class LiveRecords:
    """The live tables of a job database (module docstring).

    Args:
        database: The job database (initialized: schema 2).
    """

    def __init__(self, database: JobDatabase) -> None:
        self.database = database

    # -- metrics ----------------------------------------------------------------------------------------------

    def add_metrics(self, job_id: str, step: int, metrics: dict[str, float]) -> None:
        """Record one dump of ``job_id``'s logger (the job process's :class:`MetricsWriter` sink)."""
        kept = {str(key)[:MAX_KEY_CHARS]: _json_number(float(value)) for key, value in list(metrics.items())}
        kept = dict(list(kept.items())[:MAX_METRICS])
        with self.database.transaction() as conn:
            conn.execute(
                "INSERT INTO job_metrics (job_id, step, recorded, metrics) VALUES (?, ?, ?, ?)",
                (job_id, int(step), utc_now(), json.dumps(kept, allow_nan=False)),
            )

    def metrics(self, job_id: str, after: int = 0, limit: int = MAX_READ) -> list[MetricsRow]:
        """The dumps of ``job_id`` after ``seq`` ``after``, oldest first."""
        after, limit = _check_read(after, limit)
        with self.database.connect() as conn:
            rows = conn.execute(
                "SELECT seq, step, recorded, metrics FROM job_metrics WHERE job_id = ? AND seq > ? ORDER BY seq "
                "LIMIT ?",
                (job_id, after, limit),
            ).fetchall()
        return [MetricsRow(seq, step, recorded, json.loads(metrics)) for seq, step, recorded, metrics in rows]

    # -- parameter changes ------------------------------------------------------------------------------------

    def request_change(self, job_id: str, name: Any, value: Any, requested_by: str) -> ParamRequest:
        """Store a change for ``job_id`` to apply at its next rollout boundary, after validating it.

        Raises:
            FieldError: An unknown or fixed parameter, or a value out of range (nothing is stored).
            UnknownJobError: No such job.
            ParamRefusedError: The job has ended, or :data:`MAX_PENDING` changes are waiting already.
        """
        from sb3_ext.live_params import check_change  # imports SB3: late, as the service loads it

        checked = check_change(name, value)
        with self.database.transaction() as conn:
            row = conn.execute("SELECT state FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            if row is None:
                raise UnknownJobError(f"unknown job {job_id!r}")
            if row[0] in FINAL_STATES:
                raise ParamRefusedError(f"job {job_id} has ended ({row[0]}): its parameters no longer change")
            (pending,) = conn.execute(
                "SELECT count(*) FROM job_params WHERE job_id = ? AND applied IS NULL AND error IS NULL", (job_id,)
            ).fetchone()
            if pending >= MAX_PENDING:
                raise ParamRefusedError(f"job {job_id} has {pending} changes waiting already (at most {MAX_PENDING})")
            cursor = conn.execute(
                "INSERT INTO job_params (job_id, name, value, requested_by, requested) VALUES (?, ?, ?, ?, ?)",
                (job_id, name, json.dumps(checked), str(requested_by)[:200], utc_now()),
            )
            new = conn.execute(f"SELECT {_PARAM_COLUMNS} FROM job_params WHERE seq = ?", (cursor.lastrowid,))
            return _request(new.fetchone())

    def changes(self, job_id: str, pending_only: bool = False) -> list[ParamRequest]:
        """Every change requested for ``job_id`` (or the pending ones), oldest first."""
        pending = " AND applied IS NULL AND error IS NULL" if pending_only else ""
        with self.database.connect() as conn:
            rows = conn.execute(
                f"SELECT {_PARAM_COLUMNS} FROM job_params WHERE job_id = ?{pending} ORDER BY seq LIMIT ?",
                (job_id, MAX_READ),
            ).fetchall()
        return [_request(row) for row in rows]

    def pending_changes(self, job_id: str) -> list[dict[str, Any]]:
        """The pending changes as :class:`~sb3_ext.live_params.LiveParams` takes them (``request_id`` = ``seq``)."""
        return [
            {"name": r.name, "value": r.value, "request_id": str(r.seq)}
            for r in self.changes(job_id, pending_only=True)
        ]

    def acknowledge(self, job_id: str, ack: Any) -> None:
        """Record what became of a change (a :class:`~sb3_ext.live_params.ParamAck` whose ``request_id`` is a seq)."""
        if ack.request_id is None or not str(ack.request_id).isdigit():
            return
        with self.database.transaction() as conn:
            conn.execute(
                "UPDATE job_params SET applied = ?, timestep = ?, previous = ?, error = ? "
                "WHERE seq = ? AND job_id = ? AND applied IS NULL AND error IS NULL",
                (
                    utc_now() if ack.applied else None,
                    int(ack.timestep),
                    json.dumps(ack.previous) if ack.applied else None,
                    None if ack.applied else str(ack.error)[:MAX_LOG_CHARS],
                    int(ack.request_id),
                    job_id,
                ),
            )

    # -- log --------------------------------------------------------------------------------------------------

    def add_log(self, job_id: str, text: str, level: str = "info") -> None:
        """Record a log line of ``job_id`` (cut to :data:`MAX_LOG_CHARS`; dropped past :data:`MAX_LOG_LINES`)."""
        if level not in LOG_LEVELS:
            raise FieldError("level", f"must be one of {list(LOG_LEVELS)}", level)
        with self.database.transaction() as conn:
            (count,) = conn.execute("SELECT count(*) FROM job_log WHERE job_id = ?", (job_id,)).fetchone()
            if count < MAX_LOG_LINES:
                conn.execute(
                    "INSERT INTO job_log (job_id, recorded, level, text) VALUES (?, ?, ?, ?)",
                    (job_id, utc_now(), level, str(text)[:MAX_LOG_CHARS]),
                )

    def log(self, job_id: str, after: int = 0, limit: int = MAX_READ) -> list[LogLine]:
        """The log lines of ``job_id`` after ``seq`` ``after``, oldest first."""
        after, limit = _check_read(after, limit)
        with self.database.connect() as conn:
            rows = conn.execute(
                "SELECT seq, recorded, level, text FROM job_log WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                (job_id, after, limit),
            ).fetchall()
        return [LogLine(*row) for row in rows]


def _check_read(after: Any, limit: Any) -> tuple[int, int]:
    check_int("after", after, 0)
    check_int("limit", limit, 1, MAX_READ)
    return int(after), int(limit)
