"""``AttnCQQXPolicy``: an actor-critic policy that also predicts the optimized CQ and QX matrices."""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol, cast

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.distributions import CategoricalDistribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule

from fitness_weights_env import LAYOUT, N_ACTIONS, TRAINING_LAYOUT, observation_layout
from fitness_weights_env.errors import FieldError
from fitness_weights_env.layout import ObservationLayout
from sb3_ext.attention import CQQXNetwork, NetworkOutput
from sb3_ext.distributions import LeanCategorical

__all__ = ["AttnCQQXPolicy", "AuxPrediction", "HasAuxHeads", "observation_batch", "predict_weights"]


CATEGORICALS = ("lean", "sb3")
"""The action distributions of :class:`AttnCQQXPolicy` (its ``categorical`` argument)."""


class AuxPrediction(NamedTuple):
    """The auxiliary predictions for a batch: CQ (B, 93, 5), QX (B, 5, 44), log expected error (B,)."""

    cq: th.Tensor
    qx: th.Tensor
    log_error: th.Tensor


class AttnCQQXPolicy(ActorCriticPolicy):
    """Actor-critic with attention over the trainee's entities and cross-attention CQ/QX heads.

    The network is described in :mod:`sb3_ext.attention`. Besides the actor (685 logits, one per
    matrix cell) and the critic, it predicts in one forward pass the CQ and QX matrices that running
    the policy would produce, with a confidence (:meth:`predict_weights`). :class:`sb3_ext.PPO`
    trains these predictions with auxiliary losses.

    Args:
        observation_space: A FitnessWeights observation: ``Box(0, 1, (198,))`` (v0) or ``Box(0, 1, (199,))``
            (v1, with the block's progress); the network reads it through the layout of its size.
        action_space: ``Discrete(685)``.
        lr_schedule: Learning-rate schedule.
        embed_dim: Token width.
        n_heads: Attention heads.
        n_latents: Latent tokens.
        n_layers: Latent self-attention blocks.
        mlp_ratio: MLP hidden width as a multiple of ``embed_dim``.
        aux_lr_multiplier: Learning-rate multiplier for the CQ/QX and error heads.
        confidence_scale: Expected squared error at which the confidence is 0.5
            (``confidence = 1 / (1 + error / confidence_scale)``).
        categorical: The action distribution: ``"lean"``, :class:`~sb3_ext.distributions.LeanCategorical`
            (the same values from one ``log_softmax``, an inverse-CDF draw), or ``"sb3"``, SB3's
            ``CategoricalDistribution`` over ``torch.distributions.Categorical`` (``multinomial`` draws).
        optimizer_class: Optimizer (default Adam).
        optimizer_kwargs: Extra optimizer arguments (default ``eps=1e-5`` as SB3, and ``fused=True``
            for Adam: one kernel for all parameters instead of a loop over them; measured in
            ``benchmarks/RESULTS.md``, "Policy cost").
        **kwargs: Other ``ActorCriticPolicy`` arguments (``normalize_images``...). The MLP
            arguments (``net_arch``, ``activation_fn``, ``ortho_init``) are accepted and unused.
    """

    aux_heads = True
    """Marks a policy whose ``evaluate_actions_with_aux`` gives the auxiliary predictions."""

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
        aux_lr_multiplier: float = 1.0,
        confidence_scale: float = 1e-3,
        categorical: str = "lean",
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        sizes = (LAYOUT.size, TRAINING_LAYOUT.size)
        if not (isinstance(observation_space, spaces.Box) and observation_space.shape in [(n,) for n in sizes]):
            raise ValueError(
                f"AttnCQQXPolicy needs a FitnessWeights observation, Box({sizes[0]},) or Box({sizes[1]},), "
                f"got {observation_space}"
            )
        self.layout = observation_layout(observation_space.shape[0])
        if not (isinstance(action_space, spaces.Discrete) and action_space.n == N_ACTIONS):
            raise ValueError(f"AttnCQQXPolicy needs the Discrete({N_ACTIONS}) action space, got {action_space}")
        if aux_lr_multiplier < 0:
            raise FieldError("aux_lr_multiplier", "must be at least 0", aux_lr_multiplier)
        if confidence_scale <= 0:
            raise FieldError("confidence_scale", "must be above 0", confidence_scale)
        if categorical not in CATEGORICALS:
            raise FieldError("categorical", f"must be one of {', '.join(CATEGORICALS)}", categorical)
        self.categorical = categorical
        self.network_kwargs = dict(
            embed_dim=embed_dim, n_heads=n_heads, n_latents=n_latents, n_layers=n_layers, mlp_ratio=mlp_ratio
        )
        self.aux_lr_multiplier = aux_lr_multiplier
        self.confidence_scale = confidence_scale
        if optimizer_kwargs is None:
            optimizer_kwargs = {"eps": 1e-5, "fused": True} if optimizer_class == th.optim.Adam else {}
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
            **kwargs,
        )

    def _build(self, lr_schedule: Schedule) -> None:
        if self.categorical == "lean":
            self.action_dist = LeanCategorical(N_ACTIONS)
        self.network = CQQXNetwork(**self.network_kwargs, layout=self.layout)
        aux = {id(p) for p in self.network.aux_parameters}
        groups: list[dict[str, Any]] = [
            {"params": [p for p in self.parameters() if id(p) not in aux], "lr_multiplier": 1.0},
            {"params": self.network.aux_parameters, "lr_multiplier": self.aux_lr_multiplier},
        ]
        initial = lr_schedule(1)
        for group in groups:
            group["lr"] = initial * group["lr_multiplier"]
        self.optimizer = self.optimizer_class(  # type: ignore[call-arg]  # Optimizer's base takes no lr, as in SB3
            groups, lr=initial, **self.optimizer_kwargs
        )

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(self.network_kwargs)
        data.update(
            aux_lr_multiplier=self.aux_lr_multiplier,
            confidence_scale=self.confidence_scale,
            categorical=self.categorical,
        )
        return data

    def _run(self, obs: PyTorchObs, aux: bool = False) -> NetworkOutput:
        return self.network(self.extract_features(obs), aux=aux)

    def _distribution(self, logits: th.Tensor) -> CategoricalDistribution:
        # the action space is Discrete (checked in __init__), so SB3 made a CategoricalDistribution
        return cast(CategoricalDistribution, self.action_dist).proba_distribution(action_logits=logits)

    def forward(self, obs: th.Tensor, deterministic: bool = False) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        """Actions, values and log-probabilities for a batch of observations."""
        out = self._run(obs)
        distribution = self._distribution(out.logits)
        actions = distribution.get_actions(deterministic=deterministic)
        return actions, out.value, distribution.log_prob(actions)

    def evaluate_actions(self, obs: PyTorchObs, actions: th.Tensor) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        """Values, log-probabilities and entropy of ``actions``."""
        values, log_prob, entropy, _ = self.evaluate_actions_with_aux(obs, actions)
        return values, log_prob, entropy

    def evaluate_actions_with_aux(
        self, obs: PyTorchObs, actions: th.Tensor
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor, AuxPrediction]:
        """As :meth:`evaluate_actions`, plus the auxiliary predictions, from one forward pass."""
        out = self._run(obs, aux=True)
        distribution = self._distribution(out.logits)
        return out.value, distribution.log_prob(actions), distribution.entropy(), _aux_prediction(out)

    def get_distribution(self, obs: PyTorchObs) -> CategoricalDistribution:
        """The action distribution for a batch of observations."""
        return self._distribution(self._run(obs).logits)

    def predict_values(self, obs: PyTorchObs) -> th.Tensor:
        """The critic's values (B, 1)."""
        return self._run(obs).value

    def aux_prediction(self, obs: th.Tensor) -> AuxPrediction:
        """The CQ/QX predictions and log expected error for a batch of observations."""
        return _aux_prediction(self._run(obs, aux=True))

    def confidence(self, log_error: th.Tensor) -> th.Tensor:
        """Map the predicted log squared error to a confidence in [0, 1]: ``1 / (1 + error / scale)``."""
        return th.sigmoid(np.log(self.confidence_scale) - log_error)

    def predict_weights(self, observation: np.ndarray | th.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray | float]:
        """Predict the optimized CQ and QX matrices, and a confidence, in one forward pass.

        Args:
            observation: One observation or a batch (B, n), each in the policy's observation space (n = 198
                or 199).

        Returns:
            ``(cq, qx, confidence)``: (93, 5), (5, 44) and a float for one observation, or
            (B, 93, 5), (B, 5, 44) and (B,) for a batch. Rows of CQ and QX sum to 1; the confidence
            lies in [0, 1], higher meaning a smaller expected error.

        Raises:
            ValueError: The observation has the wrong shape, or holds NaN, infinity or values
                outside [0, 1].
        """
        return predict_weights(self, observation)


