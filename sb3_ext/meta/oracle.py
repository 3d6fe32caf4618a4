"""The hidden-parameter oracle of meta-RL: a policy that sees what adaptation has to infer.

On ``FitnessWeights-v1`` a trainee's response hangs on hidden parameters (:mod:`fitness_weights_env.hidden`). A
policy trained with them appended to its observation is the ceiling of what any adaptation to a trainee can reach
with the same network and budget; the gap between it and a policy without them is the most adaptation can gain.

:func:`hidden_features` standardizes the parameters to about zero mean and unit spread under the population's
draw (the env's distribution, ``env.config.hidden``: v1's default or ``"wide"``), 228 values per trainee
(:data:`HIDDEN_FEATURES`):

==========================  ========================================================================
values                      feature
==========================  ========================================================================
5                           ``log(responsiveness) / responsiveness_sigma``
3                           ``(log(x) - log(median)) / log_sd`` of ``tau1``, ``tau2`` and ``gain_ratio``
220 (44 exercises x 5)      ``(transfer - mean) / sd`` of each Dirichlet cell
==========================  ========================================================================

:class:`HiddenParametersVecEnv` appends them to an SB3 ``VecEnv``'s observations (training), and
:class:`WithHidden` to the observations a batched policy gets from :func:`~fitness_weights_env.baselines.run_episodes`
(evaluation).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn

from fitness_weights_env.baselines import Policy
from fitness_weights_env.hidden import DEFAULT_HIDDEN, HiddenDistribution, HiddenParameters, hidden_distribution
from fitness_weights_env.training_dynamics import TrainingState

__all__ = [
    "FEATURE_SETS",
    "HIDDEN_FEATURES",
    "SUMMARY_FEATURES",
    "HiddenParametersVecEnv",
    "WithHidden",
    "hidden_features",
]

_ALPHA_SHAPE = DEFAULT_HIDDEN.alpha.shape  # (44, 5)
HIDDEN_FEATURES = _ALPHA_SHAPE[1] + 3 + _ALPHA_SHAPE[0] * _ALPHA_SHAPE[1]
"""Values :func:`hidden_features` gives per trainee: 228."""
SUMMARY_FEATURES = _ALPHA_SHAPE[1] + 3
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


@functools.lru_cache(maxsize=8)
def _transfer_moments(distribution: HiddenDistribution) -> tuple[np.ndarray, np.ndarray]:
    """Each transfer cell's mean and sd (44, 5) under ``distribution``'s Dirichlet draws."""
    alpha = distribution.alpha
    alpha_sum = alpha.sum(axis=1, keepdims=True)
    mean = alpha / alpha_sum
    return mean, np.sqrt(mean * (1.0 - mean) / (alpha_sum + 1.0))  # a Dirichlet cell's sd


def hidden_features(
    hidden: HiddenParameters, features: str = "all", distribution: HiddenDistribution | str = DEFAULT_HIDDEN
) -> np.ndarray:
    """The N trainees' hidden parameters as standardized features, float32 ``(N, 228)`` (module docstring).

    ``features="summary"`` keeps the first 8 (responsiveness, ``tau1``, ``tau2``, ``gain_ratio``): ``(N, 8)``.
    ``distribution`` is the draw they came from (a :class:`~fitness_weights_env.hidden.HiddenDistribution` or its
    name): the features are standardized under it.
    """
    width = _width(features)
    spreads = hidden_distribution(distribution, "distribution")
    n = hidden.tau1.shape[0]
    if width == SUMMARY_FEATURES:
        return hidden_features(hidden, distribution=spreads)[:, :SUMMARY_FEATURES]
    transfer_mean, transfer_sd = _transfer_moments(spreads)
    return np.concatenate(
        [
            np.log(hidden.responsiveness) / spreads.responsiveness_sigma,
            _log_z(hidden.tau1, spreads.tau1)[:, None],
            _log_z(hidden.tau2, spreads.tau2)[:, None],
            _log_z(hidden.gain_ratio, spreads.gain_ratio)[:, None],
            ((hidden.transfer - transfer_mean) / transfer_sd).reshape(n, -1),
        ],
        axis=1,
    ).astype(np.float32)


def _distribution(env: Any) -> HiddenDistribution:
    """The distribution of hidden parameters that the v1 trainees under ``env`` are drawn from."""
    config = getattr(getattr(env, "trainees", env), "config", None)
    return getattr(config, "hidden_distribution", DEFAULT_HIDDEN)


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
    first observation those of the next trainee. The features are standardized under the env's distribution of
    hidden parameters (its ``config.hidden``).

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
        self.distribution = _distribution(venv.unwrapped)
        super().__init__(venv, observation_space=_widened(venv.observation_space, _width(features)))

    def _features(self) -> np.ndarray:
        return hidden_features(_state(self.unwrapped).body.hidden, self.features, self.distribution)

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

    The features are standardized under the distribution of the env it acts in (its ``config.hidden``), as
    :class:`HiddenParametersVecEnv`'s are in training.
    """

    def __init__(self, policy: Policy, features: str = "all") -> None:
        _width(features)
        self.policy = policy
        self.features = features

    def __call__(self, observation: np.ndarray, env: Any) -> np.ndarray:
        """The actions for the trainees of ``env`` (a v1 vector env), given their observations."""
        features = hidden_features(_state(env).body.hidden, self.features, _distribution(env))
        return self.policy(np.concatenate([observation, features.astype(observation.dtype)], axis=1), env)
