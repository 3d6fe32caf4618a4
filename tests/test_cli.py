"""The `fitness-weights` command line, on a real service folder."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fitness_weights_api import ModelRegistry
from fitness_weights_api.cli import build_parser, main
from fitness_weights_api.schemas import OptimizeRequest, OptimizeResponse, PredictRequest, PredictResponse
from fitness_weights_api.settings import ServiceSettings
from fitness_weights_api.weights import optimize_weights, predict_weights
from fitness_weights_env import CATALOG, sample_profile
from sb3_ext import PPO

FLAGS = ["--age", "23", "--gender", "male", "--fitness-level", "0.6", "--qualities", "0.55,0.5,0.6,0.65,0.6"]


@pytest.fixture
def home(tmp_path, tiny_models) -> Path:
    home = tmp_path / "home"
    assert main(["--home", str(home), "models", "register", str(tiny_models["attn0"]), "--activate"]) == 0
    return home


def run(home: Path, *args: str) -> int:
    return main(["--home", str(home), *args])


HELP_NAMES = {  # each subcommand's help names its own options
    "train": ["--timesteps", "--policy", "--preset", "--activate", "--detach"],
    "evaluate": ["model", "--trainees", "--out"],
    "plot": ["RUN_OR_JOB", "--out"],
    "optimize": ["--profile", "--target", "--steps", "--deterministic", "--json"],
    "predict": ["--profile", "--qualities", "--seed", "--json"],
    "models": ["list", "activate", "register"],
    "tokens": ["create", "list", "revoke"],
    "serve": ["--host", "--port", "--workers"],
    "dataset": ["make", "list", "show"],
    "offline": ["train"],
}


@pytest.mark.parametrize("command", list(HELP_NAMES))
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: fitness-weights {command}")
    missing = [name for name in HELP_NAMES[command] if name not in text]
    assert not missing, (command, missing)


def test_models_register_list_and_activate(home, tiny_models, capsys):
    assert run(home, "models", "register", str(tiny_models["attn1"])) == 0
    assert "registered v2" in capsys.readouterr().out
    assert run(home, "models", "list", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(m["version"], m["active"]) for m in listed] == [("v1", True), ("v2", False)]
    assert run(home, "models", "activate", "v2") == 0
    assert ModelRegistry(ServiceSettings(home=home).registry_root).active().version == "v2"
    assert run(home, "models", "list") == 0
    assert "v2" in capsys.readouterr().out
    assert run(home, "models", "activate", "v7") == 2
    assert "unknown version 'v7'" in capsys.readouterr().err
    assert run(home, "models", "activate", "../v2") == 2  # a FieldError of the registry's argument check
    assert "error: version: must be a version id such as 'v1'" in capsys.readouterr().err
    assert run(home, "models", "register", str(home / "missing.zip")) == 2
    assert "error: model_file: does not exist" in capsys.readouterr().err
    assert ModelRegistry(ServiceSettings(home=home).registry_root).active().version == "v2"


def test_predict_prints_tables_and_the_apis_json(home, tiny_models, capsys):
    assert run(home, "predict", *FLAGS, "--target", "3000 m run", "--target", "单杠引体向上") == 0
    text = capsys.readouterr().out
    assert "3000 m run" in text and "Pull-ups" in text and "prediction confidence" in text
    assert "endurance" in text  # the top qualities, then their top exercises
    assert run(home, "predict", *FLAGS, "--target", "3000 m run", "--json") == 0
    answer = PredictResponse.model_validate_json(capsys.readouterr().out)
    assert answer.model_version == "v1" and answer.user_id == "cli"
    assert len(answer.cq_matrix) == CATALOG.n_subjects and 0.0 <= answer.prediction_confidence <= 1.0


def test_predict_with_a_seed_matches_the_library(home, tiny_models, tmp_path, capsys):
    """`predict --seed` starts from the env's reset observation for that seed, as the library and the API do."""
    trainee = sample_profile(np.random.default_rng(5))
    body = PredictRequest.from_profile(trainee, "file-user").model_dump(mode="json", exclude_unset=True)
    profile = tmp_path / "trainee.json"
    profile.write_text(json.dumps(body))
    model = PPO.load(tiny_models["attn0"], device="cpu")
    answers = {}
    for seed in (0, 4):
        assert run(home, "predict", "--profile", str(profile), "--seed", str(seed), "--json") == 0
        answers[seed] = PredictResponse.model_validate_json(capsys.readouterr().out)
        np.testing.assert_array_equal(
            np.asarray(answers[seed].cq_matrix), predict_weights(model, trainee, seed=seed).cq
        )
    assert answers[0].cq_matrix != answers[4].cq_matrix
    assert run(home, "predict", "--profile", str(profile), "--json") == 0  # seed 0 by default
    assert PredictResponse.model_validate_json(capsys.readouterr().out).cq_matrix == answers[0].cq_matrix


