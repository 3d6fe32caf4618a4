"""A rollout buffer that also stores the auxiliary CQ and QX targets of every step."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.vec_env import VecNormalize

from fitness_weights_env import CATALOG

__all__ = ["AuxRolloutBuffer", "AuxRolloutBufferSamples"]

CQ_SHAPE = (CATALOG.n_subjects, CATALOG.n_qualities)
QX_SHAPE = (CATALOG.n_qualities, CATALOG.n_exercises)


class AuxRolloutBufferSamples(NamedTuple):
    """SB3's rollout samples plus the auxiliary targets (batch, 93, 5) and (batch, 5, 44)."""

    observations: th.Tensor
    actions: th.Tensor
    old_values: th.Tensor
    old_log_prob: th.Tensor
    advantages: th.Tensor
    returns: th.Tensor
    cq_targets: th.Tensor
    qx_targets: th.Tensor


class AuxRolloutBuffer(RolloutBuffer):
    """SB3's ``RolloutBuffer`` with the episode-final CQ and QX matrices stored for every step.

    The targets are written by :meth:`fill_targets` (called by the PPO's target callback when an
    episode ends, and at the end of a rollout for the episodes still running), not by :meth:`add`,
    so the buffer's ``add`` signature stays SB3's.

    Args: as :class:`stable_baselines3.common.buffers.RolloutBuffer`.
    """

    cq_targets: np.ndarray
    qx_targets: np.ndarray

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: th.device | str = "auto",
        gae_lambda: float = 1,
        gamma: float = 0.99,
        n_envs: int = 1,
    ) -> None:
        super().__init__(buffer_size, observation_space, action_space, device, gae_lambda, gamma, n_envs)

    def reset(self) -> None:
        """Clear the buffer, targets included."""
        self.cq_targets = np.zeros((self.buffer_size, self.n_envs, *CQ_SHAPE), dtype=np.float32)
        self.qx_targets = np.zeros((self.buffer_size, self.n_envs, *QX_SHAPE), dtype=np.float32)
        self.targets_filled = np.zeros((self.buffer_size, self.n_envs), dtype=bool)
        super().reset()

    def fill_targets(self, env: int, start: int, stop: int, cq: np.ndarray, qx: np.ndarray) -> None:
        """Set the targets of steps ``start <= t < stop`` of environment ``env``."""
        self.cq_targets[start:stop, env] = cq
        self.qx_targets[start:stop, env] = qx
        self.targets_filled[start:stop, env] = True

    def get(self, batch_size: int | None = None):  # noqa: D102  (same contract as SB3's)
        if not self.generator_ready and not self.targets_filled.all():
            missing = int((~self.targets_filled).sum())
            raise RuntimeError(f"{missing} steps of the rollout have no CQ/QX targets; the target callback did not run")
        if not self.generator_ready:
            self.cq_targets = self.swap_and_flatten(self.cq_targets)
            self.qx_targets = self.swap_and_flatten(self.qx_targets)
        yield from super().get(batch_size)

    def _get_samples(  # type: ignore[override]  # SB3's samples plus the targets, as SB3's DictRolloutBuffer
        self, batch_inds: np.ndarray, env: VecNormalize | None = None
    ) -> AuxRolloutBufferSamples:
        samples = super()._get_samples(batch_inds, env)
        return AuxRolloutBufferSamples(
            *samples, self.to_torch(self.cq_targets[batch_inds]), self.to_torch(self.qx_targets[batch_inds])
        )
