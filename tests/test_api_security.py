"""The service tried as an attacker and as an operator would try it: every attack fails safely.

Each test reproduces one way the service was broken before (anonymous mutations, code in a model archive, broken
models, huge bodies, oversized jobs, cross-site requests and DNS rebinding, reloading storms) and checks that it
is refused now and that nothing changed. The requests go to ``create_app(settings)`` in this process behind
starlette's ``TestClient`` (``InProcessApi`` in conftest.py), over the real token store, registry and job
database; what needs a socket or worker processes (a 100 MB upload, a worker killed and restarted) goes to
``fitness-weights serve`` on loopback.
"""

import contextlib
import json
import os
import signal
import socket
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import InProcessApi, hostile_archive, make_token

from fitness_weights_api import ModelRegistry
from fitness_weights_api.cli import main
from fitness_weights_api.schemas import OptimizeRequest
from fitness_weights_api.settings import ServiceSettings
from fitness_weights_env import CATALOG, METRIC_NAMES, sample_profile

ATTACK_TRAIN = {"timesteps": 1, "policy": "MlpPolicy", "preset": "sb3", "activate": True, "eval_trainees": 2}
HUGE_JOB = {"timesteps": 1, "n_envs": 16384, "eval_trainees": 10000}


def registry_of(home: Path) -> ModelRegistry:
    return ServiceSettings(home=home).open_registry()


def body() -> dict:
    profile = sample_profile(np.random.default_rng(5))
    return OptimizeRequest.from_profile(profile, "t").model_dump(mode="json", exclude_unset=True)


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def home(tmp_path_factory, tiny_models) -> Path:
    home = tmp_path_factory.mktemp("secured")
    registry = registry_of(home)
    registry.register(tiny_models["attn0"], training_config={}, activate=True)
    registry.register(tiny_models["attn1"], training_config={})
    return home


@pytest.fixture(scope="module")
def api(home):
    with InProcessApi(home, max_timesteps=1_000_000) as api:
        yield api


@pytest.fixture(scope="module")
def client(api):
    """The in-process app's client: it sends no token unless a request does."""
    return api.client


@pytest.fixture(scope="module")
def server(home, api_servers):
    """``serve`` on loopback, for what needs its socket: a 100 MB upload while /health answers."""
    return api_servers(home)


@pytest.fixture
def active_v1(home):
    yield
    registry_of(home).activate("v1")


# -- authentication and authorization ----------------------------------------------------------------------


def test_anonymous_mutations_are_refused_and_change_nothing(api, client, home, active_v1):
    response = client.post("/train", json=ATTACK_TRAIN)
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in response.json()["detail"]
    assert client.get("/train", headers=api.auth).json() == []  # nothing was queued
    assert client.post("/models/v2/activate").status_code == 401
    assert registry_of(home).active().version == "v1"

    job = client.post("/train", json={"timesteps": 1_000_000, "n_envs": 2}, headers=api.auth).json()
    try:
        assert client.delete(f"/train/{job['job_id']}").status_code == 401  # nobody cancels anyone's job
        assert client.get(f"/train/{job['job_id']}", headers=api.auth).json()["state"] in ("queued", "running")
        for elsewhere in ({"params": {"token": api.admin_token}}, {"headers": {"Cookie": f"token={api.admin_token}"}}):
            assert client.post("/models/v2/activate", **elsewhere).status_code == 401  # the header only
        for reader in (f"/train/{job['job_id']}", "/train", "/models", "/metrics"):
            assert client.get(reader).status_code == 401, reader
    finally:
        client.delete(f"/train/{job['job_id']}", headers=api.auth)
    assert registry_of(home).active().version == "v1"


def test_roles_and_revocation(client, home, active_v1):
    read = make_token(home, "read")
    assert client.get("/models", headers=bearer(read)).status_code == 200
    for method, path in (("POST", "/train"), ("POST", "/models/v2/activate"), ("DELETE", "/train/" + "0" * 32)):
        response = client.request(method, path, json=ATTACK_TRAIN, headers=bearer(read))
        assert response.status_code == 403 and "role 'admin'" in response.json()["detail"], path
    admin = make_token(home, "admin")
    assert client.post("/models/v2/activate", headers=bearer(admin)).status_code == 200
    record = ServiceSettings(home=home).open_tokens().verify(admin)
    assert main(["--home", str(home), "tokens", "revoke", record.token_id]) == 0
    response = client.post("/models/v1/activate", headers=bearer(admin))
    assert response.status_code == 401 and "unknown or revoked" in response.json()["detail"]
    assert registry_of(home).active().version == "v2"


