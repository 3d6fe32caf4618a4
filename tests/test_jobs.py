"""Training jobs: real job processes, real SQLite files under tmp_path, real signals; no mocks."""

import json
import math
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from conftest import InProcessApi

import fitness_weights_env  # noqa: F401  (registers FitnessWeights-v0)
from fitness_weights_api import JobConfig, JobError, JobManager, ModelRegistry, UnknownJobError
from fitness_weights_api.job_store import FINAL_STATES, public_error, redact_paths
from fitness_weights_api.schemas import OptimizeRequest
from fitness_weights_api.service import WeightService
from fitness_weights_api.settings import ServiceSettings
from fitness_weights_env import FieldError, sample_profile
from sb3_ext import PPO

TIMEOUT_S = 120  # generous: the machine is busy
JOB_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
SMALL_POLICY = {"embed_dim": 16, "n_heads": 2, "n_latents": 2}
TINY = {"n_envs": 8, "eval_trainees": 4, "device": "cpu", "policy_kwargs": SMALL_POLICY}
LONG = 200_000  # timesteps of a job that is still running when the test stops it


def tiny(timesteps: int = 1024, **overrides) -> JobConfig:
    return JobConfig(timesteps=timesteps, **{**TINY, **overrides})


def make_manager(root: Path, registry: ModelRegistry, **kwargs) -> JobManager:
    settings = {"env": JOB_ENV, "checkpoint_rollouts": 1, "cancel_grace_s": 5.0, **kwargs}
    return JobManager(root, registry, **settings)


@pytest.fixture
def registry(tmp_path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "registry")


@pytest.fixture
def manager(tmp_path, registry):
    manager = make_manager(tmp_path / "jobs", registry)
    yield manager
    for job in manager.list(limit=1000):  # leave no job process behind, even when a test fails
        if job.state not in FINAL_STATES:
            manager.cancel(job.job_id)


def poll(manager: JobManager, job_id: str, until, timeout_s: float = TIMEOUT_S):
    """Refresh and read the job every 0.1 s until ``until(job)``; returns the jobs seen, the last one last."""
    seen = []
    deadline = time.monotonic() + timeout_s
    while True:
        manager.refresh()
        seen.append(manager.get(job_id))
        if until(seen[-1]):
            return seen
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting on job {job_id}: {seen[-1]}")
        time.sleep(0.1)


def train_in_process(path: Path) -> Path:
    env = gym.make("FitnessWeights-v0")
    model = PPO(
        "AttnCQQXPolicy", env, n_steps=64, batch_size=64, n_epochs=1, seed=0, device="cpu", policy_kwargs=SMALL_POLICY
    )
    model.learn(64).save(path)
    return path


def checkpoint_timesteps(path: Path) -> int:
    """``num_timesteps`` of an SB3 zip, read from its ``data`` entry (cheaper than loading the model)."""
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("data"))["num_timesteps"]


def fake_python(tmp_path: Path, script: str) -> Path:
    """A stand-in for the job interpreter: a shell script that ignores its arguments (no torch, fast)."""
    path = tmp_path / f"fake-python-{uuid.uuid4().hex[:8]}"
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)
    return path


def assert_public(error: str, *secrets: str) -> None:
    """The error names no absolute path, no pid, and none of ``secrets``."""
    assert not re.search(r"(^|[\s'\"=(])/\S", error), error
    assert "pid" not in error, error
    for secret in secrets:
        assert secret not in error, error


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# A process that refreshes the jobs once a file appears (so that several start together); it imports no torch.
REFRESH = """
import pathlib, sys, time
from fitness_weights_api import JobManager, ModelRegistry
root, registry_root, go = sys.argv[1:]
manager = JobManager(root, ModelRegistry(registry_root), max_concurrent=3, env={"OMP_NUM_THREADS": "1"})
while not pathlib.Path(go).exists():
    time.sleep(0.005)
manager.refresh()
"""


# -- running jobs ------------------------------------------------------------------------------------------


