"""Optimize and predict the weights of one trainee with a trained model: the service's two answers.

``optimize_weights`` runs the policy through the kernel of the model's environment for a number of steps (the
"optimize" outcome: actions sampled with the trainee's seed, as the evaluation runs them, through
:class:`sb3_ext.actions.PolicyActions`), and reports the kernel's 4 performance metrics;
``predict_weights`` makes one forward pass of the policy's CQ/QX heads and reports their confidence.
Both report the per-target scores as the kernel of the model's env computes them, never with a second formula:

* ``FitnessWeights-v0``: the achievement scores ``CQ[s] . qualities`` (``dynamics.reset`` on the predicted
  matrices, then ``dynamics.step_info``);
* ``FitnessWeights-v1``: the simulated trainee's true score of each target subject
  (``training_dynamics.step_info``): after the weeks trained by the plan for ``optimize_weights``, at the start
  (the plan has not been trained yet) for ``predict_weights``.

A model acts in the env of its manifest's ``env_id`` (:class:`~fitness_weights_api.model_format.ServedModel`);
a model without a manifest (an ``sb3_ext.PPO`` in memory) acts in ``FitnessWeights-v0`` unless told otherwise.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from fitness_weights_env import CATALOG, ENV_IDS, LAYOUT, METRIC_NAMES, TraineeProfile, dynamics, training_dynamics
from fitness_weights_env.baselines import VECTOR_ENVS
from fitness_weights_env.episode import ProfileLike
from fitness_weights_env.errors import FieldError, FitnessWeightsError
from fitness_weights_env.training_env import FitnessWeightsV1VectorEnv
from fitness_weights_env.vector_env import FitnessWeightsVectorEnv
from sb3_ext.actions import PolicyActions

__all__ = [
    "DEFAULT_ENV_ID",
    "MAX_OPTIMIZATION_STEPS",
    "NoPredictionHeadsError",
    "WeightsResult",
    "model_env_id",
    "optimize_weights",
    "predict_weights",
]

MAX_OPTIMIZATION_STEPS = 1024
"""Most steps one ``optimize`` request may run (16 episodes' worth)."""
DEFAULT_ENV_ID = ENV_IDS[0]
"""The env of a model that does not say which it acts in (an SB3 model in memory): ``FitnessWeights-v0``."""

_threads = threading.local()


def _one_trainee_env(env_id: str) -> FitnessWeightsVectorEnv:
    """This thread's one-trainee env of ``env_id``, made once: making one costs twice its reset; every use resets it."""
    envs: dict[str, FitnessWeightsVectorEnv] | None = getattr(_threads, "envs", None)
    if envs is None:
        envs = _threads.envs = {}
    env = envs.get(env_id)
    if env is None:
        # No episode end: a request runs its steps (v1's block would otherwise end, and restart, at week 16).
        if env_id == "FitnessWeights-v1":
            env = FitnessWeightsV1VectorEnv(1, max_episode_steps=None, weeks=None)
        else:
            env = VECTOR_ENVS[env_id](1, max_episode_steps=None)
        envs[env_id] = env
    return env


def model_env_id(model: Any, env_id: str | None = None) -> str:
    """The env ``model`` acts in: its manifest's ``env_id``, or :data:`DEFAULT_ENV_ID` for a model without one.

    Args:
        model: A model; a :class:`~fitness_weights_api.model_format.ServedModel` has a manifest that names its env.
        env_id: The env the caller asks for, checked against the model's own; ``None`` takes the model's.

    Raises:
        FieldError: ``env_id`` (the field named) is not one of ``fitness_weights_env.ENV_IDS``, or is not the env
            the model acts in.
    """
    manifest = getattr(model, "manifest", None)
    own = manifest.get("env_id") if isinstance(manifest, dict) else None
    chosen = env_id if env_id is not None else own if own is not None else DEFAULT_ENV_ID
    if not isinstance(chosen, str) or chosen not in VECTOR_ENVS:
        raise FieldError("env_id", f"must be one of {list(ENV_IDS)}", chosen)
    if own is not None and chosen != own:
        raise FieldError("env_id", f"the model acts in {own}, not in {chosen}", chosen)
    return chosen


class NoPredictionHeadsError(FitnessWeightsError):
    """The model's policy has no ``predict_weights`` (e.g. SB3's ``MlpPolicy``): it can optimize, not predict."""


class Model(Protocol):
    """What the service needs of a model: its SB3 policy, with ``predict_weights`` for predictions.

    A model may also have a ``manifest`` (a dict) whose ``env_id`` names the env it acts in (:func:`model_env_id`),
    and an ``inference`` that answers in the policy's place: its exported graphs
    (:class:`~fitness_weights_api.model_format.ServedModel`).
    """

    policy: Any


def _answering(model: Model) -> Any:
    """What computes the model's actions and predictions: its ``inference`` when it has one, else its policy."""
    inference = getattr(model, "inference", None)
    return model.policy if inference is None else inference


@dataclass(frozen=True)
class WeightsResult:
    """The weights of one trainee and what they achieve.

    Attributes:
        cq: (93, 5) subject x quality weights, rows summing to 1.
        qx: (5, 44) quality x exercise weights, rows summing to 1.
        target_scores: The kernel's score of each target subject, by English name: ``CQ[s] . qualities`` on
            ``FitnessWeights-v0``, the simulated trainee's true score on ``FitnessWeights-v1`` (module docstring).
        performance_metrics: The kernel's 4 metrics at the end of the optimization, by name
            (``optimize_weights`` only).
        confidence: The prediction's confidence in [0, 1] (``predict_weights`` only).
        steps: Optimization steps run (0 for a prediction).
        env_id: The env whose kernel made the result: the model's.
        mean_target_score: The kernel's ``mean_target_score`` (its info's): the mean of the target scores on
            ``FitnessWeights-v0``, the trainee's true mean target score on ``FitnessWeights-v1``.
    """

    cq: np.ndarray
    qx: np.ndarray
    target_scores: dict[str, float]
    performance_metrics: dict[str, float] | None = None
    confidence: float | None = None
    steps: int = 0
    env_id: str = DEFAULT_ENV_ID
    mean_target_score: float | None = None


def _scores(
    state: dynamics.WeightState | training_dynamics.TrainingState, profile: TraineeProfile
) -> tuple[dict[str, float], float]:
    """The target scores of the one trainee of ``state`` by English name, and their mean, as its kernel's info."""
    if isinstance(state, training_dynamics.TrainingState):
        info = training_dynamics.step_info(state, 0, matrices=False)
    else:
        info = dynamics.step_info(state, 0, matrices=False)
    scores = info["target_scores"]
    return {CATALOG.subjects[s].name_en: float(scores[s]) for s in profile.targets}, float(info["mean_target_score"])


def optimize_weights(
    model: Model,
    profile: ProfileLike,
    steps: int = 64,
    *,
    seed: int = 0,
    deterministic: bool = False,
    env_id: str | None = None,
) -> WeightsResult:
    """Run the policy on the trainee for ``steps`` steps in the model's env and return the matrices it ends with.

    Args:
        model: A trained model (a :class:`~fitness_weights_api.model_format.ServedModel`, ``sb3_ext.PPO`` or any
            SB3 model over a FitnessWeights env).
        profile: The trainee (a ``TraineeProfile`` or a dict of its fields).
        steps: Optimization steps, 1 to :data:`MAX_OPTIMIZATION_STEPS`.
        seed: Seed of the env's draws at reset (on ``FitnessWeights-v0`` the target subjects' rows start random;
            on ``FitnessWeights-v1`` the trainee's hidden parameters) and of the sampled actions. The evaluation's
            trainee ``i`` is this trainee with seed ``seed + i``.
        deterministic: The policy's most likely action at each step instead of sampled actions.
        env_id: The env to run it in (see :func:`model_env_id`); ``None``, the default, takes the model's.

    Raises:
        FieldError: ``steps`` out of range, a bad or mismatched ``env_id``, or a bad profile field (named).
    """
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 1 <= steps <= MAX_OPTIMIZATION_STEPS:
        raise FieldError("steps", f"must be an integer in [1, {MAX_OPTIMIZATION_STEPS}]", steps)
    env_id = model_env_id(model, env_id)
    profile = TraineeProfile.coerce(profile)
    env = _one_trainee_env(env_id)
    observation, _ = env.reset(seed=seed, options={"profiles": [profile]})
    actions = PolicyActions(_answering(model), None if deterministic else [seed])
    for _ in range(steps):
        observation, *_ = env.step(actions(observation))
    state = env.state
    metrics = dict(zip(METRIC_NAMES, state.observation[0, LAYOUT.metrics].tolist(), strict=True))
    scores, mean = _scores(state, profile)
    return WeightsResult(
        state.cq[0].copy(), state.qx[0].copy(), scores, metrics, steps=int(steps), env_id=env_id, mean_target_score=mean
    )


def predict_weights(model: Model, profile: ProfileLike, *, seed: int = 0, env_id: str | None = None) -> WeightsResult:
    """One forward pass of the policy's CQ/QX heads on the trainee's starting state, with its confidence.

    The network sees exactly what it sees in training and in the evaluation: the observation at reset of the
    model's env for this trainee and ``seed`` (its metrics computed from the initial matrices), not the profile's
    recorded metrics.

    Args:
        model: A trained model whose policy has prediction heads (``AttnCQQXPolicy``).
        profile: The trainee (a ``TraineeProfile`` or a dict of its fields).
        seed: Seed of the env's draws at reset, as in :func:`optimize_weights`.
        env_id: The env whose starting state it sees (see :func:`model_env_id`); ``None`` takes the model's.

    Raises:
        NoPredictionHeadsError: The model's policy has no ``predict_weights`` (e.g. SB3's ``MlpPolicy``).
        FieldError: A bad or mismatched ``env_id``, or a bad profile field (named).
    """
    predict = getattr(_answering(model), "predict_weights", None)
    if predict is None:
        raise NoPredictionHeadsError(
            f"{type(model.policy).__name__} has no predict_weights; use an AttnCQQXPolicy model"
        )
    env_id = model_env_id(model, env_id)
    profile = TraineeProfile.coerce(profile)
    env = _one_trainee_env(env_id)
    observation, _ = env.reset(seed=seed, options={"profiles": [profile]})
    vector = observation[0]
    cq, qx, confidence = predict(vector)
    if isinstance(env.state, training_dynamics.TrainingState):  # v1: the trainee's scores where the plan starts
        scores, mean = _scores(env.state, profile)
    else:  # v0: the scores the predicted matrices achieve
        state = dynamics.WeightState.zeros(1, step_size=0.05)
        cq64, qx64 = np.asarray(cq, np.float64)[None], np.asarray(qx, np.float64)[None]
        dynamics.reset(state, slice(None), vector[None], cq64, qx64)
        scores, mean = _scores(state, profile)
    return WeightsResult(
        np.asarray(cq), np.asarray(qx), scores, confidence=float(confidence), env_id=env_id, mean_target_score=mean
    )
