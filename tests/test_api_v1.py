"""Models trained on FitnessWeights-v1: registered with their env id, served through v1's kernel; no mocks.

A tiny PPO model trained on v1 and one trained on v0 share a real service folder (registry on SQLite, job
database); the HTTP API runs in process (``InProcessApi``), the CLI through ``main``, a training job as a real
job process.
"""

import json
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from conftest import InProcessApi

from fitness_weights_api import JobManager, ModelRegistry
from fitness_weights_api.cli import main
from fitness_weights_api.model_format import ENV_IDS, read_model
from fitness_weights_api.registry import ModelRefusedError
from fitness_weights_api.schemas import OptimizeRequest, OptimizeResponse, PredictResponse
from fitness_weights_api.settings import ServiceSettings
from fitness_weights_api.weights import optimize_weights, predict_weights
from fitness_weights_env import CATALOG, FieldError, FitnessWeightsV1VectorEnv, sample_profile, training_dynamics
from fitness_weights_env.baselines import run_episodes
from sb3_ext import PPO
from sb3_ext.actions import PolicyActions
from sb3_ext.onnx_policy import ATOL  # the service's answers come from the exported graphs

V0, V1 = "FitnessWeights-v0", "FitnessWeights-v1"
FLAGS = ["--age", "23", "--gender", "male", "--fitness-level", "0.6", "--qualities", "0.55,0.5,0.6,0.65,0.6"]
TARGETS = ["--target", "3000 m run", "--target", "单杠引体向上"]


def registry_of(home: Path) -> ModelRegistry:
    settings = ServiceSettings(home=home)
    return ModelRegistry(settings.registry_root, settings.registry_url)


def run(home: Path, *args: str) -> int:
    return main(["--home", str(home), *args])


@pytest.fixture(scope="module")
def v1_model_file(tmp_path_factory) -> Path:
    """A tiny PPO model trained two 64-step rollouts on FitnessWeights-v1."""
    path = tmp_path_factory.mktemp("v1_model") / "v1.zip"
    model = PPO("AttnCQQXPolicy", gym.make(V1), n_steps=64, batch_size=64, n_epochs=1, seed=0, device="cpu")
    model.learn(128).save(path)
    return path


@pytest.fixture(scope="module")
def home(tmp_path_factory, tiny_models, v1_model_file) -> Path:
    """A service folder with v1 (a model of FitnessWeights-v0) and v2 (of FitnessWeights-v1, active)."""
    home = tmp_path_factory.mktemp("v1_service")
    registry = registry_of(home)
    assert registry.register(tiny_models["attn0"], training_config={}).metadata["env_id"] == V0
    registry.register(v1_model_file, training_config={"env_id": V1}, env_id=V1, activate=True)
    return home


@pytest.fixture(scope="module")
def api(home):
    with InProcessApi(home, max_timesteps=10_000) as api:
        api.client.headers.update(api.auth)
        yield api


@pytest.fixture
def client(api, home):
    registry_of(home).activate("v2")  # every test starts with the v1 model active
    return api.client


@pytest.fixture(scope="module")
def trainee():
    return sample_profile(np.random.default_rng(7))


def body(profile, **extra) -> dict:
    return OptimizeRequest.from_profile(profile, "trainee-1", **extra).model_dump(mode="json", exclude_unset=True)


def test_a_v1_model_registers_with_its_env_id_and_its_manifest_says_v1(home):
    registry = registry_of(home)
    record = registry.get("v2")
    assert record.metadata["env_id"] == V1 and record.metadata["policy"] == "AttnCQQXPolicy"
    assert read_model(registry.path("v2").read_bytes(), 1 << 30).manifest["env_id"] == V1
    assert registry.load("v2").manifest["env_id"] == V1
    assert read_model(registry.path("v1").read_bytes(), 1 << 30).manifest["env_id"] == V0
    assert ENV_IDS == (V0, V1)


