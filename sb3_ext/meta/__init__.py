"""Meta-RL: MAML (Finn et al. 2017) over trainees, with ``torch.func``.

* :mod:`sb3_ext.meta.tasks`: a task is a trainee with the hidden parameters of their training response; the
  sampler draws training tasks, keeps the evaluation's held-out trainees, and runs ``K`` tasks ``M`` times each
  through one vector env.
* :mod:`sb3_ext.meta.inner`: the inner loop, a policy's adaptation to each task, batched over tasks with ``vmap``
  and differentiable in its initialization.
* :mod:`sb3_ext.meta.oracle`: the ceiling of adaptation, a policy that sees the hidden parameters.
"""

from sb3_ext.meta.inner import TaskBatch, adapt, adapt_one, module_logits, pg_loss
from sb3_ext.meta.oracle import HIDDEN_FEATURES, HiddenParametersVecEnv, WithHidden, hidden_features
from sb3_ext.meta.tasks import Task, TaskEpisodes, TaskSampler, sample_actions, task_generators

__all__ = [
    "HIDDEN_FEATURES",
    "HiddenParametersVecEnv",
    "Task",
    "TaskBatch",
    "TaskEpisodes",
    "TaskSampler",
    "WithHidden",
    "adapt",
    "adapt_one",
    "hidden_features",
    "module_logits",
    "pg_loss",
    "sample_actions",
    "task_generators",
]
