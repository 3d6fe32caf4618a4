"""The process of one training job, started by :class:`~fitness_weights_api.jobs.JobManager`.

Its command line::

    python -m fitness_weights_api.train_job --root ROOT --database-url URL --job-id ID --registry-root REGISTRY
        --registry-url URL --lock-fd FD [--checkpoint-rollouts N] [--checkpoint-seconds S] [--nice N]
        [--memory-mb MB]

It is not meant to be started by hand: the manager claims the job (state ``running`` with this process's pid)
and passes the descriptor of the job's locked lock file (``--lock-fd``), which this process keeps open for its
whole life (that is how the manager knows it lives; see :mod:`fitness_weights_api.jobs`).

What it does:

0. Limits its address space (``RLIMIT_AS``, soft and hard) to ``--memory-mb`` MiB, first thing: this module
   imports torch and SB3 only after that, so the limit bounds the whole job (its imports included) and a job
   whose limit is too small even for them fails as cleanly as one that outgrows it later. (numpy and Gymnasium,
   which the job's config and errors need, are loaded before; the limit counts them too.) A few MiB of the
   limit are held in reserve and released when an allocation fails, so that the failure can still be reported.
1. Checks that the job runs under its pid (after the manager's commit); if not, exits with code 3, writing
   nothing.
2. Trains ``sb3_ext.recipe.make_model(config)`` for the job's config
   (:class:`~fitness_weights_api.job_config.JobConfig`), in the envs of its ``env_id``. After every rollout it
   records the progress (timesteps, mean episode return) and reads the job's ``cancel_requested`` flag. At the end
   of the first rollout, then once ``--checkpoint-rollouts`` rollouts or ``--checkpoint-seconds`` seconds have
   passed since the last checkpoint, it saves ``checkpoint.zip`` in the job folder atomically (a temporary file,
   then ``os.replace``) and records its path. Every logger dump and log line goes to the job database too
   (:mod:`fitness_weights_api.job_live`), and at the end of each rollout the pending parameter changes are applied
   (:class:`sb3_ext.live_params.LiveParams`) and what became of each is recorded.
3. Saves ``model.zip`` atomically, evaluates it on ``eval_trainees`` held-out trainees of its ``env_id``
   (``evaluation.json``), registers it with that ``env_id`` (metadata ``{"job_id", "policy", "timesteps"}``, the
   normalized score as ``evaluation_score``, activated if the config says so) and marks the job ``succeeded``
   with the version. From registering on, ``SIGTERM`` is deferred (the job completes). A death between
   registering and marking is settled by the manager, which finds the version by its metadata.

Outcomes and exit codes: ``succeeded`` (0); an exception marks the job ``failed`` with
``"<ExceptionType>: <message>"`` (absolute paths cut to their last component) and prints the traceback to the
log (1); running out of the memory limit marks it ``failed`` with ``"MemoryError: the job ran out of its memory
limit of N MiB ..."`` (1); ``SIGTERM`` or the cancel flag marks it ``cancelled`` (0); a job not (or no longer)
running under this pid is left alone (3). The log's last line gives the peak address space and resident memory
(``VmPeak``, ``VmHWM``), the figures to size ``--memory-mb`` by.
"""

from __future__ import annotations

# No torch or SB3 here: main() sets the memory limit before they load.
import argparse
import errno
import json
import math
import mmap
import os
import re
import signal
import sys
import time
import traceback
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from fitness_weights_api.job_config import JobConfig
from fitness_weights_api.job_live import LiveRecords
from fitness_weights_api.job_store import (
    CANCELLED,
    CHECKPOINT_FILE,
    FAILED,
    MEMORY_SETTING,
    MODEL_FILE,
    SUCCEEDED,
    JobCancelled,
    JobDatabase,
    JobLostError,
    redact_paths,
)
from fitness_weights_api.registry import ModelRegistry
from fitness_weights_api.storage import database_path, write_atomically

try:
    import resource
except ImportError:  # pragma: no cover - not POSIX: the job manager refuses to start there
    resource = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from stable_baselines3.common.base_class import BaseAlgorithm

__all__ = ["main"]

EXIT_LOST = 3
"""Exit code of a process whose job is not running under its pid."""

