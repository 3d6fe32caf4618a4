import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import fitness_weights_env
from fitness_weights_env import LAYOUT, FieldError, FitnessWeightsEnv, InvalidActionError


def _rollout(env: gym.Env, seed: int, steps: int, action_seed: int = 0):
    obs, info = env.reset(seed=seed)
    actions = np.random.default_rng(action_seed).integers(0, 685, steps)
    trajectory = [(obs, 0.0, info)]
    for a in actions:
        obs, reward, _, _, info = env.step(a)
        trajectory.append((obs, reward, info))
    return trajectory


def test_gymnasium_env_checker_passes():
    gym_check_env(gym.make("FitnessWeights-v0").unwrapped, skip_render_check=False)
    gym_check_env(gym.make("FitnessWeights-v0", render_mode="ansi", adjustment="random", init="prior").unwrapped)


def test_sb3_env_checker_passes():
    sb3_check_env(gym.make("FitnessWeights-v0"), warn=True)


def test_make_with_module_prefix_and_time_limit():
    env = gym.make("fitness_weights_env:FitnessWeights-v0")
    assert env.spec.max_episode_steps == 64
    env.reset(seed=0)
    for t in range(1, 65):
        _, _, terminated, truncated, _ = env.step(t % 685)
        assert not terminated
        assert truncated == (t == 64)
    unlimited = FitnessWeightsEnv()
    unlimited.reset(seed=0)
    assert not any(unlimited.step(0)[3] for _ in range(200))
    limited = FitnessWeightsEnv(max_episode_steps=3)
    limited.reset(seed=0)
    assert [limited.step(0)[3] for _ in range(3)] == [False, False, True]


@pytest.mark.parametrize("kwargs", [{}, {"adjustment": "random"}, {"init": "prior"}])
def test_same_seed_same_trajectory(kwargs):
    a = _rollout(gym.make("FitnessWeights-v0", **kwargs), seed=42, steps=70)
    b = _rollout(gym.make("FitnessWeights-v0", **kwargs), seed=42, steps=70)
    for (obs_a, r_a, info_a), (obs_b, r_b, info_b) in zip(a, b, strict=True):
        np.testing.assert_array_equal(obs_a, obs_b)
        assert r_a == r_b
        for key in info_a:
            np.testing.assert_array_equal(info_a[key], info_b[key])
    c = _rollout(gym.make("FitnessWeights-v0", **kwargs), seed=43, steps=5)
    assert not np.array_equal(a[0][0], c[0][0])


@pytest.mark.parametrize("kwargs", [{}, {"adjustment": "random", "step_size": 0.2}, {"init": "prior"}])
def test_observations_stay_in_the_space(kwargs):
    env = gym.make("FitnessWeights-v0", **kwargs)
    for seed in range(3):
        for obs, _, _ in _rollout(env, seed=seed, steps=64, action_seed=seed):
            assert env.observation_space.contains(obs)


def test_info_contents(profile):
    env = gym.make("FitnessWeights-v0")
    _, info = env.reset(seed=0, options={"profile": profile})
    _, reward, _, _, info = env.step(profile.targets[0] * 5)
    assert info["cq_matrix"].shape == (93, 5) and info["cq_matrix"].dtype == np.float32
    assert info["qx_matrix"].shape == (5, 44) and info["qx_matrix"].dtype == np.float32
    scores = info["target_scores"]
    assert scores.shape == (93,) and scores.dtype == np.float32
    np.testing.assert_array_equal(np.flatnonzero(scores), profile.targets)
    expected = info["cq_matrix"][list(profile.targets)].astype(np.float64) @ profile.qualities.astype(np.float64)
    np.testing.assert_allclose(scores[list(profile.targets)], expected, rtol=1e-5)
    assert info["mean_target_score"] == pytest.approx(float(scores[list(profile.targets)].mean()), rel=1e-5)
    assert reward == pytest.approx(info["mean_target_score"] - 0.01 * info["drift"])
    assert isinstance(info["mean_target_score"], float) and isinstance(info["drift"], float)


def test_reset_with_a_profile(profile):
    env = gym.make("FitnessWeights-v0")
    for given in (profile, profile.to_dict()):
        obs, _ = env.reset(seed=1, options={"profile": given})
        vector = profile.to_vector()
        np.testing.assert_array_equal(obs[: LAYOUT.metrics.start], vector[: LAYOUT.metrics.start])
        assert env.unwrapped.profile.targets == profile.targets


def test_reset_rejects_bad_options(profile):
    env = gym.make("FitnessWeights-v0")
    with pytest.raises(FieldError, match=r"^age:"):
        env.reset(options={"profile": {**profile.to_dict(), "age": 200}})
    with pytest.raises(FieldError, match=r"^targets: unknown subject"):
        env.reset(options={"profile": {**profile.to_dict(), "targets": ["nope"]}})
    with pytest.raises(ValueError, match="unknown reset option"):
        env.reset(options={"trainee": profile})


@pytest.mark.parametrize("action", [-1, 685, 2.0, np.array([1]), "1", None])
def test_invalid_actions_raise(action):
    env = gym.make("FitnessWeights-v0").unwrapped
    env.reset(seed=0)
    with pytest.raises(InvalidActionError):
        env.step(action)
    env.step(np.int64(3))
    env.step(np.array(684))


def test_step_before_reset_raises():
    with pytest.raises(gym.error.ResetNeeded):
        FitnessWeightsEnv().step(0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"step_size": 0.0}, "step_size"),
        ({"step_size": float("nan")}, "step_size"),
        ({"drift_coef": -1.0}, "drift_coef"),
        ({"adjustment": "down"}, "adjustment"),
        ({"init": "zeros"}, "init"),
        ({"render_mode": "human"}, "render_mode"),
        ({"max_episode_steps": 0}, "max_episode_steps"),
    ],
)
def test_invalid_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FitnessWeightsEnv(**kwargs)


def test_ansi_render_names_targets_and_exercises(profile):
    env = gym.make("FitnessWeights-v0", render_mode="ansi")
    env.reset(seed=0, options={"profile": profile})
    env.step(465)
    text = env.render()
    for name in profile.target_names:
        assert name in text
    assert "Long slow run" in text and "Step 1" in text


def test_environment_package_does_not_import_torch_or_sb3():
    code = (
        "import sys, fitness_weights_env; "
        "print(sorted(m for m in ('torch', 'stable_baselines3', 'sb3_ext') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert fitness_weights_env.ENV_ID == "FitnessWeights-v0"


def test_rgb_array_render_is_a_heatmap_with_marked_targets(profile):
    env = gym.make("FitnessWeights-v0", render_mode="rgb_array")
    env.reset(seed=0, options={"profile": profile})
    image = env.render()
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    cell = 4
    marked = [s for s in range(93) if tuple(image[s * cell, 0]) == (220, 40, 40)]
    assert marked == list(profile.targets)
    before = image.copy()
    env.step(465)  # QX cell (0, 0) grows: the QX panel changes, the CQ panel does not
    after = env.render()
    assert not np.array_equal(before[:, -100:], after[:, -100:])
    np.testing.assert_array_equal(before[:, : 16 * cell], after[:, : 16 * cell])


def test_sb3_make_vec_env_works():
    from stable_baselines3.common.env_util import make_vec_env

    envs = make_vec_env("FitnessWeights-v0", n_envs=2, seed=0)  # SB3 asks for render_mode="rgb_array"
    obs = envs.reset()
    assert obs.shape == (2, 198)
    assert envs.render_mode == "rgb_array"
