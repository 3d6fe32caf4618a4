"""The training example end to end, as a user runs it (a subprocess, tiny budget)."""

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from fitness_weights_api.cli import main as cli_main
from fitness_weights_api.plots import CURVE_FILE, read_curve, write_curve

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
    if vectorization == "batched":  # the pictures, and the CLI that redraws them
        _check_pictures(tmp_path, expect_predicted=True)
        again = tmp_path / "again"
        assert cli_main(["plot", str(tmp_path), "--out", str(again)]) == 0
        _check_pictures(again, expect_predicted=True)


def _check_pictures(folder, expect_predicted):
    points = read_curve(folder / CURVE_FILE) if (folder / CURVE_FILE).exists() else None
    if points is not None:
        assert len(points) >= 2 and [step for step, _ in points] == sorted(step for step, _ in points)
        assert all(25.0 < value < 45.0 for _, value in points)  # v0's 64-step returns
    sizes = {}
    for name in ("learning_curve.png", "weights.png"):
        data = (folder / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        sizes[name] = struct.unpack(">II", data[16:24])  # width, height
    assert sizes["learning_curve.png"] == (770, 440)
    width, height = sizes["weights.png"]
    assert width == 1600 and height == (760 if expect_predicted else 380)  # two rows: optimized and predicted


def test_plot_refuses_what_it_cannot_draw(tmp_path, capsys):
    assert cli_main(["plot", str(tmp_path / "missing")]) == 2
    assert "neither a run folder nor a job id" in capsys.readouterr().err
    assert cli_main(["plot", str(tmp_path)]) == 2
    assert "run: has no learning_curve.csv" in capsys.readouterr().err
    (tmp_path / CURVE_FILE).write_text("step,reward\n1,2\n")
    assert cli_main(["plot", str(tmp_path)]) == 2
    assert "not a timesteps,ep_rew_mean CSV" in capsys.readouterr().err
    write_curve(tmp_path / CURVE_FILE, [(64, 33.0), (128, 34.0)])
    assert cli_main(["plot", str(tmp_path)]) == 2  # a curve, but no model
    assert "no model.zip" in capsys.readouterr().err
    assert (tmp_path / "learning_curve.png").exists() and not (tmp_path / "weights.png").exists()
    assert cli_main(["--home", str(tmp_path / "home"), "plot", "0" * 32]) == 1
    assert "unknown job" in capsys.readouterr().err


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
