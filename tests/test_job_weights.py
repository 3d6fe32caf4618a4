"""``/train/{job_id}/weights``: the matrices a job's latest checkpoint predicts, which the dashboard draws."""

import os
import shutil

import numpy as np
from conftest import make_token
from test_jobs import assert_public, fake_python

from fitness_weights_api.model_format import file_bytes, load_policy, model_from_bytes
from fitness_weights_api.schemas import PredictRequest
from fitness_weights_api.weights import predict_weights
from fitness_weights_env import sample_profiles
from sb3_ext.evaluate import held_out_profiles


def _load(path):
    return load_policy(model_from_bytes(file_bytes(path, 1 << 26), max_bytes=1 << 26))


def _replace(source, target):
    """Put ``source`` at ``target`` as the job does: a new file renamed over the old one."""
    shutil.copy(source, target.with_suffix(".tmp"))
    os.replace(target.with_suffix(".tmp"), target)


def test_the_latest_checkpoint_predicts_for_a_held_out_or_typed_trainee(api_apps, tmp_path, tiny_models):
    home = tmp_path / "weights"
    api = api_apps(home)
    jobs = api.app.state.service.jobs
    jobs.python = os.fspath(fake_python(tmp_path, "exec sleep 600"))  # a job that stays running, without torch
    client, read = api.client, {"Authorization": f"Bearer {make_token(home, 'read')}"}
    job_id = client.post("/train", json={"timesteps": 4096, "n_envs": 8}, headers=api.auth).json()["job_id"]
    path, folder = f"/train/{job_id}/weights", jobs.job_dir(job_id)

    early = client.get(path, headers=read)
    assert early.status_code == 409 and "no checkpoint yet" in early.json()["detail"]
    _replace(tiny_models["attn0"], folder / "checkpoint.zip")
    answer = client.get(f"{path}?trainee=3", headers=read)
    assert answer.status_code == 200, answer.text
    body, trainee = answer.json(), held_out_profiles(4)[3]
    expected = predict_weights(_load(tiny_models["attn0"]), trainee, seed=0)
    assert np.array_equal(np.array(body["cq_matrix"]), expected.cq)
    assert np.array_equal(np.array(body["qx_matrix"]), expected.qx)
    assert body["target_subjects"] == list(trainee.targets) and body["trainee"] == "held-out 3"
    assert (body["source"], body["timesteps"], body["env_id"]) == ("checkpoint", 64, "FitnessWeights-v0")
    assert body["prediction_confidence"] == expected.confidence

    typed = sample_profiles(1, seed=5)[0]
    request = PredictRequest.from_profile(typed, "coach-7", seed=2).model_dump(mode="json")
    answer = client.post(path, json=request, headers=read)
    assert answer.status_code == 200, answer.text
    expected = predict_weights(_load(tiny_models["attn0"]), typed, seed=2)
    assert np.array_equal(np.array(answer.json()["cq_matrix"]), expected.cq)
    assert answer.json()["trainee"] == "coach-7" and answer.json()["target_subjects"] == list(typed.targets)

    # a newer checkpoint is the one drawn next, and the trained model once there is one
    _replace(tiny_models["attn1"], folder / "checkpoint.zip")
    newer = client.get(f"{path}?trainee=3", headers=read).json()
    expected = predict_weights(_load(tiny_models["attn1"]), trainee, seed=0)
    assert np.array_equal(np.array(newer["cq_matrix"]), expected.cq) and newer["cq_matrix"] != body["cq_matrix"]
    shutil.copy(tiny_models["attn0"], folder / "model.zip")
    final = client.get(f"{path}?trainee=3", headers=read).json()
    assert final["source"] == "model" and final["cq_matrix"] == body["cq_matrix"]


def test_weights_are_refused_clearly_without_a_token_a_checkpoint_or_prediction_heads(api_apps, tmp_path, tiny_models):
    home = tmp_path / "refusals"
    api = api_apps(home)
    jobs = api.app.state.service.jobs
    jobs.python = os.fspath(fake_python(tmp_path, "exec sleep 600"))
    client, read = api.client, {"Authorization": f"Bearer {make_token(home, 'read')}"}
    job_id = client.post("/train", json={"timesteps": 4096, "policy": "MlpPolicy"}, headers=api.auth).json()["job_id"]
    path, folder = f"/train/{job_id}/weights", jobs.job_dir(job_id)
    _replace(tiny_models["mlp"], folder / "checkpoint.zip")

    assert client.get(path).status_code == 401
    assert client.get(f"/train/{'0' * 32}/weights", headers=read).status_code == 404
    for query, field in (("trainee=200", "trainee"), ("trainee=-1", "trainee"), ("seed=x", "seed")):
        answer = client.get(f"{path}?{query}", headers=read)
        assert answer.status_code == 422 and answer.json()["detail"][0]["loc"][-1] == field, query
    bad = client.post(path, json={"user_id": "u", "age": 5}, headers=read)
    assert bad.status_code == 422 and {d["loc"][-1] for d in bad.json()["detail"]} >= {"age", "gender"}
    no_heads = client.get(path, headers=read)
    assert no_heads.status_code == 409 and "MlpPolicy" in no_heads.json()["detail"]
    (folder / "checkpoint.zip").write_bytes(tiny_models["attn0"].read_bytes()[:2000])  # a truncated file
    damaged = client.get(path, headers=read)
    assert damaged.status_code == 409 and "refused" in damaged.json()["detail"]
    assert_public(damaged.json()["detail"], str(folder))
