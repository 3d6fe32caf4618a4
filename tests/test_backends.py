"""The torch backend of the v0 kernel and vector env equals the numpy one, on the CPU here and on CUDA with -m gpu."""

from dataclasses import fields

import gymnasium as gym
import numpy as np
import pytest
import torch

import fitness_weights_env  # noqa: F401  (registers the env ids)
from fitness_weights_env import N_ACTIONS, FieldError, FitnessWeightsVectorEnv, InvalidActionError
from fitness_weights_env import dynamics as kernel
from fitness_weights_env.backend import array_namespace, namespace, to_numpy
from fitness_weights_env.episode import EpisodeConfig

ATOL = 1e-6


def _close(numpy_value, torch_value, where: str) -> None:
    """Equal to ATOL, with the same shape (and the same dtype kind), nested dicts too."""
    if isinstance(numpy_value, dict):
        assert numpy_value.keys() == torch_value.keys(), where
        for key in numpy_value:
            _close(numpy_value[key], torch_value[key], f"{where}[{key!r}]")
        return
    assert isinstance(torch_value, torch.Tensor), f"{where} is a {type(torch_value).__name__}"
    host = torch_value.cpu().numpy()
    expected = np.asarray(numpy_value)
    assert host.shape == expected.shape, where
    assert host.dtype.kind == expected.dtype.kind, where
    np.testing.assert_allclose(host.astype(np.float64), expected.astype(np.float64), rtol=0, atol=ATOL, err_msg=where)


def _state_close(numpy_state: kernel.WeightState, torch_state: kernel.WeightState) -> None:
    for field in fields(numpy_state):
        if field.name != "step_size":
            _close(getattr(numpy_state, field.name), getattr(torch_state, field.name), field.name)


def _final_obs_rows(final_obs: np.ndarray, done: np.ndarray) -> np.ndarray:
    return np.stack([final_obs[i] for i in np.flatnonzero(done)])


def _compare_episodes(device: str, n: int, steps: int, **kwargs) -> int:
    """Step both backends alike (autoresets included); return how many episode ends were compared."""
    numpy_env = FitnessWeightsVectorEnv(n, **kwargs)
    torch_env = FitnessWeightsVectorEnv(n, backend="torch", device=device, **kwargs)
    observation, info = numpy_env.reset(seed=11)
    _close(observation, torch_env.reset(seed=11)[0], "reset observation")
    _state_close(numpy_env.state, torch_env.state)
    rng, ends = np.random.default_rng(5), 0
    for t in range(steps):
        actions = rng.integers(0, N_ACTIONS, n)
        expected = numpy_env.step(actions)
        got = torch_env.step(torch.as_tensor(actions, device=device) if t % 2 else actions)  # tensors or arrays
        for name, a, b in zip(("observation", "reward", "terminated", "truncated"), expected, got, strict=False):
            _close(a, b, f"step {t} {name}")
        info, torch_info = expected[4], got[4]
        if "final_obs" in info:
            done = info["_final_obs"]
            _close(done, torch_info["_final_obs"], "_final_obs")
            _close(_final_obs_rows(info["final_obs"], done), torch_info["final_obs"][torch.as_tensor(done)], "final")
            assert not torch_info["final_obs"][torch.as_tensor(~done)].any(), "final_obs is 0 outside its mask"
            info = {k: v for k, v in info.items() if k != "final_obs"}
            torch_info = {k: v for k, v in torch_info.items() if k != "final_obs"}
            ends += int(done.sum())
        _close(info, torch_info, f"step {t} info")
        _state_close(numpy_env.state, torch_env.state)
    return ends


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"adjustment": "random", "init": "prior", "drift_coef": 0.05},
        {"autoreset_mode": "NextStep", "max_episode_steps": 7, "info_matrices": "every_step"},
        {"autoreset_mode": "SameStep", "max_episode_steps": 5, "adjustment": "random"},
    ],
)
def test_the_torch_backend_equals_numpy_on_every_quantity(kwargs):
    ends = _compare_episodes("cpu", n=6, steps=70, **kwargs)
    assert ends > 0 or kwargs.get("autoreset_mode") == "NextStep"  # the autoresets were compared too


