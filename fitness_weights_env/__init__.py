"""FitnessWeights: a Gymnasium environment that optimizes a trainee's CQ and QX weight matrices.

Importing the package registers ``FitnessWeights-v0``::

    import gymnasium as gym
    import fitness_weights_env

    env = gym.make("FitnessWeights-v0")                    # one trainee, 64-step episodes
    envs = gym.make_vec("FitnessWeights-v0", num_envs=256)  # 256 trainees in one batched kernel

This package depends on numpy and Gymnasium only.
"""

from gymnasium.envs.registration import register, registry

from fitness_weights_env.catalog import CATALOG, Catalog, UnknownNameError
from fitness_weights_env.dynamics import N_ACTIONS, InvalidActionError, decode_action
from fitness_weights_env.env import FitnessWeightsEnv
from fitness_weights_env.episode import DEFAULT_MAX_EPISODE_STEPS, EpisodeConfig
from fitness_weights_env.errors import FieldError, FitnessWeightsError
from fitness_weights_env.layout import LAYOUT, METRIC_NAMES
from fitness_weights_env.population import sample_profile, sample_profiles, typical_metrics, typical_subject_scores
from fitness_weights_env.profile import TraineeProfile
from fitness_weights_env.vector_env import FitnessWeightsVectorEnv

__all__ = [
    "CATALOG",
    "DEFAULT_MAX_EPISODE_STEPS",
    "LAYOUT",
    "METRIC_NAMES",
    "N_ACTIONS",
    "Catalog",
    "EpisodeConfig",
    "FieldError",
    "FitnessWeightsEnv",
    "FitnessWeightsError",
    "FitnessWeightsVectorEnv",
    "InvalidActionError",
    "TraineeProfile",
    "UnknownNameError",
    "decode_action",
    "sample_profile",
    "sample_profiles",
    "typical_metrics",
    "typical_subject_scores",
]

ENV_ID = "FitnessWeights-v0"

if ENV_ID not in registry:
    register(
        id=ENV_ID,
        entry_point="fitness_weights_env.env:FitnessWeightsEnv",
        vector_entry_point="fitness_weights_env.vector_env:FitnessWeightsVectorEnv",
        max_episode_steps=DEFAULT_MAX_EPISODE_STEPS,
    )