def test_optimize_runs_the_v1_model_through_v1s_kernel(client, home, trainee):
    response = client.post("/optimize_weights", json=body(trainee, optimization_steps=16, seed=3))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["model_version"] == "v2" and answer["env_id"] == V1
    policy = registry_of(home).load("v2").policy
    in_v1 = run_episodes(PolicyActions(policy, [3]), [trainee], seed=3, steps=16, env_id=V1)
    np.testing.assert_array_equal(np.asarray(answer["cq_matrix"]), in_v1.cq[0])
    np.testing.assert_array_equal(np.asarray(answer["qx_matrix"]), in_v1.qx[0])
    assert answer["mean_target_score"] == pytest.approx(in_v1.final_target_score[0])  # the simulated trainee's
    with pytest.raises(FieldError) as raised:  # v0's kernel cannot run it: its observation lacks the progress
        run_episodes(PolicyActions(policy, [3]), [trainee], seed=3, steps=16, env_id=V0)
    assert raised.value.field == "observation" and "(199,)" in raised.value.reason
    # v1's scores follow the trainee's true qualities, not CQ[s] . qualities (v0's formula)
    cq = np.asarray(answer["cq_matrix"])
    for index in trainee.targets:
        v0_formula = cq[index] @ trainee.qualities.astype(np.float64)
        assert answer["target_achievement_scores"][CATALOG.subjects[index].name_en] != pytest.approx(v0_formula)


def test_predict_sees_v1s_starting_state_and_reports_v1s_scores(client, home, trainee):
    response = client.post("/predict_weights", json=body(trainee, seed=2))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["model_version"] == "v2" and answer["env_id"] == V1
    policy = registry_of(home).load("v2").policy
    env = FitnessWeightsV1VectorEnv(1, max_episode_steps=None)
    observation, _ = env.reset(seed=2, options={"profiles": [trainee]})
    cq, _, confidence = policy.predict_weights(observation[0])
    np.testing.assert_allclose(np.asarray(answer["cq_matrix"], dtype=np.float32), cq, rtol=0, atol=ATOL)
    assert answer["prediction_confidence"] == pytest.approx(confidence, abs=ATOL)
    v0_observation = gym.make(V0).reset(seed=2, options={"profile": trainee})[0]
    with pytest.raises(ValueError, match=r"shape \(199,\)"):  # v0's start is not an observation of v1
        policy.predict_weights(v0_observation)
    info = training_dynamics.step_info(env.state, 0, matrices=False)
    expected = {CATALOG.subjects[s].name_en: float(info["target_scores"][s]) for s in trainee.targets}
    assert answer["target_achievement_scores"] == pytest.approx(expected)
    assert answer["mean_target_score"] == pytest.approx(info["mean_target_score"])


def test_the_env_follows_the_active_version(client, home, trainee, tiny_models):
    """Activating the v0 model switches the kernel back to v0's: the answer is v0's library answer."""
    registry_of(home).activate("v1")
    answer = client.post("/optimize_weights", json=body(trainee, optimization_steps=8, seed=1)).json()
    assert answer["model_version"] == "v1" and answer["env_id"] == V0
    expected = optimize_weights(PPO.load(tiny_models["attn0"], device="cpu"), trainee, 8, seed=1)
    np.testing.assert_array_equal(np.asarray(answer["cq_matrix"]), expected.cq)
    assert answer["target_achievement_scores"] == pytest.approx(expected.target_scores)


def test_the_library_refuses_to_run_a_model_in_another_env(home, trainee):
    served = registry_of(home).load("v2")
    assert optimize_weights(served, trainee, 4).env_id == V1  # the model's own env by default
    for call in (
        lambda: optimize_weights(served, trainee, 4, env_id=V0),
        lambda: predict_weights(served, trainee, env_id=V0),
    ):
        with pytest.raises(FieldError) as raised:
            call()
        assert raised.value.field == "env_id" and f"acts in {V1}" in raised.value.reason
    with pytest.raises(FieldError) as raised:
        optimize_weights(served, trainee, 4, env_id="CartPole-v1")
    assert raised.value.field == "env_id" and "must be one of" in raised.value.reason


