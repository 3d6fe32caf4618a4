"""MAML's inner loop as a function of the parameters, batched over tasks with ``torch.func``.

A policy enters as ``logits(params, observations) -> logits``, a pure function of a parameter dict (for a module:
``torch.func.functional_call``; :func:`module_logits`). For each task ``k`` the inner loop takes ``steps`` plain
gradient steps of the policy-gradient loss on that task's pre-update batch,

    theta_k <- theta_k - inner_lr * grad L_pg(theta_k; batch_k),      L_pg = -mean(log pi(a | s) * A),

from the shared initialization ``theta``; :func:`adapt` runs it for every task at once with ``torch.func.vmap``
over the tasks' stacked batches (one leading task dimension). Its result is differentiable with respect to
``theta``: the meta-gradient of an outer loss on the adapted parameters flows through the inner gradients
(second order, Finn et al. 2017), or with ``first_order=True`` treats them as constants (first-order MAML: the
outer gradient at the adapted parameters, applied to ``theta``).

:func:`adapt_one` is the same update for one task, without ``vmap``: the reference the batched one is tested
against.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import NamedTuple

import torch as th
import torch.nn.functional as F  # noqa: N812
from torch.func import functional_call, grad, vmap

__all__ = ["Logits", "Params", "TaskBatch", "adapt", "adapt_one", "module_logits", "pg_loss"]

Params = dict[str, th.Tensor]
"""A policy's parameters by name (``dict(module.named_parameters())``)."""
Logits = Callable[[Mapping[str, th.Tensor], th.Tensor], th.Tensor]
"""``(params, observations (N, n)) -> logits (N, actions)``."""


class TaskBatch(NamedTuple):
    """Transitions of one task, or of every task stacked along a leading task dimension.

    Attributes:
        observations: ``(N, n)``, or ``(K, N, n)`` for ``K`` tasks.
        actions: ``(N,)`` or ``(K, N)``, integer.
        advantages: ``(N,)`` or ``(K, N)``: the weight of each action's log-probability (returns minus the task's
            baseline).
    """

    observations: th.Tensor
    actions: th.Tensor
    advantages: th.Tensor


def module_logits(module: th.nn.Module) -> Logits:
    """``module``'s forward (observations -> logits) as a function of a parameter dict."""

    def logits(params: Mapping[str, th.Tensor], observations: th.Tensor) -> th.Tensor:
        return functional_call(module, dict(params), (observations,))

    return logits


def pg_loss(logits: Logits, params: Mapping[str, th.Tensor], batch: TaskBatch) -> th.Tensor:
    """The vanilla policy-gradient loss ``-mean(log pi(a | s) * A)`` of one task's batch."""
    log_probs = F.log_softmax(logits(params, batch.observations), dim=-1)
    taken = log_probs.gather(-1, batch.actions.long().unsqueeze(-1)).squeeze(-1)
    return -(taken * batch.advantages).mean()


def adapt_one(
    logits: Logits, params: Mapping[str, th.Tensor], batch: TaskBatch, inner_lr: float, steps: int, first_order: bool
) -> Params:
    """``steps`` inner gradient steps of :func:`pg_loss` on one task's ``batch``, from ``params``."""
    adapted = dict(params)
    step = grad(lambda p, b: pg_loss(logits, p, b))
    for _ in range(steps):
        grads = step(adapted, batch)
        adapted = {
            name: value - inner_lr * (grads[name].detach() if first_order else grads[name])
            for name, value in adapted.items()
        }
    return adapted


def adapt(
    logits: Logits,
    params: Mapping[str, th.Tensor],
    batches: TaskBatch,
    inner_lr: float,
    steps: int = 1,
    first_order: bool = False,
) -> Params:
    """The adapted parameters of every task: ``vmap`` of :func:`adapt_one` over the batches' task dimension.

    Args:
        logits: The policy, as a function of its parameters.
        params: The shared initialization ``theta`` (leaf tensors that require grad, for a meta-gradient).
        batches: Every task's pre-update batch, stacked: ``(K, N, ...)``.
        inner_lr: The inner step size (``alpha``).
        steps: Inner gradient steps.
        first_order: Treat the inner gradients as constants in the meta-gradient (first-order MAML).

    Returns:
        Each parameter with a leading task dimension ``K``.
    """
    return vmap(lambda b: adapt_one(logits, params, b, inner_lr, steps, first_order))(batches)
