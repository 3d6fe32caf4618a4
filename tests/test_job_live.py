"""A running job's metrics, parameter changes and log in the job database: real job processes, real SQLite."""

import json
import sqlite3
import time

import pytest
from conftest import make_token
from test_jobs import LONG, TIMEOUT_S, assert_public, fake_python, make_manager, poll, tiny

from fitness_weights_api import JobError, ModelRegistry
from fitness_weights_api.job_live import MAX_PENDING
from fitness_weights_api.job_store import FINAL_STATES, SCHEMA_VERSION
from fitness_weights_env import FieldError


@pytest.fixture
def registry(tmp_path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "registry")


def _wait_for(read, until, timeout_s=TIMEOUT_S):
    deadline = time.monotonic() + timeout_s
    while True:
        value = read()
        if until(value):
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out; last read {value!r}")
        time.sleep(0.1)


def test_a_running_job_logs_metrics_takes_a_change_at_its_next_rollout_and_logs_it(tmp_path, registry):
    manager = make_manager(tmp_path / "jobs", registry)
    job = manager.submit(tiny(LONG, eval_rollouts=2))
    try:
        rows = _wait_for(lambda: manager.metrics(job.job_id), lambda rows: len(rows) >= 2)
        assert "eval/normalized_score" in rows[1].metrics and "eval/normalized_score" not in rows[0].metrics
        assert all(row.step > 0 for row in rows) and [r.seq for r in rows] == sorted(r.seq for r in rows)
        assert "train/learning_rate" in rows[-1].metrics and "time/fps" in rows[-1].metrics
        before = rows[-1].metrics["train/learning_rate"]
        request = manager.set_param(job.job_id, "learning_rate", before / 4, requested_by="token admin-1")
        assert request.pending and request.requested_by == "token admin-1"
        (done,) = _wait_for(lambda: manager.params(job.job_id), lambda params: not params[0].pending)
        assert (
            done.applied is not None and done.error is None and done.previous == pytest.approx(before, rel=1e-3)
        )  # the schedule moved on a little
        assert done.timestep > rows[-1].step  # a later rollout boundary than the last dump seen
        # the update after the boundary uses it: a later dump logs the new rate
        later = _wait_for(
            lambda: manager.metrics(job.job_id, after=rows[-1].seq),
            lambda new: any(r.step > done.timestep and "train/learning_rate" in r.metrics for r in new),
        )
        logged = [r.metrics["train/learning_rate"] for r in later if r.step > done.timestep]
        assert logged and all(value == pytest.approx(before / 4) for value in logged if value is not None)
        assert any(r.metrics.get("live/learning_rate") == pytest.approx(before / 4) for r in later)
        lines = [line.text for line in manager.log(job.job_id)]
        assert lines[0].startswith("training {") and any("live parameter learning_rate" in t for t in lines)
        for line in lines:
            assert_public(line)
    finally:
        manager.cancel(job.job_id)
    lines = manager.log(job.job_id)
    assert lines[-1].text == "cancelled" and [line.seq for line in lines] == sorted(line.seq for line in lines)
    assert manager.log(job.job_id, after=lines[-2].seq) == lines[-1:]


def test_a_refused_change_stores_nothing_and_an_ended_job_takes_none(tmp_path, registry):
    manager = make_manager(tmp_path / "jobs", registry, python=fake_python(tmp_path, "exec sleep 600"))
    job = manager.submit(tiny())
    try:
        for name, value, field in (
            ("n_steps", 128, "n_steps"),
            ("gamma", 0.9, "name"),
            ("ent_coef", -1.0, "ent_coef"),
            ("learning_rate", float("nan"), "learning_rate"),
            ("n_epochs", "3", "n_epochs"),
        ):
            with pytest.raises(FieldError) as caught:
                manager.set_param(job.job_id, name, value, requested_by="admin")
            assert caught.value.field == field
        assert manager.params(job.job_id) == []
        with pytest.raises(FieldError, match="job_id"):
            manager.set_param("../etc", "ent_coef", 0.1, requested_by="admin")
        for _ in range(MAX_PENDING):
            manager.set_param(job.job_id, "ent_coef", 0.01, requested_by="admin")
        with pytest.raises(JobError, match=f"at most {MAX_PENDING}"):
            manager.set_param(job.job_id, "ent_coef", 0.01, requested_by="admin")
        assert len(manager.params(job.job_id)) == MAX_PENDING
    finally:
        manager.cancel(job.job_id)
    assert manager.get(job.job_id).state in FINAL_STATES
    with pytest.raises(JobError, match="has ended"):
        manager.set_param(job.job_id, "ent_coef", 0.02, requested_by="admin")
    with pytest.raises(FieldError, match="after"):
        manager.metrics(job.job_id, after=-1)


