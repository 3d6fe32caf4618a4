import gymnasium as gym
import numpy as np
import pytest
import torch as th

import fitness_weights_env  # noqa: F401  (registers FitnessWeights-v0)
from fitness_weights_api.weights import MAX_OPTIMIZATION_STEPS, optimize_weights, predict_weights
from fitness_weights_env import CATALOG, METRIC_NAMES, FieldError, sample_profile
from fitness_weights_env.baselines import run_episodes
from sb3_ext import PPO
from sb3_ext.actions import PolicyActions


@pytest.fixture(scope="module")
def model():
    env = gym.make("FitnessWeights-v0")
    model = PPO("AttnCQQXPolicy", env, n_steps=64, batch_size=64, n_epochs=1, seed=0, device="cpu")
    return model.learn(64)


@pytest.fixture(scope="module")
def trainee():
    return sample_profile(np.random.default_rng(7))


def test_optimize_is_the_policy_run_through_the_kernel(model, trainee):
    """By default the actions are sampled with the seed, as the evaluation runs a trainee with that seed."""
    result = optimize_weights(model, trainee, steps=20, seed=3)
    reference = run_episodes(PolicyActions(model.policy, [3]), [trainee], seed=3, steps=20)
    np.testing.assert_array_equal(result.cq, reference.cq[0])
    np.testing.assert_array_equal(result.qx, reference.qx[0])
    assert result.steps == 20 and result.confidence is None
    assert list(result.performance_metrics) == list(METRIC_NAMES)
    assert all(0.0 <= value <= 1.0 for value in result.performance_metrics.values())
    names = [CATALOG.subjects[s].name_en for s in trainee.targets]
    assert list(result.target_scores) == names
    for s, name in zip(trainee.targets, names, strict=True):  # CQ[s] . q of the returned matrix
        assert result.target_scores[name] == pytest.approx(result.cq[s] @ trainee.qualities, rel=1e-5)


def test_optimize_is_seeded_and_leaves_torchs_generator_alone(model, trainee):
    state = th.random.get_rng_state()
    first = optimize_weights(model, trainee, steps=16, seed=5)
    assert th.equal(th.random.get_rng_state(), state)
    again = optimize_weights(model, trainee, steps=16, seed=5)
    np.testing.assert_array_equal(first.cq, again.cq)
    other = optimize_weights(model, trainee, steps=16, seed=6)
    assert not np.array_equal(first.cq, other.cq)


def test_deterministic_optimize_takes_the_most_likely_actions(model, trainee):
    result = optimize_weights(model, trainee, steps=20, seed=3, deterministic=True)
    reference = run_episodes(lambda obs, env: model.predict(obs, deterministic=True)[0], [trainee], seed=3, steps=20)
    np.testing.assert_array_equal(result.cq, reference.cq[0])
    np.testing.assert_array_equal(result.qx, reference.qx[0])
    assert not np.array_equal(result.cq, optimize_weights(model, trainee, steps=20, seed=3).cq)


def test_predict_is_one_forward_pass_with_scores_from_the_kernel(model, trainee):
    result = predict_weights(model, trainee)
    cq, qx, confidence = model.policy.predict_weights(trainee.to_vector())
    np.testing.assert_array_equal(result.cq, cq)
    np.testing.assert_array_equal(result.qx, qx)
    assert result.confidence == pytest.approx(float(confidence)) and 0.0 <= result.confidence <= 1.0
    assert result.steps == 0 and result.performance_metrics is None
    for s in trainee.targets:
        expected = float(np.asarray(cq, np.float64)[s] @ trainee.qualities.astype(np.float64))
        assert result.target_scores[CATALOG.subjects[s].name_en] == pytest.approx(expected, rel=1e-6)


def test_a_profile_dict_with_chinese_target_names_is_accepted(model, trainee):
    data = trainee.to_dict()
    data["targets"] = [CATALOG.subjects[s].name_zh for s in trainee.targets]
    assert predict_weights(model, data).target_scores == predict_weights(model, trainee).target_scores


@pytest.mark.parametrize("steps", [0, MAX_OPTIMIZATION_STEPS + 1, 1.5, True, "64"])
def test_bad_step_counts_are_named(model, trainee, steps):
    with pytest.raises(ValueError, match="steps"):
        optimize_weights(model, trainee, steps=steps)


def test_bad_profiles_name_the_field(model, trainee):
    data = trainee.to_dict()
    data["qualities"] = [0.5] * 4
    for call in (lambda: optimize_weights(model, data), lambda: predict_weights(model, data)):
        with pytest.raises(FieldError, match="qualities"):
            call()


def test_predict_needs_a_policy_with_prediction_heads(trainee):
    mlp = PPO("MlpPolicy", gym.make("FitnessWeights-v0"), n_steps=64, batch_size=64, device="cpu")
    with pytest.raises(TypeError, match="predict_weights"):
        predict_weights(mlp, trainee)
    assert optimize_weights(mlp, trainee, steps=2).cq.shape == (CATALOG.n_subjects, CATALOG.n_qualities)
