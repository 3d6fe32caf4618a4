"""The policy of the offline algorithms: an actor, twin Q networks with their targets, a state value, normalization.

:class:`OfflinePolicy` is an SB3 ``BasePolicy`` over ``Discrete(685)``: ``predict``, ``get_distribution`` (a
``CategoricalDistribution`` of the actor's logits, which :class:`~sb3_ext.actions.PolicyActions` samples, so the
evaluation and the service run it as they run a PPO policy), ``state_dict`` and ``save``/``load``. Its subclasses
choose the networks: :class:`~sb3_ext.offline.mlp_policy.OfflineMlpPolicy` (MLPs) and
:class:`~sb3_ext.offline.attention_policy.OfflineAttnPolicy` (the attention network of ``AttnCQQXPolicy``, whose
685-cell factorized head gives the policy's logits and each Q network's advantages, with the CQ/QX heads).

Every network reads the observation normalized by the dataset's statistics, ``(obs - mean) / std``, held as
buffers (so they are saved with the weights, and a served policy normalizes as training did). Without critics
(``critics=False``, behavior cloning) the policy is the actor alone.
"""

from __future__ import annotations

import copy
from typing import Any, cast

import torch as th
from gymnasium import spaces
from stable_baselines3.common.distributions import CategoricalDistribution
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from torch import nn

from fitness_weights_env import LAYOUT, N_ACTIONS, TRAINING_LAYOUT
from fitness_weights_env.errors import FieldError
from sb3_ext.policies import AuxPrediction

__all__ = ["OfflinePolicy"]


