"""``fitness-weights tune`` and :mod:`sb3_ext.tuning`: real Optuna studies of tiny trials, in a journal file."""

import json
import os
import subprocess
import sys
import time

import optuna
import pytest

from fitness_weights_api.cli import build_parser, main
from fitness_weights_api.job_config import JobConfig
from fitness_weights_api.tuning_cli import joining_seed, open_storage, redact_url
from fitness_weights_env import FieldError
from sb3_ext.config import TrainConfig
from sb3_ext.tuning import SEARCH_SPACE, check_space, load_search_space, make_pruner, make_sampler, objective

TINY = ["--timesteps", "1024", "--n-envs", "8", "--eval-trainees", "2", "--eval-rollouts", "1"]


@pytest.mark.tuning  # four trials of PPO: make test-tuning
def test_a_tiny_study_finishes_and_its_best_config_trains(tmp_path, capsys):
    assert main(["--home", str(tmp_path), "tune", "--study", "tiny", "--trials", "4", *TINY]) == 0
    out = capsys.readouterr().out
    folder = tmp_path / "studies" / "tiny"
    study = optuna.load_study(study_name="tiny", storage=open_storage(None, folder / "journal.log"))
    assert len(study.trials) == 4 and all(t.state.is_finished() for t in study.trials)
    best = json.loads((folder / "best_config.json").read_text())
    assert best == study.best_trial.user_attrs["config"] and f"| {study.best_trial.number} | complete |" in out
    for name in ("learning_rate", "ent_coef", "batch_size", "gamma", "embed_dim", "cq_coef"):
        assert name in study.best_trial.params
    assert best["ppo_kwargs"]["batch_size"] == study.best_trial.params["batch_size"]
    assert best["policy_kwargs"]["embed_dim"] == study.best_trial.params["embed_dim"]
    # what `fitness-weights train --config` builds from it
    args = build_parser().parse_args(["train", "--config", str(folder / "best_config.json"), "--timesteps", "2048"])
    from fitness_weights_api.cli import _job_config

    config = _job_config(args)
    assert isinstance(config, JobConfig) and config.timesteps == 2048
    assert config.learning_rate == best["learning_rate"] and config.ppo_kwargs == best["ppo_kwargs"]


def test_a_pruned_trial_stops_at_its_first_report():
    base = TrainConfig(timesteps=4096, n_envs=8, device="cpu")
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=2.0))  # prunes all
    run = objective(base, {"learning_rate": SEARCH_SPACE["learning_rate"]}, n_trainees=2, eval_rollouts=1)
    study.optimize(run, n_trials=1)
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert list(trial.intermediate_values) == [512]  # one rollout of 8 x 64 steps, of the 8 it had


