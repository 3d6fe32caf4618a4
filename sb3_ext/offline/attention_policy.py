"""``OfflineAttnPolicy``: the offline policy on ``AttnCQQXPolicy``'s attention network, with the CQ/QX heads.

Each network is a :class:`~sb3_ext.attention.CQQXNetwork`:

* the actor's 685-cell factorized head gives the policy's logits, and its CQ/QX heads the predictions
  (:meth:`OfflineAttnPolicy.predict_weights`, trained by the offline algorithms' auxiliary losses);
* each Q network is dueling over the same structure, ``Q(s, a) = V(s) + A(s, a)``: its critic head gives ``V``
  and its factorized head the 685 advantages ``A``;
* the value network is the critic head of a network of its own.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.type_aliases import Schedule
from torch import nn

from fitness_weights_env import observation_layout
from fitness_weights_env.errors import FieldError
from sb3_ext.attention import CQQXNetwork
from sb3_ext.offline.policy import OfflinePolicy
from sb3_ext.policies import AuxPrediction, _aux_prediction, predict_weights

__all__ = ["OfflineAttnPolicy"]


class _Logits(nn.Module):
    def __init__(self, network: CQQXNetwork) -> None:
        super().__init__()
        self.network = network

    def forward(self, obs: th.Tensor) -> th.Tensor:
        return self.network(obs, aux=False).logits


class _DuelingQ(nn.Module):
    def __init__(self, network: CQQXNetwork) -> None:
        super().__init__()
        self.network = network

    def forward(self, obs: th.Tensor) -> th.Tensor:
        out = self.network(obs, aux=False)
        return out.value + out.logits


class _Value(nn.Module):
    def __init__(self, network: CQQXNetwork) -> None:
        super().__init__()
        self.network = network

    def forward(self, obs: th.Tensor) -> th.Tensor:
        return self.network(obs, aux=False).value


class OfflineAttnPolicy(OfflinePolicy):
    """The offline policy on the attention network (module docstring).

    Args:
        observation_space: A FitnessWeights observation.
        action_space: ``Discrete(685)``.
        lr_schedule: The learning rate.
        embed_dim: Token width.
        n_heads: Attention heads.
        n_latents: Latent tokens.
        n_layers: Latent self-attention blocks.
        mlp_ratio: MLP hidden width as a multiple of ``embed_dim``.
        confidence_scale: Expected squared error at which the predictions' confidence is 0.5.
        critics: Build the Q and value networks (IQL), or the actor alone (BC).
        optimizer_class: Optimizer (default Adam).
        optimizer_kwargs: Its extra arguments.
    """

    aux_heads = True

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        embed_dim: int = 32,
        n_heads: int = 2,
        n_latents: int = 4,
        n_layers: int = 0,
        mlp_ratio: int = 2,
        confidence_scale: float = 1e-3,
        critics: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
    ) -> None:
        for name, value, high in (
            ("embed_dim", embed_dim, 512),
            ("n_heads", n_heads, 16),
            ("n_latents", n_latents, 64),
            ("n_layers", n_layers, 8),
            ("mlp_ratio", mlp_ratio, 8),
        ):
            low = 0 if name == "n_layers" else 1
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise FieldError(name, f"must be an integer from {low} to {high}", value)
        if not confidence_scale > 0:
            raise FieldError("confidence_scale", "must be above 0", confidence_scale)
        self.network_kwargs = dict(
            embed_dim=embed_dim, n_heads=n_heads, n_latents=n_latents, n_layers=n_layers, mlp_ratio=mlp_ratio
        )
        self.confidence_scale = confidence_scale
        self.layout = observation_layout(int(observation_space.shape[0]))  # type: ignore[index]
        super().__init__(observation_space, action_space, lr_schedule, critics, optimizer_class, optimizer_kwargs)

    def _network(self) -> CQQXNetwork:
        return CQQXNetwork(**self.network_kwargs, layout=self.layout)

    def make_actor(self) -> nn.Module:
        """The actor network; its factorized head gives the logits."""
        return _Logits(self._network())

    def make_q(self) -> nn.Module:
        """A dueling Q network: critic head plus factorized head."""
        return _DuelingQ(self._network())

    def make_value(self) -> nn.Module:
        """A network whose critic head gives V."""
        return _Value(self._network())

    def actor_with_aux(self, obs: th.Tensor) -> tuple[th.Tensor, AuxPrediction | None]:
        """The logits and the CQ/QX predictions, from one forward pass of the actor network."""
        out = cast(_Logits, self.actor).network(self.normalize(obs), aux=True)
        return out.logits, _aux_prediction(out)

    def aux_prediction(self, obs: th.Tensor) -> AuxPrediction:
        """The CQ/QX predictions and log expected error for raw observations."""
        prediction = self.actor_with_aux(obs)[1]
        assert prediction is not None
        return prediction

    def confidence(self, log_error: th.Tensor) -> th.Tensor:
        """``1 / (1 + error / confidence_scale)`` of the predicted log squared error."""
        return th.sigmoid(np.log(self.confidence_scale) - log_error)

    def predict_weights(self, observation: np.ndarray | th.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray | float]:
        """The predicted CQ and QX matrices and their confidence (as :meth:`AttnCQQXPolicy.predict_weights`)."""
        return predict_weights(self, observation)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(self.network_kwargs, confidence_scale=self.confidence_scale)
        return data