class HasAuxHeads(Protocol):
    """A policy with the CQ/QX prediction heads: what :func:`predict_weights` needs of it."""

    layout: ObservationLayout
    training: bool

    @property
    def device(self) -> th.device: ...  # noqa: D102

    def set_training_mode(self, mode: bool) -> None: ...  # noqa: D102

    def aux_prediction(self, obs: th.Tensor) -> AuxPrediction: ...  # noqa: D102

    def confidence(self, log_error: th.Tensor) -> th.Tensor: ...  # noqa: D102


def predict_weights(
    policy: HasAuxHeads, observation: np.ndarray | th.Tensor
) -> tuple[np.ndarray, np.ndarray, np.ndarray | float]:
    """``policy``'s predicted CQ and QX matrices and confidence (see :meth:`AttnCQQXPolicy.predict_weights`)."""
    batch, single = observation_batch(observation, policy.layout.size)
    if policy.training:  # SB3's predict does the same; skipped when already off (it walks every module)
        policy.set_training_mode(False)
    with th.no_grad():
        aux = policy.aux_prediction(th.as_tensor(batch, dtype=th.float32, device=policy.device))
        confidence = policy.confidence(aux.log_error)
    cq, qx, conf = (t.float().cpu().numpy() for t in (aux.cq, aux.qx, confidence))
    return (cq[0], qx[0], float(conf[0])) if single else (cq, qx, conf)