def test_the_torch_backend_keeps_its_data_on_its_device_and_returns_tensors():
    env = FitnessWeightsVectorEnv(3, backend="torch")
    observation, info = env.reset(seed=0)
    assert isinstance(observation, torch.Tensor) and observation.dtype == torch.float32
    assert observation.shape == (3, env.single_observation_space.shape[0])
    assert all(isinstance(getattr(env.state, f.name), torch.Tensor) for f in fields(env.state) if f.name != "step_size")
    _, reward, terminated, truncated, info = env.step(torch.tensor([0, 464, 684]))
    assert reward.dtype == torch.float64 and terminated.dtype == truncated.dtype == torch.bool
    assert isinstance(info["_mean_target_score"], torch.Tensor)
    assert observation.data_ptr() != env.state.observation.data_ptr()  # a copy, as the numpy backend returns


def test_gym_make_vec_passes_the_backend_and_the_profiles_and_frames_work():
    env = gym.make_vec("FitnessWeights-v0", num_envs=2, backend="torch", device="cpu", render_mode="ansi")
    env.reset(seed=3)
    numpy_env = gym.make_vec("FitnessWeights-v0", num_envs=2, render_mode="ansi")
    numpy_env.reset(seed=3)
    for got, expected in zip(env.unwrapped.get_attr("profile"), numpy_env.unwrapped.get_attr("profile"), strict=True):
        np.testing.assert_allclose(got.to_vector(), expected.to_vector(), rtol=0, atol=ATOL)
    assert env.unwrapped.render() == numpy_env.unwrapped.render()


def test_the_oracles_candidate_evaluation_equals_numpy():
    config = EpisodeConfig()
    rngs = [np.random.default_rng([2, i]) for i in range(4)]
    numpy_state = kernel.WeightState.zeros(4, config.step_size)
    xp = namespace("torch")
    torch_state = kernel.WeightState.zeros(4, config.step_size, xp=xp)
    starts = config.draw_starts(rngs, [None] * 4)
    kernel.reset(numpy_state, slice(None), *starts)
    kernel.reset(torch_state, slice(None), *(torch.as_tensor(np.ascontiguousarray(a)) for a in starts))
    candidates = np.broadcast_to(np.arange(N_ACTIONS), (4, N_ACTIONS))
    expected = kernel.evaluate(numpy_state, candidates, config.step_size, 0.01)
    got = kernel.evaluate(torch_state, torch.as_tensor(np.ascontiguousarray(candidates)), config.step_size, 0.01)
    for field in fields(expected):
        _close(getattr(expected, field.name), getattr(got, field.name), field.name)


@pytest.mark.parametrize(
    ("actions", "message"),
    [
        (torch.tensor([0.0, 1.0, 2.0]), "must be integers"),
        (torch.tensor([True, False, True]), "must be integers"),
        (torch.tensor([0, 1]), "expected shape (3,)"),
        (torch.tensor([0, 1, N_ACTIONS]), f"must be in [0, {N_ACTIONS})"),
        (torch.tensor([-1, 1, 2]), f"must be in [0, {N_ACTIONS})"),
        (np.array([0, 1, 9999]), f"must be in [0, {N_ACTIONS})"),
    ],
)
def test_bad_tensor_actions_get_a_clear_error_and_change_nothing(actions, message):
    env = FitnessWeightsVectorEnv(3, backend="torch")
    env.reset(seed=0)
    before = env.state.weights.clone(), env.elapsed_steps
    with pytest.raises(InvalidActionError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        env.step(actions)
    assert torch.equal(env.state.weights, before[0]) and (env.elapsed_steps == before[1]).all()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"backend": "jax"}, "backend"),
        ({"backend": "numpy", "device": "cuda"}, "device"),
        ({"backend": "torch", "device": "no-such-device"}, "device"),
    ],
)
def test_a_bad_backend_or_device_names_the_field(kwargs, field):
    with pytest.raises(FieldError) as error:
        FitnessWeightsVectorEnv(2, **kwargs)
    assert error.value.field == field


def test_the_namespace_of_each_array_and_the_host_copy():
    assert array_namespace(np.zeros(2)) is np
    assert array_namespace(torch.zeros(2)) is namespace("torch")
    assert isinstance(to_numpy(torch.ones(2)), np.ndarray)
    env = FitnessWeightsVectorEnv(2, backend="torch")
    env.reset(seed=1)
    host = env.state.to_numpy()
    assert isinstance(host.weights, np.ndarray)
    np.testing.assert_array_equal(host.weights, env.state.weights.numpy())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_cuda_backend_equals_numpy():
    assert _compare_episodes("cuda", n=32, steps=70, adjustment="random") > 0
    env = FitnessWeightsVectorEnv(4, backend="torch", device="cuda")
    env.reset(seed=0)
    assert env.state.weights.device.type == "cuda"
    assert env.step(torch.zeros(4, dtype=torch.int64, device="cuda"))[0].device.type == "cuda"
