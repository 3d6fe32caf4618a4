"""The hidden-parameter oracle of meta-RL: a policy that sees what adaptation has to infer.

On ``FitnessWeights-v1`` a trainee's response hangs on hidden parameters (:mod:`fitness_weights_env.hidden`). A
policy trained with them appended to its observation is the ceiling of what any adaptation to a trainee can reach
with the same network and budget; the gap between it and a policy without them is the most adaptation can gain.

:func:`hidden_features` standardizes the parameters to about zero mean and unit spread under the population's
draw, 228 values per trainee (:data:`HIDDEN_FEATURES`):

==========================  ========================================================================
values                      feature
==========================  ========================================================================
5                           ``log(responsiveness) / RESPONSIVENESS_SIGMA``
3                           ``(log(x) - log(median)) / log_sd`` of ``tau1``, ``tau2`` and ``gain_ratio``
220 (44 exercises x 5)      ``(transfer - mean) / sd`` of each Dirichlet cell
==========================  ========================================================================

:class:`HiddenParametersVecEnv` appends them to an SB3 ``VecEnv``'s observations (training), and
:class:`WithHidden` to the observations a batched policy gets from :func:`~fitness_weights_env.baselines.run_episodes`
(evaluation).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn

from fitness_weights_env.baselines import Policy
from fitness_weights_env.hidden import (
    _ALPHA,
    _GAIN_RATIO,
    _TAU1,
    _TAU2,
    RESPONSIVENESS_SIGMA,
    HiddenParameters,
)
from fitness_weights_env.training_dynamics import TrainingState

__all__ = [
    "FEATURE_SETS",
    "HIDDEN_FEATURES",
    "SUMMARY_FEATURES",
    "HiddenParametersVecEnv",
    "WithHidden",
    "hidden_features",
]

_ALPHA_SUM = _ALPHA.sum(axis=1, keepdims=True)
_TRANSFER_MEAN = _ALPHA / _ALPHA_SUM
_TRANSFER_SD = np.sqrt(_TRANSFER_MEAN * (1.0 - _TRANSFER_MEAN) / (_ALPHA_SUM + 1.0))  # a Dirichlet cell's sd
HIDDEN_FEATURES = _ALPHA.shape[1] + 3 + _ALPHA.size
"""Values :func:`hidden_features` gives per trainee: 228."""
SUMMARY_FEATURES = _ALPHA.shape[1] + 3
"""Values of its ``"summary"`` set: 8, responsiveness and the time constants, without the 220 transfer cells."""
FEATURE_SETS = ("all", "summary")
"""The feature sets of :func:`hidden_features`."""


def _width(features: str) -> int:
    if features not in FEATURE_SETS:
        raise ValueError(f"features must be one of {', '.join(FEATURE_SETS)}, got {features!r}")
    return HIDDEN_FEATURES if features == "all" else SUMMARY_FEATURES


def _log_z(value: np.ndarray, spec: tuple[float, float, float, float]) -> np.ndarray:
    median, sigma, _, _ = spec
    return (np.log(value) - np.log(median)) / sigma


def hidden_features(hidden: HiddenParameters, features: str = "all") -> np.ndarray:
    """The N trainees' hidden parameters as standardized features, float32 ``(N, 228)`` (module docstring).

    ``features="summary"`` keeps the first 8 (responsiveness, ``tau1``, ``tau2``, ``gain_ratio``): ``(N, 8)``.
    """
    width = _width(features)
    n = hidden.tau1.shape[0]
    if width == SUMMARY_FEATURES:
        return hidden_features(hidden)[:, :SUMMARY_FEATURES]
    return np.concatenate(
        [
            np.log(hidden.responsiveness) / RESPONSIVENESS_SIGMA,
            _log_z(hidden.tau1, _TAU1)[:, None],
            _log_z(hidden.tau2, _TAU2)[:, None],
            _log_z(hidden.gain_ratio, _GAIN_RATIO)[:, None],
            ((hidden.transfer - _TRANSFER_MEAN) / _TRANSFER_SD).reshape(n, -1),
        ],
        axis=1,
    ).astype(np.float32)


def _state(env: Any) -> TrainingState:
    """The v1 training state under an env: a vector env's ``state``, or a ``FitnessWeightsVecEnv``'s trainees'."""
    state = getattr(getattr(env, "trainees", env), "state", None)
    if not isinstance(state, TrainingState):
        raise TypeError(
            f"the hidden parameters need a FitnessWeights-v1 env, got a {type(env).__name__}: "
            "only v1 trainees have them"
        )
    return state


def _widened(space: spaces.Space, width: int) -> spaces.Box:
    if not isinstance(space, spaces.Box) or len(space.shape) != 1:
        raise TypeError(f"the observation space must be a flat Box, got {space}")
    inf = np.full(width, np.inf, dtype=space.dtype)
    return spaces.Box(np.concatenate([space.low, -inf]), np.concatenate([space.high, inf]), dtype=space.dtype)


class HiddenParametersVecEnv(VecEnvWrapper):
    """An SB3 ``VecEnv`` of v1 trainees whose observations end with the trainees' :func:`hidden_features`.

    A finished trainee's ``terminal_observation`` carries the hidden parameters of the episode it ends, its new
    first observation those of the next trainee.

    Args:
        venv: A batched v1 ``VecEnv`` (:func:`sb3_ext.vec_env.make_vec_env` of ``FitnessWeights-v1``), monitored
            or not.
        features: The feature set of :func:`hidden_features`, ``"all"`` or ``"summary"``.

    Raises:
        TypeError: ``venv`` does not step v1 trainees in one batch.
        ValueError: An unknown feature set.
    """

    def __init__(self, venv: VecEnv, features: str = "all") -> None:
        _state(venv.unwrapped)
        self.features = features
        super().__init__(venv, observation_space=_widened(venv.observation_space, _width(features)))

    def _features(self) -> np.ndarray:
        return hidden_features(_state(self.unwrapped).body.hidden, self.features)

    def reset(self) -> VecEnvObs:
        """Reset every trainee; the observations end with their hidden features."""
        return np.concatenate([self.venv.reset(), self._features()], axis=1)

    def step_wait(self) -> VecEnvStepReturn:
        """Step every trainee; finished ones' terminal observations keep the hidden features of their episode."""
        before = self._features()
        obs, rewards, dones, infos = self.venv.step_wait()
        for i in np.flatnonzero(dones):
            if "terminal_observation" in infos[i]:
                infos[i]["terminal_observation"] = np.concatenate([infos[i]["terminal_observation"], before[i]])
        return np.concatenate([obs, self._features()], axis=1), rewards, dones, infos


class WithHidden:
    """A batched policy of :func:`~fitness_weights_env.baselines.run_episodes` that also sees the hidden parameters.

    Args:
        policy: ``(observation (N, 199 + 228), env) -> actions``, e.g. ``PolicyActions`` of a model trained in a
            :class:`HiddenParametersVecEnv`.
        features: The feature set it was trained with.
    """

    def __init__(self, policy: Policy, features: str = "all") -> None:
        _width(features)
        self.policy = policy
        self.features = features

    def __call__(self, observation: np.ndarray, env: Any) -> np.ndarray:
        """The actions for the trainees of ``env`` (a v1 vector env), given their observations."""
        features = hidden_features(_state(env).body.hidden, self.features)
        return self.policy(np.concatenate([observation, features.astype(observation.dtype)], axis=1), env)
