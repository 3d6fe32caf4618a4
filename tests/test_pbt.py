"""Population-based training (:mod:`sb3_ext.pbt`): the engine on a toy problem, and PPO members."""

import json

import numpy as np
import pytest
import torch as th

from fitness_weights_api.cli import main
from fitness_weights_api.job_config import JobConfig
from fitness_weights_api.tuning_cli import STUDY_FILE, open_storage
from fitness_weights_env import FieldError
from sb3_ext.config import TrainConfig
from sb3_ext.pbt import PBT_SPACE, PPOMember, perturb, population_based_training, sample
from sb3_ext.pbt_processes import MemberHost, MemberProcessError, ProcessMember

TOY_SPACE = {"learning_rate": (1e-3, 1.0)}


class Toy:
    """Noisy gradient steps on x^2: ``x <- x - lr * x + lr * 10 * noise``. A large rate closes in fast, a small one
    settles close: the best rate falls over time (as in Ray's PBT example)."""

    def __init__(self, lr, seed):
        self.hyperparams = {"learning_rate": lr}
        self.x = 100.0
        self.rng = np.random.default_rng(seed)

    def train(self, units):
        lr = self.hyperparams["learning_rate"]
        for _ in range(units):
            self.x += -lr * self.x + lr * 10.0 * self.rng.standard_normal()

    def score(self):
        return -abs(self.x)

    def copy_from(self, other):
        self.x = other.x

    def set_hyperparams(self, hyperparams):
        self.hyperparams = dict(hyperparams)


@pytest.mark.parametrize("seed", range(5))
def test_pbt_beats_the_best_fixed_rate_where_the_best_rate_changes_over_time(seed):
    rates = [1e-3, 1e-2, 1e-1, 1.0]

    def population():
        return [Toy(rate, 10 * seed + i) for i, rate in enumerate(rates)]

    pbt = population_based_training(population(), 30, 10, TOY_SPACE, seed=seed)
    fixed = population_based_training(population(), 30, 10, TOY_SPACE, seed=seed, exploit=False)
    assert max(pbt.final_scores) > max(fixed.final_scores)
    assert all(r["copied_from"] is None for member in fixed.history for r in member)
    schedule = [record["learning_rate"] for record in pbt.history[pbt.best]]
    assert schedule[-1] < 0.1 < max(schedule)  # it went through a large rate and ended on a small one
    assert any(r["copied_from"] is not None for member in pbt.history for r in member)


def test_perturb_stays_in_bounds_and_bad_arguments_are_named():
    rng = np.random.default_rng(0)
    start = {"learning_rate": 0.0099, "ent_coef": 1e-6, "clip_range": 0.2}
    for _ in range(200):
        moved = perturb(start, PBT_SPACE, rng, resample_probability=0.0)
        assert moved["clip_range"] in (pytest.approx(0.16), pytest.approx(0.24))
        assert moved["learning_rate"] <= PBT_SPACE["learning_rate"][1] and moved["ent_coef"] >= 1e-6
    drawn = sample(PBT_SPACE, rng)
    assert all(low <= drawn[name] <= high for name, (low, high) in PBT_SPACE.items())
    for kwargs, field in (
        (dict(members=[Toy(0.1, 0)]), "population"),
        (dict(intervals=0), "intervals"),
        (dict(quantile=0.7), "quantile"),
        (dict(resample_probability=1.5), "resample_probability"),
    ):
        arguments = dict(members=[Toy(0.1, 0), Toy(0.2, 1)], intervals=1, interval=1, space=TOY_SPACE) | kwargs
        with pytest.raises(FieldError) as raised:
            population_based_training(**arguments)
        assert raised.value.field == field


def test_a_ppo_member_copies_weights_and_optimizer_and_takes_its_hyperparameters_at_the_next_rollout():
    base = TrainConfig(timesteps=10**6, n_envs=8, device="cpu", learning_rate_schedule="constant")
    strong, weak = (PPOMember(base, sample(PBT_SPACE, np.random.default_rng(s)), n_trainees=2) for s in (0, 1))
    strong.train(1)
    weak.copy_from(strong)
    for a, b in zip(strong.model.policy.state_dict().values(), weak.model.policy.state_dict().values(), strict=True):
        assert th.equal(a, b)
    assert (
        weak.model.policy.optimizer.state_dict()["state"].keys()
        == strong.model.policy.optimizer.state_dict()["state"].keys()
    )
    weak.set_hyperparams({"learning_rate": 0.004, "ent_coef": 0.01, "clip_range": 0.3})
    weak.train(1)
    assert (weak.model.learning_rate, weak.model.ent_coef, weak.model.clip_range(1.0)) == (0.004, 0.01, 0.3)
    assert weak.model.num_timesteps == 512 and -1.0 < weak.score() < 1.0
    # the copy is the weak member's own: the strong one trains on, the weak one's Adam moments stay as they were
    moments = [state["exp_avg"].clone() for state in weak.model.policy.optimizer.state.values()]
    strong.train(1)
    after = [state["exp_avg"] for state in weak.model.policy.optimizer.state.values()]
    assert all(th.equal(a, b) for a, b in zip(moments, after, strict=True))


