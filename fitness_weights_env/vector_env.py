"""``FitnessWeightsVectorEnv``: N trainees stepped together by the batched kernel."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from fitness_weights_env import dynamics
from fitness_weights_env.env import check_options
from fitness_weights_env.episode import (
    DEFAULT_MAX_EPISODE_STEPS,
    Adjustment,
    EpisodeConfig,
    ProfileLike,
    check_max_episode_steps,
)
from fitness_weights_env.layout import LAYOUT
from fitness_weights_env.render import RENDER_MODES, check_render_mode, render_trainee

__all__ = ["FitnessWeightsVectorEnv"]


class FitnessWeightsVectorEnv(VectorEnv):
    """N independent FitnessWeights trainees stepped in one call of the batched kernel.

    Observation, action, reward and info are those of
    :class:`~fitness_weights_env.env.FitnessWeightsEnv`, batched along a leading axis of size
    ``num_envs``; info follows Gymnasium's vector convention (each key has a boolean ``_key`` mask).
    Create it with ``gym.make_vec("FitnessWeights-v0", num_envs=N)`` or directly.

    **Autoreset: same step** (``AutoresetMode.SAME_STEP``, as in Stable-Baselines3). When a trainee's
    episode is truncated, ``step`` returns the first observation of its next episode, and its last
    observation and info go to ``info["final_obs"]`` and ``info["final_info"]`` (masked by
    ``info["_final_obs"]`` and ``info["_final_info"]``). The aux targets of an episode, its final
    matrices, are ``info["final_info"]["cq_matrix"]`` and ``["qx_matrix"]``.

    **Matrices in info**: copying both matrices of every trainee costs more than the step itself, so
    by default (``info_matrices="final"``) ``cq_matrix`` and ``qx_matrix`` appear only in ``reset``'s
    info and in ``final_info``, the episode-final matrices that training uses as aux targets;
    :attr:`state` (``state.cq``, ``state.qx``) gives the live matrices without a copy.
    ``info_matrices="every_step"`` adds them to every step's info, like the single env.

    **Seeding**: ``reset(seed=s)`` seeds trainee ``i`` with ``s + i`` (a list seeds each), so the vector
    env reproduces N single envs seeded alike, step for step.

    Args:
        num_envs: Number of trainees N.
        render_mode: ``"ansi"`` or ``"rgb_array"``: :meth:`render` returns one text summary or heatmap per trainee.
        max_episode_steps: Episodes are truncated after this many steps (default 64).
        step_size: Size of one adjustment.
        adjustment: ``"increase"`` or ``"random"`` (one draw per trainee and step).
        init: Initial matrices, ``"uniform"`` or ``"prior"``.
        drift_coef: Drift penalty coefficient.
        info_matrices: ``"final"`` or ``"every_step"`` (see above).
    """

    metadata = {"render_modes": list(RENDER_MODES), "autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(
        self,
        num_envs: int = 1,
        render_mode: str | None = None,
        *,
        max_episode_steps: int | None = DEFAULT_MAX_EPISODE_STEPS,
        step_size: float = 0.05,
        adjustment: Adjustment = "increase",
        init: dynamics.Init = "uniform",
        drift_coef: float = 0.01,
        info_matrices: Literal["final", "every_step"] = "final",
    ) -> None:
        if info_matrices not in ("final", "every_step"):
            raise ValueError(f"info_matrices must be 'final' or 'every_step', got {info_matrices!r}")
        self.info_matrices = info_matrices
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        self.num_envs = int(num_envs)
        self.render_mode = check_render_mode(render_mode)
        self.max_episode_steps = check_max_episode_steps(max_episode_steps)
        self.config = EpisodeConfig(step_size=step_size, adjustment=adjustment, init=init, drift_coef=drift_coef)
        self.single_observation_space = spaces.Box(0.0, 1.0, shape=(LAYOUT.size,), dtype=np.float32)
        self.single_action_space = spaces.Discrete(dynamics.N_ACTIONS)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.state = dynamics.WeightState.zeros(self.num_envs, self.config.step_size)
        self._rngs: list[np.random.Generator] | None = None
        self._elapsed_steps = np.zeros(self.num_envs, dtype=np.int64)
        self._all = np.ones(self.num_envs, dtype=bool)

    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start new episodes for every trainee.

        Args:
            seed: ``s`` seeds trainee ``i`` with ``s + i``; a list gives each trainee's seed;
                ``None`` keeps the current generators (fresh ones on the first reset).
            options: ``{"profiles": [profile or None, ...]}`` with one entry per trainee; ``None``
                entries, or no option, draw from the population.
        """
        super().reset(seed=seed if isinstance(seed, (int, np.integer)) else None)
        profiles = check_options(options, {"profiles"}).get("profiles")
        if profiles is None:
            profiles = [None] * self.num_envs
        elif len(profiles) != self.num_envs:
            raise ValueError(f"options['profiles'] must have num_envs={self.num_envs} entries, got {len(profiles)}")
        if seed is None:
            seeds: Sequence[int | None] = [None] * self.num_envs
        elif isinstance(seed, (int, np.integer)):
            seeds = [int(seed) + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"seed must be an int or a list of num_envs={self.num_envs} seeds, got {len(seeds)}")
        if self._rngs is None or seed is not None:
            self._rngs = [seeding.np_random(s)[0] for s in seeds]
        self._start(slice(None), profiles)
        return self.state.observation.copy(), self._info()

    def _start(self, index: np.ndarray | slice, profiles: Sequence[ProfileLike | None]) -> None:
        assert self._rngs is not None
        rngs = self._rngs[index] if isinstance(index, slice) else [self._rngs[i] for i in index]
        dynamics.reset(self.state, index, *self.config.draw_starts(rngs, profiles))
        self._elapsed_steps[index] = 0

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Adjust one cell per trainee; truncated trainees restart in the same step."""
        if self._rngs is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        actions = dynamics.check_actions(actions, (self.num_envs,))
        deltas = self.config.draw_deltas(self._rngs)
        rewards = dynamics.step(self.state, actions, deltas, self.config.drift_coef)
        self._elapsed_steps += 1
        terminated = np.zeros(self.num_envs, dtype=bool)
        if self.max_episode_steps is None:
            truncated = np.zeros(self.num_envs, dtype=bool)
        else:
            truncated = self._elapsed_steps >= self.max_episode_steps
        observation = self.state.observation.copy()
        info = self._info(matrices=self.info_matrices == "every_step" or bool(truncated.any()))
        if truncated.any():
            all_done = bool(truncated.all())
            done = np.flatnonzero(truncated)
            final_obs = np.full(self.num_envs, None, dtype=object)
            final_obs[done] = list(observation[done])
            final_info: dict[str, Any] = {}
            for key, value in info.items():
                if not key.startswith("_"):  # as Gymnasium's SyncVectorEnv: zeros where not done
                    mask = truncated.reshape((-1,) + (1,) * (value.ndim - 1))
                    final_info[key] = value if all_done else np.where(mask, value, 0).astype(value.dtype)
                    final_info[f"_{key}"] = truncated.copy()
            self._start(slice(None) if all_done else done, [None] * len(done))
            observation[done] = self.state.observation[done]
            info = self._info(matrices=self.info_matrices == "every_step")
            info.update(final_obs=final_obs, _final_obs=truncated.copy(), final_info=final_info)
            info["_final_info"] = truncated.copy()
        return observation, rewards, terminated, truncated, info

    def _info(self, matrices: bool = True) -> dict[str, Any]:
        info = dynamics.step_info(self.state, matrices=matrices)
        for key in list(info):
            info[f"_{key}"] = self._all.copy()
        return info

    def render(self) -> tuple[str, ...] | tuple[np.ndarray, ...] | None:
        """One text summary (``render_mode="ansi"``) or heatmap image (``"rgb_array"``) per trainee."""
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='ansi' or 'rgb_array'")
            return None
        steps = self._elapsed_steps
        return tuple(render_trainee(self.render_mode, self.state, i, int(steps[i])) for i in range(self.num_envs))
