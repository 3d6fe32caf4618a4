"""Optimize and predict the weights of one trainee with a trained model: the service's two answers.

``optimize_weights`` runs the policy through the environment's kernel for a number of steps (the
"optimize" outcome: actions sampled with the trainee's seed, as the evaluation runs them, through
:class:`sb3_ext.actions.PolicyActions`), and reports the kernel's 4 performance metrics;
``predict_weights`` makes one forward pass of the policy's CQ/QX heads and reports their confidence.
Both report the per-target achievement scores ``CQ[s] . qualities`` as the kernel computes them
(``dynamics.reset`` on the predicted matrices, then ``dynamics.step_info``), never with a second formula.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from fitness_weights_env import CATALOG, LAYOUT, METRIC_NAMES, FitnessWeightsVectorEnv, TraineeProfile, dynamics
from fitness_weights_env.episode import ProfileLike
from fitness_weights_env.errors import FieldError, FitnessWeightsError
from sb3_ext.actions import PolicyActions

__all__ = ["MAX_OPTIMIZATION_STEPS", "NoPredictionHeadsError", "WeightsResult", "optimize_weights", "predict_weights"]

MAX_OPTIMIZATION_STEPS = 1024
"""Most steps one ``optimize`` request may run (16 episodes' worth)."""

_threads = threading.local()


def _one_trainee_env() -> FitnessWeightsVectorEnv:
    """This thread's one-trainee env, made once: making one costs twice its reset, and every use resets it."""
    env = getattr(_threads, "env", None)
    if env is None:
        env = _threads.env = FitnessWeightsVectorEnv(1, max_episode_steps=None)
    return env


class NoPredictionHeadsError(FitnessWeightsError):
    """The model's policy has no ``predict_weights`` (e.g. SB3's ``MlpPolicy``): it can optimize, not predict."""


class Model(Protocol):
    """What the service needs of a model: its SB3 policy, with ``predict_weights`` for predictions."""

    policy: Any


@dataclass(frozen=True)
class WeightsResult:
    """The weights of one trainee and what they achieve.

    Attributes:
        cq: (93, 5) subject x quality weights, rows summing to 1.
        qx: (5, 44) quality x exercise weights, rows summing to 1.
        target_scores: ``CQ[s] . qualities`` of each target subject, by English name.
        performance_metrics: The kernel's 4 metrics at the end of the optimization, by name
            (``optimize_weights`` only).
        confidence: The prediction's confidence in [0, 1] (``predict_weights`` only).
        steps: Optimization steps run (0 for a prediction).
    """

    cq: np.ndarray
    qx: np.ndarray
    target_scores: dict[str, float]
    performance_metrics: dict[str, float] | None = None
    confidence: float | None = None
    steps: int = 0


def _target_scores(state: dynamics.WeightState, profile: TraineeProfile) -> dict[str, float]:
    scores = dynamics.step_info(state, 0, matrices=False)["target_scores"]
    return {CATALOG.subjects[s].name_en: float(scores[s]) for s in profile.targets}


def optimize_weights(
    model: Model, profile: ProfileLike, steps: int = 64, *, seed: int = 0, deterministic: bool = False
) -> WeightsResult:
    """Run the policy on the trainee for ``steps`` steps and return the matrices it ends with.

    Args:
        model: A trained model (``sb3_ext.PPO`` or any SB3 model over FitnessWeights-v0).
        profile: The trainee (a ``TraineeProfile`` or a dict of its fields).
        steps: Optimization steps, 1 to :data:`MAX_OPTIMIZATION_STEPS`.
        seed: Seed of the initial matrices (the target subjects' rows start random, as in the env) and of
            the sampled actions. The evaluation's trainee ``i`` is this trainee with seed ``seed + i``.
        deterministic: The policy's most likely action at each step instead of sampled actions.

    Raises:
        FieldError: ``steps`` out of range, or a bad profile field (named).
    """
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 1 <= steps <= MAX_OPTIMIZATION_STEPS:
        raise FieldError("steps", f"must be an integer in [1, {MAX_OPTIMIZATION_STEPS}]", steps)
    profile = TraineeProfile.coerce(profile)
    env = _one_trainee_env()
    observation, _ = env.reset(seed=seed, options={"profiles": [profile]})
    actions = PolicyActions(model.policy, None if deterministic else [seed])
    for _ in range(steps):
        observation, *_ = env.step(actions(observation))
    state = env.state
    metrics = dict(zip(METRIC_NAMES, state.observation[0, LAYOUT.metrics].tolist(), strict=True))
    scores = _target_scores(state, profile)
    return WeightsResult(state.cq[0].copy(), state.qx[0].copy(), scores, metrics, steps=int(steps))


def predict_weights(model: Model, profile: ProfileLike, *, seed: int = 0) -> WeightsResult:
    """One forward pass of the policy's CQ/QX heads on the trainee's starting state, with its confidence.

    The network sees exactly what it sees in training and in the evaluation: the env's observation at reset for
    this trainee and ``seed`` (its metrics computed from the initial matrices, whose target rows ``seed`` draws),
    not the profile's recorded metrics.

    Args:
        model: A trained model whose policy has prediction heads (``AttnCQQXPolicy``).
        profile: The trainee (a ``TraineeProfile`` or a dict of its fields).
        seed: Seed of the initial matrices, as in :func:`optimize_weights`.

    Raises:
        NoPredictionHeadsError: The model's policy has no ``predict_weights`` (e.g. SB3's ``MlpPolicy``).
        FieldError: A bad profile field (named).
    """
    predict = getattr(model.policy, "predict_weights", None)
    if predict is None:
        raise NoPredictionHeadsError(
            f"{type(model.policy).__name__} has no predict_weights; use an AttnCQQXPolicy model"
        )
    profile = TraineeProfile.coerce(profile)
    observation, _ = _one_trainee_env().reset(seed=seed, options={"profiles": [profile]})
    vector = observation[0]
    cq, qx, confidence = predict(vector)
    state = dynamics.WeightState.zeros(1, step_size=0.05)
    dynamics.reset(state, slice(None), vector[None], np.asarray(cq, np.float64)[None], np.asarray(qx, np.float64)[None])
    scores = _target_scores(state, profile)
    return WeightsResult(np.asarray(cq), np.asarray(qx), scores, confidence=float(confidence))