def test_registering_a_model_under_another_env_id_is_refused(home, tiny_models, v1_model_file):
    registry = registry_of(home)
    count = len(registry.versions())
    for stored, claimed in (("v2", V0), ("v1", V1)):  # registry-format files say which env they act in
        with pytest.raises(ModelRefusedError) as raised:
            registry.register(registry.path(stored), training_config={}, env_id=claimed)
        assert raised.value.field == "env_id" and "not " + claimed in raised.value.reason
    with pytest.raises(FieldError) as raised:  # an SB3 archive does not say; its training config does
        registry.register(v1_model_file, training_config={"env_id": V1}, env_id=V0)
    assert raised.value.field == "env_id" and V1 in raised.value.reason
    with pytest.raises(FieldError) as raised:
        registry.register(tiny_models["attn0"], training_config={}, metadata={"env_id": V1})
    assert raised.value.field == "env_id"
    with pytest.raises(FieldError) as raised:
        registry.register(tiny_models["attn0"], training_config={}, env_id="CartPole-v1")
    assert raised.value.field == "env_id" and "must be one of" in raised.value.reason
    assert len(registry.versions()) == count  # nothing was registered


def test_the_cli_serves_the_v1_model_and_names_env_errors(client, home, capsys):
    count = len(registry_of(home).versions())
    assert run(home, "optimize", *FLAGS, *TARGETS, "--steps", "8", "--json") == 0
    assert OptimizeResponse.model_validate_json(capsys.readouterr().out).env_id == V1
    assert run(home, "predict", *FLAGS, *TARGETS, "--env-id", V1) == 0
    assert f"model v2 on {V1}" in capsys.readouterr().out
    assert run(home, "predict", *FLAGS, *TARGETS, "--json") == 0
    assert PredictResponse.model_validate_json(capsys.readouterr().out).env_id == V1
    assert run(home, "models", "list", "--json") == 0
    assert [m["metadata"]["env_id"] for m in json.loads(capsys.readouterr().out)][:2] == [V0, V1]

    cases = [
        (("optimize", *FLAGS, *TARGETS, "--env-id", V0), f"error: env_id: the model acts in {V1}, not in {V0}"),
        (("predict", *FLAGS, *TARGETS, "--env-id", "CartPole-v1"), "error: env_id: must be one of"),
        (("train", "--timesteps", "64", "--env-id", "CartPole-v1"), "error: env_id: must be one of"),
        (("models", "register", str(registry_of(home).path("v2")), "--env-id", V0), "env_id: the model acts in"),
        (("models", "register", str(registry_of(home).path("v1")), "--env-id", "v1"), "error: env_id: must be one"),
        (("evaluate", "v2", "--env-id", V0), f"error: env_id: the model acts in {V1}"),
    ]
    for args, message in cases:
        assert run(home, *args) == 2, args
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (args, err)
    assert len(registry_of(home).versions()) == count  # the refused registrations left nothing


def test_an_unknown_env_id_in_a_train_request_is_a_422_naming_the_field(client):
    response = client.post("/train", json={"timesteps": 128, "env_id": "CartPole-v1"})
    assert response.status_code == 422, response.text
    assert [detail["loc"] for detail in response.json()["detail"]] == [["body", "env_id"]]
    assert "CartPole" not in response.text  # the input is not echoed


def test_a_v1_training_job_trains_on_v1_and_registers_its_model_with_v1(client, home, trainee):
    config = {"timesteps": 128, "env_id": V1, "n_envs": 2, "eval_trainees": 2, "activate": True}
    response = client.post("/train", json=config)
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    deadline = time.monotonic() + 120
    while (job := client.get(f"/train/{job_id}").json())["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
    assert job["state"] == "succeeded", job
    assert job["config"]["env_id"] == V1
    registry = registry_of(home)
    record = registry.get(job["model_version"])
    assert record.metadata["env_id"] == V1 and record.training_config["env_id"] == V1
    assert read_model(registry.path(record.version).read_bytes(), 1 << 30).manifest["env_id"] == V1
    settings = ServiceSettings(home=home)
    job_dir = JobManager(settings.jobs_root, registry).job_dir(job_id)
    evaluation = (job_dir / "evaluation.json").read_text()
    assert f'"env_id": "{V1}"' in evaluation  # evaluated on v1 (coach and oracle as the score's 0 and 1)
    answer = client.post("/optimize_weights", json=body(trainee, optimization_steps=4)).json()
    assert answer["model_version"] == record.version and answer["env_id"] == V1
