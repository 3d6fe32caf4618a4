"""The training example end to end, as a user runs it (a subprocess, tiny budget)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # tiny models: one torch thread, as the in-process tests


# SB3's own VecEnvs are SB3's to test: by default only the batched one (the example's default) runs here
@pytest.mark.parametrize(
    "vectorization",
    ["batched", pytest.param("dummy", marks=pytest.mark.slow), pytest.param("subproc", marks=pytest.mark.slow)],
)
def test_train_ppo_runs_with_every_vectorization(vectorization, tmp_path):
    command = [sys.executable, str(ROOT / "examples" / "train_ppo.py"), "--timesteps", "256", "--n-envs", "2"]
    command += ["--vec", vectorization, "--device", "cpu", "--out", str(tmp_path), "--eval-trainees", "3"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False, env=ENV)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Normalized score" in result.stdout
    report = json.loads((tmp_path / "evaluation.json").read_text())
    assert report["extra"]["vectorization"] == vectorization and report["extra"]["n_envs"] == 2
    assert (tmp_path / "model.zip").stat().st_size > 0


def test_train_ppo_rejects_an_unknown_vectorization(tmp_path):
    command = [sys.executable, str(ROOT / "examples" / "train_ppo.py"), "--vec", "threads", "--out", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False, env=ENV)
    assert result.returncode == 2 and "--vec" in result.stderr


def test_weight_service_example_registers_and_answers(tiny_models, tmp_path):
    command = [sys.executable, str(ROOT / "examples" / "weight_service.py"), str(tiny_models["attn0"])]
    command += ["--home", str(tmp_path / "service")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False, env=ENV)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "registered v1" in result.stdout and "| 3000 m run |" in result.stdout and "| Pull-ups |" in result.stdout
