"""The training recipe: a :class:`~sb3_ext.config.TrainConfig` in, a ready-to-learn :class:`~sb3_ext.ppo.PPO` out.

Every training run of the project builds its model here (``examples/train_ppo.py``, the service's training jobs,
the ``fitness-weights train`` command and the benchmarks), so they train the same thing for the same config::

    from sb3_ext.config import TrainConfig
    from sb3_ext.recipe import make_model

    config = TrainConfig(timesteps=800_000, seed=0)
    model = make_model(config)
    model.learn(config.timesteps, progress_bar=True)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stable_baselines3.common.type_aliases import Schedule
from stable_baselines3.common.utils import get_device
from stable_baselines3.common.vec_env import VecEnv

import fitness_weights_env  # noqa: F401  (registers the FitnessWeights envs)
from fitness_weights_env.errors import FieldError
from sb3_ext.config import ENV_TRAINING_KWARGS, TrainConfig
from sb3_ext.ppo import PPO
from sb3_ext.schedules import CosineSchedule
from sb3_ext.vec_env import make_vec_env

__all__ = ["learning_rate", "make_env", "make_model"]


def learning_rate(config: TrainConfig) -> float | Schedule:
    """The learning rate of ``config``: a constant, or a :class:`~sb3_ext.schedules.CosineSchedule`."""
    if config.learning_rate_schedule == "constant":
        return config.learning_rate
    return CosineSchedule(config.learning_rate, config.final_learning_rate)


def make_env(config: TrainConfig, env_kwargs: Mapping[str, Any] | None = None) -> VecEnv:
    """The training envs of ``config``: ``make_vec_env(env_id, n_envs, vectorization, seed)``.

    The env's training arguments (:data:`~sb3_ext.config.ENV_TRAINING_KWARGS`: v1's reward shaping) are passed on,
    then ``env_kwargs`` over them (``{"hidden": "wide"}``: v1's trainees from the wide distribution).
    ``vectorization="device"`` puts the envs on the config's device, where the model will be.
    """
    kwargs = {**ENV_TRAINING_KWARGS.get(config.env_id, {}), **(env_kwargs or {})}
    if config.vectorization == "device":
        kwargs.setdefault("device", str(get_device(config.device)))
    return make_vec_env(
        config.env_id,
        n_envs=config.envs(),
        vectorization=config.vectorization,
        seed=config.seed,
        env_kwargs=kwargs or None,
    )


def make_model(
    config: TrainConfig, env: VecEnv | None = None, *, tensorboard_log: str | None = None, verbose: int = 0
) -> PPO:
    """The PPO model of ``config``, on ``env`` (by default :func:`make_env` of the config).

    Args:
        config: What to train.
        env: The training envs; it must have ``config.envs()`` envs.
        tensorboard_log: TensorBoard log folder (none by default).
        verbose: SB3's verbosity.

    Raises:
        FieldError: ``env`` has another number of envs than the config (field ``n_envs``).
    """
    if env is None:
        env = make_env(config)
    elif env.num_envs != config.envs():
        raise FieldError("n_envs", f"the config steps {config.envs()} envs, the env given has {env.num_envs}")
    kwargs: dict[str, Any] = config.ppo_arguments()
    return PPO(
        config.policy,
        env,
        learning_rate=learning_rate(config),
        policy_kwargs=config.policy_kwargs,
        seed=config.seed,
        device=config.device,
        tensorboard_log=tensorboard_log,
        verbose=verbose,
        **kwargs,
    )
