import json
import math

import gymnasium as gym
import numpy as np
import pytest
import torch as th

import fitness_weights_env  # noqa: F401
from fitness_weights_env import CATALOG, sample_profiles
from fitness_weights_env.baselines import run_episodes
from fitness_weights_env.layout import AGE_MAX, AGE_MIN
from sb3_ext import PPO
from sb3_ext.actions import PolicyActions
from sb3_ext.evaluate import EDGE_PROFILES, HELD_OUT_SEED, POLICY_NAMES, WIDE_ROW, edge_profiles, evaluate_model, main


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
    report = evaluate_model(model, n_trainees=6, seed=1, edge_trainees=2)
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
    again = evaluate_model(model, n_trainees=6, seed=1, edge_trainees=2)
    assert again.mean_return == report.mean_return and again.cq == report.cq
    assert again.edge_profiles == report.edge_profiles and again.per_trainee == report.per_trainee
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
    main([str(path), "--trainees", "4", "--edge-trainees", "2", "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    assert "Normalized score" in printed and "| mse |" in printed
    data = json.loads((tmp_path / "evaluation.json").read_text())
    assert data["n_trainees"] == 4 and "cq" in data and "normalized_score_ci" in data
    assert [row["name"] for row in data["edge_profiles"]] == [*EDGE_PROFILES, WIDE_ROW]
    assert all(len(data["per_trainee"][name]) == 4 for name in (*POLICY_NAMES, "n_targets"))
    assert (tmp_path / "evaluation.md").read_text() == printed.rstrip("\n") + "\n"


def test_command_line_rejects_a_missing_model(tmp_path):
    with pytest.raises(SystemExit):
        main([str(tmp_path / "nope.zip")])
    with pytest.raises(ValueError, match="at least 2"):
        evaluate_model(None, n_trainees=1)


def test_a_policy_without_predictions_gets_returns_only():
    model = PPO("MlpPolicy", gym.make("FitnessWeights-v0"), n_steps=64, batch_size=64, seed=0, device="cpu")
    report = evaluate_model(model, n_trainees=4, edge_trainees=0)
    assert report.cq is None and report.qx is None and report.edge_profiles == []
    assert "Edge profiles" not in report.to_markdown()
    assert "no prediction table" in report.to_markdown()
    assert report.to_dict()["cq"] is None


def test_edge_profiles_set_what_they_name_on_the_same_base_trainees():
    rows = edge_profiles(3, seed=0)
    assert list(rows) == [*EDGE_PROFILES, WIDE_ROW] and all(len(trainees) == 3 for trainees in rows.values())
    for name, trainees in rows.items():
        q = np.array([trainee.qualities for trainee in trainees])
        if name.startswith("all qualities"):
            assert np.all(q == float(name.split()[-1]))
        if name.startswith("one-hot"):
            hot = CATALOG.quality_index(name.removeprefix("one-hot "))
            assert np.all(q[:, hot] == 1.0) and np.all(np.delete(q, hot, axis=1) == 0.0)
        if name.endswith("targets"):
            count = int(name.split()[-2])
            assert all(len(trainee.targets) == count for trainee in trainees)
    assert {t.age for t in rows[f"youngest age ({AGE_MIN})"]} == {AGE_MIN}
    assert {t.age for t in rows[f"oldest age ({AGE_MAX})"]} == {AGE_MAX}
    assert {t.fitness_level for t in rows["lowest fitness (0)"]} == {0.0}
    # every row but the wide draws starts from the same base trainees: the ages differ only where a row sets them
    base_ages = [t.age for t in rows["all qualities 0.5"]]
    assert [t.age for t in rows["10 targets"]] == base_ages != [t.age for t in rows[f"oldest age ({AGE_MAX})"]]
    assert edge_profiles(3, seed=0) == rows and edge_profiles(3, seed=1) != rows


def test_edge_table_scores_each_profile_and_catches_a_policy_that_pushes_one_cell():
    """A policy that always pushes one QX cell drifts at no gain: below random where the qualities are equal."""
    model = PPO("MlpPolicy", gym.make("FitnessWeights-v0"), seed=0, device="cpu")
    with th.no_grad():
        model.policy.action_net.bias[465] += 30.0  # QX cell (endurance, exercise 0): almost all the mass
    report = evaluate_model(model, n_trainees=3, seed=0)  # by default a row has min(16, n_trainees) trainees
    rows = {row.name: row for row in report.edge_profiles}
    assert list(rows) == [*EDGE_PROFILES, WIDE_ROW]
    for row in rows.values():
        assert row.n_trainees == 3 and set(row.mean_return) == set(POLICY_NAMES)
        assert row.mean_return["greedy"] > row.mean_return["random"], row.name
    for name in ("all qualities 0.5", "all qualities 0", "all qualities 1"):
        assert 0.05 < rows[name].gap < 1.0  # greedy only avoids drift: a small, well-defined gap
        assert rows[name].deterministic_score < -0.5 and rows[name].normalized_score < -0.5
    assert rows["one-hot power"].gap > 3 * rows[f"youngest age ({AGE_MIN})"].gap > 0
    table = report.to_markdown()
    assert all(f"| {name} |" in table for name in rows)
    row = rows["all qualities 0.5"]
    returns = [row.mean_return[name] for name in ("greedy", "random", *POLICY_NAMES[:2])]
    assert f"| all qualities 0.5 | {returns[0]:.3f} | {returns[1]:.3f} |" in table
    data = json.loads(json.dumps(report.to_dict()))
    assert data["edge_profiles"][0]["deterministic_score"] == pytest.approx(row.deterministic_score)


def test_held_out_trainees_are_the_population_alone_and_their_returns_are_kept(saved_model):
    model, _ = saved_model
    report = evaluate_model(model, n_trainees=12, seed=3, edge_trainees=0)
    profiles = sample_profiles(12, seed=HELD_OUT_SEED + 3, edge_fraction=0.0)
    assert report.per_trainee["n_targets"] == [float(len(p.targets)) for p in profiles]
    assert max(report.per_trainee["n_targets"]) <= 3  # the population draws 1 to 3 targets; wide draws up to 93
    for name in POLICY_NAMES:
        assert len(report.per_trainee[name]) == 12
        assert np.mean(report.per_trainee[name]) == pytest.approx(report.mean_return[name])
    sampled = run_episodes(PolicyActions(model.policy, [3 + i for i in range(12)]), profiles, seed=3)
    np.testing.assert_allclose(report.per_trainee[POLICY_NAMES[0]], sampled.returns, atol=1e-9)


def test_the_score_callback_logs_the_evaluations_headline_every_n_rollouts(tmp_path):
    import csv

    from stable_baselines3.common.logger import configure

    from sb3_ext.evaluate import ScoreCallback

    model = PPO("AttnCQQXPolicy", gym.make("FitnessWeights-v0"), n_steps=64, batch_size=64, n_epochs=1, seed=0)
    model.set_logger(configure(str(tmp_path), ["csv"]))
    callback = ScoreCallback(2, n_trainees=6, seed=1)
    model.learn(64 * 4, callback=callback)
    with open(tmp_path / "progress.csv") as file:
        logged = [row["eval/normalized_score"] for row in csv.DictReader(file)]
    assert [bool(value) for value in logged] == [False, True, False, True]  # after rollouts 2 and 4
    # the same score evaluate_model gives the policy (evaluated again, now)
    callback.evaluate()
    report = evaluate_model(model, n_trainees=6, seed=1, edge_trainees=0)
    assert callback.last_score == report.normalized_score
    for bad, field in ((dict(eval_rollouts=0), "eval_rollouts"), (dict(eval_rollouts=1, n_trainees=1), "n_trainees"),
                       (dict(eval_rollouts=1, env_id="CartPole-v1"), "env_id")):  # fmt: skip
        with pytest.raises(ValueError, match=field):
            ScoreCallback(**bad)
