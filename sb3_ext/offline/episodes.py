"""Logged episodes as arrays, the behavior policies that make them, and the batched rollout that logs them.

A dataset's episodes are rows of one set of arrays (:class:`Episodes`): every FitnessWeights episode has the
same length (64 steps), so episode ``e``'s observations are ``observations[e]`` (65 of them: the start and one
after each step). Each behavior is a batched policy ``(observation, env) -> actions`` of
:func:`fitness_weights_env.baselines.run_episodes`'s kind, and every random choice of trainee ``i`` is drawn with
a generator of its own, seeded from its episode seed, so an episode depends on its seed only, never on the batch
it ran in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

import numpy as np
from gymnasium.vector import AutoresetMode

from fitness_weights_env import dynamics
from fitness_weights_env.baselines import VECTOR_ENVS, GreedyPolicy, Policy
from fitness_weights_env.errors import FieldError
from fitness_weights_env.training_baselines import CoachPolicy, OraclePolicy

__all__ = [
    "BEHAVIOR_STREAM",
    "Episodes",
    "NoisyPolicy",
    "UniformPolicy",
    "coach_policy",
    "expert_policy",
    "rollout",
]

BEHAVIOR_STREAM = 0xBE4
"""Second word of a behavior's per-trainee generator seed: keeps its draws apart from the env's and the policy's."""


@dataclass(frozen=True)
class Episodes:
    """E logged episodes of T steps each.

    Attributes:
        observations: (E, T + 1, D) float32: the start, then the observation after each step.
        actions: (E, T) int64.
        rewards: (E, T) float64, the env's reward (never a training shaping).
        terminations: (E, T) bool.
        truncations: (E, T) bool.
        cq: (E, 93, 5) float32, the CQ matrix each episode ended with (the auxiliary heads' target, float32 as the
            env's infos give it).
        qx: (E, 5, 44) float32, the QX matrix each episode ended with.
        seeds: (E,) int64, each episode's seed (the env's ``reset(seed=...)`` of its trainee).
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray
    cq: np.ndarray
    qx: np.ndarray
    seeds: np.ndarray

    def __len__(self) -> int:
        return int(self.actions.shape[0])

    @property
    def returns(self) -> np.ndarray:
        """(E,) undiscounted returns."""
        return self.rewards.sum(axis=1)

    def take(self, index: np.ndarray | Sequence[int] | slice) -> Episodes:
        """The episodes at ``index``, in its order."""
        return Episodes(*(getattr(self, f.name)[index] for f in fields(self)))

    @classmethod
    def concatenate(cls, parts: Sequence[Episodes]) -> Episodes:
        """The episodes of ``parts``, one after the other (all of the same length)."""
        if not parts:
            raise ValueError("no episodes to concatenate")
        return cls(*(np.concatenate([getattr(part, f.name) for part in parts]) for f in fields(cls)))


class UniformPolicy:
    """Uniformly random actions, trainee ``i`` drawing from its own generator of ``seeds[i]``.

    Args:
        seeds: One episode seed per trainee of the batch.
    """

    def __init__(self, seeds: Sequence[int]) -> None:
        self.generators = [np.random.default_rng([int(seed), BEHAVIOR_STREAM]) for seed in seeds]

    def __call__(self, observation: np.ndarray, env: object = None) -> np.ndarray:
        """One action per trainee."""
        return np.array([generator.integers(dynamics.N_ACTIONS) for generator in self.generators], dtype=np.int64)


class NoisyPolicy:
    """A policy whose action is replaced, with probability ``noise``, by a uniformly random one (epsilon-greedy).

    Args:
        policy: The batched policy.
        noise: Probability of a random action, in [0, 1].
        seeds: One episode seed per trainee: trainee ``i``'s coin and random action come from its own generator.
    """

    def __init__(self, policy: Policy, noise: float, seeds: Sequence[int]) -> None:
        if not 0.0 <= noise <= 1.0:
            raise FieldError("noise", "must lie in [0, 1]", noise)
        self.policy = policy
        self.noise = noise
        self.generators = [np.random.default_rng([int(seed), BEHAVIOR_STREAM, 1]) for seed in seeds]

    def __call__(self, observation: np.ndarray, env: object) -> np.ndarray:
        """The policy's actions, some replaced by random ones."""
        actions = np.asarray(self.policy(observation, env), dtype=np.int64).copy()  # type: ignore[arg-type]
        for i, generator in enumerate(self.generators):  # two draws per trainee and step, whatever the coin says
            coin, action = generator.random(), generator.integers(dynamics.N_ACTIONS)
            if coin < self.noise:
                actions[i] = action
        return actions