def test_jobs_run_one_at_a_time_record_progress_and_register_their_models(manager, registry):
    first = manager.submit(tiny(activate=True, seed=0))
    second = manager.submit(tiny(seed=1))
    assert (first.state, second.state) == ("running", "queued")
    assert first.pid is not None and first.started is not None and first.finished is None
    assert (second.pid, second.started, second.timesteps_done, second.total_timesteps) == (None, None, 0, 1024)

    def first_done_second_queued_meanwhile(job):
        later = manager.get(second.job_id)
        if job.state == "running":  # read before: while the first runs, refresh does not start the second
            assert later.state == "queued"
        return job.state in FINAL_STATES

    seen = poll(manager, first.job_id, first_done_second_queued_meanwhile)
    first = seen[-1]
    assert first.state == "succeeded", first.error
    progress = [job.timesteps_done for job in seen]
    assert progress == sorted(progress) and progress[-1] >= 1024
    assert first.last_mean_reward is not None and math.isfinite(first.last_mean_reward)
    assert first.error is None and first.finished is not None and first.started <= first.finished
    assert Path(first.checkpoint) == manager.job_dir(first.job_id) / "checkpoint.zip"
    assert Path(first.checkpoint).is_file()

    record = registry.get(first.model_version)
    assert record.metadata["job_id"] == first.job_id and record.metadata["policy"] == "AttnCQQXPolicy"
    assert record.training_config == first.config.to_dict()
    assert math.isfinite(record.evaluation_score)
    assert registry.active_token()[0] == first.model_version
    trainee = sample_profile(np.random.default_rng(3))
    assert WeightService(registry).predict(trainee).model_version == first.model_version

    second = manager.wait(second.job_id, TIMEOUT_S, poll_s=0.1)  # refresh started it once the first finished
    assert second.state == "succeeded", second.error
    assert second.started >= first.finished
    assert registry.get(second.model_version).metadata["job_id"] == second.job_id
    assert registry.active_token()[0] == first.model_version  # activate=False: the first stays active
    assert [job.job_id for job in manager.list()] == [second.job_id, first.job_id]
    assert manager.list(state="queued") == []
    log = (manager.job_dir(second.job_id) / "job.log").read_text()
    assert f"succeeded, registered {second.model_version}" in log


def test_a_killed_job_fails_keeps_its_last_checkpoint_and_the_active_model_still_serves(tmp_path, registry):
    """The one SIGKILL of a training job in the default suite (the checkpoint cadence, the job's state, the API)."""
    active = registry.register(train_in_process(tmp_path / "previous.zip"), training_config={}, activate=True)
    service = WeightService(registry)
    trainee = sample_profile(np.random.default_rng(5))
    before = service.predict(trainee)
    # rooted at tmp_path, the registry at tmp_path/registry: the layout of a service folder (InProcessApi below)
    manager = make_manager(tmp_path, registry, checkpoint_rollouts=3, checkpoint_seconds=3600.0)
    try:
        job = manager.submit(tiny(LONG))
        first = poll(manager, job.job_id, lambda job: job.timesteps_done > 0)[-1]
        assert first.state == "running"
        assert first.checkpoint is not None  # recorded with the first rollout's progress, not 10 rollouts later
        assert os.getpriority(os.PRIO_PROCESS, first.pid) == min(19, os.getpriority(os.PRIO_PROCESS, 0) + 10)  # niced
        rollout = TINY["n_envs"] * 64
        seen = set()

        def five_rollouts_done(job):
            seen.add(checkpoint_timesteps(Path(job.checkpoint)))
            return job.timesteps_done >= 5 * rollout

        job = poll(manager, job.job_id, five_rollouts_done)[-1]
        assert seen and seen <= {rollout, 4 * rollout, 7 * rollout}, (
            seen
        )  # rollouts 1, 4, 7...: every 3 after the first
        os.killpg(job.pid, signal.SIGKILL)
        job = manager.wait(job.job_id, TIMEOUT_S, poll_s=0.1)
    finally:
        for left in manager.list(limit=1000):  # leave no job process behind when an assert above fails
            if left.state not in FINAL_STATES:
                manager.cancel(left.job_id)

    assert job.state == "failed"
    assert job.error == "the job process was killed by signal SIGKILL"
    assert job.model_version is None and job.finished is not None
    assert 5 * rollout <= job.timesteps_done < LONG
    assert Path(job.checkpoint) == manager.job_dir(job.job_id) / "checkpoint.zip"
    assert rollout <= checkpoint_timesteps(Path(job.checkpoint)) <= job.timesteps_done  # the last one written
    PPO.load(job.checkpoint, device="cpu")  # a complete, loadable SB3 model
    assert not [name for name in os.listdir(manager.job_dir(job.job_id)) if name.startswith(".partial-")]
    assert process_gone(job.pid)

    assert registry.versions() == [registry.get(active.version)]  # nothing registered
    assert registry.active_token()[0] == active.version
    after = service.predict(trainee)
    assert after.model_version == active.version
    np.testing.assert_array_equal(after.result.cq, before.result.cq)
    assert manager.refresh() == [] and manager.get(job.job_id) == job  # final states stay

    # what the API says of it, from the same folder: the app in process (conftest.py)
    with InProcessApi(tmp_path) as api:
        answer = api.client.get(f"/train/{job.job_id}", headers=api.auth).json()
        assert (answer["state"], answer["error"]) == ("failed", job.error)
        assert answer["has_checkpoint"] and answer["model_version"] is None
        assert answer["timesteps_done"] == job.timesteps_done
        models = api.client.get("/models", headers=api.auth).json()
        assert models["active"] == active.version
        assert all(m["metadata"].get("job_id") != job.job_id for m in models["models"])
        body = OptimizeRequest.from_profile(trainee, "t").model_dump(mode="json", exclude_unset=True)
        served = api.client.post("/predict_weights", json=body)
        assert served.status_code == 200 and served.json()["model_version"] == active.version
        cq = np.asarray(served.json()["cq_matrix"], dtype=before.result.cq.dtype)
        np.testing.assert_array_equal(cq, before.result.cq)


