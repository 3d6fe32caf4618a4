"""The training config and the one recipe that builds a model from it."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch as th

from fitness_weights_api.job_config import JobConfig
from fitness_weights_env.errors import FieldError
from sb3_ext import PPO, CosineSchedule, make_vec_env
from sb3_ext.config import DEFAULT_LEARNING_RATE, TrainConfig
from sb3_ext.presets import PRESETS
from sb3_ext.recipe import learning_rate, make_env, make_model


def test_config_and_presets_import_and_validate_without_torch():
    code = (
        "import sys\n"
        "from sb3_ext.config import TrainConfig\n"
        "from sb3_ext import PRESETS, TrainConfig as Same\n"
        "from fitness_weights_api.job_config import JobConfig\n"
        "JobConfig(timesteps=1000, ppo_kwargs={'ent_coef': 0.01}).ppo_arguments()\n"
        "print('torch' in sys.modules, Same is TrainConfig, sorted(PRESETS))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False True ['cpu', 'gpu', 'sb3']"  # torch never loaded


def test_ppo_arguments_come_from_the_preset_capped_then_the_overrides():
    assert TrainConfig(1).ppo_arguments() == PRESETS["cpu"].ppo_kwargs()
    assert TrainConfig(1, n_envs=2).ppo_arguments()["batch_size"] == 2 * 64  # capped at the rollout size
    arguments = TrainConfig(1, preset="sb3", ppo_kwargs={"n_steps": 128, "ent_coef": 0.01}).ppo_arguments()
    assert arguments == {"n_steps": 128, "batch_size": 64, "n_epochs": 10, "ent_coef": 0.01}
    assert TrainConfig(1, ppo_kwargs={"n_steps": 32}).rollout_size() == 64 * 32
    config = TrainConfig(1)
    config.ppo_arguments()["n_steps"] = 0  # a new dict each time
    assert config.ppo_arguments()["n_steps"] == 64


def test_round_trip_and_defaults():
    config = TrainConfig(5, seed=3, policy_kwargs={"embed_dim": 16, "heads": (1, 2)}, ppo_kwargs={"target_kl": None})
    data = json.loads(json.dumps(config.to_dict()))
    assert TrainConfig.from_dict(data) == config
    assert config.policy_kwargs == {"embed_dim": 16, "heads": [1, 2]}  # stored as JSON
    assert TrainConfig.from_dict({"timesteps": 5}) == TrainConfig(5)
    assert JobConfig.from_dict({"timesteps": 5, "activate": True}).eval_trainees == 50
    assert isinstance(JobConfig.from_dict({"timesteps": 5}), JobConfig)
    assert TrainConfig(5).learning_rate == DEFAULT_LEARNING_RATE


BAD_CONFIGS = [
    ({"timesteps": 0}, "timesteps"),
    ({"timesteps": True}, "timesteps"),
    ({"env_id": "not an id"}, "env_id"),
    ({"policy": "CnnPolicy"}, "policy"),
    ({"preset": "tpu"}, "preset"),
    ({"n_envs": 0}, "n_envs"),
    ({"vectorization": "threads"}, "vectorization"),
    ({"seed": -1}, "seed"),
    ({"learning_rate": float("nan")}, "learning_rate"),
    ({"learning_rate": 0}, "learning_rate"),
    ({"learning_rate_schedule": "linear"}, "learning_rate_schedule"),
    ({"policy_kwargs": {"x": float("inf")}}, "policy_kwargs"),
    ({"policy_kwargs": {1: 2}}, "policy_kwargs"),
    ({"policy_kwargs": {"x": "y" * 20_000}}, "policy_kwargs"),
    ({"ppo_kwargs": {"learning_rate": 1.0}}, "ppo_kwargs.learning_rate"),
    ({"ppo_kwargs": {"n_epochs": 0}}, "ppo_kwargs.n_epochs"),
    ({"ppo_kwargs": {"gamma": 1.5}}, "ppo_kwargs.gamma"),
    ({"ppo_kwargs": {"ent_coef": -0.1}}, "ppo_kwargs.ent_coef"),
    ({"ppo_kwargs": {"target_kl": "0.1"}}, "ppo_kwargs.target_kl"),
    ({"ppo_kwargs": {"normalize_advantage": 1}}, "ppo_kwargs.normalize_advantage"),
    ({"ppo_kwargs": {"value_loss": "l1"}}, "ppo_kwargs.value_loss"),
    ({"ppo_kwargs": {"batch_size": 4097}}, "ppo_kwargs.batch_size"),  # above the 64 x 64 rollout
    ({"device": "gpu"}, "device"),
    ({"eval_trainees": 1}, "eval_trainees"),
]


@pytest.mark.parametrize(("changes", "field"), BAD_CONFIGS)
def test_bad_configs_name_the_field_without_quoting_it_in_the_reason(changes, field):
    with pytest.raises(FieldError) as raised:
        TrainConfig(**{"timesteps": 1, **changes})
    assert raised.value.field == field
    assert str(raised.value).startswith(f"{field}: {raised.value.reason}")
    value = next(iter(changes.values()))
    if isinstance(value, str) and value:
        assert value not in raised.value.reason  # safe to show a client


def test_from_dict_names_unknown_and_missing_keys():
    with pytest.raises(FieldError) as raised:
        TrainConfig.from_dict({"timesteps": 5, "timestep": 5})
    assert raised.value.field == "timestep" and "known keys" in raised.value.reason
    with pytest.raises(FieldError) as raised:
        TrainConfig.from_dict({"seed": 1})
    assert (raised.value.field, raised.value.reason) == ("timesteps", "is required")
    with pytest.raises(FieldError) as raised:
        TrainConfig.from_dict([("timesteps", 5)])  # type: ignore[arg-type]
    assert raised.value.field == "config"


def test_job_configs_refuse_what_a_job_cannot_do():
    with pytest.raises(FieldError) as raised:
        JobConfig(1, vectorization="subproc")
    assert raised.value.field == "vectorization"
    with pytest.raises(FieldError) as raised:
        JobConfig(1, env_id="CartPole-v1")
    assert raised.value.field == "env_id"
    with pytest.raises(FieldError) as raised:
        JobConfig(1, activate="yes")  # type: ignore[arg-type]
    assert raised.value.field == "activate"


def test_the_recipe_builds_what_the_hand_written_construction_builds():
    """make_model equals the explicit construction the README's run used, parameter for parameter after training."""
    config = TrainConfig(256, n_envs=4, seed=7, device="cpu", ppo_kwargs={"n_steps": 64, "batch_size": 64})
    model = make_model(config)
    assert isinstance(model, PPO) and model.n_envs == 4 and model.n_steps == 64 and model.batch_size == 64
    assert model.learning_rate == CosineSchedule(DEFAULT_LEARNING_RATE, DEFAULT_LEARNING_RATE / 10)
    model.learn(config.timesteps)
    env = make_vec_env("FitnessWeights-v0", n_envs=4, vectorization="batched", seed=7)
    by_hand = PPO(
        "AttnCQQXPolicy",
        env,
        learning_rate=CosineSchedule(2e-3, 2e-4),
        n_steps=64,
        batch_size=64,
        n_epochs=4,
        seed=7,
        device="cpu",
    )
    by_hand.learn(256)
    for (name, a), (_, b) in zip(model.policy.state_dict().items(), by_hand.policy.state_dict().items(), strict=True):
        assert th.equal(a, b), name


