"""The weight service: the active model of a registry, and the optimize and predict answers made with it.

The CLI, the HTTP API and the examples all go through :class:`WeightService`. Every request checks the
registry's activation token (one small SQLite read), so an activation made by any process is picked up
by every worker at its next request: the hot switch. Models load only from the registry, by version.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fitness_weights_api.jobs import Job, JobManager, TrainConfig
from fitness_weights_api.registry import ModelRegistry, ModelVersion
from fitness_weights_api.weights import WeightsResult, optimize_weights, predict_weights
from fitness_weights_env.episode import ProfileLike

__all__ = ["NoActiveModelError", "ServedResult", "WeightService"]


class NoActiveModelError(RuntimeError):
    """The registry has no active model version yet."""


@dataclass(frozen=True)
class ServedResult:
    """A :class:`~fitness_weights_api.weights.WeightsResult` and the model version that made it."""

    result: WeightsResult
    model_version: str


class WeightService:
    """Optimize and predict trainees' weights with the registry's active model, and train new models.

    Args:
        registry: The model registry (shared by every worker).
        jobs: The training jobs (whose models register in ``registry``); ``None`` for a service that only serves.
        device: Torch device the models run on.
    """

    def __init__(self, registry: ModelRegistry, jobs: JobManager | None = None, device: str = "cpu") -> None:
        if jobs is not None and jobs.registry.database_path != registry.database_path:
            raise ValueError("jobs must register their models in the service's registry")
        self.registry = registry
        self.jobs = jobs
        self.device = device
        self._lock = threading.Lock()
        self._token: tuple[str | None, int] | None = None
        self._model: Any = None
        self._version: str | None = None

    def model(self) -> tuple[Any, str]:
        """The active model and its version, reloaded when the registry's activation changed.

        Raises:
            NoActiveModelError: No version is active.
        """
        token = self.registry.active_token()
        with self._lock:
            if token != self._token:
                version, _ = token
                if version is None:
                    raise NoActiveModelError("no model version is active; train one or activate a registered version")
                from sb3_ext import PPO  # heavy import, only when a model is first needed

                self._model = PPO.load(self.registry.path(version), device=self.device)
                self._version, self._token = version, token
            return self._model, self._version  # type: ignore[return-value]

    def active_version(self) -> ModelVersion | None:
        """The registry's active version (``None`` when none is active)."""
        return self.registry.active()

    def optimize(
        self, profile: ProfileLike, steps: int = 64, *, seed: int = 0, deterministic: bool = False
    ) -> ServedResult:
        """Run the active policy on the trainee (see :func:`.weights.optimize_weights`)."""
        model, version = self.model()
        return ServedResult(optimize_weights(model, profile, steps, seed=seed, deterministic=deterministic), version)

    def predict(self, profile: ProfileLike) -> ServedResult:
        """One forward pass of the active policy's prediction heads (see :func:`.weights.predict_weights`)."""
        model, version = self.model()
        return ServedResult(predict_weights(model, profile), version)

    def train(self, config: TrainConfig | Mapping[str, Any]) -> Job:
        """Start a training job (in its own process; see :meth:`.JobManager.submit`); its model registers here.

        Raises:
            RuntimeError: The service was made without a job manager.
            ConfigError: An invalid config (named field). QueueFullError: too many jobs are waiting.
        """
        if self.jobs is None:
            raise RuntimeError("this service has no job manager: pass jobs=JobManager(...) to train")
        return self.jobs.submit(config)
