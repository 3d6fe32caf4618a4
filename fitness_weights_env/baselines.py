"""Reference policies, random and the greedy one-step oracle, and a batched episode runner.

They set the scale of the normalized score used across the project::

    score = (R - R_random) / (R_greedy - R_random)    # 0 = random, 1 = greedy
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from gymnasium.vector import AutoresetMode

from fitness_weights_env import dynamics
from fitness_weights_env.episode import DEFAULT_MAX_EPISODE_STEPS, ProfileLike
from fitness_weights_env.errors import FieldError
from fitness_weights_env.training_env import FitnessWeightsV1VectorEnv
from fitness_weights_env.vector_env import FitnessWeightsVectorEnv

__all__ = [
    "VECTOR_ENVS",
    "EpisodeResults",
    "GreedyPolicy",
    "Policy",
    "RandomPolicy",
    "normalized_score",
    "run_episodes",
]

Policy = Callable[[np.ndarray, FitnessWeightsVectorEnv], np.ndarray]
"""A policy maps the batched observation (N, 198) and the vector env to N actions."""

_ALL_ACTIONS = np.arange(dynamics.N_ACTIONS)
VECTOR_ENVS: dict[str, type[FitnessWeightsVectorEnv]] = {
    "FitnessWeights-v0": FitnessWeightsVectorEnv,
    "FitnessWeights-v1": FitnessWeightsV1VectorEnv,
}
"""The vector env of each env id."""


class RandomPolicy:
    """Uniformly random actions from a seeded generator.

    Args:
        seed: Seed of the policy's generator.
    """

    def __init__(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)

    def __call__(self, observation: np.ndarray, env: FitnessWeightsVectorEnv) -> np.ndarray:
        """Draw one action per trainee."""
        return self.rng.integers(0, dynamics.N_ACTIONS, size=len(observation))


class GreedyPolicy:
    """The one-step oracle: for every trainee, the action whose next reward is highest.

    It evaluates all 685 actions of every trainee with :func:`~fitness_weights_env.dynamics.evaluate`,
    the kernel that steps the env, reading the env's state directly. With ``adjustment="random"``
    the change of the cell is not known in advance, so the oracle maximizes the expected reward,
    averaged over ``quadrature`` evenly spaced changes in ``[-step_size, step_size]``.

    Args:
        chunk_size: Trainees evaluated at once. Small chunks keep the temporary arrays in the
            allocator's heap rather than in fresh pages (measured in ``benchmarks/RESULTS.md``,
            "Where a step's time goes").
        quadrature: Number of changes averaged for ``adjustment="random"``.
    """

    def __init__(self, chunk_size: int = 8, quadrature: int = 5) -> None:
        for name, value in (("chunk_size", chunk_size), ("quadrature", quadrature)):
            if value < 1:
                raise FieldError(name, "must be positive", value)
        self.chunk_size = chunk_size
        self.quadrature = quadrature

    def __call__(self, observation: np.ndarray, env: FitnessWeightsVectorEnv) -> np.ndarray:
        """The best action of each trainee of ``env`` in its current state."""
        config = env.config
        if config.adjustment == "increase":
            deltas = [config.step_size]
        else:
            edges = np.linspace(-config.step_size, config.step_size, self.quadrature + 1)
            deltas = list((edges[:-1] + edges[1:]) / 2)
        best = np.empty(env.num_envs, dtype=np.int64)
        for start in range(0, env.num_envs, self.chunk_size):
            chunk = env.state.subset(slice(start, start + self.chunk_size))
            candidates = np.broadcast_to(_ALL_ACTIONS, (chunk.weights.shape[0], dynamics.N_ACTIONS))
            expected = sum(dynamics.evaluate(chunk, candidates, d, config.drift_coef).reward for d in deltas)
            best[start : start + chunk.weights.shape[0]] = np.argmax(expected, axis=1)
        return best


@dataclass(frozen=True)
class EpisodeResults:
    """One episode per trainee.

    Attributes:
        returns: (K,) undiscounted episode returns.
        final_target_score: (K,) mean target score at the end.
        final_drift: (K,) drift at the end.
        cq: (K, 93, 5) final CQ matrices.
        qx: (K, 5, 44) final QX matrices.
    """

    returns: np.ndarray
    final_target_score: np.ndarray
    final_drift: np.ndarray
    cq: np.ndarray
    qx: np.ndarray


def run_episodes(
    policy: Policy,
    profiles: Sequence[ProfileLike],
    *,
    seed: int = 0,
    steps: int = DEFAULT_MAX_EPISODE_STEPS,
    env_id: str = "FitnessWeights-v0",
    **env_kwargs,
) -> EpisodeResults:
    """Run one episode of ``steps`` steps for each trainee, all in one vector env.

    Trainee ``i`` is seeded with ``seed + i``, so two policies run on the same trainees start from
    the same initial matrices.

    Args:
        policy: Maps the observation batch and the env to actions.
        profiles: The trainees.
        seed: Base seed.
        steps: Episode length.
        env_id: ``"FitnessWeights-v0"`` or ``"FitnessWeights-v1"``: which vector env runs them.
        **env_kwargs: Passed to the vector env (:class:`~fitness_weights_env.vector_env.FitnessWeightsVectorEnv` or
            :class:`~fitness_weights_env.training_env.FitnessWeightsV1VectorEnv`).
    """
    if env_id not in VECTOR_ENVS:
        raise FieldError("env_id", f"must be one of {sorted(VECTOR_ENVS)}", env_id)
    # DISABLED: an episode that ends (v1's block) keeps its last state for the results instead of restarting.
    env = VECTOR_ENVS[env_id](
        len(profiles), max_episode_steps=None, autoreset_mode=AutoresetMode.DISABLED, **env_kwargs
    )
    observation, _ = env.reset(seed=seed, options={"profiles": list(profiles)})
    returns = np.zeros(len(profiles))
    for _ in range(steps):
        observation, reward, _, _, _ = env.step(policy(observation, env))
        returns += reward
    state = env.state
    return EpisodeResults(returns, state.target_score.copy(), state.drift.copy(), state.cq.copy(), state.qx.copy())


def normalized_score(
    returns: np.ndarray | float, random_returns: np.ndarray | float, greedy_returns: np.ndarray | float
) -> float:
    """``(R - R_random) / (R_greedy - R_random)`` of the mean returns: 0 for random, 1 for greedy."""
    low, high = float(np.mean(random_returns)), float(np.mean(greedy_returns))
    if high == low:
        raise ValueError("greedy and random have the same mean return; the normalized score is undefined")
    return (float(np.mean(returns)) - low) / (high - low)