@pytest.mark.tuning  # a population of PPO models and a plot: make test-tuning
def test_tune_pbt_writes_the_schedules_the_plot_and_a_config_that_trains(tmp_path, capsys):
    flags = ["--pbt", "--study", "pbt", "--population", "3", "--interval", "1", "--timesteps", "1536", "--n-envs", "8"]
    assert main(["--home", str(tmp_path), "tune", *flags, "--eval-trainees", "2", "--quiet"]) == 0
    folder = tmp_path / "studies" / "pbt"
    report = json.loads((folder / "pbt.json").read_text())
    assert len(report["history"]) == 3 and all(len(member) == 3 for member in report["history"])
    assert sum(r["copied_from"] is not None for member in report["history"] for r in member) == 2  # 1 per exploit
    assert (folder / "pbt_schedules.png").stat().st_size > 10_000
    config = JobConfig.from_dict(json.loads((folder / "best_config.json").read_text()))
    assert config.learning_rate_schedule == "constant" and config.ppo_kwargs["clip_range"] > 0
    assert "| member | trial | final normalized score |" in capsys.readouterr().out


@pytest.mark.tuning  # two populations of PPO models: make test-tuning
def test_members_in_worker_processes_train_as_in_one_process_and_are_trials_of_the_study(tmp_path):
    # 4 members over 2 processes, 4 intervals: copies whose sources and copiers go on training (copied state that
    # stayed shared, within a process or between two, would make the runs differ)
    flags = ["--pbt", "--study", "pbt", "--population", "4", "--interval", "1", "--timesteps", "2048", "--n-envs", "8"]
    flags += ["--eval-trainees", "2", "--quiet"]
    for workers in (1, 2):
        assert main(["--home", str(tmp_path / str(workers)), "tune", *flags, "--workers", str(workers)]) == 0
    one, two = (json.loads((tmp_path / w / "studies" / "pbt" / "pbt.json").read_text()) for w in ("1", "2"))
    assert one["history"] == two["history"]  # each member draws from its own generators, wherever it runs
    import optuna

    storage = open_storage(None, tmp_path / "2" / "studies" / "pbt" / STUDY_FILE)
    trials = optuna.load_study(study_name="pbt", storage=storage).trials
    assert [t.user_attrs["pbt_member"] for t in trials] == [0, 1, 2, 3]
    for trial, history, final in zip(trials, two["history"], two["final_scores"], strict=True):
        assert trial.state == optuna.trial.TrialState.COMPLETE and trial.value == final
        assert list(trial.intermediate_values.values()) == [record["score"] for record in history]
        assert sorted(trial.intermediate_values) == [512, 1024, 1536, 2048]
        assert trial.params == {name: history[0][name] for name in PBT_SPACE}  # the initial draw
        assert trial.user_attrs["schedule"] == history


def test_a_member_process_reports_a_failed_order_by_member_and_a_dead_process():
    host = MemberHost()
    try:
        member = ProcessMember(
            host, TrainConfig(timesteps=1024, n_envs=8, device="cpu"), sample(PBT_SPACE, np.random.default_rng(0))
        )
        with pytest.raises(MemberProcessError, match="member 7: score: KeyError"):
            host.call("score", 7)
        member.train(1)
        assert -1.0 < member.score() < 1.0  # the host goes on after a failed order
        host._process.kill()
        host._process.join()
        with pytest.raises(MemberProcessError, match="exited with -9"):
            member.score()
    finally:
        host.close()


def test_a_copy_between_member_processes_leaves_the_copier_a_state_of_its_own():
    config = TrainConfig(timesteps=10**6, n_envs=8, device="cpu", learning_rate_schedule="constant")
    hosts = [MemberHost(), MemberHost()]
    try:
        source, copier = (ProcessMember(h, config, sample(PBT_SPACE, np.random.default_rng(i)), 2) for i, h in
                          enumerate(hosts))  # fmt: skip
        for member in (source, copier):
            member.train(1)
            member.score()
        copier.copy_from(source)
        copied = copier.host.call("get", copier.index)["policy.optimizer"]["state"]
        source.train(1)
        source.score()  # the source's Adam moments move on; the copier's must not
        now = copier.host.call("get", copier.index)["policy.optimizer"]["state"]
        assert all(th.equal(copied[k]["exp_avg"], now[k]["exp_avg"]) for k in copied)
        moved = source.host.call("get", source.index)["policy.optimizer"]["state"]
        assert any(not th.equal(copied[k]["exp_avg"], moved[k]["exp_avg"]) for k in copied)
    finally:
        for host in hosts:
            host.close()
