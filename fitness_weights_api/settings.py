"""Where the service keeps its state, and its limits: one settings object, read from the environment.

``fitness-weights serve`` starts its workers with these variables set, so every worker reads the same settings:

=======================================  =================================  ======================================
variable                                 default                            meaning
=======================================  =================================  ======================================
``FITNESS_WEIGHTS_HOME``                 ``./fitness_weights_home``         the service's folder (below)
``FITNESS_WEIGHTS_REGISTRY_URL``         ``HOME/registry/registry.sqlite``  the registry's database (``sqlite:///...``)
``FITNESS_WEIGHTS_JOBS_URL``             ``HOME/jobs.sqlite``               the job database (``sqlite:///...``)
``FITNESS_WEIGHTS_DEVICE``               ``cpu``                            torch device that answers requests
``FITNESS_WEIGHTS_INFERENCE``            ``onnx``                           ``onnx`` (ONNX Runtime) or ``torch`` answers
``FITNESS_WEIGHTS_TRAIN_DEVICE``         ``auto``                           torch device of training jobs
``FITNESS_WEIGHTS_MAX_JOBS``             ``1``                              training jobs running at once
``FITNESS_WEIGHTS_MAX_QUEUED``           ``10``                             training jobs waiting at once
``FITNESS_WEIGHTS_MAX_TIMESTEPS``        ``2000000``                        most timesteps one job may train for
``FITNESS_WEIGHTS_TORCH_THREADS``        ``1``                              torch threads per worker (0: torch's)
``FITNESS_WEIGHTS_ALLOWED_HOSTS``        ``127.0.0.1,localhost,::1``        ``Host`` names answered (``*``: any)
``FITNESS_WEIGHTS_REQUIRE_TOKEN``        ``0``                              ``1``: optimize and predict need a token
``FITNESS_WEIGHTS_MAX_BODY_BYTES``       ``65536``                          largest request body, checked before parsing
``FITNESS_WEIGHTS_MAX_N_ENVS``           ``1024``                           most parallel envs one job may ask for
``FITNESS_WEIGHTS_MAX_EVAL_TRAINEES``    ``1000``                           most held-out trainees of one job
``FITNESS_WEIGHTS_JOB_MEMORY_MB``        ``8192``                           job address-space limit, MiB (0: none)
``FITNESS_WEIGHTS_CHECKPOINT_SECONDS``   ``60``                             a job checkpoints at least this often...
``FITNESS_WEIGHTS_CHECKPOINT_ROLLOUTS``  ``10``                             ... and every this many rollouts
``FITNESS_WEIGHTS_MAX_MODEL_BYTES``      ``67108864``                       largest model to register, uncompressed
``FITNESS_WEIGHTS_CHECK_TIMEOUT_S``      ``120``                            time limit of a model's dry run
``FITNESS_WEIGHTS_CHECK_MEMORY_MB``      ``4096``                           address-space limit of that dry run (MiB)
=======================================  =================================  ======================================

The folder holds ``registry/`` (the model registry: ``registry.sqlite`` and ``models/v1.safetensors``, ...),
``tokens.sqlite`` (the API's tokens, hashed), ``jobs.sqlite``, ``jobs/<job_id>/`` (each training job's log,
checkpoint and model) and ``metrics/`` (each running server's Prometheus files, removed when it stops).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fitness_weights_env.errors import FieldError

if TYPE_CHECKING:
    from fitness_weights_api.jobs import JobManager
    from fitness_weights_api.registry import ModelRegistry
    from fitness_weights_api.tokens import TokenStore

__all__ = ["ENV_PREFIX", "ServiceSettings"]

ENV_PREFIX = "FITNESS_WEIGHTS_"

_VARIABLES = {  # field -> environment variable
    "home": "HOME",
    "registry_url": "REGISTRY_URL",
    "jobs_url": "JOBS_URL",
    "device": "DEVICE",
    "inference": "INFERENCE",
    "train_device": "TRAIN_DEVICE",
    "max_jobs": "MAX_JOBS",
    "max_queued": "MAX_QUEUED",
    "max_timesteps": "MAX_TIMESTEPS",
    "torch_threads": "TORCH_THREADS",
    "allowed_hosts": "ALLOWED_HOSTS",
    "require_token": "REQUIRE_TOKEN",
    "max_body_bytes": "MAX_BODY_BYTES",
    "max_n_envs": "MAX_N_ENVS",
    "max_eval_trainees": "MAX_EVAL_TRAINEES",
    "job_memory_mb": "JOB_MEMORY_MB",
    "checkpoint_seconds": "CHECKPOINT_SECONDS",
    "checkpoint_rollouts": "CHECKPOINT_ROLLOUTS",
    "max_model_bytes": "MAX_MODEL_BYTES",
    "check_timeout_s": "CHECK_TIMEOUT_S",
    "check_memory_mb": "CHECK_MEMORY_MB",
}
_BOOLEANS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}
_POSITIVE_INTS = (
    "max_jobs",
    "max_queued",
    "max_timesteps",
    "max_body_bytes",
    "max_n_envs",
    "max_eval_trainees",
    "checkpoint_seconds",
    "checkpoint_rollouts",
    "max_model_bytes",
    "check_timeout_s",
    "check_memory_mb",
)
_HOST_RE = re.compile(r"\*|[A-Za-z0-9.:_\-\[\]]{1,253}")


@dataclass(frozen=True)
class ServiceSettings:
    """The service's folder, databases, devices and limits (see the module docstring for the variables).

    Args:
        home: The service's folder: the registry in ``home/registry``, the jobs in ``home/jobs.sqlite`` and
            ``home/jobs/``.
        registry_url: The registry's database URL, ``None`` for the registry's default file.
        jobs_url: The job database URL, ``None`` for the job manager's default file.
        device: Torch device of the models that answer requests.
        inference: What computes the answers: ``"onnx"``, the served model's graphs exported to ONNX Runtime and
            checked against its policy at every load (about ten times faster at one trainee a request; the torch
            policy answers where they cannot be, and the log says why), or ``"torch"``, the policy itself.
        train_device: Torch device of training jobs (a ``TrainConfig.device``).
        max_jobs: Training jobs running at once, over every worker.
        max_queued: Training jobs waiting at once.
        max_timesteps: Most timesteps a training job may ask for.
        torch_threads: Torch threads per worker process; 0 keeps torch's default. Requests are small and
            several run at once in a worker's threads, so one thread each avoids oversubscribing the CPU.
        allowed_hosts: The ``Host`` header names (without port) the service answers; others get a 400, which
            stops DNS rebinding. ``("*",)`` answers any (behind a proxy that checks it).
        require_token: Whether optimize and predict need a bearer token (``read`` role) too; mutations and the
            admin reads always do.
        max_body_bytes: Largest request body; a larger one is refused (413) before it is read or parsed.
        max_n_envs: Most parallel environments one training job may ask for.
        max_eval_trainees: Most held-out trainees one training job may evaluate.
        job_memory_mb: Address-space limit (``RLIMIT_AS``) of each training job process, in MiB, at least 256; 0
            sets none (CUDA reserves far more address space than it uses: a GPU job may need 0 or a large limit).
        checkpoint_seconds: A job saves a checkpoint at its first rollout's end and then at least this often.
        checkpoint_rollouts: ... and every this many rollouts.
        max_model_bytes: Largest model to register: the archive's file and its entries uncompressed.
        check_timeout_s: Time limit of the dry run that a model passes at registration.
        check_memory_mb: Address-space limit of that dry run's process, in MiB.
    """

    home: Path = Path("fitness_weights_home")
    registry_url: str | None = None
    jobs_url: str | None = None
    device: str = "cpu"
    inference: str = "onnx"
    train_device: str = "auto"
    max_jobs: int = 1
    max_queued: int = 10
    max_timesteps: int = 2_000_000
    torch_threads: int = 1
    allowed_hosts: tuple[str, ...] = ("127.0.0.1", "localhost", "::1")
    require_token: bool = False
    max_body_bytes: int = 65_536
    max_n_envs: int = 1024
    max_eval_trainees: int = 1000
    job_memory_mb: int = 8192
    checkpoint_seconds: int = 60
    checkpoint_rollouts: int = 10
    max_model_bytes: int = 64 << 20
    check_timeout_s: int = 120
    check_memory_mb: int = 4096

    def __post_init__(self) -> None:
        object.__setattr__(self, "home", Path(self.home).absolute())
        hosts = self.allowed_hosts
        if isinstance(hosts, str) or not hosts or not all(isinstance(h, str) and _HOST_RE.fullmatch(h) for h in hosts):
            raise FieldError("allowed_hosts", "must be host names (or '*')", hosts)
        object.__setattr__(self, "allowed_hosts", tuple(h.lower() for h in hosts))
        if not isinstance(self.require_token, bool):
            raise FieldError("require_token", "must be a bool", self.require_token)
        memory = self.job_memory_mb
        if isinstance(memory, bool) or not isinstance(memory, int) or not (memory == 0 or memory >= 256):
            raise FieldError("job_memory_mb", "must be 0 (no limit) or an integer of at least 256", memory)
        for name in _POSITIVE_INTS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise FieldError(name, "must be an integer of at least 1", value)
        from fitness_weights_api.model_format import check_inference

        check_inference(self.inference)
        if isinstance(self.torch_threads, bool) or not isinstance(self.torch_threads, int) or self.torch_threads < 0:
            raise FieldError("torch_threads", "must be an integer of at least 0", self.torch_threads)

    @property
    def registry_root(self) -> Path:
        """The registry's folder, ``home/registry``."""
        return self.home / "registry"

    @property
    def jobs_root(self) -> Path:
        """The job manager's folder, ``home`` (it keeps ``jobs.sqlite`` and ``jobs/``)."""
        return self.home

    @property
    def tokens_path(self) -> Path:
        """The token store, ``home/tokens.sqlite``."""
        return self.home / "tokens.sqlite"

    def open_registry(self) -> ModelRegistry:
        """The model registry of these settings (created if missing)."""
        from fitness_weights_api.registry import ModelRegistry

        return ModelRegistry(
            self.registry_root,
            self.registry_url,
            max_model_bytes=self.max_model_bytes,
            check_timeout_s=self.check_timeout_s,
            check_memory_mb=self.check_memory_mb,
        )

    def open_tokens(self) -> TokenStore:
        """The API's token store of these settings (created if missing)."""
        from fitness_weights_api.tokens import TokenStore

        return TokenStore(self.tokens_path)

    def open_jobs(self, registry: ModelRegistry) -> JobManager:
        """The job manager of these settings, registering models in ``registry``."""
        from fitness_weights_api.jobs import JobManager

        return JobManager(
            self.jobs_root,
            registry,
            database_url=self.jobs_url,
            max_concurrent=self.max_jobs,
            max_queued=self.max_queued,
            max_timesteps=self.max_timesteps,
            max_n_envs=self.max_n_envs,
            max_eval_trainees=self.max_eval_trainees,
            memory_mb=self.job_memory_mb or None,
            checkpoint_seconds=self.checkpoint_seconds,
            checkpoint_rollouts=self.checkpoint_rollouts,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServiceSettings:
        """The settings from ``FITNESS_WEIGHTS_*`` variables (``os.environ`` by default); unset ones keep defaults.

        Raises:
            FieldError: A variable holds an invalid value (``field`` is the variable).
        """
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        types = {field.name: field.type for field in fields(cls)}
        for name, suffix in _VARIABLES.items():
            text = environ.get(ENV_PREFIX + suffix)
            if text is None or text == "":
                continue
            if types[name] == "int":
                try:
                    values[name] = int(text)
                except ValueError:
                    raise FieldError(ENV_PREFIX + suffix, "must be an integer", text) from None
            elif types[name] == "bool":
                if text.lower() not in _BOOLEANS:
                    raise FieldError(ENV_PREFIX + suffix, "must be 1 or 0 (true or false)", text)
                values[name] = _BOOLEANS[text.lower()]
            elif types[name] == "tuple[str, ...]":
                values[name] = tuple(part.strip() for part in text.split(",") if part.strip())
            else:
                values[name] = text
        try:
            return cls(**values)
        except FieldError as err:
            variable = ENV_PREFIX + _VARIABLES.get(err.field, err.field.upper())
            reason, text = f"{err.field} {err.reason}", environ.get(variable)
            raise (FieldError(variable, reason) if text is None else FieldError(variable, reason, text)) from None

    def to_env(self) -> dict[str, str]:
        """The ``FITNESS_WEIGHTS_*`` variables that :meth:`from_env` reads back to these settings."""
        env = {}
        for name, suffix in _VARIABLES.items():
            value = getattr(self, name)
            if isinstance(value, bool):
                env[ENV_PREFIX + suffix] = "1" if value else "0"
            elif isinstance(value, tuple):
                env[ENV_PREFIX + suffix] = ",".join(value)
            elif value is not None:
                env[ENV_PREFIX + suffix] = str(value)
        return env
