import gymnasium as gym
import numpy as np
import pytest
import torch as th

import fitness_weights_env  # noqa: F401  (registers FitnessWeights-v0)
from fitness_weights_api.weights import (
    MAX_OPTIMIZATION_STEPS,
    NoPredictionHeadsError,
    optimize_weights,
    predict_weights,
)
from fitness_weights_env import CATALOG, LAYOUT, METRIC_NAMES, FieldError, TraineeProfile, sample_profile
from fitness_weights_env.baselines import run_episodes
from fitness_weights_env.errors import FitnessWeightsError
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


def reset_observation(profile, seed):
    """What the policy sees at the start of an episode for ``profile`` and ``seed`` (the single env's reset)."""
    return gym.make("FitnessWeights-v0").reset(seed=seed, options={"profile": profile})


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
    cq, qx, confidence = model.policy.predict_weights(reset_observation(trainee, 0)[0])  # seed 0 by default
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
    with pytest.raises(FieldError, match=rf"^steps: must be an integer in \[1, {MAX_OPTIMIZATION_STEPS}\]") as raised:
        optimize_weights(model, trainee, steps=steps)
    assert (raised.value.field, raised.value.reason) == (
        "steps",
        f"must be an integer in [1, {MAX_OPTIMIZATION_STEPS}]",
    )
    assert str(raised.value).endswith(f"(got {steps!r})")  # the value is quoted in the message only


def test_bad_profiles_name_the_field(model, trainee):
    data = trainee.to_dict()
    data["qualities"] = [0.5] * 4
    for call in (lambda: optimize_weights(model, data), lambda: predict_weights(model, data)):
        with pytest.raises(FieldError, match=r"^qualities: ") as raised:
            call()
        assert raised.value.field == "qualities"


def test_predict_needs_a_policy_with_prediction_heads(trainee):
    mlp = PPO("MlpPolicy", gym.make("FitnessWeights-v0"), n_steps=64, batch_size=64, device="cpu")
    with pytest.raises(NoPredictionHeadsError, match="ActorCriticPolicy has no predict_weights") as raised:
        predict_weights(mlp, trainee)
    assert isinstance(raised.value, FitnessWeightsError) and not isinstance(raised.value, (TypeError, FieldError))
    assert optimize_weights(mlp, trainee, steps=2).cq.shape == (CATALOG.n_subjects, CATALOG.n_qualities)


PARITY_SEEDS = (0, 1, 7, 2**31 - 1)


def parity_profiles():
    """Drawn trainees (population and wide ones) and a hand-written one, as a service receives them."""
    drawn = [sample_profile(np.random.default_rng(i)) for i in (0, 7)]
    drawn.append(sample_profile(np.random.default_rng(3), edge_fraction=1.0))
    written = TraineeProfile.from_dict(
        {
            "age": 30,
            "gender": "female",
            "fitness_level": 0.6,
            "qualities": [0.7, 0.4, 0.5, 0.6, 0.3],
            "subject_scores": [0.5] * CATALOG.n_subjects,
            "targets": [CATALOG.subjects[0].name_en, CATALOG.subjects[10].name_en],
            "performance_metrics": [0.9, 0.9, 0.9, 0.1],
        }
    )
    return [*drawn, written]


def test_predict_sees_what_training_sees_bit_for_bit(model):
    """Train/serve parity: the served prediction is the policy on the env's reset observation for that seed."""
    seen_a_seed_matter = fed_vector_differs = False
    for profile in parity_profiles():
        at_seed_0 = reset_observation(profile, 0)[0]
        for seed in PARITY_SEEDS:
            obs, info = reset_observation(profile, seed)
            served = predict_weights(model, profile, seed=seed)
            cq, qx, confidence = model.policy.predict_weights(obs)
            np.testing.assert_array_equal(served.cq, cq)
            np.testing.assert_array_equal(served.qx, qx)
            assert served.confidence == float(confidence)
            seen_a_seed_matter |= not np.array_equal(obs, at_seed_0)

            # The observation is the profile's vector with the metrics recomputed from the initial matrices.
            vector = profile.to_vector()
            outside = np.ones(LAYOUT.size, dtype=bool)
            outside[LAYOUT.metrics] = False
            np.testing.assert_array_equal(obs[outside], vector[outside])
            metrics = dict(zip(METRIC_NAMES, obs[LAYOUT.metrics].tolist(), strict=True))
            n_qualities, n_exercises = CATALOG.n_qualities, CATALOG.n_exercises
            qx_energy = float(np.sum(np.square(info["qx_matrix"], dtype=np.float64)))
            injury = max(
                qx_energy / (n_qualities * (1 - 1 / n_exercises)) - (1 / n_exercises) / (1 - 1 / n_exercises), 0
            )
            efficiency = min(info["mean_target_score"] / float(profile.qualities.max()), 1.0)
            assert metrics["recent_improvement"] == 0.5 and metrics["consistency"] == 1.0  # no step, no drift yet
            assert metrics["injury_risk"] == pytest.approx(injury, abs=1e-6)
            assert metrics["training_efficiency"] == pytest.approx(efficiency, rel=1e-5)

            # Feeding the profile's recorded metrics (what predict did before) gives another prediction.
            if not np.array_equal(obs, vector):
                fed = model.policy.predict_weights(vector)[0]
                fed_vector_differs |= not np.array_equal(served.cq, fed)
    assert seen_a_seed_matter, "no profile's reset observation depends on the seed: the seed is not tested"
    assert fed_vector_differs, "profile.to_vector() predicts the same: the test could not tell the two apart"


def test_the_single_env_and_the_vector_env_start_from_the_same_observation():
    """predict_weights resets a 1-env vector env; training may use either: both must start the same."""
    from fitness_weights_env import FitnessWeightsVectorEnv

    for profile in parity_profiles():
        for seed in PARITY_SEEDS:
            single = reset_observation(profile, seed)[0]
            vector, _ = FitnessWeightsVectorEnv(1, max_episode_steps=None).reset(
                seed=seed, options={"profiles": [profile]}
            )
            np.testing.assert_array_equal(vector[0], single)
