"""What a training job trains: the project's training config, plus what the job does with the model.

A job trains ``sb3_ext.recipe.make_model(config)`` for ``config.timesteps``, evaluates it with
``sb3_ext.evaluate.evaluate_model`` on ``eval_trainees`` held-out trainees and registers it, with the normalized
score as ``evaluation_score`` (see :mod:`fitness_weights_api.train_job`). Like :class:`sb3_ext.config.TrainConfig`
this imports no torch: the service checks a config in microseconds before it queues the job.
"""

from __future__ import annotations

from dataclasses import dataclass

from fitness_weights_api.model_format import ENV_IDS
from fitness_weights_env.errors import FieldError, check_int
from sb3_ext.config import TrainConfig

__all__ = ["JOB_VECTORIZATION", "MAX_EVAL_ROLLOUTS", "JobConfig"]

JOB_VECTORIZATION = "batched"
"""How a job steps its envs: one kernel over every env, in the job's own process."""
MAX_EVAL_ROLLOUTS = 1_000_000
"""Largest ``eval_rollouts``."""


@dataclass(frozen=True)
class JobConfig(TrainConfig):
    """A :class:`~sb3_ext.config.TrainConfig` for a job, validated on construction.

    It takes every field of the training config (``timesteps`` is required; see there), with these differences:

    Args:
        eval_trainees: Held-out trainees of the evaluation before registering, at least 2 (default 50); also
            those of the evaluations during training.
        eval_rollouts: Rollouts between two evaluations during training (the normalized score the job logs as
            ``eval/normalized_score``, :class:`sb3_ext.evaluate.ScoreCallback`); 0 for none (default 20).
        activate: Make the registered model the active one.

    A job's ``env_id`` is one the registry serves (:data:`~fitness_weights_api.model_format.ENV_IDS`), and it
    steps its envs ``"batched"`` (:data:`JOB_VECTORIZATION`): a job is one process.

    Raises:
        FieldError: A field is invalid (``field`` names it).
    """

    eval_trainees: int = 50
    eval_rollouts: int = 20
    activate: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.env_id not in ENV_IDS:
            raise FieldError("env_id", f"must be one of {list(ENV_IDS)}", self.env_id)
        if self.vectorization != JOB_VECTORIZATION:
            raise FieldError("vectorization", f"a job steps its envs {JOB_VECTORIZATION!r}", self.vectorization)
        check_int("eval_rollouts", self.eval_rollouts, 0, MAX_EVAL_ROLLOUTS)
        if not isinstance(self.activate, bool):
            raise FieldError("activate", "must be a bool", self.activate)
