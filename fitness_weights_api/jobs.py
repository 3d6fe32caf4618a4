"""Training jobs: each job trains in its own process; its state and progress live in SQLite.

The HTTP API's ``POST /train``, ``GET /train/{job_id}`` and ``DELETE /train/{job_id}`` map to
:meth:`JobManager.submit`, :meth:`JobManager.get` and :meth:`JobManager.cancel`. Several API worker processes
may share one job database: every state lives in SQLite, none in memory, and every operation opens its own
connection::

    registry = ModelRegistry("runs/registry")
    jobs = JobManager("runs/jobs", registry, max_concurrent=1, max_timesteps=2_000_000)
    job = jobs.submit(TrainConfig(timesteps=300_000, activate=True))
    jobs.refresh()                 # call regularly (or before reads): settles dead jobs, starts queued ones
    print(jobs.get(job.job_id).timesteps_done)

States (``Job.state``)::

    queued ──refresh (a slot is free)──> running ──the job process──> succeeded | failed | cancelled
       │                                    │
       └──cancel──> cancelled               └──process gone without a final state (refresh, cancel)──> failed,
                                               or succeeded if it had registered its model, or cancelled if a
                                               cancel was requested

``succeeded``, ``failed`` and ``cancelled`` are final: nothing changes them.

Layout and schema (``PRAGMA user_version`` holds :data:`SCHEMA_VERSION`):

=====================================  ===============================================================
``root/jobs.sqlite``                   the database (the default ``database_url``), WAL mode; its own
                                       file, not the registry's (each refuses a file with other tables)
table ``jobs``                         one row per job, in submission order (``number``)
``root/jobs/<job_id>/job.log``         the job process's stdout and stderr (tracebacks go here)
``root/jobs/<job_id>/lock``            ``flock``-ed by the job process for its whole life
``root/jobs/<job_id>/checkpoint.zip``  the last checkpoint (SB3 zip), replaced atomically: saved at the end of
                                       the first rollout, then after every ``checkpoint_rollouts`` rollouts
                                       or ``checkpoint_seconds`` seconds since the last one
``root/jobs/<job_id>/model.zip``       the final model, written atomically before it is registered
=====================================  ===============================================================

How nothing is lost or half-written:

* **Starting.** :meth:`JobManager.refresh` claims the oldest queued job in a ``BEGIN IMMEDIATE`` transaction
  (which serializes all processes sharing the database), so at most ``max_concurrent`` jobs run, whoever
  refreshes. Inside it, it ``flock``-s the job's lock file, starts ``python -m fitness_weights_api.train_job``
  in a new session (stdout and stderr to the log) with the locked descriptor inherited, records the pid and
  commits. The job process first checks, in its own ``BEGIN IMMEDIATE`` (so after that commit), that the row
  is running with its pid; a process whose claim was rolled back exits without doing anything.
* **Is a job process alive?** Its lock file is locked exactly as long as the process lives: the lock is taken
  before the process exists and the kernel releases it when the process dies, however it dies (a zombie holds
  no lock). Testing the lock (``LOCK_NB``) is immune to pid reuse, which a pid test is not, and works from any
  process on the machine. The pid is used only to signal the process group, after the lock test says it lives.
* **Crashes.** An exception in the job process marks the job ``failed`` with ``"<ExceptionType>: <message>"``
  (the traceback is in the log). A process killed without writing a final state (``SIGKILL``, the kernel's
  out-of-memory killer) is settled by the next :meth:`~JobManager.refresh`: ``failed`` with ``"the job process
  was killed by signal SIGKILL"`` or ``"... exited with code N ..."`` (the exit status is known to the manager
  that started it; another one says that the process ended without recording a final state). Its
  ``checkpoint`` stays.
* **Bounded.** :meth:`~JobManager.submit` refuses configs above ``max_timesteps``, ``max_n_envs`` and
  ``max_eval_trainees``, and each job process runs under an address-space limit (``RLIMIT_AS``) of
  ``memory_mb`` MiB, set before it imports torch. A job that reaches it fails with ``"MemoryError: the job ran
  out of its memory limit of N MiB ..."`` (naming ``memory_mb`` and ``FITNESS_WEIGHTS_JOB_MEMORY_MB``); it keeps
  its checkpoint and registers nothing.
* **No internals in errors.** The recorded ``error`` (which the API shows) names no process id and no absolute
  path: absolute paths in exception messages are cut to their last component, and a job's log is referred to
  as "the job's log" (:meth:`~JobManager.job_dir` finds it). The log keeps the full traceback.
* **Registering.** The job saves ``model.zip``, evaluates it, registers it (its registry metadata names the
  job), then marks the job succeeded with the version. A ``SIGTERM`` in between is deferred. If the process
  dies between the two writes, the settling step finds the version whose metadata names the job and marks
  the job succeeded with it; without one it is failed or cancelled. So a failed or cancelled job has never
  registered a model, and a model is registered only after its training finished.
* **Cancelling.** :meth:`~JobManager.cancel` cancels a queued job at once. For a running one it sets the
  job's ``cancel_requested`` flag (the job polls it after every rollout), sends ``SIGTERM`` to the process
  group (the job process then stops and marks itself cancelled), and after ``cancel_grace_s`` seconds
  ``SIGKILL``; then it settles the job as above.

POSIX only (``fcntl.flock``, process groups). The SQLite file must be on a local file system.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import math
import numbers
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fitness_weights_api.registry import ModelRegistry
from fitness_weights_api.sqlite import URL_PREFIX, connection, database_path, schema_and_tables, set_wal

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: JobManager refuses to start
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "CANCELLED",
    "FAILED",
    "FINAL_STATES",
    "JOB_STATES",
    "QUEUED",
    "RUNNING",
    "SCHEMA_VERSION",
    "SUCCEEDED",
    "ConfigError",
    "Job",
    "JobError",
    "JobManager",
    "QueueFullError",
    "TrainConfig",
    "UnknownJobError",
]

SCHEMA_VERSION = 1
"""The job database schema version, stored in ``PRAGMA user_version``."""

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
JOB_STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)
"""Every job state, in lifecycle order."""
FINAL_STATES = frozenset({SUCCEEDED, FAILED, CANCELLED})
"""The states nothing changes."""

POLICIES = ("AttnCQQXPolicy", "MlpPolicy")
"""The policies a job may train."""
PRESET_NAMES = ("cpu", "gpu", "sb3")
"""The throughput presets a job may use: ``sb3_ext.PRESETS``' names (tested equal; sb3_ext imports torch)."""

