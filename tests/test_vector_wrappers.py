"""Gymnasium's vector wrappers over FitnessWeightsVectorEnv, against the same wrappers over SyncVectorEnv."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymnasium.wrappers.vector import (
    ClipReward,
    NormalizeObservation,
    RecordEpisodeStatistics,
    RescaleObservation,
    TransformObservation,
)

from fitness_weights_env import LAYOUT, FitnessWeightsVectorEnv

N, HORIZON = 4, 6


def _targets_only(env):
    single = gym.spaces.Box(0.0, 2.0, (LAYOUT.targets.stop - LAYOUT.targets.start,), np.float32)
    space = gym.vector.utils.batch_space(single, env.num_envs)
    return TransformObservation(env, lambda obs: obs[:, LAYOUT.targets] * 2.0, space, single)


def _rescaled(env):
    return RescaleObservation(env, np.float32(-1.0), np.float32(1.0))


OBSERVATION_WRAPPERS = {"normalize": NormalizeObservation, "transform": _targets_only, "rescale": _rescaled}


def _ours(mode, **kwargs):
    kwargs = {"max_episode_steps": HORIZON, "info_matrices": "every_step", **kwargs}
    return gym.make_vec("FitnessWeights-v0", num_envs=N, autoreset_mode=mode, **kwargs)


def _sync(mode, **kwargs):
    envs = [lambda: gym.make("FitnessWeights-v0", max_episode_steps=HORIZON, **kwargs) for _ in range(N)]
    return SyncVectorEnv(envs, autoreset_mode=mode)


def _run_both(ours, reference, mode, steps=30, partial_reset_at=None):
    """Step both with the same actions (and partial resets); assert equal results; return ours, step by step."""
    results = []

    def reset(path, seed=None, mask=None):
        options = None if mask is None else {"reset_mask": mask}
        copy = None if mask is None else {"reset_mask": mask.copy()}  # SyncVectorEnv pops it
        a, b = ours.reset(seed=seed, options=options), reference.reset(seed=seed, options=copy)
        assert data_equivalence(a, b, exact=True), path

    reset("reset", seed=0)
    rng = np.random.default_rng(7)
    done = np.zeros(N, dtype=bool)
    for t in range(steps):
        if t == partial_reset_at:
            reset(f"partial reset at {t}", seed=50, mask=np.array([True, False, True, False]))
        if mode == AutoresetMode.DISABLED and done.any():
            reset(f"reset after step {t - 1}", mask=done)
        actions = rng.integers(0, 685, N)
        a, b = ours.step(actions), reference.step(actions)
        assert data_equivalence(a, b, exact=True), f"step {t}"
        results.append(a)
        done = a[2] | a[3]
    return results


# --- observation wrappers: NEXT_STEP (and DISABLED) --------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(OBSERVATION_WRAPPERS))
def test_observation_wrappers_refuse_same_step(name):
    with pytest.raises(ValueError, match=r"Expected .*autoreset_mode.* NEXT_STEP"):
        OBSERVATION_WRAPPERS[name](gym.make_vec("FitnessWeights-v0", num_envs=2))


@pytest.mark.parametrize(
    ("name", "mode"),
    [
        ("normalize", AutoresetMode.NEXT_STEP),
        ("transform", AutoresetMode.NEXT_STEP),
        ("transform", AutoresetMode.DISABLED),
        ("rescale", AutoresetMode.NEXT_STEP),
        ("rescale", AutoresetMode.DISABLED),
    ],
)
def test_observation_wrappers_equal_sync_vector_env(name, mode):
    wrap = OBSERVATION_WRAPPERS[name]
    ours, reference = wrap(_ours(mode)), wrap(_sync(mode))
    assert ours.observation_space == reference.observation_space
    partial = None if name == "normalize" else 3  # NormalizeObservation refuses partial resets
    results = _run_both(ours, reference, mode, partial_reset_at=partial)
    assert sum(int(r[3].sum()) for r in results) >= N * 4  # several episodes each
    obs = np.stack([r[0] for r in results])
    assert ours.observation_space.contains(results[-1][0])
    if name == "normalize":
        np.testing.assert_array_equal(ours.obs_rms.mean, reference.obs_rms.mean)
        assert ours.obs_rms.count == reference.obs_rms.count > 30 * N
        assert abs(float(obs[5:].mean())) < 1.0  # centred
        with pytest.raises(ValueError, match="does not support partial resets"):
            ours.reset(options={"reset_mask": np.array([True, False, False, False])})
    elif name == "rescale":
        assert obs.min() >= -1.0 and obs.max() <= 1.0 and obs.min() < -0.9  # [0, 1] mapped to [-1, 1]


# --- RecordEpisodeStatistics and ClipReward: every mode ----------------------------------------------------------


@pytest.mark.parametrize("mode", [AutoresetMode.SAME_STEP, AutoresetMode.NEXT_STEP, AutoresetMode.DISABLED])
def test_record_episode_statistics_counts_each_episode(mode):
    """Episode returns and lengths as summed by hand, with a partial reset that cuts two episodes short."""
    envs = RecordEpisodeStatistics(_ours(mode, adjustment="random"))
    envs.reset(seed=0)
    returns, restarting = np.zeros(N), np.zeros(N, dtype=bool)
    done = np.zeros(N, dtype=bool)
    mask = np.array([False, True, False, True])
    episodes = 0
    for t, actions in enumerate(np.random.default_rng(3).integers(0, 685, (40, N))):
        if t == 2:
            envs.reset(options={"reset_mask": mask})  # both the vector env and the wrapper see the mask
            returns[mask] = 0.0
        if mode == AutoresetMode.DISABLED and done.any():
            envs.reset(options={"reset_mask": done})
            returns[done] = 0.0
        _, rewards, terminated, truncated, info = envs.step(actions)
        returns[~restarting] += rewards[~restarting]
        done = terminated | truncated
        if done.any():
            episodes += int(done.sum())
            np.testing.assert_array_equal(info["_episode"], done)
            np.testing.assert_allclose(info["episode"]["r"][done], returns[done], rtol=1e-12)
            np.testing.assert_array_equal(info["episode"]["l"][done], HORIZON)  # the cut episodes are not counted
            returns[done] = 0.0
        assert "episode" in info or not done.any()
        restarting = done if mode == AutoresetMode.NEXT_STEP else np.zeros(N, dtype=bool)
    assert episodes == envs.episode_count >= 4 * N
    assert set(envs.length_queue) == {HORIZON}


@pytest.mark.parametrize("mode", [AutoresetMode.SAME_STEP, AutoresetMode.NEXT_STEP, AutoresetMode.DISABLED])
def test_clip_reward_equals_sync_vector_env(mode):
    bounds = (0.45, 0.6)
    ours, reference = ClipReward(_ours(mode), *bounds), ClipReward(_sync(mode), *bounds)
    results = _run_both(ours, reference, mode, partial_reset_at=4)
    twin = _run_both(_ours(mode), _sync(mode), mode, partial_reset_at=4)  # unclipped
    rewards, raw = np.stack([r[1] for r in results]), np.stack([r[1] for r in twin])
    np.testing.assert_array_equal(rewards, np.clip(raw, *bounds))
    clipped = raw[raw != 0.0]  # 0: NEXT_STEP's restart steps
    assert (clipped < bounds[0]).any() and (clipped > bounds[1]).any()


def test_a_stack_of_wrappers_runs_next_step_episodes():
    base = gym.make_vec("FitnessWeights-v0", num_envs=N, autoreset_mode=AutoresetMode.NEXT_STEP)
    envs = RecordEpisodeStatistics(ClipReward(NormalizeObservation(_targets_only(base)), 0.0, 1.0))
    assert envs.unwrapped is base
    obs, _ = envs.reset(seed=1)
    assert obs.shape == (N, 93)
    lengths = []
    for _ in range(2 * 64 + 1):
        obs, rewards, _, truncated, info = envs.step(envs.action_space.sample())
        assert np.isfinite(obs).all() and ((rewards >= 0.0) & (rewards <= 1.0)).all()
        if truncated.any():
            lengths.extend(info["episode"]["l"][truncated].tolist())
    assert lengths == [64] * (2 * N)


# --- the SB3 adapter uses reset_mask with NEXT_STEP and DISABLED --------------------------------------------------


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.DISABLED])
def test_sb3_adapter_with_partial_resets_equals_same_step(mode):
    from sb3_ext import FitnessWeightsVecEnv, GymnasiumVecEnv

    ours = GymnasiumVecEnv(FitnessWeightsVectorEnv(N, autoreset_mode=mode, max_episode_steps=5), partial_reset=True)
    reference = FitnessWeightsVecEnv(FitnessWeightsVectorEnv(N, max_episode_steps=5))
    ours.seed(9), reference.seed(9)
    np.testing.assert_array_equal(ours.reset(), reference.reset())
    finished = 0
    for t, actions in enumerate(np.random.default_rng(0).integers(0, 685, (12, N))):
        (obs_a, rew_a, done_a, infos_a), (obs_b, rew_b, done_b, infos_b) = ours.step(actions), reference.step(actions)
        np.testing.assert_array_equal(obs_a, obs_b, err_msg=f"step {t}")
        np.testing.assert_array_equal(rew_a, rew_b, err_msg=f"step {t}")
        np.testing.assert_array_equal(done_a, done_b, err_msg=f"step {t}")
        for i in np.flatnonzero(done_a):
            np.testing.assert_array_equal(infos_a[i]["terminal_observation"], infos_b[i]["terminal_observation"])
            finished += 1
    assert finished == 2 * N  # two episodes of 5 steps each, restarted in the same step


def test_wrapped_env_reaches_the_trainees():
    envs = RecordEpisodeStatistics(_rescaled(_ours(AutoresetMode.NEXT_STEP)))
    envs.reset(seed=4)
    assert len(envs.unwrapped.get_attr("profile")) == N
    envs.unwrapped.set_attr("max_episode_steps", 2)
    envs.step(np.zeros(N, dtype=np.int64))
    assert envs.step(np.zeros(N, dtype=np.int64))[3].all()
