"""Offline datasets: made, written to a real local Minari store, read back bit for bit, and refused when bad."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("minari")

import minari

from fitness_weights_env.baselines import GreedyPolicy, RandomPolicy, run_episodes
from fitness_weights_env.training_baselines import CoachPolicy, OraclePolicy
from sb3_ext.evaluate import anchor_returns, held_out_profiles
from sb3_ext.offline.datasets import (
    DatasetError,
    dataset_episodes,
    dataset_made,
    delete_dataset,
    episode_seeds,
    generate_episodes,
    list_datasets,
    load_dataset,
    make_dataset,
)
from sb3_ext.offline.episodes import NoisyPolicy, UniformPolicy, coach_policy, rollout

REFERENCE = 4  # held-out trainees of the reference scores: small, the wiring is what is tested


@pytest.fixture(autouse=True)
def datasets_path(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "datasets"))
    return tmp_path / "datasets"


def test_make_then_load_round_trips_every_array_bit_for_bit():
    made = make_dataset("FitnessWeights-v0", "random", 6, seed=2, reference_trainees=REFERENCE, batch_size=4)
    loaded = dataset_episodes(load_dataset(made.spec.dataset_id))
    anchors = anchor_returns("FitnessWeights-v0", REFERENCE)
    generated, _ = generate_episodes("FitnessWeights-v0", "random", 6, seed=2, anchors=anchors, batch_size=4)
    for name in ("observations", "actions", "rewards", "terminations", "truncations", "cq", "qx", "seeds"):
        a, b = getattr(loaded, name), getattr(generated, name)
        assert a.dtype == b.dtype and a.shape == b.shape, name
        assert np.array_equal(a, b), name
    assert loaded.observations.shape == (6, 65, 198)
    assert np.array_equal(loaded.seeds, episode_seeds(6, 2))
    assert loaded.truncations[:, -1].all() and not loaded.terminations.any()  # v0: the 64-step time limit
    # the final matrices are the ones the episode's last step left: CQ rows sum to 1, as the env keeps them
    assert np.allclose(loaded.cq.sum(axis=2), 1.0, atol=1e-5) and np.allclose(loaded.qx.sum(axis=2), 1.0, atol=1e-5)
    assert dataset_made(load_dataset(made.spec.dataset_id))["behavior"] == "random"
    assert made.spec.dataset_id == "fitness-weights/v0/random-seed2-v0"


def test_normalized_score_gives_the_expert_1_and_random_0_on_v0_and_the_oracle_1_and_coach_0_on_v1():
    profiles = held_out_profiles(REFERENCE)
    cases = {
        "FitnessWeights-v0": (RandomPolicy(0), GreedyPolicy()),
        "FitnessWeights-v1": (CoachPolicy(), OraclePolicy()),
    }
    for env_id, (zero, one) in cases.items():
        dataset = make_dataset(env_id, "random", 2, reference_trainees=REFERENCE)
        for policy, expected in ((zero, 0.0), (one, 1.0)):
            returns = run_episodes(policy, profiles, seed=0, env_id=env_id).returns  # type: ignore[arg-type]
            assert minari.get_normalized_score(dataset, returns.mean()) == pytest.approx(expected, abs=1e-12)


def test_an_episode_depends_on_its_seed_only_not_on_its_batch():
    seeds = episode_seeds(5, 0)
    for make in (UniformPolicy, lambda batch: coach_policy("FitnessWeights-v1", 0.5, batch)):
        env_id = "FitnessWeights-v0" if make is UniformPolicy else "FitnessWeights-v1"
        whole = rollout(make, env_id, seeds, batch_size=5)
        split = rollout(make, env_id, seeds, batch_size=2)
        assert np.array_equal(whole.actions, split.actions) and np.array_equal(whole.rewards, split.rewards)
        assert np.array_equal(whole.observations, split.observations)


def test_the_coach_with_noise_takes_its_own_action_unless_the_coin_says_otherwise():
    seeds = episode_seeds(6, 0)
    plain = rollout(lambda batch: NoisyPolicy(CoachPolicy(), 0.0, batch), "FitnessWeights-v1", seeds)  # type: ignore[arg-type]
    noisy = rollout(lambda batch: coach_policy("FitnessWeights-v1", 0.5, batch), "FitnessWeights-v1", seeds)
    changed = (plain.actions != noisy.actions).mean()
    assert 0.3 < changed < 0.6  # about half the steps, minus the random picks that equal the coach's action
    assert len(np.unique(plain.actions)) < 10  # the coach's own actions are a few neutral cells


def test_the_expert_beats_random_on_every_trainee():
    anchors = anchor_returns("FitnessWeights-v0", REFERENCE)
    expert, _ = generate_episodes("FitnessWeights-v0", "expert", 3, anchors=anchors)
    random, _ = generate_episodes("FitnessWeights-v0", "random", 3, anchors=anchors)
    assert np.array_equal(expert.seeds, random.seeds)  # the same trainees
    assert (expert.returns > random.returns).all()


def test_a_relative_datasets_path_works_from_the_directory_it_is_relative_to(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MINARI_DATASETS_PATH", "relative/datasets")
    made = make_dataset("FitnessWeights-v0", "random", 2, reference_trainees=REFERENCE)
    assert (tmp_path / "relative" / "datasets" / made.spec.dataset_id / "data" / "main_data.hdf5").is_file()
    assert dataset_episodes(load_dataset(made.spec.dataset_id)).observations.shape == (2, 65, 198)
    assert list(list_datasets()) == [made.spec.dataset_id]


def test_list_and_delete():
    make_dataset("FitnessWeights-v0", "random", 2, reference_trainees=REFERENCE)
    listed = list_datasets()
    assert listed["fitness-weights/v0/random-v0"]["total_episodes"] == 2
    assert listed["fitness-weights/v0/random-v0"]["env_id"] == "FitnessWeights-v0"
    delete_dataset("fitness-weights/v0/random-v0")
    assert list_datasets() == {}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        (dict(env_id="CartPole-v1", behavior="random", n_episodes=2), "env_id"),
        (dict(env_id="FitnessWeights-v0", behavior="sloppy", n_episodes=2), "behavior"),
        (dict(env_id="FitnessWeights-v0", behavior="coach", n_episodes=2), "behavior"),
        (dict(env_id="FitnessWeights-v0", behavior="random", n_episodes=0), "n_episodes"),
        (dict(env_id="FitnessWeights-v0", behavior="random", n_episodes=10**9), "n_episodes"),
        (dict(env_id="FitnessWeights-v0", behavior="medium-expert", n_episodes=1), "n_episodes"),
        (dict(env_id="FitnessWeights-v0", behavior="random", n_episodes=2, seed=-1), "seed"),
        (dict(env_id="FitnessWeights-v0", behavior="random", n_episodes=2, dataset_id="../escape-v0"), "dataset_id"),
        (dict(env_id="FitnessWeights-v0", behavior="random", n_episodes=2, dataset_id="a/./b-v0"), "dataset_id"),
    ],
)
def test_bad_arguments_are_refused_naming_the_field_and_write_nothing(kwargs, field, datasets_path):
    with pytest.raises(DatasetError) as err:
        make_dataset(**kwargs, reference_trainees=REFERENCE)
    assert err.value.field == field
    assert list_datasets() == {}


def test_an_existing_id_is_kept_unless_overwrite_is_asked():
    first = make_dataset("FitnessWeights-v0", "random", 2, reference_trainees=REFERENCE)
    with pytest.raises(DatasetError, match="exists already") as err:
        make_dataset("FitnessWeights-v0", "random", 3, reference_trainees=REFERENCE)
    assert err.value.field == "dataset_id"
    assert load_dataset(first.spec.dataset_id).total_episodes == 2  # untouched
    make_dataset("FitnessWeights-v0", "random", 3, reference_trainees=REFERENCE, overwrite=True)
    assert load_dataset(first.spec.dataset_id).total_episodes == 3


def test_an_unknown_id_lists_the_known_ones():
    make_dataset("FitnessWeights-v0", "random", 2, reference_trainees=REFERENCE)
    with pytest.raises(DatasetError, match="fitness-weights/v0/random-v0") as err:
        load_dataset("fitness-weights/v0/nothing-v0")
    assert err.value.field == "dataset_id"


def test_a_truncated_file_is_refused_clearly(datasets_path):
    dataset = make_dataset("FitnessWeights-v0", "random", 3, reference_trainees=REFERENCE)
    (data_file,) = (datasets_path / dataset.spec.dataset_id / "data").glob("*.hdf5")
    content = data_file.read_bytes()
    data_file.write_bytes(content[: len(content) // 2])
    with pytest.raises(DatasetError, match="damaged or truncated") as err:
        dataset_episodes(load_dataset(dataset.spec.dataset_id))
    assert err.value.field == "dataset"


def test_a_dataset_of_another_env_or_space_is_refused(datasets_path):
    import gymnasium as gym

    dataset = make_dataset("FitnessWeights-v0", "random", 2, reference_trainees=REFERENCE)
    from sb3_ext.offline.datasets import check_dataset

    with pytest.raises(DatasetError, match="not FitnessWeights-v1") as err:
        check_dataset(dataset, "FitnessWeights-v1")
    assert err.value.field == "env_id"
    # a dataset whose stored observation space is not its env's (written by another tool)
    other = minari.create_dataset_from_buffers(
        "other/cartpole-v0",
        [],
        env="FitnessWeights-v0",
        observation_space=gym.spaces.Box(0, 1, (7,)),
        action_space=gym.spaces.Discrete(685),
        ref_min_score=0.0,
        ref_max_score=1.0,
    )
    with pytest.raises(DatasetError) as err:
        check_dataset(other)
    assert err.value.field == "observation_space"
