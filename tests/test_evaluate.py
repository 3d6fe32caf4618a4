import json
import math

import gymnasium as gym
import pytest
import torch as th

import fitness_weights_env  # noqa: F401
from sb3_ext import PPO
from sb3_ext.evaluate import evaluate_model, main


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
    assert th.equal(th.random.get_rng_state(), rng_state), "seeded sampling must leave torch's generator alone"
    returns = report.mean_return
    assert set(returns) == {"policy (deterministic)", "policy (sampled)", "greedy", "random"}
    assert returns["greedy"] > returns["random"]
    assert returns["policy (sampled)"] != returns["policy (deterministic)"]
    for score, (low, high) in [
        (report.normalized_score, report.normalized_score_ci),
        (report.sampled_score, report.sampled_score_ci),
    ]:
        assert low <= score <= high
    assert math.isfinite(report.cq.mse) and 0.0 <= report.cq.mean_cosine <= 1.0
    assert 0.0 <= report.cq.mean_confidence <= 1.0
    assert all(value > 0 for value in report.latency_ms.values())
    again = evaluate_model(model, n_trainees=6, seed=1)
    assert again.mean_return == report.mean_return and again.cq == report.cq
    # the predictions are also scored against the sampled run's outcome, which differs from the deterministic one
    assert report.cq_sampled is not None and report.cq_sampled.mse != report.cq.mse
    assert "against the outcome of the sampled run" in report.to_markdown()


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
