"""The weight service: the active model of a registry, and the optimize and predict answers made with it.

The CLI, the HTTP API and the examples all go through :class:`WeightService`. Every request checks the
registry's activation token (one small SQLite read), so an activation made by any process is picked up
by every worker at its next request: the hot switch. Models load only from the registry, by version, in its safe
format (:meth:`.ModelRegistry.load`: the file's hash checked, nothing unpickled).

A worker that cannot load the newly active version (a file changed on disk, a damaged registry) keeps serving
the version it had and reports the problem in :attr:`WeightService.problem` (``GET /health`` shows it); it tries
again when the activation changes or after :data:`RETRY_S` seconds, not at every request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from fitness_weights_api.job_config import JobConfig
from fitness_weights_api.job_store import Job
from fitness_weights_api.jobs import JobManager
from fitness_weights_api.registry import ModelRegistry, ModelVersion, RegistryError
from fitness_weights_api.weights import WeightsResult, model_env_id, optimize_weights, predict_weights
from fitness_weights_env.episode import ProfileLike
from fitness_weights_env.errors import FitnessWeightsError

__all__ = ["RETRY_S", "NoActiveModelError", "ServedResult", "WeightService"]

RETRY_S = 30.0
"""Seconds before a worker tries again to load an active version that failed to load."""

logger = logging.getLogger("fitness_weights_api")


class NoActiveModelError(FitnessWeightsError):
    """The registry has no active model version yet, or none that loads (and nothing was served before)."""


@dataclass(frozen=True)
class ServedResult:
    """A :class:`~fitness_weights_api.weights.WeightsResult` and the model version that made it.

    ``result.env_id`` is the env whose kernel ran: the one the version's manifest names.
    """

    result: WeightsResult
    model_version: str


class WeightService:
    """Optimize and predict trainees' weights with the registry's active model, and train new models.

    Args:
        registry: The model registry (shared by every worker).
        jobs: The training jobs (whose models register in ``registry``); ``None`` for a service that only serves.
        device: Torch device the models run on.
        inference: What answers requests: ``"onnx"``, the served model's exported graphs in ONNX Runtime (checked
            against the policy at each load; the torch policy answers where they cannot), or ``"torch"``.
    """

    def __init__(
        self, registry: ModelRegistry, jobs: JobManager | None = None, device: str = "cpu", inference: str = "onnx"
    ) -> None:
        if jobs is not None and jobs.registry.database_path != registry.database_path:
            raise ValueError("jobs must register their models in the service's registry")
        self.registry = registry
        self.jobs = jobs
        from fitness_weights_api.model_format import check_inference

        check_inference(inference)
        self.device = device
        self.inference = inference
        self._lock = threading.Lock()
        self._token: tuple[str | None, int] | None = None
        self._model: Any = None
        self._version: str | None = None
        self._failed: tuple[tuple[str | None, int], float] | None = None  # the token that failed to load, when
        self.problem: str | None = None
        """Why the active version is not the one served (``None`` when it is)."""

    def model(self) -> tuple[Any, str]:
        """The model being served and its version: the active one, reloaded when the registry's activation changed.

        Raises:
            NoActiveModelError: No version is active, or the active one does not load and none was loaded before.
        """
        token = self.registry.active_token()
        with self._lock:
            if token != self._token and not self._recently_failed(token):
                self._switch(token)
            if self._model is None:
                if token[0] is None:
                    raise NoActiveModelError("no model version is active; train one or activate a registered version")
                raise NoActiveModelError(self.problem or f"the active model version {token[0]} cannot be loaded")
            return self._model, self._version  # type: ignore[return-value]

    def served_version(self) -> str | None:
        """The version this worker serves now (``None`` before it loaded one)."""
        return self._version

    def served_runtime(self) -> Literal["onnx", "torch"] | None:
        """What answers with the served model, ``"onnx"`` or ``"torch"`` (``None`` before it loaded one)."""
        return getattr(self._model, "runtime", None if self._model is None else "torch")

    def _recently_failed(self, token: tuple[str | None, int]) -> bool:
        return self._failed is not None and self._failed[0] == token and time.monotonic() - self._failed[1] < RETRY_S

    def _switch(self, token: tuple[str | None, int]) -> None:
        """Load the version of ``token``; on failure keep the served model and record the problem."""
        version, _ = token
        if version is None:  # nothing is active any more (not reachable through the registry's API)
            self._model, self._version, self._token, self.problem = None, None, token, None
            return
        try:
            self._model = self.registry.load(version, device=self.device, inference=self.inference)
        except (RegistryError, OSError) as err:
            reason = getattr(err, "reason", None) or "its model file cannot be read"
            self.problem = f"version {version} is active but cannot be loaded ({reason})"
            if self._version is not None:
                self.problem += f"; serving {self._version}"
            self._failed = (token, time.monotonic())
            logger.error("loading model version %s failed: %s", version, err)
            return
        self._version, self._token, self._failed, self.problem = version, token, None, None

    def active_version(self) -> ModelVersion | None:
        """The registry's active version (``None`` when none is active)."""
        return self.registry.active()

    def optimize(
        self,
        profile: ProfileLike,
        steps: int = 64,
        *,
        seed: int = 0,
        deterministic: bool = False,
        env_id: str | None = None,
    ) -> ServedResult:
        """Run the active policy on the trainee in its env's kernel (see :func:`.weights.optimize_weights`).

        The env is the one the served version's manifest names (``FitnessWeights-v0`` or ``FitnessWeights-v1``);
        ``env_id``, when given, is the env the caller expects, refused (``FieldError``, field ``env_id``) if the
        served version acts in another.
        """
        model, version = self.model()
        env_id = model_env_id(model, env_id)
        result = optimize_weights(model, profile, steps, seed=seed, deterministic=deterministic, env_id=env_id)
        return ServedResult(result, version)

    def predict(self, profile: ProfileLike, *, seed: int = 0, env_id: str | None = None) -> ServedResult:
        """One forward pass of the active policy's prediction heads (see :func:`.weights.predict_weights`).

        The policy sees the starting state of the env the served version's manifest names; ``env_id`` as in
        :meth:`optimize`.
        """
        model, version = self.model()
        return ServedResult(predict_weights(model, profile, seed=seed, env_id=model_env_id(model, env_id)), version)

    def train(self, config: JobConfig | Mapping[str, Any]) -> Job:
        """Start a training job (in its own process; see :meth:`.JobManager.submit`); its model registers here.

        Raises:
            RuntimeError: The service was made without a job manager.
            FieldError: An invalid config (named field). QueueFullError: too many jobs are waiting.
        """
        if self.jobs is None:
            raise RuntimeError("this service has no job manager: pass jobs=JobManager(...) to train")
        return self.jobs.submit(config)
