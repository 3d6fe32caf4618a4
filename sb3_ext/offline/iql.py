"""``IQL``: Implicit Q-Learning (Kostrikov, Nair and Levine 2021) for the discrete action space of FitnessWeights.

Each gradient step, on a minibatch of the dataset's transitions ``(s, a, r, s', d)``:

1. the value: expectile regression of ``V(s)`` on the target Q, ``L_V = E[|tau - 1(u < 0)| u^2]`` with
   ``u = min(Q1', Q2')(s, a) - V(s)`` and ``tau = expectile`` (0.7): above 0.5, ``V`` leans to the best actions
   of the data without querying actions it does not hold;
2. the twin Q networks: ``L_Q = E[(Q_i(s, a) - (r + gamma (1 - d) V(s')))^2]``, the mean over both;
3. the policy: advantage-weighted regression, ``L_pi = -E[min(exp(beta A), max_weight) log pi(a | s)]`` with
   ``A = min(Q1', Q2')(s, a) - V(s)`` and ``beta = temperature`` (3.0); with the CQ/QX heads, plus their losses;
4. the target networks: Polyak averaging with ``tau`` (0.005).

As in the paper and CORL, the actor's learning rate follows a cosine decay to ``final_learning_rate`` (0 by
default) over the run, and the Q and value networks keep ``learning_rate``. Discrete actions make the policy a
softmax over the 685 cells and ``log pi(a | s)`` its log-probability, so nothing else changes. The logs give the
losses, the mean Q, V and advantage, and the spread of the weights ``exp(beta A)`` (mean, standard deviation,
largest, and the share cut at ``max_weight``): weights all near 1 mean the policy is plain behavior cloning.

``IQL("MlpPolicy", "fitness-weights/v0/medium-replay-v0").learn(100_000)``
"""

from __future__ import annotations

from typing import Any

import torch as th
import torch.nn.functional as F  # noqa: N812
from stable_baselines3.common.type_aliases import GymEnv

from fitness_weights_env.errors import FieldError
from sb3_ext.offline.algorithm import OfflineAlgorithm, OfflineBatch
from sb3_ext.offline.policy import OfflinePolicy

__all__ = ["IQL"]


class IQL(OfflineAlgorithm):
    """Discrete Implicit Q-Learning (module docstring); the other arguments are :class:`OfflineAlgorithm`'s.

    Args:
        policy: ``"MlpPolicy"``, ``"AttnCQQXPolicy"`` or an :class:`~sb3_ext.offline.policy.OfflinePolicy` class.
        dataset: A Minari dataset of a FitnessWeights env, or its id.
        expectile: The value's expectile ``tau`` in (0, 1).
        temperature: The inverse temperature ``beta`` of the advantage weights.
        max_weight: The largest advantage weight.
        tau: Polyak coefficient of the target Q networks.
        env: An env for ``EvalCallback`` (optional).
        **kwargs: :class:`~sb3_ext.offline.algorithm.OfflineAlgorithm`'s arguments (``learning_rate``,
            ``final_learning_rate``, ``batch_size``, ``gamma``, ``normalize_observations``, ``reward_scale``,
            ``seed``, ``device``...).
    """

    def __init__(
        self,
        policy: str | type[OfflinePolicy],
        dataset: Any = None,
        expectile: float = 0.7,
        temperature: float = 3.0,
        max_weight: float = 100.0,
        tau: float = 0.005,
        env: GymEnv | None = None,
        _init_setup_model: bool = True,
        **kwargs: Any,
    ) -> None:
        if not 0.0 < expectile < 1.0:
            raise FieldError("expectile", "must lie in (0, 1)", expectile)
        if not temperature >= 0.0:
            raise FieldError("temperature", "must be at least 0", temperature)
        if not max_weight > 0.0:
            raise FieldError("max_weight", "must be above 0", max_weight)
        if not 0.0 < tau <= 1.0:
            raise FieldError("tau", "must lie in (0, 1]", tau)
        self.expectile, self.temperature, self.max_weight, self.tau = expectile, temperature, max_weight, tau
        super().__init__(policy, dataset, env=env, _init_setup_model=_init_setup_model, **kwargs)

    def train_step(self, batch: OfflineBatch) -> dict[str, float]:
        """One IQL update (module docstring)."""
        policy = self.policy
        actions = batch.actions
        with th.no_grad():
            target_q = th.min(*policy.q_taken(batch.observations, actions, target=True))
            next_v = policy.state_value(batch.next_observations)
        # 1. value
        v = policy.state_value(batch.observations)
        diff = target_q - v
        weight = th.abs(self.expectile - (diff < 0).float())
        value_loss = (weight * diff.pow(2)).mean()
        self._step(policy.value_optimizer, value_loss)
        # 2. twin Q
        backup = batch.rewards + self.gamma * (1.0 - batch.dones) * next_v
        q1, q2 = policy.q_taken(batch.observations, actions)
        q_loss = 0.5 * (F.mse_loss(q1, backup) + F.mse_loss(q2, backup))
        self._step(policy.critic_optimizer, q_loss)
        # 3. advantage-weighted policy
        advantage = diff.detach()
        exp_advantage = th.exp(self.temperature * advantage)
        weights = exp_advantage.clamp(max=self.max_weight)
        lr = self._actor_learning_rate()
        logits, aux = policy.actor_with_aux(batch.observations)
        log_prob = F.log_softmax(logits, dim=1).gather(1, actions[:, None]).squeeze(1)
        actor_loss = -(weights * log_prob).mean()
        stats: dict[str, float] = {}
        loss = actor_loss
        if aux is not None:
            aux_loss, stats = self._aux_loss(aux, batch)
            loss = loss + aux_loss
        self._step(policy.optimizer, loss)
        # 4. targets
        policy.update_targets(self.tau)
        stats.update(
            value_loss=value_loss.item(),
            q_loss=q_loss.item(),
            actor_loss=actor_loss.item(),
            learning_rate=lr,
            q_mean=q1.mean().item(),
            v_mean=v.mean().item(),
            advantage_mean=advantage.mean().item(),
            advantage_std=advantage.std().item(),
            weight_mean=weights.mean().item(),
            weight_std=weights.std().item(),
            weight_max=weights.max().item(),
            weight_clipped=(exp_advantage > self.max_weight).float().mean().item(),
            reward_scale=self.reward_scale_value,
        )
        return stats
