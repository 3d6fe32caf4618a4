"""The FitnessWeights application layer: the weight service, its model registry, training jobs, API and CLI.

It imports ``fitness_weights_env`` and ``sb3_ext``; neither library imports it.
"""

from fitness_weights_api.jobs import Job, JobError, JobManager, TrainConfig, UnknownJobError
from fitness_weights_api.registry import ModelRegistry, ModelVersion, RegistryError, UnknownVersionError

__all__ = [
    "Job",
    "JobError",
    "JobManager",
    "ModelRegistry",
    "ModelVersion",
    "RegistryError",
    "TrainConfig",
    "UnknownJobError",
    "UnknownVersionError",
]