RESERVE_BYTES = 16 << 20
"""Address space mapped at the start under the memory limit and unmapped when an allocation fails: room to report."""

_OUT_OF_MEMORY_RE = re.compile(  # torch's CPU allocator, errno ENOMEM's text, C++, dlopen (an import under the limit)
    r"can't allocate memory|cannot allocate memory|bad_alloc|out of memory|failed to map segment from shared object",
    re.IGNORECASE,
)


class _JobProcess:
    """One job's training run, its progress records, checkpoints and final state."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.job_id: str = args.job_id
        self.pid = os.getpid()
        self.job_dir = Path(args.root).absolute() / "jobs" / args.job_id
        self.database = JobDatabase(database_path(args.database_url), args.database_url)
        self.registry_root: str = args.registry_root
        self.registry_url: str = args.registry_url
        self.checkpoint_rollouts: int = args.checkpoint_rollouts
        self.checkpoint_seconds: float = args.checkpoint_seconds
        self.memory_mb: int | None = args.memory_mb
        self.reserve: mmap.mmap | None = None  # set by main() under the memory limit
        self.finalizing = False  # from registering on, SIGTERM is deferred
        self.terminate_requested = False
        self.registered: str | None = None
        self.rollouts = 0
        self.last_checkpoint: tuple[int, float] | None = None  # (rollouts, monotonic time) of the last one
        self.live = LiveRecords(self.database)

    def say(self, text: str, level: str = "info") -> None:
        """A line in the job's log file and, paths redacted, in its log in the database (what the API shows)."""
        print(f"job {self.job_id}: {text}", flush=True)
        self.live.add_log(self.job_id, redact_paths(text), level)

    def on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        """Stop training (raise :class:`JobCancelled`), unless the job is already finishing."""
        if self.finalizing:
            self.terminate_requested = True
            return
        raise JobCancelled(f"cancelled by signal {signal.Signals(signum).name}")

    def run(self) -> int:
        """Train, register and record the outcome; the process's exit code."""
        config = None
        try:
            config = self.database.claimed_config(self.job_id, self.pid)
            print(f"job {self.job_id} (pid {self.pid}) trains {json.dumps(config.to_dict())}", flush=True)
            self.live.add_log(self.job_id, f"training {json.dumps(config.to_dict())}")
            self._train_and_register(config)
        except JobCancelled as err:
            self.say(str(err), "warning")
            return self._finish(CANCELLED)
        except JobLostError as err:
            print(f"job {self.job_id}: {'stopping' if config else 'not starting'}: {err}", flush=True)
            return EXIT_LOST
        except Exception as err:
            self._release_reserve()  # before anything else: reporting needs memory too
            traceback.print_exc()
            sys.stderr.flush()
            return self._finish(FAILED, error=self._error(err))
        return 0

    def _error(self, err: Exception) -> str:
        """The recorded error of ``err``: ``"<ExceptionType>: <message>"``, or the memory limit's if it was hit."""
        if self.memory_mb is not None and _out_of_memory(err):
            return (
                f"MemoryError: the job ran out of its memory limit of {self.memory_mb} MiB (memory_mb, the "
                f"{MEMORY_SETTING} setting); ask for fewer n_envs or eval_trainees or a smaller policy, "
                "or raise the limit"
            )
        return f"{type(err).__name__}: {err}"

    def _release_reserve(self) -> None:
        if self.reserve is not None:
            self.reserve.close()
            self.reserve = None

    def _finish(self, state: str, error: str | None = None) -> int:
        self.finalizing = True
        if self.registered is not None:  # registered, but not recorded: the manager settles it as succeeded
            print(f"job {self.job_id}: registered {self.registered} but could not record it", flush=True)
            return 1
        self.say(state + (f": {error}" if error else ""), "error" if state == FAILED else "info")
        self.database.finish(self.job_id, self.pid, state, error=error)
        return 1 if state == FAILED else 0

    def _train_and_register(self, config: JobConfig) -> None:
        from sb3_ext.evaluate import ScoreCallback, evaluate_model
        from sb3_ext.recipe import make_model

        registry = ModelRegistry(self.registry_root, self.registry_url)  # fail before training if it is amiss
        model = make_model(config)
        model.set_logger(_job_logger(self, model.verbose))
        start = time.perf_counter()
        callbacks = [_progress_callback(self), _live_params(self)]
        if config.eval_rollouts:  # the normalized score during training, in the job's metrics
            callbacks.append(ScoreCallback(config.eval_rollouts, config.eval_trainees, config.seed, config.env_id))
        model.learn(config.timesteps, callback=callbacks)
        seconds = time.perf_counter() - start
        self.say(f"trained {model.num_timesteps} steps in {seconds:.1f} s")

        model_path = self.job_dir / MODEL_FILE
        _save_atomically(model, model_path)
        report = evaluate_model(model, n_trainees=config.eval_trainees, seed=config.seed, env_id=config.env_id)
        evaluation = json.dumps(report.to_dict(), indent=2)
        write_atomically(self.job_dir / "evaluation.json", lambda temp: temp.write_text(evaluation))
        score = report.normalized_score if math.isfinite(report.normalized_score) else None
        self.say(f"normalized score {score}")
        if score is not None:  # the final evaluation's score, as the last point of the curve
            model.logger.record("eval/normalized_score", score)
            model.logger.dump(model.num_timesteps)
        if self.database.record_progress(self.job_id, self.pid, model.num_timesteps, _mean_reward(model), None):
            raise JobCancelled("cancel requested")

        self.finalizing = True
        if self.terminate_requested:  # pragma: no cover - a SIGTERM between the two statements above
            raise JobCancelled("cancelled by signal SIGTERM")
        version = registry.register(
            model_path,
            training_config=config.to_dict(),
            evaluation_score=score,
            metadata={"job_id": self.job_id, "policy": config.policy, "timesteps": int(model.num_timesteps)},
            activate=config.activate,
            env_id=config.env_id,
        )
        self.registered = version.version
        self.database.finish(
            self.job_id, self.pid, SUCCEEDED, model_version=version.version, timesteps=int(model.num_timesteps)
        )
        self.say(f"succeeded, registered {version.version}")

    def checkpoint_due(self) -> bool:
        """Whether the rollout that just ended is checkpointed: the first one, then every N rollouts or S seconds."""
        if self.last_checkpoint is None:
            return True
        rollouts, at = self.last_checkpoint
        return self.rollouts - rollouts >= self.checkpoint_rollouts or time.monotonic() - at >= self.checkpoint_seconds

    def on_rollout_end(self, model: BaseAlgorithm) -> None:
        """Save a checkpoint when due, record the progress, and stop if the job was cancelled."""
        self.rollouts += 1
        checkpoint = None
        if self.checkpoint_due():
            path = self.job_dir / CHECKPOINT_FILE
            _save_atomically(model, path)
            checkpoint = str(path)
            self.last_checkpoint = (self.rollouts, time.monotonic())
        cancel = self.database.record_progress(
            self.job_id, self.pid, int(model.num_timesteps), _mean_reward(model), checkpoint
        )
        if cancel:
            raise JobCancelled("cancel requested")


