"""Stable-Baselines3 extensions for FitnessWeights.

``PPO`` adds auxiliary CQ/QX prediction losses to SB3's PPO, and ``AttnCQQXPolicy`` is the attention
actor-critic that also predicts the optimized matrices::

    import gymnasium as gym
    import fitness_weights_env
    from sb3_ext import PPO

    env = gym.make("FitnessWeights-v0")
    model = PPO("AttnCQQXPolicy", env, device="auto")
    model.learn(100_000, progress_bar=True)
    obs, _ = env.reset(seed=0)
    cq, qx, confidence = model.policy.predict_weights(obs)
"""

from sb3_ext.actions import PolicyActions
from sb3_ext.buffers import AuxRolloutBuffer, AuxRolloutBufferSamples
from sb3_ext.callbacks import AuxTargetCallback, MultiMetricEarlyStopping, StopTrainingOnNoMetricImprovement
from sb3_ext.policies import AttnCQQXPolicy, AuxPrediction
from sb3_ext.ppo import PPO
from sb3_ext.presets import PRESETS, Preset, get_preset
from sb3_ext.schedules import CosineSchedule
from sb3_ext.vec_env import FitnessWeightsVecEnv, GymnasiumVecEnv, make_vec_env

__all__ = [
    "PPO",
    "PRESETS",
    "AttnCQQXPolicy",
    "AuxPrediction",
    "AuxRolloutBuffer",
    "AuxRolloutBufferSamples",
    "AuxTargetCallback",
    "CosineSchedule",
    "FitnessWeightsVecEnv",
    "GymnasiumVecEnv",
    "MultiMetricEarlyStopping",
    "PolicyActions",
    "Preset",
    "StopTrainingOnNoMetricImprovement",
    "get_preset",
    "make_vec_env",
]
