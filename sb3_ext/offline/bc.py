"""``BC``: behavior cloning, the baseline every offline RL study reports.

The policy's log-likelihood of the dataset's actions, ``L = -E[log pi(a | s)]`` (with the CQ/QX heads, plus their
losses), with the actor's learning rate decayed by the same cosine as :class:`~sb3_ext.offline.iql.IQL`'s. The
policy is the actor alone (``critics=False``).
"""

from __future__ import annotations

import torch.nn.functional as F  # noqa: N812

from sb3_ext.offline.algorithm import OfflineAlgorithm, OfflineBatch

__all__ = ["BC"]


class BC(OfflineAlgorithm):
    """Behavior cloning (module docstring); the other arguments are :class:`OfflineAlgorithm`'s.

    Args:
        policy: ``"MlpPolicy"``, ``"AttnCQQXPolicy"`` or an :class:`~sb3_ext.offline.policy.OfflinePolicy` class.
        dataset: A Minari dataset of a FitnessWeights env, or its id.
        learning_rate: The learning rate at the start.
        final_learning_rate: The learning rate at the end of the cosine decay.
        **kwargs: :class:`~sb3_ext.offline.algorithm.OfflineAlgorithm`'s arguments.
    """

    critics = False

    def train_step(self, batch: OfflineBatch) -> dict[str, float]:
        """One step of maximum likelihood."""
        lr = self._actor_learning_rate()
        logits, aux = self.policy.actor_with_aux(batch.observations)
        actor_loss = F.cross_entropy(logits, batch.actions)
        stats: dict[str, float] = {}
        loss = actor_loss
        if aux is not None:
            aux_loss, stats = self._aux_loss(aux, batch)
            loss = loss + aux_loss
        self._step(self.policy.optimizer, loss)
        stats.update(actor_loss=actor_loss.item(), learning_rate=lr)
        return stats