def _progress_callback(job: _JobProcess) -> Any:
    """An SB3 callback that calls :meth:`_JobProcess.on_rollout_end` after every rollout (SB3 imported here)."""
    from stable_baselines3.common.callbacks import BaseCallback

    class ProgressCallback(BaseCallback):
        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:
            job.on_rollout_end(self.model)

    return ProgressCallback()


def _job_logger(job: _JobProcess, verbose: int) -> Any:
    """SB3's logger for the job: each dump's scalars and log line into the job database (SB3 imported here).

    With ``verbose``, SB3's table also goes to stdout, the job's log file.
    """
    from stable_baselines3.common.logger import HumanOutputFormat, Logger, SeqWriter

    from sb3_ext.metrics_writer import MetricsWriter

    class DatabaseLog(SeqWriter):
        def write_sequence(self, sequence: list[str]) -> None:
            job.say(" ".join(sequence))

        def close(self) -> None:
            """Nothing to close."""

    sink = MetricsWriter(lambda step, metrics: job.live.add_metrics(job.job_id, step, metrics))
    formats: list[Any] = [sink, DatabaseLog()]
    if verbose:
        formats.append(HumanOutputFormat(sys.stdout))
    return Logger(folder=None, output_formats=formats)


def _live_params(job: _JobProcess) -> Any:
    """:class:`~sb3_ext.live_params.LiveParams` reading the job's pending changes and recording what became of them."""
    from sb3_ext.live_params import LiveParams

    return LiveParams(
        lambda: job.live.pending_changes(job.job_id), on_ack=lambda ack: job.live.acknowledge(job.job_id, ack)
    )


