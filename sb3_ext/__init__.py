"""Stable-Baselines3 extensions for FitnessWeights: the attention policy and PPO with auxiliary CQ/QX losses."""