class OfflinePolicy(BasePolicy):
    """Actor, twin Q networks with targets, and a value network for discrete offline RL.

    Args:
        observation_space: A FitnessWeights observation, ``Box(0, 1, (198,))`` (v0) or ``Box(0, 1, (199,))`` (v1).
        action_space: ``Discrete(685)``.
        lr_schedule: The learning rate (the algorithm sets each optimizer's rate at every step).
        critics: Build the Q and value networks (IQL); without them the policy is the actor alone (BC).
        optimizer_class: Optimizer of every network (default Adam).
        optimizer_kwargs: Its extra arguments (default for Adam: ``fused=True``).
    """

    aux_heads = False
    """Whether the actor predicts the CQ/QX matrices (``predict_weights``)."""
    obs_mean: th.Tensor
    obs_std: th.Tensor

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        critics: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
    ) -> None:
        sizes = (LAYOUT.size, TRAINING_LAYOUT.size)
        if not (isinstance(observation_space, spaces.Box) and observation_space.shape in [(n,) for n in sizes]):
            raise FieldError(
                "observation_space",
                f"must be a FitnessWeights observation, Box({sizes[0]},) or Box({sizes[1]},); got {observation_space}",
            )
        if not (isinstance(action_space, spaces.Discrete) and action_space.n == N_ACTIONS):
            raise FieldError("action_space", f"must be Discrete({N_ACTIONS}); got {action_space}")
        if optimizer_kwargs is None:  # one fused kernel for all parameters: 14% more updates per second (RESULTS.md)
            optimizer_kwargs = {"fused": True} if optimizer_class == th.optim.Adam else {}
        super().__init__(
            observation_space,
            action_space,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
            normalize_images=False,
        )
        self.critics = critics
        size = observation_space.shape[0]
        self.register_buffer("obs_mean", th.zeros(size))
        self.register_buffer("obs_std", th.ones(size))
        self.action_dist = CategoricalDistribution(N_ACTIONS)
        self.actor = self.make_actor()
        if critics:
            self.q1, self.q2 = self.make_q(), self.make_q()
            self.q1_target, self.q2_target = copy.deepcopy(self.q1), copy.deepcopy(self.q2)
            for parameter in [*self.q1_target.parameters(), *self.q2_target.parameters()]:
                parameter.requires_grad_(False)
            self.value = self.make_value()
        lr = lr_schedule(1)
        self.optimizer = self.optimizer_class(self.actor.parameters(), lr=lr, **self.optimizer_kwargs)  # type: ignore[call-arg]
        if critics:
            q_parameters = [*self.q1.parameters(), *self.q2.parameters()]
            self.critic_optimizer = self.optimizer_class(q_parameters, lr=lr, **self.optimizer_kwargs)  # type: ignore[call-arg]
            self.value_optimizer = self.optimizer_class(self.value.parameters(), lr=lr, **self.optimizer_kwargs)  # type: ignore[call-arg]

    # -- the networks, chosen by the subclasses ----------------------------------------------------------------

    def make_actor(self) -> nn.Module:
        """The actor: normalized observations (B, n) -> logits (B, 685)."""
        raise NotImplementedError

    def make_q(self) -> nn.Module:
        """One Q network: normalized observations (B, n) -> Q values (B, 685)."""
        raise NotImplementedError

    def make_value(self) -> nn.Module:
        """The value network: normalized observations (B, n) -> V (B, 1)."""
        raise NotImplementedError

    # -- what the algorithms and SB3 use -----------------------------------------------------------------------

    def set_normalization(self, mean: th.Tensor, std: th.Tensor) -> None:
        """Normalize observations as ``(obs - mean) / std`` from now on (the dataset's statistics)."""
        self.obs_mean.copy_(th.as_tensor(mean, dtype=th.float32))
        self.obs_std.copy_(th.as_tensor(std, dtype=th.float32))

    def normalize(self, obs: th.Tensor) -> th.Tensor:
        """``(obs - mean) / std``, as float32."""
        return (obs.float() - self.obs_mean) / self.obs_std

    def logits(self, obs: th.Tensor) -> th.Tensor:
        """The actor's logits (B, 685) for raw observations."""
        return cast(th.Tensor, self.actor(self.normalize(obs)))

    def actor_with_aux(self, obs: th.Tensor) -> tuple[th.Tensor, AuxPrediction | None]:
        """The actor's logits and, for a policy with CQ/QX heads, their predictions, from one forward pass."""
        return self.logits(obs), None

    def q_values(self, obs: th.Tensor, target: bool = False) -> tuple[th.Tensor, th.Tensor]:
        """Both Q networks' values (B, 685) (or their targets') for raw observations."""
        x = self.normalize(obs)
        q1, q2 = (self.q1_target, self.q2_target) if target else (self.q1, self.q2)
        return q1(x), q2(x)

    def q_taken(self, obs: th.Tensor, actions: th.Tensor, target: bool = False) -> tuple[th.Tensor, th.Tensor]:
        """Both Q networks' values (B,) of ``actions`` (B,) (or their targets'), for raw observations.

        A network with a ``taken(x, actions)`` method computes the taken action's value alone (an MLP's last layer
        for one row of its weights instead of 685); others give all 685 and the taken one is picked.
        """
        x = self.normalize(obs)
        values = []
        for q in (self.q1_target, self.q2_target) if target else (self.q1, self.q2):
            taken = getattr(q, "taken", None)
            values.append(taken(x, actions) if taken is not None else q(x).gather(1, actions[:, None]).squeeze(1))
        return values[0], values[1]

    def state_value(self, obs: th.Tensor) -> th.Tensor:
        """V (B,) for raw observations."""
        return cast(th.Tensor, self.value(self.normalize(obs))).squeeze(-1)

    def update_targets(self, tau: float) -> None:
        """Polyak averaging of the target Q networks: ``target <- (1 - tau) target + tau online``."""
        with th.no_grad():
            online: list[th.Tensor] = [*self.q1.parameters(), *self.q2.parameters()]
            targets: list[th.Tensor] = [*self.q1_target.parameters(), *self.q2_target.parameters()]
            th._foreach_lerp_(targets, online, tau)

    def get_distribution(self, obs: PyTorchObs) -> CategoricalDistribution:
        """The actor's action distribution for a batch of observations."""
        return self.action_dist.proba_distribution(action_logits=self.logits(cast(th.Tensor, obs)))

    def forward(self, obs: th.Tensor, deterministic: bool = False) -> th.Tensor:
        """Actions for a batch of observations."""
        return self._predict(obs, deterministic)

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        return self.get_distribution(observation).get_actions(deterministic=deterministic)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(critics=self.critics)
        return data