def test_optimize_from_a_profile_file_matches_the_library(home, tiny_models, tmp_path, capsys):
    trainee = sample_profile(np.random.default_rng(5))
    body = OptimizeRequest.from_profile(trainee, "file-user").model_dump(mode="json", exclude_unset=True)
    profile = tmp_path / "trainee.json"
    profile.write_text(json.dumps(body))
    assert run(home, "optimize", "--profile", str(profile), "--steps", "12", "--seed", "2", "--json") == 0
    answer = OptimizeResponse.model_validate_json(capsys.readouterr().out)
    expected = optimize_weights(PPO.load(tiny_models["attn0"], device="cpu"), trainee, 12, seed=2)
    assert answer.user_id == "file-user" and answer.optimization_steps == 12
    np.testing.assert_array_equal(np.asarray(answer.cq_matrix), expected.cq)
    assert run(home, "optimize", "--profile", str(profile), "--steps", "12", "--age", "40") == 0  # flags override
    assert "optimize: model v1, 12 steps" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            [*FLAGS, "--target", "3000m runn"],
            "target_subjects: item 0 is an unknown subject; did you mean '3000 m run'",
        ),
        ([*FLAGS], "target_subjects: Field required"),
        (["--gender", "male", "--target", "3000 m run"], "age: Field required"),
        ([*FLAGS, "--target", "3000 m run", "--steps", "5000"], "optimization_steps: Input should be less than"),
        ([*FLAGS[:-1], "0.5,0.5", "--target", "3000 m run"], "current_qualities: List should have at least 5"),
        (["--profile", "/no/such/file.json"], "profile: cannot read /no/such/file.json"),
    ],
)
def test_bad_input_exits_2_naming_the_field(home, args, message, capsys):
    assert run(home, "optimize", *args) == 2
    assert message in capsys.readouterr().err


def test_a_misspelt_target_is_quoted_back_to_the_command_line_user(home, capsys):
    """The CLI prints str(FieldError): the reason, then what was typed (the API answers the reason alone)."""
    assert run(home, "predict", *FLAGS, "--target", "3000 m run", "--target", "pul ups") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: target_subjects: item 1 is an unknown subject") and err.endswith("(got 'pul ups')\n")


def test_without_an_active_model_optimize_says_so(tmp_path, capsys):
    assert run(tmp_path / "empty", "predict", *FLAGS, "--target", "3000 m run") == 1
    assert "no model version is active" in capsys.readouterr().err


def test_a_model_that_cannot_predict_exits_1(home, tiny_models, capsys):
    """Not bad input, a service that cannot do it (NoPredictionHeadsError, a FitnessWeightsError): exit code 1."""
    assert run(home, "models", "register", str(tiny_models["mlp"]), "--activate") == 0
    capsys.readouterr()
    assert run(home, "predict", *FLAGS, "--target", "3000 m run") == 1
    assert "has no predict_weights; use an AttnCQQXPolicy model" in capsys.readouterr().err
    assert run(home, "optimize", *FLAGS, "--target", "3000 m run", "--steps", "2") == 0  # it can still optimize


def test_evaluate_a_registered_version(home, capsys):
    assert run(home, "evaluate", "active", "--trainees", "4") == 0
    assert "normalized score" in capsys.readouterr().out.lower()
    assert run(home, "evaluate", "v9") == 2
    assert run(home, "evaluate", "no-such-model.zip") == 2
    assert "neither a registered version" in capsys.readouterr().err


@pytest.mark.slow  # the job itself is tested in test_jobs.py and through the API in test_api.py
def test_train_runs_a_job_and_registers_its_model(tmp_path):
    home = tmp_path / "home"
    command = [sys.executable, "-m", "fitness_weights_api.cli", "--home", str(home), "train", "--timesteps", "128"]
    command += ["--n-envs", "2", "--eval-trainees", "2", "--activate", "--device", "cpu", "--quiet"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "registered v1 (active): normalized score" in result.stdout
    record = ModelRegistry(ServiceSettings(home=home).registry_root).active()
    assert record.version == "v1" and record.metadata["timesteps"] >= 128
    bad = subprocess.run([*command[:7], "0"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--timesteps" in bad.stderr


def test_the_workers_socket_gets_tcp_nodelay_on_accepted_connections():
    """The shared socket of `serve --workers N` is a TCP one, so asyncio turns Nagle off on what it accepts."""
    import asyncio
    import socket

    from fitness_weights_api.cli import _tcp_socket

    async def accepted_nodelay() -> int:
        listener = _tcp_socket("127.0.0.1", 0)
        accepted: asyncio.Future = asyncio.get_running_loop().create_future()

        def on_connect(reader, writer) -> None:
            sock = writer.get_extra_info("socket")
            accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(on_connect, sock=listener)
        _, writer = await asyncio.open_connection(*listener.getsockname())
        value = await asyncio.wait_for(accepted, 10)
        writer.close()
        server.close()
        return value

    assert asyncio.run(accepted_nodelay()) != 0
