"""`fitness-weights dataset` and `fitness-weights offline train`: a real dataset store and service folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("minari")

from fitness_weights_api import ModelRegistry
from fitness_weights_api.cli import main
from fitness_weights_api.settings import ServiceSettings
from fitness_weights_api.weights import optimize_weights, predict_weights
from fitness_weights_env import sample_profile

DATASET = "fitness-weights/v1/coach-v0"


@pytest.fixture
def store(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "datasets"))
    return tmp_path


def run(home: Path, *args: str) -> int:
    return main(["--home", str(home / "home"), *args])


def test_make_list_show_train_register_and_serve(store, capsys):
    make = ["dataset", "make", "--env-id", "FitnessWeights-v1", "--behavior", "coach", "--episodes", "4"]
    assert run(store, *make, "--reference-trainees", "2", "--quiet") == 0
    assert f"made {DATASET}: 4 episodes, 256 steps" in capsys.readouterr().out
    assert run(store, "dataset", "list", "--json") == 0
    assert json.loads(capsys.readouterr().out)[DATASET]["behavior"] == "coach"
    assert run(store, "dataset", "show", DATASET, "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["total_episodes"] == 4 and shown["env_id"] == "FitnessWeights-v1"

    train = ["offline", "train", "--algo", "iql", "--dataset", DATASET, "--policy", "AttnCQQXPolicy", "--steps", "5"]
    out = store / "run"
    assert run(store, *train, "--eval-trainees", "2", "--out", str(out), "--register", "--activate", "--quiet") == 0
    assert "registered v1 (active): iql AttnCQQXPolicy on FitnessWeights-v1" in capsys.readouterr().out
    assert (out / "model.zip").is_file() and (out / "evaluation.json").is_file()
    record = ModelRegistry(ServiceSettings(home=store / "home").registry_root).active()
    assert record.metadata["env_id"] == "FitnessWeights-v1" and record.metadata["policy"] == "OfflineAttnPolicy"
    report = json.loads((out / "evaluation.json").read_text())
    assert record.evaluation_score == pytest.approx(report["normalized_score"])
    # the service runs it as it runs a PPO model: optimize through v1's kernel, predict through its heads
    served = ModelRegistry(ServiceSettings(home=store / "home").registry_root).load("v1")
    profile = sample_profile(np.random.default_rng(0))
    optimized = optimize_weights(served, profile, steps=4, seed=0)
    predicted = predict_weights(served, profile, seed=0)
    assert optimized.cq.shape == predicted.cq.shape == (93, 5) and 0 <= predicted.confidence <= 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["dataset", "make", "--behavior", "coach", "--episodes", "2"], "exists on FitnessWeights-v1 only"),
        (["dataset", "show", "fitness-weights/v0/none-v0"], "no local dataset has this id"),
        (["offline", "train", "--dataset", "fitness-weights/v0/none-v0"], "no local dataset has this id"),
        (["offline", "train", "--dataset", DATASET, "--activate"], "activate: needs --register"),
    ],
)
def test_bad_input_exits_2_naming_the_field(store, args, message, capsys):
    assert run(store, *args) == 2
    assert message in capsys.readouterr().err
    assert not (store / "home").exists() or not any((store / "home").rglob("*.safetensors"))