def test_a_service_without_tokens_refuses_mutations_and_says_how_to_make_one(api_apps, tmp_path, tiny_models):
    home = tmp_path / "no-tokens"
    registry_of(home).register(tiny_models["attn0"], training_config={}, activate=True)
    client = api_apps(home, with_token=False).client
    for method, path in (("POST", "/train"), ("POST", "/models/v1/activate")):
        response = client.request(method, path, json=ATTACK_TRAIN)
        assert response.status_code == 401 and "fitness-weights tokens create --role admin" in response.text
    assert client.post("/predict_weights", json=body()).status_code == 200  # open by default
    assert ServiceSettings(home=home).open_tokens().list() == []  # and still no token


def test_require_token_guards_optimize_and_predict(api_apps, tmp_path, tiny_models):
    home = tmp_path / "required"
    registry_of(home).register(tiny_models["attn0"], training_config={}, activate=True)
    client = api_apps(home, require_token=True).client
    read = make_token(home, "read")
    for path in ("/predict_weights", "/optimize_weights"):
        assert client.post(path, json=body()).status_code == 401
        assert client.post(path, json=body(), headers=bearer(read)).status_code == 200


# -- cross-site requests and DNS rebinding -----------------------------------------------------------------


def test_host_and_origin_attacks_are_refused(api_apps, home, active_v1):
    # the default allowed hosts (loopback names), the service on 127.0.0.1:8000 as the browser sees it
    api = api_apps(home, base_url="http://127.0.0.1:8000", allowed_hosts=ServiceSettings().allowed_hosts)
    client = api.client
    assert client.get("/health").status_code == 200
    for host in ("evil.example", "evil.example:80", "127.0.0.1.evil.example", "testserver", ""):
        response = client.get("/health", headers={"Host": host})
        assert response.status_code == 400 and "Host" in response.json()["detail"], host
    # the CORS "simple request" a page on another site can send: no body, the operator's browser, even a token
    for origin in ("http://evil.example", "null", "http://127.0.0.1:8001", "https://127.0.0.1:8000"):
        response = client.post("/models/v2/activate", headers={"Origin": origin, **api.auth})
        assert response.status_code == 403 and "cross-origin" in response.json()["detail"], origin
    assert registry_of(home).active().version == "v1"
    same = client.post("/models/v2/activate", headers={"Origin": "http://127.0.0.1:8000", **api.auth})
    assert same.status_code == 200  # the service's own pages (/docs) may
    preflight = client.options(
        "/train", headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status_code == 403 and not any(h.startswith("access-control") for h in preflight.headers)


# -- limits ------------------------------------------------------------------------------------------------


def _upload(port: int, chunked: bool, results: list, size: int = 100 << 20) -> None:
    """Send a 100 MB body (declared, or chunked without a length) as fast as the server takes it; keep its answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        length = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}"
        head = (
            f"POST /predict_weights HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{length}\r\n\r\n"
        )
        sock.sendall(head.encode())
        chunk, sent = b"[" + b" " * ((1 << 20) - 1), 0
        sock.settimeout(0.5)
        answer = b""
        while sent < size:
            with contextlib.suppress(TimeoutError):  # nothing to read yet: send more
                answer = sock.recv(65536)
            if answer:
                break
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        sock.settimeout(30)
        while b"\r\n\r\n" not in answer:
            more = sock.recv(65536)
            if not more:
                break
            answer += more
        results.append((answer, sent))


def _rss_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1])


def test_a_100_mb_body_is_refused_before_parsing_while_health_answers(server):
    rss_before = _rss_kb(server.process.pid)  # one worker: uvicorn runs in the serve process
    results: list = []
    uploads = [threading.Thread(target=_upload, args=(server.port, i % 2 == 1, results)) for i in range(4)]
    for upload in uploads:
        upload.start()
    health = []
    while any(upload.is_alive() for upload in uploads):
        health.append(httpx.get(f"{server.url}/health", timeout=30).status_code)
    for upload in uploads:
        upload.join()
    assert len(results) == 4
    for answer, sent in results:
        head, _, rest = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 413"), answer[:200]
        assert b"larger than 65536 bytes" in rest or b"content-length" in head.lower()
        assert sent < 8 << 20  # refused after at most a few MiB, not after 100
    assert health and set(health) == {200}
    assert _rss_kb(server.process.pid) - rss_before < 50_000  # no body was buffered


def test_the_largest_valid_request_fits_well_under_the_body_limit(client):
    def longest(item) -> str:
        return max((item.name_en, item.name_zh), key=lambda name: len(name.encode()))

    largest = {
        **body(),
        "user_id": "u" * 128,
        "current_qualities": {longest(q): 0.12345678901234567 for q in CATALOG.qualities},
        "target_subjects": [longest(s) for s in CATALOG.subjects],
        "subject_scores": {longest(s): 0.12345678901234567 for s in CATALOG.subjects},
        "performance_metrics": {m: 0.12345678901234567 for m in METRIC_NAMES},
        "optimization_steps": 1,
    }
    text = json.dumps(largest, indent=2).encode()
    assert len(text) * 4 < ServiceSettings().max_body_bytes
    response = client.post("/optimize_weights", content=text, headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text


def test_an_oversized_job_is_refused_naming_the_field(api, client):
    before = client.get("/train", headers=api.auth).json()
    for config, field in ((HUGE_JOB, "n_envs"), ({"timesteps": 1, "eval_trainees": 10000}, "eval_trainees")):
        response = client.post("/train", json=config, headers=api.auth)
        assert response.status_code == 422, response.text
        assert response.json()["detail"][0]["loc"] == ["body", field]
    assert client.get("/train", headers=api.auth).json() == before  # nothing was queued


def test_reactivating_the_active_version_reloads_nothing(api, client, home):
    _, generation = registry_of(home).active_token()
    for _ in range(50):
        assert client.post("/models/v1/activate", headers=api.auth).status_code == 200
    assert registry_of(home).active_token() == ("v1", generation)


# -- models ------------------------------------------------------------------------------------------------


def _workers(supervisor: int) -> set[int]:
    children = set()
    for task in Path(f"/proc/{supervisor}/task").iterdir():
        children |= {int(pid) for pid in (task / "children").read_text().split()}
    return {pid for pid in children if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()}


def test_a_hostile_archive_never_runs_register_activate_serve_restart_cli(api_servers, tmp_path, tiny_models):
    marker = tmp_path / "payload-ran"
    archive = hostile_archive(tiny_models["attn0"], tmp_path / "hostile.zip", marker)
    home = tmp_path / "home"
    assert main(["--home", str(home), "models", "register", str(archive), "--activate"]) == 0
    server = api_servers(home, workers=2)
    answered = set()
    for _ in range(20):  # fresh connections: both workers load and serve it
        response = httpx.post(f"{server.url}/predict_weights", json=body(), headers={"Connection": "close"})
        assert response.status_code == 200 and response.json()["model_version"] == "v1"
        answered.add(response.headers["x-worker-id"])
    workers = _workers(server.process.pid)
    assert len(workers) == 2
    os.kill(next(iter(workers)), signal.SIGKILL)  # the supervisor starts another, which loads the model anew
    deadline = time.monotonic() + 60
    while (len(_workers(server.process.pid) - workers) < 1) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(_workers(server.process.pid) - workers) == 1
    short = {**body(), "optimization_steps": 4}  # what is tried is the new worker's load, not the steps
    while time.monotonic() < deadline:  # until the new worker (an id not seen before the kill) answers
        response = httpx.post(f"{server.url}/optimize_weights", json=short, headers={"Connection": "close"})
        assert response.status_code == 200 and response.json()["model_version"] == "v1"
        if response.headers["x-worker-id"] not in answered:
            break
    else:
        pytest.fail("the restarted worker never answered")
    profile = tmp_path / "trainee.json"
    profile.write_text(json.dumps(body()))
    assert main(["--home", str(home), "predict", "--profile", str(profile)]) == 0
    assert main(["--home", str(home), "evaluate", str(archive), "--trainees", "2"]) == 0  # a file: converted too
    assert not marker.exists()
    server.stop()


def test_a_version_that_does_not_load_leaves_the_previous_one_serving(api, client, home, active_v1):
    assert client.post("/predict_weights", json=body()).json()["model_version"] == "v1"
    assert client.post("/models/v2/activate", headers=api.auth).status_code == 200
    path = registry_of(home).path("v2")
    original = path.read_bytes()
    changed = bytearray(original)
    changed[-3] ^= 0x01  # changed on disk after it was checked: same size, another hash
    path.write_bytes(bytes(changed))
    try:
        for _ in range(3):
            response = client.post("/predict_weights", json=body())
            assert response.status_code == 200 and response.json()["model_version"] == "v1"
        health = client.get("/health").json()
        assert health["status"] == "degraded" and (health["active_model"], health["served_model"]) == ("v2", "v1")
        assert "v2" in health["problem"] and "sha256" in health["problem"] and str(home) not in health["problem"]
    finally:
        path.write_bytes(original)
    assert client.post("/models/v1/activate", headers=api.auth).status_code == 200
    assert client.get("/health").json()["status"] == "ok"


def test_answers_carry_no_internals(api, client, home, active_v1):
    response = client.get(f"/train/{'0' * 32}", headers=api.auth)
    assert response.status_code == 404 and "0" * 32 not in response.text
    response = client.post("/models/v77/activate", headers=api.auth)
    assert response.status_code == 404 and "v77" not in response.text and "known versions: v1, v2" in response.text
    health = client.get("/health")
    assert "x-worker-pid" not in health.headers and "pid" not in health.json()
    assert str(os.getpid()) not in health.text  # the app runs in this process: its pid is this one
    path = registry_of(home).path("v2")
    saved = path.read_bytes()
    path.unlink()  # a damaged registry: the version's file is gone
    try:
        response = client.post("/models/v2/activate", headers=api.auth)
        assert response.status_code == 409 and "damaged" in response.text and str(home) not in response.text
    finally:
        path.write_bytes(saved)
    assert registry_of(home).active().version == "v1"
