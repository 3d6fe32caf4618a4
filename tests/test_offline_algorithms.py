"""Discrete IQL and BC on tiny real datasets: SB3's interface, save/load, the schedule, the logs, bad input."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch as th

pytest.importorskip("minari")

from stable_baselines3.common.callbacks import CheckpointCallback, EvalCallback
from stable_baselines3.common.logger import configure

from fitness_weights_env.errors import FieldError
from sb3_ext.actions import PolicyActions
from sb3_ext.offline.algorithm import returns_reward_scale
from sb3_ext.offline.bc import BC
from sb3_ext.offline.datasets import DatasetError, dataset_episodes, load_dataset, make_dataset
from sb3_ext.offline.iql import IQL
from sb3_ext.vec_env import make_vec_env

TINY = dict(batch_size=32)
ATTENTION = dict(embed_dim=8, n_heads=1, n_latents=2)


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("datasets")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MINARI_DATASETS_PATH", str(root))
        v0 = make_dataset("FitnessWeights-v0", "random", 4, reference_trainees=2).spec.dataset_id
        v1 = make_dataset("FitnessWeights-v1", "coach", 4, reference_trainees=2).spec.dataset_id
        yield {"v0": v0, "v1": v1}


def _rows(path) -> list[dict]:
    with open(path) as file:
        return list(csv.DictReader(file))


def _kwargs(policy: str) -> dict:
    return dict(policy_kwargs=ATTENTION if policy == "AttnCQQXPolicy" else dict(net_arch=[32, 32]), **TINY)


@pytest.mark.parametrize("algo", [IQL, BC])
@pytest.mark.parametrize("policy", ["MlpPolicy", "AttnCQQXPolicy"])
def test_save_and_load_give_the_same_actions_probabilities_and_predictions(algo, policy, datasets, tmp_path):
    model = algo(policy, datasets["v0"], seed=0, **_kwargs(policy)).learn(20)
    path = tmp_path / "model.zip"
    model.save(path)
    loaded = algo.load(path)
    obs = dataset_episodes(load_dataset(datasets["v0"])).observations[:, 3]
    assert np.array_equal(model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])
    with th.no_grad():
        probs = [m.policy.get_distribution(th.as_tensor(obs)).distribution.probs for m in (model, loaded)]
    assert th.equal(*probs)
    seeds = [1, 2, 3, 4]
    assert np.array_equal(PolicyActions(model.policy, seeds)(obs), PolicyActions(loaded.policy, seeds)(obs))
    if policy == "AttnCQQXPolicy":
        for a, b in zip(model.policy.predict_weights(obs), loaded.policy.predict_weights(obs), strict=True):
            assert np.array_equal(a, b)
    else:
        assert not hasattr(loaded.policy, "predict_weights")
    # the normalization is the dataset's, and travels with the weights
    assert th.equal(model.policy.obs_mean, loaded.policy.obs_mean)
    assert model.policy.obs_std.min() > 0 and not th.all(model.policy.obs_mean == 0)
    # set_parameters of one into a fresh model gives the same actions
    fresh = algo(policy, datasets["v0"], seed=1, **_kwargs(policy))
    fresh.set_parameters(model.get_parameters())
    assert np.array_equal(model.predict(obs, deterministic=True)[0], fresh.predict(obs, deterministic=True)[0])


def test_bc_has_no_critics_and_iql_has_twin_q_with_targets(datasets):
    bc = BC("MlpPolicy", datasets["v0"], **_kwargs("MlpPolicy"))
    iql = IQL("MlpPolicy", datasets["v0"], **_kwargs("MlpPolicy"))
    assert not hasattr(bc.policy, "q1") and not hasattr(bc.policy, "value")
    for name in ("q1", "q2", "q1_target", "q2_target", "value"):
        assert hasattr(iql.policy, name)
    assert all(not p.requires_grad for p in iql.policy.q1_target.parameters())
    q1, q2 = iql.policy.q_values(th.zeros(3, 198))
    assert q1.shape == q2.shape == (3, 685) and not th.equal(q1, q2)  # two independent initializations


def test_the_targets_follow_the_online_networks_by_tau(datasets):
    model = IQL("MlpPolicy", datasets["v0"], tau=0.5, seed=0, **_kwargs("MlpPolicy"))
    online, target = model.policy.q1, model.policy.q1_target
    before = [p.detach().clone() for p in target.parameters()]
    model.learn(1)
    for old, new, live in zip(before, target.parameters(), online.parameters(), strict=True):
        assert th.allclose(new, 0.5 * old + 0.5 * live)


def test_the_logs_hold_the_schedule_the_losses_and_the_weight_spread(datasets, tmp_path):
    model = IQL("MlpPolicy", datasets["v0"], learning_rate=1e-3, seed=0, **_kwargs("MlpPolicy"))
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(60, log_interval=10)
    rows = _rows(tmp_path / "progress.csv")
    assert len(rows) == 6
    rates = [float(row["train/learning_rate"]) for row in rows]
    assert rates[0] > rates[-1] and rates == sorted(rates, reverse=True)
    # the actor's rate at the last step is 1% of the start or less (cosine to 0); Q and V keep theirs
    assert model.policy.optimizer.param_groups[0]["lr"] <= 0.01 * 1e-3
    assert model.policy.critic_optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)
    for key in ("value_loss", "q_loss", "actor_loss", "weight_mean", "weight_std", "weight_max", "weight_clipped"):
        assert np.isfinite(float(rows[-1][f"train/{key}"])), key
    assert float(rows[-1]["train/reward_scale"]) == pytest.approx(
        returns_reward_scale(dataset_episodes(load_dataset(datasets["v0"])))
    )


def test_the_attention_variant_trains_its_prediction_heads(datasets, tmp_path):
    model = IQL("AttnCQQXPolicy", datasets["v1"], seed=0, **_kwargs("AttnCQQXPolicy"))
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(4, log_interval=2)
    row = _rows(tmp_path / "progress.csv")[-1]
    assert np.isfinite(float(row["train/cq_loss"])) and 0 <= float(row["train/qx_accuracy"]) <= 1
    cq, qx, confidence = model.policy.predict_weights(np.full(199, 0.5, dtype=np.float32))
    assert cq.shape == (93, 5) and qx.shape == (5, 44) and 0 <= confidence <= 1


def test_sb3_callbacks_and_the_progress_bar_work(datasets, tmp_path):
    env = make_vec_env("FitnessWeights-v0", n_envs=2, seed=0)
    model = BC("MlpPolicy", datasets["v0"], env=env, **_kwargs("MlpPolicy"))
    evaluation = EvalCallback(
        make_vec_env("FitnessWeights-v0", n_envs=2, seed=1),
        eval_freq=5,
        n_eval_episodes=2,
        log_path=str(tmp_path),
        verbose=0,
    )
    checkpoints = CheckpointCallback(save_freq=5, save_path=str(tmp_path), name_prefix="bc")
    model.learn(10, callback=[evaluation, checkpoints], progress_bar=True)
    assert model.num_timesteps == 10
    assert list(np.load(tmp_path / "evaluations.npz")["timesteps"]) == [5, 10]
    assert np.isfinite(evaluation.last_mean_reward)
    assert sorted(p.name for p in tmp_path.glob("bc_*.zip")) == ["bc_10_steps.zip", "bc_5_steps.zip"]


def test_a_dataset_whose_spaces_are_not_the_envs_is_refused(datasets):
    with pytest.raises(DatasetError) as err:
        IQL("MlpPolicy", datasets["v1"], env=make_vec_env("FitnessWeights-v0", n_envs=1))
    assert err.value.field == "observation_space"


def test_an_unknown_dataset_is_refused_with_the_known_ones(datasets):
    with pytest.raises(DatasetError, match=datasets["v0"]) as err:
        IQL("MlpPolicy", "fitness-weights/v0/unknown-v0")
    assert err.value.field == "dataset_id"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        (dict(expectile=1.0), "expectile"),
        (dict(temperature=-1.0), "temperature"),
        (dict(max_weight=0.0), "max_weight"),
        (dict(tau=0.0), "tau"),
        (dict(batch_size=0), "batch_size"),
        (dict(gamma=1.5), "gamma"),
        (dict(reward_scale="huge"), "reward_scale"),
        (dict(cq_coef=-1.0), "cq_coef"),
        (dict(policy_kwargs=dict(net_arch=[0])), "net_arch"),
    ],
)
def test_bad_arguments_name_their_field(kwargs, field, datasets):
    with pytest.raises(FieldError) as err:
        IQL("MlpPolicy", datasets["v0"], **kwargs)
    assert err.value.field == field


def test_learn_without_a_dataset_says_so(datasets, tmp_path):
    model = BC("MlpPolicy", datasets["v0"], **_kwargs("MlpPolicy"))
    model.save(tmp_path / "bc.zip")
    loaded = BC.load(tmp_path / "bc.zip")
    with pytest.raises(FieldError, match="no dataset") as err:
        loaded.learn(1)
    assert err.value.field == "dataset"
    loaded.set_dataset(datasets["v0"])
    loaded.learn(2)
    assert loaded.num_timesteps == 2


@pytest.mark.parametrize("policy", ["MlpPolicy", "AttnCQQXPolicy"])
def test_the_taken_actions_q_is_the_full_qs_entry(policy, datasets):
    model = IQL(policy, datasets["v0"], seed=0, **_kwargs(policy)).learn(3)
    obs = th.as_tensor(dataset_episodes(load_dataset(datasets["v0"])).observations[:, 5])
    actions = th.tensor([0, 464, 465, 684])  # the first and last CQ cells, the first and last QX cells
    with th.no_grad():
        for target in (False, True):
            full = model.policy.q_values(obs, target=target)
            taken = model.policy.q_taken(obs, actions, target=target)
            for q, q_a in zip(full, taken, strict=True):
                th.testing.assert_close(q_a, q.gather(1, actions[:, None]).squeeze(1), rtol=1e-5, atol=1e-5)
