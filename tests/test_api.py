"""The HTTP API over real SQLite files and real job processes.

Most tests run ``create_app(settings)`` in this process behind starlette's ``TestClient`` (``InProcessApi`` in
conftest.py): the same app, middleware and error handlers as a served one, without a socket. The tests of two
worker processes run ``fitness-weights serve --workers 2`` on loopback (``api_servers``).
"""

import contextlib
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import pytest
from conftest import InProcessApi

from fitness_weights_api import JobManager, ModelRegistry
from fitness_weights_api.schemas import OptimizeRequest, PredictRequest
from fitness_weights_api.settings import ServiceSettings
from fitness_weights_api.weights import optimize_weights, predict_weights
from fitness_weights_env import CATALOG, METRIC_NAMES, TraineeProfile, sample_profile, typical_metrics
from fitness_weights_env import typical_subject_scores as typical_scores
from sb3_ext import PPO
from sb3_ext.onnx_policy import ATOL  # the service's answers come from the exported graphs


def request_body(profile: TraineeProfile, **extra) -> dict:
    return OptimizeRequest.from_profile(profile, "trainee-1", **extra).model_dump(mode="json", exclude_unset=True)


def registry_of(home) -> ModelRegistry:
    settings = ServiceSettings(home=home)
    return ModelRegistry(settings.registry_root, settings.registry_url)


def jobs_of(home) -> JobManager:
    settings = ServiceSettings(home=home)
    return JobManager(settings.jobs_root, registry_of(home))


