import csv
import math
import queue

import gymnasium as gym
import pytest
import stable_baselines3 as sb3
from stable_baselines3.common.logger import configure

import fitness_weights_env  # noqa: F401
from sb3_ext import PPO
from sb3_ext.live_params import LiveParams, ParamChange, check_change
from sb3_ext.metrics_writer import MetricsWriter
from sb3_ext.schedules import CosineSchedule, ScaledSchedule

SMALL = {"embed_dim": 16, "n_heads": 2, "n_latents": 2, "aux_lr_multiplier": 3.0}


def _model(**kwargs):
    kwargs.setdefault("policy_kwargs", SMALL)
    return PPO(
        "AttnCQQXPolicy",
        gym.make("FitnessWeights-v0"),
        n_steps=64,
        batch_size=32,
        n_epochs=1,
        seed=0,
        device="cpu",
        **kwargs,
    )


def _rows(folder):
    with open(folder / "progress.csv", newline="") as file:
        return list(csv.DictReader(file))


def test_a_change_takes_effect_at_the_next_rollout_boundary_and_the_update_uses_it(tmp_path):
    model = _model()
    model.set_logger(configure(str(tmp_path), ["csv"]))
    changes: queue.Queue = queue.Queue()
    callback = LiveParams(changes)

    def mid_second_rollout(model):
        if model.num_timesteps == 100:
            changes.put({"name": "learning_rate", "value": 1e-3, "request_id": "r1"})
            changes.put(ParamChange("clip_range", 0.1))
            changes.put({"name": "ent_coef", "value": 0.02})
            changes.put({"name": "n_epochs", "value": 2})
            changes.put({"name": "cq_coef", "value": 5.0})

    model.learn(256, callback=[callback, _StepHook(mid_second_rollout)])
    acks = {ack.name: ack for ack in callback.acks}
    assert set(acks) == {"learning_rate", "clip_range", "ent_coef", "n_epochs", "cq_coef"}
    assert all(ack.applied and ack.timestep == 128 for ack in acks.values())  # the end of the second rollout
    assert acks["learning_rate"].previous == pytest.approx(3e-4) and acks["learning_rate"].request_id == "r1"
    assert (model.ent_coef, model.n_epochs, model.cq_coef) == (0.02, 2, 5.0)
    rows = {int(r["time/total_timesteps"]): r for r in _rows(tmp_path)}
    # SB3 dumps before each update, so a row's train/ values are the previous update's: 128's is the first update
    # (before the change), 192's the second (right after the boundary at 128)
    assert float(rows[128]["train/learning_rate"]) == pytest.approx(3e-4)
    assert float(rows[128]["train/clip_range"]) == pytest.approx(0.2)
    for step in (192, 256):
        assert float(rows[step]["train/learning_rate"]) == pytest.approx(1e-3)
        assert float(rows[step]["train/clip_range"]) == pytest.approx(0.1)
    assert float(rows[128]["live/ent_coef"]) == pytest.approx(0.02)
    # the optimizer's groups follow, each keeping its multiplier (the aux heads' 3x)
    assert sorted(g["lr"] for g in model.policy.optimizer.param_groups) == pytest.approx([1e-3, 3e-3])


class _StepHook(sb3.common.callbacks.BaseCallback):
    def __init__(self, hook):
        super().__init__()
        self.hook = hook

    def _on_step(self):
        self.hook(self.model)
        return True


def test_an_lr_scale_keeps_the_schedule_shape_and_the_aux_multiplier():
    model = _model(learning_rate=CosineSchedule(1e-3, 0.0))
    callback = LiveParams([{"name": "lr_scale", "value": 0.5}, {"name": "lr_scale", "value": 0.5}])
    model.learn(128, callback=callback)
    assert all(ack.applied for ack in callback.acks)
    schedule = model.lr_schedule
    assert schedule(1.0) == pytest.approx(2.5e-4) and schedule(0.5) == pytest.approx(1.25e-4)
    assert isinstance(model.learning_rate, ScaledSchedule) and model.learning_rate.factor == 0.25
    groups = sorted(g["lr"] for g in model.policy.optimizer.param_groups)
    assert groups[1] == pytest.approx(3 * groups[0])