def observation_batch(observation: np.ndarray | th.Tensor, size: int) -> tuple[np.ndarray, bool]:
    """``observation`` as a batch (B, ``size``) of the FitnessWeights observation space, and whether it was one row.

    Raises:
        ValueError: The observation has another shape than (``size``,) or (B, ``size``), or holds NaN, infinity or
            values outside [0, 1].
    """
    array = observation.detach().cpu().numpy() if isinstance(observation, th.Tensor) else np.asarray(observation)
    single = array.ndim == 1
    batch = array[None] if single else array
    if batch.ndim != 2 or batch.shape[1] != size:
        raise ValueError(f"observation must have shape ({size},) or (B, {size}), got {array.shape}")
    if not np.all(np.isfinite(batch)):
        raise ValueError("observation contains NaN or infinity")
    if batch.min(initial=0.0) < 0.0 or batch.max(initial=0.0) > 1.0:
        raise ValueError("observation values must lie in [0, 1] (the FitnessWeights observation space)")
    return batch, single


def _aux_prediction(out: NetworkOutput) -> AuxPrediction:
    """The auxiliary predictions of a forward pass run with ``aux=True``."""
    if out.cq is None or out.qx is None or out.log_error is None:
        raise RuntimeError("the network ran without its auxiliary heads (aux=False)")
    return AuxPrediction(out.cq, out.qx, out.log_error)