def expert_policy(env_id: str) -> Policy:
    """The env's expert: the greedy one-step oracle on v0, the oracle that knows the hidden parameters on v1."""
    if env_id == "FitnessWeights-v1":
        return OraclePolicy()  # type: ignore[return-value]  # v1's policies take v1's vector env, which runs them
    return GreedyPolicy()


def coach_policy(env_id: str, noise: float, seeds: Sequence[int]) -> Policy:
    """v1's coach (the catalog's plan, never personalized) with ``noise`` random actions."""
    if env_id != "FitnessWeights-v1":
        raise FieldError("behavior", "'coach' (the catalog's plan) exists on FitnessWeights-v1 only", "coach")
    return NoisyPolicy(CoachPolicy(), noise, seeds)  # type: ignore[arg-type]


def rollout(
    make_policy: Callable[[np.ndarray], Policy],
    env_id: str,
    seeds: np.ndarray,
    *,
    batch_size: int = 64,
    progress: Callable[[int], None] | None = None,
    **env_kwargs: object,
) -> Episodes:
    """One episode per seed, ``batch_size`` trainees at a time in one vector env, logged.

    Args:
        make_policy: Builds the batch's policy from its episode seeds.
        env_id: ``"FitnessWeights-v0"`` or ``"FitnessWeights-v1"``.
        seeds: (E,) episode seeds; a batch's seeds must be consecutive (the vector env seeds trainee ``i`` of a
            ``reset(seed=s)`` with ``s + i``).
        batch_size: Trainees stepped together.
        progress: Called with the number of episodes each finished batch adds.
        **env_kwargs: Passed to the vector env.
    """
    if env_id not in VECTOR_ENVS:
        raise FieldError("env_id", f"must be one of {sorted(VECTOR_ENVS)}", env_id)
    seeds = np.asarray(seeds, dtype=np.int64)
    parts = []
    for start in range(0, len(seeds), batch_size):
        batch = seeds[start : start + batch_size]
        if np.any(np.diff(batch) != 1):
            raise ValueError("a batch's episode seeds must be consecutive")
        parts.append(_rollout_batch(make_policy(batch), env_id, batch, env_kwargs))
        if progress is not None:
            progress(len(batch))
    return Episodes.concatenate(parts)


def _rollout_batch(policy: Policy, env_id: str, seeds: np.ndarray, env_kwargs: dict[str, object]) -> Episodes:
    env = VECTOR_ENVS[env_id](len(seeds), autoreset_mode=AutoresetMode.DISABLED, **env_kwargs)  # type: ignore[arg-type]
    steps = env.max_episode_steps
    if steps is None:
        raise FieldError("max_episode_steps", "a logged episode needs a time limit")
    observation, _ = env.reset(seed=int(seeds[0]))
    n, size = observation.shape
    observations = np.empty((n, steps + 1, size), dtype=np.float32)
    actions = np.empty((n, steps), dtype=np.int64)
    rewards = np.empty((n, steps))
    terminations = np.empty((n, steps), dtype=bool)
    truncations = np.empty((n, steps), dtype=bool)
    observations[:, 0] = observation
    for t in range(steps):
        actions[:, t] = policy(observation, env)
        observation, rewards[:, t], terminations[:, t], truncations[:, t], _ = env.step(actions[:, t])
        observations[:, t + 1] = observation
        done = terminations[:, t] | truncations[:, t]
        if done.any() and not done.all():
            raise RuntimeError("the batch's episodes ended at different steps")
        if done.all():
            end = t + 1
            break
    else:  # pragma: no cover - the time limit ends every episode at step `steps`
        end = steps
    state = env.state
    return Episodes(
        observations[:, : end + 1],
        actions[:, :end],
        rewards[:, :end],
        terminations[:, :end],
        truncations[:, :end],
        state.cq.astype(np.float32),
        state.qx.astype(np.float32),
        seeds.copy(),
    )
