"""The auxiliary CQ/QX prediction losses, shared by :class:`sb3_ext.PPO` and the offline algorithms."""

from __future__ import annotations

import torch as th
import torch.nn.functional as F  # noqa: N812

from sb3_ext.policies import AuxPrediction

__all__ = ["aux_losses"]


def aux_losses(
    aux: AuxPrediction,
    cq_targets: th.Tensor,
    qx_targets: th.Tensor,
    cq_coef: float,
    qx_coef: float,
    error_coef: float,
) -> tuple[th.Tensor, dict[str, th.Tensor]]:
    """``cq_coef`` MSE(CQ) + ``qx_coef`` MSE(QX) + ``error_coef`` MSE(log error, log of the actual squared error).

    Args:
        aux: The predictions of a batch: CQ (B, 93, 5), QX (B, 5, 44), log expected error (B,).
        cq_targets: (B, 93, 5) the matrices the episodes ended with.
        qx_targets: (B, 5, 44).
        cq_coef: Weight of the CQ loss.
        qx_coef: Weight of the QX loss.
        error_coef: Weight of the error head's loss, which makes the confidence rank errors.

    Returns:
        The loss, and its parts and the accuracies (``0.5 (1 + cosine)`` of prediction and target) as detached
        0-d tensors.
    """
    cq, qx = aux.cq.float(), aux.qx.float()
    cq_error = (cq - cq_targets) ** 2
    qx_error = (qx - qx_targets) ** 2
    cq_loss, qx_loss = cq_error.mean(), qx_error.mean()
    with th.no_grad():
        sample_error = cq_error.mean(dim=(1, 2)) + qx_error.mean(dim=(1, 2))
        cq_cos = F.cosine_similarity(cq.flatten(1), cq_targets.flatten(1), dim=1)
        qx_cos = F.cosine_similarity(qx.flatten(1), qx_targets.flatten(1), dim=1)
    error_loss = F.mse_loss(aux.log_error.float(), th.log(sample_error + 1e-10))
    loss = cq_coef * cq_loss + qx_coef * qx_loss + error_coef * error_loss
    return loss, {
        "cq_loss": cq_loss.detach(),
        "qx_loss": qx_loss.detach(),
        "error_loss": error_loss.detach(),
        "cq_accuracy": 0.5 * (1.0 + cq_cos.mean()),
        "qx_accuracy": 0.5 * (1.0 + qx_cos.mean()),
    }
