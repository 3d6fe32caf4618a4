"""Rollout buffers: one that also stores the auxiliary CQ and QX targets of every step, and its device twin."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.type_aliases import RolloutBufferSamples
from stable_baselines3.common.vec_env import VecNormalize

from fitness_weights_env import CATALOG

__all__ = ["AuxRolloutBuffer", "AuxRolloutBufferSamples", "DeviceRolloutBuffer"]

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


class DeviceRolloutBuffer(AuxRolloutBuffer):
    """The rollout buffer of PPO's device rollout: every array a tensor on the model's device.

    SB3's ``RolloutBuffer`` contract (``reset``, ``add``, ``compute_returns_and_advantage``, ``get``) and its
    arithmetic (float32 storage, the same GAE recursion, minibatches of a permutation), with tensors in and out
    and nothing copied to the host. The permutation is drawn with torch's generator on the device, not numpy's,
    so minibatches differ from the host buffer's for the same seed. The auxiliary targets are stored only with
    ``targets=True`` and are written on the device by :meth:`fill_episode_targets`.

    Args: as :class:`stable_baselines3.common.buffers.RolloutBuffer`, and
        targets: Store the CQ/QX targets (a policy with auxiliary heads).
    """

    observations: th.Tensor  # type: ignore[assignment]
    actions: th.Tensor  # type: ignore[assignment]
    rewards: th.Tensor  # type: ignore[assignment]
    returns: th.Tensor  # type: ignore[assignment]
    episode_starts: th.Tensor  # type: ignore[assignment]
    log_probs: th.Tensor  # type: ignore[assignment]
    values: th.Tensor  # type: ignore[assignment]
    advantages: th.Tensor  # type: ignore[assignment]
    cq_targets: th.Tensor  # type: ignore[assignment]
    qx_targets: th.Tensor  # type: ignore[assignment]

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: th.device | str = "auto",
        gae_lambda: float = 1,
        gamma: float = 0.99,
        n_envs: int = 1,
        targets: bool = True,
    ) -> None:
        self.targets = targets
        super().__init__(buffer_size, observation_space, action_space, device, gae_lambda, gamma, n_envs)

    def _zeros(self, *shape: int, dtype: th.dtype = th.float32) -> th.Tensor:
        return th.zeros((self.buffer_size, self.n_envs, *shape), dtype=dtype, device=self.device)

    def reset(self) -> None:
        """Clear the buffer: fresh arrays on the device (its caching allocator makes that cheap)."""
        self.observations = self._zeros(*self.obs_shape)
        self.actions = self._zeros(self.action_dim, dtype=th.int64)
        for name in ("rewards", "returns", "episode_starts", "values", "log_probs", "advantages"):
            setattr(self, name, self._zeros())
        empty = th.zeros(0, device=self.device)
        self.cq_targets = self._zeros(*CQ_SHAPE) if self.targets else empty
        self.qx_targets = self._zeros(*QX_SHAPE) if self.targets else empty
        self.pos, self.full, self.generator_ready = 0, False, False

    def add(  # type: ignore[override]  # tensors, not numpy arrays
        self,
        obs: th.Tensor,
        action: th.Tensor,
        reward: th.Tensor,
        episode_start: th.Tensor,
        value: th.Tensor,
        log_prob: th.Tensor,
    ) -> None:
        """Write one step of every env at ``pos`` (SB3's ``add``, on the device)."""
        self.observations[self.pos] = obs
        self.actions[self.pos] = action.reshape(self.n_envs, self.action_dim)
        self.rewards[self.pos] = reward
        self.episode_starts[self.pos] = episode_start
        self.values[self.pos] = value.flatten()
        self.log_probs[self.pos] = log_prob.flatten()
        self.pos += 1
        self.full = self.pos == self.buffer_size

    def fill_episode_targets(self, envs: th.Tensor, start: th.Tensor, stop: int, cq: th.Tensor, qx: th.Tensor) -> None:
        """Set the targets of steps ``start[e] <= t < stop`` of every env ``e`` where ``envs`` is true.

        Args:
            envs: (n_envs,) bool, the envs whose episode ended (or, at the rollout's end, is still running).
            start: (n_envs,) int64, the first step of each env's episode in this rollout.
            stop: One past the last step to fill.
            cq: (n_envs, 93, 5) their targets (rows of other envs are ignored).
            qx: (n_envs, 5, 44).
        """
        steps = th.arange(self.buffer_size, device=self.device)[:, None]
        cells = envs[None, :] & (steps >= start[None, :]) & (steps < stop)  # (buffer_size, n_envs)
        self.cq_targets = th.where(cells[:, :, None, None], cq[None], self.cq_targets)
        self.qx_targets = th.where(cells[:, :, None, None], qx[None], self.qx_targets)

    def compute_returns_and_advantage(self, last_values: th.Tensor, dones: th.Tensor) -> None:  # type: ignore[override]
        """GAE(lambda) advantages and TD(lambda) returns, as SB3's, on the device."""
        last_values = last_values.flatten().float()
        last_gae_lam = th.zeros(self.n_envs, device=self.device)
        for step in reversed(range(self.buffer_size)):
            if step == self.buffer_size - 1:
                next_non_terminal, next_values = 1.0 - dones.float(), last_values
            else:
                next_non_terminal, next_values = 1.0 - self.episode_starts[step + 1], self.values[step + 1]
            delta = self.rewards[step] + self.gamma * next_values * next_non_terminal - self.values[step]
            last_gae_lam = delta + self.gamma * self.gae_lambda * next_non_terminal * last_gae_lam
            self.advantages[step] = last_gae_lam
        self.returns = self.advantages + self.values

    def get(self, batch_size: int | None = None):  # noqa: D102  (same contract as SB3's)
        if not self.full:
            raise RuntimeError(f"the rollout has {self.pos} of {self.buffer_size} steps: collect it first")
        total = self.buffer_size * self.n_envs
        indices = th.randperm(total, device=self.device)
        if not self.generator_ready:  # (buffer_size, n_envs, ...) to (n_envs * buffer_size, ...), as SB3's
            names = ["observations", "actions", "values", "log_probs", "advantages", "returns"]
            names += ["cq_targets", "qx_targets"] if self.targets else []
            for name in names:
                array = getattr(self, name)
                setattr(self, name, array.transpose(0, 1).reshape(total, *array.shape[2:]))
            self.generator_ready = True
        batch_size = total if batch_size is None else batch_size
        for start in range(0, total, batch_size):
            yield self._get_samples(indices[start : start + batch_size])

    def _get_samples(  # type: ignore[override]
        self, batch_inds: th.Tensor, env: VecNormalize | None = None
    ) -> AuxRolloutBufferSamples | RolloutBufferSamples:
        data = (
            self.observations[batch_inds],
            self.actions[batch_inds].float(),  # as SB3's: actions are float32 in the samples
            self.values[batch_inds],
            self.log_probs[batch_inds],
            self.advantages[batch_inds],
            self.returns[batch_inds],
        )
        if not self.targets:
            return RolloutBufferSamples(*data)
        return AuxRolloutBufferSamples(*data, self.cq_targets[batch_inds], self.qx_targets[batch_inds])
