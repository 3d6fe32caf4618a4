"""Training jobs: each job trains in its own process; its state and progress live in SQLite.

The HTTP API's ``POST /train``, ``GET /train/{job_id}`` and ``DELETE /train/{job_id}`` map to
:meth:`JobManager.submit`, :meth:`JobManager.get` and :meth:`JobManager.cancel`. Several API worker processes
may share one job database: every state lives in SQLite, none in memory, and every operation opens its own
connection::

    registry = ModelRegistry("runs/registry")
    jobs = JobManager("runs/jobs", registry, max_concurrent=1, max_timesteps=2_000_000)
    job = jobs.submit(JobConfig(timesteps=300_000, activate=True))
    jobs.refresh()                 # call regularly (or before reads): settles dead jobs, starts queued ones
    print(jobs.get(job.job_id).timesteps_done)

States (``Job.state``)::

    queued ──refresh (a slot is free)──> running ──the job process──> succeeded | failed | cancelled
       │                                    │
       └──cancel──> cancelled               └──process gone without a final state (refresh, cancel)──> failed,
                                               or succeeded if it had registered its model, or cancelled if a
                                               cancel was requested

``succeeded``, ``failed`` and ``cancelled`` are final: nothing changes them.

The database, its layout and the job records are in :mod:`fitness_weights_api.job_store`, the config in
:mod:`fitness_weights_api.job_config`, and the job process in :mod:`fitness_weights_api.train_job`.

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
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fitness_weights_api.job_config import JobConfig
from fitness_weights_api.job_live import LiveRecords, LogLine, MetricsRow, ParamRequest
from fitness_weights_api.job_store import (
    CANCELLED,
    CHECKPOINT_FILE,
    FAILED,
    FINAL_STATES,
    JOB_COLUMNS,
    JOB_STATES,
    LOCK_FILE,
    LOG_FILE,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    Job,
    JobDatabase,
    JobError,
    QueueFullError,
    UnknownJobError,
    job_from_row,
    public_error,
    utc_now,
)
from fitness_weights_api.registry import ModelRegistry
from fitness_weights_api.storage import PARTIAL_PREFIX, URL_PREFIX, database_path
from fitness_weights_env.errors import FieldError, check_int

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: JobManager refuses to start
    fcntl = None  # type: ignore[assignment]

__all__ = ["MIN_MEMORY_MB", "JobManager"]

MIN_MEMORY_MB = 256
"""The least ``memory_mb``: below it a job process cannot even record its failure (SQLite needs the room)."""

_JOB_ID_RE = re.compile(r"[0-9a-f]{32}")


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
        FieldError: An invalid argument (``field`` names it), or a ``database_url`` naming the registry's file.
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
            raise FieldError("root", "must be a directory path", root)
        if not isinstance(registry, ModelRegistry):
            raise FieldError("registry", f"must be a ModelRegistry, got {type(registry).__name__}")
        check_int("max_concurrent", max_concurrent, 1)
        check_int("max_queued", max_queued, 1)
        check_int("max_timesteps", max_timesteps, 1)
        check_int("max_n_envs", max_n_envs, 1)
        check_int("max_eval_trainees", max_eval_trainees, 1)
        if memory_mb is not None:
            check_int("memory_mb", memory_mb, MIN_MEMORY_MB)
        check_int("checkpoint_rollouts", checkpoint_rollouts, 1)
        check_int("nice", nice, 0, 19)
        for name, value in (("cancel_grace_s", cancel_grace_s), ("checkpoint_seconds", checkpoint_seconds)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (0 < value < math.inf):
                raise FieldError(name, "must be a finite number of seconds above 0", value)
        if not isinstance(python, (str, os.PathLike)) or not os.fspath(python):
            raise FieldError("python", "must be the path of a Python interpreter", python)
        if env is not None and not (
            isinstance(env, Mapping) and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())
        ):
            raise FieldError("env", "must map names to strings")
        self.root = Path(root).absolute()
        self.jobs_dir = self.root / "jobs"
        self.registry = registry
        self.database_url = f"{URL_PREFIX}{self.root / 'jobs.sqlite'}" if database_url is None else database_url
        self.database_path = database_path(self.database_url)
        if self.database_path == registry.database_path:
            raise FieldError("database_url", "is the registry's database; give the jobs their own file", database_url)
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
        self.live = LiveRecords(self.database)
        """The jobs' metrics, parameter changes and logs (:mod:`fitness_weights_api.job_live`)."""
        self._lock = threading.Lock()
        self._processes: dict[str, subprocess.Popen[bytes]] = {}  # the job processes this instance started

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r}, database_url={self.database_url!r})"

    # -- public API -----------------------------------------------------------------------------------------

    def submit(self, config: JobConfig | Mapping[str, Any]) -> Job:
        """Queue a training job, then :meth:`refresh` (which starts it if a slot is free).

        Args:
            config: A :class:`~fitness_weights_api.job_config.JobConfig`, or a mapping for its ``from_dict``.

        Returns:
            The job as it is after the refresh (``queued`` or ``running``).

        Raises:
            FieldError: An invalid config, ``timesteps`` above ``max_timesteps``, ``n_envs`` above ``max_n_envs``
                (``field`` is ``preset`` when the preset's own ``n_envs`` is), ``eval_trainees`` above
                ``max_eval_trainees``, or a rollout (``n_envs`` times the preset's ``n_steps``, the least PPO
                trains) above ``max_timesteps`` (``field`` names the field).
            QueueFullError: ``max_queued`` jobs are waiting already.
            JobError: A failed database operation.
        """
        config = config if isinstance(config, JobConfig) else JobConfig.from_dict(config)
        if config.timesteps > self.max_timesteps:
            raise FieldError("timesteps", f"must be at most {self.max_timesteps} (max_timesteps)", config.timesteps)
        n_envs = config.envs()
        if n_envs > self.max_n_envs:
            if config.n_envs is not None:
                raise FieldError("n_envs", f"must be at most {self.max_n_envs} (max_n_envs)", n_envs)
            reason = (
                f"too large: the {config.preset} preset steps {n_envs} envs, above max_n_envs {self.max_n_envs}; "
                f"set n_envs to at most {self.max_n_envs}"
            )
            raise FieldError("preset", reason)
        if config.eval_trainees > self.max_eval_trainees:
            reason = f"must be at most {self.max_eval_trainees} (max_eval_trainees)"
            raise FieldError("eval_trainees", reason, config.eval_trainees)
        rollout = config.rollout_size()
        if rollout > self.max_timesteps:  # PPO trains whole rollouts: one is the least a job trains
            name = "n_envs" if config.n_envs is not None else "preset"
            reason = (
                f"too large: one rollout ({config.envs()} envs x {config.n_steps()} steps) is {rollout} steps, "
                f"above max_timesteps {self.max_timesteps}"
            )
            raise FieldError(name, reason)
        job_id = uuid.uuid4().hex
        with self.database.transaction() as conn:
            (queued,) = conn.execute("SELECT count(*) FROM jobs WHERE state = ?", (QUEUED,)).fetchone()
            if queued >= self.max_queued:
                raise QueueFullError(f"the job queue is full ({queued} jobs waiting, max_queued {self.max_queued})")
            conn.execute(
                "INSERT INTO jobs (job_id, state, config, created, total_timesteps) VALUES (?, ?, ?, ?, ?)",
                (job_id, QUEUED, json.dumps(config.to_dict()), utc_now(), config.timesteps),
            )
        self.refresh()
        return self.get(job_id)

    def get(self, job_id: str) -> Job:
        """The job ``job_id`` as recorded (call :meth:`refresh` first to settle a job whose process died).

        Raises:
            FieldError: ``job_id`` is not a job id (32 lowercase hex digits).
            UnknownJobError: No such job.
        """
        _check_job_id(job_id)
        with self.database.connect() as conn:
            row = conn.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        if row is None:
            raise UnknownJobError(f"unknown job {job_id!r}")
        return job_from_row(row)

    def list(self, limit: int = 100, state: str | None = None) -> builtins.list[Job]:
        """The latest ``limit`` jobs (all, or those in ``state``), newest first.

        Raises:
            FieldError: ``limit`` is not an integer from 1 to 10000, or ``state`` is not a job state.
        """
        check_int("limit", limit, 1, 10_000)
        if state is not None and state not in JOB_STATES:
            raise FieldError("state", f"must be one of {list(JOB_STATES)} or None", state)
        where, params = ("", ()) if state is None else ("WHERE state = ?", (state,))
        with self.database.connect() as conn:
            rows = conn.execute(
                f"SELECT {JOB_COLUMNS} FROM jobs {where} ORDER BY number DESC LIMIT ?", (*params, limit)
            ).fetchall()
        return [job_from_row(row) for row in rows]

    def set_param(self, job_id: str, name: Any, value: Any, requested_by: str) -> ParamRequest:
        """Request a parameter change of a queued or running job, applied at its next rollout boundary.

        Raises:
            FieldError: ``job_id`` is not a job id, or the change is invalid (``field`` names the parameter);
                nothing is stored.
            UnknownJobError: No such job.
            JobError: The job has ended, or too many changes are waiting.
        """
        _check_job_id(job_id)
        return self.live.request_change(job_id, name, value, requested_by)

    def params(self, job_id: str) -> builtins.list[ParamRequest]:
        """Every change requested for the job, oldest first, with what became of it."""
        self.get(job_id)
        return self.live.changes(job_id)

    def metrics(self, job_id: str, after: int = 0, limit: int = 10_000) -> builtins.list[MetricsRow]:
        """The job's logged metrics after ``seq`` ``after`` (one row per logger dump), oldest first."""
        self.get(job_id)
        return self.live.metrics(job_id, after, limit)

    def log(self, job_id: str, after: int = 0, limit: int = 10_000) -> builtins.list[LogLine]:
        """The job's log lines after ``seq`` ``after``, oldest first."""
        self.get(job_id)
        return self.live.log(job_id, after, limit)

    def cancel(self, job_id: str) -> Job:
        """Cancel a job: a queued one at once; a running one by ``SIGTERM``, then ``SIGKILL`` (blocks until gone).

        A running job's process group gets ``SIGTERM`` (the job stops and marks itself cancelled); if it is still
        alive after ``cancel_grace_s`` seconds, ``SIGKILL``. A job that finished meanwhile keeps its final state
        (a job that had already registered its model ends ``succeeded``). A job already in a final state is
        returned unchanged: cancelling is idempotent.

        Returns:
            The job after the cancel (normally ``cancelled``).

        Raises:
            FieldError: ``job_id`` is not a job id.
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
                conn.execute("UPDATE jobs SET state = ?, finished = ? WHERE job_id = ?", (CANCELLED, utc_now(), job_id))
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
                        (FAILED, utc_now(), public_error(f"cannot start the job process: {err}"), job_id),
                    )
                    return job_id
                if process is None:
                    continue  # the process of a rolled-back start still holds the lock: later
                try:
                    conn.execute(
                        "UPDATE jobs SET state = ?, started = ?, pid = ? WHERE job_id = ?",
                        (RUNNING, utc_now(), process.pid, job_id),
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
                (state, utc_now(), version, public_error(error), checkpoint, job_id),
            )
        _remove_partial_files(job_dir)  # its process is dead: nobody writes them any more
        return self.get(job_id)

    def _registered_version(self, job_id: str) -> str | None:
        """The registry version whose metadata names ``job_id``, or None."""
        for record in reversed(self.registry.versions()):
            if record.metadata.get("job_id") == job_id:
                return record.version
        return None


# -- helpers -----------------------------------------------------------------------------------------------------------


def _check_job_id(job_id: Any) -> None:
    if not isinstance(job_id, str) or not _JOB_ID_RE.fullmatch(job_id):
        raise FieldError("job_id", "must be a job id (32 lowercase hex digits)", job_id)


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