def test_the_recipe_takes_a_given_env_and_the_constant_schedule():
    config = TrainConfig(64, n_envs=2, policy="MlpPolicy", learning_rate_schedule="constant", device="cpu")
    assert learning_rate(config) == config.learning_rate == config.final_learning_rate
    env = make_env(config)
    model = make_model(config, env)
    assert model.get_env() is env and model.lr_schedule(0.5) == pytest.approx(DEFAULT_LEARNING_RATE)
    with pytest.raises(FieldError) as raised:
        make_model(replace(config, n_envs=3), env)
    assert raised.value.field == "n_envs"


def test_the_schedule_anneals_to_a_tenth():
    schedule = learning_rate(TrainConfig(1, learning_rate=1e-3))
    assert schedule(1.0) == pytest.approx(1e-3) and schedule(0.0) == pytest.approx(1e-4)
    assert np.isclose(schedule(0.5), 5.5e-4)


def test_v1_trains_undiscounted_on_shaped_envs_and_its_overrides_win():
    config = TrainConfig(64, env_id="FitnessWeights-v1", n_envs=2, policy="MlpPolicy", device="cpu")
    arguments = config.ppo_arguments()
    assert arguments["gamma"] == 1.0 and arguments["gae_lambda"] == 0.98
    assert replace(config, ppo_kwargs={"gamma": 0.9}).ppo_arguments()["gamma"] == 0.9
    env = make_env(config)
    assert env.trainees.config.reward_shaping and env.trainees.config.weeks == 16
    assert make_env(replace(config, env_id="FitnessWeights-v0")).trainees.config.init != "prior"