def test_a_job_that_raises_fails_with_the_error_and_its_traceback_in_the_log(manager, registry):
    job = manager.submit(tiny(policy_kwargs={"no_such_argument": 1}))
    job = manager.wait(job.job_id, TIMEOUT_S, poll_s=0.1)
    assert job.state == "failed"
    assert job.error.startswith("TypeError: ") and "no_such_argument" in job.error
    assert "Traceback" not in job.error and "\n" not in job.error
    log = (manager.job_dir(job.job_id) / "job.log").read_text()
    assert "Traceback (most recent call last)" in log and "no_such_argument" in log
    assert registry.versions() == []


def test_cancel_a_queued_and_a_running_job(manager, registry):
    running = manager.submit(tiny(LONG))
    queued = manager.submit(tiny())
    assert (running.state, queued.state) == ("running", "queued")

    cancelled = manager.cancel(queued.job_id)
    assert (cancelled.state, cancelled.pid, cancelled.started, cancelled.error) == ("cancelled", None, None, None)
    assert cancelled.finished is not None

    poll(manager, running.job_id, lambda job: job.timesteps_done > 0)  # training, its SIGTERM handler installed
    cancelled = manager.cancel(running.job_id)
    assert (cancelled.state, cancelled.error, cancelled.model_version) == ("cancelled", None, None)
    assert cancelled.cancel_requested and cancelled.finished is not None
    assert process_gone(cancelled.pid)
    assert "cancelled by signal SIGTERM" in (manager.job_dir(running.job_id) / "job.log").read_text()
    assert manager.cancel(running.job_id) == cancelled  # idempotent
    assert manager.refresh() == []  # the cancelled queued job is never started
    assert registry.versions() == []


def test_concurrent_refreshes_in_several_processes_respect_max_concurrent(manager, registry, tmp_path):
    jobs = [manager.submit(tiny(LONG, seed=seed)) for seed in range(5)]
    assert [job.state for job in jobs] == ["running"] + ["queued"] * 4

    go = tmp_path / "go"
    command = [sys.executable, "-c", REFRESH, str(manager.root), str(registry.root), str(go)]
    refreshers = [subprocess.Popen(command) for _ in range(3)]
    time.sleep(0.5)
    go.touch()
    for refresher in refreshers:
        assert refresher.wait(TIMEOUT_S) == 0

    jobs = [manager.get(job.job_id) for job in jobs]
    assert [job.state for job in jobs] == ["running"] * 3 + ["queued"] * 2  # max_concurrent=3 overall, in order
    assert manager.refresh() == []  # this manager's bound is 1: it starts nothing

    # Two jobs that other processes started die. One had registered its model (it died before recording that):
    # it succeeded with that version. The other failed; its exit status is known only to its (gone) starter.
    registered = registry.register(
        train_in_process(tmp_path / "model.zip"), training_config={}, metadata={"job_id": jobs[1].job_id}
    )
    for job in jobs[1:3]:
        os.killpg(job.pid, signal.SIGKILL)
    both_final = lambda job: job.state in FINAL_STATES and manager.get(jobs[1].job_id).state in FINAL_STATES  # noqa: E731
    settled = poll(manager, jobs[2].job_id, both_final)[-1]
    assert settled.state == "failed"
    assert settled.error == "the job process ended without recording a final state; see the job's log"
    settled = manager.get(jobs[1].job_id)
    assert (settled.state, settled.model_version, settled.error) == ("succeeded", registered.version, None)
    assert manager.get(jobs[3].job_id).state == "queued"  # one still runs, and this manager's bound is 1

    for job in jobs:
        manager.cancel(job.job_id)
    assert [manager.get(job.job_id).state for job in jobs] == ["cancelled", "succeeded", "failed"] + ["cancelled"] * 2
    assert registry.versions() == [registry.get(registered.version)]


