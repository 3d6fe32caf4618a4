"""FitnessWeights: a Gymnasium environment that optimizes a trainee's CQ and QX weight matrices.

Importing the package registers ``FitnessWeights-v0`` (the original reward) and ``FitnessWeights-v1`` (the
matrices as a training plan that a simulated trainee follows week by week)::

    import gymnasium as gym
    import fitness_weights_env

    env = gym.make("FitnessWeights-v0")                    # one trainee, 64-step episodes
    envs = gym.make_vec("FitnessWeights-v0", num_envs=256)  # 256 trainees in one batched kernel
    env = gym.make("FitnessWeights-v1")                    # 16 weeks of training, 4 actions a week

This package depends on numpy and Gymnasium only.
"""

import warnings

from gymnasium.envs.registration import register, registry

from fitness_weights_env.catalog import CATALOG, Catalog, UnknownNameError
from fitness_weights_env.dynamics import N_ACTIONS, InvalidActionError, decode_action
from fitness_weights_env.env import FitnessWeightsEnv
from fitness_weights_env.episode import DEFAULT_MAX_EPISODE_STEPS, EpisodeConfig
from fitness_weights_env.errors import FieldError, FitnessWeightsError
from fitness_weights_env.layout import LAYOUT, METRIC_NAMES, TRAINING_LAYOUT, observation_layout
from fitness_weights_env.population import sample_profile, sample_profiles, typical_metrics, typical_subject_scores
from fitness_weights_env.profile import TraineeProfile
from fitness_weights_env.training_env import (
    V1_MAX_EPISODE_STEPS,
    FitnessWeightsV1Env,
    FitnessWeightsV1VectorEnv,
    TrainingConfig,
)
from fitness_weights_env.vector_env import FitnessWeightsVectorEnv

__all__ = [
    "CATALOG",
    "DEFAULT_MAX_EPISODE_STEPS",
    "ENV_IDS",
    "LAYOUT",
    "METRIC_NAMES",
    "N_ACTIONS",
    "TRAINING_LAYOUT",
    "Catalog",
    "EpisodeConfig",
    "FieldError",
    "FitnessWeightsEnv",
    "FitnessWeightsError",
    "FitnessWeightsV1Env",
    "FitnessWeightsV1VectorEnv",
    "FitnessWeightsVectorEnv",
    "InvalidActionError",
    "TraineeProfile",
    "TrainingConfig",
    "UnknownNameError",
    "decode_action",
    "observation_layout",
    "sample_profile",
    "sample_profiles",
    "typical_metrics",
    "typical_subject_scores",
]

ENV_ID = "FitnessWeights-v0"
V1_ENV_ID = "FitnessWeights-v1"
ENV_IDS = (ENV_ID, V1_ENV_ID)
"""The registered env ids."""

# Gymnasium calls an env "out of date" when a later version of its name is registered; v0 is not: it is the original
# formula, kept as it is beside v1's training model.
warnings.filterwarnings("ignore", message=r".*FitnessWeights-v0 is out of date", category=DeprecationWarning)

for _id, _module, _env, _vector_env, _steps in (
    (ENV_ID, "env", "FitnessWeightsEnv", "vector_env:FitnessWeightsVectorEnv", DEFAULT_MAX_EPISODE_STEPS),
    (V1_ENV_ID, "training_env", "FitnessWeightsV1Env", "training_env:FitnessWeightsV1VectorEnv", V1_MAX_EPISODE_STEPS),
):
    if _id not in registry:
        register(
            id=_id,
            entry_point=f"fitness_weights_env.{_module}:{_env}",
            vector_entry_point=f"fitness_weights_env.{_vector_env}",
            max_episode_steps=_steps,
        )