def _mean_reward(model: BaseAlgorithm) -> float | None:
    import numpy as np

    buffer = model.ep_info_buffer
    if not buffer:
        return None
    value = float(np.mean([info["r"] for info in buffer]))
    return value if math.isfinite(value) else None


def _out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` (or an exception it chains) is an allocation failure.

    Python's and numpy's ``MemoryError``, ``OSError`` ``ENOMEM`` (``mmap``), torch's ``"can't allocate memory"``,
    C++'s ``std::bad_alloc`` and ``dlopen``'s ``"failed to map segment from shared object"`` (an ``ImportError``
    when the limit is too small even for torch's libraries).
    """
    seen = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, MemoryError) or (isinstance(current, OSError) and current.errno == errno.ENOMEM):
            return True
        if isinstance(current, (RuntimeError, ImportError, OSError)) and _OUT_OF_MEMORY_RE.search(str(current)):
            return True
        current = current.__cause__ or current.__context__
    return False


def _limit_memory(memory_mb: int | None) -> mmap.mmap | None:
    """Set ``RLIMIT_AS`` (soft and hard) to ``memory_mb`` MiB (or the hard limit if lower); map the reserve."""
    if memory_mb is None or resource is None:
        return None
    limit = memory_mb << 20
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))  # also allowed below the current size: it stops growth
    try:
        return mmap.mmap(-1, RESERVE_BYTES)
    except OSError:  # the limit leaves no room even for it: the job fails at its first allocation
        return None


def _memory_report() -> str:
    """Peak address space and resident memory of this process (``VmPeak``, ``VmHWM``; Linux), in MiB."""
    try:
        with open("/proc/self/status") as status:
            values = dict(line.split(":", 1) for line in status if line.startswith(("VmPeak", "VmHWM")))
    except OSError:  # pragma: no cover - not Linux
        return "peak memory unknown"
    peak, resident = (int(values[name].split()[0]) >> 10 for name in ("VmPeak", "VmHWM"))
    return f"peak address space {peak} MiB (VmPeak), peak resident memory {resident} MiB (VmHWM)"


def _save_atomically(model: BaseAlgorithm, path: Path) -> None:
    """Save the model to ``path`` whole or not at all (:func:`~fitness_weights_api.storage.write_atomically`)."""
    write_atomically(path, model.save)


def main(argv: list[str] | None = None) -> int:
    """Run the job named on the command line; the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m fitness_weights_api.train_job", description="Run one training job."
    )
    parser.add_argument("--root", required=True, help="the job manager's root folder")
    parser.add_argument("--database-url", required=True, help="the job database URL")
    parser.add_argument("--job-id", required=True, help="the job to run")
    parser.add_argument("--registry-root", required=True, help="the model registry's root folder")
    parser.add_argument("--registry-url", required=True, help="the model registry's database URL")
    parser.add_argument("--lock-fd", type=int, required=True, help="descriptor of the job's locked lock file")
    parser.add_argument("--checkpoint-rollouts", type=int, default=10, help="checkpoint every N rollouts")
    parser.add_argument("--checkpoint-seconds", type=float, default=60.0, help="or after S seconds")
    parser.add_argument("--nice", type=int, default=0, help="added to this process's niceness")
    parser.add_argument("--memory-mb", type=int, default=None, help="address-space limit (MiB); none by default")
    args = parser.parse_args(argv)
    reserve = _limit_memory(args.memory_mb)  # first: before torch, numpy and SB3 are imported
    if args.nice:
        os.nice(args.nice)  # training yields the CPU to the processes that answer requests
    os.set_inheritable(args.lock_fd, False)  # the lock stays with this process, not with processes it starts
    job = _JobProcess(args)
    job.reserve = reserve
    signal.signal(signal.SIGTERM, job.on_sigterm)
    code = job.run()
    limit = "" if args.memory_mb is None else f" (limit {args.memory_mb} MiB)"
    print(f"job {job.job_id}: {_memory_report()}{limit}", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