@pytest.mark.slow  # the default intervals; test_a_killed_job_fails_keeps_its_last_checkpoint_... kills one too
def test_a_job_killed_after_its_first_rollout_has_a_checkpoint(tmp_path, registry):
    manager = make_manager(tmp_path / "jobs", registry, checkpoint_rollouts=10, checkpoint_seconds=60.0)  # defaults
    job = manager.submit(tiny(LONG))
    job = poll(manager, job.job_id, lambda job: job.timesteps_done > 0)[-1]
    os.killpg(job.pid, signal.SIGKILL)
    job = manager.wait(job.job_id, TIMEOUT_S, poll_s=0.1)
    assert job.state == "failed" and job.model_version is None
    assert Path(job.checkpoint) == manager.job_dir(job.job_id) / "checkpoint.zip"
    assert checkpoint_timesteps(Path(job.checkpoint)) >= TINY["n_envs"] * 64
    PPO.load(job.checkpoint, device="cpu")


def test_a_job_over_its_memory_limit_fails_cleanly_keeps_its_checkpoint_and_registers_nothing(tmp_path, registry):
    # What the job process maps before it trains (torch and the libraries), measured here: it depends on the build.
    measure = (
        "import fitness_weights_api.train_job, fitness_weights_env, sb3_ext, sb3_ext.evaluate\n"
        "import stable_baselines3.common.callbacks\n"
        "status = dict(line.split(':', 1) for line in open('/proc/self/status'))\n"
        "print(int(status['VmPeak'].split()[0]) >> 10)"
    )
    imports_mb = int(subprocess.check_output([sys.executable, "-c", measure], env={**os.environ, **JOB_ENV}))
    # The gpu preset with 128 envs: one rollout of 8192 steps, trained in one batch of 8192. Measured above the
    # imports: about 160 MiB up to the first rollout's end (the checkpoint), about 880 MiB once it trains.
    limit_mb = imports_mb + 450
    manager = make_manager(tmp_path / "jobs", registry, memory_mb=limit_mb, checkpoint_rollouts=10)
    job = manager.submit(JobConfig(timesteps=LONG, preset="gpu", n_envs=128, eval_trainees=4, device="cpu"))
    job = manager.wait(job.job_id, TIMEOUT_S, poll_s=0.1)
    assert job.state == "failed"
    assert job.error == (
        f"MemoryError: the job ran out of its memory limit of {limit_mb} MiB (memory_mb, the "
        "FITNESS_WEIGHTS_JOB_MEMORY_MB setting); ask for fewer n_envs or eval_trainees or a smaller policy, "
        "or raise the limit"
    )
    assert job.timesteps_done == 128 * 64  # the first rollout, recorded with its checkpoint
    assert checkpoint_timesteps(Path(job.checkpoint)) == 128 * 64
    PPO.load(job.checkpoint, device="cpu")
    names = os.listdir(manager.job_dir(job.job_id))
    assert "model.zip" not in names and not [name for name in names if name.startswith(".partial-")]
    assert registry.versions() == []
    log = (manager.job_dir(job.job_id) / "job.log").read_text()
    assert "Traceback (most recent call last)" in log and f"(limit {limit_mb} MiB)" in log