LOG_FILE = "job.log"
LOCK_FILE = "lock"
CHECKPOINT_FILE = "checkpoint.zip"
MODEL_FILE = "model.zip"
PARTIAL_PREFIX = ".partial-"
"""Prefix of a model or checkpoint being written in a job folder (renamed when complete)."""

MAX_N_ENVS = 16_384
"""The most ``n_envs`` any config may ask for (a manager's ``max_n_envs`` bounds its jobs further)."""
MAX_EVAL_TRAINEES = 10_000
"""The most ``eval_trainees`` any config may ask for (a manager's ``max_eval_trainees`` bounds its jobs further)."""
MAX_SEED = 2**31 - 1
MAX_ERROR_CHARS = 2000

MIN_MEMORY_MB = 256
"""The least ``memory_mb``: below it a job process cannot even record its failure (SQLite needs the room)."""
MEMORY_SETTING = "FITNESS_WEIGHTS_JOB_MEMORY_MB"
"""The service setting of a job's memory limit (``JobManager(memory_mb=...)``), named in out-of-memory errors."""

_JOB_ID_RE = re.compile(r"[0-9a-f]{32}")
# An absolute POSIX path in a message: a "/" not preceded by a word character, a dot or another path character.
_ABSOLUTE_PATH_RE = re.compile(r"(?<![\w.~/\\-])/[^\s'\"`,;:()\[\]{}<>]*")
_DEVICE_RE = re.compile(r"auto|cpu|mps|cuda(:[0-9]+)?")
_TABLES = {"jobs", "sqlite_sequence"}
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
_COLUMNS = (
    "job_id, state, config, created, started, finished, timesteps_done, total_timesteps, last_mean_reward, "
    "checkpoint, model_version, error, pid, cancel_requested"
)


class JobError(Exception):
    """A failed job-database operation, a full queue, or a job manager that cannot work here."""


