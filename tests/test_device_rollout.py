"""PPO's device rollout (DeviceVecEnv, DeviceRolloutBuffer) equals the host rollout: on the CPU, and CUDA (-m gpu)."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.buffers import RolloutBuffer

import fitness_weights_env  # noqa: F401  (registers the env ids)
from fitness_weights_env import FieldError
from sb3_ext import PPO
from sb3_ext.buffers import DeviceRolloutBuffer
from sb3_ext.config import TrainConfig
from sb3_ext.device_vec_env import DeviceVecEnv
from sb3_ext.recipe import make_model
from sb3_ext.vec_env import make_vec_env

ATOL = 1e-5
SIZES = {"n_steps": 80, "batch_size": 160, "n_epochs": 1}  # 80 steps: every episode (64) ends inside the rollout
TINY = {"AttnCQQXPolicy": {"embed_dim": 8, "n_heads": 2, "n_latents": 4}, "MlpPolicy": {"net_arch": [16]}}


def _models(policy: str, device: str = "cpu", n_envs: int = 4) -> tuple[PPO, PPO]:
    """A model on the host rollout and one on the device rollout, with the same weights and seeds."""
    host = PPO(policy, make_vec_env("FitnessWeights-v0", n_envs, seed=3), seed=0, device=device, **SIZES,
               policy_kwargs=TINY[policy])  # fmt: skip
    device_env = make_vec_env(
        "FitnessWeights-v0", n_envs, seed=3, vectorization="device", env_kwargs={"device": device}
    )
    on_device = PPO(policy, device_env, seed=0, device=device, policy_kwargs=TINY[policy], **SIZES)
    on_device.policy.load_state_dict(host.policy.state_dict())
    return host, on_device


def _collect(model: PPO) -> None:
    _, callback = model._setup_learn(10 * SIZES["n_steps"] * model.n_envs, callback=None)
    th.manual_seed(7)  # both sample the same actions from the same probabilities
    assert model.collect_rollouts(model.env, callback, model.rollout_buffer, model.n_steps)


def _host(value) -> np.ndarray:
    return value.cpu().numpy() if isinstance(value, th.Tensor) else np.asarray(value)


@pytest.mark.parametrize("policy", ["AttnCQQXPolicy", "MlpPolicy"])
def test_the_device_rollout_equals_the_host_rollout(policy):
    host, on_device = _models(policy)
    _collect(host)
    _collect(on_device)
    expected, got = host.rollout_buffer, on_device.rollout_buffer
    assert isinstance(got, DeviceRolloutBuffer) and isinstance(got.observations, th.Tensor)
    names = ["observations", "actions", "rewards", "episode_starts", "values", "log_probs", "advantages", "returns"]
    if policy == "AttnCQQXPolicy":
        names += ["cq_targets", "qx_targets"]
    for name in names:
        a, b = _host(getattr(expected, name)), _host(getattr(got, name))
        assert a.shape == b.shape, name
        np.testing.assert_allclose(b.astype(np.float64), a.astype(np.float64), rtol=0, atol=ATOL, err_msg=name)
    # the bootstrap ran (the truncated step's reward holds gamma V(final obs)) and episodes were recorded
    assert _host(got.episode_starts)[64].all() and len(on_device.ep_info_buffer) == on_device.n_envs
    np.testing.assert_allclose(  # VecMonitor sums the rewards in float32, the device env in float64
        [e["r"] for e in on_device.ep_info_buffer], [e["r"] for e in host.ep_info_buffer], rtol=1e-6
    )


def test_learn_on_the_device_trains_logs_and_round_trips(tmp_path):
    model = make_model(
        TrainConfig(2 * 4096, vectorization="device", device="cpu", policy_kwargs=TINY["AttnCQQXPolicy"])
    )
    assert isinstance(model.env, DeviceVecEnv) and model.rollout_on_device
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(2 * 4096)
    assert model.num_timesteps == 2 * 4096
    assert any(not th.equal(a, b) for a, b in zip(before, model.policy.parameters(), strict=True))
    values = model.logger.name_to_value
    assert np.isfinite(values["train/cq_loss"]) and np.isfinite(values["train/explained_variance"])
    assert len(model.ep_info_buffer) == 100 and all(e["l"] == 64 for e in model.ep_info_buffer)
    assert isinstance(model._last_obs, np.ndarray)  # SB3's attributes stay numpy
    model.save(tmp_path / "model.zip")
    loaded = PPO.load(tmp_path / "model.zip", device="cpu")
    observation = model.env.reset()
    np.testing.assert_array_equal(
        model.predict(observation, deterministic=True)[0], loaded.predict(observation, deterministic=True)[0]
    )


def test_the_device_env_keeps_sb3s_numpy_contract():
    reference = make_vec_env("FitnessWeights-v0", 3, seed=5)
    env = make_vec_env("FitnessWeights-v0", 3, seed=5, vectorization="device")
    np.testing.assert_allclose(env.reset(), reference.reset(), atol=1e-6)
    assert set(env.reset_infos[0]) >= {"cq_matrix", "qx_matrix"}
    rng = np.random.default_rng(0)
    for _ in range(64):
        actions = rng.integers(0, 685, 3)
        obs, rewards, dones, infos = env.step(actions)
        expected = reference.step(actions)
        assert isinstance(obs, np.ndarray) and isinstance(rewards, np.ndarray) and dones.dtype == bool
        np.testing.assert_allclose(obs, expected[0], atol=1e-6)
        np.testing.assert_allclose(rewards, expected[1], atol=1e-5)
        np.testing.assert_array_equal(dones, expected[2])
    for info, reference_info in zip(infos, expected[3], strict=True):  # the last step ended every episode
        np.testing.assert_allclose(info["terminal_observation"], reference_info["terminal_observation"], atol=1e-6)
        np.testing.assert_allclose(info["cq_matrix"], reference_info["cq_matrix"], atol=1e-6)
        assert info["TimeLimit.truncated"] is True and info["episode"]["l"] == reference_info["episode"]["l"] == 64
        assert info["episode"]["r"] == pytest.approx(reference_info["episode"]["r"], abs=1e-4)
    assert env.get_attr("max_episode_steps") == [64] * 3
    with pytest.raises(ValueError, match="every env"):
        env.set_attr("max_episode_steps", 10, indices=[0])


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"env_id": "FitnessWeights-v1"}, "vectorization"),
        ({"monitor_dir": "runs/x"}, "monitor_dir"),
        ({"env_kwargs": {"backend": "numpy"}}, "env_kwargs"),
        ({"env_kwargs": {"device": "no-such-device"}}, "device"),
    ],
)
def test_bad_device_vectorization_arguments_name_the_field(kwargs, field):
    arguments = {"env_id": "FitnessWeights-v0", "n_envs": 2, "vectorization": "device", **kwargs}
    with pytest.raises(FieldError) as error:
        make_vec_env(**arguments)
    assert error.value.field == field


def test_the_device_env_refuses_envs_it_cannot_keep_on_a_device():
    with pytest.raises(TypeError, match="backend='torch'"):
        DeviceVecEnv(gym.make_vec("FitnessWeights-v0", num_envs=2))
    with pytest.raises(TypeError, match="SAME_STEP"):
        DeviceVecEnv(gym.make_vec("FitnessWeights-v0", num_envs=2, backend="torch", autoreset_mode="NextStep"))
    env = make_vec_env("FitnessWeights-v0", 2, vectorization="device")
    with pytest.raises(ValueError, match="DeviceRolloutBuffer"):
        PPO("MlpPolicy", env, n_steps=8, batch_size=16, rollout_buffer_class=RolloutBuffer, device="cpu")


@pytest.mark.gpu
@pytest.mark.skipif(not th.cuda.is_available(), reason="needs a CUDA device")
def test_the_cuda_rollout_equals_the_host_rollout_and_trains_under_bf16():
    host, on_device = _models("AttnCQQXPolicy", device="cuda")
    _collect(host)
    _collect(on_device)
    for name in ("observations", "rewards", "values", "advantages", "cq_targets"):
        np.testing.assert_allclose(
            _host(getattr(on_device.rollout_buffer, name)), _host(getattr(host.rollout_buffer, name)), atol=1e-4
        )
    model = make_model(TrainConfig(4096, vectorization="device", device="cuda", preset="cpu"))
    assert model.env.device.type == "cuda" and model._amp_dtype() == th.bfloat16
    model.learn(4096)
    assert model.rollout_buffer.observations.device.type == "cuda"