def test_job_errors_name_no_absolute_path_and_no_pid(tmp_path, registry):
    # A job whose checkpoint cannot be written: a folder stands where it goes. A job (a fake process that only
    # sleeps) holds the one slot while the folder is made, so that it is there before the real job starts.
    manager = make_manager(tmp_path / "jobs", registry)
    blocker = make_manager(tmp_path / "jobs", registry, python=fake_python(tmp_path, "exec sleep 600"))
    holding = blocker.submit(tiny())
    job = manager.submit(tiny())
    assert (holding.state, job.state) == ("running", "queued")
    (manager.job_dir(job.job_id) / "checkpoint.zip").mkdir(parents=True)
    assert manager.cancel(holding.job_id).state == "cancelled"
    job = manager.wait(job.job_id, TIMEOUT_S, poll_s=0.1)
    assert job.state == "failed"
    assert job.error.startswith("IsADirectoryError: [Errno 21] Is a directory: '.partial-"), job.error
    assert job.error.endswith(".zip' -> 'checkpoint.zip'"), job.error
    assert_public(job.error, str(tmp_path), str(job.pid))
    log = (manager.job_dir(job.job_id) / "job.log").read_text()
    assert str(manager.job_dir(job.job_id) / "checkpoint.zip") in log  # the full message and traceback stay there

    # How its process ended, as the manager that started it knows it, and as another manager does.
    exits = make_manager(tmp_path / "jobs", registry, python=fake_python(tmp_path, "exit 7"))
    job = exits.wait(exits.submit(tiny()).job_id, TIMEOUT_S, poll_s=0.05)
    assert job.error == "the job process exited with code 7 without recording a final state; see the job's log"
    starter = make_manager(tmp_path / "jobs", registry, python=fake_python(tmp_path, "exec sleep 0.5"))
    job = starter.submit(tiny())
    job = make_manager(tmp_path / "jobs", registry).wait(job.job_id, TIMEOUT_S, poll_s=0.05)
    assert job.error == "the job process ended without recording a final state; see the job's log"

    missing = make_manager(tmp_path / "jobs", registry, python=tmp_path / "no" / "such-python")
    job = missing.submit(tiny())
    assert job.state == "failed"
    assert job.error == "cannot start the job process: [Errno 2] No such file or directory: 'such-python'"


def test_a_memory_limit_too_small_even_for_torch_fails_the_job_cleanly(tmp_path, registry):
    manager = make_manager(tmp_path / "jobs", registry, memory_mb=256)  # the least; torch's libraries need more
    job = manager.wait(manager.submit(tiny()).job_id, TIMEOUT_S, poll_s=0.1)
    assert job.state == "failed"
    assert job.error.startswith("MemoryError: the job ran out of its memory limit of 256 MiB (memory_mb, the ")
    assert (job.checkpoint, job.model_version, job.timesteps_done) == (None, None, 0)
    assert registry.versions() == []


@pytest.mark.parametrize(
    ("message", "public"),
    [
        ("[Errno 2] No such file or directory: '/srv/jobs/ck.zip'", "[Errno 2] No such file or directory: 'ck.zip'"),
        ("'/a/.partial-1.zip' -> '/a/checkpoint.zip'", "'.partial-1.zip' -> 'checkpoint.zip'"),
        ("cannot open sqlite:////var/lib/fw/jobs.sqlite", "cannot open sqlite:jobs.sqlite"),
        ('File "/usr/lib/python3/x.py", line 3', 'File "x.py", line 3'),
        ("path=/etc/passwd (/tmp/dir/)", "path=passwd (dir)"),
        ("n_envs / eval_trainees, 1/2, ./relative/x, ~/home", "n_envs / eval_trainees, 1/2, ./relative/x, ~/home"),
    ],
)
def test_absolute_paths_are_cut_to_their_last_component(message, public):
    assert redact_paths(message) == public
    assert public_error("x/" * 2000).endswith("...") and len(public_error("x/" * 2000)) == 2000
    assert public_error(None) is None


def test_the_job_process_imports_no_torch_before_its_memory_limit():
    # sb3_ext loads its torch modules on first use (PEP 562): the job's config (sb3_ext.config) imports no torch
    code = "import sys, fitness_weights_api.train_job; print(sorted({'torch', 'stable_baselines3'} & set(sys.modules)))"
    assert subprocess.check_output([sys.executable, "-c", code], text=True).strip() == "[]"