@pytest.mark.tuning  # processes that import torch, a training job: make test-tuning, not the default run
def test_two_worker_processes_share_one_study_lose_no_trial_and_register_the_best(tmp_path):
    command = [sys.executable, "-m", "fitness_weights_api.cli", "--home", str(tmp_path), "tune", "--study", "shared"]
    done = subprocess.run(
        [*command, "--workers", "2", "--trials", "5", "--quiet", "--register", "--activate", *TINY],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    study = optuna.load_study(study_name="shared", storage=open_storage(None, tmp_path / "studies/shared/journal.log"))
    assert sorted(t.number for t in study.trials) == list(range(5))
    assert all(t.state.is_finished() for t in study.trials)
    assert len({t.user_attrs["worker"] for t in study.trials}) == 2  # both processes ran trials
    configs = [json.dumps(t.user_attrs["config"], sort_keys=True) for t in study.trials]
    assert len(set(configs)) == 5  # the two samplers drew different configurations
    # --register trained the best config as a job and registered it, active
    from fitness_weights_api import ModelRegistry

    (version,) = ModelRegistry(tmp_path / "registry").versions()
    assert (
        version.active
        and version.training_config["learning_rate"] == study.best_trial.user_attrs["config"]["learning_rate"]
    )
    assert "registered v1 (active)" in done.stdout.decode()
    # ... and linked the trial to its job, which the dashboard opens from the study's trial list
    from fitness_weights_api.studies import study_detail

    (job_id,) = study.user_attrs["jobs"].values()
    assert study.user_attrs["jobs"] == {str(study.best_trial.number): job_id}
    assert (tmp_path / "jobs" / job_id).is_dir()
    trials = {t["number"]: t for t in study_detail(tmp_path, "shared")["trial_details"]}
    assert trials[study.best_trial.number]["job_id"] == job_id
    assert [t["job_id"] for n, t in trials.items() if n != study.best_trial.number] == [None] * 4


@pytest.mark.parametrize(
    ("space", "field"),
    [
        ({"learning_rat": {"type": "float", "low": 1e-4, "high": 1e-2}}, "learning_rat"),
        ({"gamma": {"type": "beta"}}, "gamma.type"),
        ({"gamma": {"type": "float", "low": 0.9, "high": 0.8}}, "gamma.high"),
        ({"ent_coef": {"type": "float", "low": 0.0, "high": 0.1, "log": True}}, "ent_coef.log"),
        ({"n_epochs": {"type": "categorical", "choices": []}}, "n_epochs.choices"),
        ({"n_epochs": {"type": "categorical", "choices": [1], "step": 2}}, "n_epochs.step"),
        ({}, "space"),
    ],
)
def test_a_bad_search_space_names_the_field(space, field):
    with pytest.raises(FieldError) as raised:
        check_space(space)
    assert raised.value.field == field


def test_search_space_files_and_bad_names_and_storages_are_refused_clearly(tmp_path):
    good = tmp_path / "space.yaml"
    good.write_text(
        "learning_rate: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}\nn_epochs:\n  type: categorical\n"
        "  choices: [1, 5]\n"
    )
    assert load_search_space(good)["n_epochs"] == {"type": "categorical", "choices": [1, 5]}
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("momentum: {type: float, low: 0.1, high: 0.9}\n")
    for path, field in ((unknown, "momentum"), (tmp_path / "missing.yaml", "space")):
        with pytest.raises(FieldError) as raised:
            load_search_space(path)
        assert raised.value.field == field
    (tmp_path / "bad.yaml").write_text("learning_rate: [unclosed\n")
    with pytest.raises(FieldError, match="not valid YAML"):
        load_search_space(tmp_path / "bad.yaml")
    with pytest.raises(FieldError, match="sampler"):
        make_sampler("cmaes")
    with pytest.raises(FieldError, match="pruner"):
        make_pruner("hyperband")
    url = "postgresql://tuner:s3cret@127.0.0.1:1/optuna"
    with pytest.raises(FieldError) as raised:
        open_storage(url, tmp_path / "unused.log")
    assert raised.value.field == "storage" and "postgresql://tuner:***@127.0.0.1:1/optuna" in str(raised.value)
    assert "s3cret" not in str(raised.value) and redact_url(url) == "postgresql://tuner:***@127.0.0.1:1/optuna"
    with pytest.raises(FieldError, match="storage"):
        open_storage("redis://127.0.0.1/0", tmp_path / "unused.log")


def test_the_command_refuses_bad_arguments_before_creating_anything(tmp_path, capsys):
    for extra, field in (
        (["--sampler", "grid"], "sampler"),
        (["--pruner", "asha"], "pruner"),
        (["--study", "../escape"], "study"),
        (["--trials", "0"], "trials"),
        (["--eval-trainees", "1"], "n_trainees"),
        (["--space", str(tmp_path / "none.yaml")], "space"),
    ):
        assert main(["--home", str(tmp_path / "home"), "tune", *TINY, *extra]) == 2, extra
        assert f"error: {field}:" in capsys.readouterr().err, extra
    assert not (tmp_path / "home" / "studies").exists()


@pytest.mark.tuning  # a real optuna-dashboard server: make test-tuning
def test_tune_dashboard_serves_the_study_on_loopback(tmp_path):
    import httpx
    from conftest import free_port

    journal = tmp_path / "studies" / "seen" / "journal.log"
    study = optuna.create_study(study_name="seen", storage=open_storage(None, journal), direction="maximize")
    study.optimize(lambda trial: trial.suggest_float("x", 0.0, 1.0), n_trials=3)
    port = free_port()
    command = [sys.executable, "-m", "fitness_weights_api.cli", "--home", str(tmp_path), "tune", "dashboard"]
    server = subprocess.Popen([*command, "--study", "seen", "--port", str(port)], stdout=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/api/studies", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and server.poll() is None, "the dashboard did not start"
                time.sleep(0.3)
        assert answer.status_code == 200
        (listed,) = answer.json()["study_summaries"]
        assert listed["study_name"] == "seen"
    finally:
        server.terminate()
        server.wait(10)
    assert main(["--home", str(tmp_path), "tune", "dashboard", "--study", "unknown"]) == 2


def test_the_service_lists_the_homes_studies_to_a_read_token(api_apps, tmp_path):
    from conftest import make_token

    home = tmp_path / "home"
    study = optuna.create_study(
        study_name="listed",
        storage=open_storage(None, home / "studies" / "listed" / "journal.log"),
        direction="maximize",
    )

    def objective(trial):
        x = trial.suggest_float("x", 0.0, 1.0)
        if trial.number == 1:
            raise optuna.TrialPruned()
        return x

    study.optimize(objective, n_trials=3)
    api = api_apps(home)
    assert api.client.get("/studies").status_code == 401
    (listed,) = api.client.get("/studies", headers={"Authorization": f"Bearer {make_token(home, 'read')}"}).json()
    assert listed["study"] == "listed" and listed["trials"] == 3 and listed["states"] == {"complete": 2, "pruned": 1}
    assert listed["best_value"] == study.best_value and listed["best_params"] == study.best_params


def test_a_studys_trials_come_with_their_curves_to_a_read_token_and_bad_names_are_refused(api_apps, tmp_path):
    from conftest import make_token

    from fitness_weights_api.studies import MAX_CURVE_POINTS

    home = tmp_path / "home"
    study = optuna.create_study(
        study_name="curves",
        storage=open_storage(None, home / "studies" / "curves" / "journal.log"),
        direction="maximize",
    )

    def objective(trial):
        x = trial.suggest_float("x", 0.0, 1.0)
        for step in range(300 if trial.number == 0 else 3):
            trial.report(x * step, step * 512)
        if trial.number == 2:
            raise optuna.TrialPruned()
        return x

    study.optimize(objective, n_trials=3)
    api = api_apps(home)
    read = {"Authorization": f"Bearer {make_token(home, 'read')}"}
    assert api.client.get("/studies/curves").status_code == 401
    detail = api.client.get("/studies/curves", headers=read).json()
    assert detail["study"] == "curves" and detail["states"] == {"complete": 2, "pruned": 1}
    long, short, pruned = detail["trial_details"]
    assert [t["state"] for t in (long, short, pruned)] == ["complete", "complete", "pruned"]
    assert len(long["curve"]) == MAX_CURVE_POINTS and long["curve"][-1] == [
        299 * 512,
        study.trials[0].params["x"] * 299,
    ]
    assert short["curve"] == [[s * 512, study.trials[1].params["x"] * s] for s in range(3)]
    assert (
        pruned["value"] == pruned["curve"][-1][1]
        and short["params"] == study.trials[1].params
        and short["job_id"] is None
    )
    missing = api.client.get("/studies/nothing-here", headers=read)
    assert missing.status_code == 404 and missing.json()["detail"] == "unknown study"
    for bad in ("..", ".hidden", "a" * 65, "semi;colon"):
        assert api.client.get(f"/studies/{bad}", headers=read).status_code in (404, 422), bad


def test_processes_joining_a_study_draw_apart_whatever_their_order():
    # worker 1 joins an empty study, worker 0 one trial later: with seed + trials both would sample alike
    seeds = {joining_seed(seed, trials) for seed in range(4) for trials in range(50)}
    assert len(seeds) == 200 and joining_seed(1, 0) != joining_seed(0, 1)
    assert joining_seed(3, 7) == joining_seed(3, 7)  # a process that joins again draws as before


def test_the_median_pruner_judges_a_trial_only_after_its_warmup():
    study = optuna.create_study(direction="maximize", pruner=make_pruner("median", warmup_steps=2048))
    for value in (0.5, 0.6, 0.7):
        trial = study.ask()
        for step in (1024, 2048, 3072):
            trial.report(value, step)
        study.tell(trial, value)
    late = study.ask()
    late.report(0.0, 1024)
    assert not late.should_prune()  # in the warmup: a flat start is not judged
    late.report(0.0, 2048)
    assert late.should_prune()
    with pytest.raises(FieldError) as raised:
        make_pruner("median", warmup_steps=-1)
    assert raised.value.field == "pruner_warmup"
