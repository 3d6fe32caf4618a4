"""The medium behavior: a real PPO run stopped at its target, its log of every episode, and the env's own reward."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("minari")

from gymnasium.vector import AutoresetMode

from fitness_weights_env import FieldError
from fitness_weights_env.training_env import FitnessWeightsV1VectorEnv
from sb3_ext.evaluate import ScoreCallback
from sb3_ext.offline.datasets import dataset_episodes, dataset_made, load_dataset, make_dataset
from sb3_ext.offline.medium import train_medium
from sb3_ext.tuning import VALIDATION_SEED

FAST = dict(policy="MlpPolicy", preset="cpu")


def test_the_log_of_a_shaped_v1_run_keeps_the_envs_own_reward():
    run = train_medium(
        "FitnessWeights-v1", 3, low=0.0, high=1.0, target_score=-1e9, max_timesteps=10**6, validation_trainees=0, **FAST
    )
    assert run.reached and len(run.rollout_scores) == 1 and run.timesteps == 64 * 64  # stopped after one rollout
    assert run.validation_scores == []
    replay = run.replay
    assert len(replay) == 64 and replay.observations.shape == (64, 65, 199)
    # the same trainees (seeded 3 + i) and actions, in an env without the shaping: the same observations and rewards
    env = FitnessWeightsV1VectorEnv(64, autoreset_mode=AutoresetMode.DISABLED)
    obs, _ = env.reset(seed=3)
    assert np.array_equal(obs, replay.observations[:, 0])
    for t in range(64):
        obs, reward, terminated, truncated, _ = env.step(replay.actions[:, t])
        assert np.array_equal(obs, replay.observations[:, t + 1])
        # SB3's VecEnv gives float32 rewards: the shaped one is rounded there, by about 1e-10 at these potentials
        np.testing.assert_allclose(replay.rewards[:, t], reward, rtol=0, atol=1e-9)
        assert np.array_equal(replay.terminations[:, t], terminated)
        assert np.array_equal(replay.truncations[:, t], truncated)
    np.testing.assert_array_equal(replay.cq, env.state.cq.astype(np.float32))
    # the kept policy is the one that collected the rollout, before the update that followed it
    assert run.score == pytest.approx(replay.returns.mean())


def test_a_run_that_never_reaches_its_target_says_so():
    run = train_medium("FitnessWeights-v0", 0, low=0.0, high=1.0, target_score=1e9, max_timesteps=4096, **FAST)
    assert not run.reached and len(run.replay) == 64


def test_the_run_stops_on_the_validation_score_of_the_policy_it_keeps():
    # a target out of reach: every rollout is validated; then stop at the first that reached the second rollout's score
    free = train_medium(
        "FitnessWeights-v1",
        4,
        low=0.0,
        high=1.0,
        target_score=1e9,
        max_timesteps=3 * 4096,
        validation_trainees=4,
        **FAST,
    )
    assert len(free.validation_scores) == len(free.rollout_scores) == 3 and not free.reached
    target = free.validation_scores[1]
    first = next(i for i, score in enumerate(free.validation_scores) if score >= target)
    run = train_medium(
        "FitnessWeights-v1",
        4,
        low=0.0,
        high=1.0,
        target_score=target,
        max_timesteps=3 * 4096,
        validation_trainees=4,
        **FAST,
    )
    assert run.reached and run.timesteps == (first + 1) * 4096 and run.score == free.validation_scores[first]
    # the kept policy scores what the rule saw, evaluated afresh on the same validation trainees
    again = ScoreCallback(1, 4, VALIDATION_SEED, "FitnessWeights-v1")
    again.init_callback(run.model)
    assert again.evaluate() == run.score
    assert run.validation_scores == free.validation_scores[: first + 1]  # the validation leaves training unchanged


def test_bad_validation_counts_are_named():
    for bad in (1, -1):
        with pytest.raises(FieldError, match="validation_trainees"):
            train_medium("FitnessWeights-v0", 0, low=0.0, high=1.0, validation_trainees=bad, **FAST)


def test_medium_expert_is_half_medium_then_expert(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    dataset = make_dataset(
        "FitnessWeights-v0",
        "medium-expert",
        4,
        reference_trainees=2,
        medium_score=-1e9,
        medium_kwargs=dict(FAST, validation_trainees=2),
    )
    made = dataset_made(dataset)
    assert made["medium_episodes"] == 2 and made["medium_reached"] is True and made["medium_timesteps"] == 4096
    episodes = dataset_episodes(load_dataset(dataset.spec.dataset_id))
    assert len(episodes) == 4
    assert np.array_equal(episodes.seeds, np.arange(4) + 1_000_000)