# -- bad input ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"timesteps": 0}, "timesteps"),
        ({"timesteps": 1.5}, "timesteps"),
        ({"timesteps": True}, "timesteps"),
        ({"policy": "CnnPolicy"}, "policy"),
        ({"preset": "tpu"}, "preset"),
        ({"n_envs": 0}, "n_envs"),
        ({"seed": -1}, "seed"),
        ({"learning_rate": math.nan}, "learning_rate"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"learning_rate": "fast"}, "learning_rate"),
        ({"policy_kwargs": {"bad": {1, 2}}}, "policy_kwargs"),
        ({"policy_kwargs": {1: 2}}, "policy_kwargs"),
        ({"policy_kwargs": [1]}, "policy_kwargs"),
        ({"eval_trainees": 1}, "eval_trainees"),
        ({"eval_rollouts": -1}, "eval_rollouts"),
        ({"eval_rollouts": 2.5}, "eval_rollouts"),
        ({"activate": "yes"}, "activate"),
        ({"device": "gpu0"}, "device"),
    ],
)
def test_bad_configs_name_the_field(changes, field):
    for build in (JobConfig, JobConfig.from_dict):
        with pytest.raises(FieldError, match=rf"^{field}: ") as raised:
            if build is JobConfig:
                JobConfig(**{"timesteps": 1024, **changes})
            else:
                JobConfig.from_dict({"timesteps": 1024, **changes})
        assert raised.value.field == field and isinstance(raised.value, ValueError)


def test_config_round_trips_through_json_and_rejects_unknown_keys():
    config = tiny(4096, seed=7, learning_rate=1e-3, activate=True, preset="sb3", policy="MlpPolicy")
    data = json.loads(json.dumps(config.to_dict()))
    assert JobConfig.from_dict(data) == config
    assert JobConfig.from_dict({"timesteps": 5}) == JobConfig(5)
    with pytest.raises(FieldError, match=r"^timestep: unknown key in the training config; known keys: timesteps, "):
        JobConfig.from_dict({"timesteps": 5, "timestep": 5})
    with pytest.raises(FieldError, match=r"^timesteps: is required"):
        JobConfig.from_dict({"seed": 1})
    with pytest.raises(FieldError, match=r"^config: .*must be a JSON object"):
        JobConfig.from_dict([("timesteps", 5)])
    kwargs = {"net_arch": [8]}
    config = JobConfig(5, policy_kwargs=kwargs)
    kwargs["net_arch"].append(9)
    assert config.policy_kwargs == {"net_arch": [8]}  # a copy


def test_manager_refuses_bad_submissions_and_job_ids(manager):
    with pytest.raises(FieldError, match=r"^timesteps: must be at most 2000000 \(max_timesteps\)"):
        manager.submit(tiny(2_000_001))
    with pytest.raises(FieldError, match=r"^epochs: unknown key"):
        manager.submit({"timesteps": 10, "epochs": 3})
    with pytest.raises(FieldError, match=r"^timesteps: "):
        manager.submit({"timesteps": -5})
    assert manager.list() == []  # nothing was queued
    for bad in ("../../etc/passwd", "", "A" * 32, uuid.uuid4().hex + "0", 42, None):
        for method in (manager.get, manager.cancel, manager.job_dir):
            with pytest.raises(FieldError, match=r"^job_id: must be a job id"):
                method(bad)
    unknown = uuid.uuid4().hex
    for method in (manager.get, manager.cancel):
        with pytest.raises(UnknownJobError, match=f"unknown job '{unknown}'") as raised:
            method(unknown)
        assert isinstance(raised.value, KeyError)
    with pytest.raises(FieldError, match=r"^limit: "):
        manager.list(limit=0)
    with pytest.raises(FieldError, match=r"^state: "):
        manager.list(state="done")


