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

The names below load their module on first use (PEP 562), so ``from sb3_ext.config import TrainConfig`` and
``from sb3_ext import TrainConfig`` do not import torch; ``from sb3_ext import PPO`` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sb3_ext.lazy import lazy_exports

if TYPE_CHECKING:
    from sb3_ext.actions import PolicyActions
    from sb3_ext.buffers import AuxRolloutBuffer, AuxRolloutBufferSamples
    from sb3_ext.callbacks import AuxTargetCallback, MultiMetricEarlyStopping, StopTrainingOnNoMetricImprovement
    from sb3_ext.config import TrainConfig
    from sb3_ext.gymnasium_vec_env import GymnasiumVecEnv
    from sb3_ext.live_params import LiveParams, ParamAck, ParamChange
    from sb3_ext.metrics_writer import MetricsWriter
    from sb3_ext.policies import AttnCQQXPolicy, AuxPrediction
    from sb3_ext.ppo import PPO
    from sb3_ext.presets import PRESETS, Preset, get_preset
    from sb3_ext.recipe import make_model
    from sb3_ext.schedules import CosineSchedule, ScaledSchedule
    from sb3_ext.vec_env import FitnessWeightsVecEnv, make_vec_env

_MODULES = {
    "PolicyActions": "sb3_ext.actions",
    "AuxRolloutBuffer": "sb3_ext.buffers",
    "AuxRolloutBufferSamples": "sb3_ext.buffers",
    "AuxTargetCallback": "sb3_ext.callbacks",
    "MultiMetricEarlyStopping": "sb3_ext.callbacks",
    "StopTrainingOnNoMetricImprovement": "sb3_ext.callbacks",
    "TrainConfig": "sb3_ext.config",
    "GymnasiumVecEnv": "sb3_ext.gymnasium_vec_env",
    "LiveParams": "sb3_ext.live_params",
    "ParamAck": "sb3_ext.live_params",
    "ParamChange": "sb3_ext.live_params",
    "MetricsWriter": "sb3_ext.metrics_writer",
    "AttnCQQXPolicy": "sb3_ext.policies",
    "AuxPrediction": "sb3_ext.policies",
    "PPO": "sb3_ext.ppo",
    "PRESETS": "sb3_ext.presets",
    "Preset": "sb3_ext.presets",
    "get_preset": "sb3_ext.presets",
    "make_model": "sb3_ext.recipe",
    "CosineSchedule": "sb3_ext.schedules",
    "ScaledSchedule": "sb3_ext.schedules",
    "FitnessWeightsVecEnv": "sb3_ext.vec_env",
    "make_vec_env": "sb3_ext.vec_env",
}

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
    "LiveParams",
    "MetricsWriter",
    "MultiMetricEarlyStopping",
    "ParamAck",
    "ParamChange",
    "PolicyActions",
    "Preset",
    "ScaledSchedule",
    "StopTrainingOnNoMetricImprovement",
    "TrainConfig",
    "get_preset",
    "make_model",
    "make_vec_env",
]


__getattr__, __dir__ = lazy_exports(__name__, _MODULES, globals())