def wait_for_job(client: httpx.Client, job_id: str, until, timeout_s: float = 180.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        job = client.get(f"/train/{job_id}").json()
        if until(job):
            return job
        assert time.monotonic() < deadline, f"job still {job} after {timeout_s} s"
        time.sleep(0.3)


@pytest.fixture(scope="module")
def home(tmp_path_factory, tiny_models):
    """A service folder with v1 (attention, seed 0, active), v2 (attention, seed 1) and v3 (MLP)."""
    home = tmp_path_factory.mktemp("service")
    registry = registry_of(home)
    registry.register(tiny_models["attn0"], training_config={"seed": 0}, activate=True)
    registry.register(tiny_models["attn1"], training_config={"seed": 1})
    registry.register(tiny_models["mlp"], training_config={"policy": "MlpPolicy"})
    return home


@pytest.fixture(scope="module")
def api(home):
    # jobs in this module train 2 envs x 64 steps per rollout; max_timesteps bounds the big ones
    with InProcessApi(home, max_timesteps=1_000_000, max_queued=20) as api:
        api.client.headers.update(api.auth)  # the routes that mutate need one (test_api_security.py: without)
        yield api


@pytest.fixture
def client(api, home):
    """The in-process app's client, with its admin token."""
    yield api.client
    registry_of(home).activate("v1")  # every test starts and ends with v1 active


@pytest.fixture
def trainee() -> TraineeProfile:
    return sample_profile(np.random.default_rng(7))


# -- optimize and predict --------------------------------------------------------------------------------------


def test_predict_answers_the_active_models_forward_pass(client, trainee, tiny_models):
    response = client.post("/predict_weights", json=request_body(trainee))
    assert response.status_code == 200, response.text
    answer = response.json()
    expected = predict_weights(PPO.load(tiny_models["attn0"], device="cpu"), trainee)  # the library's forward pass
    assert answer["user_id"] == "trainee-1" and answer["model_version"] == "v1"
    np.testing.assert_allclose(np.asarray(answer["cq_matrix"], dtype=np.float32), expected.cq, rtol=0, atol=ATOL)
    np.testing.assert_allclose(np.asarray(answer["qx_matrix"], dtype=np.float32), expected.qx, rtol=0, atol=ATOL)
    assert answer["prediction_confidence"] == pytest.approx(expected.confidence, abs=ATOL)
    assert answer["target_achievement_scores"] == pytest.approx(expected.target_scores)
    assert list(answer["target_achievement_scores"]) == trainee.target_names
    for index in trainee.targets:  # CQ[s] . qualities, as the environment computes it
        expected = np.asarray(answer["cq_matrix"])[index] @ trainee.qualities.astype(np.float64)
        assert answer["target_achievement_scores"][CATALOG.subjects[index].name_en] == pytest.approx(expected, 1e-5)
    assert answer["timestamp"].endswith("Z") or "+00:00" in answer["timestamp"]


def test_optimize_runs_the_policy_through_the_kernel(client, trainee, tiny_models):
    response = client.post("/optimize_weights", json=request_body(trainee, optimization_steps=16, seed=3))
    assert response.status_code == 200, response.text
    answer = response.json()
    expected = optimize_weights(PPO.load(tiny_models["attn0"], device="cpu"), trainee, 16, seed=3)
    assert answer["model_version"] == "v1" and answer["optimization_steps"] == 16
    np.testing.assert_array_equal(np.asarray(answer["cq_matrix"]), expected.cq)
    np.testing.assert_array_equal(np.asarray(answer["qx_matrix"]), expected.qx)
    assert answer["target_achievement_scores"] == pytest.approx(expected.target_scores)
    assert list(answer["performance_metrics"]) == list(METRIC_NAMES)
    assert answer["performance_metrics"] == pytest.approx(expected.performance_metrics)
    cq = np.asarray(answer["cq_matrix"])
    assert cq.shape == (CATALOG.n_subjects, CATALOG.n_qualities)
    np.testing.assert_allclose(cq.sum(axis=1), 1.0, atol=1e-9)


def test_sampled_optimize_is_reproducible_and_differs_from_the_mode(client, trainee):
    body = request_body(trainee, optimization_steps=32, seed=5)  # sampled with the seed by default
    first, second = (client.post("/optimize_weights", json=body).json() for _ in range(2))
    assert first["cq_matrix"] == second["cq_matrix"] and first["qx_matrix"] == second["qx_matrix"]
    mode = client.post("/optimize_weights", json={**body, "deterministic": True}).json()
    assert mode["cq_matrix"] != first["cq_matrix"] or mode["qx_matrix"] != first["qx_matrix"]


def test_names_in_chinese_and_english_and_lists_or_names_give_one_answer(client, trainee):
    english = client.post("/predict_weights", json=request_body(trainee)).json()
    chinese_targets = [CATALOG.subjects[i].name_zh for i in trainee.targets]
    quality_list = [float(v) for v in trainee.qualities]
    chinese = client.post(
        "/predict_weights", json=request_body(trainee, target_subjects=chinese_targets, current_qualities=quality_list)
    ).json()
    assert chinese["cq_matrix"] == english["cq_matrix"]
    assert chinese["target_achievement_scores"] == english["target_achievement_scores"]  # keyed by English name


def test_missing_scores_and_metrics_get_the_populations_typical_values(client, trainee, tiny_models):
    body = request_body(trainee)
    del body["subject_scores"], body["performance_metrics"]
    answer = client.post("/predict_weights", json=body).json()
    typical = TraineeProfile(
        age=trainee.age,
        gender=trainee.gender,
        fitness_level=trainee.fitness_level,
        qualities=trainee.qualities,
        subject_scores=typical_scores(trainee.qualities),
        targets=trainee.targets,
        performance_metrics=typical_metrics(trainee.fitness_level),
    )
    given = PredictRequest.model_validate(body).to_profile()  # what the service was given: the typical values
    np.testing.assert_array_equal(given.to_vector(), typical.to_vector())
    np.testing.assert_array_equal(given.performance_metrics, typical.performance_metrics)
    expected = predict_weights(PPO.load(tiny_models["attn0"], device="cpu"), typical)
    np.testing.assert_allclose(np.asarray(answer["cq_matrix"], dtype=np.float32), expected.cq, rtol=0, atol=ATOL)
    # a score given by name replaces the typical one; the others stay typical
    name = CATALOG.subjects[trainee.targets[0]].name_en
    partial = client.post("/predict_weights", json={**body, "subject_scores": {name: 0.01}}).json()
    assert partial["cq_matrix"] != answer["cq_matrix"]


# -- bad input: 422 naming the field, no internals ---------------------------------------------------------------


def _set(field, value):
    return lambda body: {**body, field: value}


def _drop(field):
    return lambda body: {k: v for k, v in body.items() if k != field}


BAD_REQUESTS = {
    "unknown subject": (_set("target_subjects", ["3000m runn"]), "target_subjects", "did you mean '3000 m run'"),
    "empty targets": (_set("target_subjects", []), "target_subjects", "at least 1"),
    "duplicate target": (_set("target_subjects", ["3000 m run", "3000 M Run"]), "target_subjects", "twice"),
    "short qualities": (_set("current_qualities", [0.5] * 4), "current_qualities", "at least 5"),
    "long qualities": (_set("current_qualities", [0.5] * 6), "current_qualities", "at most 5"),
    "missing quality": (_set("current_qualities", {"endurance": 0.5}), "current_qualities", "flexibility, agility"),
    "unknown quality": (
        _set("current_qualities", {"endurance": 0.5, "flexibility": 0.5, "agility": 0.5, "power": 0.5, "strenght": 1}),
        "current_qualities",
        "did you mean 'strength'",
    ),
    "quality out of range": (_set("current_qualities", [0.5, 0.5, 0.5, 0.5, 1.5]), "current_qualities", "1"),
    "short subject scores": (_set("subject_scores", [0.5] * 92), "subject_scores", "at least 93"),
    "unknown scored subject": (_set("subject_scores", {"pullups": 0.5}), "subject_scores", "did you mean"),
    "long metrics": (_set("performance_metrics", [0.5] * 5), "performance_metrics", "at most 4"),
    "unknown metric": (_set("performance_metrics", {"consistancy": 0.5}), "performance_metrics", "'consistency'"),
    "age too low": (_set("age", 10), "age", "greater than or equal to 16"),
    "age not whole": (_set("age", 23.5), "age", "integer"),
    "fitness out of range": (_set("fitness_level", 1.5), "fitness_level", "less than or equal to 1"),
    "bad gender": (_set("gender", "robot"), "gender", "'male' or 'female'"),
    "missing age": (_drop("age"), "age", "required"),
    "missing user": (_drop("user_id"), "user_id", "required"),
    "unknown field": (_set("favourite_colour", "blue"), "favourite_colour", "not permitted"),
    "too many steps": (_set("optimization_steps", 5000), "optimization_steps", "1024"),
    "zero steps": (_set("optimization_steps", 0), "optimization_steps", "greater than or equal to 1"),
    "negative seed": (_set("seed", -1), "seed", "greater than or equal to 0"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_input_gets_a_422_naming_the_field(client, trainee, case):
    mutate, field, message = BAD_REQUESTS[case]
    body = mutate(request_body(trainee))
    endpoints = (
        ["/optimize_weights"] if field in ("optimization_steps", "seed") else ["/optimize_weights", "/predict_weights"]
    )
    for endpoint in endpoints:
        response = client.post(endpoint, json=body)
        assert response.status_code == 422, (endpoint, response.text)
        details = response.json()["detail"]
        assert any(d["loc"][:2] == ["body", field] for d in details), details
        mine = [d for d in details if d["loc"][:2] == ["body", field]]
        assert all(d["msg"].startswith(field) for d in mine), mine
        assert any(message in d["msg"] for d in mine), mine
        assert "Traceback" not in response.text and "File " not in response.text


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_get_a_422(client, trainee, value):
    text = json.dumps(request_body(trainee, fitness_level=0.5)).replace(
        '"fitness_level": 0.5', f'"fitness_level": {value}'
    )
    response = client.post("/predict_weights", content=text, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "fitness_level"]
    qualities = json.dumps(request_body(trainee)).replace('"endurance": ', f'"endurance": {value}, "x": ', 1)
    response = client.post("/predict_weights", content=qualities, headers={"content-type": "application/json"})
    assert response.status_code == 422 and "current_qualities" in response.text


@pytest.mark.parametrize(
    "content", ["", "{", "[1, 2]", '"a string"', "null", '{"user_id": "x"}', "\xff\xfe".encode("latin-1")]
)
def test_malformed_bodies_get_a_422(client, content):
    response = client.post("/predict_weights", content=content, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["detail"] and all(d["loc"][0] == "body" for d in response.json()["detail"])


def test_unknown_ids_get_404_and_malformed_ids_422(client):
    unknown_job = "0" * 32
    assert client.get(f"/train/{unknown_job}").status_code == 404
    assert client.delete(f"/train/{unknown_job}").status_code == 404
    response = client.post("/models/v99/activate")
    assert response.status_code == 404 and "known versions: v1, v2, v3" in response.json()["detail"]
    for path in ("/train/xyz", "/train/" + "G" * 32):
        assert client.get(path).status_code == 422
    for version in ("v0", "1", "v1x", "v" + "9" * 30, "..%2F..%2Fetc"):
        assert client.post(f"/models/{version}/activate").status_code in (404, 422)
    assert registry_of_active(client) == "v1"


def registry_of_active(client) -> str:
    return client.get("/models").json()["active"]


def test_an_mlp_model_optimizes_but_cannot_predict(client, trainee):
    assert client.post("/models/v3/activate").status_code == 200
    response = client.post("/predict_weights", json=request_body(trainee))
    assert response.status_code == 409 and "has no predict_weights" in response.json()["detail"]
    response = client.post("/optimize_weights", json=request_body(trainee, optimization_steps=4))
    assert response.status_code == 200 and response.json()["model_version"] == "v3"


def test_no_active_model_is_a_503(api_apps, tmp_path, trainee):
    client = api_apps(tmp_path / "empty").client
    for endpoint in ("/predict_weights", "/optimize_weights"):
        response = client.post(endpoint, json=request_body(trainee))
        assert response.status_code == 503 and "no model version is active" in response.json()["detail"]
    assert client.get("/health").json()["active_model"] is None


# -- models, catalog, health, metrics ---------------------------------------------------------------------------


def test_models_lists_and_activates_versions(client, trainee):
    listing = client.get("/models").json()
    assert listing["active"] == "v1" and [m["version"] for m in listing["models"]] == ["v1", "v2", "v3"]
    assert [m["active"] for m in listing["models"]] == [True, False, False]
    assert listing["models"][1]["training_config"] == {"seed": 1} and len(listing["models"][1]["sha256"]) == 64
    response = client.post("/models/v2/activate")
    assert response.status_code == 200 and response.json()["version"] == "v2" and response.json()["active"]
    assert client.get("/models").json()["active"] == "v2"
    assert client.post("/predict_weights", json=request_body(trainee)).json()["model_version"] == "v2"


def test_catalog_lists_the_domain_in_matrix_order(client):
    catalog = client.get("/catalog").json()
    assert [q["name_en"] for q in catalog["qualities"]] == [q.name_en for q in CATALOG.qualities]
    assert len(catalog["subjects"]) == CATALOG.n_subjects and len(catalog["exercises"]) == CATALOG.n_exercises
    assert catalog["subjects"][5]["name_zh"] == CATALOG.subjects[5].name_zh
    assert catalog["performance_metrics"] == list(METRIC_NAMES)


def test_health_and_prometheus_metrics(client, trainee):
    health = client.get("/health")
    assert health.json()["status"] == "ok" and health.json()["active_model"] == health.json()["served_model"] == "v1"
    assert health.json()["problem"] is None and health.json()["runtime"] == "onnx"  # the exported graphs answer
    assert health.json()["worker"] == health.headers["x-worker-id"] and len(health.headers["x-worker-id"]) == 8

    def count(text: str, route: str, status: str) -> float:
        label = f'fitness_weights_http_requests_total{{method="POST",route="{route}",status="{status}"}}'
        lines = [line for line in text.splitlines() if line.startswith(label)]
        return float(lines[0].split()[-1]) if lines else 0.0

    before = client.get("/metrics")
    assert before.headers["content-type"].startswith("text/plain")
    for _ in range(3):
        client.post("/predict_weights", json=request_body(trainee))
    client.post("/predict_weights", json={})
    after = client.get("/metrics").text
    assert count(after, "/predict_weights", "200") == count(before.text, "/predict_weights", "200") + 3
    assert count(after, "/predict_weights", "422") == count(before.text, "/predict_weights", "422") + 1
    assert (
        'fitness_weights_http_request_duration_seconds_bucket{le="0.005",method="POST",route="/predict_weights"}'
        in after
    )
    client.get("/no/such/path")
    assert 'route="<unmatched>"' in client.get("/metrics").text


def test_openapi_document_and_docs_are_served(client):
    schema = client.get("/openapi.json").json()
    for path in ("/optimize_weights", "/predict_weights", "/train", "/train/{job_id}", "/models", "/catalog"):
        assert path in schema["paths"]
    assert client.get("/docs").status_code == 200


# -- training jobs -------------------------------------------------------------------------------------------------


def test_a_tiny_job_is_registered_activated_and_served(client, trainee, home):
    config = {"timesteps": 128, "n_envs": 2, "eval_trainees": 2, "activate": True, "seed": 4}
    response = client.post("/train", json=config)
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["state"] in ("queued", "running") and job["config"]["timesteps"] == 128
    done = wait_for_job(client, job["job_id"], lambda j: j["state"] not in ("queued", "running"))
    assert done["state"] == "succeeded", (done, (jobs_of(home).job_dir(job["job_id"]) / "job.log").read_text()[-3000:])
    assert done["timesteps_done"] >= 128 and done["model_version"] is not None
    version = done["model_version"]
    models = client.get("/models").json()
    assert models["active"] == version
    record = next(m for m in models["models"] if m["version"] == version)
    assert record["metadata"]["job_id"] == job["job_id"] and record["evaluation_score"] is not None
    answer = client.post("/predict_weights", json=request_body(trainee)).json()
    assert answer["model_version"] == version
    model = registry_of(home).load(version)  # the registry's safe copy: built from weights and JSON
    np.testing.assert_allclose(
        np.asarray(answer["cq_matrix"], dtype=np.float32), predict_weights(model, trainee).cq, rtol=0, atol=ATOL
    )


def test_cancel_and_bad_training_configs(client):
    job = client.post("/train", json={"timesteps": 1_000_000, "n_envs": 2, "eval_trainees": 2}).json()
    wait_for_job(client, job["job_id"], lambda j: j["state"] == "running")
    cancelled = client.delete(f"/train/{job['job_id']}")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    assert client.delete(f"/train/{job['job_id']}").json()["state"] == "cancelled"  # idempotent
    assert any(j["job_id"] == job["job_id"] for j in client.get("/train").json())
    bad = [
        ("timesteps", {"timesteps": 2_000_000}, "at most 1000000"),
        ("n_envs", {"timesteps": 1000, "n_envs": 16_384}, "at most 1024 (max_n_envs)"),
        ("policy", {"timesteps": 1000, "policy": "CnnPolicy"}, "'AttnCQQXPolicy' or 'MlpPolicy'"),
        ("learning_rate", {"timesteps": 1000, "learning_rate": 0}, "greater than 0"),
        ("eval_trainees", {"timesteps": 1000, "eval_trainees": 1}, "greater than or equal to 2"),
        ("eval_trainees", {"timesteps": 1000, "eval_trainees": 5000}, "at most 1000 (max_eval_trainees)"),
        ("device", {"timesteps": 1000, "device": "cuda"}, "not permitted"),
    ]
    for field, config, message in bad:
        response = client.post("/train", json=config)
        assert response.status_code == 422, (field, response.text)
        detail = response.json()["detail"][0]
        assert detail["loc"][:2] == ["body", field] and message in detail["msg"], (field, detail)
        if isinstance(config.get(field), int) and config[field] >= 1000:  # the input is not echoed
            assert str(config[field]) not in detail["msg"], detail


def test_a_full_queue_is_a_429(api_apps, tmp_path):
    api = api_apps(tmp_path / "queue", max_jobs=1, max_queued=1)
    config = {"timesteps": 1_000_000, "n_envs": 2, "eval_trainees": 2}
    states = [api.client.post("/train", json=config, headers=api.auth) for _ in range(3)]
    assert [r.status_code for r in states] == [202, 202, 429]
    assert "queue is full" in states[2].json()["detail"]
    assert [job.state for job in jobs_of(api.home).list()] == ["queued", "running"]  # the third was not queued


# -- two workers: `serve --workers 2` on loopback -------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_workers(home, api_servers):
    return api_servers(home, workers=2, max_timesteps=1_000_000, max_queued=50)


def fresh_connection_post(url: str, body: dict | None = None, token: str | None = None) -> httpx.Response:
    """One request on its own connection, so the kernel may hand it to either worker."""
    headers = {"Connection": "close"} | ({"Authorization": f"Bearer {token}"} if token else {})
    return httpx.post(url, json=body, headers=headers, timeout=60)


def test_activation_is_seen_by_every_worker(two_workers, home, trainee, tiny_models):
    url = two_workers.url + "/predict_weights"
    served: dict[str, set] = {"v1": set()}
    for _ in range(400):  # until both workers answered with v1 (and so hold it loaded)
        response = fresh_connection_post(url, request_body(trainee))
        assert response.json()["model_version"] == "v1"
        served["v1"].add(response.headers["x-worker-id"])
        if len(served["v1"]) == 2:
            break
    assert len(served["v1"]) == 2, "the kernel never handed a request to the second worker"
    token = two_workers.admin_token
    assert fresh_connection_post(two_workers.url + "/models/v2/activate", token=token).status_code == 200
    expected = predict_weights(PPO.load(tiny_models["attn1"], device="cpu"), trainee).cq
    pids = set()
    for _ in range(400):  # every answer after the activation comes from v2, whichever worker gives it
        response = fresh_connection_post(url, request_body(trainee))
        answer = response.json()
        assert answer["model_version"] == "v2"
        np.testing.assert_allclose(np.asarray(answer["cq_matrix"], dtype=np.float32), expected, rtol=0, atol=ATOL)
        pids.add(response.headers["x-worker-id"])
        if len(pids) == 2 and len(pids & served["v1"]) == 2:
            break
    assert pids == served["v1"]
    registry_of(home).activate("v1")


def test_two_workers_writing_at_once_lose_nothing(two_workers, home):
    registry = registry_of(home)
    _, generation = registry.active_token()
    versions = ["v1", "v2"] * 60

    def activate(version: str) -> tuple[int, str, str]:
        response = fresh_connection_post(f"{two_workers.url}/models/{version}/activate", token=two_workers.admin_token)
        return response.status_code, response.json()["version"], response.headers["x-worker-id"]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(activate, versions))
    assert [status for status, _, _ in results] == [200] * len(versions)
    assert [version for _, version, _ in results] == versions
    assert len({worker for _, _, worker in results}) == 2  # both workers wrote
    # Each activation of the other version counts, re-activating the active one does not (a no-op): however the
    # requests interleave, the count rose at least once and at most once per request, and the record is whole.
    assert generation < registry.active_token()[1] <= generation + len(versions)
    assert registry.active().version in ("v1", "v2")

    config = {"timesteps": 1_000_000, "n_envs": 2, "eval_trainees": 2}
    lock = threading.Lock()
    submitted: list[str] = []

    def submit(_: int) -> None:
        response = fresh_connection_post(f"{two_workers.url}/train", config, token=two_workers.admin_token)
        assert response.status_code == 202, response.text
        with lock:
            submitted.append(response.json()["job_id"])

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(submit, range(16)))
    assert len(set(submitted)) == 16
    listed = httpx.get(f"{two_workers.url}/train", params={"limit": 1000}, headers=two_workers.auth).json()
    listed = {j["job_id"] for j in listed}
    assert set(submitted) <= listed
    jobs = jobs_of(home)
    assert sum(job.job_id in submitted for job in jobs.list(1000)) == 16
    running = [job for job in jobs.list(1000) if job.state == "running"]
    assert len(running) <= 1  # max_jobs is counted over both workers
    for job_id in submitted:
        cancelled = httpx.delete(f"{two_workers.url}/train/{job_id}", headers=two_workers.auth, timeout=60)
        assert cancelled.json()["state"] == "cancelled"
    registry.activate("v1")


def test_either_worker_serves_a_running_jobs_weights_stream_and_changes(two_workers):
    from websockets.sync.client import connect

    url, token = two_workers.url, two_workers.admin_token
    bearer = {"Authorization": f"Bearer {token}"}
    auth = {**bearer, "Connection": "close"}
    train = {"timesteps": 200_000, "n_envs": 8, "eval_trainees": 4}  # an AttnCQQXPolicy job
    job_id = fresh_connection_post(f"{url}/train", train, token).json()["job_id"]
    sockets: dict[str, Any] = {}
    try:
        # the latest checkpoint's weights from both workers: the same matrices for the same checkpoint
        answers: dict[int, dict[str, list]] = {}
        deadline = time.monotonic() + 120
        while not any(len(by_worker) == 2 for by_worker in answers.values()):
            assert time.monotonic() < deadline, answers.keys()
            response = httpx.get(f"{url}/train/{job_id}/weights?trainee=1", headers=auth, timeout=60)
            if response.status_code == 200:
                body = response.json()
                answers.setdefault(body["timesteps"], {})[response.headers["x-worker-id"]] = body["cq_matrix"]
            time.sleep(0.05)
        first, second = next(by_worker for by_worker in answers.values() if len(by_worker) == 2).values()
        assert first == second
        # a socket on each worker; a change sent on one is acknowledged, applied, on both
        with contextlib.ExitStack() as stack:
            for _ in range(100):
                socket = stack.enter_context(connect(f"ws://127.0.0.1:{two_workers.port}/ws/jobs/{job_id}",
                                                     additional_headers=bearer))  # fmt: skip
                if sockets.setdefault(socket.response.headers["x-worker-id"], socket) is not socket:
                    socket.close()  # a second one on the same worker
                if len(sockets) == 2:
                    break
            assert len(sockets) == 2, "the kernel never handed a socket to the second worker"
            sender, other = sockets.values()
            sender.send(json.dumps({"type": "set_params", "name": "ent_coef", "value": 0.02}))
            for socket in (sender, other):
                while True:
                    message = json.loads(socket.recv(timeout=60))
                    if message["type"] == "param_ack" and message["change"]["applied"]:
                        break
                assert message["change"]["value"] == 0.02 and message["change"]["timestep"] > 0
    finally:
        httpx.delete(f"{url}/train/{job_id}", headers=auth, timeout=60)