def test_manager_refuses_configs_above_its_resource_bounds(tmp_path, registry):
    manager = make_manager(tmp_path / "jobs", registry, max_n_envs=32, max_eval_trainees=100)
    refused = [  # (what changes, the field, its reason: what the API answers, without the value)
        ({"n_envs": 33}, "n_envs", "must be at most 32 (max_n_envs)"),
        ({"n_envs": None}, "preset", "too large: the cpu preset steps 64 envs, above max_n_envs 32; set n_envs"),
        ({"eval_trainees": 101}, "eval_trainees", "must be at most 100 (max_eval_trainees)"),
    ]
    for changes, field, reason in refused:
        with pytest.raises(FieldError, match=rf"^{field}: {re.escape(reason)}") as raised:
            manager.submit({**TINY, "timesteps": 1, **changes})
        assert raised.value.field == field and raised.value.reason.startswith(reason)
    default = make_manager(tmp_path / "jobs", registry)  # 1024 envs and 1000 trainees
    with pytest.raises(FieldError, match=r"^n_envs: must be at most 1024 \(max_n_envs\) \(got 16384\)") as raised:
        default.submit({"timesteps": 1, "n_envs": 16_384, "eval_trainees": 10_000})  # the security review's config
    assert raised.value.field == "n_envs" and "16384" not in raised.value.reason
    with pytest.raises(FieldError, match=r"^eval_trainees: must be at most 1000 ") as raised:
        default.submit({"timesteps": 1, "n_envs": 1024, "eval_trainees": 10_000})
    assert manager.list() == []  # nothing was queued


def test_settings_wire_the_job_limits(tmp_path, registry):
    settings = ServiceSettings(
        home=tmp_path / "home", max_n_envs=7, max_eval_trainees=9, job_memory_mb=1234, checkpoint_seconds=5,
        checkpoint_rollouts=3,
    )  # fmt: skip
    jobs = settings.open_jobs(registry)
    assert (jobs.max_n_envs, jobs.max_eval_trainees, jobs.memory_mb) == (7, 9, 1234)
    assert (jobs.checkpoint_seconds, jobs.checkpoint_rollouts) == (5.0, 3)
    defaults = ServiceSettings(home=tmp_path / "home").open_jobs(registry)
    assert (defaults.max_n_envs, defaults.max_eval_trainees, defaults.memory_mb) == (1024, 1000, 8192)
    assert (defaults.checkpoint_seconds, defaults.checkpoint_rollouts) == (60.0, 10)
    unlimited = ServiceSettings.from_env({"FITNESS_WEIGHTS_JOB_MEMORY_MB": "0", "FITNESS_WEIGHTS_HOME": str(tmp_path)})
    assert unlimited.open_jobs(registry).memory_mb is None  # 0: no limit (GPU jobs reserve much address space)
    with pytest.raises(FieldError, match=r"^FITNESS_WEIGHTS_JOB_MEMORY_MB: job_memory_mb must be 0 .* at least 256"):
        ServiceSettings.from_env({"FITNESS_WEIGHTS_JOB_MEMORY_MB": "100"})


def test_manager_arguments_and_databases_are_checked(tmp_path, registry):
    bad = [("max_concurrent", 0), ("max_timesteps", 0), ("max_queued", 0), ("cancel_grace_s", math.nan)]
    bad += [("max_n_envs", 0), ("max_eval_trainees", 1.5), ("memory_mb", 255), ("memory_mb", "8192")]
    bad += [("checkpoint_seconds", 0), ("checkpoint_rollouts", 0)]
    for name, value in bad:
        with pytest.raises(FieldError, match=rf"^{name}: "):
            JobManager(tmp_path / "jobs", registry, **{name: value})
    with pytest.raises(FieldError, match=r"^database_url: is the registry's database"):
        JobManager(tmp_path / "jobs", registry, database_url=registry.database_url)
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (text TEXT)")
    with pytest.raises(JobError, match="is not a job database"):
        JobManager(tmp_path / "jobs", registry, database_url=f"sqlite:///{other}")
    with pytest.raises(FieldError, match=r"^database_url: "):
        JobManager(tmp_path / "jobs", registry, database_url="postgresql://db/jobs")


def test_a_full_queue_is_refused_and_state_is_shared_through_the_database(tmp_path, registry):
    first = make_manager(tmp_path / "jobs", registry, max_queued=1)
    second = make_manager(tmp_path / "jobs", registry, max_queued=1)
    try:
        running = first.submit(tiny(LONG))
        queued = second.submit(tiny())  # the second manager sees the running job: its slot is taken
        assert (running.state, queued.state) == ("running", "queued")
        with pytest.raises(JobError, match="queue is full"):
            first.submit(tiny())
        assert second.get(running.job_id).pid == running.pid
        assert [job.job_id for job in second.list()] == [queued.job_id, running.job_id]
    finally:
        for job in first.list():
            second.cancel(job.job_id)  # the second manager did not start the job, yet cancels it
    assert {job.state for job in first.list()} == {"cancelled"}
