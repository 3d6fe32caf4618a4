"""The FitnessWeights application layer: the weight service, its model registry, training jobs, API and CLI.

It imports ``fitness_weights_env`` and ``sb3_ext``; neither library imports it.
"""

from fitness_weights_api.job_config import JobConfig
from fitness_weights_api.job_store import Job, JobError, UnknownJobError
from fitness_weights_api.jobs import JobManager
from fitness_weights_api.registry import ModelRegistry, ModelVersion, RegistryError, UnknownVersionError

__all__ = [
    "Job",
    "JobConfig",
    "JobError",
    "JobManager",
    "ModelRegistry",
    "ModelVersion",
    "RegistryError",
    "UnknownJobError",
    "UnknownVersionError",
]
