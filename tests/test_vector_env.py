import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from fitness_weights_env import FitnessWeightsVectorEnv, InvalidActionError, ProfileError


def _assert_same(a, b, path="info"):
    if isinstance(a, dict):
        assert set(a) == set(b), f"{path}: keys {sorted(a)} != {sorted(b)}"
        for key in a:
            _assert_same(a[key], b[key], f"{path}[{key!r}]")
    elif isinstance(a, np.ndarray) and a.dtype == object:
        assert a.shape == b.shape, path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x is None or y is None:
                assert x is None and y is None, f"{path}[{i}]"
            else:
                np.testing.assert_array_equal(x, y, err_msg=f"{path}[{i}]")
    else:
        np.testing.assert_array_equal(a, b, err_msg=path)


@pytest.mark.parametrize("kwargs", [{}, {"adjustment": "random"}, {"init": "prior"}])
def test_vector_env_equals_n_single_envs(kwargs):
    n, steps = 5, 140  # crosses two autoresets
    ours = FitnessWeightsVectorEnv(n, info_matrices="every_step", **kwargs)
    reference = SyncVectorEnv(
        [lambda: gym.make("FitnessWeights-v0", **kwargs) for _ in range(n)], autoreset_mode=AutoresetMode.SAME_STEP
    )
    obs_a, info_a = ours.reset(seed=10)
    obs_b, info_b = reference.reset(seed=10)
    np.testing.assert_array_equal(obs_a, obs_b)
    _assert_same(info_a, info_b)
    actions = np.random.default_rng(0).integers(0, 685, (steps, n))
    for t in range(steps):
        result_a, result_b = ours.step(actions[t]), reference.step(actions[t])
        for name, x, y in zip(("obs", "reward", "terminated", "truncated"), result_a[:4], result_b[:4], strict=True):
            np.testing.assert_array_equal(x, y, err_msg=f"step {t}: {name}")
        _assert_same(result_a[4], result_b[4], f"step {t} info")
        assert result_a[3].any() == ((t + 1) % 64 == 0)


def test_final_matrices_only_by_default():
    full = FitnessWeightsVectorEnv(3, info_matrices="every_step")
    lean = FitnessWeightsVectorEnv(3)
    full.reset(seed=1)
    _, info = lean.reset(seed=1)
    assert "cq_matrix" in info
    for t in range(64):
        *_, truncated, info_full = full.step(np.full(3, t))
        *_, info_lean = lean.step(np.full(3, t))
        if truncated.any():
            _assert_same(info_lean["final_info"], info_full["final_info"])
            assert "cq_matrix" not in info_lean
        else:
            assert "cq_matrix" not in info_lean and "cq_matrix" in info_full
            np.testing.assert_array_equal(info_lean["target_scores"], info_full["target_scores"])
            np.testing.assert_array_equal(lean.state.cq, full.state.cq)


def test_make_vec_uses_the_vector_entry_point():
    envs = gym.make_vec("FitnessWeights-v0", num_envs=4, step_size=0.1)
    assert isinstance(envs, FitnessWeightsVectorEnv)
    assert envs.max_episode_steps == 64 and envs.config.step_size == 0.1
    obs, _ = envs.reset(seed=0)
    assert obs.shape == (4, 198) and envs.observation_space.contains(obs)
    assert envs.action_space.shape == (4,)
    for _ in range(70):
        obs, *_ = envs.step(envs.action_space.sample())
        assert envs.observation_space.contains(obs)


def test_reset_with_profiles_and_seed_lists(profile):
    envs = FitnessWeightsVectorEnv(3)
    obs, _ = envs.reset(seed=[5, 6, 7], options={"profiles": [None, profile, profile.to_dict()]})
    single = gym.make("FitnessWeights-v0")
    expected, _ = single.reset(seed=5)
    np.testing.assert_array_equal(obs[0], expected)
    assert envs.state.target_mask[1].nonzero()[0].tolist() == list(profile.targets)
    with pytest.raises(ValueError, match="num_envs=3"):
        envs.reset(options={"profiles": [profile]})
    with pytest.raises(ValueError, match="num_envs=3"):
        envs.reset(seed=[1, 2])
    with pytest.raises(ProfileError, match=r"^gender:"):
        envs.reset(options={"profiles": [None, None, {**profile.to_dict(), "gender": "x"}]})


@pytest.mark.parametrize(
    "actions", [np.array([0, 1]), np.array([0.0, 1.0, 2.0]), np.array([0, 1, 685]), [[0, 1, 2]], 3]
)
def test_invalid_actions_raise(actions):
    envs = FitnessWeightsVectorEnv(3)
    envs.reset(seed=0)
    with pytest.raises(InvalidActionError):
        envs.step(actions)
    envs.step([0, 1, 2])


def test_invalid_arguments_and_order():
    with pytest.raises(ValueError, match="num_envs"):
        FitnessWeightsVectorEnv(0)
    with pytest.raises(ValueError, match="info_matrices"):
        FitnessWeightsVectorEnv(2, info_matrices="sometimes")
    with pytest.raises(gym.error.ResetNeeded):
        FitnessWeightsVectorEnv(2).step([0, 0])


def test_render_returns_one_summary_per_trainee():
    envs = FitnessWeightsVectorEnv(2, render_mode="ansi")
    envs.reset(seed=0)
    texts = envs.render()
    assert len(texts) == 2 and all("Top exercises per quality" in t for t in texts)