class ConfigError(ValueError):
    """An invalid training config or manager argument. ``field`` names it; the message starts with it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


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
class TrainConfig:
    """What a training job trains; validated on construction (a :class:`ConfigError` names the field at fault).

    The job builds ``sb3_ext.make_vec_env("FitnessWeights-v0", n_envs, vectorization="batched", seed=seed)`` and
    ``sb3_ext.PPO(policy, env, learning_rate=CosineSchedule(learning_rate, learning_rate / 10), seed=seed,
    device=device, policy_kwargs=policy_kwargs, **preset.ppo_kwargs())`` (the schedule of
    ``examples/train_ppo.py``; the preset's ``batch_size`` is capped at the rollout size ``n_envs * n_steps``),
    trains it for ``timesteps`` (SB3 finishes the rollout in progress, so a few more may be done), evaluates it
    with ``sb3_ext.evaluate.evaluate_model`` on ``eval_trainees`` held-out trainees, and registers it with the
    normalized score as ``evaluation_score``.

    Args:
        timesteps: Environment steps to train for, at least 1 (and at most the manager's ``max_timesteps``).
        policy: ``"AttnCQQXPolicy"`` or ``"MlpPolicy"``.
        preset: Throughput preset, a name in ``sb3_ext.PRESETS`` (``"cpu"``, ``"gpu"``, ``"sb3"``).
        n_envs: Parallel environments, overriding the preset's; ``None`` keeps the preset's.
        seed: Seed of the environments, the policy and the evaluation, from 0 to 2**31 - 1.
        learning_rate: Initial learning rate, finite and positive; it anneals (cosine) to a tenth of it.
        policy_kwargs: Keyword arguments of the policy (e.g. ``{"embed_dim": 16}``), a JSON object with string
            keys; stored as JSON, so tuples come back as lists.
        eval_trainees: Held-out trainees of the final evaluation, at least 2.
        activate: Make the registered model the active one.
        device: Torch device of the training: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:<n>"`` or ``"mps"``.
    """

    timesteps: int
    policy: str = "AttnCQQXPolicy"
    preset: str = "cpu"
    n_envs: int | None = None
    seed: int = 0
    learning_rate: float = 2e-3
    policy_kwargs: dict[str, Any] | None = None
    eval_trainees: int = 50
    activate: bool = False
    device: str = "auto"

    def __post_init__(self) -> None:
        _check_int("timesteps", self.timesteps, 1)
        if self.policy not in POLICIES:
            raise ConfigError("policy", f"policy must be one of {list(POLICIES)}, got {self.policy!r}")
        from sb3_ext.presets import PRESETS  # the names live there (sb3_ext imports torch: only when needed)

        if not isinstance(self.preset, str) or self.preset not in PRESETS:
            raise ConfigError("preset", f"preset must be one of {sorted(PRESETS)}, got {self.preset!r}")
        if self.n_envs is not None:
            _check_int("n_envs", self.n_envs, 1, MAX_N_ENVS)
        _check_int("seed", self.seed, 0, MAX_SEED)
        rate = self.learning_rate
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not (math.isfinite(rate) and rate > 0):
            raise ConfigError("learning_rate", f"learning_rate must be a finite number above 0, got {rate!r}")
        object.__setattr__(self, "learning_rate", float(rate))
        if self.policy_kwargs is not None:
            object.__setattr__(self, "policy_kwargs", _json_object("policy_kwargs", self.policy_kwargs))
        _check_int("eval_trainees", self.eval_trainees, 2, MAX_EVAL_TRAINEES)
        if not isinstance(self.activate, bool):
            raise ConfigError("activate", f"activate must be a bool, got {self.activate!r}")
        if not isinstance(self.device, str) or not _DEVICE_RE.fullmatch(self.device):
            message = f"device must be 'auto', 'cpu', 'cuda', 'cuda:<n>' or 'mps', got {self.device!r}"
            raise ConfigError("device", message)

    def n_steps(self) -> int:
        """Steps per env per rollout: the preset's ``n_steps``."""
        from sb3_ext.presets import get_preset

        return get_preset(self.preset).n_steps

    def envs(self) -> int:
        """Parallel environments the job steps: ``n_envs``, or the preset's when it is ``None``."""
        from sb3_ext.presets import get_preset

        return get_preset(self.preset).n_envs if self.n_envs is None else self.n_envs

    def rollout_size(self) -> int:
        """Env steps per rollout, ``n_envs * n_steps`` (the preset's ``n_envs`` unless overridden)."""
        return self.envs() * self.n_steps()

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-ready (a new dict each time)."""
        data = {field.name: getattr(self, field.name) for field in fields(self)}
        return json.loads(json.dumps(data))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """The config with the fields of ``data`` (the other fields keep their defaults).

        Raises:
            ValueError: ``data`` is not a mapping, has an unknown key or lacks ``timesteps`` (the message names
                the key), or a field is invalid.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"a training config must be a JSON object, got {type(data).__name__}")
        names = [field.name for field in fields(cls)]
        for key in data:
            if key not in names:
                message = f"unknown key {key!r} in the training config; known keys: {', '.join(names)}"
                raise ConfigError(str(key), message)
        if "timesteps" not in data:
            raise ConfigError("timesteps", "timesteps is required")
        return cls(**data)


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
    config: TrainConfig
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


class JobDatabase:
    """The job database: schema, connections and the writes of the job process (used by :mod:`.train_job`).

    Args:
        path: The SQLite file.
        database_url: The URL it came from (named in errors).
    """

    def __init__(self, path: Path, database_url: str) -> None:
        self.path = path
        self.database_url = database_url

    @contextlib.contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A new connection (autocommit; transactions are explicit); SQLite errors become :class:`JobError`."""
        with connection(self.path, JobError, "job database", "PRAGMA synchronous = FULL") as conn:
            yield conn

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

    def initialize(self) -> None:
        """Switch to WAL and create the schema if missing; refuse a database that is not a job database."""
        with self.connect() as conn:
            self._check_schema(conn)  # before WAL: leave a database that is not ours as it is
            mode = set_wal(conn)
            if mode.lower() != "wal":
                raise JobError(
                    f"database_url {self.database_url!r}: SQLite cannot use WAL mode there (journal_mode {mode!r}); "
                    "use a file on a local file system"
                )
        with self.transaction() as conn:
            if self._check_schema(conn) == 0:  # again under the write lock: another process may have created it
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _check_schema(self, conn: sqlite3.Connection) -> int:
        schema, tables = schema_and_tables(conn, SCHEMA_VERSION, self.database_url, JobError)
        if tables - _TABLES or (schema > 0 and "jobs" not in tables):
            raise JobError(
                f"database_url {self.database_url!r} is not a job database: it holds the tables "
                f"{sorted(tables)}; give the jobs their own SQLite file"
            )
        return schema

    # -- the job process's writes ---------------------------------------------------------------------------

    def claimed_config(self, job_id: str, pid: int) -> TrainConfig:
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
        return TrainConfig.from_dict(json.loads(row[2]))

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
            raise ValueError(f"state must be one of {sorted(FINAL_STATES)}, got {state!r}")
        with self.transaction() as conn:
            cursor = conn.execute(
                "UPDATE jobs SET state = ?, finished = ?, model_version = ?, error = ?, "
                "timesteps_done = COALESCE(?, timesteps_done) WHERE job_id = ? AND state = ? AND pid = ?",
                (state, _now(), model_version, public_error(error), timesteps, job_id, RUNNING, pid),
            )
        return cursor.rowcount == 1


class JobManager:
    """Submit, track, cancel and run training jobs; each job trains in its own process.

    One instance per process; several processes (API workers) may share ``root`` and ``database_url``, and
    one instance may be used from several threads. Nothing runs in the background: :meth:`refresh` settles jobs
    whose process died and starts queued jobs, so call it regularly (an API calls it before it answers, or from
    a timer). :meth:`submit` and :meth:`wait` call it. See the module docstring for the state machine and the
    crash guarantees.

    Args:
        root: The jobs directory (database and job folders). Created if missing.
        registry: Where finished jobs register their models (the job process opens the same root and URL).
        database_url: ``"sqlite:///<path>"`` (relative) or ``"sqlite:////<absolute path>"``, a file of its own
            (not the registry's). Defaults to ``root/jobs.sqlite``.
        max_concurrent: Most jobs running at once, counted over every process sharing the database.
        max_queued: Most jobs waiting at once; :meth:`submit` refuses more.
        max_timesteps: Most ``timesteps`` a config may ask for.
        max_n_envs: Most parallel environments a job may step (``n_envs``, or its preset's); memory grows with it.
        max_eval_trainees: Most held-out trainees a job may evaluate (``eval_trainees``).
        memory_mb: Address-space limit (``RLIMIT_AS``) of each job process in MiB (at least 256), or ``None`` for
            none. It
            bounds virtual memory, which exceeds the resident memory (torch maps its libraries, threads reserve
            stacks and malloc arenas). Measured with the CPU build of torch 2.13 (``VmPeak``; the job's log ends
            with its own figures): importing the job's libraries about 600 MiB, a ``cpu``-preset job (64 envs)
            with 200 evaluation trainees about 900-960 MiB (2 to 64 torch threads), 1024 envs with 1000 trainees
            about 1.3 GiB, the ``gpu`` preset (1024 envs, batches of 8192) on the CPU about 1.9 GiB. CUDA
            reserves far more address space than it uses, so a GPU job may need ``None`` or a far larger limit.
        python: The Python interpreter of job processes (it must import ``fitness_weights_api``).
        env: Environment variables added to the job processes' environment (e.g. ``{"OMP_NUM_THREADS": "1"}``).
        cancel_grace_s: Seconds :meth:`cancel` waits after ``SIGTERM`` before ``SIGKILL``.
        checkpoint_rollouts: A job saves a checkpoint at the end of its first rollout, then once this many
            rollouts...
        checkpoint_seconds: ... or this many seconds have passed since its last one, whichever comes first.
        nice: Added to the job processes' niceness (0 to 19), so that training yields the CPU to the processes
            that answer requests.

    Raises:
        ValueError: An invalid argument (the message names it), or a ``database_url`` naming the registry's file.
        JobError: No ``fcntl`` (not POSIX), a directory that cannot be created, or a database that is not a job
            database, has a newer schema, or cannot use WAL mode.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        registry: ModelRegistry,
        *,
        database_url: str | None = None,
        max_concurrent: int = 1,
        max_queued: int = 100,
        max_timesteps: int = 2_000_000,
        max_n_envs: int = 1024,
        max_eval_trainees: int = 1000,
        memory_mb: int | None = 8192,
        python: str | os.PathLike[str] = sys.executable,
        env: Mapping[str, str] | None = None,
        cancel_grace_s: float = 10.0,
        checkpoint_rollouts: int = 10,
        checkpoint_seconds: float = 60.0,
        nice: int = 10,
    ) -> None:
        if fcntl is None:  # pragma: no cover
            raise JobError("training jobs need a POSIX system (fcntl.flock, process groups)")
        if not isinstance(root, (str, os.PathLike)) or not os.fspath(root):
            raise ValueError(f"root must be a directory path, got {root!r}")
        if not isinstance(registry, ModelRegistry):
            raise ValueError(f"registry must be a ModelRegistry, got {type(registry).__name__}")
        _check_int("max_concurrent", max_concurrent, 1)
        _check_int("max_queued", max_queued, 1)
        _check_int("max_timesteps", max_timesteps, 1)
        _check_int("max_n_envs", max_n_envs, 1)
        _check_int("max_eval_trainees", max_eval_trainees, 1)
        if memory_mb is not None:
            _check_int("memory_mb", memory_mb, MIN_MEMORY_MB)
        _check_int("checkpoint_rollouts", checkpoint_rollouts, 1)
        _check_int("nice", nice, 0, 19)
        for name, value in (("cancel_grace_s", cancel_grace_s), ("checkpoint_seconds", checkpoint_seconds)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (0 < value < math.inf):
                raise ValueError(f"{name} must be a finite number of seconds above 0, got {value!r}")
        if not isinstance(python, (str, os.PathLike)) or not os.fspath(python):
            raise ValueError(f"python must be the path of a Python interpreter, got {python!r}")
        if env is not None and not (
            isinstance(env, Mapping) and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())
        ):
            raise ValueError(f"env must map names to strings, got {env!r}")
        self.root = Path(root).absolute()
        self.jobs_dir = self.root / "jobs"
        self.registry = registry
        self.database_url = f"{URL_PREFIX}{self.root / 'jobs.sqlite'}" if database_url is None else database_url
        self.database_path = database_path(self.database_url)
        if self.database_path == registry.database_path:
            raise ValueError(
                f"database_url {self.database_url!r} is the registry's database; give the jobs their own file"
            )
        self.max_concurrent = max_concurrent
        self.max_queued = max_queued
        self.max_timesteps = max_timesteps
        self.max_n_envs = max_n_envs
        self.max_eval_trainees = max_eval_trainees
        self.memory_mb = memory_mb
        self.python = os.fspath(python)
        self.env = dict(env or {})
        self.cancel_grace_s = float(cancel_grace_s)
        self.checkpoint_rollouts = checkpoint_rollouts
        self.checkpoint_seconds = float(checkpoint_seconds)
        self.nice = nice
        for name, directory in (("root", self.jobs_dir), ("database_url", self.database_path.parent)):
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise JobError(f"{name}: cannot create directory {str(directory)!r}: {err}") from err
        self.database = JobDatabase(self.database_path, self.database_url)
        self.database.initialize()
        self._lock = threading.Lock()
        self._processes: dict[str, subprocess.Popen[bytes]] = {}  # the job processes this instance started

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r}, database_url={self.database_url!r})"

    # -- public API -----------------------------------------------------------------------------------------

    def submit(self, config: TrainConfig | Mapping[str, Any]) -> Job:
        """Queue a training job, then :meth:`refresh` (which starts it if a slot is free).

        Args:
            config: A :class:`TrainConfig`, or a mapping for :meth:`TrainConfig.from_dict`.

        Returns:
            The job as it is after the refresh (``queued`` or ``running``).

        Raises:
            ConfigError: An invalid config, ``timesteps`` above ``max_timesteps``, ``n_envs`` above ``max_n_envs``
                (``field`` is ``preset`` when the preset's own ``n_envs`` is), ``eval_trainees`` above
                ``max_eval_trainees``, or a rollout (``n_envs`` times the preset's ``n_steps``, the least PPO
                trains) above ``max_timesteps`` (``field`` names the field).
            QueueFullError: ``max_queued`` jobs are waiting already.
            JobError: A failed database operation.
        """
        if not isinstance(config, TrainConfig):
            config = TrainConfig.from_dict(config)
        if config.timesteps > self.max_timesteps:
            message = f"timesteps must be at most {self.max_timesteps} (max_timesteps), got {config.timesteps}"
            raise ConfigError("timesteps", message)
        n_envs = config.envs()
        if n_envs > self.max_n_envs:
            if config.n_envs is not None:
                message = f"n_envs must be at most {self.max_n_envs} (max_n_envs), got {n_envs}"
                raise ConfigError("n_envs", message)
            message = (
                f"preset too large: the {config.preset} preset steps {n_envs} envs, above max_n_envs "
                f"{self.max_n_envs}; set n_envs to at most {self.max_n_envs}"
            )
            raise ConfigError("preset", message)
        if config.eval_trainees > self.max_eval_trainees:
            message = (
                f"eval_trainees must be at most {self.max_eval_trainees} (max_eval_trainees), "
                f"got {config.eval_trainees}"
            )
            raise ConfigError("eval_trainees", message)
        rollout = config.rollout_size()
        if rollout > self.max_timesteps:  # PPO trains whole rollouts: one is the least a job trains
            name = "n_envs" if config.n_envs is not None else "preset"
            message = (
                f"{name} too large: one rollout ({rollout // config.n_steps()} envs x {config.n_steps()} steps of the "
                f"{config.preset} preset) is {rollout} steps, above max_timesteps {self.max_timesteps}"
            )
            raise ConfigError(name, message)
        job_id = uuid.uuid4().hex
        with self.database.transaction() as conn:
            (queued,) = conn.execute("SELECT count(*) FROM jobs WHERE state = ?", (QUEUED,)).fetchone()
            if queued >= self.max_queued:
                raise QueueFullError(f"the job queue is full ({queued} jobs waiting, max_queued {self.max_queued})")
            conn.execute(
                "INSERT INTO jobs (job_id, state, config, created, total_timesteps) VALUES (?, ?, ?, ?, ?)",
                (job_id, QUEUED, json.dumps(config.to_dict()), _now(), config.timesteps),
            )
        self.refresh()
        return self.get(job_id)

    def get(self, job_id: str) -> Job:
        """The job ``job_id`` as recorded (call :meth:`refresh` first to settle a job whose process died).

        Raises:
            ValueError: ``job_id`` is not a job id (32 lowercase hex digits).
            UnknownJobError: No such job.
        """
        _check_job_id(job_id)
        with self.database.connect() as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        if row is None:
            raise UnknownJobError(f"unknown job {job_id!r}")
        return _to_job(row)

    def list(self, limit: int = 100, state: str | None = None) -> builtins.list[Job]:
        """The latest ``limit`` jobs (all, or those in ``state``), newest first.

        Raises:
            ValueError: ``limit`` is not an integer from 1 to 10000, or ``state`` is not a job state.
        """
        _check_int("limit", limit, 1, 10_000)
        if state is not None and state not in JOB_STATES:
            raise ValueError(f"state must be one of {list(JOB_STATES)} or None, got {state!r}")
        where, params = ("", ()) if state is None else ("WHERE state = ?", (state,))
        with self.database.connect() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM jobs {where} ORDER BY number DESC LIMIT ?", (*params, limit)
            ).fetchall()
        return [_to_job(row) for row in rows]

    def cancel(self, job_id: str) -> Job:
        """Cancel a job: a queued one at once; a running one by ``SIGTERM``, then ``SIGKILL`` (blocks until gone).

        A running job's process group gets ``SIGTERM`` (the job stops and marks itself cancelled); if it is still
        alive after ``cancel_grace_s`` seconds, ``SIGKILL``. A job that finished meanwhile keeps its final state
        (a job that had already registered its model ends ``succeeded``). A job already in a final state is
        returned unchanged: cancelling is idempotent.

        Returns:
            The job after the cancel (normally ``cancelled``).

        Raises:
            ValueError: ``job_id`` is not a job id.
            UnknownJobError: No such job.
            JobError: The process outlived ``SIGKILL`` by 10 seconds (then the job stays ``running``, flagged
                ``cancel_requested``, and a later :meth:`refresh` settles it).
        """
        _check_job_id(job_id)
        with self.database.transaction() as conn:
            row = conn.execute("SELECT state FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            if row is None:
                raise UnknownJobError(f"unknown job {job_id!r}")
            state = row[0]
            if state == QUEUED:
                conn.execute("UPDATE jobs SET state = ?, finished = ? WHERE job_id = ?", (CANCELLED, _now(), job_id))
            elif state == RUNNING and self._alive(job_id):  # a dead one failed before the cancel: settled below
                conn.execute("UPDATE jobs SET cancel_requested = 1 WHERE job_id = ?", (job_id,))
        if state == RUNNING:
            self._stop(job_id, self.get(job_id).pid)
            self._settle(job_id)
        return self.get(job_id)

    def refresh(self) -> builtins.list[Job]:
        """Settle running jobs whose process is gone, then start queued jobs while fewer than ``max_concurrent`` run.

        Safe to call at any time from any number of threads and processes sharing the database.

        Returns:
            The jobs whose state this call changed.
        """
        changed = []
        with self.database.connect() as conn:
            running = [job_id for (job_id,) in conn.execute("SELECT job_id FROM jobs WHERE state = ?", (RUNNING,))]
        self._reap(running)
        for job_id in running:
            if not self._alive(job_id):
                job = self._settle(job_id)
                if job is not None:
                    changed.append(job)
        while (job_id := self._start_next()) is not None:
            changed.append(self.get(job_id))
        return changed

    def wait(self, job_id: str, timeout_s: float = 600.0, poll_s: float = 0.2) -> Job:
        """:meth:`refresh` every ``poll_s`` seconds until the job is in a final state; return it.

        Raises:
            TimeoutError: It is not final after ``timeout_s`` seconds (the message gives its state).
        """
        deadline = time.monotonic() + timeout_s
        while True:
            self.refresh()
            job = self.get(job_id)
            if job.state in FINAL_STATES:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} is still {job.state} after {timeout_s} s")
            time.sleep(poll_s)

    def job_dir(self, job_id: str) -> Path:
        """The folder of job ``job_id`` (log, lock, checkpoint, model): ``root/jobs/<job_id>``."""
        _check_job_id(job_id)
        return self.jobs_dir / job_id

    # -- internals ------------------------------------------------------------------------------------------

    def _alive(self, job_id: str) -> bool:
        """Whether the process of the job lives: it holds the job's lock file from before it starts to its death."""
        return _lock_held(self.jobs_dir / job_id / LOCK_FILE)

    def _start_next(self) -> str | None:
        """Claim and start the oldest startable queued job if a slot is free; its id, or None."""
        with self.database.connect() as conn:  # a read first: most refreshes have nothing to start
            counts = dict(
                conn.execute("SELECT state, count(*) FROM jobs WHERE state IN (?, ?) GROUP BY state", (QUEUED, RUNNING))
            )
        if counts.get(QUEUED, 0) == 0 or counts.get(RUNNING, 0) >= self.max_concurrent:
            return None
        with self.database.transaction() as conn:
            (running,) = conn.execute("SELECT count(*) FROM jobs WHERE state = ?", (RUNNING,)).fetchone()
            if running >= self.max_concurrent:
                return None
            queue = conn.execute("SELECT job_id FROM jobs WHERE state = ? ORDER BY number", (QUEUED,)).fetchall()
            for (job_id,) in queue:
                try:
                    process = self._launch(job_id)
                except OSError as err:
                    conn.execute(
                        "UPDATE jobs SET state = ?, finished = ?, error = ? WHERE job_id = ?",
                        (FAILED, _now(), public_error(f"cannot start the job process: {err}"), job_id),
                    )
                    return job_id
                if process is None:
                    continue  # the process of a rolled-back start still holds the lock: later
                try:
                    conn.execute(
                        "UPDATE jobs SET state = ?, started = ?, pid = ? WHERE job_id = ?",
                        (RUNNING, _now(), process.pid, job_id),
                    )
                    with self._lock:
                        self._processes[job_id] = process
                except BaseException:
                    _kill_group(process.pid)
                    process.wait()
                    raise
                return job_id
        return None

    def _launch(self, job_id: str) -> subprocess.Popen[bytes] | None:
        """Lock the job's lock file and start its process holding the lock; None if the lock is taken."""
        job_dir = self.jobs_dir / job_id
        job_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(job_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return None
            command = [
                self.python,
                "-m",
                "fitness_weights_api.train_job",
                f"--root={self.root}",
                f"--database-url={self.database_url}",
                f"--job-id={job_id}",
                f"--registry-root={self.registry.root}",
                f"--registry-url={self.registry.database_url}",
                f"--lock-fd={fd}",
                f"--checkpoint-rollouts={self.checkpoint_rollouts}",
                f"--checkpoint-seconds={self.checkpoint_seconds}",
                f"--nice={self.nice}",
            ]
            if self.memory_mb is not None:
                command.append(f"--memory-mb={self.memory_mb}")
            with open(job_dir / LOG_FILE, "ab") as log:
                return subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    pass_fds=(fd,),
                    env={**os.environ, **self.env},
                )
        finally:
            os.close(fd)  # the child's inherited descriptor keeps the lock

    def _stop(self, job_id: str, pid: int | None) -> None:
        """SIGTERM the job's process group, SIGKILL after the grace period; return once the process is gone."""
        if pid is None or not self._alive(job_id):
            return
        _signal_group(pid, signal.SIGTERM)
        if self._wait_dead(job_id, self.cancel_grace_s):
            return
        if self._alive(job_id):
            _signal_group(pid, signal.SIGKILL)
        if not self._wait_dead(job_id, 10.0):
            raise JobError(f"job {job_id}: its process (pid {pid}) is still alive after SIGKILL")

    def _wait_dead(self, job_id: str, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self._alive(job_id):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def _reap(self, running: builtins.list[str]) -> None:
        """Forget (and reap) this instance's processes whose jobs are no longer running and that exited."""
        with self._lock:
            for job_id, process in builtins.list(self._processes.items()):
                if job_id not in running and process.poll() is not None:
                    del self._processes[job_id]

    def _exit_reason(self, job_id: str) -> str:
        """How the (dead) process of the job ended, as far as this instance knows; reaps it if it is ours.

        Shown by the API, so it names neither the pid nor the log's path (:meth:`job_dir` has the log).
        """
        with self._lock:
            process = self._processes.pop(job_id, None)
        code = None
        if process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = process.wait(timeout=5.0)
        if code is None:
            return "the job process ended without recording a final state; see the job's log"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = str(-code)
            return f"the job process was killed by signal {name}"
        return f"the job process exited with code {code} without recording a final state; see the job's log"

    def _settle(self, job_id: str) -> Job | None:
        """Give a running job whose process is gone its final state; the job, or None if nothing changed."""
        if self._alive(job_id):
            return None
        reason = self._exit_reason(job_id)
        job_dir = self.jobs_dir / job_id
        with self.database.transaction() as conn:
            row = conn.execute(
                "SELECT state, checkpoint, cancel_requested FROM jobs WHERE job_id = ?", (job_id,)
            ).fetchone()
            if row is None or row[0] != RUNNING or self._alive(job_id):
                return None
            state, checkpoint, cancel_requested = row
            version = self._registered_version(job_id)
            if checkpoint is None and (job_dir / CHECKPOINT_FILE).is_file():
                checkpoint = str(job_dir / CHECKPOINT_FILE)  # it died between writing it and recording it
            if version is not None:
                state, error = SUCCEEDED, None  # it died after registering its model, before recording that
            elif cancel_requested:
                state, error = CANCELLED, None
            else:
                state, error = FAILED, reason
            conn.execute(
                "UPDATE jobs SET state = ?, finished = ?, model_version = ?, error = ?, checkpoint = ? "
                "WHERE job_id = ?",
                (state, _now(), version, public_error(error), checkpoint, job_id),
            )
        _remove_partial_files(job_dir)  # its process is dead: nobody writes them any more
        return self.get(job_id)

    def _registered_version(self, job_id: str) -> str | None:
        """The registry version whose metadata names ``job_id``, or None."""
        for record in reversed(self.registry.versions()):
            if record.metadata.get("job_id") == job_id:
                return record.version
        return None


# -- helpers ------------------------------------------------------------------------------------------------


def _now() -> str:
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


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _check_int(name: str, value: Any, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bounds = f"at least {low}" if high is None else f"from {low} to {high}"
        raise ConfigError(name, f"{name} must be an integer {bounds}, got {_short_repr(value)}")


def _check_job_id(job_id: Any) -> None:
    if not isinstance(job_id, str) or not _JOB_ID_RE.fullmatch(job_id):
        raise ValueError(f"job_id must be a job id (32 lowercase hex digits), got {_short_repr(job_id)}")


def _json_object(name: str, value: Any) -> dict[str, Any]:
    """``value`` as read back from its JSON text (a deep copy); it must be an object with string keys."""
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        message = f"{name} must be a JSON object (a dict with string keys) or None, got {_short_repr(value)}"
        raise ConfigError(name, message)
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError, RecursionError) as err:
        raise ConfigError(name, f"{name} is not JSON-serializable: {err}") from None


def _to_job(row: tuple[Any, ...]) -> Job:
    (job_id, state, config, created, started, finished, done, total, reward, checkpoint, version, error, pid,
     cancel) = row  # fmt: skip
    return Job(
        job_id=job_id,
        state=state,
        config=_stored_config(config),
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


def _stored_config(text: str) -> TrainConfig:
    """The config of a stored job, not validated again: it was when submitted (and the job process validates it).

    So reading jobs does not import ``sb3_ext`` (and torch), which the preset check does.
    """
    data = json.loads(text)
    config = object.__new__(TrainConfig)
    for field in fields(TrainConfig):
        object.__setattr__(config, field.name, data.get(field.name, field.default))
    return config


def _lock_held(path: Path) -> bool:
    """Whether some process holds an ``flock`` on ``path`` (False if it does not exist)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # shared: concurrent testers do not disturb each other
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also releases the shared lock
    return False


def _signal_group(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def _kill_group(pid: int) -> None:
    _signal_group(pid, signal.SIGKILL)


def _remove_partial_files(job_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(job_dir):
            if entry.name.startswith(PARTIAL_PREFIX):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
