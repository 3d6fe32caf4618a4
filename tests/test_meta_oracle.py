"""The hidden-parameter oracle (:mod:`sb3_ext.meta.oracle`): what it appends, where, and to which envs."""

import numpy as np
import pytest

from fitness_weights_env.baselines import run_episodes
from fitness_weights_env.hidden import sample_hidden
from sb3_ext.evaluate import held_out_profiles
from sb3_ext.meta.oracle import HIDDEN_FEATURES, SUMMARY_FEATURES, HiddenParametersVecEnv, WithHidden, hidden_features
from sb3_ext.vec_env import make_vec_env


def test_the_features_are_standardized_under_the_population_s_draw():
    hidden = sample_hidden([np.random.default_rng(i) for i in range(3000)])
    features = hidden_features(hidden)
    assert features.shape == (3000, HIDDEN_FEATURES) == (3000, 228) and features.dtype == np.float32
    assert np.abs(features.mean(axis=0)).max() < 0.12
    sd = features.std(axis=0)
    assert sd.min() > 0.8 and sd.max() < 1.15  # the clipped time constants a little under 1
    one = sample_hidden([np.random.default_rng(7)])
    assert np.array_equal(hidden_features(one)[0], features[7])  # per trainee, alone as in a batch


def test_the_vec_env_appends_each_episode_s_own_trainee():
    venv = HiddenParametersVecEnv(make_vec_env("FitnessWeights-v1", n_envs=3, seed=5))
    state = venv.unwrapped.trainees.state
    obs = venv.reset()
    assert obs.shape == (3, 199 + HIDDEN_FEATURES) == (3, *venv.observation_space.shape)
    assert np.array_equal(obs[:, 199:], hidden_features(state.body.hidden))
    first = obs[:, 199:].copy()
    assert len({row.tobytes() for row in first}) == 3  # three trainees, three sets of parameters
    for step in range(64):
        obs, _, dones, infos = venv.step(np.full(3, step * 7 % 685))
        assert np.array_equal(obs[:, 199:], hidden_features(state.body.hidden))
        if step < 63:
            assert not dones.any() and np.array_equal(obs[:, 199:], first)
    assert dones.all()  # the block's end: every trainee restarts as someone else
    for i in range(3):
        terminal = infos[i]["terminal_observation"]
        assert terminal.shape == (199 + HIDDEN_FEATURES,) and np.array_equal(terminal[199:], first[i])
        assert not np.array_equal(obs[i, 199:], first[i])


def test_the_policy_wrapper_sees_the_evaluated_trainees_parameters():
    seen = []

    def record(observation, env):
        seen.append(observation.copy())
        assert np.array_equal(observation[:, 199:], hidden_features(env.state.body.hidden))
        return np.zeros(len(observation), dtype=np.int64)

    run_episodes(WithHidden(record), held_out_profiles(2), steps=3, env_id="FitnessWeights-v1")
    assert len(seen) == 3 and seen[0].shape == (2, 199 + HIDDEN_FEATURES)


def test_v0_has_no_hidden_parameters_and_says_so():
    with pytest.raises(TypeError, match="FitnessWeights-v1"):
        HiddenParametersVecEnv(make_vec_env("FitnessWeights-v0", n_envs=2, seed=0))
    with pytest.raises(TypeError, match="FitnessWeights-v1"):
        run_episodes(WithHidden(lambda obs, env: np.zeros(len(obs), dtype=np.int64)), held_out_profiles(2), steps=1)


def test_the_summary_set_is_the_first_eight_features_and_an_unknown_set_is_refused():
    hidden = sample_hidden([np.random.default_rng(i) for i in range(4)])
    summary = hidden_features(hidden, "summary")
    assert summary.shape == (4, SUMMARY_FEATURES) == (4, 8)
    assert np.array_equal(summary, hidden_features(hidden)[:, :8])
    venv = HiddenParametersVecEnv(make_vec_env("FitnessWeights-v1", n_envs=2, seed=1), features="summary")
    obs = venv.reset()
    assert obs.shape == (2, 199 + 8) == (2, *venv.observation_space.shape)
    assert np.array_equal(obs[:, 199:], hidden_features(venv.unwrapped.trainees.state.body.hidden, "summary"))
    for bad in (lambda: hidden_features(hidden, "some"), lambda: WithHidden(lambda o, e: o, features="some")):
        with pytest.raises(ValueError, match="features must be one of all, summary"):
            bad()


def test_the_features_of_wide_trainees_are_standardized_under_the_wide_draw():
    from fitness_weights_env.hidden import DEFAULT_HIDDEN, WIDE_HIDDEN

    hidden = sample_hidden([np.random.default_rng(i) for i in range(3000)], WIDE_HIDDEN)
    features = hidden_features(hidden, distribution="wide")
    assert np.abs(features.mean(axis=0)).max() < 0.12
    sd = features.std(axis=0)
    assert sd.min() > 0.7 and sd.max() < 1.15  # the clipped time constants under 1
    assert np.array_equal(hidden_features(hidden, distribution=WIDE_HIDDEN), features)
    default = sample_hidden([np.random.default_rng(i) for i in range(3)])
    assert np.array_equal(hidden_features(default, distribution=DEFAULT_HIDDEN), hidden_features(default))


def test_the_wrappers_standardize_under_the_env_s_distribution():
    from fitness_weights_env.hidden import WIDE_HIDDEN

    venv = HiddenParametersVecEnv(make_vec_env("FitnessWeights-v1", n_envs=2, seed=4, env_kwargs={"hidden": "wide"}))
    assert venv.distribution is WIDE_HIDDEN
    obs = venv.reset()
    assert np.array_equal(obs[:, 199:], hidden_features(venv.unwrapped.trainees.state.body.hidden, distribution="wide"))

    def record(observation, env):
        assert np.array_equal(observation[:, 199:], hidden_features(env.state.body.hidden, distribution=WIDE_HIDDEN))
        return np.zeros(len(observation), dtype=np.int64)

    run_episodes(WithHidden(record), held_out_profiles(2), steps=2, env_id="FitnessWeights-v1", hidden="wide")