def test_a_schema_1_job_database_gains_the_live_tables_and_keeps_its_jobs(tmp_path, registry):
    manager = make_manager(tmp_path / "jobs", registry, python=fake_python(tmp_path, "exit 0"))
    job = poll(manager, manager.submit(tiny()).job_id, lambda job: job.state in FINAL_STATES)[-1]
    with sqlite3.connect(manager.database_path) as conn:  # back to schema 1: the jobs table alone
        for table in ("job_metrics", "job_params", "job_log"):
            conn.execute(f"DROP TABLE {table}")
        conn.execute("PRAGMA user_version = 1")
    reopened = make_manager(tmp_path / "jobs", registry)
    assert reopened.get(job.job_id) == job and reopened.metrics(job.job_id) == []
    with sqlite3.connect(manager.database_path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"jobs", "job_metrics", "job_params", "job_log"} <= tables


def test_the_http_api_follows_a_job_and_only_an_admin_changes_it(api_apps, tmp_path, tiny_models):
    home = tmp_path / "live"
    ModelRegistry(home / "registry").register(tiny_models["attn0"], training_config={}, activate=True)
    api = api_apps(home)
    client, admin = api.client, api.auth
    read = {"Authorization": f"Bearer {make_token(home, 'read')}"}
    train = {"timesteps": LONG, "n_envs": 8, "eval_trainees": 4, "policy": "MlpPolicy"}
    job_id = client.post("/train", json=train, headers=admin).json()["job_id"]
    rows = _wait_for(lambda: client.get(f"/train/{job_id}/metrics", headers=read).json(), lambda rows: len(rows) >= 1)
    assert rows[0]["step"] > 0 and "time/fps" in rows[0]["metrics"]
    path = f"/train/{job_id}/params"
    change = {"name": "ent_coef", "value": 0.03}
    assert client.post(path, json=change).status_code == 401
    assert client.post(path, json=change, headers=read).status_code == 403
    for bad, field in (
        ({"name": "ent_coef", "value": -1}, "ent_coef"),
        ({"name": "n_steps", "value": 8}, "name"),
        ({"name": "n_epochs", "value": True}, "value"),
        ({"name": "ent_coef"}, "value"),
    ):
        response = client.post(path, json=bad, headers=admin)
        assert response.status_code == 422 and field in json.dumps(response.json()["detail"]), bad
    assert client.get(path, headers=read).json() == []  # nothing stored
    accepted = client.post(path, json=change, headers=admin)
    assert accepted.status_code == 202 and accepted.json()["requested_by"].startswith("tests-admin (")
    (done,) = _wait_for(lambda: client.get(path, headers=read).json(), lambda params: params[0]["applied"])
    assert done["value"] == 0.03 and done["timestep"] > 0 and done["error"] is None
    lines = client.get(f"/train/{job_id}/log", headers=read).json()
    assert any("live parameter ent_coef" in line["text"] for line in lines)
    assert client.get(f"/train/{job_id}/log?after={lines[-1]['seq']}&limit=5", headers=read).status_code == 200
    assert client.get(f"/train/{job_id}/log?limit=0", headers=read).status_code == 422
    assert client.get(f"/train/{'0' * 32}/metrics", headers=read).status_code == 404
    client.delete(f"/train/{job_id}", headers=admin)
    ended = client.post(path, json=change, headers=admin)
    assert ended.status_code == 409 and "has ended" in ended.json()["detail"]


def _read_until(socket, until, limit=2000):
    """Messages from the socket until ``until(messages)``; fails after ``limit`` messages."""
    messages = []
    while len(messages) < limit:
        messages.append(socket.receive_json())
        if until(messages):
            return messages
    pytest.fail(f"no such message in {limit}: {messages[-3:]}")


def _of(messages, kind):
    return [message for message in messages if message["type"] == kind]


