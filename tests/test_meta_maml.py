"""MAML (:class:`sb3_ext.meta.MAML`) on a tiny configuration: learn, adapt, save and load, bad input."""

import csv

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import configure

from fitness_weights_env import FieldError
from sb3_ext.actions import PolicyActions
from sb3_ext.evaluate import held_out_profiles
from sb3_ext.meta.maml import MAML

TINY = {"meta_batch_size": 2, "episodes_per_task": 2, "inner_lr": 0.5, "policy_kwargs": {"net_arch": [16]}}


class Count(BaseCallback):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def _on_step(self):
        self.calls += 1
        return True


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("maml")
    model = MAML("MlpPolicy", outer="ppo-clip", outer_epochs=2, **TINY)
    model.set_logger(configure(str(folder), ["csv"]))
    before = {n: p.detach().clone() for n, p in model.parameters().items()}
    callback = Count()
    model.learn(2, callback=callback, progress_bar=True)
    model.logger.close()
    return model, before, callback, folder


def test_learning_moves_the_initialization_and_reports_each_iteration(trained):
    model, before, callback, folder = trained
    assert callback.calls == 2 and model.iterations == 2 and model.num_timesteps == 2 * 2 * (2 * 2 * 64)
    assert any(not th.equal(before[n], p) for n, p in model.parameters().items())
    rows = list(csv.DictReader((folder / "progress.csv").open()))
    assert [row["time/iterations"] for row in rows] == ["1", "2"]
    assert all(float(row["meta/rollout_s"]) > 0 and float(row["meta/gradient_s"]) > 0 for row in rows)
    assert all(0.0 < float(row["meta/post_update_return"]) < 1.0 for row in rows)
    assert model.actor_names and all(not name.startswith("policy.value_net") for name in model.actor_names)


def test_adapting_to_a_trainee_changes_the_actor_only_and_zero_steps_change_nothing(trained):
    model = trained[0]
    trainee = held_out_profiles(1)[0]
    adapted = model.adapt(trainee, steps=2, episodes=2, seed=5)
    same = model.adapt(trainee, steps=0)
    original = dict(model.policy.named_parameters())
    moved = {name for name, value in adapted.named_parameters() if not th.equal(value, original[name])}
    assert moved and {f"policy.{name}" for name in moved} <= set(model.actor_names)  # the critic stays as it is
    assert "action_net.weight" in moved
    assert all(th.equal(v, original[n]) for n, v in same.named_parameters())
    again = model.adapt(trainee, steps=2, episodes=2, seed=5)
    assert all(th.equal(v, dict(again.named_parameters())[n]) for n, v in adapted.named_parameters())  # seeded
    actions = PolicyActions(adapted)(np.full((3, 199), 0.5, dtype=np.float32))
    assert actions.shape == (3,)


def test_save_and_load_round_trip_the_weights_and_the_adaptation(trained, tmp_path):
    model = trained[0]
    model.save(tmp_path / "maml.zip")
    loaded = MAML.load(tmp_path / "maml.zip")
    assert loaded.settings == model.settings and loaded.iterations == model.iterations
    for (name, a), b in zip(model.policy.state_dict().items(), loaded.policy.state_dict().values(), strict=True):
        assert th.equal(a, b), name
    trainee = held_out_profiles(1)[0]
    one, two = (m.adapt(trainee, steps=1, episodes=2, seed=1) for m in (model, loaded))
    assert all(th.equal(a, b) for a, b in zip(one.parameters(), two.parameters(), strict=True))


def test_bad_arguments_and_files_are_named(tmp_path):
    for kwargs, field in (
        ({"policy": "CnnPolicy"}, "policy"),
        ({"outer": "trpo"}, "outer"),
        ({"inner_lr": 0.0}, "inner_lr"),
        ({"meta_batch_size": 0}, "meta_batch_size"),
        ({"gamma": 1.5}, "gamma"),
        ({"tasks": "FitnessWeights-v7"}, "env_id"),
    ):
        with pytest.raises(FieldError) as raised:
            MAML(**{"policy": "MlpPolicy", **kwargs})
        assert raised.value.field == field
    model = MAML("MlpPolicy", **TINY)
    model.save(tmp_path / "good.zip")
    (tmp_path / "truncated.zip").write_bytes((tmp_path / "good.zip").read_bytes()[:200])
    (tmp_path / "text.zip").write_text("not a zip")
    for name in ("truncated.zip", "text.zip", "missing.zip"):
        with pytest.raises(FieldError) as raised:
            MAML.load(tmp_path / name)
        assert raised.value.field == "path" and str(tmp_path) not in str(raised.value)
