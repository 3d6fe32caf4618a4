"""The CQ and QX weights that a training job's latest checkpoint predicts for a trainee: the dashboard's heatmaps.

A job's folder holds ``checkpoint.zip`` while it trains and ``model.zip`` once it has trained
(:mod:`.job_store`); the latest of the two is the model drawn. It is an SB3 archive written by the job process,
read the way the registry reads any archive (:func:`.model_format.model_from_bytes`: nothing unpickled) and
cached per worker by the file's size and modification time, so that a page that refreshes costs a ``stat`` and
one forward pass until the job saves a newer checkpoint.

The trainee is one of the evaluation's held-out trainees (:func:`sb3_ext.evaluate.held_out_profiles`, by
position) or a profile the user types in; the prediction is :func:`.weights.predict_weights`, the same forward
pass as ``POST /predict_weights``.
"""

from __future__ import annotations

import functools
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fitness_weights_api.job_store import CHECKPOINT_FILE, MODEL_FILE
from fitness_weights_api.model_format import (
    ModelFormatError,
    ServedModel,
    archive_timesteps,
    file_bytes,
    load_policy,
    model_from_bytes,
)
from fitness_weights_api.weights import NoPredictionHeadsError, WeightsResult, predict_weights
from fitness_weights_env import TraineeProfile
from fitness_weights_env.errors import FieldError, FitnessWeightsError

if TYPE_CHECKING:
    from fitness_weights_api.jobs import JobManager

__all__ = ["HELD_OUT_TRAINEES", "CheckpointWeights", "JobWeights", "NoCheckpointWeightsError", "held_out_trainee"]

HELD_OUT_TRAINEES = 200
"""The held-out trainees a page may pick, by position: the evaluation's (``evaluate_model``'s default count)."""


class NoCheckpointWeightsError(FitnessWeightsError):
    """The job has no checkpoint to draw yet, its policy has no prediction heads, or its checkpoint is refused."""


@dataclass(frozen=True)
class CheckpointWeights:
    """A checkpoint's prediction for one trainee.

    Attributes:
        result: The prediction (:func:`.weights.predict_weights`).
        profile: The trainee it is for.
        source: ``"checkpoint"`` while the job trains, ``"model"`` once it has trained.
        timesteps: The timesteps the file was saved at (``None`` if its archive does not say).
    """

    result: WeightsResult
    profile: TraineeProfile
    source: str
    timesteps: int | None


@functools.cache
def _held_out() -> tuple[TraineeProfile, ...]:
    from sb3_ext.evaluate import held_out_profiles

    return tuple(held_out_profiles(HELD_OUT_TRAINEES))


def held_out_trainee(index: int) -> TraineeProfile:
    """The evaluation's held-out trainee at ``index`` in ``[0, HELD_OUT_TRAINEES)``.

    Raises:
        FieldError: ``trainee`` is out of that range.
    """
    if not 0 <= index < HELD_OUT_TRAINEES:
        raise FieldError("trainee", f"must be a held-out trainee's position in [0, {HELD_OUT_TRAINEES})", index)
    return _held_out()[index]


class JobWeights:
    """Predict a trainee's weights with a job's latest checkpoint (thread-safe; one per worker).

    Args:
        jobs: The job manager whose job folders hold the checkpoints.
        max_model_bytes: Largest checkpoint read (the service's ``max_model_bytes``).
        cache_size: Checkpoints kept loaded, the most recently used.
    """

    def __init__(self, jobs: JobManager, max_model_bytes: int, cache_size: int = 4) -> None:
        self.jobs = jobs
        self.max_model_bytes = max_model_bytes
        self.cache_size = cache_size
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, tuple[tuple[str, int, int], ServedModel, int | None]] = OrderedDict()

    def _latest_file(self, job_id: str) -> tuple[str, Path, tuple[str, int, int]]:
        """The job's newest model file: what it is, its path, and its cache key (name, size, modification time)."""
        folder = self.jobs.job_dir(job_id)
        for source, name in (("model", MODEL_FILE), ("checkpoint", CHECKPOINT_FILE)):
            try:
                stat = (folder / name).stat()
            except FileNotFoundError:
                continue
            return source, folder / name, (name, stat.st_size, stat.st_mtime_ns)
        raise NoCheckpointWeightsError("the job has no checkpoint yet: it saves one at the end of its first rollout")

    def predict(self, job_id: str, profile: TraineeProfile, seed: int = 0) -> CheckpointWeights:
        """The CQ and QX matrices the job's latest checkpoint predicts for ``profile``.

        Raises:
            UnknownJobError: No such job.
            NoCheckpointWeightsError: No checkpoint yet, a policy without prediction heads (``MlpPolicy``), or
                a checkpoint the model format refuses (its reason, without the path).
        """
        job = self.jobs.get(job_id)
        source, path, key = self._latest_file(job.job_id)
        with self._lock:
            cached = self._cache.get(job_id)
            if cached is None or cached[0] != key:
                try:
                    data = file_bytes(path, self.max_model_bytes)
                    model = load_policy(
                        model_from_bytes(data, max_bytes=self.max_model_bytes, env_id=job.config.env_id)
                    )
                    timesteps = archive_timesteps(data, self.max_model_bytes)
                except (ModelFormatError, OSError) as err:
                    reason = err.reason if isinstance(err, ModelFormatError) else os.strerror(err.errno or 0)
                    raise NoCheckpointWeightsError(f"the job's {source} file is refused: {reason}") from None
                cached = (key, model, timesteps)
                self._cache[job_id] = cached
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
            self._cache.move_to_end(job_id)
            _, model, timesteps = cached
            try:
                result = predict_weights(model, profile, seed=seed)
            except NoPredictionHeadsError:
                raise NoCheckpointWeightsError(
                    f"the job's policy ({job.config.policy}) has no prediction heads: only AttnCQQXPolicy jobs "
                    "predict weights"
                ) from None
        return CheckpointWeights(result, profile, source, timesteps)