def test_changes_survive_save_and_load(tmp_path):
    model = _model()
    callback = LiveParams(
        lambda: [
            {"name": "learning_rate", "value": 7e-4},
            {"name": "clip_range", "value": 0.3},
            {"name": "target_kl", "value": None},
            {"name": "qx_coef", "value": 9.0},
        ]
    )
    model.learn(64, callback=callback)
    model.save(tmp_path / "m.zip")
    loaded = PPO.load(tmp_path / "m.zip", device="cpu")
    assert loaded.learning_rate == 7e-4 and loaded.lr_schedule(0.3) == pytest.approx(7e-4)
    assert loaded.clip_range(0.9) == pytest.approx(0.3)
    assert loaded.target_kl is None and loaded.qx_coef == 9.0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": "n_steps", "value": 128}, "n_steps"),
        ({"name": "batch_size", "value": 16}, "batch_size"),
        ({"name": "n_envs", "value": 4}, "n_envs"),
        ({"name": "gamma", "value": 0.9}, "name"),
        ({"name": "ent_coef", "value": -0.1}, "ent_coef"),
        ({"name": "learning_rate", "value": math.nan}, "learning_rate"),
        ({"name": "learning_rate", "value": 2.0}, "learning_rate"),
        ({"name": "clip_range", "value": 0}, "clip_range"),
        ({"name": "n_epochs", "value": 2.5}, "n_epochs"),
        ({"name": "n_epochs", "value": True}, "n_epochs"),
        ({"name": "vf_coef", "value": "0.5"}, "vf_coef"),
        ({"name": "max_grad_norm", "value": 0.0}, "max_grad_norm"),
        ({"name": "ent_coef"}, "change"),
        ({"name": "ent_coef", "value": 0.1, "extra": 1}, "change"),
        ("ent_coef=0.1", "change"),
    ],
)
def test_an_invalid_change_is_refused_naming_the_field_and_nothing_changes(change, field):
    model = _model()
    before = {name: getattr(model, name) for name in ("ent_coef", "n_epochs", "vf_coef", "max_grad_norm", "n_steps")}
    callback = LiveParams([change])
    model.learn(64, callback=callback)
    (ack,) = callback.acks
    assert not ack.applied and ack.error.startswith(f"{field}: ")
    assert {name: getattr(model, name) for name in before} == before
    assert model.lr_schedule(1.0) == pytest.approx(3e-4) and model.clip_range(1.0) == pytest.approx(0.2)


def test_sb3s_own_ppo_takes_its_parameters_and_refuses_the_aux_coefficients():
    model = sb3.PPO("MlpPolicy", gym.make("FitnessWeights-v0"), n_steps=64, batch_size=32, n_epochs=1, device="cpu")
    callback = LiveParams([{"name": "ent_coef", "value": 0.01}, {"name": "cq_coef", "value": 1.0}])
    model.learn(64, callback=callback)
    assert callback.acks[0].applied and model.ent_coef == 0.01
    assert not callback.acks[1].applied and callback.acks[1].error == "cq_coef: is not a parameter of PPO"


def test_check_change_is_the_same_rule_without_a_model():
    assert check_change("n_epochs", 3) == 3 and check_change("target_kl", None) is None
    assert check_change("ent_coef", 0) == 0.0
    with pytest.raises(ValueError, match=r"^name: must be one of"):
        check_change("gamma", 0.9)


def test_the_metrics_writer_gets_what_tensorboard_gets_at_every_dump(tmp_path):
    model = _model()
    dumps: list[tuple[int, dict[str, float]]] = []
    logger = configure(str(tmp_path), ["csv"])
    logger.output_formats.append(MetricsWriter(lambda step, metrics: dumps.append((step, metrics))))
    logger.record("only/stdout", 1.0, exclude="tensorboard")
    model.set_logger(logger)
    model.learn(192)
    rows = _rows(tmp_path)
    assert [step for step, _ in dumps] == [int(r["time/total_timesteps"]) for r in rows] == [64, 128, 192]
    for (_, metrics), row in zip(dumps, rows, strict=True):
        assert "train/policy_gradient_loss" in metrics or "time/fps" in metrics
        assert "only/stdout" not in metrics
        for key, value in metrics.items():
            if row.get(key):
                assert value == pytest.approx(float(row[key]))
    prefixed: list[dict[str, float]] = []
    writer = MetricsWriter(lambda _step, metrics: prefixed.append(metrics), prefixes=("train/",))
    writer.write({"train/a": 1, "time/b": 2.0, "text": "x"}, {}, 5)
    assert prefixed == [{"train/a": 1.0}]