def test_the_websocket_streams_a_job_and_takes_changes_from_an_admin_only(api_apps, tmp_path, tiny_models):
    home = tmp_path / "socket"
    ModelRegistry(home / "registry").register(tiny_models["attn0"], training_config={}, activate=True)
    api = api_apps(home)
    client, admin_token = api.client, api.admin_token
    read_token = make_token(home, "read")
    train = {"timesteps": LONG, "n_envs": 8, "eval_trainees": 4, "policy": "MlpPolicy"}
    job_id = client.post("/train", json=train, headers=api.auth).json()["job_id"]
    path = f"/ws/jobs/{job_id}"
    with client.websocket_connect(path, headers={"Authorization": f"Bearer {read_token}"}) as reader:
        seen = _read_until(reader, lambda m: sum(len(x["rows"]) for x in _of(m, "metrics")) >= 3)
        assert seen[0]["type"] == "state" and seen[0]["job"]["job_id"] == job_id
        steps = [row["step"] for message in _of(seen, "metrics") for row in message["rows"]]
        assert steps == sorted(steps) and len(set(steps)) == len(steps)  # each dump once, in order
        reader.send_json({"type": "set_params", "name": "ent_coef", "value": 0.03})
        refused = _read_until(reader, lambda m: m[-1]["type"] == "error")[-1]
        assert refused["field"] == "token" and "role 'admin'" in refused["detail"]
        with client.websocket_connect(path) as admin:  # a browser: the token in the first message
            admin.send_json({"type": "auth", "token": admin_token})
            for bad, field in (
                ({"name": "ent_coef", "value": -1}, "ent_coef"),
                ({"name": "n_steps", "value": 8}, "name"),
                ({"name": "ent_coef"}, "value"),
            ):
                admin.send_json({"type": "set_params", **bad})
                error = _read_until(admin, lambda m: m[-1]["type"] == "error")[-1]
                assert error["field"] == field, (bad, error)
            assert client.get(f"/train/{job_id}/params", headers=api.auth).json() == []  # nothing stored
            admin.send_json({"type": "set_params", "name": "ent_coef", "value": 0.03})
            acks = _read_until(admin, lambda m: any(a["change"]["applied"] for a in _of(m, "param_ack")))
            stored, applied = _of(acks, "param_ack")[0]["change"], _of(acks, "param_ack")[-1]["change"]
            assert stored["applied"] is None and applied["timestep"] > 0 and applied["value"] == 0.03
            assert applied["requested_by"].startswith("tests-admin (")
        # the reader sees the change too, and the job's log line of it

        def change_and_log_seen(messages):
            applied = any(a["change"]["applied"] for a in _of(messages, "param_ack"))
            lines = [line["text"] for message in _of(messages, "log") for line in message["lines"]]
            return applied and any("live parameter ent_coef" in text for text in lines)

        _read_until(reader, change_and_log_seen)
    client.delete(f"/train/{job_id}", headers=api.auth)
    # a page that connects late gets the whole history, down to the final state
    with client.websocket_connect(path, headers={"Authorization": f"Bearer {read_token}"}) as late:
        history = _read_until(late, lambda m: any(x["text"] == "cancelled" for y in _of(m, "log") for x in y["lines"]))
        assert history[0]["type"] == "state" and history[0]["job"]["state"] == "cancelled"
        rows = [row for message in _of(history, "metrics") for row in message["rows"]]
        assert len(rows) == len(client.get(f"/train/{job_id}/metrics", headers=api.auth).json()) >= 3
        assert [a["change"]["value"] for a in _of(history, "param_ack")] == [0.03]


def test_the_websocket_refuses_missing_wrong_and_url_tokens_and_other_origins(api_apps, tmp_path, tiny_models):
    from starlette.websockets import WebSocketDisconnect

    home = tmp_path / "socket-auth"
    ModelRegistry(home / "registry").register(tiny_models["attn0"], training_config={}, activate=True)
    api = api_apps(home)
    client = api.client
    path = f"/ws/jobs/{'0' * 32}"
    for first in ({"type": "set_params", "name": "ent_coef", "value": 0.1}, {"type": "auth", "token": "nope"}):
        with client.websocket_connect(f"{path}?token={api.admin_token}") as socket:  # the URL's token is ignored
            socket.send_json(first)
            error = socket.receive_json()
            assert error["type"] == "error" and error["field"] == "token"
            with pytest.raises(WebSocketDisconnect) as closed:
                socket.receive_json()
            assert closed.value.code == 1008
    with client.websocket_connect(path, headers=api.auth) as socket:  # a valid token, an unknown job
        assert socket.receive_json() == {"type": "error", "field": "job_id", "detail": "unknown job"}
    with client.websocket_connect(path) as socket:  # more than a message may hold
        socket.send_text("x" * 5000)
        assert socket.receive_json()["field"] == "message"
    evil = {**api.auth, "Origin": "http://evil.example"}  # another site's page: refused before the handshake
    with pytest.raises(WebSocketDisconnect), client.websocket_connect(path, headers=evil) as socket:
        socket.receive_json()


def test_the_api_takes_exactly_the_parameters_the_callback_takes():
    from typing import get_args

    from fitness_weights_api.schemas import ParamChangeRequest
    from sb3_ext.live_params import LIVE_PARAMS

    assert set(get_args(ParamChangeRequest.model_fields["name"].annotation)) == set(LIVE_PARAMS)


def test_the_dashboard_page_and_its_files_come_from_the_service_itself(api_apps, tmp_path, tiny_models):
    import re

    from fitness_weights_api.dashboard import CONTENT_SECURITY_POLICY, plotly_js

    home = tmp_path / "ui"
    ModelRegistry(home / "registry").register(tiny_models["attn0"], training_config={}, activate=True)
    client = api_apps(home).client
    page = client.get("/ui")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    sources = [source for source in re.findall(r'(?:src|href)="([^"]+)"', page.text) if source != "data:,"]
    assert sources and all(source.startswith("/ui/static/") for source in sources)  # no CDN, nothing elsewhere
    for source in sources:
        response = client.get(source)
        assert response.status_code == 200 and response.headers["x-content-type-options"] == "nosniff", source
    plotly = client.get("/ui/static/plotly.min.js")
    assert plotly.headers["content-type"].startswith("text/javascript")
    assert plotly.content == plotly_js().read_bytes()
    script = client.get("/ui/static/ui.js").text
    assert "new WebSocket(" in script and '"auth"' in script and "?token" not in script
    for name in ("../app.py", "index.html", "%2e%2e%2fapp.py", "ui.py"):
        assert client.get(f"/ui/static/{name}").status_code == 404, name
