"""Where the service keeps its state, and its limits: one settings object, read from the environment.

``fitness-weights serve`` starts its workers with these variables set, so every worker reads the same settings:

=================================  =================================  =============================================
variable                           default                            meaning
=================================  =================================  =============================================
``FITNESS_WEIGHTS_HOME``           ``./fitness_weights_home``         the service's folder (below)
``FITNESS_WEIGHTS_REGISTRY_URL``   ``HOME/registry/registry.sqlite``  the registry's database (``sqlite:///...``)
``FITNESS_WEIGHTS_JOBS_URL``       ``HOME/jobs.sqlite``               the job database (``sqlite:///...``)
``FITNESS_WEIGHTS_DEVICE``         ``cpu``                            torch device that answers requests
``FITNESS_WEIGHTS_TRAIN_DEVICE``   ``auto``                           torch device of training jobs
``FITNESS_WEIGHTS_MAX_JOBS``       ``1``                              training jobs running at once
``FITNESS_WEIGHTS_MAX_QUEUED``     ``10``                             training jobs waiting at once
``FITNESS_WEIGHTS_MAX_TIMESTEPS``  ``2000000``                        most timesteps one job may train for
``FITNESS_WEIGHTS_TORCH_THREADS``  ``1``                              torch threads per worker (0: torch's default)
=================================  =================================  =============================================

The folder holds ``registry/`` (the model registry: ``registry.sqlite`` and ``models/v1.zip``, ...), ``jobs.sqlite``
and ``jobs/<job_id>/`` (each training job's log, checkpoint and model).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fitness_weights_api.jobs import JobManager
    from fitness_weights_api.registry import ModelRegistry

__all__ = ["ENV_PREFIX", "ServiceSettings"]

ENV_PREFIX = "FITNESS_WEIGHTS_"

_VARIABLES = {  # field -> environment variable
    "home": "HOME",
    "registry_url": "REGISTRY_URL",
    "jobs_url": "JOBS_URL",
    "device": "DEVICE",
    "train_device": "TRAIN_DEVICE",
    "max_jobs": "MAX_JOBS",
    "max_queued": "MAX_QUEUED",
    "max_timesteps": "MAX_TIMESTEPS",
    "torch_threads": "TORCH_THREADS",
}


@dataclass(frozen=True)
class ServiceSettings:
    """The service's folder, databases, devices and limits (see the module docstring for the variables).

    Args:
        home: The service's folder: the registry in ``home/registry``, the jobs in ``home/jobs.sqlite`` and
            ``home/jobs/``.
        registry_url: The registry's database URL, ``None`` for the registry's default file.
        jobs_url: The job database URL, ``None`` for the job manager's default file.
        device: Torch device of the models that answer requests.
        train_device: Torch device of training jobs (a ``TrainConfig.device``).
        max_jobs: Training jobs running at once, over every worker.
        max_queued: Training jobs waiting at once.
        max_timesteps: Most timesteps a training job may ask for.
        torch_threads: Torch threads per worker process; 0 keeps torch's default. Requests are small and
            several run at once in a worker's threads, so one thread each avoids oversubscribing the CPU.
    """

    home: Path = Path("fitness_weights_home")
    registry_url: str | None = None
    jobs_url: str | None = None
    device: str = "cpu"
    train_device: str = "auto"
    max_jobs: int = 1
    max_queued: int = 10
    max_timesteps: int = 2_000_000
    torch_threads: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "home", Path(self.home).absolute())
        for name in ("max_jobs", "max_queued", "max_timesteps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer of at least 1, got {value!r}")
        if isinstance(self.torch_threads, bool) or not isinstance(self.torch_threads, int) or self.torch_threads < 0:
            raise ValueError(f"torch_threads must be an integer of at least 0, got {self.torch_threads!r}")

    @property
    def registry_root(self) -> Path:
        """The registry's folder, ``home/registry``."""
        return self.home / "registry"

    @property
    def jobs_root(self) -> Path:
        """The job manager's folder, ``home`` (it keeps ``jobs.sqlite`` and ``jobs/``)."""
        return self.home

    def open_registry(self) -> ModelRegistry:
        """The model registry of these settings (created if missing)."""
        from fitness_weights_api.registry import ModelRegistry

        return ModelRegistry(self.registry_root, self.registry_url)

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
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServiceSettings:
        """The settings from ``FITNESS_WEIGHTS_*`` variables (``os.environ`` by default); unset ones keep defaults.

        Raises:
            ValueError: A variable holds an invalid value (the message names the variable).
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
                    raise ValueError(f"{ENV_PREFIX + suffix} must be an integer, got {text!r}") from None
            else:
                values[name] = text
        try:
            return cls(**values)
        except ValueError as err:
            name = str(err).split()[0]
            raise ValueError(f"{ENV_PREFIX + _VARIABLES.get(name, name.upper())}: {err}") from None

    def to_env(self) -> dict[str, str]:
        """The ``FITNESS_WEIGHTS_*`` variables that :meth:`from_env` reads back to these settings."""
        env = {}
        for name, suffix in _VARIABLES.items():
            value = getattr(self, name)
            if value is not None:
                env[ENV_PREFIX + suffix] = str(value)
        return env
