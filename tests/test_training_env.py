"""FitnessWeights-v1: the env, its vector env, its kernel's guarantees and its baselines."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.utils.passive_env_checker import env_reset_passive_checker, env_step_passive_checker
from gymnasium.vector import AutoresetMode

import fitness_weights_env
from fitness_weights_env import (
    LAYOUT,
    TRAINING_LAYOUT,
    FitnessWeightsV1Env,
    FitnessWeightsV1VectorEnv,
    sample_profile,
    sample_profiles,
)
from fitness_weights_env import body as trainees
from fitness_weights_env.baselines import run_episodes
from fitness_weights_env.dynamics import InvalidActionError
from fitness_weights_env.errors import FieldError
from fitness_weights_env.planner import average_trainee, best_plan, plan_return
from fitness_weights_env.response import training_plan
from fitness_weights_env.training_baselines import CoachPolicy, OraclePolicy, PlanPolicy


def test_made_by_id_with_v0s_actions_its_trainee_vector_and_progress_and_a_16_week_episode():
    env = gym.make("FitnessWeights-v1")
    v0 = gym.make("FitnessWeights-v0")
    assert env.action_space == v0.action_space
    assert env.observation_space == gym.spaces.Box(0.0, 1.0, (TRAINING_LAYOUT.size,), np.float32)
    assert TRAINING_LAYOUT.size == LAYOUT.size + 1 and TRAINING_LAYOUT.progress == slice(LAYOUT.size, LAYOUT.size + 1)
    assert env.spec is not None and env.spec.max_episode_steps == 64
    profile = sample_profile(np.random.default_rng(5))
    observation, _ = env.reset(seed=0, options={"profile": profile})
    np.testing.assert_array_equal(observation[LAYOUT.targets], profile.to_vector()[LAYOUT.targets])
    assert env.unwrapped.profile.targets == profile.targets  # observation[:198] is the trainee vector
    weeks, progress = [], [observation[TRAINING_LAYOUT.progress][0]]
    for t in range(64):
        observation, reward, terminated, truncated, info = env.step(int(env.action_space.sample()))
        weeks.append(info["week"])
        progress.append(observation[TRAINING_LAYOUT.progress][0])
        assert terminated == truncated == (t == 63)  # the block ends: a terminal state (and the registered limit)
        if (t + 1) % 4:
            assert reward == 0.0  # only the step that closes a week is paid
    assert weeks[3] == 1 and weeks[-1] == 16
    np.testing.assert_allclose(progress, np.arange(65) / 64, rtol=1e-6)  # steps taken over the block's 64
    envs = gym.make_vec("FitnessWeights-v1", num_envs=3)
    assert isinstance(envs.unwrapped, FitnessWeightsV1VectorEnv)


@pytest.mark.parametrize(("weeks", "steps_per_week", "block"), [(None, 4, 64), (3, 2, 6)])
def test_progress_counts_the_blocks_steps_and_stops_at_1(weeks, steps_per_week, block):
    env = FitnessWeightsV1Env(weeks=weeks, steps_per_week=steps_per_week)
    observation, _ = env.reset(seed=1)
    seen = [float(observation[TRAINING_LAYOUT.progress][0])]
    for _ in range(block + 6):
        observation, _, terminated, _, _ = env.step(0)
        seen.append(float(observation[TRAINING_LAYOUT.progress][0]))
        if terminated:
            break
    expected = np.minimum(np.arange(len(seen)) / block, 1.0)
    np.testing.assert_allclose(seen, expected, rtol=1e-6)
    assert seen[-1] == 1.0 and len(seen) == (block + 1 if weeks else block + 7)
    assert env.reset(seed=1)[0][TRAINING_LAYOUT.progress][0] == 0.0  # a new block starts at 0


def test_both_env_checkers_pass():
    check_env(FitnessWeightsV1Env(max_episode_steps=64), skip_render_check=True)
    env = FitnessWeightsV1Env(max_episode_steps=64)
    env_reset_passive_checker(env, seed=3)
    for _ in range(8):
        env_step_passive_checker(env, env.action_space.sample())


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"adjustment": "random", "injuries": True, "steps_per_week": 3}, {"init": "uniform", "drift_coef": 0.01}],
)
def test_the_vector_env_equals_n_single_envs_bit_for_bit(kwargs):
    n = 4
    vector = FitnessWeightsV1VectorEnv(n, **kwargs)
    singles = [gym.make("FitnessWeights-v1", **kwargs) for _ in range(n)]
    observations, _ = vector.reset(seed=11)
    for i, env in enumerate(singles):
        observation, _ = env.reset(seed=11 + i)
        np.testing.assert_array_equal(observation, observations[i])
    rng = np.random.default_rng(0)
    for _ in range(140):  # two episodes and a bit, through the autoreset
        actions = rng.integers(0, 685, n)
        observations, rewards, terminated, truncated, info = vector.step(actions)
        for i, env in enumerate(singles):
            observation, reward, single_terminated, single_truncated, single_info = env.step(int(actions[i]))
            done = single_terminated or single_truncated
            assert (terminated[i], truncated[i]) == (single_terminated, single_truncated)
            if done:
                np.testing.assert_array_equal(info["final_obs"][i], observation)
                observation, _ = env.reset()
            np.testing.assert_array_equal(observation, observations[i])
            assert reward == rewards[i]
            if not done:
                assert single_info["mean_target_score"] == info["mean_target_score"][i]
                np.testing.assert_array_equal(single_info["weekly_load"], info["weekly_load"][i])


def test_trainees_restarted_apart_close_their_own_weeks():
    env = FitnessWeightsV1VectorEnv(2, autoreset_mode=AutoresetMode.DISABLED, max_episode_steps=None)
    env.reset(seed=0)
    for _ in range(2):
        env.step(np.zeros(2, dtype=np.int64))
    env.reset(seed=[None, 5], options={"reset_mask": np.array([False, True])})
    single = FitnessWeightsV1Env()
    single.reset(seed=5)
    for t in range(8):
        _, rewards, _, _, info = env.step(np.array([465, 465]))
        _, reward, _, _, _ = single.step(465)
        assert rewards[1] == reward
        assert (rewards[0] != 0.0) == ((t + 3) % 4 == 0)  # trainee 0 is two steps ahead
        assert info["week"][1] == (t + 1) // 4


def test_the_return_is_the_gain_of_the_target_score_less_the_expected_injury_cost():
    env = FitnessWeightsV1Env(max_episode_steps=64)
    _, info = env.reset(seed=4)
    start, total, costs = info["mean_target_score"], 0.0, 0.0
    rng = np.random.default_rng(1)
    for t in range(64):
        _, reward, _, _, info = env.step(int(rng.integers(0, 685)))
        total += reward
        if (t + 1) % 4 == 0:
            costs += trainees.INJURY_COST * info["injury_probability"]
    assert total == pytest.approx(info["mean_target_score"] - start - costs, abs=1e-12)
    assert info["mean_target_score"] != start


def test_the_guarantees_hold_over_random_plans_and_wide_trainees():
    profiles = sample_profiles(16, seed=3, edge_fraction=1.0)
    env = FitnessWeightsV1VectorEnv(16, adjustment="random", injuries=True, info_matrices="every_step")
    observation, _ = env.reset(seed=0, options={"profiles": profiles})
    rng = np.random.default_rng(2)
    for _ in range(64):
        observation, rewards, _, _, info = env.step(rng.integers(0, 685, 16))
        assert np.all((observation >= 0) & (observation <= 1)) and np.all(np.isfinite(rewards))
        np.testing.assert_allclose(info["cq_matrix"].sum(axis=2), 1.0, rtol=1e-5)
        np.testing.assert_allclose(info["qx_matrix"].sum(axis=2), 1.0, rtol=1e-5)
        assert np.all((info["true_qualities"] >= 0) & (info["true_qualities"] <= 1))
        assert np.all(np.isfinite(info["weekly_load"])) and np.all(info["weekly_load"] >= 0)
        assert np.all((info["injury_probability"] >= 0) & (info["injury_probability"] < 1))
        np.testing.assert_allclose(env.state.allocation.sum(axis=1), 1.0)
        # the plan followed action by action is the plan that the matrices imply, its copies too
        state, body = env.state, env.state.body
        emphasis, allocation, _ = training_plan(state.cq, state.qx, body.target_mask, body.scores, body.fitness_level)
        np.testing.assert_allclose(state.emphasis, emphasis, atol=1e-12)
        np.testing.assert_allclose(state.allocation, allocation, atol=1e-12)
        np.testing.assert_array_equal(state.plan_qx, state.qx)
        for i in range(16):
            rows = body.target_rows[i, : body.target_count[i]]
            np.testing.assert_array_equal(state.target_cq[i, : rows.size], state.cq[i, rows])
            np.testing.assert_array_equal(state.target_slot[i, rows], np.arange(rows.size))


def test_an_injury_stops_training_for_the_weeks_it_costs():
    env = FitnessWeightsV1VectorEnv(64, injuries=True, max_episode_steps=None, weeks=None)
    env.reset(seed=0)
    env.state.body.budget[:] *= 1.0  # the default risk; many trainees make a few injuries likely
    injured_weeks = []
    for t in range(4 * 30):
        _, _, _, _, info = env.step(np.full(64, 465))  # a steady shift onto one exercise raises the risk
        if (t + 1) % 4 == 0:
            injured_weeks.append(env.state.body.injured_weeks.copy())
            resting = injured_weeks[-2] > 0 if len(injured_weeks) > 1 else np.zeros(64, dtype=bool)
            assert np.all(info["weekly_load"][resting] == 0.0)
    assert np.any(np.stack(injured_weeks) == trainees.INJURY_WEEKS)


def test_hidden_parameters_stay_out_of_the_observation():
    profile = sample_profiles(1, seed=0, edge_fraction=0.0)[0]
    first, second = FitnessWeightsV1Env(), FitnessWeightsV1Env()
    observation_1, info_1 = first.reset(seed=1, options={"profile": profile})
    observation_2, info_2 = second.reset(seed=2, options={"profile": profile})
    np.testing.assert_array_equal(observation_1[: LAYOUT.metrics.start], observation_2[: LAYOUT.metrics.start])
    assert not np.array_equal(info_1["hidden"]["responsiveness"], info_2["hidden"]["responsiveness"])
    for _ in range(4):
        observation_1, *_ = first.step(465)
        observation_2, *_ = second.step(465)
    assert not np.array_equal(observation_1, observation_2)  # the same plan, two bodies


def test_subject_scores_follow_the_true_qualities_not_the_agents_cq():
    env = FitnessWeightsV1Env()
    _, info = env.reset(seed=0)
    target = int(np.flatnonzero(info["target_scores"])[0])
    observation = None
    for _ in range(8):  # push a CQ cell of a non-target subject: the plan and the body do not change
        other = next(s for s in range(93) if info["target_scores"][s] == 0)
        observation, _, _, _, info = env.step(other * 5)
    body = env.unwrapped.state.body
    expected = np.clip(
        body.baseline_scores[0]
        + np.asarray(fitness_weights_env.CATALOG.cq_prior) @ (body.qualities[0] - body.baseline[0]),
        0,
        1,
    )
    np.testing.assert_allclose(observation[LAYOUT.subject_scores], expected, rtol=1e-6)
    assert info["target_scores"][target] == pytest.approx(expected[target], rel=1e-6)


def test_an_unchanged_plan_keeps_the_trainee_where_they_are_at_the_habits_volume():
    env = FitnessWeightsV1VectorEnv(8, habitual_volume=1.0, max_episode_steps=None, weeks=None)
    _, info = env.reset(seed=0)
    baseline = info["true_qualities"].copy()
    coach = CoachPolicy()
    observation = None
    for _ in range(64):
        observation, *_ = env.step(coach(observation, env))
    np.testing.assert_allclose(env.state.body.qualities, baseline, atol=1e-9)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"steps_per_week": 0}, "steps_per_week"),
        ({"injuries": "yes"}, "injuries"),
        ({"habitual_volume": 1.5}, "habitual_volume"),
        ({"init": "zero"}, "init"),
        ({"drift_coef": -1.0}, "drift_coef"),
    ],
)
def test_bad_arguments_name_their_field(kwargs, field):
    with pytest.raises(FieldError) as raised:
        FitnessWeightsV1Env(**kwargs)
    assert raised.value.field == field
    with pytest.raises(FieldError) as raised:
        FitnessWeightsV1VectorEnv(2, **kwargs)
    assert raised.value.field == field


def test_bad_actions_are_refused_and_change_nothing():
    env = FitnessWeightsV1Env()
    observation, _ = env.reset(seed=0)
    for action in (685, -1, 1.5, "3"):
        with pytest.raises(InvalidActionError):
            env.step(action)
    np.testing.assert_array_equal(env.unwrapped.state.observation[0], observation)


def test_a_sudden_shift_triples_the_injury_risk_and_a_four_week_one_stays_in_the_sweet_spot():
    env = FitnessWeightsV1VectorEnv(32)
    env.reset(seed=0)
    body = env.state.body.take(slice(None))
    coach = body.allocation.copy()
    shifted = 0.5 * coach
    shifted[np.arange(32), np.argmin(coach, axis=1)] += 0.5
    p_coach, _ = trainees.injury_probability(body, body.budget[:, None] * coach)
    p_sudden, _ = trainees.injury_probability(body, body.budget[:, None] * shifted)
    assert np.all(p_sudden >= 3 * p_coach)
    for week in range(1, 9):
        share = min(week / 4, 1.0)
        result = trainees.train_week(body, body.budget[:, None] * ((1 - share) * coach + share * shifted))
        assert result.ratios.max() <= trainees.SWEET_SPOT


def test_the_planner_never_loses_to_its_start_and_the_oracle_beats_the_coach():
    env = FitnessWeightsV1VectorEnv(6)
    env.reset(seed=0)
    body = env.state.body.take(slice(None))
    start = body.allocation.copy()
    plan, value = best_plan(body, start, 16, iterations=5)
    np.testing.assert_allclose(plan.sum(axis=1), 1.0)
    assert np.all(value >= plan_return(body, start, 16) - 1e-12)
    np.testing.assert_allclose(value, plan_return(body, plan, 16))
    assert not np.array_equal(average_trainee(body).hidden.transfer, body.hidden.transfer)

    profiles = sample_profiles(6, seed=1, edge_fraction=0.0)
    runs = {
        name: run_episodes(policy, profiles, seed=5, env_id="FitnessWeights-v1").returns.mean()
        for name, policy in (("coach", CoachPolicy()), ("oracle", OraclePolicy(iterations=5)))
    }
    assert runs["oracle"] > runs["coach"]
    with pytest.raises(FieldError):
        PlanPolicy("truth")  # type: ignore[arg-type]


def test_shaping_credits_each_action_and_leaves_every_return_minus_the_start_potential():
    profiles = sample_profiles(6, seed=3, edge_fraction=0.0)
    shaped = FitnessWeightsV1VectorEnv(6, reward_shaping=True, max_episode_steps=None)
    plain = FitnessWeightsV1VectorEnv(6, max_episode_steps=None)
    shaped.reset(seed=0, options={"profiles": profiles})
    plain.reset(seed=0, options={"profiles": profiles})
    start = shaped.state.potential.copy()
    assert np.all(start > 0)  # the coach's plan, held, still gains
    rng = np.random.default_rng(0)
    totals, plain_totals, per_step = np.zeros(6), np.zeros(6), []
    for _ in range(64):
        actions = rng.integers(0, 685, 6)
        _, rewards, terminated, _, _ = shaped.step(actions)
        _, plain_rewards, _, _, _ = plain.step(actions)
        totals, plain_totals = totals + rewards, plain_totals + plain_rewards
        per_step.append(rewards)
    assert terminated.all()
    np.testing.assert_allclose(totals, plain_totals - start, atol=1e-12)
    assert np.count_nonzero(np.stack(per_step)[:3]) > 0  # steps inside a week are credited too

    single = FitnessWeightsV1Env(reward_shaping=True)
    vector = FitnessWeightsV1VectorEnv(2, reward_shaping=True)
    single.reset(seed=9)
    vector.reset(seed=9)
    for _ in range(20):
        actions = rng.integers(0, 685, 2)
        assert single.step(int(actions[0]))[1] == vector.step(actions)[1][0]
    with pytest.raises(FieldError) as raised:
        FitnessWeightsV1Env(reward_shaping=True, weeks=None)
    assert raised.value.field == "reward_shaping"


def test_the_wide_distribution_is_an_argument_of_gym_make_and_the_vector_env():
    from fitness_weights_env.hidden import DEFAULT_HIDDEN, WIDE_HIDDEN, sample_hidden

    assert gym.make("FitnessWeights-v1").unwrapped.config.hidden_distribution is DEFAULT_HIDDEN
    env = gym.make("FitnessWeights-v1", hidden="wide")
    assert env.unwrapped.config.hidden == "wide" and env.unwrapped.config.hidden_distribution is WIDE_HIDDEN
    _, info = env.reset(seed=3)
    rng = np.random.default_rng(3)
    profile = fitness_weights_env.sample_profile(rng)  # the env's first draw: the trainee, then the hidden parameters
    assert profile is not None
    expected = sample_hidden([rng], WIDE_HIDDEN)
    np.testing.assert_array_equal(info["hidden"]["transfer"], expected.transfer[0])
    assert info["hidden"]["tau1"] == expected.tau1[0]
    vector = gym.make_vec("FitnessWeights-v1", num_envs=2, hidden="wide")
    assert vector.unwrapped.config.hidden_distribution is WIDE_HIDDEN
    test_the_vector_env_equals_n_single_envs_bit_for_bit({"hidden": "wide"})
    with pytest.raises(FieldError) as raised:
        gym.make("FitnessWeights-v1", hidden="narrow")
    assert raised.value.field == "hidden"
    with pytest.raises(FieldError) as raised:
        FitnessWeightsV1VectorEnv(2, hidden=0.5)  # type: ignore[arg-type]
    assert raised.value.field == "hidden"


def test_the_average_trainee_is_the_env_s_population_s():
    from fitness_weights_env.hidden import DEFAULT_HIDDEN, WIDE_HIDDEN
    from fitness_weights_env.planner import SUMMARY_NAMES

    env = FitnessWeightsV1VectorEnv(3, hidden="wide")
    env.reset(seed=0)
    body = env.state.body.take(slice(None))
    wide = average_trainee(body, WIDE_HIDDEN)
    np.testing.assert_array_equal(wide.hidden.transfer, np.broadcast_to(WIDE_HIDDEN.mean_transfer, (3, 44, 5)))
    assert not np.allclose(wide.hidden.transfer, average_trainee(body).hidden.transfer)
    np.testing.assert_array_equal(average_trainee(body).hidden.transfer[0], DEFAULT_HIDDEN.mean_transfer)
    summary = average_trainee(body, WIDE_HIDDEN, known=SUMMARY_NAMES)
    np.testing.assert_array_equal(summary.hidden.tau1, body.hidden.tau1)  # the trainee's own
    np.testing.assert_array_equal(summary.hidden.transfer, wide.hidden.transfer)  # the population's
    with pytest.raises(FieldError) as raised:
        average_trainee(body, known=("fatigue",))
    assert raised.value.field == "known"


@pytest.mark.parametrize("hidden", ["average", "summary"])
def test_the_plan_without_the_hidden_parameters_assumes_the_env_s_distribution(monkeypatch, hidden):
    from fitness_weights_env import training_baselines
    from fitness_weights_env.hidden import WIDE_HIDDEN

    seen = []

    def recording(body, distribution, **kwargs):
        seen.append(distribution)
        return average_trainee(body, distribution, **kwargs)

    monkeypatch.setattr(training_baselines, "average_trainee", recording)
    profiles = sample_profiles(2, seed=1, edge_fraction=0.0)
    run_episodes(PlanPolicy(hidden, iterations=1), profiles, steps=2, env_id="FitnessWeights-v1", hidden="wide")
    assert seen == [WIDE_HIDDEN]
