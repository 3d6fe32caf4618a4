"""``OfflineMlpPolicy``: the offline policy with MLP networks (``"MlpPolicy"`` of the offline algorithms)."""

from __future__ import annotations

from typing import Any, cast

import torch as th
from gymnasium import spaces
from stable_baselines3.common.torch_layers import create_mlp
from stable_baselines3.common.type_aliases import Schedule
from torch import nn

from fitness_weights_env import N_ACTIONS
from fitness_weights_env.errors import FieldError
from sb3_ext.offline.policy import OfflinePolicy

__all__ = ["ActionValues", "OfflineMlpPolicy"]


class ActionValues(nn.Module):
    """An MLP to the 685 action values, which can also give the value of one action per row cheaply.

    Args:
        size: Input size.
        net_arch: Hidden layer widths.
    """

    def __init__(self, size: int, net_arch: list[int]) -> None:
        super().__init__()
        self.trunk = nn.Sequential(*create_mlp(size, -1, net_arch, nn.ReLU))
        self.head = nn.Linear(net_arch[-1], N_ACTIONS)

    def forward(self, x: th.Tensor) -> th.Tensor:
        """All 685 values (B, 685)."""
        return cast(th.Tensor, self.head(self.trunk(x)))

    def taken(self, x: th.Tensor, actions: th.Tensor) -> th.Tensor:
        """The values (B,) of ``actions`` (B,): the last layer for one row of its weights, not 685."""
        hidden = self.trunk(x)
        return (hidden * self.head.weight[actions]).sum(dim=1) + self.head.bias[actions]


class OfflineMlpPolicy(OfflinePolicy):
    """Actor, twin Q and value networks that are MLPs with ReLU (CORL's IQL and d3rlpy's defaults: 256, 256).

    Args:
        observation_space: A FitnessWeights observation.
        action_space: ``Discrete(685)``.
        lr_schedule: The learning rate.
        net_arch: Hidden layer widths of every network.
        critics: Build the Q and value networks (IQL), or the actor alone (BC).
        optimizer_class: Optimizer (default Adam).
        optimizer_kwargs: Its extra arguments.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        net_arch: list[int] | None = None,
        critics: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
    ) -> None:
        net_arch = [256, 256] if net_arch is None else list(net_arch)
        if not net_arch or any(isinstance(w, bool) or not isinstance(w, int) or not 1 <= w <= 4096 for w in net_arch):
            raise FieldError("net_arch", "must be a non-empty list of layer widths from 1 to 4096", net_arch)
        if len(net_arch) > 8:
            raise FieldError("net_arch", "may have at most 8 layers", net_arch)
        self.net_arch = net_arch
        super().__init__(observation_space, action_space, lr_schedule, critics, optimizer_class, optimizer_kwargs)

    def _mlp(self, out: int) -> nn.Module:
        size = int(self.observation_space.shape[0])  # type: ignore[index]
        return nn.Sequential(*create_mlp(size, out, self.net_arch, nn.ReLU))

    def make_actor(self) -> nn.Module:
        """An MLP to the 685 logits."""
        return self._mlp(N_ACTIONS)

    def make_q(self) -> nn.Module:
        """An MLP to the 685 Q values (:class:`ActionValues`)."""
        return ActionValues(int(self.observation_space.shape[0]), self.net_arch)  # type: ignore[index]

    def make_value(self) -> nn.Module:
        """An MLP to V."""
        return self._mlp(1)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(net_arch=self.net_arch)
        return data
