"""Meta-RL: MAML (Finn et al. 2017) over trainees, with ``torch.func``.

:mod:`sb3_ext.meta.inner` is the inner loop: a policy's adaptation to each task, batched over tasks with
``vmap`` and differentiable in its initialization.
"""

from sb3_ext.meta.inner import TaskBatch, adapt, adapt_one, module_logits, pg_loss

__all__ = ["TaskBatch", "adapt", "adapt_one", "module_logits", "pg_loss"]
