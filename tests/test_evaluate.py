import json
import math

import gymnasium as gym
import numpy as np
import pytest
import torch as th

import fitness_weights_env  # noqa: F401
from fitness_weights_env import sample_profiles
from fitness_weights_env.baselines import run_episodes
from sb3_ext import PPO
from sb3_ext.actions import PolicyActions
from sb3_ext.evaluate import HELD_OUT_SEED, evaluate_model, main


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    model = PPO(
        "AttnCQQXPolicy",
        gym.make("FitnessWeights-v0"),
        n_steps=64,
        batch_size=64,
        n_epochs=1,
        seed=0,
        device="cpu",
        policy_kwargs={"embed_dim": 16, "n_heads": 2, "n_latents": 2},
    )
    model.learn(64)
    path = tmp_path_factory.mktemp("model") / "model.zip"
    model.save(path)
    return model, path


def test_report_compares_policy_greedy_and_random_on_the_same_trainees(saved_model):
    model, _ = saved_model
    rng_state = th.random.get_rng_state()
    report = evaluate_model(model, n_trainees=6, seed=1)
    assert th.equal(th.random.get_rng_state(), rng_state), "the evaluation must leave torch's generator alone"
    returns = report.mean_return
    assert set(returns) == {"policy (optimize: sampled, seeded)", "policy (deterministic)", "greedy", "random"}
    assert returns["greedy"] > returns["random"]
    assert returns["policy (optimize: sampled, seeded)"] != returns["policy (deterministic)"]
    for score, (low, high) in [
        (report.normalized_score, report.normalized_score_ci),
        (report.deterministic_score, report.deterministic_score_ci),
    ]:
        assert low <= score <= high
    assert math.isfinite(report.cq.mse) and 0.0 <= report.cq.mean_cosine <= 1.0
    assert 0.0 <= report.cq.mean_confidence <= 1.0
    assert all(value > 0 for value in report.latency_ms.values())
    again = evaluate_model(model, n_trainees=6, seed=1)
    assert again.mean_return == report.mean_return and again.cq == report.cq
    # the predictions are also scored against the deterministic run's outcome, which differs from the optimize one
    assert report.cq_deterministic is not None and report.cq_deterministic.mse != report.cq.mse
    assert "against the outcome of the deterministic run" in report.to_markdown()


def test_the_optimize_outcome_of_a_trainee_does_not_depend_on_its_batch(saved_model):
    """Trainee i of the evaluation, run alone with seed ``seed + i``, ends with the same matrices."""
    model, _ = saved_model
    profiles = sample_profiles(5, seed=HELD_OUT_SEED + 2)
    batch = run_episodes(PolicyActions(model.policy, [2 + i for i in range(5)]), profiles, seed=2)
    for i in (0, 3):
        alone = run_episodes(PolicyActions(model.policy, [2 + i]), [profiles[i]], seed=2 + i)
        np.testing.assert_allclose(alone.cq[0], batch.cq[i], atol=1e-12)
        np.testing.assert_allclose(alone.returns[0], batch.returns[i], atol=1e-9)
    other_seed = run_episodes(PolicyActions(model.policy, [99]), [profiles[0]], seed=2)
    assert not np.array_equal(other_seed.cq[0], batch.cq[0])


def test_sampled_actions_follow_the_policy_distribution():
    """Per-trainee draws: frequencies match the policy's probabilities (a fixed observation, many draws)."""
    model = PPO("MlpPolicy", gym.make("FitnessWeights-v0"), seed=0, device="cpu")
    with th.no_grad():  # a peaked distribution: three actions with most of the mass
        model.policy.action_net.bias[[3, 470, 600]] += th.tensor([7.0, 6.5, 6.0])
    observation, _ = gym.make("FitnessWeights-v0").reset(seed=0)
    observations = np.repeat(observation[None], 4000, axis=0)
    actions = PolicyActions(model.policy, range(4000))(observations)
    with th.no_grad():
        probs = model.policy.get_distribution(th.as_tensor(observation[None])).distribution.probs[0].double().numpy()
    assert actions.min() >= 0 and actions.max() < probs.size
    frequencies = np.bincount(actions, minlength=probs.size) / 4000
    for group in ([3], [470], [600], list(range(465))):
        expected = probs[group].sum()
        assert abs(frequencies[group].sum() - expected) < 4 * np.sqrt(expected * (1 - expected) / 4000), group
    mode = PolicyActions(model.policy)(observations[:3])
    assert np.all(mode == np.argmax(probs))
    with pytest.raises(ValueError, match="3 observations for 4000 seeded trainees"):
        PolicyActions(model.policy, range(4000))(observations[:3])


def test_command_line_writes_json_and_markdown(saved_model, tmp_path, capsys):
    _, path = saved_model
    main([str(path), "--trainees", "4", "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    assert "Normalized score" in printed and "| mse |" in printed
    data = json.loads((tmp_path / "evaluation.json").read_text())
    assert data["n_trainees"] == 4 and "cq" in data and "normalized_score_ci" in data
    assert (tmp_path / "evaluation.md").read_text() == printed.rstrip("\n") + "\n"


def test_command_line_rejects_a_missing_model(tmp_path):
    with pytest.raises(SystemExit):
        main([str(tmp_path / "nope.zip")])
    with pytest.raises(ValueError, match="at least 2"):
        evaluate_model(None, n_trainees=1)


def test_a_policy_without_predictions_gets_returns_only():
    model = PPO("MlpPolicy", gym.make("FitnessWeights-v0"), n_steps=64, batch_size=64, seed=0, device="cpu")
    report = evaluate_model(model, n_trainees=4)
    assert report.cq is None and report.qx is None
    assert "no prediction table" in report.to_markdown()
    assert report.to_dict()["cq"] is None
