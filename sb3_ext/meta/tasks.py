"""Tasks of meta-RL: trainees, each with the hidden parameters of their training response.

A :class:`Task` is a trainee and the episode seed that fixes everything the env draws for them: on
``FitnessWeights-v1`` the hidden parameters (responsiveness, time constants, gain ratio, exercise transfer;
:mod:`fitness_weights_env.hidden`), the initial matrices and the response noise. Two episodes of one task with the
same actions are the same episode; with sampled actions they differ only by the draws.

:class:`TaskSampler` draws training tasks from the population (wide trainees included, as PPO trains) and keeps a
held-out split, the evaluation's own trainees (``sb3_ext.evaluate.held_out_profiles``, trainee ``i`` with episode
seed ``seed + i``), so that a meta-learned policy is scored on the trainees every other policy of the project is.
:meth:`TaskSampler.rollout` runs a batch of ``K`` tasks, each repeated ``M`` times, through one vector env.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode

from fitness_weights_env import ENV_IDS
from fitness_weights_env.baselines import VECTOR_ENVS
from fitness_weights_env.errors import FieldError, check_int
from fitness_weights_env.population import EDGE_FRACTION, sample_profiles
from fitness_weights_env.profile import TraineeProfile
from sb3_ext.actions import ACTION_STREAM
from sb3_ext.evaluate import held_out_profiles

__all__ = ["TRAIN_SEED", "Task", "TaskEpisodes", "TaskSampler", "sample_actions", "task_generators"]

TRAIN_SEED = 1_000_000
"""First episode seed of the training tasks: far from the held-out ones (``seed + i``, under 10,000)."""

Act = Callable[[np.ndarray, int], np.ndarray]
"""``(observations (K, M, n), step) -> actions (K, M)``."""


@dataclass(frozen=True)
class Task:
    """A trainee and the episode seed that fixes their hidden parameters, start and noise."""

    profile: TraineeProfile
    seed: int


@dataclass
class TaskEpisodes:
    """``M`` episodes of each of ``K`` tasks.

    Attributes:
        observations: ``(K, M, T + 1, n)``: every step's observation and the last one.
        actions: ``(K, M, T)``.
        rewards: ``(K, M, T)``.
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray

    @property
    def returns(self) -> np.ndarray:
        """``(K, M)`` undiscounted returns."""
        return self.rewards.sum(axis=-1)


def task_generators(tasks: Sequence[Task], episodes: int, phase: int) -> list[list[np.random.Generator]]:
    """The action generators of each task's ``episodes`` episodes, ``[k][m]``, in ``phase``.

    ``phase`` keeps the draws of each use apart: pre-update, post-update, an iteration.
    """
    return [[np.random.default_rng([task.seed, ACTION_STREAM, phase, m]) for m in range(episodes)] for task in tasks]


def sample_actions(probabilities: np.ndarray, generators: Sequence[Sequence[np.random.Generator]]) -> np.ndarray:
    """One action per episode from ``probabilities`` ``(K, M, A)``, with episode ``[k][m]``'s own generator.

    The inverse transform of :class:`sb3_ext.actions.PolicyActions`: the first action whose cumulative
    probability exceeds the draw.
    """
    cdf = np.cumsum(probabilities.astype(np.float64), axis=-1)
    uniforms = np.array([[generator.random() for generator in row] for row in generators])
    actions = np.sum(cdf <= (uniforms * cdf[..., -1])[..., None], axis=-1)
    return np.minimum(actions, probabilities.shape[-1] - 1)


class TaskSampler:
    """Training tasks drawn from the population, and the held-out tasks of the evaluation.

    Args:
        env_id: The env (``FitnessWeights-v1``: trainees with hidden parameters).
        seed: Seed of the training draws and of the held-out set (the evaluation's ``seed``).
        n_held_out: Held-out tasks.
        edge_fraction: Share of wide trainees among the training tasks (the population's default, as PPO).
        **env_kwargs: Passed to the vector env.

    Raises:
        FieldError: An unknown env or a bad count (named).
    """

    def __init__(
        self,
        env_id: str = "FitnessWeights-v1",
        seed: int = 0,
        n_held_out: int = 200,
        edge_fraction: float = EDGE_FRACTION,
        **env_kwargs: Any,
    ) -> None:
        if env_id not in ENV_IDS:
            raise FieldError("env_id", f"must be one of {list(ENV_IDS)}", env_id)
        check_int("n_held_out", n_held_out, 1)
        self.env_id, self.seed, self.edge_fraction, self.env_kwargs = env_id, seed, edge_fraction, env_kwargs
        self.n_held_out = n_held_out
        self._drawn = 0

    def sample(self, n: int) -> list[Task]:
        """The next ``n`` training tasks (a new draw each call, reproducible from ``seed``)."""
        check_int("n", n, 1)
        draw = int(np.random.SeedSequence([self.seed, self._drawn]).generate_state(1)[0])
        profiles = sample_profiles(n, seed=draw, edge_fraction=self.edge_fraction)
        first = TRAIN_SEED + self.seed * 10_000_000 + self._drawn
        self._drawn += n
        return [Task(profile, first + i) for i, profile in enumerate(profiles)]

    def held_out(self) -> list[Task]:
        """The held-out tasks: the evaluation's trainees of ``seed``, trainee ``i`` with episode seed ``seed + i``."""
        return [Task(p, self.seed + i) for i, p in enumerate(held_out_profiles(self.n_held_out, self.seed))]

    def rollout(self, tasks: Sequence[Task], episodes: int, act: Act, steps: int = 64) -> TaskEpisodes:
        """``episodes`` episodes of every task, all in one vector env of ``len(tasks) * episodes`` trainees."""
        check_int("episodes", episodes, 1)
        k = len(tasks)
        env = VECTOR_ENVS[self.env_id](
            k * episodes, max_episode_steps=None, autoreset_mode=AutoresetMode.DISABLED, **self.env_kwargs
        )
        repeated = [task for task in tasks for _ in range(episodes)]
        observation, _ = env.reset(
            seed=[task.seed for task in repeated], options={"profiles": [task.profile for task in repeated]}
        )
        observations = np.empty((k, episodes, steps + 1, observation.shape[-1]), dtype=observation.dtype)
        actions = np.empty((k, episodes, steps), dtype=np.int64)
        rewards = np.empty((k, episodes, steps), dtype=np.float64)
        for t in range(steps):
            observations[:, :, t] = observation.reshape(k, episodes, -1)
            actions[:, :, t] = act(observations[:, :, t], t)
            observation, reward, _, _, _ = env.step(actions[:, :, t].reshape(-1))
            rewards[:, :, t] = np.asarray(reward).reshape(k, episodes)
        observations[:, :, steps] = observation.reshape(k, episodes, -1)
        env.close()
        return TaskEpisodes(observations, actions, rewards)
