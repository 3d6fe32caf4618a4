"""The ``medium`` behavior: a PPO run stopped at about half the expert's score, and every episode it logged.

As D4RL's ``medium`` and ``medium-replay`` levels: :func:`train_medium` trains :func:`sb3_ext.recipe.make_model`'s
PPO (the ``cpu`` preset, ``AttnCQQXPolicy``) until the policy that collected a rollout scores ``target_score`` on
validation trainees (the evaluation's score, :class:`sb3_ext.evaluate.ScoreCallback`, on ``validation_trainees``
held-out trainees of the tuning's validation seed, never the evaluation's), and keeps that policy (its parameters
before the update that followed). Every episode of the run up to that rollout is logged by
:class:`EpisodeRecorder`: the ``medium-replay`` data.

Why not the training episodes' own returns: a rollout's trainees are fresh draws of the population, wide trainees
among them, and on ``FitnessWeights-v1`` the spread of returns between trainees (about 0.01 per trainee) dwarfs the
coach-to-oracle margin (0.02 on average): scored against anchors run on other trainees, the second rollout of an
untrained policy read 0.81 and stopped the run at 8,192 steps. The validation score compares the policy with the
anchors on the same trainees, the same every rollout. ``validation_trainees=0`` keeps the training-episode rule.

On ``FitnessWeights-v1`` PPO trains with the potential-based shaping of its training envs; the log keeps the
env's own reward, the shaped one minus the change of the potential, ``r = r' - (Phi(s') - Phi(s))`` with
``Phi = 0`` once the block is over (to the float32 rounding of SB3's rewards, about 1e-10 here).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from fitness_weights_env.errors import FieldError, check_int
from sb3_ext.config import TrainConfig
from sb3_ext.evaluate import ScoreCallback
from sb3_ext.offline.episodes import Episodes
from sb3_ext.ppo import PPO
from sb3_ext.recipe import make_model
from sb3_ext.tuning import VALIDATION_SEED
from sb3_ext.vec_env import FitnessWeightsVecEnv

__all__ = ["EpisodeRecorder", "MediumRun", "train_medium"]


@dataclass
class MediumRun:
    """A stopped PPO run.

    Attributes:
        model: The PPO model, with the policy that collected the rollout that reached the target.
        replay: Every episode the run finished up to and including that rollout, in the order they ended.
        score: The stopping rule's score of that rollout: its policy's validation score, or (without validation
            trainees) the normalized score of its episodes.
        rollout_scores: The normalized score of every rollout's training episodes, in order.
        validation_scores: The validation score of every rollout's policy, in order (empty without validation).
        timesteps: Env steps of the run up to that rollout.
        reached: Whether the target was reached (else the run stopped at its step budget, with its last policy).
    """

    model: PPO
    replay: Episodes
    score: float
    rollout_scores: list[float]
    validation_scores: list[float]
    timesteps: int
    reached: bool


def _fitness_env(env: VecEnv) -> FitnessWeightsVecEnv:
    while isinstance(env, VecEnvWrapper):
        env = env.venv
    if not isinstance(env, FitnessWeightsVecEnv):
        raise TypeError(f"EpisodeRecorder needs the batched FitnessWeights VecEnv, got {type(env).__name__}")
    return env


class EpisodeRecorder(BaseCallback):
    """Log every finished training episode, and stop at the first rollout whose score reaches ``target``.

    The score is ``validation``'s (the policy that collected the rollout, on its trainees) when given, else the
    normalized mean return of the rollout's episodes.

    Args:
        low: The mean return that scores 0 (the training episodes' score).
        high: The mean return that scores 1.
        target: The score at which training stops (``None``: never).
        validation: Scores the policy at every rollout's end, before its update.
    """

    def __init__(
        self, low: float, high: float, target: float | None = None, validation: ScoreCallback | None = None
    ) -> None:
        super().__init__()
        self.low, self.high, self.target, self.validation = low, high, target, validation
        self.episodes: list[Episodes] = []
        self.rollout_scores: list[float] = []
        self.validation_scores: list[float] = []
        self.stopped_at: int | None = None  # the rollout that reached the target
        self.snapshot: dict[str, Any] | None = None
        self.timesteps = 0

    def _on_training_start(self) -> None:
        if self.validation is not None:
            self.validation.init_callback(self.model)
        env = _fitness_env(self.training_env)
        self._state = lambda: env.trainees.state
        self._max_steps = env.trainees.max_episode_steps
        obs = np.asarray(self.model._last_obs)
        n = obs.shape[0]
        self._obs: list[list[np.ndarray]] = [[obs[i].copy()] for i in range(n)]
        self._steps: list[list[tuple[int, float, bool, bool]]] = [[] for _ in range(n)]
        self._potential = self._current_potential()
        self._rollout_returns: list[float] = []

    def _current_potential(self) -> np.ndarray | None:
        potential = getattr(self._state(), "potential", None)
        return None if potential is None else np.array(potential, dtype=np.float64)

    def _on_step(self) -> bool:
        if self.stopped_at is not None:
            return False  # the first step after the rollout that reached the target: stop before it is used
        actions = np.asarray(self.locals["actions"]).reshape(-1)
        rewards = np.asarray(self.locals["rewards"], dtype=np.float64)
        dones, infos, new_obs = self.locals["dones"], self.locals["infos"], self.locals["new_obs"]
        potential = self._current_potential()
        if potential is not None and self._potential is not None:  # undo the shaping (module docstring)
            rewards = rewards - (np.where(dones, 0.0, potential) - self._potential)
            self._potential = potential
        for i in range(len(actions)):
            info = infos[i]
            time_limit = bool(info.get("TimeLimit.truncated", False))
            done = bool(dones[i])
            terminated = done and not time_limit
            truncated = done and (time_limit or len(self._steps[i]) + 1 == self._max_steps)
            self._steps[i].append((int(actions[i]), float(rewards[i]), terminated, truncated))
            self._obs[i].append(np.asarray(info["terminal_observation"] if done else new_obs[i]).copy())
            if done:
                self._finish(i, info, np.asarray(new_obs[i]))
        return True

    def _finish(self, i: int, info: dict[str, Any], next_start: np.ndarray) -> None:
        steps = self._steps[i]
        actions, rewards, terminations, truncations = (np.array(column) for column in zip(*steps, strict=True))
        self.episodes.append(
            Episodes(
                np.stack(self._obs[i])[None].astype(np.float32),
                actions[None].astype(np.int64),
                rewards[None].astype(np.float64),
                terminations[None].astype(bool),
                truncations[None].astype(bool),
                np.asarray(info["cq_matrix"], dtype=np.float32)[None],
                np.asarray(info["qx_matrix"], dtype=np.float32)[None],
                np.array([-1], dtype=np.int64),  # a training episode has no seed of its own (its env's stream)
            )
        )
        self._rollout_returns.append(float(rewards.sum()))
        self._obs[i], self._steps[i] = [next_start.copy()], []

    def _on_rollout_end(self) -> None:
        self.timesteps = self.num_timesteps
        if not self._rollout_returns:
            return
        if self.validation is not None:
            self.validation_scores.append(self.validation.evaluate())
        self.rollout_scores.append((float(np.mean(self._rollout_returns)) - self.low) / (self.high - self.low))
        self._rollout_returns = []
        self.snapshot = copy.deepcopy(self.model.policy.state_dict())  # the policy that collected this rollout
        score = (self.validation_scores if self.validation is not None else self.rollout_scores)[-1]
        if self.target is not None and score >= self.target:
            self.stopped_at = len(self.rollout_scores) - 1


def train_medium(
    env_id: str,
    seed: int,
    *,
    low: float,
    high: float,
    target_score: float = 0.5,
    max_timesteps: int = 2_000_000,
    validation_trainees: int = 100,
    progress_bar: bool = False,
    **config: Any,
) -> MediumRun:
    """Train PPO on ``env_id`` until a rollout's normalized score reaches ``target_score`` (module docstring).

    Args:
        env_id: The env.
        seed: The run's seed.
        low: The mean return that scores 0 (:func:`sb3_ext.evaluate.anchor_returns`).
        high: The mean return that scores 1.
        target_score: The normalized score at which the run stops.
        max_timesteps: The run's step budget, if it never reaches the target.
        validation_trainees: Trainees of the stopping rule's validation score (0: the training episodes' score).
        progress_bar: Show SB3's progress bar.
        **config: Other :class:`~sb3_ext.config.TrainConfig` fields (``policy``, ``preset``, ``device``...).
    """
    if high == low:
        raise FieldError("high", "must differ from low (the anchors of the normalized score)", high)
    check_int("validation_trainees", validation_trainees, 0)
    if validation_trainees == 1:
        raise FieldError("validation_trainees", "must be 0 (no validation) or at least 2", validation_trainees)
    model = make_model(TrainConfig(timesteps=max_timesteps, env_id=env_id, seed=seed, **config))
    validation = ScoreCallback(1, validation_trainees, VALIDATION_SEED, env_id) if validation_trainees else None
    recorder = EpisodeRecorder(low, high, target_score, validation)
    model.learn(max_timesteps, callback=recorder, progress_bar=progress_bar)
    reached = recorder.stopped_at is not None
    if recorder.snapshot is not None and reached:
        model.policy.load_state_dict(recorder.snapshot)
    if not recorder.episodes:
        raise FieldError("max_timesteps", "the run ended before its first episode did", max_timesteps)
    scores = recorder.validation_scores if validation is not None else recorder.rollout_scores
    return MediumRun(
        model=model,
        replay=Episodes.concatenate(recorder.episodes),
        score=scores[recorder.stopped_at] if reached else (scores[-1] if scores else float("nan")),  # type: ignore[index]
        rollout_scores=recorder.rollout_scores,
        validation_scores=recorder.validation_scores,
        timesteps=recorder.timesteps,
        reached=reached,
    )
